//! Passing file descriptors over unix sockets (SCM_RIGHTS), and small terminal helpers shared by
//! the shims and the agent side.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Sends `data` (at least one byte) with `fd` attached.
pub fn send_fd(sock: RawFd, data: &[u8], fd: RawFd) -> io::Result<()> {
    let iov = [IoSlice::new(data)];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None).map_err(io::Error::from)?;
    Ok(())
}

/// Receives up to `buf.len()` bytes and the descriptor attached to them, if any (close-on-exec).
/// `Ok((0, None))` is end of stream.
pub fn recv_fd(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg =
        recvmsg::<()>(sock, &mut iov, Some(&mut cmsg_buf), MsgFlags::MSG_CMSG_CLOEXEC).map_err(io::Error::from)?;
    let mut out = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel installed these descriptors in this process for us.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if out.is_none() {
                    out = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, out))
}

/// Sets the window size of the terminal behind `fd` (a pty master): TIOCSWINSZ, which also sends
/// SIGWINCH to the terminal's foreground process group.
pub fn set_winsize(fd: RawFd, width: u16, height: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize struct.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The terminal's end-of-file character (VEOF, normally ^D): written to a pty master in
/// canonical mode, the reader sees end of file.
pub fn eof_char(fd: RawFd) -> u8 {
    // SAFETY: tcgetattr fills a zeroed termios.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut t) } == 0 && t.c_cc[libc::VEOF] != 0 {
        t.c_cc[libc::VEOF]
    } else {
        4
    }
}

/// Sets O_NONBLOCK on `fd`.
pub fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
