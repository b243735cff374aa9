#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: archive_catalogue
short_description: Write the catalogue page (index.html) of a backup directory
version_added: 0.1.0
description:
  - Writes one self-contained HTML page listing every archive in
    O(backup_dir) as M(edms.backup.archive_info) lists them, newest first;
    its name, layout and label; its creation time in UTC and in
    O(display_timezone); its size; its verification state (C(passed),
    C(failed), C(stale), C(unverified), C(unconfirmed) for a record without
    the archive's sha256, which is not believed, or C(UNREADABLE) with the
    reason); its rehearsal state (C(last rehearsed) ok or failed, when, how
    long); and its objects per model.
  - Draws a chart of archive sizes over time and one chart per model of its
    objects over time, as inline SVG.
  - Marks each archive whose counts fell against the previous verified
    archive (the newest earlier archive whose verification passed and is
    current) with a red C(COUNTS FELL) badge naming the models, their counts
    before and after, and the archive compared with; the row gets the class
    C(drop). A backup of an already damaged database verifies like any
    other; this mark is what tells it apart. The rule is the one
    M(edms.backup.archive_create) warns by (see O(count_drop_threshold)).
  - The page has no JavaScript and loads nothing from anywhere (inline CSS
    and SVG, a Content-Security-Policy that forbids the rest), so it opens
    from the disk of an offline machine. Every value is HTML-escaped.
  - The page holds no time of its own making, so the same directory gives
    the same page. It is written to a temporary file beside O(dest) and
    renamed into place (mode 0644) only when its content or mode differs.
  - A link at O(dest) is never followed, nor read into the diff; the page
    replaces the link, and a warning says so. Whatever else is at O(dest)
    is read for the comparison only if it is a regular file.
extends_documentation_fragment:
  - edms.backup.backup_dir
options:
  dest:
    description:
      - Where to write the page. Defaults to C(index.html) in O(backup_dir).
    type: path
  count_drop_threshold:
    description:
      - Fraction of a model's objects that may go between the previous
        verified archive and an archive before the archive is marked; a
        model fell when C(before - after > threshold * before) (V(0.5) marks
        when fewer than half are left; exactly at the threshold is no fall).
        A model that vanished always counts as fallen; a new model never.
      - V(0) turns the mark off. Must be at least 0 and below 1.
    type: float
    default: 0.5
attributes:
  check_mode:
    support: full
    description: Makes the page and compares it with the one on disk; writes nothing.
  diff_mode:
    support: full
    description: The page before and after, with the file mode in the headers.
  idempotent:
    support: full
    description: The same backup directory gives the same page, and no write.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Write the catalogue page of the backups
  edms.backup.archive_catalogue:
    backup_dir: /home/lims/edms-staging/backups
    display_timezone: Asia/Singapore
  register: edms_catalogue

- name: Name the archives whose counts fell
  ansible.builtin.debug:
    msg: "{{ edms_catalogue.flagged | map(attribute='archive') | list }}"
"""

RETURN = r"""
dest:
  description: Path of the page.
  returned: always
  type: str
  sample: /home/lims/edms-staging/backups/index.html
archives:
  description: Names of the archives on the page, newest first.
  returned: success
  type: list
  elements: str
flagged:
  description:
    - The archives marked C(COUNTS FELL), newest first, each with C(archive),
      C(previous) (the previous verified archive it was compared with) and
      C(drops) (as RV(edms.backup.archive_create#module:count_drops)).
  returned: success
  type: list
  elements: dict
  sample:
    - archive: edms_20260102T130029Z.zip
      previous: edms_20260101T130029Z.zip
      drops:
        - model: documents.document
          before: 60
          after: 5
          fell_by: 0.9167
          vanished: false
          previous: edms_20260101T130029Z.zip
size:
  description: Size of the page in bytes.
  returned: success
  type: int
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_catalogue import (
    PageError,
    write_catalogue,
)
from ansible_collections.edms.backup.plugins.module_utils._format.trend import DEFAULT_THRESHOLD
from ansible_collections.edms.backup.plugins.module_utils._module import options, run_module


def argument_spec():
    return options(
        "backup_dir",
        dest=dict(type="path"),
        count_drop_threshold=dict(type="float", default=DEFAULT_THRESHOLD),
    )


def command(module):
    return write_catalogue(module.params, check_mode=module.check_mode, diff_mode=module._diff)


def main():
    run_module(argument_spec(), command, errors=PageError)


if __name__ == "__main__":
    main()
