//! CustomResourceDefinitions end to end: served resources, conditions, printer columns, scale,
//! watch, and deletion of a CRD taking its objects with it.

use std::time::Duration;

use crate::support::{unique, Server};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

fn crd_yaml(group: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct], categories: [all]}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
      scale: {{specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}}
    additionalPrinterColumns:
    - {{name: Spec, type: string, jsonPath: .spec.cronSpec}}
    - {{name: Replicas, type: integer, jsonPath: .spec.replicas}}
    - {{name: Age, type: date, jsonPath: .metadata.creationTimestamp}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {{type: string}}
              replicas: {{type: integer}}
          status:
            type: object
            properties:
              replicas: {{type: integer}}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"#
    )
}

#[tokio::test]
async fn crds_with_kubectl_and_kube_rs() {
    let server = Server::start();
    let client = server.client().await;
    for v in ["1.27", "1.33"] {
        let group = format!("v{}.example.com", v.replace('.', ""));
        let ns = unique("crd");
        server.kubectl_ok(v, &["create", "namespace", &ns]);
        let crd = server.dir.path().join(format!("crd-{v}.yaml"));
        std::fs::write(&crd, crd_yaml(&group)).unwrap();
        server.kubectl_ok(v, &["apply", "-f", crd.to_str().unwrap()]);
        server
            .kubectl_ok(v, &["wait", "--for=condition=Established", &format!("crd/crontabs.{group}"), "--timeout=10s"]);
        let conds = server.kubectl_ok(
            v,
            &[
                "get",
                "crd",
                &format!("crontabs.{group}"),
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"NamesAccepted\")].status}",
            ],
        );
        assert_eq!(conds, "True");
        // The schema is in OpenAPI (v2 protobuf for 1.27, v3 for 1.33) for explain and validation.
        let out = server.kubectl_ok(v, &["explain", &format!("crontabs.{group}.spec")]);
        assert!(out.contains("cronSpec") && out.contains("replicas"), "kubectl {v} explain: {out}");
        let cr = server.dir.path().join(format!("cr-{v}.yaml"));
        std::fs::write(&cr, format!("apiVersion: {group}/v1\nkind: CronTab\nmetadata:\n  name: my-cron\nspec:\n  cronSpec: '* * * * */5'\n  replicas: 2\n")).unwrap();
        let out = server.kubectl_ok(v, &["apply", "-f", cr.to_str().unwrap(), "-n", &ns]);
        assert!(out.contains("created"), "{out}");
        // Printer columns and short names.
        let got = server.kubectl(v, &["get", "ct", "-n", &ns]);
        let out = String::from_utf8_lossy(&got.stdout).into_owned();
        assert!(!out.is_empty(), "kubectl {v} get ct: {}", String::from_utf8_lossy(&got.stderr));
        let mut lines = out.lines();
        assert!(lines.next().unwrap().split_whitespace().eq(["NAME", "SPEC", "REPLICAS", "AGE"]), "{out}");
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!((row[0], row[row.len() - 2]), ("my-cron", "2"), "{out}");
        // Re-apply with a change (merge patch for custom resources), scale, the other version.
        std::fs::write(&cr, std::fs::read_to_string(&cr).unwrap().replace("replicas: 2", "replicas: 3")).unwrap();
        server.kubectl_ok(v, &["apply", "-f", cr.to_str().unwrap(), "-n", &ns]);
        server.kubectl_ok(v, &["scale", "ct", "my-cron", "-n", &ns, "--replicas=5"]);
        let out = server.kubectl_ok(
            v,
            &[
                "get",
                &format!("crontabs.v1beta1.{group}"),
                "my-cron",
                "-n",
                &ns,
                "-o",
                "jsonpath={.apiVersion} {.spec.replicas}",
            ],
        );
        assert_eq!(out, format!("{group}/v1beta1 5"));
        let out = server.kubectl_ok(v, &["get", "all", "-n", &ns]);
        assert!(out.contains("crontab"), "the all category: {out}");

        // kube-rs: dynamic CRUD and a watch.
        let ar = ApiResource {
            group: group.clone(),
            version: "v1".into(),
            api_version: format!("{group}/v1"),
            kind: "CronTab".into(),
            plural: "crontabs".into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let rv = api.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        let mut w = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
        let obj: DynamicObject = serde_json::from_value(json!({"apiVersion": format!("{group}/v1"), "kind": "CronTab", "metadata": {"name": "second"}, "spec": {"cronSpec": "@hourly"}})).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(10), w.try_next()).await.unwrap().unwrap().unwrap() {
            WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("second")),
            other => panic!("{other:?}"),
        }
        let patched = api
            .patch_status(
                "second",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"replicas": 1}, "spec": {"cronSpec": "ignored"}})),
            )
            .await
            .unwrap();
        assert_eq!(patched.data["status"]["replicas"], 1);
        assert_eq!(patched.data["spec"]["cronSpec"], "@hourly", "status writes do not touch spec");

        // Deleting the CRD deletes its objects; a new CRD of the same name starts empty.
        server.kubectl_ok(v, &["delete", "crd", &format!("crontabs.{group}"), "--timeout=30s"]);
        let out = server.kubectl(v, &["get", "crd", &format!("crontabs.{group}")]);
        assert!(!out.status.success());
        server.kubectl_ok(v, &["apply", "-f", crd.to_str().unwrap()]);
        server
            .kubectl_ok(v, &["wait", "--for=condition=Established", &format!("crd/crontabs.{group}"), "--timeout=10s"]);
        let out = server.kubectl_ok(v, &["get", "ct", "-n", &ns, "-o", "name"]);
        assert!(out.trim().is_empty(), "objects of the deleted CRD came back: {out}");
        // The next kubectl's CRD uses the same short name.
        server.kubectl_ok(v, &["delete", "crd", &format!("crontabs.{group}"), "--timeout=30s"]);
    }
}

#[tokio::test]
async fn custom_resources_are_pruned_defaulted_and_validated() {
    let server = Server::start();
    let client = server.client().await;
    let group = "schema.example.com";
    let crd = format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {{type: integer, minimum: 1, maximum: 10}}
              color: {{type: string, enum: [red, blue], default: red}}
"#
    );
    let path = server.dir.path().join("widgets.yaml");
    std::fs::write(&path, crd).unwrap();
    server.kubectl_ok("1.33", &["apply", "-f", path.to_str().unwrap()]);
    server
        .kubectl_ok("1.33", &["wait", "--for=condition=Established", &format!("crd/widgets.{group}"), "--timeout=10s"]);
    let ns = unique("schema");
    server.kubectl_ok("1.33", &["create", "namespace", &ns]);
    let ar = ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let make = |name: &str, spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(
            json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": name}, "spec": spec}),
        )
        .unwrap()
    };
    // Defaults and pruning (Warn: the unknown field is dropped and reported).
    let w = api.create(&PostParams::default(), &make("a", json!({"size": 3, "extra": true}))).await.unwrap();
    assert_eq!(w.data["spec"]["color"], "red");
    assert!(w.data["spec"].get("extra").is_none(), "unknown fields are pruned");
    // Validation: 422 with field causes.
    let err = |e: kube::Error| match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("{other:?}"),
    };
    let (code, msg) = err(api.create(&PostParams::default(), &make("b", json!({"size": 11}))).await.unwrap_err());
    assert_eq!(code, 422, "{msg}");
    assert!(msg.contains("spec.size"), "{msg}");
    let (code, msg) = err(api.create(&PostParams::default(), &make("c", json!({"size": "big"}))).await.unwrap_err());
    assert_eq!(code, 422, "{msg}");
    let (code, msg) =
        err(api.create(&PostParams::default(), &make("d", json!({"color": "green", "size": 1}))).await.unwrap_err());
    assert_eq!(code, 422, "{msg}");
    assert!(msg.contains("supported values"), "{msg}");
    let (code, msg) = err(api.create(&PostParams::default(), &make("e", json!({}))).await.unwrap_err());
    assert_eq!(code, 422, "{msg}");
    assert!(msg.contains("spec.size") && msg.contains("Required value"), "{msg}");
    // Strict: the unknown field is refused.
    let body = serde_json::to_vec(&make("f", json!({"size": 1, "extra": 1}))).unwrap();
    let req = http::Request::post(format!("/apis/{group}/v1/namespaces/{ns}/widgets?fieldValidation=Strict"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let (code, msg) = err(client.request::<serde_json::Value>(req).await.unwrap_err());
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("unknown field \"spec.extra\""), "{msg}");
    // Updates are validated too.
    let (code, _) =
        err(api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": 0}}))).await.unwrap_err());
    assert_eq!(code, 422);
    // A CRD whose schema is not structural, or whose name does not match, is refused.
    let bad = path.with_file_name("bad.yaml");
    std::fs::write(&bad, format!("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: gadgets.{group}}}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: gadgets, kind: Gadget}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        properties:\n          spec: {{type: object}}\n")).unwrap();
    let out = server.kubectl("1.33", &["apply", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success(), "a non-structural schema was accepted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("openAPIV3Schema"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&bad, format!("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: wrong.{group}}}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: gadgets, kind: Gadget}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {{type: object}}\n")).unwrap();
    let out = server.kubectl("1.33", &["apply", "-f", bad.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be spec.names.plural"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
