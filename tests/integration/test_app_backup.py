"""The application's own backup, as the checklist tests it (Steps 3 to 6,
Test 1), and the rehearsal of such a backup (Test 3 on the native format),
against the demo stack: its BackupService, its real database and media.

Every backup job a test makes is removed again, with its files, so that the
stack keeps its seed (test_seeded_stack counts the jobs).
"""

import hashlib
import json
import os
import re
import zipfile

import pytest

from .conftest import (
    COMPOSE_FILE,
    RUN,
    backend,
    db_sql,
    django_json,
    run_module,
    run_playbook,
    table_digests,
)

BACKUPS = os.path.join(RUN, "backups")
# The collection's own archives (edms_archive_dir of the demo inventory).
ARCHIVES = os.path.join(RUN, "edms-archives")
STEP3 = ["documents.Document", "users.User", "workflows.Workflow"]
PROJECT = {
    "project_dir": RUN,
    "compose_files": ["docker-compose.prod.yml"],
    "backup_dir": BACKUPS,
}


def step3_counts():
    """The checklist's Step 3, as it runs it: the default managers' counts."""
    return django_json(
        "from apps.documents.models import Document\n"
        "from apps.users.models import User\n"
        "from apps.workflows.models import Workflow\n"
        "print(json.dumps({'documents.Document': Document.objects.count(),"
        " 'users.User': User.objects.count(), 'workflows.Workflow': Workflow.objects.count()}))"
    )


def job_ids():
    return set(
        django_json(
            "from apps.backup.models import BackupJob\n"
            "print(json.dumps([str(pk) for pk in BackupJob.objects.values_list('pk', flat=True)]))"
        )
    )


def container_listing():
    return set(backend("ls", "-1", "/app/backups").stdout.split())


def host_listing():
    return set(os.listdir(BACKUPS)) if os.path.isdir(BACKUPS) else set()


@pytest.fixture
def app_backups(stack):
    """Remove the jobs, configurations and backup files a test's application
    backups made (the seed stays as it was)."""
    jobs = job_ids()
    configurations = set(
        django_json(
            "from apps.backup.models import BackupConfiguration\n"
            "print(json.dumps([str(pk) for pk in"
            " BackupConfiguration.objects.values_list('pk', flat=True)]))"
        )
    )
    inside, outside = container_listing(), host_listing()
    yield
    # Files first: new ones on the host, then new ones the container's own
    # layer holds (none when /app/backups is the host's directory by then).
    for name in host_listing() - outside:
        path = os.path.join(BACKUPS, name)
        if os.path.isfile(path):
            os.remove(path)
    for name in container_listing() - host_listing() - inside:
        backend("rm", "-rf", "/app/backups/" + name)
    django_json(
        "from apps.backup.models import BackupConfiguration, BackupJob\n"
        f"keep = {sorted(jobs)!r}\n"
        "BackupJob.objects.exclude(pk__in=keep).delete()\n"
        f"BackupConfiguration.objects.exclude(pk__in={sorted(configurations)!r}).delete()\n"
        "print(json.dumps(True))"
    )


def sha256_in_container(path):
    return backend("sha256sum", path).stdout.split()[0]


def sha256_on_host(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def storage_fixed():
    proc = run_playbook("storage.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_before_the_storage_fix_the_backup_lands_only_in_the_container_and_the_step_fails(
    checklist_state, app_backups
):
    inside, outside = container_listing(), host_listing()
    proc = run_playbook("app_backup.yml")
    assert proc.returncode != 0
    assert "is only inside the container" in proc.stdout
    assert "known issue 1" in proc.stdout
    assert "BACKUP_DIR is not set" in proc.stdout
    new = container_listing() - inside
    assert len(new) == 1, new  # the application made its backup ...
    (name,) = new
    assert name.endswith(".zip")
    assert name not in host_listing()  # ... where the host never sees it
    assert host_listing() == outside


def test_after_the_storage_fix_the_backup_is_on_the_host_and_in_the_container_verified(
    checklist_state, app_backups
):
    storage_fixed()
    before = step3_counts()
    jobs = job_ids()
    rc, result, warnings = run_module(
        "app_backup", dict(PROJECT, count_models=STEP3), warnings=True
    )
    assert rc == 0, result.get("msg")
    assert result["user"] == "admin"
    assert result["configuration"]["how"] == "first"
    assert result["backup_dir"] == {"setting": "/app/backups", "path": "/app/backups"}
    job = result["job"]
    assert job["status"] == "COMPLETED"
    assert job_ids() - jobs == {job["pk"]}
    container_path = job["backup_path"]
    backup = result["backup"]
    host_path = os.path.join(BACKUPS, os.path.basename(container_path))
    assert backup["host_path"] == host_path
    # Step 5: the same file in both places, checked here by other means.
    digest = sha256_on_host(host_path)
    assert digest == sha256_in_container(container_path)
    assert backup["on_host"] == backup["in_container"]
    assert backup["on_host"]["sha256"] == digest
    assert backup["on_host"]["size"] == os.path.getsize(host_path) == job["size_bytes"]
    # The name: UTC, as the checklist says (known issue 3).
    name = os.path.basename(container_path)
    assert (
        name == job["started_at"][:19].replace("-", "").replace("T", "_").replace(":", "") + ".zip"
    )
    # Step 6: the native layout, verified, and the counts of Step 3.
    assert result["verification"]["layout"] == "edms-native zip"
    assert result["verification"]["ok"] is True
    assert {label: row["backup"] for label, row in result["counts"].items()} == before
    assert all(row["equal"] for row in result["counts"].values())
    assert any("rows its default manager hides are not in it" in w for w in warnings), warnings
    assert result["summary"][0].startswith("Ran ")


def test_the_playbook_passes_once_storage_is_fixed_and_prints_the_summary(
    checklist_state, app_backups
):
    storage_fixed()
    proc = run_playbook("app_backup.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Layout      edms-native zip, verified" in proc.stdout
    assert "Counts      users.User: backup 12, live 12 (12 rows)" in proc.stdout
    # The job's start in UTC and in the inventory's display zone (known issue 3).
    assert re.search(
        r"Started     \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(.* \+08 Asia/Singapore\)", proc.stdout
    )


def test_a_configuration_the_service_rejects_fails_with_its_message_and_changes_nothing(
    checklist_state, app_backups
):
    storage_fixed()
    django_json(
        "from apps.backup.models import BackupConfiguration\n"
        "from apps.users.models import User\n"
        "BackupConfiguration.objects.create(name='Retired', backup_type='FULL',"
        " is_active=False, created_by=User.objects.get(username='admin'))\n"
        "print(json.dumps(True))"
    )
    tables, inside, outside = table_digests(), container_listing(), host_listing()
    with open(COMPOSE_FILE, "rb") as handle:
        compose_file = handle.read()
    rc, result = run_module("app_backup", dict(PROJECT, configuration={"name": "Retired"}))
    assert rc != 0
    assert result["msg"] == (
        "the application's backup failed: backup configuration 'Retired' is not active"
    )
    assert table_digests() == tables
    assert (container_listing(), host_listing()) == (inside, outside)
    with open(COMPOSE_FILE, "rb") as handle:
        assert handle.read() == compose_file


def test_a_user_who_may_not_run_backups_gets_the_services_own_message(checklist_state, app_backups):
    storage_fixed()
    user = django_json(
        "from apps.users.models import User\n"
        "print(json.dumps(User.objects.filter(is_staff=False).order_by('pk')"
        ".values_list('username', flat=True).first()))"
    )
    assert user
    tables = table_digests()
    rc, result = run_module("app_backup", dict(PROJECT, run_as=user))
    assert rc != 0
    assert result["msg"] == f"the application's backup failed: user {user} may not run backups"
    assert table_digests() == tables


def test_check_mode_says_what_would_run_and_changes_nothing(checklist_state, app_backups):
    tables, inside, outside = table_digests(), container_listing(), host_listing()
    rc, result, warnings = run_module("app_backup", PROJECT, check_mode=True, warnings=True)
    assert rc == 0, result.get("msg")
    # In the checklist's state: the backup would land only inside the container.
    assert result["would_land_on_host"] is None
    assert any("known issue 1" in w for w in warnings), warnings
    assert result["would_run"] == (
        "apps.backup.services.BackupService().execute_backup(configuration, user)"
    )
    assert result["user"] == "admin"
    assert result["configuration"]["text"] == "Nightly full backup"
    assert result["changed"] is True
    assert table_digests() == tables
    assert (container_listing(), host_listing()) == (inside, outside)
    storage_fixed()
    rc, result = run_module("app_backup", PROJECT, check_mode=True)
    assert rc == 0, result.get("msg")
    assert result["would_land_on_host"] == BACKUPS


def test_the_command_method_finds_the_backup_the_command_wrote(checklist_state, app_backups):
    storage_fixed()
    args = dict(
        PROJECT,
        method="command",
        command=["python", "manage.py", "backup_now", "--config", "Hourly database backup"],
        count_models=STEP3,
    )
    rc, result = run_module("app_backup", args)
    assert rc == 0, result.get("msg")
    assert "job" not in result
    host_path = result["backup"]["host_path"]
    assert sha256_on_host(host_path) == result["backup"]["in_container"]["sha256"]
    # A database-only configuration: no media in it.
    assert result["verification"]["layout"] == "edms-native zip"
    with zipfile.ZipFile(host_path) as archive:
        names = archive.namelist()
    assert sorted(names) == ["database_backup.json", "metadata.json"]


def test_a_failing_command_fails_with_its_own_message(checklist_state, app_backups):
    storage_fixed()
    args = dict(
        PROJECT,
        method="command",
        command=["python", "manage.py", "backup_now", "--config", "No such configuration"],
    )
    rc, result = run_module("app_backup", args)
    assert rc != 0
    assert "no backup configuration named 'No such configuration'" in result["msg"]


def models_missing(result, label):
    return result["models"][label]["missing"]


def rehearse(archive):
    return run_module(
        "archive_rehearse",
        {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"], "archive": archive},
    )


def databases():
    return set(db_sql("SELECT datname FROM pg_database").split())


def test_the_applications_backup_of_the_seed_cannot_be_restored_and_the_rehearsal_says_why(
    checklist_state, app_backups
):
    # The seed holds soft-deleted documents with versions; the application's
    # backup leaves the documents out (its default manager) but not their
    # versions, so Django's loaddata fails on a foreign key.
    storage_fixed()
    rc, made = run_module("app_backup", PROJECT)
    assert rc == 0, made.get("msg")
    tables = table_digests()
    rc, result = rehearse(made["backup"]["host_path"])
    assert rc != 0
    assert "violates foreign key constraint" in result["msg"]
    assert "documents_documentversion" in result["msg"]
    assert result["dropped"] is True
    assert "edms_test_restore" not in databases()
    assert table_digests() == tables
    assert result["models"]["documents.Document"] == {"live": 60, "backup": 54}
    assert result["losses"]["documents.Document"] == ["the backup holds 54 of 60 live rows"]


@pytest.fixture
def no_hidden_rows(stack):
    """The soft-deleted documents shown again (and an entry in the admin's
    log), so that the application's backup can be loaded; put back after."""
    before = django_json(
        "from apps.documents.models import Document\n"
        "print(json.dumps([str(pk) for pk in"
        " Document.all_objects.filter(is_deleted=True).values_list('pk', flat=True)]))"
    )
    assert before
    django_json(
        "from apps.documents.models import Document\n"
        "from apps.users.models import User\n"
        "from django.contrib.admin.models import LogEntry, CHANGE\n"
        "Document.all_objects.filter(is_deleted=True).update(is_deleted=False)\n"
        "admin = User.objects.get(username='admin')\n"
        "LogEntry.objects.create(user=admin, object_repr='probe', action_flag=CHANGE,"
        " change_message='edms.backup test')\n"
        "print(json.dumps(True))"
    )
    yield
    django_json(
        "from apps.documents.models import Document\n"
        "from django.contrib.admin.models import LogEntry\n"
        f"Document.all_objects.filter(pk__in={before!r}).update(is_deleted=True)\n"
        "LogEntry.objects.filter(change_message='edms.backup test').delete()\n"
        "print(json.dumps(True))"
    )


def test_rehearsing_the_applications_backup_reports_per_model_what_it_loses(
    checklist_state, app_backups, no_hidden_rows
):
    storage_fixed()
    rc, made = run_module(
        "app_backup", dict(PROJECT, configuration={"name": "Hourly database backup"})
    )
    assert rc == 0, made.get("msg")
    expected = django_json(
        "from apps.documents.models import Document\n"
        "import os\n"
        "from django.conf import settings\n"
        "media = sum(len(f) for _d, _s, f in os.walk(settings.MEDIA_ROOT))\n"
        "cut = sum(1 for d in Document.all_objects.all() if d.created_at.microsecond % 1000)\n"
        "print(json.dumps({'media': media, 'cut': cut, 'documents': Document.all_objects.count()}))"
    )
    session_key = django_json(
        "from django.contrib.sessions.backends.db import SessionStore\n"
        "s = SessionStore(); s['probe'] = 1; s.create()\n"
        "print(json.dumps(s.session_key))"
    )
    tables = table_digests()
    try:
        rc, result = rehearse(made["backup"]["host_path"])
    finally:
        django_json(
            "from django.contrib.sessions.models import Session\n"
            f"Session.objects.filter(session_key={session_key!r}).delete()\n"
            "print(json.dumps(True))"
        )
    assert rc == 0, result.get("msg")
    assert table_digests() == tables  # the live data was only read
    # A live session the backup does not hold is counted, its key never shown.
    assert models_missing(result, "sessions.Session") >= 1
    assert session_key not in json.dumps(result)
    assert result["layout"] == "edms-native zip"
    assert result["dropped"] is True
    models, losses = result["models"], result["losses"]
    # Every document came back, but its times lost their microseconds.
    document = models["documents.Document"]
    assert (document["live"], document["loaded"], document["missing"]) == (
        expected["documents"],
        expected["documents"],
        0,
    )
    assert document["fields"]["created_at"] == {
        "rows": expected["cut"],
        "kind": "times cut to milliseconds",
    }
    # A UUID key with a natural key: loaddata makes new ones.
    configuration = models["backup.BackupConfiguration"]
    assert configuration["pk_replaced"] == configuration["live"] == 2
    assert (
        "2 rows get a new primary key (natural primary keys)"
        in losses["backup.BackupConfiguration"]
    )
    # The admin's log is left out of the application's backup.
    assert models["admin.LogEntry"]["missing"] == 1
    assert losses["admin.LogEntry"] == ["1 of 1 live rows are not restored (the backup holds 0)"]
    # A database-only configuration: no media at all.
    assert result["media"]["included"] is False
    assert losses["media"] == [f"media not included: {expected['media']} live files"]
    # A model the backup holds whole and unchanged is not a loss.
    assert models["workflows.WorkflowStep"]["missing"] == 0
    # Recorded beside the archive, as every rehearsal is.
    with open(made["backup"]["host_path"] + ".status.json", encoding="utf-8") as handle:
        assert json.load(handle)["rehearsal"]["ok"] is True


API = "http://127.0.0.1:8001/api/backups/"
# seed_demo's password of every seeded user (demo/app/apps/documents/...).
SEED_PASSWORD = "demo-password-not-secret"


def test_the_http_method_posts_to_the_api_and_waits_for_the_job_it_names(
    checklist_state, app_backups
):
    storage_fixed()
    jobs = job_ids()
    args = dict(
        PROJECT,
        method="http",
        url=API,
        url_username="admin",
        url_password=SEED_PASSWORD,
        body={"configuration": "Hourly database backup"},
        count_models=STEP3,
    )
    rc, result = run_module("app_backup", args)
    assert rc == 0, result.get("msg")
    assert result["call"] == f"POST {API}"
    assert result["job"]["status"] == "COMPLETED"
    assert job_ids() - jobs == {result["job"]["pk"]}
    host_path = result["backup"]["host_path"]
    assert sha256_on_host(host_path) == sha256_in_container(result["job"]["backup_path"])


def test_the_apis_refusals_fail_with_its_message_and_never_show_the_password(
    checklist_state, app_backups
):
    storage_fixed()
    tables = table_digests()
    wrong = "not-the-password-of-admin"
    args = dict(PROJECT, method="http", url=API, url_username="admin", url_password=wrong)
    rc, result = run_module("app_backup", args)
    assert rc != 0
    assert result["msg"] == (
        f"the application's backup failed: HTTP 401 from {API}: authentication failed"
    )
    args.update(url_password=SEED_PASSWORD, body={"configuration": "No such one"})
    rc, result = run_module("app_backup", args)
    assert rc != 0
    assert result["msg"] == (
        f"the application's backup failed: HTTP 404 from {API}:"
        " no backup configuration named 'No such one'"
    )
    assert table_digests() == tables
    rc, result = run_module("app_backup", args, check_mode=True)
    assert rc == 0, result.get("msg")
    assert result["would_run"] == f"POST {API}"
    assert table_digests() == tables


def archives():
    """The collection's archives in the demo's archive directory."""
    if not os.path.isdir(ARCHIVES):
        return set()
    return {n for n in os.listdir(ARCHIVES) if n.startswith("edms_") and n.endswith(".zip")}


def test_site_goes_on_to_the_collections_backup_when_the_applications_fails(
    checklist_state, app_backups
):
    before = archives()
    proc = run_playbook("site.yml", "app_backup_service=apps.backup.services.NoSuchService")
    assert proc.returncode != 0
    assert "The application's own backup failed (everything else above ran)" in proc.stdout
    assert "has no NoSuchService" in proc.stdout
    new = archives() - before
    assert len(new) == 1, proc.stdout[-3000:]  # the collection's backup still ran, verified
    assert "Rehearsal   passed" in proc.stdout
    for name in new:
        os.remove(os.path.join(ARCHIVES, name))
        status = os.path.join(ARCHIVES, name + ".status.json")
        if os.path.exists(status):
            os.remove(status)


def test_an_archive_of_this_collections_format_renamed_is_rehearsed_as_one(stack, app_backups):
    proc = run_playbook("backup.yml", "backup_prune=false")
    assert proc.returncode == 0, proc.stdout[-3000:]
    newest = max(archives())
    renamed = os.path.join(BACKUPS, "pre-upgrade.zip")
    with open(os.path.join(ARCHIVES, newest), "rb") as source, open(renamed, "wb") as copy:
        copy.write(source.read())
    rc, result = rehearse(renamed)
    assert rc == 0, result.get("msg")
    # The collection's own checks ran (its identities), not the native path.
    assert result["identities"]["equal"] is True
    assert "layout" not in result
