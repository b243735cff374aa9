import json
import os
import zipfile
from datetime import UTC, datetime

from ansible_collections.edms.backup.plugins.module_utils._format.archive import ArchiveWriter
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    describe_archive,
    human_size,
    list_archives,
    percent,
    read_status,
    record_status,
    status_path,
    verification_entry,
)

FIXTURE = b'[\n{"model": "users.user", "pk": 1, "fields": {"username": "admin"}}\n]\n'


def write_archive(directory, when, label="manual"):
    name = when.strftime("edms_%Y%m%dT%H%M%SZ.zip")
    with ArchiveWriter(str(directory), name) as writer:
        writer.add_stream("database_backup.json", FIXTURE)
        return writer.finish(
            {
                "format": "edms.backup",
                "format_version": 1,
                "created_at": when.strftime("%Y-%m-%dT%H:%M:%S.000001Z"),
                "label": label,
                "counts": {"users.user": 1, "users.user_groups": 0},
                "m2m_tables": ["users.user_groups"],
            }
        )


def test_lists_newest_first_with_times_in_both_zones(tmp_path):
    old = write_archive(tmp_path, datetime(2026, 1, 1, 13, 0, 29, tzinfo=UTC))
    new = write_archive(tmp_path, datetime(2026, 1, 2, 13, 0, 29, tzinfo=UTC))
    catalogue = list_archives(str(tmp_path), "Asia/Singapore")
    assert [a["path"] for a in catalogue["archives"]] == [new, old]
    entry = catalogue["archives"][1]
    assert entry["created_at"] == "2026-01-01T13:00:29.000001Z"
    assert entry["created_at_local"] == "2026-01-01T21:00:29.000001+08:00"
    assert entry["counts"] == {"users.user": 1}  # m2m tables are not objects
    assert entry["verification"] == {"state": "unverified"}
    assert catalogue["newest"]["path"] == new
    assert catalogue["newest_verified"] is None


def test_the_newest_verified_is_the_newest_that_passed(tmp_path):
    old = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    new = write_archive(tmp_path, datetime(2026, 1, 2, tzinfo=UTC))
    record_status(old, "verification", verification_entry({"ok": True}))
    record_status(new, "verification", verification_entry({"ok": False, "problems": ["x"]}))
    catalogue = list_archives(str(tmp_path), "UTC")
    assert catalogue["newest_verified"]["path"] == old
    assert catalogue["archives"][0]["verification"]["state"] == "failed"
    assert catalogue["archives"][0]["verification"]["problems"] == ["x"]
    assert oct(os.stat(status_path(old)).st_mode & 0o777) == "0o600"


def test_a_verification_goes_stale_when_the_archive_changes(tmp_path):
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    record_status(path, "verification", verification_entry({"ok": True}))
    with open(path, "ab") as handle:
        handle.write(b"tampered")
    assert read_status(path)["verification"]["stale"] is True
    assert list_archives(str(tmp_path), "UTC")["newest_verified"] is None


def test_records_of_different_kinds_are_kept_together(tmp_path):
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    record_status(path, "verification", verification_entry({"ok": True}))
    record_status(path, "rehearsal", {"ok": True, "seconds": 3.5})
    status = read_status(path)
    assert status["verification"]["ok"] is True
    assert status["rehearsal"]["seconds"] == 3.5


def test_a_link_planted_beside_the_status_file_is_not_written_through(tmp_path):
    """The status file is written under a new random name: a link someone left
    at a predictable name (the fixed partial name of earlier versions) is
    neither followed nor removed, and nothing is left behind."""
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    target = tmp_path / "elsewhere"
    target.write_text("not yours\n")
    planted = tmp_path / ("." + os.path.basename(status_path(path)) + ".partial")
    planted.symlink_to(target)
    record_status(path, "verification", verification_entry({"ok": True}))
    assert target.read_text() == "not yours\n"
    assert planted.is_symlink()
    assert read_status(path)["verification"]["ok"] is True
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(path), os.path.basename(status_path(path)), "elsewhere", planted.name]
    )


def test_native_layouts_are_listed_and_other_files_are_not(tmp_path):
    native_dir = tmp_path / "20260101_130029"
    native_dir.mkdir()
    (native_dir / "database_backup.json").write_bytes(FIXTURE)
    with zipfile.ZipFile(tmp_path / "20260102_130029.zip", "w") as archive:
        archive.writestr("database_backup.json", FIXTURE)
        archive.writestr("metadata.json", json.dumps({"backup_type": "DATABASE"}))
    (tmp_path / "notes.txt").write_text("not a backup")
    (tmp_path / "edms_20260103T000000Z.zip").write_bytes(b"not a zip")  # named like one
    (tmp_path / ".edms_20260104T000000Z.zip.partial").write_bytes(b"PK")
    catalogue = list_archives(str(tmp_path), "UTC")
    layouts = {a["name"]: a["layout"] for a in catalogue["archives"]}
    assert layouts == {
        "20260101_130029": "edms-native directory",
        "20260102_130029.zip": "edms-native zip",
        "edms_20260103T000000Z.zip": "edms.backup v1",
    }
    # The EDMS names its backups by UTC time; without created_at that is the time.
    times = {a["name"]: a["created_at"] for a in catalogue["archives"]}
    assert times["20260101_130029"] == "2026-01-01T13:00:29.000000Z"
    assert catalogue["partials"] == [str(tmp_path / ".edms_20260104T000000Z.zip.partial")]
    broken = next(a for a in catalogue["archives"] if a["name"].startswith("edms_"))
    assert broken["metadata"] is False


def test_describe_ignores_what_is_not_an_archive(tmp_path):
    (tmp_path / "empty").mkdir()
    assert describe_archive(str(tmp_path / "empty"), "UTC") is None


def test_sizes_and_ratios_read_as_people_read_them():
    assert [human_size(n) for n in (0, 1023, 1024, 1536, 1024**2 - 1, 1024**2, 5 * 1024**3)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "1024.0 KiB",
        "1.0 MiB",
        "5.0 GiB",
    ]
    assert human_size(None) == human_size(True) == human_size("12") == "?"
    assert [percent(r) for r in (0.8, 0.795, 1.0, 0.125, 0)] == [
        "80%",
        "79.5%",
        "100%",
        "12.5%",
        "0%",
    ]
