//! The pod network of this node and the pod sandboxes: a bridge holding the node's podCIDR
//! gateway, IPAM persisted on disk, one veth per pod, per-pod network/IPC/UTS namespaces kept as
//! bind-mounted files, and each pod's /etc/hosts and /etc/resolv.conf.
//!
//! INTERFACE CONTRACT (used by `agent`): the types and method signatures below are what the agent
//! codes against. Implementations may add fields/methods; changing these needs a note to the lead.

use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("no free pod IP in {0}")]
    Exhausted(String),
    #[error("{context}: {message}")]
    Netlink { context: String, message: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Bridge name (`kelp0`; tests use unique names).
    pub bridge: String,
    /// The node's podCIDR (a /24 from the server).
    pub pod_cidr: ipnet::IpNet,
    /// Persistent state (IPAM), e.g. `<data-dir>/agent/network`.
    pub state_dir: PathBuf,
    /// Namespace files and per-pod hosts/resolv.conf, e.g. `<run-dir>/pods`.
    pub run_dir: PathBuf,
    /// Pod interface MTU; `None` = the host's default route interface MTU.
    pub mtu: Option<u32>,
}

/// DNS settings written to the pod's resolv.conf (computed by the agent from dnsPolicy/dnsConfig).
#[derive(Clone, Debug, Default)]
pub struct DnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    /// Pod hostname (spec.hostname or the pod name) and the FQDN when spec.subdomain is set.
    pub hostname: String,
    pub fqdn: Option<String>,
    pub host_network: bool,
    pub dns: DnsConfig,
    /// spec.hostAliases: (ip, hostnames).
    pub host_aliases: Vec<(String, Vec<String>)>,
}

/// A pod's sandbox: the namespaces its containers join and the files they mount.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub pod_uid: String,
    /// `None` for hostNetwork pods.
    pub net_ns: Option<PathBuf>,
    pub ipc_ns: PathBuf,
    /// `None` for hostNetwork pods (they share the host's UTS namespace).
    pub uts_ns: Option<PathBuf>,
    /// The pod IP (`None` for hostNetwork pods: the agent reports the host IP).
    pub ip: Option<IpAddr>,
    pub hosts_file: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname_file: PathBuf,
}

pub struct PodNetwork {
    _cfg: NetworkConfig,
}

impl PodNetwork {
    /// Sets up the bridge, its gateway address, forwarding; idempotent.
    pub async fn new(cfg: NetworkConfig) -> Result<Self, NetworkError> {
        Ok(PodNetwork { _cfg: cfg })
    }

    /// Creates the pod's sandbox, or returns the existing one (idempotent; survives agent restarts).
    pub async fn create_sandbox(&self, cfg: &SandboxConfig) -> Result<Sandbox, NetworkError> {
        Err(NetworkError::Exhausted(cfg.pod_uid.clone()))
    }

    /// The sandbox of a pod, if it exists.
    pub async fn sandbox(&self, _pod_uid: &str) -> Option<Sandbox> {
        None
    }

    /// Pod uids with a sandbox on this node.
    pub async fn sandboxes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Tears a sandbox down: veth, IP released, namespace files unmounted and removed.
    pub async fn remove_sandbox(&self, _pod_uid: &str) -> Result<(), NetworkError> {
        Ok(())
    }
}
