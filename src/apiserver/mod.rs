//! The Kubernetes API server: HTTPS (HTTP/1.1 and h2) in front of the store.
//!
//! Every request, from kubectl over TLS or from an in-process kube-rs client
//! ([`client::in_process_client`]), goes through [`ApiServer::handle`]: authentication, then
//! authorization, then the handler. Only this module touches the store.

pub mod admission;
pub mod alloc;
pub mod authz;
pub mod bootstrap;
pub mod client;
pub mod crds;
pub mod discovery;
pub mod eviction;
pub mod metrics;
pub mod node_proxy;
pub mod objects;
pub mod openapi;
pub mod pod_streams;
pub mod policy;
pub mod request;
pub mod reviews;
pub mod tokens;
pub mod watch;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::api::status::StatusError;
use crate::store::cache::Cache;
use crate::store::Backend;
use request::{Query, Target};

/// Boxed error of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The response body type of every handler.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Largest request body accepted (upstream's limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The Kubernetes version kelp reports and implements.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("bootstrap: {0}")]
    Bootstrap(String),
}

/// The authenticated identity of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The identity of in-process components (scheduler, controllers, local agent).
    pub fn internal() -> UserInfo {
        UserInfo { name: "system:kelp".into(), groups: vec!["system:masters".into(), "system:authenticated".into()] }
    }
}

/// Settings the API server needs from the command line.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub service_cidr: ipnet::IpNet,
    /// Pod network of the cluster; each Node gets a subnet of it as its podCIDR (`None`: no
    /// allocation).
    pub cluster_cidr: Option<ipnet::IpNet>,
    pub node_port_range: (u16, u16),
    /// Address other components and the `kubernetes` service reach the API at.
    pub advertise_address: std::net::IpAddr,
    pub port: u16,
    /// Events buffered per watcher before a slow watcher is cut off.
    pub watch_buffer_events: usize,
}

pub struct ApiServer {
    pub cache: Arc<Cache>,
    pub backend: Arc<dyn Backend>,
    pub config: ApiConfig,
    /// Serializes ClusterIP / NodePort allocation with the create or update that records it.
    pub(crate) alloc_lock: tokio::sync::Mutex<()>,
    /// Signs and checks ServiceAccount tokens.
    pub tokens: Option<tokens::TokenSigner>,
    /// How node agents are reached (`pods/log`, `pods/exec`, …) and certified; set by `kelp server`.
    pub nodes: std::sync::OnceLock<node_proxy::NodeAccess>,
    ready: AtomicBool,
}

impl ApiServer {
    pub async fn new(
        backend: Arc<dyn Backend>,
        config: ApiConfig,
        tokens: Option<tokens::TokenSigner>,
    ) -> Result<Arc<ApiServer>, ServerError> {
        let cache =
            Cache::start_with(backend.clone(), Arc::new(objects::ApiDecoder), config.watch_buffer_events).await?;
        Ok(Arc::new(ApiServer {
            cache,
            backend,
            config,
            alloc_lock: tokio::sync::Mutex::new(()),
            tokens,
            nodes: std::sync::OnceLock::new(),
            ready: AtomicBool::new(false),
        }))
    }

    /// The way to node agents; 503 in a server started without one (tests of the API alone).
    pub fn node_access(&self) -> Result<&node_proxy::NodeAccess, StatusError> {
        self.nodes.get().ok_or_else(|| {
            StatusError::new(503, "ServiceUnavailable", "this API server has no connection to node agents")
        })
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Handle one request whose body has been read.
    pub async fn handle(self: &Arc<Self>, req: Request<Bytes>, user: Option<UserInfo>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let result = self.route(req, user).await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
        tracing::debug!(method = %method, path = %path, status = resp.status().as_u16(), "request");
        resp
    }

    async fn route(
        self: &Arc<Self>,
        req: Request<Bytes>,
        user: Option<UserInfo>,
    ) -> Result<Response<Body>, StatusError> {
        let query = Query::parse(req.uri().query());
        let target = request::parse_target(req.method(), req.uri().path(), &query)?;
        if let Target::Other(path) = &target {
            if let Some(resp) = self.unauthenticated_path(path) {
                return Ok(resp);
            }
        }
        let user = match user {
            Some(u) => Some(u),
            None => match bearer_token(req.headers()) {
                Some(t) => tokens::authenticate(self, t).await,
                None => None,
            },
        };
        let Some(user) = user else { return Err(StatusError::unauthorized()) };
        let user = authz::impersonate(self, req.headers(), user).await?;
        let attrs =
            authz::with_selected_name(authz::Attributes::of_target(&target, req.method(), req.uri().path()), &query);
        if !authz::allowed(self, &user, &attrs).await {
            return Err(authz::forbidden(&user, &attrs));
        }
        match target {
            Target::Discovery { group, version, legacy } => {
                discovery::serve(&req, group, version, legacy, &self.config)
            }
            Target::Resource(r) => objects::serve(self, r, req, query, user).await,
            // Upstream serves OpenAPI to authenticated users only.
            Target::Other(path) if openapi::handles(&path) => openapi::serve(&req, &path).await,
            Target::Other(path) if path == node_proxy::SERVING_CERT_PATH && req.method() == http::Method::POST => {
                self.node_access()?.serving_cert(&user, req.body())
            }
            Target::Other(_) => {
                Err(StatusError::new(404, "NotFound", "the server could not find the requested resource"))
            }
        }
    }

    fn unauthenticated_path(&self, path: &str) -> Option<Response<Body>> {
        match path {
            "/healthz" | "/livez" | "/readyz" | "/healthz/" | "/livez/" | "/readyz/" => {
                if path.starts_with("/readyz") && !self.ready.load(Ordering::SeqCst) {
                    return Some(text_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "[-]kelp-bootstrap failed: not finished\nreadyz check failed\n",
                    ));
                }
                Some(text_response(StatusCode::OK, "ok"))
            }
            "/version" => Some(json_response(StatusCode::OK, &version_info())),
            _ => None,
        }
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// `/version`.
pub fn version_info() -> Value {
    let v = KUBERNETES_VERSION.trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    serde_json::json!({
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": (minor.parse::<u32>().unwrap_or(1).saturating_sub(1)).to_string(),
        "gitVersion": format!("{KUBERNETES_VERSION}+kelp"),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": format!("kelp {}", env!("CARGO_PKG_VERSION")),
        "compiler": "rustc",
        "platform": format!("linux/{}", go_arch()),
    })
}

/// The architecture in Go's naming, as Kubernetes reports it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        other => other,
    }
}

pub fn full_body(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn bytes_response(code: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(full_body(body));
    *r.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

pub fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    bytes_response(code, "application/json", Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
}

pub fn text_response(code: StatusCode, s: &str) -> Response<Body> {
    bytes_response(code, "text/plain; charset=utf-8", Bytes::from(s.to_string()))
}

pub fn error_response(e: &StatusError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(code, &e.to_status());
    if let Some(secs) = e.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

/// Past this much, an oversized body is not read any further and the connection just ends.
const DRAIN_LIMIT: u64 = 32 * 1024 * 1024;

/// Read a request body, refusing more than [`MAX_BODY`] bytes with 413. An oversized body is read
/// and dropped (up to [`DRAIN_LIMIT`]) so that the client, still sending, gets the answer.
pub async fn read_body<B>(body: B, content_length: Option<u64>) -> Result<Bytes, StatusError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut too_large = content_length.is_some_and(|l| l > MAX_BODY as u64);
    let mut buf = bytes::BytesMut::new();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| StatusError::bad_request(format!("reading the request body: {}", e.into())))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > MAX_BODY as u64 {
            too_large = true;
        }
        if too_large {
            if total > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if too_large {
        return Err(StatusError::too_large());
    }
    Ok(buf.freeze())
}

/// A client's identity from its certificate: (common name, organizations).
pub type CertIdentity = Option<(String, Vec<String>)>;

/// Accepts TLS on `listener` until the task ends and serves every request (HTTP/1.1 with upgrades,
/// and h2) with `handle(request, identity of the client certificate)`. The API server and the node
/// agents' endpoints both serve this way.
pub async fn serve_https<H, F>(listener: TcpListener, tls: Arc<rustls::ServerConfig>, handle: H)
where
    H: Fn(Request<hyper::body::Incoming>, CertIdentity) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(message = "accept failed", error = %e);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, handle) = (acceptor.clone(), handle.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(message = "TLS handshake failed", %peer, error = %e);
                    return;
                }
                Err(_) => return,
            };
            let identity: CertIdentity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|der| crate::pki::identity_from_cert(der.as_ref()).ok());
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let resp = handle(req, identity.clone());
                async move { Ok::<_, std::convert::Infallible>(resp.await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await {
                tracing::debug!(message = "connection ended with an error", %peer, error = %e);
            }
        });
    }
}

/// Serve HTTPS on `listener` until the process ends.
pub async fn serve_tls(api: Arc<ApiServer>, listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
    serve_https(listener, tls, move |req, identity| {
        let api = api.clone();
        let user = identity.map(|(name, mut groups)| {
            groups.push("system:authenticated".into());
            UserInfo { name, groups }
        });
        async move {
            let (parts, body) = req.into_parts();
            let len =
                parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
            match read_body(body, len).await {
                Ok(bytes) => api.handle(Request::from_parts(parts, bytes), user).await,
                Err(e) => error_response(&e),
            }
        }
    })
    .await
}
