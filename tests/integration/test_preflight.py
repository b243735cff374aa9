"""edms.backup.preflight_info against the demo stack in the checklist's state."""

import os
import tempfile

import pytest

from .conftest import RUN, TINY, run_module

BACKUP_DIR = os.path.join(RUN, "backups")


def preflight(check_mode=False, **args):
    base = {
        "project_dir": RUN,
        "compose_files": ["docker-compose.prod.yml"],
        "backup_dir": BACKUP_DIR,
        "display_timezone": "Asia/Singapore",
    }
    return run_module("preflight_info", {**base, **args}, check_mode=check_mode)


def by_check(result):
    found = {}
    for finding in result["findings"]:
        found.setdefault(finding["check"], []).append(finding)
    return found


@pytest.fixture
def writable_backup_dir(stack):
    """A backup directory the backend's user (uid 1000) can write to."""
    path = tempfile.mkdtemp(prefix="edms-preflight-")
    os.chown(path, 1000, 1000)
    os.chmod(path, 0o775)
    yield path
    os.rmdir(path)


def test_reports_the_checklist_state_as_findings(checklist_state, tmp_path):
    # The checklist's staging state: no backups directory, no mount, no BACKUP_DIR.
    missing = str(tmp_path / "backups")
    rc, result = preflight(backup_dir=missing)
    assert rc == 0, result
    assert result["changed"] is False
    findings = by_check(result)
    # What the checklist found on staging, each with its fix.
    assert findings["backup_dir"][0]["severity"] == "error"
    assert "storage phase" in findings["backup_dir"][0]["fix"]
    assert findings["backup_mount"][0]["severity"] == "warning"
    assert findings["backup_dir_setting"][0]["severity"] == "warning"
    assert "BACKUP_DIR=/app/backups" in findings["backup_dir_setting"][0]["fix"]
    assert result["ok"] is False
    assert [e["check"] for e in result["errors"]] == ["backup_dir"]
    # What is fine.
    assert {f["severity"] for f in findings["services"]} == {"ok"}
    assert findings["database"][0]["severity"] == "ok"
    assert result["database"]["version"].startswith("PostgreSQL ")
    assert findings["media_dir"][0]["severity"] == "ok"
    assert findings["clocks"][0]["severity"] == "ok"
    assert "Asia/Singapore" in findings["time_zones"][0]["message"]
    total = TINY["documents"]
    assert result["counts"]["documents.Document"] == {"rows": total, "visible": total - total // 10}
    assert result["backend"]["settings"]["BACKUP_DIR"] is None
    assert result["backend"]["user"] == {"uid": 1000, "gid": 1000}


def test_check_mode_gives_the_same_findings(stack):
    def comparable(findings):
        # The clock finding states the skew measured just then, and the age
        # finding the newest backup's age then, which vary.
        varying = ("clocks", "backup_age")
        return [{**f, "message": None} if f["check"] in varying else f for f in findings]

    checked, normal = preflight(check_mode=True)[1], preflight()[1]
    assert comparable(checked["findings"]) == comparable(normal["findings"])
    assert checked["counts"] == normal["counts"]


def test_a_writable_directory_with_room_passes(writable_backup_dir):
    rc, result = preflight(backup_dir=writable_backup_dir)
    assert rc == 0
    findings = by_check(result)
    assert findings["backup_dir"][0]["severity"] == "ok"
    assert "backup_dir_permissions" not in findings
    assert result["backup_dir"]["mode"] == "0775"
    assert result["ok"] is True


def test_a_directory_the_backend_cannot_write_is_an_error_with_the_chown(writable_backup_dir):
    os.chown(writable_backup_dir, 0, 0)
    os.chmod(writable_backup_dir, 0o755)
    result = preflight(backup_dir=writable_backup_dir)[1]
    problem = by_check(result)["backup_dir_permissions"][0]
    assert problem["severity"] == "error"
    assert "uid 1000 gid 1000, which cannot write" in problem["message"]
    assert problem["fix"].startswith(f"chown 1000:1000 {writable_backup_dir}")


def test_too_little_free_space_is_an_error(writable_backup_dir):
    result = preflight(backup_dir=writable_backup_dir, min_free_bytes=2**60)[1]
    assert by_check(result)["free_space"][0]["severity"] == "error"
    assert result["ok"] is False


def test_clock_skew_against_the_controller_is_reported(stack):
    result = preflight(controller_time="2001-01-01T00:00:00Z")[1]
    finding = by_check(result)["clocks"][0]
    assert finding["severity"] == "warning"
    assert "2001-01-01T00:00:00.000000Z" in finding["message"]


def test_a_wrong_service_name_is_an_error_finding(stack):
    result = preflight(db_service="postgres")[1]
    errors = [e["message"] for e in result["errors"]]
    assert "the database service 'postgres' is not defined in the compose files" in errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"display_timezone": "Asia/Singapur"}, "unknown time zone 'Asia/Singapur'"),
        ({"count_models": ["documents.Nope"]}, "unknown model(s) documents.Nope"),
        ({"project_dir": "/nonexistent"}, "project directory /nonexistent does not exist"),
        ({"controller_time": "noon"}, "controller_time 'noon' is not an ISO 8601 time"),
    ],
)
def test_bad_input_fails_naming_it(stack, args, message):
    rc, result = preflight(**args)
    assert rc != 0
    assert message in result["msg"]
