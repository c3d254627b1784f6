#!/usr/bin/env bash
# Starts a throwaway PostgreSQL, an SMTP sink and three Herald nodes on loopback, so that you can try
# cluster mode: clusterStatus from any node, draining a node, killing one and watching its mail move.
# Everything lives in a temporary directory and is stopped and removed when you press Ctrl-C.
#
#   scripts/cluster-demo.sh            # nodes on 127.0.0.1:8081, :8082, :8083
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[cluster-demo] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

pg_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/postgres" ] && { echo "$dir"; return 0; }
  done
  return 1
}
install_packages() {
  log "installing: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}
PG_BIN=$(pg_bindir) || { install_packages postgresql; PG_BIN=$(pg_bindir); }
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || install_packages postfix
SMTP_SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)

log "building herald (release)"
cargo build --release --quiet
HERALD="$PWD/target/release/herald"

DEMO=$(mktemp -d /tmp/herald-cluster-demo.XXXXXX)
chmod 755 "$DEMO"
PIDS=()
RUN_AS=()
if [ "$(id -u)" = 0 ]; then mkdir -p "$DEMO/pg"; chown postgres:postgres "$DEMO/pg"; RUN_AS=(runuser -u postgres --); else mkdir -p "$DEMO/pg"; fi
cleanup() {
  log "stopping"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DEMO/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$DEMO"
}
trap cleanup EXIT INT TERM

PG_PORT=55432
"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DEMO/pg/data" -U postgres -A trust --no-sync >"$DEMO/initdb.log" 2>&1
"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DEMO/pg/data" -l "$DEMO/pg/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $DEMO/pg" start >/dev/null
"${RUN_AS[@]}" "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE herald" >/dev/null
DB="postgres://postgres@127.0.0.1:$PG_PORT/herald"
log "PostgreSQL on 127.0.0.1:$PG_PORT"

SINK_ARGS=()
[ "$(id -u)" = 0 ] && SINK_ARGS=(-u nobody)
"$SMTP_SINK" "${SINK_ARGS[@]}" 127.0.0.1:2525 64 & PIDS+=($!)
log "SMTP sink on 127.0.0.1:2525"

# Every node sharing a database needs the same key for the integration secrets it stores.
HERALD_SECRET_KEY=$(head -c 32 /dev/urandom | base64)
export HERALD_SECRET_KEY
export HERALD_DATABASE_URL="$DB" HERALD_CLUSTER=true HERALD_ADMIN_PASSWORD=demo-admin-password \
  HERALD_SMTP_URL=smtp://127.0.0.1:2525 HERALD_CLUSTER_POLL_INTERVAL=5s \
  HERALD_CLUSTER_HEARTBEAT_TIMEOUT=15s HERALD_CLUSTER_ADOPT_AFTER=15s
for i in 1 2 3; do
  mkdir -p "$DEMO/node$i"
  HERALD_NODE_ID="node_$i" "$HERALD" serve --data-dir "$DEMO/node$i" --listen "127.0.0.1:808$i" \
    >"$DEMO/node$i.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:808$i/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  log "node_$i on http://127.0.0.1:808$i (pid ${PIDS[-1]}, log $DEMO/node$i.log)"
done

cat <<TXT

Herald cluster demo is running. Admin: admin / demo-admin-password

  curl -u admin:demo-admin-password http://127.0.0.1:8081/rest/mailqueue/1.0/clusterStatus
  curl -u admin:demo-admin-password -H 'Accept: application/xml' http://127.0.0.1:8082/rest/mailqueue/1.0/clusterStatus
  curl -u admin:demo-admin-password -H 'Content-Type: application/json' http://127.0.0.1:8083/api/v1/mail \\
       -d '{"to":["someone@example.com"],"subject":"hello","text":"from node_3"}'
  HERALD_DATABASE_URL=$DB $HERALD --data-dir $DEMO/node1 cluster status
  HERALD_DATABASE_URL=$DB $HERALD --data-dir $DEMO/node1 cluster drain node_2
  kill -9 ${PIDS[3]}    # node_3: OFFLINE after 15 s, its mail adopted 15 s later

Press Ctrl-C to stop everything.
TXT
wait
