//! Test support: a real `kelp server` process per test, on its own port and data dir.

// The benches include this module too (`#[path]`), each using a part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod cluster;
pub mod images;

use kube::config::{KubeConfigOptions, Kubeconfig};

pub struct Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub child: Option<Child>,
    extra: Vec<String>,
}

/// Polls `f` every 100 ms until it returns `Some`, panicking with `what` after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A /16 cluster CIDR out of 10.100.0.0-10.199.0.0 for one test's server: none of this process's
/// tests holds it and none of the host's addresses or routes is in it, so parallel tests' pod
/// bridges never overlap. (The network tests take their /24s from 10.200-249.)
pub fn cluster_cidr() -> String {
    static TAKEN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
    let used = host_ipv4_routes_and_addresses();
    let mut taken = TAKEN.lock().unwrap();
    let start = rand::random_range(0..100u32);
    for i in 0..100 {
        let second = 100 + (start + i) % 100;
        if taken.contains(&second) || used.contains(&format!("10.{second}.")) {
            continue;
        }
        taken.push(second);
        return format!("10.{second}.0.0/16");
    }
    panic!("no free /16 in 10.100.0.0-10.199.0.0");
}

/// The host's IPv4 routes (every table) and addresses, as `ip -o` prints them: what a test's
/// subnet must not overlap.
pub fn host_ipv4_routes_and_addresses() -> String {
    let mut used = String::new();
    for args in [&["-4", "-o", "route", "show", "table", "all"][..], &["-4", "-o", "addr"][..]] {
        let out = Command::new("ip").args(args).output().expect("running ip");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        used.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    used
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

pub fn kelp_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kelp")
}

impl Server {
    /// Start a server with extra flags and wait until it is ready.
    pub fn start_with(extra: &[&str]) -> Server {
        let dir = tempfile::Builder::new().prefix("kelp-it-").tempdir().expect("temp dir");
        std::fs::write(dir.path().join("config.yaml"), "").expect("empty config");
        let mut s =
            Server { dir, port: free_port(), child: None, extra: extra.iter().map(|s| s.to_string()).collect() };
        s.spawn();
        s
    }

    pub fn start() -> Server {
        Self::start_with(&[])
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    /// (Re)start the process on the same data dir and port.
    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.kubeconfig());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let child = Command::new(kelp_bin())
            .arg("server")
            .arg("--config")
            .arg(self.dir.path().join("config.yaml"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--bind-address", "127.0.0.1", "--https-listen-port", &self.port.to_string()])
            .arg("--write-kubeconfig")
            .arg(self.kubeconfig())
            .arg("--disable-agent")
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning kelp server");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("kelp server exited with {status}: {}", self.log());
                }
            }
            if self.kubeconfig().exists() && self.readyz() {
                return;
            }
            assert!(Instant::now() < deadline, "kelp server not ready in time: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn readyz(&self) -> bool {
        // Plain TCP probe, then rely on the kubeconfig having been written after bootstrap.
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL the server and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.client_config().await).expect("client")
    }

    /// A client that does not retry 429/503/504 answers, to see them.
    pub async fn client_without_retries(&self) -> kube::Client {
        let mut cfg = self.client_config().await;
        cfg.default_retry = false;
        kube::Client::try_from(cfg).expect("client")
    }

    async fn client_config(&self) -> kube::Config {
        let kc = Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("client config")
    }

    /// Run a given kubectl (e.g. "1.27") against this server.
    pub fn kubectl(&self, version: &str, args: &[&str]) -> Output {
        self.kubectl_with(version, &self.kubeconfig(), args)
    }

    /// Run kubectl with another kubeconfig (another user).
    pub fn kubectl_with(&self, version: &str, kubeconfig: &Path, args: &[&str]) -> Output {
        let bin = kubectl_path(version);
        let cache = self.dir.path().join(format!("kubectl-cache-{version}"));
        Command::new(bin)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .expect("running kubectl")
    }

    /// A kubeconfig for a user with a client certificate from this cluster's CA.
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let pki = kelp::pki::Pki::load_ca(&self.data_dir().join("server/tls")).expect("cluster CA");
        let (cert, key) = pki.issue_client_cert(user, groups, 1).expect("client cert");
        let path = self.dir.path().join(format!("kubeconfig-{user}.yaml"));
        let url = format!("https://127.0.0.1:{}", self.port);
        std::fs::write(&path, pki.kubeconfig_for(&url, &cert, &key)).expect("writing kubeconfig");
        path
    }

    /// A kube-rs client from a kubeconfig file.
    pub async fn client_from(&self, kubeconfig: &Path) -> kube::Client {
        let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("client config");
        kube::Client::try_from(cfg).expect("client")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl(version, args);
        assert!(
            out.status.success(),
            "kubectl {version} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn kubectl_path(version: &str) -> PathBuf {
    let p = Path::new("/usr/lib/google-cloud-sdk/bin").join(format!("kubectl.{version}"));
    assert!(p.exists(), "{} is missing: the test command installs it", p.display());
    p
}

/// A namespace name unique to this test run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A `kelp agent` process (a node) against a `Server`, with its own data dir and unique run dir,
/// cgroup root, bridge and pod log dir so tests run in parallel.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub node: String,
    pub kubeconfig: PathBuf,
    pub child: Option<Child>,
    pub bridge: String,
    pub cgroup_root: String,
    /// Extra flags of every start.
    pub flags: Vec<String>,
}

impl Agent {
    /// Starts an agent named `unique(prefix)`; `images` are copied into its air-gap folder first.
    pub fn start(server: &Server, prefix: &str, images: &[&Path]) -> Agent {
        Agent::start_with(server, prefix, images, &[])
    }

    /// Same, with extra `kelp agent` flags.
    pub fn start_with(server: &Server, prefix: &str, images: &[&Path], flags: &[&str]) -> Agent {
        let mut a = Agent::prepare(server, prefix, flags);
        a.add_images(images);
        a.spawn();
        a
    }

    /// An agent's dirs and names without its process (start it with [`Agent::spawn`]).
    pub fn prepare(server: &Server, prefix: &str, flags: &[&str]) -> Agent {
        let dir = tempfile::Builder::new().prefix("kelp-agent-").tempdir().expect("temp dir");
        let node = unique(prefix);
        let short = &node[node.len() - 8..];
        let a = Agent {
            kubeconfig: server.kubeconfig(),
            bridge: format!("kt{short}"),
            cgroup_root: format!("kelp-test-{short}"),
            node,
            dir,
            child: None,
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        std::fs::create_dir_all(a.data_dir()).expect("data dir");
        a
    }

    /// Copies image tarballs into the agent's air-gap folder (imported when it starts).
    pub fn add_images(&self, images: &[&Path]) {
        let img_dir = self.data_dir().join("agent/images");
        std::fs::create_dir_all(&img_dir).expect("images dir");
        for i in images {
            std::fs::copy(i, img_dir.join(i.file_name().expect("file name"))).expect("copying an image tarball");
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn pod_log_dir(&self) -> PathBuf {
        self.dir.path().join("pod-logs")
    }

    /// (Re)starts the process on the same dirs.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .expect("log file");
        let child = Command::new(kelp_bin())
            .arg("agent")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--node-name")
            .arg(&self.node)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--run-dir")
            .arg(self.run_dir())
            .arg("--cgroup-root")
            .arg(&self.cgroup_root)
            .arg("--bridge-name")
            .arg(&self.bridge)
            .arg("--pod-log-dir")
            .arg(self.pod_log_dir())
            .args(["--node-ip", "127.0.0.1", "--kubelet-port", "0"])
            .args(&self.flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning kelp agent");
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// SIGKILL the agent and reap it (its containers keep running under their shims).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Agent {
    /// What the node left on the host: processes started from its run dir (shims, containers),
    /// cgroups under its cgroup root, mounts under its dirs, its bridge. Empty when clean.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        let run = self.run_dir().display().to_string();
        for pid in self.shim_pids() {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            out.push(format!("process {pid} from {run}: {cmd}"));
        }
        for dir in self.cgroup_dirs() {
            let pods: Vec<String> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.path().display().to_string())
                .collect();
            out.extend(pods.into_iter().map(|p| format!("cgroup {p}")));
        }
        let base = self.dir.path().display().to_string();
        for m in std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines() {
            if let Some(mp) = m.split(' ').nth(4) {
                if mp.starts_with(&base) && !mp.starts_with(&run) {
                    out.push(format!("mount {mp}"));
                }
            }
        }
        out
    }

    fn shim_pids(&self) -> Vec<i32> {
        let run = self.run_dir().display().to_string();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let agent = self.child.as_ref().map(|c| c.id() as i32);
            if String::from_utf8_lossy(&cmd).contains(&run) && pid != std::process::id() as i32 && Some(pid) != agent {
                pids.push(pid);
            }
        }
        pids
    }

    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(&self.cgroup_root))
            .chain(std::iter::once(PathBuf::from("/sys/fs/cgroup").join(&self.cgroup_root)))
            .filter(|p| p.is_dir())
            .collect()
    }

    /// Removes whatever the node left (also after a failed test).
    pub fn cleanup(&mut self) {
        self.kill9();
        for pid in self.shim_pids() {
            kill_pid(pid);
        }
        fn rm_cgroups(dir: &Path) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    rm_cgroups(&e.path());
                }
            }
            for pid in std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines() {
                if let Ok(p) = pid.trim().parse() {
                    kill_pid(p);
                }
            }
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for d in self.cgroup_dirs() {
            rm_cgroups(&d);
        }
        let base = self.dir.path().display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|m| m.split(' ').nth(4).map(str::to_string))
            .filter(|mp| mp.starts_with(&base))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        let _ = Command::new("nft").args(["delete", "table", "ip", &self.bridge]).output();
    }
}

fn kill_pid(pid: i32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The test images (built by `integration/fixtures/build-images.sh` on first use).
pub fn fixtures() -> PathBuf {
    let dir =
        std::env::var_os("KELP_FIXTURES").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/tmp/kelp-fixtures"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/fixtures/build-images.sh");
    let out = Command::new("bash").arg(script).env("KELP_FIXTURES", &dir).output().expect("running build-images.sh");
    assert!(out.status.success(), "build-images.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    dir
}
pub mod fake_kubelet;
