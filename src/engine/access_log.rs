//! Access log in nginx's `combined` format, buffered per worker and written in batches
//! (when the buffer fills, once a second, and at exit) so logging costs no syscall per
//! request.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config;
use crate::http::{Request, Status, Version};

/// Flush once this many bytes are buffered.
const FLUSH_AT: usize = 32 * 1024;

/// A worker's access log.
pub struct AccessLog {
    sink: Option<Box<dyn Write + Send>>,
    buf: Vec<u8>,
    /// `24/Nov/2026:09:45:12 +0000`, refreshed once per second.
    time: [u8; 26],
    second: u64,
}

impl AccessLog {
    /// Opens the destination chosen in the configuration (files are opened for appending).
    pub fn open(dest: &config::AccessLog) -> io::Result<AccessLog> {
        let sink: Option<Box<dyn Write + Send>> = match dest {
            config::AccessLog::Off => None,
            config::AccessLog::Stdout => Some(Box::new(io::stdout())),
            config::AccessLog::File(path) => {
                let f: File = OpenOptions::new().create(true).append(true).open(path)?;
                Some(Box::new(f))
            }
        };
        let mut log = AccessLog {
            sink,
            buf: Vec::new(),
            time: [b' '; 26],
            second: u64::MAX,
        };
        log.tick(SystemTime::now());
        Ok(log)
    }

    /// Refreshes the cached timestamp and flushes what the last second buffered.
    pub fn tick(&mut self, now: SystemTime) {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs == self.second || self.sink.is_none() {
            return;
        }
        self.second = secs;
        // "Tue, 24 Nov 2026 09:45:12 GMT" → "24/Nov/2026:09:45:12 +0000"
        let http = httpdate::fmt_http_date(now);
        let b = http.as_bytes();
        let t = &mut self.time;
        t[..2].copy_from_slice(&b[5..7]);
        t[2] = b'/';
        t[3..6].copy_from_slice(&b[8..11]);
        t[6] = b'/';
        t[7..11].copy_from_slice(&b[12..16]);
        t[11] = b':';
        t[12..20].copy_from_slice(&b[17..25]);
        t[20..].copy_from_slice(b" +0000");
        self.flush();
    }

    /// Appends one line for a request (`None` when the request could not be parsed).
    pub fn record(&mut self, peer: IpAddr, req: Option<&Request<'_>>, status: Status, bytes: u64) {
        if self.sink.is_none() {
            return;
        }
        let b = &mut self.buf;
        let _ = write!(b, "{peer} - - [");
        b.extend_from_slice(&self.time);
        b.extend_from_slice(b"] \"");
        match req {
            Some(r) => {
                b.extend_from_slice(r.method_raw.as_bytes());
                b.push(b' ');
                escape(b, r.target_raw);
                b.extend_from_slice(match r.version {
                    Version::Http10 => b" HTTP/1.0",
                    Version::Http11 => b" HTTP/1.1",
                });
            }
            None => b.push(b'-'),
        }
        b.extend_from_slice(b"\" ");
        b.extend_from_slice(itoa::Buffer::new().format(status.code()).as_bytes());
        b.push(b' ');
        b.extend_from_slice(itoa::Buffer::new().format(bytes).as_bytes());
        for field in [req.and_then(|r| r.referer), req.and_then(|r| r.user_agent)] {
            b.extend_from_slice(b" \"");
            escape(b, field.unwrap_or(b"-"));
            b.push(b'"');
        }
        b.push(b'\n');
        if b.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Writes out everything buffered.
    pub fn flush(&mut self) {
        if let Some(sink) = self.sink.as_mut() {
            if !self.buf.is_empty() {
                // A failing log must not take the server down; the lines are dropped.
                let _ = sink.write_all(&self.buf).and_then(|_| sink.flush());
                self.buf.clear();
            }
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Copies `s`, escaping `"`, `\` and bytes outside printable ASCII as `\xHH` like nginx.
fn escape(out: &mut Vec<u8>, s: &[u8]) {
    for &c in s {
        if c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c) {
            out.extend_from_slice(&[b'\\', b'x', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.push(c);
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_nginx() {
        let mut v = Vec::new();
        escape(&mut v, b"a\"b\\c\x01d\xff");
        assert_eq!(v, b"a\\x22b\\x5Cc\\x01d\\xFF");
    }
}
