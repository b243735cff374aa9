"""Modules that need no Docker, run through their main() in process on real
files: what the task returns, and what a failure returns."""

import json
import os
import socket
import subprocess
import time

import pytest
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils._internal import _traceback
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edms.backup.plugins.modules import archive_info, lock


@pytest.fixture(autouse=True)
def fresh_traceback_setting(monkeypatch):
    """Ansible reads _ansible_tracebacks_for once per process (a module is one
    process); each call here is one module run, so each reads its own."""
    monkeypatch.setattr(_traceback, "_module_tracebacks_enabled_events", None)


def run(module, args, capsys, check_mode=False):
    """The module's exit status and result."""
    args = dict(args, _ansible_check_mode=check_mode)
    ansible_warnings._global_warnings.clear()  # gathered per module run (process)
    with patch_module_args(args), pytest.raises(SystemExit) as exit_:
        module.main()
    return exit_.value.code, json.loads(capsys.readouterr().out)


def gone(pid, seconds=5):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return True
        time.sleep(0.05)
    return False


def test_lock_is_taken_refused_while_held_and_released_never_showing_the_token(tmp_path, capsys):
    path = str(tmp_path / ".edms-backup.lock")
    code, taken = run(lock, {"project_dir": str(tmp_path), "operation": "backup"}, capsys)
    assert code == 0, taken
    token = taken["token"]
    try:
        assert taken["changed"] is True
        assert taken["path"] == path
        assert taken["holder"]["operation"] == "backup"
        assert "token" not in taken["holder"]
        assert "path" not in taken["holder"]

        code, refused = run(lock, {"project_dir": str(tmp_path)}, capsys)
        assert code == 1
        assert refused["msg"].startswith("another operation is running: ansible holds " + path)
        assert refused["path"] == path
        assert refused["stale"] is False
        assert refused["holder"]["pid"] == taken["holder"]["pid"]
        assert "token" not in refused["holder"]
        assert token not in json.dumps(refused)

        args = {"project_dir": str(tmp_path), "state": "absent", "token": "0" * 32}
        code, wrong = run(lock, args, capsys)
        assert code == 1
        assert wrong["msg"].startswith("not releasing: ansible holds " + path)
        assert wrong["path"] == path
        assert "token" not in wrong["holder"]
        assert os.path.exists(path)
    finally:
        args = {"project_dir": str(tmp_path), "state": "absent", "token": token}
        code, released = run(lock, args, capsys)
    assert code == 0, released
    assert released == {"changed": True, "path": path, "invocation": released["invocation"]}
    assert not os.path.exists(path)
    assert gone(taken["holder"]["pid"])


def test_lock_in_check_mode_takes_nothing(tmp_path, capsys):
    code, result = run(lock, {"project_dir": str(tmp_path)}, capsys, check_mode=True)
    assert code == 0
    assert result["changed"] is True
    assert "token" not in result
    assert os.listdir(tmp_path) == []


def test_archive_info_reports_no_change(tmp_path, capsys):
    code, result = run(archive_info, {"backup_dir": str(tmp_path)}, capsys)
    assert code == 0, result
    assert result["changed"] is False
    assert result["archives"] == []


def test_archive_info_fails_naming_the_directory_it_cannot_list(tmp_path, capsys):
    missing = str(tmp_path / "nowhere")
    code, result = run(archive_info, {"backup_dir": missing}, capsys)
    assert code == 1
    assert result["msg"] == f"cannot list backup directory {missing}: No such file or directory"
    assert set(result) == {"failed", "msg", "invocation"}


def test_kill_lock_module_takes_over_a_dead_runs_lock_and_returns_it(tmp_path, capsys, monkeypatch):
    # A module's warnings go into its result, even where controller code (an
    # action plugin's test) was imported first and made them displayed instead.
    monkeypatch.setattr(ansible_internal, "is_controller", False)
    dead = subprocess.Popen(["true"])
    dead.wait()
    planted = {
        "owner": "AWX job 3",
        "operation": "restore",
        "host": socket.gethostname(),
        "started_at": "2026-12-01T10:00:00Z",
        "pid": dead.pid,
        "anchor": {"pid": dead.pid, "start": "1", "kind": "ssh connection", "command": "sshd"},
        "token": "f" * 32,
    }
    (tmp_path / ".edms-backup.lock").write_text(json.dumps(planted))
    code, taken = run(lock, {"project_dir": str(tmp_path), "operation": "backup"}, capsys)
    assert code == 0, taken
    try:
        assert taken["taken_over"] == {k: v for k, v in planted.items() if k != "token"}
        texts = [w["event"]["msg"] if isinstance(w, dict) else w for w in taken["warnings"]]
        assert any(text.startswith("took over the stale lock") for text in texts)
        assert "f" * 32 not in json.dumps(taken)
    finally:
        args = {"project_dir": str(tmp_path), "state": "absent", "token": taken["token"]}
        run(lock, args, capsys)


def test_f16_lock_module_bounds_its_holder_at_48_hours():
    assert lock.argument_spec()["max_hold"]["default"] == 48 * 3600


def test_lock_module_clears_a_stale_lock_recorded_only_the_one_shown(tmp_path, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    planted = {
        "owner": "AWX job 3",
        "operation": "restore",
        "host": socket.gethostname(),
        "started_at": "2026-12-01T10:00:00Z",
        "pid": dead.pid,
        "token": "f" * 32,
    }
    (tmp_path / ".edms-backup.lock").write_text(json.dumps(planted))
    args = {"project_dir": str(tmp_path), "state": "cleared", "owner": "jdoe", "reason": "why"}
    code, shown = run(lock, args, capsys, check_mode=True)
    assert code == 0, shown
    assert shown["changed"] is True
    assert shown["cleared"] == {k: v for k, v in planted.items() if k != "token"}
    assert shown["holder_state"] == "gone"
    assert sorted(os.listdir(tmp_path)) == [".edms-backup.lock"]
    code, wrong = run(lock, dict(args, fingerprint="0" * 64), capsys)
    assert code == 1
    assert "not the one confirmed" in wrong["msg"]
    assert "f" * 32 not in json.dumps(wrong)
    code, cleared = run(lock, dict(args, fingerprint=shown["fingerprint"]), capsys)
    assert code == 0, cleared
    assert cleared["changed"] is True
    assert sorted(os.listdir(tmp_path)) == [".edms-backup.lock-history"]
    assert (
        "f" * 32 not in json.dumps(cleared) + (tmp_path / ".edms-backup.lock-history").read_text()
    )
    code, again = run(lock, args, capsys)
    assert (code, again["changed"], again["cleared"]) == (0, False, None)
