//! Server-side apply end to end: the real kubectl's `apply --server-side` against a real
//! `kelp server`, conflicts with `kubectl scale`, `--force-conflicts`, managedFields and pruning.

use crate::support::{unique, Server};
use serde_json::Value;

fn manifest(name: &str, replicas: u32, env: &[(&str, &str)]) -> String {
    let env: String = env.iter().map(|(k, v)| format!("\n        - name: {k}\n          value: \"{v}\"")).collect();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: app
        image: nginx:1
        env:{env}
"
    )
}

fn get_json(server: &Server, v: &str, ns: &str, name: &str) -> Value {
    let out = server.kubectl_ok(v, &["get", "deployment", name, "-n", ns, "-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&out).expect("deployment JSON")
}

#[test]
fn kubectl_server_side_apply() {
    // No controllers: the managedFields checked below are kubectl's alone (the Deployment
    // controller would add its own entries for the revision annotation and the status).
    let server = Server::start_with(&["--disable-controller-manager"]);
    for v in ["1.27", "1.33"] {
        let ns = unique(&format!("ssa-{}", v.replace('.', "-")));
        server.kubectl_ok(v, &["create", "namespace", &ns]);
        let file = server.dir.path().join(format!("ssa-{v}.yaml"));
        let path = file.to_str().unwrap();

        // Create by apply.
        std::fs::write(&file, manifest("web", 3, &[("A", "1"), ("B", "2")])).unwrap();
        let out = server.kubectl_ok(v, &["apply", "--server-side", "-f", path, "-n", &ns]);
        assert!(out.contains("serverside-applied"), "kubectl {v}: {out}");
        let d = get_json(&server, v, &ns, "web");
        assert_eq!(d["spec"]["replicas"], 3, "kubectl {v}");
        let mf = d["metadata"]["managedFields"].as_array().expect("managedFields");
        assert_eq!(mf.len(), 1, "kubectl {v}: {mf:?}");
        assert_eq!(mf[0]["manager"], "kubectl");
        assert_eq!(mf[0]["operation"], "Apply");
        assert_eq!(mf[0]["fieldsType"], "FieldsV1");
        assert_eq!(mf[0]["fieldsV1"]["f:spec"]["f:replicas"], serde_json::json!({}));
        // Without --show-managed-fields kubectl hides them.
        let plain = server.kubectl_ok(v, &["get", "deployment", "web", "-n", &ns, "-o", "yaml"]);
        assert!(!plain.contains("managedFields"), "kubectl {v}: {plain}");

        // Re-applying the same manifest changes nothing.
        let rv = d["metadata"]["resourceVersion"].clone();
        server.kubectl_ok(v, &["apply", "--server-side", "-f", path, "-n", &ns]);
        assert_eq!(get_json(&server, v, &ns, "web")["metadata"]["resourceVersion"], rv, "kubectl {v}");

        // An Update by kubectl scale takes replicas; applying 3 again conflicts.
        server.kubectl_ok(v, &["scale", "deployment/web", "--replicas=5", "-n", &ns]);
        let out = server.kubectl(v, &["apply", "--server-side", "-f", path, "-n", &ns]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "kubectl {v}: apply must conflict");
        assert!(err.contains("conflict") && err.contains(".spec.replicas"), "kubectl {v}: {err}");
        assert_eq!(get_json(&server, v, &ns, "web")["spec"]["replicas"], 5);

        // Both managers are listed.
        let yaml =
            server.kubectl_ok(v, &["get", "deployment", "web", "-n", &ns, "-o", "yaml", "--show-managed-fields"]);
        assert!(yaml.contains("operation: Apply") && yaml.contains("operation: Update"), "kubectl {v}: {yaml}");
        assert!(yaml.contains("subresource: scale"), "kubectl {v}: {yaml}");

        // --force-conflicts takes ownership back.
        server.kubectl_ok(v, &["apply", "--server-side", "--force-conflicts", "-f", path, "-n", &ns]);
        let d = get_json(&server, v, &ns, "web");
        assert_eq!(d["spec"]["replicas"], 3, "kubectl {v}");
        let mf = d["metadata"]["managedFields"].as_array().unwrap();
        let owners: Vec<&Value> = mf
            .iter()
            .filter(|e| e["fieldsV1"].pointer("/f:spec/f:replicas").is_some())
            .map(|e| &e["operation"])
            .collect();
        assert_eq!(owners, vec!["Apply"], "kubectl {v}: {mf:?}");

        // Dropping an env var from the manifest removes it.
        std::fs::write(&file, manifest("web", 3, &[("A", "1")])).unwrap();
        server.kubectl_ok(v, &["apply", "--server-side", "-f", path, "-n", &ns]);
        let d = get_json(&server, v, &ns, "web");
        let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env, &serde_json::json!([{"name": "A", "value": "1"}]), "kubectl {v}");
        // Defaults nobody applied stay.
        assert!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"].is_string(), "kubectl {v}");
    }
}

#[test]
fn apply_needs_a_field_manager() {
    let server = Server::start();
    // kubectl always names a manager: speak to the API directly.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = server.client().await;
        let req = http::Request::patch("/api/v1/namespaces/default/configmaps/cm")
            .header("Content-Type", "application/apply-patch+yaml")
            .body(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"a":"1"}}"#.to_vec())
            .unwrap();
        let err = client.request::<Value>(req).await.unwrap_err();
        let kube::Error::Api(s) = err else { panic!("{err:?}") };
        assert_eq!(s.code, 422);
        assert!(s.message.contains("fieldManager: Required value: is required for apply patch"), "{}", s.message);

        let req = http::Request::patch("/api/v1/namespaces/default/configmaps/cm?fieldManager=me")
            .header("Content-Type", "application/apply-patch+yaml")
            .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: \"1\"\n".to_vec())
            .unwrap();
        let cm: Value = client.request(req).await.unwrap();
        assert_eq!(cm["data"]["a"], "1");
        assert_eq!(cm["metadata"]["managedFields"][0]["manager"], "me");
        assert_eq!(cm["metadata"]["managedFields"][0]["fieldsV1"]["f:data"]["f:a"], serde_json::json!({}));
    });
}
