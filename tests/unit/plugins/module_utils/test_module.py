"""run_module(): the main() of every module, run in process on real arguments."""

import json
import sys

import pytest
from ansible.module_utils._internal import _traceback
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._module import run_module

SPEC = {"name": {"type": "str", "required": True}, "other": {"type": "str"}}


class Refused(ModuleFailure):
    pass


class Plain(Exception):
    pass


@pytest.fixture(autouse=True)
def fresh_traceback_setting(monkeypatch):
    """Ansible reads _ansible_tracebacks_for once per process (a module is one
    process); each test here is one module run, so each reads its own."""
    monkeypatch.setattr(_traceback, "_module_tracebacks_enabled_events", None)
    # A module's own rule, even where controller code (an action plugin's
    # test) was imported first and put the controller's in its place.
    monkeypatch.setattr(
        _traceback, "_is_traceback_enabled", _traceback._is_module_traceback_enabled
    )


def run(args, command, capsys, **kwargs):
    """What the module prints and its exit status."""
    with patch_module_args(args), pytest.raises(SystemExit) as exit_:
        run_module(SPEC, command, **kwargs)
    return exit_.value.code, json.loads(capsys.readouterr().out)


def test_the_command_gets_the_module_and_its_result_is_the_task_result(capsys):
    code, out = run(
        {"name": "x", "_ansible_check_mode": True},
        lambda module: {"seen": module.params["name"], "check": module.check_mode},
        capsys,
    )
    assert code == 0
    assert out["seen"] == "x"
    assert out["check"] is True
    assert "failed" not in out


def test_missing_libraries_fail_the_task_before_the_command_runs_saying_how_to_fix(capsys):
    ran = []
    code, out = run(
        # Ansible sends this when tracebacks are asked for (ANSIBLE_DISPLAY_TRACEBACK).
        {"name": "x", "_ansible_tracebacks_for": ["error"]},
        lambda module: ran.append(1) or {},
        capsys,
        libraries=[
            ("present.lib", True, None),
            ("ruamel.yaml", False, "Traceback: no ruamel"),
            ("docker", False, "Traceback: no docker"),
        ],
    )
    assert code == 1
    assert out["failed"] is True
    message = out["msg"]
    # Every missing library, the interpreter the module ran with, the fix.
    assert message.startswith(
        "Failed to import the required Python libraries (ruamel.yaml, docker) on "
    ), message
    assert f" with the interpreter {sys.executable} (Python " in message
    assert "run playbooks/prepare_host.yml on this host" in message
    assert "ansible_python_interpreter: <that environment's python>" in message
    assert "present.lib" not in message
    assert out["missing_libraries"] == ["ruamel.yaml", "docker"]
    assert out["interpreter"] == sys.executable
    assert out["exception"] == "Traceback: no ruamel"
    assert ran == []


def test_one_missing_library_is_named_alone(capsys):
    code, out = run(
        {"name": "x"},
        lambda module: {},
        capsys,
        libraries=[("docker", False, "Traceback: no docker"), ("jmespath", True, None)],
    )
    assert code == 1
    assert out["msg"].startswith("Failed to import the required Python library (docker) on ")
    assert out["missing_libraries"] == ["docker"]


def test_a_typed_failure_fails_with_its_message_and_its_partial_result(capsys):
    def command(module):
        raise Refused("archive x.zip is not restored: its migrations differ", stage="verify")

    code, out = run({"name": "x"}, command, capsys, errors=Refused)
    assert code == 1
    assert out["failed"] is True
    assert out["msg"] == "archive x.zip is not restored: its migrations differ"
    assert out["stage"] == "verify"


def test_a_failure_without_a_partial_result_fails_with_its_message_only(capsys):
    def command(module):
        raise Plain("cannot list backup directory /b: No such file or directory")

    code, out = run({"name": "x"}, command, capsys, errors=(Refused, Plain))
    assert code == 1
    assert out["msg"] == "cannot list backup directory /b: No such file or directory"
    assert set(out) <= {"failed", "msg", "invocation"}


def test_an_error_not_named_is_not_turned_into_a_failure(capsys):
    def command(module):
        raise Plain("a bug")

    with patch_module_args({"name": "x"}), pytest.raises(Plain, match="a bug"):
        run_module(SPEC, command, errors=Refused)


def test_module_options_reach_ansible_module(capsys):
    code, out = run({"name": "x"}, lambda module: {}, capsys, required_together=[("name", "other")])
    assert code == 1
    assert "parameters are required together: name, other" in out["msg"]


def test_a_module_without_check_mode_skips_in_check_mode(capsys):
    ran = []
    code, out = run(
        {"name": "x", "_ansible_check_mode": True},
        lambda module: ran.append(1) or {},
        capsys,
        supports_check_mode=False,
    )
    assert code == 0
    assert out["skipped"] is True
    assert ran == []
