//! The workload controllers against a real `kelp server` without scheduler or node agent; an
//! in-test fake kubelet plays the pods (see `support::fake_kubelet`).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use support::fake_kubelet::FakeKubelet;
use support::Server;

/// Polls `f` every 100 ms until it returns Some, panicking with `what` after `secs` seconds.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn namespace(client: &Client, prefix: &str) -> String {
    let ns = support::unique(prefix);
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap()).await.unwrap();
    ns
}

fn template(app: &str, image: &str, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels: BTreeMap<String, String> = [("app".to_string(), app.to_string())].into();
    for (k, v) in extra_labels {
        labels.insert(k.to_string(), v.to_string());
    }
    json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": image}]}})
}

async fn pods_of(client: &Client, ns: &str, sel: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(sel)).await.unwrap().items
}

fn live(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_scales_heals_adopts_and_releases() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "rs").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(10));
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template("web", "busybox", &[])}
    }))
    .unwrap();
    let rs = api.create(&PostParams::default(), &rs).await.unwrap();
    let uid = rs.uid().unwrap();
    let status = |want: i32| {
        let api = api.clone();
        async move {
            let rs = api.get("web").await.unwrap();
            let s = rs.status.clone()?;
            (s.replicas == want
                && s.ready_replicas == Some(want)
                && s.available_replicas == Some(want)
                && s.fully_labeled_replicas == Some(want)
                && s.observed_generation == rs.metadata.generation)
                .then_some(())
        }
    };
    wait_for(30, "3 available replicas", || status(3)).await;
    let pods = pods_of(&client, &ns, "app=web").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(p.name_any().starts_with("web-"), "{}", p.name_any());
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        let r = &p.owner_references()[0];
        assert_eq!((r.kind.as_str(), r.uid.as_str(), r.controller, r.block_owner_deletion), ("ReplicaSet", uid.as_str(), Some(true), Some(true)));
    }

    // Self-heal: a deleted pod is replaced.
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let victim = pods[0].name_any();
    pod_api.delete(&victim, &DeleteParams::default()).await.unwrap();
    wait_for(30, "a replacement pod", || async {
        let pods = pods_of(&client, &ns, "app=web").await;
        (live(&pods).len() == 3 && pods.iter().all(|p| p.name_any() != victim)).then_some(())
    })
    .await;
    wait_for(30, "3 available after the replacement", || status(3)).await;

    // Scale up and down.
    api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}}))).await.unwrap();
    wait_for(30, "5 available replicas", || status(5)).await;
    api.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}}))).await.unwrap();
    wait_for(30, "2 replicas", || status(2)).await;
    assert_eq!(live(&pods_of(&client, &ns, "app=web").await).len(), 2);

    // An orphan matching the selector is adopted (and the surplus deleted).
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pod_api.create(&PostParams::default(), &orphan).await.unwrap();
    wait_for(30, "the orphan adopted and 2 pods left", || async {
        let pods = pods_of(&client, &ns, "app=web").await;
        let live = live(&pods);
        let all_owned = live.iter().all(|p| p.owner_references().iter().any(|r| r.uid == uid && r.controller == Some(true)));
        let orphan_handled = pods.iter().find(|p| p.name_any() == "orphan").is_none_or(|p| {
            p.owner_references().iter().any(|r| r.uid == uid) || p.metadata.deletion_timestamp.is_some()
        });
        (live.len() == 2 && all_owned && orphan_handled).then_some(())
    })
    .await;

    // A pod relabelled out of the selector is released and replaced.
    let kept = live(&pods_of(&client, &ns, "app=web").await)[0].name_any();
    pod_api.patch(&kept, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}}))).await.unwrap();
    wait_for(30, "the relabelled pod released and replaced", || async {
        let p = pod_api.get(&kept).await.unwrap();
        let released = p.owner_references().iter().all(|r| r.uid != uid);
        let pods = pods_of(&client, &ns, "app=web").await;
        (released && live(&pods).len() == 2).then_some(())
    })
    .await;
    wait_for(30, "2 available after the release", || status(2)).await;
}

fn deployment(name: &str, replicas: i32, strategy: Value, image: &str, labels: &[(&str, &str)]) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "strategy": strategy,
                 "template": template(name, image, labels)}
    }))
    .unwrap()
}

async fn rollout_complete(api: &Api<Deployment>, name: &str) -> Option<Deployment> {
    let d = api.get(name).await.unwrap();
    let s = d.status.clone()?;
    let want = d.spec.as_ref()?.replicas?;
    (s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
        && s.conditions.iter().flatten().any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")))
    .then_some(d)
}

/// Watches every pod of `ns` and records, at each event, the live (not terminating) and available
/// pod counts.
fn observe_pods(client: &Client, ns: &str) -> (tokio::task::JoinHandle<()>, tokio::sync::mpsc::UnboundedReceiver<(usize, usize, usize)>) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut pods: HashMap<String, Pod> = HashMap::new();
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        let mut init_done = false;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                    pods.insert(p.uid().unwrap_or_default(), p);
                }
                Ok(watcher::Event::Delete(p)) => {
                    pods.remove(&p.uid().unwrap_or_default());
                }
                Ok(watcher::Event::Init) => {
                    pods.clear();
                    init_done = false;
                }
                Ok(watcher::Event::InitDone) => init_done = true,
                Err(_) => continue,
            }
            if !init_done {
                continue;
            }
            let live: Vec<&Pod> = pods.values().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
            let available = live.iter().filter(|p| ready(p)).count();
            let new = live.iter().filter(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("busybox:2")).count();
            let _ = tx.send((live.len(), available, new));
        }
    });
    (task, rx)
}

async fn rolling_update_respects_bounds(replicas: i32, surge: Value, unavailable: Value, max_live: usize, min_available: usize) {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "roll").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(150));
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}});
    api.create(&PostParams::default(), &deployment("web", replicas, strategy, "busybox:1", &[])).await.unwrap();
    wait_for(60, "the first rollout", || rollout_complete(&api, "web")).await;

    let (task, mut rx) = observe_pods(&client, &ns);
    // Let the observer list the current pods first.
    let first = rx.recv().await.unwrap();
    assert_eq!(first.0, replicas as usize);
    let p = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(p)).await.unwrap();
    let d = wait_for(120, "the second rollout", || async {
        let d = rollout_complete(&api, "web").await?;
        (d.metadata.generation == Some(2)).then_some(d)
    })
    .await;
    // Drain what the observer saw up to now; every moment must respect the bounds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    task.abort();
    let mut events = 0;
    let mut max_seen = 0;
    let mut min_seen = usize::MAX;
    let mut all_new = false;
    while let Ok((live, available, new)) = rx.try_recv() {
        events += 1;
        assert!(live <= max_live, "{live} live pods exceed replicas + maxSurge = {max_live}");
        assert!(available >= min_available, "{available} available pods are below replicas - maxUnavailable = {min_available}");
        max_seen = max_seen.max(live);
        min_seen = min_seen.min(available);
        all_new |= new == replicas as usize && live == replicas as usize;
    }
    assert!(all_new, "the rollout never reached {replicas} new pods ({events} events)");
    assert!(events > replicas as usize, "too few events observed: {events}");
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("2"));
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let rss = rss.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(rss.len(), 2);
    for rs in &rss {
        let hash = rs.labels().get("pod-template-hash").unwrap();
        assert_eq!(rs.name_any(), format!("web-{hash}"));
        assert_eq!(rs.spec.as_ref().unwrap().selector.match_labels.as_ref().unwrap().get("pod-template-hash"), Some(hash));
        let rev = rs.annotations().get("deployment.kubernetes.io/revision").unwrap();
        let want = if rs.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers[0].image.as_deref() == Some("busybox:2") { ("2", replicas) } else { ("1", 0) };
        assert_eq!((rev.as_str(), rs.spec.as_ref().unwrap().replicas.unwrap()), want);
        assert_eq!(rs.annotations().get("deployment.kubernetes.io/desired-replicas").map(String::as_str), Some(replicas.to_string().as_str()));
    }
    eprintln!("rolling update: max {max_seen} live, min {min_seen} available over {events} events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rolling_update_never_exceeds_surge_or_unavailable() {
    rolling_update_respects_bounds(6, json!(2), json!(1), 8, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rolling_update_with_percentages() {
    // 25% of 8: maxSurge rounds up to 2, maxUnavailable down to 2.
    rolling_update_respects_bounds(8, json!("25%"), json!("25%"), 10, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_recreate_never_overlaps() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "recreate").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(50));
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &deployment("web", 3, json!({"type": "Recreate"}), "busybox:1", &[])).await.unwrap();
    wait_for(60, "the first rollout", || rollout_complete(&api, "web")).await;
    let (task, mut rx) = observe_pods(&client, &ns);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    rx.recv().await.unwrap();
    let p = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(p)).await.unwrap();
    wait_for(60, "the recreate rollout", || async {
        let d = rollout_complete(&api, "web").await?;
        (d.metadata.generation == Some(2)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    task.abort();
    let mut saw_zero = false;
    while let Ok((live, _, new)) = rx.try_recv() {
        // Old and new pods never live together.
        assert!(new == 0 || new == live, "old and new pods overlap: {live} live, {new} new");
        saw_zero |= live == 0;
    }
    assert!(saw_zero, "Recreate must go through zero pods");
    let pods = pods_api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(live(&pods).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_undo_pause_resume_restart_and_history_limit() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "undo").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(20));
    let k = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["-n", &ns]);
        server.kubectl_ok("1.33", &all)
    };
    k(&["create", "deployment", "web", "--image=busybox:1", "--replicas=3"]);
    k(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    k(&["set", "image", "deployment/web", "busybox=busybox:2"]);
    let out = k(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let image = |d: &Deployment| d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.clone().unwrap();
    assert_eq!(image(&api.get("web").await.unwrap()), "busybox:2");

    let history = k(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    k(&["rollout", "undo", "deployment/web"]);
    k(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let d = api.get("web").await.unwrap();
    assert_eq!(image(&d), "busybox:1");
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("3"));
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    assert_eq!(rss.list(&ListParams::default()).await.unwrap().items.len(), 2, "the old ReplicaSet was reused");

    // Pause: a template change starts nothing until resumed.
    k(&["rollout", "pause", "deployment/web"]);
    k(&["set", "image", "deployment/web", "busybox=busybox:3"]);
    let d = wait_for(30, "the paused condition", || async {
        let d = api.get("web").await.unwrap();
        let s = d.status.clone()?;
        (s.observed_generation == d.metadata.generation
            && s.conditions.iter().flatten().any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused")))
        .then_some(d)
    })
    .await;
    assert_eq!(d.status.as_ref().unwrap().updated_replicas, Some(0), "no new pods while paused");
    assert_eq!(rss.list(&ListParams::default()).await.unwrap().items.len(), 2, "no new ReplicaSet while paused");
    let err = server.kubectl("1.33", &["rollout", "undo", "deployment/web", "-n", &ns]);
    assert!(!err.status.success(), "undo of a paused deployment must fail");
    k(&["rollout", "resume", "deployment/web"]);
    k(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(pods_of(&client, &ns, "app=web").await.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("busybox:3")));

    // Restart: a new ReplicaSet with the restartedAt annotation.
    k(&["rollout", "restart", "deployment/web"]);
    k(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let pods = pods_of(&client, &ns, "app=web").await;
    let live = live(&pods);
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|p| p.annotations().contains_key("kubectl.kubernetes.io/restartedAt")));

    // revisionHistoryLimit: 1 keeps one old ReplicaSet besides the new one.
    k(&["patch", "deployment/web", "-p", r#"{"spec":{"revisionHistoryLimit":1}}"#]);
    k(&["set", "image", "deployment/web", "busybox=busybox:4"]);
    k(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    wait_for(30, "old ReplicaSets cleaned up", || async {
        (rss.list(&ListParams::default()).await.unwrap().items.len() == 2).then_some(())
    })
    .await;

    // Scaling: the ReplicaSet follows, status stays complete.
    k(&["scale", "deployment/web", "--replicas=5"]);
    k(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    wait_for(30, "5 available", || async {
        let d = rollout_complete(&api, "web").await?;
        (d.status.as_ref()?.available_replicas == Some(5)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_progress_deadline_exceeded() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "deadline").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(10));
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let mut d = deployment("stuck", 2, json!({"type": "RollingUpdate"}), "busybox:1", &[("fake-kubelet/outcome", "unready")]);
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(3);
    api.create(&PostParams::default(), &d).await.unwrap();
    let d = wait_for(30, "ProgressDeadlineExceeded", || async {
        let d = api.get("stuck").await.unwrap();
        let c = d.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Progressing")?.clone();
        (c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")).then_some(d)
    })
    .await;
    let s = d.status.unwrap();
    assert_eq!((s.replicas, s.ready_replicas, s.available_replicas, s.unavailable_replicas), (Some(2), Some(0), Some(0), Some(2)));
    let avail = s.conditions.unwrap().into_iter().find(|c| c.type_ == "Available").unwrap();
    assert_eq!((avail.status.as_str(), avail.reason.as_deref()), ("False", Some("MinimumReplicasUnavailable")));
    let out = server.kubectl("1.33", &["rollout", "status", "deployment/stuck", "-n", &ns, "--timeout=20s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
}
