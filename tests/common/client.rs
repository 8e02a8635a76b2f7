//! A minimal HTTP/1.1 client that reads responses byte-exact, so tests can check
//! pipelining and body lengths precisely.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;

use super::*;

/// One client connection with its own receive buffer, so pipelined responses can be read one
/// after another. Every read and write times out after [`IO_TIMEOUT`].
pub struct Conn {
    stream: Wire,
    buf: Vec<u8>,
}

/// What a [`Conn`] speaks over: TCP, or TLS (rustls) over TCP.
enum Wire {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Wire {
    fn tcp(&self) -> &TcpStream {
        match self {
            Wire::Plain(s) => s,
            Wire::Tls(s) => &s.sock,
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
        }
    }
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
            stream: Wire::Plain(stream),
            buf: Vec::new(),
        }
    }

    /// Connects to `addr` over TLS with `config`, asking for (and checking) the certificate
    /// of `name`; the handshake completes before this returns.
    pub fn connect_tls(
        addr: SocketAddr,
        name: &str,
        config: &std::sync::Arc<rustls::ClientConfig>,
    ) -> Conn {
        let Wire::Plain(tcp) = Conn::connect(addr).stream else {
            unreachable!("a new connection is plain")
        };
        let server = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
        let conn = rustls::ClientConnection::new(std::sync::Arc::clone(config), server)
            .expect("client connection");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .unwrap_or_else(|e| panic!("TLS handshake with {addr} as {name}: {e}"));
        }
        Conn {
            stream: Wire::Tls(Box::new(tls)),
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

    /// Whether this TLS connection's handshake resumed an earlier session (false for TCP).
    pub fn tls_resumed(&self) -> bool {
        match &self.stream {
            Wire::Plain(_) => false,
            Wire::Tls(s) => s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        }
    }

    /// The underlying socket (for socket options and polling).
    pub fn stream(&self) -> &TcpStream {
        self.stream.tcp()
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

    /// Reads and consumes exactly `n` bytes (a body whose head was read with `head: true`).
    pub fn read_exact_body(&mut self, n: usize) -> Vec<u8> {
        self.fill(n);
        self.buf.drain(..n).collect()
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
        let port = self.stream.tcp().local_addr().unwrap().port();
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
        let mut stream = self.stream.tcp().try_clone().expect("clone the stream");
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
