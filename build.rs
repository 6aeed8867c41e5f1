//! Links the `kelp` executable position-dependent (non-PIE): a PIE has its pointer tables
//! (`.data.rel.ro`, ~0.6 MB) relocated at every start, which makes them private dirty memory in
//! every process — the agent, the server and each container's shim. Non-PIE, they stay clean pages
//! of the binary, shared by all. (Go binaries such as k3s are non-PIE too; heap, stack and
//! libraries keep their randomized addresses.)
//!
//! Dynamic builds get `-no-pie` here. A static build (`crt-static`) must say so with
//! `-C relocation-model=static` in RUSTFLAGS (as `integration/run.sh` does): `-no-pie` cannot be
//! added to a static-pie link.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    let crt_static =
        std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default().split(',').any(|f| f == "crt-static");
    if linux_gnu && !crt_static {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
