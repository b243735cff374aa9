"""When a backup or a restore fails, what an operator looks at first is saved
in one file beside the archives, named in the failure's message: the
backend's and db's logs since the run began, the services' state, the free
space; mode 0600 and without any secret of the deployment (demo/run/.env)."""

import glob
import os
import re
import stat
import threading
import time

import pytest

from .conftest import RUN, backend, content, run_module, run_playbook
from .test_restore import HOST, backend_healthy, lock_is_free, work_dirs

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}
ARCHIVES = os.path.join(RUN, "edms-archives")
REPORT = re.compile(r"are in (/\S+/edms-failure-\d{8}T\d{6}Z-(backup|restore)\.log)\.")


def secrets_of_the_deployment():
    """The values demo/bin/stack generated into .env (CHANGE_ME replaced)."""
    values = []
    with open(os.path.join(RUN, ".env"), encoding="utf-8") as handle:
        for line in handle:
            name, _sep, value = line.strip().partition("=")
            if re.search("PASSWORD|SECRET", name) and len(value) >= 8:
                values.append(value)
    assert values, "no secret found in .env to look for"
    return values


def the_report(proc):
    found = REPORT.search(proc.stdout)
    assert found, proc.stdout[-4000:]
    path = found.group(1)
    assert os.path.dirname(path) == ARCHIVES
    info = os.lstat(path)
    assert stat.S_ISREG(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    for value in secrets_of_the_deployment():
        assert value not in text
    return path, text


@pytest.fixture
def reports(stack):
    before = set(glob.glob(os.path.join(ARCHIVES, "edms-failure-*.log")))
    yield
    for path in set(glob.glob(os.path.join(ARCHIVES, "edms-failure-*.log"))) - before:
        os.remove(path)


@pytest.mark.usefixtures("reports")
def test_a_failed_backup_leaves_the_report_it_names():
    # The backend's log quotes the database password while the run goes on:
    # the report must show the line with the password masked.
    running = threading.Event()
    running.set()

    def leak():
        while running.is_set():
            backend("sh", "-c", 'echo "leak-$POSTGRES_PASSWORD" > /proc/1/fd/1', check=False)
            time.sleep(0.5)

    leaking = threading.Thread(target=leak)
    leaking.start()
    try:
        proc = run_playbook("backup.yml", {"edms_required_models": ["nosuch.Model"]})
    finally:
        running.clear()
        leaking.join()
    assert proc.returncode != 0
    assert "BACKUP FAILED at 'Take the backup'" in proc.stdout, proc.stdout[-4000:]
    _path, text = the_report(proc)
    assert "nosuch.model" in text.split("== services", 1)[0].lower()
    assert re.search(r"^backend\s+running\s+health healthy", text, re.M), text[:3000]
    assert "== free space" in text
    assert "archive directory " + ARCHIVES in text
    backend_logs = text.split("== docker compose logs backend", 1)[1].split("== docker compose")[0]
    # gunicorn's access log: the health check asks every 3 s.
    assert "GET /healthz" in backend_logs, backend_logs[:2000]
    assert "leak-********" in backend_logs, backend_logs[-2000:]
    assert lock_is_free()


@pytest.mark.usefixtures("reports")
def test_a_failed_restore_leaves_the_report_it_names(tmp_path):
    rc, made = run_module("archive_create", {**PROJECT, "backup_dir": str(tmp_path)})
    assert rc == 0, made.get("msg")
    before = content()
    proc = run_playbook(
        "restore.yml",
        f"edms_archive={made['archive']}",
        f"edms_restore_confirm={HOST}",
        env={"EDMS_BACKUP_TEST_MODE": "1", "EDMS_BACKUP_TEST_FAULT": "after_commit"},
    )
    assert proc.returncode != 0
    assert "RESTORE FAILED at" in proc.stdout, proc.stdout[-4000:]
    assert "ROLLBACK HELD" in proc.stdout
    _path, text = the_report(proc)
    assert "injected" in text.split("== services", 1)[0].lower() or "after_commit" in text
    backend_logs = text.split("== docker compose logs backend", 1)[1].split("== docker compose")[0]
    # The restore stopped the backend and started it again: gunicorn's start.
    assert "Listening at" in backend_logs, backend_logs[:2000]
    assert "== docker compose logs db" in text
    assert content() == before
    assert work_dirs() == []
    assert lock_is_free()
    assert backend_healthy()
