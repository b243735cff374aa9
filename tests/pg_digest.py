"""Per-table digests computed by PostgreSQL, and media hashes computed by
sha256sum in the container: the proof that a restore put back what a backup
took, made without Django and without the collection's own code.

A table's digest is the md5 of the md5s of its rows' text (every column, as
PostgreSQL writes a row: ``t::text``), in sorted order, so the physical order
of the rows does not matter; its count comes with it. Views are digested
the same way (what they show after a restore).
The one exception: Django's auto-created many-to-many tables, by their pairs
(PAIR_TABLES).

As a program (for the Molecule scenarios):
    python tests/pg_digest.py HOST PORT DATABASE USER [CONTAINER MEDIA_DIR]
(the password in PGPASSWORD) prints {"tables": {table: [rows, md5]}, "media":
{path: sha256}} as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg2
from psycopg2 import sql

TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY c.relname
"""

# The tables shaped as Django's auto-created many-to-many tables: a key
# column nothing references, and two columns, each a foreign key, unique
# together. Their key is a surrogate that a fixture (Django's or the
# collection's) does not carry, so a restore numbers the pairs anew: they are
# compared by their pairs.
PAIR_TABLES = """
SELECT c.relname, array_agg(a.attname::text ORDER BY a.attname)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind = 'r'
  AND (SELECT count(*) FROM pg_attribute x
       WHERE x.attrelid = c.oid AND x.attnum > 0 AND NOT x.attisdropped) = 3
  AND NOT EXISTS (SELECT 1 FROM pg_constraint r WHERE r.confrelid = c.oid AND r.contype = 'f')
  AND (SELECT count(*) FROM pg_constraint f
       WHERE f.conrelid = c.oid AND f.contype = 'f' AND array_length(f.conkey, 1) = 1) = 2
  AND EXISTS (SELECT 1 FROM pg_constraint u
              WHERE u.conrelid = c.oid AND u.contype = 'u' AND array_length(u.conkey, 1) = 2)
  AND a.attnum = ANY (SELECT f.conkey[1] FROM pg_constraint f
                      WHERE f.conrelid = c.oid AND f.contype = 'f')
GROUP BY c.relname
"""

DIGEST = (
    "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), ''))"
    " FROM (SELECT md5({}::text) AS h FROM {} AS t) AS rows"
)


def table_digests(host, port, database, user, password):
    """{table: [rows, md5]} of every table and view of the public schema, in
    one repeatable-read snapshot."""
    connection = psycopg2.connect(
        host=host, port=port, dbname=database, user=user, password=password, connect_timeout=10
    )
    try:
        connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with connection.cursor() as cursor:
            cursor.execute(TABLES)
            tables = [row[0] for row in cursor.fetchall()]
            cursor.execute(PAIR_TABLES)
            pairs = dict(cursor.fetchall())
            found = {}
            for table in tables:
                if table in pairs:
                    row = sql.SQL("row({})").format(
                        sql.SQL(", ").join(
                            sql.SQL("t.{}").format(sql.Identifier(c)) for c in pairs[table]
                        )
                    )
                else:
                    row = sql.SQL("t")
                cursor.execute(sql.SQL(DIGEST).format(row, sql.Identifier(table)))
                rows, digest = cursor.fetchone()
                found[table] = [rows, digest]
        connection.rollback()
    finally:
        connection.close()
    return found


def media_hashes(container, media_dir):
    """{path under media_dir: sha256} of every regular file, by sha256sum in
    the container."""
    out = subprocess.run(
        [
            "docker",
            "exec",
            container,
            "sh",
            "-c",
            'cd "$1" && find . -type f -print0 | xargs -0 -r sha256sum',
            "sh",
            media_dir,
        ],
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", "surrogateescape")
    hashes = {}
    for line in out.splitlines():
        digest, _sep, path = line.partition("  ")
        hashes[path[2:] if path.startswith("./") else path] = digest
    return hashes


def differences(before, after):
    """The tables whose rows or digest differ, one line each."""
    return [
        f"{table}: {before.get(table)} before, {after.get(table)} after"
        for table in sorted(set(before) | set(after))
        if before.get(table) != after.get(table)
    ]


if __name__ == "__main__":
    host, port, database, user = sys.argv[1:5]
    found = {"tables": table_digests(host, int(port), database, user, os.environ["PGPASSWORD"])}
    if len(sys.argv) > 5:
        found["media"] = media_hashes(*sys.argv[5:7])
    json.dump(found, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
