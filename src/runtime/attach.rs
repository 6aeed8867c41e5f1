//! The run shim's attach server: the protocol on `containers/<id>/attach.sock` and the shim side
//! of it (non-blocking, driven from the shim's single-threaded poll loop).
//!
//! Protocol: the client sends one request line `attach <stdin> <stdout> <stderr>\n` (each `0`/`1`).
//! The shim answers one line: `ok <tty>\n` (with a terminal, the pty master is attached to it with
//! SCM_RIGHTS, for resizing) or `err <message>\n` and closes. After `ok`, the bytes the client
//! sends are the container's stdin (only when asked for; the client's half-close = end of its
//! stdin), and the shim sends frames `[kind: u8][len: u32 BE][payload]`: [`FRAME_STDOUT`],
//! [`FRAME_STDERR`] (output from attach time on) and finally [`FRAME_EXIT`] (payload: the exit
//! code, i32 BE) when the container exited. A client that does not read falls behind; once
//! [`MAX_CLIENT_BUFFER`] bytes are queued for it, it is disconnected (the shim never blocks).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use super::fdpass;

/// Frame kinds sent by the shim.
pub const FRAME_STDOUT: u8 = 1;
pub const FRAME_STDERR: u8 = 2;
pub const FRAME_EXIT: u8 = 3;

/// Output queued for one client at most before it is disconnected.
pub const MAX_CLIENT_BUFFER: usize = 8 << 20;
/// Stdin queued for the container at most before clients are no longer read.
const MAX_STDIN_PENDING: usize = 1 << 20;
/// The longest request line.
const MAX_REQUEST: usize = 256;

/// The request line of a client.
pub fn request_line(stdin: bool, stdout: bool, stderr: bool) -> String {
    format!("attach {} {} {}\n", stdin as u8, stdout as u8, stderr as u8)
}

/// The message for a client asking for stdin of a container that has none.
pub fn no_stdin_message(container: &str) -> String {
    format!("Unable to use a TTY/stdin - container {container} did not allocate one")
}

struct Client {
    sock: UnixStream,
    /// The request line so far; `None` once answered.
    request: Option<Vec<u8>>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    /// Still reading from the client (its stdin, or its request).
    reading: bool,
    out: Vec<u8>,
    dead: bool,
}

/// The shim side: attach clients and the container's stdin.
pub struct Server {
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    container: String,
    tty: bool,
    has_stdin: bool,
    stdin_once: bool,
    /// The container's stdin: the stdin pipe, or a dup of the pty master.
    stdin_w: Option<OwnedFd>,
    master: Option<OwnedFd>,
    pending: Vec<u8>,
    /// stdinOnce fired: no more stdin from clients; the pipe closes once `pending` is written.
    stdin_closed: bool,
    eof_char: u8,
}

impl Server {
    /// A server on `listener` (non-blocking) for container `container`.
    pub fn new(
        listener: UnixListener,
        container: String,
        tty: bool,
        has_stdin: bool,
        stdin_once: bool,
        stdin_w: Option<OwnedFd>,
        master: Option<OwnedFd>,
    ) -> Server {
        let eof_char = master.as_ref().map_or(4, |m| fdpass::eof_char(m.as_raw_fd()));
        if let Some(w) = &stdin_w {
            let _ = fdpass::set_nonblocking(w);
        }
        Server {
            listener: Some(listener),
            clients: Vec::new(),
            container,
            tty,
            has_stdin,
            stdin_once,
            stdin_w,
            master,
            pending: Vec::new(),
            stdin_closed: false,
            eof_char,
        }
    }

    /// Adds this server's descriptors to `pfds`; returns where they start (for [`Server::handle`]).
    pub fn register(&self, pfds: &mut Vec<libc::pollfd>) -> usize {
        let base = pfds.len();
        pfds.push(libc::pollfd {
            fd: self.listener.as_ref().map_or(-1, |l| l.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        });
        let stdin_fd = match &self.stdin_w {
            Some(w) if !self.pending.is_empty() => w.as_raw_fd(),
            _ => -1,
        };
        pfds.push(libc::pollfd { fd: stdin_fd, events: libc::POLLOUT, revents: 0 });
        let throttled = self.pending.len() >= MAX_STDIN_PENDING;
        for c in &self.clients {
            let mut events = 0;
            if c.reading && !throttled {
                events |= libc::POLLIN;
            }
            if !c.out.is_empty() {
                events |= libc::POLLOUT;
            }
            // A client not read from for now is left out (its hang-up would wake poll forever).
            let fd = if c.reading && throttled && events == 0 { -1 } else { c.sock.as_raw_fd() };
            pfds.push(libc::pollfd { fd, events, revents: 0 });
        }
        base
    }

    /// Handles the poll results of the descriptors registered at `base`.
    pub fn handle(&mut self, pfds: &[libc::pollfd], base: usize) {
        let n = self.clients.len().min(pfds.len().saturating_sub(base + 2));
        if pfds.get(base).is_some_and(|p| p.revents != 0) {
            self.accept();
        }
        if pfds.get(base + 1).is_some_and(|p| p.revents != 0) {
            self.flush_stdin();
        }
        for i in 0..n {
            let rev = pfds[base + 2 + i].revents;
            if rev == 0 {
                continue;
            }
            if self.clients[i].reading && rev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                self.read_client(i);
            } else if rev & (libc::POLLHUP | libc::POLLERR) != 0 {
                self.clients[i].dead = true;
            }
            if rev & libc::POLLOUT != 0 {
                flush_client(&mut self.clients[i]);
            }
        }
        self.reap_clients();
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else { return };
        loop {
            match listener.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        sock,
                        request: Some(Vec::new()),
                        stdin: false,
                        stdout: false,
                        stderr: false,
                        reading: true,
                        out: Vec::new(),
                        dead: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    fn read_client(&mut self, i: usize) {
        let mut buf = [0u8; 32 * 1024];
        loop {
            if self.pending.len() >= MAX_STDIN_PENDING && self.clients[i].request.is_none() {
                return;
            }
            match self.clients[i].sock.read(&mut buf) {
                Ok(0) => {
                    let c = &mut self.clients[i];
                    c.reading = false;
                    if c.request.is_some() {
                        c.dead = true;
                    } else if c.stdin {
                        c.stdin = false;
                        self.client_stdin_done();
                    }
                    return;
                }
                Ok(n) => {
                    let data = &buf[..n];
                    if self.clients[i].request.is_some() {
                        self.request_data(i, data);
                    } else {
                        self.stdin_data(i, data);
                    }
                    if self.clients[i].dead {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.clients[i].dead = true;
                    return;
                }
            }
        }
    }

    fn request_data(&mut self, i: usize, data: &[u8]) {
        let c = &mut self.clients[i];
        let req = c.request.as_mut().expect("request pending");
        req.extend_from_slice(data);
        let Some(nl) = req.iter().position(|&b| b == b'\n') else {
            if req.len() > MAX_REQUEST {
                c.dead = true;
            }
            return;
        };
        let rest = req.split_off(nl + 1);
        let line = String::from_utf8_lossy(&req[..nl]).into_owned();
        c.request = None;
        let flags: Vec<&str> = line.split(' ').collect();
        let parsed = match flags.as_slice() {
            ["attach", a, b, c] => {
                let f = |s: &str| match s {
                    "0" => Some(false),
                    "1" => Some(true),
                    _ => None,
                };
                f(a).zip(f(b)).zip(f(c)).map(|((a, b), c)| (a, b, c))
            }
            _ => None,
        };
        let reply = match parsed {
            None => Err(format!("bad attach request {line:?}")),
            Some((true, _, _)) if !self.has_stdin => Err(no_stdin_message(&self.container)),
            Some(p) => Ok(p),
        };
        match reply {
            Err(msg) => {
                let _ = c.sock.write_all(format!("err {msg}\n").as_bytes());
                c.dead = true;
            }
            Ok((stdin, stdout, stderr)) => {
                c.stdin = stdin;
                c.stdout = stdout;
                c.stderr = stderr && !self.tty;
                let line = format!("ok {}\n", self.tty as u8);
                let sent = match &self.master {
                    Some(m) => fdpass::send_fd(c.sock.as_raw_fd(), line.as_bytes(), m.as_raw_fd()),
                    None => c.sock.write_all(line.as_bytes()),
                };
                if sent.is_err() {
                    c.dead = true;
                    return;
                }
                if !rest.is_empty() {
                    self.stdin_data(i, &rest);
                }
            }
        }
    }

    fn stdin_data(&mut self, i: usize, data: &[u8]) {
        if !self.clients[i].stdin || self.stdin_closed || self.stdin_w.is_none() {
            return;
        }
        self.pending.extend_from_slice(data);
        self.flush_stdin();
    }

    /// A client that attached stdin closed it: with stdinOnce, the container's stdin ends.
    fn client_stdin_done(&mut self) {
        if !self.stdin_once || self.stdin_closed {
            return;
        }
        self.stdin_closed = true;
        if self.tty {
            // A terminal cannot be half-closed: send its end-of-file character.
            self.pending.push(self.eof_char);
        }
        self.flush_stdin();
    }

    fn flush_stdin(&mut self) {
        let Some(w) = &self.stdin_w else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match nix::unistd::write(w, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    // The container closed its stdin or exited.
                    self.pending.clear();
                    if !self.tty {
                        self.stdin_w = None;
                    }
                    return;
                }
            }
        }
        if self.stdin_closed && !self.tty {
            self.stdin_w = None;
        }
    }

    /// Sends output of the container to every client that asked for that stream.
    pub fn broadcast(&mut self, kind: u8, data: &[u8]) {
        for c in self.clients.iter_mut().filter(|c| c.request.is_none() && !c.dead) {
            let wanted = match kind {
                FRAME_STDOUT => c.stdout,
                FRAME_STDERR => c.stderr,
                _ => true,
            };
            if !wanted {
                continue;
            }
            if c.out.len() + data.len() + 5 > MAX_CLIENT_BUFFER {
                c.dead = true;
                continue;
            }
            c.out.push(kind);
            c.out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            c.out.extend_from_slice(data);
            flush_client(c);
        }
        self.reap_clients();
    }

    fn reap_clients(&mut self) {
        let mut stdin_done = false;
        self.clients.retain(|c| {
            if c.dead && c.stdin && c.request.is_none() {
                stdin_done = true;
            }
            !c.dead
        });
        if stdin_done {
            self.client_stdin_done();
        }
    }

    /// The container exited: stops accepting, sends the exit frame and flushes every client for
    /// at most `within`.
    pub fn finish(&mut self, exit_code: i32, within: Duration) {
        self.listener = None;
        self.stdin_w = None;
        self.broadcast(FRAME_EXIT, &exit_code.to_be_bytes());
        let deadline = Instant::now() + within;
        loop {
            self.clients.retain(|c| !c.dead && !c.out.is_empty());
            if self.clients.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut pfds: Vec<libc::pollfd> = self
                .clients
                .iter()
                .map(|c| libc::pollfd { fd: c.sock.as_raw_fd(), events: libc::POLLOUT, revents: 0 })
                .collect();
            // SAFETY: poll over a valid array of pollfd.
            unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, left.as_millis() as i32 + 1) };
            for (c, p) in self.clients.iter_mut().zip(&pfds) {
                if p.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                    c.dead = true;
                } else if p.revents != 0 {
                    flush_client(c);
                }
            }
        }
        self.clients.clear();
    }
}

fn flush_client(c: &mut Client) {
    while !c.out.is_empty() {
        match c.sock.write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => {
                c.dead = true;
                return;
            }
        }
    }
}
