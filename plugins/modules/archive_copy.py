#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: archive_copy
short_description: Put a copy of a backup archive in place once it verifies there, and record it
version_added: 0.2.0
description:
  - The verifying half of an off-host copy; the role M(edms.backup.copy)
    (C(playbooks/copy.yml)) moves the bytes and calls this module where the
    copy lands and beside the source archive.
  - With O(state=present), runs where the copy lands (the controller, or
    another host, through C(delegate_to)). A copy received in
    O(backup_dir) as C(.<name>.partial) is verified in full (the checks of
    M(edms.backup.archive_verify), in one streaming pass) and its sha256
    must equal O(sha256), the source's; only then is it renamed to O(name),
    mode 0600, with a status file that records its verification and which
    archive of which host it copies. A received copy that does not verify is
    removed and the task fails, naming the destination and the reason.
  - A copy already in place is checked against O(sha256) (computed again,
    streaming). One that no longer matches is removed with its status file
    and the task fails; the next run copies afresh. A file of that name that
    is not recorded as this collection's copy of this very archive (same
    host, name and sha256) is never changed, and the task fails.
  - With neither a copy in place nor one received, returns RV(present=false)
    and changes nothing.
  - With O(state=recorded), runs on the backed-up host and records, in the
    archive's status file, under C(copies), that the copy at O(destination)
    verified; M(edms.backup.archive_info) and the catalogue page then list
    it. Refused when the archive's sha256 is no longer O(sha256).
  - No link is followed, and no name but the archive's own (and its
    C(.partial) and status file) is made or removed.
extends_documentation_fragment:
  - edms.backup.backup_dir
  - edms.backup.decryption
options:
  state:
    description:
      - V(present) where the copy lands; V(recorded) beside the source
        archive; V(forgotten) beside the source archive, once the
        destination pruned its copy (nothing to do when the archive is gone).
    type: str
    choices: [present, recorded, forgotten]
    default: present
  backup_dir:
    description:
      - With O(state=present), the destination's directory. When it does not
        exist, RV(present=false) and RV(directory=false), and nothing is made.
    required: false
  name:
    description:
      - The archive's file name, C(edms_YYYYMMDDTHHMMSSZ....zip). With
        O(state=present) the copy is O(backup_dir)/O(name).
    type: str
  sha256:
    description:
      - The sha256 of the source archive, which the copy must have
        (O(state=present), O(state=recorded)).
    type: str
  destination:
    description: The destination's name, as the inventory's C(edms_copy_destinations) gives it.
    type: str
    required: true
  source_host:
    description:
      - With O(state=present), the inventory name of the host whose archive
        this is; recorded with the copy.
    type: str
  source_path:
    description: With O(state=present), where the source archive is on that host.
    type: str
  brought:
    description:
      - With O(state=present), the copy is an archive brought back to its own
        host from a copy elsewhere (C(roles/copy/tasks/bring.yml)); its status
        file records C(brought_from), not C(copy_of), so that it is never
        pruned as a copy.
    type: bool
    default: false
  archive:
    description: With O(state=recorded) or O(state=forgotten), the source archive's path.
    type: path
  kind:
    description: With O(state=recorded), the destination's kind.
    type: str
    choices: [controller, host, s3]
  location:
    description: With O(state=recorded), where the copy is, as people read it (C(host:/path)).
    type: str
attributes:
  check_mode:
    support: full
    description: Checks a copy in place; says what it would install or record and changes nothing.
  diff_mode:
    support: none
    description: The result says whether a copy was put in place.
  idempotent:
    support: full
    description: A copy in place that verifies is left as it is.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: The copy received on the backup host verifies, then is put in place
  edms.backup.archive_copy:
    backup_dir: /srv/edms-copies/staging
    name: edms_20260101T130029Z.zip
    sha256: "{{ source_sha256 }}"
    destination: offsite
    source_host: staging
    source_path: /home/lims/edms-staging/edms-archives/edms_20260101T130029Z.zip
  delegate_to: backup-host

- name: Record the copy beside the source archive
  edms.backup.archive_copy:
    state: recorded
    archive: /home/lims/edms-staging/edms-archives/edms_20260101T130029Z.zip
    sha256: "{{ source_sha256 }}"
    destination: offsite
    kind: host
    location: backup-host:/srv/edms-copies/staging/edms_20260101T130029Z.zip
"""

RETURN = r"""
path:
  description: With O(state=present), where the copy is (or would be).
  returned: when O(state=present)
  type: str
present:
  description: With O(state=present), whether a verified copy is in place now.
  returned: when O(state=present)
  type: bool
copied:
  description: With O(state=present), whether this task put the copy in place.
  returned: when O(state=present)
  type: bool
directory:
  description: With O(state=present), whether O(backup_dir) exists.
  returned: when O(state=present)
  type: bool
destination:
  description: With O(state=present), O(destination) as given.
  returned: when O(state=present)
  type: str
sha256:
  description: With O(state=present), the sha256 of the copy in place, as read.
  returned: when O(state=present) and RV(present)
  type: str
copies:
  description:
    - With O(state=recorded) or O(state=forgotten), every recorded copy of
      the archive, by destination.
  returned: when O(state=recorded) or O(state=forgotten)
  type: dict
  sample:
    controller:
      kind: controller
      location: "controller:/srv/edms-copies/staging/edms_20260101T130029Z.zip"
      at: "2026-01-01T13:02:10.000000Z"
      sha256: 5e8c...
removed:
  description: Files removed because they did not verify.
  returned: on failure, when a copy was removed
  type: list
  elements: str
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_copy import (
    CopyError,
    copy,
)
from ansible_collections.edms.backup.plugins.module_utils._module import options, run_module


def argument_spec():
    spec = options(
        "backup_dir",
        "decryption",
        state=dict(type="str", choices=["present", "recorded", "forgotten"], default="present"),
        name=dict(type="str"),
        sha256=dict(type="str"),
        destination=dict(type="str", required=True),
        source_host=dict(type="str"),
        source_path=dict(type="str"),
        brought=dict(type="bool", default=False),
        archive=dict(type="path"),
        kind=dict(type="str", choices=["controller", "host", "s3"]),
        location=dict(type="str"),
    )
    spec["backup_dir"] = dict(spec["backup_dir"], required=False)
    return spec


def main():
    run_module(
        argument_spec(),
        lambda module: copy(module.params, check_mode=module.check_mode),
        errors=CopyError,
        required_if=[
            ("state", "present", ("backup_dir", "name", "source_host", "sha256")),
            ("state", "recorded", ("archive", "kind", "location", "sha256")),
            ("state", "forgotten", ("archive",)),
        ],
    )


if __name__ == "__main__":
    main()
