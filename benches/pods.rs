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

/// A `/proc/<pid>/status` figure in kB (`VmRSS`, `RssAnon`, `RssFile`, `RssShmem`).
fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::to_string))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system, all processes) the machine spent so far, from `/proc/stat`.
fn busy_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .map(|l| l.split_whitespace().skip(1).take(8).enumerate())
        .into_iter()
        .flatten()
        // user nice system idle iowait irq softirq steal: all but idle and iowait.
        .filter(|(i, _)| *i != 3 && *i != 4)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
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
    let cpu0 = busy_cpu();
    let t0 = Instant::now();
    let mut many = batch(&pods, &agent.node, &names).await;
    let (wall, cpu) = (t0.elapsed(), busy_cpu().saturating_sub(cpu0));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // Let deletions settle, then measure idle memory.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let pid = agent.child.as_ref().map(|c| c.id()).unwrap_or(0);
    let mb = |key: &str| status_kb(pid, key) as f64 / 1024.0;

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
    // The batch is bound by the machine's CPU: half the pods cannot be running before half the
    // CPU work of all of them (server, agent, shims, kernel) is done on `cores` cores.
    let per_pod = cpu / 50;
    println!(
        "  the 50 took {wall:?} and {cpu:?} of CPU ({per_pod:?} per pod): on {cores} cores the 25th pod \
         cannot be running before {:?}",
        per_pod * 25 / cores as u32
    );
    println!(
        "agent idle RSS: {:.1} MB ({:.1} MB anonymous, {:.1} MB of the binary's and other files' pages, {:.1} MB shared memory)",
        mb("VmRSS"),
        mb("RssAnon"),
        mb("RssFile"),
        mb("RssShmem")
    );
    println!("targets: p50 <= 100 ms, p99 <= 300 ms, idle RSS <= 12 MB");
}
