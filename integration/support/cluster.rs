//! A cluster for end-to-end tests: a `kelp server` (scheduler and controllers on) with one
//! `kelp agent` node that has the busybox test image, and a namespace of its own.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::PostParams;
use kube::Api;
use serde_json::{json, Value};

use super::{fixtures, kubectl_path, unique, Agent, Server};

/// The busybox test image every node of a [`Cluster`] has.
pub const IMAGE: &str = "docker.io/kelp-test/busybox:latest";

/// A server (scheduler and controllers on) with one agent node.
pub struct Cluster {
    pub server: Server,
    pub agent: Agent,
    pub client: kube::Client,
    pub ns: String,
}

impl Cluster {
    pub async fn start(prefix: &str, extra_agent_flags: &[&str]) -> Cluster {
        let cidr = super::cluster_cidr();
        let server = Server::start_with(&["--cluster-cidr", &cidr]);
        let client = server.client().await;
        let busybox = fixtures().join("busybox.oci.tar");
        let agent = Agent::start_with(&server, prefix, &[busybox.as_path()], extra_agent_flags);
        let ns = unique(prefix);
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap())
            .await
            .unwrap();
        let c = Cluster { server, agent, client, ns };
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client.clone());
        c.wait(60, "the node to be Ready", || async {
            let n = nodes.get_opt(&c.agent.node).await.ok().flatten()?;
            n.status?.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
        })
        .await;
        c
    }

    pub async fn wait<T, F, Fut>(&self, secs: u64, what: &str, mut f: F) -> T
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
                panic!(
                    "timed out waiting for {what}\nagent log:\n{}\nserver log:\n{}",
                    self.agent.log(),
                    self.server.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates a pod from `spec` on the node; containers (init ones too) without an image get the
    /// test image, all get IfNotPresent unless they say otherwise.
    pub async fn create_pod(&self, name: &str, mut spec: Value) -> Api<Pod> {
        for list in ["containers", "initContainers"] {
            for c in spec[list].as_array_mut().into_iter().flatten() {
                if c.get("image").is_none() {
                    c["image"] = json!(IMAGE);
                }
                if c.get("imagePullPolicy").is_none() {
                    c["imagePullPolicy"] = json!("IfNotPresent");
                }
            }
        }
        spec["nodeName"] = json!(self.agent.node);
        if spec.get("terminationGracePeriodSeconds").is_none() {
            spec["terminationGracePeriodSeconds"] = json!(1);
        }
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": name}}, "spec": spec})).unwrap();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        pods.create(&PostParams::default(), &pod).await.unwrap();
        pods
    }

    /// [`Cluster::create_pod`], then waits until all its containers run.
    pub async fn run_pod(&self, name: &str, spec: Value) -> Pod {
        let pods = self.create_pod(name, spec).await;
        self.wait(90, &format!("pod {name} running"), || async {
            let p = pods.get(name).await.ok()?;
            let st = p.status.as_ref()?;
            let all_running = st
                .container_statuses
                .as_ref()?
                .iter()
                .all(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
            (st.phase.as_deref() == Some("Running") && all_running).then_some(p)
        })
        .await
    }

    pub fn kubectl(&self, version: &str, args: &[&str]) -> std::process::Output {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        self.server.kubectl(version, &all)
    }

    pub fn kubectl_ok(&self, version: &str, args: &[&str]) -> String {
        let out = self.kubectl(version, args);
        assert!(
            out.status.success(),
            "kubectl {version} {args:?} failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A kubectl process of `version` in this namespace, not waited for.
    pub fn kubectl_cmd(&self, version: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_path(version));
        cmd.arg("--kubeconfig")
            .arg(self.server.kubeconfig())
            .arg("--cache-dir")
            .arg(self.server.dir.path().join(format!("kubectl-cache-{version}")))
            .args(["-n", &self.ns])
            .args(args);
        cmd
    }
}
