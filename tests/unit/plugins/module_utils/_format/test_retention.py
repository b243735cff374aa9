import copy
from collections import namedtuple
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from ansible_collections.edms.backup.plugins.module_utils._format.retention import select
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import TimeZoneError

NOW = datetime(2027, 6, 30, 12, 0, tzinfo=UTC)
NO_COUNTS = dict(keep_last=0, keep_daily=0, keep_weekly=0)


def at(text):
    """An aware UTC datetime from '2026-03-28T23:30Z'."""
    return datetime.fromisoformat(text)


def archive(name, created_at, label="scheduled", verified=False):
    if isinstance(created_at, str):
        created_at = at(created_at)
    return {"name": name, "created_at": created_at, "label": label, "verified": verified}


def kept(result):
    return [entry["name"] for entry in result["keep"]]


def deleted(result):
    return [entry["name"] for entry in result["delete"]]


def reasons(result):
    return {entry["name"]: entry["reasons"] for entry in result["keep"]}


def test_keep_last_keeps_the_newest_and_lists_the_rest_newest_first():
    archives = [archive(f"day{day}", f"2026-01-0{day}T03:00Z") for day in range(1, 6)]
    before = copy.deepcopy(archives)

    result = select(archives, NOW, keep_last=2, keep_daily=0, keep_weekly=0)

    assert kept(result) == ["day5", "day4"]
    assert reasons(result) == {"day5": ["keep_last (1 of 2)"], "day4": ["keep_last (2 of 2)"]}
    assert deleted(result) == ["day3", "day2", "day1"]
    assert result["delete"][0] == {
        "name": "day3",
        "created_at": "2026-01-03T03:00:00.000000Z",
        "label": "scheduled",
        "verified": False,
    }
    assert result["newest_verified"] is None
    assert archives == before  # the input is left alone


def test_the_defaults_combine_last_daily_and_weekly():
    # One archive a day, 1 to 20 January 2026. ISO weeks: W01 ends Sunday 4
    # January, W02 the 11th, W03 the 18th, W04 holds the 19th and 20th.
    archives = [archive(f"jan{day:02d}", f"2026-01-{day:02d}T03:00Z") for day in range(1, 21)]

    result = select(archives, NOW)

    assert kept(result) == [f"jan{day:02d}" for day in range(20, 13, -1)] + ["jan11", "jan04"]
    assert deleted(result) == ["jan13", "jan12"] + [f"jan{day:02d}" for day in range(10, 4, -1)] + [
        "jan03",
        "jan02",
        "jan01",
    ]
    assert reasons(result)["jan18"] == [
        "keep_last (3 of 7)",
        "keep_daily (2026-01-18, 3 of 7)",
        "keep_weekly (2026-W03, 2 of 4)",
    ]
    assert reasons(result)["jan04"] == ["keep_weekly (2026-W01, 4 of 4)"]


# Archives at 00:30 and 12:00 Berlin time on the days around each change of
# the clocks, named by their wall time; the instants are written in UTC. In
# UTC the 00:30 archive falls on the day before, so counted in UTC the 00:30
# archives would be the newest of their days and the 12:00 ones would go.
DST_CHANGES = {
    # Sunday 29 March 2026, 02:00 CET (+01) becomes 03:00 CEST (+02).
    "spring": [
        ("2026-03-28 00:30", "2026-03-27T23:30Z"),
        ("2026-03-28 12:00", "2026-03-28T11:00Z"),
        ("2026-03-29 00:30", "2026-03-28T23:30Z"),
        ("2026-03-29 12:00", "2026-03-29T10:00Z"),
        ("2026-03-30 00:30", "2026-03-29T22:30Z"),
        ("2026-03-30 12:00", "2026-03-30T10:00Z"),
    ],
    # Sunday 25 October 2026, 03:00 CEST (+02) becomes 02:00 CET (+01).
    "autumn": [
        ("2026-10-24 00:30", "2026-10-23T22:30Z"),
        ("2026-10-24 12:00", "2026-10-24T10:00Z"),
        ("2026-10-25 00:30", "2026-10-24T22:30Z"),
        ("2026-10-25 12:00", "2026-10-25T11:00Z"),
        ("2026-10-26 00:30", "2026-10-25T23:30Z"),
        ("2026-10-26 12:00", "2026-10-26T11:00Z"),
    ],
}


@pytest.mark.parametrize("change", sorted(DST_CHANGES))
def test_days_are_counted_in_the_display_zone_across_a_dst_change(change):
    table = DST_CHANGES[change]
    for wall_time, instant in table:  # the table itself is right
        assert at(instant).astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d %H:%M") == (
            wall_time
        )
    archives = [archive(wall_time, instant) for wall_time, instant in table]
    settings = dict(keep_last=0, keep_daily=3, keep_weekly=0)

    result = select(archives, NOW, display_timezone="Europe/Berlin", **settings)

    noons = [wall_time for wall_time, _utc in reversed(table) if wall_time.endswith("12:00")]
    assert kept(result) == noons
    assert deleted(result) == [name.replace("12:00", "00:30") for name in noons]
    assert reasons(result)[noons[1]] == [f"keep_daily ({noons[1][:10]}, 2 of 3)"]
    # Counted in UTC the answer differs, so this test tells the two apart.
    assert kept(select(archives, NOW, display_timezone="UTC", **settings)) != noons


def test_singapore_days_begin_at_16_00_utc():
    archives = [
        archive("sun 20:00", "2026-01-04T12:00Z"),
        archive("mon 16:00", "2026-01-05T08:00Z"),
        archive("mon 23:59", "2026-01-05T15:59Z"),
        archive("tue 00:00", "2026-01-05T16:00Z"),
    ]

    result = select(
        archives, NOW, keep_last=0, keep_daily=2, keep_weekly=0, display_timezone="Asia/Singapore"
    )

    assert reasons(result) == {
        "tue 00:00": ["keep_daily (2026-01-06, 1 of 2)"],
        "mon 23:59": ["keep_daily (2026-01-05, 2 of 2)"],
    }
    assert deleted(result) == ["mon 16:00", "sun 20:00"]


def test_weeks_are_iso_weeks_across_the_turn_of_the_year():
    # 2026 has an ISO week 53: Monday 28 December 2026 to Sunday 3 January 2027.
    archives = [
        archive("2026-12-27 sun", "2026-12-27T12:00Z"),
        archive("2026-12-28 mon", "2026-12-28T12:00Z"),
        archive("2026-12-31 thu", "2026-12-31T12:00Z"),
        archive("2027-01-01 fri", "2027-01-01T12:00Z"),
        archive("2027-01-03 sun", "2027-01-03T12:00Z"),
        archive("2027-01-04 mon", "2027-01-04T12:00Z"),
        archive("2027-01-05 tue", "2027-01-05T12:00Z"),
    ]

    result = select(archives, NOW, keep_last=0, keep_daily=0, keep_weekly=3)

    assert reasons(result) == {
        "2027-01-05 tue": ["keep_weekly (2027-W01, 1 of 3)"],
        "2027-01-03 sun": ["keep_weekly (2026-W53, 2 of 3)"],
        "2026-12-27 sun": ["keep_weekly (2026-W52, 3 of 3)"],
    }
    assert deleted(result) == [
        "2027-01-04 mon",
        "2027-01-01 fri",
        "2026-12-31 thu",
        "2026-12-28 mon",
    ]


def test_weeks_are_counted_in_the_display_zone():
    # 16:30 UTC on Sunday 3 January 2027 is already Monday 00:30 in Singapore.
    archives = [
        archive("sun 18:00", "2027-01-03T10:00Z"),
        archive("sun 23:30", "2027-01-03T15:30Z"),
        archive("mon 00:30", "2027-01-03T16:30Z"),
    ]

    result = select(
        archives, NOW, keep_last=0, keep_daily=0, keep_weekly=2, display_timezone="Asia/Singapore"
    )

    assert reasons(result) == {
        "mon 00:30": ["keep_weekly (2027-W01, 1 of 2)"],
        "sun 23:30": ["keep_weekly (2026-W53, 2 of 2)"],
    }
    assert deleted(result) == ["sun 18:00"]


def test_the_newest_verified_archive_survives_all_counts_at_zero():
    archives = [
        archive("oldest", "2026-01-01T03:00Z", verified=True),
        archive("middle", "2026-01-02T03:00Z", verified=True),
        archive("newest", "2026-01-03T03:00Z", verified=False),
    ]

    result = select(archives, NOW, **NO_COUNTS)

    assert reasons(result) == {"middle": ["newest verified"]}
    assert deleted(result) == ["newest", "oldest"]
    assert result["newest_verified"] == "middle"


def test_all_counts_at_zero_and_nothing_verified_deletes_everything():
    archives = [archive("a", "2026-01-01T03:00Z"), archive("b", "2026-01-02T03:00Z")]

    result = select(archives, NOW, **NO_COUNTS)

    assert kept(result) == []
    assert deleted(result) == ["b", "a"]
    assert result["newest_verified"] is None


def test_safety_backups_are_kept_while_younger_than_the_minimum_age():
    archives = [
        archive("safety 29 days", NOW - timedelta(days=29), label="pre-restore safety"),
        archive("safety 30 days", NOW - timedelta(days=30), label="pre-restore safety"),
        archive("safety 31 days", NOW - timedelta(days=31), label="pre-restore safety"),
        archive("manual 1 day", NOW - timedelta(days=1), label="manual"),
    ]

    result = select(archives, NOW, **NO_COUNTS)

    assert reasons(result) == {"safety 29 days": ["safety backup younger than 30 days"]}
    assert deleted(result) == ["manual 1 day", "safety 30 days", "safety 31 days"]

    result = select(archives, NOW, safety_labels=["manual"], safety_min_age_days=7, **NO_COUNTS)

    assert reasons(result) == {"manual 1 day": ["safety backup younger than 7 days"]}


def test_future_archives_are_kept_reported_and_take_no_slot():
    archives = [
        archive("future", NOW + timedelta(hours=1), verified=True),
        archive("now", NOW),
        archive("yesterday", NOW - timedelta(days=1), verified=True),
        archive("two days ago", NOW - timedelta(days=2)),
    ]

    result = select(archives, NOW, keep_last=2, keep_daily=0, keep_weekly=0)

    assert reasons(result) == {
        "future": ["created in the future: clock problem"],
        "now": ["keep_last (1 of 2)"],
        "yesterday": ["newest verified", "keep_last (2 of 2)"],
    }
    assert deleted(result) == ["two days ago"]
    assert result["future"] == ["future"]
    assert result["newest_verified"] == "yesterday"


def test_every_reason_is_listed():
    archives = [
        archive("old", "2026-01-01T03:00Z"),
        archive("safety", NOW - timedelta(hours=1), label="pre-restore safety", verified=True),
    ]

    result = select(archives, NOW, keep_last=1, keep_daily=1, keep_weekly=1)

    assert reasons(result)["safety"] == [
        "newest verified",
        "safety backup younger than 30 days",
        "keep_last (1 of 1)",
        "keep_daily (2027-06-30, 1 of 1)",
        "keep_weekly (2027-W26, 1 of 1)",
    ]
    assert deleted(result) == ["old"]


@pytest.mark.parametrize(
    "parameter", ["keep_last", "keep_daily", "keep_weekly", "safety_min_age_days"]
)
def test_negative_numbers_are_refused_by_name(parameter):
    with pytest.raises(ValueError, match=f"^{parameter} must be 0 or more, got -1$"):
        select([], NOW, **{parameter: -1})


@pytest.mark.parametrize("value", ["3", 1.5, True, None])
def test_numbers_must_be_whole(value):
    with pytest.raises(ValueError, match=r"^keep_daily must be a whole number"):
        select([], NOW, keep_daily=value)


@pytest.mark.parametrize(
    ("archives", "now", "options", "message"),
    [
        ([], datetime(2027, 6, 30), {}, "now must be an aware datetime"),
        ([archive("a", datetime(2026, 1, 1))], NOW, {}, "'a': created_at must be an aware"),
        ([archive("a", NOW), archive("a", NOW)], NOW, {}, r"more than once: \['a'\]"),
        ([archive("a", NOW, verified="no")], NOW, {}, "verified must be true or false"),
        ([{"name": "a", "created_at": NOW}], NOW, {}, "archive without label"),
        ([], NOW, {"safety_labels": "manual"}, "safety_labels must be a list"),
    ],
)
def test_bad_input_is_refused(archives, now, options, message):
    with pytest.raises(ValueError, match=message):
        select(archives, now, **options)


def test_an_unknown_display_zone_is_refused():
    with pytest.raises(TimeZoneError):
        select([], NOW, display_timezone="Europe/Berlinn")


def test_no_archives():
    assert select([], NOW) == {
        "keep": [],
        "delete": [],
        "newest_verified": None,
        "future": [],
        "not_confirmed": [],
    }


def test_equal_times_are_ordered_by_name_whatever_the_input_order():
    archives = [
        archive("b", "2026-01-01T03:00Z", verified=True),
        archive("a", "2026-01-01T03:00Z", verified=True),
        archive("c", "2026-01-01T03:00Z"),
    ]

    results = [
        select(order, NOW, keep_last=1, keep_daily=0, keep_weekly=0)
        for order in (archives, archives[::-1], sorted(archives, key=lambda a: a["name"]))
    ]

    assert results[0] == results[1] == results[2]
    assert reasons(results[0]) == {"c": ["keep_last (1 of 1)"], "b": ["newest verified"]}
    assert deleted(results[0]) == ["a"]


def test_objects_and_other_offsets_are_accepted():
    Archive = namedtuple("Archive", "name created_at label verified")
    singapore = datetime(2026, 1, 1, 21, 0, tzinfo=ZoneInfo("Asia/Singapore"))

    result = select([Archive("a", singapore, "manual", True)], NOW, **NO_COUNTS)

    assert result["keep"] == [
        {
            "name": "a",
            "created_at": "2026-01-01T13:00:00.000000Z",
            "label": "manual",
            "verified": True,
            "reasons": ["newest verified"],
        }
    ]
