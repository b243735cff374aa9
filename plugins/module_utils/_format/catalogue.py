# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The archives in a backup directory, and what is known about each.

What was found out about an archive later (its verification, its rehearsal)
is kept beside it in ``<archive>.status.json``, with the archive's size and
modification time at that moment: if the archive changes afterwards, the
state is reported as stale rather than trusted.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    FIXTURE,
    METADATA,
    is_archive_name,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import write_atomically
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import (
    TimeZoneError,
    local_iso,
    parse_instant,
    utc_iso,
    zone,
)

STATUS_SUFFIX = ".status.json"
# The EDMS's own backups are named by their UTC time: 20260101_130029.
NATIVE_NAME = re.compile(r"^(\d{8})_(\d{6})(\.zip)?$")
ARCHIVE_TIME = re.compile(r"^edms_(\d{8})T(\d{6})Z")


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


def status_path(archive):
    return archive.rstrip("/") + STATUS_SUFFIX


def _fingerprint(archive):
    info = os.stat(archive)
    return {"archive_size": info.st_size, "archive_mtime_ns": info.st_mtime_ns}


def read_status(archive):
    """{"verification": {...}, "rehearsal": {...}} with each state marked stale if
    the archive changed since it was recorded."""
    try:
        with open(status_path(archive), encoding="utf-8") as handle:
            status = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {"unreadable": True}
    current = _fingerprint(archive)
    for entry in status.values():
        if isinstance(entry, dict) and any(entry.get(k) != v for k, v in current.items()):
            entry["stale"] = True
    return status


def record_status(archive, kind, entry, source=None):
    """Store entry under kind ("verification", "rehearsal") beside the archive.

    source: the file that was checked, when read through a pinned path
    (_format/archive.py pinned): the entry carries its size and time, so that it reads
    as stale if another file has taken the archive's name since."""
    status = {k: v for k, v in read_status(archive).items() if isinstance(v, dict)}
    for value in status.values():
        value.pop("stale", None)
    status[kind] = dict(entry, **_fingerprint(source or archive))
    text = json.dumps(status, indent=2, sort_keys=True)
    write_atomically(status_path(archive), text, 0o600, suffix=".partial", sync_directory=False)
    return status


def verification_entry(result, at=None):
    return {
        "ok": bool(result["ok"]),
        "at": utc_iso(at or datetime.now(timezone.utc)),
        "problems": list(result.get("problems", [])),
    }


def _time_from_name(name):
    for pattern in (ARCHIVE_TIME, NATIVE_NAME):
        match = pattern.match(name)
        if match:
            stamp = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
            return stamp.replace(tzinfo=timezone.utc)
    return None


def _read_metadata(path, is_zip):
    """metadata.json of an archive, or None; never raises for a bad archive."""
    try:
        if is_zip:
            with zipfile.ZipFile(path) as archive:
                if METADATA not in archive.namelist():
                    return None
                with archive.open(METADATA) as handle:
                    data = json.load(handle)
        else:
            with open(os.path.join(path, METADATA), encoding="utf-8") as handle:
                data = json.load(handle)
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return data if isinstance(data, dict) else None


def _has_fixture(path, is_zip):
    if not is_zip:
        return os.path.isfile(os.path.join(path, FIXTURE))
    try:
        with zipfile.ZipFile(path) as archive:
            return FIXTURE in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _size(path, is_zip):
    if is_zip:
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        total += sum(os.lstat(os.path.join(root, name)).st_size for name in files)
    return total


def _state(status):
    verification = status.get("verification")
    if not verification:
        return "unverified"
    if verification.get("stale"):
        return "stale"
    return "passed" if verification.get("ok") else "failed"


def describe_archive(path, display_timezone):
    """One catalogue entry, or None if path is not an archive of either layout."""
    name = os.path.basename(path.rstrip("/"))
    is_zip = os.path.isfile(path) and name.endswith(".zip")
    ours = is_zip and is_archive_name(name)
    if not ours:
        native_dir = os.path.isdir(path) and not os.path.islink(path)
        if not ((is_zip or native_dir) and _has_fixture(path, is_zip)):
            return None
    metadata = _read_metadata(path, is_zip)
    created = None
    if metadata and isinstance(metadata.get("created_at"), str):
        try:
            created = parse_instant(metadata["created_at"])
        except ValueError:
            created = None
    created = created or _time_from_name(name)
    if created is None:
        created = datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc)
    status = read_status(path)
    counts = (metadata or {}).get("counts")
    m2m = set((metadata or {}).get("m2m_tables") or [])
    entry = {
        "name": name,
        "path": path,
        "layout": "edms.backup v1" if ours else "edms-native " + ("zip" if is_zip else "directory"),
        "size": _size(path, is_zip),
        "created_at": utc_iso(created),
        "created_at_local": local_iso(created, display_timezone),
        "label": (metadata or {}).get("label", ""),
        "reason": (metadata or {}).get("reason", ""),
        "metadata": metadata is not None,
        "counts": {k: v for k, v in counts.items() if k not in m2m}
        if isinstance(counts, dict)
        else {},
        "verification": dict(status.get("verification") or {}, state=_state(status)),
        "rehearsal": status.get("rehearsal"),
    }
    return entry


def list_archives(backup_dir, display_timezone):
    """Archives in backup_dir, newest first, and interrupted partial files."""
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
                partials.append(path)
            continue
        if name.endswith(STATUS_SUFFIX):
            continue
        entry = describe_archive(path, display_timezone)
        if entry is not None:
            archives.append(entry)
    archives.sort(key=lambda e: (e["created_at"], e["name"]), reverse=True)
    newest_verified = next((e for e in archives if e["verification"]["state"] == "passed"), None)
    return {
        "archives": archives,
        "newest": archives[0] if archives else None,
        "newest_verified": newest_verified,
        "partials": partials,
    }
