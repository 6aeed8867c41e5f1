//! `pods/eviction` (policy/v1 Eviction) and priority admission of pods.
//!
//! An eviction deletes the pod unless a PodDisruptionBudget selecting it allows no disruption;
//! then it answers 429 with upstream's message and a `DisruptionBudget` cause, which `kubectl
//! drain` retries. An allowed eviction decrements the budget's `disruptionsAllowed` and records
//! the pod in `disruptedPods` before deleting it, like upstream's EvictionREST.

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http::StatusCode;
use serde_json::{json, Value};

use super::objects::{parse_body, Ctx, DeleteOptions, Part};
use super::request::Query;
use super::{json_response, Body};
use crate::api::registry;
use crate::api::selector::LabelSelector;
use crate::api::status::StatusError;
use http::Response;

/// Upstream's message for an eviction a budget refuses.
pub const VIOLATION_MESSAGE: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// The most pods a budget's `disruptedPods` may hold (upstream's MaxDisruptedPodSize).
const MAX_DISRUPTED_PODS: usize = 2000;

fn too_many_requests(cause: String) -> StatusError {
    let mut e = StatusError::new(429, "TooManyRequests", VIOLATION_MESSAGE);
    e.details = Some(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]}));
    e
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Handles `POST pods/{name}/eviction` (`ctx` is the pods context).
pub async fn evict(
    ctx: &Ctx,
    name: &str,
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<Response<Body>, StatusError> {
    let eviction = parse_body(content_type, body)?;
    if let Some(n) = eviction.pointer("/metadata/name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        if n != name {
            return Err(StatusError::bad_request(format!(
                "name in URL does not match name in Eviction object: {name} != {n}"
            )));
        }
    }
    let opts_body = eviction.get("deleteOptions").filter(|v| !v.is_null()).map(|v| v.to_string()).unwrap_or_default();
    let opts = DeleteOptions::parse(&Bytes::from(opts_body), &ctx.query)?;
    let done = || json_response(StatusCode::CREATED, &crate::api::status::success("", "pods", name, ""));

    for _ in 0..8 {
        let pod = ctx.current_value(name).await?;
        let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
        let deleting = pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
        if matches!(phase, "Succeeded" | "Failed" | "Pending") || deleting {
            ctx.delete_one(name, &opts).await?;
            return Ok(done());
        }
        let pdb_def = registry::find("policy", "v1", "poddisruptionbudgets")
            .ok_or_else(|| StatusError::internal("poddisruptionbudgets are not served"))?;
        let pdb_ctx = Ctx::new(ctx.api.clone(), pdb_def, ctx.ns.clone(), Query::default(), None)?;
        let labels = crate::api::selector::labels_of(&pod);
        let mut pdbs = Vec::new();
        for (rev, v) in pdb_ctx.list_values().await? {
            let sel = v.pointer("/spec/selector").cloned().unwrap_or(Value::Null);
            let Ok(sel) = LabelSelector::from_label_selector(&sel) else { continue };
            // Upstream: an empty selector matches no pods for policy/v1 budgets? It matches all.
            if sel.matches(&labels) {
                pdbs.push((rev, v));
            }
        }
        if pdbs.len() > 1 {
            return Err(StatusError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        let Some((rev, pdb)) = pdbs.pop() else {
            ctx.delete_one(name, &opts).await?;
            return Ok(done());
        };
        let pdb_name = pdb.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let status = pdb.get("status").cloned().unwrap_or(json!({}));
        let int = |f: &str| status.get(f).and_then(Value::as_i64).unwrap_or(0);
        let (current_healthy, desired_healthy, allowed) =
            (int("currentHealthy"), int("desiredHealthy"), int("disruptionsAllowed"));
        if !pod_ready(&pod) {
            let policy =
                pdb.pointer("/spec/unhealthyPodEvictionPolicy").and_then(Value::as_str).unwrap_or("IfHealthyBudget");
            if policy == "AlwaysAllow" || (current_healthy >= desired_healthy && desired_healthy > 0) {
                ctx.delete_one(name, &opts).await?;
                return Ok(done());
            }
        }
        let generation = pdb.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        let observed = int("observedGeneration");
        if observed < generation {
            return Err(too_many_requests(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )));
        }
        if allowed < 0 {
            return Err(StatusError::forbidden("pdb disruptions allowed is negative"));
        }
        if status.get("disruptedPods").and_then(Value::as_object).is_some_and(|m| m.len() > MAX_DISRUPTED_PODS) {
            return Err(StatusError::forbidden(
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ));
        }
        if allowed == 0 {
            return Err(too_many_requests(format!(
                "The disruption budget {pdb_name} needs {desired_healthy} healthy pods and has {current_healthy} currently"
            )));
        }
        if !opts.dry_run {
            let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
            let pod_name = name.to_string();
            let updated = pdb_ctx
                .guaranteed_update(&pdb_name, Part::Status, Some(rev), &|cur: &Value| {
                    let mut n = cur.clone();
                    let left = allowed - 1;
                    n["status"]["disruptionsAllowed"] = json!(left);
                    if !n["status"]["disruptedPods"].is_object() {
                        n["status"]["disruptedPods"] = json!({});
                    }
                    n["status"]["disruptedPods"][&pod_name] = json!(now);
                    if left == 0 {
                        let mut conds: Vec<Value> =
                            n.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
                        conds.retain(|c| c["type"] != "DisruptionAllowed");
                        conds
                            .push(json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                            "message": "", "observedGeneration": generation, "lastTransitionTime": now}));
                        n["status"]["conditions"] = Value::Array(conds);
                    }
                    Ok(n)
                })
                .await;
            match updated {
                Ok(_) => {}
                // The budget changed meanwhile: decide again on its new state.
                Err(e) if e.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        ctx.delete_one(name, &opts).await?;
        return Ok(done());
    }
    Err(StatusError::conflict("", "pods", name, "too many concurrent evictions, please retry"))
}

/// Priority admission: resolves `priorityClassName` (or the global default class) into
/// `spec.priority` and `spec.preemptionPolicy`; a pod naming an unknown class is refused.
pub async fn admit_priority(ctx: &Ctx, pod: &mut Value) -> Result<(), StatusError> {
    let pod_name = pod
        .pointer("/metadata/name")
        .or_else(|| pod.pointer("/metadata/generateName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let class_name =
        pod.pointer("/spec/priorityClassName").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let def = registry::find("scheduling.k8s.io", "v1", "priorityclasses")
        .ok_or_else(|| StatusError::internal("priorityclasses are not served"))?;
    let pc_ctx = Ctx::new(ctx.api.clone(), def, None, Query::default(), None)?;
    let (value, policy, name) = match &class_name {
        Some(n) => match pc_ctx.get_value(n).await? {
            Some(pc) => (
                pc.get("value").and_then(Value::as_i64).unwrap_or(0),
                pc.get("preemptionPolicy").and_then(Value::as_str).map(str::to_string),
                Some(n.clone()),
            ),
            None => match n.as_str() {
                "system-node-critical" => (2_000_001_000, None, Some(n.clone())),
                "system-cluster-critical" => (2_000_000_000, None, Some(n.clone())),
                _ => {
                    return Err(StatusError::forbidden(format!(
                        "pods \"{pod_name}\" is forbidden: no PriorityClass with name {n} was found"
                    )))
                }
            },
        },
        None => {
            let default = pc_ctx
                .list_values()
                .await?
                .into_iter()
                .map(|(_, v)| v)
                .filter(|v| v.get("globalDefault").and_then(Value::as_bool) == Some(true))
                .min_by_key(|v| v.get("value").and_then(Value::as_i64).unwrap_or(0));
            match default {
                Some(pc) => (
                    pc.get("value").and_then(Value::as_i64).unwrap_or(0),
                    pc.get("preemptionPolicy").and_then(Value::as_str).map(str::to_string),
                    pc.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string),
                ),
                None => (0, None, None),
            }
        }
    };
    if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64) {
        if given != value {
            return Err(StatusError::forbidden(format!(
                "pods \"{pod_name}\" is forbidden: the integer value of priority ({given}) must not be provided in pod \
                 spec; priority admission controller computed {value} from the given PriorityClass name"
            )));
        }
    }
    let spec = &mut pod["spec"];
    if !spec.is_object() {
        return Ok(());
    }
    spec["priority"] = json!(value);
    if let Some(n) = name {
        spec["priorityClassName"] = json!(n);
    }
    let policy = policy.unwrap_or_else(|| "PreemptLowerPriority".into());
    match spec.get("preemptionPolicy").and_then(Value::as_str) {
        Some(p) if p != policy => {
            return Err(StatusError::forbidden(format!(
                "pods \"{pod_name}\" is forbidden: the string value of PreemptionPolicy ({p}) must not be provided in \
                 pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            )))
        }
        _ => spec["preemptionPolicy"] = json!(policy),
    }
    Ok(())
}
