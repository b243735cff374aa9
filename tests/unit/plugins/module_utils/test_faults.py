"""injected_fault(): a fault only under the test marker, and only a known stage."""

import os

import pytest
import yaml
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_restore import (
    RESTORE_FAIL_STAGES,
)
from ansible_collections.edms.backup.plugins.module_utils._faults import FaultError, injected_fault

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
)
STAGES = ("media_swap", "load", "after_commit")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv("EDMS_BACKUP_TEST_FAULT", raising=False)
    monkeypatch.delenv("EDMS_BACKUP_TEST_MODE", raising=False)


def test_no_fault_without_the_variables():
    assert injected_fault(STAGES) is None


def test_the_stage_under_the_test_marker(monkeypatch):
    monkeypatch.setenv("EDMS_BACKUP_TEST_MODE", "1")
    monkeypatch.setenv("EDMS_BACKUP_TEST_FAULT", "load")
    assert injected_fault(STAGES) == "load"


@pytest.mark.parametrize("marker", [None, "", "0", "true", "yes"])
def test_the_fault_is_ignored_without_the_marker_set_to_1(monkeypatch, marker):
    monkeypatch.setenv("EDMS_BACKUP_TEST_FAULT", "load")
    if marker is not None:
        monkeypatch.setenv("EDMS_BACKUP_TEST_MODE", marker)
    assert injected_fault(STAGES) is None


def test_an_empty_fault_under_the_marker_is_none(monkeypatch):
    monkeypatch.setenv("EDMS_BACKUP_TEST_MODE", "1")
    monkeypatch.setenv("EDMS_BACKUP_TEST_FAULT", "")
    assert injected_fault(STAGES) is None


def test_an_unknown_stage_is_refused_naming_the_variable_and_the_stages(monkeypatch):
    monkeypatch.setenv("EDMS_BACKUP_TEST_MODE", "1")
    monkeypatch.setenv("EDMS_BACKUP_TEST_FAULT", "later")
    with pytest.raises(FaultError) as error:
        injected_fault(STAGES)
    assert str(error.value) == (
        "EDMS_BACKUP_TEST_FAULT='later' is not a stage where a fault can be injected"
        " (one of media_swap, load, after_commit)"
    )


def test_an_unknown_stage_without_the_marker_is_ignored(monkeypatch):
    monkeypatch.setenv("EDMS_BACKUP_TEST_FAULT", "later")
    assert injected_fault(STAGES) is None


def test_the_live_restore_offers_every_stage_the_fault_scenario_tries():
    with open(os.path.join(ROOT, "molecule", "restore_faults", "converge.yml")) as handle:
        (play,) = yaml.safe_load(handle)
    (task,) = [
        t for t in play["tasks"] if t.get("loop_control", {}).get("loop_var") == "__converge_stage"
    ]
    assert task["loop"]
    assert set(task["loop"]) <= set(RESTORE_FAIL_STAGES)
