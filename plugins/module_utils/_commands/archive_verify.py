# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Which archive to verify, the verification, and its record beside the archive."""

from __future__ import annotations

import os

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    ArchiveError,
    key_problem_for,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    CatalogueError,
    describe_sealed,
    list_archives,
    record_status,
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


def verify(params):
    path = choose_archive(params["archive"], params["backup_dir"], params["display_timezone"])
    problem = key_problem_for(params.get("encrypt_to"))
    if problem:
        raise VerifyError(f"{path} was not verified and nothing was recorded: {problem}")
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
        known = recorded.get("encryption") if isinstance(recorded.get("encryption"), dict) else {}
        describe_sealed(
            path,
            source,
            sha256=recorded["verification"].get("sha256"),
            recipients=known.get("recipients"),
        )
    result = dict(result, recorded=recorded is not None)
    if not result["ok"]:
        raise VerifyError(
            "archive {} does not verify: {}".format(path, "; ".join(result["problems"])),
            **result,
        )
    return result
