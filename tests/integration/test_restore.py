"""The live restore and its rollback (the checklist's Test 4) on the demo stack.

Every test compares a content digest per table and the sha256 of every media
file, before and after, not only counts. The archive restored is an older
backup: the deployment is changed after it was taken, so a restore or a
rollback that did nothing would show.

The failure injected at each destructive step and the refusals (no or a wrong
confirmation; a corrupt, a foreign and a migration-mismatched archive) are the
Molecule scenarios molecule/restore_faults and molecule/restore_refusals.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile

import pytest

from .conftest import (
    BIN,
    ROOT,
    RUN,
    ansible_env,
    backend,
    compose,
    content,
    lock_held,
    manage,
    run,
    run_module,
    run_playbook,
)

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}
HOST = "edms-demo"
BACKUPS = os.path.join(RUN, "edms-archives")
MEDIA = "/app/storage/media"


def work_dirs():
    out = backend("ls", "-a", MEDIA).stdout.split()
    return [name for name in out if name.startswith(".edms-restore-")]


def activity(iterations=2):
    manage("simulate_activity", "--iterations", str(iterations), "--interval", "0")


def safety_archives():
    if not os.path.isdir(BACKUPS):
        return []
    return sorted(n for n in os.listdir(BACKUPS) if n.endswith(".zip"))


def lock_is_free():
    return not os.path.exists(os.path.join(RUN, ".edms-backup.lock"))


def backend_healthy():
    out = run(["docker", "inspect", "-f", "{{.State.Health.Status}}", "edms_demo_backend"])
    return out.stdout.strip() == "healthy"


@pytest.fixture(scope="module")
def older(stack):
    """An archive of the deployment as it is now; then the deployment changes."""
    directory = tempfile.mkdtemp(prefix="edms-restore-")
    rc, made = run_module("archive_create", {**PROJECT, "backup_dir": directory})
    assert rc == 0, made.get("msg")
    taken = content()
    activity()
    assert content() != taken
    yield {"archive": made["archive"], "state": taken}
    # Back to the content the module started with, for the tests that follow.
    rc, result = run_module("archive_restore", {**PROJECT, "archive": made["archive"]})
    assert rc == 0, result.get("msg")
    run_module("restore_finish", {**PROJECT, "token": result["token"]})
    assert content() == taken
    shutil.rmtree(directory, ignore_errors=True)


def restore(archive, *extra, check=False):
    return run_playbook("restore.yml", f"edms_archive={archive}", *extra, check=check)


def confirmed_restore(archive, **popen):
    """playbooks/restore.yml of archive, confirmed, started in the background."""
    argv = [
        os.path.join(BIN, "ansible-playbook"),
        "-i",
        os.path.join(ROOT, "inventories", "demo"),
        os.path.join(ROOT, "playbooks", "restore.yml"),
        "-e",
        f"edms_archive={archive}",
        "-e",
        f"edms_restore_confirm={HOST}",
    ]
    popen.setdefault("env", ansible_env())
    return subprocess.Popen(argv, cwd=ROOT, **popen)


def differing_from(older):
    """New activity, so that the live content is not the older archive's; that content."""
    activity(1)
    before = content()
    assert before["tables"] != older["state"]["tables"]
    return before


def in_order(text, *parts):
    """Whether the parts appear in text in this order."""
    at = 0
    for part in parts:
        at = text.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return True


def assert_unchanged(before, proc):
    assert content() == before, proc.stdout[-3000:]
    assert work_dirs() == []
    assert lock_is_free()
    assert backend_healthy()


def test_a_live_restore_of_an_older_backup_gives_exactly_its_content(older):
    before = content()
    archives = set(safety_archives())
    proc = restore(older["archive"], f"edms_restore_confirm={HOST}")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # The plan's verification, before the gate, proves the bytes replaced.
    assert (
        "Verified    in full before the gate; not again: the file restored has the" in proc.stdout
    )
    after = content()
    assert after["tables"] == older["state"]["tables"]
    assert after["media"] == older["state"]["media"]
    assert work_dirs() == []
    assert lock_is_free()
    assert backend_healthy()
    # The safety backup holds the state before the restore and verifies.
    made = sorted(set(safety_archives()) - archives)
    assert len(made) == 1, made
    safety = os.path.join(BACKUPS, made[0])
    rc, verified = run_module("archive_verify", {"archive": safety})
    assert rc == 0, verified
    assert verified["ok"], verified
    with zipfile.ZipFile(safety) as opened:
        metadata = json.loads(opened.read("metadata.json"))
        assert "database.pgdump" in opened.namelist()
    assert metadata["label"] == "pre-restore safety"
    assert {"media/" + path for path in before["media"]} == {
        name for name in metadata["members"] if name.startswith("media/")
    }
    # A new row can be written: the sequences were reset.
    activity(1)
    # playbooks/rollback.yml puts the safety backup back on its own.
    proc = run_playbook("rollback.yml", f"edms_archive={safety}", f"edms_restore_confirm={HOST}")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Checked     the archive in full before the gate; not again: the file put" in proc.stdout
    assert content() == before
    assert lock_is_free()


def test_a_second_restore_is_refused_by_the_lock(older, tmp_path):
    before = differing_from(older)
    # Another run that holds the lock and is alive: its lock is no dead run's.
    with lock_held(str(tmp_path)):
        proc = restore(older["archive"], f"edms_restore_confirm={HOST}")
        assert proc.returncode != 0
        assert "another operation is running: first restore" in proc.stdout, proc.stdout[-3000:]
        assert content() == before
    assert lock_is_free()


def test_check_mode_runs_the_whole_order_and_changes_nothing(older):
    before = differing_from(older)
    archives = safety_archives()
    proc = restore(older["archive"], check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert in_order(
        proc.stdout,
        "TASK [Preflight; report]",
        "TASK [edms.backup.restore : Verify the archive to restore",
        "TASK [edms.backup.restore : The plan]",
        "RESTORE PLAN for edms-demo",
        "TASK [edms.backup.restore : Check mode; what the gate would say]",
        "TASK [edms.backup.restore : Take the project lock]",
        "TASK [Storage; the backups mount and BACKUP_DIR in place]",
        "TASK [Preflight again; stop on any error]",
        "TASK [edms.backup.restore : Stop the application and the services that write]",
        "TASK [edms.backup.restore : Take a safety backup]",
        "TASK [edms.backup.restore : Replace the database and media",
        "TASK [edms.backup.restore : Start the application and the services that were stopped]",
        "TASK [edms.backup.restore : Release the project lock]",
        "take a safety backup into",
        "copy the media of",
        "empty the application's tables",
        "start again what was stopped",
    ), proc.stdout[-6000:]
    assert "CHECK MODE: nothing was changed" in proc.stdout
    assert "A real run stops here unless edms_restore_confirm" in proc.stdout
    assert safety_archives() == archives
    assert_unchanged(before, proc)


def test_f14_an_unconfirmed_restore_prints_the_plan_and_writes_nothing(older):
    before = differing_from(older)
    archives = safety_archives()
    backend_started = container_started_at("edms_demo_backend")
    proc = restore(older["archive"])
    assert proc.returncode != 0
    assert "Nothing was changed: no file was written and no service stopped" in proc.stdout
    for line in ("RESTORE PLAN for edms-demo", "Stop         backend", "Free space", "Time "):
        assert line in proc.stdout, line
    # Nothing after the gate ran: no lock, no storage step, no safety backup.
    assert "TASK [edms.backup.restore : Take the project lock]" not in proc.stdout
    assert "TASK [Storage; the backups mount and BACKUP_DIR in place]" not in proc.stdout
    assert safety_archives() == archives
    assert container_started_at("edms_demo_backend") == backend_started
    assert_unchanged(before, proc)


@pytest.fixture
def worker(stack):
    compose("--profile", "activity", "up", "-d", "worker")
    yield
    compose("--profile", "activity", "rm", "-sf", "worker")


def container_started_at(name):
    return run(["docker", "inspect", "-f", "{{.State.StartedAt}}", name]).stdout.strip()


def test_the_writers_are_stopped_and_the_rollback_point_taken_after_them(older, worker):
    name = compose("--profile", "activity", "ps", "-q", "worker").stdout.strip()
    started = container_started_at(name)
    archives = set(safety_archives())
    proc = restore(older["archive"], f"edms_restore_confirm={HOST}")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "stopped and started again: backend, worker" in proc.stdout
    assert "(taken with everything stopped; verified, with pg_dump)" in proc.stdout
    assert container_started_at(name) != started
    # The one safety backup was taken after the worker and the backend had stopped.
    stopped_at = max(
        run(["docker", "inspect", "-f", "{{.State.FinishedAt}}", c]).stdout.strip()[:26]
        for c in (name, "edms_demo_backend")
    )
    made = sorted(set(safety_archives()) - archives)
    assert len(made) == 1, made
    with zipfile.ZipFile(os.path.join(BACKUPS, made[0])) as opened:
        metadata = json.loads(opened.read("metadata.json"))
    assert metadata["created_at"][:26] > stopped_at, (metadata["created_at"], stopped_at)
    assert run(["docker", "inspect", "-f", "{{.State.Running}}", name]).stdout.strip() == "true"
    assert backend_healthy()
    assert maintenance_containers() == []


def maintenance_containers():
    return run(
        ["docker", "ps", "-aq", "--filter", "label=io.edms-backup.maintenance"]
    ).stdout.split()


def answers_http():
    """Whether anything answers HTTP on the backend's published port."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:8001/healthz", timeout=2) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def test_f8_nothing_answers_http_from_the_rollback_point_until_the_restore_is_verified(older):
    """The backend's port is polled all through a restore: from the moment
    the safety backup (the rollback point) starts until the restore is
    verified and the services start again, nothing answers."""
    differing_from(older)
    assert answers_http() == 200
    seen = []
    done = threading.Event()

    def poll():
        while not done.is_set():
            seen.append((time.monotonic(), answers_http()))
            time.sleep(0.2)

    poller = threading.Thread(target=poll)
    proc = confirmed_restore(
        older["archive"],
        stdout=subprocess.PIPE,
        text=True,
        env={
            **ansible_env(),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
            "ANSIBLE_NOCOLOR": "1",
            "PYTHONUNBUFFERED": "1",
        },
    )
    marks = {}
    poller.start()
    try:
        for line in proc.stdout:
            for task in (
                "Take a safety backup]",
                "Replace the database and media, counts compared",
                "Start the application and the services that were stopped]",
            ):
                if task in line:
                    marks[task] = time.monotonic()
        assert proc.wait() == 0
    finally:
        done.set()
        poller.join()
    assert len(marks) == 3, marks
    window = [
        answer
        for at, answer in seen
        if marks["Take a safety backup]"]
        <= at
        <= marks["Start the application and the services that were stopped]"]
    ]
    assert len(window) > 10, window
    assert set(window) == {None}, window
    assert answers_http() == 200
    assert maintenance_containers() == []


def test_a_restore_whose_safety_backup_leaves_media_out_replaces_nothing(older):
    """A symbolic link in the media root is left out of the safety backup: a
    restore would lose it for good, so the run stops before replacing anything,
    names it and says how to go on."""
    before = differing_from(older)
    link = f"{MEDIA}/left-out-link"
    backend("ln", "-s", "/etc/hostname", link)
    try:
        proc = restore(older["archive"], f"edms_restore_confirm={HOST}")
        assert proc.returncode != 0
        assert "left out 1 media file(s)" in proc.stdout, proc.stdout[-4000:]
        assert "left-out-link" in proc.stdout
        assert "restore_allow_media_left_out=true" in proc.stdout
        assert "Nothing was replaced yet, so nothing was rolled" in proc.stdout
        assert backend("readlink", link).stdout.strip() == "/etc/hostname"
    finally:
        backend("rm", "-f", link)
    assert_unchanged(before, proc)


def test_a_rollback_whose_safety_backup_leaves_media_out_stops_unless_accepted(older):
    """rollback.yml takes a safety backup of what it replaces: one that left a
    media file out stops the run before anything is replaced; accepted, the
    run goes on and names the file in a warning."""
    differing_from(older)
    link = f"{MEDIA}/left-out-link"
    backend("ln", "-s", "/etc/hostname", link)
    rollback = ("rollback.yml", f"edms_archive={older['archive']}", f"edms_restore_confirm={HOST}")
    try:
        with_link = content()
        proc = run_playbook(*rollback)
        assert proc.returncode != 0
        assert "left out 1 media file(s) that replacing the media may lose" in proc.stdout, (
            proc.stdout[-4000:]
        )
        assert content() == with_link
        assert backend("readlink", link).stdout.strip() == "/etc/hostname"
        assert lock_is_free()
        assert backend_healthy()
        proc = run_playbook(*rollback, "restore_allow_media_left_out=true")
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert "WARNING: the safety backup" in proc.stdout
        assert "left-out-link" in proc.stdout.split("WARNING: the safety backup", 1)[1]
    finally:
        backend("rm", "-f", link)
    assert content() == older["state"]
    assert work_dirs() == []
    assert lock_is_free()
