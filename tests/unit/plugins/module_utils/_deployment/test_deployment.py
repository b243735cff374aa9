import hashlib
import os

import pytest
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._deployment import deployment
from ansible_collections.edms.backup.plugins.module_utils._deployment.deployment import (
    Deployment,
    normalized_sha256,
    verified_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._format import age, archive
from ansible_collections.edms.backup.plugins.module_utils._format.archive import pinned
from ansible_collections.edms.backup.plugins.module_utils._format.verification import (
    verify_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._platform import proof as proofs
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256

from .._commands.test_archive_catalogue import write_archive
from .._format.test_archive import write_archive as clean_archive

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

    def verify_then_replace(name, source):
        os.replace(other, name)  # a new file under the verified one's name
        return {"ok": True, "problems": [], "layout": "edms.backup v1"}, source

    monkeypatch.setattr(deployment, "verify_pinned", verify_then_replace)
    session = Deployment({})
    metadata = verified_archive(session, path, "restored", expected_sha256=digest)
    assert session.result["sha256"] == digest
    assert session.result["verification"] == {"ok": True, "problems": []}
    assert file_sha256(session.source) == digest
    assert metadata["counts"] == {"app.thing": 1}


# A proof that this host verified the archive (_platform/proof.py)


@pytest.fixture
def proof_key(tmp_path, monkeypatch):
    """The proof key in a directory of the test's own."""
    directory = str(tmp_path / "proof-key")
    monkeypatch.setattr(proofs, "key_directory", lambda: directory)
    return directory


def verifies_never(name, source):
    raise AssertionError(f"{name} verified again through {source}")


def test_a_proof_of_the_same_bytes_spares_verifying_them_again(tmp_path, proof_key, monkeypatch):
    path = clean_archive(tmp_path)
    first = Deployment({})
    metadata = verified_archive(first, path, "restored", digest=True)
    proof, digest = first.result["proof"], first.result["sha256"]
    assert proofs.holds(proof, digest)
    monkeypatch.setattr(deployment, "verify_pinned", verifies_never)
    second = Deployment({})
    again = verified_archive(second, path, "restored", expected_sha256=digest, proof=proof)
    assert again == metadata
    assert second.result["sha256"] == digest
    assert second.result["verification"]["ok"] is True
    assert "not verified again" in second.result["verification"]["proven"]
    assert file_sha256(second.source) == digest


def test_a_proof_never_lets_other_bytes_through(tmp_path, proof_key):
    """Of another archive, forged, or without the sha256 it was made for:
    the archive is verified in full and refused."""
    good = clean_archive(tmp_path)
    session = Deployment({})
    verified_archive(session, good, "restored", digest=True)
    proof = session.result["proof"]
    (tmp_path / "bad").mkdir()
    bad = write_archive(tmp_path / "bad", 1, {"app.thing": 1})  # does not verify
    bad_sha256 = file_sha256(bad)
    forged = proofs.issue(bad_sha256, key=b"x" * 32)
    for given in (proof, forged, "v1:1:" + "0" * 64):
        with pytest.raises(
            ModuleFailure, match=r"does not verify, so it is not restored"
        ) as caught:
            verified_archive(
                Deployment({}), bad, "restored", expected_sha256=bad_sha256, proof=given
            )
        assert "proven" not in caught.value.partial["verification"]
        assert caught.value.partial["proof_not_used"]
    # The good archive's proof with its own sha256, on the bad file: the pin refuses.
    with pytest.raises(ModuleFailure, match=rf"^archive {bad} changed since it was verified"):
        verified_archive(
            Deployment({}), bad, "restored", expected_sha256=session.result["sha256"], proof=proof
        )


def test_a_proof_without_the_sha256_is_not_used(tmp_path, proof_key, monkeypatch):
    path = clean_archive(tmp_path)
    session = Deployment({})
    verified_archive(session, path, "restored", digest=True)
    calls = []
    real = deployment.verify_pinned
    monkeypatch.setattr(
        deployment, "verify_pinned", lambda name, source: calls.append(name) or real(name, source)
    )
    verified_archive(Deployment({}), path, "restored", proof=session.result["proof"])
    assert calls == [path]


def test_no_proof_without_a_safe_key(tmp_path, proof_key):
    path = clean_archive(tmp_path)
    os.makedirs(proof_key, mode=0o755)  # open to others: not used
    os.chmod(proof_key, 0o755)
    session = Deployment({})
    verified_archive(session, path, "restored", digest=True)
    assert session.result["proof"] is None
    assert "no proof key can be used" in session.result["proof_not_made"]
    assert session.result["verification"] == {"ok": True, "problems": []}


def test_bytes_written_into_the_archive_while_it_is_verified_never_get_its_proof(
    tmp_path, proof_key, monkeypatch
):
    """The first verification reads a private copy, its sha256 taken from the
    bytes copied: what is written into the original meanwhile (in place, or
    through a shared mapping that leaves its times as they were) is neither
    verified nor proven, and a later run refuses the changed file."""
    path = clean_archive(tmp_path)
    original = open(path, "rb").read()  # noqa: SIM115 (read whole, closed at once)
    stamp = os.stat(path)
    real = deployment.verify_pinned

    def verify_while_written(name, source):
        with open(name, "r+b") as handle:
            handle.seek(len(original) // 2)
            handle.write(bytes([original[len(original) // 2] ^ 0x01]))
        os.utime(name, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        return real(name, source)

    monkeypatch.setattr(deployment, "verify_pinned", verify_while_written)
    session = Deployment({})
    verified_archive(session, path, "restored", digest=True)
    monkeypatch.setattr(deployment, "verify_pinned", real)
    digest = session.result["sha256"]
    assert digest == hashlib.sha256(original).hexdigest()
    assert proofs.holds(session.result["proof"], digest)
    # What this run reads from here on is the copy: the bytes verified.
    with open(session.source, "rb") as handle:
        assert handle.read() == original
    assert session.source.startswith("/proc/self/fd/")
    assert not os.path.samefile(session.source, path)
    # The changed original: refused, its proof or not.
    with pytest.raises(ModuleFailure, match=rf"^archive {path} changed since it was verified"):
        verified_archive(
            Deployment({}), path, "restored", expected_sha256=digest, proof=session.result["proof"]
        )


def test_a_file_others_may_write_gets_no_proof_and_is_not_spared(tmp_path, proof_key):
    path = clean_archive(tmp_path)
    session = Deployment({})
    verified_archive(session, path, "restored", digest=True)
    proof, digest = session.result["proof"], session.result["sha256"]
    assert proof
    os.chmod(path, 0o664)  # the group may write it now
    again = Deployment({})
    verified_archive(again, path, "restored", expected_sha256=digest, digest=True, proof=proof)
    assert "proven" not in again.result["verification"]
    assert "only its owner" in again.result["proof_not_used"]
    assert again.result["proof"] is None
    assert "first verification only" in again.result["proof_not_made"]


def verified_again(path, first):
    """A session that verified path again, given the first session's sha256 and proof."""
    again = Deployment({})
    verified_archive(
        again,
        path,
        "restored",
        expected_sha256=first.result["sha256"],
        proof=first.result["proof"],
        digest=True,
    )
    return again


def test_a_file_of_another_user_is_not_spared(tmp_path, proof_key, monkeypatch):
    path = clean_archive(tmp_path)
    session = Deployment({})
    verified_archive(session, path, "restored", digest=True)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)  # mode 0600 still: only that user may write it
    else:  # the file stays the test user's; the module runs as another one
        uid = os.getuid()
        monkeypatch.setattr(os, "geteuid", lambda: uid + 1)
    again = verified_again(path, session)
    assert "proven" not in again.result["verification"]
    assert "only its owner" in again.result["proof_not_used"]


def test_a_proof_is_used_only_through_a_pinned_file(tmp_path, proof_key, monkeypatch):
    path = clean_archive(tmp_path)
    session = Deployment({})
    verified_archive(session, path, "restored", digest=True)
    monkeypatch.setattr(deployment, "pinned", lambda name: name)  # no /proc
    again = verified_again(path, session)
    assert "proven" not in again.result["verification"]
    assert again.result["proof"] is None


def test_an_encrypted_archive_is_verified_again_whatever_the_proof(tmp_path, proof_key):
    plain = clean_archive(tmp_path)
    identity = age.X25519PrivateKey.generate()
    sealed = str(tmp_path / "sealed.zip")
    with open(plain, "rb") as source, open(sealed, "wb") as sink:
        age.encrypt(source, sink, [age.parse_recipient(age.recipient_of(identity))])
    digest = file_sha256(sealed)
    proof = proofs.issue(digest)  # as if it held: it is never used for one
    archive.use_decryption_key(age.identity_text(identity))
    try:
        session = Deployment({})
        verified_archive(session, sealed, "restored", expected_sha256=digest, proof=proof)
    finally:
        archive.use_decryption_key(None)
    assert session.result["verification"] == {"ok": True, "problems": []}
    assert session.result["proof_not_used"] == "the archive is encrypted"
    # Without its key it is refused, proof or not.
    with pytest.raises(ModuleFailure, match="so it is not restored"):
        verified_archive(Deployment({}), sealed, "restored", expected_sha256=digest, proof=proof)


def test_a_proof_over_what_cannot_be_read_falls_back_to_verifying(tmp_path, proof_key):
    broken = tmp_path / "edms_20260101T130029Z.zip"
    broken.write_bytes(b"PK\x03\x04" + b"\0" * 200)
    os.chmod(broken, 0o600)
    digest = file_sha256(str(broken))
    proof = proofs.issue(digest)
    assert proofs.holds(proof, digest)
    session = Deployment({})
    with pytest.raises(ModuleFailure, match="so it is not restored") as caught:
        verified_archive(session, str(broken), "restored", expected_sha256=digest, proof=proof)
    assert "could not be read for it" in caught.value.partial["proof_not_used"]
