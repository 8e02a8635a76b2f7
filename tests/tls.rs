//! HTTPS on both backends: exact bytes, keep-alive, pipelining, ranges, SNI, refused old
//! protocols, bad input and silent clients, with certificates made for each test by
//! openssl(1) and checked by a rustls client, curl and `openssl s_client`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use common::*;

backend_tests!(
    files_byte_exact,
    keep_alive_and_pipelining,
    ranges_and_multipart,
    conditional_requests,
    sni_chooses_the_certificate,
    curl_gets_exact_bytes,
    old_protocols_and_weak_suites_refused,
    garbage_is_refused_with_an_alert,
    a_silent_client_is_cut_off,
    plain_and_https_side_by_side,
    reload_swaps_the_certificate_mid_download,
    hsts_on_https_responses_only,
    plain_requests_redirected_to_https,
    sessions_resume,
    a_client_vanishing_mid_body_leaves_the_server_serving,
    ocsp_stapled_when_it_holds,
    aria2c_splits_a_download_over_https,
    uploads_over_https_are_exact,
    kernel_tls_where_the_kernel_has_it,
);

/// A test CA and two server certificates it signed, for `localhost` and `other.test`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ringserve test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        for name in ["localhost", "other.test"] {
            pki.leaf(name);
        }
        pki
    }

    /// Makes `NAME.pem` (signed by the CA, for DNS name `name`) and `NAME.key`.
    fn leaf(&self, name: &str) {
        self.leaf_as(name, name);
    }

    /// Makes `NAME.pem` and `NAME.key` as [`Pki::leaf`] does, with subject `CN=cn`.
    fn leaf_as(&self, name: &str, cn: &str) {
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!("subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n"),
        )
        .expect("write ext");
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &pem,
        ]);
    }

    /// Makes `NAME.ocsp`: the CA's DER OCSP response saying `NAME.pem` is good for a day.
    fn ocsp(&self, name: &str) -> PathBuf {
        let pem = format!("{name}.pem");
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in", &pem])
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl");
        let serial = String::from_utf8_lossy(&out.stdout);
        let serial = serial.trim().trim_start_matches("serial=");
        let index = format!("V\t301231000000Z\t\t{serial}\tunknown\t/CN={name}\n");
        std::fs::write(self.path("index.txt"), index).expect("write index");
        let (req, resp) = (format!("{name}.req"), format!("{name}.ocsp"));
        self.openssl(&[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            &pem,
            "-no_nonce",
            "-reqout",
            &req,
        ]);
        self.openssl(&[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
            "-CA",
            "ca.pem",
            "-reqin",
            &req,
            "-respout",
            &resp,
            "-ndays",
            "1",
        ]);
        self.path(&resp)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The server flags for both certificates (`localhost` first, so the default).
    fn flags(&self) -> Vec<String> {
        let mut flags = vec!["--tls-listen".to_string(), "127.0.0.1:0".to_string()];
        for name in ["localhost", "other.test"] {
            flags.push("--tls-cert".into());
            flags.push(self.path(&format!("{name}.pem")).display().to_string());
            flags.push("--tls-key".into());
            flags.push(self.path(&format!("{name}.key")).display().to_string());
        }
        flags
    }

    /// A rustls client trusting only the test CA.
    fn client(&self) -> Arc<rustls::ClientConfig> {
        self.client_for(rustls::DEFAULT_VERSIONS)
    }

    /// A rustls client trusting only the test CA, offering only `versions`.
    fn client_for(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(self.path("ca.pem")).expect("read ca.pem");
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
        #[allow(deprecated)] // the server's provider (see src/tls/certs.rs)
        let provider = rustls::crypto::ring::default_provider();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// A server on `root` with HTTPS on an ephemeral port, and that port's address.
fn start(
    backend: Backend,
    root: &Path,
    pki: &Pki,
    extra: &[&str],
) -> (Server, std::net::SocketAddr) {
    let flags = pki.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    let server = Server::start(backend, root, &args);
    let addr = server.wait_line("ringserve: listening for https on ");
    let addr = addr.trim().parse().expect("https address");
    (server, addr)
}

fn files_byte_exact(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &[]);
    let mut conn = Conn::connect_tls(addr, "localhost", &pki.client());
    for name in [EMPTY, ONE, PAGE, MIB, CSS, PNG] {
        let resp = conn.roundtrip(&get(&format!("/{name}")));
        assert_eq!(resp.status, 200, "{name}: {resp:?}");
        assert!(resp.body == corpus.read(name), "{name}: body differs");
    }
    let head = conn.roundtrip(&req("HEAD", &format!("/{MIB}"), &[]));
    assert_eq!(head.content_length(), Some(corpus.read(MIB).len() as u64));
    assert!(head.body.is_empty());
}

fn keep_alive_and_pipelining(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &[]);
    let mut conn = Conn::connect_tls(addr, "localhost", &pki.client());
    let names = [ONE, PAGE, MIB, ONE, EMPTY];
    let batch: String = names.iter().map(|n| get(&format!("/{n}"))).collect();
    conn.send(batch);
    for name in names {
        let resp = conn.read_response(false);
        assert_eq!(resp.status, 200, "{name}");
        assert!(resp.body == corpus.read(name), "{name}: body differs");
        assert!(!resp.closes(), "{name}: kept alive");
    }
    let last = conn.roundtrip(&req("GET", &format!("/{ONE}"), &["Connection: close"]));
    assert!(last.closes());
    assert!(last.body == corpus.read(ONE));
    assert!(
        conn.read_until_eof().is_empty(),
        "closed after the last response"
    );
}

fn ranges_and_multipart(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &[]);
    let file = corpus.read(MIB);
    let mut conn = Conn::connect_tls(addr, "localhost", &pki.client());
    let one = conn.roundtrip(&req(
        "GET",
        &format!("/{MIB}"),
        &["Range: bytes=1000-70999"],
    ));
    assert_eq!(one.status, 206);
    assert!(one.body == file[1000..71000]);
    let many = conn.roundtrip(&req(
        "GET",
        &format!("/{MIB}"),
        &["Range: bytes=0-9,500000-"],
    ));
    assert_eq!(many.status, 206);
    let parts = parse_multipart(&many);
    assert_eq!(parts.len(), 2);
    assert!(parts[0].data == file[..10]);
    assert!(parts[1].data == file[500000..]);
}

fn conditional_requests(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &[]);
    let mut conn = Conn::connect_tls(addr, "localhost", &pki.client());
    let first = conn.roundtrip(&get(&format!("/{PAGE}")));
    let etag = first.expect_header("ETag").to_string();
    let again = conn.roundtrip(&req(
        "GET",
        &format!("/{PAGE}"),
        &[&format!("If-None-Match: {etag}")],
    ));
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
}

/// The subject `openssl s_client` sees when connecting to `addr` with SNI `name` (none for
/// `None`).
fn served_subject(addr: std::net::SocketAddr, name: Option<&str>) -> String {
    let sni = match name {
        Some(name) => vec!["-servername", name],
        None => vec!["-noservername"],
    };
    let (_, text) = s_client(addr, &sni);
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or_else(|| panic!("no subject in s_client output: {text}"))
        .to_string()
}

fn run_with_no_input(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

fn sni_chooses_the_certificate(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &[]);
    // A rustls client checks the certificate against the name it asked for.
    for name in ["localhost", "other.test"] {
        let mut conn = Conn::connect_tls(addr, name, &pki.client());
        assert_eq!(
            conn.roundtrip(&get(&format!("/{ONE}"))).status,
            200,
            "{name}"
        );
    }
    assert!(served_subject(addr, Some("other.test")).contains("other.test"));
    assert!(served_subject(addr, Some("localhost")).contains("localhost"));
    // No SNI, or a name no certificate has: the first certificate.
    assert!(served_subject(addr, None).contains("localhost"));
    assert!(served_subject(addr, Some("unknown.test")).contains("localhost"));
}

fn curl_gets_exact_bytes(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &[]);
    let out_file = pki.path("big.out");
    let url = format!("https://localhost:{}/{BIG}", addr.port());
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--http1.1", "--cacert"])
        .arg(pki.path("ca.pem"))
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())])
        .arg("-o")
        .arg(&out_file)
        .arg(&url);
    let out = run_with_no_input(cmd);
    assert!(out.status.success(), "curl: {out:?}");
    let got = std::fs::read(&out_file).expect("read curl output");
    assert_eq!(got.len() as u64, BIG_LEN);
    assert!(got == corpus.read(BIG), "curl got other bytes");
}

/// Runs `openssl s_client` against `addr` with `args` and no input; returns whether it exited
/// well and what it printed.
fn s_client(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string()])
        .args(args);
    let out = run_with_no_input(cmd);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Whether `openssl s_client` with `args` completes a handshake with `addr`.
fn handshake(addr: std::net::SocketAddr, args: &[&str]) -> bool {
    let (ok, text) = s_client(addr, &[&["-servername", "localhost"][..], args].concat());
    ok && !text.contains("Cipher is (NONE)")
}

fn old_protocols_and_weak_suites_refused(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &[]);
    // Without the cipher option Debian's OpenSSL would refuse TLS 1.1 itself.
    let weak = ["-cipher", "DEFAULT@SECLEVEL=0"];
    assert!(
        !handshake(addr, &[&["-tls1_1"][..], &weak].concat()),
        "TLS 1.1"
    );
    assert!(
        !handshake(addr, &[&["-tls1"][..], &weak].concat()),
        "TLS 1.0"
    );
    let cbc = ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"];
    assert!(!handshake(addr, &cbc), "a CBC suite");
    assert!(handshake(addr, &["-tls1_2"]), "TLS 1.2 with an AEAD suite");
    assert!(handshake(addr, &["-tls1_3"]), "TLS 1.3");
}

fn garbage_is_refused_with_an_alert(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (server, addr) = start(backend, corpus.root(), &pki, &["--admin", "127.0.0.1:0"]);
    let mut conn = Conn::connect(addr);
    conn.send(get("/"));
    let answer = conn.read_until_closed();
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "a TLS alert record: {answer:?}"
    );
    let mut ok = Conn::connect_tls(addr, "localhost", &pki.client());
    assert_eq!(ok.roundtrip(&get(&format!("/{ONE}"))).status, 200);
    // Both handshakes are counted, by outcome.
    let admin = server.wait_line("ringserve: admin listening on ");
    let admin = admin.trim().parse().expect("admin address");
    let metrics = Conn::connect(admin).roundtrip(&get("/metrics"));
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        "ringserve_tls_handshakes_total{outcome=\"done\"} 1",
        "ringserve_tls_handshakes_total{outcome=\"failed\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
}

fn a_silent_client_is_cut_off(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &["--header-timeout", "1s"]);
    let mut conn = Conn::connect(addr);
    // Says nothing: the header timeout covers the handshake too.
    assert!(conn.read_until_closed().is_empty());
}

fn plain_and_https_side_by_side(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (server, addr) = start(backend, corpus.root(), &pki, &[]);
    let plain = server.fetch(&get(&format!("/{PAGE}")));
    let mut conn = Conn::connect_tls(addr, "localhost", &pki.client());
    let secure = conn.roundtrip(&get(&format!("/{PAGE}")));
    // Start-up says whether the kernel takes the records over, and with which ciphers.
    let ktls = server.wait_line("ringserve: https: ");
    assert!(
        ktls.ends_with("records are encrypted in user space")
            || ktls.contains("kernel TLS offload (kTLS) for AES-128-GCM"),
        "{ktls}"
    );
    assert_eq!(plain.status, 200);
    assert!(plain.body == secure.body);
    assert_eq!(plain.header("ETag"), secure.header("ETag"));
}

fn reload_swaps_the_certificate_mid_download(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (server, addr) = start(backend, corpus.root(), &pki, &[]);
    let mut download = Conn::connect_tls(addr, "localhost", &pki.client());
    download.send(get(&format!("/{BIG}")));
    download.fill(64 * 1024);
    // A broken key is refused, and the running certificate stays.
    std::fs::write(pki.path("localhost.key"), "not a key").unwrap();
    server.signal("HUP");
    server.wait_line("ringserve: reload refused: ");
    assert!(!served_subject(addr, Some("localhost")).contains("renewed"));
    // A new pair is taken by new handshakes.
    pki.leaf_as("localhost", "localhost renewed");
    server.signal("HUP");
    server.wait_line("ringserve: configuration reloaded");
    let subject = served_subject(addr, Some("localhost"));
    assert!(
        subject.contains("renewed"),
        "{subject}; {:?}",
        server.stderr_lines()
    );
    let resp = download.read_response(false);
    assert_eq!(resp.status, 200);
    assert!(
        resp.body == corpus.read(BIG),
        "the download under way finished intact"
    );
}

fn hsts_on_https_responses_only(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (server, addr) = start(backend, corpus.root(), &pki, &["--hsts", "31536000"]);
    let mut conn = Conn::connect_tls(addr, "localhost", &pki.client());
    for target in [format!("/{ONE}"), "/missing".to_string()] {
        let resp = conn.roundtrip(&get(&target));
        let hsts = resp.header("Strict-Transport-Security");
        assert_eq!(hsts, Some("max-age=31536000"), "{target}: {resp:?}");
    }
    let plain = server.fetch(&get(&format!("/{ONE}")));
    assert_eq!(plain.header("Strict-Transport-Security"), None);
}

fn plain_requests_redirected_to_https(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (server, addr) = start(backend, corpus.root(), &pki, &["--redirect-https"]);
    let resp = server.fetch("GET /a%20b?x=1 HTTP/1.1\r\nHost: localhost:8080\r\n\r\n");
    assert_eq!(resp.status, 301);
    let want = format!("https://localhost:{}/a%20b?x=1", addr.port());
    assert_eq!(resp.header("Location"), Some(want.as_str()));
    let bad = server.fetch("GET / HTTP/1.1\r\nHost: evil.example/path\r\n\r\n");
    assert_eq!(bad.status, 400);
    let mut conn = Conn::connect_tls(addr, "localhost", &pki.client());
    let secure = conn.roundtrip(&get(&format!("/{ONE}")));
    assert_eq!(secure.status, 200, "HTTPS is served, not redirected");
}

fn sessions_resume(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &[]);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // One client configuration keeps the sessions (and tickets) it was given.
        let client = pki.client_for(&[version]);
        let mut first = Conn::connect_tls(addr, "localhost", &client);
        // The response comes after any tickets, so the client has them once it has read it.
        assert_eq!(first.roundtrip(&get(&format!("/{ONE}"))).status, 200);
        assert!(!first.tls_resumed(), "{version:?}: a full first handshake");
        let mut second = Conn::connect_tls(addr, "localhost", &client);
        assert_eq!(second.roundtrip(&get(&format!("/{ONE}"))).status, 200);
        assert!(
            second.tls_resumed(),
            "{version:?}: the second handshake resumes"
        );
    }
}

fn a_client_vanishing_mid_body_leaves_the_server_serving(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &[]);
    for _ in 0..3 {
        let mut conn = Conn::connect_tls(addr, "localhost", &pki.client());
        conn.send(get(&format!("/{BIG}")));
        conn.fill(64 * 1024);
        // Dropped with the rest of the body unread: the kernel resets the connection.
    }
    let mut conn = Conn::connect_tls(addr, "localhost", &pki.client());
    let resp = conn.roundtrip(&get(&format!("/{MIB}")));
    assert!(resp.body == corpus.read(MIB));
}

/// What `openssl s_client -status` reports about a staple when connecting as `name`.
fn staple(addr: std::net::SocketAddr, name: &str) -> String {
    let (_, text) = s_client(addr, &["-servername", name, "-status"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("OCSP response: no") || l.contains("OCSP Response Status:"));
    line.unwrap_or_else(|| panic!("no OCSP line: {text}"))
        .trim()
        .to_string()
}

fn ocsp_stapled_when_it_holds(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let good = pki.ocsp("localhost");
    let good = good.to_str().unwrap();
    // The second certificate is given the first one's response: it must not be stapled.
    let (server, addr) = start(
        backend,
        corpus.root(),
        &pki,
        &["--tls-ocsp", good, "--tls-ocsp", good],
    );
    let note = server.wait_line("ringserve: --tls-ocsp ");
    assert!(
        note.ends_with("not stapled: it is for another certificate"),
        "{note}"
    );
    assert_eq!(
        staple(addr, "localhost"),
        "OCSP Response Status: successful (0x0)"
    );
    assert_eq!(
        staple(addr, "other.test"),
        "OCSP response: no response sent"
    );
}

fn aria2c_splits_a_download_over_https(backend: Backend) {
    if Command::new("aria2c").arg("--version").output().is_err() {
        eprintln!("aria2c is not installed: test skipped (.ci/run installs it)");
        return;
    }
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (_server, addr) = start(backend, corpus.root(), &pki, &[]);
    let url = format!("https://localhost:{}/{BIG}", addr.port());
    let mut cmd = Command::new("aria2c");
    cmd.args(["-q", "-x8", "-s8", "-k1M", "--allow-overwrite=true"])
        .arg(format!("--ca-certificate={}", pki.path("ca.pem").display()))
        .arg("--async-dns=false")
        .arg("-d")
        .arg(pki.path(""))
        .arg(&url);
    let out = run_with_no_input(cmd);
    assert!(out.status.success(), "aria2c: {out:?}");
    let got = std::fs::read(pki.path(BIG)).expect("read the download");
    assert!(got == corpus.read(BIG), "aria2c got other bytes");
}

/// Upload bodies decrypted from TLS reach the disk through the session (no splice): a
/// `Content-Length` PUT and a chunked one, each several batches long, published byte-exact.
fn uploads_over_https_are_exact(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let extra = ["--uploads", "/incoming/", "--upload-auth", "none"];
    let (_server, addr) = start(backend, corpus.root(), &pki, &extra);
    let data = common::noise("https upload", 3 << 20);
    let src = pki.path("upload.bin");
    std::fs::write(&src, &data).unwrap();
    for (name, chunked) in [("whole.bin", false), ("chunked.bin", true)] {
        let url = format!("https://localhost:{}/incoming/{name}", addr.port());
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--fail", "--http1.1", "-o", "/dev/null", "--cacert"])
            .arg(pki.path("ca.pem"))
            .args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())])
            .arg("-T")
            .arg(&src);
        if chunked {
            cmd.args(["-H", "Transfer-Encoding: chunked"]);
        }
        cmd.arg(&url);
        let out = run_with_no_input(cmd);
        assert!(out.status.success(), "{name}: curl: {out:?}");
        let got = std::fs::read(corpus.root().join("incoming").join(name)).unwrap();
        assert!(
            got == data,
            "{name}: {} bytes published, other bytes",
            got.len()
        );
    }
}

/// Where the kernel has kTLS, sessions go to it after their handshake: bytes stay exact on
/// the same connection before and after (a whole file with sendfile, a range, a small one),
/// and the metrics count the connection. Skips, saying why, where the kernel has none.
fn kernel_tls_where_the_kernel_has_it(backend: Backend) {
    let (corpus, pki) = (Corpus::new(), Pki::new());
    let (server, addr) = start(backend, corpus.root(), &pki, &["--admin", "127.0.0.1:0"]);
    let line = server.wait_line("ringserve: https: ");
    if !line.contains("(kTLS) for") {
        println!("skipped: no kernel TLS here: {line}");
        return;
    }
    let admin: std::net::SocketAddr = server
        .wait_line("ringserve: admin listening on ")
        .trim()
        .parse()
        .unwrap();
    let mut conn = Conn::connect_tls(addr, "localhost", &pki.client());
    for name in [PAGE, MIB, ONE, MIB] {
        let resp = conn.roundtrip(&get(&format!("/{name}")));
        assert!(
            resp.status == 200 && resp.body == corpus.read(name),
            "{name}"
        );
    }
    let range = conn.roundtrip(&req(
        "GET",
        &format!("/{MIB}"),
        &["Range: bytes=1000-70999"],
    ));
    assert_eq!(range.status, 206);
    assert!(range.body == corpus.read(MIB)[1000..71000]);
    let metrics = Conn::connect(admin).roundtrip(&get("/metrics"));
    let text = String::from_utf8(metrics.body).unwrap();
    let handed = text
        .lines()
        .find_map(|l| l.strip_prefix("ringserve_tls_kernel_connections_total "));
    assert_eq!(handed, Some("1"), "{text}");
}
