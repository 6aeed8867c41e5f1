//! The pod network of this node and the pod sandboxes: a bridge holding the node's podCIDR
//! gateway, IPAM persisted on disk, one veth per pod, per-pod network/IPC/UTS namespaces kept as
//! bind-mounted files, and each pod's /etc/hosts and /etc/resolv.conf.
//!
//! INTERFACE CONTRACT (used by `agent`): the types and method signatures below are what the agent
//! codes against. Implementations may add fields/methods; changing these needs a note to the lead.
//!
//! Layout: `<state_dir>/ipam/<ip>` (content: the pod uid) holds the allocations;
//! `<run_dir>` is a private mount; `<run_dir>/<pod uid>/` holds `ns/{net,ipc,uts}`, `hosts`,
//! `resolv.conf` and `hostname`. The host end of a pod's veth is `veth` + 11 hex digits of the
//! SHA-256 of the pod uid; the pod end is `eth0`.

mod bridge;
mod files;
mod ipam;
mod netlink;
mod sandbox;

use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use netlink::{io_err, nl_err};

/// Errors of the pod network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Every address of the podCIDR is taken.
    #[error("no free pod IP in {0}")]
    Exhausted(String),
    /// A netlink (or nftables) operation failed.
    #[error("{context}: {message}")]
    Netlink { context: String, message: String },
    /// A file, mount or namespace operation failed.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The configuration or a request cannot be served as given.
    #[error("invalid pod network configuration: {0}")]
    Invalid(String),
}

/// How this node's pod network is set up.
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
    /// `nameserver` lines, in order.
    pub nameservers: Vec<String>,
    /// The `search` list.
    pub searches: Vec<String>,
    /// `options` entries (`ndots:5`, `edns0`, …).
    pub options: Vec<String>,
}

/// What the sandbox of one pod needs.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// metadata.uid: names the sandbox directory, the IPAM entry and the host veth.
    pub pod_uid: String,
    /// metadata.namespace.
    pub namespace: String,
    /// metadata.name.
    pub name: String,
    /// Pod hostname (spec.hostname or the pod name) and the FQDN when spec.subdomain is set.
    pub hostname: String,
    /// `<hostname>.<subdomain>.<namespace>.svc.<cluster domain>` when spec.subdomain is set.
    pub fqdn: Option<String>,
    /// spec.hostNetwork.
    pub host_network: bool,
    /// Written to resolv.conf.
    pub dns: DnsConfig,
    /// spec.hostAliases: (ip, hostnames).
    pub host_aliases: Vec<(String, Vec<String>)>,
}

/// A pod's sandbox: the namespaces its containers join and the files they mount.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// The pod's uid.
    pub pod_uid: String,
    /// `None` for hostNetwork pods.
    pub net_ns: Option<PathBuf>,
    /// The pod's IPC namespace file.
    pub ipc_ns: PathBuf,
    /// `None` for hostNetwork pods (they share the host's UTS namespace).
    pub uts_ns: Option<PathBuf>,
    /// The pod IP (`None` for hostNetwork pods: the agent reports the host IP).
    pub ip: Option<IpAddr>,
    /// Mounted at /etc/hosts.
    pub hosts_file: PathBuf,
    /// Mounted at /etc/resolv.conf.
    pub resolv_conf: PathBuf,
    /// Mounted at /etc/hostname.
    pub hostname_file: PathBuf,
}

/// The name of the pod's end of its veth.
const POD_IFNAME: &str = "eth0";

/// The host-side veth name of a pod: `veth` + the first 11 hex digits of SHA-256(pod uid)
/// (15 characters, the kernel's limit).
pub fn host_veth_name(pod_uid: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, pod_uid.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("veth{}", &hex[..11])
}

fn validate_bridge_name(name: &str) -> Result<(), NetworkError> {
    let ok = (1..=15).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::Invalid(format!(
            "bridge name {name:?} must be 1-15 characters, start with a letter and contain only letters, digits, \
             '-', '_' and '.'"
        )))
    }
}

fn validate_pod_uid(uid: &str) -> Result<(), NetworkError> {
    let ok = !uid.is_empty()
        && uid.len() <= 128
        && !uid.starts_with('.')
        && uid.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::Invalid(format!("pod uid {uid:?} is not usable as a sandbox name")))
    }
}

/// The pod network of this node: the bridge, IPAM and the pod sandboxes.
pub struct PodNetwork {
    cfg: NetworkConfig,
    net: Ipv4Net,
    gateway: Ipv4Addr,
    mtu: u32,
    host: Handle,
    ipam: ipam::Ipam,
    pod_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Held while (re)creating the bridge: its address check is a netlink dump, and the kernel
    /// refuses a second dump on a socket while one runs (EBUSY).
    bridge_lock: tokio::sync::Mutex<()>,
}

impl PodNetwork {
    /// Sets up the bridge, its gateway address, forwarding; idempotent.
    ///
    /// Also makes `run_dir` a private mount, installs the outbound masquerade (when the `nft`
    /// binary exists) and releases IPAM entries and bridge ports whose sandbox no longer exists
    /// (after a reboot or a crash half-way through a sandbox).
    pub async fn new(cfg: NetworkConfig) -> Result<Self, NetworkError> {
        validate_bridge_name(&cfg.bridge)?;
        let net = match cfg.pod_cidr {
            ipnet::IpNet::V4(net) => net.trunc(),
            ipnet::IpNet::V6(net) => {
                return Err(NetworkError::Invalid(format!("podCIDR {net}: only IPv4 pod networks are supported")))
            }
        };
        if net.prefix_len() > 30 {
            return Err(NetworkError::Invalid(format!(
                "podCIDR {net} has no room for pods (a /30 or larger is needed)"
            )));
        }
        if let Some(mtu) = cfg.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(NetworkError::Invalid(format!("MTU {mtu} is outside 68-65535")));
            }
        }
        let gateway = net.hosts().next().expect("a /30 or larger has hosts");
        for dir in [&cfg.state_dir, &cfg.run_dir] {
            std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        }
        sandbox::ensure_private_mount(&cfg.run_dir)?;
        let host = netlink::host_handle()?;
        let mtu = match cfg.mtu {
            Some(mtu) => mtu,
            None => netlink::default_route_mtu(&host).await?,
        };
        bridge::ensure_bridge(&host, &cfg.bridge, gateway, net.prefix_len(), mtu).await?;
        bridge::enable_ip_forward()?;
        if bridge::have_nft() {
            bridge::ensure_masquerade(&cfg.bridge, net)?;
        } else {
            tracing::warn!("the nft binary is missing: pod traffic leaving the node is not masqueraded");
        }
        let ipam = ipam::Ipam::open(&cfg.state_dir.join("ipam"), net, gateway)?;
        let this = PodNetwork {
            cfg,
            net,
            gateway,
            mtu,
            host,
            ipam,
            pod_locks: Default::default(),
            bridge_lock: Default::default(),
        };
        this.collect_garbage().await?;
        tracing::info!(bridge = %this.cfg.bridge, cidr = %net, %gateway, mtu, "pod network ready");
        Ok(this)
    }

    /// The node's podCIDR.
    pub fn pod_cidr(&self) -> Ipv4Net {
        self.net
    }

    /// The bridge's address, the pods' default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The MTU of pod interfaces.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The configuration this network was set up with.
    pub fn config(&self) -> &NetworkConfig {
        &self.cfg
    }

    fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.cfg.run_dir.join(pod_uid)
    }

    fn pod_lock(&self, pod_uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.pod_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(pod_uid.to_owned()).or_default().clone()
    }

    /// Creates the pod's sandbox, or returns the existing one (idempotent; survives agent restarts).
    ///
    /// A sandbox left incomplete (a crash half-way) is completed; one created by this call is
    /// removed again if a later step fails (e.g. [`NetworkError::Exhausted`]). The hostname is
    /// truncated to 63 characters like the kubelet does.
    ///
    /// hostNetwork pods get only an IPC namespace; their hosts file is the node's `/etc/hosts`
    /// plus the HostAliases section and their hostname file holds the node's hostname (they share
    /// its UTS namespace), as with the kubelet.
    pub async fn create_sandbox(&self, cfg: &SandboxConfig) -> Result<Sandbox, NetworkError> {
        validate_pod_uid(&cfg.pod_uid)?;
        let lock = self.pod_lock(&cfg.pod_uid);
        let _guard = lock.lock().await;
        let existed = self.pod_dir(&cfg.pod_uid).exists();
        let result = self.build_sandbox(cfg).await;
        if let Err(e) = &result {
            if !existed {
                if let Err(cleanup) = self.destroy_sandbox(&cfg.pod_uid).await {
                    tracing::warn!(pod_uid = %cfg.pod_uid, error = %cleanup, "cleaning up a failed sandbox");
                }
            }
            tracing::warn!(pod_uid = %cfg.pod_uid, error = %e, "creating the pod sandbox failed");
        }
        result
    }

    async fn build_sandbox(&self, cfg: &SandboxConfig) -> Result<Sandbox, NetworkError> {
        let uid = cfg.pod_uid.as_str();
        let dir = self.pod_dir(uid);
        let ns_dir = dir.join("ns");
        std::fs::create_dir_all(&ns_dir).map_err(io_err(format!("creating {}", ns_dir.display())))?;
        let sb = self.sandbox_paths(uid, !cfg.host_network, None);
        if cfg.host_network {
            if !sandbox::is_ns_file(&sb.ipc_ns) {
                sandbox::remove_ns_file(&sb.ipc_ns)?;
                sandbox::create_namespaces(&ns_dir, &[sandbox::IPC], None).await?;
            }
            let node_hosts = match std::fs::read_to_string("/etc/hosts") {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(io_err("reading /etc/hosts")(e)),
            };
            let node_hostname = nix::unistd::gethostname()
                .map_err(|e| io_err("reading the node's hostname")(e.into()))?
                .to_string_lossy()
                .into_owned();
            self.write_files(
                &sb,
                &node_hostname,
                &files::host_network_hosts_content(&node_hosts, &cfg.host_aliases),
                &cfg.dns,
            )?;
            tracing::info!(pod_uid = uid, "hostNetwork sandbox ready");
            return Ok(sb);
        }
        let hostname = files::truncate_hostname(&cfg.hostname);
        if hostname.is_empty() {
            return Err(NetworkError::Invalid(format!("pod {}/{} has an empty hostname", cfg.namespace, cfg.name)));
        }
        let kinds = [sandbox::NET, sandbox::IPC, sandbox::UTS];
        if !kinds.iter().all(|k| sandbox::is_ns_file(&ns_dir.join(k))) {
            for k in kinds {
                sandbox::remove_ns_file(&ns_dir.join(k))?;
            }
            sandbox::create_namespaces(&ns_dir, &kinds, Some(hostname)).await?;
        }
        let ip = self.ipam.allocate(uid)?;
        self.ensure_pod_link(uid, &ns_dir.join(sandbox::NET), ip).await?;
        let hosts = files::hosts_content(&ip.to_string(), hostname, cfg.fqdn.as_deref(), &cfg.host_aliases);
        self.write_files(&sb, hostname, &hosts, &cfg.dns)?;
        tracing::info!(pod_uid = uid, %ip, "pod sandbox ready");
        Ok(Sandbox { ip: Some(IpAddr::V4(ip)), ..sb })
    }

    fn write_files(&self, sb: &Sandbox, hostname: &str, hosts: &str, dns: &DnsConfig) -> Result<(), NetworkError> {
        // hosts last: its presence marks a complete sandbox.
        for (path, content) in [
            (&sb.hostname_file, format!("{hostname}\n")),
            (&sb.resolv_conf, files::resolv_conf_content(dns)),
            (&sb.hosts_file, hosts.to_owned()),
        ] {
            files::write_once(path, &content).map_err(io_err(format!("writing {}", path.display())))?;
        }
        Ok(())
    }

    fn sandbox_paths(&self, pod_uid: &str, own_network: bool, ip: Option<IpAddr>) -> Sandbox {
        let dir = self.pod_dir(pod_uid);
        let ns = dir.join("ns");
        Sandbox {
            pod_uid: pod_uid.to_owned(),
            net_ns: own_network.then(|| ns.join(sandbox::NET)),
            ipc_ns: ns.join(sandbox::IPC),
            uts_ns: own_network.then(|| ns.join(sandbox::UTS)),
            ip,
            hosts_file: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            hostname_file: dir.join("hostname"),
        }
    }

    /// The bridge's link index; the bridge is set up again if it vanished or went down.
    async fn bridge_index(&self) -> Result<u32, NetworkError> {
        if let Some(link) = netlink::link_by_name(&self.host, &self.cfg.bridge).await? {
            if bridge::is_bridge(&link) && netlink::link_is_up(&link) {
                return Ok(link.header.index);
            }
        }
        let _guard = self.bridge_lock.lock().await;
        bridge::ensure_bridge(&self.host, &self.cfg.bridge, self.gateway, self.net.prefix_len(), self.mtu).await
    }

    /// Creates (or repairs) the pod's veth pair: host end enslaved to the bridge, `eth0` in the
    /// pod with `ip`, `lo` up, the default route via the gateway, the MTU.
    async fn ensure_pod_link(&self, pod_uid: &str, netns: &Path, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let bridge = &self.cfg.bridge;
        let br = self.bridge_index().await?;
        let host_name = host_veth_name(pod_uid);
        let pod = netlink::netns_handle(netns).await?;
        let have_host = netlink::link_by_name(&self.host, &host_name).await?.is_some();
        let have_pod = netlink::link_by_name(&pod, POD_IFNAME).await?.is_some();
        if !(have_host && have_pod) {
            netlink::delete_link(&self.host, &host_name).await?;
            netlink::delete_link(&pod, POD_IFNAME).await?;
            let ns_file = File::open(netns).map_err(io_err(format!("opening {}", netns.display())))?;
            let peer = LinkMessageBuilder::<LinkUnspec>::new()
                .name(POD_IFNAME)
                .mtu(self.mtu)
                .setns_by_fd(ns_file.as_raw_fd())
                .build();
            let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
                .name(host_name.clone())
                .mtu(self.mtu)
                .controller(br)
                .up()
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                .build();
            self.host.link().add(veth).execute().await.map_err(nl_err(format!("creating veth {host_name}")))?;
            drop(ns_file);
        }

        let host_link = netlink::link_by_name(&self.host, &host_name).await?.ok_or_else(|| NetworkError::Netlink {
            context: format!("setting up veth {host_name}"),
            message: "the link vanished".into(),
        })?;
        let index = host_link.header.index;
        if netlink::link_controller(&host_link) != Some(br)
            || !netlink::link_is_up(&host_link)
            || netlink::link_mtu(&host_link) != Some(self.mtu)
        {
            let msg = LinkUnspec::new_with_index(index).mtu(self.mtu).controller(br).up().build();
            self.host
                .link()
                .set(msg)
                .execute()
                .await
                .map_err(nl_err(format!("attaching {host_name} to bridge {bridge}")))?;
        }
        // Hairpin lets a pod reach itself through a service address.
        self.host
            .link()
            .set_port(LinkBridgePort::new(index).hairpin(true).build())
            .execute()
            .await
            .map_err(nl_err(format!("enabling hairpin on {host_name}")))?;

        let lo = netlink::link_by_name(&pod, "lo").await?.ok_or_else(|| NetworkError::Netlink {
            context: "setting up the pod's loopback".into(),
            message: "no lo in the pod network namespace".into(),
        })?;
        if !netlink::link_is_up(&lo) {
            netlink::set_up(&pod, lo.header.index, "lo", None).await?;
        }
        let eth0 = netlink::link_by_name(&pod, POD_IFNAME).await?.ok_or_else(|| NetworkError::Netlink {
            context: format!("setting up the pod's {POD_IFNAME}"),
            message: "the link is missing in the pod network namespace".into(),
        })?;
        let eth0_index = eth0.header.index;
        netlink::ensure_sole_ipv4(&pod, eth0_index, POD_IFNAME, ip, self.net.prefix_len()).await?;
        if !netlink::link_is_up(&eth0) || netlink::link_mtu(&eth0) != Some(self.mtu) {
            netlink::set_up(&pod, eth0_index, POD_IFNAME, Some(self.mtu)).await?;
        }
        netlink::ensure_default_route(&pod, eth0_index, self.gateway).await?;
        Ok(())
    }

    /// The sandbox of a pod, if it exists (complete: namespaces, IP and files).
    pub async fn sandbox(&self, pod_uid: &str) -> Option<Sandbox> {
        validate_pod_uid(pod_uid).ok()?;
        let paths = self.sandbox_paths(pod_uid, true, None);
        if !sandbox::is_ns_file(&paths.ipc_ns) || !paths.hosts_file.exists() {
            return None;
        }
        let own_network = paths.net_ns.as_deref().is_some_and(sandbox::is_ns_file);
        if !own_network {
            return Some(self.sandbox_paths(pod_uid, false, None));
        }
        let ip = match self.ipam.lookup(pod_uid) {
            Ok(Some(ip)) => ip,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(pod_uid, error = %e, "reading the pod's IP allocation");
                return None;
            }
        };
        Some(Sandbox { ip: Some(IpAddr::V4(ip)), ..paths })
    }

    /// A TCP connection to `localhost:port` inside the pod's network namespace (port-forward):
    /// the socket is made on a short-lived thread that joined the namespace, and stays in it.
    /// hostNetwork pods are reached on the host's loopback.
    pub async fn connect(&self, pod_uid: &str, port: u16) -> Result<tokio::net::TcpStream, NetworkError> {
        let sandbox = self
            .sandbox(pod_uid)
            .await
            .ok_or_else(|| NetworkError::Invalid(format!("pod {pod_uid} has no sandbox on this node")))?;
        let target = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let what = format!("failed to connect to localhost:{port} inside the network namespace of pod {pod_uid}");
        let stream = match sandbox.net_ns {
            None => std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_secs(5))
                .map_err(io_err(what))?,
            Some(ns) => {
                netlink::on_own_thread("kelp-portfwd", move || {
                    let f = File::open(&ns).map_err(io_err(format!("opening {}", ns.display())))?;
                    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| io_err(format!("joining network namespace {}", ns.display()))(e.into()))?;
                    std::net::TcpStream::connect_timeout(&target, std::time::Duration::from_secs(5))
                        .map_err(io_err(what))
                })
                .await?
            }
        };
        stream.set_nonblocking(true).map_err(io_err("port-forward socket"))?;
        let _ = stream.set_nodelay(true);
        tokio::net::TcpStream::from_std(stream).map_err(io_err("port-forward socket"))
    }

    /// The IP allocated to a pod, if any (also after an agent restart).
    pub fn pod_ip(&self, pod_uid: &str) -> Result<Option<IpAddr>, NetworkError> {
        Ok(self.ipam.lookup(pod_uid)?.map(IpAddr::V4))
    }

    /// Pod uids with a sandbox on this node.
    ///
    /// Includes incomplete sandboxes (directories under `run_dir`), so that orphan cleanup can
    /// remove them.
    pub async fn sandboxes(&self) -> Vec<String> {
        let mut out: Vec<String> = match std::fs::read_dir(&self.cfg.run_dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| validate_pod_uid(name).is_ok())
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %self.cfg.run_dir.display(), error = %e, "listing pod sandboxes");
                Vec::new()
            }
        };
        out.sort();
        out
    }

    /// Tears a sandbox down: veth, IP released, namespace files unmounted and removed.
    pub async fn remove_sandbox(&self, pod_uid: &str) -> Result<(), NetworkError> {
        validate_pod_uid(pod_uid)?;
        let lock = self.pod_lock(pod_uid);
        let guard = lock.lock().await;
        self.destroy_sandbox(pod_uid).await?;
        drop(guard);
        self.pod_locks.lock().unwrap_or_else(|e| e.into_inner()).remove(pod_uid);
        Ok(())
    }

    async fn destroy_sandbox(&self, pod_uid: &str) -> Result<(), NetworkError> {
        if netlink::delete_link(&self.host, &host_veth_name(pod_uid)).await? {
            tracing::debug!(pod_uid, "deleted the pod's veth");
        }
        for ip in self.ipam.release(pod_uid)? {
            tracing::debug!(pod_uid, %ip, "released the pod's IP");
        }
        let dir = self.pod_dir(pod_uid);
        for kind in [sandbox::NET, sandbox::IPC, sandbox::UTS] {
            sandbox::remove_ns_file(&dir.join("ns").join(kind))?;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("removing {}", dir.display()))(e)),
        }
        tracing::info!(pod_uid, "pod sandbox removed");
        Ok(())
    }

    /// Releases what belongs to no sandbox: IPAM entries of pods without a network namespace
    /// (after a reboot, or a crash before the namespace existed) and veths on the bridge that are
    /// no live sandbox's.
    async fn collect_garbage(&self) -> Result<(), NetworkError> {
        let live: Vec<String> = self
            .sandboxes()
            .await
            .into_iter()
            .filter(|uid| sandbox::is_ns_file(&self.pod_dir(uid).join("ns").join(sandbox::NET)))
            .collect();
        for (ip, uid) in self.ipam.allocations()? {
            if !live.contains(&uid) {
                tracing::info!(pod_uid = %uid, %ip, "releasing the IP of a pod without a sandbox");
                self.ipam.release(&uid)?;
            }
        }
        let Some(bridge) = netlink::link_by_name(&self.host, &self.cfg.bridge).await? else { return Ok(()) };
        let wanted: Vec<String> = live.iter().map(|uid| host_veth_name(uid)).collect();
        for link in netlink::links(&self.host).await? {
            let Some(name) = netlink::link_name(&link) else { continue };
            if netlink::link_controller(&link) == Some(bridge.header.index)
                && name.starts_with("veth")
                && !wanted.iter().any(|w| w == name)
            {
                tracing::info!(link = name, "deleting a stale pod veth");
                let name = name.to_owned();
                netlink::delete_link(&self.host, &name).await?;
            }
        }
        Ok(())
    }

    /// Removes everything this network made on the node: every sandbox, the bridge, the
    /// masquerade table and the private mount of `run_dir` (for tests and `kelp` uninstall).
    pub async fn teardown(&self) -> Result<(), NetworkError> {
        for uid in self.sandboxes().await {
            self.remove_sandbox(&uid).await?;
        }
        netlink::delete_link(&self.host, &self.cfg.bridge).await?;
        if bridge::have_nft() {
            bridge::remove_masquerade(&self.cfg.bridge)?;
        }
        sandbox::remove_private_mount(&self.cfg.run_dir)?;
        tracing::info!(bridge = %self.cfg.bridge, "pod network removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names() {
        let a = host_veth_name("7d4c1f2e-0b6a-4c55-9f0e-2f1a3b4c5d6e");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("veth"));
        assert_eq!(a, host_veth_name("7d4c1f2e-0b6a-4c55-9f0e-2f1a3b4c5d6e"));
        assert_ne!(a, host_veth_name("7d4c1f2e-0b6a-4c55-9f0e-2f1a3b4c5d6f"));
    }

    #[test]
    fn name_validation() {
        assert!(validate_bridge_name("kelp0").is_ok());
        assert!(validate_bridge_name("kt3a9f0c").is_ok());
        assert!(validate_bridge_name("0bad").is_err());
        assert!(validate_bridge_name("much-too-long-name").is_err());
        assert!(validate_bridge_name("a b").is_err());
        assert!(validate_pod_uid("7d4c1f2e-0b6a-4c55-9f0e-2f1a3b4c5d6e").is_ok());
        assert!(validate_pod_uid("..").is_err());
        assert!(validate_pod_uid("a/b").is_err());
        assert!(validate_pod_uid("").is_err());
    }
}
