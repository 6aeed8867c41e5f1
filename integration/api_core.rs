//! API core, end to end: a real `kelp server` driven with kube-rs and with the real kubectl.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{unique, Server};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::Client;
use serde_json::{json, Value};

/// The ConfigMap the root CA publisher puts in every namespace.
const ROOT_CA: &str = "kube-root-ca.crt";

/// A new namespace, once the controllers have put its root CA ConfigMap in (so counts are stable).
async fn make_ns(client: &Client, prefix: &str) -> String {
    let name = unique(prefix);
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    for _ in 0..300 {
        if cms.get_opt(ROOT_CA).await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    name
}

fn cm(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": data})).unwrap()
}

fn api_err(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_across_kinds_and_defaults() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "crud").await;

    // System namespaces and the kubernetes service exist.
    let nss: Api<Namespace> = Api::all(client.clone());
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let got = nss.get(n).await.unwrap();
        assert_eq!(got.status.unwrap().phase.as_deref(), Some("Active"));
    }
    let kube_svc = Api::<Service>::namespaced(client.clone(), "default").get("kubernetes").await.unwrap();
    assert_eq!(kube_svc.spec.unwrap().cluster_ip.as_deref(), Some("10.43.0.1"));

    // ConfigMap: create, get, update, delete.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let created = cms.create(&PostParams::default(), &cm("one", json!({"a": "1"}), json!({"k": "v"}))).await.unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    let rv1: i64 = meta.resource_version.as_deref().unwrap().parse().unwrap();
    let mut got = cms.get("one").await.unwrap();
    assert_eq!(got.metadata.resource_version, created.metadata.resource_version);
    got.data.as_mut().unwrap().insert("k".into(), "w".into());
    let updated = cms.replace("one", &PostParams::default(), &got).await.unwrap();
    let rv2: i64 = updated.metadata.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(rv2 > rv1, "every write gets a newer resourceVersion");
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    cms.delete("one", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(cms.get("one").await.unwrap_err()).0, 404);

    // Deployment: defaults, generation bumps on spec change only, scale subresource.
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let d = deps.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    assert_eq!(spec.strategy.as_ref().unwrap().type_.as_deref(), Some("RollingUpdate"));
    let c = &spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(c.termination_message_path.as_deref(), Some("/dev/termination-log"));
    let pod_spec = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod_spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(pod_spec.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(pod_spec.scheduler_name.as_deref(), Some("default-scheduler"));
    assert_eq!(pod_spec.termination_grace_period_seconds, Some(30));
    let labelled = deps
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})))
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1), "a metadata change does not bump generation");
    let scale = deps.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    let scaled = deps
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(3));
    let d = deps.get("web").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(3));
    assert_eq!(d.metadata.generation, Some(2), "a spec change bumps generation");
    // Status is kept apart: a main update cannot write it, a status update cannot write spec.
    let st = deps
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}, "status": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().replicas, Some(2));
    assert_eq!(st.spec.unwrap().replicas, Some(3));
    let main =
        deps.patch("web", &PatchParams::default(), &Patch::Merge(json!({"status": {"replicas": 7}}))).await.unwrap();
    // (The Deployment controller may have written its own status since; never the 7.)
    assert_ne!(main.status.unwrap().replicas, Some(7));
    // The selector is immutable.
    let err = deps
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "other"}}}}})))
        .await
        .unwrap_err();
    let (code, reason, message) = api_err(err);
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
    assert!(message.contains("spec.selector"), "{message}");

    // Services get a ClusterIP from the service CIDR and NodePorts in range, without clashes.
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "np"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    let svc = svcs.create(&PostParams::default(), &svc).await.unwrap();
    let spec = svc.spec.unwrap();
    let ip: std::net::Ipv4Addr = spec.cluster_ip.unwrap().parse().unwrap();
    assert_eq!(ip.octets()[..2], [10, 43]);
    let port = &spec.ports.unwrap()[0];
    let node_port = port.node_port.unwrap();
    assert!((30000..=32767).contains(&node_port));
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    let clash: Service = serde_json::from_value(json!({
        "metadata": {"name": "np2"},
        "spec": {"type": "NodePort", "ports": [{"port": 81, "nodePort": node_port}]}
    }))
    .unwrap();
    let (code, _, message) = api_err(svcs.create(&PostParams::default(), &clash).await.unwrap_err());
    assert_eq!(code, 422);
    assert!(message.contains("provided port is already allocated"), "{message}");

    // Pods: defaults and admission, the status starts Pending.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"generateName": "p-"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}),
    )
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert!(pod.metadata.name.as_deref().unwrap().starts_with("p-"));
    assert_eq!(pod.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(pod.status.as_ref().unwrap().qos_class.as_deref(), Some("BestEffort"));
    let pspec = pod.spec.unwrap();
    assert_eq!(pspec.containers[0].image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(pspec.service_account_name.as_deref(), Some("default"));
    assert_eq!(pspec.tolerations.unwrap().len(), 2);

    // Secrets, dry run.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"a": "b"}})).unwrap();
    let dry = secrets.create(&PostParams { dry_run: true, ..Default::default() }, &s).await.unwrap();
    assert_eq!(dry.type_.as_deref(), Some("Opaque"));
    assert_eq!(api_err(secrets.get("s").await.unwrap_err()).0, 404, "dry run stores nothing");

    // Finalizers hold a delete until they are removed.
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "fin", "finalizers": ["example.com/hold"]}})).unwrap(),
    )
    .await
    .unwrap();
    cms.delete("fin", &DeleteParams::default()).await.unwrap();
    let held = cms.get("fin").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    cms.patch("fin", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    assert_eq!(api_err(cms.get("fin").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn conflicts_and_already_exists() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "conflict").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let first = cms.create(&PostParams::default(), &cm("c", json!({}), json!({"v": "1"}))).await.unwrap();
    let (code, reason, _) =
        api_err(cms.create(&PostParams::default(), &cm("c", json!({}), json!({}))).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    let mut a = first.clone();
    a.data = Some(BTreeMap::from([("v".to_string(), "2".to_string())]));
    cms.replace("c", &PostParams::default(), &a).await.unwrap();
    // The same stale resourceVersion again.
    let mut b = first.clone();
    b.data = Some(BTreeMap::from([("v".to_string(), "3".to_string())]));
    let (code, reason, message) = api_err(cms.replace("c", &PostParams::default(), &b).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(message.contains("the object has been modified"), "{message}");
    assert_eq!(cms.get("c").await.unwrap().data.unwrap()["v"], "2", "the stale write lost nothing");
    // A delete precondition on a stale resourceVersion fails too.
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: first.metadata.resource_version.clone(),
            uid: None,
        }),
        ..Default::default()
    };
    assert_eq!(api_err(cms.delete("c", &dp).await.unwrap_err()).0, 409);
}

#[tokio::test]
async fn label_and_field_selectors() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "sel").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for (name, labels) in [
        ("a", json!({"app": "web", "tier": "front"})),
        ("b", json!({"app": "web", "tier": "back"})),
        ("c", json!({"app": "db"})),
        ("d", json!({})),
    ] {
        cms.create(&PostParams::default(), &cm(name, labels, json!({}))).await.unwrap();
    }
    // Every namespace also has the root CA ConfigMap (the publisher's); left out here.
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        let mut v: Vec<String> = l.items.into_iter().filter_map(|c| c.metadata.name).filter(|n| n != ROOT_CA).collect();
        v.sort();
        v
    };
    let cases = [
        ("app=web", vec!["a", "b"]),
        ("app==web", vec!["a", "b"]),
        ("app!=web", vec!["c", "d"]),
        ("tier in (front,middle)", vec!["a"]),
        ("tier notin (front)", vec!["b", "c", "d"]),
        ("tier", vec!["a", "b"]),
        ("!tier", vec!["c", "d"]),
        ("app=web,tier=back", vec!["b"]),
    ];
    for (sel, want) in cases {
        let got = names(cms.list(&ListParams::default().labels(sel)).await.unwrap());
        assert_eq!(got, want, "selector {sel}");
    }
    let got = names(cms.list(&ListParams::default().fields("metadata.name=c")).await.unwrap());
    assert_eq!(got, vec!["c"]);
    let got = names(cms.list(&ListParams::default().fields("metadata.name!=c")).await.unwrap());
    assert_eq!(got, vec!["a", "b", "d"]);
    let err = cms.list(&ListParams::default().fields("spec.bogus=1")).await.unwrap_err();
    assert_eq!(api_err(err).0, 400);
    let err = cms.list(&ListParams::default().labels("a in (")).await.unwrap_err();
    assert_eq!(api_err(err).0, 400);

    // Pod fields: spec.nodeName and status.phase; across all namespaces.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for (name, node) in [("p1", Some("n1")), ("p2", None)] {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap(),
        )
        .await
        .unwrap();
    }
    let all: Api<Pod> = Api::all(client.clone());
    let on_n1 = all.list(&ListParams::default().fields("spec.nodeName=n1")).await.unwrap();
    assert_eq!(on_n1.items.len(), 1);
    let unscheduled = pods.list(&ListParams::default().fields("spec.nodeName=,status.phase=Pending")).await.unwrap();
    assert_eq!(unscheduled.items.iter().filter_map(|p| p.metadata.name.clone()).collect::<Vec<_>>(), vec!["p2"]);
}

#[tokio::test]
async fn pagination_is_a_consistent_snapshot() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "page").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for i in 0..25 {
        cms.create(&PostParams::default(), &cm(&format!("cm-{i:02}"), json!({}), json!({}))).await.unwrap();
    }
    let first = cms.list(&ListParams::default().limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    // 25 of ours and the root CA ConfigMap (which sorts last).
    assert_eq!(first.metadata.remaining_item_count, Some(16));
    let token = first.metadata.continue_.clone().expect("a continue token");
    // Changes after the first page do not show up in later pages.
    cms.create(&PostParams::default(), &cm("cm-99", json!({}), json!({}))).await.unwrap();
    cms.delete("cm-24", &DeleteParams::default()).await.unwrap();
    let mut names: Vec<String> = first.items.iter().filter_map(|c| c.metadata.name.clone()).collect();
    let mut token = Some(token);
    while let Some(t) = token {
        let page = cms.list(&ListParams::default().limit(10).continue_token(&t)).await.unwrap();
        assert_eq!(page.metadata.resource_version, first.metadata.resource_version, "pages come from one revision");
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    let mut want: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    want.push(ROOT_CA.into());
    assert_eq!(names, want);
    // A fresh list sees the changes.
    let now = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(now.items.len(), 26);
    assert!(now.items.iter().any(|c| c.metadata.name.as_deref() == Some("cm-99")));
    // A made-up continue token is a 400.
    assert_eq!(api_err(cms.list(&ListParams::default().continue_token("garbage")).await.unwrap_err()).0, 400);
}

#[tokio::test]
async fn watch_resumes_and_expires_after_compaction() {
    let server = Server::start_with(&["--store-compaction-interval", "1", "--store-compaction-retention", "1"]);
    let client = server.client().await;
    let ns = make_ns(&client, "watch").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let start = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut stream = cms.watch(&WatchParams::default().labels("w=1"), &start).await.unwrap().boxed();
    let a = cms.create(&PostParams::default(), &cm("a", json!({"w": "1"}), json!({}))).await.unwrap();
    cms.create(&PostParams::default(), &cm("ignored", json!({"w": "2"}), json!({}))).await.unwrap();
    let a2 = cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"x": "y"}}))).await.unwrap();
    // Leaving the selection looks like a deletion to this watcher.
    cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"w": "3"}}}))).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(o) => seen.push(("ADDED", o.metadata.resource_version.unwrap())),
            WatchEvent::Modified(o) => seen.push(("MODIFIED", o.metadata.resource_version.unwrap())),
            WatchEvent::Deleted(o) => seen.push(("DELETED", o.metadata.resource_version.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen[0], ("ADDED", a.metadata.resource_version.clone().unwrap()));
    assert_eq!(seen[1], ("MODIFIED", a2.metadata.resource_version.clone().unwrap()));
    assert_eq!(seen[2].0, "DELETED");

    // Resume from the first event's version: only what came after it.
    let resumed =
        cms.watch(&WatchParams::default(), a.metadata.resource_version.as_deref().unwrap()).await.unwrap().boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), resumed.into_future()).await.unwrap().0.unwrap().unwrap();
    match first {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("ignored")),
        other => panic!("{other:?}"),
    }

    // After compaction has passed that revision, the same watch is 410 Gone (Expired).
    for i in 0..5 {
        cms.patch("ignored", &PatchParams::default(), &Patch::Merge(json!({"data": {"i": i.to_string()}})))
            .await
            .unwrap();
    }
    let old = a.metadata.resource_version.clone().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = cms.watch(&WatchParams::default(), &old).await.unwrap().boxed();
        let ev = tokio::time::timeout(Duration::from_secs(10), s.into_future()).await.unwrap().0.unwrap().unwrap();
        if let WatchEvent::Error(e) = ev {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "compaction never expired revision {old}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Keep writing so that there is history to compact.
        cms.patch(
            "ignored",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"t": format!("{:?}", std::time::Instant::now())}})),
        )
        .await
        .unwrap();
    }
    // An old list with an exact version is 410 as well.
    let lp = ListParams::default().at(&old).matching(kube::api::VersionMatch::Exact);
    assert_eq!(api_err(cms.list(&lp).await.unwrap_err()).0, 410);
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let mut server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "durable").await;
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..16 {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let acked = acked.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while stop.load(Ordering::SeqCst) == 0 {
                let name = format!("w{w}-{i}");
                if cms
                    .create(&PostParams::default(), &cm(&name, json!({}), json!({"payload": "x".repeat(2000)})))
                    .await
                    .is_ok()
                {
                    acked.lock().unwrap().push(name);
                }
                i += 1;
            }
        }));
    }
    // Let the burst run, then kill the server in the middle of it.
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    stop.store(1, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    server.spawn();
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    let stored: std::collections::HashSet<String> =
        cms.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|c| c.metadata.name).collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !stored.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged creates lost after kill -9: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(acked.len() >= 300);
}

#[tokio::test]
async fn kubectl_prints_real_columns() {
    // No controllers: the Deployment below must not grow pods, nor change under `kubectl replace`.
    let server = Server::start_with(&["--disable-controller-manager"]);
    let client = server.client().await;
    let ns = make_ns(&client, "kubectl").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    for v in ["1.27", "1.33"] {
        let out = server.kubectl_ok(v, &["get", "pods", "-n", &ns, "-o", "wide"]);
        let header: Vec<&str> = out.lines().next().unwrap_or_default().split_whitespace().collect();
        assert_eq!(
            header,
            ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"],
            "kubectl {v}: {out}"
        );
        let row: Vec<&str> = out.lines().nth(1).unwrap_or_default().split_whitespace().collect();
        assert_eq!(&row[..4], ["web-1", "0/1", "Pending", "0"], "kubectl {v}: {out}");
        // Create (from a file: OpenAPI-driven validation and protobuf bodies come with the
        // kubectl-completeness work), list, label, scale, watch and delete through kubectl.
        let name = format!("cm-{}", v.replace('.', "-"));
        let file = server.dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d-{name}\nspec:\n  selector:\n    matchLabels: {{app: x}}\n  template:\n    metadata:\n      labels: {{app: x}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n"
            ),
        )
        .unwrap();
        let out = server.kubectl_ok(v, &["create", "-f", file.to_str().unwrap(), "-n", &ns, "--validate=false"]);
        assert!(
            out.contains(&format!("configmap/{name} created"))
                && out.contains(&format!("deployment.apps/d-{name} created")),
            "{out}"
        );
        // replace (PUT) with a changed value.
        std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("  a: b\n", "  a: c\n")).unwrap();
        let out = server.kubectl_ok(v, &["replace", "-f", file.to_str().unwrap(), "-n", &ns, "--validate=false"]);
        assert!(out.contains(&format!("configmap/{name} replaced")), "{out}");
        assert_eq!(server.kubectl_ok(v, &["get", "cm", &name, "-n", &ns, "-o", "jsonpath={.data.a}"]), "c");
        server.kubectl_ok(v, &["label", "configmap", &name, "-n", &ns, "tier=web"]);
        server.kubectl_ok(v, &["annotate", "configmap", &name, "-n", &ns, "note=hello"]);
        let out = server.kubectl_ok(v, &["get", "cm", "-n", &ns, "-l", "tier=web", "-o", "name"]);
        assert_eq!(out.trim(), format!("configmap/{name}"));
        server.kubectl_ok(v, &["label", "configmap", &name, "-n", &ns, "tier-"]);
        assert!(server.kubectl_ok(v, &["get", "cm", "-n", &ns, "-l", "tier=web", "-o", "name"]).trim().is_empty());
        server.kubectl_ok(v, &["scale", "deployment", &format!("d-{name}"), "-n", &ns, "--replicas=4"]);
        let out = server
            .kubectl_ok(v, &["get", "deploy", &format!("d-{name}"), "-n", &ns, "-o", "jsonpath={.spec.replicas}"]);
        assert_eq!(out, "4");
        let out = server.kubectl_ok(v, &["get", "deployments", "-n", &ns]);
        assert!(
            out.lines().next().unwrap().split_whitespace().eq(["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]),
            "{out}"
        );
        let out = server.kubectl_ok(v, &["get", "all", "-n", "default"]);
        assert!(out.contains("service/kubernetes"), "{out}");
        // get -w prints a change made while it watches.
        let watcher = std::process::Command::new(crate::support::kubectl_path(v))
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .args(["get", "configmaps", "-n", &ns, "-w", "--request-timeout=6s"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let late = format!("late-{}", v.replace('.', "-"));
        Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &cm(&late, json!({}), json!({})))
            .await
            .unwrap();
        let out = watcher.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains(&late), "kubectl {v} get -w did not show the new object: {out}");
        let out = server.kubectl_ok(v, &["get", "configmaps", "-n", &ns]);
        assert!(out.lines().next().unwrap().split_whitespace().eq(["NAME", "DATA", "AGE"]), "{out}");
        assert!(out.contains(&name), "{out}");
        server.kubectl_ok(v, &["delete", "deployment", &format!("d-{name}"), "-n", &ns]);
        server.kubectl_ok(v, &["delete", "configmap", &name, "-n", &ns]);
        let out = server.kubectl(v, &["get", "configmap", &name, "-n", &ns]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"), "{}", String::from_utf8_lossy(&out.stderr));
        let out = server.kubectl_ok(v, &["get", "namespaces"]);
        assert!(out.contains("kube-system") && out.contains("Active"), "{out}");
        let out = server.kubectl_ok(v, &["api-resources"]);
        assert!(
            out.lines().any(|l| l.starts_with("deployments") && l.contains("deploy") && l.contains("apps/v1")),
            "{out}"
        );
        let out = server.kubectl_ok(v, &["version", "-o", "json"]);
        let ver: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(ver["serverVersion"]["minor"], "33");
    }
}

async fn raw(client: &Client, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let req =
        http::Request::builder().method(method).uri(path).header("content-type", content_type).body(body).unwrap();
    match client.request::<Value>(req).await {
        Ok(v) => (200, v),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_value(&s).unwrap()),
        Err(e) => panic!("{method} {path}: {e:?}"),
    }
}

#[tokio::test]
async fn bad_input_gets_the_right_status_and_the_server_goes_on() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "bad").await;
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    let (code, s) = raw(&client, "POST", &path, "application/json", b"{not json".to_vec()).await;
    assert_eq!(code, 400, "malformed JSON: {s}");
    let (code, s) = raw(
        &client,
        "POST",
        &path,
        "application/json",
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})).unwrap(),
    )
    .await;
    assert_eq!(code, 400, "wrong kind: {s}");
    let (code, s) = raw(
        &client,
        "POST",
        &path,
        "application/json",
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}))
            .unwrap(),
    )
    .await;
    assert_eq!(code, 422, "bad name: {s}");
    assert_eq!(s["reason"], "Invalid");
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    let (code, s) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/no-such-ns/configmaps",
        "application/json",
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})).unwrap(),
    )
    .await;
    assert_eq!(code, 404, "unknown namespace: {s}");
    assert!(s["message"].as_str().unwrap().contains("namespaces \"no-such-ns\" not found"), "{s}");
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": "y".repeat(4 << 20)}});
    let (code, s) = raw(&client, "POST", &path, "application/json", serde_json::to_vec(&big).unwrap()).await;
    assert_eq!(code, 413, "oversized body: {s}");
    let (code, s) = raw(&client, "POST", &path, "text/plain", b"hello".to_vec()).await;
    assert_eq!(code, 415, "unsupported media type: {s}");
    let (code, _) = raw(&client, "GET", "/api/v1/nosuchresource", "application/json", vec![]).await;
    assert_eq!(code, 404);
    // Anonymous requests are refused except for health and version.
    let cmd = |path: &str| {
        std::process::Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", &format!("https://127.0.0.1:{}{path}", server.port)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    if std::path::Path::new("/usr/bin/curl").exists() {
        assert_eq!(cmd("/api/v1/namespaces"), "401");
        assert_eq!(cmd("/readyz"), "200");
        assert_eq!(cmd("/version"), "200");
    }
    // Nothing was stored by the bad requests, and the server still serves.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert!(cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .all(|c| c.metadata.name.as_deref() == Some(ROOT_CA)));
    cms.create(&PostParams::default(), &cm("fine", json!({}), json!({}))).await.unwrap();
}

/// Read an HTTP/1.1 response with a chunked body to its end; returns the body.
async fn read_chunked<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Vec<u8> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = String::new();
    // Status line and headers.
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
            break;
        }
    }
    let mut body = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap() == 0 {
            break;
        }
        let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let mut chunk = vec![0; size + 2];
        r.read_exact(&mut chunk).await.unwrap();
        body.extend_from_slice(&chunk[..size]);
    }
    body
}

#[tokio::test]
async fn slow_watcher_is_cut_off_with_an_error_and_nothing_else_stalls() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start_with(&["--watch-buffer-events", "64"]);
    let client = server.client().await;
    let ns = make_ns(&client, "slow").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let rv = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();

    // The slow watcher: a raw TLS connection that sends its request and then reads nothing.
    let tls_dir = server.data_dir().join("server/tls");
    let read = |f: &str| std::fs::read_to_string(tls_dir.join(f)).unwrap();
    let cfg =
        kelp::pki::client_config(&read("server-ca.crt"), &read("client-admin.crt"), &read("client-admin.key")).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut slow = connector.connect(name, tcp).await.unwrap();
    let req = format!("GET /api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv} HTTP/1.1\r\nHost: kelp\r\nConnection: close\r\n\r\n");
    slow.write_all(req.as_bytes()).await.unwrap();
    slow.flush().await.unwrap();

    // A watcher that keeps up.
    let total = 1500;
    let fast = cms.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let reader = tokio::spawn(async move {
        let mut revs = Vec::new();
        let mut fast = fast;
        while revs.len() < total {
            match fast.try_next().await.unwrap() {
                Some(WatchEvent::Added(o)) => revs.push(o.metadata.resource_version.unwrap().parse::<i64>().unwrap()),
                Some(WatchEvent::Bookmark(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        revs
    });
    // Writers: large objects, so the slow watcher's buffers overflow.
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for _ in 0..8 {
        let cms = cms.clone();
        let next = next.clone();
        writers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    break;
                }
                cms.create(
                    &PostParams::default(),
                    &cm(&format!("big-{i:05}"), json!({}), json!({"x": "y".repeat(8192)})),
                )
                .await
                .unwrap();
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(180), async {
        for w in writers {
            w.await.unwrap();
        }
    })
    .await
    .expect("writes are not held up by a slow watcher");
    let revs = tokio::time::timeout(Duration::from_secs(60), reader).await.expect("the fast watcher keeps up").unwrap();
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "events in order");

    // The slow watcher got a gap-free prefix of the events, then an ERROR, then the end.
    let mut buf = tokio::io::BufReader::new(slow);
    let body =
        tokio::time::timeout(Duration::from_secs(60), read_chunked(&mut buf)).await.expect("the slow watch ends");
    let events: Vec<Value> =
        body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    let (last, added) = events.split_last().expect("events");
    assert_eq!(last["type"], "ERROR", "the slow watcher is told: {last}");
    assert_eq!(last["object"]["code"], 410);
    assert!(added.len() < total, "the slow watcher was cut off ({} events)", added.len());
    let slow_revs: Vec<i64> =
        added.iter().map(|e| e["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(slow_revs, revs[..slow_revs.len()], "no event was silently lost before the cut");
}

#[tokio::test]
async fn deletion_semantics() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "del").await;

    // A pod bound to a node waits for the node for its grace period; grace 0 removes it.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "bound"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.delete("bound", &DeleteParams::default()).await.unwrap();
    let terminating = pods.get("bound").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    pods.delete("bound", &DeleteParams::default().grace_period(0)).await.unwrap();
    assert_eq!(api_err(pods.get("bound").await.unwrap_err()).0, 404);
    // An unscheduled pod goes at once.
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "free"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.delete("free", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(pods.get("free").await.unwrap_err()).0, 404);

    // Foreground propagation leaves the object with the foregroundDeletion finalizer while a
    // dependent blocking its deletion remains (this one is held by a finalizer of its own; it
    // also keeps the namespace terminating at the end of this test).
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let fg = cms.create(&PostParams::default(), &cm("fg", json!({}), json!({}))).await.unwrap();
    let held: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "fg", "uid": fg.metadata.uid.clone().unwrap(),
        "blockOwnerDeletion": true}]}}))
    .unwrap();
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let fg = cms.get("fg").await.unwrap();
    assert_eq!(fg.metadata.finalizers, Some(vec!["foregroundDeletion".to_string()]));
    assert!(fg.metadata.deletion_timestamp.is_some());

    // Orphan: the owner gets the `orphan` finalizer; the garbage collector drops the owner
    // reference from its dependents, then the finalizer, and the owner goes.
    let parent = cms.create(&PostParams::default(), &cm("parent", json!({}), json!({}))).await.unwrap();
    let child: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "child", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "parent", "uid": parent.metadata.uid.clone().unwrap()}]}}))
    .unwrap();
    cms.create(&PostParams::default(), &child).await.unwrap();
    cms.delete("parent", &DeleteParams::orphan()).await.unwrap();
    for _ in 0..300 {
        if cms.get_opt("parent").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(api_err(cms.get("parent").await.unwrap_err()).0, 404);
    assert!(cms.get("child").await.unwrap().metadata.owner_references.unwrap_or_default().is_empty());

    // deletecollection honours selectors.
    for (n, l) in [("x1", "x"), ("x2", "x"), ("y1", "y")] {
        cms.create(&PostParams::default(), &cm(n, json!({"set": l}), json!({}))).await.unwrap();
    }
    cms.delete_collection(&DeleteParams::default(), &ListParams::default().labels("set=x")).await.unwrap();
    let left: Vec<String> = cms
        .list(&ListParams::default().labels("set"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, vec!["y1"]);

    // A namespace being deleted takes no new objects.
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.delete(&ns, &DeleteParams::default()).await.unwrap();
    let gone = nss.get(&ns).await.unwrap();
    assert_eq!(gone.status.unwrap().phase.as_deref(), Some("Terminating"));
    let (code, reason, message) =
        api_err(cms.create(&PostParams::default(), &cm("late", json!({}), json!({}))).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (403, "Forbidden"), "{message}");
    assert!(message.contains("because it is being terminated"), "{message}");
}

#[tokio::test]
async fn watch_bookmarks_initial_events_and_timeouts() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "wl").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for n in ["a", "b"] {
        cms.create(&PostParams::default(), &cm(n, json!({}), json!({}))).await.unwrap();
    }
    // Streaming list: the current state as ADDED, then a bookmark marking the end of it.
    let wp = WatchParams::default().initial_events();
    let mut s = cms.watch(&wp, "0").await.unwrap().boxed();
    let mut added = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.try_next()).await.unwrap().unwrap().unwrap() {
            WatchEvent::Added(_) => added += 1,
            WatchEvent::Bookmark(b) => {
                assert_eq!(b.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str), Some("true"));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(added, 3, "a, b and the root CA ConfigMap");
    // timeoutSeconds ends the stream.
    let t0 = std::time::Instant::now();
    let mut s = cms.watch(&WatchParams::default().timeout(1), "0").await.unwrap().boxed();
    while let Some(ev) =
        tokio::time::timeout(Duration::from_secs(10), s.try_next()).await.expect("the watch ends").unwrap()
    {
        let _ = ev;
    }
    assert!(t0.elapsed() >= Duration::from_millis(900));
    // A list at a future resourceVersion is refused (504, which clients retry), not answered
    // with stale data.
    let cms: Api<ConfigMap> = Api::namespaced(server.client_without_retries().await, &ns);
    let lp = ListParams::default().at("999999999").matching(kube::api::VersionMatch::NotOlderThan);
    assert_eq!(api_err(cms.list(&lp).await.unwrap_err()).0, 504);
}

#[tokio::test]
async fn discovery_in_every_form_kubectl_asks_for() {
    let server = Server::start();
    let client = server.client().await;
    let get = |path: &str, accept: &str| {
        http::Request::get(path.to_string()).header("accept", accept.to_string()).body(Vec::<u8>::new()).unwrap()
    };
    for v in ["v2", "v2beta1"] {
        let accept = format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList,application/json");
        for path in ["/api", "/apis"] {
            let resp = client.send(get(path, &accept).map(Into::into)).await.unwrap();
            assert_eq!(
                resp.headers()["content-type"].to_str().unwrap(),
                format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
            );
            let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
            let doc: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(doc["apiVersion"], format!("apidiscovery.k8s.io/{v}"));
            if path == "/apis" {
                let apps = doc["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apps").unwrap();
                let deploy = apps["versions"][0]["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["resource"] == "deployments")
                    .unwrap();
                assert_eq!(deploy["shortNames"], json!(["deploy"]));
                assert_eq!(deploy["categories"], json!(["all"]));
                assert!(deploy["subresources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["subresource"] == "scale" && s["responseKind"]["kind"] == "Scale"));
            }
        }
    }
    // The plain forms.
    let groups: Value = client.request(get("/apis", "application/json")).await.unwrap();
    assert_eq!(groups["kind"], "APIGroupList");
    let core: Value = client.request(get("/api/v1", "application/json")).await.unwrap();
    assert!(core["resources"].as_array().unwrap().iter().any(|r| r["name"] == "pods/status"));
    let version: Value = client.request(get("/version", "application/json")).await.unwrap();
    assert_eq!(version["major"], "1");
    // kube-rs's own discovery over the aggregated endpoint finds every group.
    let discovery = kube::Discovery::new(client.clone()).run_aggregated().await.unwrap();
    for g in [
        "",
        "apps",
        "batch",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "policy",
        "autoscaling",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
    ] {
        assert!(discovery.has_group(g), "group {g:?} missing");
    }
}

#[tokio::test]
async fn field_validation_strict_warn_ignore() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "fv").await;
    let path = |fv: &str| format!("/apis/apps/v1/namespaces/{ns}/deployments?fieldValidation={fv}");
    let body = |name: &str| {
        format!(
            r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"{name}"}},"spec":{{"replicas":1,"bogus":true,
            "selector":{{"matchLabels":{{"a":"b"}}}},"template":{{"metadata":{{"labels":{{"a":"b"}}}},
            "spec":{{"containers":[{{"name":"c","image":"busybox","imagePullPolcy":"Always"}}]}}}}}}}}"#
        )
        .into_bytes()
    };
    // Strict: 400 naming every unknown field, nothing stored.
    let (code, s) = raw(&client, "POST", &path("Strict"), "application/json", body("strict")).await;
    assert_eq!(code, 400, "{s}");
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains("strict decoding error"), "{msg}");
    assert!(
        msg.contains(r#"unknown field "spec.bogus""#)
            && msg.contains(r#"unknown field "spec.template.spec.containers[0].imagePullPolcy""#),
        "{msg}"
    );
    // Duplicate fields too.
    let dup = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"d"},"data":{"a":"1","a":"2"}}"#
        .to_vec();
    let (code, s) = raw(
        &client,
        "POST",
        &format!("/api/v1/namespaces/{ns}/configmaps?fieldValidation=Strict"),
        "application/json",
        dup,
    )
    .await;
    assert_eq!(code, 400, "{s}");
    assert!(s["message"].as_str().unwrap().contains(r#"duplicate field "metadata.name""#), "{s}");
    // Warn (the default): stored without the unknown fields, with Warning headers.
    let req =
        http::Request::post(path("Warn")).header("content-type", "application/json").body(body("warned")).unwrap();
    let resp = client.send(req.map(Into::into)).await.unwrap();
    assert_eq!(resp.status(), 201);
    let warnings: Vec<String> =
        resp.headers().get_all("warning").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(warnings.iter().any(|w| w.starts_with("299 - ") && w.contains("spec.bogus")), "{warnings:?}");
    let stored = Api::<Deployment>::namespaced(client.clone(), &ns).get("warned").await.unwrap();
    assert_eq!(stored.spec.unwrap().replicas, Some(1));
    // Ignore: no warnings.
    let req =
        http::Request::post(path("Ignore")).header("content-type", "application/json").body(body("ignored")).unwrap();
    let resp = client.send(req.map(Into::into)).await.unwrap();
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().get("warning").is_none());
    // A bad value is a 400.
    let (code, _) = raw(&client, "POST", &path("Loud"), "application/json", body("loud")).await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn rbac_roles_bindings_reviews_and_impersonation() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
    let server = Server::start();
    let admin = server.client().await;
    let ns = make_ns(&admin, "rbac").await;
    let alice_kc = server.user_kubeconfig("alice", &[]);
    let bob_kc = server.user_kubeconfig("bob", &["devs"]);
    let alice = server.client_from(&alice_kc).await;
    let bob = server.client_from(&bob_kc).await;
    let cms_admin: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    cms_admin.create(&PostParams::default(), &cm("one", json!({}), json!({}))).await.unwrap();
    cms_admin.create(&PostParams::default(), &cm("two", json!({}), json!({}))).await.unwrap();

    // No binding: denied, with upstream's message.
    let alice_pods: Api<Pod> = Api::namespaced(alice.clone(), &ns);
    let (code, reason, message) = api_err(alice_pods.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(message, format!("pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"{ns}\""));
    // Discovery and self-reviews work for everyone authenticated.
    // 1.27 and 1.31 send reviews as JSON, 1.33 as protobuf.
    for v in ["1.27", "1.31", "1.33"] {
        let out = server.kubectl_with(v, &alice_kc, &["auth", "can-i", "list", "pods", "-n", &ns]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "no",
            "kubectl {v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success());
    }

    // view in the namespace: read, but not write, and not secrets.
    let rb: RoleBinding = serde_json::from_value(json!({"metadata": {"name": "alice-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns).create(&PostParams::default(), &rb).await.unwrap();
    assert!(alice_pods.list(&ListParams::default()).await.is_ok());
    let alice_cms: Api<ConfigMap> = Api::namespaced(alice.clone(), &ns);
    assert_eq!(alice_cms.get("one").await.unwrap().metadata.name.as_deref(), Some("one"));
    assert_eq!(api_err(alice_cms.delete("one", &DeleteParams::default()).await.unwrap_err()).0, 403);
    assert_eq!(
        api_err(Api::<Secret>::namespaced(alice.clone(), &ns).list(&ListParams::default()).await.unwrap_err()).0,
        403
    );
    let other_ns: Api<ConfigMap> = Api::namespaced(alice.clone(), "default");
    assert_eq!(api_err(other_ns.list(&ListParams::default()).await.unwrap_err()).0, 403, "the binding is namespaced");
    for v in ["1.27", "1.31", "1.33"] {
        assert_eq!(
            server.kubectl_with(v, &alice_kc, &["auth", "can-i", "get", "configmaps", "-n", &ns]).stdout,
            b"yes\n"
        );
        assert_eq!(
            server.kubectl_with(v, &alice_kc, &["auth", "can-i", "create", "configmaps", "-n", &ns]).stdout,
            b"no\n"
        );
        let list = server.kubectl_with(v, &alice_kc, &["auth", "can-i", "--list", "-n", &ns]);
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(
            list.lines().any(|l| l.starts_with("configmaps ") && l.contains("[get list watch]")),
            "kubectl {v}: {list}"
        );
        let out = server.kubectl_with(v, &alice_kc, &["get", "configmaps", "-n", &ns]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = server.kubectl_with(v, &alice_kc, &["delete", "configmap", "two", "-n", &ns]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("Forbidden"), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for v in ["1.31", "1.33"] {
        let out = server.kubectl_with(v, &alice_kc, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "alice",
            "kubectl {v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Aggregation: a role labelled aggregate-to-view extends view at once.
    let extra: ClusterRole = serde_json::from_value(
        json!({"metadata": {"name": "leases-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list"]}]}),
    )
    .unwrap();
    Api::<ClusterRole>::all(admin.clone()).create(&PostParams::default(), &extra).await.unwrap();
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(alice.clone(), &ns);
    assert!(leases.list(&ListParams::default()).await.is_ok());

    // resourceNames: bob's group may get only configmap "one".
    let role: Role = serde_json::from_value(json!({"metadata": {"name": "one-only"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"], "verbs": ["get"]}]}))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), &ns).create(&PostParams::default(), &role).await.unwrap();
    let rb: RoleBinding = serde_json::from_value(json!({"metadata": {"name": "devs-one"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "one-only"},
        "subjects": [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]}))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns).create(&PostParams::default(), &rb).await.unwrap();
    let bob_cms: Api<ConfigMap> = Api::namespaced(bob.clone(), &ns);
    assert!(bob_cms.get("one").await.is_ok());
    assert_eq!(api_err(bob_cms.get("two").await.unwrap_err()).0, 403);
    assert_eq!(api_err(bob_cms.list(&ListParams::default()).await.unwrap_err()).0, 403);

    // Impersonation: the admin may act as alice; alice may not act as bob.
    let as_alice = server.kubectl("1.33", &["--as", "alice", "delete", "configmap", "two", "-n", &ns]);
    assert!(
        String::from_utf8_lossy(&as_alice.stderr).contains("User \"alice\" cannot delete"),
        "{}",
        String::from_utf8_lossy(&as_alice.stderr)
    );
    let out = server.kubectl("1.33", &["--as", "alice", "get", "configmaps", "-n", &ns, "-o", "name"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("configmap/one"));
    let out = server.kubectl_with("1.33", &alice_kc, &["--as", "bob", "get", "configmaps", "-n", &ns]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot impersonate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The default roles are there for users to see.
    let out = server.kubectl_ok("1.33", &["get", "clusterroles"]);
    for r in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:kelp:agent",
        "system:kelp:scheduler",
        "system:controller:deployment-controller",
        "system:controller:namespace-controller",
    ] {
        assert!(out.lines().any(|l| l.split_whitespace().next() == Some(r)), "{r} missing: {out}");
    }
}

/// A kubeconfig holding only the cluster CA and a bearer token.
fn token_kubeconfig(server: &Server, name: &str, token: &str) -> std::path::PathBuf {
    let admin: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(server.kubeconfig()).unwrap()).unwrap();
    let ca = admin["clusters"][0]["cluster"]["certificate-authority-data"].as_str().unwrap();
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
        server.port
    );
    let path = server.dir.path().join(format!("kubeconfig-token-{name}.yaml"));
    std::fs::write(&path, kc).unwrap();
    path
}

#[tokio::test]
async fn service_account_tokens() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let server = Server::start();
    let admin = server.client().await;
    let ns = make_ns(&admin, "tok").await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    sas.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap())
        .await
        .unwrap();

    // kubectl create token: JSON bodies up to 1.31, protobuf from 1.32.
    let t133 = server.kubectl_ok(
        "1.33",
        &[
            "create",
            "token",
            "robot",
            "-n",
            &ns,
            "--duration=15m",
            "--audience=https://kubernetes.default.svc.cluster.local",
            "--audience=vault",
        ],
    );
    let claims = t133.trim().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], json!(["https://kubernetes.default.svc.cluster.local", "vault"]));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    let token = server.kubectl_ok("1.31", &["create", "token", "robot", "-n", &ns, "--duration=20m"]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let kc = token_kubeconfig(&server, "robot", token);
    let out = server.kubectl_with("1.31", &kc, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("system:serviceaccount:{ns}:robot"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // RBAC applies to service accounts.
    let out = server.kubectl_with("1.31", &kc, &["get", "configmaps", "-n", &ns]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("User \"system:serviceaccount:{ns}:robot\" cannot list")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rb: RoleBinding = serde_json::from_value(json!({"metadata": {"name": "robot-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}]}))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns).create(&PostParams::default(), &rb).await.unwrap();
    let out = server.kubectl_with("1.31", &kc, &["get", "configmaps", "-n", &ns]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A token bound to a pod stops working when the pod goes.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    pods.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]}})).unwrap()).await.unwrap();
    let tr = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600, "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}});
    let (code, resp) = raw(
        &admin,
        "POST",
        &format!("/api/v1/namespaces/{ns}/serviceaccounts/robot/token"),
        "application/json",
        serde_json::to_vec(&tr).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{resp}");
    let bound = resp["status"]["token"].as_str().unwrap().to_string();
    let bound_kc = token_kubeconfig(&server, "bound", &bound);
    assert!(server.kubectl_with("1.31", &bound_kc, &["get", "configmaps", "-n", &ns]).status.success());
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    let out = server.kubectl_with("1.31", &bound_kc, &["get", "configmaps", "-n", &ns]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthorized"), "{}", String::from_utf8_lossy(&out.stderr));

    // Too short an expiry is invalid; deleting the service account ends its tokens.
    let short =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 60}});
    let (code, _) = raw(
        &admin,
        "POST",
        &format!("/api/v1/namespaces/{ns}/serviceaccounts/robot/token"),
        "application/json",
        serde_json::to_vec(&short).unwrap(),
    )
    .await;
    assert_eq!(code, 422);
    sas.delete("robot", &DeleteParams::default()).await.unwrap();
    let out = server.kubectl_with("1.31", &kc, &["get", "configmaps", "-n", &ns]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthorized"), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, _) = raw(
        &admin,
        "POST",
        &format!("/api/v1/namespaces/{ns}/serviceaccounts/robot/token"),
        "application/json",
        serde_json::to_vec(&tr).unwrap(),
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn default_roles_regain_new_permissions_on_restart_unless_opted_out() {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let mut server = Server::start_with(&["--disable-controller-manager", "--disable-scheduler"]);
    let client = server.client().await;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    // An older cluster: the agents' role without the serving-certificate permission, and an extra
    // rule an administrator added.
    let mut agent = roles.get("system:kelp:agent").await.unwrap();
    let full = agent.rules.clone().unwrap();
    let rules = agent.rules.as_mut().unwrap();
    rules.retain(|r| r.non_resource_urls.is_none());
    let extra: k8s_openapi::api::rbac::v1::PolicyRule =
        serde_json::from_value(json!({"apiGroups": ["example.com"], "resources": ["things"], "verbs": ["get"]}))
            .unwrap();
    rules.push(extra.clone());
    roles.replace("system:kelp:agent", &PostParams::default(), &agent).await.unwrap();
    // One opted out of updates.
    let mut view = roles.get("system:aggregate-to-view").await.unwrap();
    view.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("rbac.authorization.kubernetes.io/autoupdate".into(), "false".into());
    view.rules.as_mut().unwrap().truncate(1);
    roles.replace("system:aggregate-to-view", &PostParams::default(), &view).await.unwrap();

    server.kill9();
    server.spawn();
    let client = server.client().await;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let agent = roles.get("system:kelp:agent").await.unwrap();
    let now = agent.rules.unwrap();
    for r in &full {
        assert!(now.contains(r), "restored: {r:?}");
    }
    assert!(now.contains(&extra), "an administrator's rule stays");
    let view = roles.get("system:aggregate-to-view").await.unwrap();
    assert_eq!(view.rules.unwrap().len(), 1, "autoupdate=false is left alone");
}
