//! The container runtime: youki's libcontainer driven from one single-threaded shim process per
//! container (`kelp shim`, this binary re-executed through a read-only mount), never from a tokio thread.
//!
//! INTERFACE CONTRACT (used by `agent`): the types and method signatures below are what the agent
//! codes against. Implementations may add fields/methods; changing these needs a note to the lead.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncReadExt};

pub mod attach;
pub mod cgroups;
pub mod fdpass;
pub mod interactive;
pub mod logs;
pub mod seal;
pub mod seccomp;
pub mod seccomp_bpf;
pub mod shim;
pub mod spec;
pub mod state;

pub use interactive::{AttachEnd, AttachOptions, AttachSession, ExecExit, ExecOptions, ExecProcess, TerminalResizer};
use state::{Meta, ShimStatus, StateDir};

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
    /// A container's log file is rotated when it reached this size (bytes; kubelet's
    /// `containerLogMaxSize`, default [`logs::DEFAULT_MAX_SIZE`]); 0 = never.
    pub container_log_max_size: u64,
    /// Log files kept per container, the current one included (kubelet's `containerLogMaxFiles`,
    /// default [`logs::DEFAULT_MAX_FILES`]; at least 2 for rotation to happen).
    pub container_log_max_files: u32,
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

/// The standard streams of a process exec'd into a container (non-interactive; see
/// [`Runtime::exec_interactive`] for terminals and streams held by the caller).
/// `stdin: None` = `/dev/null`.
#[derive(Debug)]
pub struct ExecIo {
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// How the shims are executed (see `seal`).
enum ShimBinary {
    /// The binary through a detached read-only bind mount (the default).
    ReadOnly(seal::ReadOnlyBinary),
    /// A sealed memfd copy, where mounting is not possible.
    Sealed(seal::SealedBinary),
}

impl ShimBinary {
    fn new(binary: &Path, scratch_dir: &Path) -> Result<Self, RuntimeError> {
        match seal::ReadOnlyBinary::new(binary, scratch_dir) {
            Ok(ro) => Ok(ShimBinary::ReadOnly(ro)),
            Err(e) => {
                tracing::warn!(message = "cannot bind-mount the binary read-only; shims run from a sealed copy in memory", error = %e);
                let sealed = seal::SealedBinary::new(binary)
                    .map_err(io_err(format!("sealing a copy of {}", binary.display())))?;
                Ok(ShimBinary::Sealed(sealed))
            }
        }
    }

    fn path(&self) -> PathBuf {
        match self {
            ShimBinary::ReadOnly(b) => b.exec_path(),
            ShimBinary::Sealed(s) => s.exec_path(),
        }
    }
}

/// inotify on `exits/`, plus the ids already reported for shims that died without an exit.
struct ExitWatcher {
    inotify: Option<OwnedFd>,
    fd: Option<tokio::io::unix::AsyncFd<OwnedFd>>,
    pending: VecDeque<String>,
    reported_dead: HashSet<String>,
}

/// The runtime: spawns shims, finds them again after an agent restart, stops and removes containers.
pub struct Runtime {
    cfg: RuntimeConfig,
    state: StateDir,
    shim: ShimBinary,
    cgroups: cgroups::Version,
    exits: tokio::sync::Mutex<ExitWatcher>,
    /// The container ids of each pod (pod uid → ids), read from the state dir at start and kept
    /// by `start` and `remove`: a pod's worker looks at its own containers many times per sync,
    /// and listing every container of the node for that made a node's work grow with the square
    /// of its pods.
    by_pod: std::sync::Mutex<HashMap<String, BTreeSet<String>>>,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

/// How long a shim may take to create and start a container.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Runtime {
    /// Prepares the state dirs and the sealed copy of the binary the shims run from.
    pub fn new(cfg: RuntimeConfig) -> Result<Self, RuntimeError> {
        Self::with_shim_binary(cfg, Path::new("/proc/self/exe"))
    }

    /// Like [`Runtime::new`], re-executing `binary` (a `kelp` executable) as the shim instead of
    /// this process's own binary (tests drive the runtime from a test binary).
    pub fn with_shim_binary(cfg: RuntimeConfig, binary: &Path) -> Result<Self, RuntimeError> {
        let st = StateDir { root: cfg.state_dir.clone() };
        for dir in [st.containers(), st.exits(), st.libcontainer(), cfg.data_dir.clone()] {
            std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        }
        let shim = ShimBinary::new(binary, &st.root)?;
        let cgroups = cgroups::version().map_err(io_err("detecting the cgroup version"))?;
        // SAFETY: inotify_init1 returns a fresh descriptor or -1.
        let ino = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if ino < 0 {
            return Err(io_err("inotify_init1")(std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor we own.
        let inotify = unsafe { OwnedFd::from_raw_fd(ino) };
        let exits = std::ffi::CString::new(st.exits().as_os_str().as_encoded_bytes()).expect("no NUL in path");
        // SAFETY: valid fd and NUL-terminated path.
        if unsafe { libc::inotify_add_watch(ino, exits.as_ptr(), libc::IN_CREATE | libc::IN_MOVED_TO) } < 0 {
            return Err(io_err("watching the exits dir")(std::io::Error::last_os_error()));
        }
        let mut by_pod: HashMap<String, BTreeSet<String>> = HashMap::new();
        for entry in std::fs::read_dir(st.containers()).map_err(io_err("reading the containers' state"))?.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Ok(Some(meta)) = state::read_json::<Meta>(&st.meta(&id)) {
                by_pod.entry(meta.pod_uid).or_default().insert(id);
            }
        }
        Ok(Runtime {
            by_pod: std::sync::Mutex::new(by_pod),
            state: st,
            shim,
            cgroups,
            exits: tokio::sync::Mutex::new(ExitWatcher {
                inotify: Some(inotify),
                fd: None,
                pending: VecDeque::new(),
                reported_dead: HashSet::new(),
            }),
            cfg,
        })
    }

    /// The cgroup version the runtime drives.
    pub fn cgroup_version(&self) -> cgroups::Version {
        self.cgroups
    }

    /// The cgroup of a pod: `/<cgroup_root>/pod<uid>`.
    pub fn pod_cgroup(&self, pod_uid: &str) -> String {
        format!("/{}/pod{}", self.cfg.cgroup_root.trim_matches('/'), pod_uid)
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.cfg.data_dir.join(id)
    }

    /// Creates and starts a container through a new shim; returns once it runs, or the error
    /// that kept it from running.
    pub async fn start(&self, cfg: ContainerConfig) -> Result<ContainerStatus, RuntimeError> {
        if cfg.layers.is_empty() {
            return Err(RuntimeError::Start("the image has no layers".into()));
        }
        if cfg.name.is_empty() || !cfg.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(RuntimeError::Start(format!("invalid container name {:?}", cfg.name)));
        }
        if cfg.pod_uid.is_empty() || !cfg.pod_uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(RuntimeError::Start(format!("invalid pod uid {:?}", cfg.pod_uid)));
        }
        let id = format!("{}-{}-{}", cfg.name, cfg.attempt, &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let cgroup_path = format!("{}/{}", self.pod_cgroup(&cfg.pod_uid), cfg.name);
        let bundle = self.bundle(&id);
        let rootfs = bundle.join("rootfs");
        let result = self.start_inner(&id, &cfg, &bundle, &rootfs, &cgroup_path).await;
        if result.is_err() {
            let _ = self.remove_files(&id).await;
        }
        result
    }

    async fn start_inner(
        &self,
        id: &str,
        cfg: &ContainerConfig,
        bundle: &Path,
        rootfs: &Path,
        cgroup_path: &str,
    ) -> Result<ContainerStatus, RuntimeError> {
        let spec = spec::build(cfg, rootfs, cgroup_path, self.cgroups)?;
        std::fs::create_dir_all(bundle).map_err(io_err(format!("creating {}", bundle.display())))?;
        spec.save(bundle.join("config.json")).map_err(|e| RuntimeError::Other(format!("writing the spec: {e}")))?;
        // Compiling a new profile takes milliseconds of CPU: off the async threads.
        let (cache, spec_bundle) = (self.state.seccomp_cache(), bundle.to_path_buf());
        let seccomp = tokio::task::spawn_blocking(move || seccomp_bpf::prepare(&cache, &spec, &spec_bundle))
            .await
            .map_err(|e| RuntimeError::Other(format!("preparing the seccomp filter: {e}")))?
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        let meta = Meta {
            id: id.to_string(),
            pod_uid: cfg.pod_uid.clone(),
            name: cfg.name.clone(),
            attempt: cfg.attempt,
            image_id: cfg.image_id.clone(),
            log_path: cfg.log_path.clone(),
            labels: cfg.labels.clone(),
            cgroup_path: cgroup_path.to_string(),
            layers: cfg.layers.clone(),
            created_at_ns: state::now_ns(),
            tty: cfg.tty,
            stdin: cfg.stdin,
            stdin_once: cfg.stdin_once,
            log_max_size: self.cfg.container_log_max_size,
            log_max_files: self.cfg.container_log_max_files,
            seccomp,
        };
        let dir = self.state.container(id);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        state::write_json(&self.state.meta(id), &meta).map_err(io_err("writing container metadata"))?;
        self.index().entry(meta.pod_uid.clone()).or_default().insert(id.to_string());
        let shim_log = std::fs::File::create(self.state.shim_log(id)).map_err(io_err("creating the shim log"))?;
        let mut child = tokio::process::Command::new(self.shim.path())
            .arg("shim")
            .arg("run")
            .arg(&self.state.root)
            .arg(&self.cfg.data_dir)
            .arg(id)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            .spawn()
            .map_err(io_err("starting the shim"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, tokio::io::BufReader::new(stdout).read_line(&mut line)).await;
        let _ = child.wait().await;
        match read {
            Err(_) => return Err(RuntimeError::Start("timed out waiting for the container to start".into())),
            Ok(Err(e)) => return Err(io_err("reading from the shim")(e)),
            Ok(Ok(_)) => {}
        }
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("ok ") {
            let mut it = rest.split(' ');
            let pid = it.next().and_then(|p| p.parse().ok());
            let started = it.next().and_then(|p| p.parse().ok());
            if let (Some(pid), Some(started)) = (pid, started) {
                return Ok(ContainerStatus {
                    id: id.to_string(),
                    pod_uid: meta.pod_uid,
                    name: meta.name,
                    attempt: meta.attempt,
                    image_id: meta.image_id,
                    state: ContainerState::Running { pid, started_at: state::from_ns(started) },
                    log_path: meta.log_path,
                    labels: meta.labels,
                });
            }
        }
        if let Some(msg) = line.strip_prefix("err ") {
            // libcontainer logs the failing step (e.g. which mount or device) before it returns a
            // generic error: add those lines.
            let log = std::fs::read_to_string(self.state.shim_log(id)).unwrap_or_default();
            let details: Vec<&str> = log
                .lines()
                .filter_map(|l| l.trim().strip_prefix("ERROR "))
                .map(str::trim)
                .filter(|l| !msg.contains(l))
                .collect();
            let details = &details[details.len().saturating_sub(3)..];
            if details.is_empty() {
                return Err(RuntimeError::Start(msg.to_string()));
            }
            return Err(RuntimeError::Start(format!("{msg} ({})", details.join("; "))));
        }
        let log = std::fs::read_to_string(self.state.shim_log(id)).unwrap_or_default();
        Err(RuntimeError::Start(format!("the shim failed: {}", if log.is_empty() { line } else { log.trim() })))
    }

    fn load(&self, id: &str) -> Result<(Meta, Option<ShimStatus>), RuntimeError> {
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        let meta: Meta = state::read_json(&self.state.meta(id))
            .map_err(io_err(format!("reading the metadata of {id}")))?
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        let status = state::read_json(&self.state.status(id)).map_err(io_err(format!("reading the status of {id}")))?;
        Ok((meta, status))
    }

    fn to_status(&self, meta: Meta, status: Option<ShimStatus>) -> ContainerStatus {
        let state = match status {
            None => ContainerState::Created,
            Some(ShimStatus { exit: Some(e), started_at_ns, .. }) => ContainerState::Exited {
                exit_code: e.exit_code,
                signal: e.signal,
                reason: if e.oom_killed {
                    ExitReason::OomKilled
                } else if e.exit_code == 0 {
                    ExitReason::Completed
                } else {
                    ExitReason::Error
                },
                started_at: state::from_ns(started_at_ns),
                finished_at: state::from_ns(e.finished_at_ns),
            },
            Some(s) if state::shim_alive(&s) => {
                ContainerState::Running { pid: s.pid, started_at: state::from_ns(s.started_at_ns) }
            }
            Some(s) if state::init_alive(&s) => {
                // The shim was killed but the container runs on, unsupervised (no logs copied):
                // still running, so it can be stopped and removed.
                ContainerState::Running { pid: s.pid, started_at: state::from_ns(s.started_at_ns) }
            }
            Some(s) => {
                // The shim died without recording an exit (killed), and the container is gone:
                // report it as failed.
                let finished = std::fs::metadata(self.state.status(&meta.id))
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now());
                ContainerState::Exited {
                    exit_code: 255,
                    signal: None,
                    reason: ExitReason::Error,
                    started_at: state::from_ns(s.started_at_ns),
                    finished_at: finished,
                }
            }
        };
        ContainerStatus {
            id: meta.id,
            pod_uid: meta.pod_uid,
            name: meta.name,
            attempt: meta.attempt,
            image_id: meta.image_id,
            state,
            log_path: meta.log_path,
            labels: meta.labels,
        }
    }

    /// Every container known on this node, running or exited (adopted after a restart).
    pub async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let dir = self.state.containers();
        let entries = std::fs::read_dir(&dir).map_err(io_err(format!("reading {}", dir.display())))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            match self.load(&id) {
                Ok((meta, status)) => out.push(self.to_status(meta, status)),
                Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The containers of one pod, sorted by id.
    pub async fn list_pod(&self, pod_uid: &str) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let ids: Vec<String> = self.index().get(pod_uid).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.load(&id) {
                Ok((meta, status)) => out.push(self.to_status(meta, status)),
                Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.by_pod.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One container's status.
    pub async fn status(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        let (meta, status) = self.load(id)?;
        Ok(self.to_status(meta, status))
    }

    /// The pid of the shim owning a container, while it runs.
    pub async fn shim_pid(&self, id: &str) -> Result<Option<i32>, RuntimeError> {
        let (_, status) = self.load(id)?;
        Ok(status.filter(state::shim_alive).map(|s| s.shim_pid))
    }

    /// The container's cgroup path (relative to each hierarchy's mount point).
    pub async fn cgroup_path(&self, id: &str) -> Result<String, RuntimeError> {
        Ok(self.load(id)?.0.cgroup_path)
    }

    /// Waits until any container exits; returns its id. Level-triggered callers re-list.
    pub async fn next_exit(&self) -> String {
        let mut w = self.exits.lock().await;
        loop {
            if let Some(id) = w.pending.pop_front() {
                return id;
            }
            if w.fd.is_none() {
                let fd = w.inotify.take().expect("inotify fd");
                // SAFETY: the OwnedFd stays open and unchanged while the AsyncFd owns it.
                match unsafe { tokio::io::unix::AsyncFd::register(fd) } {
                    Ok(a) => w.fd = Some(a),
                    Err(e) => {
                        tracing::warn!("inotify not usable in this runtime ({e}); polling for exits");
                    }
                }
            }
            let readable = match &w.fd {
                Some(fd) => tokio::time::timeout(Duration::from_secs(1), fd.readable()).await.ok().and_then(Result::ok),
                None => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    None
                }
            };
            match readable {
                Some(mut guard) => {
                    let mut buf = [0u8; 4096];
                    let raw = guard.get_inner().as_raw_fd();
                    // SAFETY: read into a stack buffer from a descriptor we own.
                    let n = unsafe { libc::read(raw, buf.as_mut_ptr().cast(), buf.len()) };
                    if n <= 0 {
                        guard.clear_ready();
                        continue;
                    }
                    let mut off = 0usize;
                    let n = n as usize;
                    let header = std::mem::size_of::<libc::inotify_event>();
                    let mut ids = Vec::new();
                    while off + header <= n {
                        // SAFETY: the kernel wrote whole events; read_unaligned copes with alignment.
                        let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
                        let name = &buf[off + header..(off + header + ev.len as usize).min(n)];
                        let name = name.split(|&b| b == 0).next().unwrap_or_default();
                        if !name.is_empty() {
                            ids.push(String::from_utf8_lossy(name).into_owned());
                        }
                        off += header + ev.len as usize;
                    }
                    drop(guard);
                    w.pending.extend(ids);
                }
                None => {
                    // Fallback: shims that died without writing their exit.
                    let Ok(list) = self.list().await else { continue };
                    for c in list {
                        if let ContainerState::Exited { exit_code: 255, .. } = c.state {
                            let marker = self.state.exit_marker(&c.id);
                            if !marker.exists() && w.reported_dead.insert(c.id.clone()) {
                                w.pending.push_back(c.id);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sends `signal` (default SIGTERM) and SIGKILLs every process of the container after `grace`.
    pub async fn stop(&self, id: &str, grace: Duration, signal: Option<i32>) -> Result<(), RuntimeError> {
        let ContainerState::Running { pid, .. } = self.status(id).await?.state else {
            return Ok(());
        };
        let sig = signal.unwrap_or(libc::SIGTERM);
        // SAFETY: kill(2); the init is the shim's unreaped child while the status says running.
        if unsafe { libc::kill(pid, sig) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(io_err(format!("signalling container {id}"))(e));
            }
        }
        if self.wait_exited(id, grace).await? {
            return Ok(());
        }
        let root = self.state.libcontainer().join(id);
        let killed = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let mut c = libcontainer::container::Container::load(root).map_err(|e| e.to_string())?;
            c.kill(nix::sys::signal::Signal::SIGKILL, true).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| RuntimeError::Other(e.to_string()))?;
        if let Err(e) = killed {
            tracing::debug!(id, "kill all: {e}");
            // SAFETY: kill(2) as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if self.wait_exited(id, Duration::from_secs(30)).await? {
            Ok(())
        } else {
            Err(RuntimeError::Other(format!("container {id} did not exit after SIGKILL")))
        }
    }

    async fn wait_exited(&self, id: &str, within: Duration) -> Result<bool, RuntimeError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if !matches!(self.status(id).await?.state, ContainerState::Running { .. }) {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Removes an exited container: state, rootfs, cgroup leaf. Its log file stays.
    pub async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let st = self.status(id).await?;
        if matches!(st.state, ContainerState::Running { .. }) {
            return Err(RuntimeError::Other(format!("container {id} is running; stop it first")));
        }
        self.remove_files(id).await
    }

    async fn remove_files(&self, id: &str) -> Result<(), RuntimeError> {
        let meta = self.load(id).ok().map(|(m, _)| m);
        let lc = self.state.libcontainer().join(id);
        if lc.exists() {
            let lc2 = lc.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Ok(mut c) = libcontainer::container::Container::load(lc2) {
                    let _ = c.delete(true);
                }
            })
            .await;
            let _ = std::fs::remove_dir_all(&lc);
        }
        let bundle = self.bundle(id);
        let _ = nix::mount::umount2(&bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        if let Some(meta) = meta {
            cgroups::remove(self.cgroups, &meta.cgroup_path).map_err(io_err(format!("removing the cgroup of {id}")))?;
        }
        for (path, dir) in [(bundle, true), (self.state.container(id), true), (self.state.exit_marker(id), false)] {
            let r = if dir { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("removing {}", path.display()))(e)),
            }
        }
        let mut index = self.index();
        index.retain(|_, ids| {
            ids.remove(id);
            !ids.is_empty()
        });
        Ok(())
    }

    /// Removes the pod's cgroup parents once all its containers are removed.
    pub async fn remove_pod(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        self.stop_pid_namespace(pod_uid);
        cgroups::remove(self.cgroups, &self.pod_cgroup(pod_uid))
            .map_err(io_err(format!("removing the cgroup of pod {pod_uid}")))
    }

    fn pid_namespace_file(&self, pod_uid: &str) -> PathBuf {
        self.state.root.join("pidns").join(format!("{pod_uid}.pid"))
    }

    /// The init of the pod's shared PID namespace, if it runs (checked by its command line, so a
    /// reused pid is never taken for it).
    fn pid_namespace_holder(&self, pod_uid: &str) -> Option<i32> {
        let file = self.pid_namespace_file(pod_uid);
        let pid: i32 = std::fs::read_to_string(&file).ok()?.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let want = format!("shim\0pidns\0{}\0", file.display());
        cmdline.windows(want.len()).any(|w| w == want.as_bytes()).then_some(pid)
    }

    /// The pod's shared PID namespace (`shareProcessNamespace`) as a path its containers join,
    /// started on first use by `kelp shim pidns` (a process outliving the agent, like the shims).
    pub async fn ensure_pid_namespace(&self, pod_uid: &str) -> Result<PathBuf, RuntimeError> {
        if let Some(pid) = self.pid_namespace_holder(pod_uid) {
            return Ok(PathBuf::from(format!("/proc/{pid}/ns/pid")));
        }
        let file = self.pid_namespace_file(pod_uid);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        }
        let out = tokio::process::Command::new(self.shim.path())
            .arg("shim")
            .arg("pidns")
            .arg(&file)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .await
            .map_err(io_err("starting the pod's PID namespace"))?;
        if !out.status.success() {
            return Err(RuntimeError::Other(format!(
                "starting the PID namespace of pod {pod_uid}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let pid = self
            .pid_namespace_holder(pod_uid)
            .ok_or_else(|| RuntimeError::Other(format!("the PID namespace of pod {pod_uid} did not start")))?;
        Ok(PathBuf::from(format!("/proc/{pid}/ns/pid")))
    }

    /// Ends the pod's shared PID namespace (and whatever still runs in it).
    pub fn stop_pid_namespace(&self, pod_uid: &str) {
        if let Some(pid) = self.pid_namespace_holder(pod_uid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(self.pid_namespace_file(pod_uid));
    }

    /// CPU time used (ns) and memory working set (bytes) of a running container, from its cgroup.
    pub fn stats(&self, id: &str) -> Result<(u64, u64), RuntimeError> {
        let (meta, _) = self.load(id)?;
        cgroups::stats(self.cgroups, &meta.cgroup_path).map_err(io_err(format!("reading the cgroup of {id}")))
    }

    /// Runs `argv` in a running container on the given streams (non-interactive `kubectl exec`):
    /// the container's user, working dir, environment plus `env` (`KEY=VALUE`), capabilities and
    /// seccomp filter. Returns the exit code (`128 + signal` when killed). With `timeout`, the
    /// process is killed when it expires and an error returned.
    pub async fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
        env: Vec<String>,
        io: ExecIo,
        timeout: Option<Duration>,
    ) -> Result<i32, RuntimeError> {
        if argv.is_empty() {
            return Err(RuntimeError::Other("exec: no command given".into()));
        }
        if let Some(bad) = env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
            return Err(RuntimeError::Other(format!("exec: invalid environment variable {bad:?}")));
        }
        if !matches!(self.status(id).await?.state, ContainerState::Running { .. }) {
            return Err(RuntimeError::Other(format!("container {id} is not running")));
        }
        let (status_r, status_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io_err("pipe")(e.into()))?;
        let mut cmd = tokio::process::Command::new(self.shim.path());
        cmd.arg("shim")
            .arg("exec")
            .arg(&self.state.root)
            .arg(&self.cfg.data_dir)
            .arg(id)
            .arg(timeout.map_or(0, |t| t.as_millis().max(1)).to_string());
        for e in &env {
            cmd.arg("--env").arg(e);
        }
        cmd.arg("--")
            .args(&argv)
            .env_clear()
            .stdin(io.stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(Stdio::from(io.stdout))
            .stderr(Stdio::from(io.stderr))
            .kill_on_drop(true);
        let raw = status_w.as_raw_fd();
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if raw == 3 {
                    if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(io_err("starting the exec shim"))?;
        // Our copies of the streams and of the status pipe's write end must close now, so readers
        // see EOF when the process and the shim are done.
        drop(cmd);
        drop(status_w);
        let overall = timeout.map_or(Duration::MAX, |t| t + Duration::from_secs(30));
        let mut status_rx = tokio::net::unix::pipe::Receiver::from_owned_fd(status_r).map_err(io_err("status pipe"))?;
        let mut status = String::new();
        let done = tokio::time::timeout(overall, async {
            let _ = status_rx.read_to_string(&mut status).await;
            child.wait().await
        })
        .await;
        if done.is_err() {
            let _ = child.kill().await;
            return Err(RuntimeError::Other(format!("exec in {id}: the exec shim did not finish")));
        }
        let line = status.lines().rev().find_map(|l| l.strip_prefix(shim::EXEC_STATUS)).unwrap_or("");
        if let Some(code) = line.strip_prefix("exit ") {
            code.trim().parse().map_err(|_| RuntimeError::Other(format!("exec: bad status {line:?}")))
        } else if line == "timeout" {
            Err(RuntimeError::Other(format!("command {argv:?} timed out after {:?}", timeout.unwrap_or_default())))
        } else if let Some(msg) = line.strip_prefix("error ") {
            Err(RuntimeError::Other(format!("exec in {id}: {msg}")))
        } else {
            Err(RuntimeError::Other(format!("exec in {id}: the exec shim failed without a status")))
        }
    }

    /// Runs `argv` in a running container (like `crictl exec --sync`, for exec probes): returns
    /// the exit code and the combined stdout and stderr (at most 16 MiB). After `timeout` the
    /// process is killed and an error returned.
    pub async fn exec_sync(
        &self,
        id: &str,
        argv: Vec<String>,
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>), RuntimeError> {
        /// Output kept at most (the rest is dropped).
        const MAX_OUTPUT: usize = 16 << 20;
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io_err("pipe")(e.into()))?;
        let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(out_r).map_err(io_err("output pipe"))?;
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = output.clone();
        let mut reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match rx.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut out = sink.lock().expect("output lock");
                        let room = MAX_OUTPUT.saturating_sub(out.len());
                        out.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
        });
        let stderr = out_w.try_clone().map_err(io_err("dup"))?;
        let io = ExecIo { stdin: None, stdout: out_w, stderr };
        let code = self.exec(id, argv, Vec::new(), io, Some(timeout)).await;
        // Processes the command left running may hold the pipe open: wait briefly for EOF.
        if tokio::time::timeout(Duration::from_millis(500), &mut reader).await.is_err() {
            reader.abort();
        }
        let out = std::mem::take(&mut *output.lock().expect("output lock"));
        Ok((code?, out))
    }
}
