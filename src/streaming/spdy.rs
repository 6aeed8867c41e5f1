//! SPDY/3.1 as the Kubernetes streaming protocols use it (the Go `spdystream` peer): frame codec,
//! name/value header blocks compressed with zlib and the SPDY/3 dictionary (one context per
//! direction per connection), and a server-side session that replies to every client stream.
//!
//! Flow control is not enforced (the Go peer neither sends nor honours WINDOW_UPDATE); incoming data
//! is handed to a bounded per-stream queue, so a stream whose consumer stalls eventually stalls the
//! connection's reader (head-of-line blocking, as with spdystream's unbuffered channels).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Errors of the SPDY layer.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// The peer sent bytes that are not SPDY/3.
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    /// zlib failed on a header block.
    #[error("SPDY header compression error: {0}")]
    Compression(String),
    /// The connection failed.
    #[error("SPDY connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// SPDY version spoken (and the only one accepted).
const VERSION: u16 = 3;
/// Largest DATA payload we send in one frame.
const MAX_DATA_CHUNK: usize = 32 * 1024;
/// Largest frame payload accepted from the peer (the length field has 24 bits; header blocks of a
/// sane client are tiny, data frames from the Go client are at most 32 KiB).
const MAX_FRAME_LEN: usize = 0xFF_FFFF;
/// Largest decompressed header block accepted.
const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// How long closing waits for the client (to read what we sent, to close its side).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(crate) const TYPE_SYN_STREAM: u16 = 1;
pub(crate) const TYPE_SYN_REPLY: u16 = 2;
pub(crate) const TYPE_RST_STREAM: u16 = 3;
pub(crate) const TYPE_SETTINGS: u16 = 4;
pub(crate) const TYPE_PING: u16 = 6;
pub(crate) const TYPE_GOAWAY: u16 = 7;
pub(crate) const TYPE_HEADERS: u16 = 8;
pub(crate) const TYPE_WINDOW_UPDATE: u16 = 9;

/// FIN flag (control and data frames).
pub(crate) const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status codes used here.
pub(crate) const RST_PROTOCOL_ERROR: u32 = 1;
pub(crate) const RST_REFUSED_STREAM: u32 = 3;
pub(crate) const RST_CANCEL: u32 = 5;
pub(crate) const RST_STREAM_IN_USE: u32 = 8;

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1): 65 words,
/// each preceded by its length as a big-endian u32, then a tail of common values.
pub(crate) static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    );
    let mut dict = Vec::with_capacity(1423);
    for word in WORDS {
        dict.extend_from_slice(&(word.len() as u32).to_be_bytes());
        dict.extend_from_slice(word.as_bytes());
    }
    dict.extend_from_slice(TAIL.as_bytes());
    dict
});

/// A header block: lower-case names with their values (several values of one name are joined by
/// NUL on the wire and kept joined here).
pub(crate) type Headers = Vec<(String, String)>;

/// The first value of header `name` (names are compared case-insensitively).
pub(crate) fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

/// One SPDY/3 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    SynStream {
        stream_id: u32,
        associated_id: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type we do not use (e.g. CREDENTIAL): skipped.
    Unknown {
        frame_type: u16,
    },
}

/// Compresses header blocks of one direction of one connection.
pub(crate) struct HeaderEncoder {
    zlib: Compress,
}

impl HeaderEncoder {
    pub(crate) fn new() -> Self {
        let mut zlib = Compress::new(Compression::default(), true);
        zlib.set_dictionary(&DICTIONARY).expect("a fresh deflate stream accepts a dictionary");
        HeaderEncoder { zlib }
    }

    /// Serializes and compresses `headers` (sync flush: the block is decodable on its own, the
    /// context carries over to the next block).
    pub(crate) fn encode(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::with_capacity(64);
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            raw.extend_from_slice(&(name.len() as u32).to_be_bytes());
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before_in = self.zlib.total_in();
            self.zlib
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            consumed += (self.zlib.total_in() - before_in) as usize;
            // Done when all input is in and the flush did not run out of room.
            if consumed == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Decompresses header blocks of one direction of one connection.
pub(crate) struct HeaderDecoder {
    zlib: Decompress,
}

impl HeaderDecoder {
    pub(crate) fn new() -> Self {
        HeaderDecoder { zlib: Decompress::new(true) }
    }

    /// Inflates one compressed header block and parses it.
    pub(crate) fn decode(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(1024);
            }
            let before_in = self.zlib.total_in();
            let before_out = out.len();
            let result = self.zlib.decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.zlib.total_in() - before_in) as usize;
            match result {
                Ok(Status::StreamEnd) => {
                    return Err(SpdyError::Compression("header stream ended".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.zlib.set_dictionary(&DICTIONARY).map_err(|e| SpdyError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::Protocol("header block too large".into()));
            }
            let room_left = out.len() < out.capacity();
            if consumed == block.len() && room_left {
                break;
            }
            if out.len() == before_out && consumed == block.len() {
                break;
            }
        }
        parse_header_block(&out)
    }
}

fn parse_header_block(mut raw: &[u8]) -> Result<Headers, SpdyError> {
    fn take_u32(raw: &mut &[u8]) -> Result<u32, SpdyError> {
        if raw.len() < 4 {
            return Err(SpdyError::Protocol("truncated header block".into()));
        }
        Ok(raw.get_u32())
    }
    fn take_str(raw: &mut &[u8]) -> Result<String, SpdyError> {
        let len = take_u32(raw)? as usize;
        if raw.len() < len {
            return Err(SpdyError::Protocol("truncated header block".into()));
        }
        let s = String::from_utf8_lossy(&raw[..len]).into_owned();
        raw.advance(len);
        Ok(s)
    }
    let count = take_u32(&mut raw)? as usize;
    // Every pair takes at least 8 bytes: refuse absurd counts before allocating.
    if count > raw.len() / 8 {
        return Err(SpdyError::Protocol("header count exceeds block".into()));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take_str(&mut raw)?.to_ascii_lowercase();
        let value = take_str(&mut raw)?;
        headers.push((name, value));
    }
    Ok(headers)
}

fn control_header(out: &mut Vec<u8>, frame_type: u16, flags: u8, len: usize) {
    out.extend_from_slice(&(0x8000u16 | VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
}

impl Frame {
    /// Serializes the frame, compressing header blocks with `enc`.
    pub(crate) fn encode(&self, enc: &mut HeaderEncoder, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        match self {
            Frame::SynStream { stream_id, associated_id, priority, flags, headers } => {
                let block = enc.encode(headers)?;
                control_header(out, TYPE_SYN_STREAM, *flags, 10 + block.len());
                out.extend_from_slice(&(stream_id & 0x7FFF_FFFF).to_be_bytes());
                out.extend_from_slice(&(associated_id & 0x7FFF_FFFF).to_be_bytes());
                out.push((priority & 0x07) << 5);
                out.push(0); // slot
                out.extend_from_slice(&block);
            }
            Frame::SynReply { stream_id, flags, headers } | Frame::Headers { stream_id, flags, headers } => {
                let frame_type = if matches!(self, Frame::SynReply { .. }) { TYPE_SYN_REPLY } else { TYPE_HEADERS };
                let block = enc.encode(headers)?;
                control_header(out, frame_type, *flags, 4 + block.len());
                out.extend_from_slice(&(stream_id & 0x7FFF_FFFF).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control_header(out, TYPE_RST_STREAM, 0, 8);
                out.extend_from_slice(&(stream_id & 0x7FFF_FFFF).to_be_bytes());
                out.extend_from_slice(&status.to_be_bytes());
            }
            Frame::Settings { flags, entries } => {
                control_header(out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len());
                out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for (flag, id, value) in entries {
                    out.extend_from_slice(&((u32::from(*flag) << 24) | (id & 0xFF_FFFF)).to_be_bytes());
                    out.extend_from_slice(&value.to_be_bytes());
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Frame::GoAway { last_good_stream_id, status } => {
                control_header(out, TYPE_GOAWAY, 0, 8);
                out.extend_from_slice(&(last_good_stream_id & 0x7FFF_FFFF).to_be_bytes());
                out.extend_from_slice(&status.to_be_bytes());
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8);
                out.extend_from_slice(&(stream_id & 0x7FFF_FFFF).to_be_bytes());
                out.extend_from_slice(&(delta & 0x7FFF_FFFF).to_be_bytes());
            }
            Frame::Data { stream_id, flags, data } => {
                if data.len() > MAX_FRAME_LEN {
                    return Err(SpdyError::Protocol("data frame too large".into()));
                }
                out.extend_from_slice(&(stream_id & 0x7FFF_FFFF).to_be_bytes());
                out.push(*flags);
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
            }
            Frame::Unknown { frame_type } => {
                control_header(out, *frame_type, 0, 0);
            }
        }
        Ok(())
    }

    /// Parses one frame from the front of `buf` if it is complete (consuming it), decompressing
    /// header blocks with `dec`. `Ok(None)` = more bytes needed.
    pub(crate) fn decode(buf: &mut BytesMut, dec: &mut HeaderDecoder) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let head = buf.split_to(8);
        let mut payload = buf.split_to(len).freeze();
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7FFF_FFFF;
            return Ok(Some(Frame::Data { stream_id, flags, data: payload }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7FFF;
        if version != VERSION {
            return Err(SpdyError::Protocol(format!("unsupported SPDY version {version}")));
        }
        let frame_type = u16::from_be_bytes([head[2], head[3]]);
        let need = |n: usize| -> Result<(), SpdyError> {
            if len < n {
                Err(SpdyError::Protocol(format!("control frame type {frame_type} too short ({len} bytes)")))
            } else {
                Ok(())
            }
        };
        let frame = match frame_type {
            TYPE_SYN_STREAM => {
                need(10)?;
                let stream_id = payload.get_u32() & 0x7FFF_FFFF;
                let associated_id = payload.get_u32() & 0x7FFF_FFFF;
                let priority = payload.get_u8() >> 5;
                let _slot = payload.get_u8();
                let headers = dec.decode(&payload)?;
                Frame::SynStream { stream_id, associated_id, priority, flags, headers }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                need(4)?;
                let stream_id = payload.get_u32() & 0x7FFF_FFFF;
                let headers = dec.decode(&payload)?;
                if frame_type == TYPE_SYN_REPLY {
                    Frame::SynReply { stream_id, flags, headers }
                } else {
                    Frame::Headers { stream_id, flags, headers }
                }
            }
            TYPE_RST_STREAM => {
                need(8)?;
                Frame::RstStream { stream_id: payload.get_u32() & 0x7FFF_FFFF, status: payload.get_u32() }
            }
            TYPE_SETTINGS => {
                need(4)?;
                let count = payload.get_u32() as usize;
                if payload.len() < count.saturating_mul(8) {
                    return Err(SpdyError::Protocol("truncated SETTINGS frame".into()));
                }
                let entries = (0..count)
                    .map(|_| {
                        let flag_id = payload.get_u32();
                        ((flag_id >> 24) as u8, flag_id & 0xFF_FFFF, payload.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                need(4)?;
                Frame::Ping { id: payload.get_u32() }
            }
            TYPE_GOAWAY => {
                need(4)?;
                let last_good_stream_id = payload.get_u32() & 0x7FFF_FFFF;
                let status = if payload.len() >= 4 { payload.get_u32() } else { 0 };
                Frame::GoAway { last_good_stream_id, status }
            }
            TYPE_WINDOW_UPDATE => {
                need(8)?;
                Frame::WindowUpdate {
                    stream_id: payload.get_u32() & 0x7FFF_FFFF,
                    delta: payload.get_u32() & 0x7FFF_FFFF,
                }
            }
            other => Frame::Unknown { frame_type: other },
        };
        Ok(Some(frame))
    }
}

/// What the reader task hands to a stream's owner.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// Bytes the client sent on the stream.
    Data(Bytes),
    /// The client half-closed the stream (FIN).
    Fin,
}

/// A client-initiated stream, already answered with SYN_REPLY.
pub(crate) struct SpdyStream {
    pub(crate) id: u32,
    pub(crate) headers: Headers,
    /// Data from the client; `Fin` once, then the channel closes. A closed channel without `Fin`
    /// means the stream was reset or the connection is gone.
    pub(crate) incoming: mpsc::Receiver<Incoming>,
    /// Becomes `true` when the client resets the stream (or the connection ends: sender dropped).
    pub(crate) reset: watch::Receiver<bool>,
    pub(crate) writer: StreamWriter,
}

impl SpdyStream {
    /// The first value of header `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Resolves once the stream was reset by the client or the connection ended.
pub(crate) async fn wait_reset(reset: &mut watch::Receiver<bool>) {
    // An error means the session's reader ended: the connection is gone.
    let _ = reset.wait_for(|r| *r).await;
}

enum Outgoing {
    Frame(Frame),
    /// Send GOAWAY, flush, close the connection and stop.
    Shutdown,
}

/// Writes to one stream (frames go through the session's writer task, in order).
#[derive(Clone)]
pub(crate) struct StreamWriter {
    id: u32,
    tx: mpsc::Sender<Outgoing>,
}

/// The connection is gone.
#[derive(Debug)]
pub(crate) struct ConnectionClosed;

impl StreamWriter {
    /// Sends `data` in DATA frames.
    pub(crate) async fn write(&self, data: &[u8]) -> Result<(), ConnectionClosed> {
        for chunk in data.chunks(MAX_DATA_CHUNK) {
            let frame = Frame::Data { stream_id: self.id, flags: 0, data: Bytes::copy_from_slice(chunk) };
            self.tx.send(Outgoing::Frame(frame)).await.map_err(|_| ConnectionClosed)?;
        }
        Ok(())
    }

    /// Half-closes our side of the stream (empty DATA frame with FIN).
    pub(crate) async fn close(&self) -> Result<(), ConnectionClosed> {
        let frame = Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Bytes::new() };
        self.tx.send(Outgoing::Frame(frame)).await.map_err(|_| ConnectionClosed)
    }
}

/// Decides whether a new client stream is accepted (Ok) or reset (Err(reason), logged).
pub(crate) type Acceptor = fn(&Headers) -> Result<(), String>;

/// A server-side SPDY/3.1 connection: a reader task and a writer task over the upgraded socket.
pub(crate) struct Session {
    /// New client streams, each already replied to.
    pub(crate) streams: mpsc::Receiver<SpdyStream>,
    tx: mpsc::Sender<Outgoing>,
    closed: watch::Receiver<bool>,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(w) = &self.writer {
            w.abort();
        }
    }
}

impl Session {
    /// Starts serving SPDY on `io`.
    pub(crate) fn start<S>(io: S, accept: Acceptor) -> Session
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (tx, rx) = mpsc::channel::<Outgoing>(64);
        let (streams_tx, streams) = mpsc::channel(64);
        let (closed_tx, closed) = watch::channel(false);
        let writer = tokio::spawn(write_loop(wr, rx));
        let reader_tx = tx.clone();
        let reader = tokio::spawn(async move {
            if let Err(e) = read_loop(rd, reader_tx, streams_tx, accept).await {
                tracing::debug!(error = %e, "SPDY connection ended");
            }
            let _ = closed_tx.send(true);
        });
        Session { streams, tx, closed, reader, writer: Some(writer) }
    }

    /// Resolves when the client's side of the connection is gone (EOF, error, GOAWAY).
    pub(crate) fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closed = self.closed.clone();
        async move {
            let _ = closed.wait_for(|c| *c).await;
        }
    }

    /// Sends everything queued, then GOAWAY, closes our side of the connection and waits (briefly)
    /// for the client to close its side, so that closing the socket never discards unread data.
    pub(crate) async fn shutdown(mut self) {
        if self.tx.send(Outgoing::Shutdown).await.is_ok() {
            if let Some(writer) = self.writer.take() {
                // A client that stopped reading cannot hold the session forever.
                let abort = writer.abort_handle();
                if tokio::time::timeout(SHUTDOWN_GRACE, writer).await.is_err() {
                    abort.abort();
                    return;
                }
            }
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.closed()).await;
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Outgoing>) {
    let mut enc = HeaderEncoder::new();
    let mut buf = Vec::with_capacity(MAX_DATA_CHUNK + 64);
    let mut last_stream_id = 0u32;
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut shutdown = false;
        while let Some(item) = next.take() {
            match item {
                Outgoing::Frame(frame) => {
                    if let Frame::SynReply { stream_id, .. } = &frame {
                        last_stream_id = last_stream_id.max(*stream_id);
                    }
                    if let Err(e) = frame.encode(&mut enc, &mut buf) {
                        tracing::warn!(error = %e, "SPDY frame not encodable");
                        break 'outer;
                    }
                }
                Outgoing::Shutdown => {
                    shutdown = true;
                    break;
                }
            }
            if buf.len() >= 64 * 1024 {
                break;
            }
            next = rx.try_recv().ok();
        }
        if shutdown {
            let goaway = Frame::GoAway { last_good_stream_id: last_stream_id, status: 0 };
            let _ = goaway.encode(&mut enc, &mut buf);
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        buf.clear();
        if shutdown {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

struct StreamState {
    data: Option<mpsc::Sender<Incoming>>,
    reset: watch::Sender<bool>,
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    tx: mpsc::Sender<Outgoing>,
    streams_tx: mpsc::Sender<SpdyStream>,
    accept: Acceptor,
) -> Result<(), SpdyError> {
    let mut dec = HeaderDecoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut streams: HashMap<u32, StreamState> = HashMap::new();
    let send = |frame: Frame| {
        let tx = tx.clone();
        async move { tx.send(Outgoing::Frame(frame)).await.map_err(|_| SpdyError::Protocol("writer gone".into())) }
    };
    loop {
        let frame = loop {
            if let Some(frame) = Frame::decode(&mut buf, &mut dec)? {
                break frame;
            }
            if buf.capacity() - buf.len() < 16 * 1024 {
                buf.reserve(64 * 1024);
            }
            if rd.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        match frame {
            Frame::SynStream { stream_id, flags, headers, .. } => {
                // Forget streams whose owners dropped both their data receiver and reset watch.
                streams.retain(|_, s| !s.reset.is_closed() || s.data.as_ref().is_some_and(|d| !d.is_closed()));
                if stream_id == 0 || stream_id % 2 == 0 {
                    send(Frame::RstStream { stream_id, status: RST_PROTOCOL_ERROR }).await?;
                    continue;
                }
                if streams.contains_key(&stream_id) {
                    send(Frame::RstStream { stream_id, status: RST_STREAM_IN_USE }).await?;
                    continue;
                }
                if let Err(reason) = accept(&headers) {
                    tracing::warn!(stream_id, %reason, "SPDY stream rejected");
                    send(Frame::RstStream { stream_id, status: RST_REFUSED_STREAM }).await?;
                    continue;
                }
                send(Frame::SynReply { stream_id, flags: 0, headers: Vec::new() }).await?;
                let (data_tx, incoming) = mpsc::channel(64);
                let (reset_tx, reset) = watch::channel(false);
                let data = if flags & FLAG_FIN != 0 {
                    let _ = data_tx.try_send(Incoming::Fin);
                    None
                } else {
                    Some(data_tx)
                };
                streams.insert(stream_id, StreamState { data, reset: reset_tx });
                let writer = StreamWriter { id: stream_id, tx: tx.clone() };
                let stream = SpdyStream { id: stream_id, headers, incoming, reset, writer };
                if streams_tx.send(stream).await.is_err() {
                    // Nobody takes new streams any more (the session is ending): refuse it, but keep
                    // reading so the client's last frames are consumed before the socket closes.
                    send(Frame::RstStream { stream_id, status: RST_CANCEL }).await?;
                }
            }
            Frame::Data { stream_id, flags, data } => {
                let Some(state) = streams.get_mut(&stream_id) else { continue };
                if let Some(data_tx) = &state.data {
                    if !data.is_empty() && data_tx.send(Incoming::Data(data)).await.is_err() {
                        state.data = None;
                    }
                }
                if flags & FLAG_FIN != 0 {
                    if let Some(data_tx) = state.data.take() {
                        let _ = data_tx.send(Incoming::Fin).await;
                    }
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(state) = streams.remove(&stream_id) {
                    let _ = state.reset.send(true);
                }
            }
            Frame::Ping { id } => {
                // Odd ids are the client's: echo them. Even ids would answer our pings (we send none).
                if id % 2 == 1 {
                    send(Frame::Ping { id }).await?;
                }
            }
            Frame::GoAway { .. } => return Ok(()),
            Frame::Headers { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::SynReply { .. }
            | Frame::Unknown { .. } => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod client {
    //! A minimal SPDY client for tests, built from the same codec.

    use super::*;

    /// Client side of a SPDY connection: frames in and out with their own header contexts.
    pub(crate) struct Client<S> {
        io: S,
        enc: HeaderEncoder,
        dec: HeaderDecoder,
        buf: BytesMut,
        next_id: u32,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
        pub(crate) fn new(io: S) -> Self {
            Client { io, enc: HeaderEncoder::new(), dec: HeaderDecoder::new(), buf: BytesMut::new(), next_id: 1 }
        }

        pub(crate) async fn send(&mut self, frame: Frame) {
            let mut out = Vec::new();
            frame.encode(&mut self.enc, &mut out).unwrap();
            self.io.write_all(&out).await.unwrap();
            self.io.flush().await.unwrap();
        }

        /// Opens a stream with `headers`; returns its id.
        pub(crate) async fn open(&mut self, headers: &[(&str, &str)]) -> u32 {
            let stream_id = self.next_id;
            self.next_id += 2;
            let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            self.send(Frame::SynStream { stream_id, associated_id: 0, priority: 0, flags: 0, headers }).await;
            stream_id
        }

        pub(crate) async fn data(&mut self, stream_id: u32, data: &[u8], fin: bool) {
            let flags = if fin { FLAG_FIN } else { 0 };
            self.send(Frame::Data { stream_id, flags, data: Bytes::copy_from_slice(data) }).await;
        }

        /// The next frame, or None at EOF.
        pub(crate) async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(frame) = Frame::decode(&mut self.buf, &mut self.dec).unwrap() {
                    return Some(frame);
                }
                let n = self.io.read_buf(&mut self.buf).await.ok()?;
                if n == 0 {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::client::Client;
    use super::*;

    #[test]
    fn dictionary_matches_spdy3() {
        // Length and Adler-32 of the SPDY/3 dictionary as used by Go's spdy framer.
        assert_eq!(DICTIONARY.len(), 1423);
        let (mut a, mut b) = (1u32, 0u32);
        for byte in DICTIONARY.iter() {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    /// The first bytes real kubectl 1.27.16 sent after the 101 of `kubectl port-forward pod/x
    /// 18556:80` when a local connection arrived (captured on this machine): the error stream's
    /// SYN_STREAM, compressed by Go's spdy framer with the SPDY/3 dictionary, then a PING.
    const KUBECTL_1_27_PORT_FORWARD: &[u8] = &[
        0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0x25, 0x3a, 0x70, 0x3a, 0x2b, 0x29, 0x4a, 0x4d, 0xcc, 0x85, 0x16,
        0x25, 0xac, 0xa9, 0xa0, 0x80, 0x86, 0x14, 0xcb, 0x45, 0xa0, 0x24, 0xcc, 0x64, 0x61, 0xc0, 0xc0, 0xc0, 0xc0,
        0x59, 0x04, 0x89, 0xc4, 0x4c, 0x50, 0xe2, 0x66, 0x34, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x80, 0x03, 0x00,
        0x06, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,
    ];

    #[test]
    fn decodes_a_syn_stream_captured_from_kubectl() {
        let mut dec = HeaderDecoder::new();
        let mut buf = BytesMut::from(KUBECTL_1_27_PORT_FORWARD);
        let Some(Frame::SynStream { stream_id, associated_id, flags, mut headers, .. }) =
            Frame::decode(&mut buf, &mut dec).unwrap()
        else {
            panic!("not a SYN_STREAM");
        };
        assert_eq!((stream_id, associated_id, flags), (1, 0, 0));
        headers.sort();
        let expected: Headers =
            vec![("port".into(), "80".into()), ("requestid".into(), "0".into()), ("streamtype".into(), "error".into())];
        assert_eq!(headers, expected);
        assert_eq!(Frame::decode(&mut buf, &mut dec).unwrap(), Some(Frame::Ping { id: 1 }));
        assert!(buf.is_empty());
    }

    #[test]
    fn header_compression_shares_context_across_frames() {
        let mut enc = HeaderEncoder::new();
        let mut dec = HeaderDecoder::new();
        let mut sizes = Vec::new();
        for i in 0..5 {
            let headers: Headers = vec![
                ("streamtype".into(), "data".into()),
                ("port".into(), "8080".into()),
                ("requestid".into(), i.to_string()),
            ];
            let frame = Frame::SynStream { stream_id: 2 * i + 1, associated_id: 0, priority: 0, flags: 0, headers };
            let mut wire = Vec::new();
            frame.encode(&mut enc, &mut wire).unwrap();
            sizes.push(wire.len());
            let mut buf = BytesMut::from(&wire[..]);
            assert_eq!(Frame::decode(&mut buf, &mut dec).unwrap(), Some(frame));
            assert!(buf.is_empty());
        }
        // The first block carries the zlib header; later ones reuse the shared window and shrink.
        assert!(sizes[4] < sizes[0], "sizes {sizes:?}");
        // A fresh decoder cannot read a later block: proves the context is shared, not per frame.
        let frame = Frame::Headers { stream_id: 1, flags: 0, headers: vec![("a".into(), "b".into())] };
        let mut wire = Vec::new();
        frame.encode(&mut enc, &mut wire).unwrap();
        let mut buf = BytesMut::from(&wire[..]);
        assert!(Frame::decode(&mut buf, &mut HeaderDecoder::new()).is_err());
    }

    #[test]
    fn control_frames_round_trip_and_partial_input() {
        let mut enc = HeaderEncoder::new();
        let mut dec = HeaderDecoder::new();
        let frames = vec![
            Frame::Ping { id: 7 },
            Frame::RstStream { stream_id: 3, status: 5 },
            Frame::GoAway { last_good_stream_id: 9, status: 0 },
            Frame::WindowUpdate { stream_id: 1, delta: 1000 },
            Frame::Settings { flags: 0, entries: vec![(0, 7, 65536)] },
            Frame::Data { stream_id: 5, flags: FLAG_FIN, data: Bytes::from_static(b"hello") },
            Frame::SynReply { stream_id: 1, flags: 0, headers: vec![] },
        ];
        let mut wire = Vec::new();
        for f in &frames {
            f.encode(&mut enc, &mut wire).unwrap();
        }
        // Feed one byte at a time.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire {
            buf.extend_from_slice(&[byte]);
            while let Some(f) = Frame::decode(&mut buf, &mut dec).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = HeaderDecoder::new();
        // SYN_STREAM with a header block that is not zlib.
        let mut buf = BytesMut::from(&[0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4][..]);
        assert!(Frame::decode(&mut buf, &mut dec).is_err());
        // Wrong version.
        let mut buf = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(Frame::decode(&mut buf, &mut dec).is_err());
        // Too short control frame.
        let mut buf = BytesMut::from(&[0x80, 3, 0, 3, 0, 0, 0, 2, 0, 0][..]);
        assert!(Frame::decode(&mut buf, &mut dec).is_err());
        // Absurd header count.
        assert!(parse_header_block(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0]).is_err());
    }

    #[tokio::test]
    async fn session_replies_echoes_pings_and_delivers_data() {
        let (server_io, client_io) = tokio::io::duplex(4096);
        let mut session = Session::start(server_io, |h| match header(h, "streamtype") {
            Some(_) => Ok(()),
            None => Err("streamType header is required".into()),
        });
        let mut client = Client::new(client_io);
        client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 1 }));

        let bad = client.open(&[("port", "1")]).await;
        assert_eq!(client.next().await, Some(Frame::RstStream { stream_id: bad, status: RST_REFUSED_STREAM }));

        let id = client.open(&[("streamtype", "stdin")]).await;
        assert!(matches!(client.next().await, Some(Frame::SynReply { stream_id, .. }) if stream_id == id));
        let mut stream = session.streams.recv().await.unwrap();
        assert_eq!(stream.header("streamType"), Some("stdin"));
        client.data(id, b"abc", true).await;
        assert!(matches!(stream.incoming.recv().await, Some(Incoming::Data(d)) if &d[..] == b"abc"));
        assert!(matches!(stream.incoming.recv().await, Some(Incoming::Fin)));
        stream.writer.write(b"out").await.unwrap();
        stream.writer.close().await.unwrap();
        assert_eq!(
            client.next().await,
            Some(Frame::Data { stream_id: id, flags: 0, data: Bytes::from_static(b"out") })
        );
        assert_eq!(client.next().await, Some(Frame::Data { stream_id: id, flags: FLAG_FIN, data: Bytes::new() }));
        let shutdown = tokio::spawn(session.shutdown());
        assert!(matches!(client.next().await, Some(Frame::GoAway { .. })));
        // Our side is closed after GOAWAY; the session then waits for the client to close.
        assert_eq!(client.next().await, None);
        drop(client);
        shutdown.await.unwrap();
    }
}
