import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.lock import (
    CONNECTION_KEPT_VARIABLE,
    POLL_SECONDS,
    LockError,
    acquire,
    connection_kept,
    lock_path,
    process,
    read_lock,
    record,
    release,
    same_process,
    start_holder,
    status,
)

UNLOCK = (
    "clear it (the clearing is recorded, its holder ended if it is still there) with"
    " ansible-playbook -i <inventory> playbooks/unlock.yml -e edms_unlock_confirm="
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
    message = str(refused.value)
    assert "held until it is cleared" in message
    assert UNLOCK + "<inventory host name> (installed collection: edms.backup.unlock;" in message
    assert "rm " not in message
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


# --- The holder follows its run: real processes stand in for the controller -------

# Where tests/conftest.py makes the collection importable, for the children.
COLLECTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 5, "collections")

# What Ansible runs on the host: the module, which takes the lock and ends.
MODULE = """
import json, os, sys
from ansible_collections.edms.backup.plugins.module_utils._commands import lock
project, out, max_hold, fresh = sys.argv[1:5]
lock.FRESH_CONNECTION_SECONDS = float(fresh)
info = lock.acquire(project, "AWX job 9", "restore", int(max_hold))
with open(out + ".partial", "w") as handle:
    json.dump(info, handle)
os.rename(out + ".partial", out)
"""

# The stand-in for the run's anchor (a controller, a worker, an sshd): it runs
# the next one down, or the module through a shell, then stays.
STAND_IN = """
import subprocess, sys, time
python, script, depth, module = sys.argv[1:5]
rest = sys.argv[5:9]  # project, out, max_hold, fresh
if int(depth) > 1:
    argv = [python, script, python, script, str(int(depth) - 1), module, *rest]
else:
    argv = ["sh", "-c", '"$0" -c "$1" "$2" "$3" "$4" "$5"', python, module, *rest]
subprocess.run(argv, check=False)
time.sleep(600)
"""


@pytest.fixture
def run_chain(tmp_path):
    """Start a stand-in chain that takes the lock of tmp_path/project; return
    (the top process, the lock info the module returned)."""
    started = []

    def start(name="ansible-playbook", depth=1, max_hold=60, fresh=5.0, argv0=None, env=None):
        project = tmp_path / "project"
        project.mkdir(exist_ok=True)
        script = tmp_path / name
        script.write_text(STAND_IN)
        out = tmp_path / f"taken-{len(started)}.json"
        args = [sys.executable, str(script), str(depth), MODULE, str(project), str(out)]
        args += [str(max_hold), str(fresh)]
        argv = [sys.executable, str(script), *args]
        if argv0:  # what `ps` shows, as sshd names its processes
            argv = ["bash", "-c", 'exec -a "$0" "$@"', argv0, *argv]
        environment = dict(os.environ, PYTHONPATH=os.path.abspath(COLLECTIONS))
        environment.pop(CONNECTION_KEPT_VARIABLE, None)
        environment.update(env or {})
        top = subprocess.Popen(argv, env=environment, start_new_session=True)
        started.append(top)
        deadline = time.time() + 20
        while not out.exists():
            assert top.poll() is None, "the stand-in chain ended before the lock was taken"
            assert time.time() < deadline, "the lock was not taken"
            time.sleep(0.05)
        with open(out, encoding="utf-8") as handle:
            return top, json.load(handle)

    yield start
    for top in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(top.pid, signal.SIGKILL)
        top.wait()
        info = read_lock(lock_path(str(tmp_path / "project"))) or {}
        if isinstance(info.get("pid"), int):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info["pid"], signal.SIGKILL)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"


def test_f16_lock_holder_ends_within_seconds_after_its_controller_is_killed(run_chain, tmp_path):
    top, taken = run_chain()
    assert alive(taken["pid"])
    time.sleep(POLL_SECONDS + 0.5)
    assert alive(taken["pid"])  # held while the run is there
    os.kill(top.pid, signal.SIGKILL)
    top.wait()
    assert wait_gone(taken["pid"], seconds=POLL_SECONDS + 4)
    assert taken["anchor"]["pid"] == top.pid
    assert taken["anchor"]["kind"] == "ansible-playbook on this host"
    assert taken["warnings"] == []


def test_f16_lock_anchor_is_the_top_most_controller_not_a_worker(run_chain):
    top, taken = run_chain(depth=2)
    assert taken["anchor"]["pid"] == top.pid  # the worker below it ends with its task
    assert taken["anchor"]["kind"] == "ansible-playbook on this host"


def test_f16_lock_over_ssh_follows_the_connection(run_chain):
    top, taken = run_chain(name="session.py", argv0="sshd: tester@notty", fresh=0)
    assert taken["anchor"]["pid"] == top.pid
    assert taken["anchor"]["kind"] == "ssh connection of the controller"
    assert taken["anchor"]["command"].startswith("sshd: tester@notty")
    os.kill(top.pid, signal.SIGKILL)
    top.wait()
    assert wait_gone(taken["pid"], seconds=POLL_SECONDS + 4)


def test_f16_lock_a_connection_opened_for_the_task_is_not_followed(run_chain):
    top, taken = run_chain(name="session.py", argv0="sshd: tester@notty", max_hold=3)
    assert taken["anchor"] is None
    assert "opened" in taken["warnings"][0]
    assert "for 3 seconds (max_hold)" in taken["warnings"][0]
    os.kill(top.pid, signal.SIGKILL)
    top.wait()
    time.sleep(POLL_SECONDS + 0.5)
    assert alive(taken["pid"])  # the safe side: held, until max_hold
    assert wait_gone(taken["pid"], seconds=5)


def test_lock_follows_a_just_opened_connection_the_controller_keeps(run_chain):
    # The action plugin says the controller keeps the connection
    # (ControlMaster with ControlPersist): the first task's connection is the run's.
    top, taken = run_chain(
        name="session.py", argv0="sshd: tester@notty", env={CONNECTION_KEPT_VARIABLE: "1"}
    )
    assert taken["anchor"]["pid"] == top.pid
    assert taken["anchor"]["kind"] == "ssh connection of the controller (kept: ControlPersist)"
    assert taken["warnings"] == []
    os.kill(top.pid, signal.SIGKILL)
    top.wait()
    assert wait_gone(taken["pid"], seconds=POLL_SECONDS + 4)


@pytest.mark.parametrize(
    ("arguments", "kept"),
    [
        (["-C -o ControlMaster=auto -o ControlPersist=60s", "", ""], True),  # Ansible's default
        (["-oControlMaster=yes -oControlPersist=10m"], True),
        # Forever: a dead run's connection would never end; not counted as kept.
        (["-oControlMaster=yes -oControlPersist=yes"], False),
        (["-o 'ControlMaster auto' -o 'ControlPersist 5'"], True),
        (["-o controlmaster=AUTO", "-o ControlPersist=30m"], True),
        (["-o ControlMaster=auto"], False),  # no ControlPersist: ends with the command
        (["-o ControlPersist=60s"], False),  # no master
        (["-o ControlMaster=no -o ControlPersist=60s"], False),
        (["-o ControlMaster=auto -o ControlPersist=no"], False),
        (["-o ControlMaster=auto -o ControlPersist=0"], False),  # 0 is forever too
        # No control socket: no master, a connection per task.
        (["-o ControlMaster=auto -o ControlPersist=60s -o ControlPath=none"], False),
        (["-o ControlMaster=auto -o ControlPersist=60s -S none"], False),
        (["-o ControlMaster=auto -o ControlPersist=60s -Snone"], False),
        (["-o ControlMaster=auto -o ControlPersist=60s -o ControlPath=/tmp/cp-%C"], True),
        # ssh takes the first value given: ssh_args before ssh_extra_args.
        (["-o ControlMaster=no", "", "-o ControlMaster=auto -o ControlPersist=60s"], False),
        (["-o ControlMaster=auto -o ControlPersist=60s", "", "-o ControlMaster=no"], True),
        (["", "", ""], False),
        (["-o 'unbalanced"], False),
    ],
)
def test_connection_kept_reads_controlmaster_and_controlpersist_as_ssh_does(arguments, kept):
    assert connection_kept(arguments) is kept


def test_f16_lock_max_hold_bounds_a_holder_whose_run_still_runs(run_chain):
    top, taken = run_chain(max_hold=1)
    assert taken["anchor"]["pid"] == top.pid
    assert wait_gone(taken["pid"], seconds=POLL_SECONDS + 3)
    assert top.poll() is None  # the run is still there; the lock is not


def test_f16_lock_holder_ignores_a_reused_anchor_pid():
    me = process(os.getpid())
    reused = start_holder("t1", {"pid": os.getpid(), "start": "1"}, 60, "test", poll=0.2)
    kept = start_holder("t2", {"pid": os.getpid(), "start": me["start"]}, 60, "test", poll=0.2)
    try:
        assert wait_gone(reused.pid, seconds=3)
        assert alive(kept.pid)
    finally:
        kept.kill()
        kept.wait()
        reused.wait()


def test_f16_lock_anchor_with_a_reused_pid_counts_as_gone():
    me = process(os.getpid())
    assert same_process(os.getpid(), me["start"]) is True
    assert same_process(os.getpid(), str(int(me["start"]) + 1)) is False


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
        "pid": dead_pid(),
        "token": "f" * 32,
    }
    info.update(fields)
    with open(lock_path(str(tmp_path)), "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    return info


def test_kill_lock_a_dead_runs_lock_is_taken_over_and_named(run_chain, tmp_path):
    top, dead = run_chain()
    os.kill(top.pid, signal.SIGKILL)
    top.wait()
    assert wait_gone(dead["pid"], seconds=POLL_SECONDS + 4)
    project = str(tmp_path / "project")
    assert status(project)["state"] == "dead"
    info = acquire(project, "AWX job 10", "backup", max_hold=60)
    try:
        previous = info["taken_over"]
        assert previous["owner"] == "AWX job 9"
        assert previous["operation"] == "restore"
        assert previous["started_at"] == dead["started_at"]
        assert previous["anchor"]["pid"] == top.pid
        assert "token" not in previous
        assert info["warnings"][-1].startswith(
            f"took over the stale lock {info['path']} of a run that died: AWX job 9, restore"
            f" started {dead['started_at']}"
        )
        assert read_lock(info["path"])["owner"] == "AWX job 10"
    finally:
        release(project, info["token"])


def test_kill_lock_a_reused_anchor_pid_does_not_keep_a_dead_lock(tmp_path):
    plant(tmp_path, anchor={"pid": os.getpid(), "start": "1", "kind": "x", "command": "x"})
    info = acquire(str(tmp_path), "me", "backup", max_hold=60)
    try:
        assert info["taken_over"]["owner"] == "AWX job 3"
    finally:
        release(str(tmp_path), info["token"])


def test_kill_lock_a_stale_lock_whose_run_is_still_there_is_refused(run_chain, tmp_path):
    top, taken = run_chain()
    os.kill(taken["pid"], signal.SIGKILL)
    assert wait_gone(taken["pid"])
    project = str(tmp_path / "project")
    with pytest.raises(LockError) as refused:
        acquire(project, "someone else", "backup", max_hold=60)
    message = str(refused.value)
    assert message.startswith("stale lock: AWX job 9 holds")
    assert f"still there (ansible-playbook on this host, pid {top.pid}" in message
    assert "held until it is cleared" in message
    assert UNLOCK in message
    assert "rm " not in message
    assert refused.value.partial["stale"] is True
    assert read_lock(taken["path"])["token"] == taken["token"]  # kept


def test_kill_lock_a_stale_lock_without_a_run_recorded_is_refused(tmp_path):
    planted = plant(tmp_path)  # as a lock that follows no run, or an older one
    with pytest.raises(LockError, match=r"^stale lock: AWX job 3 holds .*unlock_confirm=edms-d"):
        acquire(str(tmp_path), "me", "backup", max_hold=60, host_name="edms-demo")
    assert read_lock(lock_path(str(tmp_path)))["token"] == planted["token"]


def test_kill_lock_a_lock_of_another_host_is_refused(tmp_path):
    plant(tmp_path, host="elsewhere", anchor={"pid": 1, "start": "1"})
    with pytest.raises(LockError, match=r"^locked: .* cannot be checked from here"):
        acquire(str(tmp_path), "me", "backup", max_hold=60)
    assert os.path.exists(lock_path(str(tmp_path)))


def test_f16_lock_refusal_says_what_runs_since_when_and_how_to_see_it(run_chain, tmp_path):
    top, taken = run_chain()
    with pytest.raises(LockError) as refused:
        acquire(str(tmp_path / "project"), "someone else", "backup", max_hold=60)
    message = str(refused.value)
    assert message.startswith(
        f"another operation is running: AWX job 9 holds {taken['path']} for restore"
        f" since {taken['started_at']}"
    )
    assert f"ps -o pid,lstart,args -p {taken['pid']},{top.pid}" in message
    assert f"at {taken['expires_at']} at the latest" in message


def test_kill_lock_check_mode_says_it_would_take_over_and_writes_nothing(tmp_path):
    planted = plant(tmp_path, anchor={"pid": dead_pid(), "start": "1"})
    info = acquire(str(tmp_path), "me", "backup", max_hold=60, check_mode=True)
    assert info["taken_over"]["owner"] == "AWX job 3"
    assert "token" not in info
    assert read_lock(lock_path(str(tmp_path)))["token"] == planted["token"]


def test_kill_lock_a_run_that_just_died_is_taken_over_once_its_holder_sees_it(tmp_path):
    run = subprocess.Popen(["sleep", "60"])
    anchor = {"pid": run.pid, "start": process(run.pid)["start"], "kind": "x", "command": "x"}
    holder = start_holder("e" * 32, anchor, 60, "test", poll=1.5)
    plant(tmp_path, pid=holder.pid, token="e" * 32, anchor=anchor)
    time.sleep(0.3)
    run.kill()
    run.wait()
    assert alive(holder.pid)  # it has not looked yet
    info = acquire(str(tmp_path), "me", "backup", max_hold=60, poll=1.5)
    try:
        assert info["taken_over"]["pid"] == holder.pid
    finally:
        release(str(tmp_path), info["token"])
        holder.wait()


# --- A run that died in the middle of a restore: its journal -----------------------

JOURNAL = {
    "operation": "restore",
    "archive": "/srv/edms-archives/edms-backup-20261201T100000Z.zip",
    "stage": "replacing",
    "services": ["backend", "worker"],
    "safety": "/srv/edms-archives/edms-backup-20261204T030000Z.zip",
    "safety_sha256": "a" * 64,
    "token": "0123456789ab",
}


def test_kill_recover_the_journal_is_recorded_in_the_lock_the_run_holds(held, tmp_path):
    record(str(tmp_path), held["token"], JOURNAL)
    assert read_lock(held["path"])["journal"] == JOURNAL
    assert oct(os.stat(held["path"]).st_mode & 0o777) == "0o600"
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(held["path"])]
    with pytest.raises(LockError, match=r"not recording: .* not this run"):
        record(str(tmp_path), "0" * 32, dict(JOURNAL, stage="starting"))
    with pytest.raises(LockError, match="stage is one of stopping, safety"):
        record(str(tmp_path), held["token"], dict(JOURNAL, stage="somewhere"))
    assert read_lock(held["path"])["journal"] == JOURNAL


def test_kill_recover_a_dead_runs_journal_refuses_every_other_operation(tmp_path):
    planted = plant(tmp_path, anchor={"pid": dead_pid(), "start": "1"}, journal=JOURNAL)
    for operation in ("backup", "restore", "rollback", "rehearsal"):
        with pytest.raises(LockError) as caught:
            acquire(str(tmp_path), "me", operation, max_hold=60, host_name="edms-staging")
        text = str(caught.value)
        assert text.startswith("a run died in the middle of a restore: AWX job 3 holds")
        assert (
            "a restore of /srv/edms-archives/edms-backup-20261201T100000Z.zip was replacing" in text
        )
        assert "services stopped: backend, worker" in text
        assert "its restore token: 0123456789ab" in text
        assert "playbooks/recover.yml -e edms_restore_confirm=edms-staging" in text
        assert "rm " not in text
        assert caught.value.partial["unfinished"] == JOURNAL
        assert "token" not in caught.value.partial["holder"]
    # Check mode is refused the same way, and nothing was written.
    with pytest.raises(LockError, match="a run died in the middle"):
        acquire(str(tmp_path), "me", "restore", max_hold=60, check_mode=True)
    assert read_lock(lock_path(str(tmp_path)))["token"] == planted["token"]


def test_kill_recover_only_a_recovery_takes_it_over_and_inherits_the_journal(tmp_path):
    plant(tmp_path, anchor={"pid": dead_pid(), "start": "1"}, journal=JOURNAL)
    looked = acquire(str(tmp_path), "me", "recover", max_hold=60, check_mode=True)
    assert looked["taken_over"]["journal"] == JOURNAL
    info = acquire(str(tmp_path), "me", "recover", max_hold=60)
    try:
        assert info["taken_over"]["journal"] == JOURNAL
        # A recovery that dies leaves the same record for the next one.
        assert read_lock(info["path"])["journal"] == JOURNAL
    finally:
        release(str(tmp_path), info["token"])
    assert not os.path.exists(lock_path(str(tmp_path)))


def test_kill_recover_a_stale_lock_with_a_journal_is_never_to_be_removed_by_hand(tmp_path):
    # No run recorded: whether it ended cannot be proven from here.
    plant(tmp_path, journal=JOURNAL)
    with pytest.raises(LockError) as caught:
        acquire(str(tmp_path), "me", "recover", max_hold=60, host_name="edms-demo")
    text = str(caught.value)
    assert "Do not remove the lock by hand" in text
    assert "rm " not in text
    assert "recover.yml -e edms_restore_confirm=edms-demo -e edms_recover_stale=true" in text
    with pytest.raises(LockError, match="for the recover operation only"):
        acquire(str(tmp_path), "me", "restore", max_hold=60, take_over_stale=True)
    info = acquire(str(tmp_path), "me", "recover", max_hold=60, take_over_stale=True)
    try:
        assert info["taken_over"]["journal"] == JOURNAL
    finally:
        release(str(tmp_path), info["token"])


def test_kill_recover_a_lock_of_another_host_is_taken_over_only_on_the_operators_word(tmp_path):
    plant(tmp_path, host="another-host", journal=JOURNAL)
    with pytest.raises(LockError) as caught:
        acquire(str(tmp_path), "me", "recover", max_hold=60, host_name="edms-demo")
    assert "-e edms_recover_stale=true" in str(caught.value)
    assert "rm " not in str(caught.value)
    info = acquire(str(tmp_path), "me", "recover", max_hold=60, take_over_stale=True)
    try:
        assert info["taken_over"]["journal"] == JOURNAL
        assert info["taken_over"]["host"] == "another-host"
    finally:
        release(str(tmp_path), info["token"])


def test_kill_recover_a_live_lock_is_not_taken_over_even_by_a_recovery(held, tmp_path):
    record(str(tmp_path), held["token"], JOURNAL)
    for stale in (False, True):
        with pytest.raises(LockError, match="another operation is running"):
            acquire(str(tmp_path), "me", "recover", max_hold=60, take_over_stale=stale)


def test_kill_recover_preflight_names_a_dead_runs_record_and_the_recovery(tmp_path):
    from ansible_collections.edms.backup.plugins.module_utils._commands.preflight_info import (
        Findings,
        check_project_lock,
    )

    params = {"project_dir": str(tmp_path)}
    found = Findings()
    check_project_lock(params, found)
    assert [f["severity"] for f in found.items] == ["ok"]
    plant(tmp_path, anchor={"pid": dead_pid(), "start": "1"}, journal=JOURNAL)
    found = Findings()
    check_project_lock(params, found)
    (finding,) = found.items
    assert finding["check"] == "project_lock"
    assert finding["severity"] == "error"
    assert "a run died in the middle of a restore" in finding["message"]
    assert "its safety backup: " + JOURNAL["safety"] in finding["message"]
    assert "playbooks/recover.yml" in finding["fix"]
    assert "f" * 32 not in finding["message"] + finding["fix"]  # never the lock's token


def test_kill_recover_a_take_over_that_fails_keeps_the_dead_runs_record(tmp_path, monkeypatch):
    from ansible_collections.edms.backup.plugins.module_utils._commands import lock

    plant(tmp_path, anchor={"pid": dead_pid(), "start": "1"}, journal=JOURNAL)

    def no_fork(*args, **kwargs):
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(lock, "start_holder", no_fork)
    with pytest.raises(BlockingIOError):
        acquire(str(tmp_path), "me", "recover", max_hold=60)
    assert read_lock(lock_path(str(tmp_path)))["journal"] == JOURNAL
    assert os.listdir(tmp_path) == [os.path.basename(lock_path(str(tmp_path)))]


def test_kill_recover_a_lock_that_is_not_this_users_own_file_is_never_believed(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text('{"owner": "x", "password": "hunter2"}')
    os.symlink(secret, lock_path(str(tmp_path)))
    with pytest.raises(LockError) as caught:
        acquire(str(tmp_path), "me", "backup", max_hold=60)
    assert "hunter2" not in str(caught.value) + json.dumps(caught.value.partial)
    assert "cannot be opened as a file of its own" in str(caught.value)
    os.unlink(lock_path(str(tmp_path)))
    planted = plant(tmp_path, anchor={"pid": dead_pid(), "start": "1"}, journal=JOURNAL)
    os.chmod(lock_path(str(tmp_path)), 0o666)
    assert read_lock(lock_path(str(tmp_path))) == {
        "unreadable": f"it is owned by uid {os.geteuid()} with mode 0666, not this user's own file"
    }
    with pytest.raises(LockError, match="cannot be read"):
        acquire(str(tmp_path), "me", "recover", max_hold=60)
    # Refused, and left as it was.
    with open(lock_path(str(tmp_path)), encoding="utf-8") as handle:
        assert json.load(handle)["token"] == planted["token"]
