"""The pure parts of the storage phase; the phase itself is tested against the
real demo stack in tests/integration/test_storage.py."""

import json

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.compose_storage import (
    ComposeStorage,
    StorageError,
    backup_name,
    parse_mode,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.compose_file import (
    mask_secrets,
)


def test_mode_and_backup_names():
    assert parse_mode("0775") == 0o775
    assert parse_mode("2775") == 0o2775
    assert parse_mode(0o700) == 0o700
    assert backup_name("/x/dc.yml", now=0) == "/x/dc.yml.19700101T000000Z.bak"


def test_backup_names_do_not_collide(tmp_path):
    first = backup_name(str(tmp_path / "dc.yml"), now=0)
    open(first, "w").close()
    assert backup_name(str(tmp_path / "dc.yml"), now=0) == str(
        tmp_path / "dc.yml.19700101T000000Z.1.bak"
    )


@pytest.mark.parametrize("mode", ["rwx", "0999", "77", ""])
def test_a_mode_that_is_not_octal_is_refused_naming_it(mode):
    with pytest.raises(StorageError, match=f"host_path_mode {mode!r} is not an octal mode"):
        parse_mode(mode)


# --- The diff never shows a secret ------------------------------------------------

SECRETS = [
    "hunter2-inline",
    "s3cr3t-django-key",
    "url-pass-123",
    "tok-abc-456",
    "quoted-pass-789",
    "block-secret-000",
    "commented-secret-111",
    "flow-secret-333",
    "nested-pw-444",
]

COMPOSE = """\
x-db-env: &db-env
  POSTGRES_PASSWORD: hunter2-inline  # the anchor feeds the environment below
  POSTGRES_USER: edms
x-credentials: &creds
  pw: nested-pw-444
services:
  backend:
    image: edms
    environment:
      <<: *db-env
      DEBUG: "0"
      DJANGO_SECRET_KEY: "s3cr3t-django-key"
      DATABASE_URL: postgres://edms:url-pass-123@db:5432/edms
      # OLD_PASSWORD: commented-secret-111
  worker:
    image: edms
    environment:
      - API_TOKEN=tok-abc-456
      - "DB_PASS=quoted-pass-789"
      - LOG_LEVEL=info
  db:
    image: postgres
    labels: {app: edms, auth_token: flow-secret-333}
    environment:
      POSTGRES_PASSWORD: |
        block-secret-000
"""


class NoContainers:
    def __init__(self):
        self.execs = []


def storage(tmp_path, text, **params):
    (tmp_path / "docker-compose.yml").write_text(text)
    params = {
        "project_dir": str(tmp_path),
        "compose_files": ["docker-compose.yml"],
        "backend_service": "backend",
        "host_path": "./backups",
        "container_path": "/app/backups",
        **params,
    }
    phase = ComposeStorage(params, runner=lambda argv: (0, "", ""), containers=NoContainers())
    phase.diff_mode = True
    phase.locate()
    phase.edit()
    return phase.result


def test_f16_compose_diff_hides_inline_secrets(tmp_path):
    result = storage(tmp_path, COMPOSE)
    shown = json.dumps(result)
    for value in SECRETS:
        assert value not in shown
    diff = result["diff"]["prepared"]
    assert set(result["diff"]) == {"prepared"}  # never the whole file
    assert f"--- before: {tmp_path}/docker-compose.yml" in diff
    assert "+      BACKUP_DIR: /app/backups\n" in diff
    assert '       DJANGO_SECRET_KEY: "********"\n' in diff
    assert "       DATABASE_URL: postgres://edms:********@db:5432/edms\n" in diff
    assert "       # OLD_PASSWORD: ********\n" in diff
    assert '       DEBUG: "0"\n' in diff
    assert "LOG_LEVEL" not in diff  # far from the change: not shown at all


def test_f16_compose_diff_hides_a_secret_the_task_sets(tmp_path):
    environment = {"BACKUP_DIR": "/app/backups", "API_TOKEN": "new-token-555"}
    result = storage(tmp_path, COMPOSE, service="worker", environment=environment)
    shown = json.dumps(result)
    for value in [*SECRETS, "new-token-555"]:
        assert value not in shown
    assert "services.worker.environment: set API_TOKEN=******** (was ********)" in result["actions"]
    assert "services.worker.environment: add BACKUP_DIR=/app/backups" in result["actions"]
    assert "+      - BACKUP_DIR=/app/backups\n" in result["diff"]["prepared"]


def test_f16_compose_mask_covers_every_inline_form():
    masked = mask_secrets(COMPOSE, "docker-compose.yml")
    for value in SECRETS:
        assert value not in masked
    for kept in ("POSTGRES_USER: edms", "- LOG_LEVEL=info", "app: edms", 'DEBUG: "0"'):
        assert kept in masked
    assert '- "DB_PASS=********"' in masked
    assert "POSTGRES_PASSWORD: |\n        ********\n" in masked
    assert len(masked.splitlines()) == len(COMPOSE.splitlines())
    # Text that is not YAML is masked line by line.
    broken = "services: [\n  DB_PASSWORD: plain-secret-666\n"
    assert "plain-secret-666" not in mask_secrets(broken)


# --- Without root: refused before any change, saying what to run --------------


def phase_as(tmp_path, monkeypatch, euid, groups=()):
    from ansible_collections.edms.backup.plugins.module_utils._commands import compose_storage

    monkeypatch.setattr(compose_storage.os, "geteuid", lambda: euid)
    monkeypatch.setattr(compose_storage.os, "getegid", lambda: euid)
    monkeypatch.setattr(compose_storage.os, "getgroups", lambda: list(groups))
    params = {
        "project_dir": str(tmp_path),
        "compose_files": ["docker-compose.yml"],
        "backend_service": "backend",
        "host_path": "./backups",
    }
    phase = ComposeStorage(params, runner=lambda argv: (0, "", ""), containers=NoContainers())
    phase.host_dir = str(tmp_path / "back ups")
    phase.service = "backend"
    return phase


@pytest.mark.parametrize("todo", [["create"], ["chown"], ["chown", "chmod"]])
def test_without_root_a_directory_for_another_user_is_refused_naming_the_fix(
    tmp_path, monkeypatch, todo
):
    phase = phase_as(tmp_path, monkeypatch, euid=2001)
    with pytest.raises(StorageError) as caught:
        phase.check_privilege(todo, 1000, 1000, 0o775)
    text = str(caught.value)
    assert "only root can do. Nothing was changed" in text
    assert "storage_become=true" in text
    assert f"install -d -o 1000 -g 1000 -m 0775 '{tmp_path}/back ups'" in text


def test_without_root_a_directory_for_this_user_and_group_needs_no_root(tmp_path, monkeypatch):
    phase = phase_as(tmp_path, monkeypatch, euid=2001, groups=[2001, 105])
    phase.check_privilege(["create"], 2001, 105, 0o775)
    phase.check_privilege([], 1000, 1000, 0o775)


def test_without_root_a_chmod_of_a_directory_someone_else_owns_is_refused(tmp_path, monkeypatch):
    (tmp_path / "back ups").mkdir()
    phase = phase_as(tmp_path, monkeypatch, euid=2001, groups=[2001])
    with pytest.raises(StorageError, match="only root can do"):
        phase.check_privilege(["chmod"], 2001, 2001, 0o775)


def test_root_may_give_the_directory_to_anyone(tmp_path, monkeypatch):
    phase = phase_as(tmp_path, monkeypatch, euid=0)
    phase.check_privilege(["create", "chown", "chmod"], 1000, 1000, 0o775)
