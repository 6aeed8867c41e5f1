//! The runtime's promised figures, beside crun in the same run:
//!
//! * container create → exit of `/bin/true` through kelp's shim (start, run, exit recorded,
//!   libcontainer container deleted, rootfs unmounted) against `crun run` of the same OCI spec
//!   (seccomp, masked paths, namespaces, cgroup) on the same busybox overlay rootfs, in pairs
//!   whose order alternates;
//! * 50 sleeping containers started at once through each runtime alone: the floor under the pods
//!   bench's "50 pods at once" on the machine it runs on;
//! * the private memory of one shim (`Private_*` of `/proc/<pid>/smaps_rollup`) holding a sleeping
//!   container.
//!
//! Run as root with `cargo bench --bench runtime`. crun 1.8 refuses hybrid cgroup hosts, so the
//! bench runs in a private mount namespace without the cgroup2 mount (both runtimes alike).
//! Targets: median ≤ crun, shim ≤ 0.5 MB private.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kelp::runtime::{ContainerConfig, ContainerState, Runtime, RuntimeConfig};
use serde_json::Value;

const RUNS: usize = 80;
const WARMUP: usize = 3;
const BATCH: usize = 50;

fn busybox_layer(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in ["sh", "true", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    for d in ["etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = percentile(&v, 0.5);
    println!(
        "{name:<28} median {median:7.2} ms   p90 {:7.2} ms   best {:7.2} ms   (n={})",
        percentile(&v, 0.9),
        v[0],
        v.len()
    );
    median
}

/// A private mount namespace without the cgroup2 mount of a hybrid host (crun refuses those).
fn private_mount_ns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS): run as root");
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
    let unified = Path::new("/sys/fs/cgroup/unified");
    if std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(" /sys/fs/cgroup/unified ") {
        nix::mount::umount(unified).unwrap();
    }
}

fn config(layer: &Path, logs: &Path, name: &str, args: &[&str]) -> ContainerConfig {
    ContainerConfig {
        pod_uid: "bench".into(),
        pod_namespace: "default".into(),
        pod_name: "bench".into(),
        name: name.into(),
        attempt: 0,
        layers: vec![layer.to_path_buf()],
        image_id: "busybox".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        additional_gids: vec![],
        hostname: "bench".into(),
        mounts: vec![],
        namespaces: Default::default(),
        resources: Default::default(),
        security: Default::default(),
        tty: false,
        stdin: false,
        stdin_once: false,
        log_path: logs.join(format!("{name}.log")),
        labels: Default::default(),
    }
}

async fn kelp_run(rt: &Runtime, cfg: ContainerConfig) -> f64 {
    let t0 = Instant::now();
    let st = rt.start(cfg).await.unwrap();
    loop {
        if let ContainerState::Exited { .. } = rt.status(&st.id).await.unwrap().state {
            break;
        }
        let id = rt.next_exit().await;
        if id == st.id {
            break;
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    rt.remove(&st.id).await.unwrap();
    ms
}

/// (Private_Clean + Private_Dirty, Anonymous, Rss) in kB of a process. The sealed binary is a
/// memfd (shmem): its text pages count as private dirty in whichever shim faulted them alone, so
/// `Anonymous` (heap, stack, relocated data) is the memory a shim cannot share.
fn smaps(pid: i32) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let field = |name: &str| -> u64 {
        text.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
    };
    (field("Private_Clean:") + field("Private_Dirty:"), field("Anonymous:"), field("Rss:"))
}

/// The shim's mappings holding most private memory (what a shim costs beyond the shared binary):
/// private pages (clean and dirty) per mapping, and how much of them is anonymous.
fn print_private_mappings(pid: i32) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let kb = |v: &str| -> u64 { v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0) };
    let mut name = String::new();
    let mut private = 0u64;
    let mut rows = Vec::new();
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let f: Vec<&str> = line.split_whitespace().collect();
            name = format!("{} {}", f[1], f.get(5).copied().unwrap_or("[anon]"));
            private = 0;
        } else if let Some(v) = line.strip_prefix("Private_Clean:").or_else(|| line.strip_prefix("Private_Dirty:")) {
            private += kb(v);
        } else if let Some(v) = line.strip_prefix("Anonymous:") {
            if private > 0 {
                rows.push((private, kb(v), name.clone()));
            }
        }
    }
    rows.sort_by(|a, b| b.cmp(a));
    for (kb, anon, name) in rows.iter().take(8) {
        println!("  private {kb:>6} kB (anonymous {anon:>5} kB)  {name}");
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("runtime bench: run with `cargo bench --bench runtime`");
        return;
    }
    private_mount_ns();
    let tmp = tempfile::Builder::new().prefix("kelp-bench-").tempdir_in("/run").unwrap();
    let layer = tmp.path().join("layer");
    busybox_layer(&layer);
    let logs = tmp.path().join("logs");
    let cgroup_root = format!("kelp-bench-{}", std::process::id());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let runtime = Runtime::with_shim_binary(
        RuntimeConfig {
            state_dir: tmp.path().join("state"),
            data_dir: tmp.path().join("data"),
            cgroup_root: cgroup_root.clone(),
            container_log_max_size: kelp::runtime::logs::DEFAULT_MAX_SIZE,
            container_log_max_files: kelp::runtime::logs::DEFAULT_MAX_FILES,
        },
        // KELP_BENCH_SHIM: another kelp binary to run as the shim (e.g. a release build).
        Path::new(&std::env::var("KELP_BENCH_SHIM").unwrap_or_else(|_| env!("CARGO_BIN_EXE_kelp").to_string())),
    )
    .unwrap();

    // crun's bundle: the spec kelp generates for the same container, over an overlay of the same
    // layer. libcontainer reads SCMP_CMP_MASKED_EQ's operands swapped, so kelp swaps them in its
    // spec; swap them back for crun (runc semantics).
    let (spec, shim_mem) = rt.block_on(async {
        // A first container compiles the seccomp profile into the cache, as the first container
        // of a node does; the measured shims find it there, as all later ones do.
        kelp_run(&runtime, config(&layer, &logs, "first", &["/bin/true"])).await;
        // Two shims, so the pages of the (shared) binary count as shared, as on a node.
        let a = runtime.start(config(&layer, &logs, "sleeper", &["/bin/sleep", "30"])).await.unwrap();
        let b = runtime.start(config(&layer, &logs, "sleeper2", &["/bin/sleep", "30"])).await.unwrap();
        let spec: Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join("data").join(&a.id).join("config.json")).unwrap())
                .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let shim = runtime.shim_pid(&a.id).await.unwrap().unwrap();
        let mem = smaps(shim);
        print_private_mappings(shim);
        for st in [a, b] {
            runtime.stop(&st.id, Duration::from_millis(100), Some(libc::SIGKILL)).await.unwrap();
            runtime.remove(&st.id).await.unwrap();
        }
        (spec, mem)
    });
    let bundle = tmp.path().join("crun-bundle");
    for d in ["rootfs", "upper", "work"] {
        std::fs::create_dir_all(bundle.join(d)).unwrap();
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        layer.display(),
        bundle.join("upper").display(),
        bundle.join("work").display()
    );
    nix::mount::mount(
        Some("overlay"),
        &bundle.join("rootfs"),
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap();
    let mut crun_spec = spec.clone();
    crun_spec["root"]["path"] = Value::from("rootfs");
    crun_spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    if let Some(calls) = crun_spec["linux"]["seccomp"]["syscalls"].as_array_mut() {
        for call in calls {
            for arg in call["args"].as_array_mut().into_iter().flatten() {
                if arg["op"] == "SCMP_CMP_MASKED_EQ" {
                    let (a, b) = (arg["value"].clone(), arg["valueTwo"].clone());
                    arg["value"] = b;
                    arg["valueTwo"] = a;
                }
            }
        }
    }
    let crun_root = tmp.path().join("crun-state");
    let crun = |i: usize| -> f64 {
        let mut s = crun_spec.clone();
        s["linux"]["cgroupsPath"] = Value::from(format!("/{cgroup_root}/crun/c{i}"));
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&s).unwrap()).unwrap();
        let t0 = Instant::now();
        let status = Command::new("crun")
            .arg("--root")
            .arg(&crun_root)
            .args(["run", "-b"])
            .arg(&bundle)
            .arg(format!("bench{i}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("crun");
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        assert!(status.success(), "crun run failed: {status}");
        ms
    };

    // Pairs run back to back, alternating which goes first, so load on the machine shifts both
    // alike; the pair ratios' median is the figure least moved by it.
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..WARMUP + RUNS {
        let kelp = || rt.block_on(kelp_run(&runtime, config(&layer, &logs, &format!("t{i}"), &["/bin/true"])));
        let (a, b) = if i % 2 == 0 {
            let a = kelp();
            (a, crun(i))
        } else {
            let b = crun(i);
            (kelp(), b)
        };
        if i >= WARMUP {
            ours.push(a);
            theirs.push(b);
            ratios.push(a / b);
        }
    }
    println!("container create -> exit of /bin/true (same spec and rootfs, pairs in alternating order)");
    let m_ours = summary("kelp shim (libcontainer)", ours);
    let m_crun = summary("crun run", theirs);
    ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "kelp / crun: ratio of medians {:.2}, median of pair ratios {:.2} (target <= 1)",
        m_ours / m_crun,
        percentile(&ratios, 0.5)
    );
    let (private, anon, rss) = shim_mem;
    println!(
        "shim holding a sleeping container (2 shims running): private {private} kB, of it anonymous {anon} kB, rss {rss} kB (target: private <= 512 kB)"
    );

    // BATCH containers started at once through each runtime alone (no API server, no pod
    // network): the floor under the pods bench's "50 pods at once" on this machine. kelp mounts an
    // overlay per container; the crun containers share one (mounted beforehand).
    let kelp_batch = |round: usize| -> Vec<f64> {
        rt.block_on(async {
            let t0 = Instant::now();
            let starts = (0..BATCH).map(|i| {
                let (runtime, cfg) =
                    (&runtime, config(&layer, &logs, &format!("b{round}-{i}"), &["/bin/sleep", "3600"]));
                async move {
                    let st = runtime.start(cfg).await.unwrap();
                    (st.id, t0.elapsed().as_secs_f64() * 1000.0)
                }
            });
            let started = futures::future::join_all(starts).await;
            for (id, _) in &started {
                runtime.stop(id, Duration::from_millis(100), Some(libc::SIGKILL)).await.unwrap();
                runtime.remove(id).await.unwrap();
            }
            started.into_iter().map(|(_, ms)| ms).collect()
        })
    };
    let crun_batch = |round: usize| -> Vec<f64> {
        let bundles: Vec<_> = (0..BATCH)
            .map(|i| {
                let b = tmp.path().join(format!("crun-batch-{round}-{i}"));
                std::fs::create_dir_all(&b).unwrap();
                let mut s = crun_spec.clone();
                s["root"]["path"] = Value::from(bundle.join("rootfs").to_string_lossy().into_owned());
                s["process"]["args"] = serde_json::json!(["/bin/sleep", "3600"]);
                s["linux"]["cgroupsPath"] = Value::from(format!("/{cgroup_root}/crun/b{round}-{i}"));
                std::fs::write(b.join("config.json"), serde_json::to_vec(&s).unwrap()).unwrap();
                b
            })
            .collect();
        let t0 = Instant::now();
        let mut children: Vec<_> = bundles
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Command::new("crun")
                    .arg("--root")
                    .arg(&crun_root)
                    .args(["run", "-d", "-b"])
                    .arg(b)
                    .arg(format!("batch{round}-{i}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("crun")
            })
            .collect();
        let mut done = vec![None; BATCH];
        while done.iter().any(Option::is_none) {
            for (i, c) in children.iter_mut().enumerate() {
                if done[i].is_none() {
                    if let Some(status) = c.try_wait().unwrap() {
                        assert!(status.success(), "crun run -d failed: {status}");
                        done[i] = Some(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for i in 0..BATCH {
            let status = Command::new("crun")
                .arg("--root")
                .arg(&crun_root)
                .args(["delete", "-f"])
                .arg(format!("batch{round}-{i}"))
                .status()
                .expect("crun delete");
            assert!(status.success(), "crun delete failed: {status}");
        }
        done.into_iter().flatten().collect()
    };
    // Two rounds in opposite order, so neither runtime always follows the other's tail.
    let (mut kelp_ms, mut crun_ms) = (kelp_batch(0), crun_batch(0));
    crun_ms.extend(crun_batch(1));
    kelp_ms.extend(kelp_batch(1));
    for v in [&mut kelp_ms, &mut crun_ms] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    println!(
        "{BATCH} sleeping containers started at once (runtime only, 2 rounds): kelp p50 {:.0} ms p99 {:.0} ms, crun p50 {:.0} ms p99 {:.0} ms (kelp / crun p99 {:.2})",
        percentile(&kelp_ms, 0.5),
        percentile(&kelp_ms, 0.99),
        percentile(&crun_ms, 0.5),
        percentile(&crun_ms, 0.99),
        percentile(&kelp_ms, 0.99) / percentile(&crun_ms, 0.99)
    );

    let _ = nix::mount::umount2(&bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
    rt.block_on(runtime.remove_pod("bench")).unwrap();
    let v = kelp::runtime::cgroups::version().unwrap();
    kelp::runtime::cgroups::remove(v, &format!("/{cgroup_root}/crun")).unwrap();
    kelp::runtime::cgroups::remove(v, &format!("/{cgroup_root}")).unwrap();
}
