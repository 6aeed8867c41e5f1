//! The sealed copy of the kelp binary the shims run from (CVE-2019-5736 class).
//!
//! `Runtime::new` copies the binary once into a memfd and seals it (`F_SEAL_SEAL | F_SEAL_SHRINK |
//! F_SEAL_GROW | F_SEAL_WRITE`). Shims are executed from `/proc/<agent pid>/fd/<memfd>`, so their
//! `/proc/<pid>/exe` is the sealed memfd: a process in a container that gets hold of it cannot
//! modify the binary on disk nor the copy other shims run from.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A sealed, executable in-memory copy of a binary.
#[derive(Debug)]
pub struct SealedBinary {
    fd: OwnedFd,
}

impl SealedBinary {
    /// Copies `source` into a new memfd and seals it against every change.
    pub fn new(source: &Path) -> io::Result<Self> {
        let name = c"kelp";
        // SAFETY: memfd_create with a valid NUL-terminated name; the result is checked.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut src = File::open(source)?;
        let mut dst = File::from(fd);
        io::copy(&mut src, &mut dst)?;
        let fd = OwnedFd::from(dst);
        let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: fcntl on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SealedBinary { fd })
    }

    /// The path to execute: the memfd through this process's fd table (valid while `self` lives).
    pub fn exec_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd()))
    }

    /// The seals in place (for tests and diagnostics).
    pub fn seals(&self) -> io::Result<i32> {
        // SAFETY: fcntl on a descriptor we own.
        let seals = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(seals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sealed_copy_rejects_writes_and_keeps_content() {
        let exe = std::env::current_exe().unwrap();
        let sealed = SealedBinary::new(&exe).unwrap();
        let seals = sealed.seals().unwrap();
        for seal in [libc::F_SEAL_SEAL, libc::F_SEAL_SHRINK, libc::F_SEAL_GROW, libc::F_SEAL_WRITE] {
            assert_ne!(seals & seal, 0, "seal {seal:#x} missing");
        }
        let path = sealed.exec_path();
        let original = std::fs::read(&exe).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), original);
        // Opening for writing may be allowed by the kernel, but no write may change the content.
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&path) {
            assert!(f.write_all(b"x").is_err(), "write to the sealed binary succeeded");
        }
        assert!(std::fs::OpenOptions::new().write(true).truncate(true).open(&path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), original);
    }
}
