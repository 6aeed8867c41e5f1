//! Cold pull + unpack of the ~170 MB Debian minbase fixture image from a local registry (loopback):
//! kelp's image store against `skopeo copy` + `umoci unpack` of the same image, in the same run,
//! interleaved. Run: `cargo bench --bench images` (builds the fixture on first use: debootstrap).
//! Env: KELP_BENCH_RUNS (default 5).

#[path = "../integration/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use kelp::image::{ImageStore, ImageStoreConfig, PullPolicy};
use support::images::{fixtures_with_debian, Registry, RegistryKind};

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let s = |d: Duration| d.as_secs_f64();
    let mean = v.iter().map(|d| s(*d)).sum::<f64>() / v.len() as f64;
    (s(v[0]), s(v[v.len() / 2]), mean)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("images bench: run with `cargo bench --bench images`");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    fixtures_with_debian();
    let reg = Registry::start(RegistryKind::Plain);
    let name = format!("{}/kelp-test/debian:bookworm", reg.addr());
    let runs: usize = std::env::var("KELP_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut size = 0;
    for i in 0..runs {
        // kelp: a cold store per run
        let dir = tempfile::Builder::new().prefix("kelp-bench-images-").tempdir_in("/var/tmp").unwrap();
        let store = ImageStore::open(ImageStoreConfig {
            root: dir.path().join("store"),
            registries_file: dir.path().join("registries.yaml"),
        })
        .unwrap();
        let t = Instant::now();
        let img = rt.block_on(store.ensure(&name, PullPolicy::Always, &[])).expect("pull");
        let d = t.elapsed();
        size = img.size;
        ours.push(d);
        drop(dir);

        // skopeo + umoci
        let dir = tempfile::Builder::new().prefix("kelp-bench-umoci-").tempdir_in("/var/tmp").unwrap();
        let layout = dir.path().join("oci");
        let t = Instant::now();
        let st = Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false", &format!("docker://{name}")])
            .arg(format!("oci:{}:bookworm", layout.display()))
            .status()
            .unwrap();
        assert!(st.success(), "skopeo copy failed");
        let st = Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:bookworm", layout.display())])
            .arg(dir.path().join("bundle"))
            .status()
            .unwrap();
        assert!(st.success(), "umoci unpack failed");
        let d2 = t.elapsed();
        theirs.push(d2);
        println!("run {}: kelp {:.3} s, skopeo+umoci {:.3} s", i + 1, d.as_secs_f64(), d2.as_secs_f64());
    }
    let (omin, omed, omean) = stats(ours);
    let (tmin, tmed, tmean) = stats(theirs);
    println!(
        "debian bookworm minbase, {:.1} MB unpacked, {runs} cold runs from a loopback registry",
        size as f64 / 1e6
    );
    println!("kelp pull+unpack:    min {omin:.3} s  median {omed:.3} s  mean {omean:.3} s  (target <= 2 s)");
    println!("skopeo copy + umoci: min {tmin:.3} s  median {tmed:.3} s  mean {tmean:.3} s");
    println!("ratio kelp/reference (median): {:.2}", omed / tmed);
}
