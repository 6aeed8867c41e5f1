//! Resource usage of this node and its containers, from cgroups and `/proc`: the kubelet's
//! `/stats/summary` (what `metrics.k8s.io` and `kubectl top` are made of).
//!
//! CPU use is a rate: cumulative CPU time is sampled every [`SAMPLE_EVERY`], and a summary reports
//! the rate between the last sample and the moment it is asked for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::pods;
use super::pods::{LABEL_NAME, LABEL_NAMESPACE};
use crate::runtime::{ContainerState, Runtime};

/// How often cumulative CPU time is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// A rate needs at least this much time between its two readings.
const MIN_WINDOW: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    cpu_ns: u64,
}

/// The samples CPU rates are computed from.
#[derive(Default)]
pub struct Stats {
    containers: Mutex<HashMap<String, Sample>>,
    node: Mutex<Option<Sample>>,
}

/// CPU and memory of one thing at one time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Usage {
    cpu_ns: u64,
    nano_cores: Option<u64>,
    working_set: u64,
}

fn rate(prev: Option<Sample>, now: Sample) -> Option<u64> {
    let prev = prev?;
    let dt = now.at.checked_duration_since(prev.at)?;
    if dt < MIN_WINDOW || now.cpu_ns < prev.cpu_ns {
        return None;
    }
    Some(((now.cpu_ns - prev.cpu_ns) as u128 * 1_000_000_000 / dt.as_nanos().max(1)) as u64)
}

/// Cumulative busy CPU time of the host (ns) from `/proc/stat`.
fn node_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    // USER_HZ is 100 on Linux: one tick is 10 ms.
    Some((total - idle) * 10_000_000)
}

/// (usage, working set, available) bytes of the host, as cAdvisor computes them for the root.
fn node_memory() -> (u64, u64, u64) {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let usage = kb("MemTotal").saturating_sub(kb("MemFree"));
    (usage, usage.saturating_sub(kb("Inactive(file)")), kb("MemAvailable"))
}

fn rfc3339(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Stats {
    /// Samples every running container and the node every [`SAMPLE_EVERY`], forever.
    pub async fn run(self: std::sync::Arc<Self>, runtime: std::sync::Arc<Runtime>) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            let now = Instant::now();
            if let Some(cpu_ns) = node_cpu_ns() {
                *self.node.lock().expect("stats lock") = Some(Sample { at: now, cpu_ns });
            }
            let Ok(list) = runtime.list().await else { continue };
            let mut fresh = HashMap::new();
            for c in list.iter().filter(|c| matches!(c.state, ContainerState::Running { .. })) {
                if let Ok((cpu_ns, _)) = runtime.stats(&c.id) {
                    fresh.insert(c.id.clone(), Sample { at: now, cpu_ns });
                }
            }
            *self.containers.lock().expect("stats lock") = fresh;
        }
    }

    fn container_usage(&self, runtime: &Runtime, id: &str) -> Option<Usage> {
        let (cpu_ns, working_set) = runtime.stats(id).ok()?;
        let now = Sample { at: Instant::now(), cpu_ns };
        let prev = self.containers.lock().expect("stats lock").get(id).copied();
        Some(Usage { cpu_ns, nano_cores: rate(prev, now), working_set })
    }

    /// The kubelet's `/stats/summary` for this node.
    pub async fn summary(&self, ctx: &pods::Ctx, manager: &pods::Manager) -> Value {
        let time = rfc3339(SystemTime::now());
        let cpu_json = |u: &Usage| {
            let mut v = json!({"time": time, "usageCoreNanoSeconds": u.cpu_ns});
            if let Some(n) = u.nano_cores {
                v["usageNanoCores"] = json!(n);
            }
            v
        };
        let node_cpu = node_cpu_ns().unwrap_or(0);
        let prev = *self.node.lock().expect("stats lock");
        let node_usage = Usage {
            cpu_ns: node_cpu,
            nano_cores: rate(prev, Sample { at: Instant::now(), cpu_ns: node_cpu }),
            working_set: 0,
        };
        let (mem_usage, mem_ws, mem_avail) = node_memory();
        let containers = ctx.runtime.list().await.unwrap_or_default();
        let mut by_pod: HashMap<String, Vec<Value>> = HashMap::new();
        let mut totals: HashMap<String, Usage> = HashMap::new();
        let mut refs: HashMap<String, (String, String)> = HashMap::new();
        // Pods with a container whose rate is not known yet have no pod rate either.
        let mut unrated = std::collections::HashSet::new();
        for c in containers.iter().filter(|c| matches!(c.state, ContainerState::Running { .. })) {
            let Some(u) = self.container_usage(&ctx.runtime, &c.id) else { continue };
            let ns = c.labels.get(LABEL_NAMESPACE).cloned().unwrap_or_default();
            let name = c.labels.get(LABEL_NAME).cloned().unwrap_or_default();
            refs.insert(c.pod_uid.clone(), (ns, name));
            by_pod.entry(c.pod_uid.clone()).or_default().push(json!({
                "name": c.name,
                "cpu": cpu_json(&u),
                "memory": {"time": time, "workingSetBytes": u.working_set},
            }));
            let t = totals.entry(c.pod_uid.clone()).or_default();
            t.cpu_ns += u.cpu_ns;
            t.working_set += u.working_set;
            match u.nano_cores {
                Some(n) => t.nano_cores = Some(t.nano_cores.unwrap_or(0) + n),
                None => {
                    unrated.insert(c.pod_uid.clone());
                }
            }
        }
        let start_times: HashMap<String, String> = manager
            .pods()
            .iter()
            .filter_map(|p| {
                let uid = p.metadata.uid.clone()?;
                let t = p.status.as_ref()?.start_time.as_ref()?;
                Some((uid, t.0.to_string()))
            })
            .collect();
        let pods: Vec<Value> = by_pod
            .into_iter()
            .map(|(uid, containers)| {
                let (ns, name) = refs.get(&uid).cloned().unwrap_or_default();
                let mut t = totals.get(&uid).copied().unwrap_or_default();
                if unrated.contains(&uid) {
                    t.nano_cores = None;
                }
                let mut p = json!({
                    "podRef": {"name": name, "namespace": ns, "uid": uid},
                    "containers": containers,
                    "cpu": cpu_json(&t),
                    "memory": {"time": time, "workingSetBytes": t.working_set},
                });
                if let Some(st) = start_times.get(&uid) {
                    p["startTime"] = json!(st);
                }
                p
            })
            .collect();
        json!({
            "node": {
                "nodeName": ctx.cfg.node_name,
                "cpu": cpu_json(&node_usage),
                "memory": {"time": time, "usageBytes": mem_usage, "workingSetBytes": mem_ws, "availableBytes": mem_avail},
            },
            "pods": pods,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_needs_a_window_and_a_monotonic_counter() {
        let t0 = Instant::now();
        let s = |ms: u64, cpu_ns: u64| Sample { at: t0 + Duration::from_millis(ms), cpu_ns };
        assert_eq!(rate(None, s(1000, 5)), None);
        assert_eq!(rate(Some(s(0, 0)), s(100, 5)), None, "too short a window");
        assert_eq!(rate(Some(s(0, 10)), s(1000, 5)), None, "counter went back (container restarted)");
        // Half a core for 2 s.
        assert_eq!(rate(Some(s(0, 0)), s(2000, 1_000_000_000)), Some(500_000_000));
    }

    #[test]
    fn host_figures_are_read() {
        assert!(node_cpu_ns().unwrap() > 0);
        let (usage, ws, avail) = node_memory();
        assert!(usage > 0 && ws <= usage && avail > 0);
    }
}
