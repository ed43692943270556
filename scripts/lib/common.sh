# shellcheck shell=bash
# Shared helpers for scripts/*: phase headers with elapsed time, root/sudo,
# idempotent Debian package installs. Sourced, never executed.

# One clock for the whole run: nested scripts (scripts/test ->
# scripts/with-postgres) inherit the start time and print comparable numbers.
if [[ -z "${PROVIDERCARD_SCRIPT_T0:-}" ]]; then
  PROVIDERCARD_SCRIPT_T0=${EPOCHREALTIME//[!0-9]/}
  export PROVIDERCARD_SCRIPT_T0
fi

# Microseconds since the epoch (locale-proof: strips the decimal separator).
pc_now_us() { printf '%s' "${EPOCHREALTIME//[!0-9]/}"; }

# pc_fmt_us MICROSECONDS -> "12.3s"
pc_fmt_us() { printf '%d.%01ds' "$(($1 / 1000000))" "$((($1 % 1000000) / 100000))"; }

pc_elapsed() { pc_fmt_us "$(($(pc_now_us) - PROVIDERCARD_SCRIPT_T0))"; }

# A header line for a phase, on stderr so command output stays clean.
pc_phase() { printf '\n==> [%7s] %s\n' "$(pc_elapsed)" "$*" >&2; }
pc_info() { printf '    %s\n' "$*" >&2; }
pc_warn() { printf '    WARNING: %s\n' "$*" >&2; }
pc_die() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

pc_is_root() { [[ "$(id -u)" == 0 ]]; }

# Run a command as root: directly when root, else through sudo.
pc_as_root() {
  if pc_is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    pc_die "need root for: $* (not root and no sudo)"
  fi
}

pc_deb_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# pc_apt_ensure PKG... : install the Debian packages that are missing, quietly.
# apt-get update runs only when something has to be installed.
pc_apt_ensure() {
  local missing=() p
  if ! command -v dpkg-query >/dev/null 2>&1; then
    pc_warn "not a Debian system: cannot check/install $*; assuming they are present"
    return 0
  fi
  for p in "$@"; do
    pc_deb_installed "$p" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    pc_info "already installed: $*"
    return 0
  fi
  pc_info "installing: ${missing[*]}"
  local log rc=0
  log=$(mktemp "${TMPDIR:-/tmp}/providercard-apt.XXXXXX")
  {
    pc_as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq \
      -o DPkg::Lock::Timeout=300 update &&
      pc_as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq -y \
        -o DPkg::Lock::Timeout=300 --no-install-recommends install "${missing[@]}"
  } </dev/null >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    cat "$log" >&2
    rm -f "$log"
    pc_die "apt-get failed (exit $rc) installing: ${missing[*]}"
  fi
  rm -f "$log"
}
