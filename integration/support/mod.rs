//! Test support: a real `kelp server` process per test, on its own port and data dir.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};

pub struct Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub child: Option<Child>,
    extra: Vec<String>,
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

pub mod fake_kubelet;
