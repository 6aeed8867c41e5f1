//! Static pods from `<data_dir>/pod-manifests/*.yaml|yml|json`: run by the agent without the API,
//! each shown in the API as a mirror pod `<name>-<node>` (annotation `kubernetes.io/config.mirror`,
//! owned by the Node). The pod's uid is a hash of the manifest and the node, so a changed file is a
//! new pod: the old one stops, the new one starts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, PostParams};
use kube::Api;

use super::pods::{Manager, Source};

pub const MIRROR: &str = "kubernetes.io/config.mirror";
const HASH: &str = "kubernetes.io/config.hash";
const SOURCE: &str = "kubernetes.io/config.source";
const SCAN: Duration = Duration::from_secs(5);

/// A parsed manifest as the agent runs it.
pub fn load(path: &Path, node: &str) -> Result<Pod, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut pod: Pod = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    };
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{}: metadata.name is required", path.display()))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{node}\n{}\n{text}", path.display()).as_bytes());
    let hash: String = digest.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect();
    pod.metadata.name = Some(format!("{name}-{node}"));
    pod.metadata.namespace =
        Some(pod.metadata.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into()));
    pod.metadata.uid = Some(hash.clone());
    let ann = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(HASH.into(), hash.clone());
    ann.insert(MIRROR.into(), hash);
    ann.insert(SOURCE.into(), "file".into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.to_string());
    if spec.restart_policy.is_none() {
        spec.restart_policy = Some("Always".into());
    }
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        if c.termination_message_path.is_none() {
            c.termination_message_path = Some("/dev/termination-log".into());
        }
    }
    Ok(pod)
}

fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
        .collect();
    v.sort();
    v
}

/// Keeps the mirror pod of a static pod in the API.
async fn ensure_mirror(client: &kube::Client, pod: &Pod, node_uid: &str, node: &str) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let hash = pod.metadata.uid.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match api.get_opt(&name).await {
        Ok(Some(m)) if m.annotations().get(MIRROR) == Some(&hash) && m.metadata.deletion_timestamp.is_none() => return,
        Ok(Some(_)) => {
            let _ = api.delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(message = "could not read a mirror pod", pod = %name, error = %e);
            return;
        }
    }
    let mut mirror = pod.clone();
    mirror.metadata.uid = None;
    mirror.metadata.resource_version = None;
    mirror.status = None;
    mirror.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.into(),
        uid: node_uid.into(),
        controller: Some(true),
        ..Default::default()
    }]);
    if let Err(e) = api.create(&PostParams::default(), &mirror).await {
        tracing::warn!(message = "could not create a mirror pod", pod = %name, error = %e);
    }
}

use kube::ResourceExt;

/// Scans the manifest folder forever.
pub async fn run(m: Arc<Manager>, dir: PathBuf, node_uid: String) {
    let ctx = m.ctx().clone();
    let node = ctx.cfg.node_name.clone();
    let mut running: HashMap<PathBuf, Pod> = HashMap::new();
    let mut failed: HashMap<PathBuf, String> = HashMap::new();
    loop {
        let files = manifests(&dir);
        for (path, pod) in running.clone() {
            if !files.contains(&path) {
                m.remove(pod.metadata.uid.as_deref().unwrap_or_default());
                let api: Api<Pod> =
                    Api::namespaced(ctx.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
                let _ = api
                    .delete(
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        &DeleteParams { grace_period_seconds: Some(0), ..Default::default() },
                    )
                    .await;
                running.remove(&path);
            }
        }
        for path in files {
            match load(&path, &node) {
                Ok(pod) => {
                    failed.remove(&path);
                    let changed = running.get(&path).map(|p| p.metadata.uid != pod.metadata.uid).unwrap_or(true);
                    if changed {
                        if let Some(old) = running.get(&path) {
                            m.remove(old.metadata.uid.as_deref().unwrap_or_default());
                        }
                        tracing::info!(message = "static pod", pod = %pod.metadata.name.clone().unwrap_or_default(), file = %path.display());
                        let mirror = pod.metadata.name.clone().unwrap_or_default();
                        m.update(Arc::new(pod.clone()), Source::File { mirror });
                        running.insert(path.clone(), pod.clone());
                    }
                    ensure_mirror(&ctx.client, &pod, &node_uid, &node).await;
                }
                Err(e) => {
                    if failed.get(&path) != Some(&e) {
                        tracing::warn!(message = "invalid static pod manifest", error = %e);
                        failed.insert(path, e);
                    }
                }
            }
        }
        tokio::time::sleep(SCAN).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_node_pods_with_stable_content_uids() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("web.yaml");
        std::fs::write(&f, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n").unwrap();
        let p = load(&f, "n1").unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        assert_eq!(p.annotations().get(MIRROR), p.metadata.uid.as_ref());
        assert_eq!(load(&f, "n1").unwrap().metadata.uid, p.metadata.uid);
        std::fs::write(&f, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox:1\n").unwrap();
        assert_ne!(load(&f, "n1").unwrap().metadata.uid, p.metadata.uid, "a changed file is a new pod");
        std::fs::write(d.path().join("bad.json"), "{").unwrap();
        assert!(load(&d.path().join("bad.json"), "n1").is_err());
        assert_eq!(manifests(d.path()).len(), 2);
    }
}
