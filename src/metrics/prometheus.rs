//! The Prometheus text exposition format (0.0.4) of the summed counters.

use std::fmt::Write as _;

use super::*;

/// Writes every metric of `workers` (and whether the server is `draining`) to `out` in the
/// Prometheus text format 0.0.4.
pub fn render(workers: &[WorkerMetrics], draining: bool, out: &mut String) {
    let sum = |f: &dyn Fn(&WorkerMetrics) -> u64| workers.iter().map(f).sum::<u64>();
    let read = WorkerMetrics::read;
    let mut e = Writer { out, family: "" };

    let help = "Requests answered, by method and status class.";
    e.family("requests_total", "counter", help);
    for (m, method) in METHODS.iter().enumerate() {
        for (c, class) in CLASSES.iter().enumerate() {
            let n = sum(&|w| read(&w.requests[m][c]));
            e.sample(&[("method", method), ("code", class)], n);
        }
    }

    let help = "Time from a parsed request to its response sent.";
    e.family("request_duration_seconds", "histogram", help);
    let mut cumulative = 0;
    let les = BUCKETS.iter().map(|&(_, le)| le).chain(["+Inf"]);
    for (i, le) in les.enumerate() {
        cumulative += sum(&|w| read(&w.durations[i]));
        e.part("_bucket", &[("le", le)], cumulative);
    }
    e.part("_sum", &[], sum(&|w| read(&w.duration_sum_ns)) as f64 / 1e9);
    e.part("_count", &[], cumulative);

    let help = "Response bytes sent, by how they were sent.";
    e.family("sent_bytes_total", "counter", help);
    for kind in BodyKind::ALL {
        e.sample(
            &[("path", kind.label())],
            sum(&|w| read(&w.bytes[kind as usize])),
        );
    }

    let help = "Client connections open now.";
    e.family("connections_active", "gauge", help);
    e.sample(&[], sum(&|w| w.active()));
    let help = "Client connections accepted.";
    e.family("connections_total", "counter", help);
    e.sample(&[], sum(&|w| read(&w.conns_opened)));

    let help = "TLS handshakes, by outcome (failed: a protocol error from the client).";
    e.family("tls_handshakes_total", "counter", help);
    for (i, outcome) in ["done", "failed"].into_iter().enumerate() {
        e.sample(
            &[("outcome", outcome)],
            sum(&|w| read(&w.tls_handshakes[i])),
        );
    }

    let help = "HTTPS connections handed to the kernel's TLS (kTLS) after their handshake: \
                their records are made by the kernel, file bodies go out with sendfile.";
    e.family("tls_kernel_connections_total", "counter", help);
    e.sample(&[], sum(&|w| read(&w.tls_kernel)));

    let help = "Bytes of upload bodies received, by path (splice: socket to file, never \
                in user space; copied: through the worker, to be hashed).";
    e.family("upload_bytes_total", "counter", help);
    for (i, path) in ["splice", "copied"].into_iter().enumerate() {
        e.sample(&[("path", path)], sum(&|w| read(&w.upload_bytes[i])));
    }

    let help = "Upload requests answered, by status class.";
    e.family("upload_requests_total", "counter", help);
    for (i, class) in CLASSES.iter().enumerate() {
        e.sample(&[("code", class)], sum(&|w| read(&w.upload_answers[i])));
    }

    let help = "Upload bodies being received now.";
    e.family("uploads_in_progress", "gauge", help);
    let started = sum(&|w| read(&w.upload_bodies[0]));
    e.sample(
        &[],
        started.saturating_sub(sum(&|w| read(&w.upload_bodies[1]))),
    );

    let help = "Uploads completed and published.";
    e.family("uploads_published_total", "counter", help);
    e.sample(&[], sum(&|w| read(&w.uploads_published)));

    let help = "Upload requests that failed, by reason.";
    e.family("upload_failures_total", "counter", help);
    for reason in UploadFailure::ALL {
        let n = sum(&|w| read(&w.upload_failures[reason as usize]));
        e.sample(&[("reason", reason.label())], n);
    }

    let help = "Connections or requests turned away, by reason.";
    e.family("rejected_total", "counter", help);
    for reason in Reject::ALL {
        let n = sum(&|w| read(&w.rejected[reason as usize]));
        e.sample(&[("reason", reason.label())], n);
    }

    let help = "Event loop turns (io_uring_enter or epoll_wait calls), by worker.";
    e.family("loop_iterations_total", "counter", help);
    for (i, w) in workers.iter().enumerate() {
        e.sample(&[("worker", &i.to_string())], read(&w.loop_iterations));
    }
    let help = "Operations submitted to the kernel by the event loop, by worker.";
    e.family("submissions_total", "counter", help);
    for (i, w) in workers.iter().enumerate() {
        e.sample(&[("worker", &i.to_string())], read(&w.submissions));
    }

    let help = "Open-file cache lookups, by result.";
    e.family("open_file_cache_lookups_total", "counter", help);
    e.sample(&[("result", "hit")], sum(&|w| read(&w.cache_hits)));
    e.sample(&[("result", "miss")], sum(&|w| read(&w.cache_misses)));

    e.family("pipes_in_use", "gauge", "Pipes held for splice(2) bodies.");
    e.sample(&[], sum(&|w| read(&w.pipes_in_use)));

    e.family("backend_info", "gauge", "The I/O backend of each worker.");
    for (i, w) in workers.iter().enumerate() {
        if let Some(backend) = w.backend() {
            e.sample(&[("worker", &i.to_string()), ("backend", backend)], 1);
        }
    }

    e.family("draining", "gauge", "1 while the server is shutting down.");
    e.sample(&[], u64::from(draining));

    super::process::write(e.out);
}

/// Writes metric families and their samples, each sample under the family declared last.
pub(super) struct Writer<'a> {
    out: &'a mut String,
    family: &'static str,
}

impl Writer<'_> {
    /// Starts family `ringserve_<name>` with its `# HELP` and `# TYPE` lines.
    fn family(&mut self, name: &'static str, kind: &str, help: &str) {
        self.family = name;
        let name = format!("ringserve_{name}");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.part("", labels, value);
    }

    /// One sample of series `ringserve_<family><suffix>` (a histogram's `_bucket`, ...).
    fn part(&mut self, suffix: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "ringserve_{}{suffix}", self.family);
        for (i, (key, value)) in labels.iter().enumerate() {
            let sep = if i == 0 { '{' } else { ',' };
            let _ = write!(self.out, "{sep}{key}=\"");
            for c in value.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        if !labels.is_empty() {
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}
