# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Media replaced all-or-nothing, inside the backend container.

The host's side, and the whole procedure, is _deployment/media.py.

Entry point main: the request is argv[1], ``{"action", "root", "work",
"fail_at"}``; the answer is one JSON line on standard output. Actions:
``leftovers``, ``prepare``, ``swap``, ``putback``, ``finish``, ``hashes``.

A work directory is ``<root>/.edms-restore-<token>``, the token 12 lower-case
hexadecimal digits. Every action on one refuses any other path, and a
directory is believed to be a restore's only when it holds the marker that
``prepare`` wrote with its token: a directory that merely has the right name
is left as it is, never taken for the previous media.
"""

import hashlib
import json
import os
import re
import shutil
import stat
import sys
import unicodedata

# Entries of the media root whose names start so are work directories, never
# media (is_work_name: in any letter case or Unicode form).
WORK_PREFIX = ".edms-restore-"
# A restore token: what secrets.token_hex(TOKEN_BYTES) makes.
TOKEN_BYTES = 6
TOKEN = re.compile(r"[0-9a-f]{12}\Z")
TOKEN_FORM = "12 lower-case hexadecimal digits"
# The file in a work directory that says a restore made it: its token.
MARKER = "restore.token"


def is_work_name(name):
    """Whether a file name is, or could stand for, a work directory's: it starts
    with WORK_PREFIX after Unicode compatibility normalisation and case folding
    (a case-insensitive media volume takes ``.EDMS-Restore-x`` for
    ``.edms-restore-x``)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return folded.startswith(WORK_PREFIX)


def token_problem(token):
    """Why token is not a restore token, or None."""
    if not isinstance(token, str):
        return "is not a string"
    if not TOKEN.match(token):
        return "is not %s" % TOKEN_FORM
    return None


def work_problem(root, work):
    """Why work is not the path of a work directory in root, or None: it must
    be root/WORK_PREFIX<token> and, when it exists, a directory (not a link)."""
    if not isinstance(work, str) or not work:
        return "no work directory given"
    parent, name = os.path.split(work)
    if parent != root or not name.startswith(WORK_PREFIX):
        return "%s is not a work directory directly in the media root %s" % (work, root)
    if token_problem(name[len(WORK_PREFIX) :]):
        return "%s is not a work directory: its token is not %s" % (work, TOKEN_FORM)
    try:
        mode = os.lstat(work).st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(mode):
        return "%s is not a directory (a link or a file is never a work directory)" % work
    return None


def made_by_restore(work):
    """Whether work holds the marker a restore wrote, with work's own token."""
    token = os.path.basename(work)[len(WORK_PREFIX) :]
    try:
        # Not through a link; a FIFO planted as the marker must not block.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(os.path.join(work, MARKER), flags)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return handle.read(64) == token.encode("ascii")


def not_made_by_restore(work):
    return {
        "error": "%s was not made by a restore (it has no %s with its token);"
        " it is left as it is" % (work, MARKER)
    }


def real_directory(path):
    """Whether path is a directory itself, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def live_entries(root):
    return sorted(name for name in os.listdir(root) if not is_work_name(name))


def leftovers(root):
    """The work directories in root that a restore made, and the entries that
    only look like one (named so, without the marker)."""
    made, other = [], []
    for name in sorted(os.listdir(root)):
        if not is_work_name(name):
            continue
        work = os.path.join(root, name)
        if work_problem(root, work) is None and made_by_restore(work):
            made.append(name)
        else:
            other.append(name)
    return {"leftovers": made, "unrecognised": other}


def prepare(work):
    """A new work directory: the marker first, then new/. A directory of the
    name that is there already is never taken over."""
    try:
        os.mkdir(work, 0o700)
    except FileExistsError:
        return {"error": "%s exists already; it is left as it is" % work}
    token = os.path.basename(work)[len(WORK_PREFIX) :]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(os.path.join(work, MARKER), flags, 0o600), "wb") as handle:
        handle.write(token.encode("ascii"))
    os.mkdir(os.path.join(work, "new"), 0o700)
    return {"work": work}


def move(names, source, target, moved):
    for name in names:
        os.rename(os.path.join(source, name), os.path.join(target, name))
        moved.append(name)


def exchange(root, incoming_dir, outgoing_dir, fail_at=None):
    """Live entries into outgoing_dir, then incoming_dir's entries into the root.

    On any failure what was moved goes back, last first; the answer says so.
    fail_at "media_swap": FAULT INJECTION for the tests, halfway through.
    """
    if not real_directory(incoming_dir):
        return {"error": "%s is not a directory" % incoming_dir, "undone": True}
    os.mkdir(outgoing_dir, 0o700)
    moved_out, moved_in = [], []
    try:
        move(live_entries(root), root, outgoing_dir, moved_out)
        incoming = sorted(os.listdir(incoming_dir))
        half = len(incoming) // 2
        for number, name in enumerate(incoming):
            if fail_at == "media_swap" and number == half:
                raise RuntimeError("injected failure at media_swap")
            move([name], incoming_dir, root, moved_in)
        if fail_at == "media_swap" and not incoming:
            raise RuntimeError("injected failure at media_swap")
    except Exception as exc:
        undone = True
        for name in reversed(moved_in):
            try:
                os.rename(os.path.join(root, name), os.path.join(incoming_dir, name))
            except OSError:
                undone = False
        for name in reversed(moved_out):
            try:
                os.rename(os.path.join(outgoing_dir, name), os.path.join(root, name))
            except OSError:
                undone = False
        if undone:
            os.rmdir(outgoing_dir)  # empty again: nothing for a putback to find
        return {
            "error": "%s: %s" % (type(exc).__name__, exc),
            "undone": undone,
            "moved_out": len(moved_out),
            "moved_in": len(moved_in),
        }
    return {"moved_out": len(moved_out), "moved_in": len(moved_in)}


def hashes(root):
    """{relative path: sha256} of every regular file under root (work
    directories and links left out)."""
    found = {}
    for directory, dirs, files in os.walk(root):
        if directory == root:  # work directories are not media
            dirs[:] = [name for name in dirs if not is_work_name(name)]
            files = [name for name in files if not is_work_name(name)]
        for name in files:
            full = os.path.join(directory, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            digest = hashlib.sha256()
            with open(full, "rb") as handle:
                for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                    digest.update(block)
            found[os.path.relpath(full, root)] = digest.hexdigest()
    return found


def swap(root, work, fail_at=None):
    if not made_by_restore(work):
        return not_made_by_restore(work)
    return exchange(root, os.path.join(work, "new"), os.path.join(work, "old"), fail_at)


def putback(root, work):
    """The previous media (work's old/) back into the root; what was live kept
    in work's discarded/ until finish."""
    if not os.path.lexists(work):
        return {"previous": False}
    if not made_by_restore(work):
        return not_made_by_restore(work)
    old = os.path.join(work, "old")
    if not os.path.lexists(old):
        return {"previous": False}
    if not real_directory(old):
        return {"error": "%s is not a directory; nothing was moved" % old}
    # What was live goes to discarded/ and stays there: the caller removes
    # the work directory (finish) only once it has found the media put back
    # right. A work directory the application planted (it can write the
    # media root) never costs the live media.
    result = exchange(root, old, os.path.join(work, "discarded"))
    result["previous"] = True
    result["discarded"] = os.path.join(work, "discarded")
    return result


def finish(work):
    """The work directory removed: one a restore made, or an empty one (a
    restore stopped before it wrote its marker)."""
    if not os.path.lexists(work):
        return {"removed": False}
    if made_by_restore(work):
        shutil.rmtree(work)
        return {"removed": True}
    try:
        os.rmdir(work)
    except OSError:
        return not_made_by_restore(work)
    return {"removed": True}


def step(request):
    """The answer to one request."""
    root = request["root"].rstrip("/") or "/"
    work = request.get("work")
    action = request["action"]
    if not os.path.isdir(root):
        return {"error": "media root %s is not a directory" % root}
    if action == "leftovers":
        return leftovers(root)
    if action == "hashes":
        return {"hashes": hashes(root)}
    if action not in ("prepare", "swap", "putback", "finish"):
        return {"error": "unknown action %s" % action}
    problem = work_problem(root, work)
    if problem:
        return {"error": problem}
    if action == "prepare":
        return prepare(work)
    if action == "swap":
        return swap(root, work, request.get("fail_at"))
    if action == "putback":
        return putback(root, work)
    return finish(work)


def main():
    sys.stdout.write(json.dumps(step(json.loads(sys.argv[1]))) + "\n")
