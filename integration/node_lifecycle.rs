//! Node lifecycle, pod GC, eviction and `kubectl drain` on hollow nodes against a real
//! `kelp server`.

use std::time::Duration;

use crate::support::eventually;
use crate::support::{unique, Server};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kelp::hollow::{self, HollowConfig, HollowNodes};
use kube::api::{Api, ListParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

async fn make_ns(client: &Client) -> String {
    let name = unique("life");
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
        .await
        .unwrap();
    name
}

async fn nodes(client: &Client, count: usize, prefix: &str) -> HollowNodes {
    let cfg = HollowConfig {
        count,
        name_prefix: format!("{prefix}-"),
        lease_interval: Duration::from_secs(2),
        ..Default::default()
    };
    hollow::start(client.clone(), cfg).await.expect("hollow nodes")
}

fn pod(name: &str, extra: Value) -> Pod {
    let mut v = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        for (k, val) in b {
            match (a.get_mut(&k), val) {
                (Some(Value::Object(x)), Value::Object(y)) => x.extend(y),
                (_, val) => {
                    a.insert(k, val);
                }
            }
        }
    }
    serde_json::from_value(v).unwrap()
}

async fn running_on(api: &Api<Pod>, name: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let p = api.get(name).await.unwrap();
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if let (Some(node), true) = (node, ready) {
            return node;
        }
        assert!(tokio::time::Instant::now() < deadline, "pod {name} did not run: {:?}", p.status);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn on(node: &str) -> Value {
    json!({"spec": {"nodeSelector": {"kubernetes.io/hostname": node}}})
}

#[tokio::test]
async fn a_node_that_stops_renewing_goes_unknown_and_its_pods_are_evicted() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client).await;
    let hn = nodes(&client, 2, &unique("dead")).await;
    let names = hn.names();
    let (dead, alive) = (&names[0], &names[1]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    // Admission adds the 300 s not-ready/unreachable tolerations to a pod without them.
    let mut short = on(dead);
    short["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
        "effect": "NoExecute", "tolerationSeconds": 3}]);
    pods.create(&pp, &pod("short", short)).await.unwrap();
    let long = pods.create(&pp, &pod("long", on(dead))).await.unwrap();
    let tolerations = long.spec.unwrap().tolerations.unwrap();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let t = tolerations.iter().find(|t| t.key.as_deref() == Some(key)).expect("default toleration");
        assert_eq!(t.toleration_seconds, Some(300));
        assert_eq!(t.effect.as_deref(), Some("NoExecute"));
    }
    running_on(&pods, "short").await;
    running_on(&pods, "long").await;
    // A ReplicaSet whose two pods spread over both nodes (preferred anti-affinity); its pod on the
    // dead node comes back on the live one after the 3 s toleration.
    let rs: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "rs"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs"}},
            "template": {"metadata": {"labels": {"app": "rs"}}, "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 3}],
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
                    "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app": "rs"}}}}]}}}}}
    }))
    .unwrap();
    Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(client.clone(), &ns).create(&pp, &rs).await.unwrap();
    // Running and Ready pods of the set, by node.
    let rs_pods = |pods: Api<Pod>| async move {
        let list = pods.list(&ListParams::default().labels("app=rs")).await.unwrap().items;
        list.into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|p| p.spec?.node_name)
            .collect::<Vec<String>>()
    };
    let before = eventually(30, "the set's two pods on both nodes", || async {
        let on = rs_pods(pods.clone()).await;
        (on.len() == 2).then_some(on)
    })
    .await;
    assert!(before.contains(dead) && before.contains(alive), "{before:?}");
    hn.stop_renewing(dead);
    let nodes_api: Api<Node> = Api::all(client.clone());
    // After the 40 s grace period: every condition Unknown, and the unreachable taints.
    let node = eventually(75, "the node to go Unknown and be tainted", || async {
        let n = nodes_api.get(dead).await.ok()?;
        let tainted =
            n.spec.as_ref()?.taints.as_ref()?.iter().any(|t| {
                t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute" && t.time_added.is_some()
            });
        tainted.then_some(n)
    })
    .await;
    let conds = node.status.unwrap().conditions.unwrap();
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = conds.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(c.status, "Unknown", "{t}");
        assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(c.message.as_deref(), Some("Kubelet stopped posting node status."));
    }
    let taints = node.spec.unwrap().taints.unwrap();
    assert!(taints.iter().any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoSchedule"));
    let out = server.kubectl_ok("1.33", &["get", "node", dead]);
    assert!(out.contains("NotReady"), "{out}");

    // Its pods turn not ready; the one tolerating 3 s is evicted, the 300 s one stays.
    eventually(30, "the short pod to be evicted", || async {
        let p = pods.get("short").await.ok()?;
        p.metadata.deletion_timestamp.map(|_| ())
    })
    .await;
    let p = pods.get("long").await.unwrap();
    assert!(p.metadata.deletion_timestamp.is_none());
    let ready = p.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False");
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let list = events.list(&ListParams::default().fields("involvedObject.name=short")).await.unwrap();
    let ev = list.items.iter().find(|e| e.reason.as_deref() == Some("TaintManagerEviction")).expect("eviction event");
    assert_eq!(ev.message.as_deref(), Some(format!("Marking for deletion Pod {ns}/short").as_str()));

    // The set's pod on the dead node is evicted after its 3 s toleration and replaced on the live
    // node.
    eventually(30, "the set's pods both running on the live node", || async {
        let on = rs_pods(pods.clone()).await;
        (on.len() == 2 && on.iter().all(|n| n == alive)).then_some(())
    })
    .await;

    // New pods avoid the dead node.
    pods.create(&pp, &pod("fresh", json!({}))).await.unwrap();
    assert_eq!(&running_on(&pods, "fresh").await, alive);

    // The node comes back: Ready again, taints removed.
    hn.resume(dead).await.unwrap();
    eventually(30, "the node to be Ready and untainted", || async {
        let n = nodes_api.get(dead).await.ok()?;
        let ready = n.status?.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        let clean = n.spec?.taints.unwrap_or_default().iter().all(|t| !t.key.starts_with("node.kubernetes.io/"));
        (ready && clean).then_some(())
    })
    .await;
    // Back, it finishes the pod that was evicted while it was away.
    eventually(30, "the evicted pod to be gone", || async {
        matches!(pods.get_opt("short").await, Ok(None)).then_some(())
    })
    .await;
    running_on(&pods, "long").await;
}

#[tokio::test]
async fn pod_gc_deletes_pods_of_deleted_nodes() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client).await;
    let hn = nodes(&client, 2, &unique("gc")).await;
    let names = hn.names();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod("orphan", on(&names[0]))).await.unwrap();
    pods.create(&PostParams::default(), &pod("kept", on(&names[1]))).await.unwrap();
    running_on(&pods, "orphan").await;
    running_on(&pods, "kept").await;
    hn.stop_renewing(&names[0]);
    let nodes_api: Api<Node> = Api::all(client.clone());
    nodes_api.delete(&names[0], &Default::default()).await.unwrap();
    eventually(60, "the orphaned pod to be deleted", || async {
        matches!(pods.get_opt("orphan").await, Ok(None)).then_some(())
    })
    .await;
    assert!(pods.get_opt("kept").await.unwrap().is_some());
}

#[tokio::test]
async fn eviction_respects_budgets_and_kubectl_drain_waits_for_them() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client).await;
    let hn = nodes(&client, 2, &unique("drain")).await;
    let names = hn.names();
    let (a, b) = (names[0].clone(), names[1].clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    let web = |node: &str| {
        let mut v = on(node);
        v["metadata"] = json!({"labels": {"app": "web"}});
        v
    };
    for (name, node) in [("a1", &a), ("a2", &a), ("b1", &b)] {
        pods.create(&pp, &pod(name, web(node))).await.unwrap();
    }
    for name in ["a1", "a2", "b1"] {
        running_on(&pods, name).await;
    }
    server.kubectl_ok("1.33", &["create", "pdb", "web", "-n", &ns, "--selector=app=web", "--min-available=2"]);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    eventually(30, "the budget status", || async {
        let s = pdbs.get("web").await.ok()?.status?;
        (s.current_healthy == 3 && s.desired_healthy == 2 && s.disruptions_allowed == 1 && s.expected_pods == 3)
            .then_some(())
    })
    .await;
    let s = pdbs.get("web").await.unwrap().status.unwrap();
    let cond = s.conditions.unwrap().into_iter().find(|c| c.type_ == "DisruptionAllowed").unwrap();
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("True", "SufficientPods"));

    // Drain node a: a1 goes, a2 is refused while only two pods are healthy.
    let kubectl = crate::support::kubectl_path("1.33");
    let kubeconfig = server.kubeconfig();
    let drain = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["drain", &a, "--force", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=600s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let nodes_api: Api<Node> = Api::all(client.clone());
    eventually(30, "the node to be cordoned", || async {
        let n = nodes_api.get(&a).await.ok()?;
        n.spec?.unschedulable.filter(|u| *u).map(|_| ())
    })
    .await;
    // One of a1/a2 is evicted, the other blocked by the budget.
    let blocked = eventually(30, "one eviction", || async {
        let gone1 = pods.get_opt("a1").await.ok()?.is_none_or(|p| p.metadata.deletion_timestamp.is_some());
        let gone2 = pods.get_opt("a2").await.ok()?.is_none_or(|p| p.metadata.deletion_timestamp.is_some());
        match (gone1, gone2) {
            (true, false) => Some("a2"),
            (false, true) => Some("a1"),
            _ => None,
        }
    })
    .await;
    // The eviction API answers 429 with upstream's message and cause.
    eventually(30, "the budget to allow no disruption", || async {
        let s = pdbs.get("web").await.ok()?.status?;
        (s.disruptions_allowed == 0 && s.current_healthy == 2).then_some(())
    })
    .await;
    // A client that does not retry 429 answers itself.
    let raw = server.client_without_retries().await;
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{blocked}/eviction"))
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": blocked, "namespace": ns}}))
            .unwrap(),
        )
        .unwrap();
    let err = raw.request::<Value>(req).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 429);
            assert_eq!(s.message, "Cannot evict pod as it would violate the pod's disruption budget.");
        }
        e => panic!("{e}"),
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(pods.get_opt(blocked).await.unwrap().is_some_and(|p| p.metadata.deletion_timestamp.is_none()));

    // A replacement on node b makes room; the drain then finishes.
    pods.create(&pp, &pod("b2", web(&b))).await.unwrap();
    running_on(&pods, "b2").await;
    let out = tokio::task::spawn_blocking(move || drain.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "drain failed: {stdout}\n{stderr}");
    assert!(stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{stderr}");
    assert!(stdout.contains(&format!("node/{a} drained")), "{stdout}");
    assert!(pods.get_opt(blocked).await.unwrap().is_none_or(|p| p.metadata.deletion_timestamp.is_some()));
}
