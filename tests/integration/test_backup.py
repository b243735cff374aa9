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


def test_a_backup_is_a_verified_archive_with_full_metadata(backup_dir):
    rc, result = create(backup_dir)
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
    assert meta["versions"]["postgresql"].startswith("PostgreSQL 15")
    assert meta["versions"]["django"].startswith("5.2")
    assert meta["migrations"]["documents"] == ["0001_initial"]
    assert meta["file_fields"] == {"documents.document": ["file"]}
    assert meta["natural_keys"]["users.user"] == ["username"]
    assert set(meta["excluded_models"]) == {
        "contenttypes",
        "auth.permission",
        "sessions",
        "admin.logentry",
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
from ansible_collections.edms.backup.plugins.module_utils._backup import create_backup
params = json.loads(sys.argv[2])
create_backup(params)
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
        "excludes": ["contenttypes", "auth.permission", "sessions", "admin.logentry"],
        "required_models": ["documents.Document", "users.User", "workflows.Workflow"],
        "pgdump": True,
    }
    collections = os.path.join(ROOT, "build", "collections")
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
    names = os.listdir(backup_dir)
    assert names == [partial], names
    rc, listing = run_module("archive_info", {"backup_dir": backup_dir})
    assert rc == 0
    assert listing["archives"] == []
    assert listing["newest"] is None
    assert listing["partials"] == [os.path.join(backup_dir, partial)]


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
