#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: archive_restore
short_description: Replace the live database and media with an archive's (destructive)
version_added: 0.1.0
description:
  - B(Destructive.) Replaces the application's database and media with those
    of O(archive). Use it through the C(edms.backup.restore) role, which takes
    and verifies a safety backup first, asks for confirmation, stops the
    services that write and rolls back on failure.
  - Before anything changes, verifies the archive (or relies, through a
    O(proof) that holds, on this host's verification of the same bytes
    earlier in the run), refusing one that fails, one of another format,
    and, when O(archive_sha256) is given, one that changed since RV(sha256)
    was taken; compares its migrations with the live
    database's (refusing a difference unless O(allow_migration_mismatch)), and
    refuses while the work directory of an earlier restore is in the media
    root.
  - The media are unpacked beside the live media inside the media root and
    swapped in by renames; the previous media are kept in RV(media_previous)
    until M(edms.backup.restore_finish) removes them or
    M(edms.backup.archive_rollback) puts them back. A failure during the swap
    moves everything back.
  - The database is replaced in one transaction through the Django ORM in
    the backend container (tables emptied, fixture loaded with C(loaddata)'s
    semantics, foreign keys checked, sequences reset, every count compared
    with the archive's metadata before commit). If the load fails, the
    database is as it was and the previous media are put back.
  - Receivers see C(raw=True) as under C(loaddata); the application can tell
    a restore runs from E(EDMS_RESTORE_IN_PROGRESS=1) and
    C(settings.EDMS_RESTORE_IN_PROGRESS).
extends_documentation_fragment:
  - edms.backup.decryption
  - edms.backup.proof
  - edms.backup.project
  - edms.backup.media_dir
  - edms.backup.maintenance
options:
  encrypt_to:
    description:
      - The age recipients (C(age1...)) archives here are now encrypted to
        (the role gives the inventory's C(edms_encrypt_to)); the restore's
        safety backup is encrypted to them. When set, C(decryption_key) must
        open at least one of them, or the restore is refused before anything
        changes, even for a plain archive; a restore that fails is put back
        from that safety backup, which must be readable.
    type: list
    elements: str
    default: []
  archive:
    description: The archive to restore, on the managed host.
    type: path
    required: true
  archive_sha256:
    description:
      - The archive's sha256 as an earlier O(verify_only) run returned it; the
        archive is refused if it changed since. It pins the archive and never
        replaces its verification, which runs all the same unless O(proof)
        holds for it. Letter case and
        surrounding blanks do not matter; anything but 64 hexadecimal digits
        is refused.
      - The file that was verified and whose sha256 was taken is the one read
        for the rest of the task (media and fixture), even if another file is
        moved to its name meanwhile.
    type: str
  allow_migration_mismatch:
    description: Go on when the archive's migrations differ from the live database's.
    type: bool
    default: false
  reset_models:
    description:
      - Models, as C(app_label.ModelName), whose tables the restore empties
        although the archive does not hold them. Every other table the archive
        does not hold is left as it is, and one of them that refers to a
        replaced table and holds rows stops the restore before anything
        changed (its message names it).
      - Not set, C(sessions.Session) when the application has it (after a
        restore everyone logs in again, on purpose).
    type: list
    elements: str
  token:
    description:
      - The restore token that names this run's work directory in the media
        root (12 lowercase hexadecimal digits), so that the caller records it
        before anything is replaced (the restore role records it in the
        project lock, for a recovery). Not set, a new random one.
      - Anything of another form is refused before anything changes, and so is
        a token whose work directory exists already.
    type: str
  verify_only:
    description: Run only the checks made before anything changes, and return the plan.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Runs every check of O(verify_only) and returns the plan; changes nothing.
  diff_mode:
    support: none
    description: RV(counts_before) and RV(counts_archive) show what changes.
  idempotent:
    support: none
    description: Every run replaces the database and media.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Check an archive can be restored here
  edms.backup.archive_restore:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    archive: /home/lims/edms-staging/backups/edms_20260101T130029Z.zip
    verify_only: true
  register: restore_plan
"""

RETURN = r"""
archive:
  description: The archive restored.
  returned: always
  type: str
sha256:
  description: The archive's sha256.
  returned: when the archive was read
  type: str
proof:
  description:
    - Proof that this host verified this archive in full and it passed, for
      O(proof) (with RV(sha256) as O(archive_sha256)) of a later step of the
      same run, which then need not verify it again. Not returned for an
      encrypted archive, for a file others may write, or when the proof key
      cannot be used.
  returned: when the archive was verified in full and passed
  type: str
proof_not_made:
  description:
    - Why no RV(proof) was returned although the archive verified (it is
      encrypted, no private copy could be made, no proof key can be used, or
      O(archive_sha256) was given, as only a first verification makes one).
  returned: when the archive verified and no proof was made
  type: str
proof_not_used:
  description: Why a O(proof) given was not used (the archive was then verified in full).
  returned: when a proof was given with O(archive_sha256) and did not spare the verification
  type: str
stage:
  description:
    - Where the run ended; on failure where it failed (C(verify), C(media_stage),
      C(media_swap), C(database), C(database_<load stage>), C(committed)).
  returned: always
  type: str
plan:
  description: What a real run does.
  returned: when the checks passed
  type: list
  elements: str
counts_before:
  description: Rows per model in the live database before the restore.
  returned: when the checks passed
  type: dict
counts_archive:
  description: Objects per model in the archive.
  returned: when the checks passed
  type: dict
counts:
  description: Rows per model and m2m table after the load; equal to the archive's.
  returned: success
  type: dict
migration_differences:
  description: Differences between the archive's migrations and the live database's.
  returned: when compared
  type: list
  elements: str
token:
  description: Names this run's work directory in the media root.
  returned: when something changed
  type: str
media_previous:
  description: Where the previous media are kept until the run ends.
  returned: when something changed
  type: str
media_put_back:
  description: After a failure, what happened to the media.
  returned: on failure after the media were touched
  type: str
media_live:
  description:
    - Which media are live, C(previous), C(archive) or C(unknown) (the
      Docker engine was lost during the swap or the put-back).
    - On a failure, with RV(token), what a rollback starts from.
  returned: when something changed
  type: str
database_load:
  description:
    - What the load did to the database, C(not started), C(rolled back),
      C(committed) or C(unknown) (the Docker engine was lost while it ran,
      so it may still commit in the backend container).
  returned: when something changed
  type: str
verification:
  description:
    - The archive's verification (ok, problems); with C(proven) when a
      O(proof) that holds spared verifying it again.
  returned: when the archive was read
  type: dict
load:
  description: The load's report (objects, counts, seconds, peak_rss_kb, streamed).
  returned: success
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

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_restore import (
    RestoreError,
    restore,
)
from ansible_collections.edms.backup.plugins.module_utils._module import (
    on_deployment,
    options,
    run_module,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import DOCKER


def argument_spec():
    return options(
        "project",
        "decryption",
        "media_dir",
        "maintenance",
        archive=dict(type="path", required=True),
        archive_sha256=dict(type="str"),
        proof=dict(type="str"),
        allow_migration_mismatch=dict(type="bool", default=False),
        verify_only=dict(type="bool", default=False),
        reset_models=dict(type="list", elements="str"),
        token=dict(type="str", no_log=False),
        encrypt_to=dict(type="list", elements="str", default=[]),
    )


def main():
    run_module(argument_spec(), on_deployment(restore), libraries=[DOCKER], errors=RestoreError)


if __name__ == "__main__":
    main()
