//! A disk that misbehaves, simulated with a FUSE file system (`tests/fuse/gatefs.py`): a
//! stalled write holds up only the upload that made it, never its worker's other clients;
//! a read error cuts the response short and closes it. Nothing leaks, and the server goes on
//! serving.

mod common;

use common::*;

backend_tests!(
    a_stalled_disk_holds_up_only_its_upload,
    a_read_error_cuts_the_response_short,
);

/// Descriptors the process holds.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A gatefs holding `small.txt` and an `incoming/` directory, and a one-worker server on it
/// taking uploads there.
fn setup(backend: Backend) -> (GateFs, Server) {
    let fs = GateFs::mount();
    std::fs::write(fs.source().join("small.txt"), "small").unwrap();
    std::fs::create_dir(fs.source().join("incoming")).unwrap();
    let args = [
        "--workers",
        "1",
        "--uploads",
        "/incoming/",
        "--upload-auth",
        "none",
    ];
    let server = Server::start(backend, fs.mount_point(), &args);
    assert_eq!(server.fetch(&get("/small.txt")).body, b"small");
    (fs, server)
}

/// While the disk holds an upload's write, the same worker answers other requests, and
/// the upload completes byte-exact once the disk lets it through. (A worker that wrote
/// itself would be stuck in that write: the request in between would time out.)
fn a_stalled_disk_holds_up_only_its_upload(backend: Backend) {
    let (mut fs, server) = setup(backend);
    let data = noise("stalled", 3 << 20);
    fs.command("close");
    let mut upload = server.connect();
    let head = req(
        "PUT",
        "/incoming/held.bin",
        &[&format!("Content-Length: {}", data.len())],
    );
    upload.send(head);
    let sending = upload.send_in_background(data.clone());
    let part = fs.expect("blocked");
    assert!(part.ends_with(".part"), "{part}");
    // The worker is free: other clients are served, the upload's state can be asked.
    for _ in 0..3 {
        assert_eq!(server.fetch(&get("/small.txt")).body, b"small");
    }
    let r = server.fetch(&req("HEAD", "/incoming/held.bin", &[]));
    assert_eq!(r.status, 308, "{r:?}");
    fs.command("open");
    sending.join().unwrap().unwrap();
    let r = upload.read_response(false);
    assert_eq!(r.status, 201, "{r:?}");
    let stored = std::fs::read(fs.source().join("incoming/held.bin")).unwrap();
    assert!(
        stored == data,
        "{} bytes published, other bytes",
        stored.len()
    );
}

/// A file whose reads fail with EIO partway (a bad sector): the response is cut short and
/// its connection closed at once, never padded or hung; other files are still served and
/// no descriptor is left behind.
fn a_read_error_cuts_the_response_short(backend: Backend) {
    let (mut fs, server) = setup(backend);
    let data = noise("bad sector", 8 << 20);
    std::fs::write(fs.source().join("bad.bin"), &data).unwrap();
    // Opened (and kept in the open-file cache) before its reads fail.
    assert_eq!(server.fetch(&req("HEAD", "/bad.bin", &[])).status, 200);
    let rest = fds(server.pid());
    fs.command("fail bad.bin");
    let mut conn = server.connect();
    conn.send(get("/bad.bin"));
    let got = conn.read_until_closed();
    assert!(got.len() < data.len(), "{} bytes: not cut short", got.len());
    assert!(!got.is_empty(), "no answer at all");
    assert_eq!(server.fetch(&get("/small.txt")).body, b"small");
    let started = std::time::Instant::now();
    while fds(server.pid()) > rest {
        assert!(started.elapsed() < IO_TIMEOUT, "descriptors left behind");
        std::thread::yield_now();
    }
}
