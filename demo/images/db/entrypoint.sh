#!/usr/bin/env bash
# Initialises the cluster on first start (UTF-8 with the libc provider's
# C.UTF-8: a cluster without a locale would be SQL_ASCII and Django fails on
# the first non-ASCII value), then runs the server in the foreground.
set -euo pipefail

: "${POSTGRES_USER:?POSTGRES_USER is not set}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
: "${POSTGRES_DB:?POSTGRES_DB is not set}"

# A cluster of another major version (the volume of a stack that ran the other
# image) cannot be opened: say so instead of the server's own refusal.
server=$(postgres --version | awk '{print $3}')
if [ -s "$PGDATA/PG_VERSION" ] && [ "$(cat "$PGDATA/PG_VERSION")" != "${server%%.*}" ]; then
  echo "db: $PGDATA holds a PostgreSQL $(cat "$PGDATA/PG_VERSION") cluster; this image runs" \
    "PostgreSQL $server. Remove the volume (demo/bin/stack down) or run the matching image." >&2
  exit 1
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -E UTF8 --locale-provider=libc --locale=C.UTF-8 -U "$POSTGRES_USER" \
    --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  {
    echo "listen_addresses = '*'"
    echo "log_timezone = 'UTC'"
    echo "timezone = 'UTC'"
  } >>"$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "host all all ::/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # Create the application database with a server reachable only by socket.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "db: cluster initialised (PostgreSQL $server), database $POSTGRES_DB created" >&2
fi

exec "$@"
