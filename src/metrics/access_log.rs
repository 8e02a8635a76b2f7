//! Access log in nginx's `combined` format or as one JSON object per line, buffered per
//! worker and written in batches (when the buffer fills, once a second, and at exit) so
//! logging costs no syscall per request.
//!
//! Key design decision: a line is written when its response is done — fully handed to the
//! kernel, or cut short by the connection closing — not when it is planned, so that it can
//! carry the bytes really sent and the request time, as nginx's log phase does. The request
//! fields the line needs are copied at planning time into the connection's [`Record`] (the
//! request itself borrows the receive buffer, which is gone by the time a large response
//! completes); the copy reuses the record's buffer, so the hot path allocates nothing.
//!
//! Files are reopened (`O_APPEND|O_CREAT`) at the next loop turn after [`Reopen::request`],
//! which the engine calls on SIGUSR1 (nginx `-s reopen`): lines buffered until then still go
//! to the old file, later ones to the new one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::{self, LogFormat};
use crate::http::date::DateCache;
use crate::http::escape;
use crate::http::{Request, Status, Version};

/// Flush once this many bytes are buffered.
const FLUSH_AT: usize = 32 * 1024;

/// A request to reopen the log files, shared by the signal thread and every worker's log.
/// Each request bumps a generation; a log reopens when it sees a generation it has not seen.
#[derive(Clone, Debug, Default)]
pub struct Reopen(Arc<AtomicU64>);

impl Reopen {
    /// Asks every log holding this handle to reopen its file at its next tick.
    pub fn request(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    fn generation(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Where the lines go.
enum Sink {
    Off,
    Stdout,
    File { path: PathBuf, file: File },
}

/// A worker's access log.
pub struct AccessLog {
    sink: Sink,
    format: LogFormat,
    buf: Vec<u8>,
    /// nginx `$time_local`, e.g. `24/Nov/2026:09:45:12 +0000`, refreshed once per second.
    time_local: [u8; 26],
    /// nginx `$time_iso8601`, e.g. `2026-11-24T09:45:12+00:00`, refreshed with `time_local`.
    time_iso: [u8; 25],
    /// The current second as an HTTP date, which both of the above are rearranged from.
    date: DateCache,
    second: u64,
    reopen: Reopen,
    /// Generation of `reopen` last acted on.
    reopened: u64,
}

impl AccessLog {
    /// Opens the destination chosen in the configuration (files are opened for appending);
    /// the file is reopened whenever `reopen` is requested.
    pub fn open(
        dest: &config::AccessLog,
        format: LogFormat,
        reopen: Reopen,
    ) -> io::Result<AccessLog> {
        let sink = match dest {
            config::AccessLog::Off => Sink::Off,
            config::AccessLog::Stdout => Sink::Stdout,
            config::AccessLog::File(path) => Sink::File {
                file: open_append(path)?,
                path: path.clone(),
            },
        };
        // Room for a second's worth of lines up to the flush threshold, and then some, so that
        // the buffer does not grow (allocate) while serving.
        let capacity = if matches!(sink, Sink::Off) {
            0
        } else {
            2 * FLUSH_AT
        };
        let mut log = AccessLog {
            sink,
            format,
            buf: Vec::with_capacity(capacity),
            time_local: [b' '; 26],
            time_iso: [b' '; 25],
            date: DateCache::new(),
            second: u64::MAX,
            reopened: reopen.generation(),
            reopen,
        };
        log.tick(SystemTime::now());
        Ok(log)
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        !matches!(self.sink, Sink::Off)
    }

    /// Reopens the file if that was requested, refreshes the cached timestamps and flushes
    /// what the last second buffered. Called once per loop turn.
    pub fn tick(&mut self, now: SystemTime) {
        if !self.enabled() {
            return;
        }
        let generation = self.reopen.generation();
        if generation != self.reopened {
            self.reopened = generation;
            self.reopen_file();
        }
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs == self.second {
            return;
        }
        self.second = secs;
        self.date.update(now);
        format_times(self.date.get(), &mut self.time_local, &mut self.time_iso);
        self.flush();
    }

    /// Copies what the line of a request needs into `rec` as its response is planned: the
    /// request (`None` when it could not be parsed), the status, the response's total length
    /// and body length, and when the request was parsed. Does nothing when the log is off.
    pub fn stage(
        &self,
        rec: &mut Record,
        req: Option<&Request<'_>>,
        status: Status,
        (total_len, body_len): (u64, u64),
        parsed: Instant,
    ) {
        if !self.enabled() {
            return;
        }
        rec.text.clear();
        rec.fields = [None; 4];
        rec.version = None;
        if let Some(r) = req {
            let fields = [
                Some(r.method_raw.as_bytes()),
                Some(r.target_raw),
                r.referer,
                r.user_agent,
            ];
            for (slot, field) in rec.fields.iter_mut().zip(fields) {
                *slot = field.map(|f| {
                    let start = rec.text.len();
                    rec.text.extend_from_slice(f);
                    (start, rec.text.len())
                });
            }
            rec.version = Some(r.version);
        }
        rec.status = status.code();
        rec.head_len = total_len.saturating_sub(body_len);
        rec.parsed = Some(parsed);
    }

    /// Appends the line of the request staged in `rec`, whose response had `sent` bytes
    /// (head included) handed to the kernel; the record is then empty. Does nothing if no
    /// request is staged.
    pub fn write(&mut self, rec: &mut Record, peer: IpAddr, sent: u64) {
        let Some(parsed) = rec.parsed.take() else {
            return;
        };
        let body_sent = sent.saturating_sub(rec.head_len);
        match self.format {
            LogFormat::Combined => self.combined(rec, peer, body_sent),
            LogFormat::Json => {
                let elapsed = Instant::now().saturating_duration_since(parsed);
                let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
                self.json(rec, peer, (sent, body_sent), ms);
            }
        }
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
    /// "$http_referer" "$http_user_agent"`
    fn combined(&mut self, rec: &Record, peer: IpAddr, body_sent: u64) {
        let b = &mut self.buf;
        let _ = write!(b, "{peer} - - [");
        b.extend_from_slice(&self.time_local);
        b.extend_from_slice(b"] \"");
        match (rec.field(0), rec.field(1), rec.version) {
            (Some(method), Some(target), Some(version)) => {
                escape(b, method);
                b.push(b' ');
                escape(b, target);
                b.push(b' ');
                b.extend_from_slice(protocol(version));
            }
            _ => b.push(b'-'),
        }
        b.extend_from_slice(b"\" ");
        b.extend_from_slice(itoa::Buffer::new().format(rec.status).as_bytes());
        b.push(b' ');
        b.extend_from_slice(itoa::Buffer::new().format(body_sent).as_bytes());
        for field in [rec.field(2), rec.field(3)] {
            b.extend_from_slice(b" \"");
            escape(b, field.unwrap_or(b"-"));
            b.push(b'"');
        }
        b.push(b'\n');
    }

    /// One JSON object with the fields of nginx's `$time_iso8601`, `$remote_addr`,
    /// `$request_method`, `$request_uri`, `$server_protocol`, `$status`, `$bytes_sent`,
    /// `$body_bytes_sent`, `$request_time`, `$http_referer` and `$http_user_agent`; fields
    /// the request did not have are `null`.
    fn json(&mut self, rec: &Record, peer: IpAddr, (sent, body_sent): (u64, u64), ms: u64) {
        let b = &mut self.buf;
        b.extend_from_slice(b"{\"time\":\"");
        b.extend_from_slice(&self.time_iso);
        let _ = write!(b, "\",\"remote_addr\":\"{peer}\"");
        let version = rec.version.map(protocol);
        for (name, value) in [
            ("method", rec.field(0)),
            ("uri", rec.field(1)),
            ("protocol", version),
        ] {
            json_field(b, name, value);
        }
        b.extend_from_slice(b",\"status\":");
        b.extend_from_slice(itoa::Buffer::new().format(rec.status).as_bytes());
        b.extend_from_slice(b",\"bytes_sent\":");
        b.extend_from_slice(itoa::Buffer::new().format(sent).as_bytes());
        b.extend_from_slice(b",\"body_bytes_sent\":");
        b.extend_from_slice(itoa::Buffer::new().format(body_sent).as_bytes());
        // Seconds with millisecond resolution, like `$request_time`.
        b.extend_from_slice(b",\"request_time\":");
        b.extend_from_slice(itoa::Buffer::new().format(ms / 1000).as_bytes());
        let frac = ms % 1000;
        b.extend_from_slice(&[
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ]);
        json_field(b, "referer", rec.field(2));
        json_field(b, "user_agent", rec.field(3));
        b.extend_from_slice(b"}\n");
    }

    /// Writes out everything buffered.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // A failing log must not take the server down; the lines are dropped.
        let _ = match &mut self.sink {
            Sink::Off => Ok(()),
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&self.buf).and_then(|_| out.flush())
            }
            Sink::File { file, .. } => file.write_all(&self.buf),
        };
        self.buf.clear();
    }

    /// Flushes what is buffered to the current file, then switches to a newly opened one
    /// at the same path. If the path cannot be opened the old file stays in use.
    fn reopen_file(&mut self) {
        self.flush();
        let Sink::File { path, file } = &mut self.sink else {
            return;
        };
        match open_append(path) {
            Ok(new) => {
                *file = new;
                eprintln!("ringserve: access log {} reopened", path.display());
            }
            Err(e) => eprintln!(
                "ringserve: access log {}: cannot reopen ({e}); still writing to the old file",
                path.display()
            ),
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The access-log fields of one request, kept by its connection from the moment the
/// response is planned until it is done (see the module doc). Its buffer is reused.
#[derive(Debug, Default)]
pub struct Record {
    /// Method, target, referer and user agent as sent, back to back.
    text: Vec<u8>,
    /// Where each of those four lies in `text`, if the request had it.
    fields: [Option<(usize, usize)>; 4],
    /// `None` when the request could not be parsed.
    version: Option<Version>,
    status: u16,
    /// Response bytes before the body (the head).
    head_len: u64,
    /// When the request was parsed; `Some` while a request is staged.
    parsed: Option<Instant>,
}

impl Record {
    /// Whether a request is staged and its line not written yet.
    pub fn is_staged(&self) -> bool {
        self.parsed.is_some()
    }

    /// Sets the response of a request staged before it was answered (an upload, answered
    /// when its body ends): its status, total length and body length.
    pub fn answered(&mut self, status: Status, (total_len, body_len): (u64, u64)) {
        self.status = status.code();
        self.head_len = total_len.saturating_sub(body_len);
    }

    fn field(&self, i: usize) -> Option<&[u8]> {
        self.fields[i].map(|(start, end)| &self.text[start..end])
    }
}

fn protocol(v: Version) -> &'static [u8] {
    match v {
        Version::Http10 => b"HTTP/1.0",
        Version::Http11 => b"HTTP/1.1",
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

/// Appends `,"name":"value"` (JSON-escaped) or `,"name":null`.
fn json_field(out: &mut Vec<u8>, name: &str, value: Option<&[u8]>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    match value {
        Some(v) => {
            out.push(b'"');
            escape::json(out, v);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Rearranges an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into nginx's `$time_local`
/// (`06/Nov/1994:08:49:37 +0000`) and `$time_iso8601` (`1994-11-06T08:49:37+00:00`); the
/// server logs in UTC.
fn format_times(imf: &[u8], local: &mut [u8; 26], iso: &mut [u8; 25]) {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let (day, month, year, time) = (&imf[5..7], &imf[8..11], &imf[12..16], &imf[17..25]);
    let number = MONTHS.iter().position(|m| *m == month).unwrap_or(0) + 1;
    let month_digits = [b'0' + (number / 10) as u8, b'0' + (number % 10) as u8];
    for (out, parts) in [
        (
            &mut local[..],
            [day, b"/", month, b"/", year, b":", time, b" +0000"],
        ),
        (
            &mut iso[..],
            [year, b"-", &month_digits, b"-", day, b"T", time, b"+00:00"],
        ),
    ] {
        let mut at = 0;
        for part in parts {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{self, Parse};
    use crate::http::Limits;
    use serde_json::Value;
    use std::time::Duration;

    #[test]
    fn escapes_like_nginx() {
        let mut v = Vec::new();
        escape(&mut v, b"a\"b\\c\x01d\xff");
        assert_eq!(v, b"a\\x22b\\x5Cc\\x01d\\xFF");
    }

    #[test]
    fn times_in_nginx_formats() {
        let (mut local, mut iso) = ([0; 26], [0; 25]);
        for (secs, want_local, want_iso) in [
            (0, "01/Jan/1970:00:00:00 +0000", "1970-01-01T00:00:00+00:00"),
            (
                784_111_777,
                "06/Nov/1994:08:49:37 +0000",
                "1994-11-06T08:49:37+00:00",
            ),
            (
                951_868_799,
                "29/Feb/2000:23:59:59 +0000",
                "2000-02-29T23:59:59+00:00",
            ),
            (
                1_796_000_000,
                "30/Nov/2026:00:53:20 +0000",
                "2026-11-30T00:53:20+00:00",
            ),
        ] {
            let mut date = DateCache::new();
            date.update(UNIX_EPOCH + Duration::from_secs(secs));
            format_times(date.get(), &mut local, &mut iso);
            assert_eq!(std::str::from_utf8(&local), Ok(want_local));
            assert_eq!(std::str::from_utf8(&iso), Ok(want_iso));
        }
    }

    /// A log of `format` writing to a file in a fresh directory.
    fn file_log(format: LogFormat) -> (tempfile::TempDir, PathBuf, AccessLog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let dest = config::AccessLog::File(path.clone());
        let log = AccessLog::open(&dest, format, Reopen::default()).unwrap();
        (dir, path, log)
    }

    fn lines(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn json_line_carries_every_field() {
        let (_dir, path, mut log) = file_log(LogFormat::Json);
        let head = b"GET /a%20b?q=\"x\" HTTP/1.0\r\nHost: h\r\nUser-Agent: ua \xff\"\\\r\n\r\n";
        let Parse::Complete(req) = request::parse(head, &Limits::default()) else {
            panic!("request not parsed");
        };
        let mut rec = Record::default();
        let parsed = Instant::now() - Duration::from_millis(1500);
        log.stage(&mut rec, Some(&req), Status::Ok, (150, 100), parsed);
        assert!(rec.is_staged());
        log.write(&mut rec, "10.0.0.1".parse().unwrap(), 120);
        assert!(!rec.is_staged());
        log.stage(&mut rec, None, Status::BadRequest, (80, 30), Instant::now());
        log.write(&mut rec, "::1".parse().unwrap(), 80);
        log.flush();
        let lines = lines(&path);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let v: Value = serde_json::from_str(&lines[0]).expect("JSON line");
        let time = v["time"].as_str().unwrap();
        assert!(time.len() == 25 && time.ends_with("+00:00"), "{time}");
        assert_eq!(v["remote_addr"], "10.0.0.1");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["uri"], "/a%20b?q=\"x\"");
        assert_eq!(v["protocol"], "HTTP/1.0");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_sent"], 120);
        assert_eq!(
            v["body_bytes_sent"], 70,
            "cut short: 120 sent, 50 of them head"
        );
        let t = v["request_time"].as_f64().unwrap();
        assert!((1.5..60.0).contains(&t), "{t}");
        let raw = lines[0].split("\"request_time\":").nth(1).unwrap();
        let number = &raw[..raw.find(',').unwrap()];
        let decimals = number.split_once('.').map(|(_, frac)| frac.len());
        assert_eq!(decimals, Some(3), "milliseconds: {number}");
        assert_eq!(v["referer"], Value::Null);
        assert_eq!(v["user_agent"], "ua \u{fffd}\"\\");
        let v: Value = serde_json::from_str(&lines[1]).expect("JSON line");
        assert_eq!(
            (v["method"].clone(), v["uri"].clone()),
            (Value::Null, Value::Null)
        );
        assert_eq!(
            (v["status"].clone(), v["body_bytes_sent"].clone()),
            (400.into(), 30.into())
        );
        assert_eq!(v["remote_addr"], "::1");
    }

    #[test]
    fn reopen_switches_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let reopen = Reopen::default();
        let dest = config::AccessLog::File(path.clone());
        let mut log = AccessLog::open(&dest, LogFormat::Combined, reopen.clone()).unwrap();
        let mut rec = Record::default();
        let peer = "127.0.0.1".parse().unwrap();
        log.stage(&mut rec, None, Status::BadRequest, (10, 0), Instant::now());
        log.write(&mut rec, peer, 10);
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        reopen.request();
        log.tick(SystemTime::now());
        log.stage(&mut rec, None, Status::BadRequest, (10, 0), Instant::now());
        log.write(&mut rec, peer, 10);
        log.stage(&mut rec, None, Status::BadRequest, (10, 0), Instant::now());
        log.write(&mut rec, peer, 10);
        drop(log);
        assert_eq!(
            lines(&rotated).len(),
            1,
            "buffered line went to the old file"
        );
        assert_eq!(lines(&path).len(), 2);
    }

    #[test]
    fn off_stages_nothing() {
        let mut log =
            AccessLog::open(&config::AccessLog::Off, LogFormat::Json, Reopen::default()).unwrap();
        let mut rec = Record::default();
        log.stage(&mut rec, None, Status::BadRequest, (10, 0), Instant::now());
        assert!(!rec.is_staged());
        log.write(&mut rec, "127.0.0.1".parse().unwrap(), 10);
        assert!(log.buf.is_empty());
    }
}
