#!/usr/bin/env bash
# Set everything up on a Debian 12 machine and install the demo stack:
#   Python environment from requirements.lock, Docker engine + Compose v2, local registry,
#   Prefect server, the demo release's images and release store, the demo customer repo,
#   then `incarnate install` of that customer. Idempotent: a second run skips what is there.
#   --no-demo stops before installing the demo stack (the test command uses that).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export INCARNATE_HOME=${INCARNATE_HOME:-/var/lib/incarnate}
export VENV=${VENV:-$ROOT/.venv}
started=$(date +%s)
. scripts/lib.sh

. scripts/as-root.sh

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  step "installing python3-venv"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

# The venv is rebuilt only when the lock file or pyproject.toml changed since it was made.
lock_sum=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.lock-sum" 2>/dev/null)" != "$lock_sum" ]; then
  step "creating the Python environment $VENV from requirements.lock"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.lock
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -e .
  echo "$lock_sum" > "$VENV/.lock-sum"
else
  step "Python environment $VENV is current"
fi

bash scripts/services.sh
export PREFECT_API_URL=${PREFECT_API_URL:-http://127.0.0.1:${PREFECT_PORT:-4200}/api}
export PREFECT_SERVER_EPHEMERAL_ENABLED=false  # `prefect block register` too: never a temporary server
PREFECT_API_AUTH_STRING=$(cat "$INCARNATE_HOME/prefect-api-auth") && export PREFECT_API_AUTH_STRING

step "registering incarnate's block types with the Prefect server"
for module in blocks.stores blocks.hosts blocks.registries; do "$VENV/bin/prefect" block register --module "$module" >/dev/null; done

step "building the example products' images"
"$VENV/bin/python" examples/demo/build.py

# As a vendor's CI does: each release is published by running it (a no-op once it is published).
for release in examples/*/releases/*/; do
  step "publishing ${release%/}"
  "$VENV/bin/incarnate" release publish "$release"
done

step "set-up done in $(( $(date +%s) - started )) s"
if [ "${1:-}" != "--no-demo" ]; then
  step "installing the demo stack"
  "$VENV/bin/incarnate" install "$INCARNATE_HOME/customers/demo"
  "$VENV/bin/incarnate" register "$INCARNATE_HOME/customers/demo" >/dev/null
  step "the demo app answers at http://127.0.0.1:8080; Prefect UI: http://127.0.0.1:${PREFECT_PORT:-4200} (password: the line in $INCARNATE_HOME/prefect-api-auth)"
  step "serve its deployments (UI buttons, nightly backup): .venv/bin/incarnate serve"
fi
