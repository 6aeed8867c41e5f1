//! The node lifecycle controller: a node whose Lease was not renewed within the grace period
//! (40 s, upstream's node-monitor-grace-period) gets every condition Unknown ("Kubelet stopped
//! posting node status."); nodes carry the taints their state implies (not-ready / unreachable
//! NoSchedule and NoExecute, unschedulable for cordoned nodes); pods on Unknown nodes get
//! Ready=False; and the NoExecute taint manager deletes pods that do not tolerate a node's
//! NoExecute taints, or once their tolerationSeconds ran out.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::event_recorder::{node_reference, pod_reference, EventRecorder};
use crate::scheduler::model::{tolerates, TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE};

/// Timing of the controller.
#[derive(Debug, Clone)]
pub struct NodeLifecycleConfig {
    /// How long a node may go without renewing its lease (node-monitor-grace-period).
    pub grace_period: Duration,
    /// How often nodes are checked (node-monitor-period).
    pub monitor_period: Duration,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig { grace_period: Duration::from_secs(40), monitor_period: Duration::from_secs(2) }
    }
}

/// A reflector store kept up to date by a background task (ended when the returned handle is
/// dropped... it lives as long as the runtime; callers abort their own tasks).
pub(crate) fn cached<K>(api: Api<K>) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let task = tokio::spawn(async move {
        reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .for_each(|_| futures::future::ready(()))
            .await;
    });
    (store, task)
}

/// A Kubernetes time as a chrono time.
pub(crate) fn to_chrono(t: &Time) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// A chrono time as a Kubernetes time (second precision).
pub(crate) fn to_time(t: chrono::DateTime<chrono::Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

fn now_str() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ready_status(node: &Node) -> Option<String> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
}

/// The taints (key, effect) a node's state calls for, among the ones this controller manages.
fn wanted_taints(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    match ready_status(node).as_deref() {
        Some("True") => {}
        Some("False") => {
            out.push((TAINT_NOT_READY, "NoSchedule"));
            out.push((TAINT_NOT_READY, "NoExecute"));
        }
        Some(_) => {
            out.push((TAINT_UNREACHABLE, "NoSchedule"));
            out.push((TAINT_UNREACHABLE, "NoExecute"));
        }
        // A node that never posted status is not ready.
        None => out.push((TAINT_NOT_READY, "NoSchedule")),
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        out.push((TAINT_UNSCHEDULABLE, "NoSchedule"));
    }
    out
}

const MANAGED: [(&str, &str); 5] = [
    (TAINT_NOT_READY, "NoSchedule"),
    (TAINT_NOT_READY, "NoExecute"),
    (TAINT_UNREACHABLE, "NoSchedule"),
    (TAINT_UNREACHABLE, "NoExecute"),
    (TAINT_UNSCHEDULABLE, "NoSchedule"),
];

/// The node's taints with the managed ones brought in line; `None` when nothing changes.
fn reconcile_taints(node: &Node) -> Option<Vec<Taint>> {
    let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let wanted = wanted_taints(node);
    let mut next: Vec<Taint> = current
        .iter()
        .filter(|t| {
            let managed = MANAGED.iter().any(|(k, e)| t.key == *k && t.effect == *e);
            !managed || wanted.iter().any(|(k, e)| t.key == *k && t.effect == *e)
        })
        .cloned()
        .collect();
    for (k, e) in &wanted {
        if !next.iter().any(|t| t.key == *k && t.effect == *e) {
            let time_added = (*e == "NoExecute").then(|| to_time(chrono::Utc::now()));
            next.push(Taint { key: k.to_string(), effect: e.to_string(), value: None, time_added });
        }
    }
    (next != current).then_some(next)
}

/// When a pod must go because of the node's NoExecute taints: `Some(Duration::ZERO)` now, or
/// after the smallest tolerationSeconds (counted from the newest taint); `None` never.
pub fn eviction_delay(pod: &Pod, taints: &[Taint], now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return None;
    }
    let mut min_secs: Option<i64> = None;
    let mut since = None::<chrono::DateTime<chrono::Utc>>;
    for t in &no_execute {
        let matching: Vec<_> = tolerations.iter().filter(|tol| tolerates(tol, t)).collect();
        if matching.is_empty() {
            return Some(Duration::ZERO);
        }
        // Tolerated forever unless every matching toleration is bounded.
        if matching.iter().all(|tol| tol.toleration_seconds.is_some()) {
            let secs = matching.iter().filter_map(|tol| tol.toleration_seconds).min().unwrap_or(0).max(0);
            min_secs = Some(min_secs.map_or(secs, |m| m.min(secs)));
        }
        let added = t.time_added.as_ref().map(to_chrono).unwrap_or(now);
        since = Some(since.map_or(added, |s| s.max(added)));
    }
    let secs = min_secs?;
    let at = since.unwrap_or(now) + chrono::Duration::seconds(secs);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Runs the controller until its task is aborted.
pub async fn run(client: kube::Client, cfg: NodeLifecycleConfig) {
    let (nodes, t1) = cached(Api::<Node>::all(client.clone()));
    let (leases, t2) = cached(Api::<Lease>::namespaced(client.clone(), "kube-node-lease"));
    let (pods, t3) = cached(Api::<Pod>::all(client.clone()));
    let _guard = AbortOnDrop(vec![t1, t2, t3]);
    for ready in [nodes.wait_until_ready().await, leases.wait_until_ready().await, pods.wait_until_ready().await] {
        if ready.is_err() {
            return;
        }
    }
    let events = EventRecorder::new(client.clone(), "node-controller");
    // Node name → (what it last reported, when that changed on our clock).
    let mut seen: HashMap<String, (String, Instant)> = HashMap::new();
    let mut marked_not_ready: HashSet<String> = HashSet::new();
    let mut evicted: HashSet<String> = HashSet::new();
    let node_api: Api<Node> = Api::all(client.clone());
    let mut tick = tokio::time::interval(cfg.monitor_period);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let all_nodes = nodes.state();
        let names: HashSet<String> = all_nodes.iter().filter_map(|n| n.metadata.name.clone()).collect();
        seen.retain(|k, _| names.contains(k));
        let mut tainted: HashMap<String, Vec<Taint>> = HashMap::new();
        let mut unknown: HashSet<String> = HashSet::new();
        for node in &all_nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let lease = leases.get(&reflector::ObjectRef::new(&name).within("kube-node-lease"));
            let renew = lease
                .and_then(|l| l.spec.as_ref().and_then(|s| s.renew_time.as_ref().map(|t| t.0.to_string())))
                .unwrap_or_default();
            let heartbeat = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0.to_string()))
                .unwrap_or_default();
            let marker = format!("{renew}|{heartbeat}");
            let entry = seen.entry(name.clone()).or_insert_with(|| (marker.clone(), now));
            if entry.0 != marker {
                *entry = (marker, now);
            }
            let stale = now.duration_since(entry.1) > cfg.grace_period;
            let status = ready_status(node);
            if stale && status.as_deref() != Some("Unknown") {
                tracing::info!(message = "node stopped posting status", node = %name);
                if let Err(e) = mark_unknown(&node_api, node).await {
                    tracing::debug!(message = "marking a node Unknown failed", node = %name, error = %e);
                    continue;
                }
                let r = node_reference(&name, node.metadata.uid.as_deref().unwrap_or_default());
                let _ = events
                    .record(&r, "Normal", "NodeNotReady", &format!("Node {name} status is now: NodeNotReady"))
                    .await;
                // The next tick sees the new status and taints the node.
                continue;
            }
            if let Some(taints) = reconcile_taints(node) {
                let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}});
                if let Err(e) = node_api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    tracing::debug!(message = "updating node taints failed", node = %name, error = %e);
                }
                continue;
            }
            if status.as_deref() == Some("Unknown") {
                unknown.insert(name.clone());
            } else {
                marked_not_ready.retain(|k| !k.starts_with(&format!("{name}/")));
            }
            let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
            if taints.iter().any(|t| t.effect == "NoExecute") {
                tainted.insert(name, taints);
            }
        }
        if tainted.is_empty() && unknown.is_empty() {
            evicted.clear();
            continue;
        }
        let wall = chrono::Utc::now();
        let mut live_uids = HashSet::new();
        for pod in pods.state() {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
            if matches!(phase, "Succeeded" | "Failed") {
                continue;
            }
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            live_uids.insert(uid.clone());
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            if unknown.contains(&node) && marked_not_ready.insert(format!("{node}/{uid}")) {
                mark_pod_not_ready(&client, &events, &pod).await;
            }
            let Some(taints) = tainted.get(&node) else { continue };
            if pod.metadata.deletion_timestamp.is_some() || evicted.contains(&uid) {
                continue;
            }
            if eviction_delay(&pod, taints, wall).is_some_and(|d| d.is_zero()) {
                evicted.insert(uid.clone());
                let r = pod_reference(&ns, &name, &uid);
                let _ = events
                    .record(&r, "Normal", "TaintManagerEviction", &format!("Marking for deletion Pod {ns}/{name}"))
                    .await;
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let cond = json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
                    "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint",
                    "lastTransitionTime": now_str()}]}});
                let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&cond)).await;
                let dp = DeleteParams {
                    preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                    ..Default::default()
                };
                if let Err(e) = api.delete(&name, &dp).await {
                    tracing::debug!(message = "taint eviction failed", pod = %name, error = %e);
                }
            }
        }
        evicted.retain(|u| live_uids.contains(u));
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

async fn mark_unknown(api: &Api<Node>, node: &Node) -> Result<(), kube::Error> {
    let now = now_str();
    let existing: Vec<Value> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| cs.iter().map(|c| serde_json::to_value(c).unwrap_or_default()).collect())
        .unwrap_or_default();
    let mut conds = Vec::new();
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        match existing.iter().find(|c| c["type"] == t) {
            Some(c) => {
                let mut c = c.clone();
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(now);
                conds.push(c);
            }
            None => conds.push(json!({"type": t, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                "message": "Kubelet never posted node status.", "lastHeartbeatTime": now, "lastTransitionTime": now})),
        }
    }
    let patch = json!({"status": {"conditions": conds}});
    api.patch_status(
        node.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Strategic(&patch),
    )
    .await?;
    Ok(())
}

async fn mark_pod_not_ready(client: &kube::Client, events: &EventRecorder, pod: &Pod) {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .cloned();
    let Some(mut cond) = ready.filter(|c| c.status != "False") else { return };
    cond.status = "False".into();
    cond.last_transition_time = Some(to_time(chrono::Utc::now()));
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let patch = json!({"status": {"conditions": [cond]}});
    if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
        tracing::debug!(message = "marking a pod not ready failed", pod = %name, error = %e);
        return;
    }
    let r = pod_reference(&ns, &name, pod.metadata.uid.as_deref().unwrap_or_default());
    let _ = events.record(&r, "Warning", "NodeNotReady", "Node is not ready").await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(tolerations: Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tolerations}}),
        )
        .unwrap()
    }

    fn taint(key: &str, added: chrono::DateTime<chrono::Utc>) -> Taint {
        Taint { key: key.into(), effect: "NoExecute".into(), value: None, time_added: Some(to_time(added)) }
    }

    #[test]
    fn toleration_seconds_decide_the_eviction_time() {
        let now = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap();
        let t = [taint(TAINT_UNREACHABLE, now - chrono::Duration::seconds(3))];
        assert_eq!(eviction_delay(&pod(json!([])), &t, now), Some(Duration::ZERO));
        let p = pod(
            json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]),
        );
        assert_eq!(eviction_delay(&p, &t, now), Some(Duration::from_secs(2)));
        let p = pod(
            json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]),
        );
        assert_eq!(eviction_delay(&p, &t, now), Some(Duration::ZERO));
        let p = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_delay(&p, &t, now), None);
        assert_eq!(eviction_delay(&pod(json!([])), &[], now), None);
    }

    #[test]
    fn taints_follow_readiness_and_cordon() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true,
            "taints": [{"key": "x", "effect": "NoSchedule"}, {"key": TAINT_NOT_READY, "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}))
        .unwrap();
        let t = reconcile_taints(&node).unwrap();
        let keys: Vec<(String, String)> = t.iter().map(|t| (t.key.clone(), t.effect.clone())).collect();
        assert_eq!(
            keys,
            vec![
                ("x".into(), "NoSchedule".into()),
                (TAINT_UNREACHABLE.into(), "NoSchedule".into()),
                (TAINT_UNREACHABLE.into(), "NoExecute".into()),
                (TAINT_UNSCHEDULABLE.into(), "NoSchedule".into()),
            ]
        );
    }
}
