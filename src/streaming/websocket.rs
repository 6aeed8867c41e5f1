//! WebSocket plumbing shared by the channel protocols: the `[channel][data]` message codec (binary
//! and base64 variants), a writer task multiplexing all channels onto the socket, and the tunnel
//! that turns WebSocket binary messages into a byte stream for SPDY-in-WebSocket.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::WsProtocol;

/// Channel number of the v5 close signal (`[255, channel]`).
pub(super) const CLOSE_SIGNAL: u8 = 255;

/// How long to wait for the client's answer to our close frame before dropping the socket.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Starts speaking WebSocket (server role) on an already upgraded connection.
pub(super) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> WebSocketStream<S> {
    WebSocketStream::from_raw_socket(io, Role::Server, None).await
}

/// Encodes `data` for channel `channel` in the negotiated protocol.
pub(super) fn channel_message(protocol: WsProtocol, channel: u8, data: &[u8]) -> Message {
    if protocol.base64() {
        let mut text = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        text.push(char::from(b'0' + channel));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
        Message::text(text)
    } else {
        let mut frame = Vec::with_capacity(1 + data.len());
        frame.push(channel);
        frame.extend_from_slice(data);
        Message::binary(frame)
    }
}

/// Decodes a client message into (channel, data). Both text and binary messages carry channel
/// data (the Python client sends text). `None` for control messages, empty messages and bad
/// base64 (logged and skipped, as upstream).
pub(super) fn parse_channel_message(protocol: WsProtocol, msg: &Message) -> Option<(u8, Bytes)> {
    let raw: &[u8] = match msg {
        Message::Binary(b) => b,
        Message::Text(t) => t.as_bytes(),
        _ => return None,
    };
    let (&first, rest) = raw.split_first()?;
    if protocol.base64() {
        let channel = first.wrapping_sub(b'0');
        match base64::engine::general_purpose::STANDARD.decode(rest) {
            Ok(data) => Some((channel, Bytes::from(data))),
            Err(e) => {
                tracing::debug!(error = %e, channel, "undecodable base64 channel message skipped");
                None
            }
        }
    } else {
        Some((first, Bytes::copy_from_slice(rest)))
    }
}

/// What the writer task sends.
pub(super) enum WsOut {
    Message(Message),
    /// Send a normal close frame and stop.
    Close,
}

/// Sends messages for many producers; ends after `WsOut::Close` or when the socket fails.
pub(super) fn spawn_writer<S>(mut sink: SplitSink<WebSocketStream<S>, Message>) -> (mpsc::Sender<WsOut>, JoinHandle<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<WsOut>(64);
    let task = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                WsOut::Message(msg) => {
                    if sink.feed(msg).await.is_err() {
                        return;
                    }
                    // Batch what is queued, then flush once.
                    if rx.is_empty() && sink.flush().await.is_err() {
                        return;
                    }
                }
                WsOut::Close => {
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
            }
        }
        let _ = sink.flush().await;
    });
    (tx, task)
}

/// The reading half, as a stream of messages.
pub(super) type Reader<S> = SplitStream<WebSocketStream<S>>;

/// Turns the WebSocket on `io` into a byte stream: the payloads of the client's binary (or text)
/// messages are the bytes read; bytes written go out as binary messages. Used for
/// `SPDY/3.1+portforward.k8s.io`, where the client splits SPDY frames arbitrarily.
pub(super) fn tunnel<S>(io: S) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let ws = accept(io).await;
        let (mut sink, mut stream) = ws.split();
        let (mut rd, mut wr) = tokio::io::split(ours);
        let inbound = async move {
            while let Some(msg) = stream.next().await {
                let payload = match msg {
                    Ok(Message::Binary(b)) => b,
                    Ok(Message::Text(t)) => Bytes::copy_from_slice(t.as_bytes()),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => continue,
                };
                if wr.write_all(&payload).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
            stream
        };
        let outbound = async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
            let _ = sink.send(Message::Close(Some(frame))).await;
        };
        tokio::pin!(inbound);
        tokio::pin!(outbound);
        tokio::select! {
            _ = &mut inbound => {
                // The client is gone: the SPDY side sees EOF and ends, which ends `outbound`.
                outbound.await;
            }
            _ = &mut outbound => {
                // We closed: give the client a moment to answer the close frame.
                let _ = tokio::time::timeout(CLOSE_GRACE, inbound).await;
            }
        }
    });
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_binary_and_base64() {
        let m = channel_message(WsProtocol::V5Binary, 1, b"hi");
        assert_eq!(m, Message::binary(vec![1, b'h', b'i']));
        assert_eq!(parse_channel_message(WsProtocol::V5Binary, &m), Some((1, Bytes::from_static(b"hi"))));
        // Text messages carry channel data too (Python client).
        let t = Message::text("\u{0}ls\n");
        assert_eq!(parse_channel_message(WsProtocol::V4Binary, &t), Some((0, Bytes::from_static(b"ls\n"))));

        let m = channel_message(WsProtocol::V4Base64, 1, b"\n");
        assert_eq!(m, Message::text("1Cg=="));
        assert_eq!(parse_channel_message(WsProtocol::V4Base64, &Message::text("0Zm9vCg==")), Some((0, "foo\n".into())));
        assert_eq!(parse_channel_message(WsProtocol::V4Base64, &Message::text("0!!")), None);
        assert_eq!(parse_channel_message(WsProtocol::V4Binary, &Message::binary(Vec::new())), None);
        assert_eq!(parse_channel_message(WsProtocol::V4Binary, &Message::Ping(Bytes::new())), None);
    }
}
