#!/usr/bin/env bash
# Install (Debian packages) and start the real components incarnate drives: the Docker
# engine, the local image registry and the Prefect server. Idempotent: what is there and
# answering is left alone. Needs root (apt-get, dockerd).
set -euo pipefail

INCARNATE_HOME=${INCARNATE_HOME:-/var/lib/incarnate}
LOGS=${INCARNATE_LOGS:-/var/log/incarnate}
PREFECT_PORT=${PREFECT_PORT:-4200}
mkdir -p "$INCARNATE_HOME" "$LOGS"
chmod 700 "$INCARNATE_HOME"  # stacks, state, backups and the Prefect database are for root only

step() { printf '==> %s\n' "$*"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "error: $what did not come up within ${seconds} s; see $LOGS" >&2
  return 1
}

ensure_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_docker() {
  if docker info >/dev/null 2>&1; then step "Docker engine answers"; return 0; fi
  step "starting the Docker engine"
  if command -v systemctl >/dev/null 2>&1 && systemctl start docker 2>/dev/null; then :; else
    setsid dockerd >"$LOGS/dockerd.log" 2>&1 < /dev/null &
  fi
  wait_for 60 "the Docker engine" docker info
}

start_registry() {
  if curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1; then step "registry answers on 127.0.0.1:5000"; return 0; fi
  step "starting the image registry on 127.0.0.1:5000"
  mkdir -p "$INCARNATE_HOME/registry/data"
  cat > "$INCARNATE_HOME/registry/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $INCARNATE_HOME/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
YAML
  setsid docker-registry serve "$INCARNATE_HOME/registry/config.yml" >"$LOGS/registry.log" 2>&1 < /dev/null &
  wait_for 30 "the registry" curl -fsS http://127.0.0.1:5000/v2/
}

# The Prefect API holds the stacks' Secret blocks: it answers only with the password in this file (basic auth;
# PREFECT_SERVER_API_AUTH_STRING for the server, PREFECT_API_AUTH_STRING for every client).
PREFECT_AUTH_FILE="$INCARNATE_HOME/prefect-api-auth"

ensure_prefect_auth() {
  [ -s "$PREFECT_AUTH_FILE" ] && return 0
  step "generating the Prefect API password into $PREFECT_AUTH_FILE (0600)"
  (umask 077 && python3 -c 'import secrets; print("incarnate:" + secrets.token_urlsafe(32))' > "$PREFECT_AUTH_FILE")
}

api_status() {  # the HTTP status of an API call, with the password when given (read from a file: never an argument)
  curl -s -o /dev/null -w '%{http_code}' ${1:+--config "$1"} "http://127.0.0.1:$PREFECT_PORT/api/admin/version" || true
}

start_prefect() {
  local api="http://127.0.0.1:$PREFECT_PORT/api" credentials
  ensure_prefect_auth
  credentials=$(mktemp) && chmod 600 "$credentials"
  printf 'user = "%s"\n' "$(cat "$PREFECT_AUTH_FILE")" > "$credentials"
  if curl -fsS "$api/health" >/dev/null 2>&1; then
    if [ "$(api_status)" = 200 ]; then
      step "the Prefect server on $api answers without a password: restarting it with one"
      pkill -f "prefect server start --host 127.0.0.1 --port $PREFECT_PORT" || true
      for _ in $(seq 60); do curl -fsS "$api/health" >/dev/null 2>&1 || break; sleep 0.5; done
    elif [ "$(api_status "$credentials")" = 200 ]; then
      rm -f "$credentials"; step "Prefect server answers on $api (password required)"; return 0
    else
      rm -f "$credentials"
      echo "error: the Prefect server on $api refuses the password in $PREFECT_AUTH_FILE; stop it or fix that file." >&2
      return 1
    fi
  fi
  rm -f "$credentials"
  step "starting the Prefect server (SQLite under $INCARNATE_HOME/prefect, password required)"
  PREFECT_HOME="$INCARNATE_HOME/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_SERVER_API_AUTH_STRING="$(cat "$PREFECT_AUTH_FILE")" \
    setsid "$VENV/bin/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT" \
    >"$LOGS/prefect-server.log" 2>&1 < /dev/null &
  wait_for 120 "the Prefect server" curl -fsS "$api/health"
}

VENV=${VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv}
AZURITE_VERSION=3.35.0
PLAYWRIGHT_VERSION=1.65.1

ensure_npm_package() {  # ensure_npm_package FOLDER NAME VERSION: exactly that version, once, into INCARNATE_HOME/tools/FOLDER
  local prefix="$INCARNATE_HOME/tools/$1" name=$2 version=$3
  grep -q "\"version\": \"$version\"" "$prefix/node_modules/$name/package.json" 2>/dev/null && return 0
  command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm
  step "installing $name@$version (npm) into $prefix"
  mkdir -p "$prefix"
  npm install --silent --no-audit --no-fund --save-exact --prefix "$prefix" "$name@$version" >/dev/null
}

ensure_packages docker.io docker-registry mmdebstrap git curl ca-certificates samba restic chromium openssh-server openssh-client
ensure_npm_package azurite azurite "$AZURITE_VERSION"                # the Azure Blob emulator the tests start
ensure_npm_package playwright playwright-core "$PLAYWRIGHT_VERSION"  # drives Debian's Chromium in the UI test; never downloads a browser
start_docker
start_registry
start_prefect
