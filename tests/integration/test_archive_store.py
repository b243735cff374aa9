"""The collection's archives live where the application cannot write, on the demo stack.

The application's own backup directory (the host side of the backend's
BACKUP_DIR mount) is the application's to write: an archive there could be
deleted, replaced by a self-consistent forgery, or given a forged status
file. The collection writes its archives into edms_archive_dir instead, and
preflight's archive_store check fails on a directory the application can
reach or another user can replace.
"""

import json
import os
import shutil
import tempfile

import pytest

from .conftest import RUN, run, run_module, run_playbook

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}
BACKUP_DIR = os.path.join(RUN, "backups")


def preflight(archive_dir, **args):
    rc, result = run_module(
        "preflight_info",
        {**PROJECT, "backup_dir": BACKUP_DIR, "archive_dir": archive_dir, **args},
    )
    assert rc == 0, result.get("msg")
    return [f for f in result["findings"] if f["check"] == "archive_store"], result


def container_mounts():
    """The host directory of every mount of every container of the demo project."""
    ids = run(
        ["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=edms-demo"]
    ).stdout.split()
    sources = []
    for container in ids:
        mounts = json.loads(run(["docker", "inspect", "-f", "{{json .Mounts}}", container]).stdout)
        sources += [m["Source"] for m in mounts if m.get("Source", "").startswith("/")]
    return sources


@pytest.fixture
def archive_dir(stack):
    parent = tempfile.mkdtemp(prefix="edms-archive-store-")
    yield os.path.join(parent, "archives")
    shutil.rmtree(parent, ignore_errors=True)


def test_f1_the_backup_writes_where_no_container_can_reach(archive_dir):
    proc = run_playbook("backup.yml", {"edms_archive_dir": archive_dir})
    assert proc.returncode == 0, proc.stdout[-3000:]
    # Made by the backup, private to the user that runs it.
    info = os.stat(archive_dir)
    assert oct(info.st_mode & 0o777) == "0o700"
    assert info.st_uid == os.geteuid()
    (name,) = [n for n in os.listdir(archive_dir) if n.endswith(".zip")]
    archive = os.path.join(archive_dir, name)
    for source in container_mounts():
        assert not (archive + "/").startswith(source.rstrip("/") + "/"), source
    # Nothing of it in the application's own backup directory.
    assert not os.path.exists(os.path.join(BACKUP_DIR, name))
    assert "OK archive_store: the archive directory" in proc.stdout


def test_f1_preflight_refuses_an_archive_dir_the_application_can_reach(archive_dir):
    os.makedirs(archive_dir, mode=0o700)
    ok, _result = preflight(archive_dir)
    assert [f["severity"] for f in ok] == ["ok"], ok

    # Inside the application's backup directory (BACKUP_DIR's host side).
    inside = os.path.join(BACKUP_DIR, "collection-archives")
    (found,), _result = preflight(inside)
    assert found["severity"] == "error"
    assert "application's backup directory" in found["message"]
    assert not os.path.exists(inside)  # preflight changes nothing

    # Inside a directory mounted into a container (the media volume).
    (media,) = [
        m
        for m in json.loads(
            run(["docker", "inspect", "-f", "{{json .Mounts}}", "edms_demo_backend"]).stdout
        )
        if m["Destination"] == "/app/storage/media"
    ]
    in_volume = os.path.join(media["Source"], "archives")
    (found,), _result = preflight(in_volume)
    assert found["severity"] == "error"
    assert (
        f"it is mounted into the backend service's container ({media['Source']} at"
        " /app/storage/media, read-write)" in found["message"]
    )

    # Writable by group or others, or owned by another user.
    os.chmod(archive_dir, 0o770)
    (found,), _result = preflight(archive_dir)
    assert found["severity"] == "error"
    assert "mode 0770 lets group or others write it" in found["message"]
    os.chmod(archive_dir, 0o700)
    os.chown(archive_dir, 1000, 1000)
    (found,), _result = preflight(archive_dir)
    assert found["severity"] == "error"
    assert "it is owned by" in found["message"]
    os.chown(archive_dir, 0, 0)

    # A link, or below a directory everyone may write without the sticky bit.
    link = archive_dir + "-link"
    os.symlink(archive_dir, link)
    (found,), _result = preflight(link)
    assert "it is a symbolic link" in found["message"]
    parent = os.path.dirname(archive_dir)
    os.chmod(parent, 0o777)
    try:
        (found,), _result = preflight(archive_dir)
        assert f"{parent}, above it, is writable by everyone" in found["message"]
    finally:
        os.chmod(parent, 0o700)


def test_f1_the_backup_playbook_stops_before_writing_into_the_applications_directory(stack):
    inside = os.path.join(BACKUP_DIR, "collection-archives")
    before = set(os.listdir(BACKUP_DIR))
    proc = run_playbook("backup.yml", {"edms_archive_dir": inside})
    assert proc.returncode != 0
    assert "archive_store" in proc.stdout
    assert "TASK [edms.backup.backup : Take the backup]" not in proc.stdout
    assert set(os.listdir(BACKUP_DIR)) == before


def test_f1_without_an_archive_dir_preflight_warns_that_the_application_can_write_them(stack):
    rc, result = run_module("preflight_info", {**PROJECT, "backup_dir": BACKUP_DIR})
    assert rc == 0, result.get("msg")
    (found,) = [f for f in result["findings"] if f["check"] == "archive_store"]
    assert found["severity"] == "warning"
    assert "which the backend can write" in found["message"]
