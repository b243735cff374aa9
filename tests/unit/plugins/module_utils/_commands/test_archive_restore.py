"""Pure logic of the restore: media lists, the media tar, primary-key digests, service choice."""

import io
import json
import subprocess
import sys
import tarfile
import zipfile

import pytest
from ansible_collections.edms.backup.plugins.module_utils._backend import media
from ansible_collections.edms.backup.plugins.module_utils._backend.digest import (
    digest_text,
    key_hash,
    pk_digest,
)
from ansible_collections.edms.backup.plugins.module_utils._commands.compose_services import (
    ServicesError,
    choose,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.media import (
    archive_media,
    media_differences,
    media_tar,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import ArchiveReader
from ansible_collections.edms.backup.plugins.module_utils._platform.compose import ServiceState
from ansible_collections.edms.backup.plugins.module_utils._platform.django import backend_program


def test_archive_media_takes_only_media_members():
    metadata = {
        "members": {
            "database_backup.json": {"sha256": "f", "size": 1},
            "media/a/b.bin": {"sha256": "1", "size": 2},
            "media/c.txt": {"sha256": "2", "size": 3},
        }
    }
    assert archive_media(metadata) == {"a/b.bin": "1", "c.txt": "2"}


def test_media_differences_name_missing_extra_and_changed_files():
    expected = {"a": "1", "b": "2", "c": "3"}
    found = {"a": "1", "b": "X", "d": "4"}
    assert media_differences(expected, expected) == []
    lines = media_differences(expected, found)
    assert lines == [
        "1 file(s) missing: c",
        "1 file(s) not in the archive: d",
        "1 file(s) different: b",
    ]


def archive_with(tmp_path, members):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


def test_the_media_tar_puts_owned_directories_before_their_files(tmp_path):
    path = archive_with(tmp_path, {"media/x/y/one.bin": b"1" * 700, "media/top.txt": b"top"})
    with ArchiveReader.open(path) as archive:
        names = ["media/top.txt", "media/x/y/one.bin"]
        data = b"".join(media_tar(archive, names, 1000, 1001))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["new/top.txt", "new/x", "new/x/y", "new/x/y/one.bin"]
        assert {(m.uid, m.gid) for m in members} == {(1000, 1001)}
        assert [m.isdir() for m in members] == [False, True, True, False]
        assert tar.extractfile("new/x/y/one.bin").read() == b"1" * 700


def test_the_primary_key_digest_ignores_order_and_tells_other_keys_apart():
    uuids = ["6f1c2a9e-0000-4000-8000-000000000001", "6f1c2a9e-0000-4000-8000-000000000002"]
    # the fixture's JSON integers and the database's integers digest alike
    assert pk_digest([1, 2]) == pk_digest([2, 1]) == pk_digest(["2", "1"])
    assert pk_digest(uuids) == pk_digest(list(reversed(uuids)))
    assert pk_digest(uuids)[0] == 2
    assert pk_digest([1, 2]) != pk_digest([1, 3])
    assert pk_digest([]) == digest_text(0, 0)
    # the running sums the load keeps while reading give the same digest
    assert digest_text(2, key_hash(uuids[1]) + key_hash(uuids[0])) == pk_digest(uuids)


SERVICES = {
    "db": ServiceState("db", "1", state="running"),
    "backend": ServiceState("backend", "2", state="running"),
    "worker": ServiceState("worker", "3", state="running"),
    "frontend": ServiceState("frontend", "4", state="exited"),
}
PARAMS = {"backend_service": "backend", "db_service": "db", "services": None}


def test_by_default_every_running_service_but_backend_and_db_is_chosen():
    assert choose(PARAMS, SERVICES) == ["worker"]


def test_backend_db_and_unknown_services_are_refused_by_name():
    with pytest.raises(ServicesError, match="db run the restore"):
        choose({**PARAMS, "services": ["worker", "db"]}, SERVICES)
    with pytest.raises(ServicesError, match="services celery are not services of the project"):
        choose({**PARAMS, "services": ["celery"]}, SERVICES)
    assert choose({**PARAMS, "services": ["frontend"]}, SERVICES) == ["frontend"]
    # A comma-separated answer with spaces ("frontend, worker") names both.
    assert choose({**PARAMS, "services": ["frontend", " worker"]}, SERVICES) == [
        "frontend",
        "worker",
    ]


def media_script(request):
    proc = subprocess.run(
        [sys.executable, "-c", backend_program(media), json.dumps(request)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def tree(root):
    return sorted(
        str(p.relative_to(root)) + ("/" if p.is_dir() else "=" + p.read_text())
        for p in root.rglob("*")
    )


def test_the_swap_moves_everything_and_a_failure_halfway_moves_it_all_back(tmp_path):
    root = tmp_path / "media"
    (root / "documents").mkdir(parents=True)
    (root / "documents" / "old.bin").write_text("old")
    (root / "top.txt").write_text("old top")
    before = tree(root)
    work = str(root / ".edms-restore-0123456789ab")
    media_script({"action": "prepare", "root": str(root), "work": work})
    new = root / ".edms-restore-0123456789ab" / "new"
    for name in ("a", "b", "c"):
        (new / name).mkdir()
        (new / name / "f.bin").write_text(name)
    failed = media_script(
        {"action": "swap", "root": str(root), "work": work, "fail_at": "media_swap"}
    )
    assert failed["undone"] is True
    assert "injected failure" in failed["error"]
    assert failed["moved_in"] == 1
    assert [line for line in tree(root) if not line.startswith(".edms")] == [
        line for line in before if not line.startswith(".edms")
    ]
    assert not (root / ".edms-restore-0123456789ab" / "old").exists()
    swapped = media_script({"action": "swap", "root": str(root), "work": work})
    assert swapped == {"moved_out": 2, "moved_in": 3}
    hashes = media_script({"action": "hashes", "root": str(root)})["hashes"]
    assert sorted(hashes) == ["a/f.bin", "b/f.bin", "c/f.bin"]
    back = media_script({"action": "putback", "root": str(root), "work": work})
    assert back["previous"] is True
    assert back["discarded"] == work + "/discarded"
    assert media_script({"action": "finish", "root": str(root), "work": work})["removed"]
    assert tree(root) == [line for line in before if not line.startswith(".edms")]
    assert media_script({"action": "leftovers", "root": str(root)}) == {
        "leftovers": [],
        "unrecognised": [],
    }
