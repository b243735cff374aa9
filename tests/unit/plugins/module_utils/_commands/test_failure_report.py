"""The failure report's own logic: its options, its directory, its scrubbing.

What it gathers from a real deployment (compose ps, compose logs, the
containers' environment) is tested on the demo stack
(tests/integration/test_failure_report.py)."""

import os
import stat
from datetime import UTC, datetime

import pytest
from ansible_collections.edms.backup.plugins.module_utils import _common
from ansible_collections.edms.backup.plugins.module_utils._commands.failure_report import (
    LINE_LIMIT,
    ReportError,
    capped,
    check_params,
    dotenv_secrets,
    failure_report,
    remember,
    report_directory,
    scrubbed,
    write_new,
)

PARAMS = {
    "project_dir": "/nonexistent/project",
    "compose_files": ["docker-compose.yml"],
    "backend_service": "backend",
    "db_service": "db",
    "operation": "backup",
    "since": "2026-12-04T06:33:23Z",
    "max_lines": 2000,
}


@pytest.fixture
def no_secrets():
    before = set(_common.SECRETS)
    yield
    _common.SECRETS.clear()
    _common.SECRETS.update(before)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("operation", "../../etc/x", "is not a name such as backup"),
        ("operation", "", "is not a name such as backup"),
        ("since", "yesterday", "is not a UTC time"),
        ("since", "2026-12-04T06:33:23+08:00", "is not a UTC time"),
        ("max_lines", 0, "max_lines must be at least 1"),
    ],
)
def test_bad_options_are_refused_naming_them_before_anything(tmp_path, key, value, problem):
    params = {**PARAMS, key: value, "report_dir": str(tmp_path / "archives")}
    with pytest.raises(ReportError, match=problem):
        failure_report(params)
    assert os.listdir(tmp_path) == []


def test_the_directory_must_be_there_private_and_no_link(tmp_path):
    made = tmp_path / "archives"
    with pytest.raises(ReportError, match="No such file or directory"):
        report_directory(str(made))
    assert os.listdir(tmp_path) == []
    made.mkdir(mode=0o700)
    assert report_directory(str(made)) == str(made)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ReportError, match="writable by others"):
        report_directory(str(shared))
    link = tmp_path / "link"
    link.symlink_to(made)
    with pytest.raises(ReportError, match=r"is not a directory \(a link is not followed"):
        report_directory(str(link))


def test_secrets_and_url_passwords_never_reach_the_report(no_secrets):
    _common.secret("s3cret-db-password")
    text = scrubbed(
        "db | FATAL: password authentication failed; password=s3cret-db-password\n"
        "backend | DATABASE_URL=postgres://edms:hunter2pass@db:5432/edms\n"
    )
    assert "s3cret-db-password" not in text
    assert "hunter2pass" not in text
    assert "postgres://edms:********@db:5432/edms" in text


def test_check_mode_says_where_and_writes_nothing(tmp_path):
    params = {**PARAMS, "report_dir": str(tmp_path / "archives")}
    now = datetime(2026, 12, 4, 7, 0, 1, tzinfo=UTC)
    result = failure_report(params, check_mode=True, now=now)
    assert result == {
        "changed": False,
        "path": str(tmp_path / "archives" / "edms-failure-20261204T070001Z-backup.log"),
    }
    assert os.listdir(tmp_path) == []


def test_check_params_takes_what_a_role_gives():
    check_params({**PARAMS, "operation": "rehearsal", "since": "2026-12-04T06:33:23.5Z"})


def test_the_project_env_and_url_encoded_passwords_are_masked(tmp_path, no_secrets):
    (tmp_path / ".env").write_text(
        "# comment\nPOSTGRES_PASSWORD='pg-secret-value'\nTIME_ZONE=UTC\n"
        "export DJANGO_SECRET_KEY=dj-secret-value\n"
    )
    dotenv_secrets(str(tmp_path))
    remember("DATABASE_URL", "postgres://edms:p%40ss%2Fword9@db/edms")
    text = scrubbed(
        "pg-secret-value dj-secret-value UTC p%40ss%2Fword9 p@ss/word9 postgres://u:other1@h/d"
    )
    assert text == "******** ******** UTC ******** ******** postgres://u:********@h/d"


def test_log_lines_are_cut_and_reports_never_overwrite_one_another(tmp_path):
    long = "x" * (LINE_LIMIT + 10)
    assert capped(f"short\n{long}") == "short\n" + "x" * LINE_LIMIT + " [cut]"
    path = str(tmp_path / "edms-failure-20261204T070001Z-backup.log")
    first = write_new(path, "one")
    second = write_new(path, "two")
    assert first == path
    assert second == str(tmp_path / "edms-failure-20261204T070001Z-backup-2.log")
    with open(first) as handle:
        assert handle.read() == "one"
    assert stat.S_IMODE(os.stat(second).st_mode) == 0o600
    os.symlink("/etc/passwd", str(tmp_path / "edms-failure-20261204T070001Z-backup-3.log"))
    third = write_new(path, "three")
    assert third.endswith("-4.log")
