//! kelp: Kubernetes for edge devices in one binary. See ARCHITECTURE.md for the map.

pub mod api;
pub mod apiserver;
pub mod config;
pub mod logging;
pub mod pki;
pub mod server;
pub mod store;
