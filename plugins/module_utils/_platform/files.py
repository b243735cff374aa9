# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Files on this host: replaced whole or not at all, and their sha256.

write_atomically() is how every file this collection rewrites in place (the
catalogue page, a compose file, an archive's status file) is written: a new
file beside it, under a name no one else holds, renamed over it once
complete. A reader sees the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets

READ_SIZE = 1 << 20
# The temporary file is created, never opened: O_EXCL fails on any name that
# exists, a planted link included, and O_NOFOLLOW says so once more.
CREATE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def file_sha256(path):
    """The sha256 of the file at path, as 64 lower-case hexadecimal digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(READ_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_directory(path):
    """Make a rename into directory `path` durable (the directory's entry on disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(path, random_part, suffix):
    """``<directory>/.<name>.<random_part><suffix>``: hidden, beside path."""
    directory, base = os.path.split(path)
    return os.path.join(directory, f".{base}.{random_part}{suffix}")


def write_atomically(
    path, text, mode, owner=None, suffix=".tmp", before_replace=None, sync_directory=True
):
    """Replace the file at path with text (UTF-8, newlines as given).

    The text goes to a new file beside path (see temporary_name), which gets
    mode and, when this process runs as root (no one else may give a file
    away), owner (uid, gid); it is fsynced, handed to before_replace(its
    path) if given (a check that raises stops here), and renamed over path;
    then, with sync_directory, the directory is fsynced too. A link at path
    is replaced, never followed. On any failure before the rename the
    temporary file is removed, and nothing else, and the error raised.
    """
    temporary = temporary_name(path, secrets.token_hex(4), suffix)
    fd = os.open(temporary, CREATE_FLAGS, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            os.fchmod(handle.fileno(), mode)
            if owner is not None and os.geteuid() == 0:
                os.fchown(handle.fileno(), *owner)
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if sync_directory:
        fsync_directory(os.path.dirname(path) or ".")
