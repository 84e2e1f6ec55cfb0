#!/usr/bin/env bash
# Run the whole test suite against real components: set-up (without installing the demo
# stack) makes sure they run, then pytest drives them. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/as-root.sh
bash scripts/setup.sh --no-demo
export PREFECT_API_URL=${PREFECT_API_URL:-http://127.0.0.1:${PREFECT_PORT:-4200}/api}
export PREFECT_SERVER_EPHEMERAL_ENABLED=false  # the tests' own Prefect clients too: never a temporary server
export INCARNATE_HOME=${INCARNATE_HOME:-/var/lib/incarnate}
PREFECT_API_AUTH_STRING=$(cat "$INCARNATE_HOME/prefect-api-auth") && export PREFECT_API_AUTH_STRING
# Tests run in parallel test processes (pytest-xdist): their stacks, ports and Prefect objects are their own; those
# that share something server-wide are grouped (tests/conftest.py, GROUPS) and run in one process, in turn.
exec .venv/bin/python -m pytest --numprocesses "${INCARNATE_TEST_PROCESSES:-3}" "$@"
