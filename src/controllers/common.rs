//! What the workload controllers share: the reconcile context and error type, the runner with
//! per-object back-off, owner references and adoption, pod predicates, template hashing, int-or-percent
//! arithmetic and ControllerRevisions.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// The label every pod of a ReplicaSet made by a Deployment (and the ReplicaSet itself) carries.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The label naming a pod's ControllerRevision (StatefulSet, DaemonSet).
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// What a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// An API request failed.
    #[error("api request failed: {0}")]
    Api(#[from] kube::Error),
    /// An object could not be (de)serialized.
    #[error("encoding an object: {0}")]
    Json(#[from] serde_json::Error),
    /// The object's spec cannot be acted on.
    #[error("{0}")]
    Invalid(String),
}

/// The context every reconcile gets: the client, an event recorder and per-object failure counts
/// for back-off.
pub struct Ctx {
    /// The in-process API client.
    pub client: Client,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl Ctx {
    fn new(client: Client, name: &str) -> Ctx {
        let reporter = Reporter { controller: format!("{name}-controller"), instance: None };
        Ctx { recorder: Recorder::new(client.clone(), reporter), client, failures: Mutex::new(HashMap::new()) }
    }

    /// Records an Event about `obj` (best effort: a failure is only logged), with upstream's
    /// reasons and wording.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, warning: bool, reason: &str, note: String) {
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::debug!(message = "recording an event failed", reason, error = %e);
        }
    }

    fn reset(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// The next retry delay for `key`: 100 ms doubling to 5 minutes.
    fn backoff(&self, key: &str) -> Duration {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_millis(100u64.saturating_mul(1u64 << (*n - 1).min(12))).min(Duration::from_secs(300))
    }
}

fn key_of<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.meta().namespace.as_deref().unwrap_or(""), obj.meta().name.as_deref().unwrap_or(""))
}

/// Runs a controller: level-triggered reconciles (never two of one object at once, kube-runtime's
/// guarantee), errors requeued with per-object exponential back-off.
pub fn spawn<K, F, Fut>(name: &'static str, client: Client, controller: Controller<K>, reconcile: F) -> JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, ControllerError>> + Send + 'static,
{
    tokio::spawn(run(name, client, controller, reconcile))
}

/// The future [`spawn`] runs, for controllers that run something beside it in one task.
pub fn run<K, F, Fut>(
    name: &'static str,
    client: Client,
    controller: Controller<K>,
    reconcile: F,
) -> impl Future<Output = ()> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, ControllerError>> + Send + 'static,
{
    let ctx = Arc::new(Ctx::new(client, name));
    let reconcile = Arc::new(reconcile);
    async move {
        controller
            .run(
                move |obj: Arc<K>, ctx: Arc<Ctx>| {
                    let key = key_of(obj.as_ref());
                    let fut = reconcile(obj, ctx.clone());
                    async move {
                        let r = fut.await;
                        if r.is_ok() {
                            ctx.reset(&key);
                        }
                        r
                    }
                },
                move |obj: Arc<K>, err: &ControllerError, ctx: Arc<Ctx>| {
                    let key = key_of(obj.as_ref());
                    let delay = ctx.backoff(&key);
                    if is_conflict(err) {
                        tracing::debug!(message = "reconcile conflict, retrying", controller = name, object = %key);
                    } else {
                        tracing::warn!(message = "reconcile failed", controller = name, object = %key, error = %err, retry_ms = delay.as_millis() as u64);
                    }
                    Action::requeue(delay)
                },
                ctx,
            )
            .for_each(|r| async move {
                if let Err(e) = r {
                    tracing::debug!(message = "controller event", controller = name, error = %e);
                }
            })
            .await;
    }
}

/// Maps a pod event to the objects of kind `K` to reconcile: its controller when it has one of
/// that kind, otherwise (an orphan) every object in its namespace whose selector matches (adoption).
pub fn pod_mapper<K>(
    store: Store<K>,
    selector_of: fn(&K) -> Option<LabelSelector>,
) -> impl Fn(Pod) -> Vec<ObjectRef<K>> + Send + Sync + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    move |pod: Pod| {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        if let Some(r) = controller_of(&pod.metadata) {
            if r.kind == K::kind(&()) && r.api_version == K::api_version(&()) {
                return vec![ObjectRef::<K>::new(&r.name).within(&ns)];
            }
            return Vec::new();
        }
        store
            .state()
            .iter()
            .filter(|o| o.meta().namespace.as_deref() == Some(ns.as_str()))
            .filter(|o| selector(selector_of(o).as_ref(), "").is_ok_and(|s| matches(&s, pod.metadata.labels.as_ref())))
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect()
    }
}

/// Whether an error is a 409 (conflict or already exists).
pub fn is_conflict(err: &ControllerError) -> bool {
    matches!(err, ControllerError::Api(kube::Error::Api(s)) if s.code == 409)
}

/// Whether a kube error is a 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// Whether a kube error is a 409 AlreadyExists.
pub fn is_already_exists(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// An owner reference that makes `owner` the controller of an object.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controller owner reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// Whether `uid` is the controller of an object.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// A label selector as a kube `Selector` (an error names the owner).
pub fn selector(sel: Option<&LabelSelector>, owner: &str) -> Result<Selector, ControllerError> {
    let sel = sel.cloned().unwrap_or_default();
    let s = Selector::try_from(sel).map_err(|e| ControllerError::Invalid(format!("{owner}: invalid selector: {e}")))?;
    if s.selects_all() {
        return Err(ControllerError::Invalid(format!("{owner}: an empty selector selects nothing")));
    }
    Ok(s)
}

/// Whether a selector matches a label map.
pub fn matches(sel: &Selector, labels: Option<&BTreeMap<String, String>>) -> bool {
    sel.matches(labels.unwrap_or(&BTreeMap::new()))
}

/// Claims objects for an owner like upstream's ControllerRefManager: keeps the owned ones that
/// still match, adopts matching orphans, releases owned ones that no longer match. Returns the
/// claimed objects.
pub async fn claim<K, O>(api: &Api<K>, owner: &O, sel: &Selector, objects: Vec<K>) -> Result<Vec<K>, ControllerError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
    O: Resource<DynamicType = ()>,
{
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let owner_deleting = owner.meta().deletion_timestamp.is_some();
    let mut out = Vec::new();
    for obj in objects {
        let m = obj.meta();
        let labels_match = matches(sel, m.labels.as_ref());
        match controller_of(m) {
            Some(r) if r.uid == uid => {
                if labels_match || m.deletion_timestamp.is_some() {
                    out.push(obj);
                } else {
                    release(api, &obj, &uid).await?;
                }
            }
            Some(_) => {}
            None => {
                if labels_match && m.deletion_timestamp.is_none() && !owner_deleting {
                    match adopt(api, &obj, controller_ref(owner)).await {
                        Ok(adopted) => out.push(adopted),
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    Ok(out)
}

async fn adopt<K>(api: &Api<K>, obj: &K, owner: OwnerReference) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let mut refs = obj.meta().owner_references.clone().unwrap_or_default();
    refs.push(owner);
    let patch = json!({ "metadata": { "ownerReferences": refs, "resourceVersion": obj.meta().resource_version } });
    api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await
}

async fn release<K>(api: &Api<K>, obj: &K, uid: &str) -> Result<(), ControllerError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let refs: Vec<_> =
        obj.meta().owner_references.clone().unwrap_or_default().into_iter().filter(|r| r.uid != uid).collect();
    let patch = json!({ "metadata": { "ownerReferences": refs, "resourceVersion": obj.meta().resource_version } });
    match api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Lists every object of a kind in a namespace, fresh from the API server (consistent reads: what
/// this controller created a moment ago is in the answer, so it never creates twice).
pub async fn list_all<K>(api: &Api<K>) -> Result<Vec<K>, ControllerError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    Ok(api.list(&ListParams::default()).await?.items)
}

/// Merge-patches an object's status subresource.
pub async fn patch_status<K>(api: &Api<K>, name: &str, status: &Value) -> Result<(), ControllerError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({ "status": status }))).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes an object, a missing one being fine.
pub async fn delete_ignore_missing<K>(api: &Api<K>, name: &str, dp: &DeleteParams) -> Result<(), ControllerError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether a pod still counts (not Succeeded/Failed, not being deleted): upstream's IsPodActive.
pub fn pod_active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    phase != "Succeeded" && phase != "Failed" && p.metadata.deletion_timestamp.is_none()
}

/// A pod's phase ("" when unset).
pub fn pod_phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// When the pod's Ready condition became True, if it is True.
pub fn pod_ready_since(p: &Pod) -> Option<Timestamp> {
    let c = p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    if c.status != "True" {
        return None;
    }
    Some(
        c.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH)),
    )
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(p: &Pod) -> bool {
    pod_ready_since(p).is_some()
}

/// Whether a pod is available: Ready for at least `min_ready` seconds (and not being deleted).
/// Returns the remaining wait when it is ready but not yet available.
pub fn pod_available(p: &Pod, min_ready: i32, at: Timestamp) -> (bool, Option<Duration>) {
    if p.metadata.deletion_timestamp.is_some() {
        return (false, None);
    }
    let Some(since) = pod_ready_since(p) else { return (false, None) };
    if min_ready <= 0 {
        return (true, None);
    }
    let ready_for = at.as_millisecond() - since.as_millisecond();
    let need = i64::from(min_ready) * 1000;
    if ready_for >= need {
        (true, None)
    } else {
        (false, Some(Duration::from_millis((need - ready_for) as u64 + 50)))
    }
}

/// The earliest of two optional delays.
pub fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Resolves an int-or-percent against `total` (percentages round up or down): upstream's
/// GetScaledValueFromIntOrPercent.
pub fn int_or_percent(
    v: Option<&IntOrString>,
    default: &str,
    total: i32,
    round_up: bool,
) -> Result<i32, ControllerError> {
    let v = v.cloned().unwrap_or_else(|| IntOrString::String(default.to_string()));
    match v {
        IntOrString::Int(i) => Ok(i),
        IntOrString::String(s) => {
            let p = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()).ok_or_else(|| {
                ControllerError::Invalid(format!(
                    "invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"
                ))
            })?;
            let scaled = i64::from(total) * p;
            Ok(if round_up { (scaled + 99).div_euclid(100) } else { scaled.div_euclid(100) } as i32)
        }
    }
}

/// FNV-1a, 32 bits (upstream hashes pod templates with it).
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// Renders a hash like upstream's `rand.SafeEncodeString` (no vowels, no confusable characters).
pub fn safe_encode(n: u32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string().bytes().map(|d| ALPHABET[usize::from(d) % ALPHABET.len()] as char).collect()
}

/// The hash of a pod template plus collision count, as used for `pod-template-hash` and
/// ControllerRevision names.
pub fn template_hash(template: &Value, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    safe_encode(fnv32a(&bytes))
}

/// A pod built from a template for an owner (labels, annotations, finalizers, spec).
pub fn pod_from_template(template: &PodTemplateSpec, owner: OwnerReference) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Creates a pod and returns its name; a pod that already exists (cache lag) is fine.
pub async fn create_pod(api: &Api<Pod>, pod: &Pod) -> Result<String, kube::Error> {
    match api.create(&PostParams::default(), pod).await {
        Ok(p) => Ok(p.name_any()),
        Err(e) if is_already_exists(&e) => Ok(pod.name_any()),
        Err(e) => Err(e),
    }
}

/// Creates a pod for `owner` and records upstream's `SuccessfulCreate` / `FailedCreate` events.
pub async fn create_pod_recorded<K: Resource<DynamicType = ()>>(
    ctx: &Ctx,
    owner: &K,
    api: &Api<Pod>,
    pod: &Pod,
) -> Result<(), kube::Error> {
    match create_pod(api, pod).await {
        Ok(name) => {
            ctx.event(owner, false, "SuccessfulCreate", format!("Created pod: {name}")).await;
            Ok(())
        }
        Err(e) => {
            ctx.event(owner, true, "FailedCreate", format!("Error creating: {e}")).await;
            Err(e)
        }
    }
}

/// Deletes a pod of `owner` and records upstream's `SuccessfulDelete` event.
pub async fn delete_pod_recorded<K: Resource<DynamicType = ()>>(
    ctx: &Ctx,
    owner: &K,
    api: &Api<Pod>,
    name: &str,
) -> Result<(), ControllerError> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.event(owner, false, "SuccessfulDelete", format!("Deleted pod: {name}")).await;
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => {
            ctx.event(owner, true, "FailedDelete", format!("Error deleting: {e}")).await;
            Err(e.into())
        }
    }
}

/// Runs `count` creations in upstream's slow-start batches (1, 2, 4, …), stopping at the first
/// batch with an error. Returns how many succeeded and the first error.
pub async fn slow_start<F, Fut>(count: usize, mut make: F) -> (usize, Option<kube::Error>)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<(), kube::Error>>,
{
    let mut done = 0;
    let mut batch = 1usize;
    while done < count {
        let n = batch.min(count - done);
        let results = futures::future::join_all((done..done + n).map(&mut make)).await;
        let mut err = None;
        for r in results {
            match r {
                Ok(()) => done += 1,
                Err(e) => {
                    if err.is_none() {
                        err = Some(e);
                    }
                }
            }
        }
        if err.is_some() {
            return (done, err);
        }
        batch *= 2;
    }
    (done, None)
}

/// A `metav1.Time` for now.
pub fn time_now() -> Time {
    Time(now())
}

/// A Kubernetes-style condition value (JSON) for workloads' status.
pub fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    let t = time_now();
    json!({ "type": type_, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": t, "lastUpdateTime": t })
}

/// Sets a condition in a condition list (JSON values), keeping lastTransitionTime when the status does
/// not change. Returns whether anything but lastUpdateTime changed.
pub fn set_condition(conds: &mut Vec<Value>, mut new: Value, keep_update_time: bool) -> bool {
    let type_ = new["type"].as_str().unwrap_or_default().to_string();
    if let Some(old) = conds.iter_mut().find(|c| c["type"] == type_.as_str()) {
        if old["status"] == new["status"] && old["reason"] == new["reason"] && old["message"] == new["message"] {
            if !keep_update_time && new.get("lastUpdateTime").is_some() && old.get("lastUpdateTime").is_some() {
                old["lastUpdateTime"] = new["lastUpdateTime"].clone();
            }
            return false;
        }
        if old["status"] == new["status"] {
            new["lastTransitionTime"] = old["lastTransitionTime"].clone();
        }
        *old = new;
        return true;
    }
    conds.push(new);
    true
}

/// Removes `lastUpdateTime` from conditions of kinds that do not have it.
pub fn strip_update_time(conds: &mut [Value]) {
    for c in conds {
        if let Some(m) = c.as_object_mut() {
            m.remove("lastUpdateTime");
        }
    }
}

/// ControllerRevision bookkeeping for StatefulSets and DaemonSets: finds or creates the revision
/// holding `patch` (the template as upstream stores it), returns (all revisions, the update
/// revision). `collision_count` is bumped by the caller on a name collision.
pub async fn sync_revision<O>(
    api: &Api<ControllerRevision>,
    owner: &O,
    sel: &Selector,
    template_labels: Option<&BTreeMap<String, String>>,
    patch: Value,
    collision_count: Option<i32>,
) -> Result<(Vec<ControllerRevision>, ControllerRevision), ControllerError>
where
    O: Resource<DynamicType = ()>,
{
    let all = list_all(api).await?;
    let mut revs = claim(api, owner, sel, all).await?;
    revs.sort_by_key(|r| r.revision);
    let max = revs.iter().map(|r| r.revision).max().unwrap_or(0);
    if let Some(existing) = revs.iter().rev().find(|r| r.data.as_ref().map(|d| &d.0) == Some(&patch)) {
        let mut existing = existing.clone();
        if existing.revision < max {
            // Rolled back to an older template: it becomes the newest revision (upstream).
            let p = json!({ "revision": max + 1 });
            existing = api.patch(&existing.name_any(), &PatchParams::default(), &Patch::Merge(&p)).await?;
            for r in revs.iter_mut() {
                if r.name_any() == existing.name_any() {
                    *r = existing.clone();
                }
            }
        }
        return Ok((revs, existing));
    }
    let hash = template_hash(&patch, collision_count);
    let name = format!("{}-{}", owner.name_any(), hash);
    let mut labels = template_labels.cloned().unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH.into(), hash);
    let rev = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            owner_references: Some(vec![controller_ref(owner)]),
            ..Default::default()
        },
        data: Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(patch.clone())),
        revision: max + 1,
    };
    match api.create(&PostParams::default(), &rev).await {
        Ok(created) => {
            revs.push(created.clone());
            Ok((revs, created))
        }
        Err(e) if is_already_exists(&e) => {
            let existing = api.get(&name).await?;
            if existing.data.as_ref().map(|d| &d.0) == Some(&patch) {
                revs.push(existing.clone());
                return Ok((revs, existing));
            }
            Err(ControllerError::Invalid(format!("controller revision {name} collides with another template")))
        }
        Err(e) => Err(e.into()),
    }
}

/// The template stored in a ControllerRevision (`{"spec":{"template":…}}`).
pub fn revision_template(rev: &ControllerRevision) -> Result<PodTemplateSpec, ControllerError> {
    let mut t = rev.data.as_ref().map(|d| d.0["spec"]["template"].clone()).unwrap_or(Value::Null);
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    Ok(serde_json::from_value(t)?)
}

/// Deletes revisions beyond `limit` that no live object uses, oldest first.
pub async fn truncate_revisions(
    api: &Api<ControllerRevision>,
    revs: &[ControllerRevision],
    live: &[&str],
    limit: i32,
) -> Result<(), ControllerError> {
    let unused: Vec<_> = revs.iter().filter(|r| !live.contains(&r.name_any().as_str())).collect();
    let excess = unused.len().saturating_sub(limit.max(0) as usize);
    for r in unused.into_iter().take(excess) {
        delete_ignore_missing(api, &r.name_any(), &DeleteParams::default()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_like_upstream() {
        let p = IntOrString::String("25%".into());
        assert_eq!(int_or_percent(Some(&p), "25%", 10, true).unwrap(), 3);
        assert_eq!(int_or_percent(Some(&p), "25%", 10, false).unwrap(), 2);
        assert_eq!(int_or_percent(None, "25%", 4, false).unwrap(), 1);
        assert_eq!(int_or_percent(Some(&IntOrString::Int(2)), "25%", 10, true).unwrap(), 2);
        assert!(int_or_percent(Some(&IntOrString::String("x".into())), "25%", 10, true).is_err());
    }

    #[test]
    fn hashes_are_safe_strings() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        let h = template_hash(&json!({"a": 1}), None);
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_ne!(h, template_hash(&json!({"a": 1}), Some(1)));
    }

    #[test]
    fn conditions_keep_transition_time() {
        let mut conds = vec![
            json!({"type": "Available", "status": "True", "reason": "A", "message": "m", "lastTransitionTime": "old"}),
        ];
        assert!(set_condition(&mut conds, condition("Available", "True", "B", "n"), false));
        assert_eq!(conds[0]["lastTransitionTime"], "old");
        assert!(!set_condition(&mut conds, condition("Available", "True", "B", "n"), false));
        assert!(set_condition(&mut conds, condition("Available", "False", "B", "n"), false));
        assert_ne!(conds[0]["lastTransitionTime"], "old");
    }
}
