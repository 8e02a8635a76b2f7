//! Running out of descriptors must not make a worker spin: with more pending connections than
//! its fd limit allows, the server rests its listener (as nginx does) instead of retrying
//! accept in a tight loop, and serves again once descriptors free up. Running out of memory
//! must not abort it: a connection there is no room for is answered 503 and closed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{backend_tests, get, Backend, Conn, Corpus, Server};

backend_tests!(
    fd_exhaustion_neither_spins_nor_wedges,
    memory_exhaustion_refuses_with_503_instead_of_aborting,
);

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after_name.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn fd_exhaustion_neither_spins_nor_wedges(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--workers", "1"]);
    let limit = Command::new("prlimit")
        .args(["--pid", &server.pid().to_string(), "--nofile=48:48"])
        .status()
        .expect("run prlimit");
    assert!(limit.success());
    let held: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    let before = cpu_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(server.pid()) - before;
    // A spinning worker burns about 100 ticks a second; a resting one next to nothing.
    assert!(
        used < 50,
        "server used {used} ticks in 1 s while out of descriptors"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = Conn::connect(server.addr());
        conn.send(get("/index.html"));
        let resp = conn.read_response(false);
        if resp.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not serving again after descriptors freed"
        );
    }
}

/// A memory cgroup of its own for a test (v1 where the memory controller is mounted on its
/// own, else v2), removed when dropped; `None` where this process may not create one.
struct Cgroup {
    dir: std::path::PathBuf,
    limit_file: &'static str,
}

impl Cgroup {
    fn create(name: &str) -> Option<Cgroup> {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let (base, limit_file) = ringserve::sys::memory_cgroup(&cgroups)?;
        let dir = std::path::Path::new(&base).join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cgroup = Cgroup { dir, limit_file };
        cgroup.limit("1073741824").then_some(cgroup)
    }

    /// Sets the memory limit (bytes); whether the kernel took it.
    fn limit(&self, bytes: &str) -> bool {
        std::fs::write(self.dir.join(self.limit_file), bytes).is_ok()
    }

    /// A command that joins this cgroup and then runs the server with `args`.
    fn run(&self, args: &[&str]) -> Command {
        let procs = self.dir.join("cgroup.procs");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "echo $$ > '{}' && exec \"$0\" \"$@\"",
                procs.display()
            ))
            .arg(env!("CARGO_BIN_EXE_ringserve"))
            .args(args);
        cmd
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The resident set of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    kb << 10
}

fn memory_exhaustion_refuses_with_503_instead_of_aborting(backend: Backend) {
    let Some(cgroup) = Cgroup::create(&format!("ringserve-test-{}", backend.as_arg())) else {
        eprintln!("no memory cgroup can be created here: test skipped");
        return;
    };
    let corpus = Corpus::new();
    std::fs::write(corpus.path("f"), b"hello\n").unwrap();
    let root = corpus.root().to_str().unwrap();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--access-log",
        "off",
        "--backend",
        backend.as_arg(),
        "--root",
        root,
    ];
    let mut server = Server::start_command(cgroup.run(&args), 1, 1);
    let mut held: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    for conn in &mut held {
        assert_eq!(ask(conn), Some((200, b"hello\n".to_vec())));
    }
    // Less room than the reserve the server keeps (4 MiB): it is short of memory.
    let tight = rss(server.pid()) + (2 << 20);
    assert!(cgroup.limit(&tight.to_string()), "limit {tight}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = ask(&mut TcpStream::connect(server.addr()).unwrap());
        assert!(server.is_running(), "the server died");
        match answer {
            Some((503, _)) => break,
            Some((200, _)) => {}
            other => panic!("answered {other:?}"),
        }
        assert!(Instant::now() < deadline, "never refused");
    }
    // Those it took are still served, exactly.
    for conn in &mut held {
        assert_eq!(ask(conn), Some((200, b"hello\n".to_vec())));
    }
    // With room again, new connections are served again.
    assert!(cgroup.limit("1073741824"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(&mut TcpStream::connect(server.addr()).unwrap()).map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "never served again");
    }
    assert!(server.is_running());
    drop(held);
    drop(server);
}

/// One `GET /f` on `conn`: the status and body, `None` if the connection closed first.
fn ask(conn: &mut TcpStream) -> Option<(u16, Vec<u8>)> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /f HTTP/1.1\r\nHost: a\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head.get(9..12)?.parse().ok()?;
                return Some((status, buf[end + 4..end + 4 + len].to_vec()));
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
