//! The scheduler: binds pending pods of the default scheduler to nodes through `pods/binding`.
//!
//! Watches of nodes, pods and namespaces feed one [`ClusterState`] (per-node aggregates, updated
//! incrementally) and a priority queue with back-off. One loop takes the next pod, filters and
//! scores every node ([`plugins::schedule`], O(nodes) per pod), assumes the pod onto the chosen
//! node at once and binds it in a separate task, so bindings run concurrently. A pod that fits
//! nowhere gets upstream's FailedScheduling event and PodScheduled=False condition and waits until
//! nodes or pods change (or a minute passes); with lower-priority pods in the way it preempts them.

pub mod cache;
pub mod model;
pub mod plugins;
mod queue;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use crate::event_recorder::{pod_reference, EventRecorder};
use cache::ClusterState;
use model::{PodInfo, DEFAULT_SCHEDULER};
use plugins::Decision;
use queue::Queue;

/// How many bindings may be in flight at once.
const MAX_CONCURRENT_BINDS: usize = 64;

struct Inner {
    client: kube::Client,
    state: Mutex<(ClusterState, Queue)>,
    wake: Notify,
    events: EventRecorder,
    /// Set once the node and pod watches each listed everything (upstream's cache sync).
    nodes_synced: AtomicBool,
    pods_synced: AtomicBool,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, (ClusterState, Queue)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the scheduler until its task is aborted.
pub async fn run(client: kube::Client) {
    let inner = Arc::new(Inner {
        events: EventRecorder::new(client.clone(), DEFAULT_SCHEDULER),
        client,
        state: Mutex::new((ClusterState::default(), Queue::default())),
        wake: Notify::new(),
        nodes_synced: AtomicBool::new(false),
        pods_synced: AtomicBool::new(false),
    });
    let tasks = [
        tokio::spawn(watch_nodes(inner.clone())),
        tokio::spawn(watch_pods(inner.clone())),
        tokio::spawn(watch_namespaces(inner.clone())),
    ];
    schedule_loop(inner).await;
    for t in tasks {
        t.abort();
    }
}

async fn watch_nodes(inner: Arc<Inner>) {
    let api: Api<Node> = Api::all(inner.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut seen = std::collections::HashSet::new();
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(message = "node watch error", error = %e);
                continue;
            }
        };
        let mut g = inner.lock();
        let (state, queue) = &mut *g;
        match ev {
            watcher::Event::Init => seen.clear(),
            watcher::Event::InitApply(n) => {
                seen.insert(n.metadata.name.clone().unwrap_or_default());
                state.upsert_node(&n);
            }
            watcher::Event::InitDone => {
                let gone: Vec<String> = state.nodes.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                for k in gone {
                    state.remove_node(&k);
                }
                queue.cluster_changed(false);
                inner.nodes_synced.store(true, Ordering::Release);
            }
            watcher::Event::Apply(n) => {
                state.upsert_node(&n);
                queue.cluster_changed(false);
            }
            watcher::Event::Delete(n) => {
                state.remove_node(n.metadata.name.as_deref().unwrap_or_default());
                queue.cluster_changed(false);
            }
        }
        drop(g);
        inner.wake.notify_one();
    }
}

async fn watch_namespaces(inner: Arc<Inner>) {
    let api: Api<Namespace> = Api::all(inner.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = stream.next().await {
        let Ok(ev) = ev else { continue };
        let mut g = inner.lock();
        let (state, queue) = &mut *g;
        match ev {
            watcher::Event::InitApply(n) | watcher::Event::Apply(n) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                let labels = n.metadata.labels.clone().unwrap_or_default();
                if state.namespaces.get(&name) != Some(&labels) {
                    state.namespaces.insert(name, labels);
                    queue.cluster_changed(true);
                }
            }
            watcher::Event::Delete(n) => {
                state.namespaces.remove(n.metadata.name.as_deref().unwrap_or_default());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
}

async fn watch_pods(inner: Arc<Inner>) {
    let api: Api<Pod> = Api::all(inner.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut seen = std::collections::HashSet::new();
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(message = "pod watch error", error = %e);
                continue;
            }
        };
        let mut g = inner.lock();
        let (state, queue) = &mut *g;
        match ev {
            watcher::Event::Init => seen.clear(),
            watcher::Event::InitApply(p) => {
                let info = PodInfo::from_pod(&p);
                seen.insert(info.key.clone());
                apply_pod(state, queue, info);
            }
            watcher::Event::InitDone => {
                let gone: Vec<String> = state.pods.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                for k in gone {
                    state.remove_pod(&k);
                    queue.remove(&k);
                }
                queue.cluster_changed(false);
                inner.pods_synced.store(true, Ordering::Release);
            }
            watcher::Event::Apply(p) => apply_pod(state, queue, PodInfo::from_pod(&p)),
            watcher::Event::Delete(p) => {
                let key = format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or_default(),
                    p.metadata.name.as_deref().unwrap_or_default()
                );
                if let Some(old) = state.remove_pod(&key) {
                    if old.node_name.is_some() {
                        queue.cluster_changed(false);
                    }
                }
                queue.remove(&key);
            }
        }
        drop(g);
        inner.wake.notify_one();
    }
}

fn apply_pod(state: &mut ClusterState, queue: &mut Queue, info: PodInfo) {
    let wants = info.wants_scheduling();
    let bound = info.node_name.is_some();
    let freed = bound && (info.terminal || info.deleting);
    let key = info.key.clone();
    let priority = info.priority;
    let signature = info.signature;
    let affinity_related = info.has_pod_affinity() || !info.spread.is_empty();
    let old = state.upsert_pod(info);
    if wants && !state.assumed.contains_key(&key) {
        queue.add_or_update(&key, priority, signature, affinity_related);
    } else if !wants {
        queue.remove(&key);
    }
    let was_bound = old.as_ref().is_some_and(|o| o.node_name.is_some());
    let was_freed = old.as_ref().is_some_and(|o| o.terminal || o.deleting);
    if freed && !was_freed {
        queue.cluster_changed(false);
    } else if bound && !was_bound {
        // A newly placed pod can satisfy affinity or spreading of others.
        queue.cluster_changed(true);
    }
}

async fn schedule_loop(inner: Arc<Inner>) {
    // Decide nothing on a partial view of the cluster.
    while !(inner.nodes_synced.load(Ordering::Acquire) && inner.pods_synced.load(Ordering::Acquire)) {
        let _ = tokio::time::timeout(Duration::from_millis(100), inner.wake.notified()).await;
    }
    let binds = Arc::new(Semaphore::new(MAX_CONCURRENT_BINDS));
    loop {
        let permit = match binds.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        let next = {
            let mut g = inner.lock();
            let (_, queue) = &mut *g;
            queue.flush(std::time::Instant::now());
            queue.pop()
        };
        let key = match next {
            Ok(k) => k,
            Err(wait) => {
                drop(permit);
                let wait = wait.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
                let _ = tokio::time::timeout(wait, inner.wake.notified()).await;
                continue;
            }
        };
        let work = {
            let mut g = inner.lock();
            let (state, queue) = &mut *g;
            match state.pods.get(&key).cloned() {
                Some(pod) if pod.wants_scheduling() => {
                    let decision = plugins::schedule(state, &pod, &mut |n| rand::random_range(0..n));
                    match &decision {
                        Decision::Fit(node) => state.assume(&key, node),
                        Decision::NoFit { .. } => queue.unschedulable(&key),
                    }
                    Some((pod, decision))
                }
                _ => {
                    queue.remove(&key);
                    None
                }
            }
        };
        let Some((pod, decision)) = work else { continue };
        match decision {
            Decision::Fit(node) => {
                let inner = inner.clone();
                tokio::spawn(async move {
                    bind(&inner, &pod, &node).await;
                    drop(permit);
                });
            }
            Decision::NoFit { message, preemption } => {
                drop(permit);
                let inner = inner.clone();
                tokio::spawn(async move { unschedulable(&inner, &pod, &message, preemption).await });
            }
        }
    }
}

async fn bind(inner: &Arc<Inner>, pod: &PodInfo, node: &str) {
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), &pod.namespace);
    let binding: Binding = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }))
    .expect("a well-formed binding");
    match api.create_subresource::<_, serde_json::Value>("binding", &pod.name, &PostParams::default(), &binding).await {
        Ok(_) => {
            inner.lock().1.remove(&pod.key);
            let r = pod_reference(&pod.namespace, &pod.name, &pod.uid);
            let msg = format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name);
            if let Err(e) = inner.events.record(&r, "Normal", "Scheduled", &msg).await {
                tracing::debug!(message = "event failed", error = %e);
            }
        }
        Err(e) => {
            tracing::debug!(message = "binding failed", pod = %pod.key, node, error = %e);
            let mut g = inner.lock();
            let (state, queue) = &mut *g;
            state.forget(&pod.key);
            match &e {
                // Gone, or already bound (by someone else): the watch tells the rest.
                kube::Error::Api(s) if s.code == 404 || s.code == 409 => queue.remove(&pod.key),
                _ => queue.backoff(&pod.key),
            }
            drop(g);
            inner.wake.notify_one();
        }
    }
}

async fn unschedulable(inner: &Arc<Inner>, pod: &PodInfo, message: &str, preemption: Option<plugins::Preemption>) {
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), &pod.namespace);
    let r = pod_reference(&pod.namespace, &pod.name, &pod.uid);
    if let Err(e) = inner.events.record(&r, "Warning", "FailedScheduling", message).await {
        tracing::debug!(message = "event failed", error = %e);
    }
    if pod.unschedulable_message.as_deref() != Some(message) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let patch = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": now}]}});
        if let Err(e) = api.patch_status(&pod.name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
            tracing::debug!(message = "pod status update failed", pod = %pod.key, error = %e);
        }
    }
    let Some((node, victims)) = preemption else { return };
    tracing::info!(message = "preempting", pod = %pod.key, node, victims = victims.len());
    let patch = json!({"status": {"nominatedNodeName": node}});
    if let Err(e) = api.patch_status(&pod.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        tracing::debug!(message = "nominating failed", pod = %pod.key, error = %e);
    }
    for v in victims {
        let vapi: Api<Pod> = Api::namespaced(inner.client.clone(), &v.namespace);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let cond = json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
            "reason": "PreemptionByScheduler", "message": format!("{DEFAULT_SCHEDULER}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": now}]}});
        let _ = vapi.patch_status(&v.name, &PatchParams::default(), &Patch::Strategic(&cond)).await;
        let vr = pod_reference(&v.namespace, &v.name, &v.uid);
        let msg = format!("Preempted by pod {} on node {node}", pod.uid);
        let _ = inner.events.record(&vr, "Normal", "Preempted", &msg).await;
        let dp = DeleteParams {
            preconditions: Some(kube::api::Preconditions { uid: Some(v.uid.clone()), resource_version: None }),
            ..Default::default()
        };
        if let Err(e) = vapi.delete(&v.name, &dp).await {
            tracing::debug!(message = "deleting a victim failed", pod = %v.key, error = %e);
        }
    }
}
