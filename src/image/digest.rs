//! sha256 helpers (ring): `sha256:<hex>` digests of byte slices, readers and files.

use std::io::{self, Read};
use std::path::Path;

use ring::digest::{Context, SHA256};

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex(ring::digest::digest(&SHA256, data).as_ref()))
}

/// `sha256:<hex>` of a file's content.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut r = Sha256Reader::new(std::fs::File::open(path)?);
    io::copy(&mut r, &mut io::sink())?;
    Ok(r.finish())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// The hex part of a `sha256:<hex>` digest, checked (64 lower-case hex digits).
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(hex)
}

/// A reader hashing everything read through it.
pub struct Sha256Reader<R> {
    inner: R,
    ctx: Context,
    /// Bytes read so far.
    pub count: u64,
}

impl<R: Read> Sha256Reader<R> {
    pub fn new(inner: R) -> Self {
        Sha256Reader { inner, ctx: Context::new(&SHA256), count: 0 }
    }

    /// `sha256:<hex>` of what was read.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex(self.ctx.finish().as_ref()))
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}
