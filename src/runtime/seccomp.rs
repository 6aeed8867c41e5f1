//! Seccomp profiles: the RuntimeDefault profile (the syscall table Docker and containerd ship as
//! their default), Localhost profiles in the same (Docker/containerd) JSON format, and their
//! conversion to an OCI `linux.seccomp` section for the container's capabilities and architecture.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{json, Value};

/// A profile in the Docker/containerd format (`includes` / `excludes` by capability, architecture
/// and minimum kernel are resolved at conversion).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    pub includes: Filter,
    #[serde(default)]
    pub excludes: Filter,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// Syscalls every container may use (the unconditional allow list of the default profile).
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Namespace flags of clone(2) (`CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET`):
/// without CAP_SYS_ADMIN, clone is allowed only without them.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

/// The conditional part of the default profile: (names, caps needed, arches, extra).
fn default_rules() -> Vec<Rule> {
    fn rule(names: &[&str]) -> Rule {
        Rule {
            names: names.iter().map(|s| s.to_string()).collect(),
            action: "SCMP_ACT_ALLOW".into(),
            ..Rule::default()
        }
    }
    fn with_caps(mut r: Rule, caps: &[&str]) -> Rule {
        r.includes.caps = caps.iter().map(|s| s.to_string()).collect();
        r
    }
    fn with_arches(mut r: Rule, arches: &[&str]) -> Rule {
        r.includes.arches = arches.iter().map(|s| s.to_string()).collect();
        r
    }
    fn arg(index: u32, value: u64, value_two: u64, op: &str) -> Arg {
        Arg { index, value, value_two, op: op.into() }
    }
    let mut rules = vec![rule(ALLOWED)];
    let mut ptrace = rule(&["process_vm_readv", "process_vm_writev", "ptrace"]);
    ptrace.includes.min_kernel = Some("4.8".into());
    rules.push(ptrace);
    let mut socket = rule(&["socket"]);
    socket.args = vec![arg(0, 40, 0, "SCMP_CMP_NE")]; // AF_VSOCK
    rules.push(socket);
    for persona in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        let mut r = rule(&["personality"]);
        r.args = vec![arg(0, persona, 0, "SCMP_CMP_EQ")];
        rules.push(r);
    }
    rules.push(with_arches(rule(&["sync_file_range2", "swapcontext"]), &["ppc64le"]));
    rules.push(with_arches(
        rule(&["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"]),
        &["arm", "arm64"],
    ));
    rules.push(with_arches(rule(&["arch_prctl"]), &["amd64", "x32"]));
    rules.push(with_arches(rule(&["modify_ldt"]), &["amd64", "x32", "x86"]));
    rules.push(with_arches(
        rule(&["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"]),
        &["s390", "s390x"],
    ));
    rules.push(with_arches(rule(&["riscv_flush_icache"]), &["riscv64"]));
    rules.push(with_caps(rule(&["open_by_handle_at"]), &["CAP_DAC_READ_SEARCH"]));
    rules.push(with_caps(
        rule(&[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ]),
        &["CAP_SYS_ADMIN"],
    ));
    let mut clone = rule(&["clone"]);
    clone.args = vec![arg(0, CLONE_NS_FLAGS, 0, "SCMP_CMP_MASKED_EQ")];
    clone.excludes.caps = vec!["CAP_SYS_ADMIN".into()];
    clone.excludes.arches = vec!["s390".into(), "s390x".into()];
    rules.push(clone);
    let mut clone_s390 = rule(&["clone"]);
    clone_s390.args = vec![arg(1, CLONE_NS_FLAGS, 0, "SCMP_CMP_MASKED_EQ")];
    clone_s390.includes.arches = vec!["s390".into(), "s390x".into()];
    clone_s390.excludes.caps = vec!["CAP_SYS_ADMIN".into()];
    rules.push(clone_s390);
    // clone3 cannot be filtered by flags (they are behind a pointer): ENOSYS makes libcs fall back
    // to clone.
    let mut clone3 = rule(&["clone3"]);
    clone3.action = "SCMP_ACT_ERRNO".into();
    clone3.errno_ret = Some(libc::ENOSYS as u32);
    clone3.excludes.caps = vec!["CAP_SYS_ADMIN".into()];
    rules.push(clone3);
    for (names, cap) in [
        (&["reboot"][..], "CAP_SYS_BOOT"),
        (&["chroot"][..], "CAP_SYS_CHROOT"),
        (&["delete_module", "init_module", "finit_module"][..], "CAP_SYS_MODULE"),
        (&["acct"][..], "CAP_SYS_PACCT"),
        (
            &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"][..],
            "CAP_SYS_PTRACE",
        ),
        (&["iopl", "ioperm"][..], "CAP_SYS_RAWIO"),
        (&["settimeofday", "stime", "clock_settime", "clock_settime64"][..], "CAP_SYS_TIME"),
        (&["vhangup"][..], "CAP_SYS_TTY_CONFIG"),
        (&["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"][..], "CAP_SYS_NICE"),
        (&["syslog"][..], "CAP_SYSLOG"),
        (&["bpf"][..], "CAP_BPF"),
        (&["perf_event_open"][..], "CAP_PERFMON"),
    ] {
        rules.push(with_caps(rule(names), &[cap]));
    }
    rules
}

/// The RuntimeDefault profile.
pub fn default_profile() -> Profile {
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(libc::EPERM as u32),
        syscalls: default_rules(),
        ..Profile::default()
    }
}

/// Parses a Localhost profile (Docker/containerd JSON format).
pub fn parse_profile(data: &[u8]) -> Result<Profile, String> {
    serde_json::from_slice(data).map_err(|e| format!("invalid seccomp profile: {e}"))
}

/// The Go architecture name of the host (the names profiles use in `includes.arches`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        "mips64" => "mips64le",
        other => other,
    }
}

/// The libseccomp architectures of the host and the ones its binaries may also run as.
fn native_archs() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" if x32_abi_enabled() => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "arm" => vec!["SCMP_ARCH_ARM"],
        "riscv64" => vec!["SCMP_ARCH_RISCV64"],
        "s390x" => vec!["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        "powerpc64" => vec!["SCMP_ARCH_PPC64LE"],
        _ => vec![],
    }
}

/// The bit that makes an x86_64 system call number an x32 one.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;

/// Whether the kernel runs x32 programs (most kernels have the ABI disabled or not built: an x32
/// system call fails with ENOSYS). Where it does not, the filter leaves the x32 architecture out:
/// no process could make such calls anyway, and each architecture in a filter costs the
/// container's init ~3 ms of libseccomp work (x86_64 alone 2.2 ms, with x86 and x32 11 ms, of a
/// ~27 ms container start here).
fn x32_abi_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: getpid through the x32 entry: no arguments, no side effects.
            let r = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
            r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

fn kernel_at_least(min: &str) -> bool {
    let parse = |s: &str| -> (u32, u32) {
        let mut it = s.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
        (it.next().and_then(|x| x.parse().ok()).unwrap_or(0), it.next().and_then(|x| x.parse().ok()).unwrap_or(0))
    };
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    parse(&release) >= parse(min)
}

/// Converts `profile` to an OCI `linux.seccomp` object for a container holding `caps`
/// (`CAP_*` names). Rules whose `includes` / `excludes` do not match are left out.
///
/// libcontainer 0.7 reads `SCMP_CMP_MASKED_EQ` arguments the other way round from runc (mask in
/// `valueTwo`, compared value in `value`), so the pair is swapped here to keep the profile's
/// (runc) meaning.
pub fn to_oci(profile: &Profile, caps: &BTreeSet<String>) -> Value {
    let arch = go_arch();
    let mut architectures: Vec<String> = profile.architectures.clone();
    if architectures.is_empty() && !profile.arch_map.is_empty() {
        let native = native_archs();
        for m in &profile.arch_map {
            if native.first() == Some(&m.architecture.as_str()) {
                architectures.push(m.architecture.clone());
                let subs = m.sub_architectures.clone().unwrap_or_default();
                // Sub-architectures the kernel cannot run (x32, see `x32_abi_enabled`) are left out.
                architectures.extend(subs.into_iter().filter(|a| a != "SCMP_ARCH_X32" || x32_abi_enabled()));
            }
        }
    }
    if architectures.is_empty() {
        architectures = native_archs().into_iter().map(String::from).collect();
    }
    let mut syscalls = Vec::new();
    for rule in &profile.syscalls {
        let inc = &rule.includes;
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch) {
            continue;
        }
        if !inc.caps.iter().all(|c| caps.contains(c)) {
            continue;
        }
        if inc.min_kernel.as_deref().is_some_and(|k| !kernel_at_least(k)) {
            continue;
        }
        let exc = &rule.excludes;
        if exc.arches.iter().any(|a| a == arch) || exc.caps.iter().any(|c| caps.contains(c)) {
            continue;
        }
        if exc.min_kernel.as_deref().is_some_and(kernel_at_least) {
            continue;
        }
        let mut names = rule.names.clone();
        if let Some(n) = &rule.name {
            names.push(n.clone());
        }
        let args: Vec<Value> = rule
            .args
            .iter()
            .map(|a| {
                let (value, value_two) =
                    if a.op == "SCMP_CMP_MASKED_EQ" { (a.value_two, a.value) } else { (a.value, a.value_two) };
                json!({"index": a.index, "value": value, "valueTwo": value_two, "op": a.op})
            })
            .collect();
        let mut sc = json!({"names": names, "action": rule.action});
        if let Some(e) = rule.errno_ret {
            sc["errnoRet"] = json!(e);
        }
        if !args.is_empty() {
            sc["args"] = Value::Array(args);
        }
        syscalls.push(sc);
    }
    let mut out = json!({
        "defaultAction": profile.default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(e) = profile.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    if !profile.flags.is_empty() {
        out["flags"] = json!(profile.flags);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &Value) -> Vec<String> {
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["action"] == "SCMP_ACT_ALLOW" && s.get("args").is_none())
            .flat_map(|s| s["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn architectures_are_the_ones_the_kernel_runs() {
        let archs = |v: &Value| -> Vec<String> {
            v["architectures"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
        };
        if go_arch() == "amd64" {
            let x32 = x32_abi_enabled();
            let mut want = vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"];
            if x32 {
                want.push("SCMP_ARCH_X32");
            }
            // The built-in profile, and a profile whose archMap names x32 as a sub-architecture.
            assert_eq!(archs(&to_oci(&default_profile(), &BTreeSet::new())), want);
            let mapped: Profile = serde_json::from_slice(
                br#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64",
                     "subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}],"syscalls":[]}"#,
            )
            .unwrap();
            assert_eq!(archs(&to_oci(&mapped, &BTreeSet::new())), want);
            // Architectures a profile lists itself are kept as they are.
            let listed: Profile = serde_json::from_slice(
                br#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X32"],"syscalls":[]}"#,
            )
            .unwrap();
            assert_eq!(archs(&to_oci(&listed, &BTreeSet::new())), ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]);
        }
    }

    #[test]
    fn default_profile_depends_on_caps() {
        let none = to_oci(&default_profile(), &BTreeSet::new());
        let n = names(&none);
        assert!(n.contains(&"read".to_string()));
        assert!(!n.contains(&"unshare".to_string()));
        assert!(!n.contains(&"keyctl".to_string()));
        assert!(!n.contains(&"mount".to_string()));
        assert_eq!(none["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(none["defaultErrnoRet"], 1);
        // clone limited to no namespace flags; mask swapped into valueTwo for libcontainer.
        let clone = none["syscalls"].as_array().unwrap().iter().find(|s| s["names"][0] == "clone").unwrap();
        assert_eq!(clone["args"][0]["valueTwo"], CLONE_NS_FLAGS);
        assert_eq!(clone["args"][0]["value"], 0);
        if go_arch() == "amd64" {
            assert!(n.contains(&"arch_prctl".to_string()));
            assert_eq!(none["architectures"][0], "SCMP_ARCH_X86_64");
        }
        let admin = to_oci(&default_profile(), &BTreeSet::from(["CAP_SYS_ADMIN".to_string()]));
        let n = names(&admin);
        assert!(n.contains(&"unshare".to_string()) && n.contains(&"mount".to_string()));
        assert!(!admin["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["names"][0] == "clone3" && s["action"] != "SCMP_ACT_ALLOW"));
    }

    #[test]
    fn localhost_profile_parses_docker_format() {
        let p = parse_profile(
            br#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                            {"names":["chmod"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#,
        )
        .unwrap();
        let v = to_oci(&p, &BTreeSet::new());
        assert_eq!(v["syscalls"].as_array().unwrap().len(), 1);
        assert_eq!(v["syscalls"][0]["errnoRet"], 13);
        assert!(parse_profile(b"{").is_err());
    }
}
