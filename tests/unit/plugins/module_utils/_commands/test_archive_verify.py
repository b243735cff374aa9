"""What archive_verify records beside the archive."""

import contextlib

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_verify import (
    VerifyError,
    verify,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    list_archives,
    read_status,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256

from .test_archive_catalogue import write_archive


def test_f1_the_verification_is_recorded_with_the_sha256_of_the_file_verified(tmp_path):
    path = write_archive(tmp_path, 1, {"users.user": 1})
    params = {
        "archive": path,
        "backup_dir": None,
        "display_timezone": "UTC",
        "required_models": None,
        "record": True,
    }
    with contextlib.suppress(VerifyError):  # what it found is beside the point here
        verify(params)
    entry = read_status(path)["verification"]
    assert entry["sha256"] == file_sha256(path)
    state = list_archives(str(tmp_path), "UTC")["archives"][0]["verification"]["state"]
    assert state == ("passed" if entry["ok"] else "failed")
