#!/usr/bin/env bash
# Start the LIMS database server; on the first start, make the cluster in
# $LIMS_DB_DATA: UTF8, libc provider with C.UTF-8, and password
# authentication (scram-sha-256) for every connection, over TCP and over the
# local socket alike. The application's user $LIMS_DB_USER is no superuser:
# it owns $LIMS_DB_NAME and may create databases, as a least-privilege
# deployment grants. The superuser "postgres" gets a random password nobody
# keeps. Arguments go to postgres.
set -euo pipefail

for name in LIMS_DB_DATA LIMS_DB_NAME LIMS_DB_USER LIMS_DB_PASSWORD; do
  if [ -z "${!name:-}" ]; then
    echo "lims-pg: $name must be set" >&2
    exit 64
  fi
done

if [ ! -e "$LIMS_DB_DATA/PG_VERSION" ]; then
  secret=$(mktemp)
  trap 'rm -f "$secret"' EXIT
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret"
  initdb --pgdata="$LIMS_DB_DATA" --username=postgres --pwfile="$secret" \
    --auth=scram-sha-256 --encoding=UTF8 --locale-provider=libc --locale=C.UTF-8 >/dev/null
  rm -f "$secret"
  cat >>"$LIMS_DB_DATA/postgresql.conf" <<'CONF'
# lims-pg
listen_addresses = '*'
password_encryption = 'scram-sha-256'
timezone = 'Europe/Berlin'
log_timezone = 'Europe/Berlin'
CONF
  echo 'host all all all scram-sha-256' >>"$LIMS_DB_DATA/pg_hba.conf"
  # The application's user and database, made by a single-user backend: no
  # server listens yet and no password is asked. The password goes in as a
  # literal with its quotes doubled.
  quoted=${LIMS_DB_PASSWORD//\'/\'\'}
  {
    printf "CREATE ROLE \"%s\" LOGIN CREATEDB PASSWORD '%s'\n" "$LIMS_DB_USER" "$quoted"
    printf 'CREATE DATABASE "%s" OWNER "%s"\n' "$LIMS_DB_NAME" "$LIMS_DB_USER"
  } | postgres --single -D "$LIMS_DB_DATA" postgres >/dev/null
  echo "lims-pg: new cluster in $LIMS_DB_DATA, database $LIMS_DB_NAME" >&2
fi

exec postgres -D "$LIMS_DB_DATA" "$@"
