//! `kubectl create <generator>` against a real kelp server. kubectl 1.32+ sends the objects it
//! builds itself as protobuf (`application/vnd.kubernetes.protobuf`); kelp decodes them and the
//! objects read back as JSON with the fields kubectl set.

use crate::support::Server;
use serde_json::{json, Value};

fn get(server: &Server, v: &str, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = server.kubectl_ok(v, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {v} {all:?}: {e}: {out}"))
}

fn create_every_generator(v: &str) {
    let server = Server::start();
    let ns = crate::support::unique("pb");
    let k = |args: &[&str]| {
        let mut all = vec!["create"];
        all.extend_from_slice(args);
        server.kubectl_ok(v, &all)
    };

    // The body really is protobuf (kubectl logs its request headers at -v=8).
    let out = server.kubectl(v, &["create", "namespace", &ns, "-v=8"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl {v} create namespace: {log}");
    assert!(log.contains("Content-Type: application/vnd.kubernetes.protobuf"), "kubectl {v} sent no protobuf: {log}");
    assert_eq!(get(&server, v, &["namespace", &ns])["status"]["phase"], "Active");

    let n = ["-n", ns.as_str()];
    k(&["configmap", "cm", "--from-literal=a=1", "--from-literal=empty=", n[0], n[1]]);
    let cm = get(&server, v, &["configmap", "cm", n[0], n[1]]);
    assert_eq!(cm["data"], json!({"a": "1", "empty": ""}), "kubectl {v}: {cm}");

    k(&["secret", "generic", "sec", "--from-literal=password=hunter2", n[0], n[1]]);
    let secret = get(&server, v, &["secret", "sec", n[0], n[1]]);
    assert_eq!(secret["data"], json!({"password": "aHVudGVyMg=="}), "kubectl {v}: {secret}");
    assert_eq!(secret["type"], "Opaque");

    k(&["deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=80", n[0], n[1]]);
    let d = get(&server, v, &["deployment", "web", n[0], n[1]]);
    assert_eq!(d["spec"]["replicas"], 3, "kubectl {v}: {d}");
    assert_eq!(d["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.27", "kubectl {v}: {d}");
    assert_eq!(c["ports"][0]["containerPort"], 80);
    assert_eq!(c["imagePullPolicy"], "IfNotPresent", "defaulted as for a JSON body: {d}");
    assert!(c.get("stdin").is_none() && d["metadata"]["generation"] == 1, "kubectl {v}: {d}");

    k(&["job", "pi", "--image=perl", n[0], n[1], "--", "perl", "-e", "print 1"]);
    let job = get(&server, v, &["job", "pi", n[0], n[1]]);
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["perl", "-e", "print 1"]), "kubectl {v}: {job}");
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");

    k(&["cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *", n[0], n[1], "--", "echo", "hi"]);
    let cron = get(&server, v, &["cronjob", "tick", n[0], n[1]]);
    assert_eq!(cron["spec"]["schedule"], "*/5 * * * *", "kubectl {v}: {cron}");
    let c = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["echo", "hi"]), "kubectl {v}: {cron}");
    assert_eq!(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");

    k(&["serviceaccount", "bot", n[0], n[1]]);
    assert_eq!(get(&server, v, &["serviceaccount", "bot", n[0], n[1]])["metadata"]["name"], "bot");

    k(&["service", "clusterip", "web", "--tcp=80:8080", n[0], n[1]]);
    let svc = get(&server, v, &["service", "web", n[0], n[1]]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80, "kubectl {v}: {svc}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080, "kubectl {v}: {svc}");
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(svc["spec"]["type"], "ClusterIP");

    k(&["service", "nodeport", "np", "--tcp=81:http", n[0], n[1]]);
    let svc = get(&server, v, &["service", "np", n[0], n[1]]);
    assert_eq!(svc["spec"]["type"], "NodePort", "kubectl {v}: {svc}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http", "kubectl {v}: {svc}");
    assert!(svc["spec"]["ports"][0]["nodePort"].as_i64().is_some_and(|p| p > 0), "kubectl {v}: {svc}");

    k(&["role", "reader", "--verb=get,list", "--resource=pods", n[0], n[1]]);
    let role = get(&server, v, &["role", "reader", n[0], n[1]]);
    assert_eq!(role["rules"], json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]));

    let bot = format!("{ns}:bot");
    k(&["rolebinding", "rb", "--role=reader", "--user=alice", "--serviceaccount", &bot, n[0], n[1]]);
    let rb = get(&server, v, &["rolebinding", "rb", n[0], n[1]]);
    assert_eq!(rb["roleRef"], json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}));
    assert_eq!(
        rb["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "name": "bot", "namespace": ns}]),
        "kubectl {v}: {rb}"
    );

    let cr = format!("{ns}-nodes");
    k(&["clusterrole", &cr, "--verb=get", "--resource=nodes"]);
    let role = get(&server, v, &["clusterrole", &cr]);
    assert_eq!(role["rules"], json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]));
    let agg = format!("{ns}-agg");
    k(&["clusterrole", &agg, "--aggregation-rule=team=a"]);
    let role = get(&server, v, &["clusterrole", &agg]);
    assert_eq!(role["aggregationRule"], json!({"clusterRoleSelectors": [{"matchLabels": {"team": "a"}}]}));

    let crb = format!("{ns}-crb");
    k(&["clusterrolebinding", &crb, "--clusterrole", &cr, "--group=devs"]);
    let b = get(&server, v, &["clusterrolebinding", &crb]);
    assert_eq!(b["roleRef"]["name"], cr.as_str());
    assert_eq!(b["subjects"], json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}]));

    k(&["quota", "q", "--hard=pods=10,requests.cpu=2,requests.memory=1Gi", "--scopes=NotBestEffort", n[0], n[1]]);
    let q = get(&server, v, &["resourcequota", "q", n[0], n[1]]);
    assert_eq!(q["spec"]["hard"], json!({"pods": "10", "requests.cpu": "2", "requests.memory": "1Gi"}), "{q}");
    assert_eq!(q["spec"]["scopes"], json!(["NotBestEffort"]));

    let pc = format!("{ns}-high");
    k(&["priorityclass", &pc, "--value=1000", "--description=important", "--preemption-policy=Never"]);
    let p = get(&server, v, &["priorityclass", &pc]);
    assert_eq!(p["value"], 1000, "kubectl {v}: {p}");
    assert_eq!(p["description"], "important");
    assert_eq!(p["preemptionPolicy"], "Never");

    k(&["poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=2", n[0], n[1]]);
    let pdb = get(&server, v, &["pdb", "pdb", n[0], n[1]]);
    assert_eq!(pdb["spec"]["minAvailable"], 2, "kubectl {v}: {pdb}");
    assert_eq!(pdb["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));
    k(&["pdb", "pdb2", "--selector=app=web", "--max-unavailable=50%", n[0], n[1]]);
    assert_eq!(get(&server, v, &["pdb", "pdb2", n[0], n[1]])["spec"]["maxUnavailable"], "50%");

    k(&["ingress", "ing", "--class=nginx", "--rule=foo.com/bar=svc1:8080", "--rule=bar.com/*=svc2:http", n[0], n[1]]);
    let ing = get(&server, v, &["ingress", "ing", n[0], n[1]]);
    assert_eq!(ing["spec"]["ingressClassName"], "nginx", "kubectl {v}: {ing}");
    assert_eq!(
        ing["spec"]["rules"],
        json!([
            {"host": "foo.com", "http": {"paths": [{"path": "/bar", "pathType": "Exact",
                "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}]}},
            {"host": "bar.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "svc2", "port": {"name": "http"}}}}]}}
        ]),
        "kubectl {v}: {ing}"
    );
}

#[test]
fn kubectl_1_33_create_generators() {
    create_every_generator("1.33");
}

#[test]
fn kubectl_1_32_create_generators() {
    create_every_generator("1.32");
}

async fn post(client: &kube::Client, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let req =
        http::Request::builder().method("POST").uri(path).header("content-type", content_type).body(body).unwrap();
    match client.request::<Value>(req).await {
        Ok(v) => (201, v),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_value(&s).unwrap()),
        Err(e) => panic!("POST {path}: {e:?}"),
    }
}

/// A protobuf ConfigMap named `name` with data {a: b}, in its `k8s\0` + runtime.Unknown envelope.
fn configmap_body(name: &str) -> Vec<u8> {
    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![tag << 3 | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let entry = [field(1, b"a"), field(2, b"b")].concat();
    let configmap = [field(1, &field(1, name.as_bytes())), field(2, &entry)].concat();
    let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
    [b"k8s\0".as_slice(), &field(1, &type_meta), &field(2, &configmap)].concat()
}

#[tokio::test]
async fn protobuf_bodies_over_http() {
    let server = Server::start();
    let client = server.client().await;
    let ns = crate::support::unique("pbraw");
    let (code, s) = post(
        &client,
        "/api/v1/namespaces",
        "application/json",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 201, "{s}");
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    let pb = "application/vnd.kubernetes.protobuf";

    let (code, s) = post(&client, &path, pb, configmap_body("hand-made")).await;
    assert_eq!(code, 201, "{s}");
    assert_eq!(s["data"], json!({"a": "b"}), "{s}");
    assert_eq!(s["metadata"]["namespace"], ns.as_str(), "{s}");

    let (code, s) = post(&client, &path, pb, b"{\"kind\":\"ConfigMap\"}".to_vec()).await;
    assert_eq!(code, 400, "{s}");
    assert!(s["message"].as_str().unwrap().contains("magic"), "{s}");

    let mut truncated = configmap_body("cut");
    truncated.truncate(truncated.len() - 3);
    let (code, s) = post(&client, &path, pb, truncated).await;
    assert_eq!(code, 400, "{s}");
    assert!(s["message"].as_str().unwrap().contains("malformed"), "{s}");

    let (code, s) = post(&client, &path, "text/plain", b"hello".to_vec()).await;
    assert_eq!(code, 415, "{s}");
    assert!(s["message"].as_str().unwrap().contains("application/vnd.kubernetes.protobuf"), "{s}");
}
