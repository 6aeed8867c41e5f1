//! Interactive processes for `kubectl exec -it` and `kubectl attach`: the agent's side.
//!
//! * [`Runtime::exec_interactive`] starts an exec shim (`kelp shim exec … --control [--tty]`) with
//!   a control socket on its fd 4. With a terminal, libcontainer opens a pty in the container's
//!   devpts, the shim receives the master on a console socket and passes it on over the control
//!   socket (SCM_RIGHTS); without one, the process gets pipes. Closing the control socket (dropping
//!   [`ExecExit`] before the process ended) makes the shim SIGKILL the process and its session.
//! * [`Runtime::attach`] connects to the run shim's attach socket (protocol in [`super::attach`]).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::state::{self, ShimStatus};
use super::{attach, fdpass, io_err, shim, ContainerState, Runtime, RuntimeError};

/// What an interactive exec gets besides its command.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecOptions {
    /// Give the process a stdin the caller writes to (otherwise `/dev/null`).
    pub stdin: bool,
    /// Run the process on a terminal (stdout and stderr merged into it).
    pub tty: bool,
}

/// A process exec'd into a container, with its streams.
pub struct ExecProcess {
    /// `Some` iff [`ExecOptions::stdin`]; `shutdown()` is end of file for the process (with a
    /// terminal: the terminal's EOF character, ^D).
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// The process's stdout; with a terminal the pty master (hang-up reads as end of file).
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    /// `None` with a terminal (merged into it).
    pub stderr: Option<Pin<Box<dyn AsyncRead + Send>>>,
    /// `Some` iff [`ExecOptions::tty`].
    pub resize: Option<TerminalResizer>,
    pub exit: ExecExit,
}

/// Resizes a terminal (TIOCSWINSZ on its pty master; the foreground process gets SIGWINCH).
#[derive(Clone, Debug)]
pub struct TerminalResizer {
    master: Arc<OwnedFd>,
}

impl TerminalResizer {
    /// Sets the terminal's size in columns and rows.
    pub fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        fdpass::set_winsize(self.master.as_raw_fd(), width, height)
    }
}

/// The end of an interactive exec. Dropping it before the process ended kills the process and
/// everything in its session, and the exec shim is reaped.
pub struct ExecExit {
    id: String,
    child: Option<tokio::process::Child>,
    status: Option<tokio::net::unix::pipe::Receiver>,
    /// The agent's end of the control socket; closing it makes the shim kill the process.
    control: Option<OwnedFd>,
}

impl ExecExit {
    /// The pid of the exec shim (while it runs).
    pub fn shim_pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Waits for the process to end: its exit code (`128 + signal` when killed).
    pub async fn wait(mut self) -> Result<i32, RuntimeError> {
        let mut status = String::new();
        if let Some(rx) = self.status.as_mut() {
            let _ = rx.read_to_string(&mut status).await;
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.wait().await;
        }
        // The shim is gone: nothing left for Drop to do.
        self.child = None;
        self.control = None;
        parse_exec_status(&self.id, &status)
    }
}

impl Drop for ExecExit {
    fn drop(&mut self) {
        // Closing the control socket tells the shim to kill the process; then reap the shim.
        self.control = None;
        if let Some(mut child) = self.child.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
                        let _ = child.kill().await;
                    }
                });
            }
        }
    }
}

fn parse_exec_status(id: &str, status: &str) -> Result<i32, RuntimeError> {
    let line = status.lines().rev().find_map(|l| l.strip_prefix(shim::EXEC_STATUS)).unwrap_or("");
    if let Some(code) = line.strip_prefix("exit ") {
        code.trim().parse().map_err(|_| RuntimeError::Other(format!("exec: bad status {line:?}")))
    } else if let Some(msg) = line.strip_prefix("error ") {
        Err(RuntimeError::Other(format!("exec in {id}: {msg}")))
    } else {
        Err(RuntimeError::Other(format!("exec in {id}: the exec shim failed without a status")))
    }
}

/// Which of a container's own streams an attach client wants.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A connection to a container's own stdio.
pub struct AttachSession {
    /// `Some` iff asked for (the container must have `stdin: true`). `shutdown()` ends this
    /// client's stdin; with `stdinOnce` the container's stdin then ends.
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// Output from attach time on; `Some` iff asked for.
    pub stdout: Option<Pin<Box<dyn AsyncRead + Send>>>,
    /// `Some` iff asked for and the container has no terminal.
    pub stderr: Option<Pin<Box<dyn AsyncRead + Send>>>,
    /// `Some` iff the container has a terminal.
    pub resize: Option<TerminalResizer>,
    pub exit: AttachEnd,
}

/// Resolves when the attached container exits.
pub struct AttachEnd {
    id: String,
    code: tokio::sync::oneshot::Receiver<i32>,
    status_path: PathBuf,
    reader: tokio::task::JoinHandle<()>,
}

impl AttachEnd {
    /// Waits for the container to exit: its exit code (`128 + signal` when killed).
    pub async fn wait(mut self) -> Result<i32, RuntimeError> {
        if let Ok(code) = (&mut self.code).await {
            return Ok(code);
        }
        // The shim dropped the connection (this client fell too far behind, or the shim died):
        // follow the container's status instead.
        loop {
            let st: Option<ShimStatus> =
                state::read_json(&self.status_path).map_err(io_err(format!("reading the status of {}", self.id)))?;
            match st {
                Some(ShimStatus { exit: Some(e), .. }) => return Ok(e.exit_code),
                Some(s) if state::shim_alive(&s) || state::init_alive(&s) => {}
                _ => return Err(RuntimeError::Other(format!("container {} is gone", self.id))),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for AttachEnd {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Buffer of the in-process pipes between the attach reader task and the caller.
const ATTACH_PIPE_BUFFER: usize = 64 * 1024;

impl Runtime {
    /// Runs `argv` in a running container like [`Runtime::exec`] (same user, cgroup, namespaces,
    /// capabilities, seccomp filter; `env` added), with the caller holding its streams: a stdin
    /// when `opts.stdin`, and a terminal from the container's devpts when `opts.tty`.
    pub async fn exec_interactive(
        &self,
        id: &str,
        argv: Vec<String>,
        env: Vec<String>,
        opts: ExecOptions,
    ) -> Result<ExecProcess, RuntimeError> {
        if argv.is_empty() {
            return Err(RuntimeError::Other("exec: no command given".into()));
        }
        if let Some(bad) = env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
            return Err(RuntimeError::Other(format!("exec: invalid environment variable {bad:?}")));
        }
        let name = self.status(id).await?;
        if !matches!(name.state, ContainerState::Running { .. }) {
            return Err(RuntimeError::Other(format!("container {} ({id}) is not running", name.name)));
        }
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io_err("pipe")(e.into()));
        let (status_r, status_w) = pipe()?;
        let (control, control_shim) = std::os::unix::net::UnixStream::pair().map_err(io_err("socketpair"))?;
        let control: OwnedFd = control.into();
        let control_shim: OwnedFd = control_shim.into();
        let mut cmd = tokio::process::Command::new(self.shim.path());
        cmd.arg("shim").arg("exec").arg(&self.state.root).arg(&self.cfg.data_dir).arg(id).arg("0");
        for e in &env {
            cmd.arg("--env").arg(e);
        }
        cmd.arg("--control");
        if opts.tty {
            cmd.arg("--tty");
        }
        cmd.arg("--").args(&argv).env_clear();
        let mut stdin_w = None;
        let mut stdout_r = None;
        let mut stderr_r = None;
        if opts.tty {
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        } else {
            if opts.stdin {
                let (r, w) = pipe()?;
                stdin_w = Some(w);
                cmd.stdin(Stdio::from(r));
            } else {
                cmd.stdin(Stdio::null());
            }
            let (r, w) = pipe()?;
            stdout_r = Some(r);
            cmd.stdout(Stdio::from(w));
            let (r, w) = pipe()?;
            stderr_r = Some(r);
            cmd.stderr(Stdio::from(w));
        }
        let fds = [status_w.as_raw_fd(), control_shim.as_raw_fd()];
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Move both out of the way first, so placing one cannot clobber the other.
                let mut high = [0; 2];
                for (h, fd) in high.iter_mut().zip(fds) {
                    *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                    if *h < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                for (target, h) in [3, 4].into_iter().zip(high) {
                    if libc::dup2(h, target) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io_err("starting the exec shim"))?;
        // Our copies of the child's ends must close now, so readers see EOF when the process ends.
        drop(cmd);
        drop(status_w);
        drop(control_shim);
        let status = tokio::net::unix::pipe::Receiver::from_owned_fd(status_r).map_err(io_err("status pipe"))?;
        let mut exit = ExecExit { id: id.to_string(), child: Some(child), status: Some(status), control: None };
        if !opts.tty {
            exit.control = Some(control);
            let stdout = receiver(stdout_r.expect("stdout pipe"))?;
            let stderr = receiver(stderr_r.expect("stderr pipe"))?;
            let stdin = match stdin_w {
                Some(w) => Some(Box::pin(ClosingWriter(Some(
                    tokio::net::unix::pipe::Sender::from_owned_fd(w).map_err(io_err("stdin pipe"))?,
                ))) as Pin<Box<dyn AsyncWrite + Send>>),
                None => None,
            };
            return Ok(ExecProcess {
                stdin,
                stdout: Box::pin(stdout),
                stderr: Some(Box::pin(stderr)),
                resize: None,
                exit,
            });
        }
        // The shim sends the pty master once the process runs, or closes the socket on failure.
        fdpass::set_nonblocking(&control).map_err(io_err("control socket"))?;
        // SAFETY: the OwnedFd stays open and unchanged while the AsyncFd owns it.
        let control = unsafe { AsyncFd::register(control) }.map_err(|e| io_err("control socket")(e.into()))?;
        let received = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let mut guard = control.readable().await?;
                let mut buf = [0u8; 16];
                match guard.try_io(|fd| fdpass::recv_fd(fd.as_raw_fd(), &mut buf)) {
                    Ok(r) => break r,
                    Err(_would_block) => continue,
                }
            }
        })
        .await;
        let master = match received {
            Ok(Ok((_, Some(master)))) => master,
            Ok(Ok((_, None))) | Ok(Err(_)) => {
                // No terminal: the shim failed; its status says why.
                let control = control.into_inner();
                exit.control = Some(control);
                return Err(match exit.wait().await {
                    Ok(code) => RuntimeError::Other(format!("exec in {id}: the process exited ({code}) at once")),
                    Err(e) => e,
                });
            }
            Err(_) => return Err(RuntimeError::Other(format!("exec in {id}: timed out waiting for the terminal"))),
        };
        exit.control = Some(control.into_inner());
        let master = Arc::new(master);
        let stdout = PtyStream::new(&master, false)?;
        let stdin = if opts.stdin {
            Some(Box::pin(PtyStream::new(&master, true)?) as Pin<Box<dyn AsyncWrite + Send>>)
        } else {
            None
        };
        Ok(ExecProcess {
            stdin,
            stdout: Box::pin(stdout),
            stderr: None,
            resize: Some(TerminalResizer { master }),
            exit,
        })
    }

    /// Attaches to a running container's own stdio (`kubectl attach`): output from now on, stdin
    /// into the container (when it was created with `stdin`), resizing when it has a terminal.
    pub async fn attach(&self, id: &str, opts: AttachOptions) -> Result<AttachSession, RuntimeError> {
        let (meta, status) = self.load(id)?;
        let running = matches!(self.to_status(meta.clone(), status).state, ContainerState::Running { .. });
        if !running {
            return Err(RuntimeError::Other(format!("container {} ({id}) is not running", meta.name)));
        }
        if opts.stdin && !meta.stdin {
            return Err(RuntimeError::Other(attach::no_stdin_message(&meta.name)));
        }
        let path = self.state.attach_socket(id);
        let request = attach::request_line(opts.stdin, opts.stdout, opts.stderr);
        let name = meta.name.clone();
        let cid = id.to_string();
        let handshake = tokio::task::spawn_blocking(move || -> Result<_, RuntimeError> {
            use std::io::Write;
            let mut sock = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
                RuntimeError::Other(format!("container {name} ({cid}) cannot be attached to (is it running?): {e}"))
            })?;
            sock.set_read_timeout(Some(Duration::from_secs(10))).map_err(io_err("attach socket"))?;
            sock.write_all(request.as_bytes()).map_err(io_err("attach request"))?;
            // One byte at a time: the terminal comes with the first byte, and nothing after the
            // line may be consumed here.
            let mut line = Vec::new();
            let mut master = None;
            loop {
                let mut b = [0u8; 1];
                let (n, fd) = fdpass::recv_fd(sock.as_raw_fd(), &mut b).map_err(io_err("attach reply"))?;
                if fd.is_some() {
                    master = fd;
                }
                if n == 0 || b[0] == b'\n' || line.len() > 4096 {
                    break;
                }
                line.push(b[0]);
            }
            sock.set_read_timeout(None).map_err(io_err("attach socket"))?;
            sock.set_nonblocking(true).map_err(io_err("attach socket"))?;
            Ok((sock, String::from_utf8_lossy(&line).into_owned(), master))
        })
        .await
        .map_err(|e| RuntimeError::Other(e.to_string()))?;
        let (sock, reply, master) = handshake?;
        let tty = match reply.strip_prefix("ok ") {
            Some("1") => true,
            Some("0") => false,
            _ => {
                let msg = reply.strip_prefix("err ").unwrap_or(if reply.is_empty() { "no reply" } else { &reply });
                return Err(RuntimeError::Other(format!("attaching to {id}: {msg}")));
            }
        };
        let sock = tokio::net::UnixStream::from_std(sock).map_err(io_err("attach socket"))?;
        let (rd, wr) = sock.into_split();
        let stdin = if opts.stdin {
            Some(Box::pin(wr) as Pin<Box<dyn AsyncWrite + Send>>)
        } else {
            // Dropping the write half shuts it down: the shim sees this client's stdin end.
            drop(wr);
            None
        };
        let (stdout_r, stdout_w) = if opts.stdout {
            let (r, w) = tokio::io::simplex(ATTACH_PIPE_BUFFER);
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        let (stderr_r, stderr_w) = if opts.stderr && !tty {
            let (r, w) = tokio::io::simplex(ATTACH_PIPE_BUFFER);
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        let (code_tx, code_rx) = tokio::sync::oneshot::channel();
        let reader = tokio::spawn(demux(rd, stdout_w, stderr_w, code_tx));
        Ok(AttachSession {
            stdin,
            stdout: stdout_r.map(|r| Box::pin(r) as Pin<Box<dyn AsyncRead + Send>>),
            stderr: stderr_r.map(|r| Box::pin(r) as Pin<Box<dyn AsyncRead + Send>>),
            resize: if tty { master.map(|m| TerminalResizer { master: Arc::new(m) }) } else { None },
            exit: AttachEnd { id: id.to_string(), code: code_rx, status_path: self.state.status(id), reader },
        })
    }
}

/// Reads the shim's frames: output into the caller's pipes, the exit code into `code`.
async fn demux<W: AsyncWrite + Unpin>(
    mut rd: tokio::net::unix::OwnedReadHalf,
    mut stdout: Option<W>,
    mut stderr: Option<W>,
    code: tokio::sync::oneshot::Sender<i32>,
) {
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; 5];
        if rd.read_exact(&mut header).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > attach::MAX_CLIENT_BUFFER {
            return;
        }
        payload.resize(len, 0);
        if rd.read_exact(&mut payload).await.is_err() {
            return;
        }
        let out = match header[0] {
            attach::FRAME_STDOUT => &mut stdout,
            attach::FRAME_STDERR => &mut stderr,
            attach::FRAME_EXIT if len == 4 => {
                // Output first: close the pipes (EOF for the caller), then report the exit.
                for w in [stdout.take(), stderr.take()].into_iter().flatten() {
                    let mut w = w;
                    let _ = w.shutdown().await;
                }
                let _ = code.send(i32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]));
                return;
            }
            _ => return,
        };
        if let Some(w) = out {
            // A caller that dropped its reader gets no more output; the exit still counts.
            if w.write_all(&payload).await.is_err() {
                *out = None;
            }
        }
    }
}

fn receiver(fd: OwnedFd) -> Result<tokio::net::unix::pipe::Receiver, RuntimeError> {
    tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map_err(io_err("output pipe"))
}

/// A pipe writer whose `shutdown` closes the pipe (end of file for the reader).
struct ClosingWriter(Option<tokio::net::unix::pipe::Sender>);

impl AsyncWrite for ClosingWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.0.as_mut() {
            Some(w) => Pin::new(w).poll_write(cx, buf),
            None => Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdin was closed"))),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.as_mut() {
            Some(w) => Pin::new(w).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0 = None;
        Poll::Ready(Ok(()))
    }
}

/// One direction of a pty master: reading (EIO at hang-up = end of file) or writing (`shutdown`
/// sends the terminal's EOF character once).
struct PtyStream {
    fd: AsyncFd<OwnedFd>,
    eof_sent: bool,
    eof_char: u8,
}

impl PtyStream {
    fn new(master: &OwnedFd, _writer: bool) -> Result<PtyStream, RuntimeError> {
        // SAFETY: dup of a descriptor we own; the new one is ours.
        let raw = unsafe { libc::fcntl(master.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io_err("dup of the terminal")(io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        fdpass::set_nonblocking(&fd).map_err(io_err("terminal"))?;
        let eof_char = fdpass::eof_char(raw);
        // SAFETY: the OwnedFd stays open and unchanged while the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| io_err("terminal")(e.into()))?;
        Ok(PtyStream { fd, eof_sent: false, eof_char })
    }
}

impl AsyncRead for PtyStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let res = guard.try_io(|fd| {
                // SAFETY: read into the caller's initialized buffer.
                let n = unsafe { libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // The last slave closed: end of file.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let res = guard.try_io(|fd| {
                // SAFETY: write from the caller's buffer.
                let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.eof_sent {
            return Poll::Ready(Ok(()));
        }
        let eof = [self.eof_char];
        match ready!(self.as_mut().poll_write(cx, &eof)) {
            Ok(_) => {
                self.eof_sent = true;
                Poll::Ready(Ok(()))
            }
            // The terminal is gone already: the process has its end of file.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
