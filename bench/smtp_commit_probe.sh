#!/usr/bin/env bash
# Where durable SMTP acceptance waits: starts the release `herald serve` (SQLite, delivery off, loopback
# trusted), runs Postfix's smtp-source into its SMTP listener, and prints the rate, each of Herald's
# threads' CPU time and context switches per message (herald-smtp: the sessions; tokio-rt-worker: the
# server's runtime, where the group commit runs; sqlx-sqlite-worker: SQLite), and the group-commit
# histograms (how many commits, how many messages each, how long each took).
#
#   cargo build --release --bin herald   # or any release build that made target/release/herald
#   SESSIONS=10 bash bench/smtp_commit_probe.sh
#   PERF=1 bash bench/smtp_commit_probe.sh   # also records `perf record -g` of herald to /tmp/herald-commit.perf
#   BIN="eatmydata target/release/herald" bash bench/smtp_commit_probe.sh   # fsync made a no-op
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/free-port.sh
DIR=$(mktemp -d); HTTP=$(free_port); SMTP=$(free_port); PASSWORD=probe-admin-password-1
MESSAGES=${MESSAGES:-20000}
# shellcheck disable=SC2086 # BIN may be a command with its wrapper (eatmydata)
HERALD_ADMIN_PASSWORD=$PASSWORD ${BIN:-target/release/herald} serve --data-dir "$DIR" --listen "127.0.0.1:$HTTP" \
  --smtp-listen "127.0.0.1:$SMTP" --log warn --mail-delivery false --smtp-trusted-networks 127.0.0.0/8 \
  >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$HTTP/livez" >/dev/null && break; sleep 0.1; done
# Per thread name: voluntary and involuntary context switches, CPU ticks (utime + stime).
threads() {
  for t in /proc/$PID/task/*; do
    echo "$(tr ' ' _ <"$t/comm") $(awk '/^voluntary/ {v=$2} /^nonvoluntary/ {n=$2} END {print v, n}' "$t/status") \
      $(awk '{print $14 + $15}' "$t/stat")"
  done
}
threads >"$DIR/threads.before"
if [ -n "${PERF:-}" ]; then
  perf record -F 2000 -g -p "$PID" -o /tmp/herald-commit.perf >/dev/null 2>&1 &
  PERF_PID=$!
  sleep 0.5
fi
start=$(date +%s.%N)
/usr/sbin/smtp-source -s "${SESSIONS:-10}" -d -m "$MESSAGES" -l 1024 -f a@example.com -t b@example.com \
  "127.0.0.1:$SMTP"
end=$(date +%s.%N)
threads >"$DIR/threads.after"
if [ -n "${PERF:-}" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
python3 - "$DIR" "$MESSAGES" "$start" "$end" "$(getconf CLK_TCK)" <<'PY'
import sys
from collections import defaultdict
folder, messages, start, end, ticks = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
def load(name):
    total = defaultdict(lambda: [0, 0, 0])
    for line in open(f"{folder}/{name}"):
        comm, *values = line.split()
        for i, v in enumerate(values):
            total[comm][i] += int(v)
    return total
before, after = load("threads.before"), load("threads.after")
print("rate: %d msg/s" % round(messages / (end - start)))
for comm in sorted(after):
    d = [a - b for a, b in zip(after[comm], before.get(comm, [0, 0, 0]))]
    if any(d):
        print("  %-20s CPU %3.0f µs/msg   context switches per message: %.2f voluntary, %.2f involuntary"
              % (comm, d[2] * 1e6 / ticks / messages, d[0] / messages, d[1] / messages))
PY
curl -s -u "admin:$PASSWORD" "http://127.0.0.1:$HTTP/metrics" \
  | grep -E '^herald_mail_commit_(duration_seconds|batch_size)_(sum|count)'
