#!/usr/bin/env bash
# Start the LIMS database server; on the first start, make the cluster in
# $LIMS_DB_DATA: UTF8, libc provider with C.UTF-8, owner $LIMS_DB_USER, and
# password authentication (scram-sha-256) for every connection, over TCP and
# over the local socket alike. Arguments go to postgres.
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
  printf '%s\n' "$LIMS_DB_PASSWORD" >"$secret"
  initdb --pgdata="$LIMS_DB_DATA" --username="$LIMS_DB_USER" --pwfile="$secret" \
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
  # The application's database, made by a single-user backend: no server
  # listens yet and no password is asked.
  printf 'CREATE DATABASE "%s"\n' "$LIMS_DB_NAME" \
    | postgres --single -D "$LIMS_DB_DATA" postgres >/dev/null
  echo "lims-pg: new cluster in $LIMS_DB_DATA, database $LIMS_DB_NAME" >&2
fi

exec postgres -D "$LIMS_DB_DATA" "$@"
