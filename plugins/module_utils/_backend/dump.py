# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The fixture dump, inside the backend container (see the host's _deployment/dump.py).

Entry point main: the request is argv[1], {"settings", "excludes"} and, to
dump every model through instances and Django's serializer (the path the fast
one falls back to, kept for the tests that compare the two), "instance_path":
true. The fixture goes to standard output; the report, everything metadata
needs, is one JSON object after REPORT_MARKER, the last line of standard error.

Nothing here imports Django before main() has chosen the settings and set
Django up; rows.py and serializer.py, which do, are imported after.
"""

import datetime
import io
import json
import os
import platform
import sys
import traceback

from ansible_collections.edms.backup.plugins.module_utils._backend.setup import (
    choose_settings,
)
from ansible_collections.edms.backup.plugins.module_utils._backend.tables import (
    holds_data,
    relations,
)

REPORT_MARKER = "EDMS-BACKUP-REPORT "
# Written to stderr as soon as the dump's transaction has exported its
# snapshot (request "share_snapshot"): {"snapshot", "signal",
# "exclude_table_data"}. The pg_dump taken beside the fixture imports that
# snapshot (pg_dump --snapshot), so both hold the same data. The exporting
# transaction must stay open until pg_dump has imported it: the dump waits,
# before it ends, until the directory "signal" is gone (the host removes it
# once pg_dump has started writing or has failed), SNAPSHOT_WAIT seconds at
# most.
SNAPSHOT_MARKER = "EDMS-BACKUP-SNAPSHOT "
SNAPSHOT_WAIT = 900

# The models a dump leaves out unless told otherwise: what migrate recreates
# (content types, permissions) and the sessions, which a restore empties on
# purpose. The admin log (admin.logentry) is kept: it is audit evidence.
DEFAULT_EXCLUDES = ["contenttypes", "auth.permission", "sessions"]


def fail(message):
    sys.stderr.write(REPORT_MARKER + json.dumps({"error": message}) + "\n")
    raise SystemExit(3)


def resolve_excludes(labels):
    from django.apps import apps

    apps_out, models_out = set(), set()
    for label in labels:
        if "." in label:
            try:
                models_out.add(apps.get_model(label))
            except LookupError:
                fail("unknown model in excludes: %s" % label)
        else:
            try:
                apps_out.add(apps.get_app_config(label))
            except LookupError:
                fail("unknown app in excludes: %s" % label)
    return apps_out, models_out


def chosen_models(excludes, using):
    """The models to dump, in the serializer's dependency order."""
    from django.apps import apps
    from django.core import serializers
    from django.db import router

    excluded_apps, excluded_models = resolve_excludes(excludes)
    base_tables, views = relations(using)
    app_list = {}
    for app_config in apps.get_app_configs():
        if app_config.models_module is None or app_config in excluded_apps:
            continue
        chosen = [
            m
            for m in app_config.get_models()
            if m not in excluded_models
            and holds_data(m, base_tables, views)
            and router.allow_migrate_model(using, m)
        ]
        if chosen:
            app_list[app_config] = chosen
    return serializers.sort_dependencies(app_list.items(), allow_cycles=True)


class _Sentinel(str):
    """A field's stand-in value. natural_key() must hand it back itself: a
    value made from it (lower(), strip(), str()) is a plain str, which no
    description can rebuild from the fixture."""

    __slots__ = ()


def _sentinel_instance(model, prefix, depth):
    """An unsaved instance of model whose fields hold sentinel texts, and
    {sentinel: part} of the natural-key description (see natural_key_fields):
    its own serialized fields by name, its primary key as "pk", a related
    object's natural key (a sentinel instance of its own, set in the field's
    cache so that no query runs) as {"natural_key_of": field}. Fields it
    inherits (multi-table inheritance) are serialized in the parent's object,
    not in its own, and map to None."""
    instance = model()
    local = set(model._meta.local_fields)
    sentinels, related = {}, {}
    for index, field in enumerate(model._meta.concrete_fields):
        own = field in local
        if field.remote_field is None:
            value = _Sentinel("\x00edms-nk-%s-%d" % (prefix, index))
            setattr(instance, field.attname, value)
            if field is model._meta.pk:
                sentinels[value] = "pk"
            else:
                sentinels[value] = field.name if own and field.serialize else None
        elif (
            own
            and depth < 3
            and (field.many_to_one or field.one_to_one)
            and field is not model._meta.pk
        ):
            target = field.related_model
            if not hasattr(target, "natural_key"):
                continue
            other, _sentinels, _related = _sentinel_instance(
                target, "%s.%d" % (prefix, index), depth + 1
            )
            field.set_cached_value(instance, other)
            try:
                key = tuple(other.natural_key())
            except Exception:
                continue
            related[field.name] = key
    return instance, sentinels, related


def _describe_key(key, sentinels, related):
    """The description of a natural key (the tuple natural_key() gave on a
    sentinel instance), or None when a part of it cannot be told."""
    parts, index = [], 0
    while index < len(key):
        value = key[index]
        if isinstance(value, _Sentinel) and value in sentinels:
            if sentinels[value] is None:
                return None
            parts.append(sentinels[value])
            index += 1
            continue
        for name, other in related.items():
            run = key[index : index + len(other)]
            if other and len(run) == len(other) and all(a is b for a, b in zip(run, other)):
                parts.append({"natural_key_of": name})
                index += len(other)
                break
        else:
            return None
    return parts


def natural_key_fields(model):
    """How the model's natural key is made from its object in the fixture,
    for verification to rebuild it there: a list of parts, each the name of
    one of its own fields, "pk" for its primary key, or {"natural_key_of":
    field} for the natural key of the object a foreign key of its own points
    to (written in the fixture as that list), in place. None when the model
    has no natural key or its parts cannot be told (a field it inherits, a
    computed value)."""
    if not hasattr(model, "natural_key"):
        return None
    try:
        instance, sentinels, related = _sentinel_instance(model, "0", 0)
        key = instance.natural_key()
    except Exception:
        return None
    if not isinstance(key, (tuple, list)) or not key:
        return None
    return _describe_key(tuple(key), sentinels, related)


def natural_key_map(model, using):
    return {
        obj.pk: list(obj.natural_key())
        for obj in model._base_manager.using(using).order_by().iterator(chunk_size=2000)
    }


class M2MCursor:
    """Rows of one auto-created m2m table, read in step with the source objects."""

    def __init__(self, field, key_map, using):
        through = field.remote_field.through
        self.source = field.m2m_field_name() + "_id"
        self.target = field.m2m_reverse_field_name() + "_id"
        rows = (
            through._base_manager.using(using)
            .order_by(self.source, "pk")
            .values_list(self.source, self.target)
            .iterator(chunk_size=5000)
        )
        self.rows = iter(rows)
        self.key_map = key_map
        self.pending = next(self.rows, None)
        self.count = 0

    def values_for(self, pk):
        # The objects and these rows come in the database's order of the same
        # primary key values, in one snapshot, and every row's source is an
        # object being dumped: the rows of this object, if any, are next. A
        # misalignment would leave rows unread, which the row count catches.
        values = []
        while self.pending is not None and self.pending[0] == pk:
            target = self.pending[1]
            values.append(self.key_map[target] if self.key_map is not None else str_pk(target))
            self.count += 1
            self.pending = next(self.rows, None)
        return values


def str_pk(value):
    return value if isinstance(value, int) else str(value)


def relations_of(model, unheld=frozenset()):
    """{field: {"model", "many"}} of the model's own references, with
    "to_field" for a foreign key to a field of the target that is not its
    primary key (the fixture holds that field's value). unheld: the models
    that hold no data of their own (over a view): a reference to one cannot
    be checked in the fixture, and is left out."""
    result = {}
    for field in model._meta.local_fields:
        if field.remote_field is not None and field.serialize:
            # A proxy's objects are written under its concrete model's label.
            target = field.remote_field.model._meta.concrete_model
            if target in unheld:
                continue
            result[field.name] = {"model": target._meta.label_lower, "many": False}
            target_field = getattr(field, "target_field", None)
            if target_field is not None and target_field is not target._meta.pk:
                result[field.name]["to_field"] = target_field.name
    for field in model._meta.local_many_to_many:
        concrete = field.remote_field.model._meta.concrete_model
        if concrete in unheld:
            continue
        if field.serialize and field.remote_field.through._meta.auto_created:
            target = concrete._meta.label_lower
            result[field.name] = {"model": target, "many": True}
    return result


def snapshot(connection):
    """Starts the dump's repeatable-read, read-only transaction: (its time,
    the server's version, the database's name and size)."""
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute(
            "SELECT now(), version(), current_database(), pg_database_size(current_database())"
        )
        return cursor.fetchone()


def share_snapshot(connection, excluded_data):
    """Export the transaction's snapshot and say so on stderr; the signal
    directory, or None when there is nowhere to make one (the pg_dump then
    takes a snapshot of its own, and the host says so)."""
    import tempfile

    try:
        signal = tempfile.mkdtemp(prefix="edms-snapshot-")
    except OSError:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_export_snapshot()")
        (snapshot_id,) = cursor.fetchone()
    sys.stderr.write(
        SNAPSHOT_MARKER
        + json.dumps(
            {"snapshot": snapshot_id, "signal": signal, "exclude_table_data": excluded_data}
        )
        + "\n"
    )
    sys.stderr.flush()
    return signal


def release_snapshot(signal):
    """Wait until the host has removed signal (pg_dump has imported the
    snapshot), SNAPSHOT_WAIT seconds at most; then make sure it is gone."""
    import shutil
    import time

    deadline = time.monotonic() + SNAPSHOT_WAIT
    while os.path.isdir(signal) and time.monotonic() < deadline:
        time.sleep(0.1)
    shutil.rmtree(signal, ignore_errors=True)


def data_free_tables():
    """Tables whose rows a pg_dump leaves out: the sessions' (a restore
    empties them on purpose, and they hold live credentials)."""
    from django.apps import apps

    return sorted(
        m._meta.db_table for m in apps.get_models() if m._meta.label_lower == "sessions.session"
    )


def count_rows(models, using):
    """({label: rows} of every model and auto-created m2m table, [m2m table labels])."""
    counts, m2m_tables = {}, []
    for model in models:
        counts[model._meta.label_lower] = model._base_manager.using(using).count()
        for field in model._meta.local_many_to_many:
            through = field.remote_field.through
            if field.serialize and through._meta.auto_created:
                counts[through._meta.label_lower] = through._base_manager.using(using).count()
                m2m_tables.append(through._meta.label_lower)
    return counts, m2m_tables


def key_maps_of(models, using):
    """One natural-key map per model that is referenced and has natural_key()."""
    referenced = set()
    for model in models:
        for field in model._meta.local_fields + model._meta.local_many_to_many:
            target = field.remote_field.model if field.remote_field is not None else None
            if target is not None and hasattr(target, "natural_key"):
                referenced.add(target)
    return {target: natural_key_map(target, using) for target in referenced}


def write_objects(out, models, counts, key_maps, instance_path, using):
    """The fixture, one object per line; each model's and m2m table's rows
    checked against its count. Returns the Emitter (its count of objects)."""
    # Imported here, after django.setup(): they import Django at module level.
    from ansible_collections.edms.backup.plugins.module_utils._backend.rows import (
        fast_objects,
        key_order,
        row_plan,
    )
    from ansible_collections.edms.backup.plugins.module_utils._backend.serializer import (
        Emitter,
        FixtureSerializer,
    )

    emitter = Emitter(out)
    serializer = FixtureSerializer(key_maps, emitter)
    out.write("[")
    for model in models:
        cursors = {
            field: M2MCursor(field, key_maps.get(field.remote_field.model), using)
            for field in model._meta.local_many_to_many
            if field.serialize and field.remote_field.through._meta.auto_created
        }
        before = emitter.written
        plan = "asked for" if instance_path else row_plan(model, key_maps, using)
        if isinstance(plan, str):
            # The instance path (see row_plan for when and why).
            serializer.m2m = cursors
            queryset = model._base_manager.using(using).order_by(key_order(model))
            serializer.serialize(
                queryset.iterator(chunk_size=2000),
                stream=out,
                use_natural_foreign_keys=True,
                use_natural_primary_keys=False,
            )
        else:
            for dump_object in fast_objects(model, plan, cursors, using):
                emitter.emit(dump_object)
        dumped = emitter.written - before
        if dumped != counts[model._meta.label_lower]:
            fail(
                "%s: counted %d rows but dumped %d"
                % (model._meta.label, counts[model._meta.label_lower], dumped)
            )
        for field, cursor in cursors.items():
            label = field.remote_field.through._meta.label_lower
            if cursor.count != counts[label]:
                fail("%s: counted %d rows but dumped %d" % (label, counts[label], cursor.count))
    out.write("\n]\n")
    out.flush()
    return emitter


def applied_migrations(connection):
    from django.db.migrations.recorder import MigrationRecorder

    applied = {}
    for app_label, name in sorted(MigrationRecorder(connection).applied_migrations()):
        applied.setdefault(app_label, []).append(name)
    return applied


def unheld_models(using):
    """The concrete models that hold no data of their own (_backend/tables.py)."""
    from django.apps import apps

    base_tables, views = relations(using)
    return {
        m for m in apps.get_models() if not m._meta.proxy and not holds_data(m, base_tables, views)
    }


def describe_models(models, excludes, unheld=frozenset()):
    """What metadata says of the models besides their counts (unheld: see
    relations_of)."""
    from django.apps import apps
    from django.db.models import FileField

    installed = {m._meta.label_lower for m in apps.get_models()}
    return {
        "file_fields": {
            m._meta.label_lower: [f.name for f in m._meta.local_fields if isinstance(f, FileField)]
            for m in models
            if any(isinstance(f, FileField) for f in m._meta.local_fields)
        },
        "natural_keys": {
            m._meta.label_lower: fields
            for m in apps.get_models()
            for fields in [natural_key_fields(m)]
            if fields is not None
        },
        "relations": {
            m._meta.label_lower: relations_of(m, unheld) for m in models if relations_of(m, unheld)
        },
        "excluded_models": excludes,
        "recreated_models": sorted(
            {"contenttypes.contenttype", "auth.permission"}
            & installed
            & {m._meta.label_lower for m in apps.get_models() if m not in models}
        ),
        "dumped_models": [m._meta.label_lower for m in models],
    }


def dump(request, out):
    """The fixture written to out, in one snapshot; the report."""
    import django
    from django.db import DEFAULT_DB_ALIAS, connections, transaction

    using = DEFAULT_DB_ALIAS
    connection = connections[using]
    models = chosen_models(request["excludes"], using)
    signal = None
    try:
        with transaction.atomic(using=using):
            snapshot_at, pg_version, db_name, db_size = snapshot(connection)
            if request.get("share_snapshot"):
                signal = share_snapshot(connection, data_free_tables())
            counts, m2m_tables = count_rows(models, using)
            key_maps = key_maps_of(models, using)
            emitter = write_objects(
                out, models, counts, key_maps, bool(request.get("instance_path")), using
            )
            applied = applied_migrations(connection)
            out.flush()
            if signal is not None:
                release_snapshot(signal)
    finally:
        if signal is not None:
            import shutil

            shutil.rmtree(signal, ignore_errors=True)
    return {
        "snapshot_at": snapshot_at.astimezone(datetime.timezone.utc).isoformat(),
        "versions": {
            "django": django.get_version(),
            "python": platform.python_version(),
            "postgresql": pg_version,
        },
        "database": {"name": db_name, "size_bytes": db_size},
        "migrations": applied,
        "counts": counts,
        "m2m_tables": m2m_tables,
        **describe_models(models, request["excludes"], unheld_models(using)),
        "objects": emitter.written,
    }


def main():
    request = json.loads(sys.argv[1])
    if not choose_settings(request):
        fail(request["settings_source"])
    import django

    django.setup()
    # Written in blocks of 1 MiB: every write to the pipe is relayed by the
    # container runtime and the Docker engine as one frame of the stream.
    out = io.BufferedWriter(io.FileIO(sys.stdout.fileno(), "w", closefd=False), 1 << 20)
    try:
        report = dump(request, io.TextIOWrapper(out, encoding="utf-8", write_through=False))
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        fail("the dump failed: %s" % traceback.format_exc().strip().splitlines()[-1])
    sys.stderr.write(REPORT_MARKER + json.dumps(report) + "\n")
