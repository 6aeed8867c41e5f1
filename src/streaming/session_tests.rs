//! End-to-end tests of the streaming sessions over real TCP on 127.0.0.1: a hyper HTTP/1.1 server
//! negotiates and upgrades exactly as production does; clients are tokio-tungstenite and a SPDY
//! client built from our codec. Processes are real (`sh -c`), targets are real TCP servers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming as Body;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::spdy::client::Client;
use super::spdy::{Frame, FLAG_FIN};
use super::*;

/// Generous bound so a broken implementation fails instead of hanging; not a performance check.
const LIVENESS: Duration = Duration::from_secs(30);

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIVENESS, fut).await.expect("no progress within the liveness bound")
}

type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// An HTTP server that negotiates every request for `kind` and runs `handler` on the upgraded
/// connection with the request's query string.
async fn upgrade_server<F, Fut>(kind: Kind, handler: F) -> SocketAddr
where
    F: Fn(Upgraded, Negotiated, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: http::Request<Body>| {
                    let handler = handler.clone();
                    async move {
                        let resp = match negotiate(req.method(), req.headers(), kind) {
                            Ok((resp, neg)) => {
                                let query = req.uri().query().unwrap_or("").to_string();
                                tokio::spawn(async move {
                                    if let Ok(up) = hyper::upgrade::on(&mut req).await {
                                        handler(TokioIo::new(up), neg, query).await;
                                    }
                                });
                                resp.map(|_| Full::new(Bytes::new()))
                            }
                            Err(e) => http::Response::builder()
                                .status(e.status_code())
                                .body(Full::new(Bytes::from(e.to_string())))
                                .unwrap(),
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).with_upgrades().await;
            });
        }
    });
    addr
}

/// A `start` running `sh -c script` with piped stdio; resize events go to `resizes`.
fn sh_start(script: &str, resizes: Option<mpsc::UnboundedSender<(u16, u16)>>) -> StartFn {
    let script = script.to_string();
    Box::new(move || {
        async move {
            let mut child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| e.to_string())?;
            let stdin = child.stdin.take().map(|s| Box::pin(s) as _);
            let stdout = child.stdout.take().map(|s| Box::pin(s) as _);
            let stderr = child.stderr.take().map(|s| Box::pin(s) as _);
            let resize = resizes.map(|tx| {
                Box::new(move |w: u16, h: u16| {
                    let _ = tx.send((w, h));
                }) as Box<dyn Fn(u16, u16) + Send + Sync>
            });
            let exit = async move {
                let status = child.wait().await.map_err(|e| e.to_string())?;
                Ok(status.code().unwrap_or(128))
            }
            .boxed();
            Ok(ProcessIo { stdin, stdout, stderr, resize, exit })
        }
        .boxed()
    })
}

fn exec_kind(script: &str) -> RemoteCommandKind {
    RemoteCommandKind::Exec { command: vec!["sh".into(), "-c".into(), script.into()] }
}

fn flags_from_query(query: &str) -> StreamFlags {
    let has = |k: &str| query.split('&').any(|p| p == format!("{k}=true") || p == format!("{k}=1"));
    StreamFlags { stdin: has("stdin"), stdout: has("stdout"), stderr: has("stderr"), tty: has("tty") }
}

async fn exec_server(script: &'static str, resizes: Option<mpsc::UnboundedSender<(u16, u16)>>) -> SocketAddr {
    upgrade_server(Kind::RemoteCommand, move |io, neg, query| {
        let resizes = resizes.clone();
        async move {
            serve_remote_command_with(io, neg, flags_from_query(&query), exec_kind(script), sh_start(script, resizes))
                .await
        }
    })
    .await
}

type WsClient = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn ws_connect(addr: SocketAddr, path: &str, protocol: &str) -> (WsClient, http::Response<Option<Vec<u8>>>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    tokio_tungstenite::client_async(req, tcp).await.unwrap()
}

/// Collects channel messages until the server closes; returns per-channel bytes, in order.
async fn ws_collect(ws: &mut WsClient) -> Vec<(u8, Vec<u8>)> {
    let mut got = Vec::new();
    while let Some(msg) = within(ws.next()).await {
        match msg.unwrap() {
            Message::Binary(b) => got.push((b[0], b[1..].to_vec())),
            Message::Close(_) => break,
            _ => {}
        }
    }
    got
}

fn channel_bytes(got: &[(u8, Vec<u8>)], channel: u8) -> Vec<u8> {
    got.iter().filter(|(c, _)| *c == channel).flat_map(|(_, d)| d.clone()).collect()
}

/// Reads binary messages until `channel` has produced `want` bytes in total; every message read
/// is appended to `got`.
async fn ws_read_until(ws: &mut WsClient, got: &mut Vec<(u8, Vec<u8>)>, channel: u8, want: &str) {
    let mut buf = Vec::new();
    while buf.len() < want.len() {
        if let Message::Binary(b) = within(ws.next()).await.unwrap().unwrap() {
            if b[0] == channel {
                buf.extend_from_slice(&b[1..]);
            }
            got.push((b[0], b[1..].to_vec()));
        }
    }
    assert_eq!(String::from_utf8_lossy(&buf), want);
}

fn status(got: &[(u8, Vec<u8>)]) -> serde_json::Value {
    serde_json::from_slice(&channel_bytes(got, 3)).expect("status JSON on channel 3")
}

#[tokio::test]
async fn websocket_v5_exec_stdin_stderr_resize_close_and_exit_code() {
    let (resize_tx, mut resize_rx) = mpsc::unbounded_channel();
    let script = "read a; echo \"got $a\"; echo oops >&2; cat; exit 3";
    let addr = exec_server(script, Some(resize_tx)).await;
    let (mut ws, resp) =
        ws_connect(addr, "/exec?command=sh&stdin=true&stdout=true&stderr=true", "v5.channel.k8s.io").await;
    assert_eq!(resp.headers()["sec-websocket-protocol"], "v5.channel.k8s.io");

    // The server's first message: empty, on stdout.
    assert_eq!(within(ws.next()).await.unwrap().unwrap(), Message::binary(vec![1u8]));
    ws.send(Message::binary(b"\x00hello\n".to_vec())).await.unwrap();
    let mut got = Vec::new();
    ws_read_until(&mut ws, &mut got, 1, "got hello\n").await;
    ws.send(Message::binary([&[4u8][..], br#"{"Width":100,"Height":30}"#].concat())).await.unwrap();
    assert_eq!(within(resize_rx.recv()).await, Some((100, 30)));
    ws.send(Message::binary(b"\x00tail\n".to_vec())).await.unwrap();
    ws_read_until(&mut ws, &mut got, 1, "tail\n").await;
    // v5 close signal: stdin EOF → `cat` ends → exit 3.
    ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
    got.extend(ws_collect(&mut ws).await);
    assert_eq!(channel_bytes(&got, 2), b"oops\n");
    let status = status(&got);
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0], serde_json::json!({"reason": "ExitCode", "message": "3"}));
    assert_eq!(
        status["message"],
        "command terminated with non-zero exit code: error executing command [sh -c read a; echo \"got $a\"; echo oops \
         >&2; cat; exit 3], exit code 3"
    );
    // The status is the last data message.
    assert_eq!(got.last().unwrap().0, 3);
}

#[tokio::test]
async fn websocket_v4_exec_text_messages_and_success() {
    let addr = exec_server("read a; echo \"[$a]\"", None).await;
    let (mut ws, _) = ws_connect(addr, "/exec?stdin=true&stdout=true&stderr=true", "v4.channel.k8s.io").await;
    // The Python client sends text messages: "\x00" + data.
    ws.send(Message::text("\u{0}py\n")).await.unwrap();
    let got = ws_collect(&mut ws).await;
    assert_eq!(channel_bytes(&got, 1), b"[py]\n");
    assert_eq!(status(&got), serde_json::json!({"metadata": {}, "status": "Success"}));
}

#[tokio::test]
async fn websocket_base64_and_v1_protocols() {
    let addr = exec_server("echo hi; exit 2", None).await;
    let (mut ws, _) = ws_connect(addr, "/exec?stdout=true", "v4.base64.channel.k8s.io").await;
    let mut texts = Vec::new();
    while let Some(msg) = within(ws.next()).await {
        match msg.unwrap() {
            Message::Text(t) => texts.push(t.to_string()),
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(texts[0], "1");
    assert!(texts.contains(&"1aGkK".to_string()), "{texts:?}");
    assert!(texts.last().unwrap().starts_with('3'));

    // v1 (channel.k8s.io): plain error text, only on failure.
    let (mut ws, _) = ws_connect(addr, "/exec?stdout=true", "channel.k8s.io").await;
    let got = ws_collect(&mut ws).await;
    assert_eq!(channel_bytes(&got, 1), b"hi\n");
    assert!(String::from_utf8_lossy(&channel_bytes(&got, 3)).contains("exit code 2"));
}

#[tokio::test]
async fn websocket_start_failure_is_an_internal_error_status() {
    let addr = upgrade_server(Kind::RemoteCommand, |io, neg, _| async move {
        let start: StartFn = Box::new(|| async { Err::<ProcessIo, _>("container not found".to_string()) }.boxed());
        serve_remote_command(io, neg, StreamFlags { stdout: true, ..Default::default() }, start).await
    })
    .await;
    let (mut ws, _) = ws_connect(addr, "/exec", "v5.channel.k8s.io").await;
    let got = ws_collect(&mut ws).await;
    let status = status(&got);
    assert_eq!(status["reason"], "InternalError");
    assert_eq!(status["message"], "Internal error occurred: error executing command in container: container not found");
}

#[tokio::test]
async fn websocket_client_gone_drops_the_process() {
    let (tx, mut dropped) = mpsc::unbounded_channel::<()>();
    struct Guard(mpsc::UnboundedSender<()>);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let addr = upgrade_server(Kind::RemoteCommand, move |io, neg, _| {
        let tx = tx.clone();
        async move {
            let start: StartFn = Box::new(move || {
                async move {
                    let guard = Guard(tx);
                    let exit = async move {
                        let _guard = guard;
                        std::future::pending::<Result<i32, String>>().await
                    }
                    .boxed();
                    Ok(ProcessIo { stdin: None, stdout: None, stderr: None, resize: None, exit })
                }
                .boxed()
            });
            serve_remote_command(io, neg, StreamFlags { stdout: true, ..Default::default() }, start).await
        }
    })
    .await;
    let (mut ws, _) = ws_connect(addr, "/exec", "v5.channel.k8s.io").await;
    assert_eq!(within(ws.next()).await.unwrap().unwrap(), Message::binary(vec![1u8]));
    drop(ws);
    assert_eq!(within(dropped.recv()).await, Some(()));
}

#[tokio::test]
async fn websocket_rejected_protocol_is_a_400() {
    let addr = exec_server("true", None).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("ws://{addr}/exec").into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "v9.channel.k8s.io".parse().unwrap());
    match tokio_tungstenite::client_async(req, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("expected a 400, got {other:?}"),
    }
}

/// Sends a SPDY upgrade request on a new connection; returns the connection after the 101.
async fn spdy_connect(addr: SocketAddr, path: &str, protocols: &[&str]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n");
    for p in protocols {
        req.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(within(tcp.read(&mut b)).await.unwrap(), 1, "connection closed during handshake");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: spdy/3.1"), "{head}");
    tcp
}

/// Per-stream data and FIN state seen by a SPDY test client.
#[derive(Default)]
struct Seen {
    data: std::collections::HashMap<u32, Vec<u8>>,
    fin: std::collections::HashSet<u32>,
    replies: std::collections::HashSet<u32>,
    resets: std::collections::HashSet<u32>,
    pings: Vec<u32>,
    goaway: bool,
}

impl Seen {
    fn record(&mut self, frame: Frame) {
        match frame {
            Frame::Data { stream_id, flags, data } => {
                self.data.entry(stream_id).or_default().extend_from_slice(&data);
                if flags & FLAG_FIN != 0 {
                    self.fin.insert(stream_id);
                }
            }
            Frame::SynReply { stream_id, .. } => {
                self.replies.insert(stream_id);
            }
            Frame::RstStream { stream_id, .. } => {
                self.resets.insert(stream_id);
            }
            Frame::Ping { id } => self.pings.push(id),
            Frame::GoAway { .. } => self.goaway = true,
            _ => {}
        }
    }

    fn text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.data.get(&id).map(|d| &d[..]).unwrap_or(b"")).into_owned()
    }
}

async fn spdy_until<S>(client: &mut Client<S>, seen: &mut Seen, done: impl Fn(&Seen) -> bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while !done(seen) {
        let frame = within(client.next()).await.expect("connection closed early");
        seen.record(frame);
    }
}

#[tokio::test]
async fn spdy_v4_exec_streams_stdin_fin_ping_and_status() {
    let addr = exec_server("read a; echo \"got $a\"; echo oops >&2; cat; exit 3", None).await;
    let tcp = spdy_connect(
        addr,
        "/exec?stdin=true&stdout=true&stderr=true",
        &["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"],
    )
    .await;
    let mut client = Client::new(tcp);
    let error = client.open(&[("streamType", "error")]).await;
    let stdin = client.open(&[("streamType", "stdin")]).await;
    let stdout = client.open(&[("streamType", "stdout")]).await;
    let stderr = client.open(&[("streamType", "stderr")]).await;
    let mut seen = Seen::default();
    spdy_until(&mut client, &mut seen, |s| s.replies.len() == 4).await;
    // A stream opened after the expected ones is answered and ignored; stdin keeps working.
    let extra = client.open(&[("streamType", "bogus")]).await;
    spdy_until(&mut client, &mut seen, |s| s.replies.contains(&extra)).await;
    client.send(Frame::Ping { id: 1 }).await;
    client.data(stdin, b"hello\n", false).await;
    spdy_until(&mut client, &mut seen, |s| s.text(stdout) == "got hello\n" && s.pings == [1]).await;
    client.data(stdin, b"more\n", true).await;
    spdy_until(&mut client, &mut seen, |s| s.fin.contains(&error)).await;
    assert_eq!(seen.text(stdout), "got hello\nmore\n");
    assert_eq!(seen.text(stderr), "oops\n");
    assert!(seen.fin.contains(&stdout) && seen.fin.contains(&stderr));
    let status: serde_json::Value = serde_json::from_slice(seen.data.get(&error).unwrap()).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    // Then GOAWAY and the connection closes.
    while let Some(frame) = within(client.next()).await {
        seen.record(frame);
    }
    assert!(seen.goaway);
}

#[tokio::test]
async fn spdy_v5_exec_with_tty_waits_for_resize_stream() {
    let (resize_tx, mut resize_rx) = mpsc::unbounded_channel();
    let addr = exec_server("read a; echo \"ok $a\"", Some(resize_tx)).await;
    let tcp = spdy_connect(addr, "/exec?stdin=true&stdout=true&tty=true&stderr=true", &["v5.channel.k8s.io"]).await;
    let mut client = Client::new(tcp);
    let error = client.open(&[("streamType", "error")]).await;
    let stdin = client.open(&[("streamType", "stdin")]).await;
    let stdout = client.open(&[("streamType", "stdout")]).await;
    let mut seen = Seen::default();
    spdy_until(&mut client, &mut seen, |s| s.replies.len() == 3).await;
    client.data(stdin, b"go\n", false).await;
    // With a TTY the session starts only once the resize stream exists (stderr is not expected).
    let resize = client.open(&[("streamType", "resize")]).await;
    client.data(resize, br#"{"Width":120,"Height":40}"#, false).await;
    assert_eq!(within(resize_rx.recv()).await, Some((120, 40)));
    spdy_until(&mut client, &mut seen, |s| s.fin.contains(&error)).await;
    assert_eq!(seen.text(stdout), "ok go\n");
    assert_eq!(seen.text(error), r#"{"metadata":{},"status":"Success"}"#);
}

/// A TCP echo server that honours half-close: echoes until EOF, then closes its side.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let (mut rd, mut wr) = tcp.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
                let _ = wr.shutdown().await;
            });
        }
    });
    port
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Dials 127.0.0.1:<port> (the test's stand-in for the pod network namespace).
fn local_dial() -> DialFn {
    Arc::new(|port| TcpStream::connect(("127.0.0.1", port)).boxed())
}

async fn port_forward_server() -> SocketAddr {
    upgrade_server(Kind::PortForward, |io, neg, query| async move {
        let values: Vec<&str> = query.split('&').filter_map(|kv| kv.strip_prefix("ports=")).collect::<Vec<_>>();
        let ports = if values.is_empty() { Vec::new() } else { parse_ports(&values).unwrap() };
        let pod = PodRef { name: "web".into(), uid: "u-1".into() };
        serve_port_forward_with(io, neg, ports, local_dial(), pod).await
    })
    .await
}

/// Runs the kubectl side of port-forward on `client`: `n` parallel pairs to `port` each sending a
/// distinct payload with FIN, then one pair to `dead` (refused), then one more good pair.
async fn port_forward_session<S>(mut client: Client<S>, port: u16, dead: u16, n: usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let port_s = port.to_string();
    let mut pairs = Vec::new();
    for i in 0..n {
        let rid = i.to_string();
        let error = client.open(&[("streamType", "error"), ("port", &port_s), ("requestID", &rid)]).await;
        let data = client.open(&[("streamType", "data"), ("port", &port_s), ("requestID", &rid)]).await;
        pairs.push((error, data, format!("payload {i} ").repeat(1 + i * 500)));
    }
    for (_, data, payload) in &pairs {
        client.data(*data, payload.as_bytes(), true).await;
    }
    let mut seen = Seen::default();
    spdy_until(&mut client, &mut seen, |s| pairs.iter().all(|(e, d, _)| s.fin.contains(e) && s.fin.contains(d))).await;
    for (error, data, payload) in &pairs {
        assert_eq!(seen.text(*data), *payload);
        assert_eq!(seen.text(*error), "");
    }

    // A refused connection: error text on that pair's error stream, both streams closed.
    let dead_s = dead.to_string();
    let e = client.open(&[("streamType", "error"), ("port", &dead_s), ("requestID", "dead")]).await;
    let d = client.open(&[("streamType", "data"), ("port", &dead_s), ("requestID", "dead")]).await;
    spdy_until(&mut client, &mut seen, |s| s.fin.contains(&e) && s.fin.contains(&d)).await;
    let msg = seen.text(e);
    assert!(msg.starts_with(&format!("error forwarding port {dead} to pod web, uid u-1: ")), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");

    // An invalid stream is reset, the session goes on.
    let bad = client.open(&[("streamType", "data"), ("port", "0"), ("requestID", "bad")]).await;
    spdy_until(&mut client, &mut seen, |s| s.resets.contains(&bad)).await;

    // The session still works; the client half-closes first and still gets the whole echo.
    let e = client.open(&[("streamType", "error"), ("port", &port_s), ("requestID", "again")]).await;
    let d = client.open(&[("streamType", "data"), ("port", &port_s), ("requestID", "again")]).await;
    client.send(Frame::Ping { id: 3 }).await;
    client.data(d, b"still ", false).await;
    client.data(d, b"alive", true).await;
    spdy_until(&mut client, &mut seen, |s| s.fin.contains(&e) && s.fin.contains(&d) && s.pings.contains(&3)).await;
    assert_eq!(seen.text(d), "still alive");
}

#[tokio::test]
async fn spdy_port_forward_parallel_pairs_errors_and_reuse() {
    let echo = echo_server().await;
    let dead = closed_port().await;
    let addr = port_forward_server().await;
    let tcp = spdy_connect(addr, "/portforward", &["portforward.k8s.io"]).await;
    port_forward_session(Client::new(tcp), echo, dead, 20).await;
}

/// The client end of SPDY-in-WebSocket: bytes written are sent in `split`-byte binary messages.
fn ws_byte_stream(ws: WsClient, split: usize) -> tokio::io::DuplexStream {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let (mut rd, mut wr) = tokio::io::split(ours);
        let up = async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                for chunk in buf[..n].chunks(split) {
                    if sink.send(Message::binary(chunk.to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        };
        let down = async move {
            while let Some(Ok(msg)) = stream.next().await {
                let payload = match msg {
                    Message::Binary(b) => b,
                    Message::Close(_) => return,
                    _ => continue,
                };
                if wr.write_all(&payload).await.is_err() {
                    return;
                }
            }
        };
        tokio::join!(up, down);
    });
    theirs
}

#[tokio::test]
async fn spdy_over_websocket_port_forward_with_two_byte_messages() {
    let echo = echo_server().await;
    let dead = closed_port().await;
    let addr = port_forward_server().await;
    let (ws, resp) = ws_connect(addr, "/portforward", "SPDY/3.1+portforward.k8s.io").await;
    assert_eq!(resp.headers()["sec-websocket-protocol"], "SPDY/3.1+portforward.k8s.io");
    port_forward_session(Client::new(ws_byte_stream(ws, 2)), echo, dead, 5).await;
}

#[tokio::test]
async fn websocket_v4_port_forward_per_port_channels() {
    // A target that answers one line in upper case and closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                while !buf.ends_with(b"\n") {
                    if tcp.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                let _ = tcp.write_all(&buf.to_ascii_uppercase()).await;
            });
        }
    });
    let dead = closed_port().await;
    let addr = port_forward_server().await;
    let (mut ws, _) = ws_connect(addr, &format!("/portforward?ports={port},{dead}"), "v4.channel.k8s.io").await;
    ws.send(Message::binary(b"\x00hello ".to_vec())).await.unwrap();
    ws.send(Message::text("\u{0}world\n")).await.unwrap();
    let got = ws_collect(&mut ws).await;
    // Each channel starts with its port, little endian.
    for (channel, p) in [(0u8, port), (1, port), (2, dead), (3, dead)] {
        let first = got.iter().find(|(c, _)| *c == channel).unwrap();
        assert_eq!(first.1, p.to_le_bytes(), "channel {channel}");
    }
    let data: Vec<u8> = channel_bytes(&got, 0)[2..].to_vec();
    assert_eq!(data, b"HELLO WORLD\n");
    assert_eq!(channel_bytes(&got, 1).len(), 2, "no error for the live port");
    let err = String::from_utf8_lossy(&channel_bytes(&got, 3)[2..]).into_owned();
    assert!(err.starts_with(&format!("error forwarding port {dead} to pod web, uid u-1: ")), "{err}");
}

/// Decodes one `application/x-www-form-urlencoded` value.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A stand-in API server for real kubectl: discovery, one running pod `x`, and its exec/attach/
/// portforward subresources served by this module (exec runs the requested command with `sh`'s
/// environment; port-forward dials `port_map(port)` on 127.0.0.1).
/// Every negotiation is recorded in `seen` as "(websocket|spdy) <protocol>".
async fn kubectl_stub(
    port_map: Arc<dyn Fn(u16) -> u16 + Send + Sync>,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let port_map = port_map.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: http::Request<Body>| {
                    let port_map = port_map.clone();
                    let seen = seen.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let query = req.uri().query().unwrap_or("").to_string();
                        let kind = if path.ends_with("/exec") || path.ends_with("/attach") {
                            Some(Kind::RemoteCommand)
                        } else if path.ends_with("/portforward") {
                            Some(Kind::PortForward)
                        } else {
                            None
                        };
                        let json = |v: serde_json::Value| {
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(v.to_string())))
                                .unwrap()
                        };
                        let resp = match (kind, path.as_str()) {
                            (Some(kind), _) => match negotiate(req.method(), req.headers(), kind) {
                                Ok((resp, neg)) => {
                                    let transport = if neg.is_websocket() { "websocket" } else { "spdy" };
                                    seen.lock().unwrap().push(format!("{transport} {}", neg.protocol()));
                                    tokio::spawn(async move {
                                        let Ok(up) = hyper::upgrade::on(&mut req).await else { return };
                                        let io = TokioIo::new(up);
                                        if kind == Kind::PortForward {
                                            let port_map = port_map.clone();
                                            let dial: DialFn = Arc::new(move |p| {
                                                TcpStream::connect(("127.0.0.1", port_map(p))).boxed()
                                            });
                                            let pod = PodRef { name: "x".into(), uid: "uid-x".into() };
                                            let values: Vec<&str> =
                                                query.split('&').filter_map(|kv| kv.strip_prefix("ports=")).collect();
                                            let ports = parse_ports(&values).unwrap_or_default();
                                            serve_port_forward_with(io, neg, ports, dial, pod).await;
                                        } else {
                                            let command: Vec<String> = query
                                                .split('&')
                                                .filter_map(|kv| kv.strip_prefix("command="))
                                                .map(form_decode)
                                                .collect();
                                            let flags = flags_from_query(&query);
                                            let start = argv_start(command.clone());
                                            let kind = RemoteCommandKind::Exec { command };
                                            serve_remote_command_with(io, neg, flags, kind, start).await;
                                        }
                                    });
                                    resp.map(|_| Full::new(Bytes::new()))
                                }
                                Err(e) => http::Response::builder()
                                    .status(e.status_code())
                                    .body(Full::new(Bytes::from(e.to_string())))
                                    .unwrap(),
                            },
                            (None, "/api") => json(serde_json::json!({
                                "kind": "APIVersions", "versions": ["v1"],
                                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
                            })),
                            (None, "/apis") => {
                                json(serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
                            }
                            (None, "/api/v1") => json(serde_json::json!({
                                "kind": "APIResourceList", "groupVersion": "v1",
                                "resources": [{"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                                               "verbs": ["get", "list"], "shortNames": ["po"]}]
                            })),
                            (None, "/api/v1/namespaces/default/pods/x") => json(serde_json::json!({
                                "apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": "x", "namespace": "default", "uid": "uid-x"},
                                "spec": {"containers": [{"name": "app", "image": "busybox"}]},
                                "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true,
                                    "restartCount": 0, "image": "busybox", "imageID": "", "state": {"running": {}}}]}
                            })),
                            _ => http::Response::builder().status(404).body(Full::new(Bytes::new())).unwrap(),
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).with_upgrades().await;
            });
        }
    });
    addr
}

/// A `start` that runs `argv` directly with piped stdio.
fn argv_start(argv: Vec<String>) -> StartFn {
    Box::new(move || {
        async move {
            let (program, args) = argv.split_first().ok_or("no command")?;
            let mut child = tokio::process::Command::new(program)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| e.to_string())?;
            let stdin = child.stdin.take().map(|s| Box::pin(s) as _);
            let stdout = child.stdout.take().map(|s| Box::pin(s) as _);
            let stderr = child.stderr.take().map(|s| Box::pin(s) as _);
            let exit = async move { Ok(child.wait().await.map_err(|e| e.to_string())?.code().unwrap_or(128)) }.boxed();
            Ok(ProcessIo { stdin, stdout, stderr, resize: None, exit })
        }
        .boxed()
    })
}

fn kubectl_cmd(version: &str, addr: SocketAddr, cache: &std::path::Path) -> tokio::process::Command {
    let bin = std::path::Path::new("/usr/lib/google-cloud-sdk/bin").join(format!("kubectl.{version}"));
    assert!(bin.exists(), "{} is required for this test", bin.display());
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--server").arg(format!("http://{addr}")).arg("--cache-dir").arg(cache).kill_on_drop(true);
    cmd
}

/// Real kubectl 1.27 (SPDY only), 1.30 (WebSocket v5 exec, SPDY port-forward) and 1.33 (WebSocket v5
/// exec, SPDY-in-WebSocket port-forward) against this module.
#[tokio::test]
async fn real_kubectl_exec_and_port_forward() {
    let echo = echo_server().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let dead = closed_port().await;
    let addr = kubectl_stub(Arc::new(move |port| if port == 80 { echo } else { dead }), seen.clone()).await;
    let cache = tempfile::tempdir().unwrap();
    for (version, exec_protocol, pf_protocol) in [
        ("1.27", "spdy v4.channel.k8s.io", "spdy portforward.k8s.io"),
        ("1.30", "websocket v5.channel.k8s.io", "spdy portforward.k8s.io"),
        ("1.33", "websocket v5.channel.k8s.io", "websocket SPDY/3.1+portforward.k8s.io"),
    ] {
        seen.lock().unwrap().clear();
        // exec: stdout, stderr, exit code.
        let out = within(
            kubectl_cmd(version, addr, cache.path())
                .args(["exec", "x", "--", "sh", "-c", "echo out; echo err >&2; exit 3"])
                .output(),
        )
        .await
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n", "kubectl {version}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("err\n"), "kubectl {version}: {stderr}");
        assert!(stderr.contains("command terminated with exit code 3"), "kubectl {version}: {stderr}");
        assert_eq!(out.status.code(), Some(3), "kubectl {version}");

        // exec -i: stdin reaches the process and its end closes the process's stdin.
        let mut child = kubectl_cmd(version, addr, cache.path())
            .args(["exec", "-i", "x", "--", "tr", "a-z", "A-Z"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"piped input\n").await.unwrap();
        drop(stdin);
        let out = within(child.wait_with_output()).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "PIPED INPUT\n", "kubectl {version}: {:?}", out);
        assert!(out.status.success(), "kubectl {version}: {out:?}");

        // exec -it under a pseudo-terminal (`script`): the TTY variant of each protocol (SPDY waits
        // for the resize stream; WebSocket carries resize on channel 4).
        let bin = std::path::Path::new("/usr/lib/google-cloud-sdk/bin").join(format!("kubectl.{version}"));
        let line = format!(
            "{} --server http://{addr} --cache-dir {} exec -it x -- sh -c 'echo tty-ok; exit 4'",
            bin.display(),
            cache.path().display()
        );
        let out =
            within(tokio::process::Command::new("script").args(["-qec", &line, "/dev/null"]).output()).await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("tty-ok"), "kubectl {version}: {text}");
        assert_eq!(out.status.code(), Some(4), "kubectl {version}: {text}");
        let tty_protocol = seen.lock().unwrap().pop();
        assert_eq!(tty_protocol.as_deref(), Some(exec_protocol), "kubectl {version}");

        // port-forward: two connections through one session, each echoed with half-close; then a
        // connection to a port where nothing listens (the stub maps 81 to a closed port).
        let mut pf = kubectl_cmd(version, addr, cache.path())
            .args(["port-forward", "pod/x", ":80", ":81"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pf_out = tokio::io::BufReader::new(pf.stdout.take().unwrap());
        let mut locals = std::collections::HashMap::new();
        while locals.len() < 2 {
            let mut line = String::new();
            use tokio::io::AsyncBufReadExt;
            assert!(within(pf_out.read_line(&mut line)).await.unwrap() > 0, "kubectl {version} exited");
            // "Forwarding from 127.0.0.1:NNNNN -> 80" (and the same for [::1])
            if let Some(rest) = line.trim().strip_prefix("Forwarding from 127.0.0.1:") {
                let (local, remote) = rest.split_once(" -> ").unwrap();
                locals.insert(remote.to_string(), local.parse::<u16>().unwrap());
            }
        }
        for round in 0..2 {
            let mut conn = TcpStream::connect(("127.0.0.1", locals["80"])).await.unwrap();
            // Round 1 is far beyond SPDY's initial 64 KiB window (flow control is not used).
            let payload = format!("round {round} through kubectl {version} ").repeat(2000 + round * 100_000);
            let (mut rd, mut wr) = conn.split();
            let mut back = Vec::new();
            let send = async {
                wr.write_all(payload.as_bytes()).await.unwrap();
                wr.shutdown().await.unwrap();
            };
            within(async { tokio::join!(send, rd.read_to_end(&mut back)) }).await.1.unwrap();
            assert_eq!(back.len(), payload.len(), "kubectl {version} round {round}");
            assert!(back == payload.as_bytes(), "kubectl {version} round {round}");
        }
        let mut conn = TcpStream::connect(("127.0.0.1", locals["81"])).await.unwrap();
        let mut back = Vec::new();
        let _ = within(conn.read_to_end(&mut back)).await;
        assert!(back.is_empty(), "kubectl {version}");
        // kubectl logs the error text from the error stream (some versions then exit).
        let _ = tokio::time::timeout(Duration::from_secs(2), pf.wait()).await;
        let _ = pf.start_kill();
        let out = within(pf.wait_with_output()).await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error forwarding port 81 to pod x, uid uid-x: "), "kubectl {version}: {stderr}");
        assert_eq!(*seen.lock().unwrap(), [exec_protocol, exec_protocol, pf_protocol], "kubectl {version}");
    }
}
