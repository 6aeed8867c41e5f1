//! The agent's HTTPS endpoint — the kubelet API the API server proxies to: `containerLogs`, `exec`,
//! `attach`, `portForward`, `stats/summary`, `pods`, `healthz`.
//!
//! The serving certificate comes from the cluster CA through the API server
//! ([`crate::apiserver::node_proxy::SERVING_CERT_PATH`]); clients must present a certificate from the
//! same CA whose common name is the API server's kubelet-client identity — nobody else is served.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;

use super::pods::{self, LABEL_NAME, LABEL_NAMESPACE};
use super::{logs, stats, AgentConfig, AgentError};
use crate::api::status::StatusError;
use crate::apiserver::full_body;
use crate::apiserver::node_proxy::{KUBELET_CLIENT_CN, SERVING_CERT_PATH};
use crate::apiserver::{error_response, json_response, text_response, Body, BoxError};
use crate::runtime::{AttachOptions, ContainerState, ContainerStatus, ExecOptions, TerminalResizer};
use crate::streaming;

/// What the endpoint serves from.
pub struct Endpoint {
    pub ctx: Arc<pods::Ctx>,
    pub manager: Arc<pods::Manager>,
    pub stats: Arc<stats::Stats>,
}

/// Binds the endpoint's port on every address (`port` 0: a free one).
pub async fn bind(port: u16) -> Result<TcpListener, AgentError> {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    TcpListener::bind(addr).await.map_err(|e| AgentError::Io { context: format!("binding {addr}"), source: e })
}

/// Asks the API server for this node's serving certificate and builds the TLS configuration that
/// only lets the API server in.
pub async fn tls_config(client: &kube::Client, cfg: &AgentConfig) -> Result<rustls::ServerConfig, AgentError> {
    let mut addresses: Vec<String> = cfg.node_ips.iter().map(IpAddr::to_string).collect();
    addresses.push("127.0.0.1".into());
    if let Ok(h) = hostname::get() {
        addresses.push(h.to_string_lossy().to_lowercase());
    }
    let body = serde_json::json!({"nodeName": cfg.node_name, "addresses": addresses});
    let req = Request::post(SERVING_CERT_PATH)
        .header(header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(|e| AgentError::Other(format!("serving certificate request: {e}")))?;
    let reply: serde_json::Value = client.request(req).await?;
    let field = |k: &str| {
        reply
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| AgentError::Other(format!("the serving certificate reply has no {k}")))
    };
    let (cert, key, ca) = (field("certificate")?, field("key")?, field("ca")?);
    server_config(&ca, &cert, &key)
}

fn server_config(ca: &str, cert: &str, key: &str) -> Result<rustls::ServerConfig, AgentError> {
    let bad = |e: String| AgentError::Other(format!("agent TLS: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_bytes()) {
        roots.add(c.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let chain =
        rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|e| bad(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut key.as_bytes())
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("no private key in the reply".into()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad(e.to_string()))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// Serves until the task is dropped: the API server's identity only.
pub async fn serve(listener: TcpListener, tls: rustls::ServerConfig, ep: Arc<Endpoint>) {
    crate::apiserver::serve_https(listener, Arc::new(tls), move |req, identity| {
        let ep = ep.clone();
        async move {
            let user = identity.map(|(name, _)| name).unwrap_or_default();
            if user == KUBELET_CLIENT_CN {
                ep.route(req).await.unwrap_or_else(|e| error_response(&e))
            } else {
                let message = format!("Forbidden (user={user}, verb={}, path={})", req.method(), req.uri().path());
                error_response(&StatusError::new(403, "Forbidden", message))
            }
        }
    })
    .await
}

/// The decoded query, repeats kept (`command=a&command=b`).
pub(crate) type QueryPairs = Vec<(String, String)>;

fn query_pairs<B>(req: &Request<B>) -> QueryPairs {
    crate::apiserver::request::url_pairs(req.uri().query().unwrap_or_default()).collect()
}

fn not_found(what: String) -> StatusError {
    StatusError::new(404, "NotFound", what)
}

impl Endpoint {
    async fn route(self: &Arc<Self>, req: Request<hyper::body::Incoming>) -> Result<Response<Body>, StatusError> {
        let path = req.uri().path().to_string();
        let segs: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(crate::apiserver::request::percent_decode)
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        match segs.as_slice() {
            ["healthz"] if get => Ok(text_response(StatusCode::OK, "ok")),
            ["pods"] if get => self.pods(),
            ["stats", "summary"] if get => {
                Ok(json_response(StatusCode::OK, &self.stats.summary(&self.ctx, &self.manager).await))
            }
            ["containerLogs", ns, pod, container] if get => {
                let q = query_pairs(&req);
                self.logs(ns, pod, container, &q).await
            }
            ["exec" | "attach", ..] | ["portForward", ..] => self.stream(req, &segs).await,
            _ => Err(not_found(format!("the agent serves no {} {path}", req.method()))),
        }
    }

    fn pods(&self) -> Result<Response<Body>, StatusError> {
        let items: Vec<Pod> = self.manager.pods().iter().map(|p| (**p).clone()).collect();
        let list = serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items});
        Ok(json_response(StatusCode::OK, &list))
    }

    /// This node's containers named `container` of pod `ns/pod` (uid, when given, must match),
    /// newest first.
    pub(crate) async fn containers(
        &self,
        ns: &str,
        pod: &str,
        uid: Option<&str>,
        container: &str,
    ) -> Result<Vec<ContainerStatus>, StatusError> {
        let all = self.ctx.runtime.list().await.map_err(|e| StatusError::internal(e.to_string()))?;
        let known_uid =
            uid.map(str::to_string).or_else(|| self.manager.find(ns, pod).and_then(|p| p.metadata.uid.clone()));
        let mut mine: Vec<ContainerStatus> = all
            .into_iter()
            .filter(|c| {
                c.name == container
                    && c.labels.get(LABEL_NAMESPACE).map(String::as_str) == Some(ns)
                    && c.labels.get(LABEL_NAME).map(String::as_str) == Some(pod)
                    && known_uid.as_ref().is_none_or(|u| *u == c.pod_uid)
            })
            .collect();
        mine.sort_by_key(|c| std::cmp::Reverse(c.attempt));
        Ok(mine)
    }

    /// The running instance of a container, or the error kubectl shows.
    pub(crate) async fn running(
        &self,
        ns: &str,
        pod: &str,
        uid: Option<&str>,
        container: &str,
    ) -> Result<ContainerStatus, StatusError> {
        self.containers(ns, pod, uid, container)
            .await?
            .into_iter()
            .find(|c| matches!(c.state, ContainerState::Running { .. }))
            .ok_or_else(|| not_found(format!("container not found ({container:?})")))
    }

    async fn logs(&self, ns: &str, pod: &str, container: &str, q: &QueryPairs) -> Result<Response<Body>, StatusError> {
        let opts = logs::LogOptions::from_query(q).map_err(StatusError::bad_request)?;
        let previous = flag(q, &["previous"]);
        let found = self.containers(ns, pod, None, container).await?;
        let chosen = if previous { found.get(1) } else { found.first() };
        let Some(c) = chosen else {
            if previous {
                return Err(StatusError::bad_request(format!(
                    "previous terminated container {container:?} in pod {pod:?} not found"
                )));
            }
            let reason = self
                .manager
                .find(ns, pod)
                .and_then(|p| waiting_reason(&p, container))
                .unwrap_or_else(|| "ContainerCreating".into());
            return Err(StatusError::bad_request(format!(
                "container {container:?} in pod {pod:?} is waiting to start: {reason}"
            )));
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let runtime = self.ctx.runtime.clone();
        let id = c.id.clone();
        let running = move || {
            let (runtime, id) = (runtime.clone(), id.clone());
            Box::pin(async move {
                runtime.status(&id).await.is_ok_and(|s| matches!(s.state, ContainerState::Running { .. }))
            }) as futures::future::BoxFuture<'static, bool>
        };
        tokio::spawn(logs::stream(c.log_path.clone(), opts, tx, running));
        let body = StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx).map(|b| Ok::<_, BoxError>(hyper::body::Frame::data(b))),
        );
        let mut resp = Response::new(BodyExt::boxed_unsync(body));
        resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
        Ok(resp)
    }
}

/// The waiting reason of `container` in the pod's last known status.
fn waiting_reason(pod: &Pod, container: &str) -> Option<String> {
    let st = pod.status.as_ref()?;
    st.container_statuses
        .iter()
        .flatten()
        .chain(st.init_container_statuses.iter().flatten())
        .find(|c| c.name == container)
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
}

fn flag(q: &QueryPairs, names: &[&str]) -> bool {
    q.iter().any(|(k, v)| names.contains(&k.as_str()) && crate::apiserver::request::parse_bool(v))
}

impl Endpoint {
    /// `exec`, `attach` and `portForward`: checked, answered with the protocol upgrade, then served
    /// by [`crate::streaming`] on the upgraded connection.
    async fn stream(
        self: &Arc<Self>,
        mut req: Request<hyper::body::Incoming>,
        segs: &[&str],
    ) -> Result<Response<Body>, StatusError> {
        let q = query_pairs(&req);
        let (verb, ns, pod, uid, container) = match *segs {
            [v @ ("exec" | "attach"), ns, pod, container] => (v, ns, pod, None, Some(container)),
            [v @ ("exec" | "attach"), ns, pod, uid, container] => (v, ns, pod, Some(uid), Some(container)),
            ["portForward", ns, pod] => ("portForward", ns, pod, None, None),
            ["portForward", ns, pod, uid] => ("portForward", ns, pod, Some(uid), None),
            _ => return Err(not_found(format!("the agent serves no {}", req.uri().path()))),
        };
        let bad = |e: streaming::StreamError| StatusError::new(e.status_code(), "BadRequest", e.to_string());
        let Some(container) = container else {
            // Port-forward.
            let pod_uid = match uid {
                Some(u) => u.to_string(),
                None => self
                    .manager
                    .find(ns, pod)
                    .and_then(|p| p.metadata.uid.clone())
                    .ok_or_else(|| not_found(format!("pod {ns}/{pod} is not on this node")))?,
            };
            let mut ports = Vec::new();
            for (_, v) in q.iter().filter(|(k, _)| k == "ports") {
                for p in v.split(',').filter(|p| !p.is_empty()) {
                    let port: u16 = p
                        .trim()
                        .parse()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| StatusError::bad_request(format!("invalid port {p:?}")))?;
                    ports.push(port);
                }
            }
            let (resp, neg) =
                streaming::negotiate(req.method(), req.headers(), streaming::Kind::PortForward).map_err(bad)?;
            // The WebSocket protocol names its ports in the query; SPDY names them per stream.
            if neg.is_websocket() && !neg.protocol().starts_with("SPDY") && ports.is_empty() {
                return Err(StatusError::bad_request("query parameter \"port\" is required"));
            }
            let upgrade = hyper::upgrade::on(&mut req);
            let pod_ref = streaming::PodRef { name: pod.to_string(), uid: pod_uid.clone() };
            let network = self.ctx.network.clone();
            let dial: streaming::DialFn = Arc::new(move |port| {
                let (network, uid) = (network.clone(), pod_uid.clone());
                Box::pin(async move { network.connect(&uid, port).await.map_err(std::io::Error::other) })
            });
            tokio::spawn(async move {
                match upgrade.await {
                    Ok(io) => streaming::serve_port_forward_with(TokioIo::new(io), neg, ports, dial, pod_ref).await,
                    Err(e) => tracing::debug!(message = "port-forward upgrade failed", error = %e),
                }
            });
            return Ok(resp.map(|()| full_body(Bytes::new())));
        };
        let flags = streaming::StreamFlags {
            stdin: flag(&q, &["stdin", "input"]),
            stdout: flag(&q, &["stdout", "output"]),
            stderr: flag(&q, &["stderr", "error"]),
            tty: flag(&q, &["tty"]),
        };
        if !(flags.stdin || flags.stdout || flags.stderr) {
            return Err(StatusError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
        }
        let command: Vec<String> = q.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
        if verb == "exec" && command.is_empty() {
            return Err(StatusError::bad_request("you must specify at least 1 command"));
        }
        let c = self.running(ns, pod, uid, container).await?;
        let (resp, neg) =
            streaming::negotiate(req.method(), req.headers(), streaming::Kind::RemoteCommand).map_err(bad)?;
        let upgrade = hyper::upgrade::on(&mut req);
        let runtime = self.ctx.runtime.clone();
        let id = c.id.clone();
        let kind = if verb == "exec" {
            streaming::RemoteCommandKind::Exec { command: command.clone() }
        } else {
            streaming::RemoteCommandKind::Attach
        };
        let start: streaming::StartFn = if verb == "exec" {
            Box::new(move || {
                Box::pin(async move {
                    let opts = ExecOptions { stdin: flags.stdin, tty: flags.tty };
                    let p =
                        runtime.exec_interactive(&id, command, Vec::new(), opts).await.map_err(|e| e.to_string())?;
                    Ok(streaming::ProcessIo {
                        stdin: p.stdin,
                        stdout: Some(p.stdout),
                        stderr: p.stderr,
                        resize: p.resize.map(resizer),
                        exit: Box::pin(async move { p.exit.wait().await.map_err(|e| e.to_string()) }),
                    })
                })
            })
        } else {
            Box::new(move || {
                Box::pin(async move {
                    let opts = AttachOptions { stdin: flags.stdin, stdout: flags.stdout, stderr: flags.stderr };
                    let s = runtime.attach(&id, opts).await.map_err(|e| e.to_string())?;
                    Ok(streaming::ProcessIo {
                        stdin: s.stdin,
                        stdout: s.stdout,
                        stderr: s.stderr,
                        resize: s.resize.map(resizer),
                        exit: Box::pin(async move { s.exit.wait().await.map_err(|e| e.to_string()) }),
                    })
                })
            })
        };
        tokio::spawn(async move {
            match upgrade.await {
                Ok(io) => streaming::serve_remote_command_with(TokioIo::new(io), neg, flags, kind, start).await,
                Err(e) => tracing::debug!(message = "exec upgrade failed", error = %e),
            }
        });
        Ok(resp.map(|()| full_body(Bytes::new())))
    }
}

fn resizer(r: TerminalResizer) -> Box<dyn Fn(u16, u16) + Send + Sync> {
    Box::new(move |w, h| {
        if let Err(e) = r.resize(w, h) {
            tracing::debug!(message = "terminal resize failed", error = %e);
        }
    })
}
