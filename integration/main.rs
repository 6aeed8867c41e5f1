//! kelp's integration tests: one test binary (`cargo test --test integration`), one module per
//! area. A single binary links once instead of once per area, which keeps a full test build to a
//! few GB of disk and minutes less of linking; `cargo test --test integration runtime::` runs one
//! area.
//!
//! Each test starts what it needs itself (server and agent processes, registries, bridges,
//! cgroups) with its own data dir, port and name prefix, and removes it afterwards, so tests of
//! all areas run side by side in this one process.

mod support;

mod agent;
mod api_core;
mod controllers_core;
mod crds;
mod e2e_workloads;
mod images;
mod interactive;
mod kubectl_acceptance;
mod kubectl_apply;
mod kubectl_create;
mod kubectl_openapi;
mod kubectl_patch;
mod network;
mod node_lifecycle;
mod pod_spec;
mod runtime;
mod scheduler;
mod workloads;
mod workloads_batch;
