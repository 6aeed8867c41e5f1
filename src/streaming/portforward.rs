//! port-forward over SPDY (`portforward.k8s.io`, also tunnelled in WebSocket) and over the
//! WebSocket channel protocol (`v4.channel.k8s.io`: per port index i, channel 2i data and 2i+1
//! error).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::spdy::{self, Headers, Incoming, Session, SpdyStream, StreamWriter};
use super::websocket::{self, WsOut};
use super::{DialFn, PodRef, StreamError, WsProtocol};

/// How long the second stream of a pair may take to arrive (upstream's stream creation timeout).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Parses the values of the `ports` query parameter (each may hold a comma-separated list) as
/// upstream does for the WebSocket port-forward protocol.
pub fn parse_ports(values: &[&str]) -> Result<Vec<u16>, StreamError> {
    if values.is_empty() {
        return Err(StreamError::BadRequest("query parameter \"ports\" is required".into()));
    }
    let mut ports = Vec::new();
    for value in values {
        if value.is_empty() {
            return Err(StreamError::BadRequest("query parameter \"ports\" cannot be empty".into()));
        }
        for p in value.split(',') {
            let port: u16 = p.trim().parse().map_err(|e: std::num::ParseIntError| {
                StreamError::BadRequest(format!("unable to parse \"{value}\" as a port: {e}"))
            })?;
            if port < 1 {
                return Err(StreamError::BadRequest(format!("port \"{value}\" must be > 0")));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

/// The message upstream writes to the error stream when forwarding fails.
fn forward_error(port: u16, pod: &PodRef, err: &dyn std::fmt::Display) -> String {
    if pod.name.is_empty() && pod.uid.is_empty() {
        format!("error forwarding port {port}: {err}")
    } else {
        format!("error forwarding port {port} to pod {}, uid {}: {err}", pod.name, pod.uid)
    }
}

/// Accepts a port-forward SPDY stream only with valid `port` and `streamType` headers (upstream
/// resets the others).
fn accept_stream(headers: &Headers) -> Result<(), String> {
    let port = spdy::header(headers, "port").unwrap_or("");
    if port.is_empty() {
        return Err("\"port\" header is required".into());
    }
    let value: u16 = port.parse().map_err(|e| format!("unable to parse \"{port}\" as a port: {e}"))?;
    if value < 1 {
        return Err(format!("port \"{port}\" must be > 0"));
    }
    match spdy::header(headers, "streamType").unwrap_or("") {
        "" => Err("\"streamType\" header is required".into()),
        "error" | "data" => Ok(()),
        other => Err(format!("invalid stream type \"{other}\"")),
    }
}

/// The pairing key of a stream: its `requestID`, or for old clients without one, derived from the
/// stream id as upstream does (error stream id, data stream id − 2).
fn request_id(stream: &SpdyStream) -> String {
    match stream.header("requestID") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => match stream.header("streamType") {
            Some("data") => stream.id.saturating_sub(2).to_string(),
            _ => stream.id.to_string(),
        },
    }
}

#[derive(Default)]
struct PendingPair {
    error: Option<SpdyStream>,
    data: Option<SpdyStream>,
}

/// port-forward over a SPDY connection: any number of (error, data) stream pairs, each forwarded
/// to its own TCP connection; a failed pair reports on its error stream and leaves the others.
pub(super) async fn serve_spdy<S>(io: S, dial: DialFn, pod: PodRef)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session = Session::start(io, accept_stream);
    let closed = session.closed();
    tokio::pin!(closed);
    let mut pending: HashMap<String, PendingPair> = HashMap::new();
    let mut timers: JoinSet<String> = JoinSet::new();
    let mut pairs: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            stream = session.streams.recv() => {
                let Some(stream) = stream else { break };
                let id = request_id(&stream);
                let pair = pending.entry(id.clone()).or_insert_with(|| {
                    let id = id.clone();
                    timers.spawn(async move {
                        tokio::time::sleep(STREAM_CREATION_TIMEOUT).await;
                        id
                    });
                    PendingPair::default()
                });
                let is_error = stream.header("streamType") == Some("error");
                let slot = if is_error { &mut pair.error } else { &mut pair.data };
                if slot.is_some() {
                    let kind = if is_error { "error" } else { "data" };
                    let msg = format!("error processing stream for request {id}: {kind} stream already assigned");
                    tracing::warn!("{msg}");
                    if let Some(error) = &pair.error {
                        let _ = error.writer.write(msg.as_bytes()).await;
                    }
                    continue;
                }
                *slot = Some(stream);
                if pair.error.is_some() && pair.data.is_some() {
                    let pair = pending.remove(&id).expect("pair present");
                    let (Some(error), Some(data)) = (pair.error, pair.data) else { unreachable!() };
                    pairs.spawn(forward_spdy_pair(error, data, dial.clone(), pod.clone()));
                }
            }
            Some(Ok(id)) = timers.join_next(), if !timers.is_empty() => {
                if let Some(pair) = pending.remove(&id) {
                    let msg = format!("(request={id}) timed out waiting for streams");
                    tracing::warn!("{msg}");
                    for stream in [pair.error, pair.data].into_iter().flatten() {
                        if stream.header("streamType") == Some("error") {
                            let _ = stream.writer.write(msg.as_bytes()).await;
                        }
                        let _ = stream.writer.close().await;
                    }
                }
            }
            Some(_) = pairs.join_next(), if !pairs.is_empty() => {}
            _ = &mut closed => break,
        }
    }
    // The client is gone (or said GOAWAY): stop every forward.
    pairs.abort_all();
    drop(pending);
    session.shutdown().await;
}

/// Forwards one (error, data) pair: dial, then copy both ways with half-close. When the target
/// closes its side, the data and error streams get FIN (the client then ends the pair); when the
/// client half-closes the data stream, the target's write side is shut down.
async fn forward_spdy_pair(error: SpdyStream, data: SpdyStream, dial: DialFn, pod: PodRef) {
    let port: u16 = data.header("port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let error_writer = error.writer.clone();
    let mut reset = data.reset.clone();
    let SpdyStream { incoming, writer: data_writer, .. } = data;
    // Nothing is read from the error stream; dropping its receiver discards what the client sends.
    drop(error.incoming);
    let forward = async {
        let tcp = match dial(port).await {
            Ok(tcp) => tcp,
            Err(e) => {
                let msg = forward_error(port, &pod, &e);
                tracing::debug!("{msg}");
                let _ = error_writer.write(msg.as_bytes()).await;
                let _ = error_writer.close().await;
                let _ = data_writer.close().await;
                return;
            }
        };
        let (rd, wr) = tcp.into_split();
        tokio::join!(client_to_target(incoming, wr), target_to_client(rd, &data_writer, &error_writer, port, &pod));
    };
    tokio::select! {
        _ = forward => {}
        _ = spdy::wait_reset(&mut reset) => {}
    }
}

async fn client_to_target(mut incoming: mpsc::Receiver<Incoming>, mut wr: tokio::net::tcp::OwnedWriteHalf) {
    while let Some(event) = incoming.recv().await {
        match event {
            Incoming::Data(data) => {
                if wr.write_all(&data).await.is_err() {
                    // The target stopped reading: drop what the client still sends.
                    return;
                }
            }
            Incoming::Fin => break,
        }
    }
    let _ = wr.shutdown().await;
}

async fn target_to_client(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    data: &StreamWriter,
    error: &StreamWriter,
    port: u16,
    pod: &PodRef,
) {
    let mut buf = vec![0u8; 32 * 1024];
    let result = loop {
        match rd.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if data.write(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(e) => break Err(e),
        }
    };
    let _ = data.close().await;
    if let Err(e) = result {
        let _ = error.write(forward_error(port, pod, &e).as_bytes()).await;
    }
    let _ = error.close().await;
}

/// port-forward over the WebSocket channel protocol: one TCP connection per requested port.
pub(super) async fn serve_websocket<S>(io: S, protocol: WsProtocol, ports: Vec<u16>, dial: DialFn, pod: PodRef)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws = websocket::accept(io).await;
    let (sink, mut stream) = ws.split();
    let (out_tx, writer) = websocket::spawn_writer(sink);
    // Each channel starts with the port number (u16 little endian), as upstream.
    for (i, port) in ports.iter().enumerate() {
        for channel in [2 * i, 2 * i + 1] {
            let msg = websocket::channel_message(protocol, channel as u8, &port.to_le_bytes());
            if out_tx.send(WsOut::Message(msg)).await.is_err() {
                return;
            }
        }
    }
    let mut inputs = Vec::with_capacity(ports.len());
    let mut forwards = JoinSet::new();
    for (i, port) in ports.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        inputs.push(Some(tx));
        forwards.spawn(forward_ws_port(i, *port, rx, out_tx.clone(), protocol, dial.clone(), pod.clone()));
    }
    let reader = async {
        while let Some(msg) = stream.next().await {
            let msg = match msg {
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(msg) => msg,
            };
            let Some((channel, data)) = websocket::parse_channel_message(protocol, &msg) else { continue };
            let index = usize::from(channel / 2);
            if channel % 2 != 0 || data.is_empty() {
                continue;
            }
            if let Some(slot) = inputs.get_mut(index) {
                if let Some(tx) = slot {
                    if tx.send(data).await.is_err() {
                        *slot = None;
                    }
                }
            }
        }
    };
    tokio::pin!(reader);
    let all_done = async { while forwards.join_next().await.is_some() {} };
    tokio::select! {
        _ = &mut reader => {
            writer.abort();
            return;
        }
        _ = all_done => {}
    }
    let _ = out_tx.send(WsOut::Close).await;
    drop(out_tx);
    let _ = writer.await;
    let _ = tokio::time::timeout(websocket::CLOSE_GRACE, reader).await;
}

async fn forward_ws_port(
    index: usize,
    port: u16,
    mut input: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<WsOut>,
    protocol: WsProtocol,
    dial: DialFn,
    pod: PodRef,
) {
    let data_channel = (2 * index) as u8;
    let error_channel = data_channel + 1;
    let send = |channel: u8, data: &[u8]| {
        let msg = WsOut::Message(websocket::channel_message(protocol, channel, data));
        let out = out.clone();
        async move { out.send(msg).await.is_ok() }
    };
    let tcp = match dial(port).await {
        Ok(tcp) => tcp,
        Err(e) => {
            send(error_channel, forward_error(port, &pod, &e).as_bytes()).await;
            return;
        }
    };
    let (mut rd, mut wr) = tcp.into_split();
    let to_target = async {
        while let Some(data) = input.recv().await {
            if wr.write_all(&data).await.is_err() {
                break;
            }
        }
        // No half-close in this protocol: the pair ends when the target closes.
        std::future::pending::<()>().await
    };
    let to_client = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    if !send(data_channel, &buf[..n]).await {
                        return;
                    }
                }
                Err(e) => {
                    send(error_channel, forward_error(port, &pod, &e).as_bytes()).await;
                    return;
                }
            }
        }
    };
    tokio::select! {
        _ = to_target => {}
        _ = to_client => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parsing() {
        assert_eq!(parse_ports(&["80", "8080,9090"]).unwrap(), vec![80, 8080, 9090]);
        assert_eq!(parse_ports(&[]).unwrap_err().to_string(), "query parameter \"ports\" is required");
        assert!(parse_ports(&["0"]).unwrap_err().to_string().contains("must be > 0"));
        assert!(parse_ports(&["http"]).unwrap_err().to_string().starts_with("unable to parse \"http\" as a port"));
        assert!(parse_ports(&["70000"]).is_err());
    }

    #[test]
    fn stream_validation_as_upstream() {
        let h =
            |pairs: &[(&str, &str)]| -> Headers { pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect() };
        assert!(accept_stream(&h(&[("port", "80"), ("streamtype", "data")])).is_ok());
        assert_eq!(accept_stream(&h(&[("streamtype", "data")])).unwrap_err(), "\"port\" header is required");
        assert_eq!(accept_stream(&h(&[("port", "0"), ("streamtype", "data")])).unwrap_err(), "port \"0\" must be > 0");
        assert_eq!(accept_stream(&h(&[("port", "80")])).unwrap_err(), "\"streamType\" header is required");
        assert_eq!(
            accept_stream(&h(&[("port", "80"), ("streamtype", "stdin")])).unwrap_err(),
            "invalid stream type \"stdin\""
        );
    }
}
