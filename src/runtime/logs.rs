//! The CRI log format the shim writes: `<RFC3339Nano> stdout|stderr F|P <line>\n`.
//!
//! A full line ends with `F`; a line longer than [`MAX_LINE`] is cut into `P` (partial) records of
//! that size, and so is a final line without a newline at end of stream. Every record is written with
//! one `write(2)` to a file opened in append mode, so readers never see half a record.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The longest line written as one record; longer lines become several `P` records.
pub const MAX_LINE: usize = 16 * 1024;

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Formats `t` like Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction trimmed).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    let mut s = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = dt.timestamp_subsec_nanos();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Splits one stream into CRI records.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream`.
    pub fn new(stream: Stream) -> Self {
        LineSplitter { stream, pending: Vec::new() }
    }

    /// Feeds bytes read from the stream; complete records are written to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut impl Write) -> io::Result<()> {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) if self.pending.len() + i <= MAX_LINE => {
                    if self.pending.is_empty() {
                        self.record(&data[..i], true, out)?;
                    } else {
                        let mut line = std::mem::take(&mut self.pending);
                        line.extend_from_slice(&data[..i]);
                        self.record(&line, true, out)?;
                    }
                    data = &data[i + 1..];
                }
                _ => {
                    let room = MAX_LINE - self.pending.len();
                    let take = room.min(data.len());
                    self.pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    // A full buffer is cut only once we know the line goes on (a newline may follow next read).
                    if self.pending.len() == MAX_LINE && data.first().is_some_and(|&b| b != b'\n') {
                        let line = std::mem::take(&mut self.pending);
                        self.record(&line, false, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// End of stream: a pending line without newline becomes a `P` record.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.record(&line, false, out)?;
        }
        Ok(())
    }

    fn record(&self, line: &[u8], full: bool, out: &mut impl Write) -> io::Result<()> {
        let ts = rfc3339_nano(SystemTime::now());
        let mut rec = Vec::with_capacity(ts.len() + line.len() + 12);
        rec.extend_from_slice(ts.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(self.stream.as_str().as_bytes());
        rec.extend_from_slice(if full { b" F " } else { b" P " });
        rec.extend_from_slice(line);
        rec.push(b'\n');
        out.write_all(&rec)
    }
}

/// kubelet's default `containerLogMaxSize` (10Mi).
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
/// kubelet's default `containerLogMaxFiles`.
pub const DEFAULT_MAX_FILES: u32 = 5;

/// A CRI log file rotated like kubelet does it: once `<path>` reached `max_size` bytes it is
/// renamed to `<path>.<YYYYMMDD-HHMMSS>` and a new `<path>` is started; at most `max_files` files
/// (the current one included) are kept, the oldest rotated ones are deleted. Rotation happens only
/// between two `write` calls, so a record written with one `write` is never split; when a rotated
/// file of the same second already exists, rotation waits for the next second (the current file
/// grows a little over the limit instead of losing a file).
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl RotatingLog {
    /// Opens (appends to) `path`. `max_size == 0` or `max_files < 2` disables rotation.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<RotatingLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog { path: path.to_path_buf(), file, size, max_size, max_files })
    }

    fn rotate_if_needed(&mut self) -> io::Result<()> {
        if self.max_size == 0 || self.max_files < 2 || self.size < self.max_size {
            return Ok(());
        }
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".");
        rotated.push(&stamp);
        let rotated = PathBuf::from(rotated);
        if rotated.exists() {
            return Ok(());
        }
        std::fs::rename(&self.path, &rotated)?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        self.prune();
        Ok(())
    }

    /// The rotated files of this log, oldest first.
    pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return Vec::new() };
        let prefix = format!("{}.", name.to_string_lossy());
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.strip_prefix(&prefix).is_some_and(is_rotation_stamp)
            })
            .map(|e| e.path())
            .collect();
        out.sort();
        out
    }

    fn prune(&self) {
        let rotated = Self::rotated_files(&self.path);
        let keep = self.max_files.saturating_sub(1) as usize;
        for old in &rotated[..rotated.len().saturating_sub(keep)] {
            let _ = std::fs::remove_file(old);
        }
    }
}

/// `YYYYMMDD-HHMMSS`.
fn is_rotation_stamp(s: &str) -> bool {
    s.len() == 15 && s.bytes().enumerate().all(|(i, b)| if i == 8 { b == b'-' } else { b.is_ascii_digit() })
}

impl Write for RotatingLog {
    /// Writes all of `buf` (one record) and rotates afterwards if the file is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        if let Err(e) = self.rotate_if_needed() {
            eprintln!("rotating {}: {e}", self.path.display());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(out: &[u8]) -> Vec<(String, String, String)> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| {
                let mut it = l.splitn(4, ' ');
                let ts = it.next().unwrap();
                chrono::DateTime::parse_from_rfc3339(ts).unwrap();
                (it.next().unwrap().into(), it.next().unwrap().into(), it.next().unwrap_or("").into())
            })
            .collect()
    }

    #[test]
    fn full_partial_and_long_lines() {
        let mut out = Vec::new();
        let mut s = LineSplitter::new(Stream::Stderr);
        s.feed(b"one\ntw", &mut out).unwrap();
        s.feed(b"o\n\nthree", &mut out).unwrap();
        let long = vec![b'x'; MAX_LINE + 5];
        s.feed(b"\n", &mut out).unwrap();
        s.feed(&long, &mut out).unwrap();
        s.feed(b"\nend", &mut out).unwrap();
        s.finish(&mut out).unwrap();
        let r = records(&out);
        let tags: Vec<_> = r.iter().map(|(st, t, l)| (st.as_str(), t.as_str(), l.len())).collect();
        assert_eq!(
            tags,
            vec![
                ("stderr", "F", 3),
                ("stderr", "F", 3),
                ("stderr", "F", 0),
                ("stderr", "F", 5),
                ("stderr", "P", MAX_LINE),
                ("stderr", "F", 5),
                ("stderr", "P", 3),
            ]
        );
        assert_eq!(r[0].2, "one");
        assert_eq!(r[1].2, "two");
        assert_eq!(r[3].2, "three");
    }

    #[test]
    fn exact_max_line_is_one_full_record() {
        let mut out = Vec::new();
        let mut s = LineSplitter::new(Stream::Stdout);
        let mut data = vec![b'y'; MAX_LINE];
        data.push(b'\n');
        s.feed(&data[..100], &mut out).unwrap();
        s.feed(&data[100..MAX_LINE], &mut out).unwrap();
        s.feed(&data[MAX_LINE..], &mut out).unwrap();
        s.finish(&mut out).unwrap();
        let r = records(&out);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].0.as_str(), r[0].1.as_str(), r[0].2.len()), ("stdout", "F", MAX_LINE));
    }

    #[test]
    fn timestamps_look_like_go() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_475_713_029, 669_794_200);
        assert_eq!(rfc3339_nano(t), "2016-10-06T00:17:09.6697942Z");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_475_713_029, 0);
        assert_eq!(rfc3339_nano(t), "2016-10-06T00:17:09Z");
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(dir.path().join("10.log.20200101-000000"), "other attempt").unwrap();
        let mut log = RotatingLog::open(&path, 10, 3).unwrap();
        for round in 0..4 {
            let mut s = LineSplitter::new(Stream::Stdout);
            s.feed(format!("round {round}\n").as_bytes(), &mut log).unwrap();
            // A distinct second per rotation.
            std::thread::sleep(std::time::Duration::from_millis(1050));
        }
        let rotated = RotatingLog::rotated_files(&path);
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        assert!(dir.path().join("10.log.20200101-000000").exists());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let last = std::fs::read_to_string(&rotated[1]).unwrap();
        assert!(last.ends_with(" stdout F round 3\n"), "{last}");
        let first = std::fs::read_to_string(&rotated[0]).unwrap();
        assert!(first.ends_with(" stdout F round 2\n"), "{first}");
    }
}
