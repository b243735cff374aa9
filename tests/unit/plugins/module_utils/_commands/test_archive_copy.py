"""archive_copy: a copy counts only once it verifies where it landed; a damaged
copy is removed, a file that is not this collection's copy is never touched."""

import os
import shutil
from datetime import UTC, datetime

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands import (
    archive_copy as archive_copy_module,
)
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_copy import (
    CopyError,
    copy,
    partial_path,
)
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_prune import prune
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    list_archives,
    read_status,
    record_status,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256

from .._format.test_archive import objects
from .._format.test_archive import write_archive as write_verifiable
from .test_archive_catalogue import verified, write_archive
from .test_archive_prune import params as prune_params

NOW = datetime(2026, 1, 2, 8, 0, 0, tzinfo=UTC)


@pytest.fixture
def source(tmp_path):
    directory = tmp_path / "source"
    directory.mkdir()
    # An archive that passes every check of the verification.
    return verified(write_verifiable(directory))


@pytest.fixture
def destination(tmp_path):
    directory = tmp_path / "destination"
    directory.mkdir(mode=0o700)
    return str(directory)


def present(destination, source, **extra):
    params = {
        "state": "present",
        "backup_dir": destination,
        "display_timezone": "UTC",
        "name": os.path.basename(source),
        "sha256": file_sha256(source),
        "destination": "offsite",
        "source_host": "staging",
        "source_path": source,
        "archive": None,
        "kind": None,
        "location": None,
    }
    params.update(extra)
    return params


def receive(destination, source, data=None):
    """What the transfer does: the bytes under the partial name."""
    target = partial_path(destination, os.path.basename(source))
    if data is None:
        shutil.copyfile(source, target)
    else:
        with open(target, "wb") as handle:
            handle.write(data)
    return target


def test_nothing_there_is_reported_and_nothing_made(destination, source):
    result = copy(present(destination, source), now=NOW)
    assert (result["present"], result["changed"], result["directory"]) == (False, False, True)
    assert os.listdir(destination) == []


def test_a_missing_directory_is_reported_not_made(tmp_path, source):
    missing = str(tmp_path / "not-yet")
    result = copy(present(missing, source), now=NOW)
    assert (result["present"], result["directory"]) == (False, False)
    assert not os.path.exists(missing)


def test_a_received_copy_that_verifies_is_put_in_place_with_its_record(destination, source):
    receive(destination, source)
    result = copy(present(destination, source), now=NOW)
    assert (result["present"], result["copied"], result["changed"]) == (True, True, True)
    path = os.path.join(destination, os.path.basename(source))
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert not os.path.exists(partial_path(destination, os.path.basename(source)))
    status = read_status(path)
    assert status["verification"]["ok"] is True
    assert status["copy_of"]["source_host"] == "staging"
    assert status["copy_of"]["source_sha256"] == file_sha256(source)
    # The destination's own catalogue counts it as verified, so its retention
    # never prunes its newest verified copy.
    assert list_archives(destination, "UTC")["newest_verified"]["name"] == os.path.basename(source)
    again = copy(present(destination, source), now=NOW)
    assert (again["present"], again["copied"], again["changed"]) == (True, False, False)


def test_a_received_copy_with_other_bytes_is_removed_and_the_task_fails(destination, source):
    with open(source, "rb") as handle:
        data = bytearray(handle.read())
    data[len(data) // 2] ^= 0xFF
    partial = receive(destination, source, bytes(data))
    with pytest.raises(CopyError, match=r"destination offsite: the copy of .* does not verify"):
        copy(present(destination, source), now=NOW)
    assert not os.path.exists(partial)
    assert os.listdir(destination) == []


def test_a_received_copy_of_another_archive_is_refused_by_its_sha256(destination, source, tmp_path):
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = write_verifiable(other_dir, objects()[:-1])
    with open(other, "rb") as handle:
        receive(destination, source, handle.read())
    with pytest.raises(CopyError, match="not the source's"):
        copy(present(destination, source), now=NOW)
    assert os.listdir(destination) == []


def test_a_copy_damaged_in_place_is_removed_with_its_status(destination, source):
    receive(destination, source)
    copy(present(destination, source), now=NOW)
    path = os.path.join(destination, os.path.basename(source))
    with open(path, "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CopyError, match="no longer verifies") as failure:
        copy(present(destination, source), now=NOW)
    assert failure.value.partial["removed"] == [path]
    assert os.listdir(destination) == []


def test_a_file_that_is_not_our_copy_of_this_archive_is_never_touched(destination, source):
    path = os.path.join(destination, os.path.basename(source))
    with open(path, "wb") as handle:
        handle.write(b"someone else's file")
    receive(destination, source)
    with pytest.raises(CopyError, match="is not a copy of this archive"):
        copy(present(destination, source), now=NOW)
    with open(path, "rb") as handle:
        assert handle.read() == b"someone else's file"


def test_a_copy_of_another_host_under_the_same_name_is_never_touched(destination, source):
    receive(destination, source)
    copy(present(destination, source, source_host="production"), now=NOW)
    path = os.path.join(destination, os.path.basename(source))
    before = file_sha256(path)
    with pytest.raises(CopyError, match="is not a copy of this archive"):
        copy(present(destination, source), now=NOW)
    assert file_sha256(path) == before


def test_a_link_at_the_destination_is_neither_followed_nor_replaced(destination, source, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    os.symlink(target, os.path.join(destination, os.path.basename(source)))
    with pytest.raises(CopyError, match="is not a regular file"):
        copy(present(destination, source), now=NOW)
    assert target.read_bytes() == b"keep"


def test_a_destination_directory_that_is_a_link_is_refused(tmp_path, source):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    os.symlink(real, link)
    with pytest.raises(CopyError, match="is not a directory"):
        copy(present(str(link), source), now=NOW)


@pytest.mark.parametrize(
    "name", ["../edms_20260101T130029Z.zip", "edms_20260101T130029Z.zip/x", "notes.txt", ""]
)
def test_a_name_that_is_not_an_archive_name_is_refused(destination, source, name):
    with pytest.raises(CopyError, match="is not the name of an archive"):
        copy(present(destination, source, name=name), now=NOW)


def test_a_sha256_that_is_not_one_is_refused(destination, source):
    with pytest.raises(CopyError, match="is not a sha256"):
        copy(present(destination, source, sha256="ABC"), now=NOW)


def recorded(source, **extra):
    params = {
        "state": "recorded",
        "backup_dir": None,
        "display_timezone": "UTC",
        "name": None,
        "sha256": file_sha256(source),
        "destination": "offsite",
        "source_host": None,
        "source_path": None,
        "archive": source,
        "kind": "host",
        "location": "backup-host:/srv/copies/x.zip",
    }
    params.update(extra)
    return params


def test_a_recorded_copy_is_listed_with_the_archive_and_recording_twice_changes_nothing(source):
    assert copy(recorded(source), now=NOW)["changed"] is True
    entry = list_archives(os.path.dirname(source), "UTC")["archives"][0]
    assert entry["copies"] == [
        {
            "destination": "offsite",
            "kind": "host",
            "location": "backup-host:/srv/copies/x.zip",
            "at": "2026-01-02T08:00:00.000000Z",
        }
    ]
    assert copy(recorded(source), now=NOW)["changed"] is False
    copy(recorded(source, destination="controller", kind="controller", location="c:/x"), now=NOW)
    entry = list_archives(os.path.dirname(source), "UTC")["archives"][0]
    assert [c["destination"] for c in entry["copies"]] == ["controller", "offsite"]
    # The verification is kept beside the copies.
    assert entry["verification"]["state"] == "passed"


def test_copies_recorded_before_the_archive_changed_are_not_listed(source):
    copy(recorded(source), now=NOW)
    with open(source, "ab") as handle:
        handle.write(b"x")
    entry = list_archives(os.path.dirname(source), "UTC")["archives"][0]
    assert entry["copies"] == []


def test_a_copy_is_not_recorded_for_an_archive_whose_sha256_changed(source):
    with pytest.raises(CopyError, match="changed while it was copied"):
        copy(recorded(source, sha256="0" * 64), now=NOW)
    assert "copies" not in read_status(source)


def test_a_copy_its_destination_pruned_is_forgotten_and_the_others_stay(source):
    copy(recorded(source), now=NOW)
    copy(recorded(source, destination="controller", kind="controller", location="c:/x"), now=NOW)
    forget = recorded(source, state="forgotten", sha256=None, kind=None, location=None)
    assert copy(forget, now=NOW)["changed"] is True
    entry = list_archives(os.path.dirname(source), "UTC")["archives"][0]
    assert [c["destination"] for c in entry["copies"]] == ["controller"]
    assert copy(forget, now=NOW)["changed"] is False


def test_forgetting_a_copy_of_an_archive_that_is_gone_changes_nothing(tmp_path):
    params = {
        "state": "forgotten",
        "archive": str(tmp_path / "edms_20260101T130029Z.zip"),
        "destination": "offsite",
    }
    assert copy(params, now=NOW) == {"changed": False, "copies": {}}


def test_a_partial_replaced_while_it_is_verified_is_not_put_in_place(
    destination, source, monkeypatch
):
    partial = receive(destination, source)
    real = archive_copy_module.verify_pinned

    def verify_then_swap(path, **options):
        found = real(path, **options)
        swapped = partial + ".other"
        with open(swapped, "wb") as handle:
            handle.write(b"not the archive verified")
        os.replace(swapped, partial)
        return found

    monkeypatch.setattr(archive_copy_module, "verify_pinned", verify_then_swap)
    with pytest.raises(CopyError, match="was replaced while it was verified"):
        copy(present(destination, source), now=NOW)
    assert not os.path.exists(os.path.join(destination, os.path.basename(source)))


def test_a_destinations_prune_deletes_only_this_hosts_copies_and_never_the_one_protected(
    tmp_path,
):
    destination = tmp_path / "shared"
    destination.mkdir()
    names = {}
    for number, host in ((1, "staging"), (2, "staging"), (3, "production"), (4, "staging")):
        path = verified(write_archive(destination, number, {"users.user": 1}))
        record_status(path, "copy_of", {"source_host": host})
        names[number] = os.path.basename(path)
    result = prune(
        prune_params(
            destination,
            keep_last=1,
            keep_daily=0,
            keep_weekly=0,
            copies_of="staging",
            protect=[names[1]],
        ),
        now=datetime(2026, 2, 1, tzinfo=UTC),
    )
    left = sorted(n for n in os.listdir(destination) if n.endswith(".zip"))
    # staging's second goes; its first is protected, its fourth the newest;
    # production's copy is not staging's to prune.
    assert left == sorted([names[1], names[3], names[4]])
    assert names[3] in result["not_pruned"]
