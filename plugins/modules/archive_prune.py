#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: archive_prune
short_description: Delete old backup archives by retention rules
version_added: 0.1.0
description:
  - Keeps the newest O(keep_last) archives, the newest archive of each of the
    last O(keep_daily) days that have one and of each of the last
    O(keep_weekly) ISO weeks that have one, days and weeks counted in
    O(display_timezone); deletes the other archives of this collection and
    their status files.
  - Never deletes the newest verified archive, nor an archive labelled as a
    safety backup (O(safety_labels)) younger than O(safety_min_age_days).
    The newest verified archive is believed only once its sha256, computed
    again, is the one recorded when it was verified; one that does not
    confirm counts as not verified (RV(not_confirmed), and a warning), and
    the next verified archive is kept in its place.
  - An archive that cannot be read is not verified and is pruned like any
    other; it never stops the prune.
  - Removes the collection's own interrupted partial files in O(backup_dir)
    (an archive, its pg_dump, a status file or the catalogue page left
    half-written, for example by a killed run) once they are more than an
    hour old; only regular files named as the collection names them (a link
    is neither followed nor removed).
  - The EDMS's own backups in the same directory are never deleted.
extends_documentation_fragment:
  - edms.backup.backup_dir
options:
  keep_last:
    description: Keep the newest N archives.
    type: int
    default: 7
  keep_daily:
    description: Keep the newest archive of each of the last N days that have one.
    type: int
    default: 7
  keep_weekly:
    description: Keep the newest archive of each of the last N ISO weeks that have one.
    type: int
    default: 4
  safety_labels:
    description: Labels of safety backups.
    type: list
    elements: str
    default: [pre-restore safety]
  safety_min_age_days:
    description: Safety backups younger than this many days are kept.
    type: int
    default: 30
  protect:
    description:
      - Archives never deleted whatever the counts say (at a copy
        destination, the copy just made).
    type: list
    elements: str
    default: []
  copies_of:
    description:
      - At a copy destination (the role M(edms.backup.copy)), the inventory
        name of the host whose copies are pruned. Only archives whose status
        file records them as copies from that host (M(edms.backup.archive_copy))
        are pruned; every other archive there is listed in RV(not_pruned) and
        left as it is.
    type: str
attributes:
  check_mode:
    support: full
    description: Lists what would be deleted or removed and deletes nothing.
  diff_mode:
    support: none
    description: The result lists what was deleted and what was kept, with reasons.
  idempotent:
    support: full
    description: A second run with the same rules deletes nothing more.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Keep a week of dailies and a month of weeklies
  edms.backup.archive_prune:
    backup_dir: /home/lims/edms-staging/backups
    display_timezone: Asia/Singapore
    keep_last: 3
    keep_daily: 7
    keep_weekly: 4
"""

RETURN = r"""
deleted:
  description: Archives deleted (in check mode, that would be deleted).
  returned: always
  type: list
  elements: str
keep:
  description: Archives kept, each with the reasons it is kept.
  returned: always
  type: list
  elements: dict
newest_verified:
  description: Name of the newest verified archive, which is never deleted.
  returned: always
  type: str
not_pruned:
  description:
    - Archives in the directory that are not this collection's (never
      deleted), with O(copies_of) the archives that are not copies from that
      host, and archives whose name is not UTF-8 (shown with the bytes as
      C(\xNN)), which are not pruned until they are renamed.
  returned: always
  type: list
  elements: str
not_confirmed:
  description:
    - Archives recorded as verified whose sha256 is no longer the one
      recorded (or cannot be read), with the C(problem); they count as not
      verified.
  returned: always
  type: list
  elements: dict
  sample:
    - name: edms_20260102T130029Z.zip
      problem: its sha256 is now 5e8c..., not the 0000... recorded when it was verified
partials_removed:
  description: Interrupted partial files removed (in check mode, that would be removed).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_prune import (
    PruneError,
    prune,
)
from ansible_collections.edms.backup.plugins.module_utils._module import options, run_module


def argument_spec():
    return options(
        "backup_dir",
        keep_last=dict(type="int", default=7),
        keep_daily=dict(type="int", default=7),
        keep_weekly=dict(type="int", default=4),
        safety_labels=dict(type="list", elements="str", default=["pre-restore safety"]),
        safety_min_age_days=dict(type="int", default=30),
        copies_of=dict(type="str"),
        protect=dict(type="list", elements="str", default=[]),
    )


def main():
    run_module(
        argument_spec(),
        lambda module: prune(module.params, check_mode=module.check_mode),
        errors=PruneError,
    )


if __name__ == "__main__":
    main()
