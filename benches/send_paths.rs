//! The ways the engine can put a small file's response on a socket, over loopback TCP: `send`
//! of the head plus `sendfile` of the body (the usual path), one `sendfile` of a prebuilt
//! head-and-body memfd (prebuilt responses, see `src/engine/prebuilt.rs`; `tee` of a pipe plus
//! one `splice`, how they were kept until 2026-12-06, is in perf/RESULTS.md), and one `send`
//! of the whole response from memory (the floor's way, which would put file bytes
//! through user space). A thread drains the other end; each iteration sends one whole
//! response. The figures back the choice in perf/RESULTS.md and would show a kernel that
//! changes it. Needs two idle cores: `cargo bench --bench send_paths`.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::thread::{self, JoinHandle};

use criterion::{criterion_group, criterion_main, Criterion};
use ringserve::sys;

/// A typical head of a 200 for a stored file (its Content-Length is not checked here).
const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nServer: ringserve\r\n\
Date: Fri, 27 Nov 2026 21:00:00 GMT\r\nContent-Type: application/octet-stream\r\n\
Content-Length: 1024\r\nLast-Modified: Fri, 27 Nov 2026 20:00:00 GMT\r\n\
ETag: \"6928ad40-400-1a2b\"\r\nAccept-Ranges: bytes\r\n\r\n";

/// A connected loopback pair: the sending end, and the thread reading the other end to EOF.
fn pair() -> (TcpStream, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tx = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    tx.set_nodelay(true).unwrap();
    let (mut rx, _) = listener.accept().unwrap();
    let drain = thread::spawn(move || {
        let mut buf = vec![0; 1 << 16];
        while rx.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    (tx, drain)
}

/// Calls `op` until it moves some bytes (the engine's wrappers never block), returning how many.
fn moved(mut op: impl FnMut() -> io::Result<usize>) -> usize {
    loop {
        match op() {
            Ok(n) if n > 0 => return n,
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => panic!("{e}"),
            _ => std::hint::spin_loop(),
        }
    }
}

/// Sends the first `len` bytes of `file` on `tx`, however many calls it takes.
fn sendfile_all(tx: BorrowedFd<'_>, file: BorrowedFd<'_>, len: usize) {
    let mut at = 0;
    while at < len {
        at += moved(|| sys::sendfile(tx, file, at as u64, (len - at) as u64));
    }
}

fn send_paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_paths");
    for size in [1024, 16 * 1024] {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![b'x'; size]).unwrap();

        group.bench_function(format!("send+sendfile {size}"), |b| {
            let (tx, drain) = pair();
            b.iter(|| {
                let mut done = 0;
                while done < HEAD.len() {
                    done += moved(|| sys::send(tx.as_fd(), &HEAD[done..], true));
                }
                sendfile_all(tx.as_fd(), file.as_fd(), size);
            });
            drop(tx);
            drain.join().unwrap();
        });

        group.bench_function(format!("sendfile of a memfd {size}"), |b| {
            let (tx, drain) = pair();
            let mut copy = sys::memfd("prebuilt").unwrap();
            copy.write_all(HEAD).unwrap();
            copy.write_all(&vec![b'x'; size]).unwrap();
            b.iter(|| sendfile_all(tx.as_fd(), copy.as_fd(), HEAD.len() + size));
            drop(tx);
            drain.join().unwrap();
        });

        group.bench_function(format!("send from memory {size}"), |b| {
            let (tx, drain) = pair();
            let mut response = HEAD.to_vec();
            response.resize(HEAD.len() + size, b'x');
            b.iter(|| {
                let mut done = 0;
                while done < response.len() {
                    done += moved(|| sys::send(tx.as_fd(), &response[done..], false));
                }
            });
            drop(tx);
            drain.join().unwrap();
        });
    }
    group.finish();
}

criterion_group!(benches, send_paths);
criterion_main!(benches);
