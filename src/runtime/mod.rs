//! The container runtime: youki's libcontainer driven from one single-threaded shim process per
//! container (`kelp shim`, this binary re-executed from a sealed copy), never from a tokio thread.
//!
//! INTERFACE CONTRACT (used by `agent`): the types and method signatures below are what the agent
//! codes against. Implementations may add fields/methods; changing these needs a note to the lead.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub mod shim;

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container could not be created or started; the message is shown to users
    /// (container status reason `CreateContainerError` / `StartError`).
    #[error("{0}")]
    Start(String),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

/// Where the runtime keeps its state.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Shim and libcontainer state (tmpfs), e.g. `/run/kelp/runtime`.
    pub state_dir: PathBuf,
    /// Container bundles, overlay upper/work dirs, e.g. `<data-dir>/agent/containers`.
    pub data_dir: PathBuf,
    /// Parent cgroup of every pod: `<cgroup_root>/pod<uid>/<container>`.
    pub cgroup_root: String,
}

/// Namespaces a container joins; `None` = the host's (hostNetwork, hostIPC, …).
#[derive(Clone, Debug, Default)]
pub struct Namespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// `Some` = join this pid namespace (shareProcessNamespace); `None` with `host_pid == false`
    /// = a new one for the container.
    pub pid: Option<PathBuf>,
    pub host_pid: bool,
}

/// A mount in the container.
#[derive(Clone, Debug)]
pub struct Mount {
    pub destination: String,
    pub kind: MountKind,
    pub read_only: bool,
}

#[derive(Clone, Debug)]
pub enum MountKind {
    /// A bind mount of a host path (volumes, /etc/hosts, resolv.conf, …).
    Bind { source: PathBuf, propagation: Propagation },
    /// A fresh tmpfs (size in bytes).
    Tmpfs { size: Option<u64> },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    Private,
    HostToContainer,
    Bidirectional,
}

/// cgroup limits of a container.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Seccomp {
    #[default]
    RuntimeDefault,
    Unconfined,
    /// A Localhost profile (an OCI seccomp JSON file).
    Localhost(PathBuf),
}

/// Security settings of a container (Kubernetes securityContext, resolved by the agent).
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub privileged: bool,
    pub add_capabilities: Vec<String>,
    pub drop_capabilities: Vec<String>,
    pub read_only_rootfs: bool,
    /// `Some(true)` when allowPrivilegeEscalation is false; `None` = leave the field out.
    pub no_new_privs: Option<bool>,
    pub seccomp: Seccomp,
    /// Empty = the default masked / read-only /proc paths (privileged clears them).
    pub unmasked: bool,
}

/// Everything needed to create one container.
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    /// Container name in the pod.
    pub name: String,
    /// Restart count: the n-th container of this name in this pod.
    pub attempt: u32,
    /// Image layer directories, bottom first (from `image::Image::layers`).
    pub layers: Vec<PathBuf>,
    pub image_id: String,
    /// argv, resolved by the agent (command/args over ENTRYPOINT/CMD).
    pub args: Vec<String>,
    /// `KEY=VALUE`, in order.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub mounts: Vec<Mount>,
    pub namespaces: Namespaces,
    pub resources: Resources,
    pub security: Security,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    /// CRI-format log file, `<pod-log-dir>/<ns>_<pod>_<uid>/<name>/<attempt>.log`.
    pub log_path: PathBuf,
    /// Free-form labels kept with the container and returned by `list` (the agent's bookkeeping).
    pub labels: BTreeMap<String, String>,
}

/// Why a container exited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    Completed,
    Error,
    OomKilled,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not (yet) running.
    Created,
    Running {
        pid: i32,
        started_at: SystemTime,
    },
    Exited {
        exit_code: i32,
        signal: Option<i32>,
        reason: ExitReason,
        started_at: SystemTime,
        finished_at: SystemTime,
    },
}

/// A container the runtime knows about (running or exited, until removed).
#[derive(Clone, Debug)]
pub struct ContainerStatus {
    /// Runtime container id (unique on the node).
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
    pub image_id: String,
    pub state: ContainerState,
    pub log_path: PathBuf,
    pub labels: BTreeMap<String, String>,
}

/// The runtime: spawns shims, finds them again after an agent restart, stops and removes containers.
pub struct Runtime {
    _cfg: RuntimeConfig,
}

impl Runtime {
    /// Prepares the state dirs and the sealed copy of the binary the shims run from.
    pub fn new(cfg: RuntimeConfig) -> Result<Self, RuntimeError> {
        Ok(Runtime { _cfg: cfg })
    }

    /// Creates and starts a container through a new shim; returns once it runs, or the error
    /// that kept it from running.
    pub async fn start(&self, _cfg: ContainerConfig) -> Result<ContainerStatus, RuntimeError> {
        Err(RuntimeError::Other("not implemented".into()))
    }

    /// Every container known on this node, running or exited (adopted after a restart).
    pub async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        Ok(Vec::new())
    }

    /// One container's status.
    pub async fn status(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        Err(RuntimeError::NotFound(id.to_string()))
    }

    /// Waits until any container exits; returns its id. Level-triggered callers re-list.
    pub async fn next_exit(&self) -> String {
        futures::future::pending().await
    }

    /// Sends `signal` (default SIGTERM) and SIGKILLs every process of the container after `grace`.
    pub async fn stop(&self, id: &str, _grace: Duration, _signal: Option<i32>) -> Result<(), RuntimeError> {
        Err(RuntimeError::NotFound(id.to_string()))
    }

    /// Removes an exited container: state, rootfs, cgroup leaf. Its log file stays.
    pub async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        Err(RuntimeError::NotFound(id.to_string()))
    }

    /// Runs `argv` in a running container; returns the exit code and the combined stdout and
    /// stderr (the runtime branch's signature).
    pub async fn exec_sync(
        &self,
        id: &str,
        _argv: Vec<String>,
        _timeout: Duration,
    ) -> Result<(i32, Vec<u8>), RuntimeError> {
        Err(RuntimeError::NotFound(id.to_string()))
    }

    /// Removes the pod's cgroup parents once all its containers are removed.
    pub async fn remove_pod(&self, _pod_uid: &str) -> Result<(), RuntimeError> {
        Ok(())
    }
}
