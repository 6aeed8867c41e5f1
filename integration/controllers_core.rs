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

#[tokio::test]
async fn namespace_deletion_removes_everything_inside() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "nsdel").await;

    // A custom resource too.
    let group = format!("{}.example.com", unique("g"));
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    create(
        &crds,
        json!({
            "metadata": {"name": format!("widgets.{group}")},
            "spec": {
                "group": group, "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
            },
        }),
    )
    .await;
    let ar = kube::discovery::ApiResource {
        group: group.clone(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    eventually("the custom resource to be served", || async { widgets.list(&ListParams::default()).await.ok() }).await;

    // 200 objects of mixed kinds.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    for i in 0..40 {
        create(&cms, json!({"metadata": {"name": format!("cm-{i}")}})).await;
        create(&secrets, json!({"metadata": {"name": format!("s-{i}")}, "stringData": {"k": "v"}})).await;
        create(&svcs, json!({"metadata": {"name": format!("svc-{i}")}, "spec": {"ports": [{"port": 80}]}})).await;
        create(&pods, json!({"metadata": {"name": format!("p-{i}")}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).await;
        if i % 2 == 0 {
            create(&rss, rs_json(&format!("rs-{i}"))).await;
        } else {
            let w = serde_json::from_value(json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                "metadata": {"name": format!("w-{i}")}, "spec": {"size": i}}))
            .unwrap();
            widgets.create(&PostParams::default(), &w).await.unwrap();
        }
    }
    // One object with a finalizer holds the namespace, and the conditions say so.
    create(&cms, json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})).await;

    let nss: Api<Namespace> = Api::all(client.clone());
    nss.delete(&ns, &DeleteParams::default()).await.unwrap();
    let conditions = eventually("the namespace to report what remains", || async {
        let n = nss.get(&ns).await.unwrap();
        let conds = n.status.and_then(|s| s.conditions).unwrap_or_default();
        let find = |t: &str| conds.iter().find(|c| c.type_ == t).cloned();
        let remaining = find("NamespaceContentRemaining")?;
        let only_held =
            remaining.message.as_deref() == Some("Some resources are remaining: configmaps has 1 resource instances");
        only_held.then_some(conds)
    })
    .await;
    let fin = conditions.iter().find(|c| c.type_ == "NamespaceFinalizersRemaining").unwrap();
    assert_eq!(fin.status, "True");
    assert_eq!(
        fin.message.as_deref(),
        Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
    );
    assert_eq!(pods.list(&ListParams::default()).await.unwrap().items.len(), 0);
    assert_eq!(widgets.list(&ListParams::default()).await.unwrap().items.len(), 0);
    assert_eq!(nss.get(&ns).await.unwrap().status.unwrap().phase.as_deref(), Some("Terminating"));

    cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    eventually("the namespace to go", || async { gone(&nss, &ns).await.then_some(()) }).await;
}

#[tokio::test]
async fn default_service_account_and_root_ca_in_every_namespace() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "sa").await;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let ca = kelp::pki::Pki::load_ca(&server.data_dir().join("server/tls")).unwrap().ca_cert_pem;
    let root_ca = || async {
        cms.get_opt("kube-root-ca.crt").await.unwrap().and_then(|c| c.data).and_then(|d| d.get("ca.crt").cloned())
    };

    eventually("the default ServiceAccount", || async { sas.get_opt("default").await.unwrap() }).await;
    assert_eq!(eventually("kube-root-ca.crt", root_ca).await, ca);
    // The system namespaces have them too.
    let system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    eventually("kube-root-ca.crt in kube-system", || async { system.get_opt("kube-root-ca.crt").await.unwrap() }).await;

    // Deleted: recreated.
    let old = sas.get("default").await.unwrap().metadata.uid;
    sas.delete("default", &DeleteParams::default()).await.unwrap();
    eventually("the default ServiceAccount to come back", || async {
        sas.get_opt("default").await.unwrap().filter(|s| s.metadata.uid != old)
    })
    .await;
    cms.delete("kube-root-ca.crt", &DeleteParams::default()).await.unwrap();
    assert_eq!(eventually("kube-root-ca.crt to come back", root_ca).await, ca);

    // Changed: restored.
    cms.patch("kube-root-ca.crt", &PatchParams::default(), &Patch::Merge(json!({"data": {"ca.crt": "forged"}})))
        .await
        .unwrap();
    eventually("kube-root-ca.crt to be restored", || async { root_ca().await.filter(|c| *c == ca) }).await;
}
