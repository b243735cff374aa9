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
what happened. From the first step that changes anything on, whatever
fails (the Docker engine lost, a bug of ours), the failure carries ``token``
and what is live: ``media_live`` (``previous``, ``archive`` or ``unknown``)
and ``database_load`` (``not started``, ``rolled back``, ``committed`` or
``unknown``: the engine was lost while the load ran, which may still commit
in the container). Its way back is archive_rollback.py with that token;
restore_finish.py removes the previous media once the run has succeeded.
"""

from __future__ import annotations

import posixpath

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._deployment.deployment import (
    Deployment,
    verified_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.load import (
    COMMITTED,
    FAIL_STAGES,
    ROLLED_BACK,
    UNKNOWN,
    LoadError,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.media import (
    MediaError,
    archive_media,
    new_token,
    stage_media,
    token_error,
    work_dir,
)
from ansible_collections.edms.backup.plugins.module_utils._faults import FaultError, injected_fault
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    ArchiveError,
    key_problem_for,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import DjangoError
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import (
    ExecError,
    engine_failure,
)

# Where a fault can be injected into a live restore (tests only, _faults.py): the load's
# stages, the media swap, and after everything committed (as if what follows,
# the restart, failed).
RESTORE_FAIL_STAGES = ("media_swap", *FAIL_STAGES, "after_commit")

# ArchiveError: a member the verified archive should have, unreadable.
STEP_ERRORS = (ExecError, DjangoError, MediaError, LoadError, ArchiveError)

# The media live after a failure (result "media_live").
PREVIOUS, ARCHIVE = "previous", "archive"
# The load, before it started (result "database_load"; the others: _deployment/load.py).
NOT_STARTED = "not started"
# What each state of the database says in a failure's message.
DATABASE_SAYS = {
    NOT_STARTED: "the database is as it was (the load did not start)",
    ROLLED_BACK: "the database is as it was (the load is one transaction and rolled back)",
    COMMITTED: "the database holds the archive's data (the load committed)",
    UNKNOWN: "whether the load commits is not known: it may still be running in the backend"
    " container, so the database may hold the archive's data or be as it was",
}
MEDIA_SAYS = {
    PREVIOUS: "the previous media are live",
    ARCHIVE: "the archive's media are live",
    UNKNOWN: "which media are live is not known",
}


def step_failure(exc):
    """An exception as a message: ours as they are, anything else with its type."""
    return str(exc) if isinstance(exc, STEP_ERRORS) else engine_failure(exc)


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
            self,
            path,
            "restored",
            expected_sha256=params.get("archive_sha256"),
            digest=True,
            proof=params.get("proof"),
        )
        self.locate()
        try:
            self.migrations_against(metadata, refusal=f"archive {path} is not restored")
            found = self.media("leftovers")
            leftovers = found["leftovers"]
            token = params.get("token")
            if token and posixpath.basename(work_dir(params["media_dir_container"], token)) in (
                leftovers + list(found.get("unrecognised") or [])
            ):
                self.fail(
                    f"restore of {path} not started: the work directory of token {token}"
                    " exists already in the media root; a restore token names a new one"
                )
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
        message = params.get("token") and token_error(params["token"])
        if message:
            self.fail(f"restore of {params['archive']} not started: {message}")
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
        token = params.get("token") or new_token()
        work = work_dir(params["media_dir_container"], token)
        # From here on every failure carries the token and what is live
        # (replace()), whatever raised it.
        self.result.update(
            token=token,
            media_previous=work + "/old",
            stage="media_swap",
            media_live=PREVIOUS,
            database_load=NOT_STARTED,
        )
        try:
            return self.replace(metadata, work, fail_at)
        except RestoreError:
            raise
        except Exception as exc:  # a fault of our own: the state is told all the same
            self.fail_replacing(f"failed at {self.result['stage']}: {engine_failure(exc)}", exc)

    def fail_replacing(self, what, cause=None):
        """Fail saying what failed, then what is live (media, database) and the way back."""
        result = self.result
        self.fail(
            f"restore of {self.params['archive']} {what}. Now {MEDIA_SAYS[result['media_live']]}"
            f" and {DATABASE_SAYS[result['database_load']]}; the safety backup and"
            f" restore_token={result['token']} put back the state before the restore"
            " (playbooks/rollback.yml)",
            cause,
        )

    def replace(self, metadata, work, fail_at):
        """Media swapped in, database loaded; on any failure the previous media
        put back (unless the load committed) and the state told."""
        result = self.result
        try:
            result["changed"] = True
            result["media_live"] = UNKNOWN  # a swap that fails halfway may leave either
            result["media"] = swap_in(self, self.source, work, fail_at=fail_at)
            result["media_live"] = ARCHIVE
            differences = self.media_against(metadata)
            if differences:
                raise MediaError(
                    "the media after the swap differ from the archive's: " + "; ".join(differences)
                )
        except Exception as exc:  # STEP_ERRORS, the engine's transport, a fault of ours
            answer = exc.answer if isinstance(exc, MediaError) else {}
            self.put_back_media(work, answer.get("undone"))
            self.fail_replacing(f"failed at the media: {step_failure(exc)}", exc)

        result["stage"] = "database"
        load_fail_at = fail_at if fail_at in FAIL_STAGES else None
        try:
            report = self.load(
                self.source,
                metadata,
                fail_at=load_fail_at,
                reset_models=self.params.get("reset_models"),
            )
        except Exception as exc:  # STEP_ERRORS, the engine's transport, a fault of ours
            if getattr(exc, "stage", None):
                result["stage"] = "database_" + exc.stage
            # Deployment.load: once the load started, only a LoadError with its
            # outcome; anything else was raised before it started.
            outcome = getattr(exc, "outcome", None) if isinstance(exc, LoadError) else None
            result["database_load"] = outcome = outcome or NOT_STARTED
            if outcome != COMMITTED:
                self.put_back_media(work)
            self.fail_replacing(f"failed loading the database: {step_failure(exc)}", exc)
        result["database_load"] = COMMITTED
        result.update(load=report, counts=report["counts"], stage="committed")
        if fail_at == "after_commit":
            self.fail_replacing("failed after the commit: injected failure after commit")
        result["stage"] = "done"
        return result

    def put_back_media(self, work, undone=None):
        """After a failure: the previous media back, the work directory gone.
        Never raises: result's media_put_back and media_live say how it went."""
        result = self.result
        try:
            if undone:
                result["media_put_back"] = "swap undone"
            elif self.media("putback", work).get("previous"):
                result["media_put_back"] = "previous media moved back"
            else:
                result["media_put_back"] = "media not swapped yet"
        except Exception as exc:  # STEP_ERRORS, the engine's transport, a fault of ours
            # A put-back that failed may have moved part of them.
            result.update(media_put_back=f"FAILED: {step_failure(exc)}", media_live=UNKNOWN)
            return
        result["media_live"] = PREVIOUS
        try:
            self.media("finish", work)
        except Exception as exc:  # the previous media are back; only the work directory stays
            result["media_put_back"] += (
                f" (the work directory {work} not removed: {step_failure(exc)})"
            )

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
    problem = key_problem_for(params.get("encrypt_to"))
    if problem:
        raise RestoreError(
            f"Nothing was changed: {problem}. The restore's safety backup is encrypted to"
            " those recipients, and a restore that fails is put back from it: give the key"
            " that opens them (all of them, as identity lines of one key, while keys change)",
            archive=params["archive"],
        )
    return LiveRestore(params, runner=runner, containers=containers, check_mode=check_mode).run()
