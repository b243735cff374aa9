# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Pruning a backup directory by the retention rules of _format/retention.py,
and removing the collection's own interrupted partial files."""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    LAYOUT,
    CatalogueError,
    confirm_verified,
    list_archives,
    read_status,
    status_path,
)
from ansible_collections.edms.backup.plugins.module_utils._format.retention import (
    protected,
    select,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import parse_instant

# The names this collection's writers give their files before they are
# complete: an archive being written (_format/archive.py ArchiveWriter), the
# pg_dump spooled beside it (_commands/archive_create.py PgDumpSpool), a status
# file and the catalogue page being replaced (_platform/files.py
# temporary_name, through write_atomically).
_ARCHIVE = r"edms_[0-9]{8}T[0-9]{6}Z[A-Za-z0-9._-]*\.zip"
_NATIVE = r"[0-9]{8}_[0-9]{6}(?:\.zip)?"
PARTIAL_NAME = re.compile(
    rf"\A\.(?:{_ARCHIVE}(?:\.pgdump|\.sealed)?\.partial"
    rf"|(?:{_ARCHIVE}|{_NATIVE})\.status\.json\.[0-9a-f]{{8}}\.partial"
    r"|index\.html\.[0-9a-f]{8}\.tmp)\Z"
)
# A writer that is still at work touches its file far more often than this.
PARTIAL_MIN_AGE_SECONDS = 3600


def _copy_of(path):
    """The host a copy at a destination comes from, as archive_copy recorded it."""
    origin = read_status(path).get("copy_of")
    host = origin.get("source_host") if isinstance(origin, dict) else None
    return host if isinstance(host, str) else None


class PruneError(ModuleFailure):
    """Archives cannot be listed or pruned."""


def prune(params, check_mode=False, now=None):
    now = now or datetime.now(timezone.utc)
    try:
        # The newest verified archive is confirmed below, as retention asks.
        catalogue = list_archives(params["backup_dir"], params["display_timezone"], confirm=False)
    except CatalogueError as exc:
        raise PruneError(str(exc)) from exc
    # Only this collection's archives are pruned; the EDMS's own backups are
    # listed by archive_info but left to the people who made them.
    ours = [a for a in catalogue["archives"] if a["layout"] == LAYOUT]
    others = []
    if params.get("copies_of"):
        # A copy destination: only the copies archive_copy put there from that
        # host (its status file's copy_of); another host's, or a file nobody
        # recorded, is never pruned from here.
        mine = [a for a in ours if _copy_of(a["path"]) == params["copies_of"]]
        others = [a["name"] for a in ours if a not in mine]
        ours = mine
    by_name = {a["name"]: a for a in ours}
    entries = [
        {
            "name": a["name"],
            "created_at": parse_instant(a["created_at"]),
            "label": a["label"],
            "verified": a["verification"]["state"] == "passed",
        }
        for a in ours
    ]
    try:
        selection = select(
            entries,
            now,
            keep_last=params["keep_last"],
            keep_daily=params["keep_daily"],
            keep_weekly=params["keep_weekly"],
            display_timezone=params["display_timezone"],
            safety_labels=tuple(params["safety_labels"]),
            safety_min_age_days=params["safety_min_age_days"],
            # "Never delete the newest verified" believes a status file only
            # once the archive's sha256 is the one it records.
            confirm=lambda name: confirm_verified(by_name[name]),
        )
    except ValueError as exc:
        raise PruneError(str(exc)) from exc
    selection = protected(selection, params.get("protect") or ())
    not_confirmed = [
        {"name": name, "problem": by_name[name]["verification"].get("problem")}
        for name in selection["not_confirmed"]
    ]
    warnings = [
        f"archive {item['name']} is not counted as verified: {item['problem']}"
        for item in not_confirmed
    ]
    deleted = delete_archives(
        [by_name[item["name"]]["path"] for item in selection["delete"]],
        check_mode,
        selection["keep"],
    )
    removed = remove_partials(params["backup_dir"], now, check_mode, warnings)
    result = {
        "changed": bool(deleted or removed),
        "deleted": deleted,
        "keep": selection["keep"],
        "newest_verified": selection["newest_verified"],
        "not_confirmed": not_confirmed,
        "not_pruned": [a["name"] for a in catalogue["archives"] if a["layout"] != LAYOUT] + others,
        "partials_removed": removed,
    }
    if warnings:
        result["warnings"] = warnings
    return result


def delete_archives(paths, check_mode, keep):
    """Delete each archive and its status file; the paths (would be) deleted."""
    deleted = []
    for path in paths:
        if not check_mode:
            try:
                os.unlink(path)
            except OSError as exc:
                raise PruneError(
                    f"cannot delete archive {path}: {exc.strerror}",
                    deleted=deleted,
                    keep=keep,
                ) from exc
        deleted.append(path)
        if not check_mode:
            try:
                os.unlink(status_path(path))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise PruneError(
                    f"deleted archive {path}, but not its status file"
                    f" {status_path(path)}: {exc.strerror}",
                    deleted=deleted,
                    keep=keep,
                ) from exc
    return deleted


def remove_partials(backup_dir, now, check_mode, warnings):
    """Remove the collection's own interrupted partial files in backup_dir:
    regular files (a link is never followed, nor removed) named as its
    writers name them (PARTIAL_NAME), last written more than an hour before
    now. The paths (would be) removed; what cannot be removed is a warning."""
    try:
        names = sorted(os.listdir(backup_dir))
    except OSError as exc:
        warnings.append(f"interrupted partial files not looked for: {exc.strerror}")
        return []
    removed = []
    cutoff = now.timestamp() - PARTIAL_MIN_AGE_SECONDS
    for name in names:
        if not PARTIAL_NAME.match(name):
            continue
        path = os.path.join(backup_dir, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            warnings.append(f"interrupted partial file {path} not removed: {exc.strerror}")
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_mtime > cutoff:
            continue
        if not check_mode:
            try:
                os.unlink(path)  # removes the name; never follows a link
            except FileNotFoundError:
                continue
            except OSError as exc:
                warnings.append(f"interrupted partial file {path} not removed: {exc.strerror}")
                continue
        removed.append(path)
    return removed
