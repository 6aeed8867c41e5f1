//! `kelp shim`: the single-threaded per-container process. Runs before any tokio runtime exists.
//!
//! * `kelp shim run STATE_DIR DATA_DIR ID` forks once (the agent waits only for the first process;
//!   the shim proper is reparented to init or the nearest subreaper and survives the agent), starts a
//!   new session, becomes a child subreaper, mounts the container's overlay rootfs, creates and
//!   starts the container with libcontainer (its executor installs the seccomp filter compiled
//!   once per profile, [`super::seccomp_bpf`]), writes `status.json`, reports `ok <pid> <started-ns>` or
//!   `err <message>` on its stdout (a pipe to the agent) and closes it. It then copies the
//!   container's stdout/stderr pipes into the CRI log file, reaps the container's init, records the
//!   exit (code, signal, OOM kill, time), kills what is left in the container's cgroup and removes
//!   it and libcontainer's state (what `Container::delete` does, without building a cgroup manager
//!   for it), unmounts the rootfs, writes the exit into `status.json`,
//!   creates `exits/<id>` and exits.
//! * `kelp shim exec STATE_DIR DATA_DIR ID TIMEOUT_MS [--env K=V]... -- ARGV...` runs ARGV in the
//!   running container (libcontainer's tenant builder) with the container's user, working dir,
//!   environment (plus `--env`), capabilities and seccomp filter, on the shim's stdin, stdout and
//!   stderr. libcontainer sets the process up in a staging cgroup (the pod's on v1, the shim's own
//!   on v2); it joins the container's cgroup only right before execvp, so the setup is neither
//!   throttled by the container's CPU quota nor charged to its memory limit. The result is reported on fd 3 (stderr without it) as `kelp-exec: exit <code>`,
//!   `kelp-exec: timeout` (the process was killed after TIMEOUT_MS; 0 = none) or
//!   `kelp-exec: error <message>`.
//!
//!   With `--control`, fd 4 is a socket to the agent (`Runtime::exec_interactive`): when the
//!   agent closes it before the process ended, the process and its whole session are SIGKILLed.
//!   With `--tty` the process runs on a pty from the container's devpts (libcontainer's console
//!   socket, process `terminal: true`); the shim receives the master and passes it to the agent
//!   over fd 4 (SCM_RIGHTS).
//!
//! Terminals and stdin of a container itself (`tty`, `stdin`, `stdinOnce`): the run shim creates
//! the container with a pty (console socket) or a stdin pipe, copies the output to the log (a
//! terminal's output as `stdout`) and serves attach clients on `attach.sock` from its poll loop
//! (see [`super::attach`]). The log is rotated like kubelet does ([`super::logs::RotatingLog`]).
//! Payloads start with default signal dispositions and an empty signal mask (this program
//! ignores SIGPIPE, which would otherwise be inherited through execve).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::{LinuxSeccomp, Spec};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::logs::{LineSplitter, RotatingLog, Stream};
use super::seccomp_bpf::{self, Compiled, Install};
use super::state::{self, ExitRecord, Meta, ShimStatus, StateDir};
use super::{attach, cgroups, fdpass};

/// Prefix of the exec shim's status line.
pub const EXEC_STATUS: &str = "kelp-exec: ";

/// Entry point of `kelp shim`; returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let args: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
    // Executed through /proc/<agent>/fd/<n>, the process would be named after the descriptor.
    // SAFETY: PR_SET_NAME with a NUL-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"kelp-shim".as_ptr()) };
    match args.first().map(String::as_str) {
        Some("run") if args.len() == 4 => run(&args[1], &args[2], &args[3]),
        Some("pidns") if args.len() == 2 => pid_namespace(&args[1]),
        Some("exec") if args.len() >= 6 => {
            // The status goes to fd 3; the exec'd process must not inherit it.
            // SAFETY: fcntl on fd 3 (EBADF when the caller passed none).
            unsafe { libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) };
            let Ok(timeout_ms) = args[4].parse::<u64>() else {
                exec_status(&format!("error invalid timeout {:?}", args[4]));
                return 2;
            };
            let mut env = Vec::new();
            let mut opts = ExecFlags::default();
            let mut i = 5;
            while i < args.len() {
                match args[i].as_str() {
                    "--env" if i + 1 < args.len() => {
                        env.push(args[i + 1].clone());
                        i += 2;
                    }
                    "--tty" => {
                        opts.tty = true;
                        i += 1;
                    }
                    "--control" => {
                        opts.control = true;
                        i += 1;
                    }
                    "--" => {
                        i += 1;
                        break;
                    }
                    _ => break,
                }
            }
            let timeout = if timeout_ms == 0 { None } else { Some(Duration::from_millis(timeout_ms)) };
            if opts.control {
                // SAFETY: fcntl on fd 4 (EBADF when the caller passed none).
                unsafe { libc::fcntl(4, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
            exec(&args[1], &args[2], &args[3], timeout, env, opts, args[i..].to_vec())
        }
        _ => {
            eprintln!(
                "usage: kelp shim run STATE_DIR DATA_DIR ID\n       kelp shim exec STATE_DIR DATA_DIR ID TIMEOUT_MS [--env K=V]... [--tty] [--control] -- ARGV..."
            );
            2
        }
    }
}

/// `kelp shim pidns FILE`: a pod's shared PID namespace (`shareProcessNamespace`). Unshares a new
/// PID namespace and forks its init — in a session of its own, it only reaps the orphans of the
/// pod's processes (upstream's pause container has this role) — and writes that init's host pid to
/// FILE before exiting, so the caller knows it once this process is gone.
fn pid_namespace(file: &str) -> i32 {
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID) {
        eprintln!("unshare(CLONE_NEWPID): {e}");
        return 1;
    }
    // SAFETY: the shim is single-threaded here (no tokio, no logging threads).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            let tmp = format!("{file}.tmp");
            match std::fs::write(&tmp, child.as_raw().to_string()).and_then(|()| std::fs::rename(&tmp, file)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("writing {file}: {e}");
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    1
                }
            }
        }
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = nix::unistd::setsid();
            if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard descriptors this process owns.
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            // Reap whatever is reparented to us; sleep in sigwait in between.
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(nix::sys::signal::Signal::SIGCHLD);
            let _ = set.thread_block();
            loop {
                while let Ok(st) = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    if st == nix::sys::wait::WaitStatus::StillAlive {
                        break;
                    }
                }
                let _ = set.wait();
            }
        }
        Err(e) => {
            eprintln!("fork: {e}");
            1
        }
    }
}

/// Writes one line to the agent on stdout (unbuffered: one write).
fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

/// Points fd 1 at /dev/null so the agent's pipe sees EOF.
fn close_stdout() {
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1, which we own as the process's stdout.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

fn run(state_dir: &str, data_dir: &str, id: &str) -> i32 {
    // SAFETY: the shim is single-threaded here (no tokio, no logging threads).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            report(&format!("err fork: {e}"));
            return 1;
        }
    }
    let _ = nix::unistd::setsid();
    // libcontainer's errors (the reason behind "failed syscall") go to shim.log. Safe here: this
    // process has one thread, so no lock can be held across libcontainer's clone().
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_max_level(tracing::Level::ERROR)
        .try_init();
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let st = StateDir { root: PathBuf::from(state_dir) };
    let bundle = Path::new(data_dir).join(id);
    match start(&st, &bundle, id) {
        Ok(running) => {
            report(&format!("ok {} {}", running.status.pid, running.status.started_at_ns));
            close_stdout();
            // Give back the heap libcontainer used while creating the container: the shim lives
            // as long as its container, so its private memory counts on every node.
            #[cfg(target_env = "gnu")]
            // SAFETY: malloc_trim only releases free heap pages.
            unsafe {
                libc::malloc_trim(0);
            }
            release_dead_stack();
            supervise(&st, &bundle, id, running)
        }
        Err(msg) => {
            eprintln!("kelp shim {id}: {msg}");
            if let Ok(mut c) = Container::load(st.libcontainer().join(id)) {
                let _ = c.delete(true);
            }
            unmount_rootfs(&bundle);
            report(&format!("err {}", msg.replace('\n', " ")));
            1
        }
    }
}

/// Returns the stack pages below the current frame to the kernel: creating the container ran
/// deep call chains whose pages would otherwise stay resident for the container's lifetime. The
/// process is single-threaded and the region is below the stack pointer, so nothing lives there;
/// later use faults in zeroed pages.
#[inline(never)]
fn release_dead_stack() {
    let marker = 0u8;
    let sp = std::ptr::addr_of!(marker) as usize;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    let Some(line) = maps.lines().find(|l| l.ends_with("[stack]")) else { return };
    let Some((start, end)) = line.split_whitespace().next().and_then(|r| r.split_once('-')) else { return };
    let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) else { return };
    if !(start..end).contains(&sp) {
        return;
    }
    // Keep a margin of 8 KiB below this frame for the calls that follow.
    let top = (sp.saturating_sub(8 * 1024)) & !4095;
    if top > start {
        // SAFETY: the range lies in this thread's stack below the live frames.
        unsafe { libc::madvise(start as *mut libc::c_void, top - start, libc::MADV_DONTNEED) };
    }
}

struct Running {
    meta: Meta,
    status: ShimStatus,
    log: RotatingLog,
    /// The container's stdout pipe, or the pty master with a terminal.
    out_r: OwnedFd,
    /// The container's stderr pipe (none with a terminal: merged into it).
    err_r: Option<OwnedFd>,
    /// Where attach clients' stdin goes: the stdin pipe, or (a dup of) the pty master.
    stdin_w: Option<OwnedFd>,
    /// The pty master, handed to attach clients for resizing.
    master: Option<OwnedFd>,
    /// The socket attach clients connect to.
    attach: UnixListener,
}

/// Mounts the overlay rootfs: lowerdirs through short symlinks `l/<n>` (relative to the bundle, so
/// the option string stays far below a page even for many layers), upper and work in the bundle.
fn mount_overlay(bundle: &Path, layers: &[PathBuf]) -> Result<(), String> {
    if layers.is_empty() {
        return Err("the image has no layers".into());
    }
    let links = bundle.join("l");
    for dir in [links.clone(), bundle.join("upper"), bundle.join("work"), bundle.join("rootfs")] {
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    for (i, layer) in layers.iter().enumerate() {
        let link = links.join(i.to_string());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(layer, &link).map_err(|e| format!("linking layer {}: {e}", layer.display()))?;
    }
    let lower: Vec<String> = (0..layers.len()).rev().map(|i| format!("l/{i}")).collect();
    let opts = format!("lowerdir={},upperdir=upper,workdir=work", lower.join(":"));
    if opts.len() >= 4000 {
        return Err(format!("too many image layers ({})", layers.len()));
    }
    std::env::set_current_dir(bundle).map_err(|e| format!("chdir {}: {e}", bundle.display()))?;
    let res = nix::mount::mount(
        Some("overlay"),
        "rootfs",
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    );
    let _ = std::env::set_current_dir("/");
    res.map_err(|e| format!("mounting the overlay rootfs: {e}"))
}

fn unmount_rootfs(bundle: &Path) {
    let _ = nix::mount::umount2(&bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
}

fn start(st: &StateDir, bundle: &Path, id: &str) -> Result<Running, String> {
    let meta: Meta = state::read_json(&st.meta(id))
        .map_err(|e| format!("reading container metadata: {e}"))?
        .ok_or_else(|| "container metadata missing".to_string())?;
    mount_overlay(bundle, &meta.layers)?;
    if let Some(dir) = meta.log_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating log dir {}: {e}", dir.display()))?;
    }
    let log = RotatingLog::open(&meta.log_path, meta.log_max_size, meta.log_max_files)
        .map_err(|e| format!("opening log file {}: {e}", meta.log_path.display()))?;
    let attach_path = st.attach_socket(id);
    let _ = std::fs::remove_file(&attach_path);
    let attach = UnixListener::bind(&attach_path).map_err(|e| format!("binding {}: {e}", attach_path.display()))?;
    attach.set_nonblocking(true).map_err(|e| format!("attach socket: {e}"))?;
    // The filter the executor installs; libcontainer then creates the container from the spec
    // without it (see `seccomp_bpf::prepare`).
    let (init_bundle, seccomp) = match &meta.seccomp {
        Some(f) => {
            let filter = seccomp_bpf::load(&f.program, f.flags).map_err(|e| e.to_string())?;
            (bundle.join("init"), Some((filter, f.install)))
        }
        None => (bundle.to_path_buf(), None),
    };
    let builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(st.libcontainer())
        .and_then(|b| b.validate_id())
        .map_err(|e| e.to_string())?;
    let mut stdin_w = None;
    let mut out_r = None;
    let mut err_r = None;
    let mut console = None;
    let builder = if meta.tty {
        // libcontainer's init opens a pty in the container's devpts, makes it the controlling
        // terminal and stdio of the payload, and sends the master to this socket.
        let path = st.console_socket(id);
        let _ = std::fs::remove_file(&path);
        console = Some(UnixListener::bind(&path).map_err(|e| format!("binding {}: {e}", path.display()))?);
        builder.with_console_socket(Some(path))
    } else {
        let stdin: OwnedFd = if meta.stdin {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
            stdin_w = Some(w);
            r
        } else {
            File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?.into()
        };
        let (o_r, o_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let (e_r, e_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        out_r = Some(o_r);
        err_r = Some(e_r);
        builder.with_stdin(stdin).with_stdout(o_w).with_stderr(e_w)
    };
    let mut container = builder
        .with_executor(InitExecutor { seccomp })
        .as_init(&init_bundle)
        .with_systemd(false)
        // Only checked against the terminal setting: a console socket needs "detached".
        .with_detach(meta.tty)
        .build()
        .map_err(|e| with_init_errors(error_chain(&e), err_r.as_ref()))?;
    let mut master = None;
    if let Some(listener) = console {
        let m = receive_master(&listener).map_err(|e| format!("receiving the container's terminal: {e}"))?;
        let _ = std::fs::remove_file(st.console_socket(id));
        out_r = Some(m.try_clone().map_err(|e| format!("dup: {e}"))?);
        stdin_w = Some(m.try_clone().map_err(|e| format!("dup: {e}"))?);
        master = Some(m);
    }
    container.start().map_err(|e| with_init_errors(error_chain(&e), err_r.as_ref()))?;
    let pid = container.pid().ok_or("the container has no init pid")?.as_raw();
    let me = std::process::id() as i32;
    let status = ShimStatus {
        shim_pid: me,
        shim_start_ticks: state::process_start_ticks(me).unwrap_or(0),
        pid,
        pid_start_ticks: state::process_start_ticks(pid).unwrap_or(0),
        started_at_ns: state::now_ns(),
        exit: None,
    };
    state::write_json(&st.status(id), &status).map_err(|e| format!("writing status: {e}"))?;
    let out_r = out_r.expect("stdout pipe or terminal");
    drop(container);
    Ok(Running { meta, status, log, out_r, err_r, stdin_w, master, attach })
}

/// Accepts libcontainer's connection on a console socket and receives the pty master sent over it
/// (waits at most 10 s: the sender runs in the container's init, which may have failed).
fn receive_master(listener: &UnixListener) -> Result<OwnedFd, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let wait = |fd: i32| -> Result<(), String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out".into());
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: poll over one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32 + 1) };
        Ok(())
    };
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait(listener.as_raw_fd())?,
            Err(e) => return Err(e.to_string()),
        }
    };
    conn.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    loop {
        match fdpass::recv_fd(conn.as_raw_fd(), &mut buf) {
            Ok((_, Some(fd))) => return Ok(fd),
            Ok((0, None)) => return Err("the container closed the console socket".into()),
            Ok((_, None)) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait(conn.as_raw_fd())?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Adds what the container's init wrote to its stderr before failing (libcontainer's init logs
/// the failing step there, after its stdio was set up).
fn with_init_errors(msg: String, err_r: Option<&OwnedFd>) -> String {
    let Some(err_r) = err_r else { return msg };
    set_nonblocking(err_r);
    let mut buf = vec![0u8; 8192];
    let n = nix::unistd::read(err_r.as_raw_fd(), &mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !msg.contains(l)).collect();
    if lines.is_empty() {
        msg
    } else {
        format!("{msg}: {}", lines[lines.len().saturating_sub(3)..].join("; "))
    }
}

/// An error with its sources, for users.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !msg.contains(&m) {
            msg.push_str(": ");
            msg.push_str(&m);
        }
        src = s.source();
    }
    msg
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn supervise(st: &StateDir, bundle: &Path, id: &str, mut r: Running) -> i32 {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let _ = mask.thread_block();
    let sfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("kelp shim {id}: signalfd: {e}; polling");
            None
        }
    };
    set_nonblocking(&r.out_r);
    let err_r = r.err_r.take();
    if let Some(e) = &err_r {
        set_nonblocking(e);
    }
    // With a terminal everything the container writes is its stdout.
    let mut streams = [
        (Some(r.out_r.try_clone().expect("dup")), LineSplitter::new(Stream::Stdout), attach::FRAME_STDOUT),
        (err_r, LineSplitter::new(Stream::Stderr), attach::FRAME_STDERR),
    ];
    drop(r.out_r);
    let mut server = attach::Server::new(
        r.attach,
        r.meta.name.clone(),
        r.meta.tty,
        r.meta.stdin,
        r.meta.stdin_once,
        r.stdin_w.take(),
        r.master.take(),
    );
    let cgroup_version = cgroups::version().unwrap_or(cgroups::Version::V1);
    let init = Pid::from_raw(r.status.pid);
    let mut exit: Option<ExitRecord> = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 32 * 1024];
    let mut reap = true;
    loop {
        if reap {
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(ws) if ws.pid() == Some(init) && exit.is_none() => {
                        let (exit_code, signal) = match ws {
                            WaitStatus::Exited(_, code) => (code, None),
                            WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
                            _ => continue,
                        };
                        let oom_killed = cgroups::oom_kills(cgroup_version, &r.meta.cgroup_path).unwrap_or(0) > 0;
                        exit = Some(ExitRecord { exit_code, signal, oom_killed, finished_at_ns: state::now_ns() });
                        // Kills whatever is left in the container (processes of a shared PID
                        // namespace outlive its init), removes the leaf cgroup and libcontainer's
                        // state: libcontainer's `Container::delete` without its cgroup manager.
                        if let Err(e) =
                            cgroups::kill_and_remove(cgroup_version, &r.meta.cgroup_path, Duration::from_secs(2))
                        {
                            eprintln!("kelp shim {id}: removing the container's cgroup: {e}");
                        }
                        if let Err(e) = std::fs::remove_dir_all(st.libcontainer().join(id)) {
                            eprintln!("kelp shim {id}: removing libcontainer's state: {e}");
                        }
                        drain_deadline = Some(Instant::now() + Duration::from_secs(2));
                    }
                    Ok(_) => {}
                }
            }
            reap = false;
        }
        let open = streams.iter().any(|(fd, _, _)| fd.is_some());
        if exit.is_some() && !open {
            break;
        }
        let timeout_ms: i32 = match drain_deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left.as_millis() as i32 + 1
            }
            None if sfd.is_none() => 200,
            None => -1,
        };
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(8);
        for (fd, _, _) in &streams {
            pfds.push(libc::pollfd { fd: fd.as_ref().map_or(-1, |f| f.as_raw_fd()), events: libc::POLLIN, revents: 0 });
        }
        pfds.push(libc::pollfd {
            fd: sfd.as_ref().map_or(-1, |s| s.as_fd().as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        });
        let base = server.register(&mut pfds);
        // SAFETY: poll over a valid array of pollfd.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if sfd.is_none() || pfds[2].revents != 0 {
            if let Some(s) = &sfd {
                while let Ok(Some(_)) = s.read_signal() {}
            }
            reap = true;
        }
        for (i, (fd, splitter, kind)) in streams.iter_mut().enumerate() {
            if pfds[i].revents == 0 {
                continue;
            }
            let Some(f) = fd.as_ref() else { continue };
            loop {
                match nix::unistd::read(f.as_raw_fd(), &mut buf) {
                    // EIO: the terminal's last slave closed (a terminal's end of file).
                    Ok(0) | Err(nix::errno::Errno::EIO) => {
                        let _ = splitter.finish(&mut r.log);
                        *fd = None;
                        break;
                    }
                    Ok(n) => {
                        let _ = splitter.feed(&buf[..n], &mut r.log);
                        server.broadcast(*kind, &buf[..n]);
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(e) => {
                        eprintln!("kelp shim {id}: reading the container's output: {e}");
                        let _ = splitter.finish(&mut r.log);
                        *fd = None;
                        break;
                    }
                }
            }
        }
        server.handle(&pfds, base);
    }
    for (_, splitter, _) in streams.iter_mut() {
        let _ = splitter.finish(&mut r.log);
    }
    unmount_rootfs(bundle);
    let exit =
        exit.unwrap_or(ExitRecord { exit_code: 255, signal: None, oom_killed: false, finished_at_ns: state::now_ns() });
    let _ = std::fs::remove_file(st.attach_socket(id));
    server.finish(exit.exit_code, Duration::from_secs(2));
    r.status.exit = Some(exit);
    if let Err(e) = state::write_json(&st.status(id), &r.status) {
        eprintln!("kelp shim {id}: writing status: {e}");
    }
    if let Err(e) = File::create(st.exit_marker(id)) {
        eprintln!("kelp shim {id}: writing exit marker: {e}");
    }
    0
}

/// The tenant's workload: joins the container's cgroup, applies the container's seccomp filter,
/// then execvp like libcontainer's default executor. libcontainer 0.7 builds the tenant spec
/// without `linux.seccomp`, so without this exec'd processes would run unfiltered.
#[derive(Clone)]
struct TenantExecutor {
    seccomp: Option<TenantSeccomp>,
    /// `cgroup.procs` of the container's cgroup in every hierarchy, opened by the exec shim (as
    /// root, in the host's cgroup namespace: the kernel checks a migration against the opener).
    /// They are close-on-exec and stay open until the execvp below.
    cgroup_procs: Vec<i32>,
}

impl Executor for TenantExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        reset_signals();
        match &self.seccomp {
            // The exec'd process has no_new_privs (see `exec`).
            Some(TenantSeccomp::Compiled(f)) => {
                seccomp_bpf::install(f, Install::NoNewPrivs).map_err(|e| ExecutorError::Other(e.to_string()))?
            }
            Some(TenantSeccomp::Profile(s)) => {
                libcontainer::seccomp::initialize_seccomp(s).map_err(|e| ExecutorError::Other(e.to_string()))?;
            }
            None => {}
        }
        // Joined only now: libcontainer's tenant setup and building the seccomp filter ran in the
        // staging cgroup, outside the container's CPU quota and memory limit (see `exec_inner`).
        for &fd in &self.cgroup_procs {
            // "0" = the writing process.
            // SAFETY: write(2) on a descriptor the exec shim keeps open until the process exec'd.
            if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
                let e = std::io::Error::last_os_error();
                return Err(ExecutorError::Other(format!("joining the container's cgroup: {e}")));
            }
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// An exec'd process's seccomp filter: compiled once per profile, or (a notify profile) built by
/// libcontainer.
#[derive(Clone)]
enum TenantSeccomp {
    Compiled(Compiled),
    Profile(LinuxSeccomp),
}

/// The container's init workload: installs the container's seccomp filter when libcontainer was
/// not given it (`Meta::seccomp`), then execvp like libcontainer's default executor, with default
/// signal dispositions.
#[derive(Clone)]
struct InitExecutor {
    seccomp: Option<(Compiled, Install)>,
}

impl Executor for InitExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        reset_signals();
        if let Some((filter, how)) = &self.seccomp {
            seccomp_bpf::install(filter, *how).map_err(|e| ExecutorError::Other(e.to_string()))?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// Gives the payload default signal dispositions and an empty signal mask. Ignored signals and
/// the mask survive execve: the shim is a Rust program, which ignores SIGPIPE, so without this
/// `yes | head -1` would never end in a container.
fn reset_signals() {
    /// The kernel's `struct sigaction` (glibc's `sigaction()` refuses its reserved signals 32, 33).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: rt_sigaction with SIG_DFL and the kernel's sigset size; failures are harmless.
            unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, &dfl as *const KernelSigaction, 0usize, 8usize) };
        }
    }
    // SAFETY: an empty, initialized set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Reports the exec result on fd 3 (the agent's status pipe), or stderr without one.
fn exec_status(status: &str) {
    let line = format!("{EXEC_STATUS}{status}\n");
    // SAFETY: probing and then writing fd 3, which the agent passed to this process.
    if unsafe { libc::fcntl(3, libc::F_GETFD) } >= 0 {
        let mut f = unsafe { File::from_raw_fd(3) };
        let _ = f.write_all(line.as_bytes());
    } else {
        eprint!("{line}");
    }
}

/// Options of an exec beyond the command.
#[derive(Clone, Copy, Debug, Default)]
struct ExecFlags {
    /// Run the process on a new terminal; its master goes to the agent over fd 4.
    tty: bool,
    /// fd 4 is the agent's control socket: when the agent closes it before the process ended, the
    /// process and everything in its session are killed.
    control: bool,
}

/// The control socket's descriptor.
const CONTROL_FD: i32 = 4;

fn exec(
    state_dir: &str,
    data_dir: &str,
    id: &str,
    timeout: Option<Duration>,
    env: Vec<String>,
    flags: ExecFlags,
    argv: Vec<String>,
) -> i32 {
    let status = match exec_inner(state_dir, data_dir, id, timeout, env, flags, argv) {
        Ok(Some(code)) => format!("exit {code}"),
        Ok(None) => "timeout".to_string(),
        Err(e) => format!("error {}", e.replace('\n', " ")),
    };
    exec_status(&status);
    0
}

fn exec_inner(
    state_dir: &str,
    data_dir: &str,
    id: &str,
    timeout: Option<Duration>,
    env: Vec<String>,
    flags: ExecFlags,
    argv: Vec<String>,
) -> Result<Option<i32>, String> {
    if argv.is_empty() {
        return Err("no command given".into());
    }
    if flags.tty && !flags.control {
        return Err("a terminal needs the control socket".into());
    }
    let st = StateDir { root: PathBuf::from(state_dir) };
    let spec = Spec::load(Path::new(data_dir).join(id).join("config.json"))
        .map_err(|e| format!("container {id} not found: {e}"))?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let process = spec.process().as_ref().ok_or("the container spec has no process")?;
    let user = process.user();
    let nnp = process.no_new_privileges().unwrap_or(false) || seccomp.is_some();
    let dup = |fd: i32| -> Result<OwnedFd, String> {
        // SAFETY: dup of one of our standard descriptors.
        let new = unsafe { libc::dup(fd) };
        if new < 0 {
            return Err(format!("dup {fd}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(new) })
    };
    let meta: Meta = state::read_json(&st.meta(id))
        .map_err(|e| format!("reading container metadata: {e}"))?
        .ok_or_else(|| format!("container {id} not found"))?;
    let version = cgroups::version().map_err(|e| format!("detecting the cgroup version: {e}"))?;
    let procs = open_cgroup_procs(version, &meta.cgroup_path)?;
    let bundle = Path::new(data_dir).join(id);
    let tenant = TenantRoot::new(&st, id, &bundle, &spec, &staging_cgroup(version, &meta.cgroup_path)?)?;
    let env: std::collections::HashMap<String, String> = env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    let seccomp = match seccomp {
        Some(s) if seccomp_bpf::cacheable(&s) => Some(TenantSeccomp::Compiled(
            seccomp_bpf::load_or_compile(&st.seccomp_cache(), &s).map_err(|e| e.to_string())?,
        )),
        Some(s) => Some(TenantSeccomp::Profile(s)),
        None => None,
    };
    let executor = TenantExecutor { seccomp, cgroup_procs: procs.iter().map(|f| f.as_raw_fd()).collect() };
    let builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(tenant.root())
        .and_then(|b| b.validate_id())
        .map_err(|e| e.to_string())?
        .with_stdin(dup(0)?)
        .with_stdout(dup(1)?)
        .with_stderr(dup(2)?)
        .with_executor(executor);
    let pid = if flags.tty {
        // A terminal needs `process.terminal`, which only a whole process.json can set: the
        // container's process with this command, environment and no_new_privileges.
        let mut p = process.clone();
        let overridden = |e: &String| env.contains_key(e.split('=').next().unwrap_or_default());
        let mut full_env: Vec<String> =
            p.env().clone().unwrap_or_default().into_iter().filter(|e| !overridden(e)).collect();
        let mut extra: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        extra.sort();
        full_env.extend(extra);
        p.set_args(Some(argv)).set_env(Some(full_env)).set_terminal(Some(true));
        if nnp {
            p.set_no_new_privileges(Some(true));
        }
        let process_json = tenant.dir.join("process.json");
        std::fs::write(&process_json, serde_json::to_vec(&p).map_err(|e| e.to_string())?)
            .map_err(|e| format!("writing {}: {e}", process_json.display()))?;
        let console_path = tenant.dir.join("console.sock");
        let console =
            UnixListener::bind(&console_path).map_err(|e| format!("binding {}: {e}", console_path.display()))?;
        let pid = builder
            .with_console_socket(Some(&console_path))
            .as_tenant()
            .with_process(Some(&process_json))
            // Only checked against the terminal setting: a console socket needs "detached".
            .with_detach(true)
            .build()
            .map_err(|e| error_chain(&e))?;
        match receive_master(&console) {
            Ok(master) => {
                if let Err(e) = fdpass::send_fd(CONTROL_FD, b"t", master.as_raw_fd()) {
                    kill_session(pid);
                    return Err(format!("handing over the terminal: {e}"));
                }
            }
            Err(e) => {
                kill_session(pid);
                return Err(format!("receiving the terminal: {e}"));
            }
        }
        pid
    } else {
        builder
            .as_tenant()
            .with_container_args(argv)
            .with_env(env)
            .with_user(Some(user.uid()))
            .with_group(Some(user.gid()))
            .with_additional_gids(user.additional_gids().clone().unwrap_or_default())
            .with_cwd(Some(process.cwd().clone()))
            .with_no_new_privs(nnp)
            .with_detach(false)
            .build()
            .map_err(|e| error_chain(&e))?
    };
    drop(procs);
    drop(tenant);
    // SAFETY: pidfd_open on our child (not yet reaped, so the pid is ours).
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) } as i32;
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Some(128 + sig as i32)),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for the exec'd process: {e}")),
        }
        let left = deadline.map_or(Duration::from_secs(3600), |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Ok(None);
        }
        let wait_ms = if pidfd >= 0 { left.as_millis().min(i32::MAX as u128) as i32 + 1 } else { 10 };
        let mut pfds = [
            libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if flags.control { CONTROL_FD } else { -1 }, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: poll over valid pollfds (fd -1 is ignored by poll).
        unsafe { libc::poll(pfds.as_mut_ptr(), 2, wait_ms) };
        if pfds[1].revents != 0 && control_closed() {
            // The client went away: nothing may stay behind in the container.
            kill_session(pid);
            return Ok(Some(128 + libc::SIGKILL));
        }
    }
}

/// Whether the agent closed the control socket (reads and drops anything else it sent).
fn control_closed() -> bool {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: read into a stack buffer from the control descriptor.
        let n = unsafe { libc::recv(CONTROL_FD, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            continue;
        }
        if n == 0 {
            return true;
        }
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock => false,
            std::io::ErrorKind::Interrupted => continue,
            _ => true,
        };
    }
}

/// SIGKILLs the exec'd process `pid` and every process of its session (libcontainer makes the
/// process a session leader), then reaps `pid`. Orphans of the session were reparented to the
/// container's init, which reaps them.
fn kill_session(pid: Pid) {
    for round in 0..100 {
        let mut found = false;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
                let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else { continue };
                let fields: Vec<&str> = rest.split(' ').collect();
                // fields: state, ppid, pgrp, session.
                if fields.len() > 3 && fields[3] == pid.as_raw().to_string() && fields[0] != "Z" {
                    found = true;
                    let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
                }
            }
        }
        if !found && round > 0 {
            break;
        }
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = waitpid(pid, None);
}

/// The `cgroup.procs` files of `cgroup_path` in every hierarchy where it exists.
fn open_cgroup_procs(version: cgroups::Version, cgroup_path: &str) -> Result<Vec<OwnedFd>, String> {
    let dirs = cgroups::all_dirs(version, cgroup_path).map_err(|e| format!("finding the container's cgroup: {e}"))?;
    let mut out = Vec::new();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        let path = dir.join("cgroup.procs");
        let f = OpenOptions::new().write(true).open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        out.push(OwnedFd::from(f));
    }
    if out.is_empty() {
        return Err(format!("the container's cgroup {cgroup_path} does not exist"));
    }
    Ok(out)
}

/// The cgroup libcontainer's tenant setup runs in before the exec'd process joins the container's
/// own (`TenantExecutor`): setting up the process (clone, setns, capabilities, user) inside the
/// container's cgroup would be throttled by its CPU quota (a `cpu: 10m` limit made every exec,
/// and so every exec probe, take over a second) and charged to its memory limit. On v1 this is
/// the pod's cgroup, which has no limits; on v2 the pod's cgroup has controllers enabled for its
/// children and may hold no processes, so the shim's own cgroup is used (joining it is a no-op).
fn staging_cgroup(version: cgroups::Version, cgroup_path: &str) -> Result<String, String> {
    match version {
        cgroups::Version::V1 => {
            let parent = Path::new(cgroup_path).parent().unwrap_or(Path::new("/"));
            Ok(parent.to_string_lossy().into_owned())
        }
        cgroups::Version::V2 => {
            let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
            own.lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(|p| p.trim().to_string())
                .ok_or_else(|| "the exec shim is in no cgroup v2 cgroup".to_string())
        }
    }
}

/// A libcontainer state root of one exec: the container's `state.json` pointing at a bundle whose
/// `config.json` is the container's spec with `linux.cgroupsPath` set to the staging cgroup (the
/// tenant builder takes the cgroup from there). Removed on drop.
struct TenantRoot {
    dir: PathBuf,
}

impl TenantRoot {
    fn new(st: &StateDir, id: &str, bundle_dir: &Path, spec: &Spec, staging: &str) -> Result<TenantRoot, String> {
        let parent = st.root.join("exec");
        // Roots of exec shims that were killed before cleaning up.
        for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok();
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = parent.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        let root = TenantRoot { dir };
        let bundle = root.dir.join("bundle");
        let ctr = root.dir.join("root").join(id);
        for d in [&bundle, &ctr] {
            std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        let state_path = st.libcontainer().join(id).join("state.json");
        let mut state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&state_path).map_err(|e| format!("container {id} is not running: {e}"))?,
        )
        .map_err(|e| format!("reading {}: {e}", state_path.display()))?;
        state["bundle"] = serde_json::Value::String(bundle.to_string_lossy().into_owned());
        std::fs::write(ctr.join("state.json"), serde_json::to_vec(&state).expect("json"))
            .map_err(|e| format!("writing the exec state: {e}"))?;
        let mut spec = spec.clone();
        if let Some(r) = spec.root().clone() {
            let path = if r.path().is_absolute() { r.path().clone() } else { bundle_dir.join(r.path()) };
            let mut r = r;
            r.set_path(path);
            spec.set_root(Some(r));
        }
        if let Some(mut linux) = spec.linux().clone() {
            linux.set_cgroups_path(Some(PathBuf::from(staging)));
            spec.set_linux(Some(linux));
        }
        spec.save(bundle.join("config.json")).map_err(|e| format!("writing the exec spec: {e}"))?;
        Ok(root)
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
}

impl Drop for TenantRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
