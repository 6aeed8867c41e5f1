//! cgroup helpers of the runtime: which version the host runs, where a container's cgroup files are,
//! OOM kill counters, usage statistics, and removal of leaf and pod cgroups. Creating cgroups and
//! applying limits is libcontainer's (libcgroups) job, inside the shim.

use std::io;
use std::path::{Path, PathBuf};

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The cgroup layout of the host, as libcgroups sees it: a cgroup2 mount at `/sys/fs/cgroup` is
/// unified (v2); a tmpfs there (legacy or hybrid) means the v1 controllers are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Detects the host's cgroup version.
pub fn version() -> io::Result<Version> {
    let path = std::ffi::CString::new(CGROUP_ROOT).expect("no NUL");
    // SAFETY: statfs into a zeroed struct with a valid path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if st.f_type as i64 == CGROUP2_SUPER_MAGIC { Version::V2 } else { Version::V1 })
}

/// Mount points of the v1 hierarchies with their super options (controllers), from mountinfo.
/// Read once per process: the hierarchies are mounted at boot, while mountinfo grows with every
/// pod (namespace files, rootfs overlays), so reading it per lookup made every stats sample, OOM
/// check and cgroup removal cost more the more pods ran.
pub fn v1_hierarchies() -> io::Result<Vec<(PathBuf, Vec<String>)>> {
    static HIERARCHIES: std::sync::OnceLock<Vec<(PathBuf, Vec<String>)>> = std::sync::OnceLock::new();
    if let Some(h) = HIERARCHIES.get() {
        return Ok(h.clone());
    }
    let h = read_v1_hierarchies()?;
    if h.is_empty() {
        return Ok(h);
    }
    Ok(HIERARCHIES.get_or_init(|| h).clone())
}

fn read_v1_hierarchies() -> io::Result<Vec<(PathBuf, Vec<String>)>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let opts: Vec<String> = post.nth(1).unwrap_or("").split(',').map(str::to_string).collect();
        let Some(mount_point) = pre.split(' ').nth(4) else { continue };
        out.push((PathBuf::from(mount_point), opts));
    }
    Ok(out)
}

/// The directory of `cgroup_path` in the hierarchy holding `controller` (v1), or in the unified
/// hierarchy (v2).
pub fn controller_dir(version: Version, controller: &str, cgroup_path: &str) -> io::Result<PathBuf> {
    let rel = cgroup_path.trim_start_matches('/');
    match version {
        Version::V2 => Ok(Path::new(CGROUP_ROOT).join(rel)),
        Version::V1 => {
            let (mount, _) = v1_hierarchies()?
                .into_iter()
                .find(|(_, opts)| opts.iter().any(|o| o == controller))
                .ok_or_else(|| io::Error::other(format!("cgroup v1 controller {controller} is not mounted")))?;
            Ok(mount.join(rel))
        }
    }
}

fn read_key(path: &Path, key: &str) -> io::Result<Option<u64>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    }))
}

fn read_u64(path: &Path) -> io::Result<u64> {
    std::fs::read_to_string(path)?.trim().parse().map_err(io::Error::other)
}

/// How many processes of the cgroup the kernel OOM-killed (`oom_kill` of `memory.events` on v2,
/// of `memory.oom_control` on v1).
pub fn oom_kills(version: Version, cgroup_path: &str) -> io::Result<u64> {
    let dir = controller_dir(version, "memory", cgroup_path)?;
    let file = match version {
        Version::V2 => dir.join("memory.events"),
        Version::V1 => dir.join("memory.oom_control"),
    };
    Ok(read_key(&file, "oom_kill")?.unwrap_or(0))
}

/// CPU time used (ns) and memory working set (usage minus inactive file pages, bytes), like
/// cAdvisor and the kubelet compute them.
pub fn stats(version: Version, cgroup_path: &str) -> io::Result<(u64, u64)> {
    match version {
        Version::V2 => {
            let dir = controller_dir(version, "", cgroup_path)?;
            let cpu = read_key(&dir.join("cpu.stat"), "usage_usec")?.unwrap_or(0) * 1000;
            let usage = read_u64(&dir.join("memory.current"))?;
            let inactive = read_key(&dir.join("memory.stat"), "inactive_file")?.unwrap_or(0);
            Ok((cpu, usage.saturating_sub(inactive)))
        }
        Version::V1 => {
            let cpu = read_u64(&controller_dir(version, "cpuacct", cgroup_path)?.join("cpuacct.usage"))?;
            let mem = controller_dir(version, "memory", cgroup_path)?;
            let usage = read_u64(&mem.join("memory.usage_in_bytes"))?;
            let inactive = read_key(&mem.join("memory.stat"), "total_inactive_file")?.unwrap_or(0);
            Ok((cpu, usage.saturating_sub(inactive)))
        }
    }
}

/// Every directory of `cgroup_path` in the host's hierarchies (existing or not).
pub fn all_dirs(version: Version, cgroup_path: &str) -> io::Result<Vec<PathBuf>> {
    let rel = cgroup_path.trim_start_matches('/');
    Ok(match version {
        Version::V2 => vec![Path::new(CGROUP_ROOT).join(rel)],
        Version::V1 => v1_hierarchies()?.into_iter().map(|(m, _)| m.join(rel)).collect(),
    })
}

/// Removes `cgroup_path` from every hierarchy (it must be empty: no processes, no children).
pub fn remove(version: Version, cgroup_path: &str) -> io::Result<()> {
    for dir in all_dirs(version, cgroup_path)? {
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("removing cgroup {}: {e}", dir.display()))),
        }
    }
    Ok(())
}

/// Ends a stopped container's cgroup: SIGKILLs whatever is still in it and removes its leaf
/// directory from every hierarchy, waiting up to `timeout` for killed processes to leave (rmdir
/// fails with EBUSY until they are reaped). What libcontainer's `Container::delete` does to the
/// cgroup, without building a cgroup manager (a mountinfo read per v1 controller) for it.
pub fn kill_and_remove(version: Version, cgroup_path: &str, timeout: std::time::Duration) -> io::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    // Every hierarchy is tried; the first failure is reported.
    let mut first_err = None;
    for dir in all_dirs(version, cgroup_path)? {
        if let Err(e) = kill_and_rmdir(&dir, deadline) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn kill_and_rmdir(dir: &Path, deadline: std::time::Instant) -> io::Result<()> {
    loop {
        match std::fs::read_to_string(dir.join("cgroup.procs")) {
            Ok(procs) => {
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: kill with a pid read from the cgroup and a constant signal.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io::Error::new(e.kind(), format!("reading {}/cgroup.procs: {e}", dir.display()))),
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("removing cgroup {}: {e}", dir.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_layout_is_detected() {
        let v = version().unwrap();
        if v == Version::V1 {
            let h = v1_hierarchies().unwrap();
            assert!(h.iter().any(|(_, o)| o.iter().any(|o| o == "memory")), "{h:?}");
            assert!(controller_dir(v, "memory", "/x").unwrap().ends_with("x"));
        } else {
            assert_eq!(controller_dir(v, "memory", "/x/y").unwrap(), PathBuf::from("/sys/fs/cgroup/x/y"));
        }
        assert!(controller_dir(Version::V1, "no-such-controller", "/x").is_err() || v == Version::V2);
    }

    /// A process left in a stopped container's cgroup is killed and the cgroup is gone from every
    /// hierarchy; a cgroup that is already gone is no error.
    #[test]
    fn kill_and_remove_kills_leftovers_and_removes_every_hierarchy() {
        let v = version().unwrap();
        let path = format!("/kelp-unit-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let dirs = all_dirs(v, &path).unwrap();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pids = controller_dir(v, "pids", &path).unwrap();
        std::fs::write(pids.join("cgroup.procs"), child.id().to_string()).unwrap();
        // Reaped concurrently, as the shim (a subreaper) reaps what its container leaves.
        let waiter = std::thread::spawn(move || child.wait().unwrap());
        let removed = kill_and_remove(v, &path, std::time::Duration::from_secs(5));
        let status = waiter.join().unwrap();
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
        removed.unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
        kill_and_remove(v, &path, std::time::Duration::from_secs(1)).unwrap();
    }
}
