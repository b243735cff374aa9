# Private to the edms.backup collection: no compatibility promise to anyone else.
"""One module run's view of the deployment: its running services and containers.

The rehearsal, the restore and the rollback all find the backend and db
containers through Compose, run scripts in the backend and SQL in the db
container, and fail with what they had done so far. This is that part.
"""

from __future__ import annotations

import hashlib
import json
import zipfile

from ansible_collections.edms.backup.plugins.module_utils._archive import verify_archive
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._compose import (
    ComposeError,
    ComposeProject,
    running_service,
)
from ansible_collections.edms.backup.plugins.module_utils._django import SETUP, parse_answer
from ansible_collections.edms.backup.plugins.module_utils._docker import Containers
from ansible_collections.edms.backup.plugins.module_utils._load import COMPARE_FUNCTION

# psql as the database owner over the db container's socket; the SQL and the
# database come as arguments, the credentials stay in the container.
PSQL = 'exec psql -v ON_ERROR_STOP=1 -qAt -U "$POSTGRES_USER" -d "$1" -c "$2"'

# Request: {"settings", "database", "expected", "m2m_tables"}. Counts every
# label of "expected" (models and auto-created m2m tables, as in an archive's
# metadata) and every other managed model, in one repeatable-read, read-only
# transaction; prints {"counts", "differences"} (compare_counts of _load).
COUNT_LABELS_SCRIPT = (
    SETUP
    + COMPARE_FUNCTION
    + r"""
expected = request["expected"]
ignore = set(request.get("ignore", []))
by_label = {m._meta.label_lower: m for m in apps.get_models(include_auto_created=True)}
labels = set(expected) | {
    label for label, m in by_label.items()
    if m._meta.managed and not m._meta.proxy and not m._meta.auto_created
    and label not in ignore and label.split(".")[0] not in ignore
}
unknown = sorted(label for label in labels if label not in by_label)
if unknown:
    print(json.dumps({"error": "models not in this application: " + ", ".join(unknown)}))
    sys.exit(0)
found = {}
with transaction.atomic():
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    for label in sorted(labels):
        found[label] = by_label[label]._base_manager.count()
print(json.dumps({"counts": found,
                  "differences": compare_counts(expected, found, request["m2m_tables"])}))
"""
)


class Session:
    """Base of the modules that work on a running deployment.

    ``failure`` is the ModuleFailure subclass raised by fail(); the result
    gathered so far travels with it.
    """

    failure = ModuleFailure

    def __init__(self, params, runner=None, containers=None):
        self.params = params
        self.runner = runner
        self.containers = containers
        self.backend = None
        self.db = None
        self.result = {"changed": False, "commands": [], "execs": []}

    def fail(self, msg, cause=None):
        error = self.failure(msg, **self.result)
        if cause is not None:
            raise error from cause
        raise error

    def locate(self):
        compose = ComposeProject(
            project_dir=self.params["project_dir"],
            files=self.params["compose_files"],
            runner=self.runner,
        )
        self.result["commands"] = compose.commands
        try:
            services = compose.services()
            self.backend = running_service(services, self.params["backend_service"], "backend")
            self.db = running_service(services, self.params["db_service"], "db")
        except ComposeError as exc:
            self.fail(str(exc), exc)
        self.containers = self.containers or Containers()
        self.result["execs"] = self.containers.execs
        return services

    def psql(self, sql, database="postgres"):
        answer = self.containers.exec(
            self.db.container_id, ["sh", "-c", PSQL, "psql", database, sql], what="psql"
        )
        return answer.stdout.decode("utf-8", "replace").strip()

    def backend_script(self, script, request, what):
        argv = [self.params["backend_python"], "-c", script, json.dumps(request)]
        answer = self.containers.exec(self.backend.container_id, argv, what=what)
        return parse_answer(answer.stdout)

    def count_against(self, metadata, database=None):
        """The target's counts against the archive's: {"counts", "differences"}."""
        request = {
            "settings": self.params.get("django_settings_module"),
            "database": database,
            "expected": {str(k).lower(): int(v) for k, v in metadata["counts"].items()},
            "m2m_tables": [str(label).lower() for label in metadata.get("m2m_tables", [])],
            "ignore": [str(label).lower() for label in metadata.get("recreated_models", [])]
            + [str(label).lower() for label in metadata.get("excluded_models", [])],
        }
        return self.backend_script(COUNT_LABELS_SCRIPT, request, "the counts")


def verified_archive(session, path, expected_sha256=None):
    """Verify an archive of this collection's format; return its metadata.

    Fails the session when it does not verify, is of another format, or (with
    expected_sha256) is no longer the file that was verified before.
    """
    verification = verify_archive(path)
    session.result["verification"] = {
        "ok": verification["ok"],
        "problems": verification["problems"],
    }
    if not verification["ok"]:
        session.fail(
            "archive {} does not verify: {}".format(path, "; ".join(verification["problems"]))
        )
    if verification["layout"] != "edms.backup v1":
        session.fail(
            f"archive {path} is not of this collection's format (edms.backup v1);"
            " it cannot be restored"
        )
    digest = file_sha256(path)
    session.result["sha256"] = digest
    if expected_sha256 and digest != expected_sha256:
        session.fail(
            f"archive {path} changed since it was verified (sha256 {digest},"
            f" verified {expected_sha256}); verify it again"
        )
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("metadata.json"))


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
