#!/usr/bin/env bash
# Search benchmark of the providercard binary on each store:
#
#   bench/search_bench.sh [--practitioners N] [--seconds S] [--concurrency C] [--loaders L]
#                         [--batch B] [--warmup W] [--stores sqlite,postgres] [--out DIR]
#                         [--bin PATH]
#
# Picks target/release/providercard when it exists and is newer than the sources, else
# target/debug/providercard (never builds); --bin names another one (say, a copy kept from an
# earlier run, to measure the same build again). For each store it starts the binary on a fresh
# database (a temp SQLite file; a new database bench_<random> on a throwaway PostgreSQL
# cluster from scripts/with-postgres), runs bench/search_bench.py against it (load N
# practitioners with their roles and locations, then time the searches), stops it with
# SIGTERM, and at the end prints tables comparing the stores. Results (JSON) and server logs
# are kept in --out (default: a new temp directory, printed); the binary is copied there for
# the run, so that both stores measure the same build even if a build replaces it meanwhile.
#
# Defaults: 100,000 practitioners (300,000 resources), 10 s per query after 1 s warm-up,
# 4 concurrent clients, 3 loaders posting transactions of 100 practitioners (300 entries).
# Exit status: 0 all requests succeeded with plausible answers; 3 some failed or were wrong
# (see the ERRORS / WRONG lines); other non-zero: the benchmark itself could not run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The server alone is measured: no outside system (NPPES) is called.
export PROVIDERCARD_CONFIG="$here/offline.yaml"
repo=$(cd "$here/.." && pwd)

# A signal ends the script through `exit`, so that the EXIT traps below (stop the server, drop
# the database, remove the temp SQLite file) run.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; }

# ------------------------------------------------------------------ the PostgreSQL leg
# Runs inside scripts/with-postgres (re-invoked as: search_bench.sh __postgres OUTDIR BIN ARGS...).
if [[ "${1:-}" == "__postgres" ]]; then
  shift
  out=$1 bin=$2
  shift 2
  admin=${PROVIDERCARD_TEST_POSTGRES_URL:?scripts/with-postgres did not export PROVIDERCARD_TEST_POSTGRES_URL}
  db="bench_$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
  # postgres://user@host:port/postgres[?query] -> same URL naming the new database
  query=""
  if [[ "$admin" == *\?* ]]; then query="?${admin#*\?}"; fi
  base_url=${admin%%\?*}
  db_url="${base_url%/*}/$db$query"
  psql_bin=$(command -v psql || true)
  if [[ -z "$psql_bin" ]]; then
    for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/psql" ]] && psql_bin="$d/psql"; done
  fi
  [[ -n "$psql_bin" ]] || { echo "search_bench.sh: psql not found" >&2; exit 1; }
  echo "    creating database $db" >&2
  "$psql_bin" "$admin" -v ON_ERROR_STOP=1 -qAt -c "CREATE DATABASE $db" >/dev/null
  # shellcheck disable=SC2317  # invoked from the EXIT trap
  drop_db() { "$psql_bin" "$admin" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; }
  trap 'trap "" HUP INT TERM; drop_db' EXIT
  rc=0
  "$here/search_bench.sh" __run postgres "$out" "$bin" "$db_url" "$@" || rc=$?
  exit "$rc"
fi

# ------------------------------------------------------------------ one store: serve, load + search, stop
# search_bench.sh __run NAME OUTDIR BIN DATABASE_URL BENCHARGS...
if [[ "${1:-}" == "__run" ]]; then
  shift
  name=$1 out=$2 bin=$3 db_url=$4
  shift 4
  cd "$repo" # --profiles defaults to ./profiles
  # The top level stops this leg through this file on a signal (the PostgreSQL leg runs under
  # scripts/with-postgres, which only passes a signal on once its command has finished).
  pidfile="$out/.$name.run.pid"
  echo "$$" >"$pidfile"
  log="$out/$name.server.log"
  stdout_file="$out/$name.server.out"
  : >"$stdout_file"
  serve_args=(serve --listen 127.0.0.1:0)
  # Writes may come to require authentication; the benchmark loads through an open server.
  if "$bin" serve --help 2>/dev/null | grep -q -- '--open-writes'; then serve_args+=(--open-writes); fi
  started=$SECONDS
  "$bin" --database-url "$db_url" "${serve_args[@]}" >"$stdout_file" 2>"$log" &
  pid=$!
  stop_server() {
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "    server $pid did not stop within 15 s of SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    wait "$pid" 2>/dev/null || true
  }
  trap 'trap "" HUP INT TERM; stop_server; rm -f "$pidfile"' EXIT
  base=""
  for _ in $(seq 1 600); do # up to 60 s for migrations and profile loading
    base=$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$stdout_file" | head -n1)
    [[ -n "$base" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$base" ]]; then
    echo "search_bench.sh: the $name server did not start; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  echo "    $name server pid $pid at $base after $((SECONDS - started)) s (log: $log; args: ${serve_args[*]})" >&2
  rc=0
  bench_started=$SECONDS
  python3 "$here/search_bench.py" --base "$base" --label "$name" --json "$@" >"$out/$name.json" &
  py=$!
  # shellcheck disable=SC2317  # invoked from the EXIT trap
  stop_python() { # a signal arrived while search_bench.py ran
    if kill -0 "$py" 2>/dev/null; then kill -TERM "$py" 2>/dev/null || true; fi
    wait "$py" 2>/dev/null || true
  }
  trap 'trap "" HUP INT TERM; stop_python; stop_server; rm -f "$pidfile"' EXIT
  wait "$py" || rc=$?
  echo "    $name: search_bench.py took $((SECONDS - bench_started)) s" >&2
  stop_server
  trap - EXIT
  rm -f "$pidfile"
  # Server-side complaints: WARN/ERROR lines and 5xx answers (ANSI colours stripped).
  problems=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E ' (WARN|ERROR) |status=5[0-9][0-9]' || true)
  if [[ -n "$problems" ]]; then
    echo "    server log: $(printf '%s\n' "$problems" | wc -l) WARN/ERROR/5xx line(s); the first ones:" >&2
    printf '%s\n' "$problems" | head -n 8 | cut -c1-400 | sed 's/^/      /' >&2
  fi
  if ((rc != 0 && rc != 3)); then
    echo "search_bench.sh: search_bench.py failed on $name (exit $rc)" >&2
  fi
  exit "$rc"
fi

# ------------------------------------------------------------------ main
practitioners=100000 seconds=10 concurrency=4 loaders=3 batch=100 warmup=1 stores=sqlite,postgres out="" bin=""
while (($#)); do
  case "$1" in
    --practitioners) practitioners=${2:?}; shift 2 ;;
    --seconds) seconds=${2:?}; shift 2 ;;
    --concurrency) concurrency=${2:?}; shift 2 ;;
    --loaders) loaders=${2:?}; shift 2 ;;
    --batch) batch=${2:?}; shift 2 ;;
    --warmup) warmup=${2:?}; shift 2 ;;
    --stores) stores=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --bin) bin=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "search_bench.sh: unknown argument $1" >&2; usage; exit 2 ;;
  esac
done
bench_args=(--practitioners "$practitioners" --seconds "$seconds" --concurrency "$concurrency"
  --loaders "$loaders" --batch "$batch" --warmup "$warmup")

# Which binary: release if present and newer than every source file, else debug.
release="$repo/target/release/providercard"
debug="$repo/target/debug/providercard"
newer_than_sources() { # true when $1 is newer than everything that goes into it
  [[ -z "$(find "$repo/src" "$repo/migrations" "$repo/Cargo.toml" "$repo/Cargo.lock" -newer "$1" -print -quit 2>/dev/null)" ]]
}
if [[ -n "$bin" ]]; then
  [[ -x "$bin" && -f "$bin" ]] || { echo "search_bench.sh: --bin $bin is not an executable file" >&2; exit 2; }
  echo "binary: $bin (--bin)"
elif [[ -x "$release" ]] && newer_than_sources "$release"; then
  bin=$release
  echo "binary: $bin (release build)"
elif [[ -x "$debug" ]]; then
  bin=$debug
  why="no release build"
  [[ -x "$release" ]] && why="the release build is older than the sources"
  echo "binary: $bin (DEBUG build: $why)"
  echo "        debug figures are only meaningful as ratios (to the baseline, and between stores), not as absolute throughput"
  if ! newer_than_sources "$debug"; then
    echo "        WARNING: the debug build is older than some sources; it measures the code as last built"
  fi
else
  echo "search_bench.sh: no binary: build target/release/providercard or target/debug/providercard first" >&2
  exit 1
fi

if [[ -z "$out" ]]; then
  out=$(mktemp -d "${TMPDIR:-/tmp}/providercard-search-bench.XXXXXX")
else
  mkdir -p "$out"
fi
echo "results and server logs: $out"
# The run takes a while and a build may replace the binary meanwhile: both stores run one copy.
pinned="$out/providercard"
cp -p "$bin" "$pinned"
echo "binary copied to $pinned (built $(date -r "$bin" '+%Y-%m-%d %H:%M:%S'), removed at the end)"
bin=$pinned
echo "load: ${practitioners} practitioners x 3 resources, transactions of ${batch} practitioners, ${loaders} loaders"
echo "per query: ${seconds}s measured after ${warmup}s warm-up, ${concurrency} clients"

compare=()
worst=0
leg="" dbdir=""
# shellcheck disable=SC2317  # invoked from the EXIT trap
stop_leg() { # on a signal: stop the running leg (and, through its pid file, its benchmark and server)
  local f p
  trap '' HUP INT TERM
  if [[ -n "$leg" ]] && kill -0 "$leg" 2>/dev/null; then
    for f in "$out"/.*.run.pid; do
      [[ -f "$f" ]] || continue
      p=$(<"$f")
      if [[ "$p" =~ ^[0-9]+$ && "$p" != "$leg" ]]; then kill -TERM "$p" 2>/dev/null || true; fi
    done
    kill -TERM "$leg" 2>/dev/null || true
    wait "$leg" 2>/dev/null || true
  fi
  if [[ -n "$dbdir" ]]; then rm -rf -- "$dbdir"; fi
  rm -f -- "$pinned"
}
trap stop_leg EXIT
IFS=, read -r -a store_list <<<"$stores"
for store in "${store_list[@]}"; do
  rc=0
  leg_started=$SECONDS
  case "$store" in
    sqlite)
      echo
      echo "=== SQLite"
      dbdir=$(mktemp -d "${TMPDIR:-/tmp}/providercard-search-bench-sqlite.XXXXXX")
      "$here/search_bench.sh" __run sqlite "$out" "$bin" "sqlite://$dbdir/bench.db" "${bench_args[@]}" &
      leg=$!
      wait "$leg" || rc=$?
      rm -rf -- "$dbdir"
      dbdir=""
      ;;
    postgres)
      echo
      echo "=== PostgreSQL"
      "$repo/scripts/with-postgres" "$here/search_bench.sh" __postgres "$out" "$bin" "${bench_args[@]}" &
      leg=$!
      wait "$leg" || rc=$?
      ;;
    *) echo "search_bench.sh: unknown store $store (sqlite, postgres)" >&2; exit 2 ;;
  esac
  leg=""
  echo "=== $store: $((SECONDS - leg_started)) s in all (exit $rc)"
  if [[ -s "$out/$store.json" ]] && ((rc == 0 || rc == 3)); then
    compare+=("$store=$out/$store.json")
  fi
  if ((rc != 0 && rc != 3)); then worst=1; elif ((rc == 3 && worst == 0)); then worst=3; fi
done
trap - EXIT
rm -f -- "$pinned"

if ((${#compare[@]})); then
  echo
  echo "=== comparison (reference: ${compare[0]%%=*})"
  python3 "$here/search_bench.py" --compare "${compare[@]}" || true
fi
if ((worst == 3)); then
  echo
  echo "some requests FAILED or answered wrongly: see the ERRORS / WRONG lines above and the server logs in $out"
fi
exit "$worst"
