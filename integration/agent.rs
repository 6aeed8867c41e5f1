//! The node agent end to end: a real `kelp server --disable-agent` plus `kelp agent` processes
//! with their own dirs, cgroup roots and bridges; pods bound by setting spec.nodeName.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{fixtures, unique, Agent, Server};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::json;

/// Logs of the agents of the running test, shown when a wait times out.
static AGENT_LOGS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn watch_log(a: &Agent) {
    AGENT_LOGS.lock().unwrap().push(a.dir.path().join("agent.log"));
}

async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> =
                AGENT_LOGS.lock().unwrap().iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n----\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn namespace(client: &kube::Client) -> String {
    let ns = unique("agent");
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap())
        .await
        .unwrap();
    ns
}

#[tokio::test]
async fn nodes_register_with_capacity_lease_and_distinct_pod_cidrs() {
    let cidr = crate::support::cluster_cidr();
    let server = Server::start_with(&["--cluster-cidr", &cidr]);
    let client = server.client().await;
    let a = Agent::start(&server, "na", &[]);
    let b = Agent::start(&server, "nb", &[]);
    watch_log(&a);
    watch_log(&b);
    let nodes: Api<Node> = Api::all(client.clone());
    let mut cidrs = Vec::new();
    for agent in [&a, &b] {
        let n = wait_for(&format!("node {} Ready", agent.node), 60, || async {
            let n = nodes.get_opt(&agent.node).await.ok().flatten()?;
            let ready =
                n.status.as_ref()?.conditions.as_ref()?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(n)
        })
        .await;
        let labels = n.metadata.labels.clone().unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], agent.node);
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert!(labels.contains_key("kubernetes.io/arch"));
        assert!(!labels.contains_key("node-role.kubernetes.io/control-plane"), "an agent is not a server");
        let st = n.status.clone().unwrap();
        let info = st.node_info.unwrap();
        assert!(info.container_runtime_version.starts_with("kelp://"), "{}", info.container_runtime_version);
        assert_eq!(info.kubelet_version, "v1.33.0");
        let cap = st.capacity.unwrap();
        for k in ["cpu", "memory", "pods", "ephemeral-storage"] {
            assert!(cap.contains_key(k), "capacity {k}");
        }
        assert_eq!(cap["pods"].0, "110");
        assert!(st.allocatable.unwrap().contains_key("memory"));
        let types: Vec<String> = st.conditions.unwrap().into_iter().map(|c| c.type_).collect();
        for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert!(types.contains(&t.to_string()), "{t} in {types:?}");
        }
        let addrs = st.addresses.unwrap();
        assert!(addrs.iter().any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"));
        assert!(addrs.iter().any(|a| a.type_ == "Hostname"));
        let pod_cidr: ipnet::IpNet = n.spec.unwrap().pod_cidr.unwrap().parse().unwrap();
        let cluster: ipnet::IpNet = cidr.parse().unwrap();
        assert_eq!(pod_cidr.prefix_len(), 24);
        assert!(cluster.contains(&pod_cidr.network()));
        cidrs.push(pod_cidr);

        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let lease = wait_for("the node lease", 30, || async { leases.get_opt(&agent.node).await.ok().flatten() }).await;
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(agent.node.as_str()));
        assert!(spec.renew_time.is_some());
        assert_eq!(lease.metadata.owner_references.unwrap()[0].kind, "Node");
    }
    assert_ne!(cidrs[0], cidrs[1], "each node has its own podCIDR");

    // The lease is renewed.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let first = leases.get(&a.node).await.unwrap().spec.unwrap().renew_time;
    wait_for("a lease renewal", 30, || async {
        let now = leases.get(&a.node).await.ok()?.spec?.renew_time;
        (now != first).then_some(())
    })
    .await;
}

/// A pod with env from a ConfigMap and the downward API, a configMap volume with an item mode,
/// the service account volume, runs to completion; its checks run inside the container.
#[tokio::test]
async fn pod_runs_to_completion_with_env_and_volumes() {
    let fix = fixtures();
    let server = Server::start_with(&["--cluster-cidr", &crate::support::cluster_cidr()]);
    let client = server.client().await;
    let agent = Agent::start(&server, "nc", &[&fix.join("busybox.oci.tar")]);
    watch_log(&agent);
    let ns = namespace(&client).await;
    // The ServiceAccount controller makes `default` and `kube-root-ca.crt`; the token needs both.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    wait_for("the default ServiceAccount and kube-root-ca.crt", 30, || async {
        (sas.get_opt("default").await.ok().flatten().is_some()
            && cms.get_opt("kube-root-ca.crt").await.ok().flatten().is_some())
        .then_some(())
    })
    .await;
    for (name, data) in [("cfg", json!({"k": "v", "greeting": "hello"}))] {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap(),
        )
        .await
        .unwrap();
    }
    let script = r#"set -e
[ "$GREETING" = hello ]
[ "$POD" = done ]
[ "$MSG" = "hello/done" ]
[ "$(cat /cfg/renamed)" = v ]
[ "$(stat -L -c %a /cfg/renamed)" = 400 ]
[ -s /var/run/secrets/kubernetes.io/serviceaccount/token ]
[ "$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)" = "$NS" ]
[ "$(pwd)" = /tmp ]
echo ok > /scratch/x && [ "$(cat /scratch/x)" = ok ]
echo all-good"#;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "done"},
        "spec": {
            "nodeName": agent.node,
            "restartPolicy": "Never",
            "containers": [{
                "name": "c", "image": "docker.io/kelp-test/busybox:latest", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script], "workingDir": "/tmp",
                "env": [
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "MSG", "value": "$(GREETING)/$(POD)"}
                ],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}, {"name": "scratch", "mountPath": "/scratch"}]
            }],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "renamed", "mode": 0o400}]}},
                {"name": "scratch", "emptyDir": {}}
            ]
        }
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let p = wait_for("the pod to finish", 120, || async {
        let p = pods.get("done").await.ok()?;
        matches!(p.status.as_ref()?.phase.as_deref(), Some("Succeeded" | "Failed")).then_some(p)
    })
    .await;
    let st = p.status.unwrap();
    let cs = &st.container_statuses.unwrap()[0];
    let term = cs.state.clone().unwrap().terminated.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Succeeded"), "exit {} {:?}", term.exit_code, term.message);
    assert_eq!(term.reason.as_deref(), Some("Completed"));
    assert!(cs.container_id.as_deref().unwrap().starts_with("kelp://"));
    assert!(st.start_time.is_some());
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    let log_dir = agent.pod_log_dir().join(format!("{ns}_done_{}", p.metadata.uid.unwrap())).join("c");
    let log = std::fs::read_to_string(log_dir.join("0.log")).unwrap();
    assert!(log.contains(" stdout F all-good"), "{log}");

    // Deleting it: the agent removes it from the API once everything is stopped.
    pods.delete("done", &DeleteParams::default()).await.unwrap();
    wait_for("the pod to be gone", 60, || async { pods.get_opt("done").await.ok()?.is_none().then_some(()) }).await;
}

/// A crashing container backs off (CrashLoopBackOff, restartCount grows); a missing image gives
/// ErrImagePull then ImagePullBackOff while the node stays Ready; kill -9 of the agent restarts no
/// container.
#[tokio::test]
async fn crash_loop_pull_back_off_and_adoption_after_kill9() {
    let fix = fixtures();
    let server = Server::start_with(&["--cluster-cidr", &crate::support::cluster_cidr()]);
    let client = server.client().await;
    let mut agent = Agent::start(&server, "nd", &[&fix.join("busybox.oci.tar")]);
    watch_log(&agent);
    let ns = namespace(&client).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node_ready = || async {
        let n = nodes.get_opt(&agent.node).await.ok().flatten()?;
        n.status?.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
    };
    wait_for("the node to be Ready", 60, node_ready).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mk = |name: &str, image: &str, cmd: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": agent.node, "automountServiceAccountToken": false,
                     "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", cmd]}]}
        }))
        .unwrap()
    };
    let img = "docker.io/kelp-test/busybox:latest";
    for p in
        [mk("crash", img, "exit 3"), mk("sleeper", img, "sleep 3600"), mk("missing", "127.0.0.1:1/none/such:1", "true")]
    {
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let waiting_reason = |p: &Pod| -> Option<String> {
        p.status.as_ref()?.container_statuses.as_ref()?.first()?.state.as_ref()?.waiting.as_ref()?.reason.clone()
    };
    wait_for("CrashLoopBackOff", 120, || async {
        let p = pods.get("crash").await.ok()?;
        let cs = p.status.as_ref()?.container_statuses.as_ref()?.first()?.clone();
        (waiting_reason(&p).as_deref() == Some("CrashLoopBackOff")
            && cs.restart_count >= 1
            && cs.last_state.as_ref()?.terminated.as_ref()?.exit_code == 3)
            .then_some(())
    })
    .await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    wait_for("ErrImagePull then ImagePullBackOff", 120, || {
        let pods = pods.clone();
        let seen = seen.clone();
        async move {
            let p = pods.get("missing").await.ok()?;
            let mut seen = seen.lock().unwrap();
            if let Some(r) = waiting_reason(&p) {
                if seen.last() != Some(&r) {
                    seen.push(r);
                }
            }
            (seen.contains(&"ErrImagePull".to_string()) && seen.contains(&"ImagePullBackOff".to_string())).then_some(())
        }
    })
    .await;
    assert!(node_ready().await.is_some(), "the node stays Ready");

    let running = wait_for("sleeper running", 60, || async {
        let p = pods.get("sleeper").await.ok()?;
        let cs = p.status.as_ref()?.container_statuses.as_ref()?.first()?.clone();
        cs.state.as_ref()?.running.as_ref()?;
        Some(cs)
    })
    .await;
    agent.kill9();
    agent.spawn();
    // Give the new agent time to adopt and post; the container must be the same one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = wait_for("sleeper status after the restart", 60, || async {
        let p = pods.get("sleeper").await.ok()?;
        let cs = p.status.as_ref()?.container_statuses.as_ref()?.first()?.clone();
        cs.state.as_ref()?.running.as_ref()?;
        Some(cs)
    })
    .await;
    assert_eq!(after.container_id, running.container_id, "no container restarted");
    assert_eq!(after.restart_count, 0);
    for name in ["crash", "sleeper", "missing"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    wait_for("all pods gone", 60, || async {
        pods.list(&Default::default()).await.ok()?.items.is_empty().then_some(())
    })
    .await;
}

fn pod_json(node: &str, name: &str, extra_spec: serde_json::Value, container: serde_json::Value) -> Pod {
    let mut c = json!({"name": "c", "image": "docker.io/kelp-test/busybox:latest", "imagePullPolicy": "IfNotPresent"});
    for (k, v) in container.as_object().unwrap() {
        c[k] = v.clone();
    }
    let mut spec = json!({"nodeName": node, "automountServiceAccountToken": false, "containers": [c]});
    for (k, v) in extra_spec.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn container_status(p: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.first().cloned()
}

/// Probes flip readiness and restart on liveness failure; a memory hog is OOMKilled; deletion
/// runs preStop then stops within the grace period; a static pod runs with its mirror pod; and
/// nothing is left on the host afterwards.
#[tokio::test]
async fn probes_oom_termination_static_pods_and_no_leftovers() {
    let fix = fixtures();
    let server = Server::start_with(&["--cluster-cidr", &crate::support::cluster_cidr()]);
    let client = server.client().await;
    let mut agent = Agent::start(&server, "ne", &[&fix.join("busybox.oci.tar")]);
    watch_log(&agent);
    let ns = namespace(&client).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let node = agent.node.clone();
    let host_dir = agent.dir.path().join("host");
    std::fs::create_dir_all(&host_dir).unwrap();

    // Readiness through an exec probe (the file the container creates and removes) and through an
    // httpGet probe on a named port.
    let exec_ready =
        json!({"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1});
    let http_ready = json!({"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1});
    let live_probe = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 2});
    let pre_stop = json!({"preStop": {"exec": {"command": ["sh", "-c", "echo bye > /host/bye"]}}});
    for p in [
        pod_json(
            &node,
            "ready",
            json!({}),
            json!({
            "command": ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 20; rm /tmp/ready; sleep 3600"],
            "readinessProbe": exec_ready}),
        ),
        pod_json(
            &node,
            "ready-http",
            json!({}),
            json!({
            "command": ["sh", "-c", "mkdir /www; httpd -p 8080 -h /www; sleep 2; touch /www/ready; sleep 20; rm /www/ready; sleep 3600"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": http_ready}),
        ),
        pod_json(&node, "live", json!({}), json!({"command": ["sleep", "3600"], "livenessProbe": live_probe})),
        pod_json(
            &node,
            "hog",
            json!({"restartPolicy": "Never"}),
            json!({
            "command": ["sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"],
            "resources": {"limits": {"memory": "16Mi"}}}),
        ),
        pod_json(
            &node,
            "graceful",
            json!({"terminationGracePeriodSeconds": 20,
            "volumes": [{"name": "host", "hostPath": {"path": host_dir.display().to_string(), "type": "Directory"}}]}),
            json!({"command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"], "lifecycle": pre_stop,
                   "volumeMounts": [{"name": "host", "mountPath": "/host"}]}),
        ),
    ] {
        pods.create(&PostParams::default(), &p).await.unwrap();
    }

    // Readiness: False, then True, then False again, through both probes (watched together: the
    // containers flip at about the same time).
    let seen = std::sync::Arc::new(std::sync::Mutex::new([Vec::<bool>::new(), Vec::new()]));
    wait_for("readiness to flip up and down (exec and httpGet probes)", 90, || {
        let (pods, seen) = (pods.clone(), seen.clone());
        async move {
            let mut all = true;
            for (i, name) in ["ready", "ready-http"].into_iter().enumerate() {
                let Some(cs) = pods.get(name).await.ok().as_ref().and_then(container_status) else {
                    all = false;
                    continue;
                };
                if cs.state.as_ref().and_then(|s| s.running.as_ref()).is_none() {
                    all = false;
                    continue;
                }
                let seen = &mut seen.lock().unwrap()[i];
                if seen.last() != Some(&cs.ready) {
                    seen.push(cs.ready);
                }
                all &= seen.ends_with(&[false, true, false]);
            }
            all.then_some(())
        }
    })
    .await;

    // Liveness: restarted, with a Killing event.
    wait_for("a liveness restart", 90, || async {
        let p = pods.get("live").await.ok()?;
        (container_status(&p)?.restart_count >= 1).then_some(())
    })
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    wait_for("Killing and Unhealthy events", 30, || async {
        let evs = events.list(&Default::default()).await.ok()?.items;
        let has = |r: &str| {
            evs.iter().any(|e| e.involved_object.name.as_deref() == Some("live") && e.reason.as_deref() == Some(r))
        };
        (has("Killing") && has("Unhealthy")).then_some(())
    })
    .await;

    // OOM.
    let hog = wait_for("the memory hog to be OOMKilled", 90, || async {
        let p = pods.get("hog").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(p)
    })
    .await;
    let term = container_status(&hog).unwrap().state.unwrap().terminated.unwrap();
    assert_eq!(term.reason.as_deref(), Some("OOMKilled"), "{term:?}");

    // Graceful termination: preStop ran, the container stopped on SIGTERM, the pod is gone.
    wait_for("graceful running", 60, || async {
        container_status(&pods.get("graceful").await.ok()?)?.state?.running.map(|_| ())
    })
    .await;
    pods.delete("graceful", &DeleteParams::default()).await.unwrap();
    wait_for("graceful gone", 60, || async { pods.get_opt("graceful").await.ok()?.is_none().then_some(()) }).await;
    assert_eq!(std::fs::read_to_string(host_dir.join("bye")).unwrap().trim(), "bye");

    // A static pod and its mirror.
    let manifest = agent.data_dir().join("agent/pod-manifests/web.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  containers:\n  - name: c\n    image: docker.io/kelp-test/busybox:latest\n    imagePullPolicy: IfNotPresent\n    command: [sleep, '3600']\n"
        ),
    )
    .unwrap();
    let mirror_name = format!("web-{node}");
    let mirror = wait_for("the mirror pod running", 90, || async {
        let p = pods.get_opt(&mirror_name).await.ok()??;
        container_status(&p)?.state?.running?;
        Some(p)
    })
    .await;
    assert!(mirror.metadata.annotations.as_ref().unwrap().contains_key("kubernetes.io/config.mirror"));
    let owner = &mirror.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", node.as_str()));
    std::fs::remove_file(&manifest).unwrap();
    wait_for("the mirror pod gone", 60, || async { pods.get_opt(&mirror_name).await.ok()?.is_none().then_some(()) })
        .await;

    // Delete the rest; then nothing of the pods is left on the host.
    for name in ["ready", "ready-http", "live", "hog"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    wait_for("all pods gone", 90, || async {
        pods.list(&Default::default()).await.ok()?.items.is_empty().then_some(())
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !agent.leftovers().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(agent.leftovers(), Vec::<String>::new(), "left on the host");
    agent.cleanup();
}

/// An OCI-layout tarball of a one-layer image `name` whose layer holds `size` bytes, for tests that
/// need an image of their own.
fn one_layer_image(dir: &std::path::Path, name: &str, size: usize) -> PathBuf {
    use kelp::image::digest::sha256;
    let mut layer = tar::Builder::new(Vec::new());
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    layer.append_data(&mut file_header(data.len()), "data.bin", data.as_slice()).unwrap();
    let layer = layer.into_inner().unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/data.bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(&layer), "size": layer.len()}]
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": sha256(&manifest), "size": manifest.len(),
                       "annotations": {"io.containerd.image.name": name}}]
    }))
    .unwrap();
    let path = dir.join("image.oci.tar");
    let mut out = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut add = |p: String, bytes: &[u8]| out.append_data(&mut file_header(bytes.len()), p, bytes).unwrap();
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json".into(), &index);
    for blob in [&layer, &config, &manifest] {
        add(format!("blobs/sha256/{}", sha256(blob).trim_start_matches("sha256:")), blob);
    }
    out.into_inner().unwrap();
    path
}

/// A tar header of a root-owned 0644 file of `len` bytes.
fn file_header(len: usize) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(len as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    h
}

fn images_ls(agent: &Agent) -> String {
    let out = std::process::Command::new(crate::support::kelp_bin())
        .args(["images", "--data-dir"])
        .arg(agent.data_dir())
        .arg("ls")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A node whose disk fills up reports DiskPressure and garbage-collects images no container uses
/// (also ones imported by `kelp images import`), never the image of a running container; the
/// condition clears once space is back.
#[tokio::test]
async fn disk_pressure_collects_unused_images_only() {
    let fix = fixtures();
    let cidr = crate::support::cluster_cidr();
    let server = Server::start_with(&["--cluster-cidr", &cidr]);
    let client = server.client().await;
    // The node's data dir on a filesystem of its own, small enough to fill.
    let mut agent = Agent::prepare(&server, "diskp", &[]);
    let data = agent.data_dir();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "kelp-test-disk"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(mounted.success());
    agent.spawn();
    watch_log(&agent);
    let ns = namespace(&client).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let nodes: Api<Node> = Api::all(client.clone());
    // busybox comes from `kelp images import` (not the air-gap folder, whose images are pinned).
    for (file, name) in [
        (fix.join("busybox.oci.tar"), "docker.io/kelp-test/busybox:latest".to_string()),
        (one_layer_image(agent.dir.path(), "docker.io/kelp-test/unused:1", 6 << 20), "kelp-test/unused".to_string()),
    ] {
        let out = std::process::Command::new(crate::support::kelp_bin())
            .args(["images", "--data-dir"])
            .arg(&data)
            .arg("import")
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(images_ls(&agent).contains(&name), "{}", images_ls(&agent));
    }
    pods.create(
        &PostParams::default(),
        &pod_json(&agent.node, "busy", json!({}), json!({"command": ["sleep", "3600"]})),
    )
    .await
    .unwrap();
    wait_for("the pod running", 60, || async {
        let p = pods.get("busy").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let pressure = |n: &Node| -> Option<String> {
        let conds = n.status.as_ref()?.conditions.as_ref()?;
        conds.iter().find(|c| c.type_ == "DiskPressure").map(|c| c.status.clone())
    };
    assert_eq!(pressure(&nodes.get(&agent.node).await.unwrap()).as_deref(), Some("False"));

    // Fill the disk until less than 10 % is free (5 % here).
    let st = nix::sys::statvfs::statvfs(&data).unwrap();
    let (total, avail) = (st.blocks() * st.fragment_size(), st.blocks_available() * st.fragment_size());
    let filler = data.join("filler");
    let fill = avail - total / 20;
    std::fs::write(&filler, vec![1u8; fill as usize]).unwrap();
    wait_for("DiskPressure", 40, || async { (pressure(&nodes.get(&agent.node).await.ok()?)? == "True").then_some(()) })
        .await;
    wait_for("the unused image collected", 40, || async {
        (!images_ls(&agent).contains("kelp-test/unused")).then_some(())
    })
    .await;
    let ls = images_ls(&agent);
    assert!(ls.contains("docker.io/kelp-test/busybox:latest"), "the running pod's image went: {ls}");
    assert!(agent.log().contains("image garbage collection"), "{}", agent.log());
    let p = pods.get("busy").await.unwrap();
    assert_eq!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));
    assert_eq!(container_status(&p).map(|c| c.restart_count), Some(0));
    // Space back: the condition clears.
    std::fs::remove_file(&filler).unwrap();
    wait_for("DiskPressure gone", 40, || async {
        (pressure(&nodes.get(&agent.node).await.ok()?)? == "False").then_some(())
    })
    .await;
    pods.delete("busy", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    wait_for("the pod gone", 60, || async { pods.get_opt("busy").await.ok()?.is_none().then_some(()) }).await;
    agent.cleanup();
}
