import os
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from ansible_collections.edms.backup.plugins.module_utils._format import freshness
from ansible_collections.edms.backup.plugins.module_utils._format.archive import ArchiveWriter
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    CatalogueError,
    record_status,
    status_path,
    verification_entry,
)
from ansible_collections.edms.backup.plugins.module_utils._format.freshness import (
    assess,
    check_freshness,
    data_size,
)

from .test_catalogue import forge_status, member_data_offset, rewrite_keeping_time, zip_with

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)


def entry(name, hours_ago, state="passed", data=1000, size=800):
    created = NOW - timedelta(hours=hours_ago)
    return {
        "name": name,
        "path": "/backups/" + name,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "created_at_local": created.isoformat(),
        "size": size,
        "data_size": data,
        "label": "scheduled",
        "verification": {"state": state},
    }


def by_check(findings):
    return {f["check"]: f for f in findings}


def test_a_fresh_newest_verified_backup_is_ok_and_reported_with_the_one_before():
    archives = [entry("new.zip", 3, data=1010), entry("old.zip", 27, data=1000)]
    facts, findings = assess(archives, NOW)
    found = by_check(findings)
    assert {f["severity"] for f in findings} == {"ok"}
    assert found["backup_age"]["message"] == (
        "the newest verified backup new.zip (taken 2026-01-02T09:00:00.000000Z)"
        " is 3.0 h old (limit 26 h)"
    )
    assert (
        "101% of the 1000 B of the verified backup before it, old.zip"
        in (found["backup_size"]["message"])
    )
    assert facts["problems"] == []
    assert facts["newest_verified"]["name"] == "new.zip"
    assert facts["newest_verified"]["age_seconds"] == 3 * 3600
    assert facts["newest_verified"]["age_hours"] == 3.0
    assert facts["newest_verified"]["data_size"] == 1010
    assert facts["newest_verified"]["size"] == 800
    assert facts["previous_verified"]["name"] == "old.zip"
    assert facts["size_ratio"] == 1.01
    assert facts["now"] == "2026-01-02T12:00:00.000000Z"


def test_a_newest_verified_backup_too_old_is_an_error_naming_it_and_the_limit():
    facts, findings = assess([entry("edms_20260101T020000Z.zip", 34)], NOW)
    problem = by_check(findings)["backup_age"]
    assert problem["severity"] == "error"
    assert problem["message"] == (
        "the newest verified backup edms_20260101T020000Z.zip"
        " (taken 2026-01-01T02:00:00.000000Z) is 34.0 h old, older than the limit of 26 h"
        " (preflight_max_backup_age_hours)"
    )
    assert "playbooks/backup.yml" in problem["fix"]
    assert facts["problems"] == ["too_old"]


def test_a_problem_has_the_severity_asked_for():
    archives = [entry("new.zip", 40, data=100), entry("old.zip", 64, data=1000)]
    _facts, findings = assess(archives, NOW, severity="warning")
    assert [f["severity"] for f in findings] == ["warning", "warning"]
    with pytest.raises(ValueError, match="severity must be one of error, warning"):
        assess(archives, NOW, severity="ok")


@pytest.mark.parametrize(
    ("age", "severity"),
    [
        (timedelta(hours=26), "ok"),
        (timedelta(hours=26, microseconds=1), "error"),
        (timedelta(hours=25, minutes=59, seconds=59), "ok"),
    ],
)
def test_the_age_limit_is_inclusive(age, severity):
    archive = entry("a.zip", 0)
    archive["created_at"] = (NOW - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    findings = assess([archive], NOW, max_age_hours=26)[1]
    assert by_check(findings)["backup_age"]["severity"] == severity


def test_a_smaller_newest_backup_is_an_error_naming_both_and_the_limit():
    archives = [entry("new.zip", 2, data=700 * 1024), entry("old.zip", 26, data=1000 * 1024)]
    facts, findings = assess(archives, NOW)
    problem = by_check(findings)["backup_size"]
    assert problem["severity"] == "error"
    assert problem["message"] == (
        "the newest verified backup new.zip holds 700.0 KiB of data (fixture and media),"
        " 70% of the 1000.0 KiB of the verified backup before it, old.zip;"
        " the limit is 80% (preflight_min_backup_size_ratio)"
    )
    assert "archive_info" in problem["fix"]
    assert by_check(findings)["backup_age"]["severity"] == "ok"
    assert facts["problems"] == ["too_small"]
    assert facts["size_ratio"] == 0.7


@pytest.mark.parametrize(
    ("new", "severity"), [(800, "ok"), (799, "error"), (801, "ok"), (5000, "ok")]
)
def test_the_size_limit_is_inclusive(new, severity):
    archives = [entry("new.zip", 1, data=new), entry("old.zip", 25, data=1000)]
    findings = assess(archives, NOW, min_size_ratio=0.8)[1]
    assert by_check(findings)["backup_size"]["severity"] == severity


def test_unverified_failed_and_stale_archives_give_way_to_the_newest_verified():
    archives = [
        entry("unverified.zip", 1, state="unverified", data=1),
        entry("failed.zip", 2, state="failed", data=1),
        entry("stale.zip", 3, state="stale", data=1),
        entry("good.zip", 4, data=1000),
        entry("bad-between.zip", 10, state="failed", data=1),
        entry("before.zip", 28, data=990),
    ]
    facts, findings = assess(archives, NOW)
    assert facts["newest_verified"]["name"] == "good.zip"
    assert facts["previous_verified"]["name"] == "before.zip"
    assert facts["not_verified_newer"] == [
        {"name": "unverified.zip", "created_at": archives[0]["created_at"], "state": "unverified"},
        {"name": "failed.zip", "created_at": archives[1]["created_at"], "state": "failed"},
        {"name": "stale.zip", "created_at": archives[2]["created_at"], "state": "stale"},
    ]
    assert {f["severity"] for f in findings} == {"ok"}
    assert by_check(findings)["backup_age"]["message"].endswith(
        "; newer archives not counted: unverified.zip (unverified), failed.zip (failed),"
        " stale.zip (stale)"
    )


def test_an_old_verified_backup_behind_newer_unverified_ones_is_still_too_old():
    archives = [entry("today.zip", 1, state="failed"), entry("lastweek.zip", 170)]
    facts, findings = assess(archives, NOW)
    problem = by_check(findings)["backup_age"]
    assert problem["severity"] == "error"
    assert "lastweek.zip" in problem["message"]
    assert "170.0 h old" in problem["message"]
    assert "newer archives not counted: today.zip (failed)" in problem["message"]
    assert facts["problems"] == ["too_old"]


@pytest.mark.parametrize(
    ("archives", "detail"),
    [
        ([], "there is no verified backup in /srv/backups"),
        (
            [entry("x.zip", 1, state="unverified"), entry("y.zip", 30, state="stale")],
            "there is no verified backup in /srv/backups (2 archive(s), none verified and"
            " unchanged since; newer archives not counted: x.zip (unverified), y.zip (stale))",
        ),
    ],
)
def test_no_verified_backup_is_reported_as_a_warning_by_default(archives, detail):
    facts, findings = assess(archives, NOW, backup_dir="/srv/backups")
    assert findings == [
        {
            "check": "backup_age",
            "severity": "warning",
            "message": detail,
            "fix": "take one with playbooks/backup.yml (it verifies what it writes), or verify"
            " an existing archive with playbooks/verify.yml -e edms_archive=<path>",
        }
    ]
    assert facts["problems"] == ["no_verified_backup"]
    assert facts["newest_verified"] is None
    assert facts["previous_verified"] is None


def test_no_verified_backup_is_a_problem_when_one_is_required():
    findings = assess([], NOW, require_verified=True)[1]
    assert findings[0]["severity"] == "error"
    findings = assess([], NOW, require_verified=True, severity="warning")[1]
    assert findings[0]["severity"] == "warning"


def test_a_single_verified_backup_has_nothing_to_compare_its_size_with():
    findings = assess([entry("only.zip", 1), entry("older.zip", 30, state="failed")], NOW)[1]
    assert by_check(findings)["backup_size"] == {
        "check": "backup_size",
        "severity": "ok",
        "message": "no verified backup before only.zip to compare its size with",
        "fix": None,
    }


def test_an_unreadable_size_is_a_warning_not_a_pass():
    archives = [entry("new.zip", 1, data=None), entry("old.zip", 25)]
    finding = by_check(assess(archives, NOW)[1])["backup_size"]
    assert finding["severity"] == "warning"
    assert "cannot compare the data sizes of new.zip and old.zip" in finding["message"]


def test_limits_of_zero_turn_the_checks_off():
    archives = [entry("new.zip", 1000, data=1), entry("old.zip", 2000, data=1000)]
    facts, findings = assess(archives, NOW, max_age_hours=0, min_size_ratio=0)
    assert [f["check"] for f in findings] == ["backup_age"]
    assert findings[0]["severity"] == "ok"
    assert "age not checked" in findings[0]["message"]
    assert facts["problems"] == []


def test_a_backup_dated_in_the_future_cannot_be_judged():
    facts, findings = assess([entry("future.zip", -2)], NOW)
    problem = by_check(findings)["backup_age"]
    assert problem["severity"] == "error"
    assert "is dated 2.0 h after this host's clock" in problem["message"]
    assert facts["problems"] == ["dated_in_future"]
    # A few seconds ahead (the clocks of two hosts) is fresh.
    assert assess([entry("soon.zip", -0.01)], NOW)[1][0]["severity"] == "ok"
    # With the age check off (0), the date is not judged either.
    facts, findings = assess([entry("future.zip", -2)], NOW, max_age_hours=0)
    assert facts["problems"] == []
    assert {f["severity"] for f in findings} == {"ok"}


# The part that reads the directory: data sizes and verification states from disk.


def write_archive(directory, when, fixture, media=b"", pgdump=None):
    name = when.strftime("edms_%Y%m%dT%H%M%SZ.zip")
    with ArchiveWriter(str(directory), name) as writer:
        writer.add_stream("database_backup.json", fixture)
        if media:
            writer.add_stream("media/doc.pdf", media)
        if pgdump:
            writer.add_stream("database.pgdump", pgdump)
        return writer.finish(
            {
                "format": "edms.backup",
                "format_version": 1,
                "created_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "counts": {},
            }
        )


def test_data_size_counts_fixture_and_media_not_metadata_nor_pgdump(tmp_path):
    path = write_archive(tmp_path, NOW, b"x" * 300, media=b"m" * 200, pgdump=b"p" * 5000)
    assert data_size(path) == 500
    with zipfile.ZipFile(path) as archive:
        assert "metadata.json" in archive.namelist()
    native = tmp_path / "20260101_130029"
    (native / "media" / "docs").mkdir(parents=True)
    (native / "database_backup.json").write_bytes(b"y" * 40)
    (native / "media" / "docs" / "a.pdf").write_bytes(b"z" * 2)
    (native / "metadata.json").write_text("{}")
    assert data_size(str(native)) == 42
    assert data_size(str(tmp_path / "missing.zip")) is None


def test_check_freshness_reads_states_and_sizes_from_the_directory(tmp_path):
    before = write_archive(tmp_path, NOW - timedelta(hours=30), b"x" * 1000, pgdump=b"p" * 9000)
    newest = write_archive(tmp_path, NOW - timedelta(hours=6), b"x" * 700)
    unverified = write_archive(tmp_path, NOW - timedelta(hours=1), b"x" * 1000)
    for path in (before, newest):
        record_status(path, "verification", verification_entry({"ok": True}))
    facts, findings = check_freshness(str(tmp_path), "Asia/Singapore", NOW)
    assert facts["backup_dir"] == str(tmp_path)
    assert facts["newest_verified"]["path"] == newest
    assert facts["newest_verified"]["data_size"] == 700
    assert facts["newest_verified"]["size"] == os.path.getsize(newest)
    assert facts["newest_verified"]["created_at_local"].endswith("+08:00")
    assert facts["previous_verified"]["data_size"] == 1000
    assert facts["not_verified_newer"][0]["name"] == os.path.basename(unverified)
    assert facts["problems"] == ["too_small"]
    assert by_check(findings)["backup_size"]["severity"] == "error"
    # Once the newest verified archive changes, its verification is stale.
    with open(newest, "ab") as handle:
        handle.write(b"\0")
    facts = check_freshness(str(tmp_path), "UTC", NOW)[0]
    assert facts["newest_verified"]["path"] == before
    assert facts["problems"] == ["too_old"]


def test_check_freshness_of_a_missing_directory_reports_no_verified_backup(tmp_path):
    facts, findings = check_freshness(str(tmp_path / "none"), "UTC", NOW)
    assert facts["problems"] == ["no_verified_backup"]
    assert findings[0]["severity"] == "warning"
    assert findings[0]["message"] == f"there is no verified backup in {tmp_path / 'none'}"


def test_a_directory_that_cannot_be_listed_is_a_problem_saying_why(tmp_path, monkeypatch):
    def refuse(backup_dir, _zone):
        raise CatalogueError(f"cannot list backup directory {backup_dir}: Permission denied")

    monkeypatch.setattr(freshness, "list_archives", refuse)
    facts, findings = check_freshness(str(tmp_path), "UTC", NOW, severity="warning")
    assert facts["problems"] == ["unreadable"]
    assert facts["newest_verified"] is None
    assert findings == [
        {
            "check": "backup_age",
            "severity": "warning",
            "message": "cannot tell how fresh the backups are: cannot list backup directory"
            f" {tmp_path}: Permission denied",
            "fix": "make the backup directory readable to the user Ansible runs as",
        }
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (119, "119 s"),
        (120, "2 min"),
        (7199, "120 min"),
        (7200, "2.0 h"),
        (95400, "26.5 h"),
    ],
)
def test_ages_read_as_people_read_them(seconds, text):
    assert freshness.hours(seconds) == text


def test_f1_a_forged_verification_is_not_counted_as_the_newest_verified_backup(tmp_path):
    """An archive that never verified, a status file beside it with its size
    and time right, ok: true and a made-up sha256: freshness goes by the
    genuine verified archive before it."""
    genuine = write_archive(tmp_path, NOW - timedelta(hours=30), b"x" * 1000)
    record_status(genuine, "verification", verification_entry({"ok": True}))
    forged = write_archive(tmp_path, NOW - timedelta(hours=1), b"x" * 1000)
    forge_status(forged, sha256="0" * 64)
    facts = check_freshness(str(tmp_path), "UTC", NOW)[0]
    assert facts["newest_verified"]["path"] == genuine
    assert facts["problems"] == ["too_old"]
    assert facts["not_verified_newer"] == [
        {
            "name": os.path.basename(forged),
            "created_at": facts["not_verified_newer"][0]["created_at"],
            "state": "stale",
        }
    ]
    forge_status(forged)  # without a sha256: unconfirmed
    facts = check_freshness(str(tmp_path), "UTC", NOW)[0]
    assert facts["newest_verified"]["path"] == genuine
    assert facts["not_verified_newer"][0]["state"] == "unconfirmed"


def test_f1_the_verified_backup_a_size_is_compared_with_is_confirmed_too(tmp_path):
    forged_before = write_archive(tmp_path, NOW - timedelta(hours=30), b"x" * 100_000)
    forge_status(forged_before, sha256="0" * 64)
    genuine_before = write_archive(tmp_path, NOW - timedelta(hours=40), b"x" * 700)
    newest = write_archive(tmp_path, NOW - timedelta(hours=1), b"x" * 700)
    for path in (genuine_before, newest):
        record_status(path, "verification", verification_entry({"ok": True}))
    facts = check_freshness(str(tmp_path), "UTC", NOW)[0]
    assert facts["previous_verified"]["path"] == genuine_before
    assert facts["problems"] == []


def test_f6_unreadable_archives_do_not_stop_the_freshness_check(tmp_path):
    genuine = write_archive(tmp_path, NOW - timedelta(hours=3), b"x" * 1000)
    record_status(genuine, "verification", verification_entry({"ok": True}))
    rotten = write_archive(tmp_path, NOW - timedelta(hours=1), b"x" * 1000)
    record_status(rotten, "verification", verification_entry({"ok": True}))
    start = member_data_offset(rotten, "metadata.json")
    rewrite_keeping_time(rotten, lambda data: data.__setitem__(start, 0xFF))
    zip_with(tmp_path, "edms_20260102T110000Z.zip", {"metadata.json": "[" * 100_000})
    odd = write_archive(tmp_path, NOW - timedelta(minutes=30), b"x" * 1000)
    with open(status_path(odd), "w", encoding="utf-8") as handle:
        handle.write('{"verification": "passed"}')
    facts, findings = check_freshness(str(tmp_path), "UTC", NOW)
    assert facts["newest_verified"]["path"] == genuine
    states = {n["name"]: n["state"] for n in facts["not_verified_newer"]}
    assert states == {
        os.path.basename(odd): "unverified",
        "edms_20260102T110000Z.zip": "unreadable",
        os.path.basename(rotten): "unreadable",
    }
    assert by_check(findings)["backup_age"]["severity"] == "ok"
