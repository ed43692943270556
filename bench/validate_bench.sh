#!/usr/bin/env bash
# Validations per second: our validator ($validate over loopback HTTP) against Medplum's (in
# process, conformance/validate.mjs) on the same resources, in the same run. Only the ratio
# matters: the machine is shared. Usage: bench/validate_bench.sh [ROUNDS]
set -euo pipefail
# The server alone is measured: no outside system (NPPES) is called.
export PROVIDERCARD_CONFIG="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/offline.yaml"
cd "$(dirname "$0")/.."
rounds=${1:-5}
bin=target/release/providercard
[[ -x $bin && $bin -nt src ]] || bin=target/debug/providercard
echo "binary: $bin"
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
"$bin" --database-url "sqlite://$tmp/v.db" serve --listen 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 300); do grep -q listening "$tmp/out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$tmp/out" | head -1)
[[ -d conformance/node_modules ]] || (cd conformance && npm ci --no-audit --no-fund --loglevel=error)
node_flags=()
node --experimental-websocket -e 0 2>/dev/null && node_flags=(--experimental-websocket)
node "${node_flags[@]}" conformance/validate.mjs --bench "$rounds" --ours "$url"
