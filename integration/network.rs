//! Pod networking with real namespaces, veths and a bridge (run as root).
//!
//! Every test has its own bridge (`kt` + 6 random characters), its own /24 out of 10.200-249.x.0
//! (checked against the host's addresses and routes) and its own temp directories; a Drop guard
//! removes links, mounts and nftables tables even when a test fails.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ipnet::Ipv4Net;
use kelp::network::{host_veth_name, DnsConfig, NetworkConfig, NetworkError, PodNetwork, Sandbox, SandboxConfig};
use nix::sched::{setns, CloneFlags};

fn random_suffix(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..n].to_owned()
}

static SUBNETS: Mutex<Vec<Ipv4Net>> = Mutex::new(Vec::new());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A /24 in 10.200.0.0-10.249.255.0 that no other test of this process holds and that overlaps
/// none of the host's addresses or routes.
fn unique_subnet() -> Ipv4Net {
    let used = crate::support::host_ipv4_routes_and_addresses();
    let pid = std::process::id();
    let mut taken = SUBNETS.lock().unwrap();
    for _ in 0..1000 {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst) + pid.wrapping_mul(7919);
        let net = Ipv4Net::new(Ipv4Addr::new(10, 200 + ((n / 256) % 50) as u8, (n % 256) as u8, 0), 24).unwrap();
        let prefix = format!("10.{}.{}.", net.network().octets()[1], net.network().octets()[2]);
        if taken.contains(&net) || used.contains(&prefix) {
            continue;
        }
        taken.push(net);
        return net;
    }
    panic!("no free /24 in 10.200.0.0/13");
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"))
}

fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn in_netns(ns: &Path, args: &[&str]) -> Output {
    let net = format!("--net={}", ns.display());
    let mut all = vec![net.as_str()];
    all.extend_from_slice(args);
    run("nsenter", &all)
}

fn in_netns_ok(ns: &Path, args: &[&str]) -> String {
    let out = in_netns(ns, args);
    assert!(out.status.success(), "nsenter {} {args:?}: {}", ns.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// One test's pod network: names, subnet, temp dirs; cleans up after itself on drop.
struct TestNet {
    bridge: String,
    cidr: Ipv4Net,
    dir: tempfile::TempDir,
    mtu: Option<u32>,
    outside: Vec<String>,
}

impl TestNet {
    fn new() -> TestNet {
        Self::with_cidr(None)
    }

    fn with_cidr(prefix: Option<u8>) -> TestNet {
        let mut cidr = unique_subnet();
        if let Some(p) = prefix {
            cidr = Ipv4Net::new(cidr.network(), p).unwrap();
        }
        let dir = tempfile::Builder::new().prefix("kelp-net-").tempdir().unwrap();
        TestNet { bridge: format!("kt{}", random_suffix(6)), cidr, dir, mtu: Some(1400), outside: Vec::new() }
    }

    fn config(&self) -> NetworkConfig {
        NetworkConfig {
            bridge: self.bridge.clone(),
            pod_cidr: self.cidr.into(),
            state_dir: self.dir.path().join("state"),
            run_dir: self.dir.path().join("run"),
            mtu: self.mtu,
        }
    }

    fn gateway(&self) -> Ipv4Addr {
        self.cidr.hosts().next().unwrap()
    }

    fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("state/ipam")
    }

    fn mounts_below(&self) -> Vec<String> {
        let dir = self.dir.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&dir))
            .collect()
    }

    fn bridge_ports(&self) -> Vec<String> {
        let out = run("ip", &["-j", "link", "show", "master", &self.bridge]);
        if !out.status.success() {
            return Vec::new();
        }
        json(&String::from_utf8_lossy(&out.stdout))
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_owned())
            .collect()
    }

    fn link_exists(name: &str) -> bool {
        run("ip", &["link", "show", "dev", name]).status.success()
    }

    fn nft_table_exists(&self) -> bool {
        run("nft", &["list", "table", "ip", &self.bridge]).status.success()
    }

    /// Asserts that nothing of this network is left on the host.
    fn assert_clean(&self) {
        assert!(!Self::link_exists(&self.bridge), "bridge {} left behind", self.bridge);
        assert!(self.mounts_below().is_empty(), "mounts left: {:?}", self.mounts_below());
        assert!(!self.nft_table_exists(), "nft table ip {} left behind", self.bridge);
        let run_dir = self.dir.path().join("run");
        let left: Vec<_> = std::fs::read_dir(&run_dir).map(|d| d.filter_map(Result::ok).collect()).unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", run_dir.display());
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for port in self.bridge_ports() {
            let _ = run("ip", &["link", "del", &port]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
        let _ = run("nft", &["delete", "table", "ip", &self.bridge]);
        for ns in &self.outside {
            let _ = run("ip", &["netns", "del", ns]);
        }
        let mut mounts = self.mounts_below();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = run("umount", &["-l", &m]);
        }
    }
}

fn pod(name: &str) -> SandboxConfig {
    SandboxConfig {
        pod_uid: uuid::Uuid::new_v4().to_string(),
        namespace: "default".into(),
        name: name.into(),
        hostname: name.into(),
        fqdn: None,
        host_network: false,
        dns: DnsConfig {
            nameservers: vec!["10.43.0.10".into()],
            searches: vec!["default.svc.cluster.local".into(), "svc.cluster.local".into(), "cluster.local".into()],
            options: vec!["ndots:5".into()],
        },
        host_aliases: Vec::new(),
    }
}

fn v4(ip: Option<IpAddr>) -> Ipv4Addr {
    match ip {
        Some(IpAddr::V4(ip)) => ip,
        other => panic!("expected an IPv4 pod IP, got {other:?}"),
    }
}

fn fs_type(path: &Path) -> String {
    run_ok("stat", &["-f", "-c", "%T", &path.to_string_lossy()]).trim().to_owned()
}

/// The pod's network as `ip` sees it from inside: lo and eth0 up, the address, MTU, default route.
fn assert_pod_network(sb: &Sandbox, net: &TestNet) {
    let ns = sb.net_ns.as_deref().expect("a network namespace");
    let ip = v4(sb.ip);
    let lo = json(&in_netns_ok(ns, &["ip", "-j", "link", "show", "dev", "lo"]));
    assert!(lo[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "lo not up: {lo}");
    let eth0 = json(&in_netns_ok(ns, &["ip", "-j", "addr", "show", "dev", "eth0"]));
    let eth0 = &eth0[0];
    assert!(eth0["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "eth0 not up: {eth0}");
    assert_eq!(eth0["mtu"], serde_json::json!(1400), "{eth0}");
    let addrs: Vec<String> = eth0["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert_eq!(addrs, vec![format!("{ip}/{}", net.cidr.prefix_len())]);
    let routes = json(&in_netns_ok(ns, &["ip", "-j", "route", "show", "default"]));
    assert_eq!(routes[0]["gateway"], serde_json::json!(net.gateway().to_string()), "{routes}");
    assert_eq!(routes[0]["dev"], "eth0");
    // Only lo and eth0 in the pod.
    let links = json(&in_netns_ok(ns, &["ip", "-j", "link"]));
    let names: HashSet<&str> = links.as_array().unwrap().iter().map(|l| l["ifname"].as_str().unwrap()).collect();
    assert_eq!(names, HashSet::from(["lo", "eth0"]));
}

fn ping(from: &Path, to: Ipv4Addr) -> bool {
    (0..3).any(|_| in_netns(from, &["busybox", "ping", "-c", "1", "-W", "3", &to.to_string()]).status.success())
}

fn ipam_entries(net: &TestNet) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(net.ipam_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.parse::<Ipv4Addr>().is_ok())
        .map(|n| {
            let uid = std::fs::read_to_string(net.ipam_dir().join(&n)).unwrap();
            (n, uid)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn pods_get_addresses_talk_and_are_removed() {
    let net = TestNet::new();
    let pn = PodNetwork::new(net.config()).await.unwrap();

    // The bridge: up, holding the gateway; forwarding on; masquerade table installed.
    let br = json(&run_ok("ip", &["-j", "addr", "show", "dev", &net.bridge]));
    let br_addrs: Vec<String> = br[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert_eq!(br_addrs, vec![format!("{}/24", net.gateway())]);
    assert!(br[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{br}");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim(), "1");
    assert!(net.nft_table_exists());
    // Idempotent: a second PodNetwork on the same bridge changes nothing.
    drop(PodNetwork::new(net.config()).await.unwrap());
    let again = json(&run_ok("ip", &["-j", "addr", "show", "dev", &net.bridge]));
    assert_eq!(again[0]["addr_info"], br[0]["addr_info"]);

    let mut a_cfg = pod("pod-a");
    a_cfg.fqdn = Some("pod-a.sub.default.svc.cluster.local".into());
    a_cfg.host_aliases = vec![("1.2.3.4".into(), vec!["foo.local".into(), "bar.local".into()])];
    let a = pn.create_sandbox(&a_cfg).await.unwrap();
    let b_cfg = pod("pod-b");
    let b = pn.create_sandbox(&b_cfg).await.unwrap();
    let (ip_a, ip_b) = (v4(a.ip), v4(b.ip));
    assert_ne!(ip_a, ip_b);
    for ip in [ip_a, ip_b] {
        assert!(net.cidr.contains(&ip));
        assert_ne!(ip, net.gateway());
        assert_ne!(ip, net.cidr.network());
        assert_ne!(ip, net.cidr.broadcast());
    }

    // Namespace files are nsfs bind mounts under <run_dir>/<uid>/ns.
    let pod_dir = net.dir.path().join("run").join(&a_cfg.pod_uid);
    assert_eq!(a.net_ns.as_deref(), Some(pod_dir.join("ns/net").as_path()));
    assert_eq!(a.ipc_ns, pod_dir.join("ns/ipc"));
    assert_eq!(a.uts_ns.as_deref(), Some(pod_dir.join("ns/uts").as_path()));
    for ns in [a.net_ns.as_deref().unwrap(), &a.ipc_ns, a.uts_ns.as_deref().unwrap()] {
        assert_eq!(fs_type(ns), "nsfs", "{}", ns.display());
    }
    // The three namespaces are new ones, different per pod.
    for kind in ["net", "ipc", "uts"] {
        let ino = |p: &Path| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
        let host = ino(Path::new(&format!("/proc/self/ns/{kind}")));
        let pa = ino(&pod_dir.join("ns").join(kind));
        let pb = ino(&net.dir.path().join("run").join(&b_cfg.pod_uid).join("ns").join(kind));
        assert!(host != pa && pa != pb && host != pb, "{kind}: host {host}, a {pa}, b {pb}");
    }
    // UTS: the pod's hostname.
    let uts = format!("--uts={}", a.uts_ns.as_ref().unwrap().display());
    assert_eq!(run_ok("nsenter", &[&uts, "hostname"]).trim(), "pod-a");

    assert_pod_network(&a, &net);
    assert_pod_network(&b, &net);

    // The host end: deterministic name, enslaved to the bridge, up, MTU.
    let veth_a = host_veth_name(&a_cfg.pod_uid);
    let link = json(&run_ok("ip", &["-j", "-d", "link", "show", "dev", &veth_a]));
    assert_eq!(link[0]["master"], serde_json::json!(net.bridge), "{link}");
    assert_eq!(link[0]["mtu"], serde_json::json!(1400));
    assert!(link[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{link}");
    assert_eq!(link[0]["linkinfo"]["info_slave_data"]["hairpin"], serde_json::json!(true), "{link}");
    let mut ports = net.bridge_ports();
    ports.sort();
    let mut want = vec![veth_a.clone(), host_veth_name(&b_cfg.pod_uid)];
    want.sort();
    assert_eq!(ports, want);

    // Pods reach each other and the gateway.
    let (ns_a, ns_b) = (a.net_ns.clone().unwrap(), b.net_ns.clone().unwrap());
    assert!(ping(&ns_a, ip_b), "pod a cannot ping pod b");
    assert!(ping(&ns_b, ip_a), "pod b cannot ping pod a");
    assert!(ping(&ns_a, net.gateway()), "pod a cannot ping the gateway");
    // A TCP connection from a thread inside pod a to a listener inside pod b.
    let peer = tcp_exchange(&ns_b, ip_b, &ns_a);
    assert_eq!(peer.ip(), IpAddr::V4(ip_a));

    // Files.
    let hosts = std::fs::read_to_string(&a.hosts_file).unwrap();
    assert_eq!(
        hosts,
        format!(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             {ip_a}\tpod-a.sub.default.svc.cluster.local\tpod-a\n\n# Entries added by HostAliases.\n\
             1.2.3.4\tfoo.local\tbar.local\n"
        )
    );
    let hosts_b = std::fs::read_to_string(&b.hosts_file).unwrap();
    assert!(hosts_b.ends_with(&format!("fe00::2\tip6-allrouters\n{ip_b}\tpod-b\n")), "{hosts_b}");
    assert_eq!(
        std::fs::read_to_string(&a.resolv_conf).unwrap(),
        "nameserver 10.43.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    );
    assert_eq!(std::fs::read_to_string(&a.hostname_file).unwrap(), "pod-a\n");
    assert_eq!(a.hosts_file, pod_dir.join("hosts"));
    assert_eq!(a.resolv_conf, pod_dir.join("resolv.conf"));
    assert_eq!(a.hostname_file, pod_dir.join("hostname"));

    // Lookups and idempotent re-creation.
    let mut uids = vec![a_cfg.pod_uid.clone(), b_cfg.pod_uid.clone()];
    uids.sort();
    assert_eq!(pn.sandboxes().await, uids);
    assert_eq!(pn.sandbox(&a_cfg.pod_uid).await.unwrap().ip, a.ip);
    assert_eq!(pn.pod_ip(&a_cfg.pod_uid).unwrap(), a.ip);
    assert_eq!(pn.create_sandbox(&a_cfg).await.unwrap().ip, a.ip);
    assert_eq!(ipam_entries(&net).len(), 2);
    assert!(pn.sandbox("no-such-pod").await.is_none());

    // Removal: veth, IP, mounts and directory gone; idempotent.
    pn.remove_sandbox(&a_cfg.pod_uid).await.unwrap();
    assert!(!TestNet::link_exists(&veth_a));
    assert_eq!(ipam_entries(&net), vec![(ip_b.to_string(), b_cfg.pod_uid.clone())]);
    assert!(!pod_dir.exists());
    assert!(pn.sandbox(&a_cfg.pod_uid).await.is_none());
    assert_eq!(pn.sandboxes().await, vec![b_cfg.pod_uid.clone()]);
    assert!(!net.mounts_below().iter().any(|m| m.contains(&a_cfg.pod_uid)));
    pn.remove_sandbox(&a_cfg.pod_uid).await.unwrap();
    // Pod b is unaffected.
    assert!(ping(&ns_b, net.gateway()));

    // Bad input.
    let mut bad = pod("bad");
    bad.pod_uid = "../escape".into();
    assert!(matches!(pn.create_sandbox(&bad).await, Err(NetworkError::Invalid(_))));

    pn.teardown().await.unwrap();
    assert!(ipam_entries(&net).is_empty());
    net.assert_clean();
}

/// Listens inside `server_ns` on `server_ip`, connects from a thread inside `client_ns`, and
/// returns the client address the server saw.
fn tcp_exchange(server_ns: &Path, server_ip: Ipv4Addr, client_ns: &Path) -> SocketAddr {
    let listener = in_thread_netns(server_ns, move || TcpListener::bind((server_ip, 0)).unwrap());
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        peer
    });
    let echoed = in_thread_netns(client_ns, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connecting");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        buf
    });
    assert_eq!(&echoed, b"hello");
    server.join().unwrap()
}

/// Runs `f` on a new thread that joined the network namespace `ns` (sockets made there stay there).
fn in_thread_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        setns(File::open(&ns).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

#[tokio::test]
async fn restart_keeps_addresses_and_collects_garbage() {
    let net = TestNet::new();
    let pn = PodNetwork::new(net.config()).await.unwrap();
    let a_cfg = pod("a");
    let a = pn.create_sandbox(&a_cfg).await.unwrap();
    let gone_cfg = pod("gone");
    let gone = pn.create_sandbox(&gone_cfg).await.unwrap();
    drop(pn);

    // A sandbox whose namespaces vanished (as after a reboot) leaves an IPAM entry behind.
    for ns in [gone.net_ns.as_ref().unwrap(), &gone.ipc_ns, gone.uts_ns.as_ref().unwrap()] {
        run_ok("umount", &[&ns.to_string_lossy()]);
    }
    std::fs::remove_dir_all(net.dir.path().join("run").join(&gone_cfg.pod_uid)).unwrap();
    assert_eq!(ipam_entries(&net).len(), 2);

    // The agent restarts.
    let pn = PodNetwork::new(net.config()).await.unwrap();
    assert_eq!(ipam_entries(&net), vec![(v4(a.ip).to_string(), a_cfg.pod_uid.clone())]);
    assert!(!TestNet::link_exists(&host_veth_name(&gone_cfg.pod_uid)));
    assert_eq!(pn.sandboxes().await, vec![a_cfg.pod_uid.clone()]);
    let adopted = pn.sandbox(&a_cfg.pod_uid).await.expect("the sandbox survives");
    assert_eq!(adopted.ip, a.ip);
    let again = pn.create_sandbox(&a_cfg).await.unwrap();
    assert_eq!(again.ip, a.ip);
    assert_eq!(again.net_ns, a.net_ns);
    assert_pod_network(&again, &net);

    // The next pod gets a new address, also not the one of the collected pod (allocation moves on).
    let b_cfg = pod("b");
    let b = pn.create_sandbox(&b_cfg).await.unwrap();
    assert_ne!(b.ip, a.ip);
    assert_ne!(b.ip, gone.ip);
    assert!(ping(b.net_ns.as_ref().unwrap(), v4(a.ip)), "new pod cannot reach the adopted one");

    // A half-made sandbox (crash after the namespaces, before the veth) is completed on retry.
    let c_cfg = pod("c");
    let c = pn.create_sandbox(&c_cfg).await.unwrap();
    run_ok("ip", &["link", "del", &host_veth_name(&c_cfg.pod_uid)]);
    let c2 = pn.create_sandbox(&c_cfg).await.unwrap();
    assert_eq!(c2.ip, c.ip);
    assert_pod_network(&c2, &net);
    assert!(ping(c2.net_ns.as_ref().unwrap(), v4(b.ip)));
    // A host end that lost its bridge and went down is put back.
    let veth_c = host_veth_name(&c_cfg.pod_uid);
    run_ok("ip", &["link", "set", &veth_c, "nomaster"]);
    run_ok("ip", &["link", "set", &veth_c, "down"]);
    let unreachable =
        in_netns(c2.net_ns.as_ref().unwrap(), &["busybox", "ping", "-c", "1", "-W", "1", &v4(b.ip).to_string()]);
    assert!(!unreachable.status.success(), "pod c reached pod b without its veth on the bridge");
    assert_eq!(pn.create_sandbox(&c_cfg).await.unwrap().ip, c.ip);
    assert!(ping(c2.net_ns.as_ref().unwrap(), v4(b.ip)));

    pn.teardown().await.unwrap();
    net.assert_clean();
}

#[tokio::test]
async fn host_network_sandbox() {
    let net = TestNet::new();
    let pn = PodNetwork::new(net.config()).await.unwrap();
    let mut cfg = pod("hostnet");
    cfg.host_network = true;
    cfg.host_aliases = vec![("10.9.8.7".into(), vec!["db".into()])];
    let sb = pn.create_sandbox(&cfg).await.unwrap();
    assert!(sb.net_ns.is_none() && sb.uts_ns.is_none() && sb.ip.is_none(), "{sb:?}");
    assert_eq!(fs_type(&sb.ipc_ns), "nsfs");
    let ns_dir = net.dir.path().join("run").join(&cfg.pod_uid).join("ns");
    assert!(!ns_dir.join("net").exists() && !ns_dir.join("uts").exists());
    let host_ipc = std::fs::metadata("/proc/self/ns/ipc").map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    let pod_ipc = std::fs::metadata(&sb.ipc_ns).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    assert_ne!(host_ipc, pod_ipc);
    // No veth, no IP.
    assert!(!TestNet::link_exists(&host_veth_name(&cfg.pod_uid)));
    assert!(net.bridge_ports().is_empty());
    assert!(ipam_entries(&net).is_empty());
    // The node's hosts file plus the aliases; the node's hostname.
    let node_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let hosts = std::fs::read_to_string(&sb.hosts_file).unwrap();
    assert!(hosts.starts_with(&format!("# Kubernetes-managed hosts file (host network).\n{node_hosts}")), "{hosts}");
    assert!(hosts.ends_with("\n# Entries added by HostAliases.\n10.9.8.7\tdb\n"), "{hosts}");
    let node_hostname = run_ok("hostname", &[]);
    assert_eq!(std::fs::read_to_string(&sb.hostname_file).unwrap(), node_hostname);
    let found = pn.sandbox(&cfg.pod_uid).await.expect("found");
    assert!(found.net_ns.is_none() && found.ip.is_none());
    assert_eq!(pn.create_sandbox(&cfg).await.unwrap().ipc_ns, sb.ipc_ns);
    pn.remove_sandbox(&cfg.pod_uid).await.unwrap();
    assert!(pn.sandbox(&cfg.pod_uid).await.is_none());
    pn.teardown().await.unwrap();
    net.assert_clean();
}

#[tokio::test]
async fn exhaustion_on_a_tiny_cidr() {
    // A /30: network, gateway, one pod address, broadcast.
    let net = TestNet::with_cidr(Some(30));
    let pn = PodNetwork::new(net.config()).await.unwrap();
    let first_cfg = pod("first");
    let first = pn.create_sandbox(&first_cfg).await.unwrap();
    assert_eq!(v4(first.ip), Ipv4Addr::from(u32::from(net.cidr.network()) + 2));
    let second_cfg = pod("second");
    match pn.create_sandbox(&second_cfg).await {
        Err(NetworkError::Exhausted(cidr)) => assert_eq!(cidr, net.cidr.to_string()),
        other => panic!("expected exhaustion, got {other:?}"),
    }
    let err = pn.create_sandbox(&second_cfg).await.unwrap_err();
    assert_eq!(err.to_string(), format!("no free pod IP in {}", net.cidr));
    // The failed sandbox left nothing behind.
    assert!(!net.dir.path().join("run").join(&second_cfg.pod_uid).exists());
    assert!(!net.mounts_below().iter().any(|m| m.contains(&second_cfg.pod_uid)));
    assert!(!TestNet::link_exists(&host_veth_name(&second_cfg.pod_uid)));
    assert_eq!(pn.sandboxes().await, vec![first_cfg.pod_uid.clone()]);
    // Freeing the address makes room.
    pn.remove_sandbox(&first_cfg.pod_uid).await.unwrap();
    let second = pn.create_sandbox(&second_cfg).await.unwrap();
    assert_eq!(second.ip, first.ip);
    assert_pod_network_prefix(&second, 30);
    pn.teardown().await.unwrap();
    net.assert_clean();
}

fn assert_pod_network_prefix(sb: &Sandbox, prefix: u8) {
    let out = in_netns_ok(sb.net_ns.as_ref().unwrap(), &["ip", "-j", "-4", "addr", "show", "dev", "eth0"]);
    let v = json(&out);
    assert_eq!(v[0]["addr_info"][0]["prefixlen"], serde_json::json!(prefix), "{v}");
}

#[tokio::test]
async fn invalid_configurations_are_refused() {
    let net = TestNet::new();
    let mut cfg = net.config();
    cfg.pod_cidr = "fd00::/64".parse().unwrap();
    let err = PodNetwork::new(cfg).await.err().unwrap();
    assert!(err.to_string().contains("only IPv4"), "{err}");
    let mut cfg = net.config();
    cfg.pod_cidr = Ipv4Net::new(net.cidr.network(), 31).unwrap().into();
    assert!(matches!(PodNetwork::new(cfg).await, Err(NetworkError::Invalid(_))));
    let mut cfg = net.config();
    cfg.bridge = "this-name-is-too-long".into();
    assert!(matches!(PodNetwork::new(cfg).await, Err(NetworkError::Invalid(_))));
    let mut cfg = net.config();
    cfg.mtu = Some(10);
    assert!(matches!(PodNetwork::new(cfg).await, Err(NetworkError::Invalid(_))));
    // A link with the bridge's name that is no bridge.
    let peer = format!("{}p", net.bridge);
    run_ok("ip", &["link", "add", &net.bridge, "type", "veth", "peer", "name", &peer]);
    let err = PodNetwork::new(net.config()).await.err().unwrap();
    assert!(err.to_string().contains("not a bridge"), "{err}");
    run_ok("ip", &["link", "del", &net.bridge]);
    assert!(!TestNet::link_exists(&peer));
    // Clean up the private mount of run_dir made by the attempt that got that far.
    let pn = PodNetwork::new(net.config()).await.unwrap();
    pn.teardown().await.unwrap();
    net.assert_clean();
}

#[tokio::test]
async fn default_mtu_follows_the_default_route() {
    let mut net = TestNet::new();
    net.mtu = None;
    let pn = PodNetwork::new(net.config()).await.unwrap();
    let routes = json(&run_ok("ip", &["-j", "-4", "route", "show", "default"]));
    let want = match routes.as_array().unwrap().first() {
        Some(r) => {
            let dev = r["dev"].as_str().unwrap();
            json(&run_ok("ip", &["-j", "link", "show", "dev", dev]))[0]["mtu"].as_u64().unwrap() as u32
        }
        None => 1500,
    };
    assert_eq!(pn.mtu(), want);
    let sb = pn.create_sandbox(&pod("m")).await.unwrap();
    let eth0 = json(&in_netns_ok(sb.net_ns.as_ref().unwrap(), &["ip", "-j", "link", "show", "dev", "eth0"]));
    assert_eq!(eth0[0]["mtu"].as_u64().unwrap() as u32, want);
    pn.teardown().await.unwrap();
    net.assert_clean();
}

#[tokio::test]
async fn outbound_traffic_is_masqueraded() {
    let mut net = TestNet::new();
    let pn = PodNetwork::new(net.config()).await.unwrap();
    let sb = pn.create_sandbox(&pod("client")).await.unwrap();

    // An "outside" host in its own netns, reachable from the node over a veth, with no route back
    // to the podCIDR: replies only find their way if the node masquerades.
    let outside_net = unique_subnet();
    let name = format!("kto{}", random_suffix(6));
    net.outside.push(name.clone());
    let node_side = format!("{name}h");
    let node_ip = outside_net.hosts().next().unwrap();
    let outside_ip = outside_net.hosts().nth(1).unwrap();
    run_ok("ip", &["netns", "add", &name]);
    run_ok("ip", &["link", "add", &node_side, "type", "veth", "peer", "name", "eth0", "netns", &name]);
    run_ok("ip", &["addr", "add", &format!("{node_ip}/24"), "dev", &node_side]);
    run_ok("ip", &["link", "set", &node_side, "up"]);
    run_ok("ip", &["-n", &name, "addr", "add", &format!("{outside_ip}/24"), "dev", "eth0"]);
    run_ok("ip", &["-n", &name, "link", "set", "eth0", "up"]);
    run_ok("ip", &["-n", &name, "link", "set", "lo", "up"]);
    let outside_ns = PathBuf::from(format!("/run/netns/{name}"));

    let peer = tcp_exchange(&outside_ns, outside_ip, sb.net_ns.as_ref().unwrap());
    assert_eq!(peer.ip(), IpAddr::V4(node_ip), "the outside host saw the pod's own address");

    run_ok("ip", &["netns", "del", &name]);
    pn.teardown().await.unwrap();
    net.assert_clean();
    assert!(!TestNet::link_exists(&node_side));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pods_at_once() {
    let net = TestNet::new();
    let pn = std::sync::Arc::new(PodNetwork::new(net.config()).await.unwrap());
    let cfgs: Vec<SandboxConfig> = (0..30).map(|i| pod(&format!("p{i}"))).collect();
    let tasks: Vec<_> = cfgs
        .iter()
        .cloned()
        .map(|cfg| {
            let pn = pn.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let sb = pn.create_sandbox(&cfg).await.unwrap();
                (sb, started.elapsed())
            })
        })
        .collect();
    let mut sandboxes = Vec::new();
    let mut took = Vec::new();
    for t in tasks {
        let (sb, d) = t.await.unwrap();
        sandboxes.push(sb);
        took.push(d);
    }
    took.sort();
    eprintln!("30 sandboxes at once: p50 {:?}, max {:?}", took[took.len() / 2], took[took.len() - 1]);
    let ips: HashSet<Ipv4Addr> = sandboxes.iter().map(|s| v4(s.ip)).collect();
    assert_eq!(ips.len(), 30, "addresses handed out twice");
    assert_eq!(ipam_entries(&net).len(), 30);
    assert_eq!(net.bridge_ports().len(), 30);
    assert!(ping(sandboxes[0].net_ns.as_ref().unwrap(), v4(sandboxes[29].ip)));
    let removals: Vec<_> = cfgs
        .iter()
        .map(|cfg| {
            let pn = pn.clone();
            let uid = cfg.pod_uid.clone();
            tokio::spawn(async move { pn.remove_sandbox(&uid).await.unwrap() })
        })
        .collect();
    for r in removals {
        r.await.unwrap();
    }
    assert!(ipam_entries(&net).is_empty());
    assert!(net.bridge_ports().is_empty());
    pn.teardown().await.unwrap();
    net.assert_clean();
}
