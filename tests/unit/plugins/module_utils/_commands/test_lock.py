import contextlib
import json
import os
import signal
import socket
import time

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.lock import (
    LockError,
    acquire,
    lock_path,
    release,
    status,
)


def wait_gone(pid, seconds=5):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # The holder is not our child once detached, but reap it if it is.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    return False


@pytest.fixture
def held(tmp_path):
    info = acquire(str(tmp_path), "AWX job 7", "restore", max_hold=60)
    yield info
    if os.path.exists(info["path"]):
        release(str(tmp_path), info["token"])


def test_the_lock_names_owner_operation_host_pid_and_start(held, tmp_path):
    with open(lock_path(str(tmp_path)), encoding="utf-8") as handle:
        on_disk = json.load(handle)
    assert on_disk["owner"] == "AWX job 7"
    assert on_disk["operation"] == "restore"
    assert on_disk["host"] == socket.gethostname()
    assert on_disk["pid"] == held["pid"]
    assert on_disk["started_at"].endswith("Z")
    assert oct(os.stat(held["path"]).st_mode & 0o777) == "0o600"
    assert status(str(tmp_path))["locked"] is True
    assert status(str(tmp_path))["stale"] is False


def test_a_second_taker_is_refused_with_who_holds_it(held, tmp_path):
    with pytest.raises(LockError) as refused:
        acquire(str(tmp_path), "someone else", "backup", max_hold=60)
    message = str(refused.value)
    assert message.startswith("another operation is running: AWX job 7 holds")
    assert f"holder pid {held['pid']} on {socket.gethostname()}" in message
    assert refused.value.partial["stale"] is False


def test_a_lock_whose_holder_is_gone_is_stale_and_kept(held, tmp_path):
    os.kill(held["pid"], signal.SIGKILL)
    assert wait_gone(held["pid"])
    assert status(str(tmp_path))["stale"] is True
    with pytest.raises(LockError) as refused:
        acquire(str(tmp_path), "someone else", "backup", max_hold=60)
    assert str(refused.value).startswith("stale lock: AWX job 7 holds")
    assert str(refused.value).endswith(f"remove the lock: rm {held['path']}")
    assert os.path.exists(held["path"])  # never broken silently


def test_release_ends_the_holder_and_only_with_the_token(held, tmp_path):
    with pytest.raises(LockError, match="not releasing"):
        release(str(tmp_path), "wrong-token")
    assert release(str(tmp_path), held["token"]) is True
    assert not os.path.exists(held["path"])
    assert wait_gone(held["pid"])
    assert release(str(tmp_path), held["token"]) is False  # nothing left to release


def test_a_missing_project_dir_is_named(tmp_path):
    with pytest.raises(LockError, match=r"project directory .* does not exist"):
        acquire(str(tmp_path / "nope"), "me", "backup", max_hold=5)
