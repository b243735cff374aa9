# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The live restore (archive_restore).

LiveRestore replaces the application's database and media with an archive's:

1. verify the archive (refuse one that fails, one of another format, one that
   changed since the caller verified it); compare its migrations with the
   live database's (refuse a difference unless told to go on); refuse while a
   restore work directory is left in the media root;
2. media: unpack beside the live media and swap in (_deployment/media.py); the
   previous media are kept in the work directory;
3. database: the fixture loaded in one transaction that empties the tables,
   loads, checks foreign keys, resets sequences and compares every count with
   the metadata before commit (_deployment/load.py); a failure puts the
   previous media back (the database was not touched: the transaction rolled
   back);
4. the media hash list and the counts compared with the archive after commit.

It reports ``stage`` on failure: where it failed, so that the caller can say
what happened. Its way back is archive_rollback.py; restore_finish.py removes
the previous media once the run has succeeded.
"""

from __future__ import annotations

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._deployment.deployment import (
    Deployment,
    verified_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.load import (
    FAIL_STAGES,
    LoadError,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.media import (
    MediaError,
    archive_media,
    new_token,
    stage_media,
    work_dir,
)
from ansible_collections.edms.backup.plugins.module_utils._faults import FaultError, injected_fault
from ansible_collections.edms.backup.plugins.module_utils._format.archive import ArchiveError
from ansible_collections.edms.backup.plugins.module_utils._platform.django import DjangoError
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import ExecError

# Where a fault can be injected into a live restore (tests only, _faults.py): the load's
# stages, the media swap, and after everything committed (as if what follows,
# the restart, failed).
RESTORE_FAIL_STAGES = ("media_swap", *FAIL_STAGES, "after_commit")

# ArchiveError: a member the verified archive should have, unreadable.
STEP_ERRORS = (ExecError, DjangoError, MediaError, LoadError, ArchiveError)


class RestoreError(ModuleFailure):
    """A restore refused or failed; ``partial`` has ``stage`` and what was done."""


def swap_in(session, archive, work, fail_at=None):
    """The archive's media unpacked into ``work`` and swapped in (_deployment/media.py)."""
    session.media("prepare", work)
    staged = stage_media(session.containers, session.backend.container_id, archive, work)
    return {"files": staged, **session.media("swap", work, fail_at=fail_at)}


class LiveRestore(Deployment):
    failure = RestoreError

    def __init__(self, params, runner=None, containers=None, check_mode=False):
        super().__init__(params, runner=runner, containers=containers)
        self.check_mode = check_mode
        self.result["stage"] = "verify"

    def verify(self):
        """Everything checked before anything changes; the archive's metadata."""
        params = self.params
        path = params["archive"]
        self.result["archive"] = path
        metadata = verified_archive(
            self, path, "restored", expected_sha256=params.get("archive_sha256"), digest=True
        )
        self.locate()
        try:
            self.migrations_against(metadata, refusal=f"archive {path} is not restored")
            leftovers = self.media("leftovers")["leftovers"]
            if leftovers:
                self.fail(
                    "the media root {} holds the work directory of an earlier restore ({}),"
                    " which may hold the only copy of the media from before it: put it back"
                    " with playbooks/rollback.yml (restore_token={}) or, once you are sure,"
                    " remove it".format(
                        params["media_dir_container"],
                        ", ".join(leftovers),
                        leftovers[0].rsplit("-", 1)[-1],
                    )
                )
            before = self.count_against(metadata)
        except STEP_ERRORS as exc:
            self.fail(f"cannot check the deployment before the restore: {exc}", exc)
        if "error" in before:
            self.fail(f"archive {path} does not fit this application: {before['error']}")
        self.result["counts_before"] = before["counts"]
        self.result["counts_archive"] = metadata["counts"]
        self.result["media_files"] = len(archive_media(metadata))
        return metadata

    def plan(self):
        params = self.params
        return [
            f"copy the media of {params['archive']} beside the live media in"
            f" {params['media_dir_container']} and swap them in (the previous media kept"
            " until the run ends)",
            "compare the media with the archive's hash list",
            "empty the application's tables and load the archive's fixture in one"
            " transaction that compares every count and primary key with the archive's"
            " before it commits",
        ]

    def run(self):
        params = self.params
        metadata = self.verify()
        self.result["plan"] = self.plan()
        if params["verify_only"]:
            self.result["stage"] = "verified"
            return self.result
        if self.check_mode:
            self.result.update(changed=True, stage="check")
            return self.result
        try:
            fail_at = injected_fault(RESTORE_FAIL_STAGES)
        except FaultError as exc:
            self.fail(f"restore of {params['archive']} not started: {exc}")
        if fail_at:
            # Never silent: the result and the failure say that a test asked for it.
            self.result["injected_fault"] = fail_at
        token = new_token()
        work = work_dir(params["media_dir_container"], token)
        self.result.update(token=token, media_previous=work + "/old", stage="media_swap")
        try:
            self.result["changed"] = True
            self.result["media"] = swap_in(self, self.source, work, fail_at=fail_at)
            differences = self.media_against(metadata)
            if differences:
                raise MediaError(
                    "the media after the swap differ from the archive's: " + "; ".join(differences)
                )
        except STEP_ERRORS as exc:
            self.put_back_media(work, getattr(exc, "answer", {}).get("undone"))
            self.fail(f"restore of {params['archive']} failed at the media: {exc}", exc)

        self.result["stage"] = "database"
        load_fail_at = fail_at if fail_at in FAIL_STAGES else None
        try:
            report = self.load(
                self.source,
                metadata,
                fail_at=load_fail_at,
                reset_models=params.get("reset_models"),
            )
        except STEP_ERRORS as exc:
            if getattr(exc, "stage", None):
                self.result["stage"] = "database_" + exc.stage
            self.put_back_media(work)
            self.fail(
                f"restore of {params['archive']} failed loading the database: {exc}"
                " (the load is one transaction: the database is as it was)",
                exc,
            )
        self.result.update(load=report, counts=report["counts"], stage="committed")
        if fail_at == "after_commit":
            self.fail("injected failure after commit")
        self.result["stage"] = "done"
        return self.result

    def put_back_media(self, work, undone=None):
        """After a failure: the previous media back, the work directory gone."""
        try:
            if undone:
                self.result["media_put_back"] = "swap undone"
            elif self.media("putback", work).get("previous"):
                self.result["media_put_back"] = "previous media moved back"
            else:
                self.result["media_put_back"] = "media not swapped yet"
            self.media("finish", work)
        except STEP_ERRORS as exc:
            self.result["media_put_back"] = f"FAILED: {exc}"

    def finish(self):
        """Remove the work directory (the previous media) a successful restore kept."""
        self.result.pop("stage")
        self.locate()
        work = work_dir(self.params["media_dir_container"], self.params["token"])
        self.result["work"] = work
        if self.check_mode:
            return self.result
        try:
            self.result["changed"] = self.media("finish", work)["removed"]
        except STEP_ERRORS as exc:
            self.fail(f"cannot remove {work}: {exc}", exc)
        return self.result


def restore(params, runner=None, containers=None, check_mode=False):
    return LiveRestore(params, runner=runner, containers=containers, check_mode=check_mode).run()
