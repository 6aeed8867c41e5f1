//! Strategic merge patch end to end: the real kubectl's `set image`, `patch` (strategic is its
//! default), `rollout restart` and client-side `apply` against a real `kelp server`.

use crate::support::{unique, Server};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

async fn make_ns(client: &Client, prefix: &str) -> String {
    let name = unique(prefix);
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
        .await
        .unwrap();
    name
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "c1", "image": "busybox:1", "env": [{"name": "X", "value": "x"}]},
                    {"name": "c2", "image": "nginx:1"},
                ]},
            },
        },
    }))
    .unwrap()
}

fn containers(d: &Deployment) -> Vec<Value> {
    let v = serde_json::to_value(d).unwrap();
    v.pointer("/spec/template/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn by_name<'a>(cs: &'a [Value], name: &str) -> &'a Value {
    cs.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no container {name} in {cs:?}"))
}

#[tokio::test]
async fn kubectl_strategic_merge_patches() {
    let server = Server::start_with(&["--disable-controller-manager"]);
    let client = server.client().await;
    for v in ["1.27", "1.33"] {
        let ns = make_ns(&client, &format!("smp-{}", v.replace('.', "-"))).await;
        let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        deps.create(&PostParams::default(), &deployment("x")).await.unwrap();

        // set image: only c1 changes.
        server.kubectl_ok(v, &["set", "image", "deployment/x", "c1=busybox:2", "-n", &ns]);
        let cs = containers(&deps.get("x").await.unwrap());
        assert_eq!(cs.len(), 2, "kubectl {v}: {cs:?}");
        assert_eq!(by_name(&cs, "c1")["image"], "busybox:2", "kubectl {v}");
        assert_eq!(by_name(&cs, "c1")["env"], json!([{"name": "X", "value": "x"}]), "kubectl {v}");
        assert_eq!(by_name(&cs, "c2")["image"], "nginx:1", "kubectl {v}");

        // patch (strategic by default): env merged into c2 by name, its image kept.
        let p = r#"{"spec":{"template":{"spec":{"containers":[{"name":"c2","env":[{"name":"A","value":"1"}]}]}}}}"#;
        let out = server.kubectl_ok(v, &["patch", "deployment", "x", "-n", &ns, "-p", p]);
        assert!(out.contains("deployment.apps/x patched"), "kubectl {v}: {out}");
        let cs = containers(&deps.get("x").await.unwrap());
        assert_eq!(cs.len(), 2, "kubectl {v}: {cs:?}");
        assert_eq!(by_name(&cs, "c2")["image"], "nginx:1", "kubectl {v}");
        assert_eq!(by_name(&cs, "c2")["env"], json!([{"name": "A", "value": "1"}]), "kubectl {v}");
        assert_eq!(by_name(&cs, "c1")["image"], "busybox:2", "kubectl {v}");
        // Patching the same thing again changes nothing.
        let out = server.kubectl_ok(v, &["patch", "deployment", "x", "-n", &ns, "-p", p]);
        assert!(out.contains("patched (no change)"), "kubectl {v}: {out}");

        // rollout restart: an annotation on the pod template.
        server.kubectl_ok(v, &["rollout", "restart", "deployment/x", "-n", &ns]);
        let d = serde_json::to_value(deps.get("x").await.unwrap()).unwrap();
        let restarted = d.pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt");
        assert!(restarted.and_then(Value::as_str).is_some_and(|s| !s.is_empty()), "kubectl {v}: {d}");
        assert_eq!(d.pointer("/spec/template/metadata/labels/app"), Some(&json!("x")), "kubectl {v}");
        assert_eq!(d.pointer("/metadata/generation"), Some(&json!(4)), "kubectl {v}: {d}");

        // $patch: delete removes a container.
        let p = r#"{"spec":{"template":{"spec":{"containers":[{"name":"c1","$patch":"delete"}]}}}}"#;
        server.kubectl_ok(v, &["patch", "deployment", "x", "-n", &ns, "--type=strategic", "-p", p]);
        let cs = containers(&deps.get("x").await.unwrap());
        assert_eq!(cs.len(), 1, "kubectl {v}: {cs:?}");
        assert_eq!(cs[0]["name"], "c2", "kubectl {v}");

        // A ConfigMap: data and labels merge, null deletes.
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v", "old": "o"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
        let p = r#"{"metadata":{"labels":{"b":"2"}},"data":{"n":"w","old":null}}"#;
        server.kubectl_ok(v, &["patch", "cm", "c", "-n", &ns, "-p", p]);
        let c = cms.get("c").await.unwrap();
        assert_eq!(serde_json::to_value(&c.data).unwrap(), json!({"k": "v", "n": "w"}), "kubectl {v}");
        assert_eq!(serde_json::to_value(&c.metadata.labels).unwrap(), json!({"a": "1", "b": "2"}), "kubectl {v}");

        // Client-side apply: the second apply sends a three-way strategic patch.
        let file = server.dir.path().join(format!("apply-{v}.yaml"));
        let manifest = |image: &str, env: &str| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  selector:\n    matchLabels: {{app: a}}\n  template:\n    metadata:\n      labels: {{app: a}}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n{env}      - name: side\n        image: side:1\n"
            )
        };
        std::fs::write(
            &file,
            manifest("main:1", "        env:\n        - {name: A, value: '1'}\n        - {name: B, value: '2'}\n"),
        )
        .unwrap();
        server.kubectl_ok(v, &["apply", "-f", file.to_str().unwrap(), "-n", &ns, "--validate=false"]);
        std::fs::write(&file, manifest("main:2", "        env:\n        - {name: B, value: '3'}\n")).unwrap();
        let out = server.kubectl_ok(v, &["apply", "-f", file.to_str().unwrap(), "-n", &ns, "--validate=false"]);
        assert!(out.contains("deployment.apps/a configured"), "kubectl {v}: {out}");
        let cs = containers(&deps.get("a").await.unwrap());
        assert_eq!(cs.len(), 2, "kubectl {v}: {cs:?}");
        assert_eq!(by_name(&cs, "main")["image"], "main:2", "kubectl {v}");
        assert_eq!(by_name(&cs, "main")["env"], json!([{"name": "B", "value": "3"}]), "kubectl {v}: {cs:?}");
        assert_eq!(by_name(&cs, "side")["image"], "side:1", "kubectl {v}");

        // A malformed strategic patch: a 4xx Status that kubectl reports.
        let out = server.kubectl(v, &["patch", "cm", "c", "-n", &ns, "-p", r#"{"data":{"$retainKeys":"k"}}"#]);
        assert!(!out.status.success(), "kubectl {v}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid patch format of retainKeys"), "kubectl {v}: {err}");
    }
}

#[tokio::test]
async fn strategic_patches_through_kube_rs() {
    let server = Server::start();
    let client = server.client().await;
    let ns = make_ns(&client, "smp-kube").await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deps.create(&PostParams::default(), &deployment("y")).await.unwrap();
    let pp = PatchParams::default();

    // $setElementOrder reorders; a merged container keeps what the patch does not mention.
    let d = deps
        .patch(
            "y",
            &pp,
            &Patch::Strategic(json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "c2"}, {"name": "c1"}],
                "containers": [{"name": "c1", "image": "busybox:3"}],
            }}}})),
        )
        .await
        .unwrap();
    let cs = containers(&d);
    assert_eq!((cs[0]["name"].as_str(), cs[1]["name"].as_str()), (Some("c2"), Some("c1")));
    assert_eq!(cs[1]["env"], json!([{"name": "X", "value": "x"}]));
    assert_eq!(cs[1]["image"], "busybox:3");

    // $retainKeys on the deployment strategy.
    let d = deps
        .patch(
            "y",
            &pp,
            &Patch::Strategic(json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})),
        )
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(d.spec.unwrap().strategy).unwrap(), json!({"type": "Recreate"}));

    // The scale subresource takes strategic patches too.
    deps.patch_scale("y", &pp, &Patch::Strategic(json!({"spec": {"replicas": 3}}))).await.unwrap();
    assert_eq!(deps.get("y").await.unwrap().spec.unwrap().replicas, Some(3));

    // Malformed: 400 for directive formats, 500 without a reason for a missing merge key (as upstream).
    let bad = |p: Value| {
        let deps = deps.clone();
        async move {
            match deps.patch("y", &PatchParams::default(), &Patch::Strategic(p)).await {
                Err(kube::Error::Api(s)) => (s.code, s.reason, s.message),
                other => panic!("expected an API error, got {other:?}"),
            }
        }
    };
    let (code, reason, msg) = bad(json!({"spec": {"template": {"spec": {"$setElementOrder/containers": "x"}}}})).await;
    assert_eq!((code, reason.as_str()), (500, ""), "{msg}");
    let (code, reason, msg) = bad(json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}})).await;
    assert_eq!((code, reason.as_str(), msg.as_str()), (400, "BadRequest", "invalid patch format of primitive list"));
    let (code, _, msg) = bad(json!({"spec": {"template": {"spec": {"containers": [{"image": "z"}]}}}})).await;
    assert_eq!((code, msg.as_str()), (500, "map: map[image:z] does not contain declared merge key: name"));
    let (code, reason, _) = bad(json!([1])).await;
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
}
