//! exec/attach (the remotecommand protocols) over WebSocket channels and over SPDY streams.

use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::spdy::{Incoming, Session, SpdyStream, StreamWriter};
use super::websocket::{self, WsOut, CLOSE_SIGNAL};
use super::{ProcessIo, RemoteCommandKind, StartFn, StreamFlags, WsProtocol};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

/// How long the client has to open its SPDY streams (upstream's default stream creation timeout).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How a session ended, reported on the error/status stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Success,
    /// The exec'd command exited non-zero.
    ExitCode {
        code: i32,
        message: String,
    },
    /// Starting or waiting failed: upstream reports an InternalError Status.
    Internal(String),
}

impl Outcome {
    fn from_exit(kind: &RemoteCommandKind, result: Result<i32, String>) -> Outcome {
        match (kind, result) {
            (_, Err(msg)) => Outcome::failed(kind, &msg),
            (RemoteCommandKind::Exec { .. }, Ok(0)) | (RemoteCommandKind::Attach, Ok(_)) => Outcome::Success,
            (RemoteCommandKind::Exec { command }, Ok(code)) => {
                let inner = if command.is_empty() {
                    format!("error executing command, exit code {code}")
                } else {
                    format!("error executing command [{}], exit code {code}", command.join(" "))
                };
                Outcome::ExitCode { code, message: format!("command terminated with non-zero exit code: {inner}") }
            }
        }
    }

    fn failed(kind: &RemoteCommandKind, msg: &str) -> Outcome {
        match kind {
            RemoteCommandKind::Exec { .. } => Outcome::Internal(format!("error executing command in container: {msg}")),
            RemoteCommandKind::Attach => Outcome::Internal(format!("error attaching to container: {msg}")),
        }
    }

    /// The metav1.Status the v4+ protocols send.
    pub(super) fn status_json(&self) -> Vec<u8> {
        let status = match self {
            Outcome::Success => json!({"metadata": {}, "status": "Success"}),
            Outcome::ExitCode { code, message } => json!({
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Outcome::Internal(err) => json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {err}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": err}]},
                "code": 500,
            }),
        };
        serde_json::to_vec(&status).expect("a JSON value serializes")
    }

    /// What the v1–v3 protocols send: the error text, nothing on success.
    fn status_text(&self) -> Option<Vec<u8>> {
        match self {
            Outcome::Success => None,
            Outcome::ExitCode { message, .. } => Some(message.clone().into_bytes()),
            Outcome::Internal(err) => Some(format!("Internal error occurred: {err}").into_bytes()),
        }
    }
}

/// Terminal size as the clients send it (`{"Width":80,"Height":24}`, back to back on a stream).
#[derive(Debug, Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width", alias = "width", default)]
    width: u16,
    #[serde(rename = "Height", alias = "height", default)]
    height: u16,
}

/// Incremental decoder of concatenated JSON resize events.
#[derive(Default)]
struct ResizeDecoder {
    buf: Vec<u8>,
    failed: bool,
}

impl ResizeDecoder {
    fn push(&mut self, data: &[u8]) -> Vec<(u16, u16)> {
        if self.failed {
            return Vec::new();
        }
        self.buf.extend_from_slice(data);
        let mut sizes = Vec::new();
        let mut iter = serde_json::Deserializer::from_slice(&self.buf).into_iter::<TerminalSize>();
        let mut consumed = 0;
        loop {
            match iter.next() {
                Some(Ok(size)) => {
                    sizes.push((size.width, size.height));
                    consumed = iter.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    // As upstream: a bad event ends resize handling for the session.
                    tracing::warn!(error = %e, "error decoding resize event");
                    self.failed = true;
                    self.buf.clear();
                    return sizes;
                }
                None => {
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        sizes
    }
}

/// Where process output goes.
enum Output {
    Ws { tx: mpsc::Sender<WsOut>, protocol: WsProtocol, channel: u8 },
    Spdy(StreamWriter),
}

impl Output {
    async fn write(&self, data: &[u8]) -> Result<(), ()> {
        match self {
            Output::Ws { tx, protocol, channel } => {
                tx.send(WsOut::Message(websocket::channel_message(*protocol, *channel, data))).await.map_err(|_| ())
            }
            Output::Spdy(w) => w.write(data).await.map_err(|_| ()),
        }
    }

    async fn close(&self) {
        if let Output::Spdy(w) = self {
            let _ = w.close().await;
        }
    }
}

/// The client-side ends of one session, transport independent.
struct Channels {
    stdin: Option<mpsc::Receiver<Incoming>>,
    resize: Option<mpsc::Receiver<Incoming>>,
    stdout: Option<Output>,
    stderr: Option<Output>,
}

/// Copies process output to the client until EOF (a read error, e.g. EIO from a pty whose
/// process is gone, counts as EOF).
async fn pump_output(reader: Option<Pin<Box<dyn AsyncRead + Send>>>, out: Option<&Output>) {
    let Some(mut reader) = reader else {
        // The runtime has no such stream (e.g. stderr with a TTY): it is at EOF from the start.
        if let Some(out) = out {
            out.close().await;
        }
        return;
    };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match out {
            Some(out) => {
                if out.write(&buf[..n]).await.is_err() {
                    return;
                }
            }
            // The client did not ask for this stream: discard so the process never blocks on it.
            None => continue,
        }
    }
    if let Some(out) = out {
        out.close().await;
    }
}

async fn pump_stdin(writer: Option<Pin<Box<dyn AsyncWrite + Send>>>, rx: Option<mpsc::Receiver<Incoming>>) {
    let Some(mut rx) = rx else {
        // No stdin requested: close the process's stdin right away.
        if let Some(mut w) = writer {
            let _ = w.shutdown().await;
        }
        return;
    };
    let mut writer = writer;
    while let Some(event) = rx.recv().await {
        match event {
            Incoming::Data(data) => {
                if let Some(w) = writer.as_mut() {
                    if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
                        // The process closed its stdin: keep draining the client's data.
                        writer = None;
                    }
                }
            }
            Incoming::Fin => break,
        }
    }
    if let Some(mut w) = writer {
        let _ = w.shutdown().await;
    }
}

async fn pump_resize(resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>, rx: Option<mpsc::Receiver<Incoming>>) {
    let Some(mut rx) = rx else { return };
    let mut decoder = ResizeDecoder::default();
    while let Some(event) = rx.recv().await {
        let Incoming::Data(data) = event else { break };
        for (width, height) in decoder.push(&data) {
            if let Some(resize) = &resize {
                resize(width, height);
            }
        }
    }
}

/// Starts the process and copies between it and the client until it exited and its output is
/// drained.
async fn run(kind: &RemoteCommandKind, start: StartFn, channels: Channels) -> Outcome {
    let process = match start().await {
        Ok(p) => p,
        Err(msg) => return Outcome::failed(kind, &msg),
    };
    let ProcessIo { stdin, stdout, stderr, resize, exit } = process;
    let Channels { stdin: stdin_rx, resize: resize_rx, stdout: out, stderr: err } = channels;
    let finished = async {
        let (_, _, result) = tokio::join!(pump_output(stdout, out.as_ref()), pump_output(stderr, err.as_ref()), exit);
        result
    };
    let background = async {
        tokio::join!(pump_stdin(stdin, stdin_rx), pump_resize(resize, resize_rx));
        std::future::pending::<()>().await
    };
    let result = tokio::select! {
        result = finished => result,
        _ = background => unreachable!("background never completes"),
    };
    Outcome::from_exit(kind, result)
}

/// exec/attach over a WebSocket channel protocol.
pub(super) async fn serve_websocket<S>(
    io: S,
    protocol: WsProtocol,
    flags: StreamFlags,
    kind: RemoteCommandKind,
    start: StartFn,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws = websocket::accept(io).await;
    let (sink, stream) = ws.split();
    let (out_tx, writer) = websocket::spawn_writer(sink);

    // As upstream: an empty message on the lowest writable channel tells the client we are ready.
    let first = if flags.stdout {
        STDOUT
    } else if flags.stderr {
        STDERR
    } else {
        ERROR
    };
    if out_tx.send(WsOut::Message(websocket::channel_message(protocol, first, &[]))).await.is_err() {
        return;
    }

    let (stdin_tx, stdin_rx) = mpsc::channel::<Incoming>(64);
    let (resize_tx, resize_rx) = mpsc::channel::<Incoming>(16);
    let reader = read_client(stream, protocol, flags, stdin_tx, resize_tx);
    let channels = Channels {
        stdin: flags.stdin.then_some(stdin_rx),
        resize: Some(resize_rx),
        stdout: flags.stdout.then(|| Output::Ws { tx: out_tx.clone(), protocol, channel: STDOUT }),
        stderr: flags.stderr.then(|| Output::Ws { tx: out_tx.clone(), protocol, channel: STDERR }),
    };
    let session = async {
        let outcome = run(&kind, start, channels).await;
        let report = if protocol.status_json() { Some(outcome.status_json()) } else { outcome.status_text() };
        if let Some(report) = report {
            let _ = out_tx.send(WsOut::Message(websocket::channel_message(protocol, ERROR, &report))).await;
        }
        let _ = out_tx.send(WsOut::Close).await;
    };
    tokio::pin!(reader);
    tokio::select! {
        _ = &mut reader => {
            // Client gone: dropping the session drops the process.
            writer.abort();
            return;
        }
        _ = session => {}
    }
    let _ = writer.await;
    // Wait (briefly) for the client to answer our close frame.
    let _ = tokio::time::timeout(websocket::CLOSE_GRACE, reader).await;
}

/// Reads client messages and dispatches them to stdin / resize until the client is gone.
async fn read_client<S>(
    mut stream: websocket::Reader<S>,
    protocol: WsProtocol,
    flags: StreamFlags,
    stdin_tx: mpsc::Sender<Incoming>,
    resize_tx: mpsc::Sender<Incoming>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stdin_tx = Some(stdin_tx);
    while let Some(msg) = stream.next().await {
        let msg = match msg {
            Ok(Message::Close(_)) | Err(_) => return,
            Ok(msg) => msg,
        };
        let Some((channel, data)) = websocket::parse_channel_message(protocol, &msg) else { continue };
        match channel {
            STDIN if flags.stdin => {
                if let Some(tx) = &stdin_tx {
                    if !data.is_empty() && tx.send(Incoming::Data(data)).await.is_err() {
                        stdin_tx = None;
                    }
                }
            }
            RESIZE => {
                let _ = resize_tx.send(Incoming::Data(data)).await;
            }
            CLOSE_SIGNAL if protocol == WsProtocol::V5Binary => {
                if data.first() == Some(&STDIN) {
                    if let Some(tx) = stdin_tx.take() {
                        let _ = tx.send(Incoming::Fin).await;
                    }
                }
            }
            other => tracing::trace!(channel = other, "message on a channel that is not readable ignored"),
        }
    }
}

/// The remotecommand sub-protocol version from the SPDY `X-Stream-Protocol-Version`.
fn spdy_version(protocol: &str) -> u8 {
    match protocol {
        "v5.channel.k8s.io" => 5,
        "v4.channel.k8s.io" => 4,
        "v3.channel.k8s.io" => 3,
        "v2.channel.k8s.io" => 2,
        _ => 1,
    }
}

/// The client's streams of one SPDY remotecommand session.
#[derive(Default)]
struct SpdyStreams {
    error: Option<SpdyStream>,
    stdin: Option<SpdyStream>,
    stdout: Option<SpdyStream>,
    stderr: Option<SpdyStream>,
    resize: Option<SpdyStream>,
}

/// exec/attach over SPDY/3.1.
pub(super) async fn serve_spdy<S>(io: S, protocol: &str, flags: StreamFlags, kind: RemoteCommandKind, start: StartFn)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let version = spdy_version(protocol);
    // Upstream accepts every stream here and sorts them by `streamType` afterwards.
    let mut session = Session::start(io, |_| Ok(()));
    let closed = session.closed();
    tokio::pin!(closed);

    let expected = 1
        + usize::from(flags.stdin)
        + usize::from(flags.stdout)
        + usize::from(flags.stderr)
        + usize::from(flags.tty && version >= 3);
    let mut streams = SpdyStreams::default();
    let mut received = 0;
    let deadline = tokio::time::sleep(STREAM_CREATION_TIMEOUT);
    tokio::pin!(deadline);
    while received < expected {
        let stream = tokio::select! {
            s = session.streams.recv() => match s {
                Some(s) => s,
                None => return,
            },
            _ = &mut closed => return,
            _ = &mut deadline => {
                tracing::warn!("timed out waiting for client to create streams");
                return;
            }
        };
        let slot = match stream.header("streamType") {
            Some("error") => &mut streams.error,
            Some("stdin") => &mut streams.stdin,
            Some("stdout") => &mut streams.stdout,
            Some("stderr") => &mut streams.stderr,
            Some("resize") => &mut streams.resize,
            other => {
                tracing::warn!(stream_type = ?other, "unexpected stream type");
                continue;
            }
        };
        *slot = Some(stream);
        received += 1;
    }

    let SpdyStreams { error, stdin, stdout, stderr, resize } = streams;
    let channels = Channels {
        stdin: stdin.map(|s| s.incoming),
        resize: resize.map(|s| s.incoming),
        stdout: stdout.map(|s| Output::Spdy(s.writer)),
        stderr: stderr.map(|s| Output::Spdy(s.writer)),
    };
    let error_writer = error.map(|s| s.writer);
    let mut extra_streams = std::mem::replace(&mut session.streams, mpsc::channel(1).1);
    let session_fut = run(&kind, start, channels);
    let outcome = tokio::select! {
        outcome = session_fut => outcome,
        _ = &mut closed => return,
        // Streams opened after the expected ones are answered and dropped.
        _ = async { while extra_streams.recv().await.is_some() {} std::future::pending::<()>().await } => unreachable!(),
    };
    if let Some(error) = error_writer {
        let report = if version >= 4 { Some(outcome.status_json()) } else { outcome.status_text() };
        if let Some(report) = report {
            let _ = error.write(&report).await;
        }
        let _ = error.close().await;
    }
    drop(extra_streams);
    session.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_documents_match_upstream() {
        let exec = RemoteCommandKind::Exec { command: vec!["sh".into(), "-c".into(), "exit 3".into()] };
        assert_eq!(Outcome::from_exit(&exec, Ok(0)).status_json(), br#"{"metadata":{},"status":"Success"}"#);
        let failed: serde_json::Value =
            serde_json::from_slice(&Outcome::from_exit(&exec, Ok(3)).status_json()).unwrap();
        assert_eq!(
            failed,
            json!({
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            })
        );
        assert_eq!(Outcome::from_exit(&RemoteCommandKind::Attach, Ok(3)), Outcome::Success);
        let internal: serde_json::Value =
            serde_json::from_slice(&Outcome::from_exit(&exec, Err("no such file".into())).status_json()).unwrap();
        assert_eq!(internal["message"], "Internal error occurred: error executing command in container: no such file");
        assert_eq!(internal["reason"], "InternalError");
        assert_eq!(internal["code"], 500);
        assert_eq!(Outcome::Success.status_text(), None);
    }

    #[test]
    fn resize_events_back_to_back_and_split() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.push(br#"{"Width":80,"Height":24}{"Width":100,"#), vec![(80, 24)]);
        assert_eq!(d.push(b"\"Height\":40}\n"), vec![(100, 40)]);
        assert_eq!(d.push(br#" {"width":1,"height":2}"#), vec![(1, 2)]);
        assert_eq!(d.push(b"]garbage"), vec![]);
        assert_eq!(d.push(br#"{"Width":5,"Height":5}"#), vec![]);
    }
}
