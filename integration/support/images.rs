//! Test images and local registries: `fixtures()` builds (once, idempotent) and returns the fixture
//! dir of `integration/fixtures/build-images.sh`; `Registry::start(kind)` serves its registry
//! storage read-only with Debian's docker-registry on a free port (plain HTTP, TLS with the
//! fixture CA, htpasswd basic auth, or token auth with a python token server), killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::free_port;

fn build(arg: Option<&str>) -> PathBuf {
    let dir = PathBuf::from(std::env::var("KELP_FIXTURES").unwrap_or_else(|_| "/var/tmp/kelp-fixtures".into()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/fixtures/build-images.sh");
    let mut cmd = Command::new(&script);
    cmd.args(arg).env("KELP_FIXTURES", &dir);
    let out = cmd.output().expect("running build-images.sh");
    assert!(
        out.status.success(),
        "build-images.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// The fixture dir with the busybox images, tarballs and registry storage.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build(None))
}

/// The fixture dir with the Debian image too (slow the first time: debootstrap).
pub fn fixtures_with_debian() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build(Some("debian")))
}

/// The name the busybox tarballs carry.
pub const BUSYBOX: &str = "docker.io/kelp-test/busybox:latest";
/// Credentials of the basic and token registries.
pub const USER: &str = "testuser";
pub const PASSWORD: &str = "testpass";

/// How a test registry authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryKind {
    Plain,
    Tls,
    Basic,
    /// Bearer tokens from a token server: anonymous pulls of `public/*`, anything with USER/PASSWORD.
    Token,
}

/// A running docker-registry.
pub struct Registry {
    pub kind: RegistryKind,
    pub port: u16,
    pub dir: tempfile::TempDir,
    storage: PathBuf,
    children: Vec<Child>,
}

impl Registry {
    /// Serves the fixture storage read-only.
    pub fn start(kind: RegistryKind) -> Registry {
        Self::start_on(kind, &fixtures().join("registry/storage"), true)
    }

    /// Serves a private writable copy of the fixture storage (to tamper with: see `storage()`).
    pub fn start_copy(kind: RegistryKind) -> Registry {
        let dir = tempfile::Builder::new().prefix("kelp-registry-").tempdir().expect("temp dir");
        let copy = dir.path().join("storage");
        let st = Command::new("cp").arg("-a").arg(fixtures().join("registry/storage")).arg(&copy).status().unwrap();
        assert!(st.success());
        let mut r = Self::start_on(kind, &copy, false);
        r.dir = dir;
        r
    }

    /// Serves `storage`.
    pub fn start_on(kind: RegistryKind, storage: &Path, readonly: bool) -> Registry {
        let fx = fixtures();
        let dir = tempfile::Builder::new().prefix("kelp-registry-").tempdir().expect("temp dir");
        let port = free_port();
        let mut children = Vec::new();
        let mut http = format!("http: {{addr: 127.0.0.1:{port}}}\n");
        let mut auth = String::new();
        match kind {
            RegistryKind::Plain => {}
            RegistryKind::Tls => {
                http = format!(
                    "http:\n  addr: 127.0.0.1:{port}\n  tls: {{certificate: {}, key: {}}}\n",
                    fx.join("certs/server.crt").display(),
                    fx.join("certs/server.key").display()
                )
            }
            RegistryKind::Basic => {
                auth = format!("auth: {{htpasswd: {{realm: kelp-test, path: {}}}}}\n", fx.join("htpasswd").display())
            }
            RegistryKind::Token => {
                let tport = free_port();
                let child = Command::new("python3")
                    .arg(fx.join("token/token_server.py"))
                    .arg(tport.to_string())
                    .arg(fx.join("token/signing.key"))
                    .arg(fx.join("token/signing.crt"))
                    .args(["kelp-test-issuer", "kelp-test-registry", &format!("{USER}:{PASSWORD}")])
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(dir.path().join("token.log")).unwrap())
                    .spawn()
                    .expect("python3 token server");
                children.push(child);
                wait_port(tport);
                auth = format!(
                    "auth:\n  token: {{realm: \"http://127.0.0.1:{tport}/token\", service: kelp-test-registry, issuer: kelp-test-issuer, rootcertbundle: {}}}\n",
                    fx.join("token/signing.crt").display()
                );
            }
        }
        let maintenance =
            if readonly { "  maintenance: {readonly: {enabled: true}, uploadpurging: {enabled: false}}\n" } else { "" };
        let config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  cache: {{blobdescriptor: inmemory}}\n{maintenance}{http}{auth}",
            storage.display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry");
        children.push(child);
        wait_port(port);
        Registry { kind, port, dir, storage: storage.to_path_buf(), children }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The storage dir served.
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// The CA of the TLS registry's certificate.
    pub fn ca(&self) -> PathBuf {
        fixtures().join("certs/ca.crt")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
