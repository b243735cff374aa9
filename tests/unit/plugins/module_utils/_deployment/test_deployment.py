import os

import pytest
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._deployment import deployment
from ansible_collections.edms.backup.plugins.module_utils._deployment.deployment import (
    Deployment,
    normalized_sha256,
    verified_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import pinned
from ansible_collections.edms.backup.plugins.module_utils._format.verification import (
    verify_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256

from .._commands.test_archive_catalogue import write_archive

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


def test_f16_archive_sha256_does_not_skip_verification(tmp_path):
    """A caller's sha256 is a pin on top of verification, never instead of it."""
    path = write_archive(tmp_path, 1, {"app.thing": 1})
    digest = file_sha256(path)
    # Self-consistent as a file, but its metadata lacks what verification needs.
    assert not verify_archive(path)["ok"]
    session = Deployment({})
    with pytest.raises(ModuleFailure, match=r"does not verify, so it is not restored: ") as caught:
        verified_archive(session, path, "restored", expected_sha256=digest.upper(), digest=True)
    assert caught.value.partial["sha256"] == digest
    assert caught.value.partial["verification"]["ok"] is False
    # The pin still holds: another sha256 names the change, nothing changed.
    other = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(ModuleFailure, match=rf"^archive {path} changed since it was verified"):
        verified_archive(Deployment({}), path, "restored", expected_sha256=other)


def test_f16_the_pin_is_checked_on_the_file_verified_and_read(tmp_path, monkeypatch):
    """Verified, pinned and read: one open file, though another takes its name
    between the verification and the sha256."""
    path = write_archive(tmp_path, 1, {"app.thing": 1})
    digest = file_sha256(path)
    (tmp_path / "other").mkdir()
    other = write_archive(tmp_path / "other", 2, {"app.thing": 2})

    def verify_then_replace(name):
        source = pinned(name)
        os.replace(other, name)  # a new file under the verified one's name
        return {"ok": True, "problems": [], "layout": "edms.backup v1"}, source

    monkeypatch.setattr(deployment, "verify_pinned", verify_then_replace)
    session = Deployment({})
    metadata = verified_archive(session, path, "restored", expected_sha256=digest)
    assert session.result["sha256"] == digest
    assert session.result["verification"] == {"ok": True, "problems": []}
    assert file_sha256(session.source) == digest
    assert metadata["counts"] == {"app.thing": 1}
