//! The HorizontalPodAutoscaler controller (autoscaling/v2): CPU and memory `Utilization` and
//! `AverageValue` targets from the resource metrics API
//! (`/apis/metrics.k8s.io/v1beta1/namespaces/<ns>/pods`), upstream's replica calculation
//! (tolerance 10 %, missing and not-yet-ready pods), behavior (stabilization windows, default
//! 300 s for scale-down; Pods/Percent policies with selectPolicy), scaling through the target's
//! `scale` subresource, and upstream's conditions (AbleToScale, ScalingActive, ScalingLimited) and
//! events (SuccessfulRescale, FailedGetScale, FailedGetResourceMetric,
//! FailedComputeMetricsReplicas). Every HPA is evaluated every 15 s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscaler, MetricSpec};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{predicates, reflector, watcher, PredicateConfig, WatchStreamExt};
use serde_json::{json, Value};

use super::resources;
use crate::api::validation::{canonical_quantity, parse_quantity, Quantity, QuantityFormat};
use crate::events::{EventRecorder, EventType};

/// How often each HPA is evaluated (upstream's --horizontal-pod-autoscaler-sync-period).
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);
/// Ratios this close to 1 change nothing (upstream's default tolerance).
pub const TOLERANCE: f64 = 0.1;
const CPU_INITIALIZATION_PERIOD: Duration = Duration::from_secs(300);
const INITIAL_READINESS_DELAY: Duration = Duration::from_secs(30);
const DEFAULT_SCALE_DOWN_WINDOW: i32 = 300;

/// What went wrong evaluating an HPA (reported in its conditions; the error makes it retry).
#[derive(Debug, thiserror::Error)]
pub enum HpaError {
    /// An API call failed.
    #[error("{0}")]
    Api(String),
}

/// One pod's usage of the metric's resource (millis for cpu, bytes for memory... as nanos).
#[derive(Debug, Clone)]
pub struct PodSample {
    pub name: String,
    /// Usage from the metrics API, if it reported the pod.
    pub usage: Option<i128>,
    /// Sum of the containers' requests for the resource, if every container has one.
    pub request: Option<i128>,
    /// Deleted or failed: left out entirely.
    pub ignored: bool,
    /// Not ready yet (pending, or for cpu still initializing): counted as 0 when scaling up.
    pub unready: bool,
}

/// What a metric asks for.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Average utilization in percent of the pods' requests.
    Utilization(i32),
    /// Average usage per pod (nanos of the unit).
    AverageValue(i128),
}

/// The outcome of one metric: replicas wanted, and the current average (utilization percent
/// and value per pod).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricResult {
    pub replicas: i32,
    pub utilization: Option<i32>,
    pub average_value: i128,
}

/// Upstream's replica calculation for one resource metric over the pods' samples.
pub fn replicas_for_metric(current: i32, target: Target, pods: &[PodSample]) -> Result<MetricResult, String> {
    let live: Vec<&PodSample> = pods.iter().filter(|p| !p.ignored).collect();
    if live.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let with_metrics: Vec<&PodSample> = live.iter().copied().filter(|p| p.usage.is_some() && !p.unready).collect();
    let unready = live.iter().filter(|p| p.usage.is_some() && p.unready).count();
    let missing: Vec<&PodSample> = live.iter().copied().filter(|p| p.usage.is_none()).collect();
    if with_metrics.is_empty() && unready == 0 {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let ready_count = with_metrics.len() as f64;
    let usage_sum: i128 = with_metrics.iter().filter_map(|p| p.usage).sum();
    let ratio_of = |usage: i128, request: i128, pods: f64| -> (f64, Option<i32>) {
        match target {
            Target::Utilization(t) => {
                let util = if request > 0 { (usage * 100 / request) as i32 } else { 0 };
                (f64::from(util) / f64::from(t), Some(util))
            }
            Target::AverageValue(v) => (usage as f64 / (v as f64 * pods.max(1.0)), None),
        }
    };
    let request_of = |p: &PodSample| -> Result<i128, String> {
        p.request.ok_or_else(|| format!("missing request for the resource in a container of Pod {}", p.name))
    };
    let mut request_sum = 0i128;
    if matches!(target, Target::Utilization(_)) {
        for p in &with_metrics {
            request_sum += request_of(p)?;
        }
    }
    let (ratio, utilization) = ratio_of(usage_sum, request_sum, ready_count);
    let average_value = if ready_count > 0.0 { usage_sum / with_metrics.len() as i128 } else { 0 };
    let result = |replicas: i32| MetricResult { replicas, utilization, average_value };
    let scale_up_unready = unready > 0 && ratio > 1.0;
    if missing.is_empty() && !scale_up_unready {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Ok(result(current));
        }
        return Ok(result((ratio * ready_count).ceil() as i32));
    }
    // Missing pods count as using their full request (scale down) or nothing (scale up); unready
    // pods as nothing when scaling up.
    let mut usage2 = usage_sum;
    let mut request2 = request_sum;
    let mut count2 = with_metrics.len();
    for p in &missing {
        let req = if matches!(target, Target::Utilization(_)) { request_of(p)? } else { 0 };
        if ratio < 1.0 {
            usage2 += match target {
                Target::Utilization(_) => req,
                Target::AverageValue(v) => v,
            };
        }
        request2 += req;
        count2 += 1;
    }
    if scale_up_unready {
        for p in live.iter().filter(|p| p.usage.is_some() && p.unready) {
            if matches!(target, Target::Utilization(_)) {
                request2 += request_of(p)?;
            }
            count2 += 1;
        }
    }
    let (ratio2, _) = ratio_of(usage2, request2, count2 as f64);
    if (1.0 - ratio2).abs() <= TOLERANCE || (ratio < 1.0 && ratio2 > 1.0) || (ratio > 1.0 && ratio2 < 1.0) {
        return Ok(result(current));
    }
    let wanted = (ratio2 * count2 as f64).ceil() as i32;
    // Never move against the direction the measured pods asked for.
    if (ratio2 < 1.0 && wanted > current) || (ratio2 > 1.0 && wanted < current) {
        return Ok(result(current));
    }
    Ok(result(wanted))
}

/// A past replica recommendation or scale change.
#[derive(Debug, Clone, Copy)]
pub struct Stamped {
    pub at: Instant,
    pub replicas: i32,
}

/// Per-HPA memory: recommendations (for the stabilization windows) and scale changes (for the
/// policies' periods).
#[derive(Debug, Default, Clone)]
pub struct History {
    pub recommendations: Vec<Stamped>,
    pub scale_ups: Vec<Stamped>,
    pub scale_downs: Vec<Stamped>,
}

/// The scaling rules in force, upstream's defaults filled in.
fn rules(hpa: &HorizontalPodAutoscaler, up: bool) -> HPAScalingRules {
    let b = hpa.spec.as_ref().and_then(|s| s.behavior.clone()).unwrap_or_default();
    let given = if up { b.scale_up } else { b.scale_down };
    let mut r = given.unwrap_or_default();
    if r.stabilization_window_seconds.is_none() {
        r.stabilization_window_seconds = Some(if up { 0 } else { DEFAULT_SCALE_DOWN_WINDOW });
    }
    if r.select_policy.is_none() {
        r.select_policy = Some("Max".into());
    }
    if r.policies.is_none() {
        let p = |t: &str, v: i32| k8s_openapi::api::autoscaling::v2::HPAScalingPolicy {
            type_: t.into(),
            value: v,
            period_seconds: 15,
        };
        r.policies = Some(if up { vec![p("Pods", 4), p("Percent", 100)] } else { vec![p("Percent", 100)] });
    }
    r
}

/// Why the final count differs from the metrics' wish.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    pub reason: &'static str,
    pub message: &'static str,
}

/// Upstream's normalizeDesiredReplicasWithBehaviors: stabilization windows, then the rate
/// policies, then min/max. Records the recommendation in `history`.
pub fn normalize(
    hpa: &HorizontalPodAutoscaler,
    history: &mut History,
    now: Instant,
    current: i32,
    proposed: i32,
) -> (i32, Option<Limited>) {
    let spec = hpa.spec.clone().unwrap_or_default();
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let up = rules(hpa, true);
    let down = rules(hpa, false);
    // Stabilization: scale up to the lowest recommendation of the up window, down to the highest
    // of the down window.
    let within =
        |s: &Stamped, secs: i32| now.saturating_duration_since(s.at) <= Duration::from_secs(secs.max(0) as u64);
    let (mut up_rec, mut down_rec) = (proposed, proposed);
    for r in &history.recommendations {
        if within(r, up.stabilization_window_seconds.unwrap_or(0)) {
            up_rec = up_rec.min(r.replicas);
        }
        if within(r, down.stabilization_window_seconds.unwrap_or(DEFAULT_SCALE_DOWN_WINDOW)) {
            down_rec = down_rec.max(r.replicas);
        }
    }
    let longest = up.stabilization_window_seconds.unwrap_or(0).max(down.stabilization_window_seconds.unwrap_or(0));
    history.recommendations.retain(|r| within(r, longest));
    history.recommendations.push(Stamped { at: now, replicas: proposed });
    let mut desired = current;
    if desired < up_rec {
        desired = up_rec;
    }
    if desired > down_rec {
        desired = down_rec;
    }
    // Rate policies.
    let mut limited = None;
    if desired > current {
        let limit = scale_limit(&up, &history.scale_ups, now, current, true).max(current);
        let allowed = limit.min(max);
        if desired > allowed {
            limited = Some(if allowed == max {
                Limited {
                    reason: "TooManyReplicas",
                    message: "the desired replica count is more than the maximum replica count",
                }
            } else {
                Limited {
                    reason: "ScaleUpLimit",
                    message: "the desired replica count is increasing faster than the maximum scale rate",
                }
            });
            desired = allowed;
        }
    } else if desired < current {
        let limit = scale_limit(&down, &history.scale_downs, now, current, false).min(current);
        let allowed = limit.max(min);
        if desired < allowed {
            limited = Some(if allowed == min {
                Limited {
                    reason: "TooFewReplicas",
                    message: "the desired replica count is less than the minimum replica count",
                }
            } else {
                Limited {
                    reason: "ScaleDownLimit",
                    message: "the desired replica count is decreasing faster than the maximum scale rate",
                }
            });
            desired = allowed;
        }
    }
    if desired > max {
        desired = max;
        limited = Some(Limited {
            reason: "TooManyReplicas",
            message: "the desired replica count is more than the maximum replica count",
        });
    }
    if desired < min {
        desired = min;
        limited = Some(Limited {
            reason: "TooFewReplicas",
            message: "the desired replica count is less than the minimum replica count",
        });
    }
    (desired, limited)
}

/// The furthest the rules let the count move from `current` now, given the recent changes.
fn scale_limit(r: &HPAScalingRules, events: &[Stamped], now: Instant, current: i32, up: bool) -> i32 {
    let select = r.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let mut best: Option<i32> = None;
    for p in r.policies.iter().flatten() {
        let period = Duration::from_secs(p.period_seconds.max(0) as u64);
        let changed: i32 =
            events.iter().filter(|e| now.saturating_duration_since(e.at) <= period).map(|e| e.replicas).sum();
        let limit = if up {
            let start = current - changed;
            match p.type_.as_str() {
                "Pods" => start + p.value,
                _ => (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32,
            }
        } else {
            let start = current + changed;
            match p.type_.as_str() {
                "Pods" => start - p.value,
                _ => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)).floor() as i32,
            }
        };
        // "Max" picks the policy allowing the largest change, "Min" the smallest.
        let pick_larger = (select == "Max") == up;
        best = Some(match best {
            None => limit,
            Some(b) if pick_larger => b.max(limit),
            Some(b) => b.min(limit),
        });
    }
    best.unwrap_or(current)
}

struct Ctx {
    client: kube::Client,
    recorder: EventRecorder,
    histories: Mutex<HashMap<String, History>>,
}

/// Run the controller until aborted.
pub async fn run(client: kube::Client) {
    let hpas: Api<HorizontalPodAutoscaler> = Api::all(client.clone());
    let recorder = EventRecorder::new(client.clone(), "horizontal-pod-autoscaler", "");
    let ctx = Arc::new(Ctx { client, recorder, histories: Mutex::new(HashMap::new()) });
    // Spec changes (generation) and the sync period trigger an evaluation; the controller's own
    // status writes do not.
    let (reader, writer) = reflector::store();
    let spec_changes = watcher::watcher(hpas, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    Controller::for_stream(spec_changes, reader)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(message = "hpa reconcile failed", error = %e);
            }
        })
        .await;
}

fn error_policy(_hpa: Arc<HorizontalPodAutoscaler>, e: &HpaError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(message = "hpa evaluation failed", error = %e);
    Action::requeue(SYNC_PERIOD)
}

fn hpa_ref(hpa: &HorizontalPodAutoscaler) -> ObjectReference {
    crate::events::object_ref(hpa)
}

/// One condition as upstream writes it.
fn condition(type_: &str, status: bool, reason: &str, message: String) -> Value {
    json!({
        "type": type_, "status": if status { "True" } else { "False" }, "reason": reason, "message": message,
        "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// Keep a condition's transition time when its status did not change.
fn merge_conditions(old: &[Value], new: Vec<Value>) -> Vec<Value> {
    new.into_iter()
        .map(|mut c| {
            if let Some(o) = old.iter().find(|o| o["type"] == c["type"] && o["status"] == c["status"]) {
                c["lastTransitionTime"] = o["lastTransitionTime"].clone();
            }
            c
        })
        .collect()
}

async fn reconcile(hpa: Arc<HorizontalPodAutoscaler>, ctx: Arc<Ctx>) -> Result<Action, HpaError> {
    let ns = hpa.metadata.namespace.clone().unwrap_or_default();
    let name = hpa.metadata.name.clone().unwrap_or_default();
    let spec = hpa.spec.clone().unwrap_or_default();
    let target = &spec.scale_target_ref;
    let old_status = hpa.status.clone().unwrap_or_default();
    let old_conditions: Vec<Value> = serde_json::to_value(old_status.conditions.clone().unwrap_or_default())
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let mut conditions = Vec::new();
    let mut status = json!({
        "observedGeneration": hpa.metadata.generation,
        "currentReplicas": old_status.current_replicas.unwrap_or(0),
        "desiredReplicas": old_status.desired_replicas,
    });
    if let Some(t) = &old_status.last_scale_time {
        status["lastScaleTime"] = json!(t);
    }
    // The target's scale.
    let api_version = target.api_version.as_deref().unwrap_or("");
    let scale = match scale_path(&ctx.client, &ns, api_version, &target.kind, &target.name).await {
        Ok(path) => get_json(&ctx.client, &path).await.map(|s| (path, s)),
        Err(e) => Err(e),
    };
    let (scale_path, scale) = match scale {
        Ok(found) => found,
        Err(e) => {
            return fail_scale(
                &ctx,
                &hpa,
                &ns,
                &name,
                status,
                old_conditions,
                format!("the HPA controller was unable to get the target's current scale: {e}"),
            )
            .await;
        }
    };
    conditions.push(condition(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
    ));
    let current = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0) as i32;
    status["currentReplicas"] = json!(scale.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0));
    let selector = scale.pointer("/status/selector").and_then(Value::as_str).unwrap_or("").to_string();
    let min = spec.min_replicas.unwrap_or(1);

    let mut desired = current;
    let mut rescale_reason = String::new();
    let mut limited: Option<Limited> = None;
    if current == 0 && min != 0 {
        conditions.push(condition(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
        ));
    } else {
        match metrics_replicas(&ctx, &hpa, &ns, &selector, current).await {
            Ok((proposed, current_metrics, reason)) => {
                status["currentMetrics"] = Value::Array(current_metrics);
                let mut histories = ctx.histories.lock().unwrap_or_else(|e| e.into_inner());
                let history = histories.entry(format!("{ns}/{name}")).or_default();
                let (d, l) = normalize(&hpa, history, Instant::now(), current, proposed);
                desired = d;
                limited = l;
                rescale_reason = reason;
                conditions.push(condition(
                    "ScalingActive",
                    true,
                    "ValidMetricFound",
                    format!(
                        "the HPA was able to successfully calculate a replica count from {}",
                        metric_label(&spec.metrics)
                    ),
                ));
            }
            Err((reason, message, event_message, metrics)) => {
                status["currentMetrics"] = Value::Array(metrics);
                let r = hpa_ref(&hpa);
                let _ = ctx.recorder.publish(&r, EventType::Warning, reason, "ComputeMetrics", &event_message).await;
                let invalid = format!(
                    "invalid metrics (1 invalid out of {}), first error is: {message}",
                    spec.metrics.as_ref().map_or(1, Vec::len).max(1)
                );
                let _ = ctx
                    .recorder
                    .publish(&r, EventType::Warning, "FailedComputeMetricsReplicas", "ComputeMetrics", &invalid)
                    .await;
                conditions.push(condition(
                    "ScalingActive",
                    false,
                    reason,
                    format!("the HPA was unable to compute the replica count: {event_message}"),
                ));
            }
        }
    }
    conditions.push(match &limited {
        Some(l) => condition("ScalingLimited", true, l.reason, l.message.into()),
        None => condition(
            "ScalingLimited",
            false,
            "DesiredWithinRange",
            "the desired count is within the acceptable range".into(),
        ),
    });
    if desired != current {
        let body = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": target.name, "namespace": ns}, "spec": {"replicas": desired}});
        match put_json(&ctx.client, &scale_path, &body).await {
            Ok(_) => {
                let now = Instant::now();
                {
                    let mut histories = ctx.histories.lock().unwrap_or_else(|e| e.into_inner());
                    let h = histories.entry(format!("{ns}/{name}")).or_default();
                    let horizon = Duration::from_secs(1800);
                    h.scale_ups.retain(|e| now.saturating_duration_since(e.at) < horizon);
                    h.scale_downs.retain(|e| now.saturating_duration_since(e.at) < horizon);
                    if desired > current {
                        h.scale_ups.push(Stamped { at: now, replicas: desired - current });
                    } else {
                        h.scale_downs.push(Stamped { at: now, replicas: current - desired });
                    }
                }
                status["lastScaleTime"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                let msg = format!("New size: {desired}; reason: {rescale_reason}");
                let _ =
                    ctx.recorder.publish(&hpa_ref(&hpa), EventType::Normal, "SuccessfulRescale", "Scaling", &msg).await;
                conditions[0] = condition(
                    "AbleToScale",
                    true,
                    "SucceededRescale",
                    format!("the HPA controller was able to update the target scale to {desired}"),
                );
            }
            Err(e) => {
                let msg = format!("New size: {desired}; reason: {rescale_reason}; error: {e}");
                let _ =
                    ctx.recorder.publish(&hpa_ref(&hpa), EventType::Warning, "FailedRescale", "Scaling", &msg).await;
                conditions[0] = condition(
                    "AbleToScale",
                    false,
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {e}"),
                );
                desired = current;
            }
        }
    }
    status["desiredReplicas"] = json!(desired);
    status["conditions"] = Value::Array(merge_conditions(&old_conditions, conditions));
    write_status(&ctx, &ns, &name, status).await?;
    Ok(Action::requeue(SYNC_PERIOD))
}

async fn fail_scale(
    ctx: &Ctx,
    hpa: &HorizontalPodAutoscaler,
    ns: &str,
    name: &str,
    mut status: Value,
    old_conditions: Vec<Value>,
    message: String,
) -> Result<Action, HpaError> {
    let _ = ctx.recorder.publish(&hpa_ref(hpa), EventType::Warning, "FailedGetScale", "GetScale", &message).await;
    status["conditions"] = Value::Array(merge_conditions(
        &old_conditions,
        vec![condition("AbleToScale", false, "FailedGetScale", message)],
    ));
    write_status(ctx, ns, name, status).await?;
    Ok(Action::requeue(SYNC_PERIOD))
}

async fn write_status(ctx: &Ctx, ns: &str, name: &str, status: Value) -> Result<(), HpaError> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), ns);
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(HpaError::Api(format!("writing the status of {ns}/{name}: {e}"))),
    }
}

fn metric_label(metrics: &Option<Vec<MetricSpec>>) -> String {
    match metrics.as_ref().and_then(|m| m.first()) {
        Some(m) if m.type_ == "Resource" => {
            let r = m.resource.as_ref();
            let res = r.map(|r| r.name.clone()).unwrap_or_default();
            if r.is_some_and(|r| r.target.type_ == "Utilization") {
                format!("{res} resource utilization (percentage of request)")
            } else {
                format!("{res} resource")
            }
        }
        Some(m) => format!("{} metric", m.type_),
        None => "cpu resource utilization (percentage of request)".into(),
    }
}

/// The path of the target's scale subresource, from discovery.
async fn scale_path(
    client: &kube::Client,
    ns: &str,
    api_version: &str,
    kind: &str,
    name: &str,
) -> Result<String, String> {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let served = resources::discover(client).await.map_err(|e| e.to_string())?;
    let s = served
        .iter()
        .find(|s| s.resource.group == group && s.resource.kind == kind)
        .ok_or_else(|| format!("no matches for kind \"{kind}\" in group \"{group}\""))?;
    let prefix = if group.is_empty() {
        format!("/api/{}", s.resource.version)
    } else {
        format!("/apis/{group}/{}", s.resource.version)
    };
    Ok(format!("{prefix}/namespaces/{ns}/{}/{name}/scale", s.resource.plural))
}

async fn get_json(client: &kube::Client, path: &str) -> Result<Value, String> {
    let req = http::Request::get(path).body(Vec::new()).map_err(|e| e.to_string())?;
    client.request::<Value>(req).await.map_err(|e| match e {
        kube::Error::Api(s) => s.message,
        other => other.to_string(),
    })
}

async fn put_json(client: &kube::Client, path: &str, body: &Value) -> Result<Value, String> {
    let req = http::Request::put(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).unwrap_or_default())
        .map_err(|e| e.to_string())?;
    client.request::<Value>(req).await.map_err(|e| match e {
        kube::Error::Api(s) => s.message,
        other => other.to_string(),
    })
}

type MetricsFailure = (&'static str, String, String, Vec<Value>);

/// The replica count the metrics ask for (the largest over all metrics), the currentMetrics and
/// the rescale reason; or (reason, message with prefix, message, currentMetrics) on failure.
async fn metrics_replicas(
    ctx: &Ctx,
    hpa: &HorizontalPodAutoscaler,
    ns: &str,
    selector: &str,
    current: i32,
) -> Result<(i32, Vec<Value>, String), MetricsFailure> {
    let spec = hpa.spec.clone().unwrap_or_default();
    let metrics = spec.metrics.clone().unwrap_or_else(|| {
        // Upstream's default: 80 % CPU utilization.
        vec![serde_json::from_value(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}))
            .expect("a well-formed metric")]
    });
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pod_list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| ("FailedGetResourceMetric", e.to_string(), e.to_string(), Vec::new()))?
        .items;
    let mut best: Option<(i32, String)> = None;
    let mut statuses = Vec::new();
    let mut pod_metrics: Option<Result<Value, String>> = None;
    for m in &metrics {
        if m.type_ != "Resource" {
            let msg = format!("the HPA controller does not support {} metrics", m.type_);
            return Err(("FailedGetExternalMetric", msg.clone(), msg, statuses));
        }
        let r = m.resource.clone().unwrap_or_default();
        let (target, what) =
            match (r.target.type_.as_str(), r.target.average_utilization, r.target.average_value.as_ref()) {
                ("Utilization", Some(u), _) => (Target::Utilization(u), "utilization"),
                ("AverageValue", _, Some(v)) => {
                    (Target::AverageValue(parse_quantity(&v.0).map_or(0, |q| q.nanos)), "usage")
                }
                _ => {
                    let msg = format!("invalid resource metric target for {}", r.name);
                    return Err(("FailedGetResourceMetric", msg.clone(), msg, statuses));
                }
            };
        if pod_metrics.is_none() {
            let path =
                format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector={}", urlencode(selector));
            pod_metrics = Some(get_json(&ctx.client, &path).await.map_err(|e| {
                if e.contains("could not find") || e.contains("not found") || e.contains("404") {
                    "the server could not find the requested resource (get pods.metrics.k8s.io)".to_string()
                } else {
                    e
                }
            }));
        }
        let fetched = match pod_metrics.as_ref().expect("fetched above") {
            Ok(v) => v.clone(),
            Err(e) => {
                let inner = format!("failed to get {} {what}: unable to get metrics for resource {}: unable to fetch metrics from resource metrics API: {e}", r.name, r.name);
                statuses.push(json!({"type": "Resource", "resource": {"name": r.name, "current": {}}}));
                return Err((
                    "FailedGetResourceMetric",
                    format!("failed to get {} resource metric value: {inner}", r.name),
                    inner,
                    statuses,
                ));
            }
        };
        let samples = samples(&pod_list, &fetched, &r.name);
        match replicas_for_metric(current, target, &samples) {
            Ok(res) => {
                let mut cur = json!({"averageValue": canonical_quantity(&Quantity { nanos: res.average_value, format: format_of(&r.name) })});
                if let Some(u) = res.utilization {
                    cur["averageUtilization"] = json!(u);
                }
                statuses.push(json!({"type": "Resource", "resource": {"name": r.name, "current": cur}}));
                let reason = if res.replicas > current {
                    format!(
                        "{} resource{} above target",
                        r.name,
                        if what == "utilization" { " utilization (percentage of request)" } else { "" }
                    )
                } else {
                    "All metrics below target".to_string()
                };
                if best.as_ref().is_none_or(|(b, _)| res.replicas > *b) {
                    best = Some((res.replicas, reason));
                }
            }
            Err(e) => {
                let inner = format!("failed to get {} {what}: {e}", r.name);
                return Err((
                    "FailedGetResourceMetric",
                    format!("failed to get {} resource metric value: {inner}", r.name),
                    inner,
                    statuses,
                ));
            }
        }
    }
    let (replicas, reason) = best.unwrap_or((current, String::new()));
    Ok((replicas, statuses, reason))
}

fn format_of(resource: &str) -> QuantityFormat {
    if resource == "memory" {
        QuantityFormat::BinarySi
    } else {
        QuantityFormat::DecimalSi
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The pods' samples for `resource` from a PodMetricsList.
fn samples(pods: &[Pod], metrics: &Value, resource: &str) -> Vec<PodSample> {
    let usage: HashMap<String, i128> = metrics
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let name = m.pointer("/metadata/name")?.as_str()?.to_string();
            let total = m
                .get("containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    c.pointer(&format!("/usage/{resource}")).and_then(Value::as_str).and_then(parse_quantity)
                })
                .map(|q| q.nanos)
                .sum();
            Some((name, total))
        })
        .collect();
    let now = chrono::Utc::now();
    pods.iter()
        .map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let st = p.status.clone().unwrap_or_default();
            let phase = st.phase.as_deref().unwrap_or("");
            let ignored = p.metadata.deletion_timestamp.is_some() || phase == "Failed";
            let ready = st.conditions.iter().flatten().find(|c| c.type_ == "Ready");
            let started =
                st.start_time.as_ref().and_then(|t| chrono::DateTime::parse_from_rfc3339(&t.0.to_string()).ok());
            let unready = phase == "Pending"
                || (resource == "cpu"
                    && match (ready, started) {
                        (None, _) | (_, None) => true,
                        (Some(c), Some(s)) => {
                            let age = now.signed_duration_since(s).to_std().unwrap_or_default();
                            let transition = c
                                .last_transition_time
                                .as_ref()
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t.0.to_string()).ok())
                                .map(|t| t.signed_duration_since(s).to_std().unwrap_or_default());
                            if age < CPU_INITIALIZATION_PERIOD {
                                c.status != "True"
                            } else {
                                c.status == "False" && transition.is_some_and(|t| t < INITIAL_READINESS_DELAY)
                            }
                        }
                    });
            let spec = p.spec.clone().unwrap_or_default();
            let requests: Option<i128> = spec
                .containers
                .iter()
                .map(|c| {
                    c.resources
                        .as_ref()
                        .and_then(|r| r.requests.as_ref())
                        .and_then(|r| r.get(resource))
                        .and_then(|q| parse_quantity(&q.0))
                        .map(|q| q.nanos)
                })
                .sum();
            PodSample { usage: usage.get(&name).copied(), request: requests, ignored, unready, name }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(usage_m: Option<i128>, request_m: i128) -> PodSample {
        PodSample {
            name: "p".into(),
            usage: usage_m.map(|u| u * 1_000_000),
            request: Some(request_m * 1_000_000),
            ignored: false,
            unready: false,
        }
    }

    #[test]
    fn utilization_scales_up_and_down_with_tolerance() {
        // 2 pods at 100 % of request, target 50 % → 4.
        let pods = vec![pod(Some(200), 200), pod(Some(200), 200)];
        assert_eq!(replicas_for_metric(2, Target::Utilization(50), &pods).unwrap().replicas, 4);
        // Within 10 %: unchanged.
        let pods = vec![pod(Some(105), 200), pod(Some(105), 200)];
        let r = replicas_for_metric(2, Target::Utilization(50), &pods).unwrap();
        assert_eq!((r.replicas, r.utilization), (2, Some(52)));
        // 4 pods at 10 % of request, target 50 % → ceil(0.2 * 4) = 1.
        let pods = vec![pod(Some(20), 200); 4];
        assert_eq!(replicas_for_metric(4, Target::Utilization(50), &pods).unwrap().replicas, 1);
    }

    #[test]
    fn missing_and_unready_pods_dampen() {
        // Scale up with a pod lacking metrics: it counts as 0 → ratio (400/600=66% / 50%) → 4.
        let pods = vec![pod(Some(200), 200), pod(Some(200), 200), pod(None, 200)];
        assert_eq!(replicas_for_metric(3, Target::Utilization(50), &pods).unwrap().replicas, 4);
        // Scale down with a missing pod: it counts as 100 % → 3 pods: (20+20+200)/600 = 40% / 50% → ceil(0.8*3)=3.
        let pods = vec![pod(Some(20), 200), pod(Some(20), 200), pod(None, 200)];
        assert_eq!(replicas_for_metric(3, Target::Utilization(50), &pods).unwrap().replicas, 3);
        // An unready pod counts as 0 when scaling up.
        let mut u = pod(Some(500), 200);
        u.unready = true;
        let pods = vec![pod(Some(200), 200), u];
        // ready: 100% / 50% = 2 → with unready at 0: 200/400 = 50% → ratio 1 → unchanged.
        assert_eq!(replicas_for_metric(2, Target::Utilization(50), &pods).unwrap().replicas, 2);
        // Missing request: an error naming the pod.
        let mut bad = pod(Some(10), 0);
        bad.request = None;
        assert!(replicas_for_metric(1, Target::Utilization(50), &[bad]).unwrap_err().contains("missing request"));
    }

    #[test]
    fn average_value_target() {
        // 3 pods using 300m in total, target 50m per pod → 6.
        let pods = vec![pod(Some(100), 0), pod(Some(100), 0), pod(Some(100), 0)];
        let r = replicas_for_metric(3, Target::AverageValue(50 * 1_000_000), &pods).unwrap();
        assert_eq!(r.replicas, 6);
        assert_eq!(r.average_value, 100 * 1_000_000);
    }

    fn hpa(behavior: Value) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({"metadata": {"name": "h"}, "spec": {"minReplicas": 1, "maxReplicas": 20,
            "scaleTargetRef": {"kind": "Deployment", "name": "d", "apiVersion": "apps/v1"}, "behavior": behavior}}))
        .unwrap()
    }

    #[test]
    fn scale_down_is_stabilized_for_five_minutes() {
        let h = hpa(Value::Null);
        let mut hist = History::default();
        let t0 = Instant::now();
        assert_eq!(normalize(&h, &mut hist, t0, 5, 8).0, 8);
        // The metrics now want 2, but 8 was recommended within 300 s: stay at 8.
        assert_eq!(normalize(&h, &mut hist, t0 + Duration::from_secs(60), 8, 2).0, 8);
        // After the window, down it goes.
        assert_eq!(normalize(&h, &mut hist, t0 + Duration::from_secs(400), 8, 2).0, 2);
    }

    #[test]
    fn policies_limit_the_rate() {
        // Default scale-up: max(4 pods, 100 %) per 15 s: from 2, at most 6 (2+4) vs 4 (2*2) → 6.
        let h = hpa(Value::Null);
        let mut hist = History::default();
        let (d, l) = normalize(&h, &mut hist, Instant::now(), 2, 15);
        assert_eq!(d, 6);
        assert_eq!(l.unwrap().reason, "ScaleUpLimit");
        // A custom policy: 1 pod per minute, with a change already made in this period.
        let h = hpa(json!({"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
            "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}));
        let mut hist = History::default();
        let now = Instant::now();
        hist.scale_ups.push(Stamped { at: now, replicas: 1 });
        assert_eq!(normalize(&h, &mut hist, now, 3, 10).0, 3);
        // Scale down by at most 50 % per minute: 10 → 5.
        let mut hist = History::default();
        assert_eq!(normalize(&h, &mut hist, now, 10, 1).0, 5);
        // Max replicas bound.
        let mut hist = History::default();
        let (d, l) = normalize(
            &hpa(json!({"scaleUp": {"policies": [{"type": "Pods", "value": 100, "periodSeconds": 15}]}})),
            &mut hist,
            now,
            10,
            50,
        );
        assert_eq!((d, l.unwrap().reason), (20, "TooManyReplicas"));
    }
}
