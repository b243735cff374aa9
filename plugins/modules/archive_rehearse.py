#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: archive_rehearse
short_description: Restore an archive into a separate database, compare, drop it
version_added: 0.1.0
description:
  - The checklist's Test 3, restore to a separate database. Verifies the
    archive; creates O(database) on the same PostgreSQL server and marks it as
    a rehearsal's (a leftover of an interrupted rehearsal, so marked, is
    dropped first; any other database of that name is refused); migrates it
    with the application's code; compares its migrations with the archive's;
    loads the fixture through the Django ORM in one transaction that compares
    every count with the archive's metadata before it commits; compares every
    object's primary key (UUIDs included) with the archive's; drops the
    database again whatever happened.
  - Compares the archive's media hash list with the live media and reports
    the differences (RV(media)); the live media are not changed.
  - An archive of the application's own layout (a C(.zip) or a directory
    holding C(database_backup.json) and C(metadata.json), as the EDMS's own
    backup feature writes) is rehearsed too, the way its operators would
    restore it. It is verified, then loaded with Django's own C(loaddata)
    into O(database), which is migrated first (the archive names no
    migrations, so they are not compared and O(allow_migration_mismatch)
    has no effect). Every model is then compared with the live data, rows
    matched by natural key where the model has one. RV(losses) says per
    model what a restore from it would lose or change, and RV(summary) gives
    the same in lines. The task fails only when the archive does not verify
    or the load fails; then RV(models) and RV(losses) still give the counts
    per model. The comparison holds the rows of one model of both databases
    in the backend's memory at a time.
  - The application's own database is never written, and is refused as
    O(database).
  - Records the result beside the archive (shown by M(edms.backup.archive_info)).
extends_documentation_fragment:
  - edms.backup.decryption
  - edms.backup.project
  - edms.backup.media_dir
options:
  archive:
    description: The archive on the managed host; the newest in O(backup_dir) when not set.
    type: path
  backup_dir:
    description: Backup directory to take the newest archive from.
    type: path
  database:
    description: The separate database.
    type: str
    default: edms_test_restore
  allow_migration_mismatch:
    description: Go on when the archive's migrations differ from the application's.
    type: bool
    default: false
attributes:
  check_mode:
    support: none
    description: A rehearsal is the check; it creates and drops a database.
  diff_mode:
    support: none
    description: Nothing of the deployment changes.
  idempotent:
    support: full
    description: Leaves no database behind; only the record beside the archive changes.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Rehearse the newest backup
  edms.backup.archive_rehearse:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    backup_dir: /home/lims/edms-staging/backups
"""

RETURN = r"""
archive:
  description: The archive rehearsed.
  returned: always
  type: str
database:
  description: The separate database used.
  returned: always
  type: str
counts:
  description: Rows per model and m2m table after the load; equal to the archive's metadata.
  returned: success
  type: dict
load:
  description:
    - The load's report (objects, counts, seconds, peak_rss_kb, streamed);
      for an application's own archive, C(objects) and C(fixtures) as
      C(loaddata) reports them.
  returned: success
  type: dict
identities:
  description: Primary keys compared with the archive's (models, objects, equal).
  returned: success
  type: dict
media:
  description: The archive's media against the live media (files, equal_to_live, differences).
  returned: success
  type: dict
pgdump:
  description:
    - The archive's C(database.pgdump) (what a rollback puts back), restored
      with C(pg_restore) into the rehearsal database made empty again, and
      its rows counted against the archive's counts; C(snapshot) is
      C(fixture) when it was taken in the fixture's own snapshot (then any
      difference fails the rehearsal), C(own) or C(unknown) otherwise (a
      difference is a warning).
  returned: when the archive holds a database.pgdump
  type: dict
migration_differences:
  description: Differences between the archive's migrations and the application's.
  returned: when the database was migrated, for an archive of this collection's format
  type: list
  elements: str
layout:
  description:
    - For an archive of the application's own layout, C(edms-native zip)
      or C(edms-native directory).
  returned: application's own archives
  type: str
migrations:
  description: For an archive of the application's own layout, why migrations were not compared.
  returned: application's own archives
  type: str
models:
  description:
    - For an archive of the application's own layout, per model, C(live)
      rows, C(backup) objects, C(loaded) rows, C(missing) (live rows not
      restored), C(extra) (loaded rows the live data lacks), C(pk_replaced)
      (matched rows with another primary key), C(fields) (per field, the
      C(rows) whose value differs and the C(kind) of difference, such as
      C(times cut to milliseconds)); counts only, never a key (a key may be a
      secret, such as a session's). When the load failed, only C(live) and
      C(backup).
  returned: application's own archives
  type: dict
losses:
  description:
    - For an archive of the application's own layout, per model (and
      C(media)), what a restore from it would lose or change, one sentence
      each; empty when it equals the live data.
  returned: application's own archives
  type: dict
  sample: {"backup.BackupConfiguration": ["2 rows get a new primary key (natural primary keys)"],
           "media": ["media not included: 60 live files"]}
summary:
  description:
    - For an archive of the application's own layout, the result in lines,
      as the role prints it.
  returned: application's own archives, success
  type: list
  elements: str
dropped:
  description: Whether the separate database is gone again.
  returned: when it was created
  type: bool
seconds:
  description: How long the rehearsal took.
  returned: when it ran
  type: float
recorded:
  description: What was recorded beside the archive.
  returned: when it ran
  type: dict
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

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_rehearse import (
    RehearsalError,
    rehearse,
)
from ansible_collections.edms.backup.plugins.module_utils._module import options, run_module
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import DOCKER


def argument_spec():
    return options(
        "project",
        "decryption",
        "media_dir",
        archive=dict(type="path"),
        backup_dir=dict(type="path"),
        database=dict(type="str", default="edms_test_restore"),
        allow_migration_mismatch=dict(type="bool", default=False),
    )


def main():
    run_module(
        argument_spec(),
        lambda module: rehearse(module.params, runner=module.run_command),
        libraries=[DOCKER],
        errors=RehearsalError,
        supports_check_mode=False,
        required_one_of=[("archive", "backup_dir")],
    )


if __name__ == "__main__":
    main()
