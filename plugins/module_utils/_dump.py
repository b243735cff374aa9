# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The fixture dump, run inside the backend container, and the reading of its report.

DUMP_SCRIPT is plain Python for the application's own interpreter (the
container gets no new packages). It writes the fixture to standard output and,
as the last line of standard error, one JSON report with everything metadata
needs. See docs/archive-format.md for the format.

What it does differently from ``manage.py dumpdata --natural-foreign --all``:

- one REPEATABLE READ, READ ONLY transaction around the counts and the dump,
  so a backup taken while the application writes is one consistent snapshot;
- datetimes and times keep their microseconds (Django's encoder cuts them);
- natural keys of referenced models come from one map per model, and the rows
  of each auto-created m2m table are read once, in step with the objects
  (dumpdata queries once per object per m2m field and per natural key);
- one object per line, so both sides can stream it.

The output is still a fixture that plain ``manage.py loaddata`` reads.
"""

from __future__ import annotations

import json

from ansible_collections.edms.backup.plugins.module_utils._django import (
    DjangoError,
    read_marked_report,
)

REPORT_MARKER = "EDMS-BACKUP-REPORT "

DEFAULT_EXCLUDES = ["contenttypes", "auth.permission", "sessions", "admin.logentry"]

# Runs inside the backend. argv[1]: JSON {"settings", "excludes", "required"}.
DUMP_SCRIPT = r'''
import datetime, io, json, os, platform, sys, traceback

MARKER = "EDMS-BACKUP-REPORT "
request = json.loads(sys.argv[1])
if request.get("settings"):
    os.environ["DJANGO_SETTINGS_MODULE"] = request["settings"]


def fail(message):
    sys.stderr.write(MARKER + json.dumps({"error": message}) + "\n")
    sys.exit(3)


if not os.environ.get("DJANGO_SETTINGS_MODULE"):
    fail("DJANGO_SETTINGS_MODULE is not set in the backend container")

import django
django.setup()
from django.apps import apps
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder, Serializer as JSONSerializer
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import FileField

using = DEFAULT_DB_ALIAS
connection = connections[using]


class LosslessEncoder(DjangoJSONEncoder):
    """Django's encoder, but datetimes and times keep their microseconds."""

    def default(self, o):
        if isinstance(o, datetime.datetime):
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        if isinstance(o, datetime.time):
            if o.utcoffset() is not None:
                raise ValueError("JSON can't represent timezone-aware times.")
            return o.isoformat()
        return super().default(o)


def resolve_excludes(labels):
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


excluded_apps, excluded_models = resolve_excludes(request["excludes"])
app_list = {}
for app_config in apps.get_app_configs():
    if app_config.models_module is None or app_config in excluded_apps:
        continue
    chosen = [
        m for m in app_config.get_models()
        if m not in excluded_models and not m._meta.proxy
        and router.allow_migrate_model(using, m)
    ]
    if chosen:
        app_list[app_config] = chosen
models = serializers.sort_dependencies(app_list.items(), allow_cycles=True)


def natural_key_fields(model):
    """Field names whose values make the model's natural key, if only its own."""
    if not hasattr(model, "natural_key"):
        return None
    instance = model()
    sentinels = {}
    for index, field in enumerate(model._meta.concrete_fields):
        if field.remote_field is None:
            value = "\x00edms-nk-%d" % index
            setattr(instance, field.attname, value)
            sentinels[value] = field.name
    try:
        key = instance.natural_key()
    except Exception:
        return None
    if not isinstance(key, (tuple, list)) or not all(k in sentinels for k in key):
        return None
    return [sentinels[k] for k in key]


def natural_key_map(model):
    return {
        obj.pk: list(obj.natural_key())
        for obj in model._base_manager.using(using).order_by().iterator(chunk_size=2000)
    }


class M2MCursor:
    """Rows of one auto-created m2m table, read in step with the source objects."""

    def __init__(self, field, key_map):
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


class FixtureSerializer(JSONSerializer):
    """One object per line; natural keys and m2m values from the maps."""

    def __init__(self, key_maps):
        super().__init__()
        self.key_maps = key_maps
        self.m2m = {}
        self.written = 0

    def _init_options(self):
        super()._init_options()
        self.json_kwargs["cls"] = LosslessEncoder

    def start_serialization(self):
        self._init_options()

    def end_serialization(self):
        pass

    def end_object(self, obj):
        self.stream.write("\n" if self.first_in_file else ",\n")
        self.first_in_file = False
        json.dump(self.get_dump_object(obj), self.stream, **self.json_kwargs)
        self.written += 1
        self._current = None

    def handle_fk_field(self, obj, field):
        key_map = self.key_maps.get(field.remote_field.model)
        if key_map is None:
            return super().handle_fk_field(obj, field)
        raw = getattr(obj, field.attname)
        if raw is None:
            value = None
        elif raw in key_map:
            value = key_map[raw]
        else:
            value = list(getattr(obj, field.name).natural_key())
        self._current[field.name] = value

    def handle_m2m_field(self, obj, field):
        if not field.remote_field.through._meta.auto_created:
            return
        self._current[field.name] = self.m2m[field].values_for(obj.pk)


def relations_of(model):
    result = {}
    for field in model._meta.local_fields:
        if field.remote_field is not None and field.serialize:
            target = field.remote_field.model._meta.label_lower
            result[field.name] = {"model": target, "many": False}
    for field in model._meta.local_many_to_many:
        if field.serialize and field.remote_field.through._meta.auto_created:
            target = field.remote_field.model._meta.label_lower
            result[field.name] = {"model": target, "many": True}
    return result


try:
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", write_through=False)
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute(
                "SELECT now(), version(), current_database(),"
                " pg_database_size(current_database())"
            )
            snapshot_at, pg_version, db_name, db_size = cursor.fetchone()

        counts, m2m_tables = {}, []
        for model in models:
            counts[model._meta.label_lower] = model._base_manager.using(using).count()
            for field in model._meta.local_many_to_many:
                through = field.remote_field.through
                if field.serialize and through._meta.auto_created:
                    counts[through._meta.label_lower] = through._base_manager.using(using).count()
                    m2m_tables.append(through._meta.label_lower)

        # One natural-key map per model that is referenced and has natural_key().
        referenced = set()
        for model in models:
            for field in model._meta.local_fields + model._meta.local_many_to_many:
                target = field.remote_field.model if field.remote_field is not None else None
                if target is not None and hasattr(target, "natural_key"):
                    referenced.add(target)
        key_maps = {target: natural_key_map(target) for target in referenced}

        serializer = FixtureSerializer(key_maps)
        serializer.first_in_file = True
        out.write("[")
        for model in models:
            serializer.m2m = {
                field: M2MCursor(field, key_maps.get(field.remote_field.model))
                for field in model._meta.local_many_to_many
                if field.serialize and field.remote_field.through._meta.auto_created
            }
            before = serializer.written
            queryset = model._base_manager.using(using).order_by(model._meta.pk.name)
            serializer.serialize(
                queryset.iterator(chunk_size=2000),
                stream=out,
                use_natural_foreign_keys=True,
                use_natural_primary_keys=False,
            )
            dumped = serializer.written - before
            if dumped != counts[model._meta.label_lower]:
                fail("%s: counted %d rows but dumped %d" % (
                    model._meta.label, counts[model._meta.label_lower], dumped))
            for field, cursor in serializer.m2m.items():
                label = field.remote_field.through._meta.label_lower
                if cursor.count != counts[label]:
                    fail("%s: counted %d rows but dumped %d" % (label, counts[label], cursor.count))
        out.write("\n]\n")
        out.flush()

        applied = {}
        for app_label, name in sorted(MigrationRecorder(connection).applied_migrations()):
            applied.setdefault(app_label, []).append(name)

    installed = {m._meta.label_lower for m in apps.get_models()}
    report = {
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
        "relations": {m._meta.label_lower: relations_of(m) for m in models if relations_of(m)},
        "excluded_models": request["excludes"],
        "recreated_models": sorted(
            {"contenttypes.contenttype", "auth.permission"} & installed
            & {m._meta.label_lower for m in apps.get_models() if m not in models}
        ),
        "dumped_models": [m._meta.label_lower for m in models],
        "objects": serializer.written,
    }
except SystemExit:
    raise
except BaseException:
    traceback.print_exc()
    fail("the dump failed: %s" % traceback.format_exc().strip().splitlines()[-1])
sys.stderr.write(MARKER + json.dumps(report) + "\n")
'''


class DumpError(Exception):
    """The dump in the backend failed or its report cannot be read."""


def dump_command(python, excludes, settings_module=None):
    """The argv that dumps the fixture inside the backend container."""
    request = {"settings": settings_module, "excludes": list(excludes)}
    return [python, "-c", DUMP_SCRIPT, json.dumps(request)]


def parse_report(stderr):
    """The dump's report: the last stderr line that carries the marker."""
    try:
        report = read_marked_report(stderr, REPORT_MARKER, "the dump")
    except DjangoError as exc:
        raise DumpError(str(exc)) from exc  # the cause says whether a report was there
    if "error" in report:
        raise DumpError(report["error"])
    return report
