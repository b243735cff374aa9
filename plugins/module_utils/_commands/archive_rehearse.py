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

import re
import sys
import time
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._backend import (
    migrations as migrations_program,
)
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_verify import (
    choose_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._deployment.deployment import (
    Deployment,
    verified_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.load import LoadError
from ansible_collections.edms.backup.plugins.module_utils._deployment.media import (
    MediaError,
    archive_media,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import record_status
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    DjangoError,
    django_settings,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import ExecError
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import utc_iso

MARK = "edms.backup rehearsal database"
DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RehearsalError(ModuleFailure):
    """A rehearsal that could not run, or whose load failed."""


class Rehearsal(Deployment):
    failure = RehearsalError

    def __init__(self, params, runner=None, containers=None):
        super().__init__(params, runner=runner, containers=containers)
        self.name = params["database"]
        self.result["database"] = self.name

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
        self.psql(f'CREATE DATABASE "{self.name}"')
        self.psql(f"COMMENT ON DATABASE \"{self.name}\" IS '{MARK}'")
        self.result["changed"] = True

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
        metadata = verified_archive(self, path, "rehearsed")
        self.locate()
        started = time.monotonic()
        settings = django_settings(params)
        try:
            self.prepare_database()
            request = {"settings": settings, "database": self.name}
            self.backend_call(migrations_program, "migrate_main", request, "migrate")
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
        self.record(True, started)
        self.result["counts"] = report["counts"]
        return self.result

    def record(self, ok, started, error=None):
        entry = {
            "ok": ok,
            "at": utc_iso(datetime.now(timezone.utc)),
            "seconds": round(time.monotonic() - started, 1),
            "database": self.name,
        }
        if error:
            entry["error"] = error
        self.result["seconds"] = entry["seconds"]
        record_status(self.result["archive"], "rehearsal", entry, source=self.source)
        self.result["recorded"] = entry


def rehearse(params, runner=None, containers=None):
    return Rehearsal(params, runner=runner, containers=containers).run()
