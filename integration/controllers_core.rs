//! The cluster-keeping controllers and admission, end to end against a real `kelp server`
//! (`--disable-agent`): garbage collection, namespace deletion, ServiceAccounts and the root CA,
//! EndpointSlices and Endpoints, ResourceQuota and LimitRange, the HPA, event deduplication.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::support::{unique, Server};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

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

/// A pod depending on `owner` that the ReplicaSet controller leaves alone (outside its selector and
/// not its controllee), so only the garbage collector acts on it.
fn owned_pod(name: &str, owner: &ReplicaSet, block: bool) -> Value {
    json!({
        "metadata": {
            "name": name,
            "labels": {"owned-by": owner.metadata.name},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner.metadata.name,
                "uid": owner.metadata.uid, "controller": false, "blockOwnerDeletion": block,
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
        let left = pods.list(&ListParams::default().labels("owned-by=bg")).await.unwrap().items.len();
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

#[tokio::test]
async fn endpointslices_and_endpoints_follow_pod_readiness() {
    use k8s_openapi::api::core::v1::{Endpoints, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "eps").await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
    create(
        &svcs,
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "metrics", "port": 9100, "targetPort": 9100}]}}),
    )
    .await;
    for (i, name) in ["web-a", "web-b"].iter().enumerate() {
        create(
            &pods,
            json!({"metadata": {"name": name, "labels": {"app": "web"}}, "spec": {"nodeName": "node-1",
                "containers": [{"name": "c", "image": "busybox", "ports": [{"name": "http", "containerPort": 8080 + i}]}]}}),
        )
        .await;
    }
    let set_status = |name: &'static str, ip: &'static str, ready: bool| {
        let pods = pods.clone();
        async move {
            let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
            pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        }
    };
    set_status("web-a", "10.42.0.10", true).await;
    set_status("web-b", "10.42.0.11", false).await;

    let lp = ListParams::default().labels("kubernetes.io/service-name=web");
    let all_slices = || async {
        let mut items = slices.list(&lp).await.unwrap().items;
        items.sort_by_key(|s| s.ports.clone().unwrap_or_default().iter().map(|p| p.port).collect::<Vec<_>>());
        items
    };
    let found = eventually("a slice per port set with both pods", || async {
        let items = all_slices().await;
        let n: usize = items.iter().map(|s| s.endpoints.len()).sum();
        (items.len() == 2 && n == 2).then_some(items)
    })
    .await;
    let s = &found[0];
    assert_eq!(s.address_type, "IPv4");
    let labels = s.metadata.labels.clone().unwrap();
    assert_eq!(
        labels.get("endpointslice.kubernetes.io/managed-by").map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Service", "web"));
    let mut ports: Vec<(String, i32)> =
        s.ports.clone().unwrap().into_iter().map(|p| (p.name.unwrap(), p.port.unwrap())).collect();
    ports.sort();
    assert_eq!(ports, vec![("http".to_string(), 8080), ("metrics".to_string(), 9100)]);
    let ep = &s.endpoints[0];
    assert_eq!(ep.addresses, vec!["10.42.0.10"]);
    assert_eq!(ep.node_name.as_deref(), Some("node-1"));
    assert_eq!(ep.target_ref.as_ref().unwrap().name.as_deref(), Some("web-a"));
    let c = ep.conditions.clone().unwrap();
    assert_eq!((c.ready, c.serving, c.terminating), (Some(true), Some(true), Some(false)));
    assert_eq!(found[1].endpoints[0].conditions.clone().unwrap().ready, Some(false));

    // Endpoints: ready in addresses, not ready in notReadyAddresses, one subset per port set.
    let subsets = eventually("endpoints with both pods", || async {
        let ep = endpoints.get_opt("web").await.unwrap()?;
        let subsets = ep.subsets.unwrap_or_default();
        (subsets.len() == 2).then_some(subsets)
    })
    .await;
    let a = subsets.iter().find(|s| s.addresses.is_some()).unwrap();
    assert_eq!(a.addresses.as_ref().unwrap()[0].ip, "10.42.0.10");
    assert_eq!(a.ports.as_ref().unwrap().iter().find(|p| p.name.as_deref() == Some("http")).unwrap().port, 8080);
    let b = subsets.iter().find(|s| s.not_ready_addresses.is_some()).unwrap();
    assert_eq!(b.not_ready_addresses.as_ref().unwrap()[0].ip, "10.42.0.11");

    // web-b turns ready: both places follow.
    set_status("web-b", "10.42.0.11", true).await;
    eventually("web-b ready in its slice", || async {
        let items = all_slices().await;
        let ready =
            items.iter().flat_map(|s| &s.endpoints).filter(|e| e.conditions.clone().unwrap().ready == Some(true));
        (ready.count() == 2).then_some(())
    })
    .await;
    eventually("web-b ready in endpoints", || async {
        let ep = endpoints.get("web").await.unwrap();
        let subsets = ep.subsets.unwrap_or_default();
        subsets.iter().all(|s| s.not_ready_addresses.is_none()).then_some(())
    })
    .await;

    // A pod relabelled out of the selection, and a pod that goes: removed from both.
    pods.patch("web-b", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})))
        .await
        .unwrap();
    eventually("web-b out of slices and endpoints", || async {
        let n: usize = all_slices().await.iter().map(|s| s.endpoints.len()).sum();
        let ep = endpoints.get("web").await.unwrap();
        let addrs: usize =
            ep.subsets.unwrap_or_default().iter().map(|s| s.addresses.as_ref().map_or(0, |a| a.len())).sum();
        (n == 1 && addrs == 1).then_some(())
    })
    .await;
    pods.delete("web-a", &DeleteParams::default().grace_period(0)).await.unwrap();
    eventually("web-a gone from slices and endpoints", || async {
        let n: usize = all_slices().await.iter().map(|s| s.endpoints.len()).sum();
        let ep = endpoints.get("web").await.unwrap();
        (n == 0 && ep.subsets.unwrap_or_default().is_empty()).then_some(())
    })
    .await;

    // The kubernetes service keeps the API server's endpoints.
    let default_eps: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let k = default_eps.get("kubernetes").await.unwrap();
    assert_eq!(
        k.metadata.labels.unwrap().get("endpointslice.kubernetes.io/managed-by").map(String::as_str),
        Some("kelp")
    );

    // The Service goes: its slices (garbage collected) and its Endpoints too.
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("slices and endpoints of a deleted service to go", || async {
        (slices.list(&lp).await.unwrap().items.is_empty() && gone(&endpoints, "web").await).then_some(())
    })
    .await;
}

fn api_err(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn resource_quota_and_limit_range_admission() {
    use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "quota").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
    let ranges: Api<LimitRange> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    // LimitRange: defaults filled in, bounds enforced with upstream's messages.
    create(
        &ranges,
        json!({"metadata": {"name": "limits"}, "spec": {"limits": [{"type": "Container",
            "default": {"cpu": "200m", "memory": "128Mi"}, "defaultRequest": {"cpu": "100m", "memory": "64Mi"},
            "max": {"cpu": "1"}, "min": {"cpu": "50m"}}]}}),
    )
    .await;
    let p = create(
        &pods,
        json!({"metadata": {"name": "defaulted"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}}),
    )
    .await;
    let r = p.spec.unwrap().containers[0].resources.clone().unwrap();
    let s = |m: Option<std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
             k: &str| { m.unwrap().get(k).unwrap().0.clone() };
    assert_eq!(s(r.requests.clone(), "cpu"), "100m");
    assert_eq!(s(r.requests.clone(), "memory"), "64Mi");
    assert_eq!(s(r.limits.clone(), "cpu"), "200m");
    assert_eq!(s(r.limits, "memory"), "128Mi");
    assert_eq!(
        p.metadata.annotations.unwrap().get("kubernetes.io/limit-ranger").map(String::as_str),
        Some("LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app")
    );
    let err = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "huge"}, "spec": {"containers": [{"name": "app", "image": "busybox",
                "resources": {"limits": {"cpu": "2"}}}]}}),
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_err(err),
        (403, "pods \"huge\" is forbidden: maximum cpu usage per Container is 1, but limit is 2".to_string())
    );

    // ResourceQuota: status computed, creates beyond it refused with upstream's message.
    create(
        &quotas,
        json!({"metadata": {"name": "compute"}, "spec": {"hard": {"pods": "2", "requests.cpu": "250m", "configmaps": "3"}}}),
    )
    .await;
    let used = |k: &'static str| {
        let quotas = quotas.clone();
        async move {
            let q = quotas.get("compute").await.unwrap();
            q.status.and_then(|s| s.used).and_then(|u| u.get(k).map(|q| q.0.clone()))
        }
    };
    eventually("the quota's usage", || async { (used("pods").await.as_deref() == Some("1")).then_some(()) }).await;
    assert_eq!(used("requests.cpu").await.as_deref(), Some("100m"));
    let cm_count = cms.list(&ListParams::default()).await.unwrap().items.len();
    assert_eq!(used("configmaps").await, Some(cm_count.to_string()));

    create(
        &pods,
        json!({"metadata": {"name": "second"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}}),
    )
    .await;
    let err = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "third"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}}),
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_err(err),
        (
            403,
            "pods \"third\" is forbidden: exceeded quota: compute, requested: pods=1,requests.cpu=100m, used: pods=2,requests.cpu=200m, limited: pods=2,requests.cpu=250m".to_string()
        )
    );
    // Deleting a pod frees its share (the controller recomputes).
    pods.delete("second", &DeleteParams::default()).await.unwrap();
    eventually("usage to drop", || async { (used("pods").await.as_deref() == Some("1")).then_some(()) }).await;
    create(
        &pods,
        json!({"metadata": {"name": "third"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}}),
    )
    .await;

    // Updates are charged for what they add: a Service turning NodePort.
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &ns);
    create(&quotas, json!({"metadata": {"name": "ports"}, "spec": {"hard": {"services.nodeports": "1"}}})).await;
    let ports_used = || async {
        let q = quotas.get("ports").await.unwrap();
        q.status.and_then(|s| s.used).and_then(|u| u.get("services.nodeports").map(|q| q.0.clone()))
    };
    eventually("the ports quota's usage", || async { (ports_used().await.as_deref() == Some("0")).then_some(()) })
        .await;
    for n in ["np-a", "np-b"] {
        create(&svcs, json!({"metadata": {"name": n}, "spec": {"ports": [{"port": 80}]}})).await;
    }
    let to_node_port = Patch::Merge(json!({"spec": {"type": "NodePort"}}));
    svcs.patch("np-a", &PatchParams::default(), &to_node_port).await.unwrap();
    let err = svcs.patch("np-b", &PatchParams::default(), &to_node_port).await.unwrap_err();
    assert_eq!(
        api_err(err),
        (
            403,
            "services \"np-b\" is forbidden: exceeded quota: ports, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1".to_string()
        )
    );

    // kubectl sees the same refusal.
    let refused = (0..4)
        .map(|i| server.kubectl("1.33", &["create", "configmap", &format!("x{i}"), "-n", &ns]))
        .find(|o| !o.status.success())
        .expect("a configmap over quota");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "is forbidden: exceeded quota: compute, requested: configmaps=1, used: configmaps=3, limited: configmaps=3"
        ),
        "{stderr}"
    );
}

/// The HPA end to end: first without a metrics API (upstream's conditions and deduplicated
/// events), then with `metrics.k8s.io` served by the test (a CRD standing in for
/// metrics-server's PodMetrics) — the target is scaled through its scale subresource.
#[tokio::test]
async fn horizontal_pod_autoscaler_missing_metrics_then_scaling() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::Event;
    // No scheduler: the Deployment's pods stay unbound and the test plays their kubelet.
    let server = Server::start_with(&["--disable-scheduler", "--disable", "metrics-server"]);
    let client = server.client().await;
    let ns = make_ns(&client, "hpa").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    create(
        &deployments,
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"cpu": "200m"}}}]}}}}),
    )
    .await;
    let started = chrono::Utc::now() - chrono::Duration::minutes(10);
    // The Deployment controller makes the two pods; the test marks them Running and Ready.
    let names: Vec<String> = eventually("the deployment's two pods", || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items;
        (list.len() == 2).then(|| list.into_iter().filter_map(|p| p.metadata.name).collect())
    })
    .await;
    for name in &names {
        let status = json!({"status": {"phase": "Running", "podIP": "10.42.0.5", "startTime": started,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    }
    create(
        &hpas,
        json!({"metadata": {"name": "web"}, "spec": {"minReplicas": 1, "maxReplicas": 10,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}}),
    )
    .await;
    let missing = "the server could not find the requested resource (get pods.metrics.k8s.io)";
    let cond = |h: &HorizontalPodAutoscaler, t: &str| {
        h.status
            .clone()?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status, c.reason.unwrap_or_default(), c.message.unwrap_or_default()))
    };
    let active = eventually("ScalingActive=False", || async {
        let h = hpas.get("web").await.unwrap();
        cond(&h, "ScalingActive").filter(|c| c.0 == "False")
    })
    .await;
    assert_eq!(active.1, "FailedGetResourceMetric");
    assert_eq!(
        active.2,
        format!("the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: {missing}")
    );
    let h = hpas.get("web").await.unwrap();
    assert_eq!(cond(&h, "AbleToScale").unwrap().1, "SucceededGetScale");
    // The same warning every 15 s is one Event whose count grows.
    let ev = eventually("a repeated FailedGetResourceMetric event", || async {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        let same: Vec<Event> =
            list.into_iter().filter(|e| e.reason.as_deref() == Some("FailedGetResourceMetric")).collect();
        (same.len() == 1 && same[0].count.unwrap_or(0) >= 2).then(|| same[0].clone())
    })
    .await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(ev.source.and_then(|s| s.component).as_deref(), Some("horizontal-pod-autoscaler"));
    assert_eq!(
        ev.message.as_deref(),
        Some(format!("failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: {missing}").as_str())
    );
    assert!(ev.series.is_some());
    assert_eq!(deployments.get("web").await.unwrap().spec.unwrap().replicas, Some(2));

    // Now a metrics API (kelp's own is disabled, as when another provider is installed): PodMetrics at 100 % of the request against a 50 % target → 4 replicas.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    create(
        &crds,
        json!({
            "metadata": {"name": "pods.metrics.k8s.io", "annotations": {"api-approved.kubernetes.io": "unapproved, test stand-in for metrics-server"}},
            "spec": {"group": "metrics.k8s.io", "scope": "Namespaced",
                "names": {"plural": "pods", "singular": "podmetrics", "kind": "PodMetrics", "listKind": "PodMetricsList"},
                "versions": [{"name": "v1beta1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
        }),
    )
    .await;
    let ar = kube::discovery::ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    };
    let metrics: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    eventually("the metrics API to be served", || async { metrics.list(&ListParams::default()).await.ok() }).await;
    for name in &names {
        let m = serde_json::from_value(json!({"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
            "metadata": {"name": name, "labels": {"app": "web"}}, "timestamp": chrono::Utc::now(), "window": "30s",
            "containers": [{"name": "c", "usage": {"cpu": "200m", "memory": "10Mi"}}]}))
        .unwrap();
        metrics.create(&PostParams::default(), &m).await.unwrap();
    }
    eventually("the deployment scaled to 4", || async {
        (deployments.get("web").await.unwrap().spec.unwrap().replicas == Some(4)).then_some(())
    })
    .await;
    let h = eventually("the HPA status to follow", || async {
        let h = hpas.get("web").await.unwrap();
        (h.status.as_ref()?.desired_replicas == 4).then_some(h)
    })
    .await;
    let st = h.status.clone().unwrap();
    let cur = st.current_metrics.unwrap()[0].resource.clone().unwrap().current;
    assert_eq!(cur.average_utilization, Some(100));
    assert!(st.last_scale_time.is_some());
    assert_eq!(cond(&h, "ScalingActive").unwrap().1, "ValidMetricFound");
    let rescale = events.list(&ListParams::default()).await.unwrap().items;
    assert!(
        rescale.iter().any(|e| e.reason.as_deref() == Some("SuccessfulRescale")
            && e.message.as_deref()
                == Some("New size: 4; reason: cpu resource utilization (percentage of request) above target")),
        "{:?}",
        rescale.iter().map(|e| e.message.clone()).collect::<Vec<_>>()
    );
}
