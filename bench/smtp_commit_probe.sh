#!/usr/bin/env bash
# Where durable SMTP acceptance waits: starts the release `herald serve` (SQLite, delivery off, loopback
# trusted), runs Postfix's smtp-source into its SMTP listener, and prints the rate and the group-commit
# histograms (how many commits, how many messages each, how long each took).
#
#   cargo build --release --bin herald   # or any release build that made target/release/herald
#   SESSIONS=10 bash bench/smtp_commit_probe.sh
#   PERF=1 bash bench/smtp_commit_probe.sh   # also records `perf record -g` of herald to /tmp/herald-commit.perf
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/free-port.sh
DIR=$(mktemp -d); HTTP=$(free_port); SMTP=$(free_port); PASSWORD=probe-admin-password-1
HERALD_ADMIN_PASSWORD=$PASSWORD target/release/herald serve --data-dir "$DIR" --listen "127.0.0.1:$HTTP" \
  --smtp-listen "127.0.0.1:$SMTP" --log warn --mail-delivery false --smtp-trusted-networks 127.0.0.0/8 \
  >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$HTTP/livez" >/dev/null && break; sleep 0.1; done
if [ -n "${PERF:-}" ]; then
  perf record -F 2000 -g -p "$PID" -o /tmp/herald-commit.perf >/dev/null 2>&1 &
  PERF_PID=$!
  sleep 0.5
fi
start=$(date +%s.%N)
/usr/sbin/smtp-source -s "${SESSIONS:-10}" -d -m "${MESSAGES:-20000}" -l 1024 -f a@example.com -t b@example.com \
  "127.0.0.1:$SMTP"
end=$(date +%s.%N)
if [ -n "${PERF:-}" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
python3 -c "print('rate: %d msg/s' % round(${MESSAGES:-20000} / ($end - $start)))"
curl -s -u "admin:$PASSWORD" "http://127.0.0.1:$HTTP/metrics" \
  | grep -E '^herald_mail_commit_(duration_seconds|batch_size)_(sum|count)'
