//! A container's seccomp filter compiled to BPF once per profile and installed by the shim's own
//! executor right before `execve`, instead of libcontainer building it with libseccomp inside
//! every container's init (5–10 ms of CPU per container for the RuntimeDefault profile on two
//! architectures). crun caches compiled filters the same way.
//!
//! * [`plan`] decides from the spec whether the filter can be installed late: with
//!   `no_new_privs` (as libcontainer does itself then), with `CAP_SYS_ADMIN` already effective
//!   (privileged), or by keeping `CAP_SYS_ADMIN` in the *permitted* set only — never in the
//!   bounding, inheritable or ambient sets — raising it for the `seccomp(2)` call and dropping it
//!   from the effective and permitted sets right after. That last way needs the filter to allow
//!   `capset`, which RuntimeDefault does; profiles that do not, and profiles with
//!   `SCMP_ACT_NOTIFY`, are left to libcontainer. Even if the drop were skipped, `execve` would
//!   clear the capability (it is not in the bounding set); the executor fails instead of running
//!   the payload when the drop fails.
//! * [`prepare`] (the agent, when it writes a container's bundle) turns the OCI profile into BPF
//!   with libseccomp once per profile, exactly as libcontainer 0.7 does (same action,
//!   architecture, flag and argument translation), keeping it in `<cache>/<sha256>.bpf` — the key
//!   covers the profile, the libseccomp version, the kernel and this binary's version, so a cached
//!   program always equals what libseccomp would load — and writes `<bundle>/init/config.json`,
//!   the spec libcontainer gets: without `linux.seccomp`, `CAP_SYS_ADMIN` permitted when the plan
//!   needs it, the rootfs as an absolute path. The shim reads the program ([`load`]) from the
//!   [`InitFilter`] in the container's metadata.
//! * [`install`] loads the program with `seccomp(SECCOMP_SET_MODE_FILTER)` and the profile's flags.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use caps::{CapSet, Capability as Cap};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, Spec,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SeccompBpfError {
    #[error("seccomp profile: {0}")]
    Profile(String),
    #[error("compiling the seccomp profile: {0}")]
    Compile(#[from] libseccomp::error::SeccompError),
    #[error("seccomp filter cache {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cached seccomp filter {} is malformed", .0.display())]
    Malformed(PathBuf),
}

/// How the executor gets the right to load the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Install {
    /// `no_new_privs` is set: loading needs no capability.
    NoNewPrivs,
    /// `CAP_SYS_ADMIN` is effective anyway.
    Effective,
    /// `CAP_SYS_ADMIN` is raised from the permitted set for the load and dropped after it; from
    /// the permitted set too when `added` (it was put there only for this).
    Raise { added: bool },
}

/// A compiled filter: the BPF program and the `seccomp(2)` flags.
#[derive(Clone)]
pub struct Compiled {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

/// What the shim needs to install a container's filter itself (kept in its metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitFilter {
    /// The cached program.
    pub program: PathBuf,
    /// The `seccomp(2)` flags.
    pub flags: libc::c_ulong,
    pub install: Install,
}

/// Prepares `bundle` (whose `config.json` is `spec`) for the shim to install the spec's filter:
/// the program compiled into `cache` and `<bundle>/init/config.json` for libcontainer. `None`:
/// no filter, or one libcontainer must build ([`plan`]); the bundle stays as it is.
pub fn prepare(cache: &Path, spec: &Spec, bundle: &Path) -> Result<Option<InitFilter>, SeccompBpfError> {
    let Some(install) = plan(spec) else { return Ok(None) };
    let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else { return Ok(None) };
    let program = cached(cache, profile)?;
    let dir = bundle.join("init");
    std::fs::create_dir_all(&dir).map_err(|source| SeccompBpfError::Io { path: dir.clone(), source })?;
    let path = dir.join("config.json");
    spec_for_libcontainer(spec, install, bundle)
        .save(&path)
        .map_err(|e| SeccompBpfError::Io { path, source: std::io::Error::other(e.to_string()) })?;
    Ok(Some(InitFilter { program, flags: flags(profile)?, install }))
}

/// Whether (and how) the spec's filter can be installed by the executor; `None` leaves it to
/// libcontainer.
pub fn plan(spec: &Spec) -> Option<Install> {
    let seccomp = spec.linux().as_ref()?.seccomp().as_ref()?;
    if notifies(seccomp) {
        return None;
    }
    let process = spec.process().as_ref()?;
    if process.no_new_privileges() == Some(true) {
        return Some(Install::NoNewPrivs);
    }
    let caps = process.capabilities().as_ref();
    let has = |set: Option<&HashSet<Capability>>| set.is_some_and(|s| s.contains(&Capability::SysAdmin));
    if has(caps.and_then(|c| c.effective().as_ref())) {
        return Some(Install::Effective);
    }
    if !allows_capset(seccomp) {
        return None;
    }
    Some(Install::Raise { added: !has(caps.and_then(|c| c.permitted().as_ref())) })
}

/// The spec libcontainer gets when the executor installs the filter: without `linux.seccomp`,
/// with `CAP_SYS_ADMIN` permitted when the plan added it, and the rootfs as an absolute path (the
/// spec lives in `<bundle>/init`).
fn spec_for_libcontainer(spec: &Spec, how: Install, bundle: &Path) -> Spec {
    let mut spec = spec.clone();
    if let Some(mut linux) = spec.linux().clone() {
        linux.set_seccomp(None);
        spec.set_linux(Some(linux));
    }
    if how == (Install::Raise { added: true }) {
        if let Some(mut process) = spec.process().clone() {
            let mut caps = process.capabilities().clone().unwrap_or_default();
            let mut permitted = caps.permitted().clone().unwrap_or_default();
            permitted.insert(Capability::SysAdmin);
            caps.set_permitted(Some(permitted));
            process.set_capabilities(Some(caps));
            spec.set_process(Some(process));
        }
    }
    if let Some(mut root) = spec.root().clone() {
        if root.path().is_relative() {
            root.set_path(bundle.join(root.path()));
            spec.set_root(Some(root));
        }
    }
    spec
}

/// Whether [`cached`] can take the profile (a notify listener needs libcontainer).
pub fn cacheable(seccomp: &LinuxSeccomp) -> bool {
    !notifies(seccomp)
}

fn notifies(seccomp: &LinuxSeccomp) -> bool {
    seccomp.default_action() == LinuxSeccompAction::ScmpActNotify
        || seccomp.listener_path().is_some()
        || seccomp.syscalls().iter().flatten().any(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
}

/// Whether the profile lets `capset` through unconditionally.
fn allows_capset(seccomp: &LinuxSeccomp) -> bool {
    let mut named = false;
    for rule in seccomp.syscalls().iter().flatten() {
        if rule.names().iter().any(|n| n == "capset") {
            if rule.action() != LinuxSeccompAction::ScmpActAllow || rule.args().as_ref().is_some_and(|a| !a.is_empty())
            {
                return false;
            }
            named = true;
        }
    }
    named || seccomp.default_action() == LinuxSeccompAction::ScmpActAllow
}

/// The program for `seccomp` and its flags, compiled into `cache` first when missing.
pub fn load_or_compile(cache: &Path, seccomp: &LinuxSeccomp) -> Result<Compiled, SeccompBpfError> {
    load(&cached(cache, seccomp)?, flags(seccomp)?)
}

/// A cached program.
pub fn load(path: &Path, flags: libc::c_ulong) -> Result<Compiled, SeccompBpfError> {
    let bytes = std::fs::read(path).map_err(|source| SeccompBpfError::Io { path: path.to_path_buf(), source })?;
    let program = parse(&bytes).ok_or_else(|| SeccompBpfError::Malformed(path.to_path_buf()))?;
    Ok(Compiled { program, flags })
}

/// The path of the program for `seccomp` in `cache`, compiled there first when missing.
pub fn cached(cache: &Path, seccomp: &LinuxSeccomp) -> Result<PathBuf, SeccompBpfError> {
    // One compilation at a time in this process: containers starting together with a new profile
    // wait for the first one's program instead of each building it.
    static COMPILING: Mutex<()> = Mutex::new(());
    static TMP: AtomicU64 = AtomicU64::new(0);
    let path = cache.join(format!("{}.bpf", key(seccomp)?));
    if path.exists() {
        return Ok(path);
    }
    let _one = COMPILING.lock().unwrap_or_else(|e| e.into_inner());
    if path.exists() {
        return Ok(path);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SeccompBpfError::Io { path, source }
    };
    std::fs::create_dir_all(cache).map_err(io(cache))?;
    let ctx = context(seccomp)?;
    // A private temporary name, renamed into place: other processes may compile the same profile;
    // each rename installs a complete file.
    let tmp = cache.join(format!(".{}.{}.tmp", std::process::id(), TMP.fetch_add(1, Ordering::Relaxed)));
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let exported =
        ctx.export_bpf(&file).map_err(SeccompBpfError::Compile).and_then(|()| file.flush().map_err(io(&tmp)));
    drop(file);
    if let Err(e) = exported.and_then(|()| std::fs::rename(&tmp, &path).map_err(io(&path))) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(path)
}

/// The BPF instructions of an exported program (native byte order).
fn parse(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    const INSN: usize = std::mem::size_of::<libc::sock_filter>();
    // The kernel's BPF_MAXINSNS.
    if bytes.is_empty() || !bytes.len().is_multiple_of(INSN) || bytes.len() / INSN > 4096 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(INSN)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

fn key(seccomp: &LinuxSeccomp) -> Result<String, SeccompBpfError> {
    let profile = serde_json::to_vec(seccomp).map_err(|e| SeccompBpfError::Profile(e.to_string()))?;
    let lib = libseccomp::ScmpVersion::current()?;
    let uts = nix::sys::utsname::uname().map_err(|e| SeccompBpfError::Profile(format!("uname: {e}")))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        env!("CARGO_PKG_VERSION").as_bytes(),
        format!("libseccomp {}.{}.{}", lib.major, lib.minor, lib.micro).as_bytes(),
        uts.release().as_encoded_bytes(),
        uts.machine().as_encoded_bytes(),
        &profile,
    ] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part);
    }
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// The `seccomp(2)` flags libseccomp would pass for the profile's flags.
fn flags(seccomp: &LinuxSeccomp) -> Result<libc::c_ulong, SeccompBpfError> {
    let mut flags = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(SeccompBpfError::Profile(
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a notify listener".into(),
                ))
            }
        };
    }
    Ok(flags)
}

/// libseccomp's filter for the profile, built as libcontainer 0.7 builds it (rules whose action
/// equals the default are skipped, unknown syscall names are skipped, conditions on the same
/// argument become separate rules).
fn context(seccomp: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompBpfError> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default)?;
    for flag in seccomp.flags().iter().flatten() {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true)?,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true)?,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true)?,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true)?,
        };
    }
    for &a in seccomp.architectures().iter().flatten() {
        ctx.add_arch(arch(a))?;
    }
    ctx.set_ctl_nnp(false)?;
    for rule in seccomp.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else { continue };
            match rule.args() {
                Some(args) => {
                    let cmps: Vec<ScmpArgCompare> = args
                        .iter()
                        .map(|a| ScmpArgCompare::new(a.index() as u32, op(a.op(), a.value_two()), a.value()))
                        .collect();
                    let mut seen = HashSet::new();
                    if args.iter().all(|a| seen.insert(a.index())) {
                        ctx.add_rule_conditional(act, sc, &cmps)?;
                    } else {
                        for c in &cmps {
                            ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))?;
                        }
                    }
                }
                None => {
                    ctx.add_rule(act, sc)?;
                }
            }
        }
    }
    Ok(ctx)
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SeccompBpfError> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(
            errno
                .try_into()
                .map_err(|_| SeccompBpfError::Profile(format!("SCMP_ACT_TRACE value {errno} out of range")))?,
        ),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn op(op: LinuxSeccompOperator, datum_b: Option<u64>) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(datum_b.unwrap_or(0)),
    }
}

fn arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Loads the filter into the calling (single-threaded) process. Runs in the container's init
/// right before `execve`; allocates nothing.
pub fn install(filter: &Compiled, how: Install) -> std::io::Result<()> {
    let caps_err = |what: &str, e: caps::errors::CapsError| std::io::Error::other(format!("{what}: {e}"));
    if let Install::Raise { .. } = how {
        caps::raise(None, CapSet::Effective, Cap::CAP_SYS_ADMIN).map_err(|e| caps_err("raising CAP_SYS_ADMIN", e))?;
    }
    let prog = libc::sock_fprog { len: filter.program.len() as u16, filter: filter.program.as_ptr().cast_mut() };
    // SAFETY: seccomp(2) reads the program through `prog`, which outlives the call.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, filter.flags, &prog as *const libc::sock_fprog)
    };
    let loaded = if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) };
    if let Install::Raise { added } = how {
        caps::drop(None, CapSet::Effective, Cap::CAP_SYS_ADMIN).map_err(|e| caps_err("dropping CAP_SYS_ADMIN", e))?;
        if added {
            caps::drop(None, CapSet::Permitted, Cap::CAP_SYS_ADMIN)
                .map_err(|e| caps_err("dropping CAP_SYS_ADMIN", e))?;
        }
    }
    loaded.map_err(|e| std::io::Error::new(e.kind(), format!("loading the seccomp filter: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    fn spec(seccomp: serde_json::Value, nnp: Option<bool>, effective: &[&str], permitted: &[&str]) -> Spec {
        let mut process = serde_json::json!({
            "cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": effective, "effective": effective, "permitted": permitted},
        });
        if let Some(n) = nnp {
            process["noNewPrivileges"] = n.into();
        }
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": process,
            "linux": {"seccomp": seccomp},
        }))
        .unwrap()
    }

    #[test]
    fn plans_follow_privileges_and_the_profile() {
        let deny_default = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "capset"], "action": "SCMP_ACT_ALLOW"}]});
        let chown = ["CAP_CHOWN"];
        assert_eq!(plan(&spec(deny_default.clone(), Some(true), &chown, &chown)), Some(Install::NoNewPrivs));
        assert_eq!(plan(&spec(deny_default.clone(), None, &chown, &chown)), Some(Install::Raise { added: true }));
        assert_eq!(
            plan(&spec(deny_default.clone(), None, &chown, &["CAP_CHOWN", "CAP_SYS_ADMIN"])),
            Some(Install::Raise { added: false })
        );
        assert_eq!(plan(&spec(deny_default, None, &["CAP_SYS_ADMIN"], &["CAP_SYS_ADMIN"])), Some(Install::Effective));
        // capset denied or conditional: the capability could not be dropped again.
        let no_capset = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]});
        assert_eq!(plan(&spec(no_capset.clone(), None, &chown, &chown)), None);
        assert_eq!(plan(&spec(no_capset, Some(true), &chown, &chown)), Some(Install::NoNewPrivs));
        let capset_errno = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["capset"], "action": "SCMP_ACT_ERRNO"}]});
        assert_eq!(plan(&spec(capset_errno, None, &chown, &chown)), None);
        let allow_default = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]});
        assert_eq!(plan(&spec(allow_default, None, &chown, &chown)), Some(Install::Raise { added: true }));
        // A notify listener stays with libcontainer.
        let notify = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
        assert_eq!(plan(&spec(notify, Some(true), &chown, &chown)), None);
    }

    #[test]
    fn libcontainer_spec_has_no_filter_and_sys_admin_only_permitted() {
        let s = spec(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}), None, &["CAP_CHOWN"], &["CAP_CHOWN"]);
        let bundle = Path::new("/b");
        let out = spec_for_libcontainer(&s, Install::Raise { added: true }, bundle);
        assert!(out.linux().as_ref().unwrap().seccomp().is_none());
        assert_eq!(out.root().as_ref().unwrap().path(), Path::new("/b/rootfs"));
        let caps = out.process().as_ref().unwrap().capabilities().clone().unwrap();
        assert!(caps.permitted().as_ref().unwrap().contains(&Capability::SysAdmin));
        for set in [caps.bounding(), caps.effective(), caps.inheritable(), caps.ambient()] {
            assert!(!set.as_ref().is_some_and(|s| s.contains(&Capability::SysAdmin)));
        }
        let out = spec_for_libcontainer(&s, Install::NoNewPrivs, bundle);
        let caps = out.process().as_ref().unwrap().capabilities().clone().unwrap();
        assert!(!caps.permitted().as_ref().unwrap().contains(&Capability::SysAdmin));
    }

    #[test]
    fn compiles_once_and_the_program_filters() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                         {"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}]}));
        let first = load_or_compile(dir.path(), &p).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let mtime = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
        let again = load_or_compile(dir.path(), &p).unwrap();
        assert_eq!(std::fs::metadata(&files[0]).unwrap().modified().unwrap(), mtime);
        assert_eq!(first.program.len(), again.program.len());
        assert!(!first.program.is_empty());
        // Another profile gets another file.
        let q = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"}]}));
        load_or_compile(dir.path(), &q).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

        // Installed (no_new_privs) in a child: mkdir fails with the profile's errno, the rest works.
        let target = dir.path().join("made");
        let c_target = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: the child only makes async-signal-safe calls (prctl, seccomp, mkdir, _exit)
        // before exiting; the filter lives in memory copied into it.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if install(&first, Install::NoNewPrivs).is_err() {
                    libc::_exit(10);
                }
                let rc = libc::mkdir(c_target.as_ptr(), 0o755);
                let errno = *libc::__errno_location();
                libc::_exit(if rc == -1 && errno == libc::EACCES { 0 } else { 11 });
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status:#x}");
        assert!(!target.exists());
    }

    #[test]
    fn prepare_writes_the_init_spec_and_records_the_filter() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, bundle) = (dir.path().join("cache"), dir.path().join("bundle"));
        let profile = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]});
        let s = spec(profile, None, &["CAP_CHOWN"], &["CAP_CHOWN"]);
        let f = prepare(&cache, &s, &bundle).unwrap().expect("a filter for the shim");
        assert_eq!(f.install, Install::Raise { added: true });
        assert_eq!(f.flags, libc::SECCOMP_FILTER_FLAG_LOG);
        assert_eq!(f.program.parent(), Some(cache.as_path()));
        assert!(!load(&f.program, f.flags).unwrap().program.is_empty());
        let init = Spec::load(bundle.join("init/config.json")).unwrap();
        assert!(init.linux().as_ref().unwrap().seccomp().is_none());
        assert_eq!(init.root().as_ref().unwrap().path(), &bundle.join("rootfs"));
        // No filter, or one only libcontainer can build: nothing prepared.
        let bare = tempfile::tempdir().unwrap();
        let mut none = s.clone();
        none.set_linux(None);
        assert_eq!(prepare(&cache, &none, bare.path()).unwrap(), None);
        let notify = spec(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            Some(true),
            &["CAP_CHOWN"],
            &["CAP_CHOWN"],
        );
        assert_eq!(prepare(&cache, &notify, bare.path()).unwrap(), None);
        assert!(!bare.path().join("init").exists());
    }

    #[test]
    fn malformed_cache_files_are_refused() {
        assert!(parse(&[]).is_none());
        assert!(parse(&[0; 12]).is_none());
        assert!(parse(&vec![0; 8 * 4097]).is_none());
        assert_eq!(parse(&[0; 16]).map(|p| p.len()), Some(2));
    }
}
