//! Running out of descriptors must not make a worker spin: with more pending connections than
//! its fd limit allows, the server rests its listener (as nginx does) instead of retrying
//! accept in a tight loop, and serves again once descriptors free up.

mod common;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{backend_tests, get, Backend, Conn, Corpus, Server};

backend_tests!(fd_exhaustion_neither_spins_nor_wedges);

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
