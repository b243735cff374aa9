# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The fixture load (the database part of a restore), run inside the backend container.

LOAD_SCRIPT is plain Python for the application's own interpreter (the
container gets no new packages). It replaces the content of a database with a
fixture of ours (docs/archive-format.md) and reports, as the last line of
standard error, one JSON object after REPORT_MARKER.

It does what ``manage.py loaddata`` does (Django's own deserializer, raw saves,
forward references, deferred fields saved at the end, sequences reset), and:

- everything is ONE transaction: the tables are emptied (one TRUNCATE, which
  is transactional in PostgreSQL), the fixture is loaded, foreign keys are
  checked (``SET CONSTRAINTS ALL IMMEDIATE``), sequences are reset and the row
  count of every model and auto-created m2m table is compared with the
  archive's metadata. Any failure or difference rolls all of it back: the
  database either holds the archive or is as it was;
- the tables of ``keep_tables_of`` (content types, permissions: ``migrate``
  recreates them and the fixture refers to them by natural key) and
  ``django_migrations`` are not emptied;
- the fixture is read one line at a time (one object per line), so memory does
  not grow with it; a fixture in another layout is read whole and the report
  says ``"streamed": false``;
- a fixture object whose raw save updates instead of inserting (its row was
  written during the load, by a receiver that ignores ``raw`` and the marker
  below, and would be overwritten unnoticed) fails the load;
- the application can tell that a restore runs: the script sets the
  environment variable ``EDMS_RESTORE_IN_PROGRESS=1`` and the setting
  ``settings.EDMS_RESTORE_IN_PROGRESS = True`` before Django is set up.
  ``pre_save``/``post_save`` receivers see ``raw=True`` as under loaddata;
  ``m2m_changed`` has no raw flag, so its receivers should check the marker.

The request (argv[1], JSON):

- ``settings``: settings module, or null for the container's DJANGO_SETTINGS_MODULE;
- ``fixture``: absolute path of the fixture inside the container;
- ``database``: the database to load into, or null for the app's own; set as
  ``DATABASES["default"]["NAME"]`` before the first connection;
- ``expected``: ``{model label (lower case): count}`` from metadata;
- ``m2m_tables``: the labels in ``expected`` that are auto-created m2m tables;
- ``keep_tables_of``: model labels whose tables are not emptied;
- ``fail_at``: null, or ``empty``, ``load``, ``count_check`` or ``before_commit``:
  FAULT INJECTION for the tests of the one-transaction invariant only; it
  raises ``RuntimeError("injected failure at <stage>")`` at that point: after
  the TRUNCATE, after every object and deferred field is saved, after the
  counts matched, and as the last statement of the transaction.

Before commit it also compares every model's primary keys in the database
with the fixture's (PK_DIGEST_FUNCTION): a load that kept the count but not the
identities (new UUIDs) fails.

The report: ``{"objects", "counts", "seconds", "peak_rss_kb", "streamed",
"database", "identities"}``, or ``{"error", "stage"}`` with stage ``setup`` (before the
transaction), ``empty``, ``load``, ``count_check`` or ``commit``; the exit code
is then non-zero.
"""

from __future__ import annotations

import json
import tarfile

from ansible_collections.edms.backup.plugins.module_utils._archive import (
    FIXTURE,
    ArchiveReader,
)
from ansible_collections.edms.backup.plugins.module_utils._django import (
    DjangoError,
    read_marked_report,
)
from ansible_collections.edms.backup.plugins.module_utils._docker import ExecError

REPORT_MARKER = "EDMS-RESTORE-REPORT "

KEEP_TABLES_OF = ["contenttypes.contenttype", "auth.permission"]

FAIL_STAGES = ("empty", "load", "count_check", "before_commit")

# compare_counts(expected, found, m2m_tables): the differences, one dict per
# label: {"model", "expected", "found", "kind"}. A label counted but not
# expected must be empty (rows made by a receiver during the load show up so).
# One source: the script runs it in the backend; this module execs the same text.
COMPARE_FUNCTION = r"""
def compare_counts(expected, found, m2m_tables):
    differences = []
    for label in sorted(set(expected) | set(found)):
        want = expected.get(label, 0)
        got = found.get(label)
        if got != want:
            differences.append({
                "model": label,
                "expected": want,
                "found": got,
                "kind": "m2m table" if label in m2m_tables else "model",
            })
    return differences
"""

# The identity of every object: per model, how many primary keys and an
# order-free digest of them (the sum of each key's hash, so that nothing has to
# sort or hold them). The load sums the fixture's keys as it reads them and
# the database's after the load, and compares. str() of a key is the same for
# the fixture's JSON value and the database's (UUIDs in their hyphenated form).
PK_DIGEST_FUNCTION = r"""
import hashlib


def key_hash(key):
    return int(hashlib.sha256(str(key).encode("utf-8")).hexdigest()[:32], 16)


def digest_text(count, total):
    return [count, "%032x" % (total % (1 << 128))]


def pk_digest(keys):
    count, total = 0, 0
    for key in keys:
        count += 1
        total += key_hash(key)
    return digest_text(count, total)
"""

# Runs inside the backend. argv[1]: the JSON request described above.
LOAD_SCRIPT = (
    r"""
import json, os, resource, sys, time, traceback

MARKER = "EDMS-RESTORE-REPORT "
started = time.monotonic()
request = json.loads(sys.argv[1])
state = {"stage": "setup", "streamed": True, "read": 0, "watch": False}


def finish(report, code):
    sys.stderr.write(MARKER + json.dumps(report) + "\n")
    sys.stderr.flush()
    sys.exit(code)


def fail(message):
    finish({"error": message, "stage": state["stage"]}, 3)


def inject(stage):
    if request.get("fail_at") == stage:
        raise RuntimeError("injected failure at %s" % stage)
"""
    + COMPARE_FUNCTION
    + PK_DIGEST_FUNCTION
    + r'''

def read_objects(path):
    """The fixture's objects: one per line if it has our layout, else the whole file."""
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
        if first.strip() == "[":
            number = 1
            for line in handle:
                number += 1
                text = line.strip()
                if not text:
                    continue
                if text == "]":
                    if handle.read().strip():
                        raise ValueError("the fixture has text after its closing ']'")
                    return
                if text.endswith(","):
                    text = text[:-1]
                try:
                    obj = json.loads(text)
                except ValueError:
                    obj = None
                if not isinstance(obj, dict):
                    if state["read"] == 0:
                        break  # not one object per line: read it whole below
                    raise ValueError(
                        "fixture line %d is not one JSON object, in a fixture that "
                        "started with one object per line" % number)
                state["read"] += 1
                yield obj
            else:
                raise ValueError("the fixture ends without its closing ']'")
    state["streamed"] = False
    with open(path, "rb") as handle:
        objects = json.load(handle)
    if not isinstance(objects, list):
        raise ValueError("the fixture is not a JSON array")
    for obj in objects:
        state["read"] += 1
        yield obj


try:
    if request.get("settings"):
        os.environ["DJANGO_SETTINGS_MODULE"] = request["settings"]
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        fail("DJANGO_SETTINGS_MODULE is not set in the backend container")
    if request.get("fail_at") not in (None, "empty", "load", "count_check", "before_commit"):
        fail("unknown fail_at stage: %s" % request["fail_at"])
    os.environ["EDMS_RESTORE_IN_PROGRESS"] = "1"
    from django.conf import settings
    if request.get("database"):
        settings.DATABASES["default"]["NAME"] = request["database"]
    settings.EDMS_RESTORE_IN_PROGRESS = True

    import django
    django.setup()
    from django.apps import apps
    from django.core import serializers
    from django.core.management.color import no_style
    from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
    from django.db.models.signals import post_save

    using = DEFAULT_DB_ALIAS
    connection = connections[using]
    keep = {label.lower() for label in request.get("keep_tables_of") or []}
    m2m_tables = set(request.get("m2m_tables") or [])
    expected = request.get("expected") or {}

    emptied = [
        m for m in apps.get_models(include_auto_created=True)
        if m._meta.managed and not m._meta.proxy and m._meta.label_lower not in keep
        and router.allow_migrate_model(using, m)
    ]
    by_label = {m._meta.label_lower: m for m in apps.get_models(include_auto_created=True)}
    unknown = sorted(label for label in expected if label not in by_label)
    if unknown:
        fail("the fixture's models are not in this application: %s" % ", ".join(unknown))

    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            state["stage"] = "empty"
            tables = sorted({m._meta.db_table for m in emptied} - {"django_migrations"})
            if tables:
                cursor.execute("TRUNCATE %s RESTART IDENTITY" % ", ".join(
                    connection.ops.quote_name(t) for t in tables))
            inject("empty")

            state["stage"] = "load"
            # In emptied tables every raw save of the fixture's objects must
            # insert: one that updates found a row written during the load,
            # by a receiver that ignores raw and the restore marker, which
            # the fixture's object then silently overwrote.
            overwritten = []

            def on_raw_save(sender, instance, created, raw=False, **kwargs):
                if (raw and not created and state["watch"]
                        and sender._meta.label_lower not in keep):
                    overwritten.append("%s(pk=%s)" % (sender._meta.label, instance.pk))

            post_save.connect(on_raw_save, weak=False, dispatch_uid="edms-restore-overwrites")
            state["watch"] = True
            loaded_models, deferred, objects = set(), [], 0
            fixture_keys = {}

            def keyed(objects):
                for obj in objects:
                    entry = fixture_keys.setdefault(str(obj.get("model", "")).lower(), [0, 0])
                    entry[0] += 1
                    entry[1] += key_hash(obj.get("pk"))
                    yield obj

            for obj in serializers.deserialize(
                "python", keyed(read_objects(request["fixture"])), using=using,
                handle_forward_references=True,
            ):
                model = type(obj.object)
                if not router.allow_migrate_model(using, model):
                    raise RuntimeError("the router refuses %s here" % model._meta.label)
                loaded_models.add(model)
                try:
                    obj.save(using=using)
                except Exception as exc:
                    raise RuntimeError("could not load %s(pk=%s): %s" % (
                        model._meta.label, obj.object.pk, exc)) from exc
                if obj.deferred_fields:
                    deferred.append(obj)
                objects += 1
            if overwritten:
                raise RuntimeError(
                    "%d object(s) of the fixture overwrote rows written during the load "
                    "(a signal receiver that ignores raw=True and the restore marker, or "
                    "an object given twice): %s" % (len(overwritten), ", ".join(overwritten[:20])))
            state["watch"] = False  # save_deferred_fields saves again, an update
            for obj in deferred:
                obj.save_deferred_fields(using=using)
            del deferred
            inject("load")
            # Foreign keys are checked here, inside the transaction.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            sequenced = set(loaded_models) | {
                m for m in emptied if m._meta.auto_created}
            for sql in connection.ops.sequence_reset_sql(no_style(), sorted(
                    sequenced, key=lambda m: m._meta.label)):
                cursor.execute(sql)

            state["stage"] = "count_check"
            counted = {m._meta.label_lower: m for m in emptied}
            counted.update({label: by_label[label] for label in expected})
            found = {
                label: model._base_manager.using(using).count()
                for label, model in sorted(counted.items())
            }
            differences = compare_counts(expected, found, m2m_tables)
            if differences:
                raise RuntimeError("the counts after the load differ from the archive's: "
                    + "; ".join("%s expected %s, found %s" % (
                        d["model"], d["expected"], d["found"]) for d in differences))
            # Every object kept its primary key (UUIDs included).
            identities = {}
            for label in sorted(set(fixture_keys) | (set(expected) - m2m_tables)):
                if label not in by_label:
                    continue
                keys = by_label[label]._base_manager.using(using).values_list("pk", flat=True)
                identities[label] = (
                    pk_digest(keys.iterator(chunk_size=5000)),
                    digest_text(*fixture_keys.get(label, (0, 0))))
            differ = sorted(label for label, (db, fx) in identities.items() if db != fx)
            if differ:
                raise RuntimeError("after the load the primary keys (UUIDs included) of %s "
                                   "differ from the fixture's" % ", ".join(differ))
            inject("count_check")

            state["stage"] = "commit"
            inject("before_commit")
            database = connection.settings_dict["NAME"]
    connection.close()
except SystemExit:
    raise
except BaseException:
    traceback.print_exc()
    fail(traceback.format_exc().strip().splitlines()[-1])

finish({
    "objects": objects,
    "counts": found,
    "seconds": round(time.monotonic() - started, 3),
    "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "streamed": state["streamed"],
    "database": database,
    "identities": {"models": len(identities), "objects": objects, "equal": True},
}, 0)
'''
)


class LoadError(Exception):
    """The load in the backend failed or its report cannot be read.

    ``stage`` names where it failed (see the module docstring), or is None.
    """

    def __init__(self, message, stage=None):
        super().__init__(message)
        self.stage = stage


_COMPARE_NAMESPACE = {}
exec(COMPARE_FUNCTION, _COMPARE_NAMESPACE)  # pylint: disable=exec-used
compare_counts = _COMPARE_NAMESPACE["compare_counts"]


def load_request(
    fixture,
    expected,
    m2m_tables,
    database=None,
    settings_module=None,
    keep_tables_of=None,
    fail_at=None,
):
    """The request LOAD_SCRIPT reads (see the module docstring)."""
    if fail_at is not None and fail_at not in FAIL_STAGES:
        raise LoadError(f"unknown fail_at stage {fail_at!r} (one of {', '.join(FAIL_STAGES)})")
    return {
        "settings": settings_module,
        "fixture": fixture,
        "database": database,
        "expected": {str(label).lower(): int(count) for label, count in expected.items()},
        "m2m_tables": [str(label).lower() for label in m2m_tables],
        "keep_tables_of": list(KEEP_TABLES_OF if keep_tables_of is None else keep_tables_of),
        "fail_at": fail_at,
    }


def load_command(python, request):
    """The argv that runs the load inside the backend container."""
    return [python, "-c", LOAD_SCRIPT, json.dumps(request)]


def parse_report(stderr):
    """The load's report: the last stderr line that carries the marker."""
    try:
        report = read_marked_report(stderr, REPORT_MARKER, "the load")
    except DjangoError as exc:
        raise LoadError(str(exc)) from exc
    if "error" in report:
        stage = report.get("stage")
        where = f" (stage {stage})" if stage else ""
        raise LoadError(f"the load failed{where}: {report['error']}", stage=stage)
    return report


CHUNK = 1024 * 1024


def tar_member(info, source):
    """One member of a tar stream, as chunks: header, content read from `source`
    (its size known up front) chunk by chunk, padding. Nothing holds more than
    one chunk."""
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    left = info.size
    while left > 0:
        data = source.read(min(CHUNK, left))
        if not data:
            raise LoadError(f"{info.name} ended {left} bytes short of its size")
        left -= len(data)
        yield data
    if source.read(1):
        raise LoadError(f"{info.name} is longer than its recorded size")
    remainder = info.size % tarfile.BLOCKSIZE
    if remainder:
        yield tarfile.NUL * (tarfile.BLOCKSIZE - remainder)


def tar_of_one(info, source):
    """A whole tar stream, as chunks, of one member (tar_member, then the end blocks)."""
    yield from tar_member(info, source)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def container_owner(containers, container_id):
    """(uid, gid) of the user the container runs commands as."""
    out = containers.exec(container_id, ["id", "-u"], what="id -u").stdout.decode().strip()
    gid = containers.exec(container_id, ["id", "-g"], what="id -g").stdout.decode().strip()
    try:
        return int(out), int(gid)
    except ValueError:
        raise ExecError(f"cannot tell the user of container {container_id[:12]}") from None


def put_fixture(containers, container_id, archive_path, dest_dir):
    """Copy the archive's fixture into the container; return its path there.

    The file lands as ``<dest_dir>/database_backup.json``, mode 0600, owned by
    the container's user (it holds password hashes).
    """
    return put_member(containers, container_id, archive_path, FIXTURE, dest_dir)


def put_member(containers, container_id, archive_path, name, dest_dir):
    """Copy one member of the archive into the container; return its path there.

    The file lands as ``<dest_dir>/<name>``, mode 0600, owned by the user the
    container runs commands as. The tar stream is made while it is sent: the
    Docker SDK passes a generator body on to requests, which sends it chunked,
    so the member is never whole in memory.
    """
    uid, gid = container_owner(containers, container_id)
    path = dest_dir.rstrip("/") + "/" + name
    containers.execs.append({"container": container_id, "command": f"put_archive {path}"})
    with ArchiveReader.open(archive_path) as archive:
        member = archive.member(name)
        source = archive.open_member(name)
        try:
            info = tarfile.TarInfo(name)
            info.size = member.size
            info.mode = 0o600
            info.uid, info.gid = uid, gid
            try:
                done = containers.client.containers.get(container_id).put_archive(
                    dest_dir, tar_of_one(info, source)
                )
            except Exception as exc:  # DockerException and the transport's errors
                raise ExecError(
                    f"cannot copy {name} into container {container_id[:12]}: {exc}"
                ) from exc
        finally:
            source.close()
    if not done:
        raise ExecError(f"the Docker engine refused {name} at {path}")
    return path


def remove_fixture(containers, container_id, path):
    """Delete the fixture copied by put_fixture (it holds password hashes)."""
    containers.exec(container_id, ["rm", "-f", path], what=f"rm {path}")
