"""Freshness of the verified backups, found by preflight_info, against the demo stack.

Every archive here is a real one: taken from the live application by
archive_create and verified by archive_verify, in a temporary backup
directory (nothing lands in demo/run/backups).
"""

import json
import os
import shutil
import tempfile
import time
import zipfile

import pytest

from .conftest import RUN, run_module, run_playbook

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}
# The temporary backup directory is not the one mounted into the backend;
# the playbooks are told that its container side is a path nothing is mounted
# at, which preflight reports as a warning (not the error of a directory
# mounted from elsewhere), so that freshness is the only possible error.
EXCLUDES = ["contenttypes", "auth.permission", "sessions"]
ONE_SECOND = 1 / 3600  # in hours


@pytest.fixture
def backup_dir(stack):
    """A directory of the collection's archives: private to this user, as
    preflight's archive_store check wants it (mkdtemp makes it 0700)."""
    path = tempfile.mkdtemp(prefix="edms-freshness-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def create(directory, **args):
    params = {
        **PROJECT,
        "backup_dir": directory,
        "display_timezone": "Asia/Singapore",
        "pgdump": False,
        **args,
    }
    rc, result = run_module("archive_create", params)
    assert rc == 0, result.get("msg")
    return result["archive"]


def verify(archive):
    rc, result = run_module("archive_verify", {"archive": archive})
    assert rc == 0, result.get("msg")
    assert result["ok"] is True
    assert result["recorded"] is True
    return result


def preflight(directory, **args):
    params = {**PROJECT, "backup_dir": directory, "display_timezone": "Asia/Singapore", **args}
    rc, result = run_module("preflight_info", params)
    assert rc == 0, result.get("msg")
    return result


def finding(result, check):
    (found,) = [f for f in result["findings"] if f["check"] == check]
    return found


def data_size(archive):
    """Fixture and media bytes, read here from the ZIP's own directory."""
    with zipfile.ZipFile(archive) as handle:
        return sum(
            i.file_size
            for i in handle.infolist()
            if i.filename not in ("metadata.json", "database.pgdump") and not i.is_dir()
        )


def test_a_fresh_verified_backup_passes_and_one_older_than_the_limit_is_an_error(backup_dir):
    archive = create(backup_dir)
    verify(archive)
    name = os.path.basename(archive)

    result = preflight(backup_dir)
    age = finding(result, "backup_age")
    assert age["severity"] == "ok", age
    assert age["message"].startswith(f"the newest verified backup {name} (taken ")
    assert age["message"].endswith(" old (limit 26 h)")
    fresh = result["freshness"]
    assert fresh["newest_verified"]["name"] == name
    assert fresh["newest_verified"]["size"] == os.path.getsize(archive)
    assert fresh["newest_verified"]["data_size"] == data_size(archive)
    assert 0 <= fresh["newest_verified"]["age_seconds"] < 600
    assert fresh["previous_verified"] is None
    assert fresh["problems"] == []
    assert "no verified backup before " + name in finding(result, "backup_size")["message"]
    assert not [e for e in result["errors"] if e["check"].startswith("backup_a")]

    time.sleep(2)
    result = preflight(backup_dir, max_backup_age_hours=ONE_SECOND)
    problem = finding(result, "backup_age")
    assert problem["severity"] == "error"
    assert f"the newest verified backup {name}" in problem["message"]
    assert (
        "older than the limit of 0.000277778 h (preflight_max_backup_age_hours)"
        in problem["message"]
    )
    assert problem in result["errors"]
    assert result["ok"] is False
    assert result["freshness"]["problems"] == ["too_old"]
    assert result["freshness"]["newest_verified"]["age_seconds"] >= 2

    # Where preflight gates a backup, the same problem is a warning.
    result = preflight(backup_dir, max_backup_age_hours=ONE_SECOND, freshness_severity="warning")
    assert finding(result, "backup_age")["severity"] == "warning"
    assert "backup_age" not in [e["check"] for e in result["errors"]]


def test_an_edms_native_backup_is_as_old_as_its_name_says(backup_dir, tmp_path):
    # The EDMS's own layout, as on staging (backups/20260101_130029/): the
    # fixture, the media and the EDMS's own metadata.json, which has no
    # created_at, so the time of the backup is the UTC time in its name. Its
    # content is a real archive's, taken just now.
    made = create(str(tmp_path))
    native = os.path.join(backup_dir, "20260101_130029")
    with zipfile.ZipFile(made) as archive:
        ours = json.loads(archive.read("metadata.json"))
        archive.extractall(native, members=[m for m in archive.namelist() if m != "metadata.json"])
    with open(os.path.join(native, "metadata.json"), "w", encoding="utf-8") as handle:
        json.dump(
            {"backup_type": "FULL", "created": "2026-01-01T13:00:29", "counts": ours["counts"]},
            handle,
        )
    verify(native)

    result = preflight(backup_dir)
    problem = finding(result, "backup_age")
    assert problem["severity"] == "error"
    assert problem["message"].startswith(
        "the newest verified backup 20260101_130029 (taken 2026-01-01T13:00:29.000000Z) is "
    )
    assert problem["message"].endswith(
        " h old, older than the limit of 26 h (preflight_max_backup_age_hours)"
    )
    assert "playbooks/backup.yml" in problem["fix"]
    newest = result["freshness"]["newest_verified"]
    assert newest["created_at_local"] == "2026-01-01T21:00:29.000000+08:00"
    assert newest["age_seconds"] > 300 * 24 * 3600
    assert newest["data_size"] == data_size(made)


def test_a_newest_backup_smaller_than_the_ratio_is_an_error(backup_dir):
    full = create(backup_dir)
    # The same application, backed up without its audit trail: what a wrong
    # exclude would do. It verifies; only its size gives it away.
    smaller = create(backup_dir, excludes=[*EXCLUDES, "audit"])
    for archive in (full, smaller):
        verify(archive)
    assert data_size(smaller) < data_size(full)
    ratio = data_size(smaller) / data_size(full)

    result = preflight(backup_dir, min_backup_size_ratio=ratio + 0.01)
    problem = finding(result, "backup_size")
    assert problem["severity"] == "error"
    assert problem["message"].startswith(
        f"the newest verified backup {os.path.basename(smaller)} holds "
    )
    assert (
        f"of the verified backup before it, {os.path.basename(full)}; the limit is"
        in (problem["message"])
    )
    assert problem in result["errors"]
    fresh = result["freshness"]
    assert fresh["problems"] == ["too_small"]
    assert fresh["size_ratio"] == round(ratio, 4)
    assert fresh["previous_verified"]["name"] == os.path.basename(full)
    assert fresh["previous_verified"]["data_size"] == data_size(full)

    # Exactly at the limit is not a problem.
    at_limit = finding(preflight(backup_dir, min_backup_size_ratio=ratio), "backup_size")
    assert at_limit["severity"] == "ok"


def test_a_stale_backup_fails_the_preflight_job_but_never_the_backup_that_fixes_it(backup_dir):
    where = {"edms_archive_dir": backup_dir}

    # A first run: no verified backup at all is reported, and the backup runs,
    # even where monitoring requires one.
    proc = run_playbook("backup.yml", {**where, "preflight_require_verified_backup": True})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"WARNING backup_age: there is no verified backup in {backup_dir}" in proc.stdout
    (first,) = [n for n in os.listdir(backup_dir) if n.endswith(".zip")]

    # Fresh: the preflight job passes (nothing else in this setup is an error).
    proc = run_playbook("preflight.yml", where)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"OK backup_age: the newest verified backup {first}" in proc.stdout

    time.sleep(2)
    stale = {**where, "preflight_max_backup_age_hours": ONE_SECOND}
    proc = run_playbook("preflight.yml", stale)
    assert proc.returncode != 0
    assert "Preflight found 1 error(s): the newest verified backup " + first in proc.stdout
    assert "older than the limit of 0.000277778 h (preflight_max_backup_age_hours)" in proc.stdout

    proc = run_playbook("backup.yml", stale)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"WARNING backup_age: the newest verified backup {first}" in proc.stdout
    archives = sorted(n for n in os.listdir(backup_dir) if n.endswith(".zip"))
    assert len(archives) == 2
    assert archives[0] == first
    assert os.path.exists(os.path.join(backup_dir, archives[1] + ".status.json"))
