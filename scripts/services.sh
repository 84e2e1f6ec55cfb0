#!/usr/bin/env bash
# Install (Debian packages) and start the real components incarnate drives: the Docker
# engine, the local image registry and the Prefect server (scripts/prefect-server.sh). Idempotent: what is there and
# answering is left alone. Needs root (apt-get, dockerd).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
ensure_home

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

ensure_packages docker.io docker-registry busybox-static mmdebstrap git curl ca-certificates samba restic chromium openssh-server openssh-client
ensure_npm_package azurite azurite "$AZURITE_VERSION"                # the Azure Blob emulator the tests start
ensure_npm_package playwright playwright-core "$PLAYWRIGHT_VERSION"  # drives Debian's Chromium in the UI test; never downloads a browser
start_docker
start_registry
bash "$(dirname "$0")/prefect-server.sh"
