//! The Job controller (upstream's pkg/controller/job, 1.33 behaviour): pods tracked with the
//! `batch.kubernetes.io/job-tracking` finalizer and `status.uncountedTerminatedPods` (a pod is
//! counted exactly once, even across restarts), completions and parallelism, NonIndexed and Indexed
//! completion modes, backoffLimit with exponential back-off between retries, activeDeadlineSeconds,
//! suspend / resume, and the SuccessCriteriaMet → Complete and FailureTarget → Failed conditions.
//! podFailurePolicy, successPolicy and backoffLimitPerIndex are not implemented.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::common::{self, ControllerError, Ctx};

/// The finalizer holding a Job's pods until they are counted.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The completion index annotation and label of Indexed Jobs' pods.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// Starts the Job controller.
pub fn spawn(client: Client) -> JoinHandle<()> {
    let controller = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default());
    let store = controller.store();
    let mapper = common::pod_mapper(controller.store(), |j: &Job| j.spec.as_ref().and_then(|s| s.selector.clone()));
    let orphans = client.clone();
    let controller =
        controller.watches(Api::<Pod>::all(client.clone()), watcher::Config::default(), move |pod: Pod| {
            // A tracked pod whose Job is gone or going is never reconciled through its Job: release it
            // here, after confirming with a fresh read.
            if has_finalizer(&pod) {
                let owner = common::controller_of(&pod.metadata).filter(|r| r.kind == "Job").cloned();
                let ns = pod.namespace().unwrap_or_default();
                let live = owner.as_ref().is_some_and(|r| {
                    store.get(&ObjectRef::<Job>::new(&r.name).within(&ns)).is_some_and(|j| {
                        j.metadata.uid.as_deref() == Some(r.uid.as_str()) && j.metadata.deletion_timestamp.is_none()
                    })
                });
                if !live {
                    tokio::spawn(release_orphan(orphans.clone(), store.clone(), pod.clone()));
                }
            }
            mapper(pod)
        });
    // A deleted (or deleting) Job's pods are not reconciled through it any more: release them.
    let jobs = Api::<Job>::all(client.clone());
    let release_client = client.clone();
    let releases = async move {
        let mut events = watcher(jobs, watcher::Config::default()).default_backoff().boxed();
        while let Some(ev) = events.next().await {
            let job = match ev {
                Ok(watcher::Event::Delete(j)) => j,
                Ok(watcher::Event::Apply(j)) if j.metadata.deletion_timestamp.is_some() => j,
                _ => continue,
            };
            let (Some(uid), Some(ns)) = (job.metadata.uid.clone(), job.namespace()) else { continue };
            let pods: Api<Pod> = Api::namespaced(release_client.clone(), &ns);
            let lp = ListParams::default().labels(&format!("batch.kubernetes.io/controller-uid={uid}"));
            let Ok(list) = pods.list(&lp).await else { continue };
            for p in list.items.iter().filter(|p| has_finalizer(p) && common::is_controlled_by(&p.metadata, &uid)) {
                if let Err(e) = remove_finalizer(&pods, p).await {
                    tracing::debug!(message = "releasing a deleted job's pod failed", pod = %p.name_any(), error = %e);
                }
            }
        }
    };
    let main = common::run("job", client, controller, reconcile);
    tokio::spawn(async move {
        tokio::join!(main, releases);
    })
}

/// Removes the tracking finalizer from a pod whose Job no longer exists (or is being deleted).
async fn release_orphan(client: Client, store: Store<Job>, pod: Pod) {
    if store.wait_until_ready().await.is_err() {
        return;
    }
    let ns = pod.namespace().unwrap_or_default();
    let owner = common::controller_of(&pod.metadata).filter(|r| r.kind == "Job").cloned();
    if let Some(r) = &owner {
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        match jobs.get_opt(&r.name).await {
            Ok(Some(j))
                if j.metadata.uid.as_deref() == Some(r.uid.as_str()) && j.metadata.deletion_timestamp.is_none() =>
            {
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    if let Err(e) = remove_finalizer(&pods, &pod).await {
        tracing::debug!(message = "releasing an orphaned job pod failed", pod = %pod.name_any(), error = %e);
    }
}

/// Whether a Job has a True `Complete` or `Failed` condition.
pub fn finished(job: &Job) -> Option<(&str, Option<Timestamp>)> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find_map(|c| {
        ((c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            .then(|| (c.type_.as_str(), c.last_transition_time.as_ref().map(|t| t.0)))
    })
}

fn has_condition(conds: &[Value], type_: &str) -> bool {
    conds.iter().any(|c| c["type"] == type_ && c["status"] == "True")
}

fn index_of(p: &Pod) -> Option<i32> {
    p.annotations().get(COMPLETION_INDEX).or_else(|| p.labels().get(COMPLETION_INDEX)).and_then(|v| v.parse().ok())
}

/// Parses `completedIndexes` ("1,3-5").
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.insert(a);
                }
            }
        }
    }
    out
}

/// Renders a set of indexes as upstream's interval list.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        parts.push(if end == start { start.to_string() } else { format!("{start}-{end}") });
    }
    parts.join(",")
}

fn has_finalizer(p: &Pod) -> bool {
    p.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

fn terminal_succeeded(p: &Pod) -> bool {
    common::pod_phase(p) == "Succeeded"
}

fn terminal_failed(p: &Pod) -> bool {
    common::pod_phase(p) == "Failed" || (p.metadata.deletion_timestamp.is_some() && !terminal_succeeded(p))
}

fn finish_time(p: &Pod) -> Option<Timestamp> {
    let from_containers = p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|cs| {
        cs.iter().filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0)).max()
    });
    from_containers
        .or_else(|| p.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

async fn remove_finalizer(api: &Api<Pod>, p: &Pod) -> Result<(), ControllerError> {
    let Some(i) = p.finalizers().iter().position(|f| f == TRACKING_FINALIZER) else { return Ok(()) };
    let patch = json!([
        { "op": "test", "path": format!("/metadata/finalizers/{i}"), "value": TRACKING_FINALIZER },
        { "op": "remove", "path": format!("/metadata/finalizers/{i}") },
    ]);
    let patch: json_patch::Patch = serde_json::from_value(patch)?;
    match api.patch(&p.name_any(), &PatchParams::default(), &Patch::<()>::Json(patch)).await {
        Ok(_) => Ok(()),
        Err(e) if common::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile(obj: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, ControllerError> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(job) = api.get_opt(&obj.name_any()).await? else { return Ok(Action::await_change()) };
    let name = job.name_any();
    let spec: JobSpec = job.spec.clone().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let sel = common::selector(spec.selector.as_ref(), &format!("job {ns}/{name}"))?;
    let all = common::list_all(&pods_api).await?;
    let pods = common::claim(&pods_api, &job, &sel, all).await?;
    let status = job.status.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;

    // Accounting: terminated pods still holding the finalizer are recorded as uncounted, their
    // finalizers removed, then they are added to the counters.
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut unc_succeeded: BTreeSet<String> = uncounted.succeeded.clone().unwrap_or_default().into_iter().collect();
    let mut unc_failed: BTreeSet<String> = uncounted.failed.clone().unwrap_or_default().into_iter().collect();
    let mut completed = parse_indexes(status.completed_indexes.as_deref().unwrap_or(""));
    let mut recorded = false;
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let uid = p.uid().unwrap_or_default();
        if unc_succeeded.contains(&uid) || unc_failed.contains(&uid) {
            continue;
        }
        if terminal_succeeded(p) {
            if indexed {
                match index_of(p).filter(|i| completions.is_some_and(|c| *i >= 0 && *i < c)) {
                    Some(i) if !completed.contains(&i) => {
                        completed.insert(i);
                        unc_succeeded.insert(uid);
                    }
                    // A second success of an index (or an out-of-range pod) is not counted.
                    _ => {
                        remove_finalizer(&pods_api, p).await?;
                        continue;
                    }
                }
            } else {
                unc_succeeded.insert(uid);
            }
            recorded = true;
        } else if terminal_failed(p) {
            unc_failed.insert(uid);
            recorded = true;
        }
    }
    if recorded {
        let s = json!({
            "uncountedTerminatedPods": { "succeeded": unc_succeeded, "failed": unc_failed },
            "completedIndexes": if indexed { Value::from(format_indexes(&completed)) } else { Value::Null },
        });
        common::patch_status(&api, &name, &s).await?;
    }
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let uid = p.uid().unwrap_or_default();
        if unc_succeeded.contains(&uid) || unc_failed.contains(&uid) {
            remove_finalizer(&pods_api, p).await?;
        }
    }
    let mut succeeded = status.succeeded.unwrap_or(0) + unc_succeeded.len() as i32;
    let failed = status.failed.unwrap_or(0) + unc_failed.len() as i32;
    if indexed {
        succeeded = completed.len() as i32;
    }
    let counted = !unc_succeeded.is_empty() || !unc_failed.is_empty();

    // Finished Jobs only clean up stray finalizers.
    if finished(&job).is_some() {
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            remove_finalizer(&pods_api, p).await?;
        }
        if counted {
            let s = json!({ "succeeded": succeeded, "failed": failed,
                "uncountedTerminatedPods": { "succeeded": [], "failed": [] } });
            common::patch_status(&api, &name, &s).await?;
        }
        return Ok(Action::await_change());
    }

    let mut active: Vec<Pod> = pods.iter().filter(|p| common::pod_active(p)).cloned().collect();
    let mut conds: Vec<Value> =
        status.conditions.iter().flatten().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)).collect();
    let at = common::now();
    let mut start_time: Option<Value> = status.start_time.as_ref().map(|t| json!(t));
    let mut completion_time: Option<Value> = None;
    let mut requeue: Option<Duration> = None;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let suspended = spec.suspend == Some(true);
    let mut failure_target = conds.iter().find(|c| c["type"] == "FailureTarget" && c["status"] == "True").cloned();
    let mut success = has_condition(&conds, "SuccessCriteriaMet");

    if !success && failure_target.is_none() {
        // Success criteria.
        let met = match (indexed, completions) {
            (true, Some(c)) => completed.len() as i32 >= c,
            (false, Some(c)) => succeeded >= c,
            (_, None) => succeeded > 0 && active.is_empty(),
        };
        if met {
            common::set_condition(
                &mut conds,
                job_condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                true,
            );
            success = true;
        } else if failed > spec.backoff_limit.unwrap_or(6) {
            let c =
                job_condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit");
            common::set_condition(&mut conds, c.clone(), true);
            failure_target = Some(c);
        } else if let (Some(deadline), Some(start), false) =
            (spec.active_deadline_seconds, status.start_time.as_ref(), suspended)
        {
            let elapsed = at.as_millisecond() - start.0.as_millisecond();
            if elapsed >= deadline * 1000 {
                let c =
                    job_condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline");
                common::set_condition(&mut conds, c.clone(), true);
                failure_target = Some(c);
            } else {
                requeue = Some(Duration::from_millis((deadline * 1000 - elapsed) as u64 + 10));
            }
        }
    }

    if success || failure_target.is_some() {
        // Terminate what still runs, then finish. Pods stopped because the Job failed count as
        // failures (upstream); pods stopped after success do not.
        for p in &active {
            if success {
                remove_finalizer(&pods_api, p).await?;
            }
            common::delete_ignore_missing(&pods_api, &p.name_any(), &DeleteParams::default()).await?;
        }
        let still =
            pods.iter().any(|p| common::pod_active(p) || (p.metadata.deletion_timestamp.is_some() && has_finalizer(p)));
        if !still && active.is_empty() {
            if success {
                let c = job_condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods");
                if common::set_condition(&mut conds, c, true) {
                    ctx.event(&job, false, "Completed", "Job completed".into()).await;
                }
                completion_time = Some(json!(common::time_now()));
            } else if let Some(t) = &failure_target {
                let (reason, message) = (t["reason"].as_str().unwrap_or(""), t["message"].as_str().unwrap_or(""));
                if common::set_condition(&mut conds, job_condition("Failed", reason, message), true) {
                    ctx.event(&job, true, reason, message.to_string()).await;
                }
            }
        }
        active.clear();
    } else if suspended {
        // Suspension: active pods are removed without being counted as failures.
        for p in &active {
            remove_finalizer(&pods_api, p).await?;
            common::delete_ignore_missing(&pods_api, &p.name_any(), &DeleteParams::default()).await?;
        }
        active.clear();
        if !has_condition(&conds, "Suspended") {
            common::set_condition(&mut conds, job_condition("Suspended", "JobSuspended", "Job suspended"), true);
            ctx.event(&job, false, "Suspended", "Job suspended".into()).await;
        }
        start_time = Some(Value::Null);
    } else {
        if has_condition(&conds, "Suspended") {
            let mut c = job_condition("Suspended", "JobResumed", "Job resumed");
            c["status"] = json!("False");
            common::set_condition(&mut conds, c, true);
            ctx.event(&job, false, "Resumed", "Job resumed".into()).await;
            start_time = Some(json!(common::time_now()));
            if let Some(d) = spec.active_deadline_seconds {
                requeue = common::earliest(requeue, Some(Duration::from_secs(d as u64)));
            }
        }
        if start_time.is_none() {
            start_time = Some(json!(common::time_now()));
            if let Some(d) = spec.active_deadline_seconds {
                requeue = common::earliest(requeue, Some(Duration::from_secs(d as u64)));
            }
        }
        // Back-off after failures: 10 s doubling per consecutive failure, capped at 6 minutes.
        let last_success = pods.iter().filter(|p| terminal_succeeded(p)).filter_map(finish_time).max();
        let failures: Vec<Timestamp> = pods
            .iter()
            .filter(|p| terminal_failed(p))
            .filter_map(finish_time)
            .filter(|t| last_success.is_none_or(|s| *t > s))
            .collect();
        let mut backoff_wait = None;
        if let Some(last) = failures.iter().max() {
            let n = failures.len() as u32;
            let delay = BACKOFF_BASE.saturating_mul(1 << (n - 1).min(10)).min(BACKOFF_MAX);
            let elapsed = (at.as_millisecond() - last.as_millisecond()).max(0) as u64;
            if elapsed < delay.as_millis() as u64 {
                backoff_wait = Some(Duration::from_millis(delay.as_millis() as u64 - elapsed));
            }
        }
        let job_ref = common::controller_ref(&job);
        if indexed {
            let c = completions.unwrap_or(0);
            // Duplicate pods of one index: keep the oldest.
            let mut by_index: BTreeMap<i32, Vec<&Pod>> = BTreeMap::new();
            for p in &active {
                match index_of(p) {
                    Some(i) if i >= 0 && i < c && !completed.contains(&i) => by_index.entry(i).or_default().push(p),
                    _ => {
                        remove_finalizer(&pods_api, p).await?;
                        common::delete_ignore_missing(&pods_api, &p.name_any(), &DeleteParams::default()).await?;
                    }
                }
            }
            for ps in by_index.values().filter(|v| v.len() > 1) {
                let mut ps = ps.clone();
                ps.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
                for p in &ps[1..] {
                    remove_finalizer(&pods_api, p).await?;
                    common::delete_ignore_missing(&pods_api, &p.name_any(), &DeleteParams::default()).await?;
                }
            }
            let running = by_index.len() as i32;
            let room = (parallelism - running).max(0) as usize;
            let pending: Vec<i32> =
                (0..c).filter(|i| !completed.contains(i) && !by_index.contains_key(i)).take(room).collect();
            if !pending.is_empty() {
                if let Some(w) = backoff_wait {
                    requeue = common::earliest(requeue, Some(w));
                } else {
                    let (_, err) = common::slow_start(pending.len(), |k| {
                        let pod = job_pod(&job, &spec, job_ref.clone(), Some(pending[k]));
                        let api = pods_api.clone();
                        let (ctx, job) = (ctx.clone(), job.clone());
                        async move { common::create_pod_recorded(&ctx, &job, &api, &pod).await }
                    })
                    .await;
                    if let Some(e) = err {
                        return Err(e.into());
                    }
                }
            }
        } else {
            let want = match completions {
                None => {
                    if succeeded > 0 {
                        active.len() as i32
                    } else {
                        parallelism
                    }
                }
                Some(c) => parallelism.min(c - succeeded).max(0),
            };
            let have = active.len() as i32;
            if have > want {
                active.sort_by(super::replicaset::deletion_order);
                for p in active.iter().take((have - want) as usize) {
                    remove_finalizer(&pods_api, p).await?;
                    common::delete_ignore_missing(&pods_api, &p.name_any(), &DeleteParams::default()).await?;
                }
            } else if have < want {
                if let Some(w) = backoff_wait {
                    requeue = common::earliest(requeue, Some(w));
                } else {
                    let pod = job_pod(&job, &spec, job_ref, None);
                    let (_, err) = common::slow_start((want - have).min(500) as usize, |_| {
                        common::create_pod_recorded(&ctx, &job, &pods_api, &pod)
                    })
                    .await;
                    if let Some(e) = err {
                        return Err(e.into());
                    }
                }
            }
        }
    }

    // Status from a fresh list.
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let fresh: Vec<Pod> = common::list_all(&pods_api)
        .await?
        .into_iter()
        .filter(|p| common::is_controlled_by(&p.metadata, &uid))
        .collect();
    let active_n = fresh.iter().filter(|p| common::pod_active(p)).count();
    let ready_n = fresh.iter().filter(|p| common::pod_active(p) && common::pod_ready(p)).count();
    let terminating_n = fresh
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && !matches!(common::pod_phase(p), "Succeeded" | "Failed"))
        .count();
    common::strip_update_time(&mut conds);
    let mut s = json!({
        "active": active_n,
        "ready": ready_n,
        "terminating": terminating_n,
        "succeeded": succeeded,
        "failed": failed,
        "uncountedTerminatedPods": { "succeeded": [], "failed": [] },
        "conditions": conds,
    });
    if indexed {
        s["completedIndexes"] = json!(format_indexes(&completed));
    }
    if let Some(t) = start_time {
        s["startTime"] = t;
    }
    if let Some(t) = completion_time {
        s["completionTime"] = t;
    }
    let old = serde_json::to_value(&status)?;
    let changed = s.as_object().is_some_and(|m| {
        m.iter().any(|(k, v)| {
            let o = old.get(k).cloned().unwrap_or(Value::Null);
            match k.as_str() {
                "active" | "ready" | "terminating" | "succeeded" | "failed" => {
                    o.as_i64().unwrap_or(0) != v.as_i64().unwrap_or(0)
                }
                "uncountedTerminatedPods" => counted || (o != Value::Null && o != json!({}) && &o != v),
                _ => &o != v,
            }
        })
    });
    if changed {
        common::patch_status(&api, &name, &s).await?;
    }
    if active_n > 0 && requeue.is_none() {
        requeue = Some(Duration::from_secs(300));
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

fn job_condition(type_: &str, reason: &str, message: &str) -> Value {
    let mut c = common::condition(type_, "True", reason, message);
    c["lastProbeTime"] = c["lastTransitionTime"].clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("lastUpdateTime");
    }
    c
}

/// A pod for a Job: the template, the tracking finalizer, and for Indexed Jobs the completion index
/// (annotation, label, hostname, JOB_COMPLETION_INDEX).
fn job_pod(
    job: &Job,
    spec: &JobSpec,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    index: Option<i32>,
) -> Pod {
    let name = job.name_any();
    let mut pod = common::pod_from_template(&spec.template, owner);
    pod.metadata.finalizers.get_or_insert_with(Vec::new).push(TRACKING_FINALIZER.into());
    match index {
        None => pod.metadata.generate_name = Some(format!("{name}-")),
        Some(i) => {
            pod.metadata.generate_name = Some(format!("{name}-{i}-"));
            pod.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(COMPLETION_INDEX.into(), i.to_string());
            pod.metadata.labels.get_or_insert_with(BTreeMap::new).insert(COMPLETION_INDEX.into(), i.to_string());
            let ps = pod.spec.get_or_insert_with(Default::default);
            if ps.hostname.is_none() {
                ps.hostname = Some(format!("{name}-{i}"));
            }
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    }),
                    ..Default::default()
                }),
            };
            for c in ps.containers.iter_mut().chain(ps.init_containers.iter_mut().flatten()) {
                let envs = c.env.get_or_insert_with(Vec::new);
                if !envs.iter().any(|e| e.name == env.name) {
                    envs.push(env.clone());
                }
            }
        }
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_round_trip() {
        let s: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(format_indexes(&s), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7"), s);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        assert!(parse_indexes("").is_empty());
    }
}
