# Sourced by setup.sh and test.sh: they need root (apt-get, dockerd, the tests' own daemons). Run as root they go
# on; run by a normal user they start again through sudo, keeping incarnate's settings from the environment.
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=INCARNATE_HOME,INCARNATE_RELEASES,INCARNATE_REGISTRY,INCARNATE_LOGS,PREFECT_API_URL,PREFECT_PORT,INCARNATE_PREFECT_DB,INCARNATE_PREFECT_DB_PORT,INCARNATE_PREFECT_DB_NAME,CI \
      bash "scripts/$(basename "$0")" "$@"  # the caller has cd to the repository root
  fi
  echo "error: scripts/$(basename "$0") installs Debian packages and starts daemons: run it as root (sudo is not installed here)." >&2
  exit 2
fi
