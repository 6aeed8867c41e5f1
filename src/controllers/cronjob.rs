//! The CronJob controller (upstream's cronjob v2 controller): creates a Job named
//! `<cronjob>-<scheduled time in minutes since the epoch>` at each scheduled time (in
//! `spec.timeZone`), honours concurrencyPolicy Allow / Forbid / Replace, startingDeadlineSeconds
//! (and warns past 100 missed start times), suspend, and the successful / failed history limits;
//! keeps status.active, lastScheduleTime and lastSuccessfulTime.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::common::{self, ControllerError, Ctx};
use super::cron::Schedule;
use super::job::finished;

/// The annotation holding the scheduled time of a CronJob's Job.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed start times than this is reported as a likely clock or configuration problem.
const MISSED_LIMIT: usize = 100;

/// Starts the CronJob controller.
pub fn spawn(client: Client) -> JoinHandle<()> {
    let controller = Controller::new(Api::<CronJob>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Job>::all(client.clone()), watcher::Config::default());
    common::spawn("cronjob", client, controller, reconcile)
}

/// The most recent scheduled time in (earliest, now], and how many were missed (upstream's
/// mostRecentScheduleTime).
pub fn most_recent(sched: &Schedule, tz: &TimeZone, earliest: Timestamp, now: Timestamp) -> (Option<Timestamp>, usize) {
    let mut t = earliest;
    let mut last = None;
    let mut count = 0;
    while let Some(n) = sched.next(t, tz) {
        if n > now {
            return (last, count);
        }
        last = Some(n);
        count += 1;
        t = n;
        if count > MISSED_LIMIT {
            break;
        }
    }
    if count <= MISSED_LIMIT {
        return (last, count);
    }
    // Too many to list: find the latest one from a window just before now.
    for back in [3_600i64, 86_400, 32 * 86_400, 366 * 86_400, 5 * 366 * 86_400] {
        let from = Timestamp::from_second((now.as_second() - back).max(earliest.as_second())).unwrap_or(earliest);
        let mut t = from;
        let mut found = None;
        while let Some(n) = sched.next(t, tz) {
            if n > now {
                break;
            }
            found = Some(n);
            t = n;
        }
        if found.is_some() {
            return (found, count);
        }
    }
    (last, count)
}

async fn reconcile(obj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, ControllerError> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cj) = api.get_opt(&obj.name_any()).await? else { return Ok(Action::await_change()) };
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = cj.name_any();
    let spec = cj.spec.clone().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs: Vec<Job> = common::list_all(&jobs_api)
        .await?
        .into_iter()
        .filter(|j| common::is_controlled_by(&j.metadata, &uid))
        .collect();
    let status = cj.status.clone().unwrap_or_default();
    let old_status = serde_json::to_value(&status)?;

    // Active list: unfinished children; finished ones leave it.
    let mut active: Vec<Value> = Vec::new();
    let mut last_success = status.last_successful_time.as_ref().map(|t| t.0);
    let was_active = |j: &Job| status.active.iter().flatten().any(|r| r.uid == j.metadata.uid);
    for j in &jobs {
        if let Some((cond, _)) = finished(j).filter(|_| was_active(j)) {
            let note = format!("Saw completed job: {}, condition: {cond}", j.name_any());
            ctx.event(&cj, false, "SawCompletedJob", note).await;
        }
        match finished(j) {
            None => {
                if j.metadata.deletion_timestamp.is_none() {
                    active.push(job_ref(j));
                }
            }
            Some(("Complete", when)) => {
                let done = j.status.as_ref().and_then(|s| s.completion_time.as_ref()).map(|t| t.0).or(when);
                if done > last_success {
                    last_success = done;
                }
            }
            Some(_) => {}
        }
    }

    // History limits: oldest finished Jobs beyond the limits go.
    cleanup(&ctx, &cj, &jobs_api, &jobs, "Complete", spec.successful_jobs_history_limit.unwrap_or(3)).await?;
    cleanup(&ctx, &cj, &jobs_api, &jobs, "Failed", spec.failed_jobs_history_limit.unwrap_or(1)).await?;

    let mut last_schedule = status.last_schedule_time.as_ref().map(|t| t.0);
    let mut requeue = None;
    let at = common::now();
    let tz = super::cron::time_zone(spec.time_zone.as_deref());
    let sched = Schedule::parse(&spec.schedule);
    match (tz, sched) {
        (Err(e), _) => {
            tracing::warn!(message = "cronjob has an unknown time zone", cronjob = %name, namespace = %ns, error = %e);
            let tz = spec.time_zone.clone().unwrap_or_default();
            ctx.event(&cj, true, "UnknownTimeZone", format!("invalid timeZone: {tz:?}: {e}")).await;
        }
        (_, Err(e)) => {
            tracing::warn!(message = "cronjob has an unparseable schedule", cronjob = %name, namespace = %ns, schedule = %spec.schedule, error = %e);
            let note = format!("unparseable schedule: {:?} : {e}", spec.schedule);
            ctx.event(&cj, true, "UnparseableSchedule", note).await;
        }
        (Ok(_), Ok(_)) if spec.suspend == Some(true) => {}
        (Ok(tz), Ok(sched)) => {
            let created = cj.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(at);
            let mut earliest = last_schedule.unwrap_or(created);
            if let Some(d) = spec.starting_deadline_seconds {
                let from = Timestamp::from_second(at.as_second() - d).unwrap_or(earliest);
                if from > earliest {
                    earliest = from;
                }
            }
            let (scheduled, missed) = most_recent(&sched, &tz, earliest, at);
            if missed > MISSED_LIMIT {
                let note = format!(
                    "too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
                );
                tracing::warn!(message = %note, cronjob = %name, namespace = %ns);
                ctx.event(&cj, true, "TooManyMissedTimes", note).await;
            }
            if let Some(t) = scheduled {
                let too_late = spec.starting_deadline_seconds.is_some_and(|d| t.as_second() + d < at.as_second());
                let job_name = format!("{name}-{}", t.as_second().div_euclid(60));
                let processed = active.iter().any(|r| r["name"] == job_name.as_str()) || last_schedule == Some(t);
                let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
                if too_late {
                    tracing::info!(message = "missed scheduled time to start a job", cronjob = %name, namespace = %ns, scheduled = %t);
                    if !processed {
                        let note = format!("Missed scheduled time to start a job: {}", t.to_zoned(tz.clone()));
                        ctx.event(&cj, true, "MissSchedule", note).await;
                    }
                } else if processed {
                } else if policy == "Forbid" && !active.is_empty() {
                    let note = "Not starting job because prior execution is running and concurrency policy is Forbid";
                    ctx.event(&cj, false, "JobAlreadyActive", note.into()).await;
                } else {
                    if policy == "Replace" {
                        for r in active.drain(..) {
                            let n = r["name"].as_str().unwrap_or_default().to_string();
                            common::delete_ignore_missing(&jobs_api, &n, &DeleteParams::background()).await?;
                            ctx.event(&cj, false, "SuccessfulDelete", format!("Deleted job {n}")).await;
                        }
                    }
                    let job = job_for(&cj, &job_name, t, &tz);
                    match jobs_api.create(&PostParams::default(), &job).await {
                        Ok(created) => {
                            tracing::info!(message = "created job", cronjob = %name, namespace = %ns, job = %job_name);
                            ctx.event(&cj, false, "SuccessfulCreate", format!("Created job {job_name}")).await;
                            active.push(job_ref(&created));
                        }
                        Err(e) if common::is_already_exists(&e) => {
                            let existing = jobs_api.get(&job_name).await?;
                            if common::is_controlled_by(&existing.metadata, &uid)
                                && finished(&existing).is_none()
                                && !active.iter().any(|r| r["name"] == job_name.as_str())
                            {
                                active.push(job_ref(&existing));
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                    last_schedule = Some(t);
                }
            }
            if let Some(n) = sched.next(at, &tz) {
                let ms = (n.as_millisecond() - common::now().as_millisecond()).max(0) as u64 + 100;
                requeue = Some(Duration::from_millis(ms));
            }
        }
    }

    let new_status = json!({
        "active": if active.is_empty() { Value::Null } else { Value::Array(active) },
        "lastScheduleTime": last_schedule.map(Time),
        "lastSuccessfulTime": last_success.map(Time),
    });
    if ["active", "lastScheduleTime", "lastSuccessfulTime"]
        .iter()
        .any(|k| old_status.get(*k).cloned().unwrap_or(Value::Null) != new_status[*k])
    {
        common::patch_status(&api, &name, &new_status).await?;
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

fn job_ref(j: &Job) -> Value {
    json!({ "apiVersion": "batch/v1", "kind": "Job", "name": j.name_any(), "namespace": j.namespace(),
        "uid": j.uid(), "resourceVersion": j.resource_version() })
}

fn job_for(cj: &CronJob, name: &str, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let tpl = cj.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
    let tm = tpl.metadata.unwrap_or_default();
    let mut annotations = tm.annotations.unwrap_or_default();
    let local = scheduled.to_zoned(tz.clone());
    annotations
        .insert(SCHEDULED_TIMESTAMP.into(), local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string().replace("+00:00", "Z"));
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: tm.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![common::controller_ref(cj)]),
            ..Default::default()
        },
        spec: tpl.spec,
        status: None,
    }
}

async fn cleanup(
    ctx: &Ctx,
    cj: &CronJob,
    api: &Api<Job>,
    jobs: &[Job],
    kind: &str,
    limit: i32,
) -> Result<(), ControllerError> {
    let mut done: Vec<&Job> = jobs.iter().filter(|j| finished(j).is_some_and(|(k, _)| k == kind)).collect();
    let limit = limit.max(0) as usize;
    if done.len() <= limit {
        return Ok(());
    }
    let start = |j: &Job| {
        j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0).or(j
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0))
    };
    done.sort_by_key(|j| start(j));
    let excess = done.len() - limit;
    for j in done.into_iter().take(excess) {
        if j.metadata.deletion_timestamp.is_none() {
            common::delete_ignore_missing(api, &j.name_any(), &DeleteParams::background()).await?;
            ctx.event(cj, false, "SuccessfulDelete", format!("Deleted job {}", j.name_any())).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_time_and_missed_count() {
        let s = Schedule::parse("*/1 * * * *").unwrap();
        let tz = TimeZone::UTC;
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let (last, n) = most_recent(&s, &tz, t("2024-01-01T10:00:30Z"), t("2024-01-01T10:00:59Z"));
        assert_eq!((last, n), (None, 0));
        let (last, n) = most_recent(&s, &tz, t("2024-01-01T10:00:30Z"), t("2024-01-01T10:03:10Z"));
        assert_eq!((last.unwrap().to_string().as_str(), n), ("2024-01-01T10:03:00Z", 3));
        // Days of missed minutes: more than the limit, still the latest one.
        let (last, n) = most_recent(&s, &tz, t("2024-01-01T00:00:00Z"), t("2024-01-03T10:03:10Z"));
        assert_eq!(last.unwrap().to_string(), "2024-01-03T10:03:00Z");
        assert!(n > MISSED_LIMIT);
    }
}
