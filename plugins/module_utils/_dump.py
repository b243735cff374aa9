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
- no model instances: each model is read with one query (``values_list`` in
  primary-key order, through a server-side cursor in chunks) and each value
  converted the way the serializer would convert it from an instance
  (ROW_VALUES); a model with a field or behaviour that conversion cannot
  reproduce exactly is dumped through instances and Django's serializer as
  before (``row_plan`` says why), and so is every model when the request asks
  for ``instance_path``: both give the same bytes;
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

# Runs inside the backend. argv[1]: JSON {"settings", "excludes"} and, to dump
# every model through instances and Django's serializer (the path the fast one
# falls back to, kept for the tests that compare the two), "instance_path": true.
_DUMP_SETUP = r"""
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
"""

# The fast path's reading of rows, plain Python for the backend with Django set
# up. One source: DUMP_SCRIPT runs it, and the tests exec the same text in the
# backend to hold each conversion against Django's serializer.
ROW_VALUES = r'''
import inspect
from base64 import b64encode

from django.core.files.base import File
from django.db import models as django_models
from django.db.models import (
    BinaryField, DateField, DateTimeField, DurationField, Field, FileField, JSONField, Model,
    TimeField,
)
from django.db.models.fields.files import FileDescriptor, ImageFileDescriptor
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init
from django.utils.duration import duration_string
from django.utils.encoding import is_protected_type

ROWS_CHUNK = 2000

# What Django's serializer writes for a field of an instance
# (Serializer._value_from_field): the value as it is when it is of a protected
# type (None, int, float, Decimal, date, datetime, time), else
# field.value_to_string(obj). Each function below gives the same from the value
# alone, for one of Django's value_to_string methods. The value is the one
# values_list() reads, which is the one the instance holds: the same database
# converters (from_db_value and the backend's) run for both.


def as_str(value):
    """Field.value_to_string: str(field.value_from_object(obj))."""
    return value if is_protected_type(value) else str(value)


def as_isoformat(value):
    """DateField, DateTimeField and TimeField.value_to_string."""
    if is_protected_type(value):
        return value
    return "" if value is None else value.isoformat()


def as_duration(value):
    """DurationField.value_to_string."""
    if is_protected_type(value):
        return value
    return "" if value is None else duration_string(value)


def as_base64(value):
    """BinaryField.value_to_string: the bytes in base64."""
    return value if is_protected_type(value) else b64encode(value).decode("ascii")


def as_json(value):
    """JSONField.value_to_string: the value itself, for the encoder to write."""
    return value


def as_file_name(value):
    """A FileField: its descriptor wraps the stored name (str or None) in the
    field's attr_class, never of a protected type, so the serializer writes
    Field.value_to_string: str() of that FieldFile, File.__str__: the name or ""."""
    return value or ""


CONVERTERS = {
    Field.value_to_string: as_str,
    DateField.value_to_string: as_isoformat,
    DateTimeField.value_to_string: as_isoformat,
    TimeField.value_to_string: as_isoformat,
    DurationField.value_to_string: as_duration,
    BinaryField.value_to_string: as_base64,
    JSONField.value_to_string: as_json,
}
PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute)
FILE_DESCRIPTORS = (FileDescriptor, ImageFileDescriptor)


def field_converter(model, field):
    """The conversion of the field's value (see CONVERTERS), or None when there
    is no exact one and the model must be dumped through instances. None for:
    a field that is not a plain column, or with its own value_from_object; an
    attribute on the model that is not Django's plain descriptor (the instance
    would not hold the value as read); a value_to_string not in CONVERTERS,
    e.g. contrib.postgres's ArrayField, HStoreField and range fields, or a
    third-party field's own; a FileField whose attr_class has its own __str__."""
    kind = type(field)
    if not field.concrete or kind.value_from_object is not Field.value_from_object:
        return None
    descriptor = type(inspect.getattr_static(model, field.attname, None))
    if isinstance(field, FileField):
        exact = (
            descriptor in FILE_DESCRIPTORS
            and kind.value_to_string is Field.value_to_string
            and field.attr_class.__str__ is File.__str__
        )
        return as_file_name if exact else None
    if descriptor not in PLAIN_DESCRIPTORS:
        return None
    return CONVERTERS.get(kind.value_to_string)


def reference_converter(model, field, key_maps, using):
    """A foreign key's value as the dump writes it: the natural key of the
    object it refers to (the model's map, as FixtureSerializer has it) when the
    model has natural_key(), else the serializer's plain value. None when there
    is no exact one: the natural key of a reference through to_field."""
    target = field.remote_field.model
    if not hasattr(target, "natural_key"):
        return field_converter(model, field)
    key_map = key_maps.get(target)
    descriptor = type(inspect.getattr_static(model, field.attname, None))
    if (
        key_map is None
        or not field.concrete
        or descriptor not in PLAIN_DESCRIPTORS
        or field.target_field is not target._meta.pk
    ):
        return None
    manager = target._base_manager.db_manager(using)

    def convert(raw):
        if raw is None:
            return None
        value = key_map.get(raw)
        if value is None:  # not in the map: what FixtureSerializer does then
            value = list(manager.get(pk=raw).natural_key())
        return value

    return convert


def model_reason(model):
    """Why the model's objects must be dumped as instances, or None: anything
    that can make an instance hold other values than the ones read."""
    if model.__init__ is not Model.__init__:
        return "it has its own __init__"
    if getattr(model.from_db, "__func__", None) is not Model.from_db.__func__:
        return "it has its own from_db"
    if (
        model.__setattr__ is not Model.__setattr__
        or model.__getattribute__ is not Model.__getattribute__
    ):
        return "it has its own attribute access"
    if post_init.has_listeners(model):
        return "post_init receivers may change its instances (e.g. ImageField dimensions)"
    composite = getattr(django_models, "CompositePrimaryKey", None)
    if composite is not None and isinstance(model._meta.pk, composite):
        return "its primary key is composite"
    return None


def row_plan(model, key_maps, using):
    """How the fast path reads and writes the model's objects: (the attnames
    values_list reads, the primary key's conversion, [(field name, index in the
    row, conversion)] in the serializer's order, [auto-created m2m fields]); or
    a str, why the model's objects must be dumped as instances instead."""
    reason = model_reason(model)
    if reason is not None:
        return reason
    meta = model._meta
    pk_convert = field_converter(model, meta.pk)
    if pk_convert is None:
        return "its primary key %s (%s) has no exact conversion" % (
            meta.pk.name, type(meta.pk).__name__)
    columns = [meta.pk.attname]
    steps = []
    for field in meta.local_fields:
        if not field.serialize:
            continue
        if field.remote_field is None:
            convert = field_converter(model, field)
        else:
            convert = reference_converter(model, field, key_maps, using)
        if convert is None:
            return "its field %s (%s) has no exact conversion" % (
                field.name, type(field).__name__)
        steps.append((field.name, len(columns), convert))
        columns.append(field.attname)
    m2m = [
        field for field in meta.local_many_to_many
        if field.serialize and field.remote_field.through._meta.auto_created
    ]
    return columns, pk_convert, steps, m2m


def key_order(model):
    """Primary-key order, by the key's column: ordering by a OneToOne key's
    name would follow the related model's Meta.ordering, and the m2m rows are
    read in step by key (M2MCursor)."""
    return model._meta.pk.attname


def fast_objects(model, plan, cursors, using):
    """The model's objects as the serializer's dump objects, from one query in
    primary-key order (a server-side cursor, in chunks); cursors: one
    M2MCursor per field of plan's m2m fields, read in step."""
    columns, pk_convert, steps, m2m = plan
    label = model._meta.label_lower
    m2m_values = [(field.name, cursors[field].values_for) for field in m2m]
    rows = (
        model._base_manager.using(using)
        .order_by(key_order(model))
        .values_list(*columns)
        .iterator(chunk_size=ROWS_CHUNK)
    )
    for row in rows:
        fields = {name: convert(row[index]) for name, index, convert in steps}
        for name, values_for in m2m_values:
            fields[name] = values_for(row[0])
        yield {"model": label, "pk": pk_convert(row[0]), "fields": fields}
'''

_DUMP_BODY = r'''
from django.apps import apps
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder, Serializer as JSONSerializer
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import FileField

using = DEFAULT_DB_ALIAS
connection = connections[using]
instance_path = bool(request.get("instance_path"))


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


class Emitter:
    """The fixture's objects, one per line, whichever path made them."""

    def __init__(self, stream):
        self.stream = stream
        self.encode = LosslessEncoder(ensure_ascii=False).encode
        self.separator = "\n"
        self.written = 0

    def emit(self, dump_object):
        self.stream.write(self.separator)
        self.stream.write(self.encode(dump_object))
        self.separator = ",\n"
        self.written += 1


class FixtureSerializer(JSONSerializer):
    """Instances through Django's serializer; natural keys and m2m values from the maps."""

    def __init__(self, key_maps, emitter):
        super().__init__()
        self.key_maps = key_maps
        self.emitter = emitter
        self.m2m = {}

    def start_serialization(self):
        self._init_options()

    def end_serialization(self):
        pass

    def end_object(self, obj):
        self.emitter.emit(self.get_dump_object(obj))
        self._current = None

    def handle_fk_field(self, obj, field):
        target = field.remote_field.model
        key_map = self.key_maps.get(target)
        if key_map is None:
            return super().handle_fk_field(obj, field)
        raw = getattr(obj, field.attname)
        if raw is None:
            value = None
        elif field.target_field is target._meta.pk and raw in key_map:
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

        emitter = Emitter(out)
        serializer = FixtureSerializer(key_maps, emitter)
        out.write("[")
        for model in models:
            cursors = {
                field: M2MCursor(field, key_maps.get(field.remote_field.model))
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
                fail("%s: counted %d rows but dumped %d" % (
                    model._meta.label, counts[model._meta.label_lower], dumped))
            for field, cursor in cursors.items():
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
        "objects": emitter.written,
    }
except SystemExit:
    raise
except BaseException:
    traceback.print_exc()
    fail("the dump failed: %s" % traceback.format_exc().strip().splitlines()[-1])
sys.stderr.write(MARKER + json.dumps(report) + "\n")
'''

DUMP_SCRIPT = _DUMP_SETUP + ROW_VALUES + _DUMP_BODY


class DumpError(Exception):
    """The dump in the backend failed or its report cannot be read."""


def dump_command(python, excludes, settings_module=None, instance_path=False):
    """The argv that dumps the fixture inside the backend container.

    instance_path: every model through instances and Django's serializer (the
    fast path's fallback; the same output, slower), for the tests.
    """
    request = {"settings": settings_module, "excludes": list(excludes)}
    if instance_path:
        request["instance_path"] = True
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
