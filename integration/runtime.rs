//! The container runtime driven directly (`kelp::runtime::Runtime`), with real containers from a
//! busybox layer, each test under its own cgroup root, state and data dirs; everything it created
//! (processes, mounts, cgroups) is checked to be gone at the end.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use kelp::runtime::{
    cgroups, AttachOptions, ContainerConfig, ContainerState, ExecOptions, ExitReason, Namespaces, Resources, Runtime,
    RuntimeConfig, RuntimeError, Seccomp, Security,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A busybox root filesystem layer: /bin/busybox plus one symlink per applet.
fn busybox_layer(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    for d in ["etc", "tmp", "proc", "sys", "dev", "home/nobody", "work"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::set_permissions(dir.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// One test's runtime: temp dirs, a unique cgroup root, a unique pod.
struct Env {
    tmp: tempfile::TempDir,
    rt: Option<Runtime>,
    cgroup_root: String,
    pod_uid: String,
    log_max_size: u64,
}

impl Env {
    fn new() -> Env {
        Env::with_log_max_size(kelp::runtime::logs::DEFAULT_MAX_SIZE)
    }

    /// A runtime rotating container logs at `log_max_size` bytes, keeping 3 files.
    fn with_log_max_size(log_max_size: u64) -> Env {
        let tmp = tempfile::Builder::new().prefix("kelp-rt-").tempdir_in("/run").unwrap();
        busybox_layer(&tmp.path().join("layer"));
        let cgroup_root = unique("kelp-it");
        let mut env = Env { rt: None, cgroup_root, pod_uid: unique("pod").replace('-', ""), tmp, log_max_size };
        env.rt = Some(env.runtime());
        env
    }

    fn runtime(&self) -> Runtime {
        let cfg = RuntimeConfig {
            state_dir: self.tmp.path().join("state"),
            data_dir: self.tmp.path().join("data"),
            cgroup_root: self.cgroup_root.clone(),
            container_log_max_size: self.log_max_size,
            container_log_max_files: 3,
        };
        Runtime::with_shim_binary(cfg, Path::new(env!("CARGO_BIN_EXE_kelp"))).unwrap()
    }

    fn rt(&self) -> &Runtime {
        self.rt.as_ref().unwrap()
    }

    fn config(&self, name: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
            pod_uid: self.pod_uid.clone(),
            pod_namespace: "default".into(),
            pod_name: "p".into(),
            name: name.into(),
            attempt: 0,
            layers: vec![self.tmp.path().join("layer")],
            image_id: "busybox".into(),
            args: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![],
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
            log_path: self.tmp.path().join("logs").join(format!("{name}.log")),
            labels: BTreeMap::from([("k".to_string(), name.to_string())]),
        }
    }

    async fn wait_exit(&self, id: &str) -> ContainerState {
        for _ in 0..3000 {
            let st = self.rt().status(id).await.unwrap().state;
            if matches!(st, ContainerState::Exited { .. }) {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("container {id} did not exit");
    }

    /// Runs a container to completion; returns its exit state and its log.
    async fn run(&self, cfg: ContainerConfig) -> (ContainerState, String) {
        let log = cfg.log_path.clone();
        let st = self.rt().start(cfg).await.unwrap();
        let state = self.wait_exit(&st.id).await;
        let text = std::fs::read_to_string(log).unwrap_or_default();
        self.rt().remove(&st.id).await.unwrap();
        (state, text)
    }

    /// Removes everything and checks nothing is left: containers, mounts, cgroups, processes.
    async fn finish(mut self) {
        let rt = self.rt.take().unwrap();
        for c in rt.list().await.unwrap() {
            rt.stop(&c.id, Duration::from_millis(100), Some(libc::SIGKILL)).await.unwrap();
            rt.remove(&c.id).await.unwrap();
        }
        assert!(rt.list().await.unwrap().is_empty());
        rt.remove_pod(&self.pod_uid).await.unwrap();
        // The cgroup root must now be empty in every hierarchy.
        cgroups::remove(rt.cgroup_version(), &format!("/{}", self.cgroup_root)).unwrap();
        let root = self.tmp.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&root), "mounts left under {root}");
        assert!(leftover_processes(&root).is_empty(), "processes left: {:?}", leftover_processes(&root));
        drop(rt);
    }
}

/// Processes whose command line mentions `needle` (shims of this test).
fn leftover_processes(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

impl Drop for Env {
    /// Best-effort cleanup when a test failed before `finish`.
    fn drop(&mut self) {
        if self.rt.is_none() {
            return;
        }
        let root = self.tmp.path().to_string_lossy().into_owned();
        for pid in leftover_processes(&root) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let state = self.tmp.path().join("state/containers");
        for e in std::fs::read_dir(&state).into_iter().flatten().flatten() {
            if let Ok(s) = std::fs::read_to_string(e.path().join("status.json")) {
                let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
                if let Some(pid) = v["pid"].as_i64() {
                    if v["exit"].is_null() {
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        for e in std::fs::read_dir(self.tmp.path().join("data")).into_iter().flatten().flatten() {
            let _ = nix::mount::umount2(&e.path().join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        }
        if let Ok(v) = cgroups::version() {
            let pod = format!("/{}/pod{}", self.cgroup_root, self.pod_uid);
            for dir in cgroups::all_dirs(v, &pod).unwrap_or_default() {
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    if e.path().is_dir() {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = cgroups::remove(v, &pod);
            let _ = cgroups::remove(v, &format!("/{}", self.cgroup_root));
        }
    }
}

fn exited(state: &ContainerState) -> (i32, Option<i32>, ExitReason) {
    match state {
        ContainerState::Exited { exit_code, signal, reason, .. } => (*exit_code, *signal, reason.clone()),
        other => panic!("not exited: {other:?}"),
    }
}

/// Log lines as (stream, tag, text), checking the timestamp format.
fn records(log: &str) -> Vec<(String, String, String)> {
    log.lines()
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let ts = it.next().unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "bad timestamp in {l:?}");
            (it.next().unwrap().into(), it.next().unwrap().into(), it.next().unwrap_or("").into())
        })
        .collect()
}

fn has(log: &str, stream: &str, tag: &str, text: &str) -> bool {
    records(log).iter().any(|(s, t, l)| s == stream && t == tag && l == text)
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_code_logs_and_exit_notification() {
    let env = Env::new();
    let cfg = env.config("logs", "echo out; echo err >&2; echo; printf partial; exit 7");
    let st = env.rt().start(cfg).await.unwrap();
    assert!(matches!(st.state, ContainerState::Running { .. }));
    assert_eq!(env.rt().next_exit().await, st.id);
    let status = env.rt().status(&st.id).await.unwrap();
    assert_eq!(exited(&status.state), (7, None, ExitReason::Error));
    assert_eq!(status.labels["k"], "logs");
    let log = std::fs::read_to_string(&status.log_path).unwrap();
    assert!(has(&log, "stdout", "F", "out"), "{log}");
    assert!(has(&log, "stderr", "F", "err"), "{log}");
    assert!(has(&log, "stdout", "F", ""), "{log}");
    assert!(has(&log, "stdout", "P", "partial"), "{log}");
    // A line over 16 KiB is split into P records.
    let (state, log) = env.run(env.config("long", "head -c 20000 /dev/zero | tr '\\0' a; echo")).await;
    assert_eq!(exited(&state), (0, None, ExitReason::Completed));
    let r = records(&log);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!((r[0].1.as_str(), r[0].2.len()), ("P", 16384));
    assert_eq!((r[1].1.as_str(), r[1].2.len()), ("F", 20000 - 16384));
    env.rt().remove(&st.id).await.unwrap();
    assert!(std::fs::metadata(&status.log_path).is_ok(), "the log stays after remove");
    assert!(matches!(env.rt().status(&st.id).await, Err(kelp::runtime::RuntimeError::NotFound(_))));
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn env_cwd_user_and_readonly_rootfs() {
    let env = Env::new();
    let mut cfg = env.config("user", "echo foo=$FOO; pwd; id -u; id -g; id -G; echo home=$HOME; echo hi > /tmp/x");
    cfg.env = vec!["FOO=bar".into()];
    cfg.cwd = "/work".into();
    cfg.uid = 65534;
    cfg.gid = 65534;
    cfg.additional_gids = vec![1234];
    let (state, log) = env.run(cfg).await;
    let lines: Vec<String> = records(&log).into_iter().map(|r| r.2).collect();
    assert_eq!(lines[..6], ["foo=bar", "/work", "65534", "65534", "65534 1234", "home=/home/nobody"], "{log}");
    assert_eq!(exited(&state).0, 0, "{log}");

    let mut ro = env.config("ro", "echo hi > /tmp/x && echo writable || echo readonly");
    ro.security.read_only_rootfs = true;
    let (_, log) = env.run(ro).await;
    assert!(has(&log, "stdout", "F", "readonly"), "{log}");
    let (_, log) = env.run(env.config("rw", "echo hi > /tmp/x && echo writable || echo readonly")).await;
    assert!(has(&log, "stdout", "F", "writable"), "{log}");
    // The image layer is untouched.
    assert!(!env.tmp.path().join("layer/tmp/x").exists());
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_limit_oom_and_pids_limit() {
    let env = Env::new();
    let mut cfg = env.config("oom", "exec tail /dev/zero");
    cfg.resources.memory_limit = Some(32 << 20);
    let (state, _) = env.run(cfg).await;
    assert_eq!(exited(&state), (137, Some(9), ExitReason::OomKilled));

    let mut cfg = env.config("pids", "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait; echo done");
    cfg.resources.pids_limit = Some(4);
    let (state, log) = env.run(cfg).await;
    assert!(log.contains("can't fork"), "{log}");
    assert!(!has(&log, "stdout", "F", "done"), "{log}");
    assert_eq!(exited(&state).2, ExitReason::Error);
    let mut cfg = env.config("pids", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo done");
    cfg.resources.pids_limit = Some(20);
    let (state, log) = env.run(cfg).await;
    assert!(has(&log, "stdout", "F", "done"), "{log}");
    assert_eq!(exited(&state), (0, None, ExitReason::Completed));
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_limits_stats_exec_and_stop() {
    let env = Env::new();
    let mut cfg = env.config("cpu", "sleep 60");
    cfg.resources = Resources {
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        memory_limit: Some(64 << 20),
        pids_limit: Some(100),
    };
    let st = env.rt().start(cfg).await.unwrap();
    let path = env.rt().cgroup_path(&st.id).await.unwrap();
    assert_eq!(path, format!("/{}/pod{}/cpu", env.cgroup_root, env.pod_uid));
    let v = env.rt().cgroup_version();
    let read = |ctl: &str, file: &str| {
        std::fs::read_to_string(cgroups::controller_dir(v, ctl, &path).unwrap().join(file)).unwrap().trim().to_string()
    };
    if v == cgroups::Version::V1 {
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(read("memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(read("pids", "pids.max"), "100");
    } else {
        assert_eq!(read("", "cpu.max"), "50000 100000");
        assert_eq!(read("", "memory.max"), (64u64 << 20).to_string());
    }
    let ContainerState::Running { pid, .. } = st.state else { panic!() };
    let procs = read(if v == cgroups::Version::V1 { "memory" } else { "" }, "cgroup.procs");
    assert!(procs.lines().any(|p| p == pid.to_string()), "{procs}");
    let (cpu, mem) = env.rt().stats(&st.id).unwrap();
    assert!(cpu > 0 && mem > 0, "{cpu} {mem}");

    // exec: output and exit code, in the container's namespaces and with its seccomp filter.
    let (code, out) = env
        .rt()
        .exec_sync(
            &st.id,
            vec!["sh".into(), "-c".into(), "echo hi; echo oops >&2; grep Seccomp: /proc/self/status; exit 3".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 3);
    assert!(out.contains("hi\n") && out.contains("oops\n") && out.contains("Seccomp:\t2"), "{out}");
    let (code, out) = env
        .rt()
        .exec_sync(&st.id, vec!["cat".into(), "/proc/1/cmdline".into()], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((code, out), (0, b"sleep\x0060\x00".to_vec()), "exec shares the pid namespace");
    let err =
        env.rt().exec_sync(&st.id, vec!["sleep".into(), "10".into()], Duration::from_millis(300)).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    let err = env.rt().exec_sync(&st.id, vec!["/nonexistent".into()], Duration::from_secs(5)).await;
    assert!(err.is_err() || err.as_ref().unwrap().0 != 0, "{err:?}");

    // exec on the caller's streams, with extra environment.
    let (in_r, in_w) = nix::unistd::pipe().unwrap();
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let (err_r, err_w) = nix::unistd::pipe().unwrap();
    std::fs::File::from(in_w).write_all(b"hello\n").unwrap();
    let io = kelp::runtime::ExecIo { stdin: Some(in_r), stdout: out_w, stderr: err_w };
    let script = "read x; echo got $x; echo E >&2; echo $FOO; id -u; exit 4";
    let code = env
        .rt()
        .exec(&st.id, vec!["sh".into(), "-c".into(), script.into()], vec!["FOO=bar".into()], io, None)
        .await
        .unwrap();
    assert_eq!(code, 4);
    let mut out = String::new();
    std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
    assert_eq!(out, "got hello\nbar\n0\n");
    let mut err = String::new();
    std::fs::File::from(err_r).read_to_string(&mut err).unwrap();
    assert_eq!(err, "E\n");
    let io = kelp::runtime::ExecIo {
        stdin: None,
        stdout: nix::unistd::pipe().unwrap().1,
        stderr: nix::unistd::pipe().unwrap().1,
    };
    assert!(env.rt().exec(&st.id, vec!["true".into()], vec!["NOEQUALS".into()], io, None).await.is_err());

    // sleep as pid 1 has no SIGTERM handler: SIGTERM is ignored, SIGKILL follows the grace period.
    let t = std::time::Instant::now();
    env.rt().stop(&st.id, Duration::from_millis(700), None).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(700));
    assert_eq!(exited(&env.rt().status(&st.id).await.unwrap().state), (137, Some(9), ExitReason::Error));
    assert!(env.rt().exec_sync(&st.id, vec!["true".into()], Duration::from_secs(1)).await.is_err());

    // A handler makes SIGTERM enough.
    let st = env.rt().start(env.config("term", "trap 'exit 143' TERM; while true; do sleep 0.05; done")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.rt().stop(&st.id, Duration::from_secs(20), None).await.unwrap();
    assert_eq!(exited(&env.rt().status(&st.id).await.unwrap().state), (143, None, ExitReason::Error));
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seccomp_capabilities_and_masked_paths() {
    let env = Env::new();
    let script =
        "grep -E '^(Seccomp|Cap(Inh|Prm|Eff|Bnd|Amb)):' /proc/self/status; unshare -U true && echo unshare-ok || echo unshare-denied; \
                  [ -c /proc/keys ] && echo keys-masked || echo keys-visible; (echo forked)";
    let (_, log) = env.run(env.config("default", script)).await;
    assert!(has(&log, "stdout", "F", "Seccomp:\t2"), "{log}");
    // The filter is installed by the shim's executor (CAP_SYS_ADMIN kept permitted only for
    // that): no capability set of the payload may hold more than the default set.
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert!(has(&log, "stdout", "F", &format!("{set}:\t00000000a80425fb")), "{set}: {log}");
    }
    assert!(has(&log, "stdout", "F", "CapInh:\t0000000000000000"), "{log}");
    assert!(has(&log, "stdout", "F", "CapAmb:\t0000000000000000"), "{log}");
    assert!(has(&log, "stdout", "F", "unshare-denied"), "{log}");
    assert!(has(&log, "stdout", "F", "keys-masked"), "{log}");
    assert!(has(&log, "stdout", "F", "forked"), "{log}");
    // Compiled once for all containers with this profile.
    let cached: Vec<_> = std::fs::read_dir(env.tmp.path().join("state/seccomp")).unwrap().flatten().collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // A non-root user: no capabilities left at all, still filtered.
    let mut cfg = env.config("user", script);
    cfg.uid = 1000;
    cfg.gid = 1000;
    let (_, log) = env.run(cfg).await;
    assert!(has(&log, "stdout", "F", "Seccomp:\t2"), "{log}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert!(has(&log, "stdout", "F", &format!("{set}:\t0000000000000000")), "{set}: {log}");
    }
    assert!(has(&log, "stdout", "F", "CapBnd:\t00000000a80425fb"), "{log}");
    assert!(has(&log, "stdout", "F", "unshare-denied"), "{log}");
    // allowPrivilegeEscalation: false (no_new_privs) takes the same filter.
    let mut cfg = env.config("nnp", script);
    cfg.security.no_new_privs = Some(true);
    let (_, log) = env.run(cfg).await;
    assert!(has(&log, "stdout", "F", "Seccomp:\t2"), "{log}");
    assert!(has(&log, "stdout", "F", "CapPrm:\t00000000a80425fb"), "{log}");
    assert!(has(&log, "stdout", "F", "unshare-denied"), "{log}");

    let mut cfg = env.config("unconfined", script);
    cfg.security.seccomp = Seccomp::Unconfined;
    let (_, log) = env.run(cfg).await;
    assert!(has(&log, "stdout", "F", "Seccomp:\t0"), "{log}");
    assert!(has(&log, "stdout", "F", "unshare-ok"), "{log}");

    let mut cfg = env.config("priv", "true");
    cfg.security.privileged = true;
    let (state, log) = env.run(cfg).await;
    assert_eq!(exited(&state).0, 0, "{log}");
    let mut cfg = env.config("dropall", script);
    cfg.security.drop_capabilities = vec!["ALL".into()];
    let (_, log) = env.run(cfg).await;
    assert!(has(&log, "stdout", "F", "CapEff:\t0000000000000000"), "{log}");

    let mut cfg = env.config("priv", script);
    cfg.security.privileged = true;
    let (_, log) = env.run(cfg).await;
    let host_caps = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_eff = host_caps.lines().find(|l| l.starts_with("CapBnd:")).unwrap().replace("CapBnd", "CapEff");
    assert!(has(&log, "stdout", "F", &host_eff), "{log}\nhost {host_eff}");
    assert!(has(&log, "stdout", "F", "keys-visible"), "{log}");
    assert!(has(&log, "stdout", "F", "Seccomp:\t0"), "{log}");

    // A Localhost profile.
    let profile = env.tmp.path().join("deny-mkdir.json");
    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#).unwrap();
    let mut cfg = env.config("local", "mkdir /tmp/d && echo made || echo denied");
    cfg.security.seccomp = Seccomp::Localhost(profile);
    let (_, log) = env.run(cfg).await;
    assert!(has(&log, "stdout", "F", "denied"), "{log}");
    let mut cfg = env.config("local", "true");
    cfg.security.seccomp = Seccomp::Localhost(env.tmp.path().join("missing.json"));
    let err = env.rt().start(cfg).await.unwrap_err();
    assert!(err.to_string().contains("missing.json"), "{err}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kelp_binary_is_not_writable_from_a_container() {
    let env = Env::new();
    let bin = Path::new(env!("CARGO_BIN_EXE_kelp"));
    let before = std::fs::metadata(bin).unwrap();
    // Privileged, host pid namespace: the container sees its shim (its parent) in /proc.
    let mut cfg = env.config(
        "attack",
        "readlink /proc/$PPID/exe; echo x >> /proc/$PPID/exe && echo WROTE || echo DENIED; \
         exec 3</proc/$PPID/exe; echo y >> /proc/self/fd/3 && echo WROTE-FD || echo DENIED-FD; sleep 30",
    );
    cfg.security.privileged = true;
    cfg.namespaces.host_pid = true;
    let st = env.rt().start(cfg).await.unwrap();
    let shim = env.rt().shim_pid(&st.id).await.unwrap().unwrap();
    // The shim runs the binary itself (shared page cache, no copy in memory), through a read-only
    // mount that is no longer in the mount table.
    let exe = std::fs::metadata(format!("/proc/{shim}/exe")).unwrap();
    assert_eq!((exe.dev(), exe.ino()), (before.dev(), before.ino()));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(".kelp-shim"), "{mounts}");
    let log_path = st.log_path.clone();
    let mut log = String::new();
    for _ in 0..500 {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("DENIED-FD") || log.contains("WROTE-FD") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(has(&log, "stdout", "F", "DENIED"), "{log}");
    assert!(has(&log, "stdout", "F", "DENIED-FD"), "{log}");
    let after = std::fs::metadata(bin).unwrap();
    assert_eq!((before.len(), before.mtime()), (after.len(), after.mtime()));
    env.rt().stop(&st.id, Duration::from_millis(100), Some(libc::SIGKILL)).await.unwrap();
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adoption_after_runtime_restart() {
    let mut env = Env::new();
    let st = env.rt().start(env.config("adopt", "sleep 2; echo bye; exit 5")).await.unwrap();
    let ContainerState::Running { pid, .. } = st.state else { panic!() };
    let shim = env.rt().shim_pid(&st.id).await.unwrap().unwrap();
    // The "agent" goes away and comes back: a new runtime over the same dirs.
    drop(env.rt.take());
    env.rt = Some(env.runtime());
    let list = env.rt().list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, st.id);
    assert!(matches!(list[0].state, ContainerState::Running { pid: p, .. } if p == pid), "{:?}", list[0].state);
    assert_eq!(env.rt().shim_pid(&st.id).await.unwrap(), Some(shim));
    let id = tokio::time::timeout(Duration::from_secs(30), env.rt().next_exit()).await.unwrap();
    assert_eq!(id, st.id);
    let status = env.rt().status(&st.id).await.unwrap();
    assert_eq!(exited(&status.state), (5, None, ExitReason::Error));
    assert!(has(&std::fs::read_to_string(&status.log_path).unwrap(), "stdout", "F", "bye"));

    // A killed shim leaves its container running, unsupervised: still reported running with its
    // pid, and stop / remove still work.
    let st = env.rt().start(env.config("orphan", "sleep 60")).await.unwrap();
    let ContainerState::Running { pid, .. } = st.state else { panic!() };
    let shim = env.rt().shim_pid(&st.id).await.unwrap().unwrap();
    unsafe { libc::kill(shim, libc::SIGKILL) };
    for _ in 0..100 {
        if env.rt().shim_pid(&st.id).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.rt().shim_pid(&st.id).await.unwrap(), None);
    assert!(matches!(env.rt().status(&st.id).await.unwrap().state, ContainerState::Running { pid: p, .. } if p == pid));
    env.rt().stop(&st.id, Duration::from_millis(100), None).await.unwrap();
    assert_eq!(exited(&env.rt().status(&st.id).await.unwrap().state).0, 255);
    let id = tokio::time::timeout(Duration::from_secs(30), env.rt().next_exit()).await.unwrap();
    assert_eq!(id, st.id, "exits of shim-less containers are noticed by polling");
    env.rt().remove(&st.id).await.unwrap();
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused() {
    let env = Env::new();
    let mut cfg = env.config("nolayers", "true");
    cfg.layers.clear();
    assert!(env.rt().start(cfg).await.unwrap_err().to_string().contains("no layers"));
    let mut cfg = env.config("nocmd", "true");
    cfg.args.clear();
    assert!(env.rt().start(cfg).await.unwrap_err().to_string().contains("no command"));
    let mut cfg = env.config("missing", "true");
    cfg.args = vec!["/no/such/binary".into()];
    let err = env.rt().start(cfg).await.unwrap_err();
    assert!(matches!(err, kelp::runtime::RuntimeError::Start(_)), "{err:?}");
    assert!(env.rt().list().await.unwrap().is_empty(), "a failed start leaves nothing behind");
    env.finish().await;
}

/// An exec runs in the container: it reads a file the container wrote at runtime, sees its
/// hostname (a UTS namespace of its own, like a pod's), its pid 1 and its root through
/// /proc/1/root, and ends up in the container's cgroup. The container runs under a tight CPU
/// quota (`cpu: 10m`), which exec'd processes must not need for their setup.
#[tokio::test(flavor = "multi_thread")]
async fn exec_sees_the_containers_files_hostname_pid_1_and_cgroup() {
    let env = Env::new();
    let uts = env.tmp.path().join("uts");
    std::fs::write(&uts, "").unwrap();
    let made = std::process::Command::new("unshare")
        .arg(format!("--uts={}", uts.display()))
        .args(["hostname", "exec-host"])
        .status()
        .unwrap();
    assert!(made.success(), "unshare --uts");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let unmount = Unmount(&uts);
    let mut cfg = env.config("files", "echo hi > /tmp/x; hostname > /tmp/h; exec sleep 100");
    cfg.hostname = "exec-host".into();
    cfg.namespaces.uts = Some(uts.clone());
    cfg.resources.cpu_quota = Some(1000);
    cfg.resources.cpu_period = Some(100_000);
    let st = env.rt().start(cfg).await.unwrap();
    let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    let (rt, id) = (env.rt(), st.id.clone());
    let exec = |argv: Vec<String>| {
        let id = id.clone();
        async move { rt.exec_sync(&id, argv, Duration::from_secs(30)).await.unwrap() }
    };
    // The container writes the file after it started: poll for it through exec itself (the shell
    // creates the file before it writes the line: an empty read is too early).
    let mut seen = None;
    for _ in 0..100 {
        let (code, out) = exec(vec!["cat".into(), "/tmp/x".into()]).await;
        if code == 0 && !out.is_empty() {
            seen = Some(String::from_utf8(out).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.as_deref(), Some("hi\n"), "exec does not see the file the container wrote");
    let (code, out) = exec(vec!["test".into(), "-f".into(), "/tmp/x".into()]).await;
    assert_eq!((code, out), (0, vec![]));
    let (code, out) = exec(vec!["test".into(), "-f".into(), "/tmp/none".into()]).await;
    assert_eq!((code, out), (1, vec![]));
    let (code, out) = exec(sh("hostname; cat /tmp/h; tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc/1/root/tmp")).await;
    assert_eq!((code, String::from_utf8(out).unwrap().as_str()), (0, "exec-host\nexec-host\nsleep 100 \nh\nx\n"));
    // The exec'd process is in the container's cgroup (v1: host paths; v2: the cgroup namespace's root).
    let (code, out) = exec(vec!["cat".into(), "/proc/self/cgroup".into()]).await;
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 0);
    let path = env.rt().cgroup_path(&st.id).await.unwrap();
    if env.rt().cgroup_version() == cgroups::Version::V1 {
        for ctl in ["cpu", "memory", "pids"] {
            let line = out.lines().find(|l| l.split(':').nth(1).unwrap().split(',').any(|c| c == ctl)).unwrap();
            assert!(line.ends_with(&format!(":{path}")), "{ctl}: {out}");
        }
    } else {
        assert_eq!(out.trim(), "0::/");
    }
    // Nothing of the execs is left in the state dir.
    let exec_dir = env.tmp.path().join("state/exec");
    assert!(std::fs::read_dir(&exec_dir).map(|d| d.count()).unwrap_or(0) == 0, "exec state left behind");
    drop(unmount);
    env.finish().await;
}

/// Reads from `r` into `acc` until a line (`\r` trimmed) satisfies `want`; false at end of stream
/// or after 30 s.
async fn read_line_matching(
    r: &mut (impl AsyncRead + Unpin + ?Sized),
    acc: &mut String,
    want: impl Fn(&str) -> bool,
) -> bool {
    let found = |acc: &String| acc.lines().any(|l| want(l.trim_end_matches('\r')));
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            if found(acc) {
                return true;
            }
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return found(acc),
                Ok(n) => acc.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// Reads `r` to its end (at most 30 s).
async fn read_all(r: &mut (impl AsyncRead + Unpin + ?Sized)) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut out)).await.expect("end of stream").unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Command lines of the processes in a container's cgroup.
async fn container_processes(env: &Env, id: &str) -> Vec<String> {
    let path = env.rt().cgroup_path(id).await.unwrap();
    let mut pids = std::collections::BTreeSet::new();
    for dir in cgroups::all_dirs(env.rt().cgroup_version(), &path).unwrap() {
        for p in std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines() {
            pids.insert(p.trim().to_string());
        }
    }
    pids.iter()
        .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim().to_string())
        .collect()
}

/// `kubectl exec -it`: a terminal from the container's devpts with the shell as session leader
/// (^C interrupts its foreground job), resizing; stdin pipes with end of file; exit codes;
/// dropping an exec kills the process and its session and reaps the shim; bad targets are refused.
#[tokio::test(flavor = "multi_thread")]
async fn interactive_exec_terminal_stdin_and_cleanup() {
    let env = Env::new();
    let st = env.rt().start(env.config("ix", "while true; do sleep 1; done")).await.unwrap();
    let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];

    // A terminal.
    let mut p = env
        .rt()
        .exec_interactive(
            &st.id,
            vec!["sh".into()],
            vec!["GREETING=hey".into()],
            ExecOptions { stdin: true, tty: true },
        )
        .await
        .unwrap();
    assert!(p.stderr.is_none());
    p.resize.as_ref().unwrap().resize(100, 30).unwrap();
    let stdin = p.stdin.as_mut().unwrap();
    stdin.write_all(b"tty; stty size; [ -t 0 ] && echo is\"\"atty; echo $GREETING\"\"!\n").await.unwrap();
    let mut out = String::new();
    assert!(read_line_matching(&mut p.stdout, &mut out, |l| l == "hey!").await, "{out}");
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines.iter().any(|l| l.starts_with("/dev/pts/")), "{out}");
    assert!(lines.contains(&"30 100"), "{out}");
    assert!(lines.contains(&"isatty"), "{out}");
    // ^C reaches the foreground job through the terminal.
    stdin.write_all(b"sleep 100\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stdin.write_all(b"\x03").await.unwrap();
    stdin.write_all(b"echo after-$((20+1))\n").await.unwrap();
    assert!(read_line_matching(&mut p.stdout, &mut out, |l| l.ends_with("after-21")).await, "{out}");
    stdin.write_all(b"exit 7\n").await.unwrap();
    read_all(&mut p.stdout).await;
    assert_eq!(p.exit.wait().await.unwrap(), 7);

    // A terminal without stdin still runs (and ends) on its terminal.
    let mut p =
        env.rt().exec_interactive(&st.id, sh("tty"), vec![], ExecOptions { stdin: false, tty: true }).await.unwrap();
    assert!(p.stdin.is_none());
    let out = read_all(&mut p.stdout).await;
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    assert_eq!(p.exit.wait().await.unwrap(), 0);

    // stdin through a pipe: cat echoes, ends at end of file.
    let mut p = env
        .rt()
        .exec_interactive(&st.id, vec!["cat".into()], vec![], ExecOptions { stdin: true, tty: false })
        .await
        .unwrap();
    assert!(p.resize.is_none());
    let stdin = p.stdin.as_mut().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    let mut out = String::new();
    assert!(read_line_matching(&mut p.stdout, &mut out, |l| l == "hello").await, "{out}");
    stdin.shutdown().await.unwrap();
    assert_eq!(read_all(&mut p.stdout).await, "");
    assert_eq!(p.exit.wait().await.unwrap(), 0);

    // Exit code and stderr.
    let mut p =
        env.rt().exec_interactive(&st.id, sh("echo oops >&2; exit 3"), vec![], ExecOptions::default()).await.unwrap();
    assert!(p.stdin.is_none());
    assert_eq!(read_all(p.stderr.as_mut().unwrap()).await, "oops\n");
    assert_eq!(read_all(&mut p.stdout).await, "");
    assert_eq!(p.exit.wait().await.unwrap(), 3);

    // The client goes away: the process and what it started in its session are killed, and the
    // exec shim is reaped.
    for tty in [false, true] {
        let p = env
            .rt()
            .exec_interactive(&st.id, sh("sleep 1001 & exec sleep 1000"), vec![], ExecOptions { stdin: true, tty })
            .await
            .unwrap();
        let shim = p.exit.shim_pid().unwrap();
        let mut running = false;
        for _ in 0..500 {
            let procs = container_processes(&env, &st.id).await;
            if procs.iter().any(|c| c == "sleep 1000") && procs.iter().any(|c| c == "sleep 1001") {
                running = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(running, "{:?}", container_processes(&env, &st.id).await);
        drop(p);
        let mut gone = false;
        for _ in 0..500 {
            let procs = container_processes(&env, &st.id).await;
            let left = procs.iter().any(|c| c.starts_with("sleep 100"));
            if !left && !Path::new(&format!("/proc/{shim}")).exists() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            gone,
            "tty {tty}: left: {:?}, shim alive: {}",
            container_processes(&env, &st.id).await,
            Path::new(&format!("/proc/{shim}")).exists()
        );
    }
    assert!(matches!(env.rt().status(&st.id).await.unwrap().state, ContainerState::Running { .. }));

    // Bad targets.
    let err = env.rt().exec_interactive("nope", vec!["true".into()], vec![], ExecOptions::default()).await;
    assert!(matches!(err, Err(RuntimeError::NotFound(_))), "{:?}", err.err());
    env.rt().stop(&st.id, Duration::from_millis(100), Some(libc::SIGKILL)).await.unwrap();
    let err = env.rt().exec_interactive(&st.id, vec!["true".into()], vec![], ExecOptions::default()).await;
    assert!(err.err().unwrap().to_string().contains("is not running"));
    // Probes' exec still works next to all this (checked on a new container).
    let st = env.rt().start(env.config("ix2", "exec sleep 100")).await.unwrap();
    let (code, out) = env.rt().exec_sync(&st.id, sh("echo ok"), Duration::from_secs(30)).await.unwrap();
    assert_eq!((code, out), (0, b"ok\n".to_vec()));
    // No signal is ignored in a container (the shim, a Rust program, ignores SIGPIPE itself).
    let (code, out) = env
        .rt()
        .exec_sync(
            &st.id,
            vec!["grep".into(), "SigIgn".into(), "/proc/1/status".into(), "/proc/self/status".into()],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(
        (code, String::from_utf8_lossy(&out).as_ref()),
        (0, "/proc/1/status:SigIgn:\t0000000000000000\n/proc/self/status:SigIgn:\t0000000000000000\n")
    );
    env.finish().await;
}

/// `kubectl attach`: to a container's terminal (stdin, output, resize, exit), output-only to a
/// container without stdin (asking for stdin is refused), and stdinOnce.
#[tokio::test(flavor = "multi_thread")]
async fn attach_terminal_output_only_and_stdin_once() {
    let env = Env::new();
    let mut cfg = env.config("term", "");
    cfg.args = vec!["/bin/sh".into()];
    cfg.tty = true;
    cfg.stdin = true;
    let log = cfg.log_path.clone();
    let term = env.rt().start(cfg).await.unwrap();
    let mut a = env.rt().attach(&term.id, AttachOptions { stdin: true, stdout: true, stderr: true }).await.unwrap();
    assert!(a.stderr.is_none(), "a terminal has no separate stderr");
    a.resize.as_ref().unwrap().resize(80, 24).unwrap();
    let stdin = a.stdin.as_mut().unwrap();
    stdin.write_all(b"echo hi; stty size; tty\n").await.unwrap();
    let stdout = a.stdout.as_mut().unwrap();
    let mut out = String::new();
    assert!(read_line_matching(stdout, &mut out, |l| l.starts_with("/dev/pts/")).await, "{out}");
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines.contains(&"hi") && lines.contains(&"24 80"), "{out}");
    stdin.write_all(b"exit 4\n").await.unwrap();
    assert_eq!(a.exit.wait().await.unwrap(), 4);
    // Terminal output is logged as stdout.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(records(&text).iter().any(|(s, _, l)| s == "stdout" && l.trim_end_matches('\r') == "hi"), "{text}");

    // Output only, from attach time on.
    let counter = env
        .rt()
        .start(env.config("counter", "i=0; while true; do i=$((i+1)); echo n$i; echo e$i >&2; sleep 0.05; done"))
        .await
        .unwrap();
    let err = env.rt().attach(&counter.id, AttachOptions { stdin: true, stdout: true, stderr: false }).await;
    let msg = err.err().unwrap().to_string();
    assert!(msg.contains("Unable to use a TTY/stdin - container counter did not allocate one"), "{msg}");
    let mut a = env.rt().attach(&counter.id, AttachOptions { stdin: false, stdout: true, stderr: true }).await.unwrap();
    assert!(a.stdin.is_none() && a.resize.is_none());
    let numbers = |out: &str, prefix: char| -> Vec<u64> {
        out.lines().filter_map(|l| l.strip_prefix(prefix)).filter_map(|n| n.parse().ok()).collect()
    };
    let mut out = String::new();
    let stdout = a.stdout.as_mut().unwrap();
    assert!(read_line_matching(stdout, &mut out, |l| l.starts_with('n')).await, "{out}");
    let first = numbers(&out, 'n')[0];
    assert!(read_line_matching(stdout, &mut out, |l| l == format!("n{}", first + 3)).await, "{out}");
    let seen = numbers(&out, 'n');
    assert_eq!(seen, (first..first + seen.len() as u64).collect::<Vec<_>>(), "{out}");
    assert!(out.lines().all(|l| l.starts_with('n')), "stderr stays separate: {out}");
    let mut err = String::new();
    assert!(read_line_matching(a.stderr.as_mut().unwrap(), &mut err, |l| l.starts_with('e')).await, "{err}");
    // Readers may go away; the exit is still reported.
    drop(a.stdout.take());
    drop(a.stderr.take());
    env.rt().stop(&counter.id, Duration::from_millis(100), Some(libc::SIGKILL)).await.unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(30), a.exit.wait()).await.unwrap().unwrap(), 137);
    assert!(env.rt().attach(&counter.id, AttachOptions::default()).await.is_err(), "attach to an exited container");

    // stdinOnce: the first client's end of stdin is the container's.
    let mut cfg = env.config("once", "cat; echo cat-done");
    cfg.stdin = true;
    cfg.stdin_once = true;
    let once = env.rt().start(cfg).await.unwrap();
    let mut a = env.rt().attach(&once.id, AttachOptions { stdin: true, stdout: true, stderr: true }).await.unwrap();
    let stdin = a.stdin.as_mut().unwrap();
    stdin.write_all(b"abc\n").await.unwrap();
    let mut out = String::new();
    assert!(read_line_matching(a.stdout.as_mut().unwrap(), &mut out, |l| l == "abc").await, "{out}");
    stdin.shutdown().await.unwrap();
    assert!(read_line_matching(a.stdout.as_mut().unwrap(), &mut out, |l| l == "cat-done").await, "{out}");
    assert_eq!(a.exit.wait().await.unwrap(), 0);
    env.finish().await;
}

/// Without stdinOnce the container's stdin outlives its clients; attach works after the runtime
/// (the agent) restarted and adopted the container.
#[tokio::test(flavor = "multi_thread")]
async fn attach_after_adoption_keeps_stdin_open() {
    let mut env = Env::new();
    let mut cfg = env.config("reader", "while read l; do echo \"got $l\"; done; echo eof");
    cfg.stdin = true;
    let st = env.rt().start(cfg).await.unwrap();
    let mut a = env.rt().attach(&st.id, AttachOptions { stdin: true, stdout: true, stderr: false }).await.unwrap();
    assert!(a.stderr.is_none());
    a.stdin.as_mut().unwrap().write_all(b"one\n").await.unwrap();
    let mut out = String::new();
    assert!(read_line_matching(a.stdout.as_mut().unwrap(), &mut out, |l| l == "got one").await, "{out}");
    a.stdin.as_mut().unwrap().shutdown().await.unwrap();
    drop(a);
    drop(env.rt.take());
    env.rt = Some(env.runtime());
    let mut a = env.rt().attach(&st.id, AttachOptions { stdin: true, stdout: true, stderr: false }).await.unwrap();
    a.stdin.as_mut().unwrap().write_all(b"two\n").await.unwrap();
    let mut out = String::new();
    assert!(read_line_matching(a.stdout.as_mut().unwrap(), &mut out, |l| l == "got two").await, "{out}");
    assert!(!out.contains("eof"), "{out}");
    env.rt().stop(&st.id, Duration::from_millis(100), Some(libc::SIGKILL)).await.unwrap();
    drop(a.stdout.take());
    assert_eq!(a.exit.wait().await.unwrap(), 137);
    env.finish().await;
}

/// kubelet-style rotation: `<name>.log.<YYYYMMDD-HHMMSS>` files, at most 3 files in all, every
/// remaining line in order and in CRI format.
#[tokio::test(flavor = "multi_thread")]
async fn log_rotation_keeps_max_files_in_order() {
    let env = Env::with_log_max_size(4096);
    let script =
        "for r in 1 2 3 4 5; do for i in $(seq 1 100); do echo \"r$r line $i padding-padding\"; done; sleep 1.2; done";
    let cfg = env.config("rot", script);
    let log = cfg.log_path.clone();
    let (state, _) = env.run(cfg).await;
    assert_eq!(exited(&state).0, 0);
    let dir = log.parent().unwrap();
    let mut rotated: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "rot.log")
        .collect();
    rotated.sort();
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    for name in &rotated {
        let stamp = name.strip_prefix("rot.log.").unwrap_or_else(|| panic!("{name}"));
        assert!(chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").is_ok(), "{name}");
    }
    let mut lines = Vec::new();
    for name in rotated.iter().map(String::as_str).chain(["rot.log"]) {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        for (stream, tag, line) in records(&text) {
            assert_eq!((stream.as_str(), tag.as_str()), ("stdout", "F"), "{line}");
            lines.push(line);
        }
    }
    // A contiguous run up to the very last line; the oldest files were deleted.
    let all: Vec<String> =
        (1..=5).flat_map(|r| (1..=100).map(move |i| format!("r{r} line {i} padding-padding"))).collect();
    let start = all.iter().position(|l| *l == lines[0]).expect("known line");
    assert!(start > 0, "nothing was deleted");
    assert_eq!(lines, all[start..].to_vec());
    env.finish().await;
}
