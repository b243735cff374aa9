"""Taking, listing and verifying archives against the demo stack."""

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
import time
import zipfile

import pytest
import yaml
from ansible_collections.edms.backup.plugins.module_utils._backend import rows
from ansible_collections.edms.backup.plugins.module_utils._backend.dump import DEFAULT_EXCLUDES
from ansible_collections.edms.backup.plugins.module_utils._deployment.dump import (
    dump_command,
    parse_report,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import with_backend

from .conftest import (
    BIN,
    DEMO,
    ROOT,
    RUN,
    TINY,
    backend,
    compose,
    db_sql,
    django_json,
    manage,
    run_module,
    run_playbook,
    stack_up,
    table_digests,
)

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}


@pytest.fixture
def backup_dir(stack):
    path = tempfile.mkdtemp(prefix="edms-backups-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def create(directory, check_mode=False, **args):
    params = {**PROJECT, "backup_dir": directory, "display_timezone": "Asia/Singapore", **args}
    return run_module("archive_create", params, check_mode=check_mode)


def metadata_of(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("metadata.json"))


REQUIRED = ["documents.Document", "users.User", "workflows.Workflow"]


def test_a_backup_is_a_verified_archive_with_full_metadata(backup_dir):
    # The models the demo inventory counts: the roles require them by default.
    rc, result = create(backup_dir, required_models=REQUIRED)
    assert rc == 0, result.get("msg")
    assert result["changed"] is True
    name = os.path.basename(result["archive"])
    assert re.fullmatch(r"edms_\d{8}T\d{6}Z\.zip", name)
    assert sorted(os.listdir(backup_dir)) == [name, name + ".status.json"]
    assert stat.S_IMODE(os.stat(result["archive"]).st_mode) == 0o600
    with open(result["archive"], "rb") as handle:
        assert result["sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert result["verification"]["ok"] is True
    assert {c["status"] for c in result["verification"]["checks"]} == {"pass"}

    meta = metadata_of(result["archive"])
    assert meta["format"] == "edms.backup"
    assert meta["format_version"] == 1
    # The collection's version, from galaxy.yml only (plugins/action/archive_create.py).
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        version = yaml.safe_load(handle)["version"]
    assert meta["tool"] == {"name": "edms.backup", "version": version}
    assert meta["created_at"].endswith("Z")
    assert meta["created_at_local"].endswith("+08:00")
    assert meta["display_timezone"] == "Asia/Singapore"
    # The name carries the same UTC instant as created_at.
    stamp = meta["created_at"]
    assert (
        name
        == "edms_" + stamp[:10].replace("-", "") + "T" + stamp[11:19].replace(":", "") + "Z.zip"
    )
    assert meta["counts"]["documents.document"] == TINY["documents"]
    assert meta["counts"]["users.user"] == TINY["users"]
    assert meta["counts"]["workflows.workflow_participants"] == TINY["workflows"] * 3
    server = db_sql("SHOW server_version").strip()
    assert meta["versions"]["postgresql"].startswith(f"PostgreSQL {server} ")
    assert meta["versions"]["django"].startswith("5.2")
    assert meta["migrations"]["documents"] == ["0001_initial"]
    assert meta["file_fields"] == {"documents.document": ["file"]}
    assert meta["natural_keys"]["users.user"] == ["username"]
    assert set(meta["excluded_models"]) == {
        "contenttypes",
        "auth.permission",
        "sessions",
    }
    assert meta["database"]["name"] == "edms"
    assert meta["database"]["size_bytes"] > 0
    media = [m for m in meta["members"] if m.startswith("media/")]
    assert len(media) == TINY["documents"]
    assert "database.pgdump" in meta["members"]
    assert result["media"] == {
        "files": TINY["documents"],
        "bytes": TINY["documents"] * TINY["file_size"],
        "skipped": [],
    }
    # No secret of the deployment's .env is in the archive or the result.
    with open(os.path.join(RUN, ".env"), encoding="utf-8") as env_file:
        secrets = [
            line.split("=", 1)[1].strip()
            for line in env_file
            if line.startswith(("POSTGRES_PASSWORD=", "DJANGO_SECRET_KEY="))
        ]
    assert len(secrets) == 2
    with zipfile.ZipFile(result["archive"]) as archive:
        for member in archive.namelist():
            data = archive.read(member)
            for secret in secrets:
                assert secret.encode() not in data, member
    for secret in secrets:
        assert secret not in json.dumps(result)


def test_the_list_shows_it_as_the_newest_verified_archive(backup_dir):
    made = create(backup_dir)[1]
    rc, listing = run_module(
        "archive_info", {"backup_dir": backup_dir, "display_timezone": "Asia/Singapore"}
    )
    assert rc == 0
    entry = listing["newest_verified"]
    assert entry["path"] == made["archive"]
    assert entry["verification"]["state"] == "passed"
    assert entry["created_at_local"].endswith("+08:00")
    assert entry["counts"]["documents.document"] == TINY["documents"]
    assert listing["partials"] == []


def test_check_mode_writes_nothing_and_says_what_it_would_run(backup_dir):
    rc, result = create(backup_dir, check_mode=True)
    assert rc == 0
    assert result["changed"] is True
    assert os.listdir(backup_dir) == []
    commands = [e["command"] for e in result["execs"]]
    assert commands[0].startswith("python -c <")
    assert any(c.startswith("get_archive /app/storage/media") for c in commands)
    assert any("pg_dump" in c for c in commands)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"backup_dir": "/nonexistent/backups"},
            "backup directory /nonexistent/backups does not exist",
        ),
        ({"backend_service": "web"}, "the backend service 'web' is not defined"),
        (
            {"display_timezone": "Mars/Olympus"},
            "display_timezone: unknown time zone 'Mars/Olympus'",
        ),
        (
            {"excludes": ["nosuchapp"]},
            "the fixture dump failed: unknown app in excludes: nosuchapp",
        ),
    ],
)
def test_bad_input_fails_naming_it_and_leaves_no_file(backup_dir, args, message):
    rc, result = create(backup_dir, **args)
    assert rc != 0
    assert message in result["msg"]
    assert os.listdir(backup_dir) == []
    assert (
        not os.path.exists(args.get("backup_dir", backup_dir))
        or os.listdir(args.get("backup_dir", backup_dir)) == []
    )


def test_the_fixture_is_lossless_through_plain_loaddata(backup_dir):
    """Every table's content equal after a load into an empty database, microseconds included."""
    made = create(backup_dir, pgdump=False)[1]
    with zipfile.ZipFile(made["archive"]) as archive:
        fixture = archive.read("database_backup.json")
    target = "edms_lossless"
    db_sql(f"DROP DATABASE IF EXISTS {target}", database="postgres")
    db_sql(f"CREATE DATABASE {target}", database="postgres")
    try:
        backend("sh", "-c", "cat > /tmp/edms_lossless.json", input=fixture.decode())
        env = {"POSTGRES_DB": target}
        manage("migrate", "--noinput", env=env)
        out = manage("loaddata", "/tmp/edms_lossless.json", env=env).stdout
        assert "(of" not in out, out
        source = table_digests()
        restored = table_digests(env=env)
        assert restored == source
        assert source["documents_document"][0] == TINY["documents"]
    finally:
        db_sql(f"DROP DATABASE IF EXISTS {target} WITH (FORCE)", database="postgres")
        backend("rm", "-f", "/tmp/edms_lossless.json")


def dump(instance_path=False, env=None):
    """(fixture, report) of the dump run in the backend as the backup runs it;
    instance_path: every model through instances and Django's serializer."""
    proc = backend(*dump_command("python", DEFAULT_EXCLUDES, instance_path=instance_path), env=env)
    return proc.stdout, parse_report(proc.stderr)


def comparable(report):
    """The report without what two dumps of the same content may differ in."""
    return {**report, "snapshot_at": None, "database": {**report["database"], "size_bytes": None}}


# {model label: why row_plan leaves it to the instance path} for every
# installed model that the fast path does not take. argv[1]: ROWS, a program
# that makes _backend/rows.py importable.
ROWS = with_backend("", rows)
INSTANCE_PATH_MODELS = """
import json, sys
import django
django.setup()
from django.apps import apps
exec(sys.argv[1], {})
from ansible_collections.edms.backup.plugins.module_utils._backend.rows import row_plan
key_maps = {m: {} for m in apps.get_models() if hasattr(m, "natural_key")}
plans = {m._meta.label_lower: row_plan(m, key_maps, "default") for m in apps.get_models()}
print(json.dumps({label: plan for label, plan in plans.items() if isinstance(plan, str)}))
"""


def assert_both_paths_write_the_same(env=None):
    fast, report = dump(env=env)
    slow, slow_report = dump(instance_path=True, env=env)
    assert fast.count("\n") == report["objects"] + 2  # one object per line
    assert fast == slow
    assert comparable(report) == comparable(slow_report)
    out = backend("python", "-c", INSTANCE_PATH_MODELS, ROWS, env=env).stdout
    left_out = json.loads(out.strip().splitlines()[-1])
    assert not set(report["dumped_models"]) & set(left_out), left_out
    return report


def test_the_fast_dump_writes_the_bytes_the_instance_path_writes(stack):
    """Every model of the demo through the fast path (values_list, no
    instances): the same fixture and report as through instances."""
    report = assert_both_paths_write_the_same()
    assert report["counts"]["documents.document"] == TINY["documents"]


# Content the seed does not make: nulls, empty file names, JSON of every kind,
# text that JSON escapes, whole seconds, references to nothing, natural keys
# through permissions and content types.
ODD_CONTENT = r"""
import datetime
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from apps.audit.models import AuditTrail
from apps.backup.models import BackupConfiguration, BackupJob, RestoreJob
from apps.documents.models import Document, DocumentType
from apps.users.models import User
from apps.workflows.models import Workflow, WorkflowStep

utc = datetime.timezone.utc
user = User.objects.create(
    username="zo\u00eb", first_name="Zo\u00eb \u2713", last_name='O"Brien\n\u2028',
    last_login=None, employee_id=None,
    date_joined=datetime.datetime(2024, 2, 29, 23, 59, 59, tzinfo=utc),
)
user.user_permissions.set(Permission.objects.filter(codename__startswith="view_")[:3])
document = Document.all_objects.create(
    document_number="ODD-1", title="\u00dcn\u00efcode \\ \t title",
    document_type=DocumentType.objects.order_by("pk").first(), owner=user, file="",
    created_at=datetime.datetime(2025, 1, 1, tzinfo=utc),
    updated_at=datetime.datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=utc),
)
configuration = BackupConfiguration.objects.create(
    name="nightly \u2713", backup_type="FULL", created_by=user
)
job = BackupJob.objects.create(configuration=configuration, created_by=user, size_bytes=2 ** 40)
RestoreJob.objects.create(backup_job=None, requested_by=user)
RestoreJob.objects.create(backup_job=job, requested_by=user, notes="tab\there")
content_type = ContentType.objects.get_for_model(Document)
for details in ({"nested": {"list": [1, 2.5, None, True, "\u00fc"]}}, [], "text", 3.25, 0, ""):
    AuditTrail.objects.create(
        user=None, action="VIEW", content_type=content_type, object_id=str(document.pk),
        object_repr="odd", details=details,
    )
workflow = Workflow.objects.create(name="odd", document=document, initiated_by=user)
workflow.participants.set([user])
WorkflowStep.objects.create(
    workflow=workflow, order=1, assignee=user, action="SIGN", comment='"quoted" \\ </script>'
)
print(json.dumps(Document.all_objects.count()))
"""


def test_the_fast_dump_writes_the_bytes_the_instance_path_writes_for_odd_content(stack):
    name = "edms_dump_paths"
    media = "/tmp/edms-dump-media"
    db_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", database="postgres")
    db_sql(f"CREATE DATABASE {name}", database="postgres")
    env = {"POSTGRES_DB": name, "MEDIA_ROOT": media}
    try:
        manage("migrate", "--noinput", env=env)
        manage("seed_demo", "--users", "5", "--documents", "7", "--workflows", "3", env=env)
        documents = django_json(ODD_CONTENT, env=env)
        report = assert_both_paths_write_the_same(env=env)
        assert report["database"]["name"] == name
        assert report["counts"]["documents.document"] == documents
        assert report["counts"]["users.user_user_permissions"] == 3
    finally:
        db_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", database="postgres")
        backend("rm", "-rf", media)


def test_each_fast_conversion_is_what_the_serializer_writes(stack):
    """Every field kind the fast path converts, held value by value against
    Serializer._value_from_field of an instance; and the models it must leave to
    the instance path (see tests/dump_probe.py)."""
    with open(os.path.join(ROOT, "tests", "dump_probe.py"), encoding="utf-8") as handle:
        script = handle.read()
    out = backend("python", "-c", script, ROWS).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["mismatches"] == []
    assert result["checked"] >= 150
    assert result["reasons"] == {
        "array": "its field tags (ArrayField) has no exact conversion",
        "descriptor": "its field name (UpperField) has no exact conversion",
        "file_str": "its field file (OwnStrFileField) has no exact conversion",
        "init": "it has its own __init__",
        "to_field": "its field user (ForeignKey) has no exact conversion",
        "dimensions": "post_init receivers may change its instances (e.g. ImageField dimensions)",
        "plain": None,
    }


@pytest.fixture
def writing_worker(stack):
    """The activity simulator writing to the live database; the seed restored afterwards."""
    compose("--profile", "activity", "up", "-d", "worker")
    yield
    compose("--profile", "activity", "stop", "worker")
    compose("--profile", "activity", "rm", "-f", "worker")
    # Back to the seeded state for the other tests: a fresh stack.
    subprocess.run([os.path.join(DEMO, "bin", "stack"), "down"], check=True, capture_output=True)
    stack_up()


def test_a_backup_taken_while_the_app_writes_verifies_clean(backup_dir, writing_worker):
    time.sleep(3)  # let the worker get going
    before = django_json(
        "from apps.audit.models import AuditTrail\nprint(AuditTrail.objects.count())"
    )
    rc, result = create(backup_dir)
    assert rc == 0, result.get("msg")
    after = django_json(
        "from apps.audit.models import AuditTrail\nprint(AuditTrail.objects.count())"
    )
    assert after > before, "the worker did not write during the backup"
    verification = result["verification"]
    assert verification["ok"], verification["problems"]
    checks = {c["name"]: c for c in verification["checks"]}
    assert checks["counts"]["status"] == "pass"
    assert checks["references"]["status"] == "pass"
    assert checks["references"]["numbers"]["dangling"] == 0
    assert checks["media_files"]["status"] == "pass"


# The backup run as a plain process (the module's own code, without Ansible's
# wrapper processes in between), so that the test can kill it outright.
BACKUP_PROCESS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.edms.backup.plugins.module_utils._commands import archive_create
params = json.loads(sys.argv[2])
archive_create.create_backup(params)
"""


def test_an_interrupted_backup_leaves_nothing_that_lists_as_an_archive(backup_dir):
    params = {
        **PROJECT,
        "backup_dir": backup_dir,
        "display_timezone": "UTC",
        "backend_service": "backend",
        "db_service": "db",
        "backend_python": "python",
        "django_settings_module": None,
        "media_dir_container": "/app/storage/media",
        "label": "manual",
        "reason": None,
        "excludes": ["contenttypes", "auth.permission", "sessions"],
        "required_models": ["documents.Document", "users.User", "workflows.Workflow"],
        "pgdump": True,
    }
    collections = os.path.join(ROOT, "collections")
    proc = subprocess.Popen(
        [os.path.join(BIN, "python"), "-c", BACKUP_PROCESS, collections, json.dumps(params)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    partial = None
    while time.time() < deadline and partial is None and proc.poll() is None:
        partial = next((n for n in os.listdir(backup_dir) if n.endswith(".partial")), None)
        time.sleep(0.002)
    assert partial is not None, proc.stderr.read() if proc.poll() is not None else "no partial file"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The archive's partial file, and the pg_dump's (written beside it while
    # the fixture is taken) if it had started: nothing else, both listed as
    # interrupted, neither as an archive.
    names = sorted(os.listdir(backup_dir))
    assert partial in names, names
    archive = partial.removesuffix(".pgdump.partial").removesuffix(".partial")
    assert set(names) <= {archive + ".partial", archive + ".pgdump.partial"}, names
    rc, listing = run_module("archive_info", {"backup_dir": backup_dir})
    assert rc == 0
    assert listing["archives"] == []
    assert listing["newest"] is None
    assert sorted(listing["partials"]) == [os.path.join(backup_dir, n) for n in names]


def test_prune_keeps_the_newest_and_check_mode_deletes_nothing(backup_dir):
    first = create(backup_dir, pgdump=False)[1]["archive"]
    time.sleep(1.1)  # archive names carry the second
    second = create(backup_dir, pgdump=False)[1]["archive"]
    rules = {"backup_dir": backup_dir, "keep_last": 1, "keep_daily": 0, "keep_weekly": 0}

    rc, planned = run_module("archive_prune", rules, check_mode=True)
    assert rc == 0
    assert planned["deleted"] == [first]
    assert os.path.exists(first)

    rc, pruned = run_module("archive_prune", rules)
    assert rc == 0
    assert pruned["changed"] is True
    assert pruned["deleted"] == [first]
    assert sorted(os.listdir(backup_dir)) == sorted(
        os.path.basename(p) for p in (second, second + ".status.json")
    )
    kept = pruned["keep"][0]
    assert kept["name"] == os.path.basename(second)
    assert "newest verified" in kept["reasons"]

    rc, again = run_module("archive_prune", rules)
    assert rc == 0
    assert again["changed"] is False


def test_prune_refuses_negative_numbers_naming_them(backup_dir):
    rc, result = run_module("archive_prune", {"backup_dir": backup_dir, "keep_daily": -1})
    assert rc != 0
    assert "keep_daily must be 0 or more, got -1" in result["msg"]


def test_verify_takes_the_newest_and_records_the_result(backup_dir):
    made = create(backup_dir, pgdump=False)[1]["archive"]
    os.unlink(made + ".status.json")
    rc, result = run_module("archive_verify", {"backup_dir": backup_dir})
    assert rc == 0, result.get("msg")
    assert result["archive"] == made
    assert result["ok"] is True
    assert os.path.exists(made + ".status.json")

    rc, checked = run_module("archive_verify", {"archive": made}, check_mode=True)
    assert rc == 0
    assert checked["recorded"] is False


def test_verify_fails_on_a_damaged_archive_and_says_what(backup_dir):
    made = create(backup_dir, pgdump=False)[1]["archive"]
    with zipfile.ZipFile(made) as archive:
        start = archive.getinfo("database_backup.json").header_offset
    with open(made, "r+b") as handle:
        # The member's data starts after its local header: 30 bytes, then the
        # name and the extra field, whose lengths the header gives.
        handle.seek(start + 26)
        name_length, extra_length = struct.unpack("<HH", handle.read(4))
        offset = start + 30 + name_length + extra_length + 100
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    rc, result = run_module("archive_verify", {"archive": made})
    assert rc != 0
    assert result["msg"].startswith(f"archive {made} does not verify: ")
    assert "database_backup.json" in result["msg"]
    rc, listing = run_module("archive_info", {"backup_dir": backup_dir})
    assert rc == 0, listing
    assert listing["archives"][0]["verification"]["state"] == "failed"


def test_the_backup_playbook_refuses_when_preflight_finds_an_error(backup_dir):
    missing = os.path.join(backup_dir, "not-there")
    proc = run_playbook("backup.yml", {"edms_backup_dir": missing})
    assert proc.returncode != 0
    assert "Preflight found 1 error(s): the backup directory" in proc.stdout
    assert f"{missing} does not exist on the host" in proc.stdout
    # It stopped before the backup task.
    assert "TASK [edms.backup.backup : Take the backup]" not in proc.stdout
    assert os.listdir(backup_dir) == []


def test_a_one_to_one_primary_key_is_dumped_in_key_order_with_its_m2m(stack):
    """Ordering by a OneToOne primary key's name follows the related model's
    Meta.ordering; the dump reads a model's m2m rows in step with its rows by
    key, so it orders by the column (see tests/dump_order_probe.py)."""
    name = "edms_dump_order"
    db_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", database="postgres")
    db_sql(f"CREATE DATABASE {name}", database="postgres")
    env = {"POSTGRES_DB": name}
    with open(os.path.join(ROOT, "tests", "dump_order_probe.py"), encoding="utf-8") as handle:
        script = handle.read()
    try:
        manage("migrate", "--noinput", env=env)
        for instance_path in (False, True):
            argv = dump_command("python", DEFAULT_EXCLUDES, instance_path=instance_path)
            proc = backend("python", "-c", script, argv[2], argv[3], env=env, check=False)
            report = parse_report(proc.stderr)
            assert report["counts"]["documents.probecard_tags"] == 6
            cards = [
                json.loads(line.rstrip(","))
                for line in proc.stdout.splitlines()
                if '"model": "documents.probecard"' in line
            ]
            assert [(c["pk"], c["fields"]["tags"]) for c in cards] == [
                (1, [1]),
                (2, [1, 2]),
                (3, [1, 2, 3]),
            ], instance_path
    finally:
        db_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", database="postgres")


def test_without_required_models_the_module_requires_none_and_says_so(backup_dir):
    rc, result = create(backup_dir)
    assert rc == 0, result.get("msg")
    checks = {c["name"]: c for c in result["verification"]["checks"]}
    assert checks["required_models"]["status"] == "not_checkable"
    assert metadata_of(result["archive"])["required_models"] == []


def test_the_backup_role_requires_the_models_the_inventory_counts(backup_dir):
    proc = run_playbook("backup.yml", {"edms_archive_dir": backup_dir})
    assert proc.returncode == 0, proc.stdout[-3000:]
    (name,) = [n for n in os.listdir(backup_dir) if n.endswith(".zip")]
    required = metadata_of(os.path.join(backup_dir, name))["required_models"]
    assert required == [label.lower() for label in REQUIRED]


GROUPS = (
    "from django.contrib.auth.models import Group\n"
    "{}\n"
    "print(json.dumps(Group.objects.filter(name__startswith='f15 probe').count()))\n"
)


def test_f15_no_prune_after_a_backup_whose_counts_fell(backup_dir):
    django_json(GROUPS.format("[Group.objects.create(name='f15 probe %d' % n) for n in range(5)]"))
    try:
        rc, older = run_module("archive_create", {**PROJECT, "backup_dir": backup_dir})
        assert rc == 0, older.get("msg")
    finally:
        django_json(GROUPS.format("Group.objects.filter(name__startswith='f15 probe').delete()"))
    keep_one = {"backup_keep_last": 1, "backup_keep_daily": 0, "backup_keep_weekly": 0}
    proc = run_playbook("backup.yml", {"edms_archive_dir": backup_dir, **keep_one})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "COUNTS FELL auth.group" in proc.stdout
    assert "Not pruned  the counts fell" in proc.stdout
    assert os.path.exists(older["archive"])
    # The next backup's counts do not fall: it prunes.
    proc = run_playbook("backup.yml", {"edms_archive_dir": backup_dir, **keep_one})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Not pruned" not in proc.stdout
    assert not os.path.exists(older["archive"])
