//! The CRI log format the shim writes: `<RFC3339Nano> stdout|stderr F|P <line>\n`.
//!
//! A full line ends with `F`; a line longer than [`MAX_LINE`] is cut into `P` (partial) records of
//! that size, and so is a final line without a newline at end of stream. Every record is written with
//! one `write(2)` to a file opened in append mode, so readers never see half a record.

use std::io::{self, Write};
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
}
