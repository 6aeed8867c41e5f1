//! The scheduler on hollow nodes against a real `kelp server`: filters, scores, upstream's
//! FailedScheduling message, retry when a node is added, priority admission and preemption.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::eventually;
use crate::support::{unique, Server};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod};
use kelp::hollow::{self, HollowConfig, HollowNodes};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

async fn make_ns(client: &Client) -> String {
    let name = unique("sched");
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
        .await
        .unwrap();
    name
}

async fn nodes(client: &Client, count: usize, cpu: &str, prefix: &str) -> HollowNodes {
    let cfg = HollowConfig {
        count,
        name_prefix: prefix.to_string(),
        cpu: cpu.to_string(),
        lease_interval: Duration::from_secs(2),
        ..Default::default()
    };
    hollow::start(client.clone(), cfg).await.expect("hollow nodes")
}

fn pod(name: &str, extra: Value) -> Pod {
    let mut v = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn cpu(c: &str) -> Value {
    json!({"spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": c}}}]}})
}

async fn node_of(api: &Api<Pod>, name: &str) -> String {
    eventually(30, &format!("pod {name} to be bound"), || async {
        api.get(name).await.ok().and_then(|p| p.spec.and_then(|s| s.node_name))
    })
    .await
}

async fn running(api: &Api<Pod>, name: &str) {
    eventually(30, &format!("pod {name} to run"), || async {
        let p = api.get(name).await.ok()?;
        (p.status.and_then(|s| s.phase).as_deref() == Some("Running")).then_some(())
    })
    .await
}

async fn unschedulable_message(api: &Api<Pod>, name: &str) -> String {
    eventually(30, &format!("pod {name} to be unschedulable"), || async {
        let p = api.get(name).await.ok()?;
        let c = p.status?.conditions?.into_iter().find(|c| c.type_ == "PodScheduled")?;
        (c.status == "False" && c.reason.as_deref() == Some("Unschedulable")).then(|| c.message.unwrap_or_default())
    })
    .await
}

async fn taint(client: &Client, node: &str, key: &str, effect: &str) {
    let api: Api<Node> = Api::all(client.clone());
    let patch = json!({"spec": {"taints": [{"key": key, "effect": effect}]}});
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

async fn label(client: &Client, node: &str, labels: Value) {
    let api: Api<Node> = Api::all(client.clone());
    let patch = json!({"metadata": {"labels": labels}});
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

#[tokio::test]
async fn fits_nowhere_with_upstream_message_then_a_new_node_takes_it() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client).await;
    let prefix = unique("small");
    let small = nodes(&client, 3, "1", &format!("{prefix}-")).await;
    let names = small.names();
    for n in &names[1..] {
        taint(&client, n, "node-role.kubernetes.io/control-plane", "NoSchedule").await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod("big", cpu("2"))).await.unwrap();
    let expected = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint \
                    {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: 3 Preemption is \
                    not helpful for scheduling.";
    let msg = unschedulable_message(&pods, "big").await;
    assert_eq!(msg, expected);
    // The FailedScheduling event carries the same message.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let ev = eventually(30, "the FailedScheduling event", || async {
        let list = events.list(&ListParams::default().fields("involvedObject.name=big")).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("FailedScheduling"))
    })
    .await;
    assert_eq!(ev.message.as_deref(), Some(expected));
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(ev.source.and_then(|s| s.component).as_deref(), Some("default-scheduler"));
    // kubectl describe shows it.
    let out = server.kubectl_ok("1.33", &["describe", "pod", "big", "-n", &ns]);
    assert!(out.contains("FailedScheduling"), "{out}");

    // A node with room appears: the pod is retried and placed there.
    let big = nodes(&client, 1, "4", &format!("{}-", unique("big"))).await;
    let node = node_of(&pods, "big").await;
    assert_eq!(node, big.names()[0]);
    running(&pods, "big").await;
    let p = pods.get("big").await.unwrap();
    let st = p.status.unwrap();
    assert!(st.pod_ip.is_some());
    assert!(st.container_statuses.unwrap()[0].container_id.as_deref().unwrap().starts_with("hollow://"));
    let ev = eventually(30, "the Scheduled event", || async {
        let list = events.list(&ListParams::default().fields("involvedObject.name=big")).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("Scheduled"))
    })
    .await;
    assert_eq!(ev.message.unwrap(), format!("Successfully assigned {ns}/big to {node}"));
}

#[tokio::test]
async fn filters_place_pods_where_they_fit() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client).await;
    let hn = nodes(&client, 3, "2", &format!("{}-", unique("f"))).await;
    let names = hn.names();
    let (a, b, c) = (&names[0], &names[1], &names[2]);
    label(&client, a, json!({"disk": "ssd", "zone": "z1"})).await;
    label(&client, b, json!({"zone": "z1"})).await;
    label(&client, c, json!({"zone": "z2"})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();

    // nodeSelector.
    pods.create(&pp, &pod("sel", json!({"spec": {"nodeSelector": {"disk": "ssd"}}}))).await.unwrap();
    assert_eq!(&node_of(&pods, "sel").await, a);
    // Required node affinity (NotIn).
    let aff = json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]}]}]}}}}});
    pods.create(&pp, &pod("aff", aff)).await.unwrap();
    assert_eq!(&node_of(&pods, "aff").await, c);
    // Preferred node affinity.
    let pref = json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
        [{"weight": 100, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]}}}});
    pods.create(&pp, &pod("pref", pref)).await.unwrap();
    assert_eq!(&node_of(&pods, "pref").await, a);
    // Nothing matches.
    pods.create(&pp, &pod("nomatch", json!({"spec": {"nodeSelector": {"disk": "nvme"}}}))).await.unwrap();
    assert_eq!(
        unschedulable_message(&pods, "nomatch").await,
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are \
         available: 3 Preemption is not helpful for scheduling."
    );

    // Host ports: one per node, the fourth fits nowhere.
    let port = json!({"spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}});
    let mut used = std::collections::BTreeSet::new();
    for i in 0..3 {
        pods.create(&pp, &pod(&format!("port{i}"), port.clone())).await.unwrap();
        used.insert(node_of(&pods, &format!("port{i}")).await);
    }
    assert_eq!(used.len(), 3, "host ports spread the pods over every node");
    pods.create(&pp, &pod("port3", port)).await.unwrap();
    assert_eq!(
        unschedulable_message(&pods, "port3").await,
        "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports. preemption: 0/3 \
         nodes are available: 3 No preemption victims found for incoming pod."
    );

    // Pod anti-affinity over zones: z1 and z2 each take one, the third fits nowhere.
    let anti = json!({"metadata": {"labels": {"app": "anti"}}, "spec": {"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "anti"}},
        "topologyKey": "zone"}]}}}});
    pods.create(&pp, &pod("anti0", anti.clone())).await.unwrap();
    let z0 = node_of(&pods, "anti0").await;
    pods.create(&pp, &pod("anti1", anti.clone())).await.unwrap();
    let z1 = node_of(&pods, "anti1").await;
    assert!((z0 == *c) != (z1 == *c), "one anti-affinity pod per zone: {z0} {z1}");
    pods.create(&pp, &pod("anti2", anti)).await.unwrap();
    assert_eq!(
        unschedulable_message(&pods, "anti2").await,
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are \
         available: 3 No preemption victims found for incoming pod."
    );
    // Pod affinity: goes to the zone of its peer.
    let with = json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "anti"}}, "topologyKey": "kubernetes.io/hostname"}]}}}});
    pods.create(&pp, &pod("with", with)).await.unwrap();
    let w = node_of(&pods, "with").await;
    assert!(w == z0 || w == z1);

    // Topology spread over zones with maxSkew 1: z1 has two nodes, z2 one; six pods split 3/3.
    let spread = json!({"metadata": {"labels": {"app": "spread"}}, "spec": {"topologySpreadConstraints": [{"maxSkew": 1,
        "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}],
        "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "10m"}}}]}});
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        pods.create(&pp, &pod(&format!("spread{i}"), spread.clone())).await.unwrap();
        let n = node_of(&pods, &format!("spread{i}")).await;
        *per_zone.entry(if n == *c { "z2".into() } else { "z1".into() }).or_default() += 1;
    }
    assert_eq!(per_zone.get("z1"), Some(&3), "{per_zone:?}");
    assert_eq!(per_zone.get("z2"), Some(&3), "{per_zone:?}");

    // Taints: only a tolerating pod lands on the tainted node; cordoned nodes take nothing.
    taint(&client, a, "dedicated", "NoSchedule").await;
    let nodes_api: Api<Node> = Api::all(client.clone());
    for n in [b, c] {
        nodes_api
            .patch(n, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"unschedulable": true}})))
            .await
            .unwrap();
    }
    pods.create(&pp, &pod("untolerated", json!({}))).await.unwrap();
    assert_eq!(
        unschedulable_message(&pods, "untolerated").await,
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: }, 2 node(s) were unschedulable. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    let tol = json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}});
    pods.create(&pp, &pod("tolerated", tol)).await.unwrap();
    assert_eq!(&node_of(&pods, "tolerated").await, a);
    // Uncordoning retries the waiting pod.
    nodes_api
        .patch(b, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"unschedulable": false}})))
        .await
        .unwrap();
    assert_eq!(&node_of(&pods, "untolerated").await, b);
}

#[tokio::test]
async fn resources_and_spreading_of_a_controllers_pods() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client).await;
    let hn = nodes(&client, 4, "1", &format!("{}-", unique("r"))).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    // An owner object (any kind): its pods spread over the nodes.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let owner =
        cms.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap()).await.unwrap();
    let owned = json!({"metadata": {"labels": {"app": "o"}, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "owner", "uid": owner.metadata.uid, "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}});
    let mut placed = std::collections::BTreeSet::new();
    for i in 0..4 {
        pods.create(&pp, &pod(&format!("o{i}"), owned.clone())).await.unwrap();
        placed.insert(node_of(&pods, &format!("o{i}")).await);
    }
    assert_eq!(placed.len(), 4, "a controller's pods go to different nodes");
    // CPU: four 800m pods take a node each (1 cpu nodes with 100m used), the fifth does not fit.
    for i in 0..4 {
        pods.create(&pp, &pod(&format!("cpu{i}"), cpu("800m"))).await.unwrap();
        node_of(&pods, &format!("cpu{i}")).await;
    }
    pods.create(&pp, &pod("cpu4", cpu("800m"))).await.unwrap();
    assert_eq!(
        unschedulable_message(&pods, "cpu4").await,
        "0/4 nodes are available: 4 Insufficient cpu. preemption: 0/4 nodes are available: 4 No preemption victims \
         found for incoming pod."
    );
    // Memory beyond any node's capacity is unresolvable.
    let mem = json!({"spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"memory": "64Gi"}}}]}});
    pods.create(&pp, &pod("mem", mem)).await.unwrap();
    assert_eq!(
        unschedulable_message(&pods, "mem").await,
        "0/4 nodes are available: 4 Insufficient memory. preemption: 0/4 nodes are available: 4 Preemption is not \
         helpful for scheduling."
    );
    // Deleting a pod frees room: the waiting one is retried and bound.
    pods.delete("cpu0", &Default::default()).await.unwrap();
    node_of(&pods, "cpu4").await;
    drop(hn);
}

#[tokio::test]
async fn priority_classes_and_preemption() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client).await;
    let hn = nodes(&client, 1, "1", &format!("{}-", unique("p"))).await;
    server.kubectl_ok("1.33", &["create", "priorityclass", &format!("{ns}-low"), "--value=10"]);
    server.kubectl_ok("1.33", &["create", "priorityclass", &format!("{ns}-high"), "--value=1000"]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    // Priority admission.
    let err = pods.create(&pp, &pod("bad", json!({"spec": {"priorityClassName": "nope"}}))).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(s.message, "pods \"bad\" is forbidden: no PriorityClass with name nope was found");
        }
        e => panic!("{e}"),
    }
    let crit = pods
        .create(
            &pp,
            &pod(
                "crit",
                json!({"spec": {"priorityClassName": "system-cluster-critical",
        "nodeSelector": {"none": "none"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(crit.spec.unwrap().priority, Some(2_000_000_000));

    let mut low = cpu("800m");
    merge(&mut low, json!({"spec": {"priorityClassName": format!("{ns}-low")}}));
    let created = pods.create(&pp, &pod("low", low)).await.unwrap();
    assert_eq!(created.spec.unwrap().priority, Some(10));
    let node = node_of(&pods, "low").await;
    running(&pods, "low").await;
    let mut high = cpu("500m");
    merge(&mut high, json!({"spec": {"priorityClassName": format!("{ns}-high")}}));
    pods.create(&pp, &pod("high", high)).await.unwrap();
    // The low-priority pod is preempted (deleted, then finished by the node); the high one takes
    // its place.
    assert_eq!(node_of(&pods, "high").await, node);
    let low_gone = pods.get_opt("low").await.unwrap();
    assert!(low_gone.is_none_or(|p| p.metadata.deletion_timestamp.is_some()));
    let high = pods.get("high").await.unwrap();
    assert_eq!(high.status.and_then(|s| s.nominated_node_name).as_deref(), Some(node.as_str()));
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let list = events.list(&ListParams::default().fields("involvedObject.name=low")).await.unwrap();
    assert!(list.items.iter().any(|e| e.reason.as_deref() == Some("Preempted")), "{:?}", list.items);
    drop(hn);
}
