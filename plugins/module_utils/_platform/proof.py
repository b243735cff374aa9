# Private to the edms.backup collection: no compatibility promise to anyone else.
"""A proof that this host verified an archive: what lets a later step of the
same run skip verifying the same bytes again.

A module that verified a plain archive in full from a private copy of it
(private_copy: its sha256 taken from the bytes copied, so the proof is of
the bytes verified, whatever is written into the original meanwhile), and
found it passing and of this collection's format, returns ``proof``: an
HMAC-SHA256, under a key only
the user the modules run as can read on this host, of the archive's sha256,
the moment of the verification and a digest of the code that verified it.
A later module given that proof and the same sha256 (archive_sha256) skips
its own verification when the file it reads has that sha256, the proof is
less than PROOF_MAX_AGE seconds old, was made by the same verification code,
and its HMAC holds. Anything else, and whenever the key cannot be had safely,
the archive is verified in full: a proof can only save time, never let an
archive through that the verification would refuse.

Why a key rather than the status file beside the archive: the backup
directory is written by others, and a status file proves only that whoever
wrote it hashed those bytes. Why not the caller's word (an option that says
"verified"): a playbook's typo or stale variable would then skip the check.
The HMAC's key never leaves this host: a proof is made and accepted only by
the modules themselves.

The key: 32 random bytes in ``~/.cache/edms-backup/proof.key`` of the
effective user (its home from the password database, not $HOME), the
directory and the file that user's own and closed to everyone else, never
read through a link. Made on first use; removing it withdraws every proof.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import importlib
import os
import pwd
import re
import secrets
import stat
import sys
import time

from ansible_collections.edms.backup.plugins.module_utils._platform.files import CREATE_FLAGS

KEY_SIZE = 32
# A proof serves the run that made it: the plan's verification and the
# replacement it gates, a safety backup and the rollback to it.
PROOF_MAX_AGE = 6 * 3600
# The modules whose code decides whether an archive verifies (verification
# and everything of the collection it imports, and the proof's own), with
# the Python that runs them: a proof made by other code (another version of
# the collection, another Python) is not accepted. Only modules every module
# that makes or takes a proof carries (Ansible ships a module with the
# module_utils it imports, and no others): a proof is made only after the
# layout check (edms.backup v1), in both places that make one.
_PREFIX = "ansible_collections.edms.backup.plugins.module_utils."
VERIFYING_MODULES = tuple(
    _PREFIX + name
    for name in (
        "_format.verification",
        "_format.archive",
        "_format.fixture",
        "_format.age",
        "_backend.media",
        "_platform.files",
        "_platform.proof",
    )
)
NO_KEY = (
    "no proof key can be used on this host (~/.cache/edms-backup/proof.key of the user the"
    " modules run as: missing and not made, or open to other users)"
)
_PROOF = re.compile(r"v1:([0-9]{1,12}):([0-9a-f]{64})\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
_COPY_SIZE = 1 << 20
# What a private copy must leave free on its file system: it never fills a disk.
MIN_LEFT = 1 << 30
MIN_LEFT_SHARE = 0.05


def key_directory():
    """~/.cache/edms-backup of the effective user, from the password database."""
    return os.path.join(pwd.getpwuid(os.geteuid()).pw_dir, ".cache", "edms-backup")


def _private(status, kind):
    """A file of that kind, the effective user's, closed to group and others."""
    return (
        kind(status.st_mode)
        and status.st_uid == os.geteuid()
        and not status.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    )


def _read_key(directory_fd):
    descriptor = os.open("proof.key", _READ_FLAGS, dir_fd=directory_fd)
    try:
        status = os.fstat(descriptor)
        if not _private(status, stat.S_ISREG) or status.st_size != KEY_SIZE:
            return None
        key = os.read(descriptor, KEY_SIZE + 1)
    finally:
        os.close(descriptor)
    return key if len(key) == KEY_SIZE else None


def private_directory(directory=None, create=True):
    """A descriptor of the proof key's directory (the caller closes it), or
    None: not the effective user's own, open to others, a link, missing and
    not made. Opened once, without following a link, and everything in it is
    then reached through it: the name cannot be swapped in between."""
    try:
        directory = directory or key_directory()
    except KeyError:  # a user the password database does not know: no home
        return None
    try:
        if create:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        descriptor = os.open(directory, _DIRECTORY_FLAGS)
    except OSError:
        return None
    try:
        if _private(os.fstat(descriptor), stat.S_ISDIR):
            return descriptor
    except OSError:
        pass
    os.close(descriptor)
    return None


def load_key(directory=None, create=True):
    """This host's proof key, made on first use when create; None when it
    cannot be had safely: the directory or the file not the effective user's
    own, open to others, a link, or not writable (then no proof is made or
    accepted)."""
    directory_fd = private_directory(directory, create=create)
    if directory_fd is None:
        return None
    try:
        try:
            return _read_key(directory_fd)
        except FileNotFoundError:
            if not create:
                return None
        # Written whole under a name of its own, then linked in place: two
        # modules that start at once both end up reading the same key.
        partial = f"proof.key.{secrets.token_hex(8)}"
        descriptor = os.open(partial, CREATE_FLAGS, 0o600, dir_fd=directory_fd)
        try:
            os.write(descriptor, secrets.token_bytes(KEY_SIZE))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(partial, "proof.key", src_dir_fd=directory_fd, dst_dir_fd=directory_fd)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
        finally:
            with contextlib.suppress(OSError):
                os.unlink(partial, dir_fd=directory_fd)
        return _read_key(directory_fd)
    except OSError:
        return None
    finally:
        os.close(directory_fd)


def private_copy(source, directory=None):
    """(path, sha256, None): a copy of the file source names, its sha256
    taken from the very bytes copied, in an unnamed file (O_TMPFILE) of the
    proof key's directory that no one else can open or write, readable at
    path (/proc/self/fd/N) until the module ends; or (None, None, why not).

    What a first verification reads, so that the proof it makes is of the
    bytes it verified: the original may be written meanwhile (in place, or
    through a shared mapping, which leaves its times as they were), the copy
    cannot. Made on disk, not in memory: an archive may be larger than the
    memory; where there is no room for it, no proof is made."""
    directory_fd = private_directory(directory)
    if directory_fd is None:
        return None, None, NO_KEY
    try:
        room = os.fstatvfs(directory_fd)
        left = room.f_bavail * room.f_frsize - os.stat(source).st_size
        if left < max(MIN_LEFT, room.f_blocks * room.f_frsize * MIN_LEFT_SHARE):
            os.close(directory_fd)
            return (
                None,
                None,
                (
                    "no private copy can be made (the file system of the proof key would keep less"
                    " than 1 GiB or 5% free)"
                ),
            )
    except OSError as exc:
        os.close(directory_fd)
        return None, None, f"no private copy can be made ({_reason(exc)})"
    try:
        descriptor = os.open(".", os.O_TMPFILE | os.O_RDWR | _CLOEXEC, 0o600, dir_fd=directory_fd)
    except (OSError, AttributeError) as exc:
        return None, None, f"no private copy can be made ({_reason(exc)})"
    finally:
        os.close(directory_fd)
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as original, open(descriptor, "wb", closefd=False) as copy:
            while True:
                chunk = original.read(_COPY_SIZE)
                if not chunk:
                    break
                digest.update(chunk)
                copy.write(chunk)
    except OSError as exc:
        os.close(descriptor)
        return None, None, f"no private copy can be made ({_reason(exc)})"
    return f"/proc/self/fd/{descriptor}", digest.hexdigest(), None


def _reason(exc):
    return getattr(exc, "strerror", None) or type(exc).__name__


def code_digest():
    """The sha256 of the verifying modules' own source, as loaded (from
    Ansible's module zip or from files); None when any cannot be read."""
    digest = hashlib.sha256(sys.version.encode())
    for name in VERIFYING_MODULES:
        try:
            module = importlib.import_module(name)
            digest.update(module.__loader__.get_data(module.__file__))
        except Exception:  # pylint: disable=broad-exception-caught
            return None
    return digest.hexdigest()


def file_state(path):
    """What identifies the content of the regular file path names (a pinned
    /proc/self/fd path): (device, inode, size, mtime, ctime), or None when
    anyone but its owner, this user or root, may write it: then no proof is
    accepted for it. (A proof is made from a private copy, private_copy(), as
    times do not show every write: a shared mapping's writes leave them.)"""
    try:
        status = os.stat(path)
    except OSError:
        return None
    if (
        not stat.S_ISREG(status.st_mode)
        or status.st_uid not in (os.geteuid(), 0)
        or status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        return None
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def _mac(key, sha256, moment, code):
    message = f"edms.backup verified v1\0{sha256}\0{moment}\0{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def issue(sha256, key=None, code=None, now=None):
    """The proof that the archive with that sha256 verified just now, or None
    when no key or code digest can be had."""
    key = load_key() if key is None else key
    code = code_digest() if code is None else code
    if not key or not code or not _SHA256.match(sha256 or ""):
        return None
    moment = int(time.time() if now is None else now)
    return f"v1:{moment}:{_mac(key, sha256, moment, code)}"


def refusal(proof, sha256, key=None, code=None, now=None):
    """None when proof was issued on this host, by this verification code,
    less than PROOF_MAX_AGE seconds ago, for exactly that sha256; else why
    it does not hold, in words for the run's output."""
    found = _PROOF.match(proof or "") if isinstance(proof, str) else None
    if not found:
        return "what was given is not a proof"
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        return "no sha256 to check it against"
    moment = int(found.group(1))
    age = (time.time() if now is None else now) - moment
    if not -60 <= age <= PROOF_MAX_AGE:  # the same host's clock, stepped back a little at most
        return f"the proof is not from the last {PROOF_MAX_AGE // 3600} hours"
    key = load_key(create=False) if key is None else key
    if not key:
        return NO_KEY
    code = code_digest() if code is None else code
    if not code or not hmac.compare_digest(found.group(2), _mac(key, sha256, moment, code)):
        return (
            "the proof does not hold: made for other bytes, under another key (another"
            " host or user, or a key made since), or by another version of the collection"
        )
    return None


def holds(proof, sha256, key=None, code=None, now=None):
    """True only when proof holds for that sha256 (refusal says why not)."""
    return refusal(proof, sha256, key=key, code=code, now=now) is None
