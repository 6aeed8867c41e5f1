//! The OCI runtime spec (`config.json`) of a container, from its [`ContainerConfig`], with the
//! defaults of upstream runtimes (containerd's CRI plugin over runc): default mounts, capability
//! set, masked and read-only paths, device cgroup rules, RuntimeDefault seccomp.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use super::cgroups::Version;
use super::{seccomp, ContainerConfig, MountKind, Propagation, RuntimeError, Seccomp};

/// Every capability, by number.
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The default capability set of Docker, containerd and CRI-O (14 capabilities).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths hidden from unprivileged containers (containerd's defaults).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in unprivileged containers.
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The PATH containerd gives a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Every capability this process may grant: the kernel's (up to `cap_last_cap`) that are in our
/// bounding set (like containerd, privileged means "all the runtime has"; a capability outside
/// the bounding set cannot be raised and would fail the container).
fn kernel_caps() -> Vec<&'static str> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string())))
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(u64::MAX);
    ALL_CAPS.iter().enumerate().take(last + 1).filter(|(i, _)| bounding & (1 << i) != 0).map(|(_, c)| *c).collect()
}

fn normalize_cap(name: &str) -> Result<String, RuntimeError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(RuntimeError::Start(format!("unknown capability {name:?}")))
    }
}

/// The capability set of a container: privileged = all; else the defaults, `drop: [ALL]` empties
/// them, `add` adds (`ALL` = every capability), `drop` removes (containerd's order).
pub fn capabilities(cfg: &ContainerConfig) -> Result<BTreeSet<String>, RuntimeError> {
    let all: BTreeSet<String> = kernel_caps().into_iter().map(String::from).collect();
    if cfg.security.privileged {
        return Ok(all);
    }
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut caps: BTreeSet<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    if cfg.security.drop_capabilities.iter().any(is_all) {
        caps.clear();
    }
    for c in &cfg.security.add_capabilities {
        if is_all(c) {
            caps.extend(all.iter().cloned());
        } else {
            caps.insert(normalize_cap(c)?);
        }
    }
    for c in cfg.security.drop_capabilities.iter().filter(|c| !is_all(c)) {
        caps.remove(&normalize_cap(c)?);
    }
    Ok(caps)
}

/// The home directory of `uid` from the image's `/etc/passwd` (top layer first), else `/`.
pub fn home_dir(layers: &[PathBuf], uid: u32) -> String {
    for layer in layers.iter().rev() {
        let Ok(passwd) = std::fs::read_to_string(layer.join("etc/passwd")) else { continue };
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 6 && f[2].parse::<u32>() == Ok(uid) && !f[5].is_empty() {
                return f[5].to_string();
            }
        }
        return "/".into();
    }
    "/".into()
}

fn has_env(env: &[String], key: &str) -> bool {
    env.iter().any(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
}

/// The device nodes of the host (for privileged containers), like runc's `HostDevices`.
fn host_devices() -> Vec<Value> {
    fn walk(dir: &Path, out: &mut Vec<Value>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(md) = std::fs::symlink_metadata(&path) else { continue };
            let name = e.file_name();
            let name = name.to_string_lossy();
            if md.is_dir() {
                if !matches!(name.as_ref(), "pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev") {
                    walk(&path, out);
                }
                continue;
            }
            let typ = if md.file_type().is_char_device() {
                "c"
            } else if md.file_type().is_block_device() {
                "b"
            } else {
                continue;
            };
            if name == "console" {
                continue;
            }
            let rdev = md.rdev();
            out.push(json!({
                "path": path, "type": typ,
                "major": libc::major(rdev), "minor": libc::minor(rdev),
                "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid(),
            }));
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out
}

fn default_mounts(privileged: bool) -> Vec<Value> {
    let ro = if privileged { "rw" } else { "ro" };
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", ro]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", ro]}),
    ]
}

/// Builds the spec. `rootfs` is the mounted root (absolute), `cgroup_path` the container's cgroup.
pub fn build(
    cfg: &ContainerConfig,
    rootfs: &Path,
    cgroup_path: &str,
    cgroup_version: Version,
) -> Result<Spec, RuntimeError> {
    if cfg.args.is_empty() {
        return Err(RuntimeError::Start("no command specified".into()));
    }
    let sec = &cfg.security;
    let caps = capabilities(cfg)?;
    let cap_list: Vec<&String> = caps.iter().collect();

    let mut env = cfg.env.clone();
    if !has_env(&env, "PATH") {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !cfg.hostname.is_empty() && !has_env(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={}", cfg.hostname));
    }
    if !has_env(&env, "HOME") {
        env.push(format!("HOME={}", home_dir(&cfg.layers, cfg.uid)));
    }
    let cwd = if cfg.cwd.is_empty() { "/".to_string() } else { cfg.cwd.clone() };
    if !cwd.starts_with('/') {
        return Err(RuntimeError::Start(format!("working directory {cwd:?} is not absolute")));
    }

    let mut process = json!({
        "terminal": cfg.tty,
        "user": {"uid": cfg.uid, "gid": cfg.gid, "additionalGids": cfg.additional_gids},
        "args": cfg.args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": cap_list, "effective": cap_list, "permitted": cap_list},
    });
    if sec.no_new_privs == Some(true) {
        // Only when asked: libcontainer loads seccomp before dropping capabilities only when the
        // field is absent.
        process["noNewPrivileges"] = json!(true);
    }

    let mut mounts = default_mounts(sec.privileged);
    for m in &cfg.mounts {
        if !m.destination.starts_with('/') {
            return Err(RuntimeError::Start(format!("mount destination {:?} is not absolute", m.destination)));
        }
        mounts.retain(|d| d["destination"] != m.destination.as_str());
        let mut options: Vec<String> = Vec::new();
        let mount = match &m.kind {
            MountKind::Bind { source, propagation } => {
                options.push("rbind".into());
                options.push(
                    match propagation {
                        Propagation::Private => "rprivate",
                        Propagation::HostToContainer => "rslave",
                        Propagation::Bidirectional => "rshared",
                    }
                    .into(),
                );
                if m.read_only {
                    options.push("ro".into());
                }
                json!({"destination": m.destination, "type": "bind", "source": source, "options": options})
            }
            MountKind::Tmpfs { size } => {
                options.extend(["nosuid", "nodev", "mode=1777"].map(String::from));
                if let Some(size) = size {
                    options.push(format!("size={size}"));
                }
                if m.read_only {
                    options.push("ro".into());
                }
                json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": options})
            }
        };
        mounts.push(mount);
    }

    let ns = &cfg.namespaces;
    let mut namespaces = vec![json!({"type": "mount"})];
    if !ns.host_pid {
        namespaces.push(match &ns.pid {
            Some(p) => json!({"type": "pid", "path": p}),
            None => json!({"type": "pid"}),
        });
    }
    for (typ, path) in [("network", &ns.net), ("ipc", &ns.ipc), ("uts", &ns.uts)] {
        if let Some(p) = path {
            namespaces.push(json!({"type": typ, "path": p}));
        }
    }
    if cgroup_version == Version::V2 {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let r = &cfg.resources;
    let mut resources = json!({
        "devices": [{"allow": sec.privileged, "access": "rwm"}],
    });
    let mut cpu = serde_json::Map::new();
    if let Some(v) = r.cpu_shares {
        cpu.insert("shares".into(), json!(v));
    }
    if let Some(v) = r.cpu_quota {
        cpu.insert("quota".into(), json!(v));
    }
    if let Some(v) = r.cpu_period {
        cpu.insert("period".into(), json!(v));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(v) = r.memory_limit {
        resources["memory"] = json!({"limit": v});
    }
    if let Some(v) = r.pids_limit {
        resources["pids"] = json!({"limit": v});
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": cgroup_path,
        "resources": resources,
    });
    if !sec.privileged && !sec.unmasked {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if sec.privileged {
        linux["devices"] = Value::Array(host_devices());
    }
    let profile = match (&sec.seccomp, sec.privileged) {
        (_, true) | (Seccomp::Unconfined, _) => None,
        (Seccomp::RuntimeDefault, _) => Some(seccomp::default_profile()),
        (Seccomp::Localhost(path), _) => {
            let data = std::fs::read(path)
                .map_err(|e| RuntimeError::Start(format!("cannot load seccomp profile {:?}: {e}", path.display())))?;
            Some(seccomp::parse_profile(&data).map_err(RuntimeError::Start)?)
        }
    };
    if let Some(p) = profile {
        linux["seccomp"] = seccomp::to_oci(&p, &caps);
    }

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": sec.read_only_rootfs},
        "mounts": mounts,
        "linux": linux,
    });
    if ns.uts.is_some() && !cfg.hostname.is_empty() {
        spec["hostname"] = json!(cfg.hostname);
    }
    serde_json::from_value(spec).map_err(|e| RuntimeError::Start(format!("invalid container spec: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Namespaces, Resources, Security};
    use std::collections::BTreeMap;

    pub(crate) fn config() -> ContainerConfig {
        ContainerConfig {
            pod_uid: "u".into(),
            pod_namespace: "ns".into(),
            pod_name: "p".into(),
            name: "c".into(),
            attempt: 0,
            layers: vec![],
            image_id: "img".into(),
            args: vec!["/bin/sh".into()],
            env: vec!["A=1".into()],
            cwd: String::new(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            hostname: "p".into(),
            mounts: vec![],
            namespaces: Namespaces::default(),
            resources: Resources::default(),
            security: Security::default(),
            tty: false,
            stdin: false,
            stdin_once: false,
            log_path: "/tmp/x.log".into(),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn capability_rules() {
        let mut c = config();
        assert_eq!(capabilities(&c).unwrap().len(), 14);
        c.security.drop_capabilities = vec!["ALL".into()];
        c.security.add_capabilities = vec!["net_admin".into()];
        assert_eq!(capabilities(&c).unwrap(), BTreeSet::from(["CAP_NET_ADMIN".to_string()]));
        c.security.add_capabilities = vec!["NOPE".into()];
        assert!(matches!(capabilities(&c), Err(RuntimeError::Start(m)) if m.contains("NOPE")));
        c.security = Security { privileged: true, ..Security::default() };
        assert!(capabilities(&c).unwrap().contains("CAP_SYS_ADMIN"));
    }

    #[test]
    fn defaults_in_spec() {
        let c = config();
        let spec = build(&c, Path::new("/r"), "/k/podu/c", Version::V1).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        let env = v["process"]["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e.as_str().unwrap().starts_with("PATH=")));
        assert!(env.contains(&json!("HOME=/")));
        assert_eq!(v["process"]["cwd"], "/");
        assert!(v["process"].get("noNewPrivileges").is_none());
        assert_eq!(v["linux"]["cgroupsPath"], "/k/podu/c");
        assert!(v["linux"]["maskedPaths"].as_array().unwrap().contains(&json!("/proc/kcore")));
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(v.get("hostname").is_none());
        let mut p = config();
        p.security.privileged = true;
        let v = serde_json::to_value(build(&p, Path::new("/r"), "/x", Version::V1).unwrap()).unwrap();
        assert!(v["linux"].get("seccomp").is_none());
        assert!(v["linux"].get("maskedPaths").is_none());
        assert!(!v["linux"]["devices"].as_array().unwrap().is_empty());
        let mut bad = config();
        bad.args.clear();
        assert!(build(&bad, Path::new("/r"), "/x", Version::V1).is_err());
    }
}
