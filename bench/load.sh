#!/usr/bin/env bash
# Load benchmark of the providercard binary on each store:
#
#   bench/load.sh [--seconds N] [--concurrency C] [--seed K] [--warmup S]
#                 [--stores sqlite,postgres] [--out DIR] [--bin PATH]
#
# Picks target/release/providercard when it exists and is newer than the sources, else
# target/debug/providercard (never builds); --bin names another one (say, a copy kept aside, so
# that a rebuild meanwhile does not change what is measured). For each store it starts the
# binary on a fresh database (a temp SQLite file; a new database bench_<random> on a throwaway
# PostgreSQL cluster from scripts/with-postgres), runs bench/load.py against it, stops it with
# SIGTERM, and at the end prints a table comparing the stores. Results (JSON) and server logs
# are kept in --out (default: a new temp directory, printed).
#
# Defaults: 10 s per phase, 8 concurrent clients, 200 seeded practitioners, 1 s warm-up.
# Exit status: 0 all requests succeeded; 3 some requests failed (see the ERRORS lines);
# other non-zero: the benchmark itself could not run.
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
# Runs inside scripts/with-postgres (re-invoked as: load.sh __postgres OUTDIR BIN LOADARGS...).
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
  [[ -n "$psql_bin" ]] || { echo "load.sh: psql not found" >&2; exit 1; }
  echo "    creating database $db" >&2
  "$psql_bin" "$admin" -v ON_ERROR_STOP=1 -qAt -c "CREATE DATABASE $db" >/dev/null
  # shellcheck disable=SC2317  # invoked from the EXIT trap
  drop_db() { "$psql_bin" "$admin" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; }
  trap 'trap "" HUP INT TERM; drop_db' EXIT
  rc=0
  "$here/load.sh" __run postgres "$out" "$bin" "$db_url" "$@" || rc=$?
  exit "$rc"
fi

# ------------------------------------------------------------------ one store: serve, load, stop
# load.sh __run NAME OUTDIR BIN DATABASE_URL LOADARGS...
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
  # The benchmark writes without credentials: open-writes mode (see README, "Who may write").
  "$bin" --database-url "$db_url" serve --listen 127.0.0.1:0 --open-writes >"$stdout_file" 2>"$log" &
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
    echo "load.sh: the $name server did not start; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  echo "    $name server pid $pid at $base (log: $log)" >&2
  rc=0
  python3 "$here/load.py" --base "$base" --label "$name" --json "$@" >"$out/$name.json" &
  py=$!
  # shellcheck disable=SC2317  # invoked from the EXIT trap
  stop_python() { # a signal arrived while load.py ran
    if kill -0 "$py" 2>/dev/null; then kill -TERM "$py" 2>/dev/null || true; fi
    wait "$py" 2>/dev/null || true
  }
  trap 'trap "" HUP INT TERM; stop_python; stop_server; rm -f "$pidfile"' EXIT
  wait "$py" || rc=$?
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
    echo "load.sh: load.py failed on $name (exit $rc)" >&2
  fi
  exit "$rc"
fi

# ------------------------------------------------------------------ main
seconds=10 concurrency=8 seed=200 warmup=1 stores=sqlite,postgres out="" bin=""
while (($#)); do
  case "$1" in
    --seconds) seconds=${2:?}; shift 2 ;;
    --concurrency) concurrency=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --warmup) warmup=${2:?}; shift 2 ;;
    --stores) stores=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --bin) bin=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "load.sh: unknown argument $1" >&2; usage; exit 2 ;;
  esac
done
load_args=(--seconds "$seconds" --concurrency "$concurrency" --seed "$seed" --warmup "$warmup")

# Which binary: release if present and newer than every source file, else debug.
release="$repo/target/release/providercard"
debug="$repo/target/debug/providercard"
newer_than_sources() { # true when $1 is newer than everything that goes into it
  [[ -z "$(find "$repo/src" "$repo/migrations" "$repo/Cargo.toml" "$repo/Cargo.lock" -newer "$1" -print -quit 2>/dev/null)" ]]
}
if [[ -n "$bin" ]]; then
  [[ -x "$bin" && -f "$bin" ]] || { echo "load.sh: --bin $bin is not an executable file" >&2; exit 2; }
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
  echo "load.sh: no binary: build target/release/providercard or target/debug/providercard first" >&2
  exit 1
fi

if [[ -z "$out" ]]; then
  out=$(mktemp -d "${TMPDIR:-/tmp}/providercard-bench.XXXXXX")
else
  mkdir -p "$out"
fi
echo "results and server logs: $out"
echo "per phase: ${seconds}s measured after ${warmup}s warm-up, ${concurrency} clients, ${seed} seeded practitioners"

compare=()
worst=0
leg="" dbdir=""
# shellcheck disable=SC2317  # invoked from the EXIT trap
stop_leg() { # on a signal: stop the running leg (and, through its pid file, its load and server)
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
}
trap stop_leg EXIT
IFS=, read -r -a store_list <<<"$stores"
for store in "${store_list[@]}"; do
  rc=0
  case "$store" in
    sqlite)
      echo
      echo "=== SQLite"
      dbdir=$(mktemp -d "${TMPDIR:-/tmp}/providercard-bench-sqlite.XXXXXX")
      "$here/load.sh" __run sqlite "$out" "$bin" "sqlite://$dbdir/bench.db" "${load_args[@]}" &
      leg=$!
      wait "$leg" || rc=$?
      rm -rf -- "$dbdir"
      dbdir=""
      ;;
    postgres)
      echo
      echo "=== PostgreSQL"
      "$repo/scripts/with-postgres" "$here/load.sh" __postgres "$out" "$bin" "${load_args[@]}" &
      leg=$!
      wait "$leg" || rc=$?
      ;;
    *) echo "load.sh: unknown store $store (sqlite, postgres)" >&2; exit 2 ;;
  esac
  leg=""
  if [[ -s "$out/$store.json" ]] && ((rc == 0 || rc == 3)); then
    compare+=("$store=$out/$store.json")
  fi
  if ((rc != 0 && rc != 3)); then worst=1; elif ((rc == 3 && worst == 0)); then worst=3; fi
done
trap - EXIT

if ((${#compare[@]})); then
  echo
  echo "=== comparison (reference: ${compare[0]%%=*})"
  python3 "$here/load.py" --compare "${compare[@]}" || true
fi
if ((worst == 3)); then
  echo
  echo "some requests FAILED: see the ERRORS lines above and the server logs in $out"
fi
exit "$worst"
