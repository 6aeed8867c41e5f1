//! `kelp server`: the store, the API server, the PKI and the kubeconfig, started in order.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::agent::{self, AgentConfig};
use crate::apiserver::tokens::TokenSigner;
use crate::apiserver::{self, alloc, ApiConfig, ApiServer};
use crate::config::{AgentArgs, ImagesArgs, ImagesCommand, NodeArgs, ServerArgs};
use crate::image::{ImageStore, ImageStoreConfig};
use crate::pki::{self, Pki, SanInput};
use crate::store::sqlite::{SqliteBackend, SqliteConfig};

/// Paths under the data directory.
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn db(&self) -> PathBuf {
        self.root.join("server/db/state.db")
    }
    pub fn tls(&self) -> PathBuf {
        self.root.join("server/tls")
    }
    /// The node agent's state (`agent/images/` is the air-gap import folder, `agent/pod-manifests/`
    /// the static pods).
    pub fn agent(&self) -> PathBuf {
        self.root.join("agent")
    }
    /// The image store.
    pub fn image_store(&self) -> PathBuf {
        self.root.join("agent/image-store")
    }
}

/// The agent's configuration from the node flags.
#[allow(clippy::too_many_arguments)]
fn agent_config(
    data_dir: &std::path::Path,
    node_name: Option<&str>,
    node_ips: &[IpAddr],
    cluster_dns: IpAddr,
    cluster_domain: &str,
    node: &NodeArgs,
    server_node: bool,
) -> AgentConfig {
    let hostname =
        hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into()).to_lowercase();
    AgentConfig {
        node_name: node_name.map(str::to_string).unwrap_or(hostname),
        node_ips: if node_ips.is_empty() { host_addresses() } else { node_ips.to_vec() },
        data_dir: Layout { root: data_dir.to_path_buf() }.agent(),
        run_dir: node.run_dir.clone(),
        cgroup_root: node.cgroup_root.clone(),
        bridge_name: node.bridge_name.clone(),
        pod_log_dir: node.pod_log_dir.clone(),
        container_log_max_size: node.container_log_max_size,
        container_log_max_files: node.container_log_max_files,
        registries_file: node.private_registry.clone(),
        cluster_dns,
        cluster_domain: cluster_domain.to_string(),
        max_pods: node.max_pods,
        kubelet_port: node.kubelet_port,
        node_labels: node.node_labels.clone(),
        node_taints: node.node_taints.clone(),
        server_node,
    }
}

/// `kelp agent`: a node only, talking to the API server named in a kubeconfig.
pub async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading the kubeconfig {}", args.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading the kubeconfig {}", args.kubeconfig.display()))?;
    let client = kube::Client::try_from(config).context("building the API client")?;
    let cfg = agent_config(
        &args.data_dir,
        args.node_name.as_deref(),
        &args.node_ips,
        args.cluster_dns,
        &args.cluster_domain,
        &args.node,
        false,
    );
    tokio::select! {
        r = agent::run(cfg, client) => r.context("node agent")?,
        _ = wait_for_shutdown() => tracing::info!(message = "shutting down"),
    }
    Ok(())
}

/// `kelp hollow-nodes`: simulated nodes against the API server named in a kubeconfig.
pub async fn run_hollow_nodes(args: crate::config::HollowNodesArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading the kubeconfig {}", args.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading the kubeconfig {}", args.kubeconfig.display()))?;
    let client = kube::Client::try_from(config).context("building the API client")?;
    if args.lease_seconds == 0 {
        anyhow::bail!("--lease-seconds must be at least 1");
    }
    let cfg = crate::hollow::HollowConfig {
        count: args.count,
        name_prefix: args.name_prefix,
        lease_interval: std::time::Duration::from_secs(args.lease_seconds),
        cpu: args.cpu,
        memory: args.memory,
        pods: args.max_pods,
        ..Default::default()
    };
    tokio::select! {
        r = crate::hollow::run(client, cfg) => r.context("hollow nodes")?,
        _ = wait_for_shutdown() => tracing::info!(message = "shutting down"),
    }
    Ok(())
}

/// `kelp images import|ls|rm` on this node's store.
pub async fn images(args: ImagesArgs) -> anyhow::Result<()> {
    let layout = Layout { root: args.data_dir.clone() };
    let store = ImageStore::open(ImageStoreConfig {
        root: layout.image_store(),
        registries_file: PathBuf::from("/etc/kelp/registries.yaml"),
    })
    .with_context(|| format!("opening the image store {}", layout.image_store().display()))?;
    match args.command {
        ImagesCommand::Import { files } => {
            for f in files {
                let names = store.import(&f).await.with_context(|| format!("importing {}", f.display()))?;
                for n in names {
                    println!("imported {n}");
                }
            }
        }
        ImagesCommand::Ls => {
            println!("{:<60} {:<20} {:>10}", "IMAGE", "IMAGE ID", "SIZE");
            for img in store.list()? {
                let short = img.id.trim_start_matches("sha256:").chars().take(13).collect::<String>();
                let size = format!("{:.1}MB", img.size as f64 / 1e6);
                if img.names.is_empty() {
                    println!("{:<60} {:<20} {:>10}", "<none>", short, size);
                }
                for n in &img.names {
                    println!("{n:<60} {short:<20} {size:>10}");
                }
            }
        }
        ImagesCommand::Rm { images } => {
            for i in images {
                store.remove(&i).with_context(|| format!("removing {i}"))?;
                println!("deleted {i}");
            }
        }
    }
    Ok(())
}

/// The host's non-loopback addresses that are up (IPv4 first).
pub fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    // SAFETY: getifaddrs fills a linked list that we walk read-only and free with freeifaddrs.
    unsafe {
        let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null()
                || ifa.ifa_flags & (libc::IFF_UP as u32) == 0
                || ifa.ifa_flags & (libc::IFF_LOOPBACK as u32) != 0
            {
                continue;
            }
            match (*ifa.ifa_addr).sa_family as i32 {
                libc::AF_INET => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    out.push(IpAddr::from(u32::from_be(sa.sin_addr.s_addr).to_be_bytes()));
                }
                libc::AF_INET6 => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = std::net::Ipv6Addr::from(sa.sin6_addr.s6_addr);
                    // Link-local addresses are of no use to other nodes.
                    if ip.segments()[0] & 0xffc0 != 0xfe80 {
                        out.push(IpAddr::V6(ip));
                    }
                }
                _ => {}
            }
        }
        libc::freeifaddrs(ifap);
    }
    out.sort_by_key(|ip| ip.is_ipv6());
    out.dedup();
    out
}

/// Run the server until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let layout = Layout { root: args.data_dir.clone() };
    let node_ips = if args.node_ips.is_empty() { host_addresses() } else { args.node_ips.clone() };
    let advertise =
        args.advertise_address.or_else(|| node_ips.first().copied()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let service_ip = alloc::first_service_ip(&args.service_cidr).context("the service CIDR has no usable address")?;
    let hostname =
        hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into()).to_lowercase();

    let pki = Pki::load_or_create(
        &layout.tls(),
        &SanInput { hostname, node_ips: node_ips.clone(), service_ip, extra: args.tls_sans.clone() },
    )
    .with_context(|| format!("preparing certificates in {}", layout.tls().display()))?;

    let mut store_cfg = SqliteConfig::new(layout.db());
    store_cfg.compaction_interval = args.compaction_interval();
    store_cfg.compaction_retention = args.compaction_retention();
    let backend =
        SqliteBackend::open(store_cfg).with_context(|| format!("opening the store {}", layout.db().display()))?;

    crate::api::registry::serve_metrics_api(!args.disable.iter().any(|d| d == "metrics-server"));
    let signer = TokenSigner::load_or_create(&layout.tls().join("service-account.key"))
        .context("preparing the service-account signing key")?;
    let api = ApiServer::new(
        backend.clone(),
        ApiConfig {
            service_cidr: args.service_cidr,
            cluster_cidr: Some(args.cluster_cidr),
            node_port_range: (args.service_node_port_range.start, args.service_node_port_range.end),
            advertise_address: advertise,
            port: args.https_listen_port,
            watch_buffer_events: args.watch_buffer_events as usize,
        },
        Some(signer),
    )
    .await
    .context("starting the API server")?;

    let addr = SocketAddr::new(args.bind_address, args.https_listen_port);
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let tls = Arc::new(pki.server_config().context("building the TLS configuration")?);
    let pki = Arc::new(pki);
    let nodes = apiserver::node_proxy::NodeAccess::direct(pki.clone()).context("preparing the connection to agents")?;
    let _ = api.nodes.set(nodes);
    tokio::spawn(apiserver::serve_tls(api.clone(), listener, tls));

    tokio::spawn(apiserver::crds::run(api.clone()));
    let client = apiserver::client::in_process_client(api.clone());
    let mut tasks = Vec::new();
    if !args.disable_scheduler {
        tasks.push(tokio::spawn(crate::scheduler::run(client.clone())));
    }
    if !args.disable_controller_manager {
        tasks.extend(crate::controllers::spawn_all(
            client.clone(),
            crate::controllers::ClusterInfo { root_ca_pem: pki.ca_cert_pem.clone() },
        ));
    }
    apiserver::bootstrap::run(client, service_ip, advertise, args.https_listen_port)
        .await
        .context("creating the default objects")?;

    let url = format!("https://127.0.0.1:{}", args.https_listen_port);
    pki::write_private_file(&args.write_kubeconfig, pki.admin_kubeconfig(&url).as_bytes(), args.write_kubeconfig_mode)
        .with_context(|| format!("writing the kubeconfig {}", args.write_kubeconfig.display()))?;
    api.set_ready();
    tracing::info!(
        message = "kelp server ready",
        address = %addr,
        kubeconfig = %args.write_kubeconfig.display(),
        startup_ms = started.elapsed().as_millis() as u64,
    );
    let agent_task = (!args.disable_agent).then(|| {
        let cfg = agent_config(
            &args.data_dir,
            args.node_name.as_deref(),
            &node_ips,
            args.cluster_dns,
            &args.cluster_domain,
            &args.node,
            true,
        );
        let user = apiserver::UserInfo {
            name: format!("system:node:{}", cfg.node_name),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
        };
        let client = apiserver::client::in_process_client_as(api.clone(), user);
        tokio::spawn(async move {
            if let Err(e) = agent::run(cfg, client).await {
                tracing::error!(message = "the node agent stopped", error = %e);
            }
        })
    });

    wait_for_shutdown().await;
    if let Some(t) = agent_task {
        t.abort();
    }
    for t in tasks {
        t.abort();
    }
    tracing::info!(message = "shutting down");
    backend.close();
    Ok(())
}

async fn wait_for_shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
