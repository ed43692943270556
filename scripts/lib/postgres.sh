# shellcheck shell=bash
# The one place that knows how to run a throwaway PostgreSQL cluster.
# Sourced by scripts/with-postgres (which scripts/test calls). Needs common.sh.
#
#   pc_pg_start   initdb + start a cluster on a free 127.0.0.1 port, export
#                 PROVIDERCARD_TEST_POSTGRES_URL=postgres://USER@127.0.0.1:PORT/postgres
#   pc_pg_stop    stop it (immediate) and delete its directory; idempotent
#
# Knobs (all optional):
#   PROVIDERCARD_PG_BINDIR   directory with initdb/pg_ctl (default: newest
#                            /usr/lib/postgresql/*/bin, else from PATH)
#   PROVIDERCARD_PG_TMPDIR   where the cluster directory is made (default /tmp)
#   PROVIDERCARD_PG_OS_USER  OS user that runs the server when we are root
#                            (default postgres; created if missing)

PC_PG_ROLE=providercard # bootstrap superuser of the cluster, used by tests
PC_PG_DIR=""            # cluster directory while one is running
PC_PG_BINDIR=""
PC_PG_RUN_AS=()         # prefix that runs a command as the server's OS user
PC_PG_MARKER=.providercard-pg-owner

# Newest directory holding initdb, pg_ctl and postgres; empty if none.
pc_pg_find_bindir() {
  if [[ -n "${PROVIDERCARD_PG_BINDIR:-}" ]]; then
    printf '%s\n' "$PROVIDERCARD_PG_BINDIR"
    return 0
  fi
  local d best=""
  while IFS= read -r d; do
    [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]] && best=$d
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
  if [[ -z "$best" ]] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    best=$(dirname "$(command -v initdb)")
  fi
  printf '%s\n' "$best"
}

# Make sure server binaries exist (installs Debian's postgresql if not).
pc_pg_ensure_installed() {
  PC_PG_BINDIR=$(pc_pg_find_bindir)
  if [[ -z "$PC_PG_BINDIR" ]]; then
    pc_apt_ensure postgresql
    PC_PG_BINDIR=$(pc_pg_find_bindir)
  fi
  [[ -n "$PC_PG_BINDIR" ]] || pc_die "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and PATH)"
}

# A free TCP port on 127.0.0.1 (the start loop retries if it gets taken).
pc_pg_free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' && return 0
  fi
  local p i
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + RANDOM % 40000))
    # connection refused => nobody listens there
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  pc_die "could not find a free port on 127.0.0.1"
}

# Run a PG binary as the server's OS user, from a directory everyone can enter.
pc_pg_run() { (cd / && "${PC_PG_RUN_AS[@]}" env LC_ALL=C LANG=C "$@"); }

# Stop and delete clusters left behind by runs that were SIGKILLed.
pc_pg_reap_stale() {
  local d owner
  for d in "${PROVIDERCARD_PG_TMPDIR:-/tmp}"/providercard-pg.*; do
    [[ -f "$d/$PC_PG_MARKER" ]] || continue
    owner=$(<"$d/$PC_PG_MARKER") || continue
    [[ -n "$owner" && -d "/proc/$owner" ]] && continue # still in use
    pc_info "removing stale cluster $d (owner pid $owner is gone)"
    if [[ -f "$d/data/postmaster.pid" ]]; then
      pc_pg_run "$PC_PG_BINDIR/pg_ctl" -D "$d/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf -- "$d" 2>/dev/null || true
  done
}

pc_pg_start() {
  local t0 base os_user port attempt started=0
  t0=$(pc_now_us)
  pc_pg_ensure_installed
  base=${PROVIDERCARD_PG_TMPDIR:-/tmp}

  if pc_is_root; then
    # PostgreSQL refuses to run as root: run it as an unprivileged user.
    os_user=${PROVIDERCARD_PG_OS_USER:-postgres}
    if ! id -u "$os_user" >/dev/null 2>&1; then
      pc_info "creating system user $os_user"
      useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
        --shell /bin/bash "$os_user" || pc_die "could not create user $os_user"
    fi
    PC_PG_RUN_AS=(runuser -u "$os_user" --)
  else
    os_user=$(id -un)
    PC_PG_RUN_AS=()
  fi

  pc_pg_reap_stale

  PC_PG_DIR=$(mktemp -d "$base/providercard-pg.XXXXXX") || pc_die "mktemp -d in $base failed"
  printf '%s\n' "$$" >"$PC_PG_DIR/$PC_PG_MARKER"
  if pc_is_root; then
    chown -R "$os_user:" "$PC_PG_DIR"
    pc_pg_run test -w "$PC_PG_DIR" ||
      pc_die "$os_user cannot write $PC_PG_DIR (is $base traversable by $os_user?)"
  fi

  pc_info "binaries: $PC_PG_BINDIR ($("$PC_PG_BINDIR/postgres" --version))"
  pc_info "cluster:  $PC_PG_DIR (server runs as $os_user)"
  if ! pc_pg_run "$PC_PG_BINDIR/initdb" -D "$PC_PG_DIR/data" -U "$PC_PG_ROLE" \
    --auth=trust --encoding=UTF8 --locale=C --no-sync \
    >"$PC_PG_DIR/initdb.log" 2>&1; then
    cat "$PC_PG_DIR/initdb.log" >&2
    pc_die "initdb failed"
  fi
  # Loopback only, sockets in the cluster dir, durability off (throwaway).
  # initdb --auth=trust made pg_hba trust local sockets and 127.0.0.1/::1.
  cat >>"$PC_PG_DIR/data/postgresql.conf" <<CONF

# --- scripts/lib/postgres.sh: throwaway test cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PC_PG_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
log_min_messages = warning
CONF

  for attempt in 1 2 3 4 5; do
    port=$(pc_pg_free_port)
    rm -f "$PC_PG_DIR/postgres.log" # pg_ctl creates it as the server's user
    if pc_pg_run "$PC_PG_BINDIR/pg_ctl" -D "$PC_PG_DIR/data" -l "$PC_PG_DIR/postgres.log" \
      -o "-p $port" -w -t 60 start >"$PC_PG_DIR/pg_ctl.log" 2>&1; then
      started=1
      break
    fi
    if grep -qiE 'could not bind|address already in use' "$PC_PG_DIR/postgres.log" 2>/dev/null; then
      pc_info "port $port was taken, retrying ($attempt/5)"
      continue
    fi
    cat "$PC_PG_DIR/pg_ctl.log" "$PC_PG_DIR/postgres.log" >&2 2>/dev/null || true
    pc_die "pg_ctl start failed"
  done
  ((started)) || pc_die "could not start PostgreSQL on a free port after 5 attempts"

  local i
  for ((i = 0; i < 300; i++)); do
    "$PC_PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$PC_PG_ROLE" -d postgres && break
    sleep 0.1
  done
  "$PC_PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$PC_PG_ROLE" -d postgres || {
    cat "$PC_PG_DIR/postgres.log" >&2
    pc_die "PostgreSQL did not accept connections on 127.0.0.1:$port within 30s"
  }

  PROVIDERCARD_TEST_POSTGRES_URL="postgres://$PC_PG_ROLE@127.0.0.1:$port/postgres"
  export PROVIDERCARD_TEST_POSTGRES_URL
  pc_info "ready in $(pc_fmt_us "$(($(pc_now_us) - t0))"): PROVIDERCARD_TEST_POSTGRES_URL=$PROVIDERCARD_TEST_POSTGRES_URL"
}

# Safe to call any number of times, from traps, with or without a cluster.
pc_pg_stop() {
  [[ -n "$PC_PG_DIR" ]] || return 0
  local dir=$PC_PG_DIR t0 pid
  PC_PG_DIR=""
  t0=$(pc_now_us)
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    if ! pc_pg_run "$PC_PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1; then
      pid=$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)
      if [[ "$pid" =~ ^[0-9]+$ ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
      sleep 0.2
    fi
  fi
  rm -rf -- "$dir" || pc_warn "could not remove $dir"
  pc_info "stopped and removed $dir in $(pc_fmt_us "$(($(pc_now_us) - t0))")"
}
