//! The API core's promised figures, each beside a reference measured in the same run:
//!
//! * durable creates/s of 2 KB ConfigMaps through the API with 1, 8 and 64 clients, beside the raw
//!   SQLite insert floor (one row per `synchronous=FULL` transaction, and 64 rows per transaction);
//! * the latency of listing 10,000 pods, beside a raw SQLite scan of the same stored rows;
//! * idle RSS of `kelp server --disable-agent`;
//! * the time from process start to `/readyz` = 200, beside the time to run `kelp --version`.
//!
//! Run with `cargo bench --bench api`. Targets: ≥ 5,000 creates/s at 64 clients, list of 10k
//! ≤ 50 ms, idle RSS ≤ 25 MB, ready ≤ 300 ms.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

const PAYLOAD: usize = 2048;
const RUN: Duration = Duration::from_secs(5);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, port: u16) -> (Server, Duration) {
    std::fs::write(dir.join("config.yaml"), "").unwrap();
    let kubeconfig = dir.join("kubeconfig.yaml");
    let t0 = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_kelp"))
        .arg("server")
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--bind-address",
            "127.0.0.1",
            "--https-listen-port",
            &port.to_string(),
            "--disable-agent",
            "--log-level",
            "warn",
        ])
        .arg("--write-kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ready = /readyz answers 200 (anonymous HTTPS).
    let agent = readyz_client();
    let url = format!("https://127.0.0.1:{port}/readyz");
    loop {
        if let Ok(Ok(resp)) = std::panic::catch_unwind(|| agent(&url)) {
            if resp {
                break;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "server did not become ready");
        std::thread::sleep(Duration::from_millis(2));
    }
    (Server { child }, t0.elapsed())
}

/// A blocking `/readyz` probe over TLS without verification, via curl (the probe's own cost is the
/// same for the reference and the measurement).
fn readyz_client() -> impl Fn(&str) -> Result<bool, ()> {
    |url: &str| {
        let out = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .map_err(|_| ())?;
        Ok(out.stdout == b"200")
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()))
        .unwrap_or(0)
}

/// Raw SQLite inserts of the same payload: one row per FULL-sync transaction, and `batch` rows per
/// transaction. Returns rows/s.
fn sqlite_floor(dir: &Path, batch: usize) -> f64 {
    let path = dir.join(format!("floor-{batch}.db"));
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE kv (rev INTEGER PRIMARY KEY, key TEXT NOT NULL, value BLOB NOT NULL);
         CREATE INDEX kv_key_rev ON kv (key, rev);",
    )
    .unwrap();
    let value = vec![b'x'; PAYLOAD];
    let t0 = Instant::now();
    let mut n = 0usize;
    while t0.elapsed() < RUN {
        let tx = conn.unchecked_transaction().unwrap();
        for _ in 0..batch {
            tx.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)",
                rusqlite::params![format!("/registry/configmaps/bench/cm-{n:08}"), &value],
            )
            .unwrap();
            n += 1;
        }
        tx.commit().unwrap();
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
    kube::Client::try_from(cfg).unwrap()
}

async fn creates_per_second(kubeconfig: &Path, ns: &str, clients: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let payload = "x".repeat(PAYLOAD);
    for c in 0..clients {
        let client = client(kubeconfig).await;
        let api: Api<ConfigMap> = Api::namespaced(client, ns);
        let (done, stop, payload) = (done.clone(), stop.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": format!("c{clients}-{c}-{i}")}, "data": {"payload": payload}}),
                )
                .unwrap();
                api.create(&PostParams::default(), &cm).await.expect("create");
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we need: run only for bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("api bench: run with `cargo bench --bench api`");
        return;
    }
    let dir = tempfile::Builder::new().prefix("kelp-bench-").tempdir().unwrap();

    // Start-up: kelp --version (process start floor) vs server start to /readyz.
    let mut version_runs = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        Command::new(env!("CARGO_BIN_EXE_kelp")).arg("--version").stdout(Stdio::null()).status().unwrap();
        version_runs.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let mut ready_runs = Vec::new();
    for i in 0..3 {
        let d = dir.path().join(format!("start-{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let (_s, t) = start(&d, free_port());
        ready_runs.push(t.as_secs_f64() * 1000.0);
    }
    let version_ms = median(version_runs);
    let ready_ms = median(ready_runs);

    let d = dir.path().join("main");
    std::fs::create_dir_all(&d).unwrap();
    let (server, _) = start(&d, free_port());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = rss_kib(server.child.id());
    let kubeconfig = d.join("kubeconfig.yaml");
    let c = client(&kubeconfig).await;
    let nss: Api<Namespace> = Api::all(c.clone());
    for ns in ["bench-cm", "bench-pods"] {
        nss.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap())
            .await
            .unwrap();
    }

    let floor_1 = sqlite_floor(dir.path(), 1);
    let floor_64 = sqlite_floor(dir.path(), 64);
    let mut creates = Vec::new();
    for clients in [1, 8, 64] {
        creates.push((clients, creates_per_second(&kubeconfig, "bench-cm", clients).await));
    }

    // 10,000 pods, then list them.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "bench-pods");
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let pods = pods.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 10_000 {
                    break;
                }
                let p: Pod = serde_json::from_value(
                    json!({"metadata": {"name": format!("pod-{i:05}"), "labels": {"app": "bench"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}),
                )
                .unwrap();
                pods.create(&PostParams::default(), &p).await.expect("pod create");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Time to the last byte of the whole list (the client's JSON decoding is not the server's cost).
    let mut list_ms = Vec::new();
    for _ in 0..10 {
        let req = http::Request::get("/api/v1/namespaces/bench-pods/pods").body(Vec::new()).unwrap();
        let t0 = Instant::now();
        let text = c.request_text(req).await.unwrap();
        list_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert!(text.len() > 10_000 * 500);
    }
    assert_eq!(pods.list(&ListParams::default()).await.unwrap().items.len(), 10_000);
    let list_ms = median(list_ms);
    // Raw: scan the same rows straight from the server's database file.
    let db = rusqlite::Connection::open(d.join("data/server/db/state.db")).unwrap();
    let mut scan_ms = Vec::new();
    for _ in 0..10 {
        let t0 = Instant::now();
        let mut stmt = db.prepare_cached("SELECT key, value FROM kv WHERE key >= '/registry/pods/bench-pods/' AND key < '/registry/pods/bench-pods0'").unwrap();
        let n = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))).unwrap().count();
        assert!(n >= 10_000);
        scan_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let scan_ms = median(scan_ms);
    let loaded_rss = rss_kib(server.child.id());

    println!("\nkelp API core benchmark (this machine, this run)");
    println!("durable creates of 2 KB ConfigMaps through the API:");
    println!(
        "  raw SQLite floor: {floor_1:.0} rows/s (1 row per FULL-sync txn), {floor_64:.0} rows/s (64 rows per txn)"
    );
    for (clients, rate) in &creates {
        println!(
            "  {clients:>2} clients: {rate:>7.0} creates/s = {:.2}x the 1-row floor, {:.2}x the 64-row floor (target at 64 clients: 5000/s)",
            rate / floor_1,
            rate / floor_64
        );
    }
    println!("list 10,000 pods: {list_ms:.1} ms median = {:.1}x a raw SQLite scan of the same rows ({scan_ms:.1} ms) (target 50 ms)", list_ms / scan_ms);
    println!(
        "idle RSS of kelp server --disable-agent: {:.1} MiB (target 25 MB); with 10k pods + {} configmaps: {:.1} MiB",
        idle_rss as f64 / 1024.0,
        creates.iter().map(|(_, r)| (*r * RUN.as_secs_f64()) as u64).sum::<u64>(),
        loaded_rss as f64 / 1024.0
    );
    println!("start to /readyz=200: {ready_ms:.0} ms median = {:.1}x the time to run `kelp --version` ({version_ms:.1} ms) (target 300 ms)", ready_ms / version_ms);
    drop(server);
}
