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
    if let Some(h) = &probe.http_get {
        let port = match port(&h.port, c) {
            Ok(p) => p,
            Err(e) => return Outcome::Failure(e),
        };
        if h.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS")) {
            return Outcome::Failure("HTTPS probes are not supported by this node".into());
        }
        let host = h.host.clone().filter(|s| !s.is_empty());
        let ip = match &host {
            Some(hn) => match tokio::net::lookup_host((hn.as_str(), port)).await.ok().and_then(|mut a| a.next()) {
                Some(a) => a.ip(),
                None => return Outcome::Failure(format!("cannot resolve host {hn}")),
            },
            None => t.ip,
        };
        let path = h.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
        let headers: Vec<(String, String)> =
            h.http_headers.iter().flatten().map(|hh| (hh.name.clone(), hh.value.clone())).collect();
        return match tokio::time::timeout(timeout, http_get(SocketAddr::new(ip, port), &path, &headers)).await {
            Ok(Ok(code)) if (200..400).contains(&code) => Outcome::Success,
            Ok(Ok(code)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
            Ok(Err(e)) => Outcome::Failure(format!("Get \"http://{}{path}\": {e}", SocketAddr::new(ip, port))),
            Err(_) => Outcome::Failure(format!(
                "Get \"http://{}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                SocketAddr::new(ip, port)
            )),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = match port(&tcp.port, c) {
            Ok(p) => p,
            Err(e) => return Outcome::Failure(e),
        };
        let ip = tcp.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(t.ip);
        let addr = SocketAddr::new(ip, port);
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {e}")),
            Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if probe.grpc.is_some() {
        return Outcome::Failure("gRPC probes are not supported by this node".into());
    }
    Outcome::Failure("probe has no handler".into())
}

/// A minimal HTTP/1.1 GET; returns the status code.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> std::io::Result<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
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
