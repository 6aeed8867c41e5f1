//! OpenAPI end to end: the real kubectl (1.27/1.28 read the v2 protobuf document, later versions
//! the v3 ones) explaining, creating and applying against a real `kelp server`.

use crate::support::{unique, Server};

const VERSIONS: &[&str] = &["1.27", "1.28", "1.30", "1.33"];

fn manifests(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
        resources:
          limits:
            memory: 64Mi
            cpu: 100m
"#
    )
}

#[test]
fn kubectl_explain_create_apply_with_openapi() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");

    // Authenticated users only, as upstream.
    if std::path::Path::new("/usr/bin/curl").exists() {
        let code = std::process::Command::new("curl")
            .args([
                "-sk",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("https://127.0.0.1:{}/openapi/v3", server.port),
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        assert_eq!(code, "401");
    }
    let index = server.kubectl_ok("1.33", &["get", "--raw", "/openapi/v3"]);
    assert!(index.contains("\"apis/apps/v1\":{\"serverRelativeURL\":\"/openapi/v3/apis/apps/v1?hash="), "{index}");
    let apps = server.kubectl_ok("1.33", &["get", "--raw", "/openapi/v3/apis/apps/v1"]);
    assert!(apps.contains("\"operationId\":\"patchAppsV1NamespacedDeployment\""));
    let missing = server.kubectl("1.33", &["get", "--raw", "/openapi/v3/apis/nosuch.example.com/v1"]);
    assert!(!missing.status.success());

    for v in VERSIONS {
        let ns = unique("openapi");
        // (`create namespace` is a typed client, which sends protobuf from 1.32 on.)
        let ns_file = dir.path().join(format!("{ns}.yaml"));
        std::fs::write(&ns_file, format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")).expect("ns");
        server.kubectl_ok(v, &["create", "-f", ns_file.to_str().unwrap()]);

        // explain reads the schema.
        let out = server.kubectl_ok(v, &["explain", "deployment.spec.template.spec.containers"]);
        assert!(out.contains("Deployment"), "kubectl {v} explain: {out}");
        assert!(out.contains("containers"), "kubectl {v} explain: {out}");
        assert!(out.contains("image"), "kubectl {v} explain: {out}");
        assert!(out.contains("List of containers belonging to the pod"), "kubectl {v} explain: {out}");
        let out = server.kubectl_ok(v, &["explain", "configmap.data"]);
        assert!(out.contains("Data contains the configuration data"), "kubectl {v} explain: {out}");

        // create -f, with kubectl's default validation (which needs OpenAPI).
        let created = format!("created-{}", v.replace('.', "-"));
        let file = dir.path().join(format!("{created}.yaml"));
        std::fs::write(&file, manifests(&created)).expect("manifest");
        let out = server.kubectl_ok(v, &["create", "-f", file.to_str().unwrap(), "-n", &ns]);
        assert!(out.contains(&format!("configmap/{created} created")), "kubectl {v} create: {out}");
        assert!(out.contains(&format!("deployment.apps/{created} created")), "kubectl {v} create: {out}");
        let image = server.kubectl_ok(
            v,
            &["get", "deployment", &created, "-n", &ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}"],
        );
        assert_eq!(image, "nginx:1.27", "kubectl {v}");

        // apply -f of new objects (a POST with the last-applied annotation).
        let applied = format!("applied-{}", v.replace('.', "-"));
        let file = dir.path().join(format!("{applied}.yaml"));
        std::fs::write(&file, manifests(&applied)).expect("manifest");
        let out = server.kubectl_ok(v, &["apply", "-f", file.to_str().unwrap(), "-n", &ns]);
        assert!(out.contains(&format!("configmap/{applied} created")), "kubectl {v} apply: {out}");
        assert!(out.contains(&format!("deployment.apps/{applied} created")), "kubectl {v} apply: {out}");
        let last = server.kubectl_ok(
            v,
            &[
                "get",
                "configmap",
                &applied,
                "-n",
                &ns,
                "-o",
                "jsonpath={.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
            ],
        );
        assert!(last.contains("\"greeting\":\"hello\""), "kubectl {v}: {last}");

        // --validate=strict with an unknown field: the PATCH operation lists fieldValidation, so
        // kubectl sends fieldValidation=Strict and the server must refuse the object.
        let bad = format!("bad-{}", v.replace('.', "-"));
        let file = dir.path().join(format!("{bad}.yaml"));
        std::fs::write(
            &file,
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {bad}\ndata:\n  a: b\nbogusField: 1\n"),
        )
        .expect("manifest");
        let out = server.kubectl(v, &["create", "-f", file.to_str().unwrap(), "-n", &ns, "--validate=strict"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "kubectl {v}: an unknown field passed --validate=strict");
        assert!(stderr.contains("unknown field \"bogusField\""), "kubectl {v} strict: {stderr}");
        let out = server.kubectl(v, &["get", "configmap", &bad, "-n", &ns]);
        assert!(!out.status.success(), "kubectl {v}: the refused object was stored");
        // --validate=warn (the server's Warn) stores it and prints the warning.
        let out = server.kubectl(v, &["create", "-f", file.to_str().unwrap(), "-n", &ns, "--validate=warn"]);
        assert!(out.status.success(), "kubectl {v} warn: {}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unknown field \"bogusField\""),
            "kubectl {v} warn: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
