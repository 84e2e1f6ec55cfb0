#!/bin/bash
# Apache in the foreground (PID 1 is tini, which reaps and forwards signals), with Debian's environment for it.
set -eo pipefail
. /etc/apache2/envvars  # not written for `set -u`
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"
exec apache2 -D FOREGROUND
