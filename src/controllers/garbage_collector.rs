//! The garbage collector: deletes objects whose owners are gone, as upstream's.
//!
//! A graph of `ownerReferences` over every listable resource (built-in and custom, found through
//! discovery, refreshed every 20 s) is kept from metadata-only watches (`PartialObjectMetadata`).
//! Changes enqueue object UIDs in a work queue (deduplicated; an object is never processed twice
//! at once; failures are retried with exponential back-off). Processing one object is
//! level-triggered, from the graph's current state:
//!
//! * **background**: an object whose owners are all gone (absent, or present with another UID) is
//!   deleted; owner references to gone owners next to a live owner are removed instead;
//! * **foreground**: an owner being deleted with the `foregroundDeletion` finalizer has its
//!   dependents deleted (those with `blockOwnerDeletion` first), and loses the finalizer once no
//!   dependent with `blockOwnerDeletion` is left;
//! * **orphan**: an owner being deleted with the `orphan` finalizer has its reference removed from
//!   every dependent, then loses the finalizer.
//!
//! The API server adds `orphan` / `foregroundDeletion` per the delete request's
//! `propagationPolicy`; the garbage collector does the rest.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::PartialObjectMeta;
use kube::discovery::ApiResource;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::resources::{self, Served};

/// Concurrent workers.
const WORKERS: usize = 4;
/// How often discovery is re-read for new or removed resources.
const REDISCOVERY: Duration = Duration::from_secs(20);

/// What went wrong processing one object.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// An API call failed.
    #[error("{action} {resource} {namespace}/{name}: {source}")]
    Api {
        action: &'static str,
        resource: String,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// An owner reference names a kind no served resource has.
    #[error("owner reference to an unknown kind {kind} in {api_version}")]
    UnknownKind { api_version: String, kind: String },
}

/// One object in the graph.
#[derive(Debug, Clone)]
struct Node {
    /// Key of its resource (`group/plural`).
    resource: String,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

impl Node {
    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    /// owner UID → dependent UIDs.
    dependents: HashMap<String, HashSet<String>>,
    /// resource key → served resource.
    resources: HashMap<String, Served>,
    /// (group, kind) → resource key.
    kinds: HashMap<(String, String), String>,
}

impl Graph {
    /// Insert or replace a node; returns the UIDs to process.
    fn upsert(&mut self, uid: &str, node: Node) -> Vec<String> {
        let mut touched = Vec::new();
        if let Some(old) = self.nodes.get(uid) {
            for o in &old.owners {
                if let Some(d) = self.dependents.get_mut(&o.uid) {
                    d.remove(uid);
                    if d.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
            }
        }
        for o in &node.owners {
            self.dependents.entry(o.uid.clone()).or_default().insert(uid.to_string());
        }
        if !node.owners.is_empty() || node.deleting {
            touched.push(uid.to_string());
        }
        // A foreground owner's dependents must go: process them now.
        if node.deleting && node.has_finalizer("foregroundDeletion") {
            touched.extend(self.dependents.get(uid).into_iter().flatten().cloned());
        }
        self.nodes.insert(uid.to_string(), node);
        touched
    }

    /// Remove a node; returns the UIDs to process (its dependents and owners).
    fn remove(&mut self, uid: &str) -> Vec<String> {
        let mut touched = Vec::new();
        if let Some(old) = self.nodes.remove(uid) {
            for o in &old.owners {
                if let Some(d) = self.dependents.get_mut(&o.uid) {
                    d.remove(uid);
                    if d.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
                touched.push(o.uid.clone());
            }
        }
        touched.extend(self.dependents.get(uid).into_iter().flatten().cloned());
        touched
    }

    fn dependents_of(&self, uid: &str) -> Vec<(String, Node)> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d).map(|n| (d.clone(), n.clone())))
            .collect()
    }
}

/// A work queue with client-go's semantics: an item is queued at most once and never handed to
/// two workers at once; an item added while being processed is processed again afterwards.
#[derive(Default)]
struct Queue {
    inner: Mutex<QueueInner>,
    notify: Notify,
}

#[derive(Default)]
struct QueueInner {
    order: VecDeque<String>,
    queued: HashSet<String>,
    active: HashSet<String>,
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
}

impl Queue {
    fn add(&self, uid: String) {
        let mut q = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if q.active.contains(&uid) {
            q.dirty.insert(uid);
        } else if q.queued.insert(uid.clone()) {
            q.order.push_back(uid);
            self.notify.notify_one();
        }
    }

    async fn next(&self) -> String {
        loop {
            let notified = self.notify.notified();
            {
                let mut q = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(uid) = q.order.pop_front() {
                    q.queued.remove(&uid);
                    q.active.insert(uid.clone());
                    if !q.order.is_empty() {
                        self.notify.notify_one();
                    }
                    return uid;
                }
            }
            notified.await;
        }
    }

    /// Done with `uid`; on failure, the delay before it is retried.
    fn done(&self, uid: &str, failed: bool) -> Option<Duration> {
        let mut q = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        q.active.remove(uid);
        let delay = if failed {
            let n = q.failures.entry(uid.to_string()).or_insert(0);
            *n += 1;
            Some(Duration::from_millis(50u64.saturating_mul(1 << (*n).min(12))).min(Duration::from_secs(300)))
        } else {
            q.failures.remove(uid);
            None
        };
        let again = q.dirty.remove(uid);
        drop(q);
        if again && delay.is_none() {
            self.add(uid.to_string());
        }
        delay
    }
}

struct Gc {
    client: kube::Client,
    graph: Mutex<Graph>,
    queue: Queue,
}

/// Run the garbage collector until aborted.
pub async fn run(client: kube::Client) {
    let gc = Arc::new(Gc { client, graph: Mutex::new(Graph::default()), queue: Queue::default() });
    let mut watchers: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut workers = Vec::new();
    loop {
        match resources::discover(&gc.client).await {
            Ok(served) => {
                let first = watchers.is_empty();
                let synced = gc.refresh(served, &mut watchers);
                if first {
                    // Work starts once every resource has been listed: before that a dependent
                    // could look orphaned only because its owner's list has not arrived.
                    for rx in synced {
                        let _ = rx.await;
                    }
                    tracing::debug!(message = "garbage collector graph synced", resources = watchers.len());
                    for _ in 0..WORKERS {
                        let gc = gc.clone();
                        workers.push(tokio::spawn(async move { gc.work().await }));
                    }
                }
            }
            Err(e) => tracing::warn!(message = "garbage collector discovery failed", error = %e),
        }
        tokio::time::sleep(REDISCOVERY).await;
    }
}

impl Gc {
    /// Start watchers for new resources and drop removed ones; returns a receiver per new
    /// watcher that fires after its first complete list.
    fn refresh(
        self: &Arc<Self>,
        served: Vec<Served>,
        watchers: &mut HashMap<String, JoinHandle<()>>,
    ) -> Vec<tokio::sync::oneshot::Receiver<()>> {
        let mut synced = Vec::new();
        let keys: HashSet<String> = served.iter().map(|s| key(&s.resource)).collect();
        let mut touched = Vec::new();
        {
            let mut g = self.graph.lock().unwrap_or_else(|e| e.into_inner());
            g.kinds = served
                .iter()
                .map(|s| ((s.resource.group.clone(), s.resource.kind.clone()), key(&s.resource)))
                .collect();
            g.resources = served.iter().map(|s| (key(&s.resource), s.clone())).collect();
            let gone: Vec<String> = watchers.keys().filter(|k| !keys.contains(*k)).cloned().collect();
            for k in gone {
                if let Some(h) = watchers.remove(&k) {
                    h.abort();
                }
                let uids: Vec<String> =
                    g.nodes.iter().filter(|(_, n)| n.resource == k).map(|(u, _)| u.clone()).collect();
                for u in uids {
                    touched.extend(g.remove(&u));
                }
            }
        }
        for u in touched {
            self.queue.add(u);
        }
        for s in served.into_iter().filter(resources::watchable) {
            let k = key(&s.resource);
            if watchers.contains_key(&k) {
                continue;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            synced.push(rx);
            let gc = self.clone();
            watchers.insert(k.clone(), tokio::spawn(async move { gc.watch(k, s.resource, tx).await }));
        }
        synced
    }

    /// Feed one resource's metadata watch into the graph.
    async fn watch(self: Arc<Self>, rkey: String, ar: ApiResource, synced: tokio::sync::oneshot::Sender<()>) {
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.client.clone(), &ar);
        let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut synced = Some(synced);
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::debug!(message = "garbage collector watch failed", resource = %rkey, error = %e);
                    continue;
                }
            };
            let touched = {
                let mut g = self.graph.lock().unwrap_or_else(|e| e.into_inner());
                match ev {
                    Event::Init => {
                        seen.clear();
                        Vec::new()
                    }
                    Event::InitApply(o) => {
                        let Some((uid, node)) = node_of(&rkey, o) else { continue };
                        seen.insert(uid.clone());
                        g.upsert(&uid, node)
                    }
                    Event::InitDone => {
                        // Objects gone while the watch was down.
                        let stale: Vec<String> = g
                            .nodes
                            .iter()
                            .filter(|(u, n)| n.resource == rkey && !seen.contains(*u))
                            .map(|(u, _)| u.clone())
                            .collect();
                        let mut t = Vec::new();
                        for u in stale {
                            t.extend(g.remove(&u));
                        }
                        seen.clear();
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                        t
                    }
                    Event::Apply(o) => match node_of(&rkey, o) {
                        Some((uid, node)) => g.upsert(&uid, node),
                        None => continue,
                    },
                    Event::Delete(o) => match o.metadata.uid.as_deref() {
                        Some(uid) => g.remove(uid),
                        None => continue,
                    },
                }
            };
            for u in touched {
                self.queue.add(u);
            }
        }
    }

    async fn work(self: Arc<Self>) {
        loop {
            let uid = self.queue.next().await;
            let result = self.process(&uid).await;
            if let Err(e) = &result {
                tracing::debug!(message = "garbage collection failed; retrying", uid = %uid, error = %e);
            }
            if let Some(delay) = self.queue.done(&uid, result.is_err()) {
                let gc = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    gc.queue.add(uid);
                });
            }
        }
    }

    /// Bring one object to where the graph says it should be.
    async fn process(&self, uid: &str) -> Result<(), GcError> {
        let Some(node) = self.graph.lock().unwrap_or_else(|e| e.into_inner()).nodes.get(uid).cloned() else {
            return Ok(());
        };
        if node.deleting {
            if node.has_finalizer("orphan") {
                return self.orphan(uid, &node).await;
            }
            if node.has_finalizer("foregroundDeletion") {
                return self.foreground(uid, &node).await;
            }
            return Ok(());
        }
        self.attempt_delete(uid, &node).await
    }

    /// Remove the references to `uid` from its dependents, then the `orphan` finalizer.
    async fn orphan(&self, uid: &str, node: &Node) -> Result<(), GcError> {
        let dependents = self.graph.lock().unwrap_or_else(|e| e.into_inner()).dependents_of(uid);
        for (_, d) in dependents {
            self.drop_owner_refs(&d, &[uid.to_string()]).await?;
        }
        self.remove_finalizer(uid, node, "orphan").await
    }

    /// Delete the dependents of a foreground-deleting owner; drop its finalizer once no blocking
    /// dependent is left.
    async fn foreground(&self, uid: &str, node: &Node) -> Result<(), GcError> {
        let mut dependents = self.graph.lock().unwrap_or_else(|e| e.into_inner()).dependents_of(uid);
        let blocks = |n: &Node| n.owners.iter().any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
        // Those holding the owner first.
        dependents.sort_by_key(|(_, n)| !blocks(n));
        let mut blocking = 0;
        for (duid, d) in &dependents {
            if blocks(d) {
                blocking += 1;
            }
            if !d.deleting {
                self.attempt_delete(duid, d).await?;
            }
        }
        if blocking > 0 {
            // Processed again when a dependent changes or goes.
            return Ok(());
        }
        self.remove_finalizer(uid, node, "foregroundDeletion").await
    }

    /// Delete `node` if none of its owners is alive; remove references to gone owners otherwise.
    async fn attempt_delete(&self, uid: &str, node: &Node) -> Result<(), GcError> {
        if node.owners.is_empty() {
            return Ok(());
        }
        let (mut solid, mut dangling, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        for o in &node.owners {
            match self.owner_state(node, o).await? {
                OwnerState::Solid => solid.push(o.uid.clone()),
                OwnerState::Dangling => dangling.push(o.uid.clone()),
                OwnerState::Waiting => waiting.push(o.uid.clone()),
            }
        }
        if !solid.is_empty() {
            let drop: Vec<String> = dangling.into_iter().chain(waiting).collect();
            if drop.is_empty() {
                return Ok(());
            }
            return self.drop_owner_refs(node, &drop).await;
        }
        let has_dependents =
            self.graph.lock().unwrap_or_else(|e| e.into_inner()).dependents.get(uid).is_some_and(|d| !d.is_empty());
        let policy = if !waiting.is_empty() && has_dependents {
            PropagationPolicy::Foreground
        } else if node.has_finalizer("orphan") {
            PropagationPolicy::Orphan
        } else if node.has_finalizer("foregroundDeletion") {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        let (api, res) = self.api_for(&node.resource, node.namespace.as_deref())?;
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..DeleteParams::default()
        };
        tracing::debug!(message = "garbage collecting", resource = %res, namespace = ?node.namespace, name = %node.name);
        match api.delete(&node.name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(source) => Err(self.api_error("deleting", node, source)),
        }
    }

    /// Whether the owner `o` of `node` exists with the referenced UID (from the graph, else a
    /// live read: its watch may lag behind the dependent's).
    async fn owner_state(&self, node: &Node, o: &OwnerReference) -> Result<OwnerState, GcError> {
        let owner_key = {
            let g = self.graph.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(owner) = g.nodes.get(&o.uid) {
                return Ok(if owner.deleting && owner.has_finalizer("foregroundDeletion") {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                });
            }
            let group = o.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            g.kinds.get(&(group.to_string(), o.kind.clone())).cloned()
        };
        let Some(owner_key) = owner_key else {
            return Err(GcError::UnknownKind { api_version: o.api_version.clone(), kind: o.kind.clone() });
        };
        let (api, _) = self.api_for(&owner_key, node.namespace.as_deref())?;
        match api.get_metadata_opt(&o.name).await {
            Ok(Some(m)) if m.metadata.uid.as_deref() == Some(o.uid.as_str()) => {
                let deleting = m.metadata.deletion_timestamp.is_some();
                let fg = m.metadata.finalizers.unwrap_or_default().iter().any(|f| f == "foregroundDeletion");
                Ok(if deleting && fg { OwnerState::Waiting } else { OwnerState::Solid })
            }
            Ok(_) => Ok(OwnerState::Dangling),
            Err(source) => Err(GcError::Api {
                action: "reading the owner",
                resource: owner_key,
                namespace: node.namespace.clone().unwrap_or_default(),
                name: o.name.clone(),
                source: Box::new(source),
            }),
        }
    }

    /// Remove the owner references with these UIDs from `node` (read fresh, written with a
    /// resourceVersion test so a concurrent change is never overwritten).
    async fn drop_owner_refs(&self, node: &Node, uids: &[String]) -> Result<(), GcError> {
        let (api, _) = self.api_for(&node.resource, node.namespace.as_deref())?;
        let cur = match api.get_metadata_opt(&node.name).await {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(source) => return Err(self.api_error("reading", node, source)),
        };
        let refs = cur.metadata.owner_references.clone().unwrap_or_default();
        let keep: Vec<&OwnerReference> = refs.iter().filter(|r| !uids.contains(&r.uid)).collect();
        if keep.len() == refs.len() {
            return Ok(());
        }
        let patch = json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": cur.metadata.resource_version},
            {"op": "replace", "path": "/metadata/ownerReferences", "value": keep},
        ]);
        self.json_patch(&api, node, patch).await
    }

    /// Remove `finalizer` from the owner `uid`.
    async fn remove_finalizer(&self, uid: &str, node: &Node, finalizer: &str) -> Result<(), GcError> {
        let (api, _) = self.api_for(&node.resource, node.namespace.as_deref())?;
        let cur = match api.get_metadata_opt(&node.name).await {
            Ok(Some(m)) if m.metadata.uid.as_deref() == Some(uid) => m,
            Ok(_) => return Ok(()),
            Err(source) => return Err(self.api_error("reading", node, source)),
        };
        let finalizers = cur.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let keep: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
        let patch = json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": cur.metadata.resource_version},
            {"op": "replace", "path": "/metadata/finalizers", "value": keep},
        ]);
        self.json_patch(&api, node, patch).await
    }

    async fn json_patch(&self, api: &Api<DynamicObject>, node: &Node, patch: serde_json::Value) -> Result<(), GcError> {
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a well-formed JSON patch");
        match api.patch(&node.name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(self.api_error("patching", node, source)),
        }
    }

    fn api_for(&self, rkey: &str, namespace: Option<&str>) -> Result<(Api<DynamicObject>, String), GcError> {
        let g = self.graph.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = g.resources.get(rkey) else {
            return Err(GcError::UnknownKind { api_version: rkey.to_string(), kind: String::new() });
        };
        let api = match (s.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &s.resource),
            _ => Api::all_with(self.client.clone(), &s.resource),
        };
        Ok((api, s.group_resource()))
    }

    fn api_error(&self, action: &'static str, node: &Node, source: kube::Error) -> GcError {
        GcError::Api {
            action,
            resource: node.resource.clone(),
            namespace: node.namespace.clone().unwrap_or_default(),
            name: node.name.clone(),
            source: Box::new(source),
        }
    }
}

enum OwnerState {
    /// Exists with the referenced UID.
    Solid,
    /// Gone, or replaced by another object of that name.
    Dangling,
    /// Being deleted in the foreground: waits for its dependents.
    Waiting,
}

fn key(ar: &ApiResource) -> String {
    format!("{}/{}", ar.group, ar.plural)
}

fn node_of(rkey: &str, o: PartialObjectMeta<DynamicObject>) -> Option<(String, Node)> {
    let m = o.metadata;
    let uid = m.uid?;
    Some((
        uid,
        Node {
            resource: rkey.to_string(),
            namespace: m.namespace,
            name: m.name.unwrap_or_default(),
            owners: m.owner_references.unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
            finalizers: m.finalizers.unwrap_or_default(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(owners: &[&str], deleting: bool, finalizers: &[&str]) -> Node {
        Node {
            resource: "/configmaps".into(),
            namespace: Some("d".into()),
            name: "n".into(),
            owners: owners
                .iter()
                .map(|u| OwnerReference {
                    uid: u.to_string(),
                    name: "o".into(),
                    kind: "ConfigMap".into(),
                    api_version: "v1".into(),
                    ..Default::default()
                })
                .collect(),
            deleting,
            finalizers: finalizers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn graph_tracks_dependents_and_triggers() {
        let mut g = Graph::default();
        assert!(g.upsert("owner", node(&[], false, &[])).is_empty());
        assert_eq!(g.upsert("dep", node(&["owner"], false, &[])), vec!["dep"]);
        assert_eq!(g.dependents_of("owner").len(), 1);
        // The owner turning foreground-deleting triggers its dependents.
        let t = g.upsert("owner", node(&[], true, &["foregroundDeletion"]));
        assert!(t.contains(&"dep".to_string()) && t.contains(&"owner".to_string()));
        // The owner going triggers the dependent; the dependent going triggers the owner.
        assert_eq!(g.remove("owner"), vec!["dep"]);
        assert_eq!(g.remove("dep"), vec!["owner"]);
        assert!(g.dependents.is_empty());
        // Changing owners moves the reverse index.
        g.upsert("dep", node(&["a"], false, &[]));
        g.upsert("dep", node(&["b"], false, &[]));
        assert!(g.dependents_of("a").is_empty());
        assert_eq!(g.dependents_of("b").len(), 1);
    }

    #[tokio::test]
    async fn queue_never_hands_out_an_item_twice_at_once() {
        let q = Queue::default();
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        let first = q.next().await;
        assert_eq!(first, "a");
        q.add("a".into()); // while active: processed again after done
        assert_eq!(q.next().await, "b");
        assert_eq!(q.done("a", false), None);
        assert_eq!(q.next().await, "a");
        assert!(q.done("a", true).is_some());
        assert!(q.done("b", false).is_none());
        assert!(q.inner.lock().unwrap().order.is_empty());
    }
}
