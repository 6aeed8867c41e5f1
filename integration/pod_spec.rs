//! Pod spec features on a real node, checked from inside the containers with `kubectl exec` and
//! `kubectl logs`: init containers, securityContext, activeDeadlineSeconds, imagePullSecrets.

use crate::support::cluster::Cluster;
use crate::support::images::{Registry, RegistryKind, PASSWORD, USER};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::json;

fn phase(p: &Pod) -> String {
    p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default()
}

#[tokio::test]
async fn init_containers_run_in_order_and_a_failing_one_stops_the_pod() {
    let c = Cluster::start("init", &[]).await;
    let data = json!([{"name": "data", "emptyDir": {}}]);
    let mount = json!([{"name": "data", "mountPath": "/data"}]);
    c.run_pod(
        "ordered",
        json!({
            "volumes": data,
            "initContainers": [
                {"name": "first", "command": ["sh", "-c", "sleep 1; echo one >> /data/log"], "volumeMounts": mount},
                {"name": "second", "command": ["sh", "-c", "echo two >> /data/log"], "volumeMounts": mount},
            ],
            "containers": [{"name": "app", "command": ["sh", "-c", "cat /data/log; sleep 3600"], "volumeMounts": mount}],
        }),
    )
    .await;
    assert_eq!(c.kubectl_ok("1.33", &["logs", "ordered", "-c", "app"]), "one\ntwo\n");
    assert_eq!(c.kubectl_ok("1.33", &["logs", "ordered", "-c", "first"]), "");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &c.ns);
    let p = pods.get("ordered").await.unwrap();
    let st = p.status.unwrap();
    for ic in st.init_container_statuses.unwrap() {
        let t = ic.state.unwrap().terminated.unwrap_or_else(|| panic!("{} terminated", ic.name));
        assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")), "{}", ic.name);
    }
    let initialized = st.conditions.unwrap().into_iter().find(|c| c.type_ == "Initialized").unwrap();
    assert_eq!(initialized.status, "True");

    // restartPolicy Never: a failed init container fails the pod; the app never starts.
    let pods = c
        .create_pod(
            "broken",
            json!({
                "restartPolicy": "Never",
                "initContainers": [{"name": "fails", "command": ["sh", "-c", "exit 7"]}],
                "containers": [{"name": "app", "command": ["sleep", "3600"]}],
            }),
        )
        .await;
    let p = c
        .wait(60, "the pod to fail", || async {
            let p = pods.get("broken").await.ok()?;
            (phase(&p) == "Failed").then_some(p)
        })
        .await;
    let st = p.status.unwrap();
    let fails = st.init_container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
    assert_eq!((fails.exit_code, fails.reason.as_deref()), (7, Some("Error")));
    let app = st.container_statuses.unwrap()[0].state.clone().unwrap();
    assert!(app.running.is_none() && app.terminated.is_none(), "the app never ran: {app:?}");
}

#[tokio::test]
async fn security_context_is_applied_inside_the_container() {
    let c = Cluster::start("secctx", &[]).await;
    c.run_pod(
        "locked",
        json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [
                {"name": "app", "command": ["sleep", "3600"],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                 "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                     "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}},
                {"name": "root", "command": ["sleep", "3600"], "securityContext": {"runAsUser": 0, "privileged": true}},
            ],
        }),
    )
    .await;
    let exec = |container: &str, script: &str| {
        c.kubectl("1.33", &["exec", "locked", "-c", container, "--", "sh", "-c", script])
    };
    let out = |container: &str, script: &str| {
        let o = exec(container, script);
        assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(out("app", "id -u; id -g"), "1000\n3000");
    let groups = out("app", "id -G");
    assert!(groups.split_whitespace().any(|g| g == "2000"), "fsGroup is a supplementary group: {groups}");
    let ro = exec("app", "touch /rootfile");
    assert!(!ro.status.success(), "readOnlyRootFilesystem");
    assert!(String::from_utf8_lossy(&ro.stderr).contains("Read-only file system"));
    assert_eq!(out("app", "touch /data/f && stat -c %g /data/f"), "2000", "fsGroup owns new files in the volume");
    assert_eq!(out("app", "grep NoNewPrivs /proc/self/status | cut -f2"), "1");
    // Only NET_BIND_SERVICE (bit 10) is left in the bounding set.
    assert_eq!(out("app", "grep CapBnd /proc/self/status | cut -f2"), "0000000000000400");
    // privileged: the host's full bounding set.
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_bnd = host.lines().find_map(|l| l.strip_prefix("CapBnd:")).unwrap().trim().to_string();
    assert_eq!(out("root", "grep CapBnd /proc/self/status | cut -f2"), host_bnd);

    // runAsNonRoot against an image that runs as root.
    let pods = c
        .create_pod(
            "nonroot",
            json!({"containers": [{"name": "app", "command": ["sleep", "3600"], "securityContext": {"runAsNonRoot": true}}]}),
        )
        .await;
    let waiting = c
        .wait(60, "CreateContainerConfigError", || async {
            let p = pods.get("nonroot").await.ok()?;
            let w = p.status?.container_statuses?.first()?.state.clone()?.waiting?;
            (w.reason.as_deref() == Some("CreateContainerConfigError")).then_some(w)
        })
        .await;
    assert!(waiting.message.unwrap_or_default().contains("container has runAsNonRoot and image will run as root"));
}

#[tokio::test]
async fn active_deadline_seconds_fails_a_running_pod() {
    let c = Cluster::start("deadline", &[]).await;
    let pods = c
        .create_pod(
            "short",
            json!({"activeDeadlineSeconds": 3, "containers": [{"name": "app", "command": ["sleep", "3600"]}]}),
        )
        .await;
    let p = c
        .wait(60, "DeadlineExceeded", || async {
            let p = pods.get("short").await.ok()?;
            (phase(&p) == "Failed").then_some(p)
        })
        .await;
    let st = p.status.unwrap();
    assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
    let term = st.container_statuses.unwrap()[0].state.clone().unwrap().terminated;
    assert!(term.is_some(), "the container was stopped");
}

#[tokio::test]
async fn image_pull_secrets_authenticate_pulls() {
    let reg = Registry::start(RegistryKind::Basic);
    let c = Cluster::start("pullsecret", &[]).await;
    let image = format!("{}/kelp-test/busybox:latest", reg.addr());
    let app = json!([{"name": "app", "image": image, "imagePullPolicy": "Always", "command": ["sleep", "3600"]}]);
    let pods = c.create_pod("anonymous", json!({"containers": app})).await;
    c.wait(60, "an authentication failure without the secret", || async {
        let p = pods.get("anonymous").await.ok()?;
        let w = p.status?.container_statuses?.first()?.state.clone()?.waiting?;
        matches!(w.reason.as_deref(), Some("ErrImagePull" | "ImagePullBackOff")).then_some(())
    })
    .await;
    c.kubectl_ok(
        "1.33",
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            &format!("--docker-server={}", reg.addr()),
            &format!("--docker-username={USER}"),
            &format!("--docker-password={PASSWORD}"),
        ],
    );
    c.run_pod("authenticated", json!({"imagePullSecrets": [{"name": "regcred"}], "containers": app})).await;
    assert_eq!(c.kubectl_ok("1.33", &["exec", "authenticated", "--", "echo", "pulled"]), "pulled\n");
}

#[tokio::test]
async fn share_process_namespace_shows_every_container_and_is_cleaned_up() {
    let c = Cluster::start("pidns", &[]).await;
    c.run_pod(
        "shared",
        json!({"shareProcessNamespace": true, "containers": [
            {"name": "a", "command": ["sleep", "3601"]},
            {"name": "b", "command": ["sleep", "3602"]},
        ]}),
    )
    .await;
    c.run_pod("alone", json!({"containers": [{"name": "a", "command": ["sleep", "3603"]}]})).await;
    let ps = c.kubectl_ok("1.33", &["exec", "shared", "-c", "a", "--", "ps", "-o", "pid,args"]);
    assert!(ps.contains("sleep 3601") && ps.contains("sleep 3602"), "both containers' processes: {ps}");
    let first = ps.lines().nth(1).unwrap_or_default().trim().to_string();
    assert!(first.starts_with("1 ") && !first.contains("sleep"), "pid 1 is the namespace's init, not an app: {ps}");
    let alone = c.kubectl_ok("1.33", &["exec", "alone", "--", "ps", "-o", "pid,args"]);
    assert!(!alone.contains("3601") && alone.contains("sleep 3603"), "{alone}");
    // The namespace's init ignores signals from inside (as any pid 1 without handlers): the pod
    // lives on.
    c.kubectl_ok("1.33", &["exec", "shared", "-c", "b", "--", "kill", "1"]);
    let again = c.kubectl_ok("1.33", &["exec", "shared", "-c", "b", "--", "ps", "-o", "args"]);
    assert!(again.contains("sleep 3601"), "{again}");

    let pods: Api<Pod> = Api::namespaced(c.client.clone(), &c.ns);
    for p in ["shared", "alone"] {
        pods.delete(p, &Default::default()).await.unwrap();
    }
    c.wait(60, "the pods gone and nothing left behind", || async {
        let gone = pods.list(&Default::default()).await.ok()?.items.is_empty();
        (gone && c.agent.leftovers().is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn sidecar_containers_start_first_restart_always_and_stop_last() {
    let c = Cluster::start("sidecar", &[]).await;
    let mount = json!([{"name": "data", "mountPath": "/data"}]);
    // restartPolicy Never: the pod completes when the app does, though its sidecar never ends.
    let pods = c
        .create_pod(
            "job",
            json!({
                "restartPolicy": "Never",
                "volumes": [{"name": "data", "emptyDir": {}}],
                "initContainers": [
                    {"name": "helper", "restartPolicy": "Always", "volumeMounts": mount,
                     "command": ["sh", "-c", "sleep 1; echo sidecar up > /data/s; sleep 3600"],
                     "startupProbe": {"exec": {"command": ["test", "-f", "/data/s"]}, "periodSeconds": 1}},
                    {"name": "after", "volumeMounts": mount, "command": ["cat", "/data/s"]},
                ],
                "containers": [{"name": "app", "command": ["sh", "-c", "sleep 2; echo app done"]}],
            }),
        )
        .await;
    let p = c
        .wait(90, "the pod to succeed", || async {
            let p = pods.get("job").await.ok()?;
            (phase(&p) == "Succeeded").then_some(p)
        })
        .await;
    // The second init container ran only once the sidecar had started.
    assert_eq!(c.kubectl_ok("1.33", &["logs", "job", "-c", "after"]), "sidecar up\n");
    assert_eq!(c.kubectl_ok("1.33", &["logs", "job", "-c", "app"]), "app done\n");
    let inits = p.status.unwrap().init_container_statuses.unwrap();
    assert_eq!(inits[0].name, "helper");
    c.wait(30, "the sidecar stopped after the app", || async {
        let p = pods.get("job").await.ok()?;
        let s = p.status?.init_container_statuses?.into_iter().find(|s| s.name == "helper")?;
        s.state?.terminated.map(|_| ())
    })
    .await;

    // A sidecar that exits comes back, even in a restartPolicy Never pod.
    let pods = c
        .create_pod(
            "flaky",
            json!({
                "restartPolicy": "Never",
                "initContainers": [{"name": "side", "restartPolicy": "Always", "command": ["sh", "-c", "sleep 1; exit 3"]}],
                "containers": [{"name": "app", "command": ["sleep", "3600"]}],
            }),
        )
        .await;
    c.wait(90, "the sidecar restarted while the app runs", || async {
        let p = pods.get("flaky").await.ok()?;
        let st = p.status?;
        let side = st.init_container_statuses?.into_iter().find(|s| s.name == "side")?;
        let app_running = st.container_statuses?.first()?.state.clone()?.running.is_some();
        (side.restart_count >= 1 && app_running && st.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
}
