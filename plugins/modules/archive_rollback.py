#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: archive_rollback
short_description: Put a safety backup back (destructive), the fast and exact way
version_added: 0.1.0
description:
  - B(Destructive.) Puts the database and media of O(archive), normally the
    safety backup a restore took, back in place, and proves it.
  - The database from the archive's C(database.pgdump) with C(pg_restore
    --single-transaction --clean) in the db container (one transaction, all
    of it or nothing); from the fixture through the Django ORM in one
    transaction when the archive has no pg_dump or O(method=fixture).
  - The media from the work directory of the failed restore named by
    O(token), when it still holds the previous media (renames only, exact);
    otherwise from the archive, swapped in all-or-nothing, unless the live
    media already equal the archive's.
  - Then compares the count of every model and m2m table, and every media
    file's sha256, with the archive's; a difference fails the task. The
    media are hashed, and Django names the tables to count, while the
    database is put back; the counts are then one SQL statement in the db
    container. The task fails when the application reads another database
    than the db service's own.
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
        (the roles give C(edms_encrypt_to)). The rollback's own safety backup
        is encrypted to them and a rollback that fails is put back from it,
        so when this is set C(decryption_key) must open one of them, or the
        rollback is refused before anything changes.
    type: list
    elements: str
    default: []
  archive:
    description: The archive to put back (a safety backup), on the managed host.
    type: path
    required: true
  token:
    description:
      - RV(edms.backup.archive_restore#module:token) of the restore being
        rolled back, 12 lower-case hexadecimal digits; anything else fails the
        task before anything changes. Empty is the same as not given.
      - A directory of the token's name in the media root that the restore
        did not make (it lacks the restore's marker) fails the task before
        anything changes; its content is never taken for the previous media.
    type: str
  copy_token:
    description:
      - Names the work directory in which the media are copied from the
        archive when they are (12 lower-case hexadecimal digits; anything else
        fails the task before anything changes). The caller records it before
        the task runs, so that if the run dies during the copy, the next
        rollback given the same O(copy_token) removes that work directory
        (what it holds was live before the copy, which the caller's safety
        backup holds) before it puts the media back. Not given, a new one is
        made; a run that dies during the copy then leaves a work directory
        that later restores refuse to start beside.
    type: str
  archive_sha256:
    description:
      - The archive's sha256 as a run that verified it returned it
        (RV(edms.backup.archive_create#module:sha256) of the safety backup, or
        RV(sha256) of a check-mode run of this module). It pins the archive
        and never replaces its verification, which runs all the same unless
        O(proof) holds for it; the file read must also have this sha256, or the task fails before
        anything changes. Letter case and surrounding blanks do not matter;
        anything but 64 hexadecimal digits is refused.
      - The file that was verified and whose sha256 was taken is the one read
        for the rest of the task, even if another file is moved to its name
        meanwhile.
    type: str
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
  method:
    description:
      - How the database is put back. V(auto) takes the pg_dump when the
        archive has one, else the fixture.
    type: str
    choices: [auto, pgdump, fixture]
    default: auto
attributes:
  check_mode:
    support: full
    description: Verifies the archive and returns the plan; changes nothing.
  diff_mode:
    support: none
    description: The result says what was put back.
  idempotent:
    support: none
    description: Every run rewrites the database.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Put the safety backup back
  edms.backup.archive_rollback:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    archive: /home/lims/edms-staging/backups/edms_20260101T130029Z.zip
"""

RETURN = r"""
archive:
  description: The archive put back.
  returned: always
  type: str
sha256:
  description: The archive's sha256, for O(archive_sha256) of a later run.
  returned: when the archive verified
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
verification:
  description:
    - The archive's verification, C(ok) and C(problems); with C(proven) when
      a O(proof) that holds spared verifying it again.
  returned: when the archive was read
  type: dict
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
database_method:
  description: C(pgdump) or C(fixture).
  returned: when the archive verified
  type: str
database:
  description: C(restored), or what failed.
  returned: when tried
  type: str
media:
  description: What was done with the media.
  returned: success
  type: str
counts:
  description: Rows per model and m2m table afterwards.
  returned: when counted
  type: dict
count_differences:
  description: Differences against the archive's counts (empty on success).
  returned: when counted
  type: list
  elements: dict
media_differences:
  description: Differences against the archive's media (empty on success).
  returned: when compared
  type: list
  elements: str
verified:
  description: Counts and media equal the archive's.
  returned: success
  type: bool
plan:
  description: What a real run does.
  returned: in check mode
  type: list
  elements: str
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

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_rollback import (
    RollbackError,
    rollback,
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
        token=dict(type="str", no_log=False),
        copy_token=dict(type="str", no_log=False),
        archive_sha256=dict(type="str"),
        proof=dict(type="str"),
        method=dict(type="str", choices=["auto", "pgdump", "fixture"], default="auto"),
        reset_models=dict(type="list", elements="str"),
        encrypt_to=dict(type="list", elements="str", default=[]),
    )


def main():
    run_module(argument_spec(), on_deployment(rollback), libraries=[DOCKER], errors=RollbackError)


if __name__ == "__main__":
    main()
