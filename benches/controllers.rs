//! The workload controllers' figures, each beside a reference measured in the same run:
//!
//! * time for a 100-replica Deployment to be fully available (created → `availableReplicas` = 100),
//!   beside the time the same client needs to create 100 pods itself and have them marked Ready
//!   (the API work the controllers cannot avoid);
//! * time for a rolling update of those 100 replicas (maxSurge 25 %, maxUnavailable 25 %) to
//!   complete.
//!
//! Pods are scheduled by kelp's scheduler onto 10 hollow nodes (`kelp::hollow`, no containers),
//! which mark them Running and Ready. Run with `cargo bench --bench controllers`.

#[path = "../integration/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kelp::hollow::{self, HollowConfig};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use support::Server;

const REPLICAS: i32 = 100;

async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
        .await
        .unwrap();
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !f().await {
        assert!(t0.elapsed() < Duration::from_secs(600), "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn complete(api: &Api<Deployment>, generation: i64) -> bool {
    let d = api.get("web").await.unwrap();
    let s = d.status.unwrap_or_default();
    d.metadata.generation == Some(generation)
        && s.observed_generation == Some(generation)
        && s.updated_replicas == Some(REPLICAS)
        && s.replicas == Some(REPLICAS)
        && s.available_replicas == Some(REPLICAS)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("controllers bench: run with `cargo bench --bench controllers`");
        return;
    }
    let server = Server::start_with(&["--log-level", "warn"]);
    let client = server.client().await;
    let _nodes = hollow::start(
        client.clone(),
        HollowConfig { count: 10, name_prefix: "bench-".into(), ..HollowConfig::default() },
    )
    .await
    .expect("hollow nodes");

    // Reference: the client creates 100 pods itself (16 at a time); scheduled, marked Ready.
    namespace(&client, "reference").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "reference");
    let t0 = Instant::now();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"generateName": "ref-", "labels": {"app": "ref"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let pp = PostParams::default();
    for chunk in (0..REPLICAS).collect::<Vec<_>>().chunks(16) {
        futures::future::join_all(chunk.iter().map(|_| pods.create(&pp, &pod))).await;
    }
    until("reference pods ready", async || {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        list.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count()
            == REPLICAS as usize
    })
    .await;
    let reference = t0.elapsed();

    namespace(&client, "bench").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "bench");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}
    }))
    .unwrap();
    let t0 = Instant::now();
    api.create(&PostParams::default(), &d).await.unwrap();
    until("100 available replicas", async || complete(&api, 1).await).await;
    let available = t0.elapsed();

    let t0 = Instant::now();
    let p = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(p)).await.unwrap();
    until("the rolling update", async || complete(&api, 2).await).await;
    let rollout = t0.elapsed();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("controllers: 100-replica Deployment fully available in {:.0} ms", ms(available));
    println!("controllers: reference (client creates 100 pods, all Running) {:.0} ms", ms(reference));
    println!("controllers: ratio {:.2}x the reference", ms(available) / ms(reference));
    println!("controllers: rolling update of 100 replicas (25%/25%) complete in {:.0} ms", ms(rollout));
}
