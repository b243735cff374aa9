"""edms.backup.lock through Ansible: held for the whole run, and no longer.

The lock's holder follows the run that took it (the ansible-playbook or
ansible process here, with a local connection): it outlives each module's
process, so the lock holds from one task to the next, and it ends with the
run, so a run that dies leaves a lock the next run takes over, naming it.
"""

import json
import os

import pytest

from .conftest import BIN, ROOT, ansible_env, run, run_module

PLAY = """
- hosts: edms
  gather_facts: false
  tasks:
    - name: Take the lock
      edms.backup.lock:
        project_dir: {project}
        owner: AWX job 1
        operation: restore
      register: first

    - name: A second taker, later in the same run, while the first holds it
      edms.backup.lock:
        project_dir: {project}
        owner: AWX job 2
        operation: restore
      register: second
      ignore_errors: true

    - name: Release it
      edms.backup.lock:
        project_dir: {project}
        state: absent
        token: "{{{{ first.token }}}}"
      register: released

    - name: Show what happened
      ansible.builtin.debug:
        msg: "RESULTS {{{{ dict(first=first, second=second, released=released) | to_json }}}}"
"""


@pytest.fixture
def project(tmp_path):
    return str(tmp_path)


def test_the_lock_holds_across_tasks_and_refuses_a_second_taker(project, tmp_path):
    playbook = tmp_path / "lock.yml"
    playbook.write_text(PLAY.format(project=project))
    env = ansible_env()
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    env["ANSIBLE_NOCOLOR"] = "1"
    proc = run(
        [
            os.path.join(BIN, "ansible-playbook"),
            "-i",
            os.path.join(ROOT, "inventories", "demo"),
            str(playbook),
        ],
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    line = next(x for x in proc.stdout.splitlines() if "RESULTS " in x)
    results = json.loads(json.loads(line.split(": ", 1)[1].rstrip(","))[len("RESULTS ") :])
    first, second, released = results["first"], results["second"], results["released"]
    assert first["changed"] is True
    assert "token" not in first["holder"]
    assert first["holder"]["anchor"]["kind"]
    assert second["failed"] is True
    assert second["msg"].startswith("another operation is running: AWX job 1 holds")
    assert second["stale"] is False
    assert "token" not in second["holder"]
    assert released["changed"] is True
    assert not os.path.exists(first["path"])


def test_a_dead_runs_lock_ends_with_it_and_the_next_run_takes_it_over(project):
    # An ad hoc run takes the lock and ends without releasing it, as a run
    # that dies does: its holder follows it.
    rc, taken = run_module("lock", {"project_dir": project, "owner": "AWX job 3"})
    assert rc == 0, taken
    rc, next_run = run_module("lock", {"project_dir": project, "owner": "AWX job 4"})
    assert rc == 0, next_run
    assert next_run["taken_over"]["owner"] == "AWX job 3"
    assert "token" not in next_run["taken_over"]
    run_module("lock", {"project_dir": project, "state": "absent", "token": next_run["token"]})
    assert not os.path.exists(taken["path"])


def test_check_mode_takes_nothing(project):
    rc, result = run_module("lock", {"project_dir": project}, check_mode=True)
    assert rc == 0
    assert result["changed"] is True
    assert os.listdir(project) == []
