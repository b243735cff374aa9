#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: archive_verify
short_description: Verify a backup archive without a database
version_added: 0.1.0
description:
  - Checks an archive of this collection (format version 1) or the EDMS's own
    layout (a C(.zip) or a directory with C(database_backup.json),
    C(metadata.json) and C(media/)) without restoring it; ZIP CRCs; the sha256
    and size of every member against the metadata; the fixture parses
    (streamed, memory independent of its size); every object has a model, a
    primary key and fields; counts per model equal the metadata; no duplicate
    primary keys; every foreign key and m2m reference resolves in the fixture
    or to a model the target recreates; the required models are present; every
    file field has its file under C(media/); no member escapes the extraction
    root, no links, no ZIP bomb.
  - What a foreign C(metadata.json) cannot support is reported as
    C(not_checkable) with the reason, never as passed.
  - Fails when any check fails, with one line per problem.
  - Records the result beside the archive (C(<archive>.status.json)) so that
    M(edms.backup.archive_info) shows the verification state.
extends_documentation_fragment:
  - edms.backup.decryption
  - edms.backup.backup_dir
options:
  encrypt_to:
    description:
      - Age recipients (C(age1...)) the key given must also open; when it
        opens none of them the archive is not verified and nothing is
        recorded. The recovery (C(playbooks/recover.yml)) gives the
        inventory's C(edms_encrypt_to) before its gate, since the safety
        backup it takes is encrypted to them.
    type: list
    elements: str
    default: []
  archive:
    description:
      - Path of the archive on the managed host. When not set, the newest
        archive in O(backup_dir) is verified.
    type: path
  backup_dir:
    required: false
  required_models:
    description:
      - Models that must have objects. Defaults to what the archive's metadata
        lists.
    type: list
    elements: str
  record:
    description:
      - Write the result beside the archive.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Verifies in check mode too, but records nothing.
  diff_mode:
    support: none
    description: Only the record beside the archive changes.
  idempotent:
    support: full
    description: The same archive gives the same result.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Verify the newest archive
  edms.backup.archive_verify:
    backup_dir: /home/lims/edms-staging/backups

- name: Verify a given archive
  edms.backup.archive_verify:
    archive: /home/lims/edms-staging/backups/edms_20260101T130029Z.zip
"""

RETURN = r"""
archive:
  description: The archive verified.
  returned: always
  type: str
layout:
  description: C(edms.backup v1), C(edms-native zip) or C(edms-native directory).
  returned: always
  type: str
ok:
  description: True when no check failed.
  returned: always
  type: bool
checks:
  description:
    - Each check with C(name), C(status) (C(pass), C(fail), C(not_checkable)),
      C(detail) and C(numbers).
  returned: always
  type: list
  elements: dict
problems:
  description: One line per failed check.
  returned: always
  type: list
  elements: str
recorded:
  description: Whether the result was written beside the archive.
  returned: always
  type: bool
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_verify import (
    VerifyError,
    verify,
)
from ansible_collections.edms.backup.plugins.module_utils._module import options, run_module


def argument_spec():
    spec = options(
        "backup_dir",
        "decryption",
        archive=dict(type="path"),
        required_models=dict(type="list", elements="str"),
        record=dict(type="bool", default=True),
        encrypt_to=dict(type="list", elements="str", default=[]),
    )
    spec["backup_dir"]["required"] = False
    return spec


def command(module):
    params = dict(module.params)
    params["record"] = params["record"] and not module.check_mode
    result = verify(params)
    return dict(result, changed=result["recorded"])


def main():
    run_module(
        argument_spec(), command, errors=VerifyError, required_one_of=[("archive", "backup_dir")]
    )


if __name__ == "__main__":
    main()
