//! Issue 6 end to end with the real node agent: a `kelp server --disable-agent` (scheduler and
//! controllers running) plus one `kelp agent` node with the busybox image imported, driven by
//! kubectl 1.33: Deployment scale / set image / rollout undo, pod replacement, a Job, a CronJob, and
//! `cordon` + `drain` against a PodDisruptionBudget. Nothing may be left on the host afterwards.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{fixtures, unique, Agent, Server};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// The image the fixture tarball holds (imported into the agent's air-gap folder).
const IMAGE: &str = "docker.io/kelp-test/busybox:latest";

/// A server and one real node, Ready, plus a namespace of this test's own.
struct Cluster {
    server: Server,
    agent: Agent,
    client: Client,
    ns: String,
    manifests: PathBuf,
}

impl Cluster {
    async fn start(prefix: &str) -> Cluster {
        let fix = fixtures();
        let server = Server::start_with(&["--cluster-cidr", &crate::support::cluster_cidr()]);
        let client = server.client().await;
        let agent = Agent::start(&server, prefix, &[&fix.join("busybox.oci.tar")]);
        let ns = unique(prefix);
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap())
            .await
            .unwrap();
        let manifests = server.dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        let c = Cluster { server, agent, client, ns, manifests };
        let nodes: Api<Node> = Api::all(c.client.clone());
        c.wait_for("the node to be Ready", 60, || async {
            let n = nodes.get_opt(&c.agent.node).await.ok().flatten()?;
            n.status?.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
        })
        .await;
        c
    }

    /// kubectl 1.33 in the test's namespace; must succeed.
    fn k(&self, args: &[&str]) -> String {
        // The namespace first: anything after `--` belongs to the container's command.
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        self.server.kubectl_ok("1.33", &all)
    }

    /// `kubectl apply -f` of a manifest.
    fn apply(&self, name: &str, manifest: serde_json::Value) -> String {
        let path = self.manifests.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
        self.k(&["apply", "-f", path.to_str().unwrap()])
    }

    async fn wait_for<T, F, Fut>(&self, what: &str, secs: u64, mut f: F) -> T
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
                panic!("timed out waiting for {what}\nagent log:\n{}", self.agent.log());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Pods matching `selector` that are not being deleted.
    async fn live_pods(&self, selector: &str) -> Vec<Pod> {
        let l = self.pods().list(&ListParams::default().labels(selector)).await.unwrap().items;
        l.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect()
    }

    /// Waits until no pod is left in the namespace, then until the node left nothing on the host.
    async fn assert_clean(&mut self) {
        let pods = self.pods();
        self.wait_for("all pods gone", 120, || async {
            pods.list(&Default::default()).await.ok()?.items.is_empty().then_some(())
        })
        .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.agent.leftovers().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(self.agent.leftovers(), Vec::<String>::new(), "left on the host");
        self.agent.cleanup();
    }
}

fn is_running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs.iter().all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())))
}

/// `docker.io/kelp-test/busybox@sha256:…`: the name and top-level digest in the fixture's OCI
/// layout `index.json`.
fn fixture_digest_reference() -> String {
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(fixtures().join("busybox.oci.tar"))
        .arg("index.json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    format!("docker.io/kelp-test/busybox@{digest}")
}

fn template_image(d: &Deployment) -> String {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.clone().unwrap()
}

/// Deployment `web`: rollout, scale 3 → 10 → 2, `set image` to the same image by digest and
/// `rollout undo`, a deleted pod replaced, then `cordon` + `drain` refused by a PDB and done
/// after relaxing it, the new pods Pending as unschedulable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_scale_set_image_undo_replace_and_drain_with_a_budget() {
    let mut c = Cluster::start("e2ed").await;
    let node = c.agent.node.clone();
    // `kubectl create deployment` with a `:latest` tag gets imagePullPolicy Always, which cannot
    // work offline; the same image by its digest (from the air-gap tarball) defaults to IfNotPresent.
    let by_digest = fixture_digest_reference();
    c.k(&[
        "create",
        "deployment",
        "web",
        &format!("--image={by_digest}"),
        "--replicas=3",
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    let out = c.k(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = c.live_pods("app=web").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(is_running(p), "{:?}", p.status);
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some(node.as_str()));
    }

    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), &c.ns);
    let available = |n: i32| {
        let deployments = deployments.clone();
        move || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get("web").await.ok()?;
                let s = d.status.clone()?;
                (s.observed_generation == d.metadata.generation
                    && s.available_replicas == Some(n)
                    && s.replicas == Some(n)
                    && s.updated_replicas == Some(n))
                .then_some(())
            }
        }
    };
    c.k(&["scale", "deployment/web", "--replicas=10"]);
    c.k(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    c.wait_for("10 available replicas", 180, available(10)).await;
    let running = c.live_pods("app=web").await.iter().filter(|p| is_running(p)).count();
    assert_eq!(running, 10);
    c.k(&["scale", "deployment/web", "--replicas=2"]);
    c.wait_for("2 available replicas", 120, available(2)).await;
    c.wait_for("the scaled-down pods gone", 120, || async {
        (c.pods().list(&ListParams::default().labels("app=web")).await.ok()?.items.len() == 2).then_some(())
    })
    .await;

    let deployments_now = deployments.get("web").await.unwrap();
    let tpl = &deployments_now.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    assert_eq!(tpl.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let pod = &c.live_pods("app=web").await[0];
    let image_id = pod.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0].image_id.clone();
    assert_eq!(image_id, by_digest, "the node reports the repository digest as imageID");

    // The same image by its tag: the stored template keeps IfNotPresent, so it resolves locally.
    c.k(&["set", "image", "deployment/web", &format!("busybox={IMAGE}")]);
    let out = c.k(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(template_image(&deployments.get("web").await.unwrap()), IMAGE);
    let pods = c.live_pods("app=web").await;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert_eq!(p.spec.as_ref().unwrap().containers[0].image.as_deref(), Some(IMAGE));
        assert!(is_running(p), "{:?}", p.status);
    }
    c.k(&["rollout", "undo", "deployment/web"]);
    c.k(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    let d = deployments.get("web").await.unwrap();
    assert_eq!(template_image(&d), by_digest);
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("3"));
    c.wait_for("2 available replicas of the first template", 120, available(2)).await;

    // A deleted pod is replaced by one that runs.
    let victim = c.live_pods("app=web").await[0].name_any();
    c.k(&["delete", "pod", &victim, "--wait=false"]);
    let replacement = c
        .wait_for("a replacement pod running", 120, || async {
            let pods = c.live_pods("app=web").await;
            let fresh: Vec<&Pod> = pods.iter().filter(|p| p.name_any() != victim && is_running(p)).collect();
            (fresh.len() == 2).then(|| fresh.iter().map(|p| p.name_any()).collect::<Vec<_>>())
        })
        .await;
    assert!(!replacement.contains(&victim));

    // A budget that allows no disruption: the drain is refused and times out.
    c.k(&["create", "pdb", "web", "--selector=app=web", "--min-available=2"]);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(c.client.clone(), &c.ns);
    c.wait_for("the budget status", 60, || async {
        let s = pdbs.get("web").await.ok()?.status?;
        (s.current_healthy == 2 && s.desired_healthy == 2 && s.disruptions_allowed == 0).then_some(())
    })
    .await;
    let out = c.server.kubectl("1.33", &["cordon", &node]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("node/{node} cordoned")));
    let out =
        c.server.kubectl("1.33", &["drain", &node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=10s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the drain must be refused: {stderr}");
    assert!(stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{stderr}");
    assert!(stderr.contains("global timeout reached: 10s"), "{stderr}");
    assert_eq!(c.live_pods("app=web").await.len(), 2, "no pod was evicted");

    // Relaxed: the drain evicts both pods; their replacements cannot be scheduled.
    c.k(&["patch", "pdb", "web", "--type=merge", "-p", r#"{"spec":{"minAvailable":0}}"#]);
    c.wait_for("the relaxed budget", 60, || async {
        let s = pdbs.get("web").await.ok()?.status?;
        (s.disruptions_allowed == 2).then_some(())
    })
    .await;
    let out = c
        .server
        .kubectl_ok("1.33", &["drain", &node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s"]);
    assert!(out.contains(&format!("node/{node} drained")), "{out}");
    let n: Node = Api::all(c.client.clone()).get(&node).await.unwrap();
    assert_eq!(n.spec.unwrap().unschedulable, Some(true));
    let on_node = c.pods().list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await.unwrap().items;
    assert!(
        on_node.is_empty(),
        "pods left on the drained node: {:?}",
        on_node.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    let pending = c
        .wait_for("two Pending replacements", 60, || async {
            let pods = c.live_pods("app=web").await;
            let pending: Vec<Pod> = pods
                .into_iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
                .collect();
            (pending.len() == 2 && pending.iter().all(|p| p.spec.as_ref().unwrap().node_name.is_none()))
                .then_some(pending)
        })
        .await;
    let events: Api<Event> = Api::namespaced(c.client.clone(), &c.ns);
    let first = pending[0].name_any();
    let msg = c
        .wait_for("a FailedScheduling event", 60, || async {
            let evs = events.list(&ListParams::default()).await.ok()?.items;
            evs.into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("FailedScheduling")
                        && e.involved_object.name.as_deref() == Some(first.as_str())
                })
                .and_then(|e| e.message)
        })
        .await;
    assert!(msg.starts_with("0/1 nodes are available: 1 node(s) were unschedulable."), "{msg}");
    let described = c.k(&["describe", "pod", &first]);
    assert!(described.contains("0/1 nodes are available: 1 node(s) were unschedulable."), "{described}");

    c.k(&["delete", "deployment", "web"]);
    c.assert_clean().await;
}

fn job_pods_logs(c: &Cluster, pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| {
            let dir = c
                .agent
                .pod_log_dir()
                .join(format!("{}_{}_{}", c.ns, p.name_any(), p.metadata.uid.as_deref().unwrap()))
                .join("c");
            std::fs::read_to_string(dir.join("0.log")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        })
        .collect()
}

/// A Job with two completions runs to completion with its output in the CRI log files; a
/// CronJob fires within its minute and its Job completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_completes_and_cronjob_fires_within_its_minute() {
    let mut c = Cluster::start("e2ej").await;
    let container = json!({"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                           "command": ["sh", "-c", "echo done"]});
    c.apply(
        "once",
        json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
            "spec": {"completions": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}
        }),
    );
    let out = c.k(&["wait", "--for=condition=complete", "job/once", "--timeout=180s"]);
    assert!(out.contains("job.batch/once condition met"), "{out}");
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), &c.ns);
    let st = jobs.get("once").await.unwrap().status.unwrap();
    assert_eq!(st.succeeded, Some(2));
    assert!(st.completion_time.is_some());
    let pods = c.pods().list(&ListParams::default().labels("batch.kubernetes.io/job-name=once")).await.unwrap().items;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Succeeded"));
    }
    for log in job_pods_logs(&c, &pods) {
        assert!(log.lines().any(|l| l.ends_with(" stdout F done")), "{log}");
    }
    // `kubectl logs` needs pods/log, which this kelp version does not serve yet: the files are it.

    let mut tick = container.clone();
    tick["command"] = json!(["sh", "-c", "echo tick"]);
    let created = Instant::now();
    c.apply(
        "tick",
        json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [tick]}}}}}
        }),
    );
    // The next minute boundary is at most 60 s away; the Job must be created and complete by then
    // plus a margin.
    let fired = c
        .wait_for("the CronJob's Job to complete", 75, || async {
            let l = jobs.list(&ListParams::default()).await.ok()?.items;
            l.into_iter().find(|j| {
                j.owner_references().iter().any(|o| o.kind == "CronJob" && o.name == "tick")
                    && j.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Complete" && c.status == "True"))
            })
        })
        .await;
    assert!(created.elapsed() <= Duration::from_secs(75));
    assert!(fired.name_any().starts_with("tick-"), "{}", fired.name_any());
    let cronjobs: Api<CronJob> = Api::namespaced(c.client.clone(), &c.ns);
    c.wait_for("the CronJob's last successful time", 30, || async {
        cronjobs.get("tick").await.ok()?.status?.last_successful_time.map(|_| ())
    })
    .await;
    let pods = c
        .pods()
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={}", fired.name_any())))
        .await
        .unwrap()
        .items;
    assert!(!pods.is_empty());
    for log in job_pods_logs(&c, &pods) {
        assert!(log.lines().any(|l| l.ends_with(" stdout F tick")), "{log}");
    }

    c.k(&["delete", "cronjob", "tick"]);
    c.k(&["delete", "job", "once"]);
    // Jobs the CronJob made are collected with it (owner references).
    c.wait_for("the CronJob's jobs collected", 60, || async {
        jobs.list(&ListParams::default()).await.ok()?.items.is_empty().then_some(())
    })
    .await;
    c.assert_clean().await;
}
