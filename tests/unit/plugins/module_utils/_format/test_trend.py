import pytest
from ansible_collections.edms.backup.plugins.module_utils._format.trend import (
    DEFAULT_THRESHOLD,
    ThresholdError,
    compare,
    compare_all,
    count_drops,
    describe_drop,
    drop_warning,
    previous_verified,
)


def entry(name, day, counts, state="passed"):
    """A catalogue entry as list_archives gives it (the fields _format/trend.py reads)."""
    return {
        "name": name,
        "created_at": f"2026-01-{day:02d}T13:00:29.000000Z",
        "counts": counts,
        "verification": {"state": state},
    }


def models(drops):
    return [d["model"] for d in drops]


def test_the_default_is_half():
    assert DEFAULT_THRESHOLD == 0.5


def test_equal_counts_do_not_fall():
    assert count_drops({"a.b": 60, "c.d": 1}, {"a.b": 60, "c.d": 1}, 0.5) == []


def test_exactly_at_the_threshold_is_no_fall_one_more_is():
    assert count_drops({"a.b": 60}, {"a.b": 30}, 0.5) == []
    assert count_drops({"a.b": 60}, {"a.b": 29}, 0.5) == [
        {"model": "a.b", "before": 60, "after": 29, "fell_by": 0.5167, "vanished": False}
    ]


def test_the_threshold_is_exact_decimal_not_float():
    # In floats 0.29 * 100 is 28.999999999999996: losing exactly 29 of 100
    # would count as more than 29%.
    assert count_drops({"a.b": 100}, {"a.b": 71}, 0.29) == []
    assert models(count_drops({"a.b": 100}, {"a.b": 70}, 0.29)) == ["a.b"]
    assert count_drops({"a.b": 100}, {"a.b": 43}, 0.57) == []
    assert models(count_drops({"a.b": 100}, {"a.b": 42}, 0.57)) == ["a.b"]


def test_a_vanished_model_falls_whether_absent_or_zero():
    drops = count_drops({"a.b": 3, "c.d": 1}, {"c.d": 0}, 0.9)
    assert drops == [
        {"model": "a.b", "before": 3, "after": 0, "fell_by": 1.0, "vanished": True},
        {"model": "c.d", "before": 1, "after": 0, "fell_by": 1.0, "vanished": True},
    ]


def test_new_grown_and_empty_models_do_not_fall():
    before = {"a.b": 5, "empty.model": 0}
    after = {"a.b": 9, "new.model": 4}
    assert count_drops(before, after, 0.01) == []


def test_zero_turns_it_off():
    assert count_drops({"a.b": 60}, {}, 0) == []
    old, new = entry("old", 1, {"a.b": 60}), entry("new", 2, {"a.b": 1})
    assert compare([new, old], new, 0) == {"previous": None, "drops": []}
    assert models(compare([new, old], new, 0.5)["drops"]) == ["a.b"]


@pytest.mark.parametrize("threshold", [-0.1, 1, 1.5, "0.5", None, True])
def test_a_threshold_outside_zero_to_one_is_refused(threshold):
    with pytest.raises(ThresholdError, match="count_drop_threshold"):
        count_drops({"a.b": 1}, {}, threshold)


def test_no_previous_verified_archive_means_no_comparison():
    only = entry("only", 1, {"a.b": 60})
    assert compare([only], only, 0.5) == {"previous": None, "drops": []}
    # An earlier archive that never passed is no reference either.
    older = entry("older", 1, {"a.b": 60}, state="unverified")
    newer = entry("newer", 2, {"a.b": 1})
    assert compare([newer, older], newer, 0.5) == {"previous": None, "drops": []}


@pytest.mark.parametrize("state", ["unverified", "failed", "stale"])
def test_an_earlier_archive_not_passed_is_skipped_for_the_one_before(state):
    good = entry("good", 1, {"a.b": 60})
    skipped = entry("skipped", 2, {"a.b": 1}, state=state)
    new = entry("new", 3, {"a.b": 20})
    archives = [new, skipped, good]
    assert previous_verified(archives, new) is good
    result = compare(archives, new, 0.5)
    assert result["previous"] == "good"
    assert result["drops"] == [
        {
            "model": "a.b",
            "before": 60,
            "after": 20,
            "fell_by": 0.6667,
            "vanished": False,
            "previous": "good",
        }
    ]


def test_the_previous_is_the_newest_earlier_verified_never_a_later_one():
    first = entry("first", 1, {"a.b": 100})
    second = entry("second", 2, {"a.b": 40})
    later = entry("later", 5, {"a.b": 1000})
    new = entry("new", 3, {"a.b": 30})
    archives = [later, new, second, first]
    assert previous_verified(archives, new) is second
    assert compare(archives, new, 0.5)["drops"] == []  # 40 -> 30 is a quarter
    assert previous_verified(archives, first) is None


def test_an_archive_without_counts_is_neither_compared_nor_a_reference():
    good = entry("good", 1, {"a.b": 60})
    native = entry("native", 2, {})  # verified, but no metadata counts
    new = entry("new", 3, {"a.b": 10})
    archives = [new, native, good]
    assert compare(archives, native, 0.5) == {"previous": None, "drops": []}
    assert compare(archives, new, 0.5)["previous"] == "good"
    assert models(compare(archives, new, 0.5)["drops"]) == ["a.b"]


def test_same_time_archives_order_by_name():
    a = entry("edms_a.zip", 1, {"a.b": 60})
    b = entry("edms_b.zip", 1, {"a.b": 1})
    assert previous_verified([a, b], b) is a
    assert previous_verified([a, b], a) is None


def test_compare_all_marks_only_the_archive_that_fell_not_the_recovery():
    archives = [
        entry("d", 4, {"a.b": 61, "c.d": 12}),
        entry("c", 3, {"a.b": 5, "c.d": 12}),
        entry("b", 2, {"a.b": 60, "c.d": 12}),
        entry("a", 1, {"a.b": 58, "c.d": 12}),
    ]
    result = compare_all(archives, 0.5)
    assert {name for name, c in result.items() if c["drops"]} == {"c"}
    assert result["c"]["previous"] == "b"
    assert result["d"] == {"previous": "c", "drops": []}


def test_the_warning_names_each_model_before_after_and_the_previous_archive():
    comparison = {
        "previous": "edms_20260101T130029Z.zip",
        "drops": count_drops({"a.b": 60, "c.d": 30}, {"a.b": 5}, 0.5),
    }
    message = drop_warning("edms_20260102T130029Z.zip", comparison, 0.5)
    assert "archive edms_20260102T130029Z.zip" in message
    assert "previous verified archive edms_20260101T130029Z.zip" in message
    assert "more than 50% " in message
    assert "a.b 60 -> 5, c.d 30 -> 0 (gone)" in message
    assert drop_warning("x", {"previous": "y", "drops": []}, 0.5) is None
    assert describe_drop(comparison["drops"][0]) == "a.b 60 -> 5"
