# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Media replaced all-or-nothing, inside the backend container.

The host's side, and the whole procedure, is _deployment/media.py.

Entry point main: the request is argv[1], ``{"action", "root", "work",
"fail_at"}``; the answer is one JSON line on standard output. Actions:
``leftovers``, ``prepare``, ``swap``, ``putback``, ``finish``, ``hashes``.
"""

import hashlib
import json
import os
import shutil
import sys

# Entries of the media root whose names start so are work directories, never media.
WORK_PREFIX = ".edms-restore-"


def live_entries(root):
    return sorted(name for name in os.listdir(root) if not name.startswith(WORK_PREFIX))


def move(names, source, target, moved):
    for name in names:
        os.rename(os.path.join(source, name), os.path.join(target, name))
        moved.append(name)


def exchange(root, incoming_dir, outgoing_dir, fail_at=None):
    """Live entries into outgoing_dir, then incoming_dir's entries into the root.

    On any failure what was moved goes back, last first; the answer says so.
    fail_at "media_swap": FAULT INJECTION for the tests, halfway through.
    """
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
            dirs[:] = [name for name in dirs if not name.startswith(WORK_PREFIX)]
            files = [name for name in files if not name.startswith(WORK_PREFIX)]
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


def putback(root, work):
    """The previous media (work's old/) back into the root."""
    old = os.path.join(work, "old")
    if not os.path.isdir(old):
        return {"previous": False}
    result = exchange(root, old, os.path.join(work, "discarded"))
    result["previous"] = True
    if "error" not in result:
        shutil.rmtree(work)
    return result


def finish(work):
    existed = os.path.isdir(work)
    if existed:
        shutil.rmtree(work)
    return {"removed": existed}


def step(request):
    """The answer to one request."""
    root = request["root"]
    work = request.get("work")
    action = request["action"]
    if not os.path.isdir(root):
        return {"error": "media root %s is not a directory" % root}
    if action == "leftovers":
        return {"leftovers": sorted(n for n in os.listdir(root) if n.startswith(WORK_PREFIX))}
    if action == "prepare":
        os.makedirs(os.path.join(work, "new"), 0o700)
        return {"work": work}
    if action == "swap":
        return exchange(
            root, os.path.join(work, "new"), os.path.join(work, "old"), request.get("fail_at")
        )
    if action == "putback":
        return putback(root, work)
    if action == "finish":
        return finish(work)
    if action == "hashes":
        return {"hashes": hashes(root)}
    return {"error": "unknown action %s" % action}


def main():
    sys.stdout.write(json.dumps(step(json.loads(sys.argv[1]))) + "\n")
