# Private to the edms.backup collection: no compatibility promise to anyone else.
"""One module run's view of the deployment: its running services and containers.

The rehearsal, the restore and the rollback all find the backend and db
containers through Compose, run scripts in the backend and SQL in the db
container, and fail with what they had done so far. This is that part.
"""

from __future__ import annotations

import contextlib
import json
import re

from ansible_collections.edms.backup.plugins.module_utils._backend import counts as counts_program
from ansible_collections.edms.backup.plugins.module_utils._backend.counts import compare_counts
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._deployment.database import (
    DatabaseLogin,
    LoginError,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.load import (
    UNKNOWN,
    LoadError,
    copy_member,
    finished_load,
    fixture_input,
    keep_tables_of,
    load_command,
    load_request,
    scratch,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.media import (
    archive_media,
    media_differences,
    media_step,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.migrations import (
    compare,
    migrations_command,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    FIXTURE,
    METADATA,
    ArchiveError,
    is_encrypted,
    open_zip,
    pinned,
)
from ansible_collections.edms.backup.plugins.module_utils._format.verification import verify_pinned
from ansible_collections.edms.backup.plugins.module_utils._platform import proof as proofs
from ansible_collections.edms.backup.plugins.module_utils._platform.compose import (
    ComposeError,
    ComposeProject,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    DjangoError,
    backend_program,
    django_settings,
    parse_answer,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import (
    Containers,
    ExecError,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256
from ansible_collections.edms.backup.plugins.module_utils._platform.maintenance import (
    locate_services,
)


def sql_literal(text):
    return "'" + str(text).replace("'", "''") + "'"


def sql_identifier(text):
    return '"' + str(text).replace('"', '""') + '"'


def count_sql(tables):
    """One statement (one snapshot) that counts the rows of every table of
    {label: table} and names the database: a JSON object {"database",
    "counts": {label: rows}}."""
    parts = [
        f"SELECT {sql_literal(label)} AS label, count(*) AS n FROM {sql_identifier(table)}"
        for label, table in sorted(tables.items())
    ]
    counts = (
        "(SELECT json_object_agg(label, n) FROM ({}) AS c)".format(" UNION ALL ".join(parts))
        if parts
        else "'{}'::json"
    )
    return f"SELECT json_build_object('database', current_database(), 'counts', {counts})"


class Deployment:
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
        self.login = None  # _deployment/database.py DatabaseLogin, once located
        self.result = {"changed": False, "commands": [], "execs": []}
        # Set by verified_archive: the archive as named, and the path to read
        # that very file from for the rest of the run (_format/archive.py pinned).
        self.archive_path = self.source = None

    def fail(self, msg, cause=None):
        if self.source and self.source != self.archive_path:
            msg = msg.replace(self.source, self.archive_path)
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
        wanted = [(self.params["backend_service"], "backend"), (self.params["db_service"], "db")]
        try:
            self.containers = self.containers or Containers()
            self.result["execs"] = self.containers.execs
            (self.backend, self.db), leftovers = locate_services(
                compose,
                self.containers,
                wanted,
                self.params["backend_python"],
                self.params.get("maintenance"),
            )
        except (ComposeError, ExecError) as exc:
            self.fail(str(exc), exc)
        if leftovers:
            self.result.setdefault("warnings", []).append(
                "removed the maintenance containers a killed run left: " + ", ".join(leftovers)
            )
        self.login = DatabaseLogin(
            self.containers,
            self.backend.container_id,
            self.db.container_id,
            self.params["backend_python"],
            django_settings(self.params),
        )

    def psql(self, sql, database="postgres"):
        """The rows of one statement run by psql in the db container, logged
        in as the application (on the server's ``postgres`` database unless
        another is named)."""
        try:
            return self.login.psql(sql, database)
        except LoginError as exc:
            self.fail(str(exc), exc)

    def backend_call(self, module, function, request, what):
        """The answer of module.function() (a backend program) run in the backend."""
        return self.run_program(backend_program(module, function), request, what)

    def run_program(self, program, request, what):
        """The answer of a program (_platform/django.py backend_program) run in the backend."""
        argv = [self.params["backend_python"], "-c", program, json.dumps(request)]
        answer = self.containers.exec(self.backend.container_id, argv, what=what)
        return parse_answer(answer.stdout)

    def media(self, action, work=None, fail_at=None):
        """One media step (_deployment/media.py) in the backend, on the media root."""
        return media_step(
            self.containers,
            self.backend.container_id,
            self.params["backend_python"],
            action,
            self.params["media_dir_container"],
            work=work,
            fail_at=fail_at,
        )

    def media_against(self, metadata, hashes=None):
        """How the live media differ from the archive's, one line each (empty
        when equal). hashes: the live media's {path: sha256}, if already taken."""
        if hashes is None:
            hashes = self.media("hashes")["hashes"]
        return media_differences(archive_media(metadata), hashes)

    def migrations_against(self, metadata, database=None, refusal="it is not restored"):
        """The archive's migrations against the target's; fails on a difference
        unless allow_migration_mismatch. Returns the differences."""
        params = self.params
        argv = migrations_command(params["backend_python"], django_settings(params), database)
        answer = self.containers.exec(self.backend.container_id, argv, what="migrations")
        differences = compare(metadata["migrations"], parse_answer(answer.stdout)["migrations"])
        self.result["migration_differences"] = differences
        if differences and not params["allow_migration_mismatch"]:
            self.fail(
                f"the archive's migrations differ from the application's, so {refusal}: "
                + "; ".join(differences)
                + " (allow_migration_mismatch goes on anyway)"
            )
        return differences

    def load(self, archive, metadata, database=None, fail_at=None, reset_models=None):
        """The archive's fixture loaded into a database in one transaction
        (_deployment/load.py); its report.

        The fixture is sent to the load as its standard input while the
        archive is read (_deployment/load.py fixture_input): it is never
        written in the container. Over a connection to the engine that
        cannot send input (TLS, SSH: Containers.takes_input), it is copied
        into a private directory of the backend first, which the load's own
        command removes when it ends (_deployment/load.py scratch). Raises
        ExecError, DjangoError, ArchiveError or LoadError before the load
        started; once it started, only LoadError, whose ``outcome`` says
        what it did to the database (_deployment/load.py finished_load).
        """
        params = self.params
        backend = self.backend.container_id
        started = False
        private = None
        try:
            with contextlib.ExitStack() as stack:
                fixture, chunks = fixture_input(archive, metadata)
                argv_of = list
                if not self.containers.takes_input():
                    chunks.close()
                    chunks = None
                    private = stack.enter_context(scratch(self.containers, backend, "edms-load"))
                    # The load checks its copy against the bytes sent.
                    fixture["path"], fixture["sent_sha256"] = copy_member(
                        self.containers, backend, archive, FIXTURE, private.path, private.owner
                    )
                    if fixture["sha256"] and fixture["sent_sha256"] != fixture["sha256"]:
                        raise LoadError(
                            f"the fixture of {archive} read now has sha256"
                            f" {fixture['sent_sha256']}; the archive's metadata says"
                            f" {fixture['sha256']}: the archive changed after it was verified"
                        )
                    argv_of = private.command
                request = load_request(
                    fixture,
                    metadata["counts"],
                    metadata.get("m2m_tables", []),
                    database=database,
                    settings_module=django_settings(params),
                    keep_tables_of=keep_tables_of(metadata),
                    fail_at=fail_at,
                    reset_models=reset_models,
                )
                stream = self.containers.exec_stream(
                    backend,
                    argv_of(load_command(params["backend_python"], request)),
                    what="the load",
                    stdin=chunks,
                )
                started = True
                lost = None
                try:
                    for _chunk in stream:
                        pass
                except ExecError as exc:
                    lost = exc  # an exit code: the report on stderr says why
                if private is not None:
                    private.removed = stream.rc is not None
                report = finished_load(stream, lost, stream.input_error)
        except Exception as exc:
            if not started or (isinstance(exc, LoadError) and exc.outcome):
                raise
            raise LoadError(f"the load's outcome cannot be told: {exc}", outcome=UNKNOWN) from exc
        written = report.get("written_by_receivers") or {}
        if written:
            self.result.setdefault("warnings", []).append(
                "signal receivers that ignore raw=True wrote {} during the load; they were"
                " removed, so the database holds the archive's rows, but anything else those"
                " receivers did (updates to other rows, files, mail) is not undone: make"
                " them return early when raw is set".format(
                    ", ".join(f"{n} row(s) of {label}" for label, n in sorted(written.items()))
                )
            )
        return report

    def count_request(self, metadata, database=None):
        return {
            "settings": django_settings(self.params),
            "database": database,
            "expected": {str(k).lower(): int(v) for k, v in metadata["counts"].items()},
            "m2m_tables": [str(label).lower() for label in metadata.get("m2m_tables", [])],
            "ignore": [str(label).lower() for label in metadata.get("recreated_models", [])]
            + [str(label).lower() for label in metadata.get("excluded_models", [])],
        }

    def count_against(self, metadata, database=None):
        """The target's counts against the archive's: {"counts", "differences"}
        (or {"error"}), counted through Django."""
        request = self.count_request(metadata, database)
        return self.backend_call(counts_program, "count_labels_main", request, "the counts")

    def count_plan(self, metadata):
        """What count_in_sql needs, asked of Django without reading a row (so
        it can be asked while the database is being replaced): {"database",
        "tables"}, or {"error"}, with the "request" it was asked with."""
        request = self.count_request(metadata)
        plan = self.backend_call(counts_program, "tables_main", request, "the tables")
        plan["request"] = request
        return plan

    def count_in_sql(self, plan):
        """count_against's answer, counted in SQL in the db container: the same
        labels (count_plan), one statement. The database counted is the db
        service's own; it fails when the application reads another."""
        if "error" in plan:
            return plan
        try:
            answer = self.login.psql(count_sql(plan["tables"]))
        except LoginError as exc:
            self.fail(str(exc), exc)
        try:
            found = json.loads(answer)
        except ValueError as exc:
            raise DjangoError(f"cannot read the counts psql printed: {exc}") from exc
        if found["database"] != plan["database"]:
            return {
                "error": "the db service's database is {} but the application reads {}".format(
                    found["database"], plan["database"]
                )
            }
        counts = found["counts"] or {}
        request = plan["request"]
        return {
            "counts": counts,
            "differences": compare_counts(request["expected"], counts, request["m2m_tables"]),
        }


SHA256 = re.compile(r"^[0-9a-f]{64}$")


def normalized_sha256(value, name="archive_sha256"):
    """value as 64 lower-case hex digits (the case of a copied digest does not
    matter), or ValueError naming the parameter."""
    text = str(value).strip().lower()
    if not SHA256.match(text):
        raise ValueError(
            f"{name} must be a sha256 of 64 hexadecimal digits; got {len(text)} characters"
        )
    return text


def verified_archive(session, path, purpose, expected_sha256=None, digest=False, proof=None):
    """The metadata of an archive of this collection's format that verifies.

    Sets session.source, the path to read the archive from for the rest of
    the run (pinned: the file that was verified, even if another replaces it
    under the same name). Fails the session ("..., so it is not <purpose>") when the
    archive does not verify or is of another format. The archive is verified
    from the file it is then read from; expected_sha256 (an earlier run
    verified the archive and returned it) is a pin on top: that file must
    also have that sha256, or the session fails, nothing changed. With
    digest, the sha256 is returned in the result for such a later run, and,
    for a plain archive, the proof that this host verified it
    (_platform/proof.py). Given a proof that holds for expected_sha256, a
    plain archive whose file has that sha256 is not verified again (the
    result's verification says so); a proof that does not hold changes nothing.
    """
    if expected_sha256 is not None:
        try:
            expected_sha256 = normalized_sha256(expected_sha256)
        except ValueError as exc:
            session.fail(str(exc))
    source = pinned(path)
    if proof and expected_sha256 is not None:
        proven = proven_archive(session, path, source, expected_sha256, proof)
        if proven is not None:
            return proven
    # A first verification (no sha256 to check the file against) of a plain
    # archive reads a private copy, its sha256 taken from the bytes copied:
    # the proof it makes is then of the very bytes it verified, whatever is
    # written into the original meanwhile. Every later read of this run too.
    copy_sha256 = why = None
    if digest and expected_sha256 is None:
        if not source.startswith(PINNED):
            why = "the archive could not be kept open"
        elif is_encrypted(source):
            why = "the archive is encrypted"
        else:
            copy, copy_sha256, why = proofs.private_copy(source)
            source = copy or source
    elif digest:
        why = "a proof is made by a first verification only (without archive_sha256)"
    try:
        verification, source = verify_pinned(path, source=source)
    except ArchiveError as exc:  # an encrypted archive and no key, or a wrong one
        session.fail(f"{exc}; so it is not {purpose}. Nothing was changed", exc)
    if expected_sha256 is not None:
        # The pin first: a file that changed is named as such, whatever else is wrong with it.
        try:
            found = file_sha256(source)
        except OSError as exc:
            session.fail(f"cannot read archive {path}: {exc.strerror}, so it is not {purpose}")
        session.result["sha256"] = found
        if found != expected_sha256:
            session.fail(
                f"archive {path} changed since it was verified (sha256 {found},"
                f" verified {expected_sha256}), so it is not {purpose}; verify it again"
            )
    problems = verification["problems"]
    session.result["verification"] = {"ok": verification["ok"], "problems": problems}
    if not verification["ok"]:
        session.fail(
            "archive {} does not verify, so it is not {}: {}".format(
                path, purpose, "; ".join(problems)
            )
        )
    if verification["layout"] != "edms.backup v1":
        session.fail(
            f"archive {path} is not of this collection's format (edms.backup v1),"
            f" so it is not {purpose}"
        )
    if digest and "sha256" not in session.result:
        session.result["sha256"] = copy_sha256 or file_sha256(source)
    if digest:
        session.result["proof"] = proofs.issue(copy_sha256) if copy_sha256 else None
        if copy_sha256 and session.result["proof"] is None:
            why = proofs.NO_KEY
        if why:
            session.result["proof_not_made"] = why
    session.archive_path, session.source = path, source
    with open_zip(source) as archive:
        return json.loads(archive.read(METADATA))


# The path pinned() gives when it could keep the file open (/proc).
PINNED = "/proc/self/fd/"


def proven_archive(session, path, source, expected_sha256, proof):
    """verified_archive's metadata without verifying again, when the plain
    archive read from source has expected_sha256 and proof holds for it
    (this host verified those bytes in full, with this code, not long ago);
    else None, and the caller verifies as ever."""
    try:
        state = proofs.file_state(source) if source.startswith(PINNED) else None
        if state is None:
            why = "the archive is not a file only its owner (this user or root) may write"
        elif is_encrypted(source):
            why = "the archive is encrypted"
        else:
            why = proofs.refusal(proof, expected_sha256)
        if why is None and file_sha256(source) != expected_sha256:
            why = "the file read has another sha256"  # the verification's refusal names it
        if why is None and proofs.file_state(source) != state:
            why = "the archive changed while it was checked"
        if why is None:
            with open_zip(source) as archive:
                metadata = json.loads(archive.read(METADATA))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # Whatever it is, verifying in full (next) is always safe.
        why = f"the archive could not be read for it ({type(exc).__name__})"
    if why is not None:
        session.result["proof_not_used"] = why
        return None
    session.result["sha256"] = expected_sha256
    session.result["verification"] = {
        "ok": True,
        "problems": [],
        "proven": "verified in full on this host earlier in the run (its proof holds for"
        " this sha256); not verified again",
    }
    session.archive_path, session.source = path, source
    return metadata
