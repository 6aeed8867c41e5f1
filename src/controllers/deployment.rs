//! The Deployment controller (upstream's pkg/controller/deployment): one ReplicaSet per pod
//! template (named `<deployment>-<pod-template-hash>`), RollingUpdate within maxSurge /
//! maxUnavailable, Recreate, proportional scaling, pause, revision annotations (which `kubectl
//! rollout undo` reads), revisionHistoryLimit clean-up, and the Progressing / Available conditions
//! and counters `kubectl rollout status` reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::common::{self, ControllerError, Ctx, POD_TEMPLATE_HASH};

/// The revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Former revisions of a ReplicaSet reused by a rollback.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";

/// Starts the Deployment controller.
pub fn spawn(client: Client) -> JoinHandle<()> {
    let controller = Controller::new(Api::<Deployment>::all(client.clone()), watcher::Config::default())
        .owns(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default());
    common::spawn("deployment", client, controller, reconcile)
}

struct Rollout {
    ctx: Arc<Ctx>,
    d: Deployment,
    spec: DeploymentSpec,
    replicas: i32,
    rs_api: Api<ReplicaSet>,
    ns: String,
    name: String,
}

async fn reconcile(obj: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, ControllerError> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(d) = api.get_opt(&obj.name_any()).await? else { return Ok(Action::await_change()) };
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = d.name_any();
    let spec = d.spec.clone().unwrap_or_default();
    let sel = common::selector(Some(&spec.selector), &format!("deployment {ns}/{name}"))?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let all = common::list_all(&rs_api).await?;
    let mut rss = common::claim(&rs_api, &d, &sel, all).await?;
    rss.sort_by_key(|r| r.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let r = Rollout { ctx: ctx.clone(), replicas: spec.replicas.unwrap_or(1), spec, d, rs_api, ns, name };

    // Wait until every ReplicaSet has acted on its last spec change: its status is then what the
    // rollout arithmetic needs (no pods counted twice, none counted as available after deletion).
    let settled = rss.iter().all(|rs| {
        rs.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0) >= rs.metadata.generation.unwrap_or(0)
    });

    let paused = r.spec.paused == Some(true);
    let mut new_rs_created = None;
    let mut requeue = None;
    if settled {
        if paused || is_scaling_event(&r, &rss) {
            let (new_rs, old) = r.sync_revision(&mut rss, false).await?;
            r.scale(new_rs.as_ref(), &old).await?;
            if paused {
                r.cleanup(new_rs.as_ref(), &old).await?;
            }
        } else if strategy_type(&r.spec) == "Recreate" {
            new_rs_created = r.recreate(&mut rss).await?;
        } else {
            new_rs_created = r.rolling(&mut rss).await?;
        }
        rss = common::list_all(&r.rs_api)
            .await?
            .into_iter()
            .filter(|rs| common::is_controlled_by(&rs.metadata, r.d.metadata.uid.as_deref().unwrap_or_default()))
            .collect();
    }
    let wait = r.sync_status(&api, &rss, new_rs_created.as_deref(), settled).await?;
    requeue = common::earliest(requeue, wait);
    Ok(Action::requeue(requeue.unwrap_or(Duration::from_secs(300))))
}

fn strategy_type(spec: &DeploymentSpec) -> &str {
    spec.strategy.as_ref().and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate")
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations().get(REVISION).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The template without the pod-template-hash label, as JSON, for equality checks.
fn template_key(t: Option<&PodTemplateSpec>) -> Value {
    let mut v = serde_json::to_value(t.cloned().unwrap_or_default()).unwrap_or(Value::Null);
    if let Some(labels) = v.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty() {
            v["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
    if v.get("metadata").and_then(Value::as_object).is_some_and(|m| m.is_empty()) {
        v.as_object_mut().map(|m| m.remove("metadata"));
    }
    v
}

/// A scaling event: some active ReplicaSet's desired-replicas annotation differs from the spec.
fn is_scaling_event(r: &Rollout, rss: &[ReplicaSet]) -> bool {
    rss.iter().filter(|rs| rs_replicas(rs) > 0).any(|rs| {
        rs.annotations().get(DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok()).is_some_and(|v| v != r.replicas)
    })
}

impl Rollout {
    fn max_surge(&self) -> Result<i32, ControllerError> {
        if strategy_type(&self.spec) != "RollingUpdate" {
            return Ok(0);
        }
        let ru = self.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
        let surge = common::int_or_percent(ru.and_then(|r| r.max_surge.as_ref()), "25%", self.replicas, true)?;
        Ok(surge)
    }

    fn max_unavailable(&self) -> Result<i32, ControllerError> {
        if strategy_type(&self.spec) != "RollingUpdate" || self.replicas == 0 {
            return Ok(0);
        }
        let ru = self.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
        let surge = common::int_or_percent(ru.and_then(|r| r.max_surge.as_ref()), "25%", self.replicas, true)?;
        // Upstream: both zero would deadlock, so maxUnavailable becomes 1.
        let mut unavail =
            common::int_or_percent(ru.and_then(|r| r.max_unavailable.as_ref()), "25%", self.replicas, false)?;
        if surge == 0 && unavail == 0 {
            unavail = 1;
        }
        Ok(unavail.min(self.replicas))
    }

    /// Finds the new ReplicaSet (template equal to the Deployment's) and the old ones; syncs revision
    /// annotations; creates the new one when asked. Returns (new, old).
    async fn sync_revision(
        &self,
        rss: &mut Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), ControllerError> {
        let key = template_key(Some(&self.spec.template));
        let new_idx = rss.iter().position(|rs| template_key(rs.spec.as_ref().and_then(|s| s.template.as_ref())) == key);
        let old: Vec<ReplicaSet> =
            rss.iter().enumerate().filter(|(i, _)| Some(*i) != new_idx).map(|(_, rs)| rs.clone()).collect();
        let max_old = old.iter().map(revision_of).max().unwrap_or(0);
        let new_revision = (max_old + 1).to_string();
        let max_surge = self.max_surge()?;
        if let Some(i) = new_idx {
            let rs = rss[i].clone();
            let mut ann = rs.annotations().clone();
            let mut changed = false;
            let cur = revision_of(&rs);
            if cur < max_old + 1 {
                if cur > 0 {
                    // Keep the former revision numbers, like upstream's revision-history.
                    let mut hist: Vec<String> = ann
                        .get(REVISION_HISTORY)
                        .map(|h| h.split(',').map(str::to_string).collect())
                        .unwrap_or_default();
                    hist.push(cur.to_string());
                    ann.insert(REVISION_HISTORY.into(), hist.join(","));
                }
                ann.insert(REVISION.into(), new_revision.clone());
                changed = true;
            }
            changed |= set_replicas_annotations(&mut ann, self.replicas, self.replicas + max_surge);
            let min_ready = self.spec.min_ready_seconds;
            let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if changed || min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0) {
                let p = json!({ "metadata": { "annotations": ann }, "spec": { "minReadySeconds": min_ready.unwrap_or(0) } });
                let updated = self.rs_api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&p)).await?;
                rss[i] = updated.clone();
                self.set_deployment_revision(&updated).await?;
                return Ok((Some(updated), old));
            }
            self.set_deployment_revision(&rs).await?;
            return Ok((Some(rs), old));
        }
        if !create {
            return Ok((None, old));
        }
        let new_replicas = self.new_rs_replicas(rss, None)?;
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = common::template_hash(&key, collision);
        let mut template = self.spec.template.clone();
        let tm = template.metadata.get_or_insert_with(ObjectMeta::default);
        tm.labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector: LabelSelector = self.spec.selector.clone();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut ann: BTreeMap<String, String> = self
            .d
            .annotations()
            .iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), REVISION | DESIRED_REPLICAS | MAX_REPLICAS | REVISION_HISTORY)
                    && k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ann.insert(REVISION.into(), new_revision);
        set_replicas_annotations(&mut ann, self.replicas, self.replicas + max_surge);
        let rs_name = format!("{}-{}", self.name, hash);
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: Some(self.ns.clone()),
                labels: tm.labels.clone(),
                annotations: Some(ann),
                owner_references: Some(vec![common::controller_ref(&self.d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(new_replicas),
                min_ready_seconds: self.spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        match self.rs_api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                tracing::info!(message = "created replica set", deployment = %self.name, namespace = %self.ns, replicaset = %rs_name, replicas = new_replicas);
                if new_replicas > 0 {
                    let note = format!("Scaled up replica set {rs_name} from 0 to {new_replicas}");
                    self.ctx.event(&self.d, false, "ScalingReplicaSet", note).await;
                }
                self.set_deployment_revision(&created).await?;
                rss.push(created.clone());
                Ok((Some(created), old))
            }
            Err(e) if common::is_already_exists(&e) => {
                let existing = self.rs_api.get(&rs_name).await?;
                if template_key(existing.spec.as_ref().and_then(|s| s.template.as_ref())) == key
                    && common::is_controlled_by(&existing.metadata, self.d.metadata.uid.as_deref().unwrap_or_default())
                {
                    return Ok((Some(existing), old));
                }
                // A hash collision: bump collisionCount so the next attempt uses another name.
                let api: Api<Deployment> = Api::namespaced(self.rs_api.clone().into_client(), &self.ns);
                let count = collision.unwrap_or(0) + 1;
                common::patch_status(&api, &self.name, &json!({ "collisionCount": count })).await?;
                Err(ControllerError::Invalid(format!("replica set {rs_name} exists with another template")))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn set_deployment_revision(&self, new_rs: &ReplicaSet) -> Result<(), ControllerError> {
        let rev = new_rs.annotations().get(REVISION).cloned().unwrap_or_default();
        if self.d.annotations().get(REVISION) == Some(&rev) {
            return Ok(());
        }
        let api: Api<Deployment> = Api::namespaced(self.rs_api.clone().into_client(), &self.ns);
        let p = json!({ "metadata": { "annotations": { REVISION: rev } } });
        api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&p)).await?;
        Ok(())
    }

    /// Upstream's NewRSNewReplicas.
    fn new_rs_replicas(&self, all: &[ReplicaSet], new_rs: Option<&ReplicaSet>) -> Result<i32, ControllerError> {
        let cur_new = new_rs.map(rs_replicas).unwrap_or(0);
        if strategy_type(&self.spec) == "Recreate" {
            return Ok(self.replicas);
        }
        let max_total = self.replicas + self.max_surge()?;
        let current: i32 = all.iter().map(|rs| rs_replicas(rs).max(rs_status_replicas(rs))).sum();
        if current >= max_total {
            return Ok(cur_new);
        }
        let up = (max_total - current).min(self.replicas - cur_new).max(0);
        Ok(cur_new + up)
    }

    async fn scale_rs(&self, rs: &ReplicaSet, to: i32) -> Result<ReplicaSet, ControllerError> {
        let max_surge = self.max_surge()?;
        let mut ann = rs.annotations().clone();
        let ann_changed = set_replicas_annotations(&mut ann, self.replicas, self.replicas + max_surge);
        if rs_replicas(rs) == to && !ann_changed {
            return Ok(rs.clone());
        }
        let p = json!({ "metadata": { "annotations": ann }, "spec": { "replicas": to } });
        let updated = self.rs_api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&p)).await?;
        let from = rs_replicas(rs);
        if from != to {
            tracing::info!(message = "scaling replica set", deployment = %self.name, namespace = %self.ns, replicaset = %rs.name_any(), from, to);
            let op = if to > from { "up" } else { "down" };
            let note = format!("Scaled {op} replica set {} from {from} to {to}", rs.name_any());
            self.ctx.event(&self.d, false, "ScalingReplicaSet", note).await;
        }
        Ok(updated)
    }

    /// Upstream's rolloutRolling. Returns the name of a newly created ReplicaSet.
    async fn rolling(&self, rss: &mut Vec<ReplicaSet>) -> Result<Option<String>, ControllerError> {
        let existed: Vec<String> = rss.iter().map(|r| r.name_any()).collect();
        let (new_rs, old) = self.sync_revision(rss, true).await?;
        let Some(new_rs) = new_rs else { return Ok(None) };
        let created = (!existed.contains(&new_rs.name_any())).then(|| new_rs.name_any());
        if created.is_some() {
            return Ok(created);
        }
        let all: Vec<ReplicaSet> = old.iter().cloned().chain(std::iter::once(new_rs.clone())).collect();
        // Scale up the new ReplicaSet within maxSurge.
        let cur = rs_replicas(&new_rs);
        let target = if cur > self.replicas { self.replicas } else { self.new_rs_replicas(&all, Some(&new_rs))? };
        if target != cur {
            self.scale_rs(&new_rs, target).await?;
            return Ok(None);
        }
        // Scale down old ReplicaSets within maxUnavailable.
        self.reconcile_old(&new_rs, &old).await?;
        if self.complete(&all) {
            self.cleanup(Some(&new_rs), &old).await?;
        }
        Ok(None)
    }

    fn complete(&self, all: &[ReplicaSet]) -> bool {
        let new_key = template_key(Some(&self.spec.template));
        all.iter().all(|rs| {
            let is_new = template_key(rs.spec.as_ref().and_then(|s| s.template.as_ref())) == new_key;
            if is_new {
                rs_available(rs) >= self.replicas && rs_status_replicas(rs) == self.replicas
            } else {
                rs_status_replicas(rs) == 0
            }
        })
    }

    async fn reconcile_old(&self, new_rs: &ReplicaSet, old: &[ReplicaSet]) -> Result<(), ControllerError> {
        let old_count: i32 = old.iter().map(rs_replicas).sum();
        if old_count == 0 {
            return Ok(());
        }
        let all_count: i32 = old.iter().chain(std::iter::once(new_rs)).map(rs_replicas).sum();
        let min_available = self.replicas - self.max_unavailable()?;
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(());
        }
        let mut old: Vec<ReplicaSet> = old.to_vec();
        old.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
        // Unhealthy old replicas go first, they do not reduce availability.
        let mut cleaned = 0;
        for rs in old.iter_mut() {
            if cleaned >= max_scaled_down {
                break;
            }
            let reps = rs_replicas(rs);
            let unhealthy = reps - rs_available(rs);
            if reps == 0 || unhealthy <= 0 {
                continue;
            }
            let down = unhealthy.min(max_scaled_down - cleaned);
            *rs = self.scale_rs(rs, reps - down).await?;
            cleaned += down;
        }
        // Then available ones, as long as minAvailable holds.
        let available: i32 = old.iter().chain(std::iter::once(new_rs)).map(rs_available).sum();
        let mut total = (available - min_available).min(max_scaled_down - cleaned);
        if cleaned > 0 {
            // Availability figures of what was just scaled are stale until those ReplicaSets settle.
            return Ok(());
        }
        for rs in old.iter() {
            if total <= 0 {
                break;
            }
            let reps = rs_replicas(rs);
            if reps == 0 {
                continue;
            }
            let down = reps.min(total);
            self.scale_rs(rs, reps - down).await?;
            total -= down;
        }
        Ok(())
    }

    /// Upstream's rolloutRecreate: scale old ReplicaSets to 0, wait for their pods to stop, then
    /// scale up the new one.
    async fn recreate(&self, rss: &mut Vec<ReplicaSet>) -> Result<Option<String>, ControllerError> {
        let (new_rs, old) = self.sync_revision(rss, false).await?;
        let mut scaled = false;
        for rs in &old {
            if rs_replicas(rs) != 0 {
                self.scale_rs(rs, 0).await?;
                scaled = true;
            }
        }
        if scaled {
            return Ok(None);
        }
        // Old pods still running (any phase but Failed/Succeeded, terminating included)?
        let pods_api: Api<Pod> = Api::namespaced(self.rs_api.clone().into_client(), &self.ns);
        let old_uids: Vec<&str> = old.iter().filter_map(|rs| rs.metadata.uid.as_deref()).collect();
        let pods = common::list_all(&pods_api).await?;
        let running = pods.iter().any(|p| {
            common::controller_of(&p.metadata).is_some_and(|r| old_uids.contains(&r.uid.as_str()))
                && !matches!(common::pod_phase(p), "Failed" | "Succeeded")
        });
        if running || old.iter().any(|rs| rs_status_replicas(rs) > 0) {
            return Ok(None);
        }
        let existed = new_rs.is_some();
        let (new_rs, old) = if existed { (new_rs, old) } else { self.sync_revision(rss, true).await? };
        let Some(new_rs) = new_rs else { return Ok(None) };
        if !existed {
            return Ok(Some(new_rs.name_any()));
        }
        if rs_replicas(&new_rs) != self.replicas {
            self.scale_rs(&new_rs, self.replicas).await?;
        }
        let all: Vec<ReplicaSet> = old.iter().cloned().chain(std::iter::once(new_rs.clone())).collect();
        if self.complete(&all) {
            self.cleanup(Some(&new_rs), &old).await?;
        }
        Ok(None)
    }

    /// Upstream's scale(): a scaling event (or a paused Deployment) resizes ReplicaSets
    /// proportionally without starting a rollout.
    async fn scale(&self, new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> Result<(), ControllerError> {
        let all: Vec<ReplicaSet> = old.iter().cloned().chain(new_rs.cloned()).collect();
        let active: Vec<&ReplicaSet> = all.iter().filter(|rs| rs_replicas(rs) > 0).collect();
        // One active ReplicaSet (or none: the newest) takes all replicas.
        if active.len() <= 1 {
            let target = active.first().copied().or(new_rs).or_else(|| all.last());
            if let Some(rs) = target {
                if rs_replicas(rs) != self.replicas || is_scaling_event(self, std::slice::from_ref(rs)) {
                    self.scale_rs(rs, self.replicas).await?;
                }
            }
            return Ok(());
        }
        // The new ReplicaSet is saturated: old ones go to zero.
        if let Some(n) = new_rs {
            if rs_replicas(n) == self.replicas && rs_available(n) == self.replicas {
                for rs in old.iter().filter(|rs| rs_replicas(rs) > 0) {
                    self.scale_rs(rs, 0).await?;
                }
                return Ok(());
            }
        }
        if strategy_type(&self.spec) != "RollingUpdate" {
            return Ok(());
        }
        let allowed = self.replicas + self.max_surge()?;
        let current: i32 = all.iter().map(rs_replicas).sum();
        let to_add = allowed - current;
        let mut sorted: Vec<ReplicaSet> = active.into_iter().cloned().collect();
        // Largest first when growing, smallest first when shrinking (newest first on ties).
        sorted.sort_by(|a, b| {
            let c = rs_replicas(b).cmp(&rs_replicas(a));
            let c = if to_add > 0 { c } else { c.reverse() };
            c.then(
                b.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .cmp(&a.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            )
        });
        let mut added = 0;
        let mut targets: Vec<i32> = Vec::new();
        for rs in &sorted {
            let reps = rs_replicas(rs);
            let mut prop = 0;
            if to_add != 0 {
                let annotated = rs.annotations().get(DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok()).unwrap_or(0);
                let fraction = if annotated > 0 {
                    ((f64::from(reps) * f64::from(self.replicas) / f64::from(annotated)).round() as i32) - reps
                } else {
                    0
                };
                let allowed_left = to_add - added;
                prop = if to_add > 0 { fraction.min(allowed_left) } else { fraction.max(allowed_left) };
            }
            added += prop;
            targets.push(reps + prop);
        }
        if let Some(first) = targets.first_mut() {
            *first += to_add - added;
            *first = (*first).max(0);
        }
        for (rs, t) in sorted.iter().zip(targets) {
            self.scale_rs(rs, t).await?;
        }
        Ok(())
    }

    /// Deletes old, empty ReplicaSets beyond revisionHistoryLimit (oldest revision first).
    async fn cleanup(&self, new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> Result<(), ControllerError> {
        let limit = self.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut cands: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| Some(rs.name_any()) != new_rs.map(|n| n.name_any()))
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        if cands.len() <= limit {
            return Ok(());
        }
        cands.sort_by_key(|rs| revision_of(rs));
        let excess = cands.len() - limit;
        for rs in cands.into_iter().filter(|rs| rs_replicas(rs) == 0 && rs_status_replicas(rs) == 0).take(excess) {
            common::delete_ignore_missing(&self.rs_api, &rs.name_any(), &DeleteParams::background()).await?;
        }
        Ok(())
    }

    /// Writes the status and conditions; returns when to check the progress deadline again.
    async fn sync_status(
        &self,
        api: &Api<Deployment>,
        rss: &[ReplicaSet],
        created: Option<&str>,
        settled: bool,
    ) -> Result<Option<Duration>, ControllerError> {
        let key = template_key(Some(&self.spec.template));
        let new_rs = rss.iter().find(|rs| template_key(rs.spec.as_ref().and_then(|s| s.template.as_ref())) == key);
        let replicas: i32 = rss.iter().map(rs_status_replicas).sum();
        let updated = new_rs.map(rs_status_replicas).unwrap_or(0);
        let ready: i32 = rss.iter().map(|rs| rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)).sum();
        let available: i32 = rss.iter().map(rs_available).sum();
        let unavailable = (self.replicas - available).max(0);
        let old_status = self.d.status.clone().unwrap_or_default();
        let mut conds: Vec<Value> =
            old_status.conditions.iter().flatten().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)).collect();

        let min_available = self.replicas - self.max_unavailable()?;
        if available >= min_available {
            common::set_condition(
                &mut conds,
                common::condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                ),
                true,
            );
        } else {
            common::set_condition(
                &mut conds,
                common::condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                ),
                true,
            );
        }

        let mut wait = None;
        let deadline = self.spec.progress_deadline_seconds.filter(|d| *d < i32::MAX);
        let paused = self.spec.paused == Some(true);
        let reason_of = |conds: &[Value]| {
            conds.iter().find(|c| c["type"] == "Progressing").and_then(|c| c["reason"].as_str().map(str::to_string))
        };
        let rs_name = new_rs.map(|r| r.name_any()).unwrap_or_default();
        if paused {
            if reason_of(&conds).as_deref() != Some("DeploymentPaused") {
                let c = common::condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused");
                common::set_condition(&mut conds, c, false);
            }
        } else if let Some(deadline) = deadline {
            if reason_of(&conds).as_deref() == Some("DeploymentPaused") {
                let c = common::condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed");
                common::set_condition(&mut conds, c, false);
            }
            if let Some(c) = created {
                let msg = format!("Created new replica set \"{c}\"");
                common::set_condition(
                    &mut conds,
                    common::condition("Progressing", "True", "NewReplicaSetCreated", &msg),
                    false,
                );
            } else if new_rs.is_some() && reason_of(&conds).is_none() {
                let msg = format!("Found new replica set \"{rs_name}\"");
                common::set_condition(
                    &mut conds,
                    common::condition("Progressing", "True", "FoundNewReplicaSet", &msg),
                    false,
                );
            }
            let complete = new_rs.is_some()
                && updated == self.replicas
                && replicas == self.replicas
                && available == self.replicas
                && settled;
            // Upstream's DeploymentProgressing.
            let old_old = old_status.replicas.unwrap_or(0) - old_status.updated_replicas.unwrap_or(0);
            let progressing = updated > old_status.updated_replicas.unwrap_or(0)
                || replicas - updated < old_old
                || ready > old_status.ready_replicas.unwrap_or(0)
                || available > old_status.available_replicas.unwrap_or(0);
            let timed_out_reason = reason_of(&conds).as_deref() == Some("ProgressDeadlineExceeded");
            if complete {
                let msg = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
                common::set_condition(
                    &mut conds,
                    common::condition("Progressing", "True", "NewReplicaSetAvailable", &msg),
                    true,
                );
            } else if progressing && new_rs.is_some() {
                let msg = format!("ReplicaSet \"{rs_name}\" is progressing.");
                common::set_condition(
                    &mut conds,
                    common::condition("Progressing", "True", "ReplicaSetUpdated", &msg),
                    false,
                );
                wait = Some(Duration::from_secs(deadline.max(0) as u64 + 1));
            } else if !timed_out_reason {
                let last = conds
                    .iter()
                    .find(|c| c["type"] == "Progressing")
                    .and_then(|c| c["lastUpdateTime"].as_str())
                    .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok());
                if let Some(last) = last {
                    let elapsed = common::now().as_millisecond() - last.as_millisecond();
                    let limit = i64::from(deadline) * 1000;
                    if elapsed > limit {
                        let msg = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
                        let c = common::condition("Progressing", "False", "ProgressDeadlineExceeded", &msg);
                        common::set_condition(&mut conds, c, false);
                    } else {
                        wait = Some(Duration::from_millis((limit - elapsed) as u64 + 500));
                    }
                }
            }
        } else {
            conds.retain(|c| c["type"] != "Progressing");
        }

        let collision = old_status.collision_count;
        let status = json!({
            "observedGeneration": self.d.metadata.generation,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": unavailable,
            "conditions": conds,
            "collisionCount": collision,
        });
        let old_json = serde_json::to_value(&old_status)?;
        let changed = [
            "observedGeneration",
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "conditions",
        ]
        .iter()
        .any(|k| old_json.get(*k).cloned().unwrap_or(json!(0)) != status[*k]);
        if changed {
            common::patch_status(api, &self.name, &status).await?;
        }
        Ok(wait)
    }
}

/// Sets the desired/max replicas annotations; returns whether they changed.
fn set_replicas_annotations(ann: &mut BTreeMap<String, String>, desired: i32, max: i32) -> bool {
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if ann.get(k) != Some(&v) {
            ann.insert(k.into(), v);
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_key_ignores_the_hash_label() {
        let mut t = PodTemplateSpec::default();
        let a = template_key(Some(&t));
        t.metadata = Some(ObjectMeta {
            labels: Some([(POD_TEMPLATE_HASH.to_string(), "abc".to_string())].into()),
            ..Default::default()
        });
        assert_eq!(template_key(Some(&t)), a);
    }
}
