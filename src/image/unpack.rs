//! Unpacking one layer tarball into an overlay-format directory: whiteouts become 0:0 character
//! devices, opaque markers the `trusted.overlay.opaque` xattr; devices, FIFOs, hardlinks, owners,
//! modes, xattrs and mtimes are kept. The uncompressed stream's sha256 (the diff_id) is checked.
//! Absolute paths, `..` components, paths through symlinks and hardlinks leaving the layer are
//! refused with an error: nothing is ever written outside the target directory.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;

use super::digest::Sha256Reader;

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The tar stream tries to write outside the layer directory.
    #[error("refusing layer entry {path:?}: {reason}")]
    Hostile { path: String, reason: String },
    /// The uncompressed content does not have the digest the image config promises.
    #[error("layer diff_id mismatch: expected {expected}, got {actual}")]
    DiffId { expected: String, actual: String },
    /// A malformed tar stream or an entry kelp cannot represent.
    #[error("invalid layer entry {path:?}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> UnpackError {
    let context = context.into();
    move |source| UnpackError::Io { context, source }
}

/// Compression of a layer or a tarball, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Sniffs the compression from magic bytes (gzip 1f 8b, zstd 28 b5 2f fd).
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A reader of the decompressed content of `file` (compression sniffed from its first bytes).
pub fn decompressed(file: File) -> io::Result<Box<dyn Read + Send>> {
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let head = io::BufRead::fill_buf(&mut reader)?.to_vec();
    Ok(match sniff(&head) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::Decoder::with_buffer(reader)?),
        Compression::None => Box::new(reader),
    })
}

/// What an unpacked layer holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unpacked {
    /// Bytes of regular file content.
    pub size: u64,
    pub entries: u64,
}

/// Unpacks the (possibly compressed) layer `blob` into the new directory `dest` and checks that the
/// uncompressed stream hashes to `diff_id` (`sha256:<hex>`). On error `dest` may hold a partial
/// tree: the caller unpacks into a temporary directory and removes it.
pub fn unpack_layer(blob: &Path, dest: &Path, diff_id: &str) -> Result<Unpacked, UnpackError> {
    let file = File::open(blob).map_err(io_err(format!("opening {}", blob.display())))?;
    let reader = decompressed(file).map_err(io_err("reading the layer"))?;
    unpack_stream(reader, dest, Some(diff_id))
}

/// Unpacks an uncompressed tar stream into `dest` (created); checks the stream's sha256 against
/// `diff_id` when given.
pub fn unpack_stream(reader: impl Read, dest: &Path, diff_id: Option<&str>) -> Result<Unpacked, UnpackError> {
    fs::create_dir_all(dest).map_err(io_err(format!("creating {}", dest.display())))?;
    let mut hashing = Sha256Reader::new(reader);
    let mut state = Unpacker {
        root: dest.to_path_buf(),
        dirs: HashSet::new(),
        dir_times: Vec::new(),
        out: Unpacked::default(),
        writer: None,
        pending: HashSet::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().map_err(|e| invalid("", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| invalid("", e))?;
            state.entry(&mut entry)?;
        }
    }
    state.flush()?;
    // The diff_id covers the whole stream, padding after the end-of-archive blocks included.
    io::copy(&mut hashing, &mut io::sink()).map_err(io_err("reading the layer"))?;
    let actual = hashing.finish();
    if let Some(expected) = diff_id {
        if actual != expected {
            return Err(UnpackError::DiffId { expected: expected.to_string(), actual });
        }
    }
    // Directory times last, deepest first: creating children changes a directory's mtime.
    state.dir_times.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, mtime) in &state.dir_times {
        filetime::set_symlink_file_times(path, *mtime, *mtime)
            .map_err(io_err(format!("times of {}", path.display())))?;
    }
    Ok(state.out)
}

fn invalid(path: &str, e: impl std::fmt::Display) -> UnpackError {
    UnpackError::Invalid { path: path.to_string(), reason: e.to_string() }
}

struct Unpacker {
    root: PathBuf,
    /// Directories (relative) known to be real directories inside the layer.
    dirs: HashSet<PathBuf>,
    dir_times: Vec<(PathBuf, FileTime)>,
    out: Unpacked,
    /// Small regular files are written by a second thread while this one decompresses and hashes.
    writer: Option<Writer>,
    /// Files handed to the writer and maybe not on disk yet.
    pending: HashSet<PathBuf>,
}

type Writer = (std::sync::mpsc::SyncSender<FileJob>, std::thread::JoinHandle<Result<(), UnpackError>>);

/// Files up to this size go to the writer thread; larger ones are written inline.
const ASYNC_FILE_MAX: u64 = 1 << 20;

/// A regular file for the writer thread.
struct FileJob {
    path: PathBuf,
    data: Vec<u8>,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: FileTime,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Creates a regular file (never following a symlink) with its content, owner, mode, xattrs, mtime.
fn write_file(
    path: &Path,
    content: &mut dyn Read,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: FileTime,
    xattrs: &[(String, Vec<u8>)],
) -> Result<u64, UnpackError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(format!("creating {}", path.display())))?;
    let n = io::copy(content, &mut f).map_err(io_err(format!("writing {}", path.display())))?;
    std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(io_err(format!("chown {}", path.display())))?;
    // After the chown: chown clears setuid/setgid bits.
    f.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err(format!("chmod {}", path.display())))?;
    set_xattrs(path, xattrs)?;
    filetime::set_file_handle_times(&f, Some(mtime), Some(mtime))
        .map_err(io_err(format!("times of {}", path.display())))?;
    Ok(n)
}

/// The entry's path made relative and checked: no absolute path, no `..`.
pub fn clean_path(raw: &[u8]) -> Result<PathBuf, UnpackError> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    let path = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(UnpackError::Hostile { path: shown, reason: "absolute path".into() })
            }
            Component::ParentDir => {
                return Err(UnpackError::Hostile { path: shown, reason: "path contains \"..\"".into() })
            }
        }
    }
    Ok(out)
}

impl Unpacker {
    /// Waits for the writer thread to finish everything handed to it.
    fn flush(&mut self) -> Result<(), UnpackError> {
        self.pending.clear();
        if let Some((tx, handle)) = self.writer.take() {
            drop(tx);
            return handle.join().unwrap_or_else(|_| Err(invalid("", "the layer writer thread panicked")));
        }
        Ok(())
    }

    fn send(&mut self, job: FileJob) -> Result<(), UnpackError> {
        if self.writer.is_none() {
            let (tx, rx) = std::sync::mpsc::sync_channel::<FileJob>(256);
            let handle = std::thread::Builder::new()
                .name("layer-writer".into())
                .spawn(move || {
                    for j in rx {
                        write_file(&j.path, &mut &j.data[..], j.uid, j.gid, j.mode, j.mtime, &j.xattrs)?;
                    }
                    Ok(())
                })
                .map_err(io_err("starting the layer writer"))?;
            self.writer = Some((tx, handle));
        }
        self.pending.insert(job.path.clone());
        let (tx, _) = self.writer.as_ref().expect("writer");
        if tx.send(job).is_err() {
            // The writer stopped on an error: report it.
            self.flush()?;
            return Err(invalid("", "the layer writer stopped"));
        }
        Ok(())
    }

    /// Makes sure every parent of `rel` is a real directory inside the layer (creating missing
    /// ones 0755 root), refusing a parent that is a symlink or another file.
    fn parents(&mut self, rel: &Path, shown: &str) -> Result<(), UnpackError> {
        let Some(parent) = rel.parent() else { return Ok(()) };
        if parent.as_os_str().is_empty() || self.dirs.contains(parent) {
            return Ok(());
        }
        let mut cur = PathBuf::new();
        for c in parent.components() {
            cur.push(c);
            if self.dirs.contains(&cur) {
                continue;
            }
            let full = self.root.join(&cur);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(UnpackError::Hostile {
                        path: shown.to_string(),
                        reason: format!("parent {:?} is a symlink (symlink escape)", cur),
                    })
                }
                Ok(_) => {
                    return Err(UnpackError::Invalid {
                        path: shown.to_string(),
                        reason: format!("parent {:?} is not a directory", cur),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&full).map_err(io_err(format!("creating {}", full.display())))?;
                }
                Err(e) => return Err(io_err(format!("inspecting {}", full.display()))(e)),
            }
            self.dirs.insert(cur.clone());
        }
        Ok(())
    }

    /// Removes whatever is at `full` (unless it is a directory and `keep_dir`).
    fn clear(&mut self, rel: &Path, full: &Path, keep_dir: bool) -> Result<bool, UnpackError> {
        if self.pending.contains(full) {
            self.flush()?;
        }
        match fs::symlink_metadata(full) {
            Ok(m) if m.file_type().is_dir() => {
                if keep_dir {
                    return Ok(true);
                }
                if !self.pending.is_empty() {
                    self.flush()?;
                }
                fs::remove_dir_all(full).map_err(io_err(format!("replacing {}", full.display())))?;
                self.dirs.retain(|d| !d.starts_with(rel));
                self.dir_times.retain(|(p, _)| !p.starts_with(full));
            }
            Ok(_) => fs::remove_file(full).map_err(io_err(format!("replacing {}", full.display())))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("inspecting {}", full.display()))(e)),
        }
        Ok(false)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = clean_path(&raw)?;
        if rel.as_os_str().is_empty() {
            return Ok(()); // "./" itself
        }
        self.out.entries += 1;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().map_err(|e| invalid(&shown, e))? & 0o7777;
        let uid = header.uid().map_err(|e| invalid(&shown, e))? as u32;
        let gid = header.gid().map_err(|e| invalid(&shown, e))? as u32;
        let mtime = FileTime::from_unix_time(header.mtime().map_err(|e| invalid(&shown, e))? as i64, 0);
        let name = rel.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
        self.parents(&rel, &shown)?;
        let full = self.root.join(&rel);

        // Whiteouts in the overlay format.
        if name == b".wh..wh..opq" {
            let parent = full.parent().unwrap_or(&self.root).to_path_buf();
            xattr::set(&parent, "trusted.overlay.opaque", b"y")
                .map_err(io_err(format!("marking {} opaque", parent.display())))?;
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(UnpackError::Hostile { path: shown, reason: "invalid whiteout name".into() });
            }
            let target = full.with_file_name(OsStr::from_bytes(hidden));
            let target_rel = rel.with_file_name(OsStr::from_bytes(hidden));
            self.clear(&target_rel, &target, false)?;
            mknod(&target, libc::S_IFCHR, 0, 0, 0)?;
            return Ok(());
        }

        let xattrs = pax_xattrs(entry, &shown)?;
        match kind {
            tar::EntryType::Directory => {
                let existed = self.clear(&rel, &full, true)?;
                if !existed {
                    fs::create_dir(&full).map_err(io_err(format!("creating {}", full.display())))?;
                }
                self.dirs.insert(rel.clone());
                lchown(&full, Some(uid), Some(gid)).map_err(io_err(format!("chown {}", full.display())))?;
                fs::set_permissions(&full, fs::Permissions::from_mode(mode))
                    .map_err(io_err(format!("chmod {}", full.display())))?;
                set_xattrs(&full, &xattrs)?;
                self.dir_times.retain(|(p, _)| p != &full);
                self.dir_times.push((full, mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.clear(&rel, &full, false)?;
                let size = entry.header().entry_size().map_err(|e| invalid(&shown, e))?;
                if size <= ASYNC_FILE_MAX {
                    let mut data = Vec::with_capacity(size as usize);
                    entry.read_to_end(&mut data).map_err(io_err(format!("reading {shown}")))?;
                    self.out.size += data.len() as u64;
                    self.send(FileJob { path: full, data, uid, gid, mode, mtime, xattrs })?;
                } else {
                    self.out.size += write_file(&full, entry, uid, gid, mode, mtime, &xattrs)?;
                }
            }
            tar::EntryType::Symlink => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| invalid(&shown, "symlink without a target"))?.into_owned();
                self.clear(&rel, &full, false)?;
                symlink(OsStr::from_bytes(&target), &full).map_err(io_err(format!("symlink {}", full.display())))?;
                lchown(&full, Some(uid), Some(gid)).map_err(io_err(format!("chown {}", full.display())))?;
                set_xattrs(&full, &xattrs)?;
                filetime::set_symlink_file_times(&full, mtime, mtime)
                    .map_err(io_err(format!("times of {}", full.display())))?;
            }
            tar::EntryType::Link => {
                let raw_target =
                    entry.link_name_bytes().ok_or_else(|| invalid(&shown, "hardlink without a target"))?.into_owned();
                let target_rel = clean_path(&raw_target).map_err(|e| match e {
                    UnpackError::Hostile { reason, .. } => UnpackError::Hostile {
                        path: shown.clone(),
                        reason: format!("hardlink target {:?}: {reason}", String::from_utf8_lossy(&raw_target)),
                    },
                    other => other,
                })?;
                // The target must be a file of this layer, reached without symlinks.
                let target_full = self.root.join(&target_rel);
                if self.pending.contains(&target_full) {
                    self.flush()?;
                }
                let within = target_rel.parent().is_none_or(|p| {
                    let mut cur = PathBuf::new();
                    p.components().all(|c| {
                        cur.push(c);
                        self.dirs.contains(&cur)
                            || fs::symlink_metadata(self.root.join(&cur)).is_ok_and(|m| m.file_type().is_dir())
                    })
                });
                let meta = fs::symlink_metadata(&target_full);
                if !within || !meta.as_ref().is_ok_and(|m| !m.is_dir()) {
                    return Err(UnpackError::Invalid {
                        path: shown,
                        reason: format!(
                            "hardlink target {:?} is not a file of this layer",
                            String::from_utf8_lossy(&raw_target)
                        ),
                    });
                }
                if target_full != full {
                    self.clear(&rel, &full, false)?;
                    fs::hard_link(&target_full, &full).map_err(io_err(format!("hardlink {}", full.display())))?;
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let fmt = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                // Empty device fields (FIFOs from some writers) mean 0.
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                self.clear(&rel, &full, false)?;
                mknod(&full, fmt, mode, major, minor)?;
                lchown(&full, Some(uid), Some(gid)).map_err(io_err(format!("chown {}", full.display())))?;
                // mknod's mode is masked by the umask, and chown may clear set-id bits.
                fs::set_permissions(&full, fs::Permissions::from_mode(mode))
                    .map_err(io_err(format!("chmod {}", full.display())))?;
                set_xattrs(&full, &xattrs)?;
                filetime::set_symlink_file_times(&full, mtime, mtime)
                    .map_err(io_err(format!("times of {}", full.display())))?;
            }
            // PAX/GNU metadata entries are consumed by the tar reader; others carry nothing to write.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            tar::EntryType::GNULongName | tar::EntryType::GNULongLink | tar::EntryType::GNUSparse => {
                return Err(invalid(&shown, format!("unsupported tar entry type {kind:?}")))
            }
            other => return Err(invalid(&shown, format!("unsupported tar entry type {other:?}"))),
        }
        Ok(())
    }
}

impl Drop for Unpacker {
    /// Never leaves the writer thread writing into a directory the caller is about to remove.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn mknod(path: &Path, fmt: libc::mode_t, mode: u32, major: u32, minor: u32) -> Result<(), UnpackError> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| invalid(&path.to_string_lossy(), e))?;
    let dev = libc::makedev(major, minor);
    // SAFETY: a valid NUL-terminated path; mknod does not retain it.
    let rc = unsafe { libc::mknod(c.as_ptr(), fmt | (mode as libc::mode_t & 0o7777), dev) };
    if rc != 0 {
        return Err(io_err(format!("mknod {}", path.display()))(io::Error::last_os_error()));
    }
    Ok(())
}

/// `SCHILY.xattr.*` PAX records of the entry; `trusted.overlay.*` is refused (it would let a layer
/// forge overlay metadata such as redirects).
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<R>, shown: &str) -> Result<Vec<(String, Vec<u8>)>, UnpackError> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| invalid(shown, e))? {
        for ext in exts {
            let ext = ext.map_err(|e| invalid(shown, e))?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if name.starts_with("trusted.overlay.") {
                    return Err(UnpackError::Hostile {
                        path: shown.to_string(),
                        reason: format!("sets the overlay xattr {name}"),
                    });
                }
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

fn set_xattrs(path: &Path, xattrs: &[(String, Vec<u8>)]) -> Result<(), UnpackError> {
    for (k, v) in xattrs {
        if let Err(e) = xattr::set(path, k, v) {
            // Filesystems without user/security xattrs: like containerd, go on without them.
            if e.raw_os_error() == Some(libc::ENOTSUP) {
                tracing::debug!(path = %path.display(), xattr = %k, "xattr not supported here");
                continue;
            }
            return Err(io_err(format!("xattr {k} on {}", path.display()))(e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// A tar entry written with raw name bytes (tar-rs' builder refuses `..` and absolute names).
    fn entry(out: &mut Vec<u8>, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8], mode: u32, uid: u64) {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    fn finish(mut out: Vec<u8>) -> Vec<u8> {
        out.extend_from_slice(&[0; 1024]);
        out
    }

    fn unpack(tar: &[u8]) -> (tempfile::TempDir, Result<Unpacked, UnpackError>) {
        let dir = tempfile::tempdir().unwrap();
        let r = unpack_stream(tar, &dir.path().join("layer"), Some(&super::super::digest::sha256(tar)));
        (dir, r)
    }

    #[test]
    fn hostile_layers_are_refused() {
        use tar::EntryType::*;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dotdot", {
                let mut t = Vec::new();
                entry(&mut t, b"../escape", Regular, b"", b"x", 0o644, 0);
                finish(t)
            }),
            ("nested dotdot", {
                let mut t = Vec::new();
                entry(&mut t, b"a/../../escape", Regular, b"", b"x", 0o644, 0);
                finish(t)
            }),
            ("absolute", {
                let mut t = Vec::new();
                entry(&mut t, b"/escape", Regular, b"", b"x", 0o644, 0);
                finish(t)
            }),
            ("symlink", {
                let mut t = Vec::new();
                entry(&mut t, b"link", Symlink, b"..", b"", 0o777, 0);
                entry(&mut t, b"link/escape", Regular, b"", b"x", 0o644, 0);
                finish(t)
            }),
            ("hardlink", {
                let mut t = Vec::new();
                entry(&mut t, b"h", Link, b"../outside", b"", 0o644, 0);
                finish(t)
            }),
            ("whiteout through symlink", {
                let mut t = Vec::new();
                entry(&mut t, b"link", Symlink, b"..", b"", 0o777, 0);
                entry(&mut t, b"link/.wh.outside", Regular, b"", b"", 0o644, 0);
                finish(t)
            }),
        ];
        for (what, tar) in cases {
            let (dir, r) = unpack(&tar);
            let err = r.expect_err(what);
            assert!(matches!(err, UnpackError::Hostile { .. } | UnpackError::Invalid { .. }), "{what}: {err}");
            let outside: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(outside, vec![std::ffi::OsString::from("layer")], "{what}: wrote outside the layer");
        }
    }

    #[test]
    fn overlay_format_tree() {
        use tar::EntryType::*;
        let mut t = Vec::new();
        entry(&mut t, b"d/", Directory, b"", b"", 0o750, 0);
        entry(&mut t, b"d/f", Regular, b"", b"hello", 0o4755, 1000);
        entry(&mut t, b"d/h", Link, b"d/f", b"", 0o644, 0);
        entry(&mut t, b"d/.wh.gone", Regular, b"", b"", 0o644, 0);
        entry(&mut t, b"o/.wh..wh..opq", Regular, b"", b"", 0o644, 0);
        entry(&mut t, b"dev/null", Char, b"", b"", 0o666, 0);
        entry(&mut t, b"fifo", Fifo, b"", b"", 0o600, 0);
        entry(&mut t, b"s", Symlink, b"/etc/passwd", b"", 0o777, 0);
        let tar = finish(t);
        let (dir, r) = unpack(&tar);
        let u = r.unwrap();
        assert_eq!(u.size, 5);
        let l = dir.path().join("layer");
        let f = fs::metadata(l.join("d/f")).unwrap();
        assert_eq!((f.mode() & 0o7777, f.uid(), f.gid(), f.nlink()), (0o4755, 1000, 1000, 2));
        assert_eq!(fs::metadata(l.join("d/h")).unwrap().ino(), f.ino());
        let d = fs::metadata(l.join("d")).unwrap();
        assert_eq!((d.mode() & 0o7777, d.mtime()), (0o750, 1_600_000_000));
        let wh = fs::symlink_metadata(l.join("d/gone")).unwrap();
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
        assert_eq!(xattr::get(l.join("o"), "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
        assert!(!l.join("o/.wh..wh..opq").exists());
        let null = fs::metadata(l.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!((null.rdev(), null.mode() & 0o7777), (libc::makedev(1, 3), 0o666));
        assert!(fs::symlink_metadata(l.join("fifo")).unwrap().file_type().is_fifo());
        assert_eq!(fs::read_link(l.join("s")).unwrap(), Path::new("/etc/passwd"));
    }

    #[test]
    fn diff_id_is_checked() {
        let mut t = Vec::new();
        entry(&mut t, b"f", tar::EntryType::Regular, b"", b"x", 0o644, 0);
        let tar = finish(t);
        let dir = tempfile::tempdir().unwrap();
        let wrong = format!("sha256:{}", "0".repeat(64));
        let err = unpack_stream(&tar[..], &dir.path().join("l"), Some(&wrong)).unwrap_err();
        assert!(matches!(err, UnpackError::DiffId { .. }), "{err}");
    }

    #[test]
    fn compression_is_sniffed() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff(b"ustar"), Compression::None);
    }
}
