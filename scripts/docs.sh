#!/usr/bin/env bash
# Serve the docs (docs/, mkdocs) at http://127.0.0.1:8000 while you edit them; needs the venv set-up makes.
# Extra arguments go to `mkdocs serve` (e.g. -a 127.0.0.1:8001).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/mkdocs ] || { echo "error: .venv/bin/mkdocs is missing: run bash scripts/setup.sh first." >&2; exit 2; }
export NO_MKDOCS_2_WARNING=1
exec .venv/bin/mkdocs serve --dev-addr 127.0.0.1:8000 "$@"
