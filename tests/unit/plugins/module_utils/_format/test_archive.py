import errno
import hashlib
import json
import os
import stat
import zipfile
from datetime import UTC, datetime, timedelta, timezone

import pytest
from ansible_collections.edms.backup.plugins.module_utils._format import archive as _archive
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    FIXTURE,
    METADATA,
    READ_SIZE,
    ArchiveError,
    ArchiveReader,
    ArchiveWriter,
    archive_name,
    is_archive_name,
    member_name_problem,
)
from ansible_collections.edms.backup.plugins.module_utils._format.verification import (
    CHECKS,
    verify_archive,
)

WHEN = datetime(2026, 1, 1, 13, 0, 29, 512345, tzinfo=UTC)
NAME = "edms_20260101T130029Z.zip"
DOC1 = "6f0c6b1e-0000-4000-8000-000000000001"
DOC2 = "6f0c6b1e-0000-4000-8000-000000000002"
FILE1 = "documents/2025/01/DOC-000001.bin"
FILE2 = "documents/2025/01/DOC-000002.bin"


def objects():
    return [
        {"model": "users.user", "pk": 1, "fields": {"username": "alice", "groups": []}},
        {"model": "users.user", "pk": 2, "fields": {"username": "bob", "groups": [["editors"]]}},
        {"model": "documents.documenttype", "pk": 1, "fields": {"code": "SOP", "name": "SOP"}},
        {
            "model": "documents.document",
            "pk": DOC1,
            "fields": {"document_type": ["SOP"], "owner": ["alice"], "file": FILE1},
        },
        {
            "model": "documents.document",
            "pk": DOC2,
            "fields": {"document_type": ["SOP"], "owner": ["bob"], "file": FILE2},
        },
        {
            "model": "workflows.workflow",
            "pk": 1,
            "fields": {"document": DOC1, "initiated_by": ["bob"], "participants": [["alice"]]},
        },
        {
            "model": "audit.audittrail",
            "pk": 1,
            "fields": {"user": None, "content_type": ["documents", "document"], "object_id": DOC1},
        },
        {
            "model": "auth.group",
            "pk": 1,
            "fields": {"name": "editors", "permissions": [["add_user", "users", "user"]]},
        },
    ]


RELATIONS = {
    "auth.group": {"permissions": {"model": "auth.permission", "many": True}},
    "users.user": {"groups": {"model": "auth.group", "many": True}},
    "documents.document": {
        "document_type": {"model": "documents.documenttype", "many": False},
        "owner": {"model": "users.user", "many": False},
    },
    "workflows.workflow": {
        "document": {"model": "documents.document", "many": False},
        "initiated_by": {"model": "users.user", "many": False},
        "participants": {"model": "users.user", "many": True},
    },
    "audit.audittrail": {
        "user": {"model": "users.user", "many": False},
        "content_type": {"model": "contenttypes.contenttype", "many": False},
    },
}


def fixture_bytes(objs):
    return ("[\n" + ",\n".join(json.dumps(obj) for obj in objs) + "\n]\n").encode()


def counts_of(objs):
    counts = {}
    for obj in objs:
        counts[obj["model"]] = counts.get(obj["model"], 0) + 1
    return counts


def metadata_for(objs, **changes):
    metadata = {
        "format": "edms.backup",
        "format_version": 1,
        "label": "manual",
        "created_at": "2026-01-01T13:00:29.512345Z",
        "counts": {**counts_of(objs), "workflows.workflow_participants": 1},
        "m2m_tables": ["workflows.workflow_participants", "users.user_groups"],
        "relations": RELATIONS,
        "natural_keys": {
            "users.user": ["username"],
            "documents.documenttype": ["code"],
            "auth.group": ["name"],
        },
        "file_fields": {"documents.document": ["file"]},
        "excluded_models": ["contenttypes", "auth.permission", "sessions", "admin.logentry"],
        "recreated_models": ["contenttypes.contenttype", "auth.permission"],
        "required_models": ["users.user", "documents.document", "workflows.workflow"],
    }
    metadata.update(changes)
    return metadata


def write_archive(directory, objs=None, media=None, metadata=None, fixture=None, name=NAME):
    objs = objects() if objs is None else objs
    media = {FILE1: b"one" * 100, FILE2: b"two" * 100} if media is None else media
    with ArchiveWriter(str(directory), name) as writer:
        writer.add_stream(FIXTURE, fixture_bytes(objs) if fixture is None else fixture)
        for path, data in media.items():
            writer.add_stream("media/" + path, data)
        return writer.finish(metadata_for(objs) if metadata is None else metadata)


def statuses(result):
    return {check["name"]: check["status"] for check in result["checks"]}


def check_of(result, name):
    return next(check for check in result["checks"] if check["name"] == name)


def failed(result):
    return {name for name, status in statuses(result).items() if status == "fail"}


def add_to_zip(path, name, data, external_attr=None, compress=zipfile.ZIP_DEFLATED):
    info = zipfile.ZipInfo(name)
    info.compress_type = compress
    if external_attr is not None:
        info.external_attr = external_attr
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(info, data)


def extract(path, directory):
    with zipfile.ZipFile(path) as archive:
        archive.extractall(directory)
    return str(directory)


# Names


def test_archive_names_carry_utc():
    assert archive_name(WHEN) == NAME
    singapore = timezone(timedelta(hours=8))
    assert archive_name(WHEN.astimezone(singapore), "_pre-restore") == (
        "edms_20260101T130029Z_pre-restore.zip"
    )


@pytest.mark.parametrize(("moment", "suffix"), [(datetime(2026, 1, 1), ""), (WHEN, "/x")])
def test_archive_name_refuses_naive_times_and_odd_suffixes(moment, suffix):
    with pytest.raises(ValueError, match=r"naive|suffix"):
        archive_name(moment, suffix)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (NAME, True),
        ("edms_20260101T130029Z_pre-restore.zip", True),
        (".edms_20260101T130029Z.zip.partial", False),
        ("edms_20260101T130029Z.zip.partial", False),
        ("edms_20260101_130029.zip", False),
        ("edms_20260101T130029.zip", False),
        ("backup.zip", False),
    ],
)
def test_is_archive_name(name, expected):
    assert is_archive_name(name) is expected


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../x", "has a '..' component"),
        ("media/../../x", "has a '..' component"),
        ("/etc/x", "is an absolute path"),
        ("C:x", "starts with a drive letter"),
        ("media\\x", "has a backslash in its name"),
        ("media/x\x00.bin", "has a NUL character in its name"),
        ("", "has an empty name"),
        ("media/..x/y", None),
        ("media/a b/ü.bin", None),
    ],
)
def test_member_name_problems(name, problem):
    assert member_name_problem(name) == problem


# Writing


def test_the_writer_records_members_and_writes_metadata_last(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"s" * 5000)
    with ArchiveWriter(str(tmp_path), NAME) as writer:
        first = writer.add_stream(FIXTURE, [b"[\n", b"]\n"])
        writer.add_file("media/a/source.bin", str(source))
        path = writer.finish({"format": "edms.backup", "members": "replaced"})
    assert first == {"sha256": hashlib.sha256(b"[\n]\n").hexdigest(), "size": 4}
    assert path == str(tmp_path / NAME)
    assert sorted(os.listdir(tmp_path)) == sorted(["source.bin", NAME])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        metadata = json.loads(archive.read(METADATA))
    assert [info.filename for info in infos] == [FIXTURE, "media/a/source.bin", METADATA]
    assert [info.compress_type for info in infos] == [
        zipfile.ZIP_DEFLATED,
        zipfile.ZIP_STORED,
        zipfile.ZIP_DEFLATED,
    ]
    assert metadata["members"] == writer.members
    assert metadata["members"]["media/a/source.bin"] == {
        "sha256": hashlib.sha256(b"s" * 5000).hexdigest(),
        "size": 5000,
    }


def test_the_partial_file_is_a_dot_file_created_with_mode_0600(tmp_path):
    old = os.umask(0)
    try:
        writer = ArchiveWriter(str(tmp_path), NAME)
    finally:
        os.umask(old)
    with writer:
        writer.add_stream(FIXTURE, b"[]")
        assert os.listdir(tmp_path) == [f".{NAME}.partial"]
        assert stat.S_IMODE(os.stat(writer.partial_path).st_mode) == 0o600
        # What a killed process leaves: nothing named like an archive.
        assert not any(is_archive_name(name) for name in os.listdir(tmp_path))
        writer.finish({})


def test_an_exception_removes_the_partial_file(tmp_path):
    def failing_dump():
        yield b"half a member"
        raise RuntimeError("dump failed")

    def backup():
        with ArchiveWriter(str(tmp_path), NAME) as writer:
            writer.add_stream(FIXTURE, b"[")
            writer.add_stream("media/x.bin", failing_dump())

    with pytest.raises(RuntimeError, match="dump failed"):
        backup()
    assert os.listdir(tmp_path) == []


def test_leaving_without_finish_removes_the_partial_file(tmp_path):
    with ArchiveWriter(str(tmp_path), NAME) as writer:
        writer.add_stream(FIXTURE, b"[]")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ArchiveError, match="is finished"):
        writer.add_stream("media/x", b"late")


def test_an_existing_archive_is_never_overwritten(tmp_path):
    (tmp_path / NAME).write_bytes(b"precious")
    with pytest.raises(ArchiveError, match="already exists; it is never overwritten"):
        ArchiveWriter(str(tmp_path), NAME)
    assert (tmp_path / NAME).read_bytes() == b"precious"
    assert os.listdir(tmp_path) == [NAME]


def test_an_archive_appearing_during_the_write_is_not_overwritten(tmp_path):
    def backup():
        with ArchiveWriter(str(tmp_path), NAME) as writer:
            writer.add_stream(FIXTURE, b"[]")
            (tmp_path / NAME).write_bytes(b"precious")
            writer.finish({})

    with pytest.raises(ArchiveError, match="appeared while"):
        backup()
    assert (tmp_path / NAME).read_bytes() == b"precious"
    assert os.listdir(tmp_path) == [NAME]


def test_without_hard_links_the_archive_is_renamed_into_place(tmp_path, monkeypatch):
    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_archive.os, "link", no_links)
    path = write_archive(tmp_path)
    assert os.listdir(tmp_path) == [NAME]
    assert verify_archive(path)["ok"]


def test_a_leftover_partial_file_is_reported(tmp_path):
    (tmp_path / f".{NAME}.partial").write_bytes(b"")
    with pytest.raises(ArchiveError, match="another backup is writing it, or one was interrupted"):
        ArchiveWriter(str(tmp_path), NAME)


@pytest.mark.parametrize("member", ["../x", "/etc/x", METADATA, "media/", FIXTURE])
def test_the_writer_refuses_bad_or_repeated_member_names(tmp_path, member):
    with ArchiveWriter(str(tmp_path), NAME) as writer:
        writer.add_stream(FIXTURE, b"[]")
        with pytest.raises(ValueError, match=repr(member)):
            writer.add_stream(member, b"x")


def test_the_writer_refuses_a_name_that_is_not_an_archive_name(tmp_path):
    with pytest.raises(ValueError, match="is not an archive name"):
        ArchiveWriter(str(tmp_path), "backup.zip")


def test_add_file_refuses_a_link(tmp_path):
    (tmp_path / "real").write_bytes(b"secret")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    out = tmp_path / "out"
    out.mkdir()
    with ArchiveWriter(str(out), NAME) as writer, pytest.raises(ArchiveError, match="link"):
        writer.add_file("media/link", str(tmp_path / "link"))


def test_copy_member_writes_a_stored_members_bytes_again_under_a_new_name(tmp_path):
    data = os.urandom(READ_SIZE * 2 + 12345)  # read back in more than one block
    with ArchiveWriter(str(tmp_path), NAME) as writer:
        writer.add_stream(FIXTURE, fixture_bytes(objects()))
        writer.add_stream("media/" + FILE1, data, compress=False)
        copied = writer.copy_member("media/" + FILE2, "media/" + FILE1)
        again = writer.copy_member("media/a/copy-of-a-copy.bin", "media/" + FILE2)
        path = writer.finish(metadata_for(objects()))
    expected = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert copied == again == expected
    assert writer.members["media/" + FILE2] == writer.members["media/a/copy-of-a-copy.bin"]
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        infos = {info.filename: info for info in archive.infolist()}
        for name in ("media/" + FILE1, "media/" + FILE2, "media/a/copy-of-a-copy.bin"):
            assert archive.read(name) == data
            assert infos[name].compress_type == zipfile.ZIP_STORED
            assert infos[name].CRC == infos["media/" + FILE1].CRC
            assert infos[name].external_attr == infos["media/" + FILE1].external_attr
        metadata = json.loads(archive.read(METADATA))
    assert metadata["members"]["media/" + FILE2] == expected
    result = verify_archive(path)
    assert result["ok"], result["problems"]
    assert check_of(result, "member_checksums")["status"] == "pass"


def test_copy_member_reads_the_partial_file_through_its_descriptor_not_its_path(tmp_path):
    with ArchiveWriter(str(tmp_path), NAME) as writer:
        writer.add_stream(FIXTURE, fixture_bytes(objects()))
        writer.add_stream("media/" + FILE1, b"one" * 100, compress=False)
        # Another file at the partial file's path while the copy is made.
        aside = str(tmp_path / "aside")
        os.rename(writer.partial_path, aside)
        with open(writer.partial_path, "wb") as other:
            other.write(b"x" * 100000)
        try:
            writer.copy_member("media/" + FILE2, "media/" + FILE1)
        finally:
            os.replace(aside, writer.partial_path)
        path = writer.finish(metadata_for(objects()))
    with zipfile.ZipFile(path) as archive:
        assert archive.read("media/" + FILE2) == b"one" * 100
    assert verify_archive(path)["ok"]


def test_copy_member_refuses_what_was_not_written_stored_or_is_already_there(tmp_path):
    with ArchiveWriter(str(tmp_path), NAME) as writer:
        writer.add_stream(FIXTURE, fixture_bytes(objects()))
        writer.add_stream("media/" + FILE1, b"one" * 100, compress=False)
        with pytest.raises(ValueError, match="not a stored member"):
            writer.copy_member("media/x.bin", FIXTURE)  # deflated
        with pytest.raises(ValueError, match="not a stored member"):
            writer.copy_member("media/x.bin", "media/not-written.bin")
        with pytest.raises(ValueError, match="already in the archive"):
            writer.copy_member("media/" + FILE1, "media/" + FILE1)
        with pytest.raises(ValueError, match=r"'\.\.' component"):
            writer.copy_member("media/../x.bin", "media/" + FILE1)
        assert sorted(writer.members) == [FIXTURE, "media/" + FILE1]
        writer.finish({})
    with pytest.raises(ArchiveError, match="is finished"):
        writer.copy_member("media/" + FILE2, "media/" + FILE1)


def test_copy_member_fails_when_the_bytes_read_back_are_not_those_written(tmp_path):
    def backup():
        with ArchiveWriter(str(tmp_path), NAME) as writer:
            writer.add_stream(FIXTURE, fixture_bytes(objects()))
            writer.add_stream("media/" + FILE1, b"one" * 100, compress=False)
            # Something else wrote into the member's data in place (the
            # writer's buffer is flushed once a member is complete).
            with open(writer.partial_path, "r+b") as handle:
                content = handle.read()
                handle.seek(content.index(b"one" * 100))
                handle.write(b"ONE")
            writer.copy_member("media/" + FILE2, "media/" + FILE1)

    with pytest.raises(ArchiveError, match="is not what was written"):
        backup()
    assert os.listdir(tmp_path) == []


# Reading


def test_a_truncated_zip_is_not_a_complete_zip_file(tmp_path):
    path = write_archive(tmp_path)
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)
    with pytest.raises(ArchiveError, match="is not a complete ZIP file"):
        ArchiveReader.open(path)
    result = verify_archive(path)
    assert not result["ok"]
    assert result["problems"][0].startswith(f"'{path}' is not a complete ZIP file")
    assert statuses(result) == {
        "archive_opens": "fail",
        **dict.fromkeys(CHECKS[1:], "not_checkable"),
    }


def test_the_reader_lists_and_streams_members_of_both_layouts(tmp_path):
    path = write_archive(tmp_path)
    directory = extract(path, tmp_path / "dir")
    for source in (path, directory):
        with ArchiveReader.open(source) as reader:
            names = {member.name for member in reader.members() if not member.is_dir}
            assert names == {FIXTURE, METADATA, "media/" + FILE1, "media/" + FILE2}
            with reader.open_member("media/" + FILE1) as stream:
                assert stream.read() == b"one" * 100
                assert stream.sha256 == hashlib.sha256(b"one" * 100).hexdigest()
            with pytest.raises(ArchiveError, match="has no file member 'nope'"):
                reader.open_member("nope")


def test_check_safety_names_every_unsafe_member(tmp_path):
    path = write_archive(tmp_path)
    add_to_zip(path, "../x", b"x")
    add_to_zip(path, "media/l", b"/etc/passwd", external_attr=(stat.S_IFLNK | 0o777) << 16)
    with ArchiveReader.open(path) as reader, pytest.raises(ArchiveError) as err:
        reader.check_safety()
    assert "member '../x' has a '..' component" in str(err.value)
    assert "member 'media/l' is a symbolic link" in str(err.value)


# Verification


def test_a_clean_archive_passes_every_check_with_numbers(tmp_path):
    result = verify_archive(write_archive(tmp_path))
    assert result["ok"], result["problems"]
    assert result["layout"] == "edms.backup v1"
    assert [check["name"] for check in result["checks"]] == list(CHECKS)
    assert set(statuses(result).values()) == {"pass"}
    assert result["problems"] == []
    numbers = {check["name"]: check["numbers"] for check in result["checks"]}
    assert numbers["fixture_parses"]["objects"] == 8
    assert numbers["member_checksums"] == {"listed": 3, "matched": 3, "extra": 0, "problems": 0}
    assert numbers["counts"] == {"models": 6, "differing": 0, "not_compared": 1}
    assert numbers["references"] == {
        "checked": 10,
        "resolved": 8,
        "recreated": 2,
        "not_checkable": 0,
        "dangling": 0,
        "null": 1,
    }
    assert numbers["media_files"] == {
        "file_references": 2,
        "missing": 0,
        "media_files": 2,
        "orphans": 0,
        "bytes": 600,
    }
    assert numbers["required_models"] == {"required": 3, "missing": 0}
    assert numbers["zip_crc"]["members"] == 4


def test_the_fixture_is_read_once(tmp_path, monkeypatch):
    opened = []
    original = ArchiveReader.open_member

    def counting(self, name):
        opened.append(name)
        return original(self, name)

    monkeypatch.setattr(ArchiveReader, "open_member", counting)
    assert verify_archive(write_archive(tmp_path))["ok"]
    assert sorted(opened) == sorted([METADATA, FIXTURE, "media/" + FILE1, "media/" + FILE2])


def flip_byte_in_member(path, member):
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    with open(path, "r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_length, extra_length = (int.from_bytes(handle.read(2), "little") for _half in range(2))
        middle = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
        handle.seek(middle)
        byte = handle.read(1)[0]
        handle.seek(middle)
        handle.write(bytes([byte ^ 0x01]))


@pytest.mark.parametrize("compress", [True, False])
def test_a_flipped_byte_in_the_zipped_fixture_fails_the_crc(tmp_path, compress):
    objs = objects()
    with ArchiveWriter(str(tmp_path), NAME) as writer:
        writer.add_stream(FIXTURE, fixture_bytes(objs), compress=compress)
        writer.add_stream("media/" + FILE1, b"1")
        writer.add_stream("media/" + FILE2, b"2")
        path = writer.finish(metadata_for(objs))
    flip_byte_in_member(path, FIXTURE)
    result = verify_archive(path)
    assert not result["ok"]
    assert {"zip_crc", "member_checksums", "fixture_parses"} <= failed(result)
    assert f"member '{FIXTURE}' cannot be read" in check_of(result, "zip_crc")["detail"]
    assert check_of(result, "references")["detail"] == "not run: the fixture cannot be read"


def test_a_flipped_byte_in_a_directory_fixture_fails_the_sha256(tmp_path):
    directory = extract(write_archive(tmp_path), tmp_path / "dir")
    fixture = os.path.join(directory, FIXTURE)
    with open(fixture, "r+b") as handle:
        offset = handle.read().index(b"alice")
        handle.seek(offset)
        handle.write(b"A")
    result = verify_archive(directory)
    assert result["layout"] == "edms.backup v1"
    assert failed(result) == {"member_checksums", "references"}
    assert check_of(result, "zip_crc")["status"] == "not_checkable"
    detail = check_of(result, "member_checksums")["detail"]
    assert f"member '{FIXTURE}' has sha256" in detail
    assert "metadata.json says" in detail


def test_members_that_do_not_match_metadata_are_named(tmp_path):
    objs = objects()
    metadata = metadata_for(objs)
    with ArchiveWriter(str(tmp_path), NAME) as writer:
        writer.add_stream(FIXTURE, fixture_bytes(objs))
        writer.add_stream("media/" + FILE1, b"1")
        writer.add_stream("media/" + FILE2, b"2")
        writer.add_stream("media/extra.bin", b"3")
        path = writer.finish(metadata)
    with zipfile.ZipFile(path) as archive:
        stored = json.loads(archive.read(METADATA))
    stored["members"]["media/" + FILE1]["sha256"] = "0" * 64
    stored["members"]["media/gone.bin"] = {"sha256": "1" * 64, "size": 1}
    del stored["members"]["media/extra.bin"]
    rewrite_metadata(path, stored)
    result = verify_archive(path)
    assert failed(result) == {"member_checksums"}
    check = check_of(result, "member_checksums")
    assert check["numbers"] == {"listed": 4, "matched": 2, "extra": 1, "problems": 3}
    assert check["items"] == [
        f"member 'media/{FILE1}' has sha256 {hashlib.sha256(b'1').hexdigest()} and size 1; "
        f"metadata.json says {'0' * 64} and 1",
        "member 'media/extra.bin' is not listed in metadata.json",
        "member 'media/gone.bin' is listed in metadata.json but missing",
    ]


def test_checksums_that_metadata_gives_in_unusual_forms_are_compared_as_given(tmp_path):
    objs = objects()
    with ArchiveWriter(str(tmp_path), NAME) as writer:
        writer.add_stream(FIXTURE, fixture_bytes(objs))
        writer.add_stream("media/" + FILE1, b"1")
        writer.add_stream("media/" + FILE2, b"2")
        path = writer.finish(metadata_for(objs))
    with zipfile.ZipFile(path) as archive:
        stored = json.loads(archive.read(METADATA))
    upper = hashlib.sha256(b"1").hexdigest().upper()
    stored["members"]["media/" + FILE1]["sha256"] = upper
    stored["members"]["media/" + FILE2]["size"] = 1 << 70
    stored["members"][FIXTURE]["size"] -= 1
    rewrite_metadata(path, stored)
    result = verify_archive(path)
    check = check_of(result, "member_checksums")
    assert check["numbers"] == {"listed": 3, "matched": 0, "extra": 0, "problems": 3}
    fixture_sha256 = stored["members"][FIXTURE]["sha256"]
    fixture_size = stored["members"][FIXTURE]["size"]
    assert check["items"] == [
        f"member '{FIXTURE}' has sha256 {fixture_sha256} and size {fixture_size + 1}; "
        f"metadata.json says {fixture_sha256} and {fixture_size}",
        f"member 'media/{FILE1}' has sha256 {upper.lower()} and size 1; "
        f"metadata.json says {upper} and 1",
        f"member 'media/{FILE2}' has sha256 {hashlib.sha256(b'2').hexdigest()} and size 1; "
        f"metadata.json says {hashlib.sha256(b'2').hexdigest()} and {1 << 70}",
    ]


def test_a_member_name_that_zipfile_cuts_does_not_hide_the_member_it_is_cut_to(tmp_path):
    path = str(tmp_path / "cut.zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", b"real")
        archive.writestr("a.txtQx", b"other")
    # zipfile cannot write a NUL into a name: put one in place of the Q. On
    # reading, zipfile cuts that name to "a.txt", the name of the first member.
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data.replace(b"a.txtQx", b"a.txt\x00x"))
    with ArchiveReader.open(path) as reader:
        names = [member.name for member in reader.members()]
        assert reader.member("a.txt").size == 4
        with reader.open_member("a.txt") as stream:
            assert stream.read() == b"real"
        assert names == ["a.txt", "a.txt\x00x"]
        assert reader.member("a.txt\x00x") == _archive.Member("a.txt\x00x", 5, 5, "file")
        assert reader.member("nothing") is None


def rewrite_metadata(path, metadata):
    """Copy the archive with another metadata.json."""
    copy = path + ".tmp"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == METADATA:
                data = json.dumps(metadata).encode()
            target.writestr(info, data)
    os.replace(copy, path)


def test_counts_that_disagree_with_metadata_are_named_with_both_numbers(tmp_path):
    objs = objects()
    counts = {**counts_of(objs), "documents.document": 3, "backup.backupjob": 4}
    metadata = metadata_for(objs, counts=counts)
    result = verify_archive(write_archive(tmp_path, metadata=metadata))
    assert failed(result) == {"counts"}
    detail = check_of(result, "counts")["detail"]
    assert "backup.backupjob has 0 in the fixture, 4 in metadata" in detail
    assert "documents.document has 2 in the fixture, 3 in metadata" in detail


def test_a_model_missing_from_metadata_counts_is_a_difference(tmp_path):
    objs = objects()
    counts = counts_of(objs)
    del counts["audit.audittrail"]
    result = verify_archive(write_archive(tmp_path, metadata=metadata_for(objs, counts=counts)))
    assert "audit.audittrail has 1 in the fixture, none in metadata" in result["problems"][0]


def with_fields(objs, index, **fields):
    objs[index]["fields"].update(fields)
    return objs


@pytest.mark.parametrize(
    ("index", "fields", "expected"),
    [
        (3, {"owner": ["carol"]}, 'owner = ["carol"] is no users.user in the fixture'),
        (5, {"document": DOC1[:-1] + "9"}, f'document = "{DOC1[:-1]}9" is no documents.document'),
        (5, {"initiated_by": 7}, "initiated_by = 7 is no users.user"),
        (5, {"participants": [["alice"], ["dave"]]}, 'participants = ["dave"] is no users.user'),
        (1, {"groups": [["editors"], ["ghosts"]]}, 'groups = ["ghosts"] is no auth.group'),
    ],
)
def test_dangling_references_fail_naming_the_object_and_field(tmp_path, index, fields, expected):
    objs = with_fields(objects(), index, **fields)
    result = verify_archive(write_archive(tmp_path, objs=objs))
    assert failed(result) == {"references"}
    detail = check_of(result, "references")["detail"]
    assert f"(object index {index})" in detail
    assert expected in detail


def test_a_duplicate_primary_key_fails(tmp_path):
    objs = objects()
    objs.insert(2, {"model": "users.user", "pk": "2", "fields": {"username": "bob2"}})
    result = verify_archive(write_archive(tmp_path, objs=objs))
    assert failed(result) == {"unique_pks"}
    assert 'users.user pk "2" again at object index 2' in result["problems"][0]


def test_a_missing_required_model_fails(tmp_path):
    objs = [obj for obj in objects() if obj["model"] != "workflows.workflow"]
    result = verify_archive(write_archive(tmp_path, objs=objs))
    assert failed(result) == {"required_models"}
    assert result["problems"] == [
        "required models without any object in the fixture: workflows.workflow"
    ]


def test_required_models_given_by_the_caller_win(tmp_path):
    result = verify_archive(write_archive(tmp_path), required_models=["Backup.BackupJob"])
    assert failed(result) == {"required_models"}
    assert result["problems"] == [
        "required models without any object in the fixture: backup.backupjob"
    ]


def test_a_file_field_without_its_media_file_fails_and_orphans_are_counted(tmp_path):
    media = {FILE1: b"1", "documents/orphan.bin": b"o"}
    result = verify_archive(write_archive(tmp_path, media=media))
    assert failed(result) == {"media_files"}
    check = check_of(result, "media_files")
    assert f'documents.document pk "{DOC2}" file = "{FILE2}"' in check["detail"]
    assert check["numbers"]["orphans"] == 1
    assert check["numbers"]["missing"] == 1


@pytest.mark.parametrize("member", ["../x", "/etc/x", "media/../../x", "C:/x", "media\\x"])
def test_a_member_path_that_escapes_the_root_fails_and_nothing_is_read(tmp_path, member):
    path = write_archive(tmp_path)
    add_to_zip(path, member, b"x")
    result = verify_archive(path)
    assert failed(result) == {"member_names"}
    assert repr(member) in result["problems"][0]
    assert check_of(result, "zip_crc")["detail"].startswith("not run: the archive failed a safety")


def test_a_repeated_member_name_fails(tmp_path):
    path = write_archive(tmp_path)
    with pytest.warns(UserWarning, match="Duplicate name"):
        add_to_zip(path, FIXTURE, b"[]")
    result = verify_archive(path)
    assert failed(result) == {"member_names"}
    assert f"member '{FIXTURE}' appears twice" in result["problems"][0]


def test_a_symlink_member_of_a_zip_fails(tmp_path):
    path = write_archive(tmp_path)
    add_to_zip(path, "media/passwd", b"/etc/passwd", external_attr=(stat.S_IFLNK | 0o777) << 16)
    result = verify_archive(path)
    assert failed(result) == {"no_links"}
    assert result["problems"] == ["member 'media/passwd' is a symbolic link"]


@pytest.mark.parametrize("target", ["/etc/passwd", "/etc"])
def test_a_symlink_in_a_directory_archive_fails(tmp_path, target):
    directory = extract(write_archive(tmp_path), tmp_path / "dir")
    os.symlink(target, os.path.join(directory, "media", "documents", "link"))
    result = verify_archive(directory)
    assert failed(result) == {"no_links"}
    assert result["problems"] == ["member 'media/documents/link' is a symbolic link"]


def test_a_fifo_in_a_directory_archive_fails(tmp_path):
    directory = extract(write_archive(tmp_path), tmp_path / "dir")
    os.mkfifo(os.path.join(directory, "media", "pipe"))
    result = verify_archive(directory)
    assert result["problems"] == ["member 'media/pipe' is neither a regular file nor a directory"]


def test_a_member_that_expands_too_much_fails(tmp_path):
    path = write_archive(tmp_path)
    add_to_zip(path, "media/zeros.bin", bytes(3 << 20))
    result = verify_archive(path)
    assert failed(result) == {"no_bomb"}
    problem = result["problems"][0]
    assert problem.startswith("member 'media/zeros.bin' expands to 3145728 bytes from")
    assert "over the 200:1 limit" in problem


def test_members_over_the_total_size_limit_fail(tmp_path):
    result = verify_archive(write_archive(tmp_path), max_total_size=1000)
    assert failed(result) == {"no_bomb"}
    assert "more than the limit of 1000 bytes from member" in result["problems"][0]


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        (b'[\n{"model": "users.user", "pk": 1, "fields": {}},\n{"model": oops}\n]\n', "not valid"),
        (b'[\n{"model": "users.user", "pk": 1, "fields": {"username": "al', "truncated"),
        (b'{"model": "users.user"}', "not a JSON array"),
        (
            b'[\n{"model": "users.user", "pk": 1, "fields": {"x": '
            + b"[" * 100000
            + b"]" * 100000
            + b"}}\n]\n",
            "nested too deeply",
        ),
        (
            b'[\n{"model": "users.user", "pk": ' + b"9" * 5000 + b', "fields": {}}\n]\n',
            "a value cannot be read: Exceeds the limit (4300 digits)",
        ),
    ],
)
def test_a_fixture_that_does_not_parse_fails(tmp_path, fixture, message):
    result = verify_archive(write_archive(tmp_path, fixture=fixture))
    assert failed(result) == {"fixture_parses"}
    detail = check_of(result, "fixture_parses")["detail"]
    assert detail.startswith(f"{FIXTURE} does not parse: ")
    assert message in detail
    assert check_of(result, "counts")["detail"] == "not run: the fixture does not parse"
    assert check_of(result, "member_checksums")["status"] == "pass"


def test_an_object_without_fields_fails_the_structure_check(tmp_path):
    objs = objects()
    del objs[4]["fields"]
    result = verify_archive(write_archive(tmp_path, objs=objs))
    assert "object_structure" in failed(result)
    assert "object index 4 has no 'fields'" in check_of(result, "object_structure")["detail"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{not json", "metadata.json is not valid JSON"),
        (b"[1]", "metadata.json is not a JSON object"),
        (
            json.dumps({"format": "edms.backup", "format_version": 2}).encode(),
            "format version 2; this collection reads version 1",
        ),
    ],
)
def test_unreadable_metadata_fails(tmp_path, data, problem):
    path = write_archive(tmp_path)
    rewrite_member(path, METADATA, data)
    result = verify_archive(path)
    assert problem in check_of(result, "metadata")["detail"]
    assert check_of(result, "metadata")["status"] == "fail"


def rewrite_member(path, member, data):
    copy = path + ".tmp"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
        for info in source.infolist():
            target.writestr(info, data if info.filename == member else source.read(info))
    os.replace(copy, path)


def test_version_1_metadata_without_relations_fails(tmp_path):
    objs = objects()
    metadata = metadata_for(objs)
    del metadata["relations"]
    result = verify_archive(write_archive(tmp_path, metadata=metadata))
    assert failed(result) == {"metadata"}
    assert result["problems"] == ["in metadata.json, relations is missing"]
    assert check_of(result, "references")["status"] == "not_checkable"


@pytest.mark.parametrize(
    ("key", "value", "unchecked"),
    [
        ("relations", {"users.user": {"groups": "auth.group"}}, "references"),
        ("relations", ["users.user"], "references"),
        ("members", {FIXTURE: {"sha256": "x"}}, "member_checksums"),
        ("counts", {"users.user": "2"}, "counts"),
        ("file_fields", {"documents.document": "file"}, "media_files"),
    ],
)
def test_malformed_metadata_values_are_named_and_not_used(tmp_path, key, value, unchecked):
    objs = objects()
    path = write_archive(tmp_path, objs=objs)
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(archive.read(METADATA))
    metadata[key] = value
    rewrite_metadata(path, metadata)
    result = verify_archive(path)
    assert failed(result) == {"metadata"}
    assert result["problems"][0].startswith(f"in metadata.json, {key} is not ")
    assert check_of(result, unchecked)["status"] == "not_checkable"


# Archives the EDMS made itself

FOREIGN_METADATA = {
    "backup_type": "FULL",
    "created": "2026-01-01T13:00:29",
    "counts": {
        "users.user": 2,
        "documents.document": 2,
        "documents.documenttype": 1,
        "workflows.workflow": 1,
        "audit.audittrail": 1,
        "workflows.workflow_participants": 1,
    },
}


def foreign_directory(root, metadata=None):
    metadata = FOREIGN_METADATA if metadata is None else metadata
    root.mkdir()
    (root / FIXTURE).write_text(json.dumps(objects(), indent=2))
    (root / METADATA).write_text(json.dumps(metadata))
    for path, data in ((FILE1, b"1"), (FILE2, b"2")):
        (root / "media" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / "media" / path).write_bytes(data)
    return str(root)


def foreign_zip(path, directory):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for top, _dirs, files in os.walk(directory):
            for name in files:
                full = os.path.join(top, name)
                archive.write(full, os.path.relpath(full, directory))
    return str(path)


def test_a_foreign_directory_reports_what_it_cannot_check(tmp_path):
    directory = foreign_directory(tmp_path / "20260101_130029")
    result = verify_archive(directory, required_models=["users.user"])
    assert result["ok"], result["problems"]
    assert result["layout"] == "edms-native directory"
    assert statuses(result) == {
        "archive_opens": "pass",
        "member_names": "pass",
        "no_links": "pass",
        "no_bomb": "pass",
        "zip_crc": "not_checkable",
        "metadata": "pass",
        "member_checksums": "not_checkable",
        "fixture_parses": "pass",
        "object_structure": "pass",
        "counts": "pass",
        "unique_pks": "pass",
        "references": "not_checkable",
        "required_models": "pass",
        "media_files": "not_checkable",
    }
    assert check_of(result, "metadata")["detail"] == (
        "metadata.json is not this collection's; of what verification uses it gives counts"
    )
    assert check_of(result, "counts")["numbers"] == {
        "models": 5,
        "differing": 0,
        "not_compared": 1,
    }
    assert (
        "metadata does not say which fields are references"
        in (check_of(result, "references")["detail"])
    )


def test_a_foreign_zip_still_checks_counts_and_structure(tmp_path):
    metadata = dict(FOREIGN_METADATA, counts={"users.user": 3, "documents.document": 2})
    directory = foreign_directory(tmp_path / "dir", metadata)
    result = verify_archive(foreign_zip(tmp_path / "edms-backup.zip", directory))
    assert result["layout"] == "edms-native zip"
    assert statuses(result)["zip_crc"] == "pass"
    assert statuses(result)["required_models"] == "not_checkable"
    assert failed(result) == {"counts"}
    assert result["problems"] == [
        "object counts differ from metadata.json: users.user has 2 in the fixture, 3 in metadata"
    ]


def test_a_foreign_directory_without_metadata_fails_that_check_only(tmp_path):
    directory = foreign_directory(tmp_path / "dir")
    os.unlink(os.path.join(directory, METADATA))
    result = verify_archive(directory)
    assert failed(result) == {"metadata"}
    assert result["problems"] == ["metadata.json is missing"]
    assert statuses(result)["counts"] == "not_checkable"
    assert statuses(result)["unique_pks"] == "pass"


def test_a_foreign_fixture_may_leave_primary_keys_out_and_they_are_counted(tmp_path):
    # Django's use_natural_primary_keys: objects with a natural key carry no "pk".
    objs = objects()
    keyless = [
        {k: v for k, v in o.items() if k != "pk"} for o in objs if o["model"] == "users.user"
    ]
    rest = [o for o in objs if o["model"] != "users.user"]
    root = tmp_path / "20260101_130029"
    foreign_directory(root)
    (root / FIXTURE).write_text(json.dumps(keyless + rest, indent=2))
    result = verify_archive(str(root))
    assert result["ok"], result["problems"]
    structure = check_of(result, "object_structure")
    assert structure["numbers"]["keyless"] == len(keyless)
    assert "carry no primary key" in structure["detail"]
    assert result["fixture_counts"]["users.user"] == len(keyless)
    assert check_of(result, "counts")["status"] == "pass"


def test_this_collections_fixture_without_a_primary_key_is_malformed(tmp_path):
    objs = objects()
    objs[0] = {k: v for k, v in objs[0].items() if k != "pk"}
    path = write_archive(tmp_path, objs)
    result = verify_archive(path)
    assert "object_structure" in failed(result)
    assert "has no 'pk'" in check_of(result, "object_structure")["detail"]


def test_identical_objects_without_a_primary_key_are_duplicates(tmp_path):
    objs = objects()
    user = {k: v for k, v in objs[0].items() if k != "pk"}
    root = tmp_path / "20260101_130029"
    foreign_directory(root, dict(FOREIGN_METADATA, counts={}))
    (root / FIXTURE).write_text(json.dumps([user, dict(user), dict(user)], indent=2))
    result = verify_archive(str(root))
    assert failed(result) == {"unique_pks"}
    assert check_of(result, "unique_pks")["numbers"]["duplicates"] == 2
    assert "is the same as an earlier one (no primary key)" in result["problems"][0]
