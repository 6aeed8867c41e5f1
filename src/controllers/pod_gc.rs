//! Pod garbage collection, like upstream's podgc controller: pods bound to nodes that no longer
//! exist are marked Failed and deleted; terminated pods over a threshold are deleted oldest
//! first; unscheduled pods that are terminating are deleted at once.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;

use super::node_lifecycle::cached;

/// Settings of the pod GC.
#[derive(Debug, Clone)]
pub struct PodGcConfig {
    /// Terminated pods kept at most (upstream's terminated-pod-gc-threshold).
    pub terminated_threshold: usize,
    /// How often to look (upstream's gcCheckPeriod).
    pub period: Duration,
}

impl Default for PodGcConfig {
    fn default() -> Self {
        PodGcConfig { terminated_threshold: 12_500, period: Duration::from_secs(20) }
    }
}

/// What one pass deletes, by pod: (namespace, name, uid).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Bound to a node that does not exist.
    pub orphaned: Vec<(String, String, String)>,
    /// Terminated pods over the threshold, oldest first.
    pub terminated: Vec<(String, String, String)>,
    /// Terminating and never scheduled.
    pub unscheduled_terminating: Vec<(String, String, String)>,
}

fn id(p: &Pod) -> (String, String, String) {
    (
        p.metadata.namespace.clone().unwrap_or_default(),
        p.metadata.name.clone().unwrap_or_default(),
        p.metadata.uid.clone().unwrap_or_default(),
    )
}

/// Decides what to delete given every pod and the existing node names.
pub fn plan(pods: &[std::sync::Arc<Pod>], nodes: &HashSet<String>, threshold: usize) -> Plan {
    let mut out = Plan::default();
    let mut terminated: Vec<&Pod> = Vec::new();
    for p in pods {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
        let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty());
        if matches!(phase, "Succeeded" | "Failed") {
            terminated.push(p);
        }
        match node {
            Some(n) if !nodes.contains(n) => out.orphaned.push(id(p)),
            None if p.metadata.deletion_timestamp.is_some() => out.unscheduled_terminating.push(id(p)),
            _ => {}
        }
    }
    if terminated.len() > threshold {
        terminated.sort_by(|a, b| {
            let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        let orphaned: HashSet<&String> = out.orphaned.iter().map(|o| &o.2).collect();
        let excess = terminated.len() - threshold;
        out.terminated = terminated.iter().take(excess).map(|p| id(p)).filter(|i| !orphaned.contains(&i.2)).collect();
    }
    out
}

/// Runs the pod GC until its task is aborted.
pub async fn run(client: kube::Client, cfg: PodGcConfig) {
    let (nodes, t1) = cached(Api::<Node>::all(client.clone()));
    let (pods, t2) = cached(Api::<Pod>::all(client.clone()));
    struct Abort(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for Abort {
        fn drop(&mut self) {
            for t in &self.0 {
                t.abort();
            }
        }
    }
    let _guard = Abort(vec![t1, t2]);
    if nodes.wait_until_ready().await.is_err() || pods.wait_until_ready().await.is_err() {
        return;
    }
    let node_api: Api<Node> = Api::all(client.clone());
    let mut tick = tokio::time::interval(cfg.period);
    loop {
        tick.tick().await;
        let names: HashSet<String> = nodes.state().iter().filter_map(|n| n.metadata.name.clone()).collect();
        let p = plan(&pods.state(), &names, cfg.terminated_threshold);
        for (ns, name, uid) in p.orphaned {
            // The informer may lag: make sure the node is really gone.
            let node = pods
                .state()
                .iter()
                .find(|x| x.metadata.uid.as_deref() == Some(uid.as_str()))
                .and_then(|x| x.spec.as_ref().and_then(|s| s.node_name.clone()));
            if let Some(node) = node {
                if !matches!(node_api.get_opt(&node).await, Ok(None)) {
                    continue;
                }
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let status = json!({"status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True",
                "reason": "DeletionByPodGC", "message": "PodGC: node no longer exists",
                "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}]}});
            let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&status)).await;
            force_delete(&client, &ns, &name, &uid).await;
        }
        for (ns, name, uid) in p.terminated.into_iter().chain(p.unscheduled_terminating) {
            force_delete(&client, &ns, &name, &uid).await;
        }
    }
}

async fn force_delete(client: &kube::Client, ns: &str, name: &str, uid: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => tracing::info!(message = "pod garbage-collected", pod = %format!("{ns}/{name}")),
        Err(e) => tracing::debug!(message = "pod GC delete failed", pod = %format!("{ns}/{name}"), error = %e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pod(name: &str, node: Option<&str>, phase: &str, created: &str, deleting: bool) -> Arc<Pod> {
        let mut v = json!({"metadata": {"name": name, "namespace": "d", "uid": name, "creationTimestamp": created},
            "spec": {"containers": [], "nodeName": node}, "status": {"phase": phase}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!(created);
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn plans_orphans_excess_terminated_and_unscheduled_terminating() {
        let nodes: HashSet<String> = ["n1".to_string()].into();
        let pods = vec![
            pod("a", Some("n1"), "Running", "2024-01-01T00:00:00Z", false),
            pod("gone", Some("n2"), "Running", "2024-01-01T00:00:00Z", false),
            pod("old", Some("n1"), "Succeeded", "2024-01-01T00:00:01Z", false),
            pod("older", Some("n1"), "Failed", "2024-01-01T00:00:00Z", false),
            pod("new", Some("n1"), "Succeeded", "2024-01-01T00:00:05Z", false),
            pod("pending", None, "Pending", "2024-01-01T00:00:00Z", true),
            pod("waiting", None, "Pending", "2024-01-01T00:00:00Z", false),
        ];
        let p = plan(&pods, &nodes, 1);
        assert_eq!(p.orphaned, vec![("d".into(), "gone".into(), "gone".into())]);
        let names: Vec<&str> = p.terminated.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(names, vec!["older", "old"]);
        assert_eq!(p.unscheduled_terminating.len(), 1);
        assert!(plan(&pods, &nodes, 3).terminated.is_empty());
    }
}
