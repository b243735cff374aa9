"""edms.backup.lock through Ansible: held for the whole run, and no longer.

The lock's holder follows the run that took it (the ansible-playbook or
ansible process here, with a local connection): it outlives each module's
process, so the lock holds from one task to the next, and it ends with the
run, so a run that dies leaves a lock the next run takes over, naming it.
A lock no run will clear is cleared with playbooks/unlock.yml, recorded.
No Docker: a scratch project directory and the demo inventory's local connection.
"""

import base64
import json
import os

import pytest

from .conftest import BIN, ROOT, ansible_env, run, run_module, run_playbook

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


# --- playbooks/unlock.yml: clearing a lock no run will clear, recorded --------------


def lock_of(project):
    with open(os.path.join(project, ".edms-backup.lock"), encoding="utf-8") as handle:
        return json.load(handle)


def test_unlock_shows_the_lock_stops_at_the_gate_then_clears_and_records_it(project):
    # An ad hoc run that takes the lock with an anchor that never ends here
    # is not to be had; a lock recorded with no run to follow, its holder
    # gone, is what a refusal sends the operator to unlock.yml for.
    rc, taken = run_module("lock", {"project_dir": project, "owner": "AWX job 5"})
    assert rc == 0, taken
    planted = lock_of(project)
    planted.pop("anchor", None)
    with open(taken["path"], "w", encoding="utf-8") as handle:
        json.dump(dict(planted, pid=2**22 + 1), handle)
    rc, refused = run_module("lock", {"project_dir": project, "host_name": "edms-demo"})
    assert rc != 0
    assert "playbooks/unlock.yml -e edms_unlock_confirm=edms-demo" in refused["msg"]
    assert "rm " not in refused["msg"]

    project_var = f"edms_project_dir={project}"
    checked = run_playbook("unlock.yml", project_var, check=True)
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "Held by     AWX job 5 for operation" in checked.stdout
    assert "Would clear the lock of edms-demo" in checked.stdout
    unconfirmed = run_playbook("unlock.yml", project_var, "edms_unlock_confirm=edms-prod")
    assert unconfirmed.returncode == 2
    assert "-e edms_unlock_confirm=edms-demo" in unconfirmed.stdout
    assert sorted(os.listdir(project)) == [".edms-backup.lock"]  # nothing changed

    cleared = run_playbook(
        "unlock.yml",
        project_var,
        "edms_unlock_confirm=edms-demo",
        {"edms_unlock_reason": "its holder was killed", "edms_unlock_owner": "jdoe"},
    )
    assert cleared.returncode == 0, cleared.stdout[-3000:]
    assert "CLEARED the lock of edms-demo (AWX job 5" in cleared.stdout
    assert sorted(os.listdir(project)) == [".edms-backup.lock-history"]
    with open(os.path.join(project, ".edms-backup.lock-history"), encoding="utf-8") as handle:
        text = handle.read()
    (entry,) = [json.loads(line) for line in text.splitlines()]
    assert planted["token"] not in text
    assert entry["event"] == "cleared"
    assert entry["by"] == "jdoe"
    assert entry["reason"] == "its holder was killed"
    assert entry["inventory_host"] == "edms-demo"
    assert entry["lock"]["owner"] == "AWX job 5"

    again = run_playbook("unlock.yml", project_var, "edms_unlock_confirm=edms-demo")
    assert again.returncode == 0
    assert "nothing to clear" in again.stdout


def test_unlock_refuses_a_lock_whose_run_is_still_there(project, tmp_path):
    playbook = tmp_path / "hold.yml"
    playbook.write_text(
        PLAY.format(project=project).split("    - name: A second taker")[0]
        + "    - name: Unlock while this run holds it\n"
        + "      ansible.builtin.command:\n"
        + f"        argv: [{os.path.join(BIN, 'ansible-playbook')}, -i,"
        + f" {os.path.join(ROOT, 'inventories', 'demo')},"
        + f" {os.path.join(ROOT, 'playbooks', 'unlock.yml')},"
        + f" -e, edms_project_dir={project}, -e, edms_unlock_confirm=edms-demo]\n"
        + "      register: unlock\n"
        + "      failed_when: false\n"
        + "      changed_when: false\n"
        + "    - name: Show it\n"
        + "      ansible.builtin.debug:\n"
        + '        msg: "UNLOCK {{ unlock.rc }} {{ unlock.stdout | b64encode }}"\n'
    )
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
    line = next(x for x in proc.stdout.splitlines() if "UNLOCK " in x)
    rc, encoded = line.split("UNLOCK ", 1)[1].rstrip('"').split(" ", 1)
    out = base64.b64decode(encoded).decode()
    assert rc == "2", out
    assert "is still there, with the lock's holder" in out
    assert "at the latest." in out
    assert "Nothing was changed" in out
    # The run still held it and, ending, left it behind (never released):
    # the next run takes it over, recorded in the history.
    rc, next_run = run_module("lock", {"project_dir": project, "owner": "AWX job 6"})
    assert rc == 0, next_run
    assert next_run["taken_over"]["owner"] == "AWX job 1"
    run_module("lock", {"project_dir": project, "state": "absent", "token": next_run["token"]})
    with open(os.path.join(project, ".edms-backup.lock-history"), encoding="utf-8") as handle:
        (entry,) = [json.loads(line) for line in handle]
    assert entry["event"] == "taken_over"
    assert entry["by"] == "AWX job 6"
