#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight_info
short_description: Everything the backup checklist checks by hand, as data, changing nothing
version_added: 0.1.0
description:
  - Reads the Compose project's services and health; runs one probe inside
    the backend through Django (the settings C(BACKUP_DIR), C(MEDIA_ROOT),
    C(TIME_ZONE); the backup and media directories as the application sees
    them; C(SELECT version()) and the clock of PostgreSQL through the
    application's own connection; record counts per model); reads the backup
    directory on the host (owner, mode, free space) and the backend's mounts;
    compares the clocks of the controller, the host, the backend and
    PostgreSQL.
  - Freshness of the backups in O(backup_dir) (checks C(backup_age) and
    C(backup_size)). The newest verified backup (its verification recorded
    beside it as passed, the archive unchanged since) is a problem when it is
    older than O(max_backup_age_hours), or when the data it holds (fixture and
    media, uncompressed) is smaller than O(min_backup_size_ratio) times that
    of the verified backup before it. Newer archives that are unverified,
    failed or stale are listed and not counted. Ages are measured with the
    host's clock, the clock that stamps the archives' C(created_at). A
    problem has the severity O(freshness_severity); no verified backup at all
    (a first run) is a warning unless O(require_verified_backup).
  - Check C(backup_copies) warns when the newest verified backup has no
    verified copy elsewhere recorded beside it (M(edms.backup.archive_copy),
    C(playbooks/copy.yml)); without one, one disk holds the data and every backup of it.
  - Check C(host_ready) says whether the interpreter running the modules
    has the Python libraries the collection needs on the managed host
    (docker, ruamel.yaml; psycopg2 and jmespath optional), and names the
    interpreter. Without one it is an error whose fix is
    C(playbooks/prepare_host.yml), then C(ansible_python_interpreter) set to
    the python of the virtual environment it makes. Without the Docker SDK,
    everything that asks Docker is skipped (check C(docker_checks) says
    what) and the checks of the host alone still run.
  - Check C(project_lock) reads the project lock (see M(edms.backup.lock)).
    The record of a restore or rollback whose run died is an error, with the
    recovery to run (C(playbooks/recover.yml)); every backup and restore is
    refused until then.
  - Each finding has a severity (C(ok), C(warning), C(error)) and, when
    something is wrong, a fix hint, like the checklist's known issues.
  - Changes nothing. A deployment with problems is not a module failure; the
    findings say so, and RV(ok) is false when any finding is an error.
extends_documentation_fragment:
  - edms.backup.project
  - edms.backup.backup_dir
  - edms.backup.media_dir
  - edms.backup.read_only
options:
  backup_dir_container:
    description:
      - The backup directory inside the backend container.
    type: str
    default: /app/backups
  archive_dir:
    description:
      - The directory of the collection's archives on the host (the roles give
        C(edms_archive_dir)). It must be safe from the application; check
        C(archive_store) fails when it is, contains or lies inside
        O(backup_dir), lies inside a directory mounted into any container of
        the project, is a link, is owned by another user than the one running
        the module (or root), is writable by group or others, or has a
        directory above it that everyone may write without the sticky bit.
        Check C(archive_space) compares its free space with the newest
        verified archive's size. The freshness checks read its archives.
      - Not set, the freshness checks read O(backup_dir) and C(archive_store)
        warns that the application can write there.
    type: path
  count_models:
    description:
      - Models to count, as C(app_label.ModelName), or C(__all__).
    type: list
    elements: str
    default: [__all__]
  min_free_bytes:
    description:
      - Free space the backup directory's file system must have.
    type: int
    default: 1073741824
  encrypted:
    description:
      - The next archives are encrypted (the role gives whether
        C(edms_encrypt_to) is set). Check C(archive_space) then wants 2.5
        times the newest verified archive instead of 1.5 times, the plain
        archive and its encryption existing at once for a moment; it does
        the same when the newest verified archive is encrypted.
    type: bool
    default: false
  db_port:
    description:
      - The host port the db service's PostgreSQL is published on (C(5433)
        for C(5433:5432)). When set, the application's login is tried there
        on this host's 127.0.0.1 with psycopg2 (a TCP connect only, and a
        warning, where psycopg2 is not installed).
    type: int
  max_clock_skew:
    description:
      - Seconds by which the clocks may differ before it is a warning.
    type: float
    default: 5.0
  controller_time:
    description:
      - The controller's current time, ISO 8601 with a time zone (the roles
        pass it), to compare with the host's clock.
    type: str
  max_backup_age_hours:
    description:
      - Age in hours the newest verified backup may have. The default suits a
        daily backup; it leaves two hours for a late or slow run (for a
        weekly one, 170).
      - C(0) does not check the age.
    type: float
    default: 26
  min_backup_size_ratio:
    description:
      - Fraction of the data of the verified backup before it that the newest
        verified backup must hold (fixture and media, uncompressed; not
        C(database.pgdump), which is optional, nor compression, which
        varies). The EDMS keeps what it has, so a fifth less overnight means
        something is missing; lower it for one run after a planned purge.
      - C(0) does not compare sizes.
    type: float
    default: 0.8
  require_verified_backup:
    description:
      - Whether having no verified backup at all is a problem of
        O(freshness_severity). By default it is a warning, so that a first
        deployment is reported and its first backup is not stopped.
    type: bool
    default: false
  freshness_severity:
    description:
      - Severity of a freshness problem. C(error) where preflight is the job
        (monitoring); C(warning) where preflight gates a backup or a restore,
        since a stale backup must not stop the backup that replaces it (the
        C(edms.backup.preflight) role chooses this by itself, see its
        C(preflight_freshness_severity)).
    type: str
    choices: [error, warning]
    default: error
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Preflight of the staging EDMS
  edms.backup.preflight_info:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    backup_dir: /home/lims/edms-staging/backups
    display_timezone: Asia/Singapore
    controller_time: "{{ now(utc=true).isoformat() }}+00:00"
  register: edms_preflight

- name: Stop on errors
  ansible.builtin.assert:
    that: edms_preflight.ok
    fail_msg: "{{ edms_preflight.errors | map(attribute='message') | join('; ') }}"

- name: Monitoring of a weekly backup; no verified backup at all is an error too
  edms.backup.preflight_info:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    backup_dir: /home/lims/edms-staging/backups
    max_backup_age_hours: 170
    require_verified_backup: true
  register: edms_preflight

- name: Show the newest verified backup
  ansible.builtin.debug:
    msg: >-
      {{ edms_preflight.freshness.newest_verified.name | default('none') }},
      {{ edms_preflight.freshness.newest_verified.age_hours | default('-') }} h old
"""

RETURN = r"""
ok:
  description: True when no finding is an error.
  returned: always
  type: bool
findings:
  description: Every check with C(check), C(severity), C(message) and C(fix).
  returned: always
  type: list
  elements: dict
errors:
  description: The findings of severity C(error).
  returned: always
  type: list
  elements: dict
summary:
  description: Number of findings per severity.
  returned: always
  type: dict
  sample: {"ok": 9, "warning": 2, "error": 0}
services:
  description: Services of the project with state and health (see M(edms.backup.stack_info)).
  returned: always
  type: list
  elements: dict
backup_dir:
  description: The backup directory on the host; owner, group, mode and free space when it exists.
  returned: always
  type: dict
archive_dir:
  description: The archive directory (O(archive_dir)); its free space against what a backup needs.
  returned: when O(archive_dir) is set
  type: dict
backend:
  description: What the backend sees; settings, its user, the backup and media directories.
  returned: when the backend runs
  type: dict
database:
  description: PostgreSQL as the application reaches it; version, time zone, clock.
  returned: when the backend runs
  type: dict
counts:
  description:
    - Rows per model, through the base manager (C(rows)) and the default
      manager (C(visible)).
  returned: when the database is reachable
  type: dict
clocks:
  description: UTC clocks of the controller (if given), the host, the backend and PostgreSQL.
  returned: when the backend runs
  type: dict
freshness:
  description:
    - The freshness of the backups in O(backup_dir), as facts; the findings
      C(backup_age) and C(backup_size) judge them.
    - C(newest_verified) and C(previous_verified) are null or have C(name),
      C(path), C(created_at), C(created_at_local), C(age_seconds),
      C(age_hours), C(size) (the archive's bytes), C(data_size) (fixture and
      media, uncompressed), C(label) and C(copies) (its verified copies
      elsewhere, each with C(destination), C(kind), C(location) and C(at)).
    - C(not_verified_newer) lists the archives newer than the newest verified
      one with their state (C(unverified), C(failed), C(stale)).
    - C(problems) is empty when fresh, or holds C(no_verified_backup),
      C(too_old), C(too_small), C(dated_in_future), C(unreadable).
    - C(now) is the host's clock the ages are measured with.
  returned: success
  type: dict
  sample:
    backup_dir: /home/lims/edms-staging/backups
    now: "2026-01-02T09:00:00.000000Z"
    max_age_hours: 26.0
    min_size_ratio: 0.8
    severity: error
    archives: 3
    newest_verified:
      name: edms_20260102T020000Z.zip
      path: /home/lims/edms-staging/backups/edms_20260102T020000Z.zip
      created_at: "2026-01-02T02:00:00.412345Z"
      created_at_local: "2026-01-02T10:00:00.412345+08:00"
      age_seconds: 25200
      age_hours: 7.0
      size: 48211234
      data_size: 61020311
      label: scheduled
    previous_verified:
      name: edms_20260101T020000Z.zip
      path: /home/lims/edms-staging/backups/edms_20260101T020000Z.zip
      created_at: "2026-01-01T02:00:00.398765Z"
      created_at_local: "2026-01-01T10:00:00.398765+08:00"
      age_seconds: 111600
      age_hours: 31.0
      size: 48100022
      data_size: 60990210
      label: scheduled
    size_ratio: 1.0005
    not_verified_newer: []
    problems: []
commands:
  description: The C(docker compose) commands run.
  returned: always
  type: list
  elements: str
execs:
  description: Commands run in containers.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.preflight_info import (
    PreflightError,
    preflight,
)
from ansible_collections.edms.backup.plugins.module_utils._common import DEFAULT_COUNT_MODELS
from ansible_collections.edms.backup.plugins.module_utils._format.freshness import (
    DEFAULT_MAX_AGE_HOURS,
    DEFAULT_MIN_SIZE_RATIO,
)
from ansible_collections.edms.backup.plugins.module_utils._module import options, run_module


def argument_spec():
    return options(
        "project",
        "backup_dir",
        "media_dir",
        backup_dir_container=dict(type="str", default="/app/backups"),
        archive_dir=dict(type="path"),
        count_models=dict(type="list", elements="str", default=DEFAULT_COUNT_MODELS),
        min_free_bytes=dict(type="int", default=2**30),
        encrypted=dict(type="bool", default=False),
        db_port=dict(type="int"),
        max_clock_skew=dict(type="float", default=5.0),
        controller_time=dict(type="str"),
        max_backup_age_hours=dict(type="float", default=DEFAULT_MAX_AGE_HOURS),
        min_backup_size_ratio=dict(type="float", default=DEFAULT_MIN_SIZE_RATIO),
        require_verified_backup=dict(type="bool", default=False),
        freshness_severity=dict(type="str", choices=["error", "warning"], default="error"),
    )


def command(module):
    return dict(preflight(module.params, runner=module.run_command), changed=False)


def main():
    # No libraries=: without the Docker SDK preflight still runs, and says so
    # (finding host_ready) with the checks of this host alone.
    run_module(argument_spec(), command, errors=PreflightError)


if __name__ == "__main__":
    main()
