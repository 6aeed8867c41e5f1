//! The API server's way to its node agents (our kubelets): `pods/log|exec|attach|portforward`,
//! `nodes/proxy` and the metrics API go through [`NodeAccess::send`] or [`NodeAccess::proxy`].
//!
//! How a node is reached is one interface, [`NodeDialer`]: today [`DirectDialer`] opens TLS to the
//! node's InternalIP and kubelet port (`status.daemonEndpoints.kubeletEndpoint.Port`), trusting only
//! the cluster CA and presenting the API server's kubelet-client certificate; an agent-initiated
//! tunnel for agents behind NAT replaces just the dialer. Upgrades (WebSocket, SPDY) are passed
//! through byte for byte: the protocols are spoken by the agent alone.
//!
//! Agents get their serving certificate here too ([`SERVING_CERT_PATH`]): a node may ask for its own
//! name only.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Node;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{json_response, Body, BoxError, UserInfo};
use crate::api::status::StatusError;
use crate::pki::Pki;

/// Common name of the API server's client certificate towards agents; agents accept no other.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
/// Where an agent asks for its serving certificate (POST, JSON `{"nodeName", "addresses"}`).
pub const SERVING_CERT_PATH: &str = "/v1-kelp/serving-kubelet.crt";
/// Validity of agent serving certificates (agents ask anew at every start).
const SERVING_CERT_DAYS: u32 = 365;

/// A byte stream to an agent's HTTPS endpoint, TLS already done.
pub trait NodeStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> NodeStream for T {}

/// How the API server reaches the agent of a node.
pub trait NodeDialer: Send + Sync {
    /// An authenticated, encrypted connection to `node`'s agent; errors are API errors for the client.
    fn dial<'a>(&'a self, node: &'a Node) -> BoxFuture<'a, Result<Box<dyn NodeStream>, StatusError>>;
}

/// TLS straight to the node's InternalIP and kubelet port.
pub struct DirectDialer {
    tls: tokio_rustls::TlsConnector,
}

impl DirectDialer {
    pub fn new(tls: rustls::ClientConfig) -> DirectDialer {
        let mut tls = tls;
        // Upgrades need HTTP/1.1.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        DirectDialer { tls: tokio_rustls::TlsConnector::from(Arc::new(tls)) }
    }
}

/// The address and port the agent of `node` serves on.
pub fn kubelet_address(node: &Node) -> Result<(IpAddr, u16), StatusError> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let status = node.status.as_ref();
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| e.port)
        .filter(|p| *p > 0 && *p <= 65535)
        .ok_or_else(|| StatusError::bad_request(format!("node {name:?} has no kubelet endpoint")))?;
    let addrs = status.and_then(|s| s.addresses.as_ref()).cloned().unwrap_or_default();
    let ip = ["InternalIP", "ExternalIP"]
        .iter()
        .find_map(|t| addrs.iter().filter(|a| a.type_ == *t).find_map(|a| a.address.parse::<IpAddr>().ok()))
        .ok_or_else(|| StatusError::bad_request(format!("node {name:?} has no internal address")))?;
    Ok((ip, port as u16))
}

fn dial_error(e: impl std::fmt::Display) -> StatusError {
    StatusError::new(500, "InternalError", format!("error dialing backend: {e}"))
}

impl NodeDialer for DirectDialer {
    fn dial<'a>(&'a self, node: &'a Node) -> BoxFuture<'a, Result<Box<dyn NodeStream>, StatusError>> {
        Box::pin(async move {
            let (ip, port) = kubelet_address(node)?;
            let tcp =
                tokio::time::timeout(std::time::Duration::from_secs(10), tokio::net::TcpStream::connect((ip, port)))
                    .await
                    .map_err(|_| dial_error(format!("dial tcp {ip}:{port}: i/o timeout")))?
                    .map_err(|e| dial_error(format!("dial tcp {ip}:{port}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let name = rustls::pki_types::ServerName::IpAddress(ip.into());
            let tls = self.tls.connect(name, tcp).await.map_err(|e| dial_error(format!("tls to {ip}:{port}: {e}")))?;
            Ok(Box::new(tls) as Box<dyn NodeStream>)
        })
    }
}

/// What the API server holds to reach agents and to certify them.
pub struct NodeAccess {
    pki: Arc<Pki>,
    dialer: Box<dyn NodeDialer>,
}

impl NodeAccess {
    /// Issues the API server's kubelet-client certificate from the cluster CA and dials directly.
    pub fn direct(pki: Arc<Pki>) -> Result<NodeAccess, crate::pki::PkiError> {
        let (cert, key) = pki.issue_client_cert(KUBELET_CLIENT_CN, &["system:masters"], SERVING_CERT_DAYS)?;
        let tls = crate::pki::client_config(&pki.ca_cert_pem, &cert, &key)?;
        Ok(NodeAccess { pki, dialer: Box::new(DirectDialer::new(tls)) })
    }

    /// Sends one request to `node`'s agent and returns its response as it arrives (bodies stream;
    /// a 101 leaves the connection to the caller through `hyper::upgrade::on`).
    pub async fn send(
        &self,
        node: &Node,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<hyper::body::Incoming>, StatusError> {
        let io = self.dialer.dial(node).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| dial_error(format!("handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(message = "agent connection ended with an error", error = %e);
            }
        });
        sender.send_request(req).await.map_err(|e| dial_error(format!("request: {e}")))
    }

    /// Forwards a client request to `path_and_query` on `node`'s agent: the response streams back
    /// (`logs -f`); an upgrade the agent accepts (101) joins the client's connection to the agent's.
    pub async fn proxy(
        &self,
        node: &Node,
        mut req: Request<Bytes>,
        path_and_query: &str,
    ) -> Result<Response<Body>, StatusError> {
        let upgrade = is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let mut out = Request::builder()
            .method(parts.method.clone())
            .uri(path_and_query)
            .body(Full::new(body))
            .map_err(|e| StatusError::bad_request(format!("invalid path {path_and_query:?}: {e}")))?;
        for (name, value) in &parts.headers {
            if forwarded(name) {
                out.headers_mut().append(name.clone(), value.clone());
            }
        }
        let host = node.metadata.name.clone().unwrap_or_default();
        if let Ok(v) = HeaderValue::from_str(&host) {
            out.headers_mut().insert(header::HOST, v);
        }
        let mut resp = self.send(node, out).await?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client) = upgrade else {
                return Err(StatusError::new(500, "InternalError", "the agent upgraded a request that asked for none"));
            };
            let agent = hyper::upgrade::on(&mut resp);
            let mut reply = Response::new(super::full_body(Bytes::new()));
            *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            *reply.headers_mut() = resp.headers().clone();
            tokio::spawn(async move {
                let (agent, client) = match tokio::join!(agent, client) {
                    (Ok(a), Ok(c)) => (a, c),
                    (a, c) => {
                        tracing::debug!(message = "upgrade failed", agent = ?a.err(), client = ?c.err());
                        return;
                    }
                };
                let mut agent = TokioIo::new(agent);
                let mut client = TokioIo::new(client);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
                    tracing::debug!(message = "stream to the agent ended", error = %e);
                }
            });
            return Ok(reply);
        }
        Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
    }

    /// `POST /v1-kelp/serving-kubelet.crt`: a serving certificate (and its key) for the calling
    /// node, with the addresses it asks for.
    pub fn serving_cert(&self, user: &UserInfo, body: &[u8]) -> Result<Response<Body>, StatusError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Ask {
            node_name: String,
            #[serde(default)]
            addresses: Vec<String>,
        }
        let ask: Ask = serde_json::from_slice(body)
            .map_err(|e| StatusError::bad_request(format!("invalid serving certificate request: {e}")))?;
        let own = user.name.strip_prefix("system:node:") == Some(ask.node_name.as_str())
            && user.groups.iter().any(|g| g == "system:nodes");
        let admin = user.groups.iter().any(|g| g == "system:masters");
        if !own && !admin {
            return Err(StatusError::new(
                403,
                "Forbidden",
                format!("User {:?} cannot get a serving certificate for node {:?}", user.name, ask.node_name),
            ));
        }
        if ask.node_name.is_empty() {
            return Err(StatusError::bad_request("nodeName is required"));
        }
        let mut sans = vec![ask.node_name.clone()];
        for a in ask.addresses {
            if !sans.contains(&a) {
                sans.push(a);
            }
        }
        let (cert, key) = self
            .pki
            .issue_serving_cert(&format!("system:node:{}", ask.node_name), &sans, SERVING_CERT_DAYS)
            .map_err(|e| StatusError::bad_request(format!("cannot issue the serving certificate: {e}")))?;
        Ok(json_response(StatusCode::OK, &json!({"certificate": cert, "key": key, "ca": self.pki.ca_cert_pem})))
    }
}

/// Does the request ask for a protocol upgrade?
pub fn is_upgrade(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// Headers passed on to the agent: not the client's credentials, not the host.
fn forwarded(name: &header::HeaderName) -> bool {
    let n = name.as_str();
    !(name == header::AUTHORIZATION
        || name == header::HOST
        || name == header::PROXY_AUTHORIZATION
        || n.starts_with("impersonate-")
        || n == "keep-alive"
        || n == "te"
        || n == "trailer"
        || n == "transfer-encoding")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_detection() {
        let mut h = http::HeaderMap::new();
        assert!(!is_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!is_upgrade(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(is_upgrade(&h));
    }

    #[test]
    fn credentials_are_not_forwarded() {
        assert!(!forwarded(&header::AUTHORIZATION));
        assert!(!forwarded(&header::HeaderName::from_static("impersonate-user")));
        assert!(forwarded(&header::HeaderName::from_static("sec-websocket-protocol")));
        assert!(forwarded(&header::HeaderName::from_static("x-stream-protocol-version")));
        assert!(forwarded(&header::UPGRADE));
    }

    #[test]
    fn kubelet_address_needs_port_and_ip() {
        let mut node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.1.2.3"}]}
        }))
        .unwrap();
        assert_eq!(kubelet_address(&node).unwrap_err().code, 400);
        node.status.as_mut().unwrap().daemon_endpoints =
            serde_json::from_value(json!({"kubeletEndpoint": {"Port": 10250}})).unwrap();
        assert_eq!(kubelet_address(&node).unwrap(), ("10.1.2.3".parse().unwrap(), 10250));
    }
}
