# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The way back from a failed restore (archive_rollback).

Rollback puts a safety backup back: the database from its ``database.pgdump``
with ``pg_restore --single-transaction --clean`` in the db container (the
fixture through _deployment/load.py when the archive has no pgdump), the media
from the work directory of the failed restore when it is there (exact, renames
only), else from the safety archive; then counts and media are compared with
the safety archive's. It reports ``stage`` on failure.

The token is checked before anything else: it must be of the form a restore
makes (_deployment/media.py), and a directory of its name in the media root
must be one a restore made, or nothing is changed.
"""

from __future__ import annotations

import posixpath
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.edms.backup.plugins.module_utils._backend.scrub import scrub
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_restore import (
    STEP_ERRORS,
    swap_in,
)
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._deployment.deployment import (
    Deployment,
    verified_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.load import (
    put_member,
    scratch,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.media import (
    new_token,
    token_error,
    work_dir,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    PGDUMP,
    key_problem_for,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import ExecError

# pg_restore in the db container, logged in as the application
# (_deployment/database.py), into its own database.
PG_RESTORE = [
    "pg_restore",
    "--single-transaction",
    "--clean",
    "--if-exists",
    "--no-owner",
    "--exit-on-error",
    "--no-password",
]


class RollbackError(ModuleFailure):
    """A rollback that failed; ``partial`` says what it did and did not do."""


class Rollback(Deployment):
    failure = RollbackError

    def __init__(self, params, runner=None, containers=None, check_mode=False):
        super().__init__(params, runner=runner, containers=containers)
        self.check_mode = check_mode

    def run(self):
        params = self.params
        path = params["archive"]
        self.result["archive"] = path
        token = params.get("token")
        message = token and token_error(token)
        copy_token = params.get("copy_token")
        message = message or (copy_token and token_error(copy_token, name="copy_token"))
        if not message and copy_token and copy_token == token:
            message = "copy_token names the restore's own work directory (token): give another"
        if message:
            self.fail(f"rollback to {path} not started: {message}")
        metadata = verified_archive(
            self,
            path,
            "put back",
            expected_sha256=params.get("archive_sha256"),
            digest=True,
            proof=params.get("proof"),
        )
        if metadata.get("members", {}).get(PGDUMP) and params["method"] != "fixture":
            method = "pgdump"
        elif params["method"] == "pgdump":
            self.fail(f"archive {path} has no {PGDUMP}; use method fixture")
        else:
            method = "fixture"
        self.result["database_method"] = method
        self.locate()
        work = work_dir(params["media_dir_container"], token) if token else None
        copy = work_dir(params["media_dir_container"], copy_token) if copy_token else None
        if work or copy:
            self.check_work(path, work, copy)
        if self.check_mode:
            self.result["changed"] = True
            self.result["plan"] = [
                f"database from {PGDUMP} with pg_restore in one transaction"
                if method == "pgdump"
                else "database from the fixture in one transaction",
                f"media: the previous media kept in {work}/old, else those of the archive"
                if work
                else "media: those of the archive, if the live media differ",
            ]
            return self.result
        self.result["changed"] = True
        with ThreadPoolExecutor(max_workers=2) as pool:
            # Asked while the database is being replaced, as neither reads it:
            # what the count after it needs from Django, and the live media's
            # hashes (unless a failed restore kept the previous media to put back).
            plan = pool.submit(self.count_plan, metadata)
            hashes = None if work else pool.submit(self.media, "hashes")
            try:
                if method == "pgdump":
                    self.pg_restore(self.source)
                else:
                    self.load(self.source, metadata, reset_models=params.get("reset_models"))
            except STEP_ERRORS as exc:
                self.result["database"] = f"FAILED: {exc}"
                self.fail(f"rollback to {path} could not restore the database: {exc}", exc)
            self.result["database"] = "restored"
            done = f"rollback to {path} restored the database but could not"

            def after_restore(step, call):
                try:
                    return call()
                except STEP_ERRORS as exc:
                    self.fail(f"{done} {step}: {exc}", exc)

            # Media found equal to the archive's and left alone need not be
            # hashed a second time (the database's restore does not touch them).
            unchanged = after_restore(
                "put the media back",
                lambda: self.restore_media(
                    self.source, metadata, work, hashes.result()["hashes"] if hashes else None
                ),
            )
            check = after_restore("count its rows", lambda: self.count_in_sql(plan.result()))
            media = (
                []
                if unchanged
                else after_restore("check the media put back", lambda: self.media_against(metadata))
            )
        if "error" in check:
            self.fail(f"{done} count its rows: {check['error']}")
        self.result["counts"] = check["counts"]
        self.result["count_differences"] = check["differences"]
        self.result["media_differences"] = media
        if check["differences"] or media:
            kept = getattr(self, "kept", None)
            self.fail(
                "rollback to {} finished but the deployment differs from it{}: {}".format(
                    path,
                    f" (the media that were live before it are kept in {kept}/discarded)"
                    if kept
                    else "",
                    "; ".join(
                        [
                            f"{d['model']} expected {d['expected']}, found {d['found']}"
                            for d in check["differences"]
                        ]
                        + media
                    ),
                )
            )
        if getattr(self, "kept", None):
            self.media("finish", self.kept)
        self.result["verified"] = True
        return self.result

    def check_work(self, path, work, copy=None):
        """Fail, before anything changes, when the media root holds a directory
        of work's name that no restore made: it is never taken for the
        previous media. The same for copy (copy_token's): a directory planted
        under that name would stop the copy after the database was put back."""
        try:
            found = self.media("leftovers")
        except STEP_ERRORS as exc:
            self.fail(f"rollback to {path} not started: cannot look at {work or copy}: {exc}", exc)
        unrecognised = found.get("unrecognised") or []
        if copy and posixpath.basename(copy) in unrecognised:
            self.fail(
                f"rollback to {path} not started: {copy}, the work directory copy_token names,"
                " was not made by a restore or rollback (it lacks the marker with its token);"
                " nothing was changed. Look at what it holds and remove it, or roll back"
                " with another copy_token"
            )
        if not work:
            return
        name = posixpath.basename(work)
        if name in unrecognised:
            self.fail(
                f"rollback to {path} not started: {work} was not made by a restore"
                " (it lacks the marker with its token), so its content is not put back"
                " as the previous media; nothing was changed. Look at what it holds"
                " and remove it, then roll back without the token (the media then come"
                " from the archive)"
            )

    def pg_restore(self, path):
        db = self.db.container_id
        with scratch(self.containers, db, "edms-rollback") as private:
            dump = put_member(self.containers, db, path, PGDUMP, private.path, private.owner)
            # pg_restore's errors quote the row they failed on.
            database = self.login.credentials()["name"]
            argv = private.command([*PG_RESTORE, "-d", database, dump])
            try:
                self.login.run(argv, what="pg_restore", clean=scrub)
            except ExecError as exc:
                private.removed = exc.rc is not None
                raise
            private.removed = True

    def restore_media(self, path, metadata, work, hashes=None):
        """Put the archive's media back; True when they were found equal to the
        archive's and left as they were. hashes: the live media's, if taken
        (without work only: putting the previous media back changes them)."""
        copy = None
        if self.params.get("copy_token"):
            # An earlier run's copy under the same token, which died: what it
            # holds was live before that copy, and its caller's safety backup
            # holds it. The media are put back from the archive below.
            copy = work_dir(self.params["media_dir_container"], self.params["copy_token"])
            self.media("finish", copy)
        if work:
            if self.media("putback", work).get("previous"):
                # Removed once they are found equal to the archive's (run()).
                self.kept = work
                self.result["media"] = "previous media moved back"
                self.result["media_replaced_kept_in"] = work + "/discarded"
                return False
            self.media("finish", work)
        if not self.media_against(metadata, hashes):
            self.result["media"] = "unchanged (already equal to the archive's)"
            return True
        work = copy or work_dir(self.params["media_dir_container"], new_token())
        swap = swap_in(self, path, work)
        self.media("finish", work)
        self.result["media"] = "copied from the archive ({} files in)".format(swap["moved_in"])
        return False


def rollback(params, runner=None, containers=None, check_mode=False):
    problem = key_problem_for(params.get("encrypt_to"))
    if problem:
        raise RollbackError(
            f"Nothing was changed: {problem}. The rollback's safety backup is encrypted to"
            " those recipients, and a rollback that fails is put back from it: give the key"
            " that opens them",
            archive=params["archive"],
        )
    return Rollback(params, runner=runner, containers=containers, check_mode=check_mode).run()
