//! Startup, liveness and readiness probes: one task per container and probe, running the check
//! (exec through the runtime, httpGet and tcpSocket against the pod IP from the host) every
//! periodSeconds after initialDelaySeconds, applying timeoutSeconds, successThreshold and
//! failureThreshold, and waking the pod worker when a result flips.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::runtime::Runtime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn title(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// Outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

/// Results per runtime container id, shared between the probe tasks and the pod worker.
#[derive(Clone, Debug, Default)]
pub struct Results {
    pub ready: bool,
    pub started: bool,
    /// Set when liveness (or startup) failed past its threshold: the container must be restarted.
    pub failed: Option<String>,
}

pub type Shared = Arc<Mutex<HashMap<String, Results>>>;

/// What a probe reaches.
#[derive(Clone, Debug)]
pub struct Target {
    pub container_id: String,
    pub ip: IpAddr,
}

/// Port number from a number or a container port name.
pub fn port(p: &IntOrString, c: &Container) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) if (1..=65535).contains(n) => Ok(*n as u16),
        IntOrString::Int(n) => Err(format!("invalid port number: {n}")),
        IntOrString::String(s) => match s.parse::<u16>() {
            Ok(n) => Ok(n),
            Err(_) => c
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(s.as_str()))
                .map(|cp| cp.container_port as u16)
                .ok_or_else(|| format!("couldn't find port: {s} in {}", c.name)),
        },
    }
}

/// Runs one check.
pub async fn check(runtime: &Runtime, probe: &Probe, c: &Container, t: &Target) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(e) = &probe.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return match runtime.exec_sync(&t.container_id, cmd.clone(), timeout).await {
            Ok((0, _)) => Outcome::Success,
            Ok((code, out)) => {
                let text = String::from_utf8_lossy(&out).into_owned();
                Outcome::Failure(if text.trim().is_empty() {
                    format!("command {cmd:?} exited with {code}")
                } else {
                    text.trim_end().to_string()
                })
            }
            Err(e) => Outcome::Failure(format!("command {cmd:?} failed: {e}")),
        };
    }
    check_network(probe, c, t.ip, timeout).await
}

/// The checks made over the network (httpGet, tcpSocket, grpc) against `pod_ip`.
pub async fn check_network(probe: &Probe, c: &Container, pod_ip: IpAddr, timeout: Duration) -> Outcome {
    if let Some(h) = &probe.http_get {
        let port = match port(&h.port, c) {
            Ok(p) => p,
            Err(e) => return Outcome::Failure(e),
        };
        let https = h.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
        let scheme = if https { "https" } else { "http" };
        let host = h.host.clone().filter(|s| !s.is_empty());
        let ip = match &host {
            Some(hn) => match tokio::net::lookup_host((hn.as_str(), port)).await.ok().and_then(|mut a| a.next()) {
                Some(a) => a.ip(),
                None => return Outcome::Failure(format!("cannot resolve host {hn}")),
            },
            None => pod_ip,
        };
        let path = h.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
        let headers: Vec<(String, String)> =
            h.http_headers.iter().flatten().map(|hh| (hh.name.clone(), hh.value.clone())).collect();
        let addr = SocketAddr::new(ip, port);
        let get = async {
            if https {
                https_get(addr, &path, &headers).await
            } else {
                http_get(addr, &path, &headers).await
            }
        };
        return match tokio::time::timeout(timeout, get).await {
            Ok(Ok(code)) if (200..400).contains(&code) => Outcome::Success,
            Ok(Ok(code)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
            Ok(Err(e)) => Outcome::Failure(format!("Get \"{scheme}://{addr}{path}\": {e}")),
            Err(_) => Outcome::Failure(format!(
                "Get \"{scheme}://{addr}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = match port(&tcp.port, c) {
            Ok(p) => p,
            Err(e) => return Outcome::Failure(e),
        };
        let ip = tcp.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(pod_ip);
        let addr = SocketAddr::new(ip, port);
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {e}")),
            Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(g) = &probe.grpc {
        if !(1..=65535).contains(&g.port) {
            return Outcome::Failure(format!("invalid port number: {}", g.port));
        }
        let addr = SocketAddr::new(pod_ip, g.port as u16);
        let service = g.service.clone().unwrap_or_default();
        return match tokio::time::timeout(timeout, grpc_health(addr, &service)).await {
            Ok(Ok(1)) => Outcome::Success,
            Ok(Ok(status)) => {
                let name = match status {
                    0 => "UNKNOWN",
                    2 => "NOT_SERVING",
                    3 => "SERVICE_UNKNOWN",
                    _ => "UNKNOWN",
                };
                Outcome::Failure(format!("service unhealthy (responded with \"{name}\")"))
            }
            Ok(Err(e)) => Outcome::Failure(e),
            Err(_) => Outcome::Failure(format!("timeout: health rpc did not complete within {}s", timeout.as_secs())),
        };
    }
    Outcome::Failure("probe has no handler".into())
}

/// The gRPC health-checking protocol (`grpc.health.v1.Health/Check` over h2c): the reported
/// status (1 = SERVING), or the failure as the kubelet words it.
pub async fn grpc_health(addr: SocketAddr, service: &str) -> Result<u64, String> {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("failed to connect service \"{addr}\" within timeout: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| format!("failed to connect service \"{addr}\": {e}"))?;
    tokio::spawn(conn);
    // HealthCheckRequest { string service = 1; } in a gRPC length-prefixed message.
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    let req = http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .header(http::header::USER_AGENT, "kube-probe/1.33")
        .body(http_body_util::Full::new(bytes::Bytes::from(framed)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| format!("health rpc failed: {e}"))?;
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.map_err(|e| format!("health rpc failed: {e}"))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let grpc_status = |h: &http::HeaderMap| h.get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_string);
    let status = grpc_status(&trailers).or_else(|| grpc_status(&parts.headers)).unwrap_or_else(|| "2".into());
    if status != "0" {
        let message = trailers
            .get("grpc-message")
            .or_else(|| parts.headers.get("grpc-message"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        return Err(format!("rpc error: code = {} desc = {message}", grpc_code_name(&status)));
    }
    let data = collected.to_bytes();
    // HealthCheckResponse { ServingStatus status = 1; }; an empty message is UNKNOWN (0).
    let payload = data.get(5..).unwrap_or_default();
    let mut i = 0;
    while i < payload.len() {
        let tag = payload[i];
        i += 1;
        let mut value: u64 = 0;
        let mut shift = 0;
        while i < payload.len() {
            let b = payload[i];
            i += 1;
            value |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        if tag == 0x08 {
            return Ok(value);
        }
        if tag & 7 != 0 {
            return Err("health rpc failed: malformed response".into());
        }
    }
    Ok(0)
}

fn grpc_code_name(code: &str) -> &'static str {
    match code {
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "7" => "PermissionDenied",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "16" => "Unauthenticated",
        _ => "Unknown",
    }
}

/// Accepts any server certificate: the kubelet's HTTPS probes do not verify (upstream's
/// `InsecureSkipVerify`).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An HTTPS GET without certificate verification; returns the status code.
pub async fn https_get(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> std::io::Result<u16> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await?;
    http_get_on(tls, addr, path, headers).await
}

/// A minimal HTTP/1.1 GET; returns the status code.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> std::io::Result<u16> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    http_get_on(s, addr, path, headers).await
}

async fn http_get_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("User-Agent") {
        req.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("Accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 8192 {
            break;
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response"))?;
    Ok(code)
}

/// Threshold bookkeeping of one probe.
#[derive(Debug)]
pub struct Counter {
    success_threshold: i32,
    failure_threshold: i32,
    successes: i32,
    failures: i32,
    /// Current result (None until the first threshold is met).
    pub result: Option<bool>,
}

impl Counter {
    pub fn new(p: &Probe) -> Counter {
        Counter {
            success_threshold: p.success_threshold.unwrap_or(1).max(1),
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1),
            successes: 0,
            failures: 0,
            result: None,
        }
    }

    /// Records an outcome; returns true when the result flipped.
    pub fn record(&mut self, ok: bool) -> bool {
        if ok {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.success_threshold && self.result != Some(true) {
                self.result = Some(true);
                return true;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.failure_threshold && self.result != Some(false) {
                self.result = Some(false);
                return true;
            }
        }
        false
    }
}

/// Reports an unhealthy probe (an `Unhealthy` event).
pub type Unhealthy = Arc<dyn Fn(Kind, &str) + Send + Sync>;

/// Runs a probe until aborted. `started_at` anchors initialDelaySeconds.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    kind: Kind,
    probe: Probe,
    container: Container,
    target: Target,
    runtime: Arc<Runtime>,
    results: Shared,
    wake: Arc<Notify>,
    unhealthy: Unhealthy,
    elapsed_since_start: Duration,
) {
    let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
    if delay > elapsed_since_start {
        tokio::time::sleep(delay - elapsed_since_start).await;
    }
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    let mut counter = Counter::new(&probe);
    let id = target.container_id.clone();
    loop {
        // Liveness and readiness wait for the startup probe.
        let started = results.lock().map(|r| r.get(&id).is_some_and(|x| x.started)).unwrap_or(false);
        if kind == Kind::Startup || started {
            let outcome = check(&runtime, &probe, &container, &target).await;
            let ok = outcome == Outcome::Success;
            if let Outcome::Failure(msg) = &outcome {
                unhealthy(kind, msg);
            }
            if counter.record(ok) {
                let mut stop = false;
                if let Ok(mut r) = results.lock() {
                    let e = r.entry(id.clone()).or_default();
                    match (kind, ok) {
                        (Kind::Readiness, _) => e.ready = ok,
                        (Kind::Startup, true) => {
                            e.started = true;
                            stop = true;
                        }
                        (Kind::Startup, false) | (Kind::Liveness, false) => {
                            e.failed = Some(format!(
                                "Container {} failed {} probe, will be restarted",
                                container.name,
                                kind.title().to_lowercase()
                            ));
                            stop = true;
                        }
                        (Kind::Liveness, true) => {}
                    }
                }
                wake.notify_one();
                if stop {
                    return;
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn https_probes_do_not_verify_the_certificate() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = [0u8; 1024];
                    let n = tls.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let code = if req.starts_with("GET /healthz ") { "204 No Content" } else { "503 Unavailable" };
                    let _ = tls.write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        let c = Container::default();
        let ok = probe(serde_json::json!({"httpGet": {"scheme": "HTTPS", "port": port, "path": "/healthz"}}));
        assert_eq!(check_network(&ok, &c, "127.0.0.1".parse().unwrap(), SECOND).await, Outcome::Success);
        let bad = probe(serde_json::json!({"httpGet": {"scheme": "HTTPS", "port": port, "path": "/other"}}));
        assert_eq!(
            check_network(&bad, &c, "127.0.0.1".parse().unwrap(), SECOND).await,
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );
    }

    #[tokio::test]
    async fn grpc_probes_speak_the_health_protocol() {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        // The request names the service: "" → SERVING, "db" → NOT_SERVING, else unknown.
                        let service = String::from_utf8_lossy(body.get(7..).unwrap_or_default()).into_owned();
                        let mut trailers = http::HeaderMap::new();
                        let frames: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>> =
                            if path != "/grpc.health.v1.Health/Check" || service == "other" {
                                trailers.insert("grpc-status", "5".parse().unwrap());
                                trailers.insert("grpc-message", "unknown service".parse().unwrap());
                                vec![Ok(hyper::body::Frame::trailers(trailers))]
                            } else {
                                let status = if service.is_empty() { 1u8 } else { 2 };
                                trailers.insert("grpc-status", "0".parse().unwrap());
                                vec![
                                    Ok(hyper::body::Frame::data(bytes::Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]))),
                                    Ok(hyper::body::Frame::trailers(trailers)),
                                ]
                            };
                        let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
                        let mut resp = http::Response::new(body);
                        resp.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(resp)
                    });
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        let c = Container::default();
        let ip = "127.0.0.1".parse().unwrap();
        let p = |svc: &str| probe(serde_json::json!({"grpc": {"port": port, "service": svc}}));
        assert_eq!(check_network(&p(""), &c, ip, SECOND).await, Outcome::Success);
        assert_eq!(
            check_network(&p("db"), &c, ip, SECOND).await,
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        assert_eq!(
            check_network(&p("other"), &c, ip, SECOND).await,
            Outcome::Failure("rpc error: code = NotFound desc = unknown service".into())
        );
        let closed = probe(serde_json::json!({"grpc": {"port": 1}}));
        assert!(
            matches!(check_network(&closed, &c, ip, SECOND).await, Outcome::Failure(m) if m.contains("failed to connect"))
        );
    }

    #[test]
    fn thresholds() {
        let p = Probe { success_threshold: Some(2), failure_threshold: Some(3), ..Default::default() };
        let mut c = Counter::new(&p);
        assert!(!c.record(true));
        assert!(c.record(true));
        assert_eq!(c.result, Some(true));
        assert!(!c.record(false));
        assert!(!c.record(false));
        assert!(!c.record(true), "a success resets the failures");
        assert!(!c.record(false));
        assert!(!c.record(false));
        assert!(c.record(false));
        assert_eq!(c.result, Some(false));
        assert!(!c.record(false));
    }

    #[test]
    fn named_ports() {
        let c = Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }]),
            ..Default::default()
        };
        assert_eq!(port(&IntOrString::String("http".into()), &c).unwrap(), 8080);
        assert_eq!(port(&IntOrString::Int(81), &c).unwrap(), 81);
        assert!(port(&IntOrString::String("nope".into()), &c).is_err());
        assert!(port(&IntOrString::Int(0), &c).is_err());
    }

    #[tokio::test]
    async fn http_and_tcp_checks_against_a_local_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let code = if req.starts_with("GET /ok ") && req.contains("X-Probe: 1") { 200 } else { 503 };
                let _ = s.write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
            }
        });
        let hdr = vec![("X-Probe".to_string(), "1".to_string())];
        assert_eq!(http_get(addr, "/ok", &hdr).await.unwrap(), 200);
        assert_eq!(http_get(addr, "/bad", &hdr).await.unwrap(), 503);
    }
}
