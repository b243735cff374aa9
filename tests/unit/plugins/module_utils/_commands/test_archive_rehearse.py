"""What a rehearsal records beside the archive."""

import time

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_rehearse import (
    Rehearsal,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import pinned
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    list_archives,
    read_status,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256

from .test_archive_catalogue import write_archive


def test_f1_a_rehearsal_is_recorded_with_the_sha256_of_the_file_it_loaded(tmp_path):
    path = write_archive(tmp_path, 1, {"users.user": 1})
    rehearsal = Rehearsal.__new__(Rehearsal)  # only what record() uses
    rehearsal.result, rehearsal.name, rehearsal.source = {"archive": path}, "t", pinned(path)
    rehearsal.record(True, time.monotonic())
    assert read_status(path)["rehearsal"]["sha256"] == file_sha256(path)
    entry = list_archives(str(tmp_path), "UTC")["archives"][0]
    assert "unconfirmed" not in entry["rehearsal"]
