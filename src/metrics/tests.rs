//! The counters, their exposition and the top-files list.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::counters::*;
use super::top::*;
use super::*;
use crate::http::Method;

/// Checks `text` against the exposition format rules this module promises: every sample
/// belongs to a family declared by `# HELP` and `# TYPE` before it, counters end in
/// `_total`, values are numbers, no series repeats, and each histogram's buckets are
/// cumulative, end in `+Inf` and agree with `_count`. Returns the number of samples.
fn check_exposition(text: &str) -> usize {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped = HashSet::new();
    let mut series = HashSet::new();
    let mut buckets: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    let mut counts: HashMap<String, f64> = HashMap::new();
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP text");
            assert!(
                !help.is_empty() && helped.insert(name.to_string()),
                "{line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE kind");
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(types.insert(name.into(), kind.into()).is_none(), "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
            continue;
        }
        assert!(!line.starts_with('#'), "{line}");
        samples += 1;
        let (series_id, value) = line.rsplit_once(' ').expect("value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(value >= 0.0, "{line}");
        assert!(series.insert(series_id.to_string()), "duplicate: {line}");
        let name = series_id.split('{').next().unwrap();
        assert!(
            name.starts_with("ringserve_") || name.starts_with("process_"),
            "{line}"
        );
        let (family, suffix) = match types.get(name) {
            Some(_) => (name, ""),
            None => ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| Some((name.strip_suffix(s)?, *s)))
                .unwrap_or_else(|| panic!("no family for {line}")),
        };
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("untyped: {line}"));
        assert_eq!(kind == "histogram", !suffix.is_empty(), "{line}");
        // The server's counters count; process_cpu_seconds_total is seconds.
        if kind == "counter" && !name.starts_with("process_") {
            assert_eq!(value.fract(), 0.0, "{line}");
        }
        match suffix {
            "_bucket" => {
                let le = series_id
                    .split("le=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .expect("le label");
                let list = buckets.entry(family.into()).or_default();
                if let Some((prev_le, prev)) = list.last() {
                    assert!(value >= *prev, "not cumulative: {line}");
                    let prev_le: f64 = prev_le.parse().expect("finite le before +Inf");
                    assert!(le == "+Inf" || le.parse::<f64>().unwrap() > prev_le);
                }
                list.push((le.into(), value));
            }
            "_count" => {
                counts.insert(family.into(), value);
            }
            _ => {}
        }
    }
    for (family, kind) in &types {
        if kind == "histogram" {
            let list = &buckets[family];
            let (le, last) = list.last().expect("buckets");
            assert_eq!(le, "+Inf", "{family}");
            assert_eq!(Some(last), counts.get(family), "{family}");
        }
    }
    samples
}

fn busy_workers() -> Arc<[WorkerMetrics]> {
    let all = WorkerMetrics::for_workers(2);
    for (i, w) in all.iter().enumerate() {
        w.set_backend(if i == 0 { "uring" } else { "epoll" });
        w.request(Method::Get, 200, Duration::from_micros(50));
        w.request(Method::Get, 206, Duration::from_millis(3));
        w.request(Method::Head, 404, Duration::from_secs(30));
        w.request(Method::Other, 999, Duration::from_micros(100));
        w.bytes(BodyKind::Sendfile, 1000);
        w.bytes(BodyKind::Memory, 200);
        w.conn_opened();
        w.conn_opened();
        w.conn_closed();
        w.rejected(Reject::Timeout);
        w.loop_turn(3);
        w.cache_totals(1, 1);
        w.pipes_in_use(2);
        w.tls_handshake(true);
        w.tls_handshake(i == 0);
    }
    all
}

#[test]
fn render_is_valid_exposition() {
    let all = busy_workers();
    let mut out = String::new();
    render(&all, true, &mut out);
    assert!(check_exposition(&out) > 40, "{out}");
    for line in [
        "ringserve_requests_total{method=\"GET\",code=\"2xx\"} 4",
        "ringserve_requests_total{method=\"other\",code=\"5xx\"} 2",
        "ringserve_request_duration_seconds_bucket{le=\"0.0001\"} 4",
        "ringserve_request_duration_seconds_bucket{le=\"0.005\"} 6",
        "ringserve_request_duration_seconds_bucket{le=\"10\"} 6",
        "ringserve_request_duration_seconds_bucket{le=\"+Inf\"} 8",
        "ringserve_request_duration_seconds_count 8",
        "ringserve_sent_bytes_total{path=\"sendfile\"} 2000",
        "ringserve_connections_active 2",
        "ringserve_connections_total 4",
        "ringserve_rejected_total{reason=\"timeout\"} 2",
        "ringserve_loop_iterations_total{worker=\"1\"} 1",
        "ringserve_submissions_total{worker=\"0\"} 3",
        "ringserve_open_file_cache_lookups_total{result=\"miss\"} 2",
        "ringserve_pipes_in_use 4",
        "ringserve_tls_handshakes_total{outcome=\"done\"} 3",
        "ringserve_tls_handshakes_total{outcome=\"failed\"} 1",
        "ringserve_backend_info{worker=\"0\",backend=\"uring\"} 1",
        "ringserve_backend_info{worker=\"1\",backend=\"epoll\"} 1",
        "ringserve_draining 1",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line}:\n{out}");
    }
    let sum = out
        .lines()
        .find_map(|l| l.strip_prefix("ringserve_request_duration_seconds_sum "))
        .unwrap();
    let sum: f64 = sum.parse().unwrap();
    assert!((sum - 2.0 * 30.00315).abs() < 1e-9, "{sum}");
}

#[test]
fn render_of_nothing_is_valid() {
    let mut out = String::new();
    render(&WorkerMetrics::for_workers(0), false, &mut out);
    check_exposition(&out);
    assert!(out.contains("ringserve_draining 0\n"));
}

#[test]
fn layout_keeps_workers_apart() {
    fn shareable<T: Send + Sync>() {}
    fn movable<T: Send>() {}
    shareable::<WorkerHandle>();
    movable::<TopFiles>();
    assert_eq!(std::mem::align_of::<WorkerMetrics>(), 64);
    assert_eq!(std::mem::size_of::<WorkerMetrics>() % 64, 0);
    let all = WorkerMetrics::for_workers(1);
    assert!(WorkerHandle::new(&all, 1).is_none());
    let mine = WorkerHandle::new(&all, 0).unwrap();
    mine.conn_opened();
    assert_eq!(totals(&all).connections, 1);
}

#[test]
fn totals_sum_workers() {
    let t = totals(&busy_workers());
    assert_eq!(
        t,
        Totals {
            requests: 8,
            bytes_sent: 2400,
            connections: 4,
            active_connections: 2,
        }
    );
}

fn counts(top: &TopFiles) -> HashMap<String, u64> {
    top.entries()
        .map(|(k, n)| (String::from_utf8_lossy(k).into_owned(), n))
        .collect()
}

#[test]
fn space_saving_counts_exactly_below_capacity() {
    let mut top = TopFiles::new(4);
    for t in ["/a", "/b", "/a", "/c?x=1", "/a", "/c"] {
        top.record(t.as_bytes());
    }
    let c = counts(&top);
    assert_eq!((c["/a"], c["/b"], c["/c"]), (3, 1, 2));
    assert_eq!(c.len(), 3);
}

#[test]
fn space_saving_replaces_the_minimum() {
    let mut top = TopFiles::new(2);
    for t in ["/a", "/a", "/a", "/b", "/c"] {
        top.record(t.as_bytes());
    }
    let c = counts(&top);
    assert_eq!(c.len(), 2);
    assert_eq!(c["/a"], 3);
    assert_eq!(c["/c"], 2, "inherits the evicted count plus one");
    assert!(!c.contains_key("/b"));
    top.record(&[b'/'; MAX_KEY + 1]);
    assert_eq!(counts(&top).len(), 2, "overlong paths are not tracked");
}

/// Space-Saving's guarantees on a skewed stream: heavy hitters are kept, counts never
/// underestimate, total equals the stream length, and the heap index stays consistent.
#[test]
fn space_saving_keeps_heavy_hitters() {
    let mut top = TopFiles::new(8);
    let mut exact: HashMap<String, u64> = HashMap::new();
    let mut x = 12345u64;
    let n = 20_000;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let path = match x % 10 {
            0..=3 => "/hot".to_string(),
            4 | 5 => "/warm".to_string(),
            _ => format!("/cold/{}", x % 5000),
        };
        *exact.entry(path.clone()).or_default() += 1;
        top.record(path.as_bytes());
    }
    let c = counts(&top);
    assert_eq!(c.values().sum::<u64>(), n);
    for hot in ["/hot", "/warm"] {
        assert!(c[hot] >= exact[hot], "{hot}");
    }
    for (i, &(_, slot)) in top.heap.iter().enumerate() {
        let s = &top.slots[slot];
        assert_eq!((s.at, top.index[&s.hash]), (i, slot));
        assert_eq!(s.hash, top.hasher.hash_one(&s.path[..]));
    }
    for i in 1..top.heap.len() {
        assert!(top.heap[(i - 1) / 2].0 <= top.heap[i].0);
    }
}

#[test]
fn publication_is_rate_limited_and_merged() {
    let all = WorkerMetrics::for_workers(2);
    let t0 = Instant::now();
    let mut a = TopFiles::new(4);
    let mut b = TopFiles::new(4);
    a.record(b"/x%20y");
    a.record(b"/a");
    b.record(b"/x y");
    a.publish(t0, &all[0]);
    b.publish(t0, &all[1]);
    a.record(b"/a");
    a.publish(t0 + Duration::from_millis(500), &all[0]);
    assert_eq!(
        top_files(&all),
        vec![("/x y".to_string(), 2), ("/a".to_string(), 1)]
    );
    let guard = all[0].top.0.lock().unwrap();
    a.publish(t0 + Duration::from_secs(2), &all[0]);
    drop(guard);
    a.publish(t0 + Duration::from_secs(2), &all[0]);
    assert_eq!(top_files(&all)[0], ("/a".to_string(), 2));
}
