# The dump's fast conversions held against Django's serializer, printed as one
# JSON object. Run in the backend (python -c) by the integration tests, with
# a program that makes _backend/rows.py importable (_platform/django.py with_backend) as
# argv[1]; it reads no database.
#
# A model with a field of every kind the fast path converts: instances of it
# are made with from_db() (what the instance path's queryset does), and for
# every field and sample value Serializer._value_from_field(instance) must
# equal the fast path's conversion of the value alone, type included. Then
# models the fast path must leave to the instance path, with the reason that
# row_plan gives for each.
import datetime
import decimal
import json
import sys
import uuid

import django

django.setup()
from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.postgres.fields import ArrayField  # noqa: E402
from django.core.serializers.json import Serializer  # noqa: E402
from django.db import models  # noqa: E402
from django.db.models.fields.files import FieldFile  # noqa: E402
from django.db.models.query_utils import DeferredAttribute  # noqa: E402

exec(sys.argv[1], {})
from ansible_collections.edms.backup.plugins.module_utils._backend.rows import row_plan  # noqa: E402

UTC = datetime.UTC
SGT = datetime.timezone(datetime.timedelta(hours=8))
SAMPLES = {
    "id": [uuid.UUID(int=7), uuid.UUID("9c5b94b1-35ad-49bb-b118-8e8fc24abf80")],
    "char": ["x", "", 'Zo\u00eb \u2713 "q"', None, models.TextChoices("T", "A B").A],
    "text": ["line\nline", "", "\u2028"],
    "email": ["a@example.com"],
    "slug": ["a-b"],
    "url": ["https://example.com/?a=1"],
    "ip": ["::1", "10.0.0.1", None],
    "integer": [0, -5, None, models.IntegerChoices("I", "A B").B],
    "big": [2**40, -(2**62)],
    "small": [-3],
    "positive": [7],
    "floating": [1.5, 1e-7, -0.0, None],
    "decimal": [decimal.Decimal("1.50"), decimal.Decimal("-0.001"), None],
    "boolean": [True, False],
    "maybe": [None, True],
    "date": [datetime.date(2024, 2, 29), None],
    "datetime": [
        datetime.datetime(2025, 1, 6, 8, 0, 0, 123456, tzinfo=UTC),
        datetime.datetime(2025, 1, 6, 8, 0, tzinfo=UTC),
        datetime.datetime(2025, 1, 6, 16, 0, 1, 5, tzinfo=SGT),
        None,
    ],
    "time": [datetime.time(1, 2, 3, 4), datetime.time(0, 0), None],
    "duration": [
        datetime.timedelta(days=1, microseconds=5),
        datetime.timedelta(0),
        -datetime.timedelta(seconds=1),
        None,
    ],
    "uuid": [uuid.UUID("12345678-1234-5678-1234-567812345678"), None],
    "binary": [b"\x00\xff", memoryview(b"ab"), b"", None],
    "json": [{"a": [1, None, "\u00fc"]}, [1, 2], "text", 3, 2.5, True, None],
    "file": ["documents/2025/01/a.pdf", "", None],
    "image": ["images/a.png", "", None],
    "path": ["/srv/a.txt"],
    "other": [uuid.UUID(int=9), None],
}


class Probe(models.Model):
    id = models.UUIDField(primary_key=True)
    char = models.CharField(max_length=20, null=True)
    text = models.TextField()
    email = models.EmailField()
    slug = models.SlugField()
    url = models.URLField()
    ip = models.GenericIPAddressField(null=True)
    integer = models.IntegerField(null=True)
    big = models.BigIntegerField()
    small = models.SmallIntegerField()
    positive = models.PositiveIntegerField()
    floating = models.FloatField(null=True)
    decimal = models.DecimalField(max_digits=9, decimal_places=3, null=True)
    boolean = models.BooleanField()
    maybe = models.BooleanField(null=True)
    date = models.DateField(null=True)
    datetime = models.DateTimeField(null=True)
    time = models.TimeField(null=True)
    duration = models.DurationField(null=True)
    uuid = models.UUIDField(null=True)
    binary = models.BinaryField(null=True)
    json = models.JSONField(null=True)
    file = models.FileField(null=True)
    image = models.ImageField(null=True)
    path = models.FilePathField()
    # A reference to a model without natural_key(): the serializer's plain value.
    other = models.ForeignKey("self", models.CASCADE, null=True)

    class Meta:
        app_label = "documents"


serializer = Serializer()
checked, mismatches = 0, []
plan = row_plan(Probe, {}, "default")
if isinstance(plan, str):
    mismatches.append(plan)
else:
    columns, pk_convert, steps, _m2m = plan
    fields = [Probe._meta.pk] + [Probe._meta.get_field(name) for name, _index, _c in steps]
    converts = [pk_convert] + [convert for _name, _index, convert in steps]
    samples = [SAMPLES[field.name] for field in fields]
    for row in range(max(len(values) for values in samples)):
        values = [values[row % len(values)] for values in samples]
        instance = Probe.from_db("default", columns, values)
        for field, value, convert in zip(fields, values, converts, strict=True):
            want = serializer._value_from_field(instance, field)
            got = convert(value)
            checked += 1
            if type(got) is not type(want) or got != want:
                mismatches.append(f"{field.name} {value!r}: {got!r} != {want!r}")


class Upper(DeferredAttribute):
    def __get__(self, instance, cls=None):
        value = super().__get__(instance, cls)
        return value.upper() if instance is not None and value else value


class UpperField(models.CharField):
    descriptor_class = Upper


class OwnStr(FieldFile):
    def __str__(self):
        return "own"


class OwnStrFileField(models.FileField):
    attr_class = OwnStr


def own_init(self, *args, **kwargs):
    models.Model.__init__(self, *args, **kwargs)


def reason(name, attrs):
    meta = type("Meta", (), {"app_label": "documents"})
    model = type(name, (models.Model,), {**attrs, "__module__": __name__, "Meta": meta})
    found = row_plan(model, {apps.get_model(settings.AUTH_USER_MODEL): {}}, "default")
    return found if isinstance(found, str) else None


user = settings.AUTH_USER_MODEL
reasons = {
    "array": reason("ProbeArray", {"tags": ArrayField(models.CharField(max_length=5))}),
    "descriptor": reason("ProbeDescriptor", {"name": UpperField(max_length=5)}),
    "file_str": reason("ProbeFileStr", {"file": OwnStrFileField()}),
    "init": reason("ProbeInit", {"__init__": own_init}),
    "to_field": reason(
        "ProbeToField", {"user": models.ForeignKey(user, models.CASCADE, to_field="username")}
    ),
    "dimensions": reason(
        "ProbeDimensions",
        {"image": models.ImageField(width_field="w"), "w": models.IntegerField(null=True)},
    ),
    "plain": reason("ProbePlain", {"user": models.ForeignKey(user, models.CASCADE)}),
}
print(json.dumps({"checked": checked, "mismatches": mismatches, "reasons": reasons}))
