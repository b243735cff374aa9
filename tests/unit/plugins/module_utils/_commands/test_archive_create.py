"""The backup's comparison of a new archive's counts with the previous verified one."""

import os

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_create import (
    BackupError,
    against_previous,
    create_backup,
)

from .test_archive_catalogue import verified, write_archive


def test_a_fall_warns_naming_models_counts_and_the_previous_archive(tmp_path):
    good = verified(write_archive(tmp_path, 1, {"documents.document": 60, "users.user": 12}))
    skipped = verified(write_archive(tmp_path, 2, {"documents.document": 1}), ok=False)
    new = verified(write_archive(tmp_path, 3, {"documents.document": 6, "users.user": 12}))
    warnings = []
    result = against_previous(str(tmp_path), os.path.basename(new), "UTC", 0.5, warnings.append)
    assert result["count_compared_with"] == os.path.basename(good)
    assert result["count_drops"] == [
        {
            "model": "documents.document",
            "before": 60,
            "after": 6,
            "fell_by": 0.9,
            "vanished": False,
            "previous": os.path.basename(good),
        }
    ]
    assert len(warnings) == 1
    assert "documents.document 60 -> 6" in warnings[0]
    assert os.path.basename(good) in warnings[0]
    assert os.path.basename(skipped) not in warnings[0]


def test_no_fall_no_warning_and_an_empty_list(tmp_path):
    verified(write_archive(tmp_path, 1, {"documents.document": 60}))
    new = verified(write_archive(tmp_path, 2, {"documents.document": 59}))
    warnings = []
    result = against_previous(str(tmp_path), os.path.basename(new), "UTC", 0.5, warnings.append)
    assert result["count_drops"] == []
    assert warnings == []


def test_what_cannot_be_compared_is_a_warning_not_a_failure(tmp_path):
    warnings = []
    result = against_previous(str(tmp_path / "gone"), "edms_x.zip", "UTC", 0.5, warnings.append)
    assert result == {"count_drops": [], "count_compared_with": None}
    assert "not compared" in warnings[0]


def test_a_bad_threshold_fails_before_anything_is_read():
    params = {"display_timezone": "UTC", "count_drop_threshold": 2.0}
    with pytest.raises(BackupError, match=r"count_drop_threshold 2\.0 is not between 0") as caught:
        create_backup(params)
    assert caught.value.partial["count_drops"] == []
