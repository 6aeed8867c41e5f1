//! Test support for unit tests that need a real API server: an in-process [`ApiServer`] over a
//! temporary SQLite store, with the bootstrap objects (system namespaces, default roles).

use std::sync::Arc;

use crate::apiserver::{bootstrap, client, ApiConfig, ApiServer};
use crate::store::sqlite::{SqliteBackend, SqliteConfig};

/// An API server living as long as this value.
pub struct TestApi {
    pub api: Arc<ApiServer>,
    backend: Arc<SqliteBackend>,
    _dir: tempfile::TempDir,
}

impl TestApi {
    /// Start one with the bootstrap objects created.
    pub async fn start() -> TestApi {
        let dir = tempfile::Builder::new().prefix("kelp-unit-").tempdir().expect("temp dir");
        let backend = SqliteBackend::open(SqliteConfig::new(dir.path().join("state.db"))).expect("open the store");
        let api = ApiServer::new(
            backend.clone(),
            ApiConfig {
                service_cidr: "10.43.0.0/16".parse().expect("cidr"),
                cluster_cidr: Some("10.42.0.0/16".parse().expect("cidr")),
                node_port_range: (30000, 32767),
                advertise_address: "127.0.0.1".parse().expect("address"),
                port: 6443,
                watch_buffer_events: 16384,
            },
            None,
        )
        .await
        .expect("the API server");
        bootstrap::run(
            client::in_process_client(api.clone()),
            "10.43.0.1".parse().expect("ip"),
            "127.0.0.1".parse().expect("ip"),
            6443,
        )
        .await
        .expect("bootstrap");
        api.set_ready();
        TestApi { api, backend, _dir: dir }
    }

    /// An in-process client with kelp's internal identity.
    pub fn client(&self) -> kube::Client {
        client::in_process_client(self.api.clone())
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.backend.close();
    }
}
