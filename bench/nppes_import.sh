#!/usr/bin/env bash
# The NPPES bulk import benchmark (issue 7). Not a test: it prints figures.
#
#   bench/nppes_import.sh [--rows N] [--stores sqlite,postgres] [--bin PATH] [--queries Q] [--out DIR]
#
# 1. writes a synthetic Data Dissemination bundle of N provider rows (default 1,000,000) with
#    `providercard nppes generate` (real headers, realistic distributions, companion files);
# 2. measures the raw CSV parse rate of the providers file (`providercard nppes parse-rate`):
#    the baseline of the same run, so the import's overhead over parsing is a ratio;
# 3. imports the bundle into each store (`providercard import nppes`) under /usr/bin/time:
#    provider rows/s over the whole import (every file and the search index rebuild), each
#    file's own rate, peak RSS, wall time, database size;
# 4. serves the imported store and times Q of each typical payer search on one client
#    (by NPI, by family name, by taxonomy + state): p50 and p95 (bench/nppes_import.py).
# Defaults to a release build (built here); --bin measures another binary. The server and the
# import call no outside system (bench/offline.yaml).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
export PROVIDERCARD_CONFIG="$here/offline.yaml"

# Runs inside scripts/with-postgres: nppes_import.sh __postgres WORK BIN QUERIES
if [[ "${1:-}" == "__postgres" ]]; then
  work=$2 bin=$3 queries=$4
  admin=${PROVIDERCARD_TEST_POSTGRES_URL:?scripts/with-postgres did not export PROVIDERCARD_TEST_POSTGRES_URL}
  db="nppes_bench_$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
  query=""
  if [[ "$admin" == *\?* ]]; then query="?${admin#*\?}"; fi
  base_url=${admin%%\?*}
  db_url="${base_url%/*}/$db$query"
  psql_bin=$(command -v psql || true)
  if [[ -z "$psql_bin" ]]; then
    for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/psql" ]] && psql_bin="$d/psql"; done
  fi
  "$psql_bin" "$admin" -v ON_ERROR_STOP=1 -qAt -c "CREATE DATABASE $db" >/dev/null
  trap '"$psql_bin" "$admin" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
  "$here/nppes_import.sh" __run postgres "$work" "$bin" "$db_url" "$queries" \
    "$psql_bin $db_url -qAt -c 'SELECT pg_database_size(current_database())'"
  exit $?
fi

# One store: nppes_import.sh __run NAME WORK BIN URL QUERIES SIZE_COMMAND
if [[ "${1:-}" == "__run" ]]; then
  name=$2 work=$3 bin=$4 url=$5 queries=$6 size_cmd=$7
  cd "$repo"
  /usr/bin/time -v "$bin" --database-url "$url" import nppes "$work/bundle" \
    >"$work/$name.import.out" 2>"$work/$name.import.err"
  grep -E '^([a-z_]+pfile|search indexes)' "$work/$name.import.out" | sed "s/^/    $name: /"
  rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/$name.import.err")
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/$name.import.err")
  size=$(eval "$size_cmd")
  overall=$(sed -n 's/^import: //p' "$work/$name.import.out")
  echo "$name import: $overall; wall $wall with start-up; peak RSS $((rss_kb / 1024)) MiB; database $((size / 1024 / 1024)) MiB" \
    | tee "$work/$name.summary"
  "$bin" --database-url "$url" serve --listen 127.0.0.1:0 >"$work/$name.serve.out" 2>"$work/$name.serve.err" &
  pid=$!
  trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
  base=""
  for _ in $(seq 1 600); do
    base=$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/$name.serve.out" | head -n1)
    [[ -n "$base" ]] && break
    sleep 0.1
  done
  [[ -n "$base" ]] || { echo "$name server did not start" >&2; tail -20 "$work/$name.serve.err" >&2; exit 1; }
  python3 "$here/nppes_import.py" --base "$base" --queries "$queries" --label "$name" | tee -a "$work/$name.summary"
  exit 0
fi

rows=1000000 stores=sqlite,postgres bin="" queries=200 out=""
while (($#)); do
  case $1 in
    --rows) rows=$2; shift 2 ;;
    --stores) stores=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --queries) queries=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "nppes_import.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ -z "$bin" ]]; then
  (cd "$repo" && cargo build --release --locked -q)
  bin="$repo/target/release/providercard"
fi
work=$(mktemp -d /tmp/nppes-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$repo"
echo "generating $rows provider rows …"
gen_started=$SECONDS
"$bin" nppes generate "$work/bundle" --rows "$rows" | sed 's/^/    /'
echo "    generated in $((SECONDS - gen_started)) s; $(du -sh "$work/bundle" | cut -f1) of CSV"
parse=$("$bin" nppes parse-rate "$work/bundle")
echo "baseline parse: $parse"
IFS=, read -r -a store_list <<<"$stores"
for store in "${store_list[@]}"; do
  case $store in
    sqlite)
      "$here/nppes_import.sh" __run sqlite "$work" "$bin" "sqlite://$work/sqlite.db" "$queries" \
        "du -cb $work/sqlite.db* | tail -n1 | cut -f1"
      ;;
    postgres) "$repo/scripts/with-postgres" "$here/nppes_import.sh" __postgres "$work" "$bin" "$queries" ;;
    *) echo "unknown store $store" >&2; exit 2 ;;
  esac
  rm -f "$work"/sqlite.db*
done
if [[ -n "$out" ]]; then
  mkdir -p "$out" && cp "$work"/*.summary "$work"/*.import.out "$out"/ 2>/dev/null || true
fi
