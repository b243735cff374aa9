"""The kill campaign's parts that need no Docker (tests/faults/kill_campaign.py):
the seeded plan, the recovery a failed run prints, the judgement and the table."""

import json
import os
import subprocess
import sys

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands import lock as project_lock

from tests.faults import kill_campaign as kc

HARNESS = kc.__file__
LOCK = "/srv/edms/run/.edms-backup.lock"
SAFETY = "/srv/edms/run/edms-archives/edms_20261203T101500Z.zip"


def ansible_failure(msg, task="Take the project lock"):
    """A failed task as ansible-playbook prints it (default callback, JSON results)."""
    return (
        f"TASK [edms.backup.restore : {task}] ****\n"
        "fatal: [edms-demo]: FAILED! => "
        + json.dumps({"changed": False, "msg": msg})
        + "\n\nPLAY RECAP ****\nedms-demo : ok=3 changed=0 unreachable=0 failed=1\n"
    )


# The texts the collection prints, as they are rendered.
STALE_LOCK = (
    f"stale lock: AWX job 12 holds {LOCK} for restore since 2026-12-03T10:15:00Z (holder pid 4242"
    " on edms-host), and that process is gone. The lock is held until it is cleared. If no"
    " backup or restore of this project is running, clear it (the clearing is recorded, its"
    " holder ended if it is still there) with ansible-playbook -i <inventory>"
    " playbooks/unlock.yml -e edms_unlock_confirm=edms-demo (installed collection:"
    " edms.backup.unlock; AWX: the job template EDMS Unlock)"
)
RUNNING_LOCK = (
    f"another operation is running: AWX job 12 holds {LOCK} for backup since"
    " 2026-12-03T10:15:00Z (holder pid 4242 on edms-host). Wait for it to end."
)
LEFTOVER = (
    "the media root /app/storage/media holds the work directory of an earlier restore"
    " (.edms-restore-0f3a9c1b2d4e), which may hold the only copy of the media from before it:"
    " put it back with playbooks/rollback.yml (restore_token=0f3a9c1b2d4e) or, once you are"
    " sure, remove it"
)
ROLLBACK_FAILED = (
    "RESTORE FAILED at 'Replace the database and media, counts compared before commit':"
    " media swap failed ROLLBACK FAILED: the engine did not answer. The deployment may hold"
    f" part of the restore: put the safety backup {SAFETY} back with playbooks/rollback.yml"
    " (-e restore_token=0f3a9c1b2d4e). Services started again: backend."
)
NOTHING_REPLACED = (
    "RESTORE FAILED at 'Take the safety backup, with its pg_dump, verified': boom Nothing"
    " was replaced yet, so nothing was rolled back. Services started again: backend."
)
NO_CONTAINER = "services backend have no container to start; run 'docker compose up' for them"


# ---------------------------------------------------------------- the plan


def test_the_plan_is_the_same_for_the_same_seed_and_differs_for_another():
    assert kc.make_plan("s", 40) == kc.make_plan("s", 40)
    assert kc.make_plan("s", 40) != kc.make_plan("t", 40)


def test_a_run_is_planned_the_same_whatever_run_the_campaign_starts_at():
    whole = kc.make_plan("s", 20)
    assert kc.make_plan("s", 7, start=13) == whole[13:]


@pytest.mark.parametrize("seed", ["edms-kill-1", kc.CI_SEED, "x", "42"])
def test_every_round_of_four_runs_covers_every_kill_target(seed):
    plan = kc.make_plan(seed, 100)
    for start in range(0, 100, 4):
        assert {run["target"] for run in plan[start : start + 4]} == set(kc.TARGETS)


def test_the_ci_subset_covers_every_kill_target_and_both_operations():
    plan = kc.make_plan(kc.CI_SEED, 4)
    assert {run["target"] for run in plan} == set(kc.TARGETS)
    assert {run["operation"] for run in plan} == set(kc.OPERATIONS)


def test_two_rounds_cover_every_operation_with_every_target():
    for seed in ("edms-kill-1", "other"):
        plan = kc.make_plan(seed, 8)
        pairs = {(run["operation"], run["target"]) for run in plan}
        assert len(pairs) == 8


def test_a_hundred_runs_are_balanced_across_targets_and_operations():
    plan = kc.make_plan(kc.DEFAULT_SEED, 100)
    for target in kc.TARGETS:
        assert sum(run["target"] == target for run in plan) == 25
    for operation in kc.OPERATIONS:
        assert sum(run["operation"] == operation for run in plan) == 50


def test_a_subset_of_targets_is_covered_round_by_round():
    plan = kc.make_plan("s", 9, operations=("restore",), targets=("playbook", "module", "exec"))
    for start in range(0, 9, 3):
        assert {run["target"] for run in plan[start : start + 3]} == {"playbook", "module", "exec"}
    assert {run["operation"] for run in plan} == {"restore"}


def test_the_delay_is_within_half_a_second_and_the_duration():
    assert kc.delay_for(0.0, 60) == 0.5
    assert kc.delay_for(1.0, 60) == 60
    assert 0.5 < kc.delay_for(0.5, 60) < 60
    assert kc.delay_for(0.7, 0.2) == 0.5
    fractions = [run["fraction"] for run in kc.make_plan("s", 200)]
    assert all(0 <= f < 1 for f in fractions)
    assert max(fractions) > 0.9
    assert min(fractions) < 0.1


def test_bad_choices_and_durations_are_refused_naming_them():
    assert kc.parse_choice("exec, playbook,exec", kc.TARGETS, "kill target") == ("exec", "playbook")
    with pytest.raises(ValueError, match="kill target 'shell' is not one of"):
        kc.parse_choice("playbook,shell", kc.TARGETS, "kill target")
    with pytest.raises(ValueError, match="no operation"):
        kc.parse_choice(" , ", kc.OPERATIONS, "operation")
    assert kc.parse_durations("backup=40, restore=95.5") == {"backup": 40.0, "restore": 95.5}
    with pytest.raises(ValueError, match="prune=3"):
        kc.parse_durations("prune=3")
    with pytest.raises(ValueError, match="positive"):
        kc.parse_durations("backup=0")


# ------------------------------------------------- the recovery a run prints


def test_a_stale_lock_gives_the_unlock_playbook_it_prints():
    assert kc.parse_recovery(ansible_failure(STALE_LOCK)) == [
        {"kind": "playbook", "playbook": "unlock.yml", "vars": {"edms_unlock_confirm": "edms-demo"}}
    ]


def test_the_commands_the_lock_prints_are_read_as_printed():
    """The lock's own commands, as its refusals print them (kept in step)."""
    for command, playbook, variables in (
        (
            project_lock.unlock_command("edms-demo"),
            "unlock.yml",
            {"edms_unlock_confirm": "edms-demo"},
        ),
        (
            project_lock.recovery_command("edms-demo", stale=True),
            "recover.yml",
            {"edms_restore_confirm": "edms-demo", "edms_recover_stale": "true"},
        ),
    ):
        found = kc.parse_recovery(ansible_failure(f"stale lock: x. Run {command}"))
        assert found == [{"kind": "playbook", "playbook": playbook, "vars": variables}], command


def test_a_running_lock_gives_a_wait():
    assert kc.parse_recovery(ansible_failure(RUNNING_LOCK)) == [{"kind": "wait-lock"}]


def test_a_leftover_work_directory_gives_the_rollback_and_its_token():
    found = kc.parse_recovery(ansible_failure(LEFTOVER, "Verify the archive to restore"))
    assert found == [
        {"kind": "playbook", "playbook": "rollback.yml", "vars": {"restore_token": "0f3a9c1b2d4e"}}
    ]


def test_a_failed_rollback_gives_the_rollback_with_the_safety_backup_and_the_token():
    found = kc.parse_recovery(ansible_failure(ROLLBACK_FAILED, "Fail the run with what happened"))
    assert found == [
        {
            "kind": "playbook",
            "playbook": "rollback.yml",
            "vars": {"restore_token": "0f3a9c1b2d4e", "edms_archive": SAFETY},
        }
    ]


def test_explicit_e_variables_are_taken_as_printed():
    msg = (
        "run playbooks/rollback.yml -e edms_archive=/b/a.zip -e restore_token=ab12"
        " -e edms_restore_confirm=edms-demo"
    )
    assert kc.parse_recovery(ansible_failure(msg))[0]["vars"] == {
        "edms_archive": "/b/a.zip",
        "restore_token": "ab12",
        "edms_restore_confirm": "edms-demo",
    }


def test_a_run_that_died_in_the_middle_of_a_restore_gives_the_recovery_playbook():
    from ansible_collections.edms.backup.plugins.module_utils._commands import lock

    info = {"owner": "AWX job 3", "operation": "restore", "host": "h", "pid": 1}
    info["journal"] = {"operation": "restore", "archive": SAFETY, "stage": "replacing"}
    msg = str(lock.unfinished_refusal("/srv/edms/run/.edms-backup.lock", info, "edms-demo"))
    assert kc.parse_recovery(ansible_failure(msg, "Take the project lock")) == [
        {
            "kind": "playbook",
            "playbook": "recover.yml",
            "vars": {"edms_restore_confirm": "edms-demo"},
        }
    ]


def test_a_failure_that_names_no_recovery_gives_none():
    assert kc.parse_recovery(ansible_failure(NOTHING_REPLACED)) == []
    gate = "Nothing was changed. To go on, run again with -e edms_restore_confirm=edms-demo."
    assert kc.parse_recovery(ansible_failure(gate)) == []


def test_a_service_without_a_container_gives_compose_up():
    assert kc.parse_recovery(ansible_failure(NO_CONTAINER)) == [
        {"kind": "compose-up", "services": ["backend"]}
    ]


def test_the_messages_are_read_from_every_failed_task_and_the_loop_items():
    text = ansible_failure(RUNNING_LOCK) + (
        "failed: [edms-demo] (item=x) => "
        + json.dumps({"results": [{"msg": STALE_LOCK}], "msg": "one item failed"})
        + "\n"
    )
    assert kc.failure_messages(text) == [RUNNING_LOCK, "one item failed", STALE_LOCK]
    assert kc.failure_messages("no failure here") == ["no failure here"]


def test_the_same_recovery_printed_twice_is_run_once():
    text = ansible_failure(LEFTOVER) + ansible_failure(LEFTOVER)
    assert len(kc.parse_recovery(text)) == 1


def test_the_recovery_is_found_in_the_roles_own_text():
    """The texts above are those the roles and modules print (kept in step)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(HARNESS)))

    def read(*parts):
        with open(os.path.join(root, *parts), encoding="utf-8") as handle:
            return handle.read()

    lock = read("plugins", "module_utils", "_commands", "lock.py")
    assert "another operation is running" in lock
    assert "rm {" not in lock
    put_back = read("roles", "restore", "tasks", "put_back.yml")
    assert "playbooks/recover.yml -e edms_restore_confirm={{ inventory_hostname }}" in put_back
    restore = read("plugins", "module_utils", "_commands", "archive_restore.py")
    assert "playbooks/rollback.yml (restore_token={})" in restore


# ---------------------------------------------------------------- judging

BEFORE = {"tables": {"documents": [60, "a"]}, "media": {"x.pdf": "1"}}
OLDER = {"tables": {"documents": [58, "b"]}, "media": {"x.pdf": "1", "y.pdf": "2"}}
MIXED = {"tables": {"documents": [58, "b"]}, "media": {"x.pdf": "1"}}


def test_the_outcome_names_the_state_and_what_it_took():
    assert kc.outcome_of("backup", BEFORE, OLDER, BEFORE) == "before"
    assert kc.outcome_of("restore", BEFORE, OLDER, OLDER) == "after"
    assert kc.outcome_of("restore", BEFORE, OLDER, BEFORE, recovered=True) == (
        "before after recovery"
    )
    assert kc.outcome_of("restore", BEFORE, OLDER, OLDER, recovered=True, operator=True) == (
        "after after operator action"
    )


def test_a_backup_that_ends_with_the_archive_s_content_lost_data():
    outcome = kc.outcome_of("backup", BEFORE, OLDER, OLDER)
    assert outcome.startswith("DATA LOST: vs before: 1 table(s) differ (documents)")


def test_a_mixed_state_after_a_resolved_recovery_is_data_lost():
    outcome = kc.outcome_of("restore", BEFORE, OLDER, MIXED)
    assert outcome.startswith("DATA LOST:")
    assert "vs the archive: 0 table(s) differ and 1 media file(s)" in outcome


def test_an_unresolved_recovery_or_a_leftover_is_unresolved():
    assert kc.outcome_of("restore", BEFORE, OLDER, OLDER, unresolved="lock held") == (
        "UNRESOLVED: lock held"
    )
    assert kc.outcome_of("restore", BEFORE, OLDER, MIXED, unresolved="lock held") == (
        "UNRESOLVED: lock held; the content is neither before nor after"
    )
    assert kc.outcome_of("backup", BEFORE, OLDER, BEFORE, problems=["the lock is there"]) == (
        "UNRESOLVED: the lock is there"
    )
    assert kc.outcome_of("backup", BEFORE, OLDER, None).startswith("UNRESOLVED")


# ------------------------------------------------ processes and programs


def test_the_newest_module_below_the_playbook_is_chosen():
    table = {
        100: (1, 10, ["/venv/bin/python3", "/venv/bin/ansible-playbook", "x.yml"]),
        101: (100, 11, ["/venv/bin/python3", "/venv/bin/ansible-playbook", "x.yml"]),
        102: (101, 12, ["/bin/sh", "-c", "/venv/bin/python3 /t/AnsiballZ_lock.py && sleep 0"]),
        103: (102, 13, ["/venv/bin/python3", "/root/.ansible/tmp/a/AnsiballZ_lock.py"]),
        104: (
            101,
            20,
            ["/venv/bin/python3.11", "/root/.ansible/tmp/b/AnsiballZ_archive_create.py"],
        ),
        # Newer, but not below the playbook.
        200: (1, 30, ["/venv/bin/python3", "/root/.ansible/tmp/c/AnsiballZ_archive_info.py"]),
    }
    assert kc.descendants(table, 100) == {101, 102, 103, 104}
    assert kc.newest_module(table, 100) == (104, "archive_create")
    assert kc.newest_module(table, 102) == (103, "lock")
    assert kc.newest_module(table, 103) is None


def test_the_process_table_of_this_host_holds_this_process():
    table = kc.process_table()
    assert os.getpid() in table
    assert table[os.getpid()][0] == os.getppid()


PROGRAM = (
    "import sys\n"
    + "x = 1\n" * 400
    + "run('ansible_collections.edms.backup.x._backend.load', 'main')\n"
)
WAITER = "import signal, time\nwhile True: time.sleep(3600)" + "\n" * 1200


def test_the_exec_chosen_is_the_newest_long_python_program():
    procs = [
        (1, 1, ["python", "-c", WAITER]),
        (7, 5, ["python", "-c", PROGRAM, "{}"]),
        (9, 6, ["/usr/local/bin/python3", "-c", PROGRAM.replace("load", "media"), "{}"]),
        (11, 8, ["python3", "-c", "import urllib.request; urllib.request.urlopen('x')"]),
        (12, 9, ["sh", "-c", PROGRAM]),
        (13, 10, ["python", "-c", WAITER]),
        (14, 11, ["gunicorn", "edms.wsgi"]),
    ]
    assert kc.choose_program(procs, own_pid=99) == (9, "media")
    assert kc.choose_program(procs, own_pid=9) == (7, "load")
    assert kc.choose_program(procs[3:], own_pid=99) is None


def test_the_in_container_finder_runs_and_kills_nothing_without_kill():
    """The program docker exec runs compiles and, run here without KILL, answers."""
    script = kc.exec_killer(kill=False)
    compile(script, "<exec_killer>", "exec")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(answer) == {"pid", "program"}
    assert "KILL = True" in kc.exec_killer()


# ---------------------------------------------------------------- the table


def record(i, operation, target, outcome, fallback=False, point="Take the project lock"):
    return {
        "type": "run",
        "seed": "s",
        "i": i,
        "operation": operation,
        "target": target,
        "delay": 1.5,
        "killed": {"what": "playbook" if fallback else target, "fallback": fallback},
        "point": point,
        "outcome": outcome,
    }


def test_the_table_counts_runs_kills_and_outcomes_per_operation_and_target():
    records = [
        record(0, "backup", "playbook", "before"),
        record(1, "restore", "module", "after"),
        record(2, "restore", "module", "after after recovery", fallback=True),
        record(3, "restore", "exec", "UNRESOLVED: the lock is there", point="Take a | pipe"),
    ]
    text = kc.render_table(
        records, "python tests/faults/kill_campaign.py --runs 4", {"restore": 90}
    )
    lines = text.splitlines()
    assert "python tests/faults/kill_campaign.py --runs 4" in lines
    header = next(line for line in lines if line.startswith("| operation | kill |"))
    assert header == (
        "| operation | kill | runs | killed as drawn | fell back to playbook | before | after"
        " | after after recovery | UNRESOLVED |"
    )
    assert "| backup | playbook | 1 | 1 | 0 | 1 | 0 | 0 | 0 |" in lines
    assert "| restore | module | 2 | 1 | 1 | 0 | 1 | 1 | 0 |" in lines
    assert "| restore | exec | 1 | 1 | 0 | 0 | 0 | 0 | 1 |" in lines
    assert "| **total** |  | 4 | 3 | 1 | 1 | 1 | 1 | 1 |" in lines
    assert "| restore | Take a \\| pipe | 1 | UNRESOLVED 1 |" in lines
    assert "- run 3 (restore killed at 1.5 s, exec): UNRESOLVED: the lock is there" in lines
    assert "Usual durations (the delays are drawn in [0.5 s, duration]): restore 90 s" in text


def test_a_clean_campaign_says_so():
    text = kc.render_table([record(0, "backup", "engine", "before")], "cmd")
    assert text.rstrip().endswith("None.")


def test_the_records_of_the_seed_are_read_the_newest_of_each_run_kept():
    lines = [
        json.dumps({"type": "campaign", "seed": "s", "durations": {"backup": 3}}),
        json.dumps(record(1, "backup", "exec", "UNRESOLVED: x")),
        json.dumps(record(0, "backup", "exec", "before")),
        json.dumps(dict(record(0, "backup", "exec", "before"), seed="other")),
        "",
        json.dumps(record(1, "backup", "exec", "before")),
    ]
    campaign, runs = kc.campaign_records(lines, "s")
    assert campaign["durations"] == {"backup": 3}
    assert [(r["i"], r["outcome"]) for r in runs] == [(0, "before"), (1, "before")]


def test_the_command_reproduces_the_plan_and_the_delays():
    args = kc.arguments(["--runs", "12", "--seed", "my seed", "--kills", "exec,module"])
    command = kc.reproduce_command(args, {"backup": 41.25, "restore": 90})
    assert command == (
        "python tests/faults/kill_campaign.py --runs 12 --seed 'my seed' --operations"
        " backup,restore --kills exec,module --durations backup=41.25,restore=90"
    )


# ---------------------------------------------------------------- the CLI


def test_the_dry_run_prints_the_plan_and_touches_nothing(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            HARNESS,
            "--dry-run",
            "--runs",
            "4",
            "--seed",
            kc.CI_SEED,
            "--durations",
            "backup=40,restore=90",
            "--out",
            str(tmp_path / "r.jsonl"),
            "--table",
            str(tmp_path / "t.md"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": "/nonexistent"},
    )
    lines = out.stdout.splitlines()
    assert lines[0] == f"kill campaign, seed {kc.CI_SEED!r}: 4 run(s) from run 0"
    assert len(lines) == 5
    assert {line.split()[4] for line in lines[1:]} == set(kc.TARGETS)
    assert list(tmp_path.iterdir()) == []


def test_bad_options_are_refused_by_the_cli():
    out = subprocess.run(
        [sys.executable, HARNESS, "--dry-run", "--kills", "playbook,reboot"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 2
    assert "kill target 'reboot' is not one of playbook, module, exec, engine" in out.stderr
