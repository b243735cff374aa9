"""copy_text: the load's rows in COPY's text format, or NotCopied for a
value it does not write (its batch then goes as an INSERT). The database's
reading of the same text is tested against PostgreSQL in
tests/integration/test_load.py (tests/load_probe.py)."""

import datetime
import decimal
import enum
import uuid

import psycopg2
import pytest
from ansible_collections.edms.backup.plugins.module_utils._backend.loader import (
    _COPY_WRITERS,
    UTC_TEXT,
    NotCopied,
    copy_text,
    copy_writers,
)
from psycopg2.extras import Json


def line(*values):
    return copy_text([values], _COPY_WRITERS)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("tab\there", "tab\\there"),
        ("a\nb\r\nc", "a\\nb\\r\\nc"),
        ("back\\slash", "back\\\\slash"),
        ("\\N", "\\\\N"),
        ("\\.", "\\\\."),
        ("", ""),
        ("ünï ✓", "ünï ✓"),
        (None, "\\N"),
        (True, "t"),
        (False, "f"),
        (0, "0"),
        (-12345678901234567890, "-12345678901234567890"),
        (1.5, "1.5"),
        (1e-300, "1e-300"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (float("nan"), "NaN"),
        (decimal.Decimal("-1.2300"), "-1.2300"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (
            datetime.datetime(2024, 2, 29, 1, 2, 3, 4, tzinfo=datetime.UTC),
            "2024-02-29 01:02:03.000004+00:00",
        ),
        (datetime.datetime(2024, 2, 29, 1, 2, 3), "2024-02-29 01:02:03"),
        (
            # An aware time as its instant in UTC (the load's session is in UTC).
            datetime.datetime(
                2024, 2, 29, 6, 2, 3, tzinfo=datetime.timezone(datetime.timedelta(hours=5))
            ),
            "2024-02-29 01:02:03+00:00",
        ),
        (datetime.date(2024, 2, 29), "2024-02-29"),
        (datetime.time(23, 59, 58, 7), "23:59:58.000007"),
        (datetime.timedelta(days=-1, seconds=5, microseconds=7), "-1 days 5.000007 seconds"),
        (b"\x00\\\t\xff", "\\\\x005c09ff"),
        (memoryview(b"ab"), "\\\\x6162"),
        (bytearray(b""), "\\\\x"),
    ],
)
def test_each_value_is_written_as_the_database_reads_it(value, text):
    assert line(value) == text + "\n"


def test_rows_are_lines_of_tab_separated_values():
    assert copy_text([(1, "a\tb", None), (2, "", True)], _COPY_WRITERS) == (
        "1\ta\\tb\t\\N\n2\t\tt\n"
    )
    assert copy_text([], _COPY_WRITERS) == ""


class Colour(enum.IntEnum):
    RED = 1


class Name(str):
    pass


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, Colour.RED, Name("x"), object()])
def test_a_value_of_another_type_is_not_copied(value):
    # Exact types only: a subclass may be sent otherwise by the driver's adapters.
    with pytest.raises(NotCopied):
        line("fine", value)


def test_the_driver_adapters_are_written_by_what_they_hold():
    writers = copy_writers()
    assert copy_text([(Json({"a": "t\tb"}),)], writers) == '{"a": "t\\\\tb"}\n'
    custom = Json([1], dumps=lambda value: "custom")
    assert copy_text([(custom,)], writers) == "custom\n"
    assert copy_text([(psycopg2.Binary(b"\x01"),)], writers) == "\\\\x01\n"


@pytest.mark.parametrize(
    ("text", "taken"),
    [
        ("2024-02-29T01:02:03Z", True),
        ("2024-02-29T01:02:03.123456Z", True),
        ("2024-02-29T01:02:03.1+00:00", True),
        ("2024-02-29T01:02:03-00:00", True),
        ("2024-02-29T01:02:03.1234567Z", False),
        ("2024-02-29T01:02:03+02:00", False),
        ("2024-02-29T01:02:03", False),
        ("2024-02-29 01:02:03Z", False),
        ("2024-02-29T24:00:00Z", False),
        ("2024-02-29T23:59:60Z", False),
        ("2024-13-01T00:00:00Z", False),
        ("0000-01-01T00:00:00Z", False),
        ("2024-02-29T01:02:03Z\n", False),
        ("2024-02-29", False),
    ],
)
def test_only_utc_times_in_the_serializers_form_are_written_as_given(text, taken):
    import re

    assert bool(re.match(UTC_TEXT, text)) is taken
