"""The demo stack holds what the seed asked for, with the traps of the real EDMS."""

import json

import pytest

from .conftest import TINY, backend, compose, db_sql, django_json, manage

COUNT_ALL = """
from django.apps import apps
print(json.dumps({m._meta.label_lower: m._base_manager.count()
                  for m in apps.get_models(include_auto_created=True)}))
"""


def expected_counts(users, documents, versions, workflows, steps):
    return {
        "users.user": users,
        "auth.group": 3,
        "documents.documenttype": 5,
        "documents.document": documents,
        "documents.documentversion": documents * versions,
        "workflows.workflow": workflows,
        "workflows.workflow_participants": workflows * min(3, users),
        "workflows.workflowstep": workflows * steps,
        "backup.backupconfiguration": 2,
        "backup.backupjob": 3,
        "backup.restorejob": 1,
        "audit.audittrail": documents + workflows,
    }


def test_live_database_holds_the_default_seed(stack):
    counts = django_json(COUNT_ALL)
    want = expected_counts(
        TINY["users"], TINY["documents"], TINY["versions"], TINY["workflows"], TINY["steps"]
    )
    assert {label: counts[label] for label in want} == want


def test_every_document_has_its_media_file_in_the_volume(stack):
    listing = backend(
        "find", "/app/storage/media", "-type", "f", "-printf", "%s %P\\n"
    ).stdout.split("\n")
    files = dict(reversed(line.split(" ", 1)) for line in listing if line)
    names = django_json(
        "from apps.documents.models import Document\n"
        "print(json.dumps([d.file.name for d in Document._base_manager.all()]))"
    )
    assert len(names) == TINY["documents"]
    assert set(names) <= set(files)
    assert {int(files[name]) for name in names} == {TINY["file_size"]}


def test_soft_delete_manager_hides_rows_the_base_manager_sees(stack):
    counts = django_json(
        "from apps.documents.models import Document\n"
        "print(json.dumps([Document.objects.count(), Document._base_manager.count(),"
        " Document.all_objects.count()]))"
    )
    total = TINY["documents"]
    assert counts == [total - total // 10, total, total]


def test_postgres_speaks_utf8_and_the_app_uses_its_time_zone(checklist_state):
    assert db_sql("SHOW server_encoding").strip() == "UTF8"
    settings = django_json(
        "from django.conf import settings\n"
        "print(json.dumps([settings.USE_TZ, settings.TIME_ZONE, settings.BACKUP_DIR]))"
    )
    # BACKUP_DIR unset: the template is the checklist's state, which storage fixes.
    assert settings == [True, "Asia/Singapore", None]


@pytest.fixture
def scratch_database(stack):
    name = "edms_seedcheck"
    db_sql(f"DROP DATABASE IF EXISTS {name}", database="postgres")
    db_sql(f"CREATE DATABASE {name}", database="postgres")
    yield name
    db_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", database="postgres")
    backend("rm", "-rf", "/tmp/seedcheck-media")


def test_seed_writes_exactly_the_requested_scale(scratch_database):
    env = {"POSTGRES_DB": scratch_database, "MEDIA_ROOT": "/tmp/seedcheck-media"}
    manage("migrate", "--noinput", env=env)
    args = [
        "--users",
        "7",
        "--documents",
        "23",
        "--versions",
        "3",
        "--workflows",
        "11",
        "--steps",
        "4",
        "--file-size",
        "333",
        "--seed",
        "5",
    ]
    summary = json.loads(manage("seed_demo", *args, env=env).stdout.strip().splitlines()[-1])
    assert summary["seeded"] is True
    counts = django_json(COUNT_ALL, env=env)
    want = expected_counts(7, 23, 3, 11, 4)
    assert {label: counts[label] for label in want} == want
    sizes = backend("find", "/tmp/seedcheck-media", "-type", "f", "-printf", "%s\\n").stdout.split()
    assert sorted(set(sizes)) == ["333"]
    assert len(sizes) == 23

    again = json.loads(
        manage("seed_demo", "--if-empty", *args, env=env).stdout.strip().splitlines()[-1]
    )
    assert again["seeded"] is False
    assert django_json(COUNT_ALL, env=env) == counts


def test_post_save_signal_audits_app_writes_but_not_raw_loads(scratch_database):
    env = {"POSTGRES_DB": scratch_database, "MEDIA_ROOT": "/tmp/seedcheck-media"}
    manage("migrate", "--noinput", env=env)
    manage(
        "seed_demo",
        "--users",
        "3",
        "--documents",
        "2",
        "--workflows",
        "1",
        "--file-size",
        "10",
        env=env,
    )
    result = django_json(
        "from apps.audit.models import AuditTrail\n"
        "from apps.documents.models import Document, DocumentType\n"
        "from apps.users.models import User\n"
        "from django.core.files.base import ContentFile\n"
        "before = AuditTrail.objects.count()\n"
        "d = Document(document_number='X-1', title='t', document_type=DocumentType.objects.first(),"
        " owner=User.objects.first())\n"
        "d.file.save('x.bin', ContentFile(b'x'), save=False)\n"
        "d.save()\n"
        "after_save = AuditTrail.objects.count()\n"
        "d2 = Document(document_number='X-2', title='t', document_type_id=d.document_type_id,"
        " owner_id=d.owner_id, file='x.bin')\n"
        "d2.save_base(raw=True)\n"
        "print(json.dumps([before, after_save, AuditTrail.objects.count()]))",
        env=env,
    )
    before, after_save, after_raw = result
    assert after_save == before + 1
    assert after_raw == after_save


def test_worker_service_runs_the_activity_simulator(scratch_database):
    env = {"POSTGRES_DB": scratch_database, "MEDIA_ROOT": "/tmp/seedcheck-media"}
    manage("migrate", "--noinput", env=env)
    manage("seed_demo", "--users", "4", "--documents", "3", "--workflows", "2", env=env)
    before = django_json(COUNT_ALL, env=env)
    flags = [x for key, value in env.items() for x in ("-e", f"{key}={value}")]
    out = compose(
        "--profile",
        "activity",
        "run",
        "--rm",
        "--no-deps",
        *flags,
        "worker",
        "python",
        "manage.py",
        "simulate_activity",
        "--iterations",
        "3",
        "--interval",
        "0",
    ).stdout
    iterations = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(iterations) == 3
    after = django_json(COUNT_ALL, env=env)
    for label in ("documents.document", "workflows.workflow", "audit.audittrail"):
        assert after[label] > before[label], label
