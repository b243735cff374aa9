#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: archive_info
short_description: List the backup archives in a backup directory
version_added: 0.1.0
description:
  - Lists the archives of this collection and the EDMS's own backups (a
    C(.zip) or a directory holding C(database_backup.json)) in O(backup_dir),
    newest first, each with its metadata, its creation time in UTC and in
    O(display_timezone), its size, counts per model, and its verification and
    rehearsal state as recorded beside it (C(passed), C(failed),
    C(unverified), C(stale) when the archive changed after it was verified,
    or C(unconfirmed) for a record without the archive's sha256, which is
    not believed).
  - Nothing in the directory is trusted. No link is followed, and an
    archive that cannot be read (damaged, a link, a name that is not UTF-8)
    is listed with C(unreadable) saying why and the state C(unreadable),
    never as verified. Only a directory that cannot be listed fails the
    task.
  - Also lists interrupted backups (hidden C(.partial) files), which are never
    archives.
options:
  query:
    description:
      - A JMESPath expression (U(https://jmespath.org)) evaluated over the
        result (the keys under RETURN); its answer is returned in RV(query),
        as command-line tools that take C(--query) do. For example
        C(archives[?verification.state=='passed'].name).
    type: str
requirements:
  - jmespath on the managed host, for O(query)
extends_documentation_fragment:
  - edms.backup.backup_dir
  - edms.backup.read_only
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: List the backups
  edms.backup.archive_info:
    backup_dir: /home/lims/edms-staging/backups
    display_timezone: Asia/Singapore
  register: edms_backups

- name: The names of the archives that failed verification
  edms.backup.archive_info:
    backup_dir: /home/lims/edms-staging/backups
    query: "archives[?verification.state=='failed'].name"
  register: edms_failed

- name: Show the newest verified one
  ansible.builtin.debug:
    msg: "{{ edms_backups.newest_verified.name | default('none') }}"
"""

RETURN = r"""
archives:
  description: The archives, newest first.
  returned: always
  type: list
  elements: dict
  sample:
    - name: edms_20260101T130029Z.zip
      path: /home/lims/edms-staging/backups/edms_20260101T130029Z.zip
      layout: edms.backup v1
      size: 246299
      created_at: "2026-01-01T13:00:29.512345Z"
      created_at_local: "2026-01-01T21:00:29.512345+08:00"
      label: manual
      counts: {"documents.document": 60}
      verification: {"state": "passed", "ok": true, "at": "2026-01-01T13:00:31.000000Z"}
newest:
  description: The newest archive, or null.
  returned: always
  type: dict
newest_verified:
  description:
    - The newest archive whose last verification passed and is current, or
      null; its sha256 is computed again and compared with the one recorded
      before it is named here.
  returned: always
  type: dict
partials:
  description: Interrupted backups (hidden partial files).
  returned: always
  type: list
  elements: str
query:
  description: The answer of O(query) over the other keys of the result.
  returned: when O(query) is given
  type: raw
  sample: [edms_20260101T130029Z.zip]
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_info import archive_info
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import CatalogueError
from ansible_collections.edms.backup.plugins.module_utils._module import options, run_module


def argument_spec():
    return options("backup_dir", query=dict(type="str"))


def main():
    run_module(argument_spec(), lambda module: archive_info(module.params), errors=CatalogueError)


if __name__ == "__main__":
    main()
