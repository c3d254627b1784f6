-- wrk script: ticket events as monitoring sends them, each request about a problem of its own.
--
--   EVENT_FORMAT=api           POST /api/v1/events: Herald's own format (a new dedup_key per request,
--                              firing, a one-line summary, a ~1 KiB description, three labels).
--   EVENT_FORMAT=alertmanager  POST /api/v1/alertmanager/<integration>: Alertmanager's version-4
--                              webhook payload with two alerts (one firing, one resolved), a new
--                              alert group per request (Herald keys the event by its groupKey).
--
-- The caller sets HERALD_BASIC to base64("user:password") (verified once, then served from Herald's
-- credential cache), HERALD_INTEGRATION to the integration's name, and BENCH_RUN to a word that keeps
-- the problems of one run apart from another's.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. (os.getenv("HERALD_BASIC") or "")

local format = os.getenv("EVENT_FORMAT") or "api"
local integration = os.getenv("HERALD_INTEGRATION") or "jira"
local run = os.getenv("BENCH_RUN") or "run"
local counter = 0

-- Long brackets: no escapes are processed, so the JSON's own \" stay as they are. Every %d is the
-- request's number; %% is a literal percent sign.
local api = [[{"integration":"]] .. integration .. [[","dedup_key":"bench/]] .. run .. [[/%d",]]
  .. [["status":"firing","summary":"Disk full on db%d",]]
  .. [["description":"]] .. string.rep("Free space on /var fell below one percent. ", 24) .. [[",]]
  .. [["labels":{"severity":"critical","service":"payments","instance":"db%d:9100"}}]]

local alertmanager = [[{"receiver":"herald","status":"firing","alerts":[]]
  .. [[{"status":"firing","labels":{"alertname":"DiskFull%d","instance":"db1:9100","severity":"critical"},]]
  .. [["annotations":{"summary":"Disk full on db1","description":"/var is at 99%%"},]]
  .. [["startsAt":"2024-05-01T10:00:00.123456789Z","endsAt":"0001-01-01T00:00:00Z",]]
  .. [["generatorURL":"http://prometheus:9090/graph?g0.expr=disk","fingerprint":"a1b2c3d4e5f60718"},]]
  .. [[{"status":"resolved","labels":{"alertname":"DiskFull%d","instance":"db2:9100","severity":"critical"},]]
  .. [["annotations":{"summary":"Disk full on db2"},]]
  .. [["startsAt":"2024-05-01T07:00:00Z","endsAt":"2024-05-01T09:00:00Z",]]
  .. [["generatorURL":"http://prometheus:9090/graph?g0.expr=disk","fingerprint":"0f1e2d3c4b5a6978"}],]]
  .. [["groupLabels":{"alertname":"DiskFull%d"},]]
  .. [["commonLabels":{"alertname":"DiskFull%d","severity":"critical"},]]
  .. [["commonAnnotations":{},"externalURL":"http://alertmanager:9093","version":"4",]]
  .. [["groupKey":"{}/{}:{alertname=\"DiskFull-]] .. run .. [[-%d\"}","truncatedAlerts":0}]]

-- Each wrk thread has its own copy of this script; setup numbers them so their problems differ.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function request()
  counter = counter + 1
  local n = (thread_id or 1) * 100000000 + counter
  local body
  if format == "alertmanager" then
    body = string.format(alertmanager, n, n, n, n, n)
  else
    body = string.format(api, n, n, n)
  end
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local socket_errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("wrk: requests=%d seconds=%.3f rate=%.1f non_2xx=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, seconds, summary.requests / seconds, summary.errors.status, socket_errors,
    latency:percentile(50), latency:percentile(99)))
end
