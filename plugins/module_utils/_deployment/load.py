# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The fixture load (the database part of a restore), run inside the backend container.

The load itself is _backend/load.py, with _backend/loader.py its batched
writer, run with the application's own interpreter (the container gets no
new packages). It replaces the content of a database with a
fixture of ours (docs/archive-format.md) and reports, as the last line of
standard error, one JSON object after REPORT_MARKER.

It gives what ``manage.py loaddata`` gives (the fields' own ``to_python``
and ``get_db_prep_save``, raw saves, natural keys looked up with
``get_by_natural_key``, forward references written at the end, sequences
reset), about 20 to 30 times faster (benchmarks/RESULTS.md), and:

- the objects are written as multi-row INSERTs of up to BATCH rows per model,
  not saved one by one; every natural key is looked up once; rows of the
  auto-created m2m tables are written in batches too;
- signals as under loaddata, per batch: ``pre_save`` (``raw=True``) for each
  object of the batch, the INSERT, ``post_save`` (``raw=True``,
  ``created=True``) for each, then ``m2m_changed`` ``pre_add``, the m2m rows,
  ``post_add`` for each object with m2m values. Instances are built only for
  models with receivers, and what a ``pre_save`` receiver sets on one is
  saved. Before a batch with receivers, the pending rows of every model
  before it in the fixture are written: a receiver that reads the database
  sees every object that precedes its own (and the whole batch in
  ``post_save``). Pending rows are written in the fixture's model order (the
  dump's dependency order), never alphabetically;
- a natural key not found is looked up again after its model's pending rows
  are written, then after every model's (its lookup may join another model);
  a GeneratedField's value in the fixture is left to the database;
- everything is ONE transaction: the tables are emptied (one TRUNCATE, which
  is transactional in PostgreSQL), the fixture is loaded, foreign keys are
  checked (``SET CONSTRAINTS ALL IMMEDIATE``), sequences are reset and the row
  count of every model and auto-created m2m table is compared with the
  archive's metadata. Any failure or difference rolls all of it back: the
  database either holds the archive or is as it was;
- the tables of ``keep_tables_of`` (content types, permissions: ``migrate``
  recreates them and the fixture refers to them by natural key) and
  ``django_migrations`` are not emptied;
- the fixture is read one line at a time (one object per line), as the host
  sends it, so memory does not grow with it and the load runs while the
  archive is read; a fixture in another layout is read whole and the report
  says ``"streamed": false``;
- every object is INSERTed into emptied tables, never upserted: a row written
  during the load (by a receiver that ignores ``raw`` and the marker below)
  that the fixture also holds fails the load on its primary key, where
  loaddata would overwrite it unnoticed;
- the application can tell that a restore runs: the script sets the
  environment variable ``EDMS_RESTORE_IN_PROGRESS=1`` and the setting
  ``settings.EDMS_RESTORE_IN_PROGRESS = True`` before Django is set up.
  ``pre_save``/``post_save`` receivers see ``raw=True`` as under loaddata;
  ``m2m_changed`` has no raw flag, so its receivers should check the marker.

The request (argv[1], JSON):

- ``settings``: settings module, or null for the container's DJANGO_SETTINGS_MODULE;
- ``fixture``: ``{"size", "sha256", "path", "sent_sha256"}`` of the fixture. Without
  ``path`` (the host's connection to the engine is a plain socket:
  Containers.takes_input), the load reads it on its standard input: exactly
  ``size`` bytes, then FIXTURE_END and their sha256, which the host sends
  only once it read the archive's member to its end (sent_member); the
  fixture is then never written in the container, and INPUT_WAIT seconds
  without a byte fail the load. With ``path`` (over TLS or SSH), it reads
  the copy put there (copy_member), which must have the sha256 of the bytes
  the host sent (``sent_sha256``) and no more than ``size`` bytes. A load
  whose input ends early, or without that line, or whose bytes have another
  sha256 than the host sent or than ``sha256`` (the archive metadata's, or
  null) fails once every row is written but before anything is counted or
  committed, and rolls back;
- ``database``: the database to load into, or null for the app's own; set as
  ``DATABASES["default"]["NAME"]`` before the first connection;
- ``expected``: ``{model label (lower case): count}`` from metadata;
- ``m2m_tables``: the labels in ``expected`` that are auto-created m2m tables;
- ``keep_tables_of``: model labels whose tables are not emptied;
- ``reset_models``: model labels the archive does not hold whose tables are
  emptied all the same (null: ``sessions.session`` when installed, so
  everyone logs in again after a restore). Every other table the archive
  does not hold is left as it is; one of them that refers to a replaced
  table and holds rows fails the load before anything changed;
- ``fail_at``: null, or ``empty``, ``load``, ``count_check`` or ``before_commit``:
  FAULT INJECTION for the tests of the one-transaction invariant only; it
  raises ``RuntimeError("injected failure at <stage>")`` at that point: after
  the TRUNCATE, after every object and deferred field is saved, after the
  counts matched, and as the last statement of the transaction.

Before commit it also compares every model's primary keys in the database
with the fixture's (_backend/digest.py): a load that kept the count but not the
identities (new UUIDs) fails.

The report: ``{"objects", "counts", "seconds", "peak_rss_kb", "streamed",
"database", "identities"}``, or ``{"error", "stage"}`` with stage ``setup`` (before the
transaction), ``empty``, ``load``, ``count_check`` or ``commit``, and
``"outcome": "unknown"`` when the failure came as the transaction ended (it
may have committed); the exit code is then non-zero.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import tarfile

from ansible_collections.edms.backup.plugins.module_utils._backend import load as load_program
from ansible_collections.edms.backup.plugins.module_utils._backend.load import (
    FAIL_STAGES,
    FIXTURE_END,
    REPORT_MARKER,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    DEFAULT_RECREATED_MODELS,
    FIXTURE,
    ArchiveReader,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    DjangoError,
    backend_program,
    read_marked_report,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import ExecError

# The load's program, made when this module is imported: a restore that could
# not make it fails before it changes anything, not after the media swap.
LOAD_PROGRAM = backend_program(load_program)

# What a load keeps when it is not told: the tables ``migrate`` fills. An
# archive names its own (metadata's recreated_models: the ones its dump left out).
KEEP_TABLES_OF = list(DEFAULT_RECREATED_MODELS)


def keep_tables_of(metadata):
    """The tables a load of this archive must not empty: those its dump left out
    and migrate recreates. A dump that kept content types and permissions has
    them in its fixture: their tables are emptied and loaded like any other."""
    return [str(label).lower() for label in metadata.get("recreated_models", KEEP_TABLES_OF)]


# What a load that failed did to the database (LoadError.outcome): its own
# report says it failed (one transaction: nothing of it stays); it ended with
# exit 0, so it committed, but its report is lost; or whether it commits is
# not known (the Docker engine was lost while it ran, or it ended without a
# report).
ROLLED_BACK = "rolled back"
COMMITTED = "committed"
UNKNOWN = "unknown"


class LoadError(Exception):
    """The load in the backend failed or its report cannot be read.

    ``stage`` names where it failed (see the module docstring), or is None.
    ``outcome``: what it did to the database (ROLLED_BACK, COMMITTED, UNKNOWN),
    or None when it did not start.
    """

    def __init__(self, message, stage=None, outcome=None):
        super().__init__(message)
        self.stage = stage
        self.outcome = outcome


def load_request(
    fixture,
    expected,
    m2m_tables,
    database=None,
    settings_module=None,
    keep_tables_of=None,
    fail_at=None,
    reset_models=None,
):
    """The request LOAD_SCRIPT reads (see the module docstring); fixture:
    ``{"size", "sha256"}`` (fixture_input), with ``path`` and
    ``sent_sha256`` for a copy in the container (copy_member)."""
    if fail_at is not None and fail_at not in FAIL_STAGES:
        raise LoadError(f"unknown fail_at stage {fail_at!r} (one of {', '.join(FAIL_STAGES)})")
    return {
        "settings": settings_module,
        "fixture": {
            "size": int(fixture["size"]),
            "sha256": fixture.get("sha256"),
            "path": fixture.get("path"),
            "sent_sha256": fixture.get("sent_sha256"),
        },
        "database": database,
        "expected": {str(label).lower(): int(count) for label, count in expected.items()},
        "m2m_tables": [str(label).lower() for label in m2m_tables],
        "keep_tables_of": list(KEEP_TABLES_OF if keep_tables_of is None else keep_tables_of),
        "fail_at": fail_at,
        "reset_models": None if reset_models is None else [str(m).lower() for m in reset_models],
    }


def load_command(python, request):
    """The argv that runs the load inside the backend container."""
    return [python, "-c", LOAD_PROGRAM, json.dumps(request)]


def parse_report(stderr):
    """The load's report: the last stderr line that carries the marker."""
    try:
        report = read_marked_report(stderr, REPORT_MARKER, "the load")
    except DjangoError as exc:
        raise LoadError(str(exc)) from exc
    if "error" in report:
        stage = report.get("stage")
        where = f" (stage {stage})" if stage else ""
        if report.get("outcome") == "unknown":
            # It failed as its transaction ended: the commit may have happened.
            raise LoadError(
                f"the load failed{where} as its transaction ended, so whether it committed is"
                f" not known: {report['error']}",
                stage=stage,
                outcome=UNKNOWN,
            )
        raise LoadError(
            f"the load failed{where}: {report['error']}", stage=stage, outcome=ROLLED_BACK
        )
    return report


def finished_load(stream, lost=None, input_error=None):
    """The report of a load run through ``stream`` (an ExecStream iterated to
    its end, or until ``lost``, the ExecError that stopped it; input_error:
    what stopped the sending of its input, see sent_member).

    Raises LoadError with its ``outcome``: the load's own report of a failure
    (ROLLED_BACK); no end known, the Docker engine lost (UNKNOWN: the load may
    still commit in the container); ended without a readable report: exit 0
    (COMMITTED), else UNKNOWN.
    """
    why = f"; sending it the fixture stopped: {input_error}" if input_error else ""
    if stream.rc is None:
        raise LoadError(
            f"{lost or 'the load did not end'}; the load may still commit in the container{why}",
            outcome=UNKNOWN,
        )
    try:
        report = parse_report(stream.stderr)
    except LoadError as exc:
        if exc.outcome:
            raise LoadError(f"{exc}{why}", stage=exc.stage, outcome=exc.outcome) from exc
        if stream.rc == 0:
            raise LoadError(
                f"the load ended with exit 0, so it committed, but {exc}{why}", outcome=COMMITTED
            ) from exc
        raise LoadError(
            f"the load ended with exit {stream.rc} and {exc}, so whether it committed is not"
            f" known{why}",
            outcome=UNKNOWN,
        ) from exc
    # A load that succeeded read its whole input and the end line, which is
    # sent last: whatever failed after that (closing the archive) did not
    # touch the data.
    return report


CHUNK = 1024 * 1024


def sized_chunks(source, size, name):
    """Exactly `size` bytes of `source`, one chunk at a time, and then its
    end (read, so that a ZIP member's CRC-32 is checked): LoadError when it
    has fewer or more."""
    left = size
    while left > 0:
        data = source.read(min(CHUNK, left))
        if not data:
            raise LoadError(f"{name} ended {left} bytes short of its size")
        left -= len(data)
        yield data
    if source.read(1):
        raise LoadError(f"{name} is longer than its recorded size")


def tar_member(info, source):
    """One member of a tar stream, as chunks: header, content read from `source`
    (its size known up front) chunk by chunk, padding. Nothing holds more than
    one chunk."""
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    yield from sized_chunks(source, info.size, info.name)
    remainder = info.size % tarfile.BLOCKSIZE
    if remainder:
        yield tarfile.NUL * (tarfile.BLOCKSIZE - remainder)


def tar_of_one(info, source):
    """A whole tar stream, as chunks, of one member (tar_member, then the end blocks)."""
    yield from tar_member(info, source)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def container_owner(containers, container_id):
    """(uid, gid) of the user the container runs commands as."""
    out = containers.exec(container_id, ["sh", "-c", "id -u && id -g"], what="id").stdout
    return parse_owner(out, container_id)


def parse_owner(out, container_id):
    """(uid, gid) from the output of ``id -u; id -g``."""
    try:
        uid, gid = (int(word) for word in out.decode("ascii", "replace").split())
    except ValueError:
        raise ExecError(f"cannot tell the user of container {container_id[:12]}") from None
    return uid, gid


# $1: a directory made private to the container's user; its uid and gid printed.
SCRATCH_SCRIPT = 'mkdir -m 700 "$1" && id -u && id -g'

# Runs "$@" and removes the directory $1 when it ends, with its exit code
# kept: the fixture or dump copied there (password hashes) does not outlive
# the command, even when the module that started it is gone (only a kill of
# this shell itself would leave it).
IN_SCRATCH_SCRIPT = 'scratch=$1; shift; trap \'rm -rf "$scratch"\' EXIT; "$@"'


class Scratch:
    """A directory of a container's /tmp, private to the container's user, for
    a copy that holds secrets: ``path``, ``owner`` (uid, gid) and
    ``command(argv)``, argv wrapped so that the directory goes when it ends."""

    def __init__(self, path, owner):
        self.path, self.owner = path, owner
        self.removed = False  # a command of command() ran to its end

    def command(self, argv):
        return ["sh", "-c", IN_SCRATCH_SCRIPT, "sh", self.path, *argv]


@contextlib.contextmanager
def scratch(containers, container_id, prefix):
    """A new Scratch: made, with the owner read, in one exec. When no command
    of its own ran to its end (set ``removed``), it is removed on the way out;
    on the way out of a failure, a failure to remove it (the engine lost) does
    not hide the failure that got there."""
    path = f"/tmp/{prefix}-{secrets.token_hex(6)}"
    out = containers.exec(
        container_id, ["sh", "-c", SCRATCH_SCRIPT, "sh", path], what=f"mkdir {path}"
    ).stdout
    made = Scratch(path, None)

    def remove():
        if not made.removed:
            containers.exec(container_id, ["rm", "-rf", path], check=False)

    try:
        made.owner = parse_owner(out, container_id)
        yield made
    except BaseException:
        with contextlib.suppress(ExecError):
            remove()
        raise
    remove()


def put_fixture(containers, container_id, archive_path, dest_dir, owner=None):
    """Copy the archive's fixture into the container; return its path there.

    The file lands as ``<dest_dir>/database_backup.json``, mode 0600, owned by
    the container's user (it holds password hashes).
    """
    return put_member(containers, container_id, archive_path, FIXTURE, dest_dir, owner)


def put_member(containers, container_id, archive_path, name, dest_dir, owner=None):
    """Copy one member of the archive into the container; return its path there.

    The file lands as ``<dest_dir>/<name>``, mode 0600, owned by the user the
    container runs commands as (``owner``: its (uid, gid) if known). The tar
    stream is made while it is sent: the Docker SDK passes a generator body on
    to requests, which sends it chunked, so the member is never whole in memory.
    """
    return copy_member(containers, container_id, archive_path, name, dest_dir, owner)[0]


def copy_member(containers, container_id, archive_path, name, dest_dir, owner=None):
    """put_member's copy, and the sha256 of the bytes it sent: (path there,
    sha256). The member was read to its end (a ZIP member's CRC-32 checked)
    and was of its recorded size, and the engine took the whole tar stream,
    or LoadError (ArchiveError for a member missing or unreadable). What
    landed in the container is not read back here: the fixture's load checks
    its copy against that sha256 (CopiedFixture)."""
    uid, gid = owner or container_owner(containers, container_id)
    path = dest_dir.rstrip("/") + "/" + name
    sent = []

    def whole(info, source):
        yield from tar_of_one(info, source)
        sent.append(source.sha256)

    with ArchiveReader.open(archive_path) as archive:
        member = archive.member(name)
        source = archive.open_member(name)
        try:
            info = tarfile.TarInfo(name)
            info.size = member.size
            info.mode = 0o600
            info.uid, info.gid = uid, gid
            containers.put_tree(container_id, dest_dir, whole(info, source), name)
        finally:
            source.close()
    if not sent:
        raise LoadError(f"{name} was not sent whole into container {container_id[:12]}")
    return path, sent[0]


_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def sent_member(source, size, name):
    """The load's standard input, as chunks: `size` bytes of `source` (a
    MemberReader, which hashes what it reads), one chunk at a time, then
    FIXTURE_END and their sha256. That last line goes only once `source`
    was read to its end (the CRC-32 of a ZIP member is
    checked there): a load whose input ends before it (the archive damaged,
    this module gone) fails and rolls back."""
    yield from sized_chunks(source, size, name)
    yield FIXTURE_END + source.sha256.encode("ascii") + b"\n"


def fixture_input(archive_path, metadata):
    """The archive's fixture as the load reads it: (the request's
    ``fixture``, the chunks of its standard input). The sha256 is the one
    metadata lists (verification compared it with the member), so the load
    checks that it got the verified bytes. The archive is opened again when
    the chunks are first asked for, and closed when they end or are closed."""
    with ArchiveReader.open(archive_path) as archive:
        member = archive.member(FIXTURE)
        if member is None or member.kind != "file":
            raise LoadError(f"archive {archive_path} has no {FIXTURE}")
        size = member.size
    members = metadata.get("members")
    listed = members.get(FIXTURE) if isinstance(members, dict) else None
    sha256 = listed.get("sha256") if isinstance(listed, dict) else None
    if not (isinstance(sha256, str) and _SHA256.match(sha256)):
        sha256 = None

    def chunks():
        with ArchiveReader.open(archive_path) as archive, archive.open_member(FIXTURE) as source:
            yield from sent_member(source, size, FIXTURE)

    return {"size": size, "sha256": sha256}, chunks()


def remove_fixture(containers, container_id, path):
    """Delete the fixture copied by put_fixture (it holds password hashes)."""
    containers.exec(container_id, ["rm", "-f", path], what=f"rm {path}")
