"""archive_rollback's checks after the database is put back, on the demo stack.

The counts after a rollback are taken in SQL in the db container, of the
labels Django names while pg_restore runs; the live media are hashed in that
time too. These tests show the counts catch a database that is not the
archive's, and that neither way of putting the database back leaves its copy
of the dump or fixture in a container.
"""

import hashlib
import json
import os
import shutil
import tempfile
import zipfile

import pytest
from ansible_collections.edms.backup.plugins.module_utils._deployment.deployment import count_sql

from .conftest import RUN, backend, compose, content, db_sql, manage, run_module

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}
PGDUMP = "database.pgdump"


def scratch_left():
    """The rollback's and the load's private directories left in the containers."""
    db = compose("exec", "-T", "db", "ls", "/tmp").stdout.split()
    app = backend("ls", "/tmp").stdout.split()
    return [name for name in db + app if name.startswith(("edms-rollback-", "edms-load-"))]


@pytest.fixture(scope="module")
def taken(stack):
    """Two archives with pg_dump members, the deployment changed between them.
    The deployment is put back as it was before (the first) for the tests
    that follow, which expect the demo's seed."""
    directory = tempfile.mkdtemp(prefix="edms-rollback-test-")
    made = {}
    for name in ("first", "second"):
        if name == "second":
            manage("simulate_activity", "--iterations", "1", "--interval", "0")
        rc, result = run_module(
            "archive_create", {**PROJECT, "backup_dir": directory, "pgdump": True}
        )
        assert rc == 0, result.get("msg")
        made[name] = {**result, "state": content()}
    assert made["first"]["counts"] != made["second"]["counts"]
    yield {**made, "directory": directory}
    rc, result = run_module("archive_rollback", {**PROJECT, "archive": made["first"]["archive"]})
    assert rc == 0, result.get("msg")
    assert content() == made["first"]["state"]
    shutil.rmtree(directory, ignore_errors=True)


def dump_of(archive):
    with zipfile.ZipFile(archive) as source:
        return source.read(PGDUMP)


def with_dump(archive, dump, path):
    """A copy of archive whose pg_dump member is `dump`, its metadata saying
    so: an archive that verifies, whatever the dump holds."""
    entry = {"sha256": hashlib.sha256(dump).hexdigest(), "size": len(dump)}
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(path, "w") as out:
        metadata = json.loads(source.read("metadata.json"))
        metadata["members"][PGDUMP] = entry
        for info in source.infolist():
            if info.filename == PGDUMP:
                out.writestr(info, dump)
            elif info.filename == "metadata.json":
                out.writestr(info, json.dumps(metadata))
            else:
                out.writestr(info, source.read(info))
    os.chmod(path, 0o600)
    return path


def test_a_dump_that_does_not_hold_the_archives_counts_fails_and_names_them(taken):
    first, second = taken["first"], taken["second"]
    mixed = with_dump(
        second["archive"], dump_of(first["archive"]), os.path.join(taken["directory"], "mixed.zip")
    )
    rc, result = run_module("archive_rollback", {**PROJECT, "archive": mixed, "method": "pgdump"})
    assert rc != 0
    assert result["verification"]["ok"], result["verification"]
    assert result["database"] == "restored"
    assert "finished but the deployment differs from it" in result["msg"]
    # Every label whose count differs between the two archives, and only
    # those: expected as the archive says, found as the dump put back.
    changed = {
        label.lower()
        for label in second["counts"]
        if second["counts"][label] != first["counts"].get(label)
    }
    differences = {d["model"]: d for d in result["count_differences"]}
    assert set(differences) == changed
    counts = {label.lower(): n for label, n in second["counts"].items()}
    before = {label.lower(): n for label, n in first["counts"].items()}
    for label, difference in differences.items():
        assert difference["expected"] == counts[label]
        assert difference["found"] == before[label]
        assert f"{label} expected {counts[label]}, found {before[label]}" in result["msg"]
    assert content()["tables"] == first["state"]["tables"]
    assert scratch_left() == []


def test_a_dump_pg_restore_cannot_read_fails_and_leaves_the_database_as_it_was(taken):
    dump = dump_of(taken["second"]["archive"])
    broken = with_dump(
        taken["second"]["archive"],
        dump[: len(dump) * 3 // 4],
        os.path.join(taken["directory"], "broken.zip"),
    )
    before = content()
    rc, result = run_module("archive_rollback", {**PROJECT, "archive": broken, "method": "pgdump"})
    assert rc != 0
    assert result["verification"]["ok"], result["verification"]
    assert result["msg"].startswith(
        f"rollback to {broken} could not restore the database: pg_restore failed in container"
    )
    assert result["database"].startswith("FAILED: pg_restore failed")
    # pg_restore runs in one transaction: what it did before the error is undone.
    assert content() == before
    assert scratch_left() == []


@pytest.mark.parametrize(("method", "which"), [("pgdump", "second"), ("fixture", "first")])
def test_a_rollback_puts_back_the_archives_content(taken, method, which):
    archive = taken[which]
    rc, result = run_module(
        "archive_rollback", {**PROJECT, "archive": archive["archive"], "method": method}
    )
    assert rc == 0, result.get("msg")
    assert result["database_method"] == method
    assert result["verified"] is True
    assert result["count_differences"] == []
    assert result["media_differences"] == []
    for label, n in archive["counts"].items():
        assert result["counts"][label.lower()] == n
    assert content() == archive["state"]
    assert scratch_left() == []


def test_the_count_statement_quotes_labels_and_table_names():
    """count_sql against PostgreSQL, with names that need quoting."""
    database = "edms_count_sql_test"
    db_sql(f"DROP DATABASE IF EXISTS {database}")
    db_sql(f"CREATE DATABASE {database}")
    try:
        db_sql(
            'CREATE TABLE "we""ird" (id int); CREATE TABLE "Mixed Case" (id int);'
            " CREATE TABLE plain (id int);"
            ' INSERT INTO "we""ird" SELECT generate_series(1, 3);'
            ' INSERT INTO "Mixed Case" VALUES (1);',
            database=database,
        )
        tables = {"app.we'ird": 'we"ird', "app.mixed": "Mixed Case", "app.plain": "plain"}
        answer = json.loads(db_sql(count_sql(tables), database=database))
        assert answer == {
            "database": database,
            "counts": {"app.we'ird": 3, "app.mixed": 1, "app.plain": 0},
        }
        assert json.loads(db_sql(count_sql({}), database=database))["counts"] == {}
    finally:
        db_sql(f"DROP DATABASE IF EXISTS {database}")
