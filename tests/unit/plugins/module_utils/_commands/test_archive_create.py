"""The backup's comparison of a new archive's counts with the previous verified one."""

import contextlib
import os

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_create import (
    BackupError,
    Written,
    against_previous,
    create_backup,
    verify_and_record,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    read_status,
    status_path,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256

from .._format.test_catalogue import member_data_offset, rewrite_keeping_time, zip_with
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


def test_f1_the_backup_records_the_sha256_of_the_archive_it_wrote(tmp_path):
    path = write_archive(tmp_path, 1, {"users.user": 1})
    result = {"sha256": file_sha256(path)}
    written = Written(path, {"required_models": [], "recreated_models": []}, {}, {}, {})
    with contextlib.suppress(BackupError):  # what it found is beside the point here
        verify_and_record(result, written)
    assert read_status(path)["verification"]["sha256"] == result["sha256"]


def test_f6_the_comparison_of_a_new_archive_runs_past_unreadable_ones(tmp_path):
    good = verified(write_archive(tmp_path, 1, {"documents.document": 60}))
    rotten = verified(write_archive(tmp_path, 2, {"documents.document": 60}))
    start = member_data_offset(rotten, "metadata.json")
    rewrite_keeping_time(rotten, lambda data: data.__setitem__(start, 0xFF))
    with open(status_path(good), "a", encoding="utf-8"):
        pass
    zip_with(tmp_path, "edms_20260102T200000Z.zip", {"metadata.json": "[" * 100_000})
    new = verified(write_archive(tmp_path, 3, {"documents.document": 6}))
    warnings = []
    result = against_previous(str(tmp_path), os.path.basename(new), "UTC", 0.5, warnings.append)
    assert result["count_compared_with"] == os.path.basename(good)
