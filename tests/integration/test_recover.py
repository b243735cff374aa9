"""A restore whose run dies (its controller killed with SIGKILL) after it
stopped the application, then the recovery, on the demo stack.

The run is killed at a stage it recorded in the project lock: while it takes
the safety backup (nothing replaced yet) and while it replaces the data. Every
later run is then refused, changing nothing, with the recovery to run;
playbooks/recover.yml prints its plan and stops at the gate unconfirmed;
confirmed, it brings the deployment to exactly the state before the restore
(PostgreSQL-computed digests, media hashes) or, where the restore had already
held and was verified, to the archive's, with every service running, no work
directory, no maintenance container and no lock left.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from .conftest import RUN, compose, content, manage, run, run_module, run_playbook
from .test_restore import (
    MEDIA,
    backend_healthy,
    confirmed_restore,
    maintenance_containers,
    work_dirs,
)

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}
HOST = "edms-demo"
LOCK = os.path.join(RUN, ".edms-backup.lock")
ARCHIVES = os.path.join(RUN, "edms-archives")


@pytest.fixture(scope="module")
def older(stack):
    """An archive of the deployment as it is now; then the deployment changes."""
    directory = tempfile.mkdtemp(prefix="edms-recover-")
    rc, made = run_module("archive_create", {**PROJECT, "backup_dir": directory})
    assert rc == 0, made.get("msg")
    taken = content()
    manage("simulate_activity", "--iterations", "2", "--interval", "0")
    assert content() != taken
    yield {"archive": made["archive"], "state": taken}
    # Back to the content the module started with, for the tests that follow.
    rc, result = run_module("archive_restore", {**PROJECT, "archive": made["archive"]})
    assert rc == 0, result.get("msg")
    run_module("restore_finish", {**PROJECT, "token": result["token"]})
    assert content() == taken
    shutil.rmtree(directory, ignore_errors=True)


def journal():
    try:
        with open(LOCK, encoding="utf-8") as handle:
            return json.load(handle).get("journal")
    except (FileNotFoundError, ValueError):
        return None


@contextlib.contextmanager
def confirmed_restore_until(archive, reached, what, poll):
    """Run the confirmed restore in a session of its own until reached()
    returns something other than None, and give that; on the way out (or when
    the restore ends first, or never gets there) kill its whole process group
    with SIGKILL: the controller, its workers and the shells it started."""
    proc = confirmed_restore(
        archive,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while (value := reached()) is None:
            assert proc.poll() is None, f"the restore ended (rc {proc.returncode}) before {what}"
            assert time.monotonic() < deadline, f"the restore never reached {what}"
            time.sleep(poll)
        yield value
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def restore_killed_at(archive, stage, after=0.0):
    """Run the confirmed restore and kill its whole process group with SIGKILL
    once it recorded stage (and after more seconds): the controller, its
    workers and the module die; the journal it recorded at that moment."""

    def recorded():
        return True if (journal() or {}).get("stage") == stage else None

    with confirmed_restore_until(archive, recorded, stage, 0.05):
        time.sleep(after)
    # The lock's holder follows the dead controller and ends within seconds.
    time.sleep(5)
    return journal()


def recover(*extra):
    return run_playbook("recover.yml", *extra)


def refused_with_the_recovery(proc, recorded):
    text = proc.stdout
    assert proc.returncode != 0
    assert "a run died in the middle of a restore" in text, text[-3000:]
    assert f"playbooks/recover.yml -e edms_restore_confirm={HOST}" in text
    assert f"services stopped: {', '.join(recorded['services'])}" in text


def backend_running():
    out = run(["docker", "inspect", "-f", "{{.State.Running}}", "edms_demo_backend"])
    return out.stdout.strip() == "true"


def assert_recovered(expected):
    assert content() == expected
    assert work_dirs() == []
    assert maintenance_containers() == []
    assert not os.path.exists(LOCK)
    assert backend_healthy()


def test_kill_recover_a_restore_killed_while_replacing_is_put_back_by_recover(older):
    before = content()
    recorded = restore_killed_at(older["archive"], "replacing", after=1.0)
    assert recorded["stage"] in ("replacing", "starting", "rolling_back"), recorded
    assert recorded["safety"]
    assert recorded["token"]
    assert "backend" in recorded["services"]
    assert not backend_running()

    # Every other run is refused, changes nothing and prints the recovery.
    for proc in (
        run_playbook("backup.yml"),
        run_playbook("restore.yml", f"edms_archive={older['archive']}"),
    ):
        refused_with_the_recovery(proc, recorded)
    assert journal() == recorded
    assert not backend_running()

    # The copy token names the work directory of a rollback's copy of the
    # media; one that died half way is removed by the recovery's put-back.
    assert recorded["copy_token"]
    assert recorded["copy_token"] != recorded["token"]
    if recorded["stage"] != "starting":
        # The backend is stopped: a one-off container of its image, its volumes.
        compose(
            "run",
            "--rm",
            "--no-deps",
            "--entrypoint",
            "sh",
            "backend",
            "-c",
            'mkdir -p "$1/old/documents" && printf %s "$2" > "$1/restore.token"'
            ' && echo half > "$1/old/documents/half.pdf"',
            "sh",
            f"{MEDIA}/.edms-restore-{recorded['copy_token']}",
            recorded["copy_token"],
        )
        planted = compose(
            "run", "--rm", "--no-deps", "--entrypoint", "ls", "backend", "-a", MEDIA
        ).stdout.split()
        assert f".edms-restore-{recorded['copy_token']}" in planted

    # Unconfirmed, the recovery prints its plan and changes nothing.
    proc = recover()
    assert proc.returncode != 0
    assert "RECOVERY PLAN for edms-demo" in proc.stdout
    assert f"Put back    the safety backup {recorded['safety']}" in proc.stdout
    assert "Nothing was changed" in proc.stdout
    assert journal() == recorded
    assert not backend_running()

    proc = recover(f"edms_restore_confirm={HOST}")
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert "RECOVERED" in proc.stdout
    # A restore that had held and was verified is kept; any other is put back.
    assert_recovered(older["state"] if recorded["stage"] == "starting" else before)
    # The recovery leaves nothing for the next run to trip on.
    proc = run_playbook("backup.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]


def processes():
    """(pid, argv) of the processes seen from the host (containers' too)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                yield int(name), handle.read().split(b"\0")
        except OSError:
            continue


def load_process():
    """The pid of the backend's load (a ``python -c`` running _backend/load.py
    in the container, seen from the host), or None."""
    for pid, argv in processes():
        # The python itself, not a shell that runs it; its program ends by
        # running the load (other programs carry the load's source too).
        if (
            len(argv) > 2
            and os.path.basename(argv[0]).startswith(b"python")
            and argv[1] == b"-c"
            and argv[2].rstrip().rsplit(b"\n", 1)[-1].startswith(b"run(")
            and b"._backend.load'" in argv[2].rstrip().rsplit(b"\n", 1)[-1]
        ):
            return pid
    return None


def restore_killed_in_its_load(archive):
    """Run the confirmed restore; once its load runs (the archive's media
    already swapped in), kill with SIGKILL the controller's whole process
    group, the module's (Ansible starts it in a session of its own: alive, it
    would put the previous media back once the load dies), then the load in
    the container: the load's transaction never commits, so the archive's
    media are live beside the database as it was, and no rescue runs, as when
    the host loses its power. The journal recorded."""
    with confirmed_restore_until(archive, load_process, "its load", 0.02) as pid:
        # Held where it is (it must not commit while the others die).
        os.kill(pid, signal.SIGSTOP)
        try:
            # The module's python and the shells that start it, in one group.
            module = b"AnsiballZ_archive_restore"
            groups = {os.getpgid(p) for p, argv in processes() if module in b" ".join(argv)}
            assert len(groups) == 1, groups
            os.killpg(groups.pop(), signal.SIGKILL)
        except BaseException:
            os.kill(pid, signal.SIGKILL)  # not left stopped in the container
            raise
    os.kill(pid, signal.SIGKILL)
    time.sleep(5)
    return journal()


def test_kill_recover_a_restore_killed_in_its_load_is_put_back_past_the_half_swapped_media(older):
    before = content()
    kept_before = set(os.listdir(ARCHIVES)) if os.path.isdir(ARCHIVES) else set()
    recorded = restore_killed_in_its_load(older["archive"])
    assert recorded["stage"] == "replacing", recorded
    assert not backend_running()

    proc = recover(f"edms_restore_confirm={HOST}")
    assert proc.returncode == 0, proc.stdout[-5000:]
    text = " ".join(proc.stdout.split())
    # What was live (the archive's media, the database as it was) does not
    # verify: its backup is kept, named, recorded as failed; the recovery
    # puts back the dead run's verified safety backup all the same.
    assert "WARNING: the safety backup of what is live" in text, proc.stdout[-5000:]
    assert "file field values without their file" in text
    kept = sorted(set(os.listdir(ARCHIVES)) - kept_before - {os.path.basename(recorded["safety"])})
    kept = [name for name in kept if name.endswith(".zip")]
    assert len(kept) == 1, kept
    assert f"Was live kept in {os.path.join(ARCHIVES, kept[0])} (it does NOT verify" in text
    rc, listed = run_module("archive_info", {"backup_dir": ARCHIVES})
    assert rc == 0, listed.get("msg")
    entry = next(a for a in listed["archives"] if a["name"] == kept[0])
    assert entry["verification"]["state"] == "failed", entry["verification"]
    assert entry["reason"].startswith("before recovering the restore of ")
    assert_recovered(before)
    # Not left for the tests that follow, which verify every archive there.
    for name in os.listdir(ARCHIVES):
        if name.startswith(kept[0]):
            os.remove(os.path.join(ARCHIVES, name))


def test_kill_recover_a_restore_killed_during_its_safety_backup_starts_what_it_stopped(older):
    before = content()
    recorded = restore_killed_at(older["archive"], "safety", after=0.5)
    assert recorded["stage"] in ("safety", "replacing"), recorded
    assert not backend_running()
    proc = recover(f"edms_restore_confirm={HOST}")
    assert proc.returncode == 0, proc.stdout[-5000:]
    if recorded["stage"] == "safety":
        assert "Keep        the data: nothing was replaced" in proc.stdout
    assert_recovered(before)


def test_kill_recover_with_nothing_to_recover_changes_nothing(older):
    before = content()
    proc = recover(f"edms_restore_confirm={HOST}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Nothing to recover on edms-demo" in proc.stdout
    assert_recovered(before)
