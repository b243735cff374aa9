import re
from datetime import UTC, datetime

import pytest
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import (
    TimeZoneError,
    describe,
    local_iso,
    parse_instant,
    utc_iso,
    zone,
)

INSTANT = datetime(2026, 1, 1, 13, 0, 29, 512345, tzinfo=UTC)


def test_utc_keeps_microseconds_and_says_z():
    assert utc_iso(INSTANT) == "2026-01-01T13:00:29.512345Z"


def test_local_time_carries_the_offset_of_the_display_zone():
    # The checklist's example: 13:00:29 UTC is 21:00:29 in Singapore.
    assert local_iso(INSTANT, "Asia/Singapore") == "2026-01-01T21:00:29.512345+08:00"


def test_local_time_follows_daylight_saving():
    winter = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
    assert local_iso(winter, "Europe/Berlin").endswith("+01:00")
    assert local_iso(summer, "Europe/Berlin").endswith("+02:00")


def test_describe_names_both_times():
    assert describe(INSTANT, "Asia/Singapore") == (
        "2026-01-01 13:00:29 UTC (2026-01-01 21:00:29 +08 Asia/Singapore)"
    )


def test_round_trip_through_text():
    assert parse_instant(utc_iso(INSTANT)) == INSTANT
    assert parse_instant(local_iso(INSTANT, "Asia/Singapore")) == INSTANT


@pytest.mark.parametrize("text", ["2026-01-01T13:00:29", "yesterday", None])
def test_naive_or_unreadable_timestamps_are_refused(text):
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by cause
        parse_instant(text)


@pytest.mark.parametrize("name", ["Asia/Singapur", "", "../etc/passwd", "/etc/localtime"])
def test_unknown_zones_are_named_in_the_error(name):
    with pytest.raises(TimeZoneError, match=re.escape(repr(name))):
        zone(name)
