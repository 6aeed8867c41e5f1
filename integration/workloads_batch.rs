//! The Job, TTL-after-finished and CronJob controllers against a real `kelp server` without
//! scheduler or node agent; an in-test fake kubelet plays the pods (see `support::fake_kubelet`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::eventually as wait_for;
use crate::support::fake_kubelet::FakeKubelet;
use crate::support::Server;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

async fn setup(prefix: &str, delay_ms: u64) -> (Server, Client, String, FakeKubelet) {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = crate::support::unique(prefix);
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap())
        .await
        .unwrap();
    let kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(delay_ms));
    (server, client, ns, kubelet)
}

fn job(name: &str, outcome: &str, spec: Value) -> Job {
    let mut s = json!({
        "template": {"metadata": {"labels": {"fake-kubelet/outcome": outcome}},
                     "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    });
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": s})).unwrap()
}

fn condition<'a>(j: &'a Job, type_: &str) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    j.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_ && c.status == "True")
}

async fn wait_condition(api: &Api<Job>, name: &str, type_: &str, secs: u64) -> Job {
    wait_for(secs, &format!("job {name} {type_}"), || async {
        let j = api.get(name).await.unwrap();
        condition(&j, type_).is_some().then_some(j)
    })
    .await
}

async fn job_pods(client: &Client, ns: &str, job: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"))).await.unwrap().items
}

/// Watches the pods of a namespace: the highest number of running (not terminal, not
/// terminating) pods at any moment, and whether every pod carried the tracking finalizer when it
/// appeared.
fn observe(client: &Client, ns: &str) -> (tokio::task::JoinHandle<()>, Arc<Mutex<(usize, bool)>>) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let out = Arc::new(Mutex::new((0usize, true)));
    let o = out.clone();
    let task = tokio::spawn(async move {
        let mut pods: HashMap<String, Pod> = HashMap::new();
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                    let uid = p.uid().unwrap_or_default();
                    if !pods.contains_key(&uid)
                        && !p.finalizers().iter().any(|f| f == "batch.kubernetes.io/job-tracking")
                    {
                        o.lock().unwrap().1 = false;
                    }
                    pods.insert(uid, p);
                }
                Ok(watcher::Event::Delete(p)) => {
                    pods.remove(&p.uid().unwrap_or_default());
                }
                _ => continue,
            }
            let running = pods
                .values()
                .filter(|p| {
                    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
                    phase != "Succeeded" && phase != "Failed" && p.metadata.deletion_timestamp.is_none()
                })
                .count();
            let mut g = o.lock().unwrap();
            g.0 = g.0.max(running);
        }
    });
    (task, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_completions_with_parallelism() {
    let (_server, client, ns, _k) = setup("job", 150).await;
    let (task, seen) = observe(&client, &ns);
    let api: Api<Job> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &job("work", "succeed", json!({"completions": 5, "parallelism": 2})))
        .await
        .unwrap();
    let j = wait_condition(&api, "work", "Complete", 60).await;
    task.abort();
    let s = j.status.as_ref().unwrap();
    assert_eq!((s.succeeded, s.failed.unwrap_or(0), s.active.unwrap_or(0)), (Some(5), 0, 0));
    assert!(s.start_time.is_some() && s.completion_time.is_some());
    assert!(condition(&j, "SuccessCriteriaMet").is_some(), "1.33 sets SuccessCriteriaMet before Complete");
    let c = condition(&j, "Complete").unwrap();
    assert_eq!(c.reason.as_deref(), Some("CompletionsReached"));
    let unc = s.uncounted_terminated_pods.clone().unwrap_or_default();
    assert!(unc.succeeded.unwrap_or_default().is_empty() && unc.failed.unwrap_or_default().is_empty());
    let (max_running, all_tracked) = *seen.lock().unwrap();
    assert!(max_running <= 2, "{max_running} pods ran at once with parallelism 2");
    assert!(all_tracked, "every job pod is created with the tracking finalizer");
    let pods = job_pods(&client, &ns, "work").await;
    assert_eq!(pods.len(), 5);
    assert!(pods.iter().all(|p| p.finalizers().is_empty()), "finalizers removed once counted");
    assert!(pods.iter().all(|p| p.metadata.generate_name.as_deref() == Some("work-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_backoff_limit_with_backoff_delay() {
    let (_server, client, ns, _k) = setup("jobfail", 20).await;
    let api: Api<Job> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &job("flaky", "fail", json!({"backoffLimit": 1}))).await.unwrap();
    let j = wait_condition(&api, "flaky", "Failed", 60).await;
    let s = j.status.as_ref().unwrap();
    assert_eq!(s.failed, Some(2));
    assert!(s.completion_time.is_none());
    let c = condition(&j, "Failed").unwrap();
    assert_eq!(
        (c.reason.as_deref(), c.message.as_deref()),
        (Some("BackoffLimitExceeded"), Some("Job has reached the specified backoff limit"))
    );
    assert!(condition(&j, "FailureTarget").is_some());
    let mut pods = job_pods(&client, &ns, "flaky").await;
    assert_eq!(pods.len(), 2);
    pods.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    // The retry waited for the back-off (10 s after the first failure).
    let failed_at = pods[0].status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap()
        .finished_at
        .as_ref()
        .unwrap()
        .0;
    let retried_at = pods[1].metadata.creation_timestamp.as_ref().unwrap().0;
    let gap = retried_at.as_second() - failed_at.as_second();
    assert!(gap >= 9, "the retry came {gap} s after the failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_indexed_completion() {
    let (_server, client, ns, _k) = setup("jobidx", 50).await;
    let api: Api<Job> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &job("idx", "succeed", json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"})),
    )
    .await
    .unwrap();
    let j = wait_condition(&api, "idx", "Complete", 60).await;
    assert_eq!(j.status.as_ref().unwrap().completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(j.status.as_ref().unwrap().succeeded, Some(3));
    let mut pods = job_pods(&client, &ns, "idx").await;
    pods.sort_by_key(|p| p.annotations().get("batch.kubernetes.io/job-completion-index").cloned());
    for (i, p) in pods.iter().enumerate() {
        let i = i.to_string();
        assert_eq!(p.annotations().get("batch.kubernetes.io/job-completion-index"), Some(&i));
        assert_eq!(p.labels().get("batch.kubernetes.io/job-completion-index"), Some(&i));
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{i}").as_str()));
        assert!(p.name_any().starts_with(&format!("idx-{i}-")));
        let env = spec.containers[0].env.as_ref().unwrap().iter().find(|e| e.name == "JOB_COMPLETION_INDEX").unwrap();
        assert_eq!(
            env.value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
    }

    // One failing index with backoffLimit 0: the Job fails, the other indexes are recorded.
    api.create(
        &PostParams::default(),
        &job(
            "idxfail",
            "fail-index-1",
            json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed", "backoffLimit": 0}),
        ),
    )
    .await
    .unwrap();
    let j = wait_condition(&api, "idxfail", "Failed", 60).await;
    let s = j.status.unwrap();
    assert_eq!(s.failed, Some(1));
    let done = s.completed_indexes.unwrap_or_default();
    assert!(!done.contains('1'), "index 1 failed: {done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_suspend_resume_deadline_and_ttl() {
    let (_server, client, ns, _k) = setup("jobsus", 50).await;
    let api: Api<Job> = Api::namespaced(client.clone(), &ns);
    // Created suspended: no pods, no start time.
    api.create(&PostParams::default(), &job("later", "succeed", json!({"suspend": true, "completions": 2})))
        .await
        .unwrap();
    let j = wait_condition(&api, "later", "Suspended", 30).await;
    assert_eq!(condition(&j, "Suspended").unwrap().reason.as_deref(), Some("JobSuspended"));
    assert!(j.status.as_ref().unwrap().start_time.is_none());
    assert!(job_pods(&client, &ns, "later").await.is_empty());
    api.patch("later", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}}))).await.unwrap();
    let j = wait_condition(&api, "later", "Complete", 60).await;
    let sus = j.status.as_ref().unwrap().conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Suspended").unwrap();
    assert_eq!((sus.status.as_str(), sus.reason.as_deref()), ("False", Some("JobResumed")));
    assert_eq!(j.status.as_ref().unwrap().succeeded, Some(2));

    // Suspending a running Job removes its pods without counting failures.
    api.create(&PostParams::default(), &job("running", "unready", json!({"parallelism": 2, "completions": 2})))
        .await
        .unwrap();
    wait_for(30, "2 active pods", || async {
        let j = api.get("running").await.unwrap();
        (j.status.as_ref()?.active == Some(2)).then_some(())
    })
    .await;
    api.patch("running", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}}))).await.unwrap();
    let j = wait_condition(&api, "running", "Suspended", 30).await;
    wait_for(30, "pods removed", || async { job_pods(&client, &ns, "running").await.is_empty().then_some(()) }).await;
    let j2 = api.get("running").await.unwrap();
    assert_eq!(j2.status.as_ref().unwrap().failed.unwrap_or(0), 0, "{:?}", j.status);

    // activeDeadlineSeconds: running pods are stopped, the Job fails.
    api.create(&PostParams::default(), &job("slow", "unready", json!({"activeDeadlineSeconds": 2}))).await.unwrap();
    let j = wait_condition(&api, "slow", "Failed", 30).await;
    let c = condition(&j, "Failed").unwrap();
    assert_eq!(
        (c.reason.as_deref(), c.message.as_deref()),
        (Some("DeadlineExceeded"), Some("Job was active longer than specified deadline"))
    );
    assert_eq!(j.status.as_ref().unwrap().active.unwrap_or(0), 0);
    assert!(job_pods(&client, &ns, "slow")
        .await
        .iter()
        .all(|p| p.metadata.deletion_timestamp.is_some() || p.finalizers().is_empty()));

    // A deleted Job's running pods are released from the tracking finalizer.
    api.create(&PostParams::default(), &job("gone", "unready", json!({"parallelism": 2, "completions": 2})))
        .await
        .unwrap();
    wait_for(30, "2 active pods", || async {
        let j = api.get("gone").await.unwrap();
        (j.status.as_ref()?.active == Some(2)).then_some(())
    })
    .await;
    api.delete("gone", &kube::api::DeleteParams::background()).await.unwrap();
    wait_for(30, "the orphaned pods released", || async {
        let pods = job_pods(&client, &ns, "gone").await;
        pods.iter().all(|p| p.finalizers().is_empty()).then_some(())
    })
    .await;

    // ttlSecondsAfterFinished: the finished Job goes away.
    api.create(&PostParams::default(), &job("brief", "succeed", json!({"ttlSecondsAfterFinished": 1}))).await.unwrap();
    wait_condition(&api, "brief", "Complete", 30).await;
    wait_for(30, "the job deleted after its TTL", || async {
        api.get_opt("brief").await.unwrap().is_none().then_some(())
    })
    .await;
}

fn cronjob(name: &str, schedule: &str, policy: &str, outcome: &str) -> CronJob {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "concurrencyPolicy": policy,
                 "jobTemplate": {"metadata": {"labels": {"cron": name}}, "spec": {"template": {
                     "metadata": {"labels": {"fake-kubelet/outcome": outcome}},
                     "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}
    }))
    .unwrap()
}

async fn jobs_of(api: &Api<Job>, cron: &str) -> Vec<Job> {
    let mut v = api.list(&ListParams::default().labels(&format!("cron={cron}"))).await.unwrap().items;
    v.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_fires_within_its_minute() {
    let (server, client, ns, _k) = setup("cron", 50).await;
    let api: Api<CronJob> = Api::namespaced(client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &cronjob("tick", "*/1 * * * *", "Allow", "succeed")).await.unwrap();
    let j = wait_for(70, "the first scheduled job", || async { jobs_of(&jobs, "tick").await.into_iter().next() }).await;
    let scheduled: k8s_openapi::jiff::Timestamp =
        j.annotations().get("batch.kubernetes.io/cronjob-scheduled-timestamp").unwrap().parse().unwrap();
    assert_eq!(scheduled.as_second() % 60, 0);
    assert_eq!(j.name_any(), format!("tick-{}", scheduled.as_second() / 60));
    assert_eq!(j.owner_references()[0].kind, "CronJob");
    let created = j.metadata.creation_timestamp.as_ref().unwrap().0;
    assert!(created.as_second() - scheduled.as_second() < 60, "started within its minute");
    let cj = wait_for(60, "lastSuccessfulTime", || async {
        let cj = api.get("tick").await.unwrap();
        let s = cj.status.clone()?;
        (s.last_successful_time.is_some() && s.active.as_ref().is_none_or(|a| a.is_empty())).then_some(cj)
    })
    .await;
    assert_eq!(cj.status.unwrap().last_schedule_time.unwrap().0, scheduled);
    let out = server.kubectl_ok("1.33", &["get", "cronjob", "tick", "-n", &ns]);
    assert!(out.contains("*/1 * * * *"), "{out}");
    let out = server.kubectl_ok("1.33", &["describe", "cronjob", "tick", "-n", &ns]);
    assert!(out.contains("SuccessfulCreate") && out.contains(&format!("Created job {}", j.name_any())), "{out}");
    let out = server.kubectl_ok("1.33", &["describe", "job", &j.name_any(), "-n", &ns]);
    assert!(out.contains("Completed") && out.contains("Job completed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_concurrency_policies_and_history_limits() {
    let (_server, client, ns, _k) = setup("cronpol", 20).await;
    let api: Api<CronJob> = Api::namespaced(client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    // A last schedule time in the past makes the current minute's run due right away.
    let past = k8s_openapi::jiff::Timestamp::now().as_second() - 600;
    let past = k8s_openapi::jiff::Timestamp::from_second(past).unwrap().to_string();
    for (name, policy) in [("forbid", "Forbid"), ("replace", "Replace")] {
        api.create(&PostParams::default(), &cronjob(name, "*/1 * * * *", policy, "unready")).await.unwrap();
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": {"lastScheduleTime": past}})))
            .await
            .unwrap();
    }
    let first_forbid =
        wait_for(30, "forbid's first job", || async { jobs_of(&jobs, "forbid").await.into_iter().next() }).await;
    let first_replace =
        wait_for(30, "replace's first job", || async { jobs_of(&jobs, "replace").await.into_iter().next() }).await;
    let cj = api.get("forbid").await.unwrap();
    assert_eq!(
        cj.status.as_ref().unwrap().active.as_ref().unwrap()[0].name.as_deref(),
        Some(first_forbid.name_any().as_str())
    );

    // At the next minute Replace swaps its running Job; Forbid keeps its one.
    let second = wait_for(70, "replace's second job", || async {
        jobs_of(&jobs, "replace").await.into_iter().find(|j| j.name_any() != first_replace.name_any())
    })
    .await;
    wait_for(30, "the replaced job deleted", || async {
        jobs.get_opt(&first_replace.name_any()).await.unwrap().is_none().then_some(())
    })
    .await;
    wait_for(30, "replace's active list holding only the new job", || async {
        let cj = api.get("replace").await.unwrap();
        let active: Vec<String> = cj.status?.active.unwrap_or_default().into_iter().filter_map(|r| r.name).collect();
        (active == [second.name_any()]).then_some(())
    })
    .await;
    // Both CronJobs were due at the same moment; give Forbid's reconcile time to have run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let forbid_jobs = jobs_of(&jobs, "forbid").await;
    assert_eq!(
        forbid_jobs.len(),
        1,
        "Forbid started a second job: {:?}",
        forbid_jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );

    // History limits: a suspended CronJob keeps the newest finished Jobs only.
    let mut keeper = cronjob("keeper", "0 0 1 1 *", "Allow", "succeed");
    let s = keeper.spec.as_mut().unwrap();
    s.suspend = Some(true);
    s.successful_jobs_history_limit = Some(1);
    s.failed_jobs_history_limit = Some(1);
    let keeper = api.create(&PostParams::default(), &keeper).await.unwrap();
    let owner = json!({"apiVersion": "batch/v1", "kind": "CronJob", "name": "keeper", "uid": keeper.uid(), "controller": true, "blockOwnerDeletion": true});
    for (i, kind) in ["Complete", "Complete", "Complete", "Failed", "Failed"].iter().enumerate() {
        let name = format!("keeper-{i}");
        let mut j = job(&name, "succeed", json!({"suspend": true}));
        j.metadata.labels = Some([("cron".to_string(), "keeper".to_string())].into());
        j.metadata.owner_references = Some(vec![serde_json::from_value(owner.clone()).unwrap()]);
        jobs.create(&PostParams::default(), &j).await.unwrap();
        // Let the Job controller record the suspension first, so the finish below is not overwritten.
        let suspended = wait_condition(&jobs, &name, "Suspended", 30).await;
        let mut conds: Vec<Value> =
            suspended.status.unwrap().conditions.unwrap().iter().map(|c| serde_json::to_value(c).unwrap()).collect();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let finish = if *kind == "Complete" {
            json!([{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": now},
                   {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": now}])
        } else {
            json!([{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": now},
                   {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": now}])
        };
        conds.extend(finish.as_array().unwrap().iter().cloned());
        let mut status = json!({"conditions": conds, "startTime": now});
        if *kind == "Complete" {
            status["completionTime"] = json!(now);
            status["succeeded"] = json!(1);
        } else {
            status["failed"] = json!(1);
        }
        jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let left = wait_for(30, "history trimmed", || async {
        let names: Vec<String> = jobs_of(&jobs, "keeper")
            .await
            .into_iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .map(|j| j.name_any())
            .collect();
        (names.len() == 2).then_some(names)
    })
    .await;
    assert_eq!(left, ["keeper-2", "keeper-4"]);
}
