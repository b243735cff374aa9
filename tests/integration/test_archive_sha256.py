"""archive_sha256: a pin a later run checks on top of verifying the archive
again; with the proof the verifying run returned, the same bytes are not
verified again, and a proof that does not hold changes nothing."""

import hashlib
import os
import shutil
import tempfile
import time

import pytest

from .conftest import RUN, run_module

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}


@pytest.fixture(scope="module")
def made(stack):
    directory = tempfile.mkdtemp(prefix="edms-sha256-")
    rc, result = run_module(
        "archive_create", {**PROJECT, "backup_dir": directory, "pgdump": False, "make_proof": True}
    )
    assert rc == 0, result.get("msg")
    yield result
    shutil.rmtree(directory, ignore_errors=True)


def rollback_plan(made, sha256, **extra):
    return run_module(
        "archive_rollback",
        {**PROJECT, "archive": made["archive"], "archive_sha256": sha256, **extra},
        check_mode=True,
    )


def file_sha256(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def test_a_digest_in_capitals_is_the_same_digest(made):
    rc, result = rollback_plan(made, " " + made["sha256"].upper() + "\n")
    assert rc == 0, result.get("msg")
    assert result["sha256"] == made["sha256"]
    # A pin on top of the verification, never instead of it.
    assert result["verification"]["ok"] is True


def test_another_digest_is_refused(made):
    other = ("0" if made["sha256"][0] != "0" else "1") + made["sha256"][1:]
    rc, result = rollback_plan(made, other)
    assert rc != 0
    assert f"archive {made['archive']} changed since it was verified" in result["msg"]
    assert f"verified {other}" in result["msg"]


@pytest.mark.parametrize(("value", "length"), [("md5:abc", 7), ("", 0)])
def test_what_is_not_a_sha256_is_named_and_refused(made, value, length):
    rc, result = rollback_plan(made, value)
    assert rc != 0
    assert result["msg"] == (
        f"archive_sha256 must be a sha256 of 64 hexadecimal digits; got {length} characters"
    )
    assert "plan" not in result


def test_a_missing_archive_is_named(made):
    rc, result = run_module(
        "archive_rollback",
        {**PROJECT, "archive": made["archive"] + ".gone", "archive_sha256": made["sha256"]},
        check_mode=True,
    )
    assert rc != 0
    assert result["msg"] == (
        f"cannot read archive {made['archive']}.gone: No such file or directory,"
        " so it is not put back"
    )


# proof: what spares verifying again bytes this host verified in the same run


def restore_check(made, **extra):
    return run_module(
        "archive_restore",
        {**PROJECT, "archive": made["archive"], "verify_only": True, **extra},
    )


def test_the_backup_s_proof_spares_the_rollback_verifying_it_again(made):
    assert made["proof"]
    rc, result = rollback_plan(made, made["sha256"], proof=made["proof"])
    assert rc == 0, result.get("msg")
    assert result["verification"]["ok"] is True
    assert "not verified again" in result["verification"]["proven"]
    assert result["sha256"] == made["sha256"]


def test_a_restore_plan_s_proof_holds_for_the_replacement_s_check(made):
    rc, plan = restore_check(made)
    assert rc == 0, plan.get("msg")
    assert "proven" not in plan["verification"]
    rc, again = restore_check(made, archive_sha256=plan["sha256"], proof=plan["proof"])
    assert rc == 0, again.get("msg")
    assert "not verified again" in again["verification"]["proven"]


@pytest.mark.parametrize(
    "proof",
    [
        "v1:1:" + "0" * 64,  # not this host's, and long expired
        "v1:{now}:" + "0" * 64,  # the right shape and time, a made-up HMAC
        "yes",
    ],
)
def test_a_proof_that_does_not_hold_changes_nothing(made, proof):
    proof = proof.format(now=int(time.time()))
    rc, result = rollback_plan(made, made["sha256"], proof=proof)
    assert rc == 0, result.get("msg")
    # Verified in full, as without a proof; and it gives a proof of its own.
    assert "proven" not in result["verification"]
    assert result["verification"]["ok"] is True
    assert result["proof"] != proof


def test_a_proof_of_other_bytes_is_no_proof_for_these(made, tmp_path):
    # The same archive with one byte in its middle (member data) changed: it
    # no longer verifies.
    other = str(tmp_path / os.path.basename(made["archive"]))
    shutil.copyfile(made["archive"], other)
    with open(other, "r+b") as handle:
        handle.seek(os.path.getsize(other) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    sha256 = file_sha256(other)
    rc, result = run_module(
        "archive_rollback",
        {**PROJECT, "archive": other, "archive_sha256": sha256, "proof": made["proof"]},
        check_mode=True,
    )
    assert rc != 0
    assert "does not verify, so it is not put back" in result["msg"]
    assert "proven" not in result["verification"]
