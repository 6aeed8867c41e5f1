//! The scheduler's and control plane's promised figures on hollow nodes:
//!
//! * scheduler throughput: pods bound per second with 100 hollow nodes and 3,000 pods that were
//!   created while the scheduler was off (the server is restarted with it on; the clock starts
//!   when the server is ready), beside the rate the same server creates pods at (the write floor
//!   a binding shares);
//! * RSS of `kelp server` with 1,000 hollow nodes (a `kelp hollow-nodes` process) and 10,000
//!   pods created, scheduled and reported Running, beside its idle RSS;
//! * API p99 latency of GET and LIST calls probed throughout that run.
//!
//! Run with `cargo bench --bench scheduler`. Targets: ≥ 300 pods/s bound, RSS ≤ 1 GB, p99 ≤ 1 s.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::json;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &Path, port: u16, extra: &[&str]) -> Proc {
    std::fs::write(dir.join("config.yaml"), "").unwrap();
    let kubeconfig = dir.join("kubeconfig.yaml");
    let _ = std::fs::remove_file(&kubeconfig);
    let child = Command::new(env!("CARGO_BIN_EXE_kelp"))
        .arg("server")
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--bind-address", "127.0.0.1", "--https-listen-port", &port.to_string(), "--disable-agent"])
        .args(["--log-level", "warn"])
        .args(extra)
        .arg("--write-kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("server.log")).unwrap()))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !(kubeconfig.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
        assert!(t0.elapsed() < Duration::from_secs(60), "server did not become ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    Proc(child)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()))
        .unwrap_or(0)
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
    cfg.read_timeout = Some(Duration::from_secs(120));
    kube::Client::try_from(cfg).unwrap()
}

async fn make_ns(c: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(c.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
        .await
        .unwrap();
}

fn bench_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    }))
    .unwrap()
}

/// Creates `n` pods named `<prefix>-<i>` in `ns` with `concurrency` requests in flight; returns
/// pods/s.
async fn create_pods(c: &kube::Client, ns: &str, prefix: &str, n: usize, concurrency: usize) -> f64 {
    let api: Api<Pod> = Api::namespaced(c.clone(), ns);
    let t0 = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let p = bench_pod(&format!("{prefix}-{i}"));
                for _ in 0..5 {
                    match api.create(&PostParams::default(), &p).await {
                        Ok(_) | Err(kube::Error::Api(_)) => return,
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Waits until `want` pods satisfy `pred`, watching; returns when that happened.
async fn wait_pods(c: &kube::Client, want: usize, pred: impl Fn(&Pod) -> bool, limit: Duration) -> Instant {
    let api: Api<Pod> = Api::all(c.clone());
    let mut seen = std::collections::HashSet::new();
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let deadline = Instant::now() + limit;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await;
        match ev {
            Ok(Ok(Some(watcher::Event::Apply(p) | watcher::Event::InitApply(p)))) => {
                let key = format!(
                    "{}/{}",
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default()
                );
                if pred(&p) {
                    seen.insert(key);
                }
            }
            Ok(Ok(Some(_))) | Err(_) => {}
            Ok(Ok(None)) | Ok(Err(_)) => {
                stream = watcher(Api::<Pod>::all(c.clone()), watcher::Config::default()).boxed()
            }
        }
        if seen.len() >= want {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "only {} of {want} pods after {limit:?}", seen.len());
    }
}

fn bound(p: &Pod) -> bool {
    p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
}

fn running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn throughput(dir: &Path) -> (f64, f64, f64) {
    let port = free_port();
    let kubeconfig = dir.join("kubeconfig.yaml");
    let server = start_server(dir, port, &["--disable-scheduler"]);
    let c = client(&kubeconfig).await;
    let cfg = kelp::hollow::HollowConfig {
        count: 100,
        name_prefix: "tp-".into(),
        cpu: "32".into(),
        memory: "256Gi".into(),
        pods: 110,
        ..Default::default()
    };
    let nodes = kelp::hollow::start(c.clone(), cfg).await.unwrap();
    make_ns(&c, "tp").await;
    let create_rate = create_pods(&c, "tp", "p", 3000, 64).await;
    drop(server);
    // The same store, now with the scheduler: 3,000 pending pods.
    let t0 = Instant::now();
    let _server = start_server(dir, port, &[]);
    let c2 = client(&kubeconfig).await;
    let ready = t0.elapsed();
    let done = wait_pods(&c2, 3000, bound, Duration::from_secs(600)).await;
    let secs = done.duration_since(t0).as_secs_f64() - ready.as_secs_f64();
    drop(nodes);
    (3000.0 / secs, secs, create_rate)
}

async fn scale(dir: &Path) -> (u64, u64, u64, f64, f64, usize, f64) {
    let port = free_port();
    let kubeconfig = dir.join("kubeconfig.yaml");
    let server = start_server(dir, port, &[]);
    let pid = server.0.id();
    let c = client(&kubeconfig).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(pid, "VmRSS:");
    let hollow_log = std::fs::File::create(dir.join("hollow.log")).unwrap();
    let _hollow = Proc(
        Command::new(env!("CARGO_BIN_EXE_kelp"))
            .args(["hollow-nodes", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(["--count", "1000", "--name-prefix", "scale-", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(hollow_log))
            .spawn()
            .unwrap(),
    );
    let nodes: Api<Node> = Api::all(c.clone());
    let t0 = Instant::now();
    while nodes
        .list(&ListParams::default().limit(1))
        .await
        .map(|l| l.metadata.remaining_item_count.unwrap_or(0) + 1)
        .unwrap_or(0)
        < 1000
    {
        assert!(t0.elapsed() < Duration::from_secs(300), "hollow nodes did not register");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Probe GET and LIST latency for the whole run.
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::<f64>::new()));
    let probe = {
        let (c, stop, lat) = (c.clone(), stop.clone(), lat.clone());
        tokio::spawn(async move {
            let pods: Api<Pod> = Api::namespaced(c.clone(), "scale");
            let nodes: Api<Node> = Api::all(c.clone());
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let _ = match i % 3 {
                    0 => nodes.get(&format!("scale-{}", i % 1000)).await.map(|_| ()),
                    1 => pods.get(&format!("p-{}", i % 10_000)).await.map(|_| ()).or(Ok(())),
                    _ => pods.list(&ListParams::default().limit(100)).await.map(|_| ()),
                };
                lat.lock().unwrap().push(t.elapsed().as_secs_f64() * 1000.0);
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    make_ns(&c, "scale").await;
    let t1 = Instant::now();
    create_pods(&c, "scale", "p", 10_000, 32).await;
    wait_pods(&c, 10_000, running, Duration::from_secs(900)).await;
    let all_running = t1.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = probe.await;
    let rss = rss_kib(pid, "VmRSS:");
    let peak = rss_kib(pid, "VmHWM:");
    let mut l = lat.lock().unwrap().clone();
    let n = l.len();
    let p50 = percentile(&mut l, 0.5);
    let p99 = percentile(&mut l, 0.99);
    (idle, rss, peak, p50, p99, n, all_running)
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("scheduler bench: run with `cargo bench --bench scheduler`");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new().prefix("kelp-sched-bench-").tempdir().unwrap();
    let d1: PathBuf = dir.path().join("throughput");
    std::fs::create_dir_all(&d1).unwrap();
    let (rate, secs, create_rate) = throughput(&d1).await;
    println!("scheduler throughput: {rate:.0} pods/s bound (3000 pending pods, 100 hollow nodes, {secs:.1} s); the same server creates pods at {create_rate:.0}/s (64 clients). Target >= 300 pods/s");
    let d2 = dir.path().join("scale");
    std::fs::create_dir_all(&d2).unwrap();
    let (idle, rss, peak, p50, p99, n, all_running) = scale(&d2).await;
    println!(
        "1000 hollow nodes + 10000 pods: all Running after {all_running:.1} s; server RSS {:.0} MB (peak {:.0} MB, idle {:.0} MB). Target <= 1024 MB",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        idle as f64 / 1024.0
    );
    println!(
        "API latency during the run ({n} GET/LIST probes): p50 {p50:.1} ms, p99 {p99:.1} ms. Target p99 <= 1000 ms"
    );
}
