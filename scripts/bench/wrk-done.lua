-- Appended to every scenario's wrk script by scripts/bench.sh: prints one machine-readable line
-- (latencies in microseconds) that scripts/bench/bench.py reads.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"err_connect":%.0f,"err_read":%.0f,"err_write":%.0f,"err_status":%.0f,"err_timeout":%.0f,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%.0f,"lat_p90_us":%.0f,"lat_p99_us":%.0f,"lat_max_us":%.0f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
