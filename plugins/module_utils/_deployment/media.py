# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Media replaced all-or-nothing inside the backend container.

The media root is usually a volume's mount point: it cannot be renamed or
replaced as a whole. So a restore works inside it, in a work directory of its
own, ``<media root>/.edms-restore-<token>/``:

1. ``new/`` is filled with the archive's media (a tar stream made while it is
   sent, never whole in memory; directories and files owned by the
   container's user);
2. the swap moves every live entry of the media root into ``old/`` and every
   entry of ``new/`` into the media root: renames within one file system, so
   no file is copied and each move is complete or not done. A failure during
   the swap moves back what was moved, in reverse order;
3. ``old/`` (the previous media) is kept until the run ends: a rollback puts it
   back with the same renames (``putback``); a successful run removes the work
   directory (``finish``).

Entries of the media root whose names start with ``.edms-restore-`` (in any
letter case) are work directories, never media: backups leave them out, no
archive member's path may have such a component (_format/archive.py), and a
restore refuses to start while a work directory of an earlier restore is
there (it may hold the only copy of the previous media).

The token is 12 lower-case hexadecimal digits (new_token), checked wherever it
comes in (token_problem): by the modules that take it, by work_dir, and again
by the program in the container. ``prepare`` writes the token into the work
directory (a marker file); the other steps act only on a directory that holds
it, so a directory that merely has a work directory's name is never taken for
the previous media.

_backend/media.py runs with the backend's own Python; argv[1] is the request
``{"action", "root", "work", "fail_at"}`` and the answer is one JSON line on
stdout.
"""

from __future__ import annotations

import json
import posixpath
import secrets
import tarfile
import time

from ansible_collections.edms.backup.plugins.module_utils._backend import media as media_program
from ansible_collections.edms.backup.plugins.module_utils._backend.media import (
    TOKEN_BYTES,
    TOKEN_FORM,
    WORK_PREFIX,
    token_problem,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.load import (
    container_owner,
    tar_member,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    MEDIA_PREFIX,
    ArchiveReader,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    backend_program,
    parse_answer,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import ExecError

# The media steps' program, made when this module is imported (see load.py).
MEDIA_PROGRAM = backend_program(media_program)


class MediaError(Exception):
    """A media step in the backend failed; ``answer`` is what the script said."""

    def __init__(self, message, answer=None):
        super().__init__(message)
        self.answer = answer or {}


def new_token():
    """A fresh restore token (TOKEN_FORM)."""
    return secrets.token_hex(TOKEN_BYTES)


def token_error(token, name="token"):
    """The message for a token that is not of TOKEN_FORM (named ``name``), or
    None when it is. The value is shown only when short and printable."""
    problem = token_problem(token)
    if problem is None:
        return None
    if not isinstance(token, str):
        shown = f"{name} (not a string)"
    elif len(token) > 64:
        shown = f"{name} (of {len(token)} characters)"
    else:
        shown = f"{name} {token!r}"
    return (
        f"{shown} is not a restore token: a restore token is {TOKEN_FORM}, "
        "as the failed restore printed it (restore_token=...)"
    )


def work_dir(media_root, token):
    """The work directory of the restore ``token`` in the media root; MediaError
    for a token that is not of TOKEN_FORM (it would name another path)."""
    message = token_error(token)
    if message:
        raise MediaError(message)
    return posixpath.join(media_root.rstrip("/"), WORK_PREFIX + token)


def media_step(containers, container_id, python, action, root, work=None, fail_at=None):
    """Run one media action (_backend/media.py) in the backend; its answer, or MediaError."""
    request = {"action": action, "root": root.rstrip("/"), "work": work, "fail_at": fail_at}
    answer = containers.exec(
        container_id,
        [python, "-c", MEDIA_PROGRAM, json.dumps(request)],
        what=f"media {action}",
    )
    result = parse_answer(answer.stdout)
    if "error" in result:
        raise MediaError(f"media {action} in {root} failed: {result['error']}", result)
    return result


def archive_media(metadata):
    """{relative path: sha256} of the archive's media, from its metadata."""
    return {
        name[len(MEDIA_PREFIX) :]: entry["sha256"]
        for name, entry in (metadata.get("members") or {}).items()
        if name.startswith(MEDIA_PREFIX) and not name.endswith("/")
    }


def media_differences(expected, found, limit=10):
    """Lines describing how two {path: sha256} maps differ; empty when equal."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    changed = sorted(p for p in set(expected) & set(found) if expected[p] != found[p])
    lines = []
    kinds = (("missing", missing), ("not in the archive", extra), ("different", changed))
    for what, paths in kinds:
        if paths:
            shown = ", ".join(paths[:limit]) + (" ..." if len(paths) > limit else "")
            lines.append(f"{len(paths)} file(s) {what}: {shown}")
    return lines


def media_tar(archive, names, uid, gid):
    """A tar stream, as chunks, of the archive's media under ``new/``.

    Directories come first with the container's owner, so the container's
    user can rename them; file contents are copied chunk by chunk (tar_member).
    Everything gets the time of the restore as its modification time (a tar
    member's default, 0, would date the files 1970, which zip tools refuse).
    """
    made = set()
    mtime = int(time.time())
    for name in names:
        relative = name[len(MEDIA_PREFIX) :]
        parts = relative.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if directory in made:
                continue
            made.add(directory)
            info = tarfile.TarInfo("new/" + directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = mtime
            info.uid, info.gid = uid, gid
            yield info.tobuf(format=tarfile.PAX_FORMAT)
        member = archive.member(name)
        info = tarfile.TarInfo("new/" + relative)
        info.size = member.size
        info.mode = 0o644
        info.mtime = mtime
        info.uid, info.gid = uid, gid
        with archive.open_member(name) as source:
            yield from tar_member(info, source)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def stage_media(containers, container_id, archive_path, work):
    """Unpack the archive's media into ``<work>/new`` in the container; count files.

    Everything is owned by the user the container runs commands as.
    """
    uid, gid = container_owner(containers, container_id)
    containers.execs.append({"container": container_id, "command": f"put_archive {work}/new"})
    with ArchiveReader.open(archive_path) as archive:
        names = sorted(
            m.name
            for m in archive.iter_members()
            if m.name.startswith(MEDIA_PREFIX) and m.kind == "file"
        )
        try:
            done = containers.client.containers.get(container_id).put_archive(
                work, media_tar(archive, names, uid, gid)
            )
        except Exception as exc:  # DockerException and the transport's errors
            raise ExecError(
                f"cannot copy the archive's media into container {container_id[:12]}: {exc}"
            ) from exc
    if not done:
        raise ExecError(f"the Docker engine refused the media at {work}")
    return len(names)
