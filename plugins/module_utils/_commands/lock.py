# Private to the edms.backup collection: no compatibility promise to anyone else.
"""One operation at a time per Compose project: a lock file with its holder.

The lock is ``<project_dir>/.edms-backup.lock``, created with O_EXCL so two
runs can never both take it. It names the owner (who asked: an AWX job, a
user), the operation, the host, a holder process and the start time. An
Ansible run has no process that lives on the managed host from one task to
the next, so taking the lock starts one: a detached ``sleep`` for at most
``max_hold`` seconds, whose pid the lock records. Releasing the lock ends it.
If the run dies, the holder outlives it until ``max_hold`` at most, so the
lock stays held (the safe side); once the holder is gone, the lock is stale:
it is reported with how to clear it, never broken silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import utc_iso

LOCK_NAME = ".edms-backup.lock"


class LockError(ModuleFailure):
    """The lock cannot be taken or released."""


def lock_path(project_dir):
    return os.path.join(project_dir, LOCK_NAME)


def read_lock(path):
    """The lock's content, None when there is no lock."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {"unreadable": text[:200]}
    return data if isinstance(data, dict) else {"unreadable": text[:200]}


def holder_alive(info):
    """True or False for a holder on this host; None when it cannot be told here."""
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return None
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _is_holder(info["pid"], info.get("token"))


def _is_holder(pid, token):
    """Whether pid is still this lock's holder: not ended (a zombie waiting to be
    reaped counts as ended), and not a new process that reuses the pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        state = ""
    if state in ("Z", "X"):
        return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot look: assume it is, the safe side
    return ("EDMS_BACKUP_LOCK=" + str(token)).encode() in environ


def describe(info, path):
    if "unreadable" in info:
        return f"the lock {path} cannot be read ({info['unreadable']!r})"
    return "{} holds {} for {} since {} (holder pid {} on {})".format(
        info.get("owner", "?"),
        path,
        info.get("operation", "?"),
        info.get("started_at", "?"),
        info.get("pid", "?"),
        info.get("host", "?"),
    )


def status(project_dir):
    path = lock_path(project_dir)
    info = read_lock(path)
    if info is None:
        return {"path": path, "locked": False, "holder": None, "stale": False}
    alive = holder_alive(info) if "unreadable" not in info else None
    return {"path": path, "locked": True, "holder": info, "stale": alive is False}


def acquire(project_dir, owner, operation, max_hold, now=None):
    """Take the lock; return its content (with the token that releases it)."""
    if not os.path.isdir(project_dir):
        raise LockError(f"project directory {project_dir} does not exist")
    path = lock_path(project_dir)
    token = secrets.token_hex(16)
    info = {
        "owner": owner,
        "operation": operation,
        "host": socket.gethostname(),
        "started_at": utc_iso(now or datetime.now(timezone.utc)),
        "token": token,
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise refusal(path) from None
    try:
        holder = subprocess.Popen(
            ["sleep", str(int(max_hold))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EDMS_BACKUP_LOCK": token},
        )
        info["pid"] = holder.pid
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(path)
        raise
    return dict(info, path=path)


def refusal(path):
    info = read_lock(path) or {}
    text = describe(info, path)
    alive = holder_alive(info) if "unreadable" not in info else None
    if alive is False:
        return LockError(
            f"stale lock: {text}, and that process is gone. If no backup or restore of "
            f"this project is running, remove the lock: rm {path}",
            holder=info,
            stale=True,
        )
    if alive is None:
        return LockError(
            f"locked: {text}. Its holder cannot be checked from here; if that "
            f"operation has ended, remove the lock: rm {path}",
            holder=info,
            stale=None,
        )
    return LockError(
        f"another operation is running: {text}. Wait for it to end.",
        holder=info,
        stale=False,
    )


def release(project_dir, token, check_mode=False):
    """Remove the lock if token is its own; end its holder. Check mode: only say."""
    path = lock_path(project_dir)
    info = read_lock(path)
    if info is None:
        return False
    if info.get("token") != token:
        raise LockError(f"not releasing: {describe(info, path)}, not this run", holder=info)
    if check_mode:
        return True
    if holder_alive(info):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info["pid"], signal.SIGTERM)
    os.unlink(path)
    return True
