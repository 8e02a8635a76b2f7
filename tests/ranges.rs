//! Range requests: single ranges, 416, ignored ranges, multipart/byteranges and If-Range.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

backend_tests!(
    single_ranges_all_sizes,
    invalid_range_ignored,
    multi_range_multipart,
    overlapping_ranges_coalesced,
    too_many_ranges_200,
    max_ranges_flag,
    ranges_sum_exceeding_file_200,
    big_file_range_past_64mib,
    if_range,
    prop_single_ranges,
    prop_disjoint_multi_ranges,
);

/// What a single-range request must produce.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// 200 with the whole file (the Range header is ignored).
    Full,
    /// 206 with bytes `first..=last`.
    Partial(u64, u64),
    /// 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

/// A single byte-range-spec.
#[derive(Clone, Copy, Debug)]
enum Spec {
    /// `first-last`
    Closed(u64, u64),
    /// `first-`
    From(u64),
    /// `-suffix` (suffix > 0)
    Suffix(u64),
}

impl Spec {
    fn header(self) -> String {
        match self {
            Spec::Closed(a, b) => format!("Range: bytes={a}-{b}"),
            Spec::From(a) => format!("Range: bytes={a}-"),
            Spec::Suffix(n) => format!("Range: bytes=-{n}"),
        }
    }

    /// The RFC 9110 answer for a representation of `len` (> 0) bytes.
    fn expect(self, len: u64) -> Expect {
        match self {
            Spec::Closed(a, b) if a > b => Expect::Full,
            Spec::Closed(a, _) | Spec::From(a) if a >= len => Expect::Unsatisfiable,
            Spec::Closed(a, b) => Expect::Partial(a, b.min(len - 1)),
            Spec::From(a) => Expect::Partial(a, len - 1),
            Spec::Suffix(n) => Expect::Partial(len - n.min(len), len - 1),
        }
    }
}

/// Asserts `resp` is what `expect` says for `file`.
fn check(resp: &Response, file: &[u8], expect: Expect, what: &str) {
    let len = file.len() as u64;
    match expect {
        Expect::Full => {
            assert_eq!(resp.status, 200, "{what}: {resp:?}");
            assert!(resp.body == file, "{what}: body is not the whole file");
            assert_eq!(resp.header("Content-Range"), None, "{what}");
        }
        Expect::Partial(first, last) => {
            assert_eq!(resp.status, 206, "{what}: {resp:?}");
            assert_eq!(
                resp.header("Content-Range"),
                Some(format!("bytes {first}-{last}/{len}").as_str()),
                "{what}"
            );
            assert_eq!(resp.content_length(), Some(last - first + 1), "{what}");
            assert!(
                resp.body == file[first as usize..=last as usize],
                "{what}: wrong bytes"
            );
        }
        Expect::Unsatisfiable => {
            assert_eq!(resp.status, 416, "{what}: {resp:?}");
            assert_eq!(
                resp.header("Content-Range"),
                Some(format!("bytes */{len}").as_str()),
                "{what}"
            );
        }
    }
}

/// Sends a GET for `name` with the extra header lines and returns the response.
fn get_with(conn: &mut Conn, name: &str, headers: &[&str]) -> Response {
    conn.roundtrip(&req("GET", &format!("/{name}"), headers))
}

fn single_ranges_all_sizes(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let mut conn = server.connect();
    let specs = [
        Spec::Closed(0, 0),
        Spec::From(10),
        Spec::Suffix(10),
        Spec::Closed(5, 999_999_999),
        Spec::From(4096),
        Spec::Closed(4096, 5000),
        Spec::From(BIG_LEN),
    ];
    for name in [ONE, PAGE, MIB, BIG] {
        let file = corpus.read(name);
        for spec in specs {
            let resp = get_with(&mut conn, name, &[&spec.header()]);
            check(
                &resp,
                &file,
                spec.expect(file.len() as u64),
                &format!("{name} {spec:?}"),
            );
            if resp.closes() {
                conn = server.connect();
            }
        }
    }
}

fn invalid_range_ignored(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let file = corpus.read(PAGE);
    let mut conn = server.connect();
    for range in ["bytes=5-2", "items=0-1", "bytes=abc", "bytes=", "bytes=--5"] {
        let resp = get_with(&mut conn, PAGE, &[&format!("Range: {range}")]);
        check(&resp, &file, Expect::Full, range);
    }
}

fn multi_range_multipart(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let file = corpus.read(PAGE);
    let resp = get_with(
        &mut server.connect(),
        PAGE,
        &["Range: bytes=0-9,20-29,100-199"],
    );
    assert_eq!(resp.status, 206, "{resp:?}");
    assert_eq!(resp.header("Content-Range"), None);
    let parts = parse_multipart(&resp);
    let got: Vec<_> = parts.iter().map(|p| (p.first, p.last, p.total)).collect();
    assert_eq!(got, [(0, 9, 4096), (20, 29, 4096), (100, 199, 4096)]);
    for part in &parts {
        assert!(part.data == file[part.first as usize..=part.last as usize]);
        assert_eq!(
            part.content_type.as_deref(),
            Some("text/html; charset=utf-8")
        );
    }
}

/// The parts of a 206 response, single-part or multipart, as (first, data).
fn received_parts(resp: &Response) -> Vec<(u64, Vec<u8>)> {
    assert_eq!(resp.status, 206, "{resp:?}");
    match resp.header("Content-Range") {
        Some(range) => vec![(parse_content_range(range).0, resp.body.clone())],
        None => parse_multipart(resp)
            .into_iter()
            .map(|p| (p.first, p.data))
            .collect(),
    }
}

fn overlapping_ranges_coalesced(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let file = corpus.read(PAGE);
    let resp = get_with(&mut server.connect(), PAGE, &["Range: bytes=0-10,5-20"]);
    let mut covered = [0u32; 21];
    for (first, data) in received_parts(&resp) {
        let first = first as usize;
        assert!(first + data.len() <= 21, "bytes beyond 0-20 received");
        assert!(data == file[first..first + data.len()], "wrong bytes");
        for n in &mut covered[first..first + data.len()] {
            *n += 1;
        }
    }
    assert_eq!(covered, [1; 21], "bytes 0-20 not covered exactly once");
}

fn too_many_ranges_200(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let file = corpus.read(PAGE);
    let ranges = |n: u64| {
        let list: Vec<String> = (0..n)
            .map(|i| format!("{}-{}", i * 60, i * 60 + 1))
            .collect();
        format!("Range: bytes={}", list.join(","))
    };
    let mut conn = server.connect();
    let resp = get_with(&mut conn, PAGE, &[&ranges(65)]);
    check(&resp, &file, Expect::Full, "65 ranges");
    // 64 ranges are honoured (the server may coalesce the close ones).
    let resp = get_with(&mut conn, PAGE, &[&ranges(64)]);
    check_parts(&resp, &file);
}

/// Asserts `resp` is a 206 whose every part carries the right bytes of `file`.
fn check_parts(resp: &Response, file: &[u8]) {
    for (first, data) in received_parts(resp) {
        let first = first as usize;
        assert!(
            data == file[first..first + data.len()],
            "wrong bytes at {first}"
        );
    }
}

fn max_ranges_flag(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &["--max-ranges", "2"]);
    let file = corpus.read(PAGE);
    let mut conn = server.connect();
    let resp = get_with(&mut conn, PAGE, &["Range: bytes=0-1,100-101,200-201"]);
    check(&resp, &file, Expect::Full, "3 ranges over --max-ranges 2");
    let resp = get_with(&mut conn, PAGE, &["Range: bytes=0-1,100-101"]);
    check_parts(&resp, &file);
}

fn ranges_sum_exceeding_file_200(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let file = corpus.read(PAGE);
    let mut conn = server.connect();
    for range in ["bytes=0-3000,1000-4000", "bytes=-4000,-4000", "bytes=0-,0-"] {
        let resp = get_with(&mut conn, PAGE, &[&format!("Range: {range}")]);
        check(&resp, &file, Expect::Full, range);
    }
}

fn big_file_range_past_64mib(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let file = corpus.read(BIG);
    let len = BIG_LEN;
    let mark = BIG_MARKS[2];
    let mut conn = server.connect();
    for spec in [
        Spec::Closed(mark - 100, mark + 4999),
        Spec::From(64 << 20),
        Spec::Suffix(200),
    ] {
        let resp = get_with(&mut conn, BIG, &[&spec.header()]);
        check(&resp, &file, spec.expect(len), &format!("{spec:?}"));
    }
    // The marker bytes really are non-zero, so a read from the wrong offset shows.
    assert!(file[mark as usize..mark as usize + 40]
        .iter()
        .any(|&b| b != 0));
    let resp = get_with(
        &mut conn,
        BIG,
        &[&format!("Range: bytes=0-99,{mark}-{}", mark + 39)],
    );
    let parts = parse_multipart(&resp);
    assert_eq!(parts.len(), 2, "{resp:?}");
    for part in parts {
        assert_eq!(part.total, len);
        assert!(part.data == file[part.first as usize..=part.last as usize]);
    }
}

fn if_range(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let file = corpus.read(PAGE);
    let mut conn = server.connect();
    let etag = get_with(&mut conn, PAGE, &[])
        .expect_header("ETag")
        .to_string();
    let partial = Expect::Partial(10, 19);
    let older = httpdate::fmt_http_date(mtime() - std::time::Duration::from_secs(86_400));
    for (if_range, expect) in [
        (etag.clone(), partial),
        ("\"stale-tag\"".to_string(), Expect::Full),
        (format!("W/{etag}"), Expect::Full),
        (last_modified(), partial),
        (older, Expect::Full),
    ] {
        let header = format!("If-Range: {if_range}");
        let resp = get_with(&mut conn, PAGE, &["Range: bytes=10-19", &header]);
        check(&resp, &file, expect, &header);
    }
}

/// A proptest runner of `cases` cases that writes no regression files.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    })
}

fn prop_single_ranges(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let file = corpus.read(PAGE);
    let len = file.len() as u64;
    let specs = prop_oneof![
        (0..len + 64, 0..len + 64).prop_map(|(a, b)| Spec::Closed(a, b)),
        (0..len + 64).prop_map(Spec::From),
        (1..len + 64).prop_map(Spec::Suffix),
    ];
    runner(64)
        .run(&specs, |spec| {
            let resp = get_with(&mut server.connect(), PAGE, &[&spec.header()]);
            check(&resp, &file, spec.expect(len), &format!("{spec:?}"));
            Ok(())
        })
        .unwrap();
}

fn prop_disjoint_multi_ranges(backend: Backend) {
    let corpus = Corpus::new();
    let server = Server::start(backend, corpus.root(), &[]);
    let file = corpus.read(MIB);
    // 2 to 6 ascending ranges, each up to 20000 bytes, separated by gaps of at least 1000
    // bytes (far more than a part header, so coalescing them would be unreasonable).
    let layout = prop::collection::vec((1000..50_000u64, 1..20_000u64), 2..=6);
    runner(32)
        .run(&layout, |layout| {
            let mut ranges = Vec::new();
            let mut next = 0;
            for (gap, len) in layout {
                ranges.push((next + gap, next + gap + len - 1));
                next += gap + len;
            }
            let list: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
            let header = format!("Range: bytes={}", list.join(","));
            let resp = get_with(&mut server.connect(), MIB, &[&header]);
            let parts = parse_multipart(&resp);
            let got: Vec<_> = parts.iter().map(|p| (p.first, p.last)).collect();
            assert_eq!(got, ranges, "{header}");
            for part in parts {
                assert_eq!(part.total, 1 << 20);
                assert!(part.data == file[part.first as usize..=part.last as usize]);
            }
            Ok(())
        })
        .unwrap();
}
