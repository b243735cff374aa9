# Private to the edms.backup collection: no compatibility promise to anyone else.
"""A rehearsal: an archive restored into a separate database, compared, dropped.

The checklist's Test 3: a database of its own on the same server (by default
``edms_test_restore``) is created and marked as a rehearsal's, migrated with
the application's code, checked against the archive's migration state,
loaded with the restore engine (_load: one transaction, counts compared with
the metadata before commit) and dropped again, whatever happened. The live
database is never written. The result is recorded beside the archive.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
import zipfile
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._archive import (
    ArchiveReader,
    verify_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._catalog import record_status
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._django import (
    SETUP,
    DjangoError,
    parse_answer,
)
from ansible_collections.edms.backup.plugins.module_utils._docker import ExecError
from ansible_collections.edms.backup.plugins.module_utils._fixture import iter_fixture
from ansible_collections.edms.backup.plugins.module_utils._load import (
    FIXTURE_MEMBER,
    LoadError,
    load_command,
    load_request,
    parse_report,
    put_fixture,
)
from ansible_collections.edms.backup.plugins.module_utils._media import (
    MediaError,
    archive_media,
    media_differences,
    media_step,
)
from ansible_collections.edms.backup.plugins.module_utils._migrations import (
    compare,
    migrations_command,
)
from ansible_collections.edms.backup.plugins.module_utils._session import Session
from ansible_collections.edms.backup.plugins.module_utils._timezones import utc_iso
from ansible_collections.edms.backup.plugins.module_utils._verify import choose_archive

MARK = "edms.backup rehearsal database"
DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Request: {"settings", "database"}. Migrates that database; prints its name.
MIGRATE_SCRIPT = (
    SETUP
    + r"""
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
print(json.dumps({"database": connection.settings_dict["NAME"]}))
"""
)

# Request: {"settings"}. Prints the name of the application's own database.
LIVE_NAME_SCRIPT = SETUP + 'print(json.dumps({"database": connection.settings_dict["NAME"]}))\n'


# The identity of every object: per model, how many primary keys and an
# order-free digest of them (the sum of each key's hash, so neither side has
# to sort or hold them). One source: run in the backend and on the host.
PK_DIGEST_FUNCTION = r"""
import hashlib


def key_hash(key):
    return int(hashlib.sha256(str(key).encode("utf-8")).hexdigest()[:32], 16)


def digest_text(count, total):
    return [count, "%032x" % (total % (1 << 128))]


def pk_digest(keys):
    count, total = 0, 0
    for key in keys:
        count += 1
        total += key_hash(key)
    return digest_text(count, total)
"""

# Request: {"settings", "database", "labels"}. Prints {label: pk_digest}.
PK_SCRIPT = (
    SETUP
    + PK_DIGEST_FUNCTION
    + r"""
by_label = {m._meta.label_lower: m for m in apps.get_models()}
print(json.dumps({
    label: pk_digest(by_label[label]._base_manager.values_list("pk", flat=True).iterator(5000))
    for label in request["labels"]
}))
"""
)

_PK_NAMESPACE = {}
exec(PK_DIGEST_FUNCTION, _PK_NAMESPACE)  # pylint: disable=exec-used


def fixture_pk_digests(path, labels):
    """{label: pk_digest} of the archive's fixture, read as a stream."""
    key_hash, digest_text = _PK_NAMESPACE["key_hash"], _PK_NAMESPACE["digest_text"]
    sums = {label: [0, 0] for label in labels}
    with ArchiveReader.open(path) as archive, archive.open_member(FIXTURE_MEMBER) as stream:
        for obj in iter_fixture(stream):
            entry = sums.get(str(obj.get("model", "")).lower())
            if entry is not None:
                entry[0] += 1
                entry[1] += key_hash(obj.get("pk"))
    return {label: digest_text(*entry) for label, entry in sums.items()}


class RehearsalError(ModuleFailure):
    """A rehearsal that could not run, or whose load failed."""


class Rehearsal(Session):
    failure = RehearsalError

    def __init__(self, params, runner=None, containers=None):
        super().__init__(params, runner=runner, containers=containers)
        self.name = params["database"]
        self.result["database"] = self.name

    def prepare_database(self):
        """Create the rehearsal database; an earlier rehearsal's leftover is dropped."""
        settings = self.params.get("django_settings_module")
        live = self.backend_script(LIVE_NAME_SCRIPT, {"settings": settings}, "the database name")
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
        verification = verify_archive(path)
        if not verification["ok"]:
            self.fail(
                "archive {} does not verify, so it is not rehearsed: {}".format(
                    path, "; ".join(verification["problems"])
                )
            )
        if verification["layout"] != "edms.backup v1":
            self.fail(f"archive {path} is not of this collection's format; it cannot be loaded")
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read("metadata.json"))
        self.locate()
        started = time.monotonic()
        fixture_dir = "/tmp/edms-rehearsal-" + secrets.token_hex(6)
        settings = params.get("django_settings_module")
        try:
            self.prepare_database()
            request = {"settings": settings, "database": self.name}
            self.backend_script(MIGRATE_SCRIPT, request, "migrate")
            argv = migrations_command(params["backend_python"], settings, self.name)
            answer = self.containers.exec(self.backend.container_id, argv, what="migrations")
            differences = compare(metadata["migrations"], parse_answer(answer.stdout)["migrations"])
            self.result["migration_differences"] = differences
            if differences and not params["allow_migration_mismatch"]:
                self.fail(
                    "the archive's migrations differ from the application's: "
                    + "; ".join(differences)
                    + " (allow_migration_mismatch goes on anyway)"
                )
            self.containers.exec(self.backend.container_id, ["mkdir", "-m", "700", fixture_dir])
            fixture = put_fixture(self.containers, self.backend.container_id, path, fixture_dir)
            load = load_request(
                fixture,
                metadata["counts"],
                metadata.get("m2m_tables", []),
                database=self.name,
                settings_module=settings,
            )
            stream = self.containers.exec_stream(
                self.backend.container_id,
                load_command(params["backend_python"], load),
                what="the load",
            )
            try:
                for _chunk in stream:
                    pass
            except ExecError:
                pass  # the report on stderr says why; read below
            report = parse_report(stream.stderr)
            self.result["load"] = report
            self.compare_identities(path, metadata)
            self.compare_media(metadata)
        except (ExecError, DjangoError, LoadError, MediaError) as exc:
            self.record(False, started, str(exc))
            self.fail(f"rehearsal of {path} in database {self.name} failed: {exc}", exc)
        except RehearsalError as exc:
            self.record(False, started, str(exc))
            raise
        finally:
            if self.backend is not None:
                self.containers.exec(
                    self.backend.container_id, ["rm", "-rf", fixture_dir], check=False
                )
            if self.result["changed"]:
                self.drop_database()
            failure = sys.exc_info()[1]
            if isinstance(failure, RehearsalError):
                failure.partial.update(self.result)  # what the cleanup did, too
        self.record(True, started)
        self.result["counts"] = report["counts"]
        return self.result

    def compare_identities(self, path, metadata):
        """Every object's primary key (UUIDs too) in the database equals the archive's."""
        m2m = set(metadata.get("m2m_tables", []))
        labels = sorted(label for label in metadata["counts"] if label not in m2m)
        request = {
            "settings": self.params.get("django_settings_module"),
            "database": self.name,
            "labels": labels,
        }
        found = self.backend_script(PK_SCRIPT, request, "the primary keys")
        expected = fixture_pk_digests(path, labels)
        differ = [label for label in labels if found.get(label) != expected[label]]
        self.result["identities"] = {
            "models": len(labels),
            "objects": sum(entry[0] for entry in expected.values()),
            "equal": not differ,
        }
        if differ:
            self.fail(
                "after the load the primary keys (UUIDs included) of {} differ from the"
                " archive's".format(", ".join(differ))
            )

    def compare_media(self, metadata):
        """The archive's media hash list against the live media (reported, not a failure:
        the live media may have changed since the backup)."""
        answer = media_step(
            self.containers,
            self.backend.container_id,
            self.params["backend_python"],
            "hashes",
            self.params["media_dir_container"],
        )
        archived = archive_media(metadata)
        differences = media_differences(archived, answer["hashes"])
        self.result["media"] = {
            "files": len(archived),
            "equal_to_live": not differences,
            "differences": differences,
        }

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
        record_status(self.result["archive"], "rehearsal", entry)
        self.result["recorded"] = entry


def rehearse(params, runner=None, containers=None):
    return Rehearsal(params, runner=runner, containers=containers).run()
