//! Hollow nodes: N simulated nodes in one process, like kubemark. Each registers a Ready Node and
//! renews its Lease; one shared pod watch marks pods bound to them Running and Ready (with
//! container statuses, a pod IP from a fake range and a start time), finishes pods being deleted
//! (delete with grace 0) and, for pods annotated with [`EXIT_AFTER`], ends them Succeeded or
//! Failed (exit code from [`EXIT_CODE`]) so Job-like workloads complete. A node can be told to
//! stop renewing its lease (and to stop reporting) to exercise the node lifecycle controller.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Annotation: the pod's containers exit this long after they started (`2s`, `500ms`, `1m`).
pub const EXIT_AFTER: &str = "hollow.kelp.io/exit-after";
/// Annotation: the exit code of a pod with [`EXIT_AFTER`] (default 0).
pub const EXIT_CODE: &str = "hollow.kelp.io/exit-code";
/// Annotation: the pod becomes Ready this long after it started (default at once).
pub const READY_AFTER: &str = "hollow.kelp.io/ready-after";
/// Label every hollow node carries.
pub const HOLLOW_LABEL: &str = "kelp.io/hollow";

/// Errors of the hollow nodes.
#[derive(Debug, thiserror::Error)]
pub enum HollowError {
    #[error("registering node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("invalid hollow node configuration: {0}")]
    Config(String),
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct HollowConfig {
    /// How many nodes.
    pub count: usize,
    /// Node names are `<prefix><index>`.
    pub name_prefix: String,
    /// How often leases are renewed.
    pub lease_interval: Duration,
    /// Capacity per node.
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    /// Extra labels on every node.
    pub labels: BTreeMap<String, String>,
    /// How many API calls (status updates, deletes, lease renewals) run at once.
    pub concurrency: usize,
}

impl Default for HollowConfig {
    fn default() -> Self {
        HollowConfig {
            count: 1,
            name_prefix: "hollow-node-".into(),
            lease_interval: Duration::from_secs(10),
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: 110,
            labels: BTreeMap::new(),
            concurrency: 32,
        }
    }
}

/// Parses `2s`, `500ms`, `1m`, `1h` or a number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v >= 0.0 && v.is_finite()).then(|| Duration::from_millis((v * mult_ms) as u64))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodPhase {
    Running,
    Finished,
    Deleting,
}

struct Shared {
    client: kube::Client,
    cfg: HollowConfig,
    /// Node name → index (for pod IPs).
    nodes: HashMap<String, usize>,
    /// Nodes that stopped renewing and reporting.
    stopped: Mutex<HashSet<String>>,
    /// Pod uid → what was reported.
    pods: Mutex<HashMap<String, PodPhase>>,
    /// Next pod IP host part per node.
    next_ip: Mutex<HashMap<String, u32>>,
    limit: Semaphore,
}

/// Running hollow nodes; dropping the handle stops them (their objects stay).
pub struct HollowNodes {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl HollowNodes {
    /// The node names.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.shared.nodes.keys().cloned().collect();
        v.sort_by_key(|n| self.shared.nodes[n]);
        v
    }

    /// The node stops renewing its lease and stops reporting its pods, like a dead kubelet.
    pub fn stop_renewing(&self, node: &str) {
        self.shared.stopped.lock().unwrap_or_else(|e| e.into_inner()).insert(node.to_string());
    }

    /// The node comes back: renews its lease and reports Ready again.
    pub async fn resume(&self, node: &str) -> Result<(), kube::Error> {
        self.shared.stopped.lock().unwrap_or_else(|e| e.into_inner()).remove(node);
        renew(&self.shared, node).await?;
        let api: Api<Node> = Api::all(self.shared.client.clone());
        let patch = json!({"status": {"conditions": conditions()}});
        api.patch_status(node, &PatchParams::default(), &Patch::Strategic(&patch)).await?;
        // Catch up with what happened to its pods meanwhile (deletions above all).
        let pods: Api<Pod> = Api::all(self.shared.client.clone());
        let lp = kube::api::ListParams::default().fields(&format!("spec.nodeName={node}"));
        for p in pods.list(&lp).await?.items {
            // Report running pods afresh (the node controller marked them not ready).
            if let Some(uid) = &p.metadata.uid {
                let mut known = self.shared.pods.lock().unwrap_or_else(|e| e.into_inner());
                if known.get(uid) == Some(&PodPhase::Running) {
                    known.remove(uid);
                }
            }
            handle_pod(&self.shared, p);
        }
        Ok(())
    }
}

/// Runs the hollow nodes until the task is aborted.
pub async fn run(client: kube::Client, cfg: HollowConfig) -> Result<(), HollowError> {
    let nodes = start(client, cfg).await?;
    futures::future::pending::<()>().await;
    drop(nodes);
    Ok(())
}

/// Registers the nodes and starts renewing leases and handling pods; returns a handle.
pub async fn start(client: kube::Client, cfg: HollowConfig) -> Result<HollowNodes, HollowError> {
    if cfg.count == 0 {
        return Err(HollowError::Config("the node count must be at least 1".into()));
    }
    if cfg.count > 65_000 {
        return Err(HollowError::Config("at most 65000 hollow nodes".into()));
    }
    let names: HashMap<String, usize> = (0..cfg.count).map(|i| (format!("{}{i}", cfg.name_prefix), i)).collect();
    let shared = Arc::new(Shared {
        limit: Semaphore::new(cfg.concurrency.max(1)),
        client,
        cfg,
        nodes: names,
        stopped: Mutex::new(HashSet::new()),
        pods: Mutex::new(HashMap::new()),
        next_ip: Mutex::new(HashMap::new()),
    });
    let list: Vec<(String, usize)> = shared.nodes.iter().map(|(k, v)| (k.clone(), *v)).collect();
    futures::stream::iter(list.into_iter().map(|(name, i)| {
        let shared = shared.clone();
        async move { register(&shared, &name, i).await }
    }))
    .buffer_unordered(shared.cfg.concurrency.max(1))
    .try_collect::<Vec<()>>()
    .await?;
    let tasks = vec![tokio::spawn(renew_loop(shared.clone())), tokio::spawn(pod_loop(shared.clone()))];
    Ok(HollowNodes { shared, tasks })
}

fn conditions() -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let c = |t: &str, s: &str, reason: &str, msg: &str| json!({"type": t, "status": s, "reason": reason, "message": msg, "lastHeartbeatTime": now, "lastTransitionTime": now});
    json!([
        c("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        c("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        c("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        c("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ])
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 127, (i / 250) as u8, (i % 250 + 2) as u8)
}

async fn register(shared: &Shared, name: &str, i: usize) -> Result<(), HollowError> {
    let cfg = &shared.cfg;
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), crate::apiserver::go_arch().to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), crate::apiserver::go_arch().to_string()),
        (HOLLOW_LABEL.to_string(), "true".to_string()),
    ]
    .into();
    labels.extend(cfg.labels.clone());
    let resources =
        json!({"cpu": cfg.cpu, "memory": cfg.memory, "pods": cfg.pods.to_string(), "ephemeral-storage": "100Gi"});
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {},
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": conditions(),
            "addresses": [{"type": "InternalIP", "address": node_ip(i).to_string()}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "hollow",
                "osImage": "kelp hollow node", "containerRuntimeVersion": "hollow://1.0", "kubeletVersion": "v1.33.0",
                "kubeProxyVersion": "v1.33.0", "operatingSystem": "linux", "architecture": crate::apiserver::go_arch()},
        },
    }))
    .expect("a well-formed node");
    let api: Api<Node> = Api::all(shared.client.clone());
    let err = |source| HollowError::Register { node: name.to_string(), source };
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = json!({"status": {"conditions": conditions()}});
            api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch)).await.map_err(err)?;
        }
        Err(e) => return Err(err(e)),
    }
    renew(shared, name).await.map_err(err)
}

async fn renew(shared: &Shared, name: &str) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let patch = json!({"spec": {"renewTime": now, "holderIdentity": name}});
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let node_uid = Api::<Node>::all(shared.client.clone()).get(name).await?.metadata.uid.unwrap_or_default();
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
            }))
            .expect("a well-formed lease");
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

async fn renew_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.cfg.lease_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        let live: Vec<String> = {
            let stopped = shared.stopped.lock().unwrap_or_else(|e| e.into_inner());
            shared.nodes.keys().filter(|n| !stopped.contains(*n)).cloned().collect()
        };
        futures::stream::iter(live)
            .for_each_concurrent(shared.cfg.concurrency.max(1), |n| {
                let shared = shared.clone();
                async move {
                    if let Err(e) = renew(&shared, &n).await {
                        tracing::debug!(message = "lease renewal failed", node = %n, error = %e);
                    }
                }
            })
            .await;
    }
}

async fn pod_loop(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
            Ok(watcher::Event::Delete(p)) => {
                if let Some(uid) = p.metadata.uid {
                    shared.pods.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(message = "hollow pod watch error", error = %e);
                continue;
            }
        };
        handle_pod(&shared, pod);
    }
}

/// Reacts to one version of a pod bound to one of the live nodes.
fn handle_pod(shared: &Arc<Shared>, pod: Pod) {
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { return };
    if !shared.nodes.contains_key(&node) || shared.stopped.lock().unwrap_or_else(|e| e.into_inner()).contains(&node) {
        return;
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let action = {
        let mut pods = shared.pods.lock().unwrap_or_else(|e| e.into_inner());
        let cur = pods.get(&uid).copied();
        if deleting {
            if cur == Some(PodPhase::Deleting) {
                None
            } else {
                pods.insert(uid.clone(), PodPhase::Deleting);
                Some(PodPhase::Deleting)
            }
        } else if cur.is_none() && (phase == "Succeeded" || phase == "Failed") {
            pods.insert(uid.clone(), PodPhase::Finished);
            None
        } else if cur.is_none() {
            pods.insert(uid.clone(), PodPhase::Running);
            Some(PodPhase::Running)
        } else {
            None
        }
    };
    let Some(action) = action else { return };
    let shared = shared.clone();
    tokio::spawn(async move {
        let _permit = shared.limit.acquire().await;
        match action {
            PodPhase::Deleting => finish_deleted(&shared, &pod).await,
            _ => start_pod(shared.clone(), pod, &node).await,
        }
    });
}

async fn finish_deleted(shared: &Shared, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), pod.metadata.namespace.as_deref().unwrap_or_default());
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    if let Err(e) = api.delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp).await {
        tracing::debug!(message = "finishing a deleted pod failed", error = %e);
    }
}

fn container_statuses(pod: &Pod, state: &Value, ready: bool, restarts: i32) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    Value::Array(
        spec.containers
            .iter()
            .map(|c| {
                json!({"name": c.name, "image": c.image.clone().unwrap_or_default(),
                    "imageID": format!("hollow://{}", c.image.clone().unwrap_or_default()),
                    "containerID": format!("hollow://{uid}-{}", c.name), "ready": ready,
                    "started": state.get("running").is_some(), "restartCount": restarts, "state": state})
            })
            .collect(),
    )
}

fn pod_conditions(ready: bool, reason: Option<&str>, start: &str) -> Value {
    let s = if ready { "True" } else { "False" };
    let mut ready_c = json!({"type": "Ready", "status": s, "lastProbeTime": null, "lastTransitionTime": start});
    let mut cr = json!({"type": "ContainersReady", "status": s, "lastProbeTime": null, "lastTransitionTime": start});
    if let Some(r) = reason {
        ready_c["reason"] = json!(r);
        cr["reason"] = json!(r);
    }
    json!([
        {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": start},
        {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": start},
        ready_c,
        cr,
        {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": start},
    ])
}

async fn patch_status(shared: &Shared, pod: &Pod, status: Value) -> bool {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), pod.metadata.namespace.as_deref().unwrap_or_default());
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let patch = json!({"status": status});
    for attempt in 0..10 {
        match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(p) if p.metadata.uid == pod.metadata.uid => return true,
            // A new pod of the same name: not ours to report.
            Ok(_) => return false,
            // Concurrent writers (the binding's own status update): try again.
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 9 => {
                tokio::time::sleep(Duration::from_millis(20 * (attempt + 1))).await;
            }
            Err(e) => {
                tracing::debug!(message = "pod status update failed", pod = %name, error = %e);
                return false;
            }
        }
    }
    false
}

fn still_ours(shared: &Shared, uid: &str, node: &str) -> bool {
    let alive = !shared.stopped.lock().unwrap_or_else(|e| e.into_inner()).contains(node);
    alive && matches!(shared.pods.lock().unwrap_or_else(|e| e.into_inner()).get(uid), Some(PodPhase::Running))
}

async fn start_pod(shared: Arc<Shared>, pod: Pod, node: &str) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let idx = shared.nodes[node];
    let ip = {
        let mut next = shared.next_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = next.entry(node.to_string()).or_insert(0);
        *n = (*n + 1) % 250;
        Ipv4Addr::new(10, 128 + ((idx >> 8) & 0x7f) as u8, (idx & 0xff) as u8, (*n + 2) as u8)
    };
    let host_ip = node_ip(idx).to_string();
    let start = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let ready_after = annotations.get(READY_AFTER).and_then(|s| parse_duration(s));
    let exit_after = annotations.get(EXIT_AFTER).and_then(|s| parse_duration(s));
    let exit_code: i32 = annotations.get(EXIT_CODE).and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let restart_policy = pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
    let running = json!({"running": {"startedAt": start}});
    let ready_now = ready_after.is_none();
    let base = json!({"phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}], "startTime": start, "qosClass": pod.status.as_ref().and_then(|s| s.qos_class.clone()),
        "conditions": pod_conditions(ready_now, (!ready_now).then_some("ContainersNotReady"), &start),
        "containerStatuses": container_statuses(&pod, &running, ready_now, 0)});
    if !patch_status(&shared, &pod, base.clone()).await {
        shared.pods.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
        return;
    }
    if let Some(d) = ready_after {
        let (shared, pod, node, start, uid) =
            (shared.clone(), pod.clone(), node.to_string(), start.clone(), uid.clone());
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            if !still_ours(&shared, &uid, &node) {
                return;
            }
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let status = json!({"conditions": pod_conditions(true, None, &now),
                "containerStatuses": container_statuses(&pod, &json!({"running": {"startedAt": start}}), true, 0)});
            patch_status(&shared, &pod, status).await;
        });
    }
    let (Some(after), true) = (exit_after, restart_policy != "Always") else { return };
    let mut restarts = 0;
    loop {
        tokio::time::sleep(after).await;
        if !still_ours(&shared, &uid, node) {
            return;
        }
        let finished = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        let terminated = json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": start,
            "finishedAt": finished, "containerID": format!("hollow://{uid}")}});
        if exit_code != 0 && restart_policy == "OnFailure" {
            // The kubelet restarts the container; it fails again after the same time.
            restarts += 1;
            let status = json!({"containerStatuses": container_statuses(&pod, &json!({"running": {"startedAt": finished}}), true, restarts)});
            patch_status(&shared, &pod, status).await;
            continue;
        }
        let phase = if exit_code == 0 { "Succeeded" } else { "Failed" };
        shared.pods.lock().unwrap_or_else(|e| e.into_inner()).insert(uid.clone(), PodPhase::Finished);
        let status = json!({"phase": phase, "conditions": pod_conditions(false, Some("PodCompleted"), &finished),
            "containerStatuses": container_statuses(&pod, &terminated, false, restarts)});
        patch_status(&shared, &pod, status).await;
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
