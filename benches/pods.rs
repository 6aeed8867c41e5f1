//! The node agent's promised figures: pod create → Running latency (p50/p99) for one pod at a
//! time and for 50 pods created at once, on a local (air-gap imported) image; the agent's idle
//! RSS. Starts a real `kelp server --disable-agent` and a `kelp agent` (as the integration tests
//! do), so it needs root. Run with `cargo bench --bench pods`. Targets: p50 ≤ 100 ms,
//! p99 ≤ 300 ms, idle RSS ≤ 12 MB.

#[path = "../integration/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use support::{fixtures, unique, Agent, Server};

fn pod(node: &str, name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "automountServiceAccountToken": false, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "docker.io/kelp-test/busybox:latest",
                                 "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}
    }))
    .unwrap()
}

fn running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Creates `names` at once and returns each one's create → Running latency.
async fn batch(pods: &Api<Pod>, node: &str, names: &[String]) -> Vec<Duration> {
    let wp = WatchParams::default();
    let mut stream = pods.watch(&wp, "0").await.unwrap().boxed();
    let mut started = std::collections::HashMap::new();
    for n in names {
        pods.create(&PostParams::default(), &pod(node, n)).await.unwrap();
        started.insert(n.clone(), Instant::now());
    }
    let mut done = std::collections::HashMap::new();
    while done.len() < names.len() {
        let ev = tokio::time::timeout(Duration::from_secs(120), stream.try_next()).await.expect("pods running in time");
        if let Ok(Some(WatchEvent::Modified(p))) = ev {
            let name = p.metadata.name.clone().unwrap_or_default();
            if running(&p) && !done.contains_key(&name) {
                if let Some(s) = started.get(&name) {
                    done.insert(name, s.elapsed());
                }
            }
        }
    }
    for n in names {
        let _ = pods.delete(n, &DeleteParams::default()).await;
    }
    done.into_values().collect()
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("pods bench: run with `cargo bench --bench pods`");
        return;
    }
    let fix = fixtures();
    let server = Server::start_with(&["--cluster-cidr", "10.99.0.0/16"]);
    let client = server.client().await;
    let agent = Agent::start(&server, "bench", &[&fix.join("busybox.oci.tar")]);
    let ns = unique("bench");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap())
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // Warm-up: the first pod also waits for the node to be ready.
    let _ = batch(&pods, &agent.node, &["warm".to_string()]).await;

    let mut single = Vec::new();
    for i in 0..20 {
        single.extend(batch(&pods, &agent.node, &[format!("one-{i}")]).await);
    }
    let names: Vec<String> = (0..50).map(|i| format!("many-{i}")).collect();
    let mut many = batch(&pods, &agent.node, &names).await;
    // Let deletions settle, then measure idle memory.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let rss = agent.child.as_ref().map(|c| rss_kb(c.id())).unwrap_or(0);

    println!(
        "pod create -> Running, 1 pod at a time (20): p50 {:?}  p99 {:?}",
        pct(&mut single, 0.5),
        pct(&mut single, 0.99)
    );
    println!(
        "pod create -> Running, 50 at once:          p50 {:?}  p99 {:?}",
        pct(&mut many, 0.5),
        pct(&mut many, 0.99)
    );
    println!("agent idle RSS: {:.1} MB", rss as f64 / 1024.0);
    println!("targets: p50 <= 100 ms, p99 <= 300 ms, idle RSS <= 12 MB");
}
