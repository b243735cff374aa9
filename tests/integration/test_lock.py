"""edms.backup.lock through Ansible: the holder outlives the module's process."""

import os
import signal
import time

import pytest

from .conftest import run_module


@pytest.fixture
def project(tmp_path):
    return str(tmp_path)


def test_the_lock_holds_across_tasks_and_refuses_a_second_run(project):
    rc, taken = run_module(
        "lock", {"project_dir": project, "owner": "AWX job 1", "operation": "restore"}
    )
    assert rc == 0, taken
    assert taken["changed"] is True
    assert "token" not in taken["holder"]
    # The module's process has ended; the holder it started still runs.
    os.kill(taken["holder"]["pid"], 0)

    rc, refused = run_module(
        "lock", {"project_dir": project, "owner": "AWX job 2", "operation": "restore"}
    )
    assert rc != 0
    assert refused["msg"].startswith("another operation is running: AWX job 1 holds")
    assert refused["stale"] is False
    assert "token" not in refused["holder"]

    rc, released = run_module(
        "lock", {"project_dir": project, "state": "absent", "token": taken["token"]}
    )
    assert rc == 0
    assert released["changed"] is True
    assert not os.path.exists(taken["path"])


def test_a_stale_lock_is_reported_with_how_to_clear_it(project):
    _rc, taken = run_module("lock", {"project_dir": project, "owner": "AWX job 3"})
    os.kill(taken["holder"]["pid"], signal.SIGKILL)
    time.sleep(0.2)
    rc, refused = run_module("lock", {"project_dir": project})
    assert rc != 0
    assert refused["stale"] is True
    assert refused["msg"].endswith(f"remove the lock: rm {taken['path']}")
    assert os.path.exists(taken["path"])


def test_check_mode_takes_nothing(project):
    rc, result = run_module("lock", {"project_dir": project}, check_mode=True)
    assert rc == 0
    assert result["changed"] is True
    assert os.listdir(project) == []
