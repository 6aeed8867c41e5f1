//! The node agent (kelp's kubelet): registers the Node, renews its Lease, and runs the pods bound
//! to it on the built-in runtime. An API client only (kube-rs); never touches the store.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::Api;

pub mod backoff;
pub mod env;
pub mod events;
pub mod logs;
pub mod node;
pub mod pods;
pub mod probes;
pub mod quantity;
pub mod server;
pub mod static_pods;
pub mod stats;
pub mod status;
pub mod volumes;

use crate::image::{ImageStore, ImageStoreConfig};
use crate::network::{NetworkConfig, PodNetwork};
use crate::runtime::{ContainerState, Runtime, RuntimeConfig};

/// Errors of the node agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("{0}")]
    Image(#[from] crate::image::ImageError),
    #[error("{0}")]
    Network(#[from] crate::network::NetworkError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

/// Everything the agent needs, from `kelp server` or `kelp agent` flags.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub node_name: String,
    pub node_ips: Vec<IpAddr>,
    /// `<data-dir>/agent`.
    pub data_dir: PathBuf,
    pub run_dir: PathBuf,
    pub cgroup_root: String,
    pub bridge_name: String,
    pub pod_log_dir: PathBuf,
    /// Container log rotation (kubelet's containerLogMaxSize / containerLogMaxFiles).
    pub container_log_max_size: u64,
    pub container_log_max_files: u32,
    pub registries_file: PathBuf,
    pub cluster_dns: IpAddr,
    pub cluster_domain: String,
    pub max_pods: u32,
    /// Port of the agent's HTTPS endpoint; 0 = any free port.
    pub kubelet_port: u16,
    pub node_labels: Vec<String>,
    pub node_taints: Vec<String>,
    /// This node runs the control plane (`kelp server`): labelled `node-role.kubernetes.io/control-plane`.
    pub server_node: bool,
}

/// How often orphans and old containers are cleaned up.
const HOUSEKEEPING: Duration = Duration::from_secs(10);

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
    let context = context.into();
    move |source| AgentError::Io { context, source }
}

/// Runs the agent until the process is asked to stop.
pub async fn run(mut cfg: AgentConfig, client: kube::Client) -> Result<(), AgentError> {
    // The endpoint's port goes into the Node object: bind first.
    let listener = server::bind(cfg.kubelet_port).await?;
    cfg.kubelet_port = listener.local_addr().map_err(io("reading the endpoint's address"))?.port();
    let tls = server::tls_config(&client, &cfg).await?;
    let cfg = Arc::new(cfg);
    for d in [cfg.data_dir.clone(), cfg.data_dir.join("pods"), cfg.data_dir.join("pod-manifests"), cfg.run_dir.clone()]
    {
        std::fs::create_dir_all(&d).map_err(io(format!("creating {}", d.display())))?;
    }
    let images = ImageStore::open(ImageStoreConfig {
        root: cfg.data_dir.join("image-store"),
        registries_file: cfg.registries_file.clone(),
    })?;
    // Air-gap images are pinned: image GC never removes them (as k3s does).
    let pinned: Arc<HashSet<String>> = Arc::new(import_images(&images, &cfg.data_dir.join("images")).await);
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        state_dir: cfg.run_dir.join("runtime"),
        data_dir: cfg.data_dir.join("containers"),
        cgroup_root: cfg.cgroup_root.clone(),
        container_log_max_size: cfg.container_log_max_size,
        container_log_max_files: cfg.container_log_max_files,
    })?);

    let capacity = node::Capacity::read(&cfg.data_dir, cfg.max_pods);
    let registered = node::register(&client, &cfg, &capacity).await?;
    let node_uid = registered.metadata.uid.clone().unwrap_or_default();
    let health = Arc::new(node::Health::default());
    let heartbeat =
        tokio::spawn(node::heartbeat(client.clone(), cfg.clone(), capacity.clone(), health.clone(), node_uid.clone()));
    let _stop_heartbeat = AbortOnDrop(heartbeat);

    let pod_cidr = node::wait_pod_cidr(&client, &cfg.node_name).await?;
    let network = Arc::new(
        PodNetwork::new(NetworkConfig {
            bridge: cfg.bridge_name.clone(),
            pod_cidr,
            state_dir: cfg.data_dir.join("network"),
            run_dir: cfg.run_dir.join("pods"),
            mtu: None,
        })
        .await?,
    );
    health.network_ready.store(true, Ordering::Relaxed);
    health.changed.notify_one();
    tracing::info!(message = "node agent ready", node = %cfg.node_name, pod_cidr = %pod_cidr);

    let ctx = Arc::new(pods::Ctx {
        client: client.clone(),
        cfg: cfg.clone(),
        runtime: runtime.clone(),
        images: images.clone(),
        network: network.clone(),
        events: events::Recorder::new(client.clone(), &cfg.node_name),
        allocatable: capacity.allocatable(),
        host_ips: cfg.node_ips.iter().map(|ip| ip.to_string()).collect(),
    });
    let manager = pods::Manager::new(ctx.clone());
    let stats = Arc::new(stats::Stats::default());
    let _stop_sampler = AbortOnDrop(tokio::spawn(stats.clone().run(runtime.clone())));
    let endpoint = Arc::new(server::Endpoint { ctx: ctx.clone(), manager: manager.clone(), stats });
    let _stop_endpoint = AbortOnDrop(tokio::spawn(server::serve(listener, tls, endpoint)));

    // Container exits wake their pod's worker.
    let exits = {
        let (manager, runtime) = (manager.clone(), runtime.clone());
        tokio::spawn(async move {
            loop {
                let id = runtime.next_exit().await;
                if let Ok(c) = runtime.status(&id).await {
                    manager.wake(&c.pod_uid);
                }
            }
        })
    };
    let _stop_exits = AbortOnDrop(exits);
    let statics = tokio::spawn(static_pods::run(manager.clone(), cfg.data_dir.join("pod-manifests"), node_uid));
    let _stop_statics = AbortOnDrop(statics);

    // The pods bound to this node.
    let api: Api<Pod> = Api::all(client.clone());
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", cfg.node_name));
    let mut stream = watcher(api, wc).boxed();
    let mut listed: HashSet<String> = HashSet::new();
    let mut api_pods: HashSet<String> = HashSet::new();
    let mut synced = false;
    let mut tick = tokio::time::interval(HOUSEKEEPING);
    loop {
        tokio::select! {
            ev = stream.next() => {
                let Some(ev) = ev else { return Err(AgentError::Other("the pod watch ended".into())) };
                match ev {
                    Ok(watcher::Event::Init) => listed.clear(),
                    Ok(watcher::Event::InitApply(p)) => {
                        if let Some(uid) = accept(&manager, p) {
                            listed.insert(uid);
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        for gone in api_pods.difference(&listed) {
                            manager.remove(gone);
                        }
                        api_pods = std::mem::take(&mut listed);
                        if !synced {
                            synced = true;
                            housekeeping(&ctx, &manager, &api_pods, &health, &pinned).await;
                        }
                    }
                    Ok(watcher::Event::Apply(p)) => {
                        if let Some(uid) = accept(&manager, p) {
                            api_pods.insert(uid);
                        }
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        if let Some(uid) = p.metadata.uid.as_deref() {
                            api_pods.remove(uid);
                            manager.remove(uid);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(message = "pod watch error", error = %e);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            _ = tick.tick() => {
                if synced {
                    housekeeping(&ctx, &manager, &api_pods, &health, &pinned).await;
                }
            }
        }
    }
}

/// Hands an API pod to its worker; mirror pods are this node's own static pods and ignored.
fn accept(manager: &Arc<pods::Manager>, p: Pod) -> Option<String> {
    if p.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(static_pods::MIRROR)) {
        return None;
    }
    let uid = p.metadata.uid.clone()?;
    manager.update(Arc::new(p), pods::Source::Api);
    Some(uid)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Imports every air-gap tarball in `dir`; returns the image names imported.
async fn import_images(images: &ImageStore, dir: &std::path::Path) -> HashSet<String> {
    let mut all = HashSet::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return all };
    let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !(name.ends_with(".tar")
            || name.ends_with(".tar.gz")
            || name.ends_with(".tgz")
            || name.ends_with(".tar.zst")
            || name.ends_with(".tzst"))
        {
            continue;
        }
        match images.import(&f).await {
            Ok(names) => {
                tracing::info!(message = "imported images", file = %f.display(), images = ?names);
                all.extend(names);
            }
            Err(e) => tracing::warn!(message = "could not import images", file = %f.display(), error = %e),
        }
    }
    all
}

/// Removes what belongs to no pod (after a restart: containers and sandboxes of pods deleted
/// meanwhile), keeps only the newest exited instance of each container, and frees disk by image
/// GC under disk pressure.
async fn housekeeping(
    ctx: &pods::Ctx,
    manager: &pods::Manager,
    api_pods: &HashSet<String>,
    health: &node::Health,
    pinned: &Arc<HashSet<String>>,
) {
    let known: HashSet<String> = manager.known().union(api_pods).cloned().collect();
    let containers = match ctx.runtime.list().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(message = "could not list containers", error = %e);
            return;
        }
    };
    let mut orphan_pods = HashSet::new();
    let mut by_name: HashMap<(String, String), Vec<&crate::runtime::ContainerStatus>> = HashMap::new();
    for c in &containers {
        if known.contains(&c.pod_uid) {
            by_name.entry((c.pod_uid.clone(), c.name.clone())).or_default().push(c);
            continue;
        }
        orphan_pods.insert(c.pod_uid.clone());
        if !matches!(c.state, ContainerState::Exited { .. }) {
            tracing::info!(message = "stopping a container of a pod that no longer exists", container = %c.id, pod = %c.pod_uid);
            let _ = ctx.runtime.stop(&c.id, Duration::from_secs(0), None).await;
        }
        if let Err(e) = ctx.runtime.remove(&c.id).await {
            tracing::debug!(message = "could not remove an orphan container", container = %c.id, error = %e);
        }
    }
    for uid in &orphan_pods {
        let _ = ctx.runtime.remove_pod(uid).await;
    }
    // Keep the running instance and the newest exited one (for `logs --previous`).
    for (_, mut v) in by_name {
        v.sort_by_key(|c| std::cmp::Reverse(c.attempt));
        for old in v.iter().skip(2).filter(|c| matches!(c.state, ContainerState::Exited { .. })) {
            if let Err(e) = ctx.runtime.remove(&old.id).await {
                tracing::debug!(message = "could not remove an old container", container = %old.id, error = %e);
            }
        }
    }
    for uid in ctx.network.sandboxes().await {
        if !known.contains(&uid) {
            tracing::info!(message = "removing the sandbox of a pod that no longer exists", pod = %uid);
            let _ = ctx.network.remove_sandbox(&uid).await;
        }
    }
    if let Ok(rd) = std::fs::read_dir(ctx.cfg.data_dir.join("pods")) {
        for e in rd.flatten() {
            let uid = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&uid) {
                if let Err(err) = volumes::teardown(&ctx.cfg.data_dir, &uid) {
                    tracing::warn!(message = "could not remove a pod's volumes", pod = %uid, error = %err);
                }
            }
        }
    }
    if health.disk_pressure.load(Ordering::Relaxed) {
        if let Some((total, avail)) = node::disk(&ctx.cfg.data_dir) {
            // Free up to 15 % available, a margin above the 10 % threshold.
            let want = (total as f64 * 0.15) as u64;
            let need = want.saturating_sub(avail);
            let mut in_use: HashSet<String> = containers.iter().map(|c| c.image_id.clone()).collect();
            in_use.extend(pinned.iter().cloned());
            let images = ctx.images.clone();
            match tokio::task::spawn_blocking(move || images.gc(&in_use, need)).await.unwrap_or(Ok(0)) {
                Ok(0) => {}
                Ok(freed) => {
                    tracing::info!(message = "image garbage collection", freed_bytes = freed, wanted_bytes = need)
                }
                Err(e) => tracing::warn!(message = "image garbage collection failed", error = %e),
            }
        }
    }
}
