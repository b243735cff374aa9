"""The whole cycle on the demo with PostgreSQL 15 (Debian's, as before the
staging server's upgrade), then that archive restored on PostgreSQL 18: the
restore through the fixture and the rollback through its pg_dump (pg_restore
18 reading a dump of 15). The proof: per-table digests computed by PostgreSQL
and media hashes by sha256sum (tests/pg_digest.py).

It takes the demo stack down twice and leaves it up on 18 with the archive's
content, so `make test` runs it last (`make upgrade`).
"""

import glob
import os
import shutil
import tempfile

import psycopg2
import pytest

from tests import pg_digest
from tests.integration.conftest import DEMO, RUN, compose, manage, run, run_playbook

HOST = "edms-demo"
# The collection's archives (edms_archive_dir of the demo inventory).
BACKUPS = os.path.join(RUN, "edms-archives")
MEDIA = "/app/storage/media"
PORT = 5433
# Tables whose rows record when the database was made, not what it holds:
# migrate fills django_migrations with its own times on each new stack.
MADE_BY_MIGRATE = {"django_migrations"}


def stack(*args, db_image=None):
    env = dict(os.environ)
    env.pop("EDMS_SEED_ARGS", None)
    env.pop("EDMS_DB_IMAGE", None)
    if db_image:
        env["EDMS_DB_IMAGE"] = db_image
    return run([os.path.join(DEMO, "bin", "stack"), *args], env=env, timeout=1800)


def login():
    found = {}
    with open(os.path.join(RUN, ".env"), encoding="utf-8") as handle:
        for line in handle:
            key, sep, value = line.strip().partition("=")
            if sep:
                found[key] = value
    return found["POSTGRES_DB"], found["POSTGRES_USER"], found["POSTGRES_PASSWORD"]


def server_major():
    database, user, password = login()
    connection = psycopg2.connect(
        host="127.0.0.1", port=PORT, dbname=database, user=user, password=password
    )
    try:
        return connection.server_version // 10000
    finally:
        connection.close()


def state():
    database, user, password = login()
    backend = compose("ps", "-q", "backend").stdout.strip()
    return {
        "tables": pg_digest.table_digests("127.0.0.1", PORT, database, user, password),
        "media": pg_digest.media_hashes(backend, MEDIA),
    }


def succeeded(proc):
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc


def archives():
    return set(glob.glob(os.path.join(BACKUPS, "*.zip")))


def newest_since(before):
    made = archives() - before
    assert made
    return max(made)


def without(tables, names):
    return {table: digest for table, digest in tables.items() if table not in names}


@pytest.fixture(scope="module")
def upgrade():
    kept = tempfile.mkdtemp(prefix="edms-upgrade-")
    found = {}
    try:
        stack("down")
        stack("up", db_image="edms-demo/db:15")
        found["major_before"] = server_major()
        succeeded(run_playbook("storage.yml"))
        before = archives()
        succeeded(run_playbook("backup.yml"))
        archive = newest_since(before)
        found["backed_up"] = state()
        manage("simulate_activity", "--iterations", "2", "--interval", "0")
        found["changed"] = state()
        before = archives()
        succeeded(
            run_playbook("restore.yml", f"edms_archive={archive}", f"edms_restore_confirm={HOST}")
        )
        safety = newest_since(before)
        found["restored"] = state()
        succeeded(
            run_playbook("rollback.yml", f"edms_archive={safety}", f"edms_restore_confirm={HOST}")
        )
        found["rolled_back"] = state()
        copy = shutil.copy2(archive, kept)
        stack("down")
        stack("up")
        found["major_after"] = server_major()
        succeeded(run_playbook("storage.yml"))
        succeeded(
            run_playbook("restore.yml", f"edms_archive={copy}", f"edms_restore_confirm={HOST}")
        )
        found["restored_on_18"] = state()
        found["rollback_on_18"] = succeeded(
            run_playbook("rollback.yml", f"edms_archive={copy}", f"edms_restore_confirm={HOST}")
        ).stdout
        found["pg_restored_on_18"] = state()
    finally:
        shutil.rmtree(kept, ignore_errors=True)
    return found


def test_the_cycle_runs_on_postgresql_15(upgrade):
    assert upgrade["major_before"] == 15
    assert upgrade["changed"]["tables"] != upgrade["backed_up"]["tables"]
    assert (
        pg_digest.differences(upgrade["backed_up"]["tables"], upgrade["restored"]["tables"]) == []
    )
    assert upgrade["restored"]["media"] == upgrade["backed_up"]["media"]
    assert (
        pg_digest.differences(upgrade["changed"]["tables"], upgrade["rolled_back"]["tables"]) == []
    )
    assert upgrade["rolled_back"]["media"] == upgrade["changed"]["media"]


def test_an_archive_of_postgresql_15_restores_on_postgresql_18(upgrade):
    assert upgrade["major_after"] == 18
    backed_up = without(upgrade["backed_up"]["tables"], MADE_BY_MIGRATE)
    restored = without(upgrade["restored_on_18"]["tables"], MADE_BY_MIGRATE)
    assert pg_digest.differences(backed_up, restored) == []
    assert upgrade["restored_on_18"]["media"] == upgrade["backed_up"]["media"]


def test_its_pg_dump_of_postgresql_15_rolls_back_on_postgresql_18(upgrade):
    assert "put back by pgdump" in upgrade["rollback_on_18"]
    # pg_restore puts django_migrations back too: every table is the archive's.
    tables = upgrade["pg_restored_on_18"]["tables"]
    assert pg_digest.differences(upgrade["backed_up"]["tables"], tables) == []
    assert upgrade["pg_restored_on_18"]["media"] == upgrade["backed_up"]["media"]
