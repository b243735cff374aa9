import json

from ansible_collections.edms.backup.plugins.module_utils._deployment.migrations import (
    compare,
    migrations_command,
)

STATE = {"documents": ["0001_initial", "0002_status"], "users": ["0001_initial"]}


def test_the_same_state_in_any_order_has_no_differences():
    shuffled = {"users": ["0001_initial"], "documents": ["0002_status", "0001_initial"]}
    assert compare(STATE, shuffled) == []


def test_each_difference_is_one_line_naming_app_and_migrations():
    target = {
        "documents": ["0001_initial", "0002_status", "0003_retention"],
        "workflows": ["0001_initial"],
    }
    assert compare(STATE, target) == [
        "documents: the target has 0003_retention, which the archive lacks",
        "users: in the archive (1 migrations), not in the target",
        "workflows: in the target (1 migrations), not in the archive",
    ]


def test_a_target_behind_the_archive_is_named():
    assert compare(STATE, {"documents": ["0001_initial"], "users": ["0001_initial"]}) == [
        "documents: the target lacks 0002_status"
    ]


def test_the_request_names_the_target_database():
    argv = migrations_command("python", "edms.settings", "edms_test_restore")
    assert json.loads(argv[3]) == {"settings": "edms.settings", "database": "edms_test_restore"}
