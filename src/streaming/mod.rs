//! The Kubernetes streaming protocols, server side: `exec`/`attach` (remotecommand) and
//! `port-forward` over WebSocket (`v4`/`v5.channel.k8s.io` and the older channel protocols),
//! SPDY/3.1 (`X-Stream-Protocol-Version`) and SPDY tunnelled inside a WebSocket
//! (`SPDY/3.1+portforward.k8s.io`, kubectl ≥ 1.31).
//!
//! The HTTP layer calls [`negotiate`] with the request, sends the returned 101 response, and hands
//! the upgraded connection to [`serve_remote_command`] or [`serve_port_forward`].

mod portforward;
mod remotecommand;
#[cfg(test)]
mod session_tests;
pub(crate) mod spdy;
mod websocket;

use std::pin::Pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};

pub use portforward::parse_ports;

/// Which subresource is being upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `pods/exec` and `pods/attach`.
    RemoteCommand,
    /// `pods/portforward`.
    PortForward,
}

/// A WebSocket subprotocol we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WsProtocol {
    /// `channel.k8s.io` or no subprotocol: binary channel messages, plain-text errors.
    V1Binary,
    /// `base64.channel.k8s.io`: text messages, channel as ASCII digit, base64 data.
    V1Base64,
    /// `v4.channel.k8s.io`: binary, Status JSON on the error channel.
    V4Binary,
    /// `v4.base64.channel.k8s.io`.
    V4Base64,
    /// `v5.channel.k8s.io`: v4 plus the close signal (channel 255).
    V5Binary,
}

impl WsProtocol {
    fn base64(self) -> bool {
        matches!(self, WsProtocol::V1Base64 | WsProtocol::V4Base64)
    }
    fn status_json(self) -> bool {
        matches!(self, WsProtocol::V4Binary | WsProtocol::V4Base64 | WsProtocol::V5Binary)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Transport {
    WebSocket(WsProtocol),
    /// SPDY/3.1 with the negotiated `X-Stream-Protocol-Version`.
    Spdy(String),
    /// SPDY/3.1 frames carried in WebSocket binary messages.
    SpdyOverWebSocket,
}

/// The outcome of a successful [`negotiate`]: which protocol the upgraded connection speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    kind: Kind,
    transport: Transport,
    protocol: String,
}

impl Negotiated {
    /// The subresource kind this was negotiated for.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The negotiated protocol name (WebSocket subprotocol or `X-Stream-Protocol-Version`; empty
    /// for a WebSocket without subprotocol).
    pub fn protocol(&self) -> &str {
        &self.protocol
    }
    /// True for WebSocket-based transports (including SPDY tunnelled in WebSocket).
    pub fn is_websocket(&self) -> bool {
        !matches!(self.transport, Transport::Spdy(_))
    }
}

/// A request that cannot be upgraded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamError {
    /// Not a valid upgrade request, or no protocol in common.
    #[error("{0}")]
    BadRequest(String),
}

impl StreamError {
    /// The HTTP status to answer with.
    pub fn status_code(&self) -> u16 {
        match self {
            StreamError::BadRequest(_) => 400,
        }
    }
}

/// The `X-Stream-Protocol-Version` header.
pub const STREAM_PROTOCOL_HEADER: &str = "X-Stream-Protocol-Version";
/// The `X-Accepted-Stream-Protocol-Versions` header (sent with a failed negotiation upstream).
pub const ACCEPTED_PROTOCOLS_HEADER: &str = "X-Accepted-Stream-Protocol-Versions";

const REMOTECOMMAND_SPDY: &[&str] =
    &["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
const PORTFORWARD_SPDY: &[&str] = &["portforward.k8s.io"];
const REMOTECOMMAND_WS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "",
];
const PORTFORWARD_WS: &[&str] = &["SPDY/3.1+portforward.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", ""];

/// All values of header `name`, split at commas and trimmed, empty ones dropped.
fn header_list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn has_token(value: &str, token: &str) -> bool {
    value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// True if the request asks for a WebSocket upgrade (`Upgrade: websocket` and `Connection:
/// upgrade`), as upstream `wsstream.IsWebSocketRequest`.
pub fn is_websocket_request(headers: &HeaderMap) -> bool {
    header_str(headers, "upgrade").trim().eq_ignore_ascii_case("websocket")
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| v.to_str().map(|v| has_token(v, "upgrade")).unwrap_or(false))
}

fn format_list(items: &[impl AsRef<str>]) -> String {
    let parts: Vec<&str> = items.iter().map(|s| s.as_ref()).collect();
    format!("[{}]", parts.join(" "))
}

/// Negotiates the streaming protocol of an exec/attach/port-forward request: returns the
/// `101 Switching Protocols` response to send (with every header the client checks) and what was
/// agreed, or why the request cannot be upgraded.
pub fn negotiate(method: &Method, headers: &HeaderMap, kind: Kind) -> Result<(Response<()>, Negotiated), StreamError> {
    if is_websocket_request(headers) {
        negotiate_websocket(method, headers, kind)
    } else {
        negotiate_spdy(headers, kind)
    }
}

fn negotiate_websocket(
    method: &Method,
    headers: &HeaderMap,
    kind: Kind,
) -> Result<(Response<()>, Negotiated), StreamError> {
    if method != Method::GET {
        return Err(StreamError::BadRequest(
            "websocket: the client is not using the websocket protocol: request method is not GET".into(),
        ));
    }
    if header_str(headers, "sec-websocket-version").trim() != "13" {
        return Err(StreamError::BadRequest(
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header".into(),
        ));
    }
    let key = header_str(headers, "sec-websocket-key").trim();
    if key.is_empty() {
        return Err(StreamError::BadRequest(
            "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header is missing or invalid".into(),
        ));
    }
    let offered = header_list(headers, "sec-websocket-protocol");
    let supported = match kind {
        Kind::RemoteCommand => REMOTECOMMAND_WS,
        Kind::PortForward => PORTFORWARD_WS,
    };
    let candidates: Vec<&str> =
        if offered.is_empty() { vec![""] } else { offered.iter().map(String::as_str).collect() };
    let Some(chosen) = candidates.iter().find(|p| supported.contains(p)).map(|p| p.to_string()) else {
        return Err(StreamError::BadRequest(format!(
            "requested protocol(s) are not supported: {}; supports {}",
            format_list(&offered),
            format_list(supported)
        )));
    };
    let transport = match (kind, chosen.as_str()) {
        (Kind::PortForward, "SPDY/3.1+portforward.k8s.io") => Transport::SpdyOverWebSocket,
        (_, "v5.channel.k8s.io") => Transport::WebSocket(WsProtocol::V5Binary),
        (_, "v4.channel.k8s.io") | (Kind::PortForward, "") => Transport::WebSocket(WsProtocol::V4Binary),
        (_, "v4.base64.channel.k8s.io") => Transport::WebSocket(WsProtocol::V4Base64),
        (_, "base64.channel.k8s.io") => Transport::WebSocket(WsProtocol::V1Base64),
        _ => Transport::WebSocket(WsProtocol::V1Binary),
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).expect("base64 is a valid header value"));
    if !chosen.is_empty() {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(&chosen).expect("known protocol name"));
    }
    Ok((response, Negotiated { kind, transport, protocol: chosen }))
}

fn negotiate_spdy(headers: &HeaderMap, kind: Kind) -> Result<(Response<()>, Negotiated), StreamError> {
    let connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ")
        .to_ascii_lowercase();
    let upgrade = header_str(headers, "upgrade").to_ascii_lowercase();
    if !connection.contains("upgrade") || !upgrade.contains("spdy/3.1") {
        return Err(StreamError::BadRequest(format!(
            "unable to upgrade: missing upgrade headers in request: Connection={:?} Upgrade={:?}",
            header_str(headers, "connection"),
            header_str(headers, "upgrade")
        )));
    }
    let offered = header_list(headers, STREAM_PROTOCOL_HEADER);
    if offered.is_empty() {
        return Err(StreamError::BadRequest(format!("unable to upgrade: {STREAM_PROTOCOL_HEADER} is required")));
    }
    let supported = match kind {
        Kind::RemoteCommand => REMOTECOMMAND_SPDY,
        Kind::PortForward => PORTFORWARD_SPDY,
    };
    let Some(chosen) = offered.iter().find(|p| supported.contains(&p.as_str())).cloned() else {
        return Err(StreamError::BadRequest(format!(
            "unable to upgrade: unable to negotiate protocol: client supports {}, server accepts {}",
            format_list(&offered),
            format_list(supported)
        )));
    };
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_str(&chosen).expect("known protocol name"));
    Ok((response, Negotiated { kind, transport: Transport::Spdy(chosen.clone()), protocol: chosen }))
}

/// Which of the process's standard streams the client asked for (`stdin`, `stdout`, `stderr`,
/// `tty` query parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamFlags {
    /// Client sends stdin.
    pub stdin: bool,
    /// Client wants stdout.
    pub stdout: bool,
    /// Client wants stderr (ignored with `tty`, as upstream).
    pub stderr: bool,
    /// The process runs on a terminal (stdout and stderr merged; resize events).
    pub tty: bool,
}

impl StreamFlags {
    /// Upstream's check of the options: at least one stream must be requested.
    pub fn validate(&self) -> Result<(), StreamError> {
        if !self.stdin && !self.stdout && !self.stderr {
            return Err(StreamError::BadRequest("you must specify at least 1 of stdin, stdout, stderr".into()));
        }
        Ok(())
    }

    /// The flags as served: with a TTY there is no separate stderr stream.
    fn effective(self) -> StreamFlags {
        StreamFlags { stderr: self.stderr && !self.tty, ..self }
    }
}

/// What the runtime gives back for a started process.
pub struct ProcessIo {
    /// The process's stdin (None if not requested).
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// The process's stdout (with a TTY: the terminal output).
    pub stdout: Option<Pin<Box<dyn AsyncRead + Send>>>,
    /// The process's stderr; None with a TTY.
    pub stderr: Option<Pin<Box<dyn AsyncRead + Send>>>,
    /// Resizes the terminal to (width, height).
    pub resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>,
    /// Resolves when the process ended: Ok(exit code) or Err(message for the Status). Dropping the
    /// ProcessIo (client gone) kills the process — that is the runtime's job.
    pub exit: BoxFuture<'static, Result<i32, String>>,
}

/// Starts the process once the client's streams are established.
pub type StartFn = Box<dyn FnOnce() -> BoxFuture<'static, Result<ProcessIo, String>> + Send>;

/// Whether a remotecommand session is an `exec` (with its command, for the exit-code message) or an
/// `attach` (upstream reports Success when an attached process ends, whatever its exit code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteCommandKind {
    /// `pods/exec` of `command`.
    Exec {
        /// The command as the client gave it.
        command: Vec<String>,
    },
    /// `pods/attach`.
    Attach,
}

/// Runs one exec/attach session on an upgraded connection (see [`serve_remote_command_with`]);
/// treated as an exec whose command is not known.
pub async fn serve_remote_command<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    neg: Negotiated,
    flags: StreamFlags,
    start: StartFn,
) {
    serve_remote_command_with(io, neg, flags, RemoteCommandKind::Exec { command: Vec::new() }, start).await
}

/// Runs one exec/attach session on an upgraded connection: establishes the streams (SPDY: waits for
/// the client's streams, replies to each), then calls `start`, copies stdin → process, stdout/stderr
/// → client, resize events → `resize`, and when the process exited and its output is drained,
/// reports the result on the error/status stream in the negotiated protocol's format and closes.
/// Client gone → drops everything and returns.
pub async fn serve_remote_command_with<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    neg: Negotiated,
    flags: StreamFlags,
    kind: RemoteCommandKind,
    start: StartFn,
) {
    if neg.kind != Kind::RemoteCommand {
        tracing::warn!(protocol = %neg.protocol, "remotecommand served on a connection negotiated for port-forward");
        return;
    }
    let flags = flags.effective();
    match neg.transport {
        Transport::WebSocket(protocol) => remotecommand::serve_websocket(io, protocol, flags, kind, start).await,
        Transport::Spdy(version) => remotecommand::serve_spdy(io, &version, flags, kind, start).await,
        Transport::SpdyOverWebSocket => {
            tracing::warn!("remotecommand over SPDY-in-WebSocket is not a Kubernetes protocol");
        }
    }
}

/// Connects to a port of the pod (the runtime's network namespace).
pub type DialFn = Arc<dyn Fn(u16) -> BoxFuture<'static, std::io::Result<tokio::net::TcpStream>> + Send + Sync>;

/// The pod a port-forward serves, named in error messages as upstream does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRef {
    /// The pod's name (upstream prints the kubelet's pod identifier).
    pub name: String,
    /// The pod's UID.
    pub uid: String,
}

/// Runs one port-forward session (`ports` = the `ports` query parameter, used by the WebSocket v4
/// protocol; SPDY clients name the port per stream).
pub async fn serve_port_forward<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    neg: Negotiated,
    ports: Vec<u16>,
    dial: DialFn,
) {
    serve_port_forward_with(io, neg, ports, dial, PodRef::default()).await
}

/// [`serve_port_forward`] naming `pod` in error messages.
pub async fn serve_port_forward_with<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    neg: Negotiated,
    ports: Vec<u16>,
    dial: DialFn,
    pod: PodRef,
) {
    if neg.kind != Kind::PortForward {
        tracing::warn!(protocol = %neg.protocol, "port-forward served on a connection negotiated for remotecommand");
        return;
    }
    match neg.transport {
        Transport::Spdy(_) => portforward::serve_spdy(io, dial, pod).await,
        Transport::SpdyOverWebSocket => {
            let tunnel = websocket::tunnel(io);
            portforward::serve_spdy(tunnel, dial, pod).await
        }
        Transport::WebSocket(protocol) => portforward::serve_websocket(io, protocol, ports, dial, pod).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ws(protocols: &str) -> HeaderMap {
        let mut pairs = vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        if !protocols.is_empty() {
            pairs.push(("Sec-WebSocket-Protocol", protocols));
        }
        headers(&pairs)
    }

    #[test]
    fn websocket_negotiation_picks_first_supported_client_protocol() {
        let (resp, neg) = negotiate(&Method::GET, &ws("v5.channel.k8s.io"), Kind::RemoteCommand).unwrap();
        assert_eq!(resp.status(), 101);
        assert_eq!(resp.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(resp.headers()["sec-websocket-protocol"], "v5.channel.k8s.io");
        assert_eq!(resp.headers()["upgrade"], "websocket");
        assert_eq!(neg.transport, Transport::WebSocket(WsProtocol::V5Binary));

        let (_, neg) =
            negotiate(&Method::GET, &ws("foo, v4.channel.k8s.io, v5.channel.k8s.io"), Kind::RemoteCommand).unwrap();
        assert_eq!(neg.protocol(), "v4.channel.k8s.io");

        let (resp, neg) = negotiate(&Method::GET, &ws(""), Kind::RemoteCommand).unwrap();
        assert!(resp.headers().get("sec-websocket-protocol").is_none());
        assert_eq!(neg.transport, Transport::WebSocket(WsProtocol::V1Binary));

        let (_, neg) = negotiate(&Method::GET, &ws("SPDY/3.1+portforward.k8s.io"), Kind::PortForward).unwrap();
        assert_eq!(neg.transport, Transport::SpdyOverWebSocket);
        let (_, neg) = negotiate(&Method::GET, &ws("v4.channel.k8s.io"), Kind::PortForward).unwrap();
        assert_eq!(neg.transport, Transport::WebSocket(WsProtocol::V4Binary));

        let err = negotiate(&Method::GET, &ws("SPDY/3.1+portforward.k8s.io"), Kind::RemoteCommand).unwrap_err();
        assert_eq!(err.status_code(), 400);
        assert!(err.to_string().starts_with("requested protocol(s) are not supported: [SPDY/3.1+portforward.k8s.io]"));
        let err = negotiate(&Method::POST, &ws("v5.channel.k8s.io"), Kind::RemoteCommand).unwrap_err();
        assert!(err.to_string().contains("not GET"));
        let mut no_key = ws("v5.channel.k8s.io");
        no_key.remove("sec-websocket-key");
        assert!(negotiate(&Method::GET, &no_key, Kind::RemoteCommand).is_err());
    }

    #[test]
    fn spdy_negotiation() {
        let h = headers(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
            ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
        ]);
        let (resp, neg) = negotiate(&Method::POST, &h, Kind::RemoteCommand).unwrap();
        assert_eq!(resp.status(), 101);
        assert_eq!(resp.headers()["upgrade"], "SPDY/3.1");
        assert_eq!(resp.headers()["connection"], "Upgrade");
        assert_eq!(resp.headers()["x-stream-protocol-version"], "v5.channel.k8s.io");
        assert_eq!(neg.transport, Transport::Spdy("v5.channel.k8s.io".into()));

        let h = headers(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v4.channel.k8s.io, v3.channel.k8s.io"),
        ]);
        assert_eq!(negotiate(&Method::POST, &h, Kind::RemoteCommand).unwrap().1.protocol(), "v4.channel.k8s.io");

        let h = headers(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "portforward.k8s.io"),
        ]);
        assert_eq!(negotiate(&Method::POST, &h, Kind::PortForward).unwrap().1.protocol(), "portforward.k8s.io");
        let err = negotiate(&Method::POST, &h, Kind::RemoteCommand).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to upgrade: unable to negotiate protocol: client supports [portforward.k8s.io], server accepts \
             [v5.channel.k8s.io v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]"
        );

        let h = headers(&[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]);
        assert_eq!(
            negotiate(&Method::POST, &h, Kind::PortForward).unwrap_err().to_string(),
            "unable to upgrade: X-Stream-Protocol-Version is required"
        );
        let err = negotiate(&Method::GET, &HeaderMap::new(), Kind::PortForward).unwrap_err();
        assert!(err.to_string().starts_with("unable to upgrade: missing upgrade headers in request"));
        assert_eq!(err.status_code(), 400);
    }

    #[test]
    fn flags_validation() {
        assert!(StreamFlags::default().validate().is_err());
        assert!(StreamFlags { stdout: true, ..Default::default() }.validate().is_ok());
        let f = StreamFlags { stdout: true, stderr: true, tty: true, stdin: false }.effective();
        assert!(!f.stderr);
    }
}
