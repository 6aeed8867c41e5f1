//! The kelp binary the shims run from, out of a container's reach (CVE-2019-5736 class): a
//! process in a container that gets hold of a shim's `/proc/<pid>/exe` must not be able to change
//! the binary on disk nor what other shims run.
//!
//! [`ReadOnlyBinary`] (the default) bind-mounts the binary read-only, keeps a descriptor of the
//! file on that mount and detaches the mount at once (as runc does with its overlay): shims are
//! executed through `/proc/<agent pid>/fd/<fd>`, their `/proc/<pid>/exe` is on a read-only mount
//! (writes fail with `EROFS`, whatever the capabilities), and nothing is left in the mount table.
//! The file is the binary itself, so shims share its page cache with the agent.
//!
//! [`SealedBinary`] copies the binary into a sealed memfd (`F_SEAL_SEAL | F_SEAL_SHRINK |
//! F_SEAL_GROW | F_SEAL_WRITE`): used when mounting is not possible; it costs the binary's size in
//! memory that cannot be reclaimed.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// The binary, opened through a read-only bind mount that is already detached.
#[derive(Debug)]
pub struct ReadOnlyBinary {
    fd: OwnedFd,
}

impl ReadOnlyBinary {
    /// Bind-mounts `source` read-only on a file made in `scratch_dir`, opens it there, and detaches
    /// the mount (the descriptor keeps it alive) and removes the file.
    pub fn new(source: &Path, scratch_dir: &Path) -> io::Result<Self> {
        let target = scratch_dir.join(format!(".kelp-shim-{}", std::process::id()));
        let _ = umount2(&target, MntFlags::MNT_DETACH);
        File::create(&target)?;
        let result = Self::mount_and_open(source, &target);
        let _ = umount2(&target, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&target);
        let fd = result?;
        // The descriptor must be on a read-only mount, or the whole point is lost.
        let st = nix::sys::statvfs::fstatvfs(&fd).map_err(io::Error::from)?;
        if !st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
            return Err(io::Error::other("the bind mount of the binary is not read-only"));
        }
        Ok(ReadOnlyBinary { fd })
    }

    fn mount_and_open(source: &Path, target: &Path) -> io::Result<OwnedFd> {
        mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(io::Error::from)?;
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NODEV;
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(io::Error::from)?;
        let file = std::fs::OpenOptions::new().read(true).open(target)?;
        Ok(OwnedFd::from(file))
    }

    /// The path to execute: the file through this process's fd table (valid while `self` lives).
    pub fn exec_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd()))
    }
}

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
    fn read_only_binary_rejects_writes_and_leaves_no_mount() {
        let dir = tempfile::tempdir().unwrap();
        // A binary nobody runs (a running one refuses writes anyway: ETXTBSY).
        let bin_dir = tempfile::tempdir().unwrap();
        let exe = bin_dir.path().join("kelp");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        let ro = ReadOnlyBinary::new(&exe, dir.path()).unwrap();
        let path = ro.exec_path();
        let original = std::fs::read(&exe).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), original);
        let err = std::fs::OpenOptions::new().append(true).open(&path).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the scratch file is left");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&dir.path().to_string_lossy().into_owned()), "{mounts}");
        // The same file as the binary: shims share its page cache.
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (std::fs::metadata(&exe).unwrap(), std::fs::metadata(&path).unwrap());
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
    }

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
