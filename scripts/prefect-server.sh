#!/usr/bin/env bash
# Start the Prefect server incarnate's flows report to, on 127.0.0.1:$PREFECT_PORT, password required.
# Idempotent: a server that answers with the password is left alone. Called by services.sh; needs root.
#
# Its database: SQLite under $INCARNATE_HOME/prefect (the default, one machine) or, with
# INCARNATE_PREFECT_DB=postgresql, Debian's PostgreSQL (Prefect's production database, for many stacks):
# a cluster named incarnate on 127.0.0.1:$INCARNATE_PREFECT_DB_PORT (5433), a database and role named
# $INCARNATE_PREFECT_DB_NAME (prefect), its password in $INCARNATE_HOME/prefect-db-password (0600).
# The choice is recorded in $INCARNATE_HOME/prefect-db and kept by every later run without the option.
# That database holds the stacks' Secret blocks (store keys, registry logins) and the run history, so a
# home that has one is never switched to the other kind, which would start empty.
set -euo pipefail

PREFECT_PORT=${PREFECT_PORT:-4200}
VENV=${VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv}
. "$(dirname "$0")/lib.sh"
ensure_home

# The Prefect API holds the stacks' Secret blocks: it answers only with the password in this file (basic auth;
# PREFECT_SERVER_API_AUTH_STRING for the server, PREFECT_API_AUTH_STRING for every client).
PREFECT_AUTH_FILE="$INCARNATE_HOME/prefect-api-auth"
DB_CHOICE_FILE="$INCARNATE_HOME/prefect-db"          # "sqlite", or "postgresql PORT NAME"
DB_PASSWORD_FILE="$INCARNATE_HOME/prefect-db-password"
PG_CLUSTER=incarnate

fail() { echo "error: $*" >&2; exit 1; }

as_postgres() { (cd / && runuser -u postgres -- "$@"); }  # from / : postgres may not read the caller's folder

new_secret() {  # new_secret FILE [PREFIX]: a generated password into FILE (0600), once
  [ -s "$1" ] && return 0
  step "generating a password into $1 (0600)"
  (umask 077 && python3 -c 'import secrets, sys; print(sys.argv[1] + secrets.token_urlsafe(32))' "${2:-}" > "$1")
}

# Sets DB_KIND, DB_PORT, DB_NAME from the recorded choice and INCARNATE_PREFECT_DB*; refuses a switch.
choose_database() {
  local recorded="" recorded_port="" recorded_name=""
  if [ -s "$DB_CHOICE_FILE" ]; then
    read -r recorded recorded_port recorded_name < "$DB_CHOICE_FILE"
  elif [ -e "$INCARNATE_HOME/prefect/prefect.db" ]; then
    recorded=sqlite  # set up before the choice was recorded
  fi
  DB_KIND=${INCARNATE_PREFECT_DB:-${recorded:-sqlite}}
  case "$DB_KIND" in
    sqlite|postgresql) ;;
    *) fail "INCARNATE_PREFECT_DB is '$DB_KIND': expected sqlite (the default) or postgresql." ;;
  esac
  DB_PORT=${INCARNATE_PREFECT_DB_PORT:-${recorded_port:-5433}}
  DB_NAME=${INCARNATE_PREFECT_DB_NAME:-${recorded_name:-prefect}}
  [[ "$DB_PORT" =~ ^[0-9]{1,5}$ ]] || fail "INCARNATE_PREFECT_DB_PORT is '$DB_PORT': expected a TCP port number."
  [[ "$DB_NAME" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] \
    || fail "INCARNATE_PREFECT_DB_NAME is '$DB_NAME': expected lower-case letters, digits and _ (a PostgreSQL name)."
  local wanted="$DB_KIND" had="$recorded"
  [ "$DB_KIND" = postgresql ] && wanted="postgresql $DB_PORT $DB_NAME"
  [ "$recorded" = postgresql ] && had="postgresql $recorded_port $recorded_name"
  if [ -n "$recorded" ] && [ "$wanted" != "$had" ]; then
    fail "the Prefect server of $INCARNATE_HOME keeps the stacks' Secret blocks (their store keys) and the run" \
      "history in $had ($DB_CHOICE_FILE); refusing to move it to $wanted, which starts empty: unset" \
      "INCARNATE_PREFECT_DB*, or set up $wanted under a new INCARNATE_HOME. Nothing was changed."
  fi
}

cluster_state() {  # "PORT STATUS" of incarnate's cluster; nothing when there is none
  pg_lsclusters -h | awk -v name="$PG_CLUSTER" '$2 == name {print $3, $4}'
}

start_postgresql() {
  ensure_packages postgresql
  local version port status
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  read -r port status <<< "$(cluster_state)"
  if [ -z "$port" ]; then
    step "creating PostgreSQL $version cluster $PG_CLUSTER on 127.0.0.1:$DB_PORT"
    pg_createcluster --port "$DB_PORT" "$version" "$PG_CLUSTER" -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    read -r port status <<< "$(cluster_state)"
  fi
  [ "$port" = "$DB_PORT" ] || fail "PostgreSQL cluster $PG_CLUSTER listens on port $port, not $DB_PORT (INCARNATE_PREFECT_DB_PORT)."
  if [ "$status" != online ]; then
    step "starting PostgreSQL cluster $PG_CLUSTER"
    pg_ctlcluster "$version" "$PG_CLUSTER" start
  fi
  wait_for 60 "PostgreSQL cluster $PG_CLUSTER" as_postgres psql --port "$DB_PORT" -c "SELECT 1"
  new_secret "$DB_PASSWORD_FILE"
  # The password goes to psql on its standard input, never in an argument; the name was checked above.
  as_postgres psql --quiet --port "$DB_PORT" -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT 'CREATE ROLE $DB_NAME LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_NAME') \gexec
ALTER ROLE $DB_NAME LOGIN PASSWORD '$(cat "$DB_PASSWORD_FILE")';
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_NAME' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME') \gexec
SQL
}

api_status() {  # the HTTP status of an API call, with the password when given (read from a file: never an argument)
  curl -s -o /dev/null -w '%{http_code}' ${1:+--config "$1"} "http://127.0.0.1:$PREFECT_PORT/api/admin/version" || true
}

server_answers() {  # 0 when a server with our password answers; stops one that answers without any
  local api="http://127.0.0.1:$PREFECT_PORT/api" credentials status
  curl -fsS "$api/health" >/dev/null 2>&1 || return 1
  if [ "$(api_status)" = 200 ]; then
    step "the Prefect server on $api answers without a password: restarting it with one"
    pkill -f "prefect server start --host 127.0.0.1 --port $PREFECT_PORT" || true
    for _ in $(seq 60); do curl -fsS "$api/health" >/dev/null 2>&1 || break; sleep 0.5; done
    return 1
  fi
  credentials=$(mktemp) && chmod 600 "$credentials"
  printf 'user = "%s"\n' "$(cat "$PREFECT_AUTH_FILE")" > "$credentials"
  status=$(api_status "$credentials")
  rm -f "$credentials"
  [ "$status" = 200 ] || fail "the Prefect server on $api refuses the password in $PREFECT_AUTH_FILE; stop it or fix that file."
  step "Prefect server answers on $api (password required)"
}

start_prefect() {
  local api="http://127.0.0.1:$PREFECT_PORT/api" where
  choose_database
  new_secret "$PREFECT_AUTH_FILE" "incarnate:"
  if [ "$DB_KIND" = postgresql ]; then start_postgresql; fi
  (umask 077 && if [ "$DB_KIND" = postgresql ]; then echo "postgresql $DB_PORT $DB_NAME"; else echo sqlite; fi > "$DB_CHOICE_FILE")
  server_answers && return 0
  where="SQLite under $INCARNATE_HOME/prefect"
  [ "$DB_KIND" = postgresql ] && where="PostgreSQL database $DB_NAME on 127.0.0.1:$DB_PORT"
  step "starting the Prefect server ($where, password required)"
  # Passwords reach the server in its environment, never in its arguments (ps shows those to every user).
  (
    export PREFECT_HOME="$INCARNATE_HOME/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
    PREFECT_SERVER_API_AUTH_STRING=$(cat "$PREFECT_AUTH_FILE") && export PREFECT_SERVER_API_AUTH_STRING
    if [ "$DB_KIND" = postgresql ]; then
      export PREFECT_SERVER_DATABASE_DRIVER=postgresql+asyncpg PREFECT_SERVER_DATABASE_HOST=127.0.0.1 \
        PREFECT_SERVER_DATABASE_PORT="$DB_PORT" PREFECT_SERVER_DATABASE_USER="$DB_NAME" PREFECT_SERVER_DATABASE_NAME="$DB_NAME"
      PREFECT_SERVER_DATABASE_PASSWORD=$(cat "$DB_PASSWORD_FILE") && export PREFECT_SERVER_DATABASE_PASSWORD
    fi
    setsid "$VENV/bin/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT" \
      >"$LOGS/prefect-server.log" 2>&1 < /dev/null &
  )
  wait_for 120 "the Prefect server" curl -fsS "$api/health"
}

start_prefect
