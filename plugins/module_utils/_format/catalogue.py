# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The archives in a backup directory, and what is known about each.

What was found out about an archive later (its verification, its rehearsal)
is kept beside it in ``<archive>.status.json``, with the archive's size,
modification time and sha256 at that moment: if the archive's size or time
changes afterwards, the state is reported as stale rather than trusted.

Nothing in the backup directory is trusted. Whoever can write there can
plant links, forge status files and leave broken archives, so:

- no link is followed: a name is read with open_regular (_platform/files.py);
- a status entry without the archive's sha256 is ``unconfirmed``, never
  ``passed``; where a decision rests on an archive being verified (the newest
  verified one: list_archives, retention, freshness), that one archive's
  sha256 is computed again and compared (confirm_verified) before it is
  believed;
- an archive that cannot be read is listed with ``unreadable`` saying why,
  its state ``unreadable``, never verified: describe_archive never raises,
  and list_archives raises only when the directory itself cannot be listed.

Verification states: ``passed`` (recorded ok, with a sha256, the archive's
size and time unchanged since), ``unconfirmed`` (recorded ok without a
sha256: an old or forged record), ``failed``, ``stale`` (the archive changed
since, or its sha256 is no longer the one recorded), ``unverified`` (nothing
recorded, or a status file that cannot be read) and ``unreadable``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    FIXTURE,
    METADATA,
    METADATA_MAX_SIZE,
    PGDUMP,
    ArchiveError,
    KeyProblem,
    has_decryption_key,
    is_archive_name,
    is_encrypted,
    open_zip,
    plaintext_of,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import (
    archive_sha256,
    open_directory,
    open_regular,
    read_regular,
    write_atomically,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import (
    TimeZoneError,
    local_iso,
    parse_instant,
    utc_iso,
    zone,
)

STATUS_SUFFIX = ".status.json"
# A status file holds a few hundred bytes.
STATUS_MAX_SIZE = 1 << 20
LAYOUT = "edms.backup v1"
UNKNOWN_LAYOUT = "unknown"
# The EDMS's own backups are named by their UTC time: 20260101_130029.
NATIVE_NAME = re.compile(r"^(\d{8})_(\d{6})(\.zip)?$")
ARCHIVE_TIME = re.compile(r"^edms_(\d{8})T(\d{6})Z")
SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Keys of a verification entry that only this process sets, never a status file.
_DERIVED = ("state", "confirmed", "problem")


def human_size(size):
    """A size in bytes as people read it: 512 B, 1.5 KiB ... 3.2 GiB; ? when unknown."""
    if not isinstance(size, int) or isinstance(size, bool):
        return "?"
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def percent(ratio):
    """80%, 79.5%: one decimal only where it matters."""
    return f"{ratio:.1%}".replace(".0%", "%")


class CatalogueError(Exception):
    """The backup directory cannot be read."""


class Unreadable(Exception):
    """An archive that cannot be read; the message says why."""


def printable(text):
    """text as it can be shown: bytes of a file name that are not UTF-8 as \\xNN."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def status_path(archive):
    return archive.rstrip("/") + STATUS_SUFFIX


def _fingerprint(archive, follow_symlinks=False):
    info = os.stat(archive, follow_symlinks=follow_symlinks)
    return {"archive_size": info.st_size, "archive_mtime_ns": info.st_mtime_ns}


def _why(exc):
    """An exception as a reason: its text, or its kind when it has none."""
    strerror = getattr(exc, "strerror", None) if isinstance(exc, OSError) else None
    return strerror or str(exc) or type(exc).__name__


def read_status(archive):
    """{"verification": {...}, "rehearsal": {...}} with each entry marked stale
    if the archive changed since it was recorded; {} without a status file.

    The status file is read without following a link and only if it is a
    regular file of at most STATUS_MAX_SIZE bytes. One that cannot be
    believed, or entries that are not JSON objects, are left out, and
    "unreadable" says why. Never raises for what is in the directory."""
    path = status_path(archive)
    shown = printable(os.path.basename(path))
    try:
        data = read_regular(path, STATUS_MAX_SIZE)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        return {"unreadable": f"status file {shown} cannot be read: {printable(_why(exc))}"}
    try:
        status = json.loads(data)
    except RecursionError:
        return {"unreadable": f"status file {shown} is nested too deeply"}
    except ValueError as exc:
        return {"unreadable": f"status file {shown} is not JSON: {exc}"}
    if not isinstance(status, dict):
        return {"unreadable": f"status file {shown} is not a JSON object"}
    entries = {key: value for key, value in status.items() if isinstance(value, dict)}
    try:
        current = _fingerprint(archive)
    except OSError:
        current = None
    for entry in entries.values():
        if current is None or any(entry.get(k) != v for k, v in current.items()):
            entry["stale"] = True
    if len(entries) < len(status):
        entries["unreadable"] = (
            f"status file {shown}: {len(status) - len(entries)} of its entries are not"
            " JSON objects and were left out"
        )
    return entries


def record_status(archive, kind, entry, source=None, sha256=None):
    """Store entry under kind ("verification", "rehearsal") beside the archive,
    with the archive's size, modification time and sha256.

    source: the file that was checked, when read through a pinned path
    (_format/archive.py pinned): the entry carries its size, time and sha256,
    so that it reads as stale if another file has taken the archive's name
    since. sha256: the archive's, when the caller computed it from the very
    file it checked; computed here otherwise (see _platform/files.py
    archive_sha256). The status file is replaced, never written through a
    link (write_atomically)."""
    checked = source or archive
    follow = source is not None  # this process's own /proc/self/fd/N
    status = {k: v for k, v in read_status(archive).items() if isinstance(v, dict)}
    for value in status.values():
        value.pop("stale", None)
    if sha256 is None:
        sha256 = archive_sha256(checked, follow_symlinks=follow)
    status[kind] = dict(entry, sha256=sha256, **_fingerprint(checked, follow_symlinks=follow))
    text = json.dumps(status, indent=2, sort_keys=True)
    write_atomically(status_path(archive), text, 0o600, suffix=".partial", sync_directory=False)
    return status


# What an encrypted archive's status file says of it, for listing without the
# key: its metadata but the member names (media file names can say too much).
SEALED_SUMMARY = (
    "format",
    "format_version",
    "label",
    "reason",
    "created_at",
    "created_at_local",
    "display_timezone",
    "snapshot_at",
    "source",
    "counts",
    "m2m_tables",
    "required_models",
    "recreated_models",
)


def sealed_entry(metadata, recipients=None):
    """The status file's "encryption" entry of an encrypted archive whose
    metadata.json (members included) is ``metadata``."""
    summary = {key: metadata[key] for key in SEALED_SUMMARY if key in metadata}
    members = metadata.get("members") if isinstance(metadata.get("members"), dict) else {}
    summary["data_bytes"] = sum(
        info["size"]
        for name, info in members.items()
        if name not in (METADATA, PGDUMP)
        and isinstance(info, dict)
        and isinstance(info.get("size"), int)
    )
    entry = {"format": "age", "metadata": summary}
    if recipients:
        entry["recipients"] = list(recipients)
    return entry


def describe_sealed(path, source, sha256=None, recipients=None):
    """Record beside the encrypted archive at ``path`` what listing shows of
    it without the key (sealed_entry), from ``source``, the very file just
    verified with the key (read through decryption). Never raises: without
    it a listing says it cannot read the archive."""
    try:
        with open_zip(source) as archive:
            metadata = json.loads(archive.read(METADATA))
        record_status(
            path,
            "encryption",
            sealed_entry(metadata, recipients),
            source=None if sha256 else source,
            sha256=sha256,
        )
    except (ArchiveError, OSError, ValueError):
        pass


def verification_entry(result, at=None):
    return {
        "ok": bool(result["ok"]),
        "at": utc_iso(at or datetime.now(timezone.utc)),
        "problems": list(result.get("problems", [])),
    }


def archive_name_problem(name):
    """Why name is not the bare file name of an archive of this collection, or None."""
    if not isinstance(name, str) or "/" in name or not is_archive_name(name):
        return (
            f"name {name!r} is not the name of an archive of this collection"
            " (edms_YYYYMMDDTHHMMSSZ....zip, no directory)"
        )
    return None


def sha256_problem(value):
    """Why value is not a sha256 as this collection writes one, or None."""
    if not isinstance(value, str) or not SHA256.match(value):
        return f"sha256 {value!r} is not a sha256 (64 lower-case hexadecimal digits)"
    return None


def recorded_sha256(entry):
    """The sha256 a status entry records, or None when it has none (or not one
    of 64 lower-case hexadecimal digits)."""
    value = entry.get("sha256") if isinstance(entry, dict) else None
    return value if isinstance(value, str) and SHA256.match(value) else None


def _time_from_name(name):
    for pattern in (ARCHIVE_TIME, NATIVE_NAME):
        match = pattern.match(name)
        if match:
            try:
                stamp = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
            except ValueError:
                return None  # digits, but no time: 20261399_000000
            return stamp.replace(tzinfo=timezone.utc)
    return None


def _parse_metadata(data):
    """metadata.json's bytes as a dict, or None when it is JSON but not an
    object; raises Unreadable for what is not JSON."""
    try:
        metadata = json.loads(data)
    except RecursionError:
        raise Unreadable(f"{METADATA} is nested too deeply") from None
    except ValueError as exc:
        raise Unreadable(f"{METADATA} is not JSON: {exc}") from None
    return metadata if isinstance(metadata, dict) else None


def _zip_metadata(archive):
    """(has the fixture, metadata or None) of an open ZipFile; raises Unreadable."""
    names = set(archive.namelist())
    if METADATA not in names:
        return FIXTURE in names, None
    info = archive.getinfo(METADATA)
    if info.file_size > METADATA_MAX_SIZE:
        raise Unreadable(
            f"{METADATA} is {info.file_size} bytes, more than the {METADATA_MAX_SIZE} read"
        )
    try:
        with archive.open(info) as handle:
            data = handle.read(METADATA_MAX_SIZE + 1)
    except Exception as exc:  # zlib.error, BadZipFile (CRC), NotImplementedError...
        raise Unreadable(f"{METADATA} cannot be read: {_why(exc)}") from None
    if len(data) > METADATA_MAX_SIZE:
        raise Unreadable(f"{METADATA} is more than the {METADATA_MAX_SIZE} bytes read")
    return FIXTURE in names, _parse_metadata(data)


def _read_zip(path):
    """(has the fixture, metadata or None, size) of a ZIP archive; raises Unreadable."""
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if not has_decryption_key() and is_encrypted(handle):
                return (*_sealed_metadata(path), size)
            try:
                source = plaintext_of(handle, path)
            except KeyProblem:  # a key that does not open it: as without one
                return (*_sealed_metadata(path), size)
            with source, zipfile.ZipFile(source) as archive:
                has_fixture, metadata = _zip_metadata(archive)
    except FileNotFoundError:
        raise
    except Unreadable:
        raise
    except ArchiveError as exc:
        raise Unreadable(str(exc)) from None
    except OSError as exc:
        raise Unreadable(f"cannot be read: {_why(exc)}") from None
    except Exception as exc:  # BadZipFile, a central directory that lies...
        raise Unreadable(f"not a readable ZIP file: {_why(exc)}") from None
    return has_fixture, metadata, size


def _is_sealed(path):
    """Whether the regular file at path is an encrypted archive (a link is not followed)."""
    try:
        with open_regular(path) as handle:
            return is_encrypted(handle)
    except OSError:
        return False


def _sealed_metadata(path):
    """(has the fixture, metadata) of an encrypted archive read without the
    key: the summary its status file recorded when it was encrypted
    (archive_create), as long as the archive has not changed since."""
    entry = read_status(path).get("encryption")
    if (
        not isinstance(entry, dict)
        or entry.get("stale")
        or not isinstance(entry.get("metadata"), dict)
    ):
        raise Unreadable(
            "it is encrypted (age) and its status file does not describe it (missing, or"
            " recorded before the archive last changed); with the decryption key it is read"
        )
    return True, entry["metadata"]


def _read_directory(path):
    """(has the fixture, metadata or None, size) of a directory archive, read
    without following a link; raises Unreadable."""
    try:
        top = open_directory(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise Unreadable(f"cannot be read: {_why(exc)}") from None
    try:
        try:
            mode = os.stat(FIXTURE, dir_fd=top, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return False, None, None
        if not stat.S_ISREG(mode):
            raise Unreadable(f"{FIXTURE} is not a regular file (a link is not followed)")
        try:
            metadata = _parse_metadata(read_regular(METADATA, METADATA_MAX_SIZE, dir_fd=top))
        except FileNotFoundError:
            metadata = None
        except OSError as exc:
            raise Unreadable(f"{METADATA} cannot be read: {_why(exc)}") from None
        size = 0
        for _root, _dirs, files, root_fd in os.fwalk(".", dir_fd=top):
            for name in files:
                size += os.stat(name, dir_fd=root_fd, follow_symlinks=False).st_size
        return True, metadata, size
    except (Unreadable, FileNotFoundError):
        raise
    except OSError as exc:
        raise Unreadable(f"cannot be read: {_why(exc)}") from None
    finally:
        os.close(top)


def _state(verification, unreadable):
    if unreadable:
        return "unreadable"
    if not verification:
        return "unverified"
    if verification.get("stale"):
        return "stale"
    if verification.get("ok") is not True:
        return "failed"
    if recorded_sha256(verification) is None:
        return "unconfirmed"
    return "passed"


def _created(metadata, name):
    """When the archive was taken: its metadata's created_at, else its name's time."""
    value = (metadata or {}).get("created_at")
    if isinstance(value, str):
        try:
            created = parse_instant(value)
            utc_iso(created)  # an instant that exists in UTC too
            return created
        except (ValueError, OverflowError):
            pass
    return _time_from_name(name)


def _local(created, display_timezone):
    try:
        return local_iso(created, display_timezone)
    except (OverflowError, ValueError):
        return utc_iso(created)


def _text(value):
    return value if isinstance(value, str) else ""


def _counts(metadata):
    """Objects per model from metadata, m2m tables left out; only whole numbers."""
    counts = metadata.get("counts")
    m2m = metadata.get("m2m_tables")
    m2m = {t for t in m2m if isinstance(t, str)} if isinstance(m2m, list) else set()
    if not isinstance(counts, dict):
        return {}
    return {
        model: count
        for model, count in counts.items()
        if model not in m2m and isinstance(count, int) and not isinstance(count, bool)
    }


def _entry(path, name, layout, size, created, metadata, display_timezone, unreadable=None):
    status = read_status(path)
    verification = {
        k: v for k, v in (status.get("verification") or {}).items() if k not in _DERIVED
    }
    state = _state(status.get("verification"), unreadable)
    if status.get("unreadable"):
        verification["problem"] = status["unreadable"]
    rehearsal = status.get("rehearsal")
    if rehearsal is not None and recorded_sha256(rehearsal) is None:
        rehearsal = dict(rehearsal, unconfirmed=True)
    has_metadata = metadata is not None
    metadata = metadata or {}
    return {
        "name": name,
        "path": path,
        "layout": layout,
        "size": size,
        "created_at": utc_iso(created),
        "created_at_local": _local(created, display_timezone),
        "label": _text(metadata.get("label")),
        "reason": _text(metadata.get("reason")),
        "metadata": has_metadata,
        "counts": _counts(metadata),
        "verification": dict(verification, state=state),
        "rehearsal": rehearsal,
        "copies": [] if unreadable else copies_of(status),
        "encrypted": False,
        "unreadable": unreadable,
    }


def copies_of(status):
    """The verified copies a status file records (archive_copy, state
    recorded), by destination name: [{"destination", "kind", "location",
    "at"}]; empty once the archive changed since they were recorded (the
    entry is stale), or when what is recorded is not plain text."""
    record = status.get("copies")
    if not isinstance(record, dict) or record.get("stale"):
        return []
    sha256 = recorded_sha256(record)
    destinations = record.get("destinations")
    if sha256 is None or not isinstance(destinations, dict):
        return []
    found = []
    for name, copy in sorted(destinations.items()):
        if not isinstance(copy, dict) or copy.get("sha256") != sha256:
            continue
        fields = {key: copy.get(key) for key in ("kind", "location", "at")}
        if all(isinstance(value, str) for value in fields.values()):
            found.append(dict(fields, destination=name))
    return found


def _layout(name, kind):
    if kind == "zip":
        return LAYOUT if is_archive_name(name) else "edms-native zip"
    return "edms-native directory"


def _named_as_archive(name):
    return is_archive_name(name) or bool(NATIVE_NAME.match(name))


def _unreadable(path, name, layout, reason, display_timezone, info=None):
    """The entry of an archive that cannot be read: its time from its name,
    else from the file system; never verified."""
    created = _time_from_name(name)
    if created is None and info is not None:
        try:
            created = datetime.fromtimestamp(info.st_mtime, timezone.utc)
        except (OverflowError, ValueError, OSError):
            created = None
    size = info.st_size if info is not None and stat.S_ISREG(info.st_mode) else None
    return _entry(
        path, name, layout, size, created or EPOCH, None, display_timezone, unreadable=reason
    )


def _describe(path, name, display_timezone):
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        if name.endswith(".zip") or _named_as_archive(name):
            kind = "zip" if name.endswith(".zip") else "directory"
            reason = "it is a symbolic link, which is not followed"
            return _unreadable(path, name, _layout(name, kind), reason, display_timezone, info)
        return None
    if stat.S_ISREG(info.st_mode) and name.endswith(".zip"):
        kind, read = "zip", _read_zip
    elif stat.S_ISDIR(info.st_mode):
        kind, read = "directory", _read_directory
    else:
        return None
    layout = _layout(name, kind)
    try:
        has_fixture, metadata, size = read(path)
    except Unreadable as exc:
        if layout != LAYOUT and not _named_as_archive(name):
            return None  # nothing says it is an archive
        entry = _unreadable(path, name, layout, str(exc), display_timezone, info)
        entry["encrypted"] = kind == "zip" and _is_sealed(path)
        return entry
    if layout != LAYOUT and not has_fixture:
        return None
    created = _created(metadata, name)
    if created is None:
        created = datetime.fromtimestamp(info.st_mtime, timezone.utc)
    entry = _entry(path, name, layout, size, created, metadata, display_timezone)
    entry["encrypted"] = kind == "zip" and _is_sealed(path)
    return entry


def describe_archive(path, display_timezone):
    """One catalogue entry, or None if path is not an archive of either layout
    (or is gone). Never raises: an archive that cannot be read is listed with
    ``unreadable`` saying why and the state ``unreadable``; one whose name is
    not UTF-8 too, under its name with the bytes shown as \\xNN, and it is
    never this collection's (nor pruned) until it is renamed."""
    # "dir/" would name what a link there points to.
    path = path.rstrip("/") or path
    name = os.path.basename(path)
    try:
        entry = _describe(path, name, display_timezone)
    except FileNotFoundError:
        return None  # removed while the directory was listed
    except Exception as exc:  # whatever an archive's bytes provoke: it is one entry
        layout = LAYOUT if is_archive_name(name) else UNKNOWN_LAYOUT
        reason = f"cannot be read: {_why(exc)}"
        try:
            entry = _unreadable(path, name, layout, reason, display_timezone, _lstat(path))
        except Exception:  # its status file too: the entry without it
            entry = _bare(path, name, layout, reason)
    if entry is not None and printable(name) != name:
        entry.update(
            name=printable(name),
            path=printable(path),
            layout=UNKNOWN_LAYOUT,
            unreadable="its name is not valid UTF-8: rename it",
        )
        entry["verification"]["state"] = "unreadable"
    return entry


def _bare(path, name, layout, reason):
    """An unreadable archive's entry made of nothing that is read."""
    created = utc_iso(_time_from_name(name) or EPOCH)
    return {
        "name": name,
        "path": path,
        "layout": layout,
        "size": None,
        "created_at": created,
        "created_at_local": created,
        "label": "",
        "reason": "",
        "metadata": False,
        "counts": {},
        "verification": {"state": "unreadable"},
        "rehearsal": None,
        "copies": [],
        "encrypted": False,
        "unreadable": reason,
    }


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError:
        return None


def confirm_verified(entry):
    """Whether a catalogue entry's ``passed`` verification holds: the sha256 of
    the archive, computed now (a link is not followed), equals the one
    recorded. Otherwise the entry's verification becomes ``stale`` and
    ``problem`` says why. The archive is read whole, once per entry."""
    verification = entry.get("verification") or {}
    if verification.get("state") != "passed":
        return False
    if verification.get("confirmed"):
        return True
    recorded = recorded_sha256(verification)
    try:
        found = archive_sha256(entry["path"])
    except OSError as exc:
        problem = f"its sha256 cannot be computed now: {printable(_why(exc))}"
    else:
        if found == recorded:
            verification["confirmed"] = True
            return True
        problem = f"its sha256 is now {found}, not the {recorded} recorded when it was verified"
    verification.update(state="stale", stale=True, problem=problem)
    return False


def newest_confirmed(archives):
    """The first of archives (newest first) whose verification passed and is
    confirmed by the archive's sha256 (confirm_verified), or None. One that
    claims to have passed but does not confirm is marked stale on the way."""
    for entry in archives:
        if confirm_verified(entry):
            return entry
    return None


def list_archives(backup_dir, display_timezone, confirm=True):
    """Archives in backup_dir, newest first, and interrupted partial files.

    newest_verified: the newest archive whose verification passed, confirmed
    by its sha256 unless confirm is false (see newest_confirmed). Raises
    CatalogueError only when the directory cannot be listed (or the display
    time zone is unusable); an archive that cannot be read is listed as such."""
    try:
        zone(display_timezone)
    except TimeZoneError as exc:
        raise CatalogueError(f"display_timezone: {exc}") from exc
    try:
        names = sorted(os.listdir(backup_dir))
    except OSError as exc:
        raise CatalogueError(f"cannot list backup directory {backup_dir}: {exc.strerror}") from exc
    archives, partials = [], []
    for name in names:
        path = os.path.join(backup_dir, name)
        if name.startswith("."):
            if name.endswith(".partial"):
                partials.append(printable(path))
            continue
        if name.endswith(STATUS_SUFFIX):
            continue
        entry = describe_archive(path, display_timezone)
        if entry is not None:
            archives.append(entry)
    archives.sort(key=lambda e: (e["created_at"], e["name"]), reverse=True)
    if confirm:
        newest_verified = newest_confirmed(archives)
    else:
        newest_verified = next(
            (e for e in archives if e["verification"]["state"] == "passed"), None
        )
    return {
        "archives": archives,
        "newest": archives[0] if archives else None,
        "newest_verified": newest_verified,
        "partials": partials,
    }
