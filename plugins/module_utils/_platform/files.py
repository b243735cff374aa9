# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Files on this host: replaced whole or not at all, read without following
a link, and their sha256.

write_atomically() is how every file this collection rewrites in place (the
catalogue page, a compose file, an archive's status file) is written: a new
file beside it, under a name no one else holds, renamed over it once
complete. A reader sees the old file or the new one, never a part.

open_regular() is how a name in a directory others can write (the backup
directory) is read: a link there is never followed, and anything but a
regular file (a FIFO that would block, a device) is refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat

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
# Reading a name someone else may have planted: not through a link, and
# without blocking on a FIFO (the descriptor is checked to be a regular file).
READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
DIRECTORY_FLAGS = READ_FLAGS | getattr(os, "O_DIRECTORY", 0)


class NotARegularFile(OSError):
    """A name that open_regular() refuses: a link, a directory, a FIFO..."""


class TooLarge(OSError):
    """A file bigger than a reader allows (read_regular's max_size)."""


def _kind(mode):
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "a special file"


def open_regular(path, dir_fd=None):
    """A binary file object reading the regular file at path (relative to
    dir_fd when given), never through a link. Raises NotARegularFile (an
    OSError) for a link or anything but a regular file, OSError otherwise."""
    try:
        fd = os.open(path, READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or _is_link(path, dir_fd):
            raise NotARegularFile(f"{path} is a symbolic link, not followed") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(f"{path} is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _is_link(path, dir_fd):
    try:
        return stat.S_ISLNK(os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def read_regular(path, max_size, dir_fd=None):
    """The bytes of the regular file at path (see open_regular), at most
    max_size of them: a bigger file raises TooLarge (an OSError) unread."""
    with open_regular(path, dir_fd=dir_fd) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_size:
            raise TooLarge(f"{path} is {size} bytes, more than the {max_size} allowed")
        data = handle.read(max_size + 1)
    if len(data) > max_size:
        raise TooLarge(f"{path} grew past the {max_size} bytes allowed while being read")
    return data


def open_directory(path, follow_symlinks=False):
    """A descriptor of the directory at path (close it), not through a link
    unless follow_symlinks. Raises NotARegularFile for a link."""
    flags = DIRECTORY_FLAGS
    if follow_symlinks:
        flags &= ~getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags)
    except OSError:
        if not follow_symlinks and _is_link(path, None):
            raise NotARegularFile(f"{path} is a symbolic link, not followed") from None
        raise


def file_sha256(path):
    """The sha256 of the file at path, as 64 lower-case hexadecimal digits."""
    with open(path, "rb") as handle:
        return _hash(handle, hashlib.sha256()).hexdigest()


def _hash(handle, digest):
    for block in iter(lambda: handle.read(READ_SIZE), b""):
        digest.update(block)
    return digest


def archive_sha256(path, follow_symlinks=False):
    """The sha256 (64 lower-case hexadecimal digits) of an archive: of the
    file for a file, and for a directory of its manifest, one line
    ``<relative name> NUL <size> NUL <sha256> LF`` per regular file, sorted
    by name, and ``<relative name> NUL <kind> LF`` for anything else (a link
    is named, never followed). With follow_symlinks, path itself may be a
    link (this process's own /proc/self/fd/N); below it, never."""
    info = os.stat(path, follow_symlinks=follow_symlinks)
    if stat.S_ISDIR(info.st_mode):
        return _tree_sha256(path, follow_symlinks)
    if follow_symlinks:
        with open(path, "rb") as handle:
            return _hash(handle, hashlib.sha256()).hexdigest()
    with open_regular(path) as handle:
        return _hash(handle, hashlib.sha256()).hexdigest()


def _tree_sha256(path, follow_symlinks):
    manifest = hashlib.sha256()
    top = open_directory(path, follow_symlinks=follow_symlinks)
    try:
        lines = []
        for root, dirs, files, root_fd in os.fwalk(".", dir_fd=top):
            dirs.sort()
            for name in files + dirs:
                relative = os.path.normpath(os.path.join(root, name))
                mode = os.stat(name, dir_fd=root_fd, follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    continue  # walked into; a link to a directory is not
                if stat.S_ISREG(mode):
                    with open_regular(name, dir_fd=root_fd) as handle:
                        size = os.fstat(handle.fileno()).st_size
                        digest = _hash(handle, hashlib.sha256()).hexdigest()
                    lines.append(f"{relative}\0{size}\0{digest}\n")
                else:
                    lines.append(f"{relative}\0{_kind(mode)}\n")
        for line in sorted(lines):
            manifest.update(os.fsencode(line))
    finally:
        os.close(top)
    return manifest.hexdigest()


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
