# Private to the edms.backup collection: no compatibility promise to anyone else.
"""One operation at a time per Compose project: a lock file with its holder.

The lock is ``<project_dir>/.edms-backup.lock``, created with O_EXCL so two
runs can never both take it. It names the owner (who asked: an AWX job, a
user), the operation, the host, a holder process and the start time.

An Ansible run has no process that lives on the managed host from one task to
the next, so taking the lock starts one, the holder, whose pid the lock
records; releasing the lock ends it. The holder lives as long as the run:
taking the lock finds the run's anchor among the module's ancestors, the
process that lasts exactly as long as the run does on this host, and the
holder ends within a few seconds after the anchor ends:

- with a local connection, the controller itself: the top-most
  ``ansible-playbook`` (``ansible``, ``ansible-pull``, ``ansible-runner``)
  process; its workers are forked per task and end with their task;
- over SSH, the ``sshd`` process of the controller's connection, which the
  controller keeps open from task to task (ControlPersist) and which ends
  ControlPersist seconds after the controller's last task on the host: when
  the controller dies, or when it leaves the host idle longer than that (the
  playbooks that take the lock run one host at a time, serial 1, so that no
  host waits for the others).

An SSH connection opened just before the task that takes the lock is the
run's only when the controller keeps it (ControlMaster with ControlPersist in
its ssh arguments, which the lock's action plugin reads on the controller and
passes in CONNECTION_KEPT_VARIABLE); otherwise it may end with the task.

The anchor is recorded by pid and start time (a pid reused by another process
does not keep the lock). Without an anchor (another connection type, or an SSH
connection opened for this one task, which would end with it) the holder lives
``max_hold`` seconds and the result says so. ``max_hold`` bounds every holder:
a run that lasts longer loses its lock.

A lock whose holder is gone is stale. It is taken over, with the dead run named
in the result, only when that is provably safe: the lock was taken on this host,
its holder is gone and the anchor it recorded is gone too. Any other stale lock
(no anchor recorded, its run still there, another host, unreadable) is refused
with the command that clears it; it is never broken silently.

A run that stops services or replaces data records its progress in its lock
(``journal``: the stage, the services it stopped, its safety backup, its
restore token). If it dies there, its lock is not taken over by any other
operation: every later run is refused, changing nothing, with what the dead
run left and the recovery to run (playbooks/recover.yml), which alone takes
such a lock over, inherits the journal and finishes or undoes the dead run.

Every refusal names the holder (owner, operation, host, pid), since when and
until when it holds, and what clears it. A lock no run will clear is cleared
with playbooks/unlock.yml (clear()), never by hand: it refuses a lock whose
run is still there, a lock it cannot read, and a lock with a journal (that is
recover.yml's); otherwise it ends the holder if that process is provably still
there, removes the lock and appends a record of the clearing (who, when, why,
the lock without its token) to ``.edms-backup.lock-history`` beside the lock.
Every take-over of a dead run's lock is recorded there too.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import inspect
import json
import os
import secrets
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._platform import lock_holder
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import utc_iso

LOCK_NAME = ".edms-backup.lock"
# The programs whose process is the run itself when the connection is local.
CONTROLLERS = ("ansible-playbook", "ansible", "ansible-pull", "ansible-runner")
# How often the holder looks at its anchor, in seconds.
POLL_SECONDS = 2.0
# The operation that alone takes over the lock of a run that died in the middle
# of a restore or rollback (its journal), and what the refusal tells to run.
RECOVER = "recover"
# Beside the lock: one JSON line per clearing or take-over of a lock.
HISTORY_NAME = ".edms-backup.lock-history"


def _playbook_command(playbook, confirm, host_name, extra, template):
    return (
        "ansible-playbook -i <inventory> playbooks/{name}.yml -e {confirm}={host}{extra}"
        " (installed collection: edms.backup.{name}; AWX: the job template {template})".format(
            name=playbook,
            confirm=confirm,
            host=host_name or "<inventory host name>",
            extra=extra,
            template=template,
        )
    )


def recovery_command(host_name=None, stale=False):
    """The command that recovers a run that died, for the host the inventory
    names host_name."""
    extra = " -e edms_recover_stale=true" if stale else ""
    return _playbook_command("recover", "edms_restore_confirm", host_name, extra, "EDMS Recover")


# What read_lock() says of a lock it read that holds no lock at all (written
# by hand, or damaged): nothing in it to lose, so the unlock playbook may clear
# it, keeping its bytes beside. Any other unreadable lock is never cleared.
CORRUPT = ("it is not JSON", "it is not a JSON object")


def unlock_command(host_name=None):
    """The command that clears a lock no run will clear (clear()), recorded."""
    return _playbook_command("unlock", "edms_unlock_confirm", host_name, "", "EDMS Unlock")


# The stages a journal may record, in order, and what each says of the state.
STAGES = {
    "stopping": "stopping the services (nothing replaced)",
    "safety": "taking the safety backup (nothing replaced)",
    "replacing": "replacing the database and media (they may be partly replaced)",
    "rolling_back": "putting the safety backup back (the data may be partly replaced)",
    "starting": "starting the services (the data replaced and verified)",
    "restarting": "starting the services (the safety backup put back and verified)",
}
# An SSH connection younger than this when the lock is taken was opened for
# this task: the controller does not keep it, and it ends with the task.
FRESH_CONNECTION_SECONDS = 5.0
# Set to "1" in the module's environment by the lock's action plugin when the
# controller keeps this host's SSH connection from task to task (ControlMaster
# with ControlPersist in its ssh arguments): a connection opened just before
# the task that takes the lock is then the run's, and the lock follows it.
CONNECTION_KEPT_VARIABLE = "EDMS_BACKUP_SSH_CONNECTION_KEPT"
# ControlMaster values that make the controller's ssh a master.
MASTER_VALUES = ("auto", "yes", "autoask", "ask")


def connection_kept(arguments):
    """Whether ssh given these argument strings (ssh_args, ssh_common_args,
    ssh_extra_args, in the order Ansible passes them) keeps its connection
    after the command for a while and then ends it: ControlMaster on,
    ControlPersist a time (not off, not forever), ControlPath not none. ssh
    takes the first value given for an option, so the first one counts."""
    found = {}
    for text in arguments:
        try:
            words = shlex.split(text or "")
        except ValueError:
            return False
        options = []
        index = 0
        while index < len(words):
            word = words[index]
            if word == "-S" and index + 1 < len(words):
                options.append("controlpath " + words[index + 1])
                index += 2
                continue
            if word.startswith("-S") and len(word) > 2:
                options.append("controlpath " + word[2:])
            if word == "-o" and index + 1 < len(words):
                options.append(words[index + 1])
                index += 2
                continue
            if word.startswith("-o") and len(word) > 2:
                options.append(word[2:])
            index += 1
        for option in options:
            key, _sep, value = option.replace("=", " ", 1).partition(" ")
            key = key.strip().lower()
            if key in ("controlmaster", "controlpersist", "controlpath"):
                found.setdefault(key, value.strip().lower())
    # ControlPersist yes or 0 keeps the connection forever: a killed run's
    # lock would then last max_hold all the same; it is not counted as kept
    # (the lock warns that it follows no run). ControlPath none: no master.
    persist = found.get("controlpersist")
    return (
        found.get("controlmaster") in MASTER_VALUES
        and persist not in (None, "", "no", "false", "0", "yes", "true")
        and found.get("controlpath") != "none"
    )


class LockError(ModuleFailure):
    """The lock cannot be taken or released."""


def lock_path(project_dir):
    return os.path.join(project_dir, LOCK_NAME)


def describe_journal(journal):
    """What a run's journal says it was doing and what it left."""
    if not isinstance(journal, dict):
        return "an unreadable record of its progress"
    parts = [
        "a {} of {} was {}".format(
            journal.get("operation", "?"),
            journal.get("archive", "?"),
            STAGES.get(journal.get("stage"), "at stage {!r}".format(journal.get("stage"))),
        )
    ]
    services = journal.get("services")
    if isinstance(services, list) and services:
        parts.append("services stopped: " + ", ".join(str(s) for s in services))
    if journal.get("safety"):
        parts.append(f"its safety backup: {journal['safety']}")
    if journal.get("token"):
        parts.append(f"its restore token: {journal['token']}")
    return "; ".join(parts)


def unfinished(info):
    """Whether a lock records a run that stopped in the middle of a restore or
    rollback."""
    return "journal" in info


def read_lock(path):
    """The lock's content, None when there is no lock.

    Only a regular file, not reached through a link, owned by this user (or
    root) and writable by no one else is believed: anything else is
    "unreadable", with why, and never with its content (a link planted at the
    lock's name must not print the file it points to)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {"unreadable": f"cannot be opened as a file of its own ({exc.strerror})"}
    with os.fdopen(fd, "rb") as handle:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            return {"unreadable": "it is not a regular file"}
        if found.st_uid not in (os.geteuid(), 0) or found.st_mode & 0o022:
            return {
                "unreadable": f"it is owned by uid {found.st_uid} with mode"
                f" {stat.S_IMODE(found.st_mode):04o}, not this user's own file"
            }
        text = handle.read(1 << 20).decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return {"unreadable": "it is not JSON"}
    return data if isinstance(data, dict) else {"unreadable": "it is not a JSON object"}


def _sync_directory(path):
    """Make a rename or a new file in path's directory last through a crash."""
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_lock(path, info, replace):
    """Write info as the lock at path: a new file of its own (O_EXCL), or, with
    replace, in place of the lock there, all at once (a temporary file renamed
    over it): a failure half way leaves the previous lock as it was."""
    temporary = f"{path}.{secrets.token_hex(4)}.partial"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # FileExistsError: someone took it, just now
            os.unlink(temporary)
        _sync_directory(path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# --- Processes ------------------------------------------------------------------


def process(pid):
    """pid's state, parent, start time (clock ticks since boot, as text) and
    command line, or None when there is no such process to read."""
    fields = lock_holder.stat(pid)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return None
    if fields is None:
        return None
    while argv and argv[-1] == "":
        argv.pop()
    return {
        "pid": int(pid),
        "state": fields[lock_holder.STATE],
        "ppid": int(fields[lock_holder.PPID]),
        "start": fields[lock_holder.START],
        "argv": argv,
    }


def controller_program(argv):
    """The Ansible program argv runs (``ansible-playbook``...), or None. A
    script shows as its interpreter followed by the script's path."""
    words = argv[:1]
    if words and os.path.basename(words[0]).startswith("python"):
        words = [w for w in argv[1:3] if not w.startswith("-")][:1]
    for word in words:
        name = os.path.basename(word)
        if name in CONTROLLERS:
            return name
    return None


def is_sshd(argv):
    """Whether argv is an sshd process (``sshd: user@notty``, ``sshd-session:
    user@notty``, ``sshd: user [priv]``)."""
    if not argv:
        return False
    first = argv[0].split(" ", 1)[0].rstrip(":")
    return os.path.basename(first) in ("sshd", "sshd-session")


def ancestors(pid):
    """pid's parent, its parent... up to (not including) pid 1."""
    seen = set()
    info = process(pid)
    while info is not None and info["ppid"] > 1 and info["ppid"] not in seen:
        seen.add(info["ppid"])
        info = process(info["ppid"])
        if info is not None:
            yield info


def ticks_per_second():
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):  # pragma: no cover - every Linux has it
        return 100


def find_anchor(pid=None, kept=None):
    """The process the lock's holder follows, and a note when there is none.

    kept: whether the controller keeps its SSH connection from task to task
    (default: what the action plugin put in CONNECTION_KEPT_VARIABLE).
    Returns (anchor, note): anchor is {"pid", "start", "kind", "command"} or
    None; note says why there is none (None with an anchor)."""
    pid = os.getpid() if pid is None else pid
    if kept is None:
        kept = os.environ.get(CONNECTION_KEPT_VARIABLE) == "1"
    controller = None
    sshd = None
    for info in ancestors(pid):
        program = controller_program(info["argv"])
        if program:
            controller = (info, program)  # the top-most one wins
        elif sshd is None and is_sshd(info["argv"]):
            sshd = info
    if controller is not None:
        info, program = controller
        return _anchor(info, f"{program} on this host"), None
    if sshd is not None:
        own = process(pid)
        age = (int(own["start"]) - int(sshd["start"])) / ticks_per_second() if own else 0
        if age < FRESH_CONNECTION_SECONDS and kept:
            return _anchor(sshd, "ssh connection of the controller (kept: ControlPersist)"), None
        if age < FRESH_CONNECTION_SECONDS:
            return None, (
                f"the SSH connection of this task (sshd pid {sshd['pid']}) was opened"
                f" {age:.1f}s before it, so it may be one the controller does not keep"
                " from task to task and end with this task (the controller's ssh arguments"
                " set no ControlMaster with ControlPersist)"
            )
        return _anchor(sshd, "ssh connection of the controller"), None
    return None, (
        "neither an Ansible controller nor an SSH connection is among this task's parent processes"
    )


def _anchor(info, kind):
    return {
        "pid": info["pid"],
        "start": info["start"],
        "kind": kind,
        "command": " ".join(info["argv"])[:200],
    }


def same_process(pid, start):
    """True when pid runs and started at start; False when it provably does
    not; None when it cannot be told from here."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return None
    if lock_holder.stat(pid) is None:
        return None  # it exists, but /proc does not show it to this user
    return lock_holder.running(pid, start)


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


def anchor_alive(info):
    """Whether the run that took the lock is still there: True, False, or None
    when the lock records no anchor or it cannot be told here."""
    anchor = info.get("anchor")
    if info.get("host") != socket.gethostname() or not isinstance(anchor, dict):
        return None
    return same_process(anchor.get("pid"), anchor.get("start"))


# --- The lock ---------------------------------------------------------------------


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


def describe_anchor(info):
    anchor = info.get("anchor")
    if not isinstance(anchor, dict):
        return "no run to follow"
    return "{}, pid {}: {}".format(
        anchor.get("kind", "?"), anchor.get("pid", "?"), anchor.get("command", "?")
    )


def public(info):
    """The lock's content as results show it: without its token."""
    return {key: value for key, value in info.items() if key != "token"}


def assess(info):
    """What a lock found in place is: "live" (its holder runs or cannot be
    checked), "stale" (holder gone, its run maybe not), or "dead" (holder and
    run both provably gone on this host: safe to take over)."""
    if "unreadable" in info:
        return "unknown"
    alive = holder_alive(info)
    if alive is None:
        return "unknown"
    if alive:
        return "live"
    return "dead" if anchor_alive(info) is False else "stale"


def status(project_dir):
    path = lock_path(project_dir)
    info = read_lock(path)
    if info is None:
        return {"path": path, "locked": False, "holder": None, "stale": False, "state": None}
    state = assess(info)
    return {
        "path": path,
        "locked": True,
        "holder": info,
        "stale": state in ("stale", "dead"),
        "state": state,
    }


@contextlib.contextmanager
def _guard(project_dir):
    """Serialise taking, taking over and releasing the lock of one project."""
    fd = os.open(project_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=None)
def holder_program():
    """The holder's program for ``python -c`` (_platform/lock_holder.py)."""
    return inspect.getsource(lock_holder) + "\n\nmain()\n"


def start_holder(token, anchor, max_hold, label, poll=POLL_SECONDS):
    """The detached holder process: it carries the token in its environment
    (what tells it from a process that reuses its pid) and ends when the
    anchor does, or after max_hold seconds."""
    anchor = anchor or {"pid": 0, "start": "0"}
    return subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-c",
            holder_program(),
            label,
            str(int(anchor["pid"])),
            str(anchor["start"]),
            str(int(max_hold)),
            str(float(poll)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd="/",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EDMS_BACKUP_LOCK": token},
    )


def acquire(
    project_dir,
    owner,
    operation,
    max_hold,
    now=None,
    check_mode=False,
    poll=POLL_SECONDS,
    take_over_stale=False,
    host_name=None,
):
    """Take the lock; return its content (with the token that releases it).

    A lock whose holder and run are provably gone is taken over: the result's
    ``taken_over`` is that lock (without its token) and ``warnings`` says so.
    take_over_stale (a recovery only, on the operator's word that nothing
    runs): also a lock whose holder is gone while its run cannot be proven
    gone, or one this host cannot check (taken on another host). Check mode:
    only say what would happen (no token, nothing written)."""
    if take_over_stale and operation != RECOVER:
        raise LockError(f"take_over_stale is for the {RECOVER} operation only, not {operation}")
    if not os.path.isdir(project_dir):
        raise LockError(f"project directory {project_dir} does not exist")
    if int(max_hold) <= 0:
        raise LockError(f"max_hold must be a positive number of seconds, not {max_hold}")
    path = lock_path(project_dir)
    started = now or datetime.now(timezone.utc)
    anchor, note = find_anchor()
    info = {
        "owner": owner,
        "operation": operation,
        "host": socket.gethostname(),
        "started_at": utc_iso(started),
        "expires_at": utc_iso(started + timedelta(seconds=int(max_hold))),
        "anchor": anchor,
    }
    warnings = []
    if anchor is None:
        warnings.append(
            f"the lock of {project_dir} follows no run: {note}. It is held until it is"
            f" released or for {int(max_hold)} seconds (max_hold); if this run dies,"
            f" later runs are refused until then, or until its holder is ended by hand"
        )
    result = {"path": path, "warnings": warnings}
    with _guard(project_dir):
        previous = read_lock(path)
        if previous is not None:
            if assess(previous) == "live" and anchor_alive(previous) is False:
                # The run just died: its holder ends at its next look.
                previous = _wait_for_holder(path, previous, poll * 2 + 1)
            found = assess(previous)
            # On the operator's word: a holder gone while its run cannot be
            # proven gone, or a lock this host cannot check (another host's).
            stale_ok = take_over_stale and found in ("stale", "unknown")
            if found != "dead" and not stale_ok:
                raise refusal(path, previous, host_name)
            if unfinished(previous):
                if operation != RECOVER:
                    raise unfinished_refusal(path, previous, host_name)
                # A recovery that dies is recovered in its turn.
                info["journal"] = previous["journal"]
            result["taken_over"] = public(previous)
            warnings.append(taken_over_warning(path, previous))
        if check_mode:
            return dict(info, **result)
        token = secrets.token_hex(16)
        holder = start_holder(token, anchor, max_hold, f"edms.backup lock {path}", poll)
        # Until the holder has replaced the forked copy of this process with
        # its own program, its environment is not yet its own: another run
        # that looked then would take it for gone.
        deadline = time.monotonic() + 5
        while not _is_holder(holder.pid, token) and time.monotonic() < deadline:
            time.sleep(0.01)
        info["pid"] = holder.pid
        info["token"] = token
        try:
            _write_lock(path, info, replace=previous is not None)
        except FileExistsError:  # pragma: no cover - someone wrote it by hand, just now
            holder.terminate()
            raise refusal(path, host_name=host_name) from None
        except BaseException:
            holder.terminate()
            raise
        if previous is not None:
            # What a take-over replaced stays on record; a history that cannot
            # be written does not stop the run (it says so).
            entry = {
                "event": "taken_over",
                "at": info["started_at"],
                "by": owner,
                "operation": operation,
                "host": info["host"],
                "inventory_host": host_name,
                "lock": public(previous),
            }
            try:
                append_history(project_dir, entry)
            except (LockError, OSError) as exc:
                warnings.append(f"the take-over of {path} is not in the lock history: {exc}")
    return dict(info, **result)


def _wait_for_holder(path, info, seconds):
    """The lock at path once its holder has ended, or after seconds."""
    deadline = time.monotonic() + seconds
    while holder_alive(info) and time.monotonic() < deadline:
        time.sleep(0.1)
    return read_lock(path) or info


def unfinished_refusal(path, info, host_name=None):
    return LockError(
        f"a run died in the middle of a {info.get('operation', '?')}: {describe(info, path)}"
        f" recorded that {describe_journal(info.get('journal'))}. Nothing was changed by"
        " this run, and no backup, restore or rollback runs until that is resolved:"
        f" run {recovery_command(host_name)}. It shows what it will do and puts the deployment"
        " back to the state before that run, or finishes it where the restore was"
        " already verified. Do not remove the lock by hand: it holds that record",
        holder=public(info),
        stale=True,
        unfinished=info["journal"],
    )


def record(project_dir, token, journal, check_mode=False):
    """Record journal (the run's progress) in the lock that token took."""
    if not isinstance(journal, dict) or journal.get("stage") not in STAGES:
        raise LockError("journal must be a mapping whose stage is one of " + ", ".join(STAGES))
    path = lock_path(project_dir)
    with _guard(project_dir):
        info = read_lock(path)
        if info is None or info.get("token") != token:
            raise LockError(
                "not recording: "
                + (describe(info, path) + ", not this run" if info else f"no lock {path}"),
                holder=public(info) if info else None,
            )
        if check_mode:
            return public(info)
        info["journal"] = journal
        _write_lock(path, info, replace=True)
    return public(info)


def taken_over_warning(path, info):
    return (
        f"took over the stale lock {path} of a run that died: {info.get('owner', '?')},"
        f" {info.get('operation', '?')} started {info.get('started_at', '?')} on"
        f" {info.get('host', '?')} (its holder pid {info.get('pid', '?')} and its run,"
        f" {describe_anchor(info)}, are gone). What that run left behind is checked by"
        " the steps that follow"
    )


def refusal(path, info=None, host_name=None):
    """Why the lock at path cannot be taken: who holds it, since when, until
    when, and what clears it."""
    info = info if info is not None else (read_lock(path) or {})
    text = describe(info, path)
    if unfinished(info) and assess(info) in ("stale", "dead", "unknown"):
        # Never "remove the lock": it holds the only record of what to recover.
        return LockError(
            f"stale lock: {text}, which recorded that"
            f" {describe_journal(info.get('journal'))}; whether the run that took it has"
            f" ended cannot be proven from here ({describe_anchor(info)} recorded)."
            " It is held until that run is recovered: once no backup or restore of this"
            f" project runs, recover with {recovery_command(host_name, stale=True)}."
            " Do not remove the lock by hand: it holds that record",
            holder=public(info),
            stale=True,
            unfinished=info.get("journal"),
        )
    state = assess(info)
    pid = info.get("pid", "?")
    expires = info.get("expires_at", "?")
    clear_it = (
        f"clear it (the clearing is recorded, its holder ended if it is still there) with"
        f" {unlock_command(host_name)}"
    )
    if state in ("stale", "dead"):
        if anchor_alive(info):
            anchor = info["anchor"]
            return LockError(
                f"stale lock: {text}; the holder is gone but the run that took the lock"
                f" is still there ({describe_anchor(info)}): it may still be working."
                f" See it with: ps -o pid,lstart,args -p {anchor['pid']}. The lock is held"
                " until it is cleared (no run takes it over, nor clears it, while that one is"
                " there). If that run is not a backup or restore of this project, end it"
                f" (kill {anchor['pid']}), then {clear_it}",
                holder=public(info),
                stale=True,
            )
        return LockError(
            f"stale lock: {text}, and that process is gone; whether the run that took"
            f" it has ended cannot be told ({describe_anchor(info)} recorded). The lock is"
            " held until it is cleared. If no backup or restore of this project is"
            f" running, {clear_it}",
            holder=public(info),
            stale=True,
        )
    if state == "unknown" and info.get("unreadable") in CORRUPT:
        return LockError(
            f"locked: {text}. It holds no lock this collection wrote (written by hand, or"
            " damaged), so what it was cannot be checked; the lock is held until it is"
            f" cleared. Once no backup or restore of this project runs, {clear_it} (it keeps"
            " the file's bytes beside, renamed)",
            holder=public(info),
            stale=None,
        )
    if state == "unknown" and "unreadable" in info:
        return LockError(
            f"locked: {text}. It cannot be read here, so neither its holder nor whether it"
            " holds the record of a restore or rollback that died can be checked; the lock"
            " is held until it is cleared. Read it as its owner or as root (sudo cat"
            f" {shlex.quote(path)}). If it records no journal and its operation has ended,"
            f" {clear_it}, as a user who can read it (--become, if root wrote it); if it"
            f" records one, run {recovery_command(host_name, stale=True)}",
            holder=public(info),
            stale=None,
        )
    if state == "unknown":
        return LockError(
            f"locked: {text}. Its holder cannot be checked from here (it ends on"
            f" {info.get('host', '?')} by {expires} at the latest); the lock is held until it"
            f" is cleared. Once that operation has ended, {clear_it}",
            holder=public(info),
            stale=None,
        )
    anchor = info.get("anchor")
    if isinstance(anchor, dict):
        follows = (
            f" The lock follows that run ({describe_anchor(info)}): it is held until"
            " within seconds after that run ends (an SSH connection ends ControlPersist"
            f" seconds after the controller's last task on this host), at {expires} at the"
            " latest, and nothing"
            " else clears it while that run lasts (the unlock playbook refuses it too)."
            f" See both with: ps -o pid,lstart,args -p {pid},{anchor.get('pid', '?')}"
        )
    else:
        follows = (
            " The lock follows no run: it is held until it is released, at"
            f" {expires} at the latest. See its holder with: ps -o pid,lstart,args"
            f" -p {pid}; if no backup or restore of this project is running, {clear_it}"
        )
    return LockError(
        f"another operation is running: {text}. Wait for it to end.{follows}",
        holder=public(info),
        stale=False,
    )


def release(project_dir, token, check_mode=False):
    """Remove the lock if token is its own; end its holder. Check mode: only say."""
    path = lock_path(project_dir)
    if read_lock(path) is None:
        return False
    with _guard(project_dir):
        info = read_lock(path)
        if info is None:
            return False
        if info.get("token") != token:
            raise LockError(
                f"not releasing: {describe(info, path)}, not this run", holder=public(info)
            )
        if check_mode:
            return True
        if holder_alive(info):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info["pid"], signal.SIGTERM)
        os.unlink(path)
    return True


# --- Clearing a lock, recorded ------------------------------------------------------


def history_path(project_dir):
    return os.path.join(project_dir, HISTORY_NAME)


def fingerprint(info):
    """What names one lock's content (without its token): a clearing confirmed
    on what a check showed clears that lock only, not one taken since."""
    text = json.dumps(public(info), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _history_refusal(path, why):
    return LockError(
        f"the lock history {path} {why}: nothing was changed. Only a regular file of this"
        " user's own (or root's), writable by no one else and not reached through a link, is"
        " written; move it aside and run again"
    )


def _check_history(path):
    """Refuse a history that is not a plain file of this user's own; None when
    there is none yet. Its content is never read here."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    _check_history_stat(path, found)
    return found


def _check_history_stat(path, found):
    if stat.S_ISLNK(found.st_mode):
        raise _history_refusal(path, "is a symbolic link")
    if not stat.S_ISREG(found.st_mode):
        raise _history_refusal(path, "is not a regular file")
    if found.st_uid not in (os.geteuid(), 0) or found.st_mode & 0o022:
        raise _history_refusal(
            path,
            f"is owned by uid {found.st_uid} with mode {stat.S_IMODE(found.st_mode):04o}",
        )


def append_history(project_dir, entry):
    """Append entry as one JSON line to the project's lock history (0600,
    O_APPEND; never through a link, never another user's file)."""
    path = history_path(project_dir)
    _check_history(path)
    flags = (
        os.O_WRONLY
        | os.O_APPEND
        | os.O_CREAT
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        why = f"cannot be opened as a file of its own ({exc.strerror})"
        raise _history_refusal(path, why) from None
    try:
        _check_history_stat(path, os.fstat(fd))
        line = json.dumps(entry, sort_keys=True, default=str) + "\n"
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    _sync_directory(path)
    return path


def _holder_state(info):
    """ "live" when the holder provably runs (this lock's token in its
    environment), "gone" when it provably does not, "unknown" otherwise (another
    host's, another user's process, /proc hidden)."""
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return "unknown"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "unknown"
    fields = lock_holder.stat(pid)
    if fields is None:
        return "unknown"
    if fields[lock_holder.STATE] in ("Z", "X"):
        return "gone"
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read().split(b"\0")
    except FileNotFoundError:
        return "gone"
    except OSError:
        return "unknown"
    return "live" if ("EDMS_BACKUP_LOCK=" + str(info.get("token"))).encode() in environ else "gone"


def _end_holder(pid, token, seconds=3.0):
    """SIGTERM to pid, which was just seen to be the holder; wait for it to end."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while _is_holder(pid, token) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return not _is_holder(pid, token)


def clear(
    project_dir,
    owner,
    reason=None,
    host_name=None,
    expected=None,
    check_mode=False,
    now=None,
):
    """Clear the project's lock, on the operator's word that no run of its
    own will: recorded in the lock history, the holder ended when it is
    provably still there. Refused, changing nothing: a lock whose run is still
    there (wait), a lock it cannot read, a lock with a journal (recover.yml), a
    lock other than the one expected (its fingerprint()). Check mode: only
    say what would be cleared.

    Returns {"path", "history", "cleared" (the lock without its token, None
    when there is none), "fingerprint", "holder" ("live", "gone", "unknown"),
    "holder_ended", "warnings"}."""
    if not os.path.isdir(project_dir):
        raise LockError(f"project directory {project_dir} does not exist")
    path = lock_path(project_dir)
    history = history_path(project_dir)
    result = {
        "path": path,
        "history": history,
        "cleared": None,
        "fingerprint": None,
        "holder": None,
        "holder_ended": False,
        "warnings": [],
    }
    with _guard(project_dir):
        info = read_lock(path)
        if info is None:
            return result
        result["cleared"] = public(info)
        result["fingerprint"] = fingerprint(info)
        if expected and expected != result["fingerprint"]:
            raise LockError(
                f"not clearing: the lock {path} is not the one confirmed (it changed since it"
                f" was shown): {describe(info, path)}. Nothing was changed; run the check again"
                " to see the lock there now",
                holder=public(info),
            )
        corrupt = info.get("unreadable") in CORRUPT
        if "unreadable" in info and not corrupt:
            # It may hold the journal of a restore that died: never removed unread.
            raise LockError(
                f"not clearing: the lock {path} cannot be read here ({info['unreadable']}). It"
                " may hold the record of a restore or rollback that died, which only the"
                " recovery may act on. Nothing was changed. Read it as its owner or as root"
                f" (sudo cat {shlex.quote(path)}); run this playbook again as a user who can"
                " read it (--become, if root wrote it)",
                holder=public(info),
                stale=None,
            )
        holder = "unknown" if corrupt else _holder_state(info)
        run = None if corrupt else anchor_alive(info)
        result["holder"] = holder
        text = describe(info, path)
        if run is True:
            anchor = info.get("anchor") or {}
            raise LockError(
                f"not clearing: {text}, and the run that took it ({describe_anchor(info)}) is"
                + (
                    " still there, with the lock's holder"
                    if holder != "gone"
                    else " still there (the lock's holder is gone): it may still be working"
                )
                + ". Wait for that run to end: the lock ends within seconds after its run ends,"
                f" at {info.get('expires_at', '?')} at the latest. See it with: ps -o"
                f" pid,lstart,args -p {anchor.get('pid', '?')}; if it is not a backup or restore"
                " of this project, end it, then run this playbook again. Nothing was changed",
                holder=public(info),
                stale=holder == "gone",
            )
        if unfinished(info):
            provably_dead = holder == "gone" and run is False
            raise LockError(
                f"not clearing: {text} recorded that {describe_journal(info.get('journal'))}."
                " That lock is cleared by the recovery alone, which reads that record and"
                " finishes or undoes that run: once no backup or restore of this project"
                f" runs, run {recovery_command(host_name, stale=not provably_dead)}."
                " Nothing was changed. Do not remove the lock by hand: it holds that record",
                holder=public(info),
                stale=True,
                unfinished=info.get("journal"),
            )
        if corrupt:
            result["warnings"].append(
                f"the lock {path} is read but {info['unreadable']}: it is kept beside, renamed"
                f" {os.path.basename(path)}.cleared-<time>, for whoever looks into it"
            )
        elif holder == "unknown":
            result["warnings"].append(
                f"the holder of {path} (pid {info.get('pid', '?')} on {info.get('host', '?')})"
                " cannot be checked from here and is not ended; it ends by"
                f" {info.get('expires_at', '?')} at the latest, and holds nothing once the lock"
                " is removed"
            )
        if check_mode:
            _check_history(history)
            return result
        entry = {
            "event": "cleared",
            "at": utc_iso(now or datetime.now(timezone.utc)),
            "by": owner,
            "reason": reason or None,
            "host": socket.gethostname(),
            "inventory_host": host_name,
            "holder": holder,
            "lock": public(info),
        }
        kept_as = None
        if corrupt:
            stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
            kept_as = f"{path}.cleared-{stamp}-{secrets.token_hex(2)}"
            entry["kept_as"] = kept_as
            result["kept_as"] = kept_as
        # Recorded first: a clearing that fails half way is recorded all the same.
        append_history(project_dir, entry)
        if holder == "live":
            result["holder_ended"] = _end_holder(info["pid"], info.get("token"))
            if not result["holder_ended"]:
                result["warnings"].append(
                    f"the holder pid {info['pid']} did not end within seconds of SIGTERM;"
                    " it holds nothing once the lock is removed"
                )
        try:
            if kept_as:
                os.link(path, kept_as)  # its bytes kept: never a link followed, never replaced
            os.unlink(path)
        except OSError as exc:
            raise LockError(
                f"the lock {path} was not removed ({exc.strerror}; the attempt is recorded in"
                f" {history}): look at it before anything else",
                holder=public(info),
            ) from None
        _sync_directory(path)
    return result
