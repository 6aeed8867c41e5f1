//! `kubectl logs`: reads a container's CRI log file (`<RFC3339Nano> stdout|stderr F|P <content>`)
//! with the PodLogOptions upstream's kubelet supports: `follow`, `tailLines`, `sinceSeconds`,
//! `sinceTime`, `timestamps`, `limitBytes`, `stream`. Following survives a rotation of the file
//! (the shim renames `N.log` and starts a new one): the rest of the old file is read, then the new.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// How often a followed file is checked for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Which records and how.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<u64>,
    /// Only records at or after this time (`sinceTime`, or now − `sinceSeconds`).
    pub since: Option<DateTime<Utc>>,
    pub timestamps: bool,
    pub limit_bytes: Option<u64>,
    /// `Stdout`, `Stderr` or `All` (None).
    pub stream: Option<String>,
}

impl LogOptions {
    /// From a request's query (kubelet's parameter names).
    pub fn from_query(q: &[(String, String)]) -> Result<LogOptions, String> {
        let get = |k: &str| q.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let flag = |k: &str| get(k).is_some_and(crate::apiserver::request::parse_bool);
        let int = |k: &str| -> Result<Option<i64>, String> {
            get(k).map(|v| v.parse::<i64>().map_err(|_| format!("invalid {k}: {v:?}"))).transpose()
        };
        let mut o = LogOptions { follow: flag("follow"), timestamps: flag("timestamps"), ..Default::default() };
        if let Some(n) = int("tailLines")? {
            o.tail_lines = Some(u64::try_from(n).map_err(|_| "tailLines must be greater than or equal to 0")?);
        }
        if let Some(n) = int("limitBytes")? {
            o.limit_bytes = Some(u64::try_from(n).ok().filter(|n| *n > 0).ok_or("limitBytes must be greater than 0")?);
        }
        if let Some(n) = int("sinceSeconds")? {
            if n < 1 {
                return Err("sinceSeconds must be greater than 0".into());
            }
            o.since = Some(Utc::now() - chrono::Duration::seconds(n));
        }
        if let Some(t) = get("sinceTime") {
            let t = DateTime::parse_from_rfc3339(t).map_err(|e| format!("invalid sinceTime {t:?}: {e}"))?;
            o.since = Some(t.with_timezone(&Utc));
        }
        o.stream = get("stream").filter(|s| *s != "All").map(str::to_string);
        Ok(o)
    }
}

/// One parsed record.
#[derive(Debug, PartialEq)]
struct Record<'a> {
    time: &'a str,
    stream: &'a str,
    full: bool,
    content: &'a [u8],
}

fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or_default();
    Some(Record { time, stream, full: !tag.starts_with(b"P"), content })
}

/// Formats records for the client, applying the filters, counting bytes for `limitBytes`.
struct Formatter {
    opts: LogOptions,
    written: u64,
}

impl Formatter {
    /// The client's bytes for one record line (without its `\n`); `None` when filtered out.
    fn format(&self, line: &[u8]) -> Option<Vec<u8>> {
        let r = parse(line)?;
        if let Some(s) = &self.opts.stream {
            if !r.stream.eq_ignore_ascii_case(s) {
                return None;
            }
        }
        if let Some(since) = self.opts.since {
            let t = DateTime::parse_from_rfc3339(r.time).ok()?.with_timezone(&Utc);
            if t < since {
                return None;
            }
        }
        let mut out = Vec::with_capacity(r.content.len() + 40);
        if self.opts.timestamps {
            out.extend_from_slice(r.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(r.content);
        if r.full {
            out.push(b'\n');
        }
        Some(out)
    }

    /// Cuts `out` to what `limitBytes` still allows; `true` when the limit is reached.
    fn limit(&mut self, out: &mut Vec<u8>) -> bool {
        if let Some(max) = self.opts.limit_bytes {
            let left = max.saturating_sub(self.written);
            if out.len() as u64 >= left {
                out.truncate(left as usize);
                self.written = max;
                return true;
            }
        }
        self.written += out.len() as u64;
        false
    }
}

/// Start offset of the last `n` lines of `data`.
fn tail_start(data: &[u8], n: u64) -> usize {
    if n == 0 {
        return data.len();
    }
    let mut seen = 0;
    // A last line without its newline still counts as a line.
    let end = if data.ends_with(b"\n") { data.len().saturating_sub(1) } else { data.len() };
    for i in (0..end).rev() {
        if data[i] == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// Streams the log at `path` into `tx` as the options say. `running` tells whether the container may
/// still write (following stops at the end of the file once it returns false).
pub async fn stream(
    path: PathBuf,
    opts: LogOptions,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    running: impl Fn() -> futures::future::BoxFuture<'static, bool> + Send + 'static,
) {
    let mut fmt = Formatter { opts: opts.clone(), written: 0 };
    let Ok(mut file) = File::open(&path) else { return };
    let mut data = Vec::new();
    if file.read_to_end(&mut data).is_err() {
        return;
    }
    let mut start = opts.tail_lines.map_or(0, |n| tail_start(&data, n));
    let mut pending: Vec<u8> = Vec::new();
    loop {
        // Complete lines of `data[start..]`; an incomplete last line waits for its end.
        let chunk = &data[start..];
        let complete = chunk.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        pending.extend_from_slice(&chunk[..complete]);
        let mut out = Vec::new();
        let mut done = false;
        for line in pending.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Some(mut b) = fmt.format(line) {
                done = fmt.limit(&mut b);
                out.extend_from_slice(&b);
                if done {
                    break;
                }
            }
        }
        pending.clear();
        pending.extend_from_slice(&chunk[complete..]);
        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
            return;
        }
        if done || !opts.follow {
            return;
        }
        // Wait for more: new bytes in this file, or a new file at `path` after a rotation.
        loop {
            let alive = running().await;
            tokio::time::sleep(FOLLOW_POLL).await;
            data.clear();
            start = 0;
            if file.read_to_end(&mut data).is_err() {
                return;
            }
            if !data.is_empty() {
                break;
            }
            if rotated(&path, &file) {
                if let Some(f) = next_file(&path, &file) {
                    file = f;
                    // The old file's unfinished line is not continued in the next file.
                    pending.clear();
                }
                continue;
            }
            if !alive {
                return;
            }
            if tx.is_closed() {
                return;
            }
        }
    }
}

/// The file written after `open` in the rotation chain (`N.log.<stamp>`…, then `N.log`): a
/// follower that fell behind by several rotations reads every file in turn. If `open` was already
/// pruned, everything still there is newer, so the oldest is next.
fn next_file(path: &Path, open: &File) -> Option<File> {
    let ino = open.metadata().ok()?.ino();
    let mut chain = crate::runtime::logs::RotatingLog::rotated_files(path);
    chain.push(path.to_path_buf());
    let at = chain.iter().position(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == ino));
    let next = match at {
        Some(i) => chain.get(i + 1)?,
        None => chain.first()?,
    };
    File::open(next).ok()
}

/// Whether `path` now names another file than `open` (rotated away).
fn rotated(path: &Path, open: &File) -> bool {
    match (std::fs::metadata(path), open.metadata()) {
        (Ok(a), Ok(b)) => a.ino() != b.ino() || a.dev() != b.dev(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn opts(q: &str) -> LogOptions {
        let pairs: Vec<(String, String)> = q
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        LogOptions::from_query(&pairs).unwrap()
    }

    async fn read_all(path: &Path, o: LogOptions) -> String {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let p = path.to_path_buf();
        tokio::spawn(stream(p, o, tx, || Box::pin(async { false })));
        let mut s = Vec::new();
        while let Some(b) = rx.recv().await {
            s.extend_from_slice(&b);
        }
        String::from_utf8(s).unwrap()
    }

    const LOG: &str = "2024-01-01T00:00:01.5Z stdout F one\n\
2024-01-01T00:00:02Z stderr F two\n\
2024-01-01T00:00:03Z stdout P thr\n\
2024-01-01T00:00:03Z stdout F ee\n\
2024-01-01T00:00:04Z stdout F four\n";

    #[tokio::test]
    async fn options_filter_and_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, LOG).unwrap();
        assert_eq!(read_all(&p, opts("")).await, "one\ntwo\nthree\nfour\n");
        assert_eq!(read_all(&p, opts("tailLines=2")).await, "ee\nfour\n");
        assert_eq!(read_all(&p, opts("tailLines=0")).await, "");
        assert_eq!(read_all(&p, opts("stream=Stderr")).await, "two\n");
        assert_eq!(read_all(&p, opts("limitBytes=6")).await, "one\ntw");
        assert_eq!(read_all(&p, opts("sinceTime=2024-01-01T00:00:03Z")).await, "three\nfour\n");
        assert_eq!(read_all(&p, opts("timestamps=true&tailLines=1")).await, "2024-01-01T00:00:04Z four\n");
        assert!(LogOptions::from_query(&[("tailLines".into(), "-1".into())]).is_err());
        assert!(LogOptions::from_query(&[("limitBytes".into(), "0".into())]).is_err());
    }

    #[tokio::test]
    async fn follow_reads_new_records_and_crosses_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, "2024-01-01T00:00:01Z stdout F a\n").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let a2 = alive.clone();
        tokio::spawn(stream(p.clone(), opts("follow=true"), tx, move || {
            let a = a2.clone();
            Box::pin(async move { a.load(std::sync::atomic::Ordering::SeqCst) })
        }));
        assert_eq!(&rx.recv().await.unwrap()[..], b"a\n");
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"2024-01-01T00:00:02Z stdout F b\n").unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"b\n");
        // Rotation: the file is renamed away and a new one started.
        std::fs::rename(&p, dir.path().join("0.log.20240101-000003")).unwrap();
        f.write_all(b"2024-01-01T00:00:03Z stdout F c\n").unwrap();
        std::fs::write(&p, "2024-01-01T00:00:04Z stdout F d\n").unwrap();
        let mut got = Vec::new();
        while got.len() < 4 {
            got.extend_from_slice(&rx.recv().await.unwrap());
        }
        assert_eq!(String::from_utf8(got).unwrap(), "c\nd\n");
        // Two rotations before the follower looks again: both files are read, in order.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"2024-01-01T00:00:05Z stdout F e\n").unwrap();
        std::fs::rename(&p, dir.path().join("0.log.20240101-000005")).unwrap();
        std::fs::write(&p, "2024-01-01T00:00:06Z stdout F f\n").unwrap();
        std::fs::rename(&p, dir.path().join("0.log.20240101-000006")).unwrap();
        std::fs::write(&p, "2024-01-01T00:00:07Z stdout F g\n").unwrap();
        let mut got = Vec::new();
        while got.len() < 6 {
            got.extend_from_slice(&rx.recv().await.unwrap());
        }
        assert_eq!(String::from_utf8(got).unwrap(), "e\nf\ng\n");
        alive.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(rx.recv().await.is_none(), "following ends once the container stopped");
    }
}
