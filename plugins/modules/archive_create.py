#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: archive_create
short_description: Take a backup archive of a Compose-run Django + PostgreSQL application
version_added: 0.1.0
description:
  - Writes one archive of format version 1 (see the collection's
    C(docs/archive-format.md)) into O(backup_dir), holding the Django fixture,
    the media files, C(metadata.json) and optionally a C(pg_dump -Fc) of the
    database.
  - The fixture is taken inside the backend container through the Django ORM
    with C(dumpdata --natural-foreign --all) semantics (natural foreign keys,
    primary keys kept, base managers), in one repeatable-read, read-only
    transaction together with the counts, so a backup taken while the
    application writes is one consistent snapshot. Datetimes keep their
    microseconds.
  - The fixture, the media and the pg_dump stream into the archive; none is
    held whole in memory. The archive is written under a temporary dot-name,
    fsynced and renamed into place (mode 0600) only when complete, then
    verified; a backup that does not verify fails the task.
  - Then its counts are compared with those of the previous verified archive
    in O(backup_dir) (the newest earlier archive whose verification passed
    and is current). When a model lost more than O(count_drop_threshold) of
    its objects, or vanished, the task warns, naming each model with its
    count before and after and the archive compared with, and returns the
    falls in RV(count_drops). A fall never fails the backup; a backup of a
    damaged database is still evidence, and it is kept.
extends_documentation_fragment:
  - edms.backup.project
  - edms.backup.backup_dir
  - edms.backup.media_dir
  - edms.backup.maintenance
options:
  label:
    description:
      - Short label stored in the metadata, for example C(manual),
        C(scheduled) or C(pre-restore safety).
    type: str
    default: manual
  reason:
    description:
      - Free text stored in the metadata.
    type: str
  excludes:
    description:
      - App labels or C(app_label.ModelName) labels left out of the fixture.
    type: list
    elements: str
    default: [contenttypes, auth.permission, sessions]
  required_models:
    description:
      - Models that must have at least one object in the archive for it to
        verify, as C(app_label.ModelName). None by default; the roles give the
        inventory's C(edms_required_models), else the models of its
        C(edms_count_models).
    type: list
    elements: str
    default: []
  encrypt_to:
    description:
      - Encrypt the archive at rest to these age X25519 recipients
        (C(age1...), public keys; the roles give the inventory's
        C(edms_encrypt_to)). The archive is written and verified under a
        partial name, encrypted in the age v1 format, read back and checked
        with the key only this run holds, and only then put in place; the
        plain file is removed. The private key is never needed to back up or
        to copy, only to verify, rehearse or restore (C(decryption_key)).
      - Empty (the default) writes a plain ZIP archive.
    type: list
    elements: str
    default: []
  make_proof:
    description:
      - Verify the new archive from a private copy of it (an unnamed file in
        C(~/.cache/edms-backup) of the user the module runs as, deleted when
        the task ends; its sha256 taken from the bytes copied) and return
        RV(proof) for a rollback to it later in the same run, which then need
        not verify it again. Costs one more write of the archive and room for
        it there (none is made when the file system would keep less than
        1 GiB or 5% free); the C(edms.backup.restore) role asks for it for its
        safety backups. Ignored for an encrypted archive.
    type: bool
    default: false
  pgdump:
    description:
      - Also store C(database.pgdump), taken with the C(pg_dump) inside the db
        container (its version always matches the server), for an exact and
        fast rollback. It logs in as the application (the database, user and
        password are read from Django's settings in the backend and given to
        C(pg_dump) in its environment, never on its command line).
    type: bool
    default: true
  count_drop_threshold:
    description:
      - Fraction of a model's objects that may go between the previous
        verified archive and this one before the task warns; a model fell
        when C(before - after > threshold * before), so V(0.5) warns when
        fewer than half are left. Exactly at the threshold is no fall. A
        model the previous archive held and this one does not (or holds
        none of) always counts as fallen. Models new in this archive never
        do.
      - The default V(0.5) is what an operator of a records system expects
        to hear about; half of a model's records do not go between two
        backups on an ordinary day, yet a small table losing one of its few
        rows does not cry wolf. Lower it to watch closer.
      - V(0) turns the comparison off. Must be at least 0 and below 1.
    type: float
    default: 0.5
attributes:
  check_mode:
    support: full
    description:
      - Reads the deployment, checks the backup directory and returns the
        commands a real run would run; writes nothing.
  diff_mode:
    support: none
    description: A new archive has no previous state to compare with.
  idempotent:
    support: none
    description: Every run writes a new archive.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Back up the EDMS
  edms.backup.archive_create:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    backup_dir: /home/lims/edms-staging/backups
    display_timezone: Asia/Singapore
  register: edms_archive

- name: A safety backup before a restore
  edms.backup.archive_create:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    backup_dir: /home/lims/edms-staging/backups
    label: pre-restore safety
    reason: restore of edms_20260101T130029Z.zip
"""

RETURN = r"""
archive:
  description: Path of the archive (in check mode, the path it would have).
  returned: always
  type: str
  sample: /home/lims/edms-staging/backups/edms_20260101T130029Z.zip
name:
  description: File name of the archive; it carries the UTC time.
  returned: success
  type: str
size:
  description: Size of the archive in bytes.
  returned: success, not in check mode
  type: int
sha256:
  description: sha256 of the archive file, to check copies of it against.
  returned: success, not in check mode
  type: str
proof:
  description:
    - With O(make_proof), proof that this host verified the archive it just
      wrote, in full, and it passed, for O(edms.backup.archive_rollback#module:proof) (with
      RV(sha256) as its O(edms.backup.archive_rollback#module:archive_sha256))
      of a rollback to it later in the same run, which then need not verify
      it again. An HMAC under a key only the user the modules run as can read
      on this host; it holds for six hours.
  returned: >-
    with O(make_proof), not in check mode, unless the archive is encrypted, no private copy can be
    made or the proof key cannot be used
  type: str
proof_not_made:
  description:
    - Why no RV(proof) was returned although O(make_proof) asked for one and
      the archive verified (it is encrypted, no private copy could be made,
      or no proof key can be used).
  returned: with O(make_proof), when the archive verified and no proof was made
  type: str
created_at:
  description: When the backup started, UTC, ISO 8601 with C(Z).
  returned: success, not in check mode
  type: str
created_at_local:
  description: The same instant in O(display_timezone), with its offset.
  returned: success, not in check mode
  type: str
counts:
  description: Objects per model in the fixture, and rows per auto-created m2m table.
  returned: success, not in check mode
  type: dict
objects:
  description: Number of objects in the fixture.
  returned: success, not in check mode
  type: int
media:
  description:
    - Media files copied (C(files), C(bytes)) and the paths left out
      (C(skipped)), relative to the media root.
    - The media root is read once, as one tar stream from the backend
      container. A hard-linked file comes in it once with its data and at
      each of its other paths as a link to that first path; each of those
      paths is stored as a file of its own, with the bytes of the first
      path copied within the archive. No path is read from the container
      again.
    - Left out are symbolic links, devices and the like, and files whose
      names the archive cannot hold; the task warns about the latter,
      naming each with why. Those are names that are not valid UTF-8
      (Django keeps a file field's name as UTF-8 text in the database, so
      no row can name such a file), names with a path component named like
      a restore's work directory (C(.edms-restore-*)), a C(.) or empty
      component or a backslash, and a name equal to an earlier one once
      normalised to Unicode NFC (the first is kept). A hard-linked path
      whose first path was left out is left out and warned about too.
    - In C(skipped) and in the warnings, the bytes of a name that are not
      UTF-8, and control characters, are shown as C(\xNN).
    - A restore's own work directory at the top of the media root is not
      media; it is neither copied nor listed.
  returned: success, not in check mode
  type: dict
pgdump_snapshot:
  description:
    - C(the fixture's) when the C(database.pgdump) was taken in the fixture
      dump's own snapshot (C(pg_dump --snapshot)), so that both hold the same
      data; C(its own) when the backend could not share it. The metadata's
      C(pgdump) says the same, with the tables whose rows it leaves out (the
      sessions').
  returned: with O(pgdump), not in check mode
  type: str
members:
  description: sha256 and size of the fixture and the pg_dump.
  returned: success, not in check mode
  type: dict
verification:
  description: The verification of the written archive (see M(edms.backup.archive_verify)).
  returned: success, not in check mode
  type: dict
encrypted:
  description: How the archive is encrypted (C(format) age, C(recipients)); absent when plain.
  returned: when O(encrypt_to) is given, not in check mode
  type: dict
commands:
  description: The C(docker compose) commands run.
  returned: always
  type: list
  elements: str
execs:
  description: Commands run in containers, or in check mode the ones a real run would run.
  returned: always
  type: list
  elements: dict
count_drops:
  description:
    - The models whose counts fell against the previous verified archive
      (see O(count_drop_threshold)), sorted by model; empty when none fell,
      when there is no previous verified archive, when the comparison is off,
      and in check mode.
    - Each has C(model), C(before), C(after), C(fell_by) (the fraction lost),
      C(vanished) (true when the model is gone) and C(previous) (the archive
      compared with).
  returned: success
  type: list
  elements: dict
  sample:
    - model: documents.document
      before: 60
      after: 5
      fell_by: 0.9167
      vanished: false
      previous: edms_20260101T130029Z.zip
count_compared_with:
  description: Name of the previous verified archive the counts were compared with, or null.
  returned: success
  type: str
  sample: edms_20260101T130029Z.zip
"""

from ansible_collections.edms.backup.plugins.module_utils._backend.dump import DEFAULT_EXCLUDES
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_create import (
    BackupError,
    create_backup,
)
from ansible_collections.edms.backup.plugins.module_utils._format.trend import DEFAULT_THRESHOLD
from ansible_collections.edms.backup.plugins.module_utils._module import options, run_module
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import DOCKER


def argument_spec():
    return options(
        "project",
        "backup_dir",
        "media_dir",
        "maintenance",
        label=dict(type="str", default="manual"),
        reason=dict(type="str"),
        excludes=dict(type="list", elements="str", default=DEFAULT_EXCLUDES),
        required_models=dict(type="list", elements="str", default=[]),
        pgdump=dict(type="bool", default=True),
        make_proof=dict(type="bool", default=False),
        count_drop_threshold=dict(type="float", default=DEFAULT_THRESHOLD),
        encrypt_to=dict(type="list", elements="str", default=[]),
    )


def command(module):
    return create_backup(
        module.params, runner=module.run_command, check_mode=module.check_mode, warn=module.warn
    )


def main():
    run_module(argument_spec(), command, libraries=[DOCKER], errors=BackupError)


if __name__ == "__main__":
    main()
