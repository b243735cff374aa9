# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The holder of a project's lock: the process that keeps the lock held on the
managed host for as long as the run that took it lasts (_commands/lock.py).

_commands/lock.py sends this file's source, then a call of main(), as one
``python -c`` text: the host gets no file (the module's own files are removed
when the module ends; the holder stays). _commands/lock.py reads processes
with the same functions.

Standard library only, and nothing at module level but imports and definitions.
"""

import sys
import time

# The fields of /proc/<pid>/stat after the command's closing parenthesis:
# the state is the first (field 3), the parent the second, the start time
# (clock ticks since boot) the twentieth.
STATE, PPID, START = 0, 1, 19


def stat(pid):
    """The fields of pid's /proc/<pid>/stat after its command, or None."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) > START else None


def running(pid, start):
    """Whether pid runs (a zombie has ended) and started at start: a process
    that reuses the pid has another start time."""
    fields = stat(pid)
    return fields is not None and fields[STATE] not in ("Z", "X") and fields[START] == str(start)


def hold(pid, start, max_hold, poll):
    """Return when the process pid that started at start is gone (pid 0: no
    process to follow), and after max_hold seconds at the latest."""
    end = time.monotonic() + max_hold
    while True:
        left = end - time.monotonic()
        if left <= 0 or (pid and not running(pid, start)):
            return
        time.sleep(min(poll, left))


def main(argv=None):
    """argv: the label ps shows, pid, start, max_hold, poll."""
    args = sys.argv[1:] if argv is None else argv
    hold(int(args[1]), args[2], float(args[3]), float(args[4]))
