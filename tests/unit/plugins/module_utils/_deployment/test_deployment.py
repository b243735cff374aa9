import os

import pytest
from ansible_collections.edms.backup.plugins.module_utils._deployment.deployment import (
    normalized_sha256,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import pinned

DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_a_digest_is_compared_in_lower_case_without_blanks():
    assert normalized_sha256(" " + DIGEST.upper() + "\n") == DIGEST


@pytest.mark.parametrize("value", ["", DIGEST[:-1], DIGEST + "0", "g" * 64, "sha256:" + DIGEST])
def test_what_is_not_64_hex_digits_is_refused_by_name(value):
    with pytest.raises(ValueError, match=r"^archive_sha256 must be a sha256 of 64 hexadecimal"):
        normalized_sha256(value)


def test_a_pinned_path_reads_the_file_it_named_when_pinned(tmp_path):
    """Verification and every later read see one file, though another took its name."""
    archive = tmp_path / "edms.zip"
    archive.write_bytes(b"verified")
    source = pinned(str(archive))
    assert source.startswith("/proc/self/fd/")
    replacement = tmp_path / "other.zip"
    replacement.write_bytes(b"replaced")
    os.replace(replacement, archive)
    assert archive.read_bytes() == b"replaced"
    with open(source, "rb") as handle:
        assert handle.read() == b"verified"
    with open(source, "rb") as handle:  # and again, from the start
        assert handle.read() == b"verified"


def test_a_path_that_cannot_be_opened_is_left_to_verification(tmp_path):
    missing = str(tmp_path / "missing.zip")
    assert pinned(missing) == missing
