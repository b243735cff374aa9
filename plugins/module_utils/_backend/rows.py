# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The dump's fast path (dump.py): each model read with one query and each
value converted the way Django's serializer converts it from an instance.

The tests hold each conversion against Django's serializer, in the backend
(tests/dump_probe.py) and on the host (the unit tests). Django is imported
when there is one: on the host without it, the module still imports, for its
source, and only the tables of Django's classes are missing.
"""

import inspect
from base64 import b64encode

try:
    from django.core.files.base import File
    from django.db import models as django_models
    from django.db.models import (
        BinaryField,
        DateField,
        DateTimeField,
        DurationField,
        Field,
        FileField,
        JSONField,
        Model,
        TimeField,
    )
    from django.db.models.fields.files import FileDescriptor, ImageFileDescriptor
    from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
    from django.db.models.query_utils import DeferredAttribute
    from django.db.models.signals import post_init
    from django.utils.duration import duration_string
    from django.utils.encoding import is_protected_type
except ImportError:  # the host without Django: nothing here runs there
    HAS_DJANGO = False
else:
    HAS_DJANGO = True

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
            meta.pk.name,
            type(meta.pk).__name__,
        )
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
            return "its field %s (%s) has no exact conversion" % (field.name, type(field).__name__)
        steps.append((field.name, len(columns), convert))
        columns.append(field.attname)
    m2m = [
        field
        for field in meta.local_many_to_many
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


if HAS_DJANGO:
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
