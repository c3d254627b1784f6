-- wrk script: durable mail submissions, `POST /api/v1/mail` with a 1 KiB text body, as an application
-- would send them. The caller sets HERALD_BASIC to base64("user:password"); the credentials are
-- verified once and then served from Herald's credential cache, as for any busy client.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. (os.getenv("HERALD_BASIC") or "")
wrk.body = '{"to":["ops@example.com"],"subject":"Load test","text":"' .. string.rep("x", 1024) .. '"}'

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local socket_errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("wrk: requests=%d seconds=%.3f rate=%.1f non_2xx=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, seconds, summary.requests / seconds, summary.errors.status, socket_errors,
    latency:percentile(50), latency:percentile(99)))
end
