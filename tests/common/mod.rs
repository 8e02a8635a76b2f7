//! Shared helpers of the integration tests: starting the `ringserve` binary, a per-test tree
//! of files to serve, and a minimal HTTP/1.1 client that reads responses byte-exact (so it can
//! check pipelining and body lengths precisely).

// Compiled into every test crate; not every crate uses every helper.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{symlink, FileExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest any single socket read or write may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the server may take to print its start-up lines.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The I/O backends every behaviour test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `--backend uring`
    Uring,
    /// `--backend epoll`
    Epoll,
}

impl Backend {
    /// The value of `--backend` selecting this backend.
    pub fn as_arg(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }
}

/// Whether this kernel lets the process set up an io_uring (Docker's default seccomp profile
/// and `kernel.io_uring_disabled` forbid it); the `uring` tests are skipped where it does not.
pub fn uring_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| io_uring::IoUring::new(2).is_ok())
}

/// Generates, for each named `fn name(backend: Backend)` of the test crate, the tests
/// `uring::name` and `epoll::name`, so each test body is written once.
#[allow(unused_macros)] // not every test crate runs the matrix
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(#[test] fn $name() {
                if !crate::common::uring_available() {
                    eprintln!("io_uring is not available here: test skipped");
                    return;
                }
                super::$name(crate::common::Backend::Uring)
            })*
        }
        mod epoll {
            $(#[test] fn $name() { super::$name(crate::common::Backend::Epoll) })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use backend_tests;

/// A running `ringserve` process. Dropping it kills the process (SIGKILL) and reaps it.
pub struct Server {
    proc: Proc,
    addrs: Vec<SocketAddr>,
}

/// Command-line arguments for a test server: `--root root`, then `--listen 127.0.0.1:0
/// --workers 2 --backend <backend> --access-log off` except where `extra` sets the flag itself,
/// then `extra`.
fn server_args(backend: Backend, root: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--root".to_string(), root.display().to_string()];
    let defaults = [
        ("--listen", "127.0.0.1:0"),
        ("--workers", "2"),
        ("--backend", backend.as_arg()),
        ("--access-log", "off"),
    ];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A spawned `ringserve` with a thread draining its stderr.
struct Proc {
    child: Child,
    /// Every stderr line so far.
    log: Arc<Mutex<Vec<String>>>,
    /// Each stderr line as it arrives; disconnected once stderr is closed (at exit).
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Spawns the binary with `args`, stdin and stdout detached.
    fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringserve"));
        cmd.args(args).envs(env.iter().copied());
        Proc::spawn_command(cmd)
    }

    /// Spawns `cmd`, stdin and stdout detached.
    fn spawn_command(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringserve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Proc { child, log, lines }
    }

    /// The next stderr line, waiting until `deadline`.
    fn next_line(&self, deadline: Instant) -> Result<String, mpsc::RecvTimeoutError> {
        self.lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    }

    /// Waits at most `timeout` for the process to close its stderr (which it does by exiting,
    /// and which means every line has been collected), then reaps it.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_line(deadline) {
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
            }
        }
        Some(self.child.wait().expect("wait"))
    }

    /// Waits for the process (`what` it is, for the message) to exit within `timeout`;
    /// returns its exit status and stderr lines, or kills it and panics.
    fn exit_within(mut self, timeout: Duration, what: &str) -> (ExitStatus, Vec<String>) {
        let Some(status) = self.wait(timeout) else {
            let _ = self.kill();
            panic!(
                "{what} still running after {timeout:?}; stderr:\n{}",
                self.stderr().join("\n")
            );
        };
        (status, self.stderr())
    }

    /// The stderr lines collected so far.
    fn stderr(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Kills (SIGKILL) and reaps the process.
    fn kill(&mut self) -> io::Result<ExitStatus> {
        let _ = self.child.kill();
        self.child.wait()
    }
}

/// The value following `flag` in `args`, if any.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

impl Server {
    /// Starts the server on `root` (see [`server_args`] for the arguments) and waits until it
    /// has printed one `listening on` line per `--listen` and one `worker` line per worker.
    /// Unless `extra` picks the backend, asserts that every worker runs `backend`.
    pub fn start(backend: Backend, root: &Path, extra: &[&str]) -> Server {
        let args = server_args(backend, root, extra);
        let want_addrs = args.iter().filter(|a| *a == "--listen").count();
        let want_workers: usize = flag_value(&args, "--workers")
            .and_then(|n| n.parse().ok())
            .expect("--workers N");
        let mut proc = Proc::spawn(&args, &[]);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut addrs = Vec::new();
        let mut workers = Vec::new();
        while addrs.len() < want_addrs || workers.len() < want_workers {
            let line = match proc.next_line(deadline) {
                Ok(line) => line,
                Err(e) => {
                    let status = proc.kill();
                    panic!(
                        "server did not start ({e}; exit {status:?}); args {args:?}; stderr:\n{}",
                        proc.stderr().join("\n")
                    );
                }
            };
            if let Some(addr) = line.strip_prefix("ringserve: listening on ") {
                let addr = addr.trim();
                let parsed = addr.parse();
                addrs.push(parsed.unwrap_or_else(|e| panic!("bad address {addr:?}: {e}")));
            } else if line.starts_with("ringserve: worker ") {
                workers.push(line);
            }
        }
        if !extra.contains(&"--backend") {
            for line in &workers {
                let picked = worker_backend(line);
                assert_eq!(picked, Some(backend.as_arg()), "worker line {line:?}");
            }
        }
        Server { proc, addrs }
    }

    /// Runs the server with the same arguments as [`Server::start`] expecting it to exit
    /// within `timeout` (e.g. on a start-up error); returns its exit status and stderr lines.
    pub fn run_to_exit(
        backend: Backend,
        root: &Path,
        extra: &[&str],
        timeout: Duration,
    ) -> (ExitStatus, Vec<String>) {
        let args = server_args(backend, root, extra);
        Proc::spawn(&args, &[]).exit_within(timeout, &format!("server with {args:?}"))
    }

    /// The first bound listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every bound listen address, in the order the server printed them.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Opens a new client connection to [`Server::addr`].
    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr())
    }

    /// One request on a new connection; returns the response.
    pub fn fetch(&self, request: &str) -> Response {
        self.connect().roundtrip(request)
    }

    /// Everything the server has written to stderr so far, one entry per line.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.proc.stderr()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// Sends a signal (`"TERM"`, `"INT"`, ...) to the server with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.proc.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Waits for the server to exit, panicking after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.proc.wait(timeout) {
            Some(status) => status,
            None => panic!("server still running after {timeout:?}"),
        }
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.proc.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        if thread::panicking() {
            eprintln!("--- server stderr ---\n{}", self.stderr_lines().join("\n"));
        }
    }
}

/// The backend named by a start-up line `ringserve: worker N: backend NAME (...)`.
pub fn worker_backend(line: &str) -> Option<&str> {
    line.split_once(": backend ")?.1.split_whitespace().next()
}

/// One client connection with its own receive buffer, so pipelined responses can be read one
/// after another. Every read and write times out after [`IO_TIMEOUT`].
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Conn::wrap(stream)
    }

    /// A connected stream with the test timeouts and `TCP_NODELAY` set.
    fn wrap(stream: TcpStream) -> Conn {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects to `addr` from the local address `from` (any of 127.0.0.0/8 on loopback), so
    /// tests can play several clients.
    pub fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> Conn {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
        sock.bind(&SocketAddr::new(from, 0).into())
            .unwrap_or_else(|e| panic!("bind {from}: {e}"));
        sock.connect_timeout(&addr.into(), IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr} from {from}: {e}"));
        Conn::wrap(sock.into())
    }

    /// The underlying socket (for socket options and polling).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Bytes received but not consumed yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .expect("write request");
    }

    /// Writes all of `bytes`, tolerating the server having closed the connection already (the
    /// response it sent before closing is still readable).
    pub fn send_lossy(&mut self, bytes: impl AsRef<[u8]>) {
        if let Err(e) = self.stream.write_all(bytes.as_ref()) {
            assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ),
                "write request: {e}"
            );
        }
    }

    /// Sends `request` and reads one response (without a body if `request` is a HEAD).
    pub fn roundtrip(&mut self, request: &str) -> Response {
        self.send(request);
        self.read_response(request.starts_with("HEAD "))
    }

    /// Reads from the socket once, appending to the buffer; panics on EOF, error or timeout.
    /// An interrupted read (EINTR, which a socket read with a timeout is not restarted
    /// after) reads nothing.
    fn read_more(&mut self, what: &str) {
        let mut chunk = vec![0; 256 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => panic!(
                "connection closed while reading {what}; unread: {}",
                lossy(&self.buf)
            ),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading {what}: {e}; unread: {}", lossy(&self.buf)),
        }
    }

    /// Makes sure at least `n` bytes have arrived (without consuming them).
    pub fn fill(&mut self, n: usize) {
        while self.buf.len() < n {
            self.read_more("raw bytes");
        }
    }

    /// Reads one response. The body is empty for a response to HEAD (`head`), 1xx, 204 and
    /// 304; otherwise it is exactly `Content-Length` bytes, or everything until EOF when the
    /// response has no Content-Length.
    pub fn read_response(&mut self, head: bool) -> Response {
        let head_end = loop {
            if let Some(i) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.buf.len() < 64 * 1024, "response head too long");
            self.read_more("response head");
        };
        let text = String::from_utf8(self.buf[..head_end - 4].to_vec())
            .unwrap_or_else(|_| panic!("non-UTF-8 response head: {}", lossy(&self.buf)));
        self.buf.drain(..head_end);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap().to_string();
        let status = parts
            .next()
            .filter(|s| s.len() == 3)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        assert!(
            version.starts_with("HTTP/1."),
            "bad status line {status_line:?}"
        );
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {line:?} in\n{text}"));
                assert!(
                    !name.is_empty() && !name.contains([' ', '\t']),
                    "bad header name {line:?}"
                );
                (name.to_string(), value.trim().to_string())
            })
            .collect();
        let mut resp = Response {
            status,
            version,
            headers,
            body: Vec::new(),
        };
        assert!(
            resp.header("Transfer-Encoding").is_none(),
            "unexpected Transfer-Encoding: {resp:?}"
        );
        assert!(
            resp.header_count("Content-Length") <= 1,
            "several Content-Length: {resp:?}"
        );
        if head || status < 200 || status == 204 || status == 304 {
            return resp;
        }
        match resp.content_length() {
            Some(len) => {
                let len = usize::try_from(len).unwrap();
                let mut body = Vec::with_capacity(len);
                let take = len.min(self.buf.len());
                body.extend(self.buf.drain(..take));
                let mut chunk = vec![0; 256 * 1024];
                while body.len() < len {
                    let want = chunk.len().min(len - body.len());
                    match self.stream.read(&mut chunk[..want]) {
                        Ok(0) => panic!(
                            "connection closed after {} of {len} body bytes: {resp:?}",
                            body.len()
                        ),
                        Ok(n) => body.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => panic!(
                            "reading body ({} of {len} bytes): {e}: {resp:?}",
                            body.len()
                        ),
                    }
                }
                resp.body = body;
            }
            None => resp.body = self.read_until_closed(),
        }
        resp
    }

    /// Asserts that the server's last response left in the same segment as its FIN: this
    /// socket got no segment without data but the SYN-ACK and the ACK of its request.
    pub fn assert_fin_came_with_data(&self, what: &str) {
        let (all, data) = self.segments_in();
        assert!(
            all - data <= 2,
            "{what}: {all} segments in, {data} with data"
        );
    }

    /// Segments this socket has received so far, as `(all, carrying data)`, from the kernel's
    /// TCP_INFO as shown by `ss(8)` (iproute2).
    fn segments_in(&self) -> (u64, u64) {
        let port = self.stream.local_addr().unwrap().port();
        let out = Command::new("ss")
            .args(["-tinH", "state", "all", &format!("sport = :{port}")])
            .output()
            .expect("run ss(8) from iproute2");
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix(':')?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} for port {port} in ss output: {text}"))
        };
        (field("segs_in"), field("data_segs_in"))
    }

    /// Writes `bytes` from another thread, then shuts the write side down, so a test can
    /// read while the client is still sending. The thread returns how the writing went.
    pub fn send_in_background(&self, bytes: Vec<u8>) -> thread::JoinHandle<io::Result<()>> {
        let mut stream = self.stream.try_clone().expect("clone the stream");
        thread::spawn(move || {
            stream.write_all(&bytes)?;
            stream.shutdown(std::net::Shutdown::Write)
        })
    }

    /// Reads until the server closes the connection (EOF or reset) and returns the bytes that
    /// arrived meanwhile (including any not consumed yet). Panics if the connection is still
    /// open after [`IO_TIMEOUT`].
    pub fn read_until_closed(&mut self) -> Vec<u8> {
        self.read_to_close(true)
    }

    /// Like [`Conn::read_until_closed`], but only the server's FIN will do: panics on a
    /// reset.
    pub fn read_until_eof(&mut self) -> Vec<u8> {
        self.read_to_close(false)
    }

    fn read_to_close(&mut self, reset_ok: bool) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buf);
        let mut chunk = vec![0; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return rest,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
                Err(e) if reset_ok && e.kind() == io::ErrorKind::ConnectionReset => return rest,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "server did not close the connection cleanly ({e}); received: {}",
                    lossy(&rest)
                ),
            }
        }
    }
}

/// A response as read by [`Conn::read_response`].
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Protocol version of the status line, e.g. `HTTP/1.1`.
    pub version: String,
    /// Header fields in order, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of header `name`; panics if it is missing.
    pub fn expect_header(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header: {self:?}"))
    }

    /// How many header fields are called `name`.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// Whether header `name` lists `token` (comma-separated, case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The parsed Content-Length, if present.
    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {v:?}"))
        })
    }

    /// Whether the server announced it closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.has_token("Connection", "close")
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} {}", self.version, self.status)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {value}")?;
        }
        write!(f, "<{} body bytes> {}", self.body.len(), lossy(&self.body))
    }
}

/// Up to 300 bytes of `bytes` as lossy text, for failure messages.
pub fn lossy(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(300)];
    let more = if bytes.len() > shown.len() { "..." } else { "" };
    format!("{:?}{more}", String::from_utf8_lossy(shown))
}

/// An HTTP/1.1 request head with `Host: localhost` and the given extra header lines.
pub fn req(method: &str, target: &str, headers: &[&str]) -> String {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

/// `GET target` as an HTTP/1.1 request with `Host: localhost`.
pub fn get(target: &str) -> String {
    req("GET", target, &[])
}

/// One part of a `multipart/byteranges` body.
#[derive(Debug)]
pub struct Part {
    /// The part's Content-Type, if any.
    pub content_type: Option<String>,
    /// First byte position from the part's Content-Range.
    pub first: u64,
    /// Last byte position (inclusive).
    pub last: u64,
    /// Complete length from the Content-Range.
    pub total: u64,
    /// The part's bytes.
    pub data: Vec<u8>,
}

/// Parses `bytes FIRST-LAST/TOTAL`.
pub fn parse_content_range(value: &str) -> (u64, u64, u64) {
    let parse = || {
        let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
        let (first, last) = range.split_once('-')?;
        Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
    };
    let (first, last, total) = parse().unwrap_or_else(|| panic!("bad Content-Range {value:?}"));
    assert!(first <= last && last < total, "bad Content-Range {value:?}");
    (first, last, total)
}

/// Parses a `206 multipart/byteranges` response body into its parts, reading each part's data
/// by the length its Content-Range announces and checking every delimiter on the way.
pub fn parse_multipart(resp: &Response) -> Vec<Part> {
    let ctype = resp.expect_header("Content-Type");
    let mut params = ctype.split(';');
    let mime = params.next().unwrap().trim();
    assert!(
        mime.eq_ignore_ascii_case("multipart/byteranges"),
        "Content-Type {ctype:?}"
    );
    let boundary = params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .unwrap_or_else(|| panic!("no boundary in {ctype:?}"));
    let delim = format!("--{boundary}");
    let body = &resp.body[..];
    let mut pos = memchr::memmem::find(body, delim.as_bytes())
        .unwrap_or_else(|| panic!("no delimiter in {resp:?}"));
    assert!(
        body[..pos].iter().all(|b| b.is_ascii_whitespace()),
        "preamble before first delimiter"
    );
    let mut parts = Vec::new();
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            let epilogue = &body[pos + 2..];
            assert!(
                epilogue.is_empty() || epilogue == b"\r\n",
                "epilogue {}",
                lossy(epilogue)
            );
            return parts;
        }
        assert!(body[pos..].starts_with(b"\r\n"), "no CRLF after delimiter");
        pos += 2;
        let head_len = memchr::memmem::find(&body[pos..], b"\r\n\r\n").expect("part head end");
        let head = std::str::from_utf8(&body[pos..pos + head_len]).expect("UTF-8 part head");
        pos += head_len + 4;
        let field = |name: &str| {
            head.split("\r\n").find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let range = field("Content-Range").unwrap_or_else(|| panic!("part without range"));
        let (first, last, total) = parse_content_range(&range);
        let end = pos + usize::try_from(last - first + 1).unwrap();
        assert!(end <= body.len(), "part {range} truncated");
        parts.push(Part {
            content_type: field("Content-Type"),
            first,
            last,
            total,
            data: body[pos..end].to_vec(),
        });
        pos = end;
        assert!(
            body[pos..].starts_with(b"\r\n") && body[pos + 2..].starts_with(delim.as_bytes()),
            "part {range} not followed by a delimiter: {}",
            lossy(&body[pos..])
        );
        pos += 2;
    }
}

/// The empty file.
pub const EMPTY: &str = "empty.txt";
/// A 1-byte file.
pub const ONE: &str = "one.txt";
/// A 4096-byte HTML file.
pub const PAGE: &str = "page.html";
/// A 1 MiB file.
pub const MIB: &str = "mib.bin";
/// The sparse file of [`BIG_LEN`] bytes with [`BIG_MARKS`] written into it.
pub const BIG: &str = "big.bin";
/// A small CSS file.
pub const CSS: &str = "style.css";
/// A small PNG file.
pub const PNG: &str = "image.png";
/// A file with an extension no MIME table knows.
pub const UNKNOWN: &str = "data.qzx";
/// Length of [`BIG`]: over 64 MiB, so offsets past 64 MiB can be tested.
pub const BIG_LEN: u64 = 65 * 1024 * 1024 + 123;
/// Offsets in [`BIG`] where non-zero marker bytes are written.
pub const BIG_MARKS: [u64; 4] = [0, 1 << 20, (64 << 20) + 4321, BIG_LEN - 40];
/// Files with names needing percent-encoding, with a URL path for each.
pub const ODD_NAMES: [(&str, &str); 6] = [
    ("with space.txt", "/with%20space.txt"),
    ("café.txt", "/caf%C3%A9.txt"),
    ("café.txt", "/caf%c3%a9.txt"),
    ("100%.txt", "/100%25.txt"),
    ("a+b.txt", "/a+b.txt"),
    ("a+b.txt", "/a%2Bb.txt"),
];
/// Modification time given to every corpus file: 2020-09-13, well in the past, so that the
/// Last-Modified validator is strong and the date conditionals are deterministic.
pub const MTIME_SECS: u64 = 1_600_000_000;
/// Name of the file beside the root (outside of it) that must never be served.
pub const SECRET: &str = "secret";

/// A name of 200 characters (under NAME_MAX 255), served like any other.
pub fn long_name() -> String {
    format!("{}.txt", "l".repeat(196))
}

/// [`MTIME_SECS`] as a `SystemTime`.
pub fn mtime() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(MTIME_SECS)
}

/// The expected `Last-Modified` value of every corpus file.
pub fn last_modified() -> String {
    httpdate::fmt_http_date(mtime())
}

/// Runs `f` on a fresh thread whose seccomp filter makes each of `syscalls` fail with EPERM.
/// Filters are per thread and inherited by children, so a server spawned inside `f` runs
/// under it while the rest of the test process is unaffected.
pub fn with_denied<T: Send + 'static>(
    syscalls: &[i64],
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    let rules = syscalls.iter().map(|&nr| (nr, vec![])).collect();
    thread::spawn(move || {
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            std::env::consts::ARCH.try_into().expect("supported arch"),
        )
        .expect("filter");
        let program: BpfProgram = filter.try_into().expect("compile filter");
        seccompiler::apply_filter(&program).expect("apply filter");
        f()
    })
    .join()
    .expect("filtered thread")
}

/// `len` pseudo-random bytes determined by `seed`, so misplaced offsets show up.
pub fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut x = seed.bytes().fold(0x9E37_79B9_7F4A_7C15_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    }) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A temporary directory holding the served `root/` and, beside it, the [`SECRET`] file.
///
/// `root/` holds [`EMPTY`], [`ONE`], [`PAGE`], [`MIB`], [`BIG`], [`CSS`], [`PNG`], [`UNKNOWN`],
/// the [`ODD_NAMES`] files, [`long_name`], `index.html`, `.hidden`, `.private/data.txt`,
/// `dir/index.html`, `dir/inner.txt`, `noindex/file.txt`, `a/b.txt`, and symlinks
/// `link-inside.html` (to `page.html`), `link-outside` (to `../secret`), `link-abs-outside` (to
/// the secret's absolute path) and `linkdir-outside` (to `..`).
pub struct Corpus {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Corpus {
    /// Creates the tree (cheap: the big file is sparse).
    pub fn new() -> Corpus {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        for sub in ["dir", "noindex", "a", ".private"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        let secret = dir.path().join(SECRET);
        fs::write(&secret, Corpus::SECRET_TEXT).unwrap();
        let corpus = Corpus { dir, root };
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (EMPTY.into(), Vec::new()),
            (ONE.into(), b"x".to_vec()),
            (PAGE.into(), noise(PAGE, 4096)),
            (MIB.into(), noise(MIB, 1 << 20)),
            (CSS.into(), b"body { color: #123456; }\n".to_vec()),
            (
                PNG.into(),
                [b"\x89PNG\r\n\x1a\n".to_vec(), noise(PNG, 300)].concat(),
            ),
            (UNKNOWN.into(), noise(UNKNOWN, 777)),
            ("index.html".into(), b"<h1>root index</h1>\n".to_vec()),
            (".hidden".into(), b"hidden dotfile\n".to_vec()),
            (
                ".private/data.txt".into(),
                b"inside a dot directory\n".to_vec(),
            ),
            ("dir/index.html".into(), b"<h1>dir index</h1>\n".to_vec()),
            ("dir/inner.txt".into(), b"inner\n".to_vec()),
            ("noindex/file.txt".into(), b"no index here\n".to_vec()),
            ("a/b.txt".into(), b"a/b\n".to_vec()),
            (long_name(), noise("long", 100)),
        ];
        for (name, _) in ODD_NAMES {
            files.push((name.into(), format!("odd file {name}\n").into_bytes()));
        }
        for (name, data) in &files {
            fs::write(corpus.path(name), data).unwrap();
        }
        let big = File::create(corpus.path(BIG)).unwrap();
        big.set_len(BIG_LEN).unwrap();
        for off in BIG_MARKS {
            big.write_all_at(&noise(&off.to_string(), 40), off).unwrap();
        }
        drop(big);
        for name in files.iter().map(|(n, _)| n.as_str()).chain([BIG]) {
            let file = File::options().write(true).open(corpus.path(name)).unwrap();
            file.set_modified(mtime()).unwrap();
        }
        symlink(PAGE, corpus.path("link-inside.html")).unwrap();
        symlink(format!("../{SECRET}"), corpus.path("link-outside")).unwrap();
        symlink(&secret, corpus.path("link-abs-outside")).unwrap();
        symlink("..", corpus.path("linkdir-outside")).unwrap();
        corpus
    }

    /// Content of the [`SECRET`] file outside the root.
    pub const SECRET_TEXT: &'static str = "ringserve-test: this secret must never be served 7f3a";

    /// The served root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The temporary directory containing the root (a place for files that are not served).
    pub fn outside(&self) -> &Path {
        self.dir.path()
    }

    /// Path of `rel` under the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The bytes of `rel` under the root, as on disk.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Creates a FIFO called `rel` under the root.
    pub fn mkfifo(&self, rel: &str) {
        let status = Command::new("mkfifo")
            .arg(self.path(rel))
            .status()
            .expect("run mkfifo");
        assert!(status.success(), "mkfifo failed");
    }
}

impl Server {
    /// Starts the binary with exactly `args` and the extra environment `env` (no default
    /// flags added) and waits until it has printed `addrs` `listening on` lines and `workers`
    /// `worker` lines.
    pub fn start_exact(
        args: &[&str],
        env: &[(&str, &str)],
        addrs: usize,
        workers: usize,
    ) -> Server {
        let what = format!("args {args:?}");
        Server::start_proc(Proc::spawn(args, env), &what, addrs, workers)
    }

    /// Starts `cmd` (which runs the binary, maybe through a wrapper) and waits as
    /// [`Server::start_exact`] does.
    pub fn start_command(cmd: Command, addrs: usize, workers: usize) -> Server {
        let what = format!("{cmd:?}");
        Server::start_proc(Proc::spawn_command(cmd), &what, addrs, workers)
    }

    /// Runs `cmd` expecting it to exit within `timeout`; returns its exit status and stderr.
    pub fn command_to_exit(cmd: Command, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let what = format!("{cmd:?}");
        Proc::spawn_command(cmd).exit_within(timeout, &what)
    }

    fn start_proc(mut proc: Proc, what: &str, addrs: usize, workers: usize) -> Server {
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut found, mut started) = (Vec::new(), 0);
        while found.len() < addrs || started < workers {
            let Ok(line) = proc.next_line(deadline) else {
                let status = proc.kill();
                panic!(
                    "server did not start (exit {status:?}); {what}; stderr:\n{}",
                    proc.stderr().join("\n")
                );
            };
            if let Some(addr) = line.strip_prefix("ringserve: listening on ") {
                found.push(addr.trim().parse().expect("listen address"));
            } else if line.starts_with("ringserve: worker ") {
                started += 1;
            }
        }
        Server { proc, addrs: found }
    }

    /// Waits up to [`START_TIMEOUT`] for a stderr line starting with `prefix` and returns the
    /// rest of it.
    pub fn wait_line(&self, prefix: &str) -> String {
        self.wait_lines(prefix, 1).remove(0)
    }

    /// Waits up to [`START_TIMEOUT`] for `n` stderr lines starting with `prefix` and returns
    /// the rest of each.
    pub fn wait_lines(&self, prefix: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let found: Vec<String> = self
                .stderr_lines()
                .iter()
                .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no line starting with {prefix:?}; stderr:\n{}",
                self.stderr_lines().join("\n")
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}
