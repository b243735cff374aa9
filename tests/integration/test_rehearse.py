"""edms.backup.archive_rehearse: the checklist's Test 3 against the demo stack."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import zipfile

import pytest

from .conftest import (
    COMPOSE_FILE,
    RUN,
    db_sql,
    run_module,
    run_playbook,
    table_digests,
)

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}
NAME = "edms_test_restore"
COMPOSE = ["docker", "compose", "--project-directory", RUN, "-f", COMPOSE_FILE]


def database_exists(name):
    return (
        db_sql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'", "postgres").strip()
        == "1"
    )


@pytest.fixture
def archive(stack):
    directory = tempfile.mkdtemp(prefix="edms-rehearse-")
    rc, made = run_module("archive_create", {**PROJECT, "backup_dir": directory, "pgdump": False})
    assert rc == 0, made.get("msg")
    yield made["archive"]
    shutil.rmtree(directory, ignore_errors=True)
    db_sql(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)", "postgres")


def rehearse(**args):
    return run_module("archive_rehearse", {**PROJECT, **args})


def test_a_fresh_backup_rehearses_clean_and_leaves_nothing(archive):
    live_before = table_digests()
    rc, result = rehearse(archive=archive)
    assert rc == 0, result.get("msg")
    with zipfile.ZipFile(archive) as opened:
        metadata = json.loads(opened.read("metadata.json"))
    assert {k: result["counts"][k] for k in metadata["counts"]} == metadata["counts"]
    assert result["load"]["objects"] == sum(
        v for k, v in metadata["counts"].items() if k not in metadata["m2m_tables"]
    )
    assert result["migration_differences"] == []
    assert result["dropped"] is True
    assert not database_exists(NAME)
    assert table_digests() == live_before  # the live database untouched
    listing = run_module("archive_info", {"backup_dir": os.path.dirname(archive)})[1]
    rehearsal = listing["archives"][0]["rehearsal"]
    assert rehearsal["ok"] is True
    assert rehearsal["database"] == NAME


def test_the_applications_own_database_is_refused(archive):
    rc, result = rehearse(archive=archive, database="edms")
    assert rc != 0
    assert result["msg"] == "database edms is the application's own; a rehearsal needs another"


def test_a_foreign_database_of_that_name_is_refused_and_kept(archive):
    db_sql(f"CREATE DATABASE {NAME}", "postgres")
    rc, result = rehearse(archive=archive)
    assert rc != 0
    assert f"database {NAME} exists and is not a rehearsal's" in result["msg"]
    assert database_exists(NAME)


def test_a_leftover_rehearsal_database_is_dropped_first(archive):
    db_sql(f"CREATE DATABASE {NAME}", "postgres")
    db_sql(f"COMMENT ON DATABASE {NAME} IS 'edms.backup rehearsal database'", "postgres")
    rc, result = rehearse(archive=archive)
    assert rc == 0, result.get("msg")
    assert result["dropped_leftover"] is True
    assert not database_exists(NAME)


def test_a_migration_mismatch_stops_it_and_the_database_is_dropped(archive):
    # metadata.json is not among the checksummed members: rewrite its migrations.
    tampered = archive.replace(".zip", "X.zip")
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(tampered, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata["migrations"]["documents"].append("0002_from_the_future")
                data = json.dumps(metadata).encode()
            target.writestr(info, data)
    rc, result = rehearse(archive=tampered)
    assert rc != 0
    assert "documents: the target lacks 0002_from_the_future" in result["msg"]
    assert result["dropped"] is True
    assert not database_exists(NAME)
    listing = run_module("archive_info", {"backup_dir": os.path.dirname(archive)})[1]
    entry = next(a for a in listing["archives"] if a["path"] == tampered)
    assert entry["rehearsal"]["ok"] is False


def test_an_archive_that_does_not_verify_is_not_rehearsed(archive):
    with open(archive, "r+b") as handle:
        handle.seek(-30, os.SEEK_END)
        handle.write(b"\0" * 8)
    rc, result = rehearse(archive=archive)
    assert rc != 0
    assert "does not verify, so it is not rehearsed" in result["msg"]
    assert not database_exists(NAME)


def test_the_playbook_releases_the_lock_even_when_the_rehearsal_fails(archive):
    failed = run_playbook("rehearse.yml", {"edms_archive": archive, "rehearse_database": "edms"})
    assert failed.returncode != 0
    assert "database edms is the application's own" in failed.stdout
    assert "TASK [edms.backup.rehearse : Release the project lock]" in failed.stdout
    assert not os.path.exists(os.path.join(RUN, ".edms-backup.lock"))

    passed = run_playbook("rehearse.yml", {"edms_archive": archive})
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert "Rehearsal   passed in" in passed.stdout


def test_an_archive_that_kept_content_types_and_permissions_rehearses(stack):
    """excludes without contenttypes and auth.permission: the fixture holds
    them, so the load empties their tables (which migrate filled) and loads
    the archive's, instead of colliding with migrate's rows."""
    directory = tempfile.mkdtemp(prefix="edms-rehearse-")
    try:
        rc, made = run_module(
            "archive_create",
            {
                **PROJECT,
                "backup_dir": directory,
                "pgdump": False,
                "excludes": ["sessions", "admin.logentry"],
            },
        )
        assert rc == 0, made.get("msg")
        with zipfile.ZipFile(made["archive"]) as opened:
            metadata = json.loads(opened.read("metadata.json"))
        assert metadata["recreated_models"] == []
        assert metadata["counts"]["contenttypes.contenttype"] > 0
        assert metadata["counts"]["auth.permission"] > 0
        rc, result = rehearse(archive=made["archive"])
        assert rc == 0, result.get("msg")
        assert result["counts"]["auth.permission"] == metadata["counts"]["auth.permission"]
        assert result["dropped"] is True
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        db_sql(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)", "postgres")


def test_f10_the_pgdump_is_taken_in_the_fixtures_snapshot_and_rehearsed(stack):
    """A backup taken while the application writes: its pg_dump, which a
    rollback puts back, holds exactly the fixture's rows, and the rehearsal
    restores it and says so."""
    directory = tempfile.mkdtemp(prefix="edms-rehearse-pgdump-")
    # The content before the writes, put back at the end for the tests that follow.
    rc, before = run_module("archive_create", {**PROJECT, "backup_dir": directory})
    assert rc == 0, before.get("msg")
    writer = subprocess.Popen(
        [*COMPOSE, "exec", "-T", "backend", "python", "manage.py", "simulate_activity",
         "--iterations", "400", "--interval", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(2)  # the writes have begun
    try:
        rc, made = run_module("archive_create", {**PROJECT, "backup_dir": directory})
        assert rc == 0, made.get("msg")
        assert writer.poll() is None, "the writes must overlap the backup"
    finally:
        writer.wait(timeout=600)
    try:
        assert made["pgdump_snapshot"] == "the fixture's"
        with zipfile.ZipFile(made["archive"]) as opened:
            metadata = json.loads(opened.read("metadata.json"))
        assert metadata["pgdump"] == {
            "snapshot": "fixture",
            "excluded_table_data": ["django_session"],
        }
        rc, result = rehearse(archive=made["archive"])
        assert rc == 0, result.get("msg")
        assert result["pgdump"]["snapshot"] == "fixture"
        assert result["pgdump"]["differences"] == []
        assert (
            result["pgdump"]["counts"]["documents.document"]
            == metadata["counts"]["documents.document"]
        )
        assert not database_exists(NAME)
    finally:
        rc, put_back = run_module("archive_restore", {**PROJECT, "archive": before["archive"]})
        assert rc == 0, put_back.get("msg")
        run_module("restore_finish", {**PROJECT, "token": put_back["token"]})
        shutil.rmtree(directory, ignore_errors=True)
