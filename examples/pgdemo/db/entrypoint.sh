#!/bin/bash
# PostgreSQL 15 for the PostgreSQL test product: initialise an empty data directory once
# (role and database from the environment), then run the server in the foreground.
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
data=/var/lib/postgresql/data
mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql "$data"
if [ ! -s "$data/PG_VERSION" ]; then
  su postgres -c "$bin/initdb -D $data -U postgres --auth-local=peer --auth-host=scram-sha-256" >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
  # A private socket while initialising, so the health check passes only once it is done.
  su postgres -c "$bin/pg_ctl -D $data -w -o \"-c listen_addresses= -c unix_socket_directories=/tmp\" start" >/dev/null
  su postgres -c "psql -h /tmp -v ON_ERROR_STOP=1 -q" <<SQL
CREATE ROLE "${POSTGRES_USER}" LOGIN PASSWORD '${POSTGRES_PASSWORD}';
CREATE DATABASE "${POSTGRES_DB}" OWNER "${POSTGRES_USER}";
SQL
  su postgres -c "$bin/pg_ctl -D $data -m fast -w stop" >/dev/null
fi
exec su postgres -c "exec $bin/postgres -D $data -c listen_addresses='*'"
