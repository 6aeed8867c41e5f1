//! The Node object: registration (capacity, allocatable, nodeInfo, addresses, labels, taints),
//! its conditions from real checks (memory, disk, PIDs, runtime network), the status heartbeat and
//! the Lease in `kube-node-lease` renewed every 10 s.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use super::{AgentConfig, AgentError};

pub const KUBELET_VERSION: &str = "v1.33.0";
/// Memory kept free (upstream's default hard eviction threshold `memory.available<100Mi`).
const MEMORY_RESERVE: i64 = 100 << 20;
/// Disk pressure below this share of free space on the data dir's filesystem (`nodefs.available<10%`).
const DISK_MIN_FREE: f64 = 0.10;
const LEASE_SECONDS: i32 = 40;
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// Status is posted at least this often even when nothing changed.
const STATUS_REPORT: Duration = Duration::from_secs(60);

/// What the node has.
#[derive(Clone, Debug, Default)]
pub struct Capacity {
    pub cpu_millis: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: u32,
}

impl Capacity {
    pub fn read(data_dir: &Path, pods: u32) -> Capacity {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as i64;
        let memory = meminfo("MemTotal").unwrap_or(0);
        let (total, _) = disk(data_dir).unwrap_or((0, 0));
        Capacity { cpu_millis: cpus * 1000, memory, ephemeral_storage: total as i64, pods }
    }

    /// Allocatable: capacity minus the eviction thresholds.
    pub fn allocatable(&self) -> Capacity {
        Capacity {
            cpu_millis: self.cpu_millis,
            memory: (self.memory - MEMORY_RESERVE).max(0),
            ephemeral_storage: (self.ephemeral_storage as f64 * (1.0 - DISK_MIN_FREE)) as i64,
            pods: self.pods,
        }
    }

    fn quantities(&self) -> BTreeMap<String, Quantity> {
        let cpu = if self.cpu_millis % 1000 == 0 {
            format!("{}", self.cpu_millis / 1000)
        } else {
            format!("{}m", self.cpu_millis)
        };
        [
            ("cpu".to_string(), Quantity(cpu)),
            ("memory".to_string(), Quantity(format!("{}Ki", self.memory / 1024))),
            ("ephemeral-storage".to_string(), Quantity(format!("{}", self.ephemeral_storage))),
            ("pods".to_string(), Quantity(self.pods.to_string())),
        ]
        .into_iter()
        .collect()
    }
}

/// A `/proc/meminfo` field in bytes.
fn meminfo(field: &str) -> Option<i64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with(&format!("{field}:")))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// (total, available) bytes of the filesystem holding `p`.
pub fn disk(p: &Path) -> Option<(u64, u64)> {
    let mut probe = p.to_path_buf();
    while !probe.exists() {
        probe = probe.parent()?.to_path_buf();
    }
    let st = nix::sys::statvfs::statvfs(&probe).ok()?;
    let frag = st.fragment_size() as u64;
    Some((st.blocks() as u64 * frag, st.blocks_available() as u64 * frag))
}

/// The node's pressure checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

pub fn pressure(data_dir: &Path) -> Pressure {
    let memory = meminfo("MemAvailable").is_some_and(|a| a < MEMORY_RESERVE);
    let disk = disk(data_dir).is_some_and(|(t, a)| t > 0 && (a as f64) < t as f64 * DISK_MIN_FREE);
    let pid = (|| {
        let max: f64 = std::fs::read_to_string("/proc/sys/kernel/pid_max").ok()?.trim().parse().ok()?;
        let load = std::fs::read_to_string("/proc/loadavg").ok()?;
        let total: f64 = load.split_whitespace().nth(3)?.split('/').nth(1)?.parse().ok()?;
        Some(total > max * 0.95)
    })()
    .unwrap_or(false);
    Pressure { memory, disk, pid }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn os_image() -> String {
    let s = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn node_info() -> NodeSystemInfo {
    let uts = nix::sys::utsname::uname().ok();
    NodeSystemInfo {
        architecture: arch().into(),
        boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
        container_runtime_version: format!("kelp://{}", env!("CARGO_PKG_VERSION")),
        kernel_version: uts.map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
        kube_proxy_version: String::new(),
        kubelet_version: KUBELET_VERSION.into(),
        machine_id: read_trim("/etc/machine-id"),
        operating_system: "linux".into(),
        os_image: os_image(),
        system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
        swap: None,
    }
}

/// `key=value` labels.
pub fn parse_labels(v: &[String]) -> Result<BTreeMap<String, String>, AgentError> {
    v.iter()
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(AgentError::Other(format!("invalid node label {s:?}: want key=value"))),
        })
        .collect()
}

/// `key[=value]:Effect` taints.
pub fn parse_taints(v: &[String]) -> Result<Vec<Taint>, AgentError> {
    v.iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (kv, effect) = s
                .rsplit_once(':')
                .ok_or_else(|| AgentError::Other(format!("invalid node taint {s:?}: want key=value:Effect")))?;
            if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                return Err(AgentError::Other(format!(
                    "invalid node taint {s:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
                )));
            }
            let (k, val) = match kv.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (kv, None),
            };
            if k.is_empty() {
                return Err(AgentError::Other(format!("invalid node taint {s:?}: empty key")));
            }
            Ok(Taint { key: k.into(), value: val, effect: effect.into(), time_added: None })
        })
        .collect()
}

/// The labels the agent owns on its Node.
pub fn node_labels(cfg: &AgentConfig) -> Result<BTreeMap<String, String>, AgentError> {
    let mut l = BTreeMap::new();
    l.insert("kubernetes.io/hostname".to_string(), cfg.node_name.clone());
    l.insert("kubernetes.io/os".to_string(), "linux".to_string());
    l.insert("kubernetes.io/arch".to_string(), arch().to_string());
    l.insert("beta.kubernetes.io/os".to_string(), "linux".to_string());
    l.insert("beta.kubernetes.io/arch".to_string(), arch().to_string());
    if cfg.server_node {
        l.insert("node-role.kubernetes.io/control-plane".to_string(), "true".to_string());
        l.insert("node-role.kubernetes.io/master".to_string(), "true".to_string());
    }
    l.extend(parse_labels(&cfg.node_labels)?);
    Ok(l)
}

/// Shared view of the node's health, updated by the heartbeat.
#[derive(Default)]
pub struct Health {
    /// The pod network is up (Ready needs it).
    pub network_ready: AtomicBool,
    pub disk_pressure: AtomicBool,
    /// Wakes the heartbeat early (the network became ready).
    pub changed: tokio::sync::Notify,
}

fn cond(ty: &str, status: bool, reason: &str, message: &str) -> NodeCondition {
    NodeCondition {
        type_: ty.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        ..Default::default()
    }
}

/// The node's conditions now.
pub fn conditions(p: Pressure, network_ready: bool) -> Vec<NodeCondition> {
    vec![
        if p.memory {
            cond("MemoryPressure", true, "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
        } else {
            cond("MemoryPressure", false, "KubeletHasSufficientMemory", "kubelet has sufficient memory available")
        },
        if p.disk {
            cond("DiskPressure", true, "KubeletHasDiskPressure", "kubelet has disk pressure")
        } else {
            cond("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure")
        },
        if p.pid {
            cond("PIDPressure", true, "KubeletHasInsufficientPID", "kubelet has insufficient PID available")
        } else {
            cond("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available")
        },
        if network_ready {
            cond("Ready", true, "KubeletReady", "kubelet is posting ready status")
        } else {
            cond(
                "Ready",
                false,
                "KubeletNotReady",
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:the node has no podCIDR yet",
            )
        },
    ]
}

fn addresses(cfg: &AgentConfig) -> Vec<NodeAddress> {
    let mut a: Vec<NodeAddress> =
        cfg.node_ips.iter().map(|ip| NodeAddress { type_: "InternalIP".into(), address: ip.to_string() }).collect();
    let host = hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| cfg.node_name.clone());
    a.push(NodeAddress { type_: "Hostname".into(), address: host });
    a
}

/// The node's whole status (conditions with fresh heartbeat times, transition times kept from `old`).
fn status(cfg: &AgentConfig, cap: &Capacity, conds: Vec<NodeCondition>, old: Option<&NodeStatus>) -> NodeStatus {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let conds = conds
        .into_iter()
        .map(|mut c| {
            let prev = old.and_then(|o| o.conditions.as_ref()).and_then(|cs| cs.iter().find(|p| p.type_ == c.type_));
            c.last_heartbeat_time = Some(now.clone());
            c.last_transition_time = match prev {
                Some(p) if p.status == c.status && p.last_transition_time.is_some() => p.last_transition_time.clone(),
                _ => Some(now.clone()),
            };
            c
        })
        .collect();
    NodeStatus {
        capacity: Some(cap.quantities()),
        allocatable: Some(cap.allocatable().quantities()),
        node_info: Some(node_info()),
        addresses: Some(addresses(cfg)),
        conditions: Some(conds),
        daemon_endpoints: Some(k8s_openapi::api::core::v1::NodeDaemonEndpoints {
            kubelet_endpoint: Some(k8s_openapi::api::core::v1::DaemonEndpoint { port: i32::from(cfg.kubelet_port) }),
        }),
        ..Default::default()
    }
}

/// Creates the Node, or brings an existing one's labels and status up to date.
pub async fn register(client: &kube::Client, cfg: &AgentConfig, cap: &Capacity) -> Result<Node, AgentError> {
    let api: Api<Node> = Api::all(client.clone());
    let labels = node_labels(cfg)?;
    let taints = parse_taints(&cfg.node_taints)?;
    let st = status(cfg, cap, conditions(pressure(&cfg.data_dir), false), None);
    let node = Node {
        metadata: ObjectMeta {
            name: Some(cfg.node_name.clone()),
            labels: Some(labels.clone()),
            annotations: Some([("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())].into_iter().collect()),
            ..Default::default()
        },
        spec: Some(NodeSpec { taints: if taints.is_empty() { None } else { Some(taints) }, ..Default::default() }),
        status: Some(st.clone()),
    };
    loop {
        match api.create(&PostParams::default(), &node).await {
            Ok(n) => {
                tracing::info!(message = "registered the node", node = %cfg.node_name);
                return Ok(n);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let patch = json!({"metadata": {"labels": labels}});
                api.patch(&cfg.node_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                let n = api
                    .patch_status(&cfg.node_name, &PatchParams::default(), &Patch::Merge(&json!({"status": st})))
                    .await?;
                tracing::info!(message = "the node was registered before", node = %cfg.node_name);
                return Ok(n);
            }
            Err(e) => {
                tracing::warn!(message = "could not register the node, retrying", error = %e);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Waits for the server to give the node its podCIDR.
pub async fn wait_pod_cidr(client: &kube::Client, name: &str) -> Result<ipnet::IpNet, AgentError> {
    let api: Api<Node> = Api::all(client.clone());
    let mut logged = false;
    loop {
        match api.get(name).await {
            Ok(n) => {
                if let Some(c) = n.spec.and_then(|s| s.pod_cidr).filter(|s| !s.is_empty()) {
                    return c.parse().map_err(|e| AgentError::Other(format!("invalid podCIDR {c:?}: {e}")));
                }
                if !logged {
                    tracing::info!(message = "waiting for the node's podCIDR");
                    logged = true;
                }
            }
            Err(e) => tracing::warn!(message = "could not read the node", error = %e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Lease renewal and status heartbeat, forever.
pub async fn heartbeat(
    client: kube::Client,
    cfg: Arc<AgentConfig>,
    cap: Capacity,
    health: Arc<Health>,
    node_uid: String,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let mut last_post: Option<(Instant, Vec<(String, String)>)> = None;
    let mut old: Option<NodeStatus> = None;
    loop {
        if let Err(e) = renew_lease(&leases, &cfg.node_name, &node_uid).await {
            tracing::warn!(message = "could not renew the node lease", error = %e);
        }
        let p = pressure(&cfg.data_dir);
        health.disk_pressure.store(p.disk, Ordering::Relaxed);
        let conds = conditions(p, health.network_ready.load(Ordering::Relaxed));
        let sig: Vec<(String, String)> = conds.iter().map(|c| (c.type_.clone(), c.status.clone())).collect();
        let due = match &last_post {
            None => true,
            Some((at, prev)) => *prev != sig || at.elapsed() >= STATUS_REPORT,
        };
        if due {
            let st = status(&cfg, &cap, conds, old.as_ref());
            match nodes
                .patch_status(&cfg.node_name, &PatchParams::default(), &Patch::Merge(&json!({"status": st})))
                .await
            {
                Ok(n) => {
                    old = n.status;
                    last_post = Some((Instant::now(), sig));
                }
                Err(e) => tracing::warn!(message = "could not update the node status", error = %e),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RENEW_INTERVAL) => {}
            _ = health.changed.notified() => {}
        }
    }
}

async fn renew_lease(api: &Api<Lease>, name: &str, node_uid: &str) -> Result<(), kube::Error> {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    match api.get_opt(name).await? {
        Some(_) => {
            let patch =
                json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("kube-node-lease".into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: name.into(),
                        uid: node_uid.into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.into()),
                    lease_duration_seconds: Some(LEASE_SECONDS),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_taints_parse() {
        let l = parse_labels(&["a=b".into(), "x/y=".into()]).unwrap();
        assert_eq!(l["a"], "b");
        assert_eq!(l["x/y"], "");
        assert!(parse_labels(&["nope".into()]).is_err());
        let t = parse_taints(&["k=v:NoSchedule".into(), "only:NoExecute".into()]).unwrap();
        assert_eq!((t[0].key.as_str(), t[0].value.as_deref(), t[0].effect.as_str()), ("k", Some("v"), "NoSchedule"));
        assert_eq!((t[1].key.as_str(), t[1].value.as_deref()), ("only", None));
        assert!(parse_taints(&["k=v:Sometimes".into()]).is_err());
        assert!(parse_taints(&["k=v".into()]).is_err());
    }

    #[test]
    fn capacity_is_real_and_allocatable_keeps_the_reserve() {
        let c = Capacity::read(Path::new("/"), 110);
        assert!(c.cpu_millis >= 1000);
        assert!(c.memory > MEMORY_RESERVE);
        assert!(c.ephemeral_storage > 0);
        let a = c.allocatable();
        assert_eq!(a.memory, c.memory - MEMORY_RESERVE);
        assert_eq!(c.quantities()["pods"].0, "110");
        let conds = conditions(Pressure::default(), true);
        assert_eq!(conds.iter().map(|c| c.status.as_str()).collect::<Vec<_>>(), ["False", "False", "False", "True"]);
        assert_eq!(conditions(Pressure { disk: true, ..Default::default() }, false)[1].status, "True");
    }
}
