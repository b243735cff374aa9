"""Each AWX job template's playbook run the way AWX runs it, against the demo stack.

AWX syncs the project (this repository), installs collections/requirements.yml
with ansible-galaxy, and starts ansible-runner on a private data directory:
env/extravars holds the survey's answers (the survey defaults, overridden by
what was answered or handed on by set_stats), inventory/ the inventory. The
tests do the same with ansible-runner, and read set_stats from the
playbook_on_stats event's artifact_data, as AWX does.
"""

import json
import os
import shutil
import tempfile

import ansible_runner
import pytest
import yaml

from .conftest import (
    BIN,
    ROOT,
    RUN,
    backups_of_compose_file,
    content,
    django_json,
    manage,
    reset,
    run,
    run_module,
)

with open(os.path.join(ROOT, "awx", "job_templates.yml")) as _handle:
    TEMPLATES = {t["name"]: t for t in yaml.safe_load(_handle)["edms_job_templates"]}
BACKUPS = os.path.join(RUN, "edms-archives")
# The application's own backup directory (edms_backup_dir).
APP_BACKUPS = os.path.join(RUN, "backups")
PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}
HOST = "edms-demo"


@pytest.fixture(scope="module")
def project(stack):
    """What AWX's project sync leaves: the collections of collections/requirements.yml.

    The deployment gets its storage first, through the Storage job template,
    as an operator's first AWX job would; the compose file is put back to the
    checklist's state afterwards for the tests that follow.
    """
    collections = tempfile.mkdtemp(prefix="edms-awx-collections-")
    copies = backups_of_compose_file()
    run(
        [
            os.path.join(BIN, "ansible-galaxy"),
            *("collection", "install", "-r", "collections/requirements.yml", "-p", collections),
        ],
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": collections},
        cwd=ROOT,
    )
    assert os.path.isfile(
        os.path.join(collections, "ansible_collections", "edms", "backup", "MANIFEST.json")
    )
    status, stdout, _artifacts = launch(collections, "EDMS Storage")
    assert status == "successful", stdout[-4000:]
    yield collections
    shutil.rmtree(collections, ignore_errors=True)
    reset()
    for path in backups_of_compose_file() - copies:
        os.remove(path)


def inventory():
    """The demo inventory as an AWX inventory holds it: plain values, absolute paths."""
    with open(os.path.join(ROOT, "inventories", "demo", "group_vars", "edms.yml")) as handle:
        variables = yaml.safe_load(handle)
    variables.update(
        edms_project_dir=RUN,
        edms_backup_dir=APP_BACKUPS,
        edms_archive_dir=BACKUPS,
    )
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": os.path.join(BIN, "python"),
    }
    return {"all": {"children": {"edms": {"hosts": {HOST: host}, "vars": variables}}}}


def survey_answers(template, answers):
    """The extra vars AWX passes: each question's default, then the answers given."""
    extravars = {
        question["variable"]: question["default"]
        for question in TEMPLATES[template]["survey"]
        if "default" in question
    }
    extravars.update(answers)
    return extravars


def launch(project, template, **answers):
    """Run a job template's playbook through ansible-runner; (runner, artifact_data)."""
    data = tempfile.mkdtemp(prefix="edms-awx-job-")
    try:
        os.makedirs(os.path.join(data, "env"))
        os.makedirs(os.path.join(data, "inventory"))
        with open(os.path.join(data, "env", "extravars"), "w") as handle:
            yaml.safe_dump(survey_answers(template, answers), handle)
        with open(os.path.join(data, "inventory", "hosts.yml"), "w") as handle:
            yaml.safe_dump(inventory(), handle)
        with open(os.path.join(data, "env", "envvars"), "w") as handle:
            yaml.safe_dump({"ANSIBLE_COLLECTIONS_PATH": project}, handle)
        runner = ansible_runner.run(
            private_data_dir=data,
            project_dir=ROOT,
            playbook=TEMPLATES[template]["playbook"],
            quiet=True,
            timeout=900,
        )
        stdout = runner.stdout.read()
        stats = [e for e in runner.events if e.get("event") == "playbook_on_stats"]
        artifacts = stats[-1]["event_data"].get("artifact_data", {}) if stats else {}
        return runner.status, stdout, artifacts
    finally:
        shutil.rmtree(data, ignore_errors=True)


def archives():
    return sorted(name for name in os.listdir(BACKUPS) if name.endswith(".zip"))


def lock_is_free():
    return not os.path.exists(os.path.join(RUN, ".edms-backup.lock"))


def test_the_collection_comes_from_the_project_sync_not_from_this_checkout(project):
    # Freshness is preflight's own test's business (test_preflight_freshness):
    # here the demo backup directory holds whatever earlier tests left.
    status, stdout, _artifacts = launch(
        project,
        "EDMS Preflight",
        preflight_max_backup_age_hours=0,
        preflight_min_backup_size_ratio=0,
    )
    assert status == "successful", stdout[-4000:]
    # The installed copy is a build of the directory, not a link to it.
    installed = os.path.join(project, "ansible_collections", "edms", "backup")
    assert not os.path.islink(installed)
    assert os.path.isfile(os.path.join(installed, "FILES.json"))


def test_storage_again_changes_nothing(project):
    status, stdout, _artifacts = launch(project, "EDMS Storage")
    assert status == "successful", stdout[-4000:]
    assert "changed=0" in stdout, stdout[-2000:]


def test_the_workflow_backup_verify_rehearse_hands_the_archive_on(project):
    before = set(archives())
    status, stdout, handed = launch(project, "EDMS Backup", backup_label="awx")
    assert status == "successful", stdout[-4000:]
    made = sorted(set(archives()) - before)
    assert len(made) == 1, made
    assert handed == {"edms_archive": os.path.join(BACKUPS, made[0])}

    status, stdout, verified = launch(project, "EDMS Verify", **handed)
    assert status == "successful", stdout[-4000:]
    assert verified == handed
    assert f"{made[0]} (edms.backup v1): verification passed" in stdout

    status, stdout, _artifacts = launch(project, "EDMS Rehearse", **verified)
    assert status == "successful", stdout[-4000:]
    status_file = os.path.join(BACKUPS, made[0] + ".status.json")
    with open(status_file) as handle:
        assert json.load(handle)["rehearsal"]["ok"] is True
    assert lock_is_free()


def test_the_application_backup_template_runs_the_applications_own_backup(project):
    jobs = django_json(
        "from apps.backup.models import BackupJob\n"
        "print(json.dumps([str(pk) for pk in BackupJob.objects.values_list('pk', flat=True)]))"
    )
    files = set(os.listdir(APP_BACKUPS))
    try:
        status, stdout, _artifacts = launch(project, "EDMS Application Backup")
        assert status == "successful", stdout[-4000:]
        assert "Layout      edms-native zip, verified" in stdout
        made = set(os.listdir(APP_BACKUPS)) - files
        assert len(made) == 1, made
        assert lock_is_free()
    finally:
        django_json(
            "from apps.backup.models import BackupJob\n"
            f"BackupJob.objects.exclude(pk__in={jobs!r}).delete()\n"
            "print(json.dumps(True))"
        )
        for name in set(os.listdir(APP_BACKUPS)) - files:
            os.remove(os.path.join(APP_BACKUPS, name))


def test_restore_then_rollback_through_their_templates(project):
    status, stdout, handed = launch(project, "EDMS Backup", backup_label="awx-restore")
    assert status == "successful", stdout[-4000:]
    at_backup = content()
    # New activity, so that a restore that did nothing cannot pass for one.
    manage("simulate_activity", "--iterations", "1", "--interval", "0")
    before = content()
    assert before["tables"] != at_backup["tables"]
    archives_before = set(archives())
    status, stdout, _artifacts = launch(
        project, "EDMS Restore", edms_restore_confirm=HOST, **handed
    )
    assert status == "successful", stdout[-4000:]
    assert content() == at_backup
    safety = sorted(set(archives()) - archives_before)
    assert len(safety) == 1, safety
    status, stdout, _artifacts = launch(
        project,
        "EDMS Rollback",
        edms_archive=os.path.join(BACKUPS, safety[0]),
        edms_restore_confirm=HOST,
    )
    assert status == "successful", stdout[-4000:]
    assert content() == before
    assert lock_is_free()
    # The tests that follow expect the seeded content: back to the backup's.
    rc, result = run_module("archive_restore", {**PROJECT, "archive": handed["edms_archive"]})
    assert rc == 0, result.get("msg")
    run_module("restore_finish", {**PROJECT, "token": result["token"]})
    assert content() == at_backup


@pytest.mark.parametrize(
    ("template", "answers", "says"),
    [
        (
            "EDMS Restore",
            {"edms_archive": "/nonexistent/edms_missing.zip", "edms_restore_confirm": HOST},
            "edms_archive is /nonexistent/edms_missing.zip, which does not exist",
        ),
        (
            "EDMS Restore",
            {"edms_restore_confirm": "staging"},
            "edms_restore_confirm is 'staging', which is not this host's name",
        ),
        (
            "EDMS Rollback",
            {"edms_restore_confirm": "edms-prod"},
            "edms_restore_confirm is 'edms-prod', which is not this host's name",
        ),
        ("EDMS Backup", {"backup_keep_last": -1}, "backup_keep_last is -1"),
        ("EDMS Backup", {"backup_keep_daily": "seven"}, "backup_keep_daily"),
        (
            "EDMS Backup",
            {"backup_count_drop_threshold": 1.5},
            "backup_count_drop_threshold is 1.5",
        ),
        ("EDMS Storage", {"storage_recreate": "maybe"}, "storage_recreate"),
    ],
    ids=[
        "missing-archive",
        "wrong-confirmation",
        "wrong-confirmation-rollback",
        "negative-retention",
        "retention-not-a-number",
        "threshold-above-1",
        "not-a-bool",
    ],
)
def test_a_bad_survey_answer_fails_before_any_change_naming_the_field(
    project, template, answers, says
):
    if "edms_archive" not in answers and template in ("EDMS Restore", "EDMS Rollback"):
        existing = archives()
        assert existing, "the demo backup directory holds no archive"
        answers = {"edms_archive": os.path.join(BACKUPS, existing[-1]), **answers}
    before = content()
    archives_before = archives()
    compose_file = os.path.join(RUN, "docker-compose.prod.yml")
    with open(compose_file, "rb") as handle:
        compose_before = handle.read()
    status, stdout, _artifacts = launch(project, template, **answers)
    assert status == "failed", stdout[-4000:]
    assert says in stdout, stdout[-4000:]
    assert "changed=0" in stdout, stdout[-2000:]
    assert archives() == archives_before
    assert content() == before
    with open(compose_file, "rb") as handle:
        assert handle.read() == compose_before
    assert lock_is_free()
