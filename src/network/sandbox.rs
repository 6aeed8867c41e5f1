//! Pod namespaces kept alive as bind-mounted files (`<dir>/ns/{net,ipc,uts}`), like `ip netns`.
//!
//! They are made by a short-lived std thread: `unshare` and `sethostname` change only that
//! thread, which bind-mounts `/proc/thread-self/ns/*` and exits, so no tokio thread ever enters a
//! pod namespace and nothing is forked.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

use super::netlink::{io_err, on_own_thread};
use super::NetworkError;

/// The namespace kinds a sandbox may hold, as named under `/proc/<tid>/ns/`.
pub(crate) const NET: &str = "net";
pub(crate) const IPC: &str = "ipc";
pub(crate) const UTS: &str = "uts";

fn nix_err(context: String) -> impl FnOnce(nix::Error) -> NetworkError {
    move |e| NetworkError::Io { context, source: e.into() }
}

/// Whether `path` is a bind-mounted namespace file.
pub(crate) fn is_ns_file(path: &Path) -> bool {
    statfs(path).map(|s| s.filesystem_type() == NSFS_MAGIC).unwrap_or(false)
}

/// Creates new namespaces of `kinds` (any of [`NET`], [`IPC`], [`UTS`]) and bind-mounts them at
/// `ns_dir/<kind>`; sets the UTS namespace's hostname. On failure the files made so far are
/// removed again.
pub(crate) async fn create_namespaces(
    ns_dir: &Path,
    kinds: &[&'static str],
    hostname: Option<&str>,
) -> Result<(), NetworkError> {
    let ns_dir = ns_dir.to_owned();
    let kinds = kinds.to_vec();
    let hostname = hostname.map(str::to_owned);
    let dir = ns_dir.clone();
    let all = kinds.clone();
    let result =
        on_own_thread("kelp-sandbox", move || {
            let mut flags = CloneFlags::empty();
            for kind in &kinds {
                flags |= match *kind {
                    NET => CloneFlags::CLONE_NEWNET,
                    IPC => CloneFlags::CLONE_NEWIPC,
                    UTS => CloneFlags::CLONE_NEWUTS,
                    other => unreachable!("namespace kind {other}"),
                };
            }
            unshare(flags).map_err(nix_err("creating pod namespaces".into()))?;
            if let Some(hostname) = &hostname {
                nix::unistd::sethostname(hostname).map_err(nix_err(format!("setting hostname {hostname:?}")))?;
            }
            for kind in &kinds {
                let target = ns_dir.join(kind);
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&target)
                    .map_err(io_err(format!("creating {}", target.display())))?;
                let source = PathBuf::from(format!("/proc/thread-self/ns/{kind}"));
                mount(Some(&source), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                    .map_err(nix_err(format!("bind-mounting {} at {}", source.display(), target.display())))?;
            }
            Ok(())
        })
        .await;
    if result.is_err() {
        for kind in all {
            let _ = remove_ns_file(&dir.join(kind));
        }
    }
    result
}

/// Unmounts and removes a namespace file; fine if it is not there.
pub(crate) fn remove_ns_file(path: &Path) -> Result<(), NetworkError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(nix_err(format!("unmounting {}", path.display()))(e)),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("removing {}", path.display()))(e)),
    }
}

/// A line of `/proc/self/mountinfo` for `dir`: (root within its filesystem, optional fields).
fn mountinfo_entry(dir: &Path) -> Result<Option<(String, String)>, NetworkError> {
    let info = fs::read_to_string("/proc/self/mountinfo").map_err(io_err("reading /proc/self/mountinfo"))?;
    let wanted = escape_mountinfo(&dir.to_string_lossy());
    // The last matching line is the top mount.
    Ok(info.lines().rev().find_map(|line| {
        let (pre, _) = line.split_once(" - ")?;
        let fields: Vec<&str> = pre.split(' ').collect();
        if fields.len() < 6 || fields[4] != wanted {
            return None;
        }
        Some((fields[3].to_owned(), fields[6..].join(" ")))
    }))
}

fn escape_mountinfo(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' => s.push_str("\\040"),
            '\t' => s.push_str("\\011"),
            '\n' => s.push_str("\\012"),
            '\\' => s.push_str("\\134"),
            c => s.push(c),
        }
    }
    s
}

static MOUNT_LOCK: Mutex<()> = Mutex::new(());

/// Makes `dir` a private mount (bind-mounting it onto itself first if it is not a mount point),
/// like `ip netns` does for `/run/netns`: namespace bind mounts below it then do not propagate
/// into (and get pinned by) other mount namespaces.
pub(crate) fn ensure_private_mount(dir: &Path) -> Result<(), NetworkError> {
    let _guard = MOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = dir.canonicalize().map_err(io_err(format!("resolving {}", dir.display())))?;
    match mountinfo_entry(&dir)? {
        Some((_, optional)) if !optional.split(' ').any(|f| f.starts_with("shared:") || f.starts_with("master:")) => {
            return Ok(());
        }
        Some(_) => {}
        None => {
            mount(Some(&dir), &dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .map_err(nix_err(format!("bind-mounting {} onto itself", dir.display())))?;
        }
    }
    mount(None::<&str>, &dir, None::<&str>, MsFlags::MS_PRIVATE | MsFlags::MS_REC, None::<&str>)
        .map_err(nix_err(format!("making {} a private mount", dir.display())))
}

/// Undoes [`ensure_private_mount`]'s self bind mount (a mount of a sub-directory onto `dir`; a
/// filesystem mounted there by someone else is left alone).
pub(crate) fn remove_private_mount(dir: &Path) -> Result<(), NetworkError> {
    let _guard = MOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(dir) = dir.canonicalize() else { return Ok(()) };
    if let Some((root, _)) = mountinfo_entry(&dir)? {
        if root != "/" {
            umount2(&dir, MntFlags::MNT_DETACH).map_err(nix_err(format!("unmounting {}", dir.display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escaping() {
        assert_eq!(escape_mountinfo("/tmp/a b\\c"), "/tmp/a\\040b\\134c");
    }
}
