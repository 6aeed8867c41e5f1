//! The disruption controller: keeps each PodDisruptionBudget's status (currentHealthy,
//! desiredHealthy, expectedPods, disruptionsAllowed, observedGeneration, disruptedPods and the
//! DisruptionAllowed condition) in line with the pods it selects, like upstream's. Percentages and
//! `maxUnavailable` count against the scale of the pods' controllers (read through their `scale`
//! subresource; a ReplicaSet owned by a Deployment counts as the Deployment).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::{json, Value};

use crate::api::selector::LabelSelector;

/// How long an eviction recorded in `disruptedPods` keeps the pod out of the healthy count
/// (upstream's DeletionTimeout).
const DELETION_TIMEOUT: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum DisruptionError {
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Sync(String),
}

struct Ctx {
    client: kube::Client,
}

/// Runs the controller until its task is aborted.
pub async fn run(client: kube::Client) {
    let controller = Controller::new(Api::<PodDisruptionBudget>::all(client.clone()), watcher::Config::default());
    let budgets = controller.store();
    let ctx_client = client.clone();
    let ctx = Arc::new(Ctx { client });
    controller
        .watches(Api::<Pod>::all(ctx_client.clone()), watcher::Config::default(), move |pod: Pod| {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let labels: BTreeMap<String, String> = pod.metadata.labels.clone().unwrap_or_default();
            budgets
                .state()
                .iter()
                .filter(|b| b.metadata.namespace.as_deref() == Some(ns.as_str()))
                .filter(|b| selector(b).is_some_and(|s| s.matches(&labels)))
                .map(|b| ObjectRef::from_obj(&**b))
                .collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn selector(pdb: &PodDisruptionBudget) -> Option<LabelSelector> {
    let sel = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
    let v = sel.map(|s| serde_json::to_value(s).unwrap_or(Value::Null)).unwrap_or(Value::Null);
    LabelSelector::from_label_selector(&v).ok()
}

fn error_policy(_pdb: Arc<PodDisruptionBudget>, e: &DisruptionError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(message = "disruption budget sync failed", error = %e);
    Action::requeue(Duration::from_secs(5))
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Resolves an int-or-percent against `total`, rounding percentages up like upstream.
pub fn scaled_value(v: &IntOrString, total: i64) -> Result<i64, String> {
    match v {
        IntOrString::Int(i) => Ok(*i as i64),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok((pct * total + 99) / 100)
        }
    }
}

/// The replicas a controller wants, through its scale subresource; a ReplicaSet owned by a
/// Deployment counts as the Deployment.
/// Returns the controller that counts (`kind/name`) and its replicas.
async fn controller_scale(
    client: &kube::Client,
    ns: &str,
    api_version: &str,
    kind: &str,
    name: &str,
) -> Result<(String, i64), DisruptionError> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "ReplicaSet" => "replicasets".to_string(),
        "StatefulSet" => "statefulsets".to_string(),
        "Deployment" => "deployments".to_string(),
        "ReplicationController" => "replicationcontrollers".to_string(),
        other => format!("{}s", other.to_ascii_lowercase()),
    };
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    if kind == "ReplicaSet" {
        let rs = api.get(name).await?;
        if let Some(owner) =
            rs.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true) && o.kind == "Deployment")
        {
            return Box::pin(controller_scale(client, ns, &owner.api_version, "Deployment", &owner.name)).await;
        }
    }
    let scale: Value = api.get_subresource("scale", name).await.map(|o| serde_json::to_value(o).unwrap_or_default())?;
    Ok((format!("{kind}/{name}"), scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)))
}

/// (expectedPods, desiredHealthy) for the budget over `pods`.
async fn expectations(ctx: &Ctx, pdb: &PodDisruptionBudget, pods: &[Arc<Pod>]) -> Result<(i64, i64), DisruptionError> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let ns = pdb.metadata.namespace.clone().unwrap_or_default();
    let needs_scale = spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)));
    if !needs_scale {
        let expected = pods.len() as i64;
        let desired = match &spec.min_available {
            Some(v) => scaled_value(v, expected).map_err(DisruptionError::Sync)?,
            None => 0,
        };
        return Ok((expected, desired));
    }
    let mut controllers: HashMap<String, (String, String, String)> = HashMap::new();
    for p in pods {
        let owner = p.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true));
        match owner {
            Some(o) => {
                controllers.insert(o.uid.clone(), (o.api_version.clone(), o.kind.clone(), o.name.clone()));
            }
            None => {
                return Err(DisruptionError::Sync(format!(
                    "found no controllers for pod {:?}",
                    p.metadata.name.clone().unwrap_or_default()
                )))
            }
        }
    }
    // Several ReplicaSets of one Deployment count it once.
    let mut scales: HashMap<String, i64> = HashMap::new();
    for (api_version, kind, name) in controllers.values() {
        let (key, s) = controller_scale(&ctx.client, &ns, api_version, kind, name).await?;
        scales.insert(key, s);
    }
    let expected: i64 = scales.values().sum();
    let desired = if let Some(mu) = &spec.max_unavailable {
        (expected - scaled_value(mu, expected).map_err(DisruptionError::Sync)?).max(0)
    } else if let Some(ma) = &spec.min_available {
        scaled_value(ma, expected).map_err(DisruptionError::Sync)?
    } else {
        0
    };
    Ok((expected, desired))
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, DisruptionError> {
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pdb.metadata.namespace.clone().unwrap_or_default();
    let name = pdb.metadata.name.clone().unwrap_or_default();
    let sel = selector(&pdb).unwrap_or_else(LabelSelector::nothing);
    // Read fresh: a watch cache of pods could lag behind the event that triggered this.
    let pods: Vec<Arc<Pod>> = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| sel.matches(&p.metadata.labels.clone().unwrap_or_default()))
        .map(Arc::new)
        .collect();
    let now = chrono::Utc::now();
    let status = pdb.status.clone().unwrap_or_default();
    // Evictions the controller has not seen land yet, until they time out.
    let mut disrupted: BTreeMap<String, String> = BTreeMap::new();
    let mut next_expiry: Option<chrono::DateTime<chrono::Utc>> = None;
    for (pod_name, at) in status.disrupted_pods.clone().unwrap_or_default() {
        let Some(p) = pods.iter().find(|p| p.metadata.name.as_deref() == Some(pod_name.as_str())) else { continue };
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let at = super::node_lifecycle::to_chrono(&at);
        let expiry = at + DELETION_TIMEOUT;
        if expiry <= now {
            continue;
        }
        next_expiry = Some(next_expiry.map_or(expiry, |e| e.min(expiry)));
        disrupted.insert(pod_name, at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    let generation = pdb.metadata.generation.unwrap_or(0);
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
    let (expected, desired, allowed, current, condition) = match expectations(&ctx, &pdb, &pods).await {
        Ok((expected, desired)) => {
            let current = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
                .filter(|p| pod_ready(p))
                .count() as i64;
            let mut allowed = current - desired;
            if expected <= 0 || allowed <= 0 {
                allowed = 0;
            }
            let cond = if allowed > 0 {
                ("True", "SufficientPods", String::new())
            } else {
                ("False", "InsufficientPods", String::new())
            };
            (expected, desired, allowed, current, cond)
        }
        Err(DisruptionError::Sync(msg)) => {
            let current = status.current_healthy as i64;
            (status.expected_pods as i64, status.desired_healthy as i64, 0, current, ("False", "SyncFailed", msg))
        }
        Err(e) => return Err(e),
    };
    let old_cond = status.conditions.clone().unwrap_or_default().into_iter().find(|c| c.type_ == "DisruptionAllowed");
    let transition = match &old_cond {
        Some(c) if c.status == condition.0 && c.reason == condition.1 => {
            super::node_lifecycle::to_chrono(&c.last_transition_time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }
        _ => now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let unchanged = status.current_healthy as i64 == current
        && status.desired_healthy as i64 == desired
        && status.expected_pods as i64 == expected
        && status.disruptions_allowed as i64 == allowed
        && status.observed_generation == Some(generation)
        && status.disrupted_pods.clone().unwrap_or_default().len() == disrupted.len()
        && old_cond
            .as_ref()
            .is_some_and(|c| c.status == condition.0 && c.reason == condition.1 && c.message == condition.2);
    if !unchanged {
        let patch = json!({"status": {
            "currentHealthy": current, "desiredHealthy": desired, "expectedPods": expected,
            "disruptionsAllowed": allowed, "observedGeneration": generation,
            "disruptedPods": if disrupted.is_empty() { Value::Null } else { json!(disrupted) },
            "conditions": [{"type": "DisruptionAllowed", "status": condition.0, "reason": condition.1,
                "message": condition.2, "observedGeneration": generation, "lastTransitionTime": transition}],
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    let wait = next_expiry
        .map(|e| (e - now).to_std().unwrap_or(Duration::from_secs(1)) + Duration::from_secs(1))
        .unwrap_or(Duration::from_secs(30));
    Ok(Action::requeue(wait.min(Duration::from_secs(30))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled_value(&IntOrString::String("50%".into()), 3), Ok(2));
        assert_eq!(scaled_value(&IntOrString::String("10%".into()), 10), Ok(1));
        assert_eq!(scaled_value(&IntOrString::Int(2), 10), Ok(2));
        assert!(scaled_value(&IntOrString::String("x".into()), 10).is_err());
    }
}
