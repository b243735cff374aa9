"""Member names and sizes checked from the archive's directory alone, before
anything is read: work-directory names, '.' and empty components, names that
extract to one path, and an archive that expands too much as a whole."""

import json
import os
import re
import unicodedata
import zipfile

import pytest
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    ArchiveError,
    ArchiveReader,
    ArchiveWriter,
    member_name_problem,
)
from ansible_collections.edms.backup.plugins.module_utils._format.verification import (
    verify_archive,
)

from .test_archive import FILE1, FILE2, NAME, add_to_zip, check_of, failed, write_archive

WORK = "has a component starting with '.edms-restore-' (in some letter case)"


def unsafe(path):
    with ArchiveReader.open(path) as reader, pytest.raises(ArchiveError) as err:
        reader.check_safety()
    return str(err.value)


# Work-directory names


@pytest.mark.parametrize(
    "name",
    [
        "media/.edms-restore-0123456789ab/old/documents/a.pdf",
        "media/.edms-restore-X/old/a.pdf",
        "media/.edms-restore-0123456789ab/restore.token",
        "media/.EDMS-Restore-0123456789ab/old/a.pdf",  # a case-insensitive volume
        "media/documents/.edms-restore-x",  # deeper down too
        "media/.edms-restore-0123456789ab/",
        "media/\uff0eedms-restore-x/a",  # a compatibility form of '.'
    ],
)
def test_f4_a_member_named_like_a_work_directory_fails_before_anything_is_read(
    tmp_path, name, monkeypatch
):
    path = write_archive(tmp_path)
    add_to_zip(path, name, b"planted")
    assert member_name_problem(name).startswith(WORK)
    result = verify_archive(path)
    assert failed(result) == {"member_names"}
    assert result["problems"] == [f"member {name!r} {member_name_problem(name)}"]
    assert check_of(result, "zip_crc")["status"] == "not_checkable"  # nothing was read
    assert f"member {name!r} has a component starting with" in unsafe(path)


def test_f4_the_writer_refuses_a_work_directory_name(tmp_path):
    with (
        ArchiveWriter(str(tmp_path), NAME) as writer,
        pytest.raises(ValueError, match=re.escape(WORK)),
    ):
        writer.add_stream("media/.edms-restore-0123456789ab/old/a.pdf", b"x")


def test_names_that_only_resemble_a_work_directory_pass():
    for name in ("media/edms-restore-x", "media/.edms-restor", "media/a.edms-restore-x"):
        assert member_name_problem(name) is None


# '.' and empty components, names that extract to one path


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("media/./a", "has a '.' component"),
        ("./media/a", "has a '.' component"),
        ("media/a/.", "has a '.' component"),
        ("media/./", "has a '.' component"),
        ("media//a", "has an empty component (two '/' in a row, or a trailing one)"),
        ("media/a//", "has an empty component (two '/' in a row, or a trailing one)"),
    ],
)
def test_f13_dot_and_empty_components_are_refused(name, problem):
    assert member_name_problem(name) == problem


def test_a_directory_and_names_with_dots_in_them_pass():
    for name in ("media/a/", "media/.a", "media/a..b", "media/a./b"):
        assert member_name_problem(name) is None


def test_f13_media_a_media_dot_a_and_media_slash_slash_a_fail_verification(tmp_path):
    path = write_archive(tmp_path, media={"a": b"one", FILE1: b"one" * 100, FILE2: b"two" * 100})
    add_to_zip(path, "media/./a", b"two")
    add_to_zip(path, "media//a", b"three")
    result = verify_archive(path)
    assert failed(result) == {"member_names"}
    assert result["problems"][0] == (
        "member 'media/./a' has a '.' component; member 'media//a' has an empty component "
        "(two '/' in a row, or a trailing one)"
    )
    assert "member 'media/./a'" in unsafe(path)


def test_f13_names_equal_after_unicode_normalisation_fail_verification(tmp_path):
    composed = unicodedata.normalize("NFC", "media/Bericht-\u00e9.pdf")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    path = write_archive(tmp_path)
    add_to_zip(path, composed, b"one")
    add_to_zip(path, decomposed, b"two")
    result = verify_archive(path)
    assert failed(result) == {"member_names"}
    assert result["problems"] == [
        f"member {decomposed!r} extracts to the same path as member {composed!r}"
        " (equal once normalised to Unicode NFC, a directory's '/' left off)"
    ]
    assert "extracts to the same path" in unsafe(path)


def test_f13_a_file_where_another_member_has_a_directory_fails(tmp_path):
    path = write_archive(tmp_path)
    add_to_zip(path, "media/documents", b"a file")  # FILE1 is under media/documents/
    add_to_zip(path, "media/x/", b"")
    add_to_zip(path, "media/x", b"a file and a directory entry of one name")
    result = verify_archive(path)
    assert failed(result) == {"member_names"}
    problems = check_of(result, "member_names")["items"]
    assert problems == [
        "member 'media/x' extracts to the same path as member 'media/x/'"
        " (equal once normalised to Unicode NFC, a directory's '/' left off)",
        "member 'media/documents' is a file, and a directory of other members",
    ]


def test_an_archive_of_names_differing_only_in_case_verifies(tmp_path):
    # What a backup of a case-sensitive media root holding both makes.
    media = {FILE1: b"one" * 100, FILE2: b"two" * 100, "A.pdf": b"upper", "a.pdf": b"lower"}
    result = verify_archive(write_archive(tmp_path, media=media))
    assert result["ok"], result["problems"]
    assert check_of(result, "member_names")["status"] == "pass"


def test_an_archive_with_directory_entries_still_verifies(tmp_path):
    # Foreign ZIP tools write an entry per directory.
    path = write_archive(tmp_path)
    for directory in ("media/", "media/documents/", "media/documents/2025/"):
        add_to_zip(path, directory, b"")
    result = verify_archive(path)
    assert check_of(result, "member_names")["status"] == "pass", result["problems"]


# The archive as a whole


def test_f11_many_small_members_that_each_pass_fail_together(tmp_path):
    # Each member is 1 MiB, at the per-member threshold; 24 of them expand
    # about a thousand times from a few KB.
    path = write_archive(tmp_path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        for number in range(24):
            archive.writestr(f"media/zeros/{number}.bin", bytes(1 << 20))
    result = verify_archive(path)
    assert failed(result) == {"no_bomb"}
    bomb = check_of(result, "no_bomb")
    assert bomb["numbers"]["highest_ratio"] > 200  # the members, one by one, ...
    assert not any(line.startswith("member ") for line in bomb["items"])  # ... pass
    assert len(result["problems"]) == 1
    problem = result["problems"][0]
    assert problem.startswith(f"the members add up to {bomb['numbers']['bytes']} bytes from ")
    assert problem.endswith(":1, over the 100:1 limit for a whole archive)")
    assert bomb["numbers"]["archive_ratio"] > 100
    assert check_of(result, "zip_crc")["status"] == "not_checkable"  # nothing was read
    assert "over the 100:1 limit for a whole archive" in unsafe(path)
    # The limit is a parameter like the others.
    assert "no_bomb" not in failed(verify_archive(path, max_archive_ratio=5000))


def repetitive_fixture(rows):
    """A fixture as repetitive as real ones get (an admin log: about 30:1)."""
    objects = [
        {
            "model": "admin.logentry",
            "pk": number,
            "fields": {
                "action_time": f"2026-01-01T13:00:{number % 60:02d}.123Z",
                "user": 1,
                "content_type": 7,
                "object_id": str(number % 100),
                "object_repr": f"Document object ({number % 100})",
                "action_flag": 2,
                "change_message": '[{"changed": {"fields": ["Title"]}}]',
            },
        }
        for number in range(rows)
    ]
    return ("[\n" + ",\n".join(json.dumps(obj) for obj in objects) + "\n]\n").encode()


def test_real_archives_pass_the_whole_archive_limit(tmp_path):
    fixture = repetitive_fixture(20000)
    assert len(fixture) > 1 << 20
    # Fixture only (an application without media), and with media that do
    # not compress (stored).
    media = {FILE1: os.urandom(1 << 20), FILE2: b"two" * 100}
    for directory, files, ratios in (("bare", {}, (20, 50)), ("media", media, (1, 10))):
        (tmp_path / directory).mkdir()
        path = write_archive(tmp_path / directory, media=files, fixture=fixture)
        bomb = check_of(verify_archive(path), "no_bomb")
        assert bomb["status"] == "pass", bomb["detail"]
        assert ratios[0] < bomb["numbers"]["archive_ratio"] < ratios[1]
        assert bomb["detail"].endswith("nor the archive as a whole more than 100:1")
        with ArchiveReader.open(path) as reader:
            reader.check_safety()
