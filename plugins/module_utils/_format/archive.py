# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Backup archives: reading and writing, and the safety checks that come first.

The format is docs/archive-format.md. An archive is a ZIP file, or a plain
directory of the same layout (the EDMS's own backups). Nothing is read from an
archive before its member names, links and sizes have passed the safety
checks. Their verification is _format/verification.py.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import stat
import time
import unicodedata
import zipfile
import zlib
from datetime import timezone
from typing import NamedTuple

from ansible_collections.edms.backup.plugins.module_utils._backend.media import (
    WORK_PREFIX,
    is_work_name,
)
from ansible_collections.edms.backup.plugins.module_utils._format import age
from ansible_collections.edms.backup.plugins.module_utils._platform.files import fsync_directory

FORMAT = "edms.backup"
FORMAT_VERSION = 1
FIXTURE = "database_backup.json"
METADATA = "metadata.json"
MEDIA_PREFIX = "media/"
PGDUMP = "database.pgdump"

DEFAULT_MAX_TOTAL_SIZE = 64 << 30
DEFAULT_MAX_RATIO = 200
DEFAULT_RATIO_MIN_SIZE = 1 << 20
# The whole archive: this collection's fixtures deflate about 5 to 30 times,
# media files and the pg_dump are stored, so a real archive stays far below.
DEFAULT_MAX_ARCHIVE_RATIO = 100
DEFAULT_RECREATED_MODELS = ("contenttypes.contenttype", "auth.permission")
METADATA_MAX_SIZE = 64 << 20
READ_SIZE = 1 << 20

_ARCHIVE_NAME = re.compile(r"edms_[0-9]{8}T[0-9]{6}Z[^/\\]*\.zip\Z")
_SUFFIX = re.compile(r"[A-Za-z0-9._-]*\Z")
_DRIVE = re.compile(r"[A-Za-z]:")
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, age.AgeError)
_READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# zlib's level for the compressed members (the fixture, the metadata): at the
# medium scale's 188 MB fixture, 3 takes 1.3 s to 24.6 MB where the default
# (6) takes 3.6 s to 20.5 MB, and the backup waits on it (the dump writes
# into a pipe the compression empties).
COMPRESS_LEVEL = 3


class ArchiveError(Exception):
    """An archive cannot be read or written, or fails a safety check."""


class KeyProblem(ArchiveError):
    """An encrypted archive cannot be read with the key given, or without one:
    nothing is learnt of the archive, so no verdict on it is recorded."""


# The X25519 identities encrypted archives are read with in this run: set once
# by a module given a decryption key (use_decryption_key), read by every
# ArchiveReader.open and open_zip after it. A module is one process and one
# run, and the key never leaves this list (nor reaches a result or a message).
_IDENTITIES = []


def use_decryption_key(text):
    """Read encrypted archives with the age identities in ``text`` from now on
    (None or "": none). Raises ArchiveError, never quoting ``text``."""
    del _IDENTITIES[:]
    if text:
        try:
            _IDENTITIES.extend(age.parse_identities(text))
        except age.AgeError as exc:
            raise ArchiveError(str(exc)) from None


def is_encrypted(path):
    """True when ``path`` is a regular file in age's format (an encrypted
    archive); ``path`` may also be a binary file open at its start, which is
    left there."""
    if hasattr(path, "read"):
        head = path.read(len(age.MAGIC))
        path.seek(0)
        return age.is_encrypted(head)
    try:
        return age.file_is_encrypted(path)
    except OSError:
        return False


def decrypted(path):
    """A seekable reader of the plaintext of the encrypted archive at ``path``,
    with the key given to use_decryption_key. Raises ArchiveError with the cause."""
    if not _IDENTITIES:
        raise KeyProblem(
            f"archive '{path}' is encrypted (age) and no decryption key was given;"
            " reading its contents needs the key (decryption_key, edms_decryption_key)"
        )
    try:
        return age.open_decrypted(path, identities=_IDENTITIES)
    except age.AgeKeyError as exc:
        raise KeyProblem(f"archive '{path}' cannot be decrypted: {exc}") from None
    except age.AgeError as exc:
        raise ArchiveError(f"archive '{path}' cannot be decrypted: {exc}") from None
    except OSError as exc:
        raise ArchiveError(f"cannot read archive '{path}': {exc.strerror or exc}") from None


def key_problem_for(recipients):
    """Why the key given to use_decryption_key could not read an archive
    encrypted to ``recipients`` ("age1..."), or None (also when there are
    none). The recipients are public; the message names them, never the key."""
    if not recipients:
        return None
    try:
        wanted = {age.bech32_encode("age", age.parse_recipient(r)) for r in recipients}
    except age.AgeError as exc:
        return str(exc)
    if not _IDENTITIES:
        return (
            "archives here are encrypted (edms_encrypt_to) and no decryption key was given"
            " (decryption_key, edms_decryption_key)"
        )
    held = {age.recipient_of(identity) for identity in _IDENTITIES}
    if held & wanted:
        return None
    return (
        "the decryption key given opens none of the recipients archives here are now"
        " encrypted to (edms_encrypt_to: {})".format(", ".join(sorted(wanted)))
    )


def has_decryption_key():
    """Whether use_decryption_key gave this run a key."""
    return bool(_IDENTITIES)


def plaintext_of(handle, path):
    """What a ZIP reader reads of the archive open in ``handle`` (binary, at
    its start): ``handle`` itself, or, when the archive is encrypted, a
    decrypting reader of its own descriptor (closing it leaves ``handle``
    open). Raises ArchiveError when it is encrypted and cannot be read."""
    head = handle.read(len(age.MAGIC))
    handle.seek(0)
    if not age.is_encrypted(head):
        return handle
    if not _IDENTITIES:
        raise KeyProblem(
            f"archive '{path}' is encrypted (age) and no decryption key was given;"
            " reading its contents needs the key (decryption_key, edms_decryption_key)"
        )
    # A duplicate shares the file offset: the reader seeks before every read,
    # and ``handle`` is not read while it lives.
    duplicate = open(os.dup(handle.fileno()), "rb")  # noqa: SIM115 - the reader closes it
    try:
        duplicate.seek(0)
        return io.BufferedReader(
            age.DecryptingReader(duplicate, identities=_IDENTITIES, name=path),
            buffer_size=age.CHUNK,
        )
    except age.AgeError as exc:
        duplicate.close()
        problem = KeyProblem if isinstance(exc, age.AgeKeyError) else ArchiveError
        raise problem(f"archive '{path}' cannot be decrypted: {exc}") from None


def open_zip(path):
    """zipfile.ZipFile of the ZIP archive at ``path``, decrypted when it is
    encrypted. Raises ArchiveError when it is encrypted and cannot be read."""
    if is_encrypted(path):
        return zipfile.ZipFile(decrypted(path))
    return zipfile.ZipFile(path)


def is_archive_name(name):
    """True for the file names of this collection's archives (edms_YYYYMMDDTHHMMSSZ*.zip)."""
    return bool(_ARCHIVE_NAME.match(name))


def archive_name(moment, suffix=""):
    """The archive file name for an aware datetime, in UTC: edms_20260101T130029Z<suffix>.zip."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("an archive name needs an aware datetime, not a naive one")
    if not _SUFFIX.match(suffix):
        raise ValueError(f"archive name suffix {suffix!r} may hold only letters, digits, . _ -")
    return f"edms_{moment.astimezone(timezone.utc):%Y%m%dT%H%M%S}Z{suffix}.zip"


def member_name_problem(name):
    """Why `name` may not name a member, or None: it would escape the
    extraction root, name one path in two ways, or be taken for a restore's
    work directory (_deployment/media.py) once extracted."""
    if not name:
        return "has an empty name"
    if "\x00" in name:
        return "has a NUL character in its name"
    if "\\" in name:
        return "has a backslash in its name"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    # A directory's name ends with one "/".
    parts = (name[:-1] if name.endswith("/") else name).split("/")
    if ".." in parts:
        return "has a '..' component"
    if "." in parts:
        return "has a '.' component"
    if "" in parts:
        return "has an empty component (two '/' in a row, or a trailing one)"
    if any(is_work_name(part) for part in parts):
        return (
            f"has a component starting with {WORK_PREFIX!r} (in some letter case),"
            " the name of a restore's work directory"
        )
    return None


def member_path(name):
    """The path a member extracts to, as a file system that normalises names
    compares it: NFC, without a directory's trailing "/"."""
    return unicodedata.normalize("NFC", name[:-1] if name.endswith("/") else name)


class Member(NamedTuple):
    """One entry of an archive, as its directory (ZIP central directory or file system) says."""

    name: str
    size: int
    compressed_size: int
    kind: str  # "file", "dir", "link", or "other" (a device, FIFO or socket)

    @property
    def is_dir(self):
        return self.kind == "dir"


class MemberReader:
    """A member open for reading. What passes through read() is hashed and
    counted; a read error (a CRC mismatch, damaged data) becomes an
    ArchiveError naming the member."""

    def __init__(self, name, raw):
        self.name = name
        self.size = 0
        self._raw = raw
        self._sha256 = hashlib.sha256()

    def read(self, size=-1):
        try:
            data = self._raw.read(size)
        except _READ_ERRORS as exc:
            raise ArchiveError(f"member {self.name!r} cannot be read: {exc}") from None
        self._sha256.update(data)
        self.size += len(data)
        return data

    def drain(self):
        """Read to the end (so that the digest and the CRC cover the whole member)."""
        while self.read(READ_SIZE):
            pass

    @property
    def sha256(self):
        return self._sha256.hexdigest()

    def close(self):
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class ArchiveReader:
    """An archive open for reading. ArchiveReader.open(path) takes a ZIP file
    or a directory of the same layout."""

    kind = ""

    def __init__(self, path):
        self.path = path

    @staticmethod
    def open(path):
        if os.path.isdir(path):
            return _DirectoryReader(path)
        if is_encrypted(path):
            return _ZipReader(path, decrypted(path))
        return _ZipReader(path)

    def members(self):
        """Every member, directories and links included, in archive order."""
        return list(self.iter_members())

    def iter_members(self):
        """members() one at a time, without a list of them all."""
        raise NotImplementedError

    def member(self, name):
        """The Member called `name`, or None."""
        raise NotImplementedError

    def open_member(self, name):
        """A MemberReader on the regular-file member `name`."""
        member = self.member(name)
        if member is None or member.kind != "file":
            raise ArchiveError(f"archive '{self.path}' has no file member {name!r}")
        return MemberReader(name, self._open(name))

    def _open(self, name):
        raise NotImplementedError

    def check_safety(
        self,
        max_total_size=DEFAULT_MAX_TOTAL_SIZE,
        max_ratio=DEFAULT_MAX_RATIO,
        ratio_min_size=DEFAULT_RATIO_MIN_SIZE,
        max_archive_ratio=DEFAULT_MAX_ARCHIVE_RATIO,
    ):
        """Raise ArchiveError naming every unsafe member: run before reading or extracting."""
        members = self.members()
        limits = (max_total_size, max_ratio, ratio_min_size, max_archive_ratio)
        problems = (
            name_problems(members) + link_problems(members) + bomb_problems(members, *limits)[0]
        )
        if problems:
            raise ArchiveError(f"archive '{self.path}' is unsafe: " + "; ".join(problems))

    def close(self):
        """Release the archive (nothing to release for a directory)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class _ZipReader(ArchiveReader):
    kind = "zip"

    def __init__(self, path, plaintext=None):
        self.encrypted = plaintext is not None
        try:
            self._zip = zipfile.ZipFile(path if plaintext is None else plaintext)
        except age.AgeError as exc:
            raise ArchiveError(f"archive '{path}' cannot be decrypted: {exc}") from None
        except (zipfile.BadZipFile, EOFError) as exc:
            raise ArchiveError(
                f"'{path}' is not a complete ZIP file (truncated or damaged): {exc}"
            ) from None
        except OSError as exc:
            raise ArchiveError(f"cannot read archive '{path}': {exc.strerror or exc}") from None
        super().__init__(path)
        # orig_filename keeps what zipfile cuts off a name (from a NUL on):
        # zipfile's own index is by the cut name, so the few members whose
        # names it cut are indexed here too (not every member: memory).
        self._cut = {
            info.orig_filename: info
            for info in self._zip.infolist()
            if info.orig_filename != info.filename
        }

    def iter_members(self):
        return (_zip_member(info) for info in self._zip.infolist())

    def _info(self, name):
        """The ZipInfo of the last member called `name` (uncut), or None."""
        info = self._cut.get(name)
        if info is None:
            info = self._zip.NameToInfo.get(name)
            if info is not None and info.orig_filename != name:
                # A cut name shadows this one in zipfile's index: look it up.
                found = [i for i in self._zip.infolist() if i.orig_filename == name]
                info = found[-1] if found else None
        return info

    def member(self, name):
        info = self._info(name)
        return None if info is None else _zip_member(info)

    def _open(self, name):
        info = self._info(name)
        if info.flag_bits & 0x1:
            raise ArchiveError(f"member {name!r} is encrypted")
        if info.compress_type not in _READABLE_METHODS:
            raise ArchiveError(
                f"member {name!r} is compressed with ZIP method {info.compress_type}; "
                "this collection reads stored and deflated members"
            )
        try:
            return self._zip.open(info)
        except _READ_ERRORS as exc:
            raise ArchiveError(f"member {name!r} cannot be read: {exc}") from None

    def close(self):
        self._zip.close()


def _zip_member(info):
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        kind = "link"
    elif info.is_dir():
        kind = "dir"
    elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        kind = "other"
    else:
        kind = "file"
    return Member(info.orig_filename, info.file_size, info.compress_size, kind)


class _DirectoryReader(ArchiveReader):
    kind = "directory"

    def __init__(self, path):
        def fail(exc):
            raise ArchiveError(f"cannot list archive directory '{path}': {exc}")

        found = []
        # os.walk does not descend into links to directories; lstat sees them as links.
        for top, dirs, files in os.walk(path, onerror=fail):
            for entry in dirs + files:
                full = os.path.join(top, entry)
                name = os.path.relpath(full, path).replace(os.sep, "/")
                try:
                    info = os.lstat(full)
                except OSError as exc:
                    fail(exc)
                if stat.S_ISDIR(info.st_mode):
                    found.append(Member(name + "/", 0, 0, "dir"))
                elif stat.S_ISLNK(info.st_mode):
                    found.append(Member(name, info.st_size, info.st_size, "link"))
                elif stat.S_ISREG(info.st_mode):
                    found.append(Member(name, info.st_size, info.st_size, "file"))
                else:
                    found.append(Member(name, 0, 0, "other"))
        super().__init__(path)
        self._members = sorted(found, key=lambda member: member.name)
        self._by_name = {member.name: member for member in self._members}

    def iter_members(self):
        return iter(self._members)

    def member(self, name):
        return self._by_name.get(name)

    def _open(self, name):
        full = os.path.join(self.path, *name.split("/"))
        try:
            return os.fdopen(os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")
        except OSError as exc:
            raise ArchiveError(f"member {name!r} cannot be read: {exc.strerror or exc}") from None


def name_problems(members):
    """One line per member whose name is unsafe, or names the path of another
    member: the same name twice, names equal after Unicode normalisation
    (NFC), a file where another member has a directory.

    Names that differ only in letter case are distinct members, as on the
    case-sensitive media root they were backed up from. On a case-insensitive
    media volume they would extract to one file: the restore's comparison of
    the swapped-in media with the archive's hash list then fails and the
    previous media are put back.
    """
    problems = []
    paths = {}  # member_path: the first member name with it
    files = {}  # member_path of a file member: its name
    for member in members:
        problem = member_name_problem(member.name)
        if problem:
            problems.append(f"member {member.name!r} {problem}")
            continue
        path = member_path(member.name)
        first = paths.get(path)
        if first is None:
            paths[path] = member.name
        elif first == member.name:
            problems.append(f"member {member.name!r} appears twice")
        else:
            problems.append(
                f"member {member.name!r} extracts to the same path as member {first!r}"
                " (equal once normalised to Unicode NFC, a directory's '/' left off)"
            )
        if not member.is_dir:
            files.setdefault(path, member.name)
    directories = set()
    for path in paths:
        parts = path.split("/")[:-1]
        directories.update("/".join(parts[: depth + 1]) for depth in range(len(parts)))
    problems += [
        f"member {name!r} is a file, and a directory of other members"
        for path, name in files.items()
        if path in directories
    ]
    return problems


def link_problems(members):
    """One line per member that is a link or neither a regular file nor a directory."""
    problems = []
    for member in members:
        if member.kind == "link":
            problems.append(f"member {member.name!r} is a symbolic link")
        elif member.kind == "other":
            problems.append(f"member {member.name!r} is neither a regular file nor a directory")
    return problems


def bomb_problems(
    members,
    max_total_size,
    max_ratio,
    ratio_min_size,
    max_archive_ratio=DEFAULT_MAX_ARCHIVE_RATIO,
):
    """(problems, numbers): members that expand too much, alone or together.

    Limits: the members' sizes added up (max_total_size); a member larger than
    ratio_min_size, its size over its compressed size (max_ratio); and the
    archive as a whole, once its members add up to more than ratio_min_size,
    their sizes over their compressed sizes (max_archive_ratio), which catches
    many small members that each stay under the per-member limit.
    """
    problems = []
    total = compressed = 0
    highest = 0.0
    for member in members:
        total += member.size
        compressed += member.compressed_size
        ratio = member.size / max(member.compressed_size, 1)
        highest = max(highest, ratio)
        if total > max_total_size and total - member.size <= max_total_size:
            problems.append(
                f"the members add up to more than the limit of {max_total_size} bytes "
                f"from member {member.name!r} on"
            )
        if member.size > ratio_min_size and ratio > max_ratio:
            problems.append(
                f"member {member.name!r} expands to {member.size} bytes from "
                f"{member.compressed_size} ({ratio:.0f}:1, over the {max_ratio}:1 limit)"
            )
    whole = total / max(compressed, 1)
    if total > ratio_min_size and whole > max_archive_ratio:
        problems.append(
            f"the members add up to {total} bytes from {compressed} compressed "
            f"({whole:.0f}:1, over the {max_archive_ratio}:1 limit for a whole archive)"
        )
    numbers = {
        "members": len(members),
        "bytes": total,
        "compressed_bytes": compressed,
        "highest_ratio": round(highest, 1),
        "archive_ratio": round(whole, 1),
    }
    return problems, numbers


def _zip_time(seconds):
    # ZIP timestamps carry no time zone; this collection writes UTC, clamped
    # to the range the format can hold.
    moment = time.gmtime(seconds)[:6]
    return min(max(moment, (1980, 1, 1, 0, 0, 0)), (2107, 12, 31, 23, 59, 58))


def _blocks(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
    elif hasattr(source, "read"):
        while True:
            block = source.read(READ_SIZE)
            if not block:
                return
            yield block
    else:
        yield from source


class ArchiveWriter:
    """Writes one archive: to `<directory>/.<name>.partial` (mode `mode` from
    creation on), renamed to `<directory>/<name>` by finish() once complete and
    fsynced. Leaving the `with` block without finish(), or with an exception,
    removes the partial file; a killed process leaves only the dot-file, which
    is never named like an archive.

    Members are written as they come, their sha256 and size computed on the
    way (`members`); finish(metadata) writes metadata.json last. A stored
    member can be written again under another name from the partial file
    itself (copy_member).
    """

    def __init__(self, directory, name, mode=0o600):
        if not is_archive_name(name):
            raise ValueError(f"{name!r} is not an archive name (edms_YYYYMMDDTHHMMSSZ*.zip)")
        self.directory = directory
        self.path = os.path.join(directory, name)
        self.partial_path = os.path.join(directory, f".{name}.partial")
        self._members = {}
        self._stored = {}  # stored member's name: (ZipInfo, offset of its data)
        self._finished = False
        if os.path.lexists(self.path):
            raise ArchiveError(f"archive '{self.path}' already exists; it is never overwritten")
        # Read as well as written: copy_member reads stored members back through this descriptor.
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.partial_path, flags, mode)
        except FileExistsError:
            raise ArchiveError(
                f"'{self.partial_path}' exists: another backup is writing it, or one was "
                "interrupted (remove it if no backup is running)"
            ) from None
        except OSError as exc:
            raise ArchiveError(
                f"cannot create '{self.partial_path}': {exc.strerror or exc}"
            ) from None
        os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
        self._file = os.fdopen(fd, "wb")
        self._zip = zipfile.ZipFile(self._file, "w", allowZip64=True, compresslevel=COMPRESS_LEVEL)

    @property
    def members(self):
        """{member name: {"sha256", "size"}} for the members written so far."""
        return {name: dict(entry) for name, entry in self._members.items()}

    def add_stream(self, name, source, compress=None, mtime=None):
        """Write member `name` from a binary file object, bytes, or an iterable
        of bytes. compress: True (deflate) or False (store); by default media
        files and the pg_dump are stored, everything else deflated."""
        info = self._new_member(name, compress, time.time() if mtime is None else mtime)
        info.external_attr = (stat.S_IFREG | 0o600) << 16
        return self._write(info, source)

    def add_file(self, name, path, compress=None):
        """Write member `name` from the regular file at `path` (a link is refused)."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise ArchiveError(
                f"cannot read '{path}' for member {name!r}: {exc.strerror}"
            ) from None
        with os.fdopen(fd, "rb") as source:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ArchiveError(f"'{path}' is not a regular file; member {name!r} not written")
            member = self._new_member(name, compress, info.st_mtime)
            member.external_attr = (stat.S_IFREG | stat.S_IMODE(info.st_mode)) << 16
            return self._write(member, source)

    def copy_member(self, name, source):
        """Write member `name` with the data of the stored member `source`
        written before, read back from the partial file through the
        descriptor this writer holds (never from a path, and never from where
        `source` came from). The copy is a member like any other: stored, with
        the source's file mode, its own CRC, sha256 and size (`members`); the
        bytes read back must have the sha256 recorded for `source`."""
        if source not in self._stored:
            raise ValueError(
                f"member {source!r} is not a stored member of this archive; "
                f"member {name!r} not copied from it"
            )
        original, offset = self._stored[source]
        info = self._new_member(name, False, time.time())
        info.external_attr = original.external_attr
        self._file.flush()  # the source's bytes in the file, for pread
        entry = self._write(info, self._read_back(source, offset, original.file_size))
        if entry["sha256"] != self._members[source]["sha256"]:
            raise ArchiveError(
                f"member {source!r} read back from '{self.partial_path}' is not what was "
                f"written; member {name!r} not copied from it"
            )
        return entry

    def _read_back(self, source, offset, size):
        descriptor = self._file.fileno()
        end = offset + size
        while offset < end:
            block = os.pread(descriptor, min(READ_SIZE, end - offset), offset)
            if not block:
                raise ArchiveError(
                    f"member {source!r} cannot be read back from '{self.partial_path}': "
                    "the file ends before it"
                )
            offset += len(block)
            yield block

    def finish(self, metadata, place=True):
        """Write metadata.json (with `members` filled in) last, close, fsync and
        rename into place; return the archive's path. With place=False the
        archive stays at its partial name, whose path is returned, and the
        caller removes it (an archive to be encrypted: seal)."""
        document = dict(metadata, members=self.members)
        data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        info = self._new_member(METADATA, True, time.time(), reserved_ok=True)
        info.external_attr = (stat.S_IFREG | 0o600) << 16
        with self._zip.open(info, "w", force_zip64=True) as out:
            out.write(data)
        self._zip.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if not place:
            self._finished = True  # the caller removes the partial file
            return self.partial_path
        self._place()
        self._finished = True
        return self.path

    def _place(self):
        """Rename the partial file to the final name, never over an existing file."""
        _link_into_place(self.partial_path, self.path)
        fsync_directory(self.directory)

    def abort(self):
        """Close and remove the partial file (nothing to do once finished)."""
        if self._finished:
            return
        with contextlib.suppress(OSError, ValueError):
            self._zip.close()  # the partial file goes anyway
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.partial_path)

    def _new_member(self, name, compress, mtime, reserved_ok=False):
        if self._finished or self._file.closed:
            raise ArchiveError(f"archive '{self.path}' is finished; member {name!r} not written")
        problem = member_name_problem(name)
        if problem or name.endswith("/"):
            raise ValueError(f"member {name!r} {problem or 'names a directory'}")
        if name in self._members or (name == METADATA and not reserved_ok):
            raise ValueError(f"member {name!r} is already in the archive or reserved")
        if compress is None:
            compress = not (name.startswith(MEDIA_PREFIX) or name == PGDUMP)
        info = zipfile.ZipInfo(name, date_time=_zip_time(mtime))
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        # ZipFile.open(info, "w") compresses at the ZipInfo's own level (named
        # compress_level since Python 3.13, _compresslevel before).
        level = "compress_level" if hasattr(info, "compress_level") else "_compresslevel"
        setattr(info, level, COMPRESS_LEVEL)
        return info

    def _write(self, info, source):
        sha256 = hashlib.sha256()
        size = 0
        # Sizes are not known in advance: always ZIP64, so no member has a size limit.
        with self._zip.open(info, "w", force_zip64=True) as out:
            offset = self._file.tell()  # the member's data starts after its local header
            for block in _blocks(source):
                out.write(block)
                sha256.update(block)
                size += len(block)
        self._members[info.filename] = {"sha256": sha256.hexdigest(), "size": size}
        if info.compress_type == zipfile.ZIP_STORED:
            self._stored[info.filename] = (info, offset)
        return dict(self._members[info.filename])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.abort()


def _link_into_place(partial, path):
    """Give the file ``partial`` the name ``path``, never over an existing file;
    ``partial`` is gone after."""
    try:
        os.link(partial, path)
    except FileExistsError:
        raise ArchiveError(
            f"archive '{path}' appeared while this one was written; it is never overwritten"
        ) from None
    except OSError as exc:
        # File systems without hard links: rename, after a last look.
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        if os.path.lexists(path):
            raise ArchiveError(
                f"archive '{path}' appeared while this one was written; it is never overwritten"
            ) from None
        os.rename(partial, path)
    else:
        os.unlink(partial)


def parse_recipients(recipients):
    """The raw X25519 keys of the "age1..." ``recipients``; raises ArchiveError
    naming the one that is not a recipient."""
    try:
        return [age.parse_recipient(text) for text in recipients]
    except age.AgeError as exc:
        raise ArchiveError(f"encrypt_to: {exc}") from None


class _HashingWriter:
    def __init__(self, target):
        self.target = target
        self.sha256 = hashlib.sha256()

    def write(self, data):
        self.sha256.update(data)
        return self.target.write(data)


def seal(plain_path, path, recipients, source=None):
    """Encrypt the finished, verified archive at ``plain_path`` (a partial
    file) to ``recipients`` (raw X25519 keys) and put the result at ``path``,
    never over an existing file; return its sha256.

    What was written is read back and decrypted with the file key, which
    only this process ever holds, before it takes the archive's name: so the
    encrypted archive is known to hold the very bytes that were verified,
    though the private key is not on this host. The plain partial file is
    removed in every case (unlinked: its blocks are free, not overwritten).
    source: the path to read it through (verify_pinned's), if not plain_path."""
    directory, name = os.path.split(path)
    sealed = os.path.join(directory, f".{name}.sealed.partial")
    placed = False
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        descriptor = os.open(sealed, flags, 0o600)
        with open(descriptor, "wb") as target, open(source or plain_path, "rb") as plain:
            hashing = _HashingWriter(target)
            file_key, plain_sha256, _size = age.encrypt(plain, hashing, recipients)
            target.flush()
            os.fsync(target.fileno())
        back = hashlib.sha256()
        with age.open_decrypted(sealed, file_key=file_key) as reader:
            for block in _blocks(reader):
                back.update(block)
        del file_key
        if back.hexdigest() != plain_sha256:
            raise ArchiveError(
                f"archive '{path}': the encrypted file read back does not hold what was"
                " encrypted (the disk changed it); nothing was put in place"
            )
        _link_into_place(sealed, path)
        placed = True
        fsync_directory(directory)
        return hashing.sha256.hexdigest()
    except age.AgeError as exc:
        raise ArchiveError(f"archive '{path}' cannot be encrypted: {exc}") from None
    except OSError as exc:  # a full disk, above all: both files exist for a moment
        if placed:
            raise ArchiveError(
                f"archive '{path}' was encrypted and put in place, but its directory could not"
                f" be synced ({exc.strerror or exc}): verify it before trusting it"
            ) from None
        raise ArchiveError(
            f"archive '{path}' cannot be encrypted: {exc.strerror or exc}; nothing was put"
            " in place (encrypting needs room for the plain archive and its encryption at once)"
        ) from None
    finally:
        for leftover in (sealed, plain_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def pinned(path):
    """A path that reads the file ``path`` names now for the rest of the run,
    whatever is later moved or written over that name: /proc/self/fd/N of a
    descriptor this process keeps open. Where there is no /proc, or the file
    cannot be opened (verification then says why), ``path`` itself.

    Verification, the sha256 and every later read of the archive (fixture,
    media, pg_dump) then see the same file. A process that writes into that
    very file in place is not caught; backups are written to a new name and
    renamed, and that is caught.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return path
    proc_path = f"/proc/self/fd/{descriptor}"
    if os.path.exists(proc_path):
        return proc_path  # the descriptor stays open until the module ends
    os.close(descriptor)
    return path
