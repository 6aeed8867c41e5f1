//! IP address management for the node's podCIDR, persisted on disk like CNI's `host-local`
//! plugin: one file per allocated address, named after the address and holding the pod uid.
//!
//! A file is published with `link(2)` from a fully written temporary file, which fails with
//! `EEXIST` when the address is taken (the same exclusivity as `O_EXCL`, and a crash can never
//! leave an empty, ownerless file behind). Allocation continues after the last address handed out
//! (`last_reserved_ip`), so a just-released address is not reused at once.
//!
//! Nothing is fsynced: the files only have to survive an agent restart (the page cache does that).
//! After a power loss no pod namespace survives either, and `PodNetwork::new` releases every
//! entry without a live sandbox, including any that lost its content.

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::Ipv4Net;

use super::NetworkError;

const LAST_RESERVED: &str = "last_reserved_ip";

/// The allocator of one podCIDR; its state lives in a directory.
#[derive(Debug)]
pub(crate) struct Ipam {
    /// Serialises allocation and release within this process (other processes are excluded by
    /// the exclusive `link(2)`).
    lock: Mutex<()>,
    dir: PathBuf,
    net: Ipv4Net,
    gateway: Ipv4Addr,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> NetworkError {
    let context = context.into();
    move |source| NetworkError::Io { context, source }
}

impl Ipam {
    /// Opens (creating it if needed) the allocation directory `dir` for `net`; `gateway` is never
    /// handed out, nor are the network and broadcast addresses.
    pub(crate) fn open(dir: &Path, net: Ipv4Net, gateway: Ipv4Addr) -> Result<Ipam, NetworkError> {
        fs::create_dir_all(dir).map_err(io_err(format!("creating IPAM directory {}", dir.display())))?;
        Ok(Ipam { lock: Mutex::new(()), dir: dir.to_owned(), net, gateway })
    }

    /// Every allocation on disk: (address, pod uid). Files that are not addresses are ignored.
    pub(crate) fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, NetworkError> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_err(format!("listing {}", self.dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("listing {}", self.dir.display())))?;
            let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            match fs::read_to_string(entry.path()) {
                Ok(uid) => out.push((ip, uid.trim().to_owned())),
                // Released concurrently.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("reading {}", entry.path().display()))(e)),
            }
        }
        out.sort();
        Ok(out)
    }

    /// The address held by `pod_uid` in this podCIDR.
    pub(crate) fn lookup(&self, pod_uid: &str) -> Result<Option<Ipv4Addr>, NetworkError> {
        Ok(self.allocations()?.into_iter().find(|(ip, uid)| uid == pod_uid && self.net.contains(ip)).map(|(ip, _)| ip))
    }

    /// The pod's address: the one it already holds, or the next free one.
    pub(crate) fn allocate(&self, pod_uid: &str) -> Result<Ipv4Addr, NetworkError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ip) = self.lookup(pod_uid)? {
            return Ok(ip);
        }
        let candidates: Vec<Ipv4Addr> = self.net.hosts().filter(|ip| *ip != self.gateway).collect();
        if candidates.is_empty() {
            return Err(NetworkError::Exhausted(self.net.to_string()));
        }
        let start = self
            .last_reserved()
            .and_then(|last| candidates.iter().position(|ip| *ip == last))
            .map(|i| i + 1)
            .unwrap_or(0);
        let tmp = self.dir.join(format!(".tmp-{pod_uid}-{}", tmp_suffix()));
        write_file(&tmp, pod_uid.as_bytes()).map_err(io_err(format!("writing {}", tmp.display())))?;
        let result = (|| {
            for i in 0..candidates.len() {
                let ip = candidates[(start + i) % candidates.len()];
                let path = self.dir.join(ip.to_string());
                match fs::hard_link(&tmp, &path) {
                    Ok(()) => {
                        self.set_last_reserved(ip)?;
                        return Ok(ip);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io_err(format!("reserving {}", path.display()))(e)),
                }
            }
            Err(NetworkError::Exhausted(self.net.to_string()))
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Releases every address held by `pod_uid`; returns them.
    pub(crate) fn release(&self, pod_uid: &str) -> Result<Vec<Ipv4Addr>, NetworkError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut released = Vec::new();
        for (ip, uid) in self.allocations()? {
            if uid == pod_uid {
                let path = self.dir.join(ip.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => released.push(ip),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(format!("releasing {}", path.display()))(e)),
                }
            }
        }
        Ok(released)
    }

    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.dir.join(LAST_RESERVED)).ok().and_then(|s| s.trim().parse().ok())
    }

    fn set_last_reserved(&self, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let path = self.dir.join(LAST_RESERVED);
        let tmp = self.dir.join(format!(".{LAST_RESERVED}.{}", tmp_suffix()));
        write_file(&tmp, ip.to_string().as_bytes())
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(io_err(format!("writing {}", path.display())))
    }
}

/// A suffix unique to this process and call, for temporary file names.
fn tmp_suffix() -> String {
    format!("{}-{:08x}", std::process::id(), rand::random::<u32>())
}

fn write_file(path: &Path, content: &[u8]) -> io::Result<()> {
    fs::File::create(path)?.write_all(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(cidr: &str) -> (tempfile::TempDir, Ipam) {
        let dir = tempfile::tempdir().unwrap();
        let net: Ipv4Net = cidr.parse().unwrap();
        let gw = net.hosts().next().unwrap();
        let ipam = Ipam::open(&dir.path().join("ipam"), net, gw).unwrap();
        (dir, ipam)
    }

    #[test]
    fn allocates_skipping_network_gateway_broadcast() {
        let (_d, ipam) = ipam("10.9.0.0/29");
        let ips: Vec<_> = (0..5).map(|i| ipam.allocate(&format!("pod{i}")).unwrap()).collect();
        let want: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 9, 0, i)).collect();
        assert_eq!(ips, want);
        match ipam.allocate("pod5") {
            Err(NetworkError::Exhausted(net)) => assert_eq!(net, "10.9.0.0/29"),
            other => panic!("expected exhaustion, got {other:?}"),
        }
    }

    #[test]
    fn same_pod_same_ip_and_release_survives_reopen() {
        let (d, ipam) = ipam("10.9.1.0/24");
        let a = ipam.allocate("a").unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), a);
        let b = ipam.allocate("b").unwrap();
        assert_ne!(a, b);
        let net: Ipv4Net = "10.9.1.0/24".parse().unwrap();
        let reopened = Ipam::open(&d.path().join("ipam"), net, Ipv4Addr::new(10, 9, 1, 1)).unwrap();
        assert_eq!(reopened.lookup("a").unwrap(), Some(a));
        assert_eq!(reopened.release("a").unwrap(), vec![a]);
        assert_eq!(reopened.lookup("a").unwrap(), None);
        assert_eq!(reopened.release("a").unwrap(), Vec::<Ipv4Addr>::new());
        // The next pod gets the address after the last one handed out, not the released one.
        let c = reopened.allocate("c").unwrap();
        assert_eq!(c, Ipv4Addr::new(10, 9, 1, 4));
        assert_eq!(reopened.allocations().unwrap(), vec![(b, "b".to_owned()), (c, "c".to_owned())]);
    }

    #[test]
    fn wraps_around_to_released_addresses() {
        let (_d, ipam) = ipam("10.9.2.0/30");
        let only = ipam.allocate("a").unwrap();
        assert_eq!(only, Ipv4Addr::new(10, 9, 2, 2));
        assert!(matches!(ipam.allocate("b"), Err(NetworkError::Exhausted(_))));
        ipam.release("a").unwrap();
        assert_eq!(ipam.allocate("b").unwrap(), only);
    }
}
