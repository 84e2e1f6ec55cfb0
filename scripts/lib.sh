# Sourced by the set-up scripts: the helpers each of them needs, once.

INCARNATE_HOME=${INCARNATE_HOME:-/var/lib/incarnate}
LOGS=${INCARNATE_LOGS:-/var/log/incarnate}

ensure_home() {  # stacks, state, backups and the Prefect database are for root only
  mkdir -p "$INCARNATE_HOME" "$LOGS"
  chmod 700 "$INCARNATE_HOME"
}

step() { printf '==> %s\n' "$*"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "error: $what did not come up within ${seconds} s; see ${LOGS:-/var/log/incarnate}" >&2
  return 1
}

ensure_packages() {  # ensure_packages PACKAGE...: Debian's, installed once
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
