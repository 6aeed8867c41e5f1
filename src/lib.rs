//! kelp: Kubernetes for edge devices in one binary. See ARCHITECTURE.md for the map.

pub mod agent;
pub mod api;
pub mod apiserver;
pub mod config;
pub mod controllers;
pub mod event_recorder;
pub mod events;
pub mod hollow;
pub mod image;
pub mod logging;
pub mod malloc;
pub mod network;
pub mod pki;
pub mod runtime;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod streaming;
#[cfg(test)]
pub(crate) mod testing;
