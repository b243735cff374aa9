"""comparison(): how rows loaded from an application's own backup differ
from the live ones (pure logic; the rows are read by _rows in the backend)."""

from datetime import UTC, datetime

from ansible_collections.edms.backup.plugins.module_utils._backend.native import comparison

T = datetime(2026, 1, 1, 13, 0, 29, 350186, tzinfo=UTC)
T_MS = datetime(2026, 1, 1, 13, 0, 29, 350000, tzinfo=UTC)


def test_equal_rows_give_no_difference():
    live = {"1": ("1", {"title": "a", "at": T})}
    assert comparison(live, dict(live)) == {
        "live": 1,
        "loaded": 1,
        "missing": 0,
        "extra": 0,
        "pk_replaced": 0,
        "fields": {},
    }


def test_times_cut_to_milliseconds_are_named_so():
    live = {"1": ("1", {"at": T}), "2": ("2", {"at": T})}
    loaded = {"1": ("1", {"at": T_MS}), "2": ("2", {"at": T})}
    assert comparison(live, loaded)["fields"] == {
        "at": {"rows": 1, "kind": "times cut to milliseconds"}
    }


def test_other_changes_of_a_field_are_counted_apart_from_cut_times():
    live = {"1": ("1", {"at": T}), "2": ("2", {"at": T}), "3": ("3", {"at": None})}
    loaded = {"1": ("1", {"at": T_MS}), "2": ("2", {"at": None}), "3": ("3", {"at": T})}
    assert comparison(live, loaded)["fields"]["at"] == {
        "rows": 3,
        "kind": "1 times cut to milliseconds, 2 values differ",
    }


def test_rows_matched_by_natural_key_with_another_primary_key_are_replaced():
    live = {'["admin"]': ("7", {"email": "a@x"}), '["bob"]': ("9", {"email": "b@x"})}
    loaded = {'["admin"]': ("1", {"email": "a@x"}), '["bob"]': ("9", {"email": "b@x"})}
    found = comparison(live, loaded)
    assert (found["pk_replaced"], found["fields"]) == (1, {})


def test_missing_and_extra_rows_are_counted_and_no_key_is_returned():
    # A key may be a secret (a session's): only counts leave the backend.
    live = {f"session-key-{n}": (f"session-key-{n}", {}) for n in range(5)}
    loaded = {f"session-key-{n}": (f"session-key-{n}", {}) for n in range(2, 7)}
    found = comparison(live, loaded)
    assert (found["missing"], found["extra"]) == (2, 2)
    assert "session-key" not in repr(found)


def test_a_database_error_loses_the_row_it_quotes():
    from ansible_collections.edms.backup.plugins.module_utils._backend.native import _said

    error = Exception(
        'Problem installing fixture: null value in column "email" of relation "users_user"'
        " violates not-null constraint\nDETAIL:  Failing row contains (7, pbkdf2_sha256$1$ab$cd,"
        " admin)."
    )
    said = _said(error)
    assert "pbkdf2_sha256" not in said
    assert 'column "email" of relation "users_user"' in said
