import json
import os
import zipfile
from datetime import UTC, datetime

import pytest
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
from ansible_collections.edms.backup.plugins.module_utils._platform.files import (
    archive_sha256,
    file_sha256,
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


# --- a hostile neighbour: whoever can write the backup directory ----------


def rewrite_keeping_time(path, change):
    """change(bytearray) applied to the file at path, its size and modification
    time put back as they were: bit rot, or a forgery that covers its tracks."""
    info = os.stat(path)
    with open(path, "rb") as handle:
        data = bytearray(handle.read())
    change(data)
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert os.path.getsize(path) == info.st_size


def member_data_offset(path, member):
    """Where the (compressed) bytes of a ZIP member start in the file."""
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo(member).header_offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        header = handle.read(30)
    name_length = int.from_bytes(header[26:28], "little")
    extra_length = int.from_bytes(header[28:30], "little")
    return offset + 30 + name_length + extra_length


def forge_status(path, **extra):
    """A status file as someone who can only write the directory makes it:
    the archive's size and time right, ok: true."""
    info = os.stat(path)
    entry = {
        "ok": True,
        "at": "2026-01-01T00:00:00.000000Z",
        "problems": [],
        "archive_size": info.st_size,
        "archive_mtime_ns": info.st_mtime_ns,
        **extra,
    }
    with open(status_path(path), "w", encoding="utf-8") as handle:
        json.dump({"verification": entry}, handle)


def zip_with(directory, name, members):
    path = os.path.join(str(directory), name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def state_of(directory, name):
    catalogue = list_archives(str(directory), "UTC")
    return next(a for a in catalogue["archives"] if a["name"] == name)


def test_f2_a_status_file_that_is_a_link_is_not_read(tmp_path):
    """A status file planted as a link to a file elsewhere, one that would pass
    for a genuine record, is neither followed nor believed."""
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    record_status(path, "verification", verification_entry({"ok": True}))
    target = tmp_path.parent / (tmp_path.name + "-elsewhere.json")
    os.rename(status_path(path), target)
    os.symlink(target, status_path(path))
    entry = state_of(tmp_path, os.path.basename(path))
    assert entry["verification"]["state"] == "unverified"
    assert "symbolic link" in entry["verification"]["problem"]
    assert read_status(path) == {"unreadable": entry["verification"]["problem"]}


def test_f2_recording_over_a_planted_status_link_neither_reads_nor_writes_its_target(tmp_path):
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    target = tmp_path.parent / (tmp_path.name + "-target.json")
    planted = json.dumps({"rehearsal": {"ok": True, "database": "planted"}})
    target.write_text(planted)
    os.symlink(target, status_path(path))
    record_status(path, "verification", verification_entry({"ok": True}))
    assert target.read_text() == planted
    assert not os.path.islink(status_path(path))
    status = read_status(path)
    assert "rehearsal" not in status  # nothing of the target's came in
    assert status["verification"]["ok"] is True


def test_f2_a_directory_archive_is_read_without_following_its_links(tmp_path):
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    (outside / "metadata.json").write_text(json.dumps({"label": "read through a link"}))
    (outside / "database_backup.json").write_bytes(FIXTURE)
    linked_metadata = tmp_path / "20260101_130029"
    linked_metadata.mkdir()
    (linked_metadata / "database_backup.json").write_bytes(FIXTURE)
    (linked_metadata / "metadata.json").symlink_to(outside / "metadata.json")
    linked_fixture = tmp_path / "20260102_130029"
    linked_fixture.mkdir()
    (linked_fixture / "database_backup.json").symlink_to(outside / "database_backup.json")
    (tmp_path / "20260103_130029").symlink_to(outside)  # the whole archive a link
    catalogue = list_archives(str(tmp_path), "UTC")
    entries = {a["name"]: a for a in catalogue["archives"]}
    assert sorted(entries) == ["20260101_130029", "20260102_130029", "20260103_130029"]
    for entry in entries.values():
        assert entry["label"] == ""
        assert entry["verification"]["state"] == "unreadable"
    assert "metadata.json" in entries["20260101_130029"]["unreadable"]
    assert "database_backup.json" in entries["20260102_130029"]["unreadable"]
    assert "symbolic link" in entries["20260103_130029"]["unreadable"]


def test_f2_an_archive_that_is_a_link_is_listed_as_unreadable_and_not_read(tmp_path):
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    real = write_archive(outside, datetime(2026, 1, 1, tzinfo=UTC), label="elsewhere")
    record_status(real, "verification", verification_entry({"ok": True}))
    link = tmp_path / os.path.basename(real)
    link.symlink_to(real)
    os.symlink(status_path(real), status_path(str(link)))
    catalogue = list_archives(str(tmp_path), "UTC")
    (entry,) = catalogue["archives"]
    assert entry["label"] == ""
    assert entry["verification"]["state"] == "unreadable"
    assert "symbolic link" in entry["unreadable"]
    assert catalogue["newest_verified"] is None


def test_f6_bit_rot_in_metadata_is_an_unreadable_archive_not_a_crash(tmp_path):
    """zlib.error while metadata.json is read; size and time unchanged, so the
    status file still matches: the archive is unreadable all the same."""
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    record_status(path, "verification", verification_entry({"ok": True}))
    start = member_data_offset(path, "metadata.json")
    rewrite_keeping_time(path, lambda data: data.__setitem__(start, 0xFF))
    catalogue = list_archives(str(tmp_path), "UTC")
    (entry,) = catalogue["archives"]
    assert entry["verification"]["state"] == "unreadable"
    assert "metadata.json cannot be read" in entry["unreadable"]
    assert entry["created_at"] == "2026-01-01T00:00:00.000000Z"  # from its name
    assert catalogue["newest_verified"] is None


def test_f6_a_bad_central_directory_is_unreadable_even_with_a_matching_status(tmp_path):
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    record_status(path, "verification", verification_entry({"ok": True}))

    def break_directory(data):
        for start in range(len(data) - 4):
            if data[start : start + 4] == b"PK\x01\x02":
                data[start : start + 4] = b"XX\x01\x02"

    rewrite_keeping_time(path, break_directory)
    entry = state_of(tmp_path, os.path.basename(path))
    assert entry["verification"]["state"] == "unreadable"
    assert "ZIP" in entry["unreadable"]


def test_f6_deeply_nested_metadata_is_unreadable_not_a_recursion_error(tmp_path):
    depth = 100_000
    name = "edms_20260101T000000Z.zip"
    zip_with(tmp_path, name, {"metadata.json": "[" * depth + "]" * depth})
    native = tmp_path / "20260102_000000"
    native.mkdir()
    (native / "database_backup.json").write_bytes(FIXTURE)
    (native / "metadata.json").write_text("{" + '"a":{' * depth + "}" * depth + "}")
    entries = {a["name"]: a for a in list_archives(str(tmp_path), "UTC")["archives"]}
    assert entries[name]["unreadable"] == "metadata.json is nested too deeply"
    assert entries[native.name]["unreadable"] == "metadata.json is nested too deeply"


def test_f6_huge_metadata_is_refused_before_it_is_read(tmp_path):
    from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
        METADATA_MAX_SIZE,
    )

    name = "edms_20260101T000000Z.zip"
    zip_with(tmp_path, name, {"metadata.json": b" " * METADATA_MAX_SIZE + b'{"label": "x"}'})
    entry = state_of(tmp_path, name)
    assert entry["verification"]["state"] == "unreadable"
    assert f"more than the {METADATA_MAX_SIZE}" in entry["unreadable"]
    assert entry["label"] == ""


@pytest.mark.parametrize(
    "status",
    [
        "[1, 2]",
        '"passed"',
        '{"verification": "passed"}',
        '{"verification": ["ok"], "rehearsal": 3}',
        "[" * 100_000 + "]" * 100_000,
        "{not json",
        b"\xff\xfe\x00".decode("latin-1"),
    ],
)
def test_f6_a_status_file_that_is_not_an_object_of_objects_is_no_crash(tmp_path, status):
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    with open(status_path(path), "w", encoding="latin-1") as handle:
        handle.write(status)
    entry = state_of(tmp_path, os.path.basename(path))
    assert entry["verification"]["state"] == "unverified"
    assert entry["verification"]["problem"].startswith("status file ")
    assert entry["unreadable"] is None  # the archive itself is fine
    # A new record replaces what could not be read.
    record_status(path, "verification", verification_entry({"ok": True}))
    assert state_of(tmp_path, os.path.basename(path))["verification"]["state"] == "passed"


def test_f6_an_archive_that_vanishes_while_it_is_listed_is_no_crash(tmp_path, monkeypatch):
    keep = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    gone = write_archive(tmp_path, datetime(2026, 1, 2, tzinfo=UTC))
    record_status(gone, "verification", verification_entry({"ok": True}))
    inode = os.stat(gone).st_ino
    real_zipfile = zipfile.ZipFile

    def is_gone(file):
        try:
            info = os.fstat(file.fileno()) if hasattr(file, "fileno") else os.stat(file)
        except OSError:
            return False
        return info.st_ino == inode

    class Vanishing(real_zipfile):
        """Someone else removes the archive just as it is opened."""

        def __init__(self, file, *args, **kwargs):
            if is_gone(file):
                os.unlink(gone)
            super().__init__(file, *args, **kwargs)

    monkeypatch.setattr(zipfile, "ZipFile", Vanishing)
    catalogue = list_archives(str(tmp_path), "UTC")
    monkeypatch.undo()
    names = [a["name"] for a in catalogue["archives"]]
    assert os.path.basename(keep) in names
    for entry in catalogue["archives"]:
        if entry["name"] == os.path.basename(gone):
            assert entry["verification"]["state"] != "passed"


def test_f6_names_that_are_not_utf8_are_listed_printable_and_never_ours(tmp_path):
    directory = os.fsencode(str(tmp_path))
    bad_zip = os.path.join(directory, b"edms_20260101T000000Z\xff.zip")
    with open(bad_zip, "wb") as handle:
        handle.write(b"PK")
    bad_dir = os.path.join(directory, b"20260102_000000\xfe")
    os.mkdir(bad_dir)
    with open(os.path.join(bad_dir, b"database_backup.json"), "wb") as handle:
        handle.write(FIXTURE)
    with open(os.path.join(directory, b".edms_20260103T000000Z\xfd.zip.partial"), "wb") as handle:
        handle.write(b"PK")
    catalogue = list_archives(str(tmp_path), "UTC")
    json.dumps(catalogue, ensure_ascii=False).encode("utf-8")  # can be shown
    entries = {a["name"]: a for a in catalogue["archives"]}
    assert sorted(entries) == ["20260102_000000\\xfe", "edms_20260101T000000Z\\xff.zip"]
    for entry in entries.values():
        assert entry["layout"] == "unknown"
        assert entry["verification"]["state"] == "unreadable"
        assert "not valid UTF-8" in entry["unreadable"]
    assert catalogue["partials"] == [str(tmp_path / ".edms_20260103T000000Z\\xfd.zip.partial")]


def test_f6_no_damaged_byte_makes_the_listing_raise_or_believe_the_archive(tmp_path):
    """Every byte of a verified archive damaged in turn, size and time kept:
    the listing never raises, and never reports the damaged archive as the
    newest verified one (its sha256 is computed again before it is)."""
    original = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    record_status(original, "verification", verification_entry({"ok": True}))
    with open(original, "rb") as handle:
        pristine = handle.read()
    info = os.stat(original)
    for offset in range(0, len(pristine), 3):
        damaged = bytearray(pristine)
        damaged[offset] ^= 0x5A
        with open(original, "wb") as handle:
            handle.write(bytes(damaged))
        os.utime(original, ns=(info.st_atime_ns, info.st_mtime_ns))
        assert "stale" not in read_status(original)["verification"]  # size and time agree
        catalogue = list_archives(str(tmp_path), "UTC")
        assert catalogue["newest_verified"] is None, offset
        (entry,) = catalogue["archives"]
        assert entry["verification"]["state"] in ("stale", "unreadable"), offset


@pytest.mark.parametrize("with_status", [False, True])
def test_describe_never_raises_whatever_it_meets(tmp_path, monkeypatch, with_status):
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    if with_status:
        record_status(path, "verification", verification_entry({"ok": True}))

    def explode(*args, **kwargs):
        raise MemoryError("no memory left")

    monkeypatch.setattr(json, "loads", explode)
    entry = describe_archive(path, "UTC")
    assert entry["verification"]["state"] == "unreadable"
    assert "no memory left" in entry["unreadable"]
    assert entry["created_at"] == "2026-01-01T00:00:00.000000Z"


# --- no status file believed without the archive's sha256 -------------------


def test_f1_every_status_entry_records_the_archives_sha256(tmp_path):
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    record_status(path, "verification", verification_entry({"ok": True}))
    record_status(path, "rehearsal", {"ok": True, "seconds": 1.0})
    status = read_status(path)
    assert status["verification"]["sha256"] == file_sha256(path)
    assert status["rehearsal"]["sha256"] == file_sha256(path)
    native = tmp_path / "20260102_000000"
    native.mkdir()
    (native / "database_backup.json").write_bytes(FIXTURE)
    record_status(str(native), "verification", verification_entry({"ok": True}))
    digest = read_status(str(native))["verification"]["sha256"]
    assert digest == archive_sha256(str(native))
    (native / "database_backup.json").write_bytes(FIXTURE + b" ")
    assert archive_sha256(str(native)) != digest


def test_f1_a_forged_status_file_without_a_sha256_is_unconfirmed_not_passed(tmp_path):
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    forge_status(path)
    catalogue = list_archives(str(tmp_path), "UTC")
    assert catalogue["archives"][0]["verification"]["state"] == "unconfirmed"
    assert catalogue["newest_verified"] is None


def test_f1_a_forged_status_file_with_a_made_up_sha256_is_not_believed(tmp_path):
    older = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    record_status(older, "verification", verification_entry({"ok": True}))
    forged = write_archive(tmp_path, datetime(2026, 1, 2, tzinfo=UTC))
    forge_status(forged, sha256="0" * 64)
    catalogue = list_archives(str(tmp_path), "UTC")
    assert catalogue["newest_verified"]["path"] == older
    assert catalogue["newest_verified"]["verification"]["confirmed"] is True
    entry = catalogue["archives"][0]
    assert entry["verification"]["state"] == "stale"
    assert "0" * 64 in entry["verification"]["problem"]


def test_f1_an_archive_replaced_with_its_size_and_time_kept_is_stale_once_confirmed(tmp_path):
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    record_status(path, "verification", verification_entry({"ok": True}))
    start = member_data_offset(path, "database_backup.json")
    rewrite_keeping_time(path, lambda data: data.__setitem__(start + 1, data[start + 1] ^ 1))
    assert "stale" not in read_status(path)["verification"]  # size and time say nothing
    catalogue = list_archives(str(tmp_path), "UTC")
    assert catalogue["newest_verified"] is None
    assert catalogue["archives"][0]["verification"]["state"] == "stale"
    assert "sha256 is now" in catalogue["archives"][0]["verification"]["problem"]


def test_a_status_file_cannot_claim_to_be_confirmed(tmp_path):
    path = write_archive(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    forge_status(path, sha256="1" * 64, confirmed=True, state="passed")
    assert list_archives(str(tmp_path), "UTC")["newest_verified"] is None


def test_a_trailing_slash_does_not_make_a_link_followed(tmp_path):
    outside = tmp_path.parent / (tmp_path.name + "-dir")
    outside.mkdir()
    (outside / "database_backup.json").write_bytes(FIXTURE)
    (tmp_path / "20260101_130029").symlink_to(outside)
    entry = describe_archive(str(tmp_path / "20260101_130029") + "/", "UTC")
    assert entry["verification"]["state"] == "unreadable"
    assert entry["name"] == "20260101_130029"
