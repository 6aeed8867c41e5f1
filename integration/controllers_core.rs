//! The cluster-keeping controllers and admission, end to end against a real `kelp server`
//! (`--disable-agent`): garbage collection, namespace deletion, ServiceAccounts and the root CA,
//! EndpointSlices and Endpoints, ResourceQuota and LimitRange, the HPA, event deduplication.

mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use support::{unique, Server};

async fn make_ns(client: &Client, prefix: &str) -> String {
    let name = unique(prefix);
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
        .await
        .unwrap();
    name
}

/// Poll `check` until it returns Some, for at most 60 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create<K>(api: &Api<K>, v: Value) -> K
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), &serde_json::from_value(v).unwrap()).await.unwrap()
}

async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.unwrap().is_none()
}

fn rs_json(name: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    })
}

fn owned_pod(name: &str, owner: &ReplicaSet, block: bool) -> Value {
    json!({
        "metadata": {
            "name": name,
            "labels": {"app": owner.metadata.name},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner.metadata.name,
                "uid": owner.metadata.uid, "controller": true, "blockOwnerDeletion": block,
            }],
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    })
}

#[tokio::test]
async fn garbage_collector_cascades() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "gc").await;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // Background: the owner goes at once, then its dependents.
    let rs = create(&rss, rs_json("bg")).await;
    for i in 0..3 {
        create(&pods, owned_pod(&format!("bg-{i}"), &rs, false)).await;
    }
    rss.delete("bg", &DeleteParams::background()).await.unwrap();
    assert!(gone(&rss, "bg").await);
    eventually("background dependents to go", || async {
        let left = pods.list(&ListParams::default().labels("app=bg")).await.unwrap().items.len();
        (left == 0).then_some(())
    })
    .await;

    // A dependent whose owner never existed with that UID (dangling from the start) is collected;
    // a recreated owner with another UID is not its owner.
    let old = create(&rss, rs_json("again")).await;
    rss.delete("again", &DeleteParams::default()).await.unwrap();
    let new = create(&rss, rs_json("again")).await;
    assert_ne!(old.metadata.uid, new.metadata.uid);
    create(&pods, owned_pod("stale", &old, false)).await;
    create(&pods, owned_pod("fresh", &new, false)).await;
    eventually("the dependent of the old owner to go", || async { gone(&pods, "stale").await.then_some(()) }).await;
    assert!(!gone(&pods, "fresh").await);

    // Two owners, one gone: only the reference goes.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let a = create(&cms, json!({"metadata": {"name": "owner-a"}})).await;
    let b = create(&cms, json!({"metadata": {"name": "owner-b"}})).await;
    let refs = |o: &[&ConfigMap]| {
        o.iter()
            .map(|c| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": c.metadata.name, "uid": c.metadata.uid}))
            .collect::<Vec<_>>()
    };
    create(&cms, json!({"metadata": {"name": "two-owners", "ownerReferences": refs(&[&a, &b])}})).await;
    cms.delete("owner-a", &DeleteParams::default()).await.unwrap();
    eventually("the reference to the gone owner to be dropped", || async {
        let c = cms.get("two-owners").await.unwrap();
        let r = c.metadata.owner_references.unwrap_or_default();
        (r.len() == 1 && r[0].name == "owner-b").then_some(())
    })
    .await;

    // Foreground: the owner stays (foregroundDeletion) while a blocking dependent exists.
    let rs = create(&rss, rs_json("fg")).await;
    create(&pods, owned_pod("fg-free", &rs, false)).await;
    let held = owned_pod("fg-held", &rs, true);
    let mut held = held;
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    create(&pods, held).await;
    rss.delete("fg", &DeleteParams::foreground()).await.unwrap();
    eventually("foreground dependents to be deleted", || async {
        let held = pods.get("fg-held").await.unwrap();
        (held.metadata.deletion_timestamp.is_some() && gone(&pods, "fg-free").await).then_some(())
    })
    .await;
    let owner = rss.get("fg").await.unwrap();
    assert!(owner.metadata.deletion_timestamp.is_some());
    assert!(owner.metadata.finalizers.unwrap_or_default().contains(&"foregroundDeletion".to_string()));
    pods.patch("fg-held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    eventually("the foreground owner to go", || async { gone(&rss, "fg").await.then_some(()) }).await;

    // Orphan: the dependents stay, without the owner reference; the owner goes.
    let rs = create(&rss, rs_json("orph")).await;
    for i in 0..2 {
        create(&pods, owned_pod(&format!("orph-{i}"), &rs, true)).await;
    }
    rss.delete("orph", &DeleteParams::orphan()).await.unwrap();
    eventually("the orphaning owner to go", || async { gone(&rss, "orph").await.then_some(()) }).await;
    for i in 0..2 {
        let p = pods.get(&format!("orph-{i}")).await.unwrap();
        assert!(p.metadata.owner_references.unwrap_or_default().is_empty());
    }
}
