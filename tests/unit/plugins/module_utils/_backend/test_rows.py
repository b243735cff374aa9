"""The dump's value encoding (_backend/rows.py), each function against what
Django itself writes for the same value (the demo's Django, on the host)."""

import datetime
import decimal
import uuid
from base64 import b64encode

import pytest
from ansible_collections.edms.backup.plugins.module_utils._backend import rows
from django.db import models
from django.utils.duration import duration_string

PROTECTED = [
    None,
    7,
    1.5,
    decimal.Decimal("1.10"),
    datetime.date(2026, 1, 1),
    datetime.datetime(2026, 1, 1, 13, 0, 29, 350186, tzinfo=datetime.UTC),
    datetime.time(13, 0, 29, 350186),
]


@pytest.mark.parametrize(
    "convert", [rows.as_str, rows.as_isoformat, rows.as_duration, rows.as_base64]
)
@pytest.mark.parametrize("value", PROTECTED)
def test_a_value_of_a_protected_type_is_written_as_it_is(convert, value):
    assert convert(value) is value


def test_other_values_are_written_as_the_fields_value_to_string_writes_them():
    key = uuid.UUID("9c5b94b1-35ad-49bb-b118-8e8fc24abf80")
    assert rows.as_str(key) == "9c5b94b1-35ad-49bb-b118-8e8fc24abf80"
    assert rows.as_str("Zo\u00eb") == "Zo\u00eb"
    assert rows.as_str(True) is True  # bool is an int: protected, written as it is
    span = datetime.timedelta(days=1, seconds=5, microseconds=7)
    assert rows.as_duration(span) == duration_string(span) == "1 00:00:05.000007"
    assert rows.as_base64(b"\x00\xff") == b64encode(b"\x00\xff").decode("ascii") == "AP8="
    assert rows.as_base64(memoryview(b"ab")) == "YWI="
    assert rows.as_json({"a": [1]}) == {"a": [1]}
    assert rows.as_file_name("documents/a.pdf") == "documents/a.pdf"
    assert rows.as_file_name(None) == rows.as_file_name("") == ""


def test_each_of_djangos_value_to_string_methods_has_its_conversion():
    assert rows.CONVERTERS[models.Field.value_to_string] is rows.as_str
    assert rows.CONVERTERS[models.DateTimeField.value_to_string] is rows.as_isoformat
    assert rows.CONVERTERS[models.DurationField.value_to_string] is rows.as_duration
    assert rows.CONVERTERS[models.BinaryField.value_to_string] is rows.as_base64
    assert rows.CONVERTERS[models.JSONField.value_to_string] is rows.as_json
