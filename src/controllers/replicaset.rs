//! The ReplicaSet and ReplicationController controllers (one reconcile for both): keep
//! `spec.replicas` active pods matching the selector (creating from the template, deleting the least
//! valuable first), adopt and release pods by selector, and report replicas / fullyLabeledReplicas /
//! readyReplicas / availableReplicas and the ReplicaFailure condition.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Resource;
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::common::{self, ControllerError, Ctx};

/// Upstream's burst cap on creations/deletions per sync.
const BURST_REPLICAS: usize = 500;

/// What the reconcile needs of a ReplicaSet or a ReplicationController.
pub trait Replicated:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The controller's name in logs.
    const CONTROLLER: &'static str;
    /// spec.replicas (defaulted to 1).
    fn replicas(&self) -> i32;
    /// The selector as a LabelSelector.
    fn label_selector(&self) -> Option<LabelSelector>;
    /// The pod template.
    fn template(&self) -> Option<PodTemplateSpec>;
    /// spec.minReadySeconds.
    fn min_ready_seconds(&self) -> i32;
    /// The current status as JSON.
    fn status_json(&self) -> Value;
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn label_selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref().map(|s| s.selector.clone())
    }
    fn template(&self) -> Option<PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.clone())
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }
    fn status_json(&self) -> Value {
        serde_json::to_value(&self.status).unwrap_or(Value::Null)
    }
}

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = "replicationcontroller";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn label_selector(&self) -> Option<LabelSelector> {
        // An unset selector defaults to the template's labels (done by the API server too).
        let sel = self.spec.as_ref().and_then(|s| s.selector.clone()).or_else(|| {
            self.template().and_then(|t| t.metadata).and_then(|m| m.labels).map(|l| l.into_iter().collect())
        })?;
        Some(LabelSelector { match_labels: Some(sel), match_expressions: None })
    }
    fn template(&self) -> Option<PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.clone())
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }
    fn status_json(&self) -> Value {
        serde_json::to_value(&self.status).unwrap_or(Value::Null)
    }
}

/// Starts the ReplicaSet controller.
pub fn spawn(client: Client) -> JoinHandle<()> {
    spawn_for::<ReplicaSet>(client)
}

/// Starts the ReplicationController controller.
pub fn spawn_replication_controllers(client: Client) -> JoinHandle<()> {
    spawn_for::<ReplicationController>(client)
}

fn spawn_for<K: Replicated>(client: Client) -> JoinHandle<()> {
    let controller = Controller::new(Api::<K>::all(client.clone()), watcher::Config::default());
    // Owned pods map to their owner; orphans to every object whose selector matches (adoption).
    let mapper = common::pod_mapper(controller.store(), |o: &K| o.label_selector());
    let controller = controller.watches(Api::<Pod>::all(client.clone()), watcher::Config::default(), mapper);
    common::spawn(K::CONTROLLER, client, controller, reconcile::<K>)
}

async fn reconcile<K: Replicated>(obj: Arc<K>, ctx: Arc<Ctx>) -> Result<Action, ControllerError> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    // A fresh read: the reflector may lag behind a Deployment's scale change.
    let Some(rs) = api.get_opt(&obj.name_any()).await? else { return Ok(Action::await_change()) };
    let name = rs.name_any();
    let sel = common::selector(rs.label_selector().as_ref(), &format!("{} {ns}/{name}", K::CONTROLLER))?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let all = common::list_all(&pods_api).await?;
    let pods = common::claim(&pods_api, &rs, &sel, all).await?;
    let mut active: Vec<Pod> = pods.iter().filter(|p| common::pod_active(p)).cloned().collect();

    let want = rs.replicas().max(0) as usize;
    let mut failure: Option<Value> = None;
    if rs.meta().deletion_timestamp.is_none() {
        if active.len() < want {
            let n = (want - active.len()).min(BURST_REPLICAS);
            let template = rs.template().unwrap_or_default();
            let mut pod = common::pod_from_template(&template, common::controller_ref(&rs));
            pod.metadata.generate_name = Some(format!("{name}-"));
            let (_, err) = common::slow_start(n, |_| common::create_pod_recorded(&ctx, &rs, &pods_api, &pod)).await;
            if let Some(e) = err {
                let msg = e.to_string();
                let quota = matches!(&e, kube::Error::Api(s) if s.code == 403 && s.message.contains("exceeded quota"));
                if !quota {
                    return Err(e.into());
                }
                failure = Some(common::condition("ReplicaFailure", "True", "FailedCreate", &msg));
            }
        } else if active.len() > want {
            let n = (active.len() - want).min(BURST_REPLICAS);
            active.sort_by(deletion_order);
            let victims: Vec<_> = active.drain(..n).collect();
            let names: Vec<String> = victims.iter().map(|p| p.name_any()).collect();
            let results =
                futures::future::join_all(names.iter().map(|n| common::delete_pod_recorded(&ctx, &rs, &pods_api, n)))
                    .await;
            for r in results {
                r?;
            }
        }
    }

    // Status from a fresh list (our own creations and deletions included).
    let all = common::list_all(&pods_api).await?;
    let pods: Vec<Pod> = all
        .into_iter()
        .filter(|p| common::is_controlled_by(&p.metadata, rs.meta().uid.as_deref().unwrap_or_default()))
        .filter(common::pod_active)
        .collect();
    let min_ready = rs.min_ready_seconds();
    let at = common::now();
    let template_labels = rs.template().and_then(|t| t.metadata).and_then(|m| m.labels);
    let mut ready = 0;
    let mut available = 0;
    let mut fully_labeled = 0;
    let mut requeue: Option<Duration> = None;
    for p in &pods {
        if common::pod_ready(p) {
            ready += 1;
        }
        let (avail, wait) = common::pod_available(p, min_ready, at);
        if avail {
            available += 1;
        }
        requeue = common::earliest(requeue, wait);
        let labels = p.metadata.labels.clone().unwrap_or_default();
        if template_labels.as_ref().is_none_or(|t| t.iter().all(|(k, v)| labels.get(k) == Some(v))) {
            fully_labeled += 1;
        }
    }
    let old_json = rs.status_json();
    let mut conds: Vec<Value> = old_json.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    match failure {
        Some(c) => {
            common::set_condition(&mut conds, c, true);
        }
        None => conds.retain(|c| c["type"] != "ReplicaFailure"),
    }
    common::strip_update_time(&mut conds);
    let status = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs.meta().generation,
        "conditions": if conds.is_empty() { Value::Null } else { Value::Array(conds) },
    });
    let changed = ["replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"]
        .iter()
        .any(|k| old_json.get(*k).cloned().unwrap_or(json!(0)) != status[*k])
        || old_json.get("conditions").cloned().unwrap_or(Value::Null) != status["conditions"];
    if changed {
        common::patch_status(&api, &name, &status).await?;
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::requeue(Duration::from_secs(300)),
    })
}

/// Upstream's ActivePods ordering: the pod to delete first sorts first.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    let phase_rank = |p: &Pod| match common::pod_phase(p) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let cost = |p: &Pod| {
        p.annotations()
            .get("controller.kubernetes.io/pod-deletion-cost")
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(0)
    };
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
            .unwrap_or(0)
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(common::pod_ready(a).cmp(&common::pod_ready(b)))
        .then(cost(a).cmp(&cost(b)))
        // Ready for less time first.
        .then(common::pod_ready_since(b).cmp(&common::pod_ready_since(a)))
        .then(restarts(b).cmp(&restarts(a)))
        // Newer first.
        .then(created(b).cmp(&created(a)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.spec = Some(PodSpec { node_name: node.map(str::to_string), ..Default::default() });
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(common::now())),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    #[test]
    fn deletes_unscheduled_then_pending_then_unready_first() {
        let mut pods = [
            pod("ready", Some("n"), "Running", true),
            pod("unready", Some("n"), "Running", false),
            pod("pending", Some("n"), "Pending", false),
            pod("unscheduled", None, "Pending", false),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<_> = pods.iter().map(|p| p.name_any()).collect();
        assert_eq!(names, ["unscheduled", "pending", "unready", "ready"]);
    }
}
