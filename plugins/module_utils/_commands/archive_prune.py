# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Pruning a backup directory by the retention rules of _format/retention.py."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    CatalogueError,
    list_archives,
    status_path,
)
from ansible_collections.edms.backup.plugins.module_utils._format.retention import select
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import parse_instant


class PruneError(ModuleFailure):
    """Archives cannot be listed or pruned."""


def prune(params, check_mode=False, now=None):
    try:
        catalogue = list_archives(params["backup_dir"], params["display_timezone"])
    except CatalogueError as exc:
        raise PruneError(str(exc)) from exc
    # Only this collection's archives are pruned; the EDMS's own backups are
    # listed by archive_info but left to the people who made them.
    ours = [a for a in catalogue["archives"] if a["layout"] == "edms.backup v1"]
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
            now or datetime.now(timezone.utc),
            keep_last=params["keep_last"],
            keep_daily=params["keep_daily"],
            keep_weekly=params["keep_weekly"],
            display_timezone=params["display_timezone"],
            safety_labels=tuple(params["safety_labels"]),
            safety_min_age_days=params["safety_min_age_days"],
        )
    except ValueError as exc:
        raise PruneError(str(exc)) from exc
    paths = {a["name"]: a["path"] for a in ours}
    deleted = []
    for item in selection["delete"]:
        path = paths[item["name"]]
        if not check_mode:
            try:
                os.unlink(path)
            except OSError as exc:
                raise PruneError(
                    f"cannot delete archive {path}: {exc.strerror}",
                    deleted=deleted,
                    keep=selection["keep"],
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
                    keep=selection["keep"],
                ) from exc
    return {
        "changed": bool(deleted),
        "deleted": deleted,
        "keep": selection["keep"],
        "newest_verified": selection["newest_verified"],
        "not_pruned": [a["name"] for a in catalogue["archives"] if a not in ours],
    }
