#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lock
short_description: One backup or restore operation at a time per Compose project
version_added: 0.1.0
description:
  - O(state=present) takes the lock C(<project_dir>/.edms-backup.lock) or
    fails, saying who holds it (owner, operation, host, holder pid, start).
    A lock whose holder process is gone is reported as stale with the command
    that clears it; it is never broken silently.
  - An Ansible run has no process that lasts on the managed host from task to
    task, so taking the lock starts a detached holder process (a C(sleep) of
    at most O(max_hold) seconds) whose pid the lock records. If the run dies,
    the lock stays held until the holder ends, the safe side.
  - O(state=absent) releases a lock taken with the RV(token) this module
    returned, and ends its holder; another run's lock is refused.
options:
  project_dir:
    description: Directory of the Compose project on the managed host.
    type: path
    required: true
  state:
    description: Take (V(present)) or release (V(absent)) the lock.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description: Who takes the lock, for the message others see (an AWX job, a user).
    type: str
    default: ansible
  operation:
    description: What the lock is taken for (backup, restore, rehearsal, rollback).
    type: str
    default: operation
  max_hold:
    description: Seconds after which the holder process ends on its own.
    type: int
    default: 21600
  token:
    description: With O(state=absent), the RV(token) returned when the lock was taken.
    type: str
attributes:
  check_mode:
    support: full
    description: Says whether the lock could be taken or released; changes nothing.
  diff_mode:
    support: none
    description: The lock file is not shown.
  idempotent:
    support: partial
    description: Releasing twice is a no-op; taking a held lock fails by design.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Lock the project for the restore
  edms.backup.lock:
    project_dir: /home/lims/edms-staging
    owner: "AWX job {{ awx_job_id | default('manual') }}"
    operation: restore
  register: edms_lock

- name: Release it
  edms.backup.lock:
    project_dir: /home/lims/edms-staging
    state: absent
    token: "{{ edms_lock.token }}"
"""

RETURN = r"""
token:
  description: With O(state=present), what releases this lock.
  returned: when the lock was taken
  type: str
holder:
  description: The lock's content (owner, operation, host, pid, started_at).
  returned: when a lock exists
  type: dict
stale:
  description: Whether the lock that stopped this run has lost its holder process.
  returned: on failure to take the lock
  type: bool
path:
  description: The lock file.
  returned: always
  type: str
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.lock import (
    LockError,
    acquire,
    refusal,
    release,
    status,
)
from ansible_collections.edms.backup.plugins.module_utils._module import run_module


def argument_spec():
    return dict(
        project_dir=dict(type="path", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        owner=dict(type="str", default="ansible"),
        operation=dict(type="str", default="operation"),
        max_hold=dict(type="int", default=21600),
        token=dict(type="str", no_log=True),
    )


def take_or_release(module, current):
    params = module.params
    if params["state"] == "present":
        if current["locked"]:
            raise refusal(current["path"])
        if module.check_mode:
            return dict(changed=True, path=current["path"])
        info = acquire(
            params["project_dir"], params["owner"], params["operation"], params["max_hold"]
        )
        token = info.pop("token")
        return dict(changed=True, token=token, holder=info, path=info.pop("path"))
    released = release(params["project_dir"], params["token"], module.check_mode)
    return dict(changed=released, path=current["path"])


def command(module):
    current = status(module.params["project_dir"])
    try:
        return take_or_release(module, current)
    except LockError as exc:
        # A failure names the lock file and its holder, never the holder's token.
        exc.partial = dict(exc.partial, path=current["path"])
        if isinstance(exc.partial.get("holder"), dict):
            exc.partial["holder"] = {k: v for k, v in exc.partial["holder"].items() if k != "token"}
        raise


def main():
    run_module(
        argument_spec(),
        command,
        errors=LockError,
        required_if=[("state", "absent", ("token",))],
    )


if __name__ == "__main__":
    main()
