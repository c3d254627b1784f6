#!/usr/bin/env bash
# Runs Herald's whole test suite, the PostgreSQL suite included.
#
# Installs what is missing (Debian's postgresql and postfix, as root, non-interactively), starts a throwaway
# PostgreSQL server on a free loopback port in a temporary directory, runs every test against it,
# and stops and removes it whatever happens. Extra arguments go to the test runner, e.g.
#   scripts/test.sh auth        # only tests whose name contains "auth"
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else log "need root to run: $*"; return 1
  fi
}

pg_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

install_packages() {
  log "installing: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# What the tests need, installed in one go when missing:
# - PostgreSQL, for the PostgreSQL suite and the cluster tests;
# - Postfix's smtp-sink and smtp-source: a real SMTP server (with fault injection) for the mail tests
#   (only the tools are used; the Postfix daemon is not started);
# - swaks (with Net::SSLeay for its STARTTLS and SMTPS): an SMTP client for the submission server's tests;
# - Chromium and ChromeDriver, for the console's end-to-end tests in a headless browser;
# - Prometheus's promtool, for scripts/probes.sh's check of /metrics;
# - Prometheus's Alertmanager, a real webhook sender for the ticket intake's tests.
missing=()
pg_bindir >/dev/null || missing+=(postgresql)
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || missing+=(postfix)
command -v swaks >/dev/null 2>&1 || missing+=(swaks)
perl -MNet::SSLeay -e1 >/dev/null 2>&1 || missing+=(libnet-ssleay-perl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ]; then install_packages "${missing[@]}"; fi
# Python's aiosmtpd (a real SMTP server library) plays a relay that answers each recipient on its own
# (tests/it/support/recipient_relay.py): smtp-sink answers every recipient alike.
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  log "installing: aiosmtpd (PyPI)"
  PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-input aiosmtpd
fi
PG_BIN=$(pg_bindir) || { log "PostgreSQL is not installed and could not be installed"; exit 1; }
log "PostgreSQL binaries: $PG_BIN"

# shellcheck source=scripts/free-port.sh
. scripts/free-port.sh

PG_DIR=$(mktemp -d /tmp/herald-test-pg.XXXXXX)
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
  # initdb and postgres refuse to run as root.
  chown postgres:postgres "$PG_DIR"
  RUN_AS=(runuser -u postgres --)
fi

stop_pg() {
  if [ -f "$PG_DIR/data/postmaster.pid" ]; then
    "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PG_DIR"
}
trap stop_pg EXIT INT TERM

PG_PORT=$(free_port)
"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 \
  || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
# Throwaway server: durability settings off for speed (the tests check Herald's logic, not the disk).
"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
  start >/dev/null || { cat "$PG_DIR/server.log" >&2; exit 1; }
log "PostgreSQL listening on 127.0.0.1:$PG_PORT"

# A test build needs about 4 GiB under target/. When the disk fills mid-link, the linker dies with a bus error
# that names no cause, so say how much room there is first.
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
free_kib=$(df -Pk "$target_dir" | awk 'NR == 2 { print $4 }')
log "free disk space for $target_dir: $((free_kib / 1024)) MiB"
if [ "$free_kib" -lt $((4 * 1024 * 1024)) ]; then
  log "warning: under 4 GiB free; the build may fail with a linker bus error (SIGBUS) when the disk fills"
fi

export HERALD_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export HERALD_TEST_PG_BINDIR="$PG_BIN"

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@" || status=$?
else
  cargo test --no-fail-fast -- "$@" || status=$?
fi

# The whole suite (no filter) ends with the outside view: third-party tools against a live server.
if [ $# -eq 0 ]; then
  bash scripts/probes.sh || status=$?
fi
exit "$status"
