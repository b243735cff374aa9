"""Clearing a lock no run will clear (playbooks/unlock.yml), recorded in the
lock history beside it; refused while its run is there or when it holds the
record of a restore that died (that is the recovery's)."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import time

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.lock import (
    HISTORY_NAME,
    LockError,
    acquire,
    clear,
    fingerprint,
    lock_path,
    process,
    read_lock,
    release,
    start_holder,
)

TOKEN = "f" * 32
JOURNAL = {
    "operation": "restore",
    "archive": "/srv/edms-archives/edms-backup-20261201T100000Z.zip",
    "stage": "replacing",
    "services": ["backend"],
    "safety": "/srv/edms-archives/edms-backup-20261204T030000Z.zip",
    "safety_sha256": "a" * 64,
    "token": "0123456789ab",
}


def dead_pid():
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def plant(tmp_path, **fields):
    info = {
        "owner": "AWX job 3",
        "operation": "restore",
        "host": socket.gethostname(),
        "started_at": "2026-12-01T10:00:00Z",
        "expires_at": "2026-12-03T10:00:00Z",
        "pid": dead_pid(),
        "token": TOKEN,
    }
    info.update(fields)
    path = lock_path(str(tmp_path))
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    os.chmod(path, 0o600)
    return info


def history(tmp_path):
    with open(tmp_path / HISTORY_NAME, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"


def wait_gone(pid, seconds=5):
    deadline = time.time() + seconds
    while time.time() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not running(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def holder():
    """A live holder process carrying TOKEN; its anchor: this test's process
    (a run that is still there), or none."""
    started = []

    def start(anchor=None):
        proc = start_holder(TOKEN, anchor, 60, "test holder", poll=0.2)
        deadline = time.time() + 5
        while time.time() < deadline:
            with contextlib.suppress(OSError), open(f"/proc/{proc.pid}/environ", "rb") as handle:
                if f"EDMS_BACKUP_LOCK={TOKEN}".encode() in handle.read():
                    break
            time.sleep(0.01)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def my_anchor():
    me = process(os.getpid())
    return {"pid": me["pid"], "start": me["start"], "kind": "pytest", "command": "pytest"}


def test_a_lock_whose_holder_and_run_are_both_there_is_refused_saying_until_when(tmp_path, holder):
    proc = holder(my_anchor())
    planted = plant(tmp_path, pid=proc.pid, anchor=my_anchor())
    for check_mode in (True, False):
        with pytest.raises(LockError) as refused:
            clear(str(tmp_path), "jdoe", reason="stuck", check_mode=check_mode)
        text = str(refused.value)
        assert text.startswith("not clearing: AWX job 3 holds")
        assert "and the run that took it (pytest, pid" in text
        assert "still there, with the lock's holder" in text
        assert "at 2026-12-03T10:00:00Z at the latest." in text
        assert text.endswith("Nothing was changed")
        assert TOKEN not in text + json.dumps(refused.value.partial)
    assert running(proc.pid)
    assert read_lock(lock_path(str(tmp_path))) == planted
    assert os.listdir(tmp_path) == [".edms-backup.lock"]


def test_a_lock_with_an_unfinished_journal_is_the_recoverys_to_clear(tmp_path):
    planted = plant(tmp_path, anchor={"pid": dead_pid(), "start": "1"}, journal=JOURNAL)
    for check_mode in (True, False):
        with pytest.raises(LockError) as refused:
            clear(str(tmp_path), "jdoe", host_name="edms-demo", check_mode=check_mode)
        text = str(refused.value)
        assert "cleared by the recovery alone" in text
        assert "playbooks/recover.yml -e edms_restore_confirm=edms-demo" in text
        assert (
            "(installed collection: edms.backup.recover; AWX: the job template EDMS Recover)"
            in (text)
        )
        assert "edms_recover_stale" not in text  # provably dead: the plain recovery takes it
        assert "Do not remove the lock by hand" in text
        assert "unlock" not in text
        assert refused.value.partial["unfinished"] == JOURNAL
    # No run recorded: the recovery needs the operator's word, and says so.
    plant(tmp_path, journal=JOURNAL)
    with pytest.raises(LockError, match="-e edms_recover_stale=true"):
        clear(str(tmp_path), "jdoe", host_name="edms-demo")
    assert read_lock(lock_path(str(tmp_path)))["journal"] == planted["journal"]
    assert os.listdir(tmp_path) == [".edms-backup.lock"]


def test_check_mode_says_what_it_would_clear_and_changes_nothing(tmp_path):
    planted = plant(tmp_path)
    before = sorted(os.listdir(tmp_path))
    found = clear(str(tmp_path), "jdoe", reason="why", check_mode=True)
    assert found["cleared"] == {k: v for k, v in planted.items() if k != "token"}
    assert found["holder"] == "gone"
    assert found["fingerprint"] == fingerprint(planted)
    assert found["history"] == str(tmp_path / HISTORY_NAME)
    assert sorted(os.listdir(tmp_path)) == before
    assert read_lock(lock_path(str(tmp_path))) == planted


def test_a_stale_lock_is_cleared_and_recorded_without_its_token(tmp_path):
    planted = plant(tmp_path)
    found = clear(str(tmp_path), "jdoe via ansible", reason="controller VM restored")
    assert not os.path.exists(lock_path(str(tmp_path)))
    assert found["holder_ended"] is False
    (entry,) = history(tmp_path)
    assert entry["event"] == "cleared"
    assert entry["by"] == "jdoe via ansible"
    assert entry["reason"] == "controller VM restored"
    assert entry["at"].endswith("Z")
    assert entry["holder"] == "gone"
    assert entry["lock"] == {k: v for k, v in planted.items() if k != "token"}
    with open(tmp_path / HISTORY_NAME, encoding="utf-8") as handle:
        assert TOKEN not in handle.read()
    assert oct(os.stat(tmp_path / HISTORY_NAME).st_mode & 0o777) == "0o600"
    # A second clearing appends; nothing left to clear changes nothing.
    plant(tmp_path, owner="AWX job 4")
    clear(str(tmp_path), "jdoe")
    assert [e["lock"]["owner"] for e in history(tmp_path)] == ["AWX job 3", "AWX job 4"]
    assert clear(str(tmp_path), "jdoe")["cleared"] is None
    assert len(history(tmp_path)) == 2


def test_a_live_holder_that_follows_no_run_is_ended_when_it_provably_is_the_holder(
    tmp_path, holder
):
    proc = holder()
    plant(tmp_path, pid=proc.pid, anchor=None)
    found = clear(str(tmp_path), "jdoe")
    assert found["holder"] == "live"
    assert found["holder_ended"] is True
    assert wait_gone(proc.pid)
    assert history(tmp_path)[0]["holder"] == "live"


def test_a_process_that_is_not_the_holder_is_never_ended(tmp_path):
    # The holder's pid now names another process of this user, without the token.
    other = subprocess.Popen(["sleep", "60"])
    try:
        plant(tmp_path, pid=other.pid)
        found = clear(str(tmp_path), "jdoe")
        assert found["holder"] == "gone"
        assert found["holder_ended"] is False
        time.sleep(0.2)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_symlinked_history_is_refused_and_nothing_changed(tmp_path):
    planted = plant(tmp_path)
    target = tmp_path / "elsewhere"
    target.write_text("not ours\n")
    os.symlink(target, tmp_path / HISTORY_NAME)
    for check_mode in (True, False):
        with pytest.raises(LockError, match="is a symbolic link: nothing was changed"):
            clear(str(tmp_path), "jdoe", check_mode=check_mode)
    assert read_lock(lock_path(str(tmp_path))) == planted
    assert target.read_text() == "not ours\n"


def test_a_history_others_may_write_is_refused(tmp_path):
    plant(tmp_path)
    (tmp_path / HISTORY_NAME).write_text("")
    os.chmod(tmp_path / HISTORY_NAME, 0o666)
    with pytest.raises(LockError, match="with mode 0666"):
        clear(str(tmp_path), "jdoe")
    assert os.path.exists(lock_path(str(tmp_path)))


def test_the_historys_content_is_never_read_only_appended_to(tmp_path):
    (tmp_path / HISTORY_NAME).write_bytes(b"\xff not json {\n")
    os.chmod(tmp_path / HISTORY_NAME, 0o600)
    plant(tmp_path)
    clear(str(tmp_path), "jdoe")
    lines = (tmp_path / HISTORY_NAME).read_bytes().splitlines()
    assert lines[0] == b"\xff not json {"
    assert json.loads(lines[1])["event"] == "cleared"


def test_only_the_lock_that_was_shown_is_cleared(tmp_path):
    shown = clear(str(tmp_path), "jdoe", check_mode=True)
    assert shown["cleared"] is None
    first = plant(tmp_path)
    expected = clear(str(tmp_path), "jdoe", check_mode=True)["fingerprint"]
    plant(tmp_path, owner="AWX job 5")  # another lock, taken since
    with pytest.raises(LockError, match="not the one confirmed"):
        clear(str(tmp_path), "jdoe", expected=expected)
    assert read_lock(lock_path(str(tmp_path)))["owner"] == "AWX job 5"
    assert not os.path.exists(tmp_path / HISTORY_NAME)
    assert expected == fingerprint(first)


def test_an_unreadable_lock_or_another_hosts_is_cleared_on_the_operators_word(tmp_path):
    path = lock_path(str(tmp_path))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("garbage")
    found = clear(str(tmp_path), "jdoe")
    assert found["cleared"] == {"unreadable": "it is not JSON"}
    assert not os.path.exists(path)
    # Its bytes are kept beside, for whoever looks into it.
    with open(found["kept_as"], encoding="utf-8") as handle:
        assert handle.read() == "garbage"
    assert "kept beside" in found["warnings"][0]
    plant(tmp_path, host="another-host", anchor={"pid": 1, "start": "1"})
    found = clear(str(tmp_path), "jdoe")
    assert found["holder"] == "unknown"
    assert "cannot be checked from here and is not ended" in found["warnings"][0]
    assert [e["lock"].get("host") for e in history(tmp_path)] == [None, "another-host"]


def test_a_lock_this_user_cannot_read_is_never_cleared(tmp_path):
    # It may hold the journal of a restore that died: it stays, and so does
    # everything else.
    planted = plant(tmp_path, anchor={"pid": dead_pid(), "start": "1"}, journal=JOURNAL)
    path = lock_path(str(tmp_path))
    os.chmod(path, 0o620)  # read_lock refuses a lock others may write
    before = sorted(os.listdir(tmp_path))
    for check_mode in (True, False):
        with pytest.raises(LockError) as refused:
            clear(str(tmp_path), "jdoe", check_mode=check_mode)
        assert "cannot be read here" in str(refused.value)
        assert "Nothing was changed" in str(refused.value)
    with open(path, encoding="utf-8") as handle:
        assert json.load(handle)["journal"] == planted["journal"]
    assert sorted(os.listdir(tmp_path)) == before


def test_a_lock_whose_holder_is_gone_but_whose_run_is_there_is_not_cleared(tmp_path):
    planted = plant(tmp_path, pid=dead_pid(), anchor=my_anchor())
    with pytest.raises(LockError) as refused:
        clear(str(tmp_path), "jdoe")
    text = str(refused.value)
    assert "still there (the lock's holder is gone): it may still be working" in text
    assert f"ps -o pid,lstart,args -p {os.getpid()}" in text
    assert read_lock(lock_path(str(tmp_path))) == planted


def test_a_take_over_of_a_dead_runs_lock_is_recorded_too(tmp_path):
    plant(tmp_path, anchor={"pid": dead_pid(), "start": "1"})
    info = acquire(str(tmp_path), "AWX job 8", "backup", max_hold=60, host_name="edms-demo")
    try:
        (entry,) = history(tmp_path)
        assert entry["event"] == "taken_over"
        assert entry["by"] == "AWX job 8"
        assert entry["operation"] == "backup"
        assert entry["inventory_host"] == "edms-demo"
        assert entry["lock"]["owner"] == "AWX job 3"
        assert "token" not in entry["lock"]
    finally:
        release(str(tmp_path), info["token"])


def test_a_take_over_goes_on_when_the_history_cannot_be_written(tmp_path):
    plant(tmp_path, anchor={"pid": dead_pid(), "start": "1"})
    os.symlink(tmp_path / "nowhere", tmp_path / HISTORY_NAME)
    info = acquire(str(tmp_path), "AWX job 8", "backup", max_hold=60)
    try:
        assert "is not in the lock history" in info["warnings"][-1]
        assert not os.path.exists(tmp_path / "nowhere")
    finally:
        release(str(tmp_path), info["token"])


def test_refusals_name_the_unlock_playbook_not_rm_or_kill(tmp_path, holder):
    # A lock that follows no run, its holder live: the old text said kill <pid>.
    proc = holder()
    plant(tmp_path, pid=proc.pid, anchor=None)
    with pytest.raises(LockError) as refused:
        acquire(str(tmp_path), "me", "backup", max_hold=60, host_name="edms-staging")
    text = str(refused.value)
    assert "held until it is released, at 2026-12-03T10:00:00Z at the latest" in text
    assert "playbooks/unlock.yml -e edms_unlock_confirm=edms-staging" in text
    assert "(installed collection: edms.backup.unlock; AWX: the job template EDMS Unlock)" in text
    assert "kill " not in text
    assert "rm " not in text
    os.kill(proc.pid, signal.SIGKILL)
