//! The node agent (kelp's kubelet): registers the Node, renews its Lease, and runs the pods bound
//! to it on the built-in runtime. An API client only (kube-rs); never touches the store.

use std::net::IpAddr;
use std::path::PathBuf;

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
    pub registries_file: PathBuf,
    pub cluster_dns: IpAddr,
    pub cluster_domain: String,
    pub max_pods: u32,
    pub node_labels: Vec<String>,
    pub node_taints: Vec<String>,
}

/// Runs the agent until the process is asked to stop.
pub async fn run(_cfg: AgentConfig, _client: kube::Client) -> Result<(), AgentError> {
    Err(AgentError::Other("the node agent is not implemented yet".into()))
}
