#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lock
short_description: One backup or restore operation at a time per Compose project
version_added: 0.1.0
description:
  - O(state=present) takes the lock C(<project_dir>/.edms-backup.lock) or
    fails, saying who holds it (owner, operation, host, holder pid, start), what
    it follows and how to see whether that still runs.
  - An Ansible run has no process that lasts on the managed host from task to
    task, so taking the lock starts a detached holder process whose pid the
    lock records. The holder lives as long as the run. It follows the run's
    anchor, found among the module's parent processes and recorded in the lock
    by pid and start time. With a local connection the anchor is the
    controller itself, the top-most C(ansible-playbook), C(ansible),
    C(ansible-pull) or C(ansible-runner) process. Over SSH it is the C(sshd)
    process of the controller's connection, which the controller keeps open
    from task to task (ControlPersist) and which ends ControlPersist seconds
    after the controller's last task on the host (when the controller dies,
    or leaves the host idle longer than that; the collection's playbooks that
    take the lock run one host at a time). The holder ends within a few seconds after its
    anchor ends (a pid reused by another process does not count), and after
    O(max_hold) seconds at the latest.
  - An SSH connection opened just before the task that takes the lock may be
    one the controller opens for each task, which ends with the task. It is
    followed only when the controller keeps it, that is when the
    connection's ssh arguments set ControlMaster with ControlPersist (as
    Ansible's default C(ssh_args) do). The collection's action plugin reads
    them on the controller.
  - If no anchor is found (another connection type, or an SSH connection
    opened for this one task because the controller does not keep
    connections), the holder lives O(max_hold) seconds and the result warns
    about it.
  - A lock whose holder is gone is stale. It is taken over only when that is
    provably safe, that is when it was taken on this host and both its holder
    and the anchor it recorded are gone. Then the task succeeds, warns, and
    returns the dead run's lock in RV(taken_over); what that run left behind
    (a restore's media work directory, an interrupted load) is checked by the
    steps that follow. Any other stale lock (its run still there, no anchor
    recorded, taken on another host, unreadable) is refused with the command
    that clears it; a stale lock is never broken silently.
  - A run that stops services or replaces data records its progress in its
    lock with O(journal) and the RV(token) it holds. If that run dies, its
    lock is never taken over by another operation; every later run is refused,
    changing nothing, with what the dead run recorded and the recovery to run
    (C(playbooks/recover.yml)). Only O(operation=recover) takes such a lock
    over; it inherits the journal and returns it in RV(taken_over).
  - O(state=absent) releases a lock taken with the RV(token) this module
    returned, and ends its holder; another run's lock is refused.
  - O(state=cleared) clears a lock that no run will clear, on the operator's
    word (C(playbooks/unlock.yml) gates it with a confirmation). It refuses,
    changing nothing, a lock whose run is still there, with or without its
    holder (the lock ends with its run), a lock it cannot read (it may hold
    a journal), and a lock with a journal (only
    C(playbooks/recover.yml) clears that one). Otherwise it appends a record
    of the clearing to C(<project_dir>/.edms-backup.lock-history) (one JSON
    line with C(event), C(at), C(by) (O(owner)), C(reason), C(host),
    C(inventory_host), C(holder) and C(lock), the lock's content without its
    token), ends the holder when that process provably is the holder (the
    lock's token in its environment), and removes the lock. The history is
    written with O_APPEND, mode 0600, never through a symbolic link nor into
    another user's file; such a history is refused.
  - Every take-over of a dead run's lock is recorded in the same history
    (C(event) V(taken_over)).
  - Every refusal names the holder (owner, operation, host, pid), since when
    it holds the lock, until when, and the command that clears it.
options:
  project_dir:
    description: Directory of the Compose project on the managed host.
    type: path
    required: true
  state:
    description:
      - Take (V(present)) or release (V(absent)) the lock, or clear (V(cleared))
        a lock no run will clear, recorded in the lock history.
    type: str
    choices: [present, absent, cleared]
    default: present
  owner:
    description:
      - Who takes the lock, for the message others see (an AWX job, a user).
      - With O(state=cleared), who clears it, for the lock history.
    type: str
    default: ansible
  operation:
    description:
      - What the lock is taken for (backup, restore, rehearsal, rollback).
      - V(recover) is the recovery of a run that died in the middle of a
        restore or rollback, and the only operation that takes its lock over.
    type: str
    default: operation
  journal:
    description:
      - With O(state=present) and O(token), the progress of the run that holds
        the lock, recorded in it in place of any earlier record.
      - C(stage) is one of V(stopping), V(safety), V(replacing),
        V(rolling_back), V(starting), V(restarting); C(operation), C(archive), C(services)
        (those stopped), C(safety) (the safety backup) and C(safety_sha256),
        C(token) (the restore token) say what a recovery needs.
    type: dict
  host_name:
    description:
      - The managed host's name in the inventory, for the commands a refusal
        prints (C(-e edms_restore_confirm=...), C(-e edms_unlock_confirm=...));
        with O(state=cleared) it is recorded in the lock history too.
    type: str
  take_over_stale:
    description:
      - With O(operation=recover) only, also take over a lock whose run cannot
        be proven gone from this host (its holder gone and no run recorded,
        or the lock taken on another host), on the operator's word that
        nothing of this project runs.
    type: bool
    default: false
  max_hold:
    description:
      - Seconds after which the holder process ends on its own, whether or not
        its run is still there. It bounds a lock whose run cannot be followed
        (no anchor), and the longest run the lock protects, so it is far
        longer than any backup or restore should take. A run that lasts
        longer loses its lock; a later run finds it stale but still running
        and is refused.
    type: int
    default: 172800
  reason:
    description:
      - With O(state=cleared), why the lock is cleared, recorded in the lock history.
    type: str
  fingerprint:
    description:
      - With O(state=cleared), the RV(fingerprint) of the lock as a check of it
        showed it. The lock is cleared only if it is still that one; a lock
        taken or changed since is refused, changing nothing.
    type: str
  token:
    description:
      - With O(state=absent), the RV(token) returned when the lock was taken.
      - With O(state=present) and O(journal), the same token names the lock to record in.
    type: str
attributes:
  check_mode:
    support: full
    description: >-
      Says whether the lock could be taken, taken over, released or cleared
      (and what it would clear); changes nothing.
  diff_mode:
    support: none
    description: The lock file is not shown.
  idempotent:
    support: partial
    description: >-
      Releasing or clearing twice is a no-op; taking a held lock fails by design.
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

- name: Say whose dead run's lock was taken over
  ansible.builtin.debug:
    msg: >-
      The lock of {{ edms_lock.taken_over.owner }}
      ({{ edms_lock.taken_over.operation }}, started
      {{ edms_lock.taken_over.started_at }}) was left by a run that died.
  when: edms_lock.taken_over is defined

- name: Release it
  edms.backup.lock:
    project_dir: /home/lims/edms-staging
    state: absent
    token: "{{ edms_lock.token }}"

- name: See what clearing the lock would clear
  edms.backup.lock:
    project_dir: /home/lims/edms-staging
    state: cleared
    owner: jdoe
  check_mode: true
  register: edms_found

- name: Clear that lock, and that one only, recorded
  edms.backup.lock:
    project_dir: /home/lims/edms-staging
    state: cleared
    owner: jdoe
    reason: the controller's VM was restored from a snapshot
    fingerprint: "{{ edms_found.fingerprint }}"
  when: edms_found.cleared is not none
"""

RETURN = r"""
token:
  description: With O(state=present), what releases this lock.
  returned: when the lock was taken
  type: str
holder:
  description:
    - The lock's content (owner, operation, host, pid, started_at, expires_at,
      anchor).
    - C(anchor) is the process the holder follows (pid, start, kind, command),
      null when it follows none.
  returned: when a lock exists
  type: dict
taken_over:
  description:
    - The stale lock of a dead run that this task took over (owner,
      operation, host, pid, started_at, anchor, and C(journal) when that run
      recorded its progress).
  returned: when a stale lock was taken over
  type: dict
stale:
  description: Whether the lock that stopped this run has lost its holder process.
  returned: on failure to take the lock
  type: bool
unfinished:
  description: The journal of the dead run whose lock stopped this run.
  returned: on failure, when the lock holds the journal of a run that died
  type: dict
path:
  description: The lock file.
  returned: always
  type: str
cleared:
  description:
    - With O(state=cleared), the lock cleared (or, in check mode, that would
      be), without its token; null when there was no lock.
  returned: with O(state=cleared)
  type: dict
fingerprint:
  description:
    - With O(state=cleared), what names that lock's content, for O(fingerprint);
      null when there was no lock.
  returned: with O(state=cleared)
  type: str
holder_state:
  description:
    - With O(state=cleared), the cleared lock's holder process, V(live) (it
      provably was the holder), V(gone) or V(unknown) (it cannot be checked
      from here).
  returned: with O(state=cleared), when there was a lock
  type: str
holder_ended:
  description: With O(state=cleared), whether the holder process was ended.
  returned: with O(state=cleared)
  type: bool
history:
  description: The lock history file, where clearings and take-overs are recorded.
  returned: with O(state=cleared)
  type: str
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.lock import (
    LockError,
    acquire,
    clear,
    lock_path,
    record,
    release,
)
from ansible_collections.edms.backup.plugins.module_utils._module import run_module


def argument_spec():
    return dict(
        project_dir=dict(type="path", required=True),
        state=dict(type="str", choices=["present", "absent", "cleared"], default="present"),
        owner=dict(type="str", default="ansible"),
        operation=dict(type="str", default="operation"),
        max_hold=dict(type="int", default=172800),
        token=dict(type="str", no_log=True),
        journal=dict(type="dict"),
        take_over_stale=dict(type="bool", default=False),
        host_name=dict(type="str"),
        reason=dict(type="str"),
        fingerprint=dict(type="str"),
    )


def take_or_release(module):
    params = module.params
    if params["state"] == "cleared":
        found = clear(
            params["project_dir"],
            params["owner"],
            reason=params["reason"],
            host_name=params["host_name"],
            expected=params["fingerprint"],
            check_mode=module.check_mode,
        )
        found["holder_state"] = found.pop("holder")
        return dict(found, changed=found["cleared"] is not None)
    if params["state"] == "present" and params["journal"] is not None:
        if not params["token"]:
            raise LockError("journal is recorded in the lock this run holds: give its token")
        holder = record(
            params["project_dir"], params["token"], params["journal"], module.check_mode
        )
        return dict(changed=True, path=lock_path(params["project_dir"]), holder=holder)
    if params["state"] == "present":
        info = acquire(
            params["project_dir"],
            params["owner"],
            params["operation"],
            params["max_hold"],
            check_mode=module.check_mode,
            take_over_stale=params["take_over_stale"],
            host_name=params["host_name"],
        )
        result = dict(changed=True, path=info.pop("path"), warnings=info.pop("warnings"))
        if "taken_over" in info:
            result["taken_over"] = info.pop("taken_over")
        if "token" in info:
            result["token"] = info.pop("token")
        result["holder"] = info
        return result
    released = release(params["project_dir"], params["token"], module.check_mode)
    return dict(changed=released, path=lock_path(params["project_dir"]))


def command(module):
    path = lock_path(module.params["project_dir"])
    try:
        return take_or_release(module)
    except LockError as exc:
        # A failure names the lock file and its holder, never the holder's token.
        exc.partial = dict(exc.partial, path=path)
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
