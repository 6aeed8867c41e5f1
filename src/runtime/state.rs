//! The on-disk state shared by the agent and the shims, so an agent restart finds every container
//! again. Layout under the runtime's state dir (tmpfs):
//!
//! * `containers/<id>/meta.json` — written by the agent before the shim starts ([`Meta`]);
//! * `containers/<id>/status.json` — written by the shim: running, then exited ([`ShimStatus`]);
//! * `containers/<id>/shim.log` — the shim's own diagnostics;
//! * `containers/<id>/attach.sock` — the run shim's socket for attach clients (`console.sock`:
//!   where libcontainer hands over a terminal container's pty master);
//! * `exits/<id>` — created by the shim when its container exited (watched with inotify);
//! * `libcontainer/<id>/` — libcontainer's state.
//!
//! Files are replaced atomically (write to a temporary name, then rename).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What the agent knows about a container before its shim starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
    pub image_id: String,
    pub log_path: PathBuf,
    pub labels: BTreeMap<String, String>,
    /// The container's cgroup, relative to every hierarchy's mount point (`/<root>/pod<uid>/<id>`).
    pub cgroup_path: String,
    /// Image layers, bottom first (mounted as overlay lowerdirs by the shim).
    pub layers: Vec<PathBuf>,
    pub created_at_ns: u64,
    /// The container runs on a terminal (pod spec `tty`).
    #[serde(default)]
    pub tty: bool,
    /// The container's stdin is kept open for attach clients (pod spec `stdin`).
    #[serde(default)]
    pub stdin: bool,
    /// The container's stdin is closed after the first attach client closed it (`stdinOnce`).
    #[serde(default)]
    pub stdin_once: bool,
    /// Log rotation: size at which `log_path` is rotated (0 = never) and files kept.
    #[serde(default)]
    pub log_max_size: u64,
    #[serde(default)]
    pub log_max_files: u32,
    /// The seccomp filter the shim installs itself (libcontainer gets `<bundle>/init`); none when
    /// libcontainer builds the filter from `<bundle>/config.json` or there is none.
    #[serde(default)]
    pub seccomp: Option<super::seccomp_bpf::InitFilter>,
}

/// The exit of a container, as the shim saw it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitRecord {
    /// Exit code; `128 + signal` when killed by a signal.
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub finished_at_ns: u64,
}

/// What the shim writes: its own identity, the container's init pid, and the exit once known.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShimStatus {
    pub shim_pid: i32,
    /// `starttime` of the shim process (field 22 of `/proc/<pid>/stat`): guards against pid reuse.
    pub shim_start_ticks: u64,
    pub pid: i32,
    /// `starttime` of the container's init: finds it again if the shim was killed.
    #[serde(default)]
    pub pid_start_ticks: u64,
    pub started_at_ns: u64,
    pub exit: Option<ExitRecord>,
}

/// Paths of the runtime's state dir.
#[derive(Clone, Debug)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn container(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }
    pub fn meta(&self, id: &str) -> PathBuf {
        self.container(id).join("meta.json")
    }
    pub fn status(&self, id: &str) -> PathBuf {
        self.container(id).join("status.json")
    }
    pub fn shim_log(&self, id: &str) -> PathBuf {
        self.container(id).join("shim.log")
    }
    /// The run shim's unix socket for attach clients.
    pub fn attach_socket(&self, id: &str) -> PathBuf {
        self.container(id).join("attach.sock")
    }
    /// Where libcontainer sends the pty master of a container with a terminal.
    pub fn console_socket(&self, id: &str) -> PathBuf {
        self.container(id).join("console.sock")
    }
    pub fn exits(&self) -> PathBuf {
        self.root.join("exits")
    }
    pub fn exit_marker(&self, id: &str) -> PathBuf {
        self.exits().join(id)
    }
    pub fn libcontainer(&self) -> PathBuf {
        self.root.join("libcontainer")
    }
    /// Compiled seccomp filters by profile (see [`super::seccomp_bpf`]).
    pub fn seccomp_cache(&self) -> PathBuf {
        self.root.join("seccomp")
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    to_ns(SystemTime::now())
}

/// `t` as nanoseconds since the epoch.
pub fn to_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Nanoseconds since the epoch as a `SystemTime`.
pub fn from_ns(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// Writes `value` as JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let data = serde_json::to_vec(value).map_err(io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// Reads JSON from `path`; `Ok(None)` when the file does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).map(Some).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `starttime` (clock ticks after boot) of a process, `None` if it does not exist.
pub fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // rest starts at field 3 (state); starttime is field 22.
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether the container's init recorded in `status` still runs (also without its shim).
pub fn init_alive(status: &ShimStatus) -> bool {
    status.pid_start_ticks != 0 && process_start_ticks(status.pid) == Some(status.pid_start_ticks)
}

/// Whether the shim recorded in `status` still runs (same pid and start time; not a zombie).
pub fn shim_alive(status: &ShimStatus) -> bool {
    if process_start_ticks(status.shim_pid) != Some(status.shim_start_ticks) {
        return false;
    }
    let state = std::fs::read_to_string(format!("/proc/{}/stat", status.shim_pid)).unwrap_or_default();
    let state = state.rfind(')').and_then(|i| state.get(i + 2..i + 3)).unwrap_or("X");
    state != "Z" && state != "X"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_ticks_are_stable() {
        let me = std::process::id() as i32;
        let a = process_start_ticks(me).unwrap();
        assert_eq!(process_start_ticks(me), Some(a));
        let st =
            ShimStatus { shim_pid: me, shim_start_ticks: a, pid: me, pid_start_ticks: a, started_at_ns: 0, exit: None };
        assert!(shim_alive(&st));
        let other = ShimStatus { shim_start_ticks: a + 1, ..st };
        assert!(!shim_alive(&other));
    }

    #[test]
    fn json_roundtrip_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("status.json");
        assert!(read_json::<ExitRecord>(&p).unwrap().is_none());
        let r = ExitRecord { exit_code: 137, signal: Some(9), oom_killed: true, finished_at_ns: 5 };
        write_json(&p, &r).unwrap();
        assert_eq!(read_json::<ExitRecord>(&p).unwrap(), Some(r));
        assert!(!p.with_extension("tmp").exists());
    }
}
