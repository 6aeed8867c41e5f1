//! The workload controllers against a real `kelp server` without scheduler or node agent; an
//! in-test fake kubelet plays the pods (see `support::fake_kubelet`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::support::eventually as wait_for;
use crate::support::fake_kubelet::FakeKubelet;
use crate::support::Server;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolumeClaim, Pod, ReplicationController};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

async fn namespace(client: &Client, prefix: &str) -> String {
    let ns = crate::support::unique(prefix);
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap())
        .await
        .unwrap();
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
        assert_eq!(
            (r.kind.as_str(), r.uid.as_str(), r.controller, r.block_owner_deletion),
            ("ReplicaSet", uid.as_str(), Some(true), Some(true))
        );
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
        let all_owned =
            live.iter().all(|p| p.owner_references().iter().any(|r| r.uid == uid && r.controller == Some(true)));
        let orphan_handled = pods.iter().find(|p| p.name_any() == "orphan").is_none_or(|p| {
            p.owner_references().iter().any(|r| r.uid == uid) || p.metadata.deletion_timestamp.is_some()
        });
        (live.len() == 2 && all_owned && orphan_handled).then_some(())
    })
    .await;

    // A pod relabelled out of the selector is released and replaced.
    let kept = live(&pods_of(&client, &ns, "app=web").await)[0].name_any();
    pod_api
        .patch(&kept, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})))
        .await
        .unwrap();
    wait_for(30, "the relabelled pod released and replaced", || async {
        let p = pod_api.get(&kept).await.unwrap();
        let released = p.owner_references().iter().all(|r| r.uid != uid);
        let pods = pods_of(&client, &ns, "app=web").await;
        (released && live(&pods).len() == 2).then_some(())
    })
    .await;
    wait_for(30, "2 available after the release", || status(2)).await;

    // Upstream's events, as kubectl shows them.
    let out = server.kubectl_ok("1.33", &["describe", "replicaset", "web", "-n", &ns]);
    assert!(out.contains("SuccessfulCreate") && out.contains("Created pod: web-"), "{out}");
    assert!(out.contains("SuccessfulDelete") && out.contains("Deleted pod: "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controller_keeps_its_replicas() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "rc").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(10));
    let api: Api<ReplicationController> = Api::namespaced(client.clone(), &ns);
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": template("legacy", "busybox", &[])}
    }))
    .unwrap();
    api.create(&PostParams::default(), &rc).await.unwrap();
    let ready = |want: i32| {
        let api = api.clone();
        async move {
            let rc = api.get("legacy").await.unwrap();
            let s = rc.status?;
            (s.replicas == want && s.ready_replicas == Some(want) && s.available_replicas == Some(want)).then_some(())
        }
    };
    wait_for(30, "2 ready replicas", || ready(2)).await;
    let pods = pods_of(&client, &ns, "app=legacy").await;
    assert!(pods.iter().all(|p| p.owner_references()[0].kind == "ReplicationController"));
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pod_api.delete(&pods[0].name_any(), &DeleteParams::default()).await.unwrap();
    server.kubectl_ok("1.33", &["scale", "rc/legacy", "--replicas=3", "-n", &ns]);
    wait_for(30, "3 ready replicas", || ready(3)).await;
    assert!(pods_of(&client, &ns, "app=legacy").await.iter().all(|p| p.name_any() != pods[0].name_any()));
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
        && s.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")))
    .then_some(d)
}

/// Watches every pod of `ns` and records, at each event, the live (not terminating) and available
/// pod counts.
fn observe_pods(
    client: &Client,
    ns: &str,
) -> (tokio::task::JoinHandle<()>, tokio::sync::mpsc::UnboundedReceiver<(usize, usize, usize)>) {
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
            let new = live
                .iter()
                .filter(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("busybox:2"))
                .count();
            let _ = tx.send((live.len(), available, new));
        }
    });
    (task, rx)
}

async fn rolling_update_respects_bounds(
    replicas: i32,
    surge: Value,
    unavailable: Value,
    max_live: usize,
    min_available: usize,
) {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "roll").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(150));
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}});
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
        assert!(
            available >= min_available,
            "{available} available pods are below replicas - maxUnavailable = {min_available}"
        );
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
        assert_eq!(
            rs.spec.as_ref().unwrap().selector.match_labels.as_ref().unwrap().get("pod-template-hash"),
            Some(hash)
        );
        let rev = rs.annotations().get("deployment.kubernetes.io/revision").unwrap();
        let want = if rs.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers[0]
            .image
            .as_deref()
            == Some("busybox:2")
        {
            ("2", replicas)
        } else {
            ("1", 0)
        };
        assert_eq!((rev.as_str(), rs.spec.as_ref().unwrap().replicas.unwrap()), want);
        assert_eq!(
            rs.annotations().get("deployment.kubernetes.io/desired-replicas").map(String::as_str),
            Some(replicas.to_string().as_str())
        );
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
    api.create(&PostParams::default(), &deployment("web", 3, json!({"type": "Recreate"}), "busybox:1", &[]))
        .await
        .unwrap();
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
    let image =
        |d: &Deployment| d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.clone().unwrap();
    assert_eq!(image(&api.get("web").await.unwrap()), "busybox:2");

    let described = k(&["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet") && described.contains("Scaled up replica set web-"), "{described}");
    assert!(described.contains("NewReplicaSetAvailable"), "{described}");
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
            && s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused")))
        .then_some(d)
    })
    .await;
    assert_eq!(d.status.as_ref().unwrap().updated_replicas, Some(0), "no new pods while paused");
    assert_eq!(rss.list(&ListParams::default()).await.unwrap().items.len(), 2, "no new ReplicaSet while paused");
    let err = server.kubectl("1.33", &["rollout", "undo", "deployment/web", "-n", &ns]);
    assert!(!err.status.success(), "undo of a paused deployment must fail");
    k(&["rollout", "resume", "deployment/web"]);
    k(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(pods_of(&client, &ns, "app=web")
        .await
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("busybox:3")));

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
async fn deployment_min_ready_seconds_delays_availability() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "minready").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(10));
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let mut d = deployment("slowstart", 2, json!({"type": "RollingUpdate"}), "busybox:1", &[]);
    d.spec.as_mut().unwrap().min_ready_seconds = Some(3);
    api.create(&PostParams::default(), &d).await.unwrap();
    let d = wait_for(30, "the rollout", || rollout_complete(&api, "slowstart")).await;
    let avail = d.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Available").unwrap();
    assert_eq!(avail.status, "True");
    // Available only once every pod had been Ready for minReadySeconds.
    let pods = pods_of(&client, &ns, "app=slowstart").await;
    let last_ready = pods
        .iter()
        .filter_map(|p| {
            p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?.last_transition_time.clone()
        })
        .map(|t| t.0.as_second())
        .max()
        .unwrap();
    let available_at = avail.last_transition_time.unwrap().0.as_second();
    assert!(
        available_at - last_ready >= 2,
        "available {} s after the last pod became ready",
        available_at - last_ready
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_progress_deadline_exceeded() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "deadline").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(10));
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let mut d =
        deployment("stuck", 2, json!({"type": "RollingUpdate"}), "busybox:1", &[("fake-kubelet/outcome", "unready")]);
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(3);
    api.create(&PostParams::default(), &d).await.unwrap();
    let d = wait_for(30, "ProgressDeadlineExceeded", || async {
        let d = api.get("stuck").await.unwrap();
        let c = d.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Progressing")?.clone();
        (c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")).then_some(d)
    })
    .await;
    let s = d.status.unwrap();
    assert_eq!(
        (s.replicas, s.ready_replicas, s.available_replicas, s.unavailable_replicas),
        (Some(2), Some(0), Some(0), Some(2))
    );
    let avail = s.conditions.unwrap().into_iter().find(|c| c.type_ == "Available").unwrap();
    assert_eq!((avail.status.as_str(), avail.reason.as_deref()), ("False", Some("MinimumReplicasUnavailable")));
    let out = server.kubectl("1.33", &["rollout", "status", "deployment/stuck", "-n", &ns, "--timeout=20s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
}

/// Records, for each pod as it first appears, which pods of the namespace were Running and Ready
/// at that moment; and the order pods were deleted in.
type Appearances = Vec<(String, Vec<String>)>;
/// What `observe_order` shares: appearances and deletions in order.
type Order = std::sync::Arc<std::sync::Mutex<(Appearances, Vec<String>)>>;

fn observe_order(client: &Client, ns: &str) -> (tokio::task::JoinHandle<()>, Order) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let seen = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new())));
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let mut pods: HashMap<String, Pod> = HashMap::new();
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                    let uid = p.uid().unwrap_or_default();
                    if !pods.contains_key(&uid) {
                        let ready: Vec<String> = pods
                            .values()
                            .filter(|p| ready(p) && p.metadata.deletion_timestamp.is_none())
                            .map(|p| p.name_any())
                            .collect();
                        seen.lock().unwrap().0.push((p.name_any(), ready));
                    }
                    if p.metadata.deletion_timestamp.is_some()
                        && pods.get(&uid).is_some_and(|o| o.metadata.deletion_timestamp.is_none())
                    {
                        seen.lock().unwrap().1.push(p.name_any());
                    }
                    pods.insert(uid, p);
                }
                Ok(watcher::Event::Delete(p))
                    if pods
                        .remove(&p.uid().unwrap_or_default())
                        .is_some_and(|o| o.metadata.deletion_timestamp.is_none()) =>
                {
                    seen.lock().unwrap().1.push(p.name_any());
                }
                _ => {}
            }
        }
    });
    (task, out)
}

async fn sts_status(api: &Api<StatefulSet>, name: &str, replicas: i32) -> Option<StatefulSet> {
    let s = api.get(name).await.unwrap();
    let st = s.status.clone()?;
    (st.observed_generation == s.metadata.generation
        && st.replicas == replicas
        && st.ready_replicas == Some(replicas)
        && st.updated_replicas == Some(replicas)
        && st.current_revision == st.update_revision)
        .then_some(s)
}

fn image_of(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0].image.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_order_claims_partition_and_scale_down() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "sts").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(100));
    let (task, seen) = observe_order(&client, &ns);
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": template("db", "busybox:1", &[]),
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &set).await.unwrap();
    let s = wait_for(60, "3 ready stateful pods", || sts_status(&api, "db", 3)).await;
    let rev1 = s.status.as_ref().unwrap().update_revision.clone().unwrap();

    // Ordered: db-0, db-1, db-2, each created once all before it were Ready.
    {
        let seen = seen.lock().unwrap();
        let names: Vec<&str> = seen.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["db-0", "db-1", "db-2"]);
        for (i, (_, ready)) in seen.0.iter().enumerate() {
            let mut ready = ready.clone();
            ready.sort();
            let want: Vec<String> = (0..i).map(|j| format!("db-{j}")).collect();
            assert_eq!(ready, want, "pod db-{i} created before its predecessors were ready");
        }
    }
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for i in 0..3 {
        let p = pods_api.get(&format!("db-{i}")).await.unwrap();
        let labels = p.labels();
        assert_eq!(labels.get("statefulset.kubernetes.io/pod-name"), Some(&format!("db-{i}")));
        assert_eq!(labels.get("apps.kubernetes.io/pod-index"), Some(&i.to_string()));
        assert_eq!(labels.get("controller-revision-hash"), Some(&rev1));
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(
            (spec.hostname.as_deref(), spec.subdomain.as_deref()),
            (Some(format!("db-{i}").as_str()), Some("db"))
        );
        let vol = spec.volumes.iter().flatten().find(|v| v.name == "data").unwrap();
        assert_eq!(vol.persistent_volume_claim.as_ref().unwrap().claim_name, format!("data-db-{i}"));
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claims = pvcs.list(&ListParams::default()).await.unwrap().items;
    let mut names: Vec<String> = claims.iter().map(|c| c.name_any()).collect();
    names.sort();
    assert_eq!(names, ["data-db-0", "data-db-1", "data-db-2"]);
    assert!(claims
        .iter()
        .all(|c| c.labels().get("app").map(String::as_str) == Some("db") && c.owner_references().is_empty()));

    // Partition 2: only db-2 moves to the new revision.
    seen.lock().unwrap().1.clear();
    let p = json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
                            "template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    api.patch("db", &PatchParams::default(), &Patch::Strategic(p)).await.unwrap();
    let s = wait_for(60, "db-2 updated", || async {
        let s = api.get("db").await.unwrap();
        let st = s.status.clone()?;
        let p2 = pods_api.get_opt("db-2").await.unwrap()?;
        (st.observed_generation == s.metadata.generation
            && st.updated_replicas == Some(1)
            && st.ready_replicas == Some(3)
            && image_of(&p2) == "busybox:2"
            && ready(&p2))
        .then_some(s)
    })
    .await;
    let st = s.status.unwrap();
    assert_ne!(st.update_revision, st.current_revision);
    assert_eq!(st.current_revision.as_deref(), Some(rev1.as_str()));
    assert_eq!(st.current_replicas, Some(2));
    for i in 0..2 {
        assert_eq!(image_of(&pods_api.get(&format!("db-{i}")).await.unwrap()), "busybox:1");
    }
    // Partition 0: the rest, highest ordinal first.
    api.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await
    .unwrap();
    let s = wait_for(60, "all stateful pods updated", || sts_status(&api, "db", 3)).await;
    let out = server.kubectl_ok("1.33", &["rollout", "status", "statefulset/db", "-n", &ns, "--timeout=30s"]);
    assert!(out.contains("roll out complete"), "{out}");
    assert_ne!(s.status.as_ref().unwrap().current_revision.as_deref(), Some(rev1.as_str()));
    assert_eq!(seen.lock().unwrap().1, ["db-2", "db-1", "db-0"]);
    for i in 0..3 {
        assert_eq!(image_of(&pods_api.get(&format!("db-{i}")).await.unwrap()), "busybox:2");
    }
    let revs: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    assert_eq!(revs.list(&ListParams::default()).await.unwrap().items.len(), 2);

    // Scale down: highest ordinal first; claims retained.
    seen.lock().unwrap().1.clear();
    api.patch("db", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}}))).await.unwrap();
    wait_for(60, "one stateful pod", || sts_status(&api, "db", 1)).await;
    assert_eq!(seen.lock().unwrap().1, ["db-2", "db-1"]);
    assert_eq!(pvcs.list(&ListParams::default()).await.unwrap().items.len(), 3);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_parallel_and_on_delete() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "stsp").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(10));
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    // Parallel: all pods are created even though none becomes Ready.
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "par"},
        "spec": {"replicas": 3, "serviceName": "par", "podManagementPolicy": "Parallel", "selector": {"matchLabels": {"app": "par"}},
                 "template": template("par", "busybox:1", &[("fake-kubelet/outcome", "unready")])}
    }))
    .unwrap();
    api.create(&PostParams::default(), &set).await.unwrap();
    wait_for(30, "3 parallel pods", || async {
        let s = api.get("par").await.unwrap();
        (s.status.as_ref()?.replicas == 3 && s.status.as_ref()?.ready_replicas == Some(0)).then_some(())
    })
    .await;

    // Retention policy Delete: claims owned by the set, and by the pod once it is condemned.
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "tmp"},
        "spec": {"replicas": 2, "serviceName": "tmp", "selector": {"matchLabels": {"app": "tmp"}},
                 "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
                 "template": template("tmp", "busybox:1", &[]),
                 "volumeClaimTemplates": [{"metadata": {"name": "scratch"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}
    }))
    .unwrap();
    let set = api.create(&PostParams::default(), &set).await.unwrap();
    wait_for(30, "2 ready pods", || sts_status(&api, "tmp", 2)).await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claim = pvcs.get("scratch-tmp-1").await.unwrap();
    assert!(claim.owner_references().iter().any(|r| r.kind == "StatefulSet" && Some(&r.uid) == set.uid().as_ref()));
    let pod_uid = Api::<Pod>::namespaced(client.clone(), &ns).get("tmp-1").await.unwrap().uid().unwrap();
    api.patch("tmp", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}}))).await.unwrap();
    // The condemned pod becomes the claim's owner; once the pod is gone the garbage collector
    // deletes the claim (both may happen between two looks).
    wait_for(30, "the condemned pod's claim owned by it, then collected", || async {
        match pvcs.get_opt("scratch-tmp-1").await.unwrap() {
            None => Some(()),
            Some(c) => c.owner_references().iter().any(|r| r.kind == "Pod" && r.uid == pod_uid).then_some(()),
        }
    })
    .await;
    wait_for(60, "the condemned pod's claim collected", || async {
        pvcs.get_opt("scratch-tmp-1").await.unwrap().is_none().then_some(())
    })
    .await;

    // OnDelete: a template change replaces nothing until a pod is deleted.
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "od"},
        "spec": {"replicas": 2, "serviceName": "od", "updateStrategy": {"type": "OnDelete"}, "selector": {"matchLabels": {"app": "od"}},
                 "template": template("od", "busybox:1", &[])}
    }))
    .unwrap();
    api.create(&PostParams::default(), &set).await.unwrap();
    wait_for(30, "2 ready pods", || sts_status(&api, "od", 2)).await;
    let p = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    api.patch("od", &PatchParams::default(), &Patch::Strategic(p)).await.unwrap();
    let s = wait_for(30, "the new update revision", || async {
        let s = api.get("od").await.unwrap();
        (s.status.as_ref()?.observed_generation == s.metadata.generation).then_some(s)
    })
    .await;
    let st = s.status.unwrap();
    assert_ne!(st.update_revision, st.current_revision);
    assert_eq!(st.updated_replicas, Some(0));
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    assert_eq!(image_of(&pods_api.get("od-1").await.unwrap()), "busybox:1");
    let old_uid = pods_api.get("od-1").await.unwrap().uid();
    pods_api.delete("od-1", &DeleteParams::default()).await.unwrap();
    wait_for(30, "od-1 recreated at the update revision", || async {
        let p = pods_api.get_opt("od-1").await.unwrap()?;
        (p.uid() != old_uid && image_of(&p) == "busybox:2" && ready(&p)).then_some(())
    })
    .await;
    assert_eq!(image_of(&pods_api.get("od-0").await.unwrap()), "busybox:1");
}

async fn make_node(client: &Client, name: &str, labels: Value, taints: Value, unschedulable: bool) {
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints, "unschedulable": unschedulable}
    }))
    .unwrap();
    api.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

fn pod_node(p: &Pod) -> String {
    let a = p.spec.as_ref().unwrap().affinity.as_ref().unwrap().node_affinity.as_ref().unwrap();
    let terms = &a.required_during_scheduling_ignored_during_execution.as_ref().unwrap().node_selector_terms;
    let f = &terms[0].match_fields.as_ref().unwrap()[0];
    assert_eq!((f.key.as_str(), f.operator.as_str()), ("metadata.name", "In"));
    f.values.as_ref().unwrap()[0].clone()
}

async fn ds_state(api: &Api<DaemonSet>, desired: i32) -> Option<DaemonSet> {
    let d = api.get("agent").await.unwrap();
    let s = d.status.clone()?;
    (s.observed_generation == d.metadata.generation
        && s.desired_number_scheduled == desired
        && s.current_number_scheduled == desired
        && s.number_ready == desired
        && s.number_available == Some(desired)
        && s.updated_number_scheduled == Some(desired)
        && s.number_misscheduled == 0)
        .then_some(d)
}

async fn daemon_nodes(client: &Client, ns: &str) -> Vec<String> {
    let mut v: Vec<String> = live(&pods_of(client, ns, "app=agent").await).iter().map(|p| pod_node(p)).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_one_pod_per_eligible_node_tolerations_and_rolling_update() {
    let server = Server::start_with(&["--disable-scheduler"]);
    let client = server.client().await;
    let ns = namespace(&client, "ds").await;
    let _kubelet = FakeKubelet::start(client.clone(), &ns, Duration::from_millis(30));
    make_node(&client, "n1", json!({"role": "edge"}), json!([]), false).await;
    make_node(
        &client,
        "n2",
        json!({"role": "edge"}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        false,
    )
    .await;
    make_node(
        &client,
        "n3",
        json!({"role": "edge"}),
        json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        true,
    )
    .await;
    make_node(&client, "n4", json!({"role": "core"}), json!([]), false).await;
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
    let mut tpl = template("agent", "busybox:1", &[]);
    tpl["spec"]["nodeSelector"] = json!({"role": "edge"});
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": tpl}
    }))
    .unwrap();
    api.create(&PostParams::default(), &ds).await.unwrap();
    // n2's taint is not tolerated, n4 does not match the selector; cordoned n3 is fine.
    wait_for(30, "daemon pods on n1 and n3", || ds_state(&api, 2)).await;
    assert_eq!(daemon_nodes(&client, &ns).await, ["n1", "n3"]);
    let pods = pods_of(&client, &ns, "app=agent").await;
    for p in &pods {
        let tol = p.spec.as_ref().unwrap().tolerations.clone().unwrap();
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            assert!(
                tol.iter().any(|t| t.key.as_deref() == Some(key)
                    && t.effect.as_deref() == Some(effect)
                    && t.operator.as_deref() == Some("Exists")),
                "missing toleration {key}:{effect} in {tol:?}"
            );
        }
        assert!(p.labels().contains_key("controller-revision-hash"));
    }

    // Tolerating the taint: a rolling update (maxUnavailable 1) replaces every pod, n2 gets one.
    let (task, mut rx) = observe_pods(&client, &ns);
    rx.recv().await.unwrap();
    let p = json!({"spec": {"template": {"spec": {
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
        "containers": [{"name": "c", "image": "busybox:2"}]}}}});
    api.patch("agent", &PatchParams::default(), &Patch::Strategic(p)).await.unwrap();
    wait_for(60, "the rolled-out daemon on 3 nodes", || async {
        let d = ds_state(&api, 3).await?;
        let pods = pods_of(&client, &ns, "app=agent").await;
        (live(&pods).iter().all(|p| image_of(p) == "busybox:2") && live(&pods).len() == 3).then_some(d)
    })
    .await;
    assert_eq!(daemon_nodes(&client, &ns).await, ["n1", "n2", "n3"]);
    let out = server.kubectl_ok("1.33", &["rollout", "status", "daemonset/agent", "-n", &ns, "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
    while let Ok((live, available, _)) = rx.try_recv() {
        // 2 old pods, maxUnavailable 1: never fewer than 1 available, never more than 3 pods.
        assert!(live <= 3 && available >= 1, "{live} live, {available} available");
    }

    // maxSurge 1, maxUnavailable 0: a new pod starts beside each old one, which goes once it is ready.
    let (task, mut rx) = observe_pods(&client, &ns);
    rx.recv().await.unwrap();
    let p = json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                            "template": {"spec": {"containers": [{"name": "c", "image": "busybox:3"}]}}}});
    api.patch("agent", &PatchParams::default(), &Patch::Strategic(p)).await.unwrap();
    wait_for(60, "the surged rollout", || async {
        let d = ds_state(&api, 3).await?;
        let pods = pods_of(&client, &ns, "app=agent").await;
        (live(&pods).iter().all(|p| image_of(p) == "busybox:3") && live(&pods).len() == 3).then_some(d)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
    let mut surged = false;
    while let Ok((live, available, _)) = rx.try_recv() {
        assert!(live <= 4 && available >= 3, "{live} live, {available} available with maxSurge 1, maxUnavailable 0");
        surged |= live == 4;
    }
    assert!(surged, "a surge pod was never seen");

    // A new eligible node gets a pod; a NoExecute taint evicts; a deleted node's pod goes.
    make_node(&client, "n5", json!({"role": "edge"}), json!([]), false).await;
    wait_for(30, "a pod on n5", || ds_state(&api, 4)).await;
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [{"key": "evict", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    nodes.delete("n5", &DeleteParams::default()).await.unwrap();
    wait_for(30, "pods gone from n1 and n5", || ds_state(&api, 2)).await;
    wait_for(30, "daemon pods on n2 and n3 only", || async {
        (daemon_nodes(&client, &ns).await == ["n2", "n3"]).then_some(())
    })
    .await;
    let revs: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    assert_eq!(revs.list(&ListParams::default()).await.unwrap().items.len(), 3);
}
