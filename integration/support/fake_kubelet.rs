//! An in-test "kubelet" for control-loop tests on a server without nodes: it watches the pods of one
//! namespace and plays their lifecycle through `pods/status`.
//!
//! A pod's outcome comes from its label `fake-kubelet/outcome`: absent or `ready` → Running and
//! Ready; `unready` → Running, never Ready; `succeed` → Succeeded; `fail` → Failed;
//! `fail-index-N` → Failed for completion index N, Succeeded otherwise. Pods being deleted on a
//! node are removed with a zero grace period (the container "stopped").

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The label choosing a pod's fate.
pub const OUTCOME: &str = "fake-kubelet/outcome";

/// A running fake kubelet; stops when dropped.
pub struct FakeKubelet {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKubelet {
    /// Starts playing the pods of `ns`, each pod's status set `delay` after it appears.
    pub fn start(client: Client, ns: &str, delay: Duration) -> FakeKubelet {
        let api: Api<Pod> = Api::namespaced(client, ns);
        let task = tokio::spawn(async move {
            let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
            let mut stream = watcher(api.clone(), watcher::Config::default()).applied_objects().boxed();
            while let Some(ev) = stream.next().await {
                let Ok(pod) = ev else { continue };
                let uid = pod.uid().unwrap_or_default();
                if pod.metadata.deletion_timestamp.is_some() {
                    let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                    if on_node {
                        let api = api.clone();
                        tokio::spawn(async move {
                            let _ = api.delete(&pod.name_any(), &DeleteParams::default().grace_period(0)).await;
                        });
                    }
                    continue;
                }
                if !seen.lock().unwrap().insert(uid) {
                    continue;
                }
                let api = api.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = play(&api, &pod).await;
                });
            }
        });
        FakeKubelet { task }
    }
}

async fn play(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let outcome = pod.labels().get(OUTCOME).cloned().unwrap_or_else(|| "ready".into());
    let index = pod.annotations().get("batch.kubernetes.io/job-completion-index").cloned();
    let outcome = match outcome.strip_prefix("fail-index-") {
        Some(i) => {
            if index.as_deref() == Some(i) {
                "fail".to_string()
            } else {
                "succeed".to_string()
            }
        }
        None => outcome,
    };
    let now = Timestamp::now().to_string();
    let cond =
        |t: &str, s: bool| json!({"type": t, "status": if s { "True" } else { "False" }, "lastTransitionTime": now});
    let name = pod.spec.as_ref().and_then(|s| s.containers.first()).map(|c| c.name.clone()).unwrap_or_default();
    let image = pod.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default();
    let status = match outcome.as_str() {
        "succeed" | "fail" => {
            let code = if outcome == "fail" { 1 } else { 0 };
            json!({
                "phase": if code == 0 { "Succeeded" } else { "Failed" },
                "startTime": now,
                "conditions": [cond("PodScheduled", true), cond("Initialized", true), cond("Ready", false), cond("ContainersReady", false)],
                "containerStatuses": [{"name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "startedAt": now, "finishedAt": now}}}],
            })
        }
        other => {
            let ready = other != "unready";
            json!({
                "phase": "Running",
                "startTime": now,
                "conditions": [cond("PodScheduled", true), cond("Initialized", true), cond("Ready", ready), cond("ContainersReady", ready)],
                "containerStatuses": [{"name": name, "image": image, "imageID": "", "ready": ready, "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": now}}}],
            })
        }
    };
    api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&json!({ "status": status }))).await?;
    Ok(())
}
