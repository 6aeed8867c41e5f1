//! The kubectl a user has, against a fresh `kelp server`: the whole everyday surface, with kubectl
//! 1.27, 1.30 and 1.33 (one fresh server each).

use std::path::Path;
use std::process::Output;

use crate::support::{unique, Server};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn manifest(ns: &str, group: &str, cm_a: &str, env: &[&str]) -> String {
    let env: String = env.iter().map(|e| format!("        - {{name: {e}, value: \"1\"}}\n")).collect();
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg, namespace: {ns}, labels: {{tier: web}}}}
data: {{a: "{cm_a}", b: "2"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {ns}}}
stringData: {{password: hunter2}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}, labels: {{app: web}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: c
        image: busybox:1.36
        env:
{env}---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, namespace: {ns}}}
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: apiextensions.k8s.io/v1
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
          spec: {{type: object, properties: {{size: {{type: integer}}}}}}
---
apiVersion: {group}/v1
kind: Widget
metadata: {{name: w1, namespace: {ns}}}
spec: {{size: 3}}
"#
    )
}

fn scenario(v: &str) {
    let server = Server::start();
    let dir = server.dir.path().to_path_buf();
    let k = |args: &[&str]| server.kubectl(v, args);
    let ok = |args: &[&str]| server.kubectl_ok(v, args);
    let ns = unique("acc");
    let group = format!("accept{}.example.com", v.replace('.', ""));
    let jp = |what: &str, path: &str| ok(&["get", what, "-n", &ns, "-o", &format!("jsonpath={path}")]);

    // apply -f of a multi-document file. The custom object needs its CRD established first, as
    // with any Kubernetes: the first apply may stop there, the second completes.
    let file = write(&dir, "all.yaml", &manifest(&ns, &group, "1", &["A", "B"]));
    let _ = k(&["apply", "-f", &file]);
    ok(&["wait", "--for=condition=Established", &format!("crd/widgets.{group}"), "--timeout=10s"]);
    let out = ok(&["apply", "-f", &file]);
    assert!(out.contains(&format!("widget.{group}/w1")), "kubectl {v}: {out}");
    assert_eq!(jp("deploy/web", "{.spec.template.spec.containers[0].env[*].name}"), "A B");
    // Again with a changed field and a removed list item.
    let file = write(&dir, "all.yaml", &manifest(&ns, &group, "changed", &["A"]));
    ok(&["apply", "-f", &file]);
    assert_eq!(jp("cm/cfg", "{.data.a}"), "changed");
    assert_eq!(
        jp("deploy/web", "{.spec.template.spec.containers[0].env[*].name}"),
        "A",
        "kubectl {v}: the removed env var is gone"
    );

    // Server-side apply: a conflict with another manager, then --force-conflicts.
    let ssa = write(
        &dir,
        "ssa.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ssa, namespace: {ns}}}\ndata: {{owner: first}}\n"),
    );
    ok(&["apply", "--server-side", "-f", &ssa]);
    ok(&[
        "patch",
        "cm",
        "ssa",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"data":{"owner":"patched"}}"#,
        "--field-manager=someone-else",
    ]);
    let out = k(&["apply", "--server-side", "-f", &ssa]);
    assert!(!out.status.success() && stderr(&out).to_lowercase().contains("conflict"), "kubectl {v}: {}", stderr(&out));
    assert_eq!(jp("cm/ssa", "{.data.owner}"), "patched", "a refused apply changes nothing");
    ok(&["apply", "--server-side", "--force-conflicts", "-f", &ssa]);
    assert_eq!(jp("cm/ssa", "{.data.owner}"), "first");

    // From client-side to server-side apply: kubectl migrates the ownership, so a key dropped
    // from the manifest is removed by the server-side apply.
    let mig = write(
        &dir,
        "mig.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: mig, namespace: {ns}}}\ndata: {{a: \"1\", b: \"2\"}}\n"
        ),
    );
    ok(&["apply", "-f", &mig]);
    let mig = write(
        &dir,
        "mig.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: mig, namespace: {ns}}}\ndata: {{a: \"1\"}}\n"),
    );
    ok(&["apply", "--server-side", "-f", &mig]);
    assert_eq!(jp("cm/mig", "{.data}"), r#"{"a":"1"}"#, "kubectl {v}: the migrated apply removed b");

    // diff: exit 1 and the change shown.
    let changed = write(&dir, "diff.yaml", &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: {ns}, labels: {{tier: web}}}}\ndata: {{a: diffed, b: \"2\"}}\n"));
    let out = k(&["diff", "-f", &changed]);
    assert_eq!(out.status.code(), Some(1), "kubectl {v} diff: {}", stderr(&out));
    assert!(stdout(&out).contains("diffed"), "kubectl {v} diff: {}", stdout(&out));
    assert_eq!(jp("cm/cfg", "{.data.a}"), "changed", "diff changes nothing");

    // edit with a non-interactive editor.
    let editor = write(&dir, "editor.sh", "#!/bin/sh\nsed -i 's/^  b: \"2\"$/  b: \"edited\"/' \"$1\"\n");
    std::process::Command::new("chmod").args(["+x", &editor]).status().unwrap();
    let out = std::process::Command::new(crate::support::kubectl_path(v))
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["edit", "cm", "cfg", "-n", &ns])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(out.status.success(), "kubectl {v} edit: {}", stderr(&out));
    assert_eq!(jp("cm/cfg", "{.data.b}"), "edited");

    // patch, all three types.
    ok(&["patch", "cm", "cfg", "-n", &ns, "-p", r#"{"data":{"s":"strategic"}}"#]);
    ok(&["patch", "cm", "cfg", "-n", &ns, "--type=merge", "-p", r#"{"data":{"m":"merge"}}"#]);
    ok(&["patch", "cm", "cfg", "-n", &ns, "--type=json", "-p", r#"[{"op":"add","path":"/data/j","value":"json"}]"#]);
    assert_eq!(jp("cm/cfg", "{.data.s} {.data.m} {.data.j}"), "strategic merge json");
    // label / annotate: add, overwrite, remove.
    ok(&["label", "cm", "cfg", "-n", &ns, "color=red"]);
    assert!(!k(&["label", "cm", "cfg", "-n", &ns, "color=blue"]).status.success(), "overwrite needs --overwrite");
    ok(&["label", "cm", "cfg", "-n", &ns, "color=blue", "--overwrite"]);
    assert_eq!(jp("cm/cfg", "{.metadata.labels.color}"), "blue");
    ok(&["label", "cm", "cfg", "-n", &ns, "color-"]);
    assert_eq!(jp("cm/cfg", "{.metadata.labels.color}"), "");
    ok(&["annotate", "cm", "cfg", "-n", &ns, "note=one"]);
    ok(&["annotate", "cm", "cfg", "-n", &ns, "note=two", "--overwrite"]);
    assert_eq!(jp("cm/cfg", "{.metadata.annotations.note}"), "two");
    ok(&["annotate", "cm", "cfg", "-n", &ns, "note-"]);
    // set image, scale, wait for a jsonpath.
    ok(&["set", "image", "deployment/web", "c=busybox:1.37", "-n", &ns]);
    assert_eq!(jp("deploy/web", "{.spec.template.spec.containers[0].image}"), "busybox:1.37");
    ok(&["scale", "deployment/web", "--replicas=3", "-n", &ns]);
    ok(&["wait", "--for=jsonpath={.spec.replicas}=3", "deployment/web", "-n", &ns, "--timeout=10s"]);

    // explain, api-resources, api-versions, /openapi/v3.
    assert!(ok(&["explain", "deployment.spec.template.spec.containers"]).contains("imagePullPolicy"));
    assert!(ok(&["api-resources"]).lines().any(|l| l.starts_with("widgets ") && l.contains(&group)));
    let versions = ok(&["api-versions"]);
    for gv in
        ["v1", "apps/v1", "batch/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", &format!("{group}/v1")]
    {
        assert!(versions.lines().any(|l| l == gv), "kubectl {v} api-versions lacks {gv}: {versions}");
    }
    let raw: Value = serde_json::from_str(&ok(&["get", "--raw", "/openapi/v3"])).unwrap();
    assert!(raw["paths"]["apis/apps/v1"]["serverRelativeURL"].is_string());

    // create with generators.
    ok(&["create", "configmap", "gen", "-n", &ns, "--from-literal=k=v"]);
    ok(&["create", "secret", "generic", "gensec", "-n", &ns, "--from-literal=k=v"]);
    ok(&["create", "deployment", "gendep", "-n", &ns, "--image=busybox:1.36"]);
    ok(&["create", "job", "genjob", "-n", &ns, "--image=busybox:1.36"]);
    let ns2 = unique("gen");
    ok(&["create", "namespace", &ns2]);
    ok(&["create", "serviceaccount", "robot", "-n", &ns]);
    let token = ok(&["create", "token", "robot", "-n", &ns]);
    assert_eq!(token.trim().split('.').count(), 3);
    assert_eq!(jp("secret/gensec", "{.data.k}"), "dg==");

    // get in every output format.
    let j: Value = serde_json::from_str(&ok(&["get", "cm", "gen", "-n", &ns, "-o", "json"])).unwrap();
    assert_eq!(j["data"]["k"], "v");
    assert!(ok(&["get", "cm", "gen", "-n", &ns, "-o", "yaml"]).contains("k: v"));
    assert_eq!(ok(&["get", "cm", "gen", "-n", &ns, "-o", "name"]).trim(), "configmap/gen");
    let cc = ok(&["get", "cm", "gen", "-n", &ns, "-o", "custom-columns=NAME:.metadata.name,VALUE:.data.k"]);
    assert!(cc.lines().nth(1).is_some_and(|l| l.split_whitespace().eq(["gen", "v"])), "{cc}");

    // describe with events.
    let uid = jp("deploy/web", "{.metadata.uid}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = server.client().await;
        let ev: Event = serde_json::from_value(json!({
            "metadata": {"name": "web.1", "namespace": ns},
            "involvedObject": {"kind": "Deployment", "name": "web", "namespace": ns, "apiVersion": "apps/v1", "uid": uid},
            "reason": "ScalingReplicaSet", "message": "Scaled up replica set web-1 to 3", "type": "Normal",
            "source": {"component": "deployment-controller"}, "count": 1,
        }))
        .unwrap();
        Api::<Event>::namespaced(client, &ns).create(&PostParams::default(), &ev).await.unwrap();
    });
    let d = ok(&["describe", "deployment", "web", "-n", &ns]);
    assert!(d.contains("Events:") && d.contains("Scaled up replica set web-1 to 3"), "kubectl {v} describe: {d}");

    // auth: can-i allowed and denied, whoami, a view-only user cannot write.
    assert_eq!(ok(&["auth", "can-i", "delete", "pods", "-n", &ns]).trim(), "yes");
    let viewer = server.user_kubeconfig("viewer", &[]);
    ok(&["create", "rolebinding", "viewer", "--clusterrole=view", "--user=viewer", "-n", &ns]);
    let out = server.kubectl_with(v, &viewer, &["auth", "can-i", "create", "configmaps", "-n", &ns]);
    assert_eq!(stdout(&out).trim(), "no");
    assert!(server.kubectl_with(v, &viewer, &["get", "cm", "-n", &ns]).status.success());
    let out = server.kubectl_with(v, &viewer, &["delete", "cm", "gen", "-n", &ns]);
    assert!(stderr(&out).contains("Forbidden"), "kubectl {v}: {}", stderr(&out));
    let who = server.kubectl_with(v, &viewer, &["auth", "whoami"]);
    assert!(stdout(&who).contains("viewer"), "kubectl {v} whoami: {}{}", stdout(&who), stderr(&who));

    // delete: by file, by label, --all, --cascade=orphan; wait --for=delete.
    let one = write(
        &dir,
        "one.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: byfile, namespace: {ns}}}\n"),
    );
    ok(&["apply", "-f", &one]);
    ok(&["delete", "-f", &one]);
    ok(&["create", "configmap", "lab1", "-n", &ns2]);
    ok(&["label", "cm", "lab1", "-n", &ns2, "drop=yes"]);
    ok(&["create", "configmap", "keep", "-n", &ns2]);
    ok(&["delete", "cm", "-l", "drop=yes", "-n", &ns2]);
    assert_eq!(ok(&["get", "cm", "-n", &ns2, "-o", "name", "-l", "drop=yes"]).trim(), "");
    ok(&["delete", "cm", "--all", "-n", &ns2]);
    // The root CA publisher puts its ConfigMap back at once, as upstream's does.
    let left = ok(&["get", "cm", "-n", &ns2, "-o", "name"]);
    assert!(left.lines().all(|l| l == "configmap/kube-root-ca.crt"), "{left}");
    ok(&["delete", "deployment", "gendep", "-n", &ns, "--cascade=orphan"]);
    ok(&["create", "configmap", "held", "-n", &ns]);
    ok(&[
        "patch",
        "cm",
        "held",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    ok(&["delete", "cm", "held", "-n", &ns, "--wait=false"]);
    let waiter = std::process::Command::new(crate::support::kubectl_path(v))
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["wait", "--for=delete", "cm/held", "-n", &ns, "--timeout=20s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    ok(&["patch", "cm", "held", "-n", &ns, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl {v} wait --for=delete: {}", stderr(&out));

    // Bad input: each refused with the right code, and the object unchanged.
    let before = jp("cm/cfg", "{.metadata.resourceVersion}");
    let out = k(&["patch", "cm", "cfg", "-n", &ns, "--type=json", "-p", r#"[{"op":"frobnicate","path":"/data/a"}]"#]);
    assert!(!out.status.success() && stderr(&out).contains("is invalid"), "kubectl {v}: {}", stderr(&out));
    let out = k(&[
        "patch",
        "cm",
        "cfg",
        "-n",
        &ns,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/missing","value":"x"}]"#,
    ]);
    assert!(!out.status.success() && stderr(&out).contains("is invalid"), "kubectl {v}: {}", stderr(&out));
    let bad = write(
        &dir,
        "bad.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: {ns}}}\ndata: {{a: x}}\nbogus: 1\n"
        ),
    );
    let out = k(&["apply", "-f", &bad, "--validate=strict"]);
    assert!(!out.status.success() && stderr(&out).contains("unknown field"), "kubectl {v}: {}", stderr(&out));
    assert_eq!(
        jp("cm/cfg", "{.metadata.resourceVersion}"),
        before,
        "kubectl {v}: refused changes left the object as it was"
    );
}

#[test]
fn kubectl_1_27() {
    scenario("1.27");
}

#[test]
fn kubectl_1_30() {
    scenario("1.30");
}

#[test]
fn kubectl_1_33() {
    scenario("1.33");
}
