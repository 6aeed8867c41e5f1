//! The StatefulSet controller (upstream's pkg/controller/statefulset): stable pod names
//! `<set>-<ordinal>`, PVCs `<template>-<set>-<ordinal>` from volumeClaimTemplates, OrderedReady
//! (one pod at a time, in order, each Running and Ready before the next) and Parallel management,
//! RollingUpdate from the highest ordinal down to the partition, OnDelete, ControllerRevisions and
//! the current/update revision status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

use super::common::{self, ControllerError, Ctx, CONTROLLER_REVISION_HASH};

/// The label naming a StatefulSet pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// Starts the StatefulSet controller.
pub fn spawn(client: Client) -> JoinHandle<()> {
    let controller = Controller::new(Api::<StatefulSet>::all(client.clone()), watcher::Config::default());
    let mapper = common::pod_mapper(controller.store(), |s: &StatefulSet| s.spec.as_ref().map(|s| s.selector.clone()));
    let controller = controller
        .watches(Api::<Pod>::all(client.clone()), watcher::Config::default(), mapper)
        .owns(Api::<ControllerRevision>::all(client.clone()), watcher::Config::default());
    common::spawn("statefulset", client, controller, reconcile)
}

/// The ordinal of a pod named `<set>-<n>`.
fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok().filter(|n: &i32| *n >= 0)
}

fn healthy(p: &Pod) -> bool {
    common::pod_phase(p) == "Running" && common::pod_ready(p) && p.metadata.deletion_timestamp.is_none()
}

fn revision_label(p: &Pod) -> Option<&str> {
    p.labels().get(CONTROLLER_REVISION_HASH).map(String::as_str)
}

struct Sync<'a> {
    ctx: &'a Ctx,
    set: &'a StatefulSet,
    spec: &'a StatefulSetSpec,
    pods_api: Api<Pod>,
    pvc_api: Api<PersistentVolumeClaim>,
}

async fn reconcile(obj: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, ControllerError> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(set) = api.get_opt(&obj.name_any()).await? else { return Ok(Action::await_change()) };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = set.name_any();
    let spec = set.spec.clone().unwrap_or_default();
    let sel = common::selector(Some(&spec.selector), &format!("statefulset {ns}/{name}"))?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let rev_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);

    // Revisions: the update revision holds the current template.
    let mut template = serde_json::to_value(&spec.template)?;
    template["$patch"] = json!("replace");
    let patch = json!({ "spec": { "template": template } });
    let status = set.status.clone().unwrap_or_default();
    let (revs, update_rev) = common::sync_revision(
        &rev_api,
        &set,
        &sel,
        spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
        patch,
        status.collision_count,
    )
    .await?;
    let update_name = update_rev.name_any();
    let current_rev = status
        .current_revision
        .as_ref()
        .and_then(|c| revs.iter().find(|r| &r.name_any() == c))
        .cloned()
        .unwrap_or_else(|| update_rev.clone());
    let current_name = current_rev.name_any();

    let all = common::list_all(&pods_api).await?;
    let pods = common::claim(&pods_api, &set, &sel, all).await?;
    let s = Sync {
        ctx: &ctx,
        set: &set,
        spec: &spec,
        pods_api: pods_api.clone(),
        pvc_api: Api::namespaced(ctx.client.clone(), &ns),
    };
    let requeue = s.update(&pods, &current_rev, &update_rev).await?;

    // Status from a fresh list.
    let all = common::list_all(&pods_api).await?;
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let pods: Vec<Pod> = all.into_iter().filter(|p| common::is_controlled_by(&p.metadata, &uid)).collect();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let at = common::now();
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    let mut wait: Option<Duration> = requeue;
    for p in &pods {
        if common::pod_phase(p).is_empty() {
            continue;
        }
        replicas += 1;
        if healthy(p) {
            ready += 1;
            let (avail, w) = common::pod_available(p, min_ready, at);
            if avail {
                available += 1;
            }
            wait = common::earliest(wait, w);
        }
        if p.metadata.deletion_timestamp.is_none() {
            if revision_label(p) == Some(current_name.as_str()) {
                current += 1;
            }
            if revision_label(p) == Some(update_name.as_str()) {
                updated += 1;
            }
        }
    }
    let want = spec.replicas.unwrap_or(1);
    let (mut current_name, mut current) = (current_name, current);
    let rolling =
        spec.update_strategy.as_ref().and_then(|u| u.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate";
    if rolling && updated == replicas && ready == replicas && replicas == want {
        current_name = update_name.clone();
        current = updated;
    }
    let new_status = json!({
        "observedGeneration": set.metadata.generation,
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_name,
        "updateRevision": update_name,
        "collisionCount": status.collision_count.unwrap_or(0),
    });
    let old = serde_json::to_value(&status)?;
    if [
        "observedGeneration",
        "replicas",
        "readyReplicas",
        "availableReplicas",
        "currentReplicas",
        "updatedReplicas",
        "currentRevision",
        "updateRevision",
    ]
    .iter()
    .any(|k| old.get(*k).cloned().unwrap_or(json!(0)) != new_status[*k])
    {
        common::patch_status(&api, &name, &new_status).await?;
    }

    // Revision history: keep the live ones plus revisionHistoryLimit others.
    let mut live: Vec<&str> = pods.iter().filter_map(revision_label).collect();
    live.push(&update_name);
    live.push(&current_name);
    common::truncate_revisions(&rev_api, &revs, &live, spec.revision_history_limit.unwrap_or(10)).await?;
    Ok(Action::requeue(wait.unwrap_or(Duration::from_secs(300))))
}

impl Sync<'_> {
    fn name(&self) -> String {
        self.set.name_any()
    }

    /// Upstream's updateStatefulSet. Returns an early requeue when waiting on time.
    async fn update(
        &self,
        pods: &[Pod],
        current_rev: &ControllerRevision,
        update_rev: &ControllerRevision,
    ) -> Result<Option<Duration>, ControllerError> {
        let name = self.name();
        let start = self.spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
        let want = self.spec.replicas.unwrap_or(1).max(0);
        let monotonic = self.spec.pod_management_policy.as_deref() != Some("Parallel");
        let mut slots: BTreeMap<i32, &Pod> = BTreeMap::new();
        let mut condemned: Vec<(i32, &Pod)> = Vec::new();
        for p in pods {
            let Some(ord) = ordinal_of(&name, &p.name_any()) else { continue };
            if ord >= start && ord < start + want {
                slots.insert(ord, p);
            } else {
                condemned.push((ord, p));
            }
        }
        condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
        let strategy = self.spec.update_strategy.as_ref();
        let rolling = strategy.and_then(|u| u.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate";
        let partition = strategy.and_then(|u| u.rolling_update.as_ref()).and_then(|r| r.partition).unwrap_or(0);
        let current_template = common::revision_template(current_rev)?;
        let update_template = common::revision_template(update_rev)?;

        // Replicas in order: create missing ones, replace failed ones, wait for each in OrderedReady.
        for ord in start..start + want {
            match slots.get(&ord) {
                None => {
                    let (tpl, rev) = if rolling && ord - start < partition {
                        (&current_template, current_rev)
                    } else {
                        (&update_template, update_rev)
                    };
                    self.create_pod(ord, tpl, &rev.name_any()).await?;
                    if monotonic {
                        return Ok(None);
                    }
                }
                Some(p) => {
                    let phase = common::pod_phase(p);
                    if (phase == "Failed" || phase == "Succeeded") && p.metadata.deletion_timestamp.is_none() {
                        self.delete_pod(p).await?;
                        if monotonic {
                            return Ok(None);
                        }
                        continue;
                    }
                    self.ensure_claims(ord, p).await?;
                    if monotonic && !healthy(p) {
                        return Ok(None);
                    }
                    if monotonic {
                        let min_ready = self.spec.min_ready_seconds.unwrap_or(0);
                        if let (false, Some(w)) = common::pod_available(p, min_ready, common::now()) {
                            return Ok(Some(w));
                        }
                    }
                }
            }
        }

        // Condemned pods, highest ordinal first; one at a time in OrderedReady, when all is healthy.
        let all_healthy = slots.values().all(|p| healthy(p));
        for (ord, p) in &condemned {
            if p.metadata.deletion_timestamp.is_some() {
                if monotonic {
                    return Ok(None);
                }
                continue;
            }
            if monotonic && !all_healthy {
                return Ok(None);
            }
            self.condemn_claims(*ord, p).await?;
            self.delete_pod(p).await?;
            if monotonic {
                return Ok(None);
            }
        }

        if !rolling {
            return Ok(None);
        }
        // RollingUpdate: highest ordinal first down to the partition, one pod at a time, each
        // replacement Running and Ready before the next.
        let update_name = update_rev.name_any();
        for ord in (start + partition.max(0)..start + want).rev() {
            let Some(p) = slots.get(&ord) else { return Ok(None) };
            if revision_label(p) != Some(update_name.as_str()) && p.metadata.deletion_timestamp.is_none() {
                tracing::info!(message = "updating stateful pod", statefulset = %name, pod = %p.name_any(), revision = %update_name);
                self.delete_pod(p).await?;
                return Ok(None);
            }
            if !healthy(p) {
                return Ok(None);
            }
        }
        Ok(None)
    }

    async fn delete_pod(&self, p: &Pod) -> Result<(), ControllerError> {
        let (pod, set) = (p.name_any(), self.name());
        match self.pods_api.delete(&pod, &DeleteParams::default()).await {
            Ok(_) => {
                let note = format!("delete Pod {pod} in StatefulSet {set} successful");
                self.ctx.event(self.set, false, "SuccessfulDelete", note).await;
                Ok(())
            }
            Err(e) if common::is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn claim_name(&self, tpl: &str, ord: i32) -> String {
        format!("{tpl}-{}-{ord}", self.name())
    }

    async fn create_pod(&self, ord: i32, tpl: &PodTemplateSpec, revision: &str) -> Result<(), ControllerError> {
        let name = self.name();
        let pod_name = format!("{name}-{ord}");
        let mut pod = common::pod_from_template(tpl, common::controller_ref(self.set));
        pod.metadata.name = Some(pod_name.clone());
        let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(POD_NAME_LABEL.into(), pod_name.clone());
        labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
        labels.insert(CONTROLLER_REVISION_HASH.into(), revision.into());
        let spec = pod.spec.get_or_insert_with(Default::default);
        spec.hostname = Some(pod_name.clone());
        if let Some(svc) = self.spec.service_name.as_ref().filter(|s| !s.is_empty()) {
            spec.subdomain = Some(svc.clone());
        }
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        for t in self.spec.volume_claim_templates.iter().flatten() {
            let tname = t.name_any();
            volumes.retain(|v| v.name != tname);
            volumes.push(Volume {
                name: tname.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: self.claim_name(&tname, ord),
                    read_only: None,
                }),
                ..Default::default()
            });
        }
        self.create_claims(ord).await?;
        tracing::info!(message = "creating stateful pod", statefulset = %name, pod = %pod_name, revision);
        match common::create_pod(&self.pods_api, &pod).await {
            Ok(_) => {
                let note = format!("create Pod {pod_name} in StatefulSet {name} successful");
                self.ctx.event(self.set, false, "SuccessfulCreate", note).await;
            }
            Err(e) => {
                let note = format!("create Pod {pod_name} in StatefulSet {name} failed error: {e}");
                self.ctx.event(self.set, true, "FailedCreate", note).await;
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn retention(&self) -> (String, String) {
        let p = self.spec.persistent_volume_claim_retention_policy.as_ref();
        (
            p.and_then(|p| p.when_deleted.clone()).unwrap_or_else(|| "Retain".into()),
            p.and_then(|p| p.when_scaled.clone()).unwrap_or_else(|| "Retain".into()),
        )
    }

    fn set_ref(&self) -> OwnerReference {
        OwnerReference { controller: None, ..common::controller_ref(self.set) }
    }

    async fn create_claims(&self, ord: i32) -> Result<(), ControllerError> {
        let (when_deleted, _) = self.retention();
        for t in self.spec.volume_claim_templates.iter().flatten() {
            let mut claim = t.clone();
            let cname = self.claim_name(&t.name_any(), ord);
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            for (k, v) in self.spec.selector.match_labels.iter().flatten() {
                labels.insert(k.clone(), v.clone());
            }
            claim.metadata = ObjectMeta {
                name: Some(cname.clone()),
                labels: Some(labels),
                annotations: claim.metadata.annotations.take(),
                owner_references: (when_deleted == "Delete").then(|| vec![self.set_ref()]),
                ..Default::default()
            };
            claim.status = None;
            match self.pvc_api.create(&PostParams::default(), &claim).await {
                Ok(_) => {
                    let note = format!(
                        "create Claim {cname} Pod {}-{ord} in StatefulSet {} success",
                        self.name(),
                        self.name()
                    );
                    self.ctx.event(self.set, false, "SuccessfulCreate", note).await;
                }
                Err(e) if common::is_already_exists(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Makes sure a live pod's claims exist (they may have been deleted by hand).
    async fn ensure_claims(&self, ord: i32, _pod: &Pod) -> Result<(), ControllerError> {
        if self.spec.volume_claim_templates.as_ref().is_none_or(|t| t.is_empty()) {
            return Ok(());
        }
        for t in self.spec.volume_claim_templates.iter().flatten() {
            if self.pvc_api.get_opt(&self.claim_name(&t.name_any(), ord)).await?.is_none() {
                return self.create_claims(ord).await;
            }
        }
        Ok(())
    }

    /// With `whenScaled: Delete`, a condemned pod's claims become owned by the pod instead of the
    /// set (upstream's `updateClaimOwnerRefForSetAndPod`), so the garbage collector deletes them
    /// with the pod.
    async fn condemn_claims(&self, ord: i32, pod: &Pod) -> Result<(), ControllerError> {
        let (_, when_scaled) = self.retention();
        if when_scaled != "Delete" {
            return Ok(());
        }
        let pod_ref = OwnerReference {
            api_version: "v1".into(),
            kind: Pod::kind(&()).into_owned(),
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            controller: None,
            block_owner_deletion: Some(true),
        };
        for t in self.spec.volume_claim_templates.iter().flatten() {
            let cname = self.claim_name(&t.name_any(), ord);
            if let Some(c) = self.pvc_api.get_opt(&cname).await? {
                let set_uid = self.set_ref().uid;
                let mut refs = c.metadata.owner_references.clone().unwrap_or_default();
                if refs.iter().any(|r| r.uid == pod_ref.uid) && !refs.iter().any(|r| r.uid == set_uid) {
                    continue;
                }
                refs.retain(|r| r.uid != set_uid && r.uid != pod_ref.uid);
                refs.push(pod_ref.clone());
                let p = json!({ "metadata": { "ownerReferences": refs } });
                self.pvc_api.patch(&cname, &PatchParams::default(), &Patch::Merge(&p)).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_parse_only_own_pods() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web--1"), None);
    }
}
