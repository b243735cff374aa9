"""archive_sha256: a pin a later run checks on top of verifying the archive again."""

import shutil
import tempfile

import pytest

from .conftest import RUN, run_module

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}


@pytest.fixture(scope="module")
def made(stack):
    directory = tempfile.mkdtemp(prefix="edms-sha256-")
    rc, result = run_module("archive_create", {**PROJECT, "backup_dir": directory, "pgdump": False})
    assert rc == 0, result.get("msg")
    yield result
    shutil.rmtree(directory, ignore_errors=True)


def rollback_plan(made, sha256):
    return run_module(
        "archive_rollback",
        {**PROJECT, "archive": made["archive"], "archive_sha256": sha256},
        check_mode=True,
    )


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
