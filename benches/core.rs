//! Micro-benchmarks of the per-request core, so regressions show without a server:
//! request parsing, range parsing, response-head writing and path decoding.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ringserve::fs;
use ringserve::http::range::{self, ByteRange};
use ringserve::http::response::{self, Context, Extra};
use ringserve::http::{request, Chunk, ETag, Fixdate, Limits, Parse, Representation};

const REQUEST: &[u8] = b"GET /pub/releases/v1.2.3/ringserve-x86_64.tar.gz HTTP/1.1\r\n\
Host: mirror.example.org\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\
Range: bytes=1048576-2097151\r\nIf-Range: \"65f1a2b3-4000000-1a2b\"\r\n\r\n";

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    c.bench_function("request::parse", |b| {
        b.iter(|| match request::parse(black_box(REQUEST), &limits) {
            Parse::Complete(r) => r.head_len,
            _ => unreachable!(),
        })
    });
}

fn ranges(c: &mut Criterion) {
    let mut out: Vec<ByteRange> = Vec::new();
    c.bench_function("range::parse single", |b| {
        b.iter(|| range::parse(black_box(b"bytes=1048576-2097151"), 64 << 20, 64, &mut out))
    });
    c.bench_function("range::parse multi", |b| {
        b.iter(|| {
            range::parse(
                black_box(b"bytes=0-99, 200-299, 50-250, -500"),
                64 << 20,
                64,
                &mut out,
            )
        })
    });
}

fn head(c: &mut Criterion) {
    let limits = Limits::default();
    let rep = Representation {
        len: 64 << 20,
        mtime: Fixdate::new(1_700_000_000),
        etag: ETag::nginx(1_700_000_000, 64 << 20),
        version: ETag::from_parts(1_700_000_000, 64 << 20, 0x1a2b),
        mime: "application/gzip",
    };
    let Parse::Complete(req) = request::parse(REQUEST, &limits) else {
        unreachable!()
    };
    let cx = Context {
        date: b"Tue, 24 Nov 2026 09:45:12 GMT",
        limits: &limits,
        keep_alive: true,
        server: b"ringserve",
        hsts: None,
    };
    let (mut out, mut chunks, mut ranges) = (Vec::new(), Vec::<Chunk>::new(), Vec::new());
    c.bench_function("response::file (206 head)", |b| {
        b.iter(|| {
            out.clear();
            chunks.clear();
            response::file(
                black_box(&req),
                &rep,
                &Extra::default(),
                &cx,
                &mut out,
                &mut chunks,
                &mut ranges,
            )
        })
    });
}

fn path(c: &mut Criterion) {
    let mut scratch = Vec::new();
    c.bench_function("fs::decode", |b| {
        b.iter(|| {
            fs::decode(
                black_box(b"/pub/releases/v1.2.3/ringserve%20x86_64.tar.gz?x=1"),
                &mut scratch,
            )
        })
    });
}

criterion_group!(benches, parse, ranges, head, path);
criterion_main!(benches);
