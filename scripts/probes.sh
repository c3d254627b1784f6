#!/usr/bin/env bash
# Probes a live Herald from the outside, with third-party tools, the way a user or an auditor would:
#   1. openapi-spec-validator: the served /openapi.json is valid OpenAPI 3.1;
#   2. schemathesis: every operation, driven by the document alone, answers what the document says
#      (every check, a fixed seed, a bounded number of examples per operation);
#   3. promtool: /metrics is Prometheus text that Prometheus's own linter accepts.
# Called by scripts/test.sh after the cargo tests; may be run alone. Exits non-zero on any finding,
# schemathesis's included: there is no advisory mode.
#
# It starts `herald serve` (the debug build) on SQLite with mail delivery off, in a network namespace
# of its own when it can make one: generated integrations name random Jira hosts and Herald checks
# them at once, so the probes must not be able to reach anything but this machine's loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[probes.sh] %s\n' "$*" >&2; }

# Pinned, so a new release cannot turn CI red by itself; bump deliberately.
SCHEMATHESIS_VERSION=4.32.5
SPEC_VALIDATOR_VERSION=0.9.0
VENV=${CARGO_TARGET_DIR:-target}/probes-venv
ADMIN_PASSWORD=probe-admin-password

timed() {
  local label=$1 started=$SECONDS status=0
  shift
  "$@" || status=$?
  log "$label: $((SECONDS - started)) s (exit $status)"
  return "$status"
}

install_tools() {
  local wanted="schemathesis==$SCHEMATHESIS_VERSION openapi-spec-validator==$SPEC_VALIDATOR_VERSION"
  # A virtual environment records its own path in its scripts: one copied or moved from elsewhere
  # (a target/ copied between checkouts) does not run, and is made again.
  if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$wanted" ] || ! "$VENV/bin/st" --version >/dev/null 2>&1 \
    || ! "$VENV/bin/openapi-spec-validator" --help >/dev/null 2>&1; then
    log "installing into $VENV: $wanted"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086 # $wanted is two requirement specifiers
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install --quiet --no-input $wanted
    echo "$wanted" >"$VENV/.installed"
  fi
  command -v promtool >/dev/null 2>&1 || { log "promtool is missing (Debian package prometheus)"; return 1; }
}

# Everything that needs the registries happens before entering the namespace.
if [ -z "${HERALD_PROBES_IN_NETNS:-}" ]; then
  timed "install" install_tools
  # The binary as the test build makes it: after scripts/test.sh's run this builds nothing, where a plain
  # `cargo build --bin herald` would rebuild dependencies with other features (dev-dependencies unify
  # features only in test builds) and add minutes to CI.
  timed "build herald" cargo test --no-run --quiet
  if unshare --net true 2>/dev/null; then
    HERALD_PROBES_IN_NETNS=1 exec unshare --net -- "$0" "$@"
  fi
  log "warning: cannot make a network namespace (unshare --net); probing without one"
  HERALD_PROBES_IN_NETNS=none
fi
if [ "$HERALD_PROBES_IN_NETNS" = 1 ]; then
  ip link set lo up 2>/dev/null || true
fi

WORK=$(mktemp -d /tmp/herald-probes.XXXXXX)
SERVER_PID=
JIRA_PID=
cleanup() {
  local pid
  for pid in $SERVER_PID $JIRA_PID; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# shellcheck source=scripts/free-port.sh
. scripts/free-port.sh

# A Jira stand-in (scripts/jira_standin.py), Herald's HTTP proxy: every plain-http Jira a generated
# request names answers through it, so integrations are created and checked to the end.
python3 scripts/jira_standin.py "$WORK/jira.port" >"$WORK/jira.log" 2>&1 &
JIRA_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/jira.port" ] && break; sleep 0.05; done
[ -s "$WORK/jira.port" ] || { cat "$WORK/jira.log" >&2; log "the Jira stand-in did not start"; exit 1; }

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
# - Mail delivery off: the probes check the API, and accepted mail must not go anywhere.
# - Alert recipients set, so that POST /api/v1/alerts/test reaches the queue instead of 409.
# - The sign-in throttle raised: schemathesis's ignored_auth check sends wrong credentials on purpose,
#   and from one address and one user name; at the default ten failures every later request of the
#   run would be 429, and nothing past authentication would be probed. The throttle has tests of its own.
# - HTTP_PROXY: the Jira stand-in. HTTPS Jiras, integrations with skip_proxy and loopback hosts (never
#   proxied) stay unreachable: in the namespace there is no route, and the check budget bounds them
#   where there is no namespace.
HERALD_DATA_DIR="$WORK/data" HERALD_LISTEN="127.0.0.1:$PORT" HERALD_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
  HERALD_MAIL_DELIVERY=false HERALD_ALERT_EMAILS=ops@example.com HERALD_AUTH_MAX_FAILURES=1000000 \
  HERALD_CHECK_TIMEOUT=2s HERALD_LOG=warn HTTP_PROXY="http://127.0.0.1:$(cat "$WORK/jira.port")" \
  "${CARGO_TARGET_DIR:-target}/debug/herald" serve >"$WORK/herald.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  if curl -sf "$BASE/livez" >/dev/null 2>&1; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/herald.log" >&2; log "herald did not start"; exit 1; }
  sleep 0.1
done
log "herald listening on $BASE (network namespace: ${HERALD_PROBES_IN_NETNS})"

curl -sf -u "admin:$ADMIN_PASSWORD" "$BASE/openapi.json" -o "$WORK/openapi.json"
# The user whose password, role and existence the probes may change: not the admin they sign in as.
curl -sf -u "admin:$ADMIN_PASSWORD" -H 'Content-Type: application/json' \
  -d '{"username":"probe-target","password":"probe-target-password","role":"monitor"}' "$BASE/api/v1/users" >/dev/null

# Schemathesis's configuration. Every check is on (`checks.enabled`); the exceptions below are per
# operation, and in this file rather than on the command line: a check named by `--checks` would
# override them (schemathesis gives the command line the last word).
# What the document cannot say, and why a check does not apply there:
# - /api/v1/users/{username}…: schemathesis reuses the user names it has seen, `admin` among them, and a
#   schema-valid PUT …/password would lock the run out of everything after it. The path is pinned to a
#   user of its own; the operations are still probed in full (bodies, negative cases, auth). With the
#   path pinned, a user the run creates is never the one these operations address, so the stateful
#   checks that follow a created resource to them (ensure_resource_availability, use_after_free) would
#   compare two different users: they are off for these operations only.
# - positive_data_acceptance on the Xray POST and PUT: like Xray, Herald saves only a connection that
#   works, and answers 400 otherwise (the seed's contract). Whether a well-formed request names a
#   Jira that works is a fact about the world, not about the request: the stand-in answers for plain
#   http through the proxy, but an https URL, `skip_proxy` or a loopback host names a server that does
#   not exist here, and is rightly refused. Their negative cases, auth and responses are still probed.
# - positive_data_acceptance on PATCH /api/v1/integrations/{name}: a merge patch is valid or not by
#   what it is merged into (a `token` patched into Basic credentials, an `issue_type` without a stored
#   `project_key`), which no schema of the patch alone can say. The merged result is validated like a
#   PUT body, whose acceptance is probed.
cat >"$WORK/schemathesis.toml" <<'TOML'
[checks]
enabled = true

[[operations]]
include-path-regex = "^/api/v1/users/\\{username\\}"
parameters = { "path.username" = "probe-target" }
checks.ensure_resource_availability.enabled = false
checks.use_after_free.enabled = false

[[operations]]
include-path-regex = "^/xray/api/v1/ticketing/jira-integrations"
include-method-regex = "^(POST|PUT)$"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = "/api/v1/integrations/{name}"
include-method = "PATCH"
checks.positive_data_acceptance.enabled = false
TOML
curl -sf -u "admin:$ADMIN_PASSWORD" "$BASE/metrics" -o "$WORK/metrics.txt"

failed=0
timed "openapi-spec-validator" "$VENV/bin/openapi-spec-validator" "$WORK/openapi.json" || failed=1

# Schemathesis, every check (see its configuration above); any finding fails the run. The seed makes
# a run reproducible; the example count bounds its time. One worker: with two, schemathesis's
# threads race in CPython 3.11's `ast` module (Hypothesis describes filter lambdas by parsing their
# source) and a run can stop on "AST constructor recursion depth mismatch", an internal error.
timed "schemathesis" "$VENV/bin/st" --config-file "$WORK/schemathesis.toml" run "$WORK/openapi.json" --url "$BASE" \
  --auth "admin:$ADMIN_PASSWORD" --seed 20240601 --max-examples "${HERALD_PROBE_EXAMPLES:-25}" \
  --workers 1 --request-timeout 30 --no-color --output-truncate false \
  --report junit --report-dir "$WORK/report" || failed=1

timed "promtool check metrics" promtool check metrics <"$WORK/metrics.txt" || failed=1

if [ "$failed" != 0 ]; then
  log "herald's log:"; tail -n 50 "$WORK/herald.log" >&2
  log "FAILED"
  exit 1
fi
log "all probes passed"
