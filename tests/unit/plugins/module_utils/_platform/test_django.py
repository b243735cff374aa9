import json

import pytest
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    ALL_MODELS,
    DjangoError,
    count_command,
    normalize_model_labels,
    parse_counts,
)


def test_labels_are_kept_in_order_without_duplicates():
    assert normalize_model_labels(["documents.Document", "users.User", "DOCUMENTS.document"]) == [
        "documents.Document",
        "users.User",
    ]


@pytest.mark.parametrize("value", [ALL_MODELS, [ALL_MODELS]])
def test_all_models(value):
    assert normalize_model_labels(value) == ALL_MODELS


@pytest.mark.parametrize("bad", [["Document"], ["a.b.c"], [".User"], []])
def test_bad_labels_are_refused_with_the_label_named(bad):
    with pytest.raises(DjangoError) as err:
        normalize_model_labels(bad)
    if bad:
        assert repr(bad[0]) in str(err.value)


def test_count_command_passes_the_request_as_one_json_argument():
    argv = count_command("python", ["users.User"], "edms.settings")
    assert argv[:2] == ["python", "-c"]
    assert json.loads(argv[3]) == {"models": ["users.User"], "settings": "edms.settings"}


def test_counts_are_read_from_the_last_line():
    out = (
        b"a warning\n" + json.dumps({"counts": {"users.User": {"rows": 3, "visible": 3}}}).encode()
    )
    assert parse_counts(out) == {"users.User": {"rows": 3, "visible": 3}}


def test_unknown_models_are_named_with_what_exists():
    out = json.dumps({"error": "unknown model", "unknown": ["shop.Book"], "known": ["users.user"]})
    with pytest.raises(
        DjangoError, match=r"unknown model\(s\) shop.Book; the backend has: users.user"
    ):
        parse_counts(out)


@pytest.mark.parametrize("out", [b"", b"Traceback ...\nValueError: x", b"[1, 2]", b'{"other": 1}'])
def test_unreadable_answers_are_errors(out):
    with pytest.raises(DjangoError):
        parse_counts(out)
