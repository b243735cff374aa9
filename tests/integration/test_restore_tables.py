"""Which tables a restore replaces, empties and leaves alone, on the demo stack.

The archive holds the admin log (audit evidence) and the restore puts it back;
the sessions are emptied on purpose (everyone logs in again); a table the
archive does not hold is never emptied unless it is listed as reset, and one
that refers to replaced rows stops the restore before anything changed.
"""

import shutil
import tempfile

import pytest

from .conftest import RUN, content, django_json, run_module

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}

LOG = "django_admin_log"

ADD_LOG = (
    "from django.contrib.admin.models import LogEntry, CHANGE\n"
    "from django.contrib.auth import get_user_model\n"
    "from django.contrib.contenttypes.models import ContentType\n"
    "user = get_user_model()._base_manager.order_by('pk').first()\n"
    "kind = ContentType.objects.get_for_model(get_user_model())\n"
    "for n in range({n}):\n"
    "    LogEntry.objects.create(user=user, content_type=kind, object_id=str(user.pk),\n"
    "        object_repr='restore tables probe %d' % n, action_flag=CHANGE,\n"
    "        change_message='probe')\n"
    "print(json.dumps(LogEntry.objects.count()))\n"
)

ADD_SESSION = (
    "from datetime import timedelta\n"
    "from django.contrib.sessions.models import Session\n"
    "from django.utils import timezone\n"
    "Session.objects.create(session_key='restoretablesprobe' + '0' * 14,\n"
    "    session_data='e30:probe', expire_date=timezone.now() + timedelta(days=1))\n"
    "print(json.dumps(Session.objects.count()))\n"
)

COUNTS = (
    "from django.contrib.admin.models import LogEntry\n"
    "from django.contrib.sessions.models import Session\n"
    "print(json.dumps({'log': LogEntry.objects.count(), 'sessions': Session.objects.count()}))\n"
)

CLEAR = (
    "from django.contrib.admin.models import LogEntry\n"
    "from django.contrib.sessions.models import Session\n"
    "LogEntry.objects.all().delete()\n"
    "Session.objects.filter(session_key__startswith='restoretablesprobe').delete()\n"
    "print(json.dumps(0))\n"
)


def counts():
    return django_json(COUNTS)


@pytest.fixture
def scratch(stack):
    """A directory for the archives; the probe rows removed afterwards."""
    directory = tempfile.mkdtemp(prefix="edms-restore-tables-")
    django_json(CLEAR)
    yield directory
    django_json(CLEAR)
    shutil.rmtree(directory, ignore_errors=True)


def create(directory, **extra):
    rc, made = run_module("archive_create", {**PROJECT, "backup_dir": directory, **extra})
    assert rc == 0, made.get("msg")
    return made


def restore(archive, **extra):
    rc, result = run_module("archive_restore", {**PROJECT, "archive": archive, **extra})
    if rc == 0:
        run_module("restore_finish", {**PROJECT, "token": result["token"]})
    return rc, result


def test_f7_after_a_restore_the_admin_log_equals_the_archives(scratch):
    django_json(ADD_LOG.format(n=3))
    made = create(scratch)
    assert made["counts"]["admin.logentry"] == 3
    at_backup = content()["tables"][LOG]
    assert at_backup[0] == 3
    # The log moves on after the backup: one more entry, one removed.
    django_json(ADD_LOG.format(n=1))
    django_json(
        "from django.contrib.admin.models import LogEntry\n"
        "LogEntry.objects.order_by('pk').first().delete()\n"
        "print(json.dumps(0))\n"
    )
    assert content()["tables"][LOG] != at_backup
    rc, result = restore(made["archive"])
    assert rc == 0, result.get("msg")
    assert content()["tables"][LOG] == at_backup


def test_f7_sessions_are_emptied_on_purpose_and_only_when_asked(scratch):
    django_json(ADD_SESSION)
    made = create(scratch)
    assert "sessions.session" not in made["counts"]
    # Listed as reset by default: everyone logs in again.
    rc, result = restore(made["archive"])
    assert rc == 0, result.get("msg")
    assert counts()["sessions"] == 0
    # Not listed: a table the archive does not hold keeps its rows.
    django_json(ADD_SESSION)
    rc, result = restore(made["archive"], reset_models=[])
    assert rc == 0, result.get("msg")
    assert counts()["sessions"] == 1


def test_f7_a_table_not_held_that_refers_to_replaced_rows_stops_the_restore(scratch):
    # An archive that leaves the admin log out (as archives made before it
    # was kept do), while the live log holds entries that refer to users.
    old_excludes = ["contenttypes", "auth.permission", "sessions", "admin.logentry"]
    made = create(scratch, excludes=old_excludes)
    django_json(ADD_LOG.format(n=2))
    before = content()
    rc, result = restore(made["archive"])
    assert rc != 0
    assert "admin.logentry" in result["msg"]
    assert "reset_models" in result["msg"]
    assert content() == before
    # Listed as reset, its rows go with the restore.
    rc, result = restore(made["archive"], reset_models=["admin.logentry", "sessions.session"])
    assert rc == 0, result.get("msg")
    assert counts()["log"] == 0


def test_f7_an_unknown_reset_model_is_refused_before_anything_changed(scratch):
    made = create(scratch)
    django_json(ADD_LOG.format(n=1))
    before = content()
    rc, result = restore(made["archive"], reset_models=["nosuch.Model"])
    assert rc != 0
    assert "nosuch.model" in result["msg"]
    assert content() == before
