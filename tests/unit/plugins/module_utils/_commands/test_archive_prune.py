"""Pruning a backup directory that someone else can write too."""

import os
from datetime import UTC, datetime, timedelta

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_prune import (
    PruneError,
    prune,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    record_status,
    status_path,
    verification_entry,
)

from .._format.test_catalogue import (
    forge_status,
    member_data_offset,
    rewrite_keeping_time,
    write_archive,
    zip_with,
)

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
NOTHING_BY_COUNT = {"keep_last": 0, "keep_daily": 0, "keep_weekly": 0}


def params(directory, **extra):
    return {
        "backup_dir": str(directory),
        "display_timezone": "UTC",
        "keep_last": 7,
        "keep_daily": 7,
        "keep_weekly": 4,
        "safety_labels": ["pre-restore safety"],
        "safety_min_age_days": 30,
        **extra,
    }


def day(number):
    return datetime(2026, 1, number, 3, 0, tzinfo=UTC)


def verified(path):
    record_status(path, "verification", verification_entry({"ok": True}))
    return path


def test_f1_a_forged_newest_verified_archive_does_not_let_the_genuine_one_go(tmp_path):
    """Only the newest verified archive is kept whatever the counts. A newer
    archive whose status file was forged (size and time right, ok: true, a
    made-up sha256) takes no slot: the genuine one stays, the forgery is
    pruned like any unverified archive and reported."""
    genuine = verified(write_archive(tmp_path, day(1)))
    forged = write_archive(tmp_path, day(2))
    forge_status(forged, sha256="0" * 64)
    result = prune(params(tmp_path, **NOTHING_BY_COUNT), now=NOW)
    assert os.path.exists(genuine)
    assert result["newest_verified"] == os.path.basename(genuine)
    assert result["deleted"] == [forged]
    assert not os.path.exists(forged)
    assert not os.path.exists(status_path(forged))
    assert [item["name"] for item in result["not_confirmed"]] == [os.path.basename(forged)]
    assert "0" * 64 in result["warnings"][0]


def test_f1_an_archive_replaced_under_its_verification_is_not_protected(tmp_path):
    genuine = verified(write_archive(tmp_path, day(1)))
    replaced = verified(write_archive(tmp_path, day(2)))
    start = member_data_offset(replaced, "database_backup.json")
    rewrite_keeping_time(replaced, lambda data: data.__setitem__(start, data[start] ^ 1))
    result = prune(params(tmp_path, **NOTHING_BY_COUNT), now=NOW, check_mode=True)
    assert result["newest_verified"] == os.path.basename(genuine)
    assert result["deleted"] == [replaced]
    assert os.path.exists(replaced)  # check mode


def test_f1_a_status_file_without_a_sha256_protects_nothing(tmp_path):
    genuine = verified(write_archive(tmp_path, day(1)))
    unconfirmed = write_archive(tmp_path, day(2))
    forge_status(unconfirmed)
    result = prune(params(tmp_path, **NOTHING_BY_COUNT), now=NOW, check_mode=True)
    assert result["newest_verified"] == os.path.basename(genuine)
    assert result["deleted"] == [unconfirmed]
    assert result["not_confirmed"] == []  # never claimed to have passed


def test_f6_unreadable_archives_do_not_stop_the_prune(tmp_path):
    kept = verified(write_archive(tmp_path, day(5)))
    rotten = verified(write_archive(tmp_path, day(4)))
    start = member_data_offset(rotten, "metadata.json")
    rewrite_keeping_time(rotten, lambda data: data.__setitem__(start, 0xFF))
    deep = zip_with(tmp_path, "edms_20260103T030000Z.zip", {"metadata.json": "[" * 100_000})
    odd = write_archive(tmp_path, day(2))
    with open(status_path(odd), "w", encoding="utf-8") as handle:
        handle.write("[1, 2]")
    bad_name = os.path.join(os.fsencode(str(tmp_path)), b"edms_20260101T030000Z\xff.zip")
    with open(bad_name, "wb") as handle:
        handle.write(b"PK")
    result = prune(params(tmp_path, keep_last=1, keep_daily=0, keep_weekly=0), now=NOW)
    assert result["newest_verified"] == os.path.basename(kept)
    assert sorted(result["deleted"]) == sorted([rotten, deep, odd])
    assert os.path.exists(bad_name)  # not this collection's until it is renamed
    assert result["not_pruned"] == ["edms_20260101T030000Z\\xff.zip"]


def test_a_failed_delete_says_which_and_what_was_done(tmp_path, monkeypatch):
    old = write_archive(tmp_path, day(1))
    write_archive(tmp_path, day(2))

    def refuse(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "unlink", refuse)
    with pytest.raises(PruneError, match=r"cannot delete archive .*Permission denied") as caught:
        prune(params(tmp_path, keep_last=1, keep_daily=0, keep_weekly=0), now=NOW)
    assert caught.value.partial["deleted"] == []
    monkeypatch.undo()
    assert os.path.exists(old)


def age(path, hours):
    when = (NOW - timedelta(hours=hours)).timestamp()
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def test_f14_interrupted_partial_files_of_the_collection_are_removed_after_an_hour(tmp_path):
    archive = "edms_20260110T100000Z_nightly.zip"
    ours = [
        tmp_path / f".{archive}.partial",  # ArchiveWriter
        tmp_path / f".{archive}.pgdump.partial",  # PgDumpSpool
        tmp_path / f".{archive}.sealed.partial",  # archive.seal, encrypting
        tmp_path / f".{archive}.status.json.0123abcd.partial",  # a status file
        tmp_path / ".20260101_130029.zip.status.json.0123abcd.partial",  # a native one's
        tmp_path / ".index.html.89abcdef.tmp",  # the catalogue page
    ]
    for path in ours:
        path.write_bytes(b"PK partial")
        age(path, 2)
    young = tmp_path / ".edms_20260110T113000Z.zip.partial"
    young.write_bytes(b"still being written")
    age(young, 0.5)
    foreign = tmp_path / ".someone-elses.partial"
    foreign.write_bytes(b"not ours")
    age(foreign, 48)
    target = tmp_path.parent / (tmp_path.name + "-target")
    target.write_bytes(b"not to be touched")
    link = tmp_path / ".edms_20260109T000000Z.zip.partial"
    link.symlink_to(target)
    age(link, 48)
    directory = tmp_path / ".edms_20260108T000000Z.zip.partial"
    directory.mkdir()
    age(directory, 48)

    planned = prune(params(tmp_path), now=NOW, check_mode=True)
    assert sorted(planned["partials_removed"]) == sorted(str(p) for p in ours)
    assert planned["changed"] is True
    assert all(path.exists() for path in ours)

    done = prune(params(tmp_path), now=NOW)
    assert done["partials_removed"] == planned["partials_removed"]
    assert not any(path.exists() for path in ours)
    assert young.exists()
    assert foreign.exists()
    assert directory.is_dir()
    assert link.is_symlink()
    assert target.read_bytes() == b"not to be touched"
    assert prune(params(tmp_path), now=NOW)["changed"] is False
