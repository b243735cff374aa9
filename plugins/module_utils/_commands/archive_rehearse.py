# Private to the edms.backup collection: no compatibility promise to anyone else.
"""A rehearsal: an archive restored into a separate database, compared, dropped.

The checklist's Test 3: a database of its own on the same server (by default
``edms_test_restore``) is created and marked as a rehearsal's, migrated with
the application's code, checked against the archive's migration state,
loaded with the restore engine (_deployment/load.py: one transaction, counts and primary
keys compared with the archive's before commit) and dropped again, whatever happened. The live
database is never written. The result is recorded beside the archive.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._backend import (
    migrations as migrations_program,
)
from ansible_collections.edms.backup.plugins.module_utils._backend import (
    native as native_program,
)
from ansible_collections.edms.backup.plugins.module_utils._backend.counts import ALL_MODELS
from ansible_collections.edms.backup.plugins.module_utils._backend.scrub import scrub
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_verify import (
    choose_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._deployment.deployment import (
    Deployment,
    verified_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.load import (
    LoadError,
    put_fixture,
    put_member,
    scratch,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.media import (
    MediaError,
    archive_media,
    media_differences,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    MEDIA_PREFIX,
    PGDUMP,
    ArchiveError,
    ArchiveReader,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    describe_archive,
    record_status,
)
from ansible_collections.edms.backup.plugins.module_utils._format.verification import (
    verify_pinned,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    DjangoError,
    backend_program,
    count_command,
    django_settings,
    parse_answer,
    parse_counts,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import ExecError
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import utc_iso

MARK = "edms.backup rehearsal database"
# pg_restore of an archive's database.pgdump into the emptied rehearsal
# database, logged in as the application (as the rollback runs it).
PG_RESTORE_REHEARSAL = [
    "pg_restore",
    "--single-transaction",
    "--no-owner",
    "--exit-on-error",
    "--no-password",
]
DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RehearsalError(ModuleFailure):
    """A rehearsal that could not run, or whose load failed."""


class Rehearsal(Deployment):
    failure = RehearsalError

    def __init__(self, params, runner=None, containers=None):
        super().__init__(params, runner=runner, containers=containers)
        self.name = params["database"]
        self.result["database"] = self.name

    def create_database(self):
        self.psql(f'CREATE DATABASE "{self.name}"')
        self.psql(f"COMMENT ON DATABASE \"{self.name}\" IS '{MARK}'")
        self.result["changed"] = True

    def rehearse_pgdump(self, metadata):
        """The archive's database.pgdump, which a rollback puts back, restored
        into the rehearsal database made empty again, and its rows counted
        against the archive's: {"snapshot", "counts", "differences"}. A pg_dump
        taken in the fixture's own snapshot must hold exactly its counts;
        one taken in a snapshot of its own (older archives) is only reported."""
        self.psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.create_database()
        db = self.db.container_id
        with scratch(self.containers, db, "edms-rehearsal") as private:
            dump = put_member(self.containers, db, self.source, PGDUMP, private.path, private.owner)
            argv = private.command([*PG_RESTORE_REHEARSAL, "-d", self.name, dump])
            try:
                self.login.run(argv, what="pg_restore", clean=scrub)
            except ExecError as exc:
                private.removed = exc.rc is not None
                raise
            private.removed = True
        answer = self.count_against(metadata, database=self.name)
        if "error" in answer:
            raise DjangoError(f"cannot count the restored pg_dump: {answer['error']}")
        snapshot = (metadata.get("pgdump") or {}).get("snapshot", "unknown")
        found = {
            "snapshot": snapshot,
            "counts": answer["counts"],
            "differences": answer["differences"],
        }
        if answer["differences"]:
            said = "; ".join(
                f"{d['model']} expected {d['expected']}, found {d['found']}"
                for d in answer["differences"]
            )
            if snapshot == "fixture":
                self.result["pgdump"] = found
                self.fail(
                    f"the archive's {PGDUMP}, which a rollback puts back, does not hold the"
                    f" fixture's rows: {said}"
                )
            self.result.setdefault("warnings", []).append(
                f"the archive's {PGDUMP} was taken in a snapshot of its own and its counts"
                f" differ from the fixture's: {said}"
            )
        return found

    def prepare_database(self):
        """Create the rehearsal database; an earlier rehearsal's leftover is dropped."""
        settings = django_settings(self.params)
        live = self.backend_call(
            migrations_program, "database_name_main", {"settings": settings}, "the database name"
        )
        if live.get("database") == self.name:
            self.fail(f"database {self.name} is the application's own; a rehearsal needs another")
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.name}'")
        if exists:
            mark = self.psql(
                "SELECT coalesce(shobj_description(oid, 'pg_database'), '')"
                f" FROM pg_database WHERE datname = '{self.name}'"
            )
            if mark != MARK:
                self.fail(
                    f"database {self.name} exists and is not a rehearsal's; choose another"
                    " name or drop it yourself"
                )
            self.psql(f'DROP DATABASE "{self.name}" WITH (FORCE)')
            self.result["dropped_leftover"] = True
        self.create_database()

    def in_database(self, path, started, work):
        """work()'s answer, run after the rehearsal database is made and
        migrated; the database dropped whatever happened, a failure recorded
        beside the archive and reported with what was done."""
        try:
            self.prepare_database()
            request = {"settings": django_settings(self.params), "database": self.name}
            self.backend_call(migrations_program, "migrate_main", request, "migrate")
            return work()
        except (ExecError, DjangoError, LoadError, MediaError) as exc:
            self.record(False, started, str(exc))
            self.fail(f"rehearsal of {path} in database {self.name} failed: {exc}", exc)
        except RehearsalError as exc:
            self.record(False, started, str(exc))
            raise
        finally:
            if self.result["changed"]:
                self.drop_database()
            failure = sys.exc_info()[1]
            if isinstance(failure, RehearsalError):
                failure.partial.update(self.result)  # what the cleanup did, too
        return None  # not reached: fail() raises

    def drop_database(self):
        self.psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        left = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.name}'")
        self.result["dropped"] = not left

    def run(self):
        params = self.params
        if not DATABASE_NAME.match(self.name or ""):
            self.fail(f"database {self.name!r} is not a plain PostgreSQL name (a-z, 0-9, _)")
        try:
            path = choose_archive(params["archive"], params["backup_dir"], "UTC")
        except ModuleFailure as exc:
            self.fail(str(exc), exc)
        self.result["archive"] = path
        entry = describe_archive(path, "UTC") if os.path.exists(path) else None
        if entry is not None and entry["layout"] != "edms.backup v1":
            # Named unlike this collection's archives: what it holds decides
            # (a renamed archive of this collection's format takes its path).
            try:
                verification, source = verify_pinned(path)
            except ArchiveError as exc:
                self.fail(f"{exc}; so it is not rehearsed", exc)
            if verification["layout"] != "edms.backup v1":
                return NativeRehearsal(self).run(path, verification, source)
        metadata = verified_archive(self, path, "rehearsed")
        self.locate()
        started = time.monotonic()

        def work():
            self.migrations_against(metadata, self.name, refusal="it is not rehearsed")
            report = self.load(self.source, metadata, database=self.name)
            self.result["load"] = report
            self.result["identities"] = report["identities"]
            differences = self.media_against(metadata)
            self.result["media"] = {
                "files": len(archive_media(metadata)),
                "equal_to_live": not differences,
                "differences": differences,
            }
            if PGDUMP in (metadata.get("members") or {}):
                self.result["pgdump"] = self.rehearse_pgdump(metadata)
            return report

        report = self.in_database(path, started, work)
        self.record(True, started)
        self.result["counts"] = report["counts"]
        return self.result

    def record(self, ok, started, error=None, losses=None):
        entry = {
            "ok": ok,
            "at": utc_iso(datetime.now(timezone.utc)),
            "seconds": round(time.monotonic() - started, 1),
            "database": self.name,
        }
        if losses is not None:
            # An application's own backup: how many models (and media) differ.
            entry["losses"] = losses
        if error:
            entry["error"] = error
        self.result["seconds"] = entry["seconds"]
        record_status(self.result["archive"], "rehearsal", entry, source=self.source)
        self.result["recorded"] = entry


class NativeRehearsal:
    """The rehearsal of an archive of the application's own (native) layout:
    verified, loaded with Django's own loaddata into the separate database,
    then every model compared with the live data (_backend/native.py), and
    the archive's media with the live media. What the native format loses
    (rows it leaves out, primary keys replaced through natural keys, times
    cut to milliseconds, media not included) is reported per model in
    ``losses``; the rehearsal fails only when the load itself fails."""

    def __init__(self, session):
        self.session = session
        self.result = session.result
        self.result["layout"] = None

    def program(self, function, request, what):
        try:
            return self.session.backend_call(native_program, function, request, what)
        except (ExecError, DjangoError) as exc:
            self.session.fail(f"cannot run {what}: {exc}", exc)

    def run(self, path, verification, source):
        session, params = self.session, self.session.params
        self.result["layout"] = verification["layout"]
        self.result["verification"] = {
            "ok": verification["ok"],
            "problems": verification["problems"],
        }
        if not verification["ok"]:
            session.fail(
                "archive {} does not verify, so it is not rehearsed: {}".format(
                    path, "; ".join(verification["problems"])
                )
            )
        session.archive_path, session.source = path, source
        backup_counts = verification["fixture_counts"]
        session.locate()
        started = time.monotonic()
        settings = django_settings(params)

        def work():
            self.result["migrations"] = (
                "not checked: the application's metadata.json names no migrations"
            )
            try:
                self.result["load"] = self.load(source, settings)
            except LoadError:
                self.count_only(backup_counts)
                raise
            compared = self.program(
                "compare_main",
                {"settings": settings, "database": session.name, "backup_counts": backup_counts},
                "the comparison with the live data",
            )
            if "error" in compared:
                raise DjangoError(f"the comparison with the live data failed: {compared['error']}")
            self.result["models"] = compared["models"]
            self.result["media"] = self.media(source)

        session.in_database(path, started, work)
        losses = self.result["losses"] = native_losses(self.result["models"], self.result["media"])
        session.record(True, started, losses=len(losses))
        self.result["summary"] = native_summary(self.result)
        return self.result

    def count_only(self, backup_counts):
        """When the load fails, what can still be said per model: the live
        rows against the backup's objects (result "models" and "losses")."""
        session = self.session
        argv = count_command(
            session.params["backend_python"], ALL_MODELS, django_settings(session.params)
        )
        try:
            answer = session.containers.exec(
                session.backend.container_id, argv, what="the record count"
            )
            live = parse_counts(answer.stdout)
        except (ExecError, DjangoError):
            return
        models = {}
        for label, row in sorted(live.items()):
            backup = backup_counts.get(label.lower(), 0)
            models[label] = {"live": row["rows"], "backup": backup}
        self.result["models"] = models
        self.result["losses"] = {
            label: [f"the backup holds {row['backup']} of {row['live']} live rows"]
            for label, row in models.items()
            if row["backup"] != row["live"]
        }

    def load(self, source, settings):
        session = self.session
        backend = session.backend.container_id
        with scratch(session.containers, backend, "edms-load") as private:
            fixture = put_fixture(session.containers, backend, source, private.path, private.owner)
            request = {"settings": settings, "database": session.name, "fixture": fixture}
            argv = [
                params_python(session.params),
                "-c",
                backend_program(native_program, "load_main"),
            ]
            answer = session.containers.exec(
                backend,
                private.command([*argv, json.dumps(request)]),
                what="loaddata",
                check=False,
            )
            private.removed = True
        report = parse_answer(answer.stdout)
        if "error" in report:
            raise LoadError(f"loaddata failed: {report['error']}")
        if report["installed"] != report["of"]:
            raise LoadError(f"loaddata installed {report['installed']} of {report['of']} objects")
        return {"objects": report["installed"], "fixtures": report["fixtures"]}

    def media(self, source):
        """The archive's media/ against the live media root."""
        with ArchiveReader.open(source) as archive:
            hashes = {}
            for member in archive.iter_members():
                name = member.name
                if name.startswith(MEDIA_PREFIX) and member.kind == "file":
                    with archive.open_member(name) as stream:
                        stream.drain()
                        hashes[name[len(MEDIA_PREFIX) :]] = stream.sha256
        live = self.session.media("hashes")["hashes"]
        return {
            "files": len(hashes),
            "live_files": len(live),
            "included": bool(hashes),
            "equal_to_live": hashes == live,
            "differences": media_differences(hashes, live),
        }


def params_python(params):
    return params["backend_python"]


def native_losses(models, media):
    """What a restore from the native archive would lose or change against
    the live data: {label: [sentence, ...]} of the models that differ, and
    "media" when the media do."""
    losses = {}
    for label, row in sorted(models.items()):
        lines = []
        if row["missing"]:
            lines.append(
                f"{row['missing']} of {row['live']} live rows are not restored"
                + (f" (the backup holds {row['backup']})" if row["backup"] != row["live"] else "")
            )
        if row["extra"]:
            lines.append(f"{row['extra']} rows the live data does not have")
        if row["pk_replaced"]:
            lines.append(f"{row['pk_replaced']} rows get a new primary key (natural primary keys)")
        for field, entry in sorted(row["fields"].items()):
            lines.append(f"{field}: {entry['rows']} rows, {entry['kind']}")
        if lines:
            losses[label] = lines
    if not media["included"] and media["live_files"]:
        losses["media"] = [f"media not included: {media['live_files']} live files"]
    elif media["differences"]:
        losses["media"] = media["differences"]
    return losses


def native_summary(result):
    load = result["load"]
    media = result["media"]
    lines = [
        "Archive     {} ({})".format(os.path.basename(result["archive"]), result["layout"]),
        "Rehearsal   loaddata installed {} objects into {} (dropped again: {})".format(
            load["objects"], result["database"], result.get("dropped")
        ),
        "Media       {} files in the archive, {} live".format(media["files"], media["live_files"]),
    ]
    if not result["losses"]:
        lines.append("Losses      none: every model and file equals the live data")
    for label, items in result["losses"].items():
        for item in items:
            lines.append(f"Differs     {label}: {item}")
    return lines


def rehearse(params, runner=None, containers=None):
    return Rehearsal(params, runner=runner, containers=containers).run()
