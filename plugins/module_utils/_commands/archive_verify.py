# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Which archive to verify, the verification, and its record beside the archive."""

from __future__ import annotations

import json
import os

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    METADATA,
    ArchiveError,
    open_zip,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    CatalogueError,
    list_archives,
    record_status,
    sealed_entry,
    verification_entry,
)
from ansible_collections.edms.backup.plugins.module_utils._format.verification import verify_pinned


class VerifyError(ModuleFailure):
    """An archive cannot be verified, or does not verify."""


def choose_archive(archive, backup_dir, display_timezone):
    """The archive named, or the newest in backup_dir when none is named."""
    if archive:
        if not os.path.exists(archive):
            raise VerifyError(f"archive {archive} does not exist")
        return archive
    if not backup_dir:
        raise VerifyError("name an archive, or a backup_dir to take the newest from")
    try:
        catalogue = list_archives(backup_dir, display_timezone, confirm=False)
    except CatalogueError as exc:
        raise VerifyError(str(exc)) from exc
    if catalogue["newest"] is None:
        raise VerifyError(f"there is no archive in {backup_dir}")
    return catalogue["newest"]["path"]


def describe_sealed(path, source, status):
    """Record what listing shows of an encrypted archive without the key, when
    its status file does not say it yet (a copy, or one brought back)."""
    known = status.get("encryption")
    if isinstance(known, dict) and isinstance(known.get("metadata"), dict):
        return
    try:
        with open_zip(source) as archive:
            metadata = json.loads(archive.read(METADATA))
        record_status(path, "encryption", sealed_entry(metadata), source=source)
    except (ArchiveError, OSError, ValueError):
        pass  # verified just now; a listing without the key then says it cannot read it


def verify(params):
    path = choose_archive(params["archive"], params["backup_dir"], params["display_timezone"])
    try:
        result, source = verify_pinned(path, required_models=params["required_models"])
    except ArchiveError as exc:  # only for what verify_archive cannot turn into a check
        raise VerifyError(f"cannot verify archive {path}: {exc}") from exc
    recorded = None
    if params["record"]:
        try:
            recorded = record_status(
                path, "verification", verification_entry(result), source=source
            )
        except OSError as exc:
            raise VerifyError(
                f"verified archive {path} but cannot record it beside the archive: {exc}",
                verification=result,
            ) from exc
    if recorded is not None and result["ok"] and result.get("encrypted"):
        describe_sealed(path, source, recorded)
    result = dict(result, recorded=recorded is not None)
    if not result["ok"]:
        raise VerifyError(
            "archive {} does not verify: {}".format(path, "; ".join(result["problems"])),
            **result,
        )
    return result
