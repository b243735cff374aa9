# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Taking a backup: the fixture, the media and optionally a pg_dump, into one archive.

Everything streams: the fixture from the backend's stdout and the media as a
tar stream from the container, straight into the archive being written; the
pg_dump from the db container's stdout into a private file beside it, at the
same time (PgDumpSpool), then into the archive. Nothing is held whole in
memory, and nothing that looks like an archive exists until the archive is
complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tarfile
import threading
import unicodedata
from collections import namedtuple
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._backend.dump import SNAPSHOT_MARKER
from ansible_collections.edms.backup.plugins.module_utils._backend.media import is_work_name
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._deployment.database import (
    DatabaseLogin,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.dump import (
    DumpError,
    dump_command,
    parse_report,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    FIXTURE,
    FORMAT,
    FORMAT_VERSION,
    MEDIA_PREFIX,
    PGDUMP,
    ArchiveError,
    ArchiveWriter,
    archive_name,
    member_name_problem,
    member_path,
    parse_recipients,
    pinned,
    seal,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    CatalogueError,
    list_archives,
    record_status,
    sealed_entry,
    verification_entry,
)
from ansible_collections.edms.backup.plugins.module_utils._format.trend import (
    DEFAULT_THRESHOLD,
    ThresholdError,
    check_threshold,
    compare,
    drop_warning,
)
from ansible_collections.edms.backup.plugins.module_utils._format.verification import (
    renamed,
    verify_archive,
    verify_pinned,
)
from ansible_collections.edms.backup.plugins.module_utils._platform import proof as proofs
from ansible_collections.edms.backup.plugins.module_utils._platform.compose import (
    ComposeError,
    ComposeProject,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    DjangoError,
    NoReport,
    django_settings,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import (
    Containers,
    ExecError,
    describe,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256
from ansible_collections.edms.backup.plugins.module_utils._platform.maintenance import (
    locate_services,
    stopped_backend,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import (
    TimeZoneError,
    local_iso,
    utc_iso,
    zone,
)

# The collection's version (galaxy.yml's), as the action plugin of
# archive_create (plugins/action/archive_create.py) hands it to the module;
# "unknown" where the code runs without it (the tests that call it directly).
TOOL_VERSION_VARIABLE = "EDMS_BACKUP_TOOL_VERSION"

# pg_dump inside the db container (its version is the server's), logged in
# as the application (_deployment/database.py): the database and the
# credentials come in its environment. Compression level 3 (every version's
# pg_dump takes -Z 0-9): at the medium scale 1.5 s to 23.5 MB where the
# default takes 3.8 s to 19.8 MB, on the same cores as the fixture's dump.
PGDUMP_ARGV = ["pg_dump", "-Fc", "-Z", "3", "--no-password"]
# What pg_export_snapshot() returns (00000003-0000001B-1), and the signal
# directory the dump makes (tempfile.mkdtemp): what the container says is
# checked against both before it is used.
SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]{1,16}(-[0-9A-Fa-f]{1,16}){1,2}$")
SIGNAL_DIR = re.compile(r"^/[A-Za-z0-9._/-]*/edms-snapshot-[A-Za-z0-9_]+$")
# Characters a media name may hold that a log line should not (printable()).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Unicode categories printable() shows escaped: format characters, line and
# paragraph separators.
INVISIBLE = frozenset(("Cf", "Zl", "Zp"))


class BackupError(ModuleFailure):
    """A backup that could not be taken, with what had been done so far."""


class IterStream:
    """A read-only binary file over an iterator of byte chunks (for tarfile's stream mode).

    tarfile reads a record (10 KiB) at a time while the engine sends chunks of
    up to megabytes: the current chunk is kept with an offset into it, so a
    read copies only what it returns.
    """

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.chunk = b""
        self.offset = 0

    def readable(self):
        return True

    def read(self, size=-1):
        parts = []
        while size < 0 or size > 0:
            if self.offset >= len(self.chunk):
                self.chunk, self.offset = next(self.chunks, None), 0
                if self.chunk is None:
                    self.chunk = b""
                    break
                continue
            end = len(self.chunk) if size < 0 else min(len(self.chunk), self.offset + size)
            parts.append(self.chunk[self.offset : end])
            if size > 0:
                size -= end - self.offset
            self.offset = end
        return b"".join(parts)


def check_backup_dir(path, create=True):
    """An absolute, writable directory; one that is missing is made (mode
    0700) when its parent is there, unless create is false (check mode)."""
    if not os.path.isabs(path):
        raise BackupError(f"backup directory {path!r} is not an absolute path")
    if not os.path.isdir(path):
        parent = os.path.dirname(path.rstrip("/"))
        if os.path.islink(path) or not os.path.isdir(parent):
            raise BackupError(
                f"backup directory {path} does not exist, nor does its parent {parent}: "
                "create it (mode 0700, owned by the user that runs the collection)"
            )
        if not create:
            return
        # The collection's own archive directory: made private to this user.
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise BackupError(f"cannot create backup directory {path}: {exc.strerror}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise BackupError(f"backup directory {path} is not writable by this user")


def pg_dump_argv(snapshot=None, exclude_table_data=()):
    """pg_dump's argv: in the fixture dump's snapshot when given; without the
    rows of the tables named (their definitions are kept)."""
    argv = list(PGDUMP_ARGV)
    if snapshot:
        argv.append("--snapshot=" + snapshot)
    for table in exclude_table_data:
        # Double quotes: the exact name, not a pattern.
        argv.append('--exclude-table-data="{}"'.format(table.replace('"', '""')))
    return argv


class PgDumpSpool(threading.Thread):
    """pg_dump of the database into a private file beside the archive, run while
    the fixture and the media are taken (the db container's work overlaps the
    backend's and the archive writer's), then written into the archive.

    It starts once the fixture dump has exported its snapshot (share(), from
    the dump's standard error): pg_dump imports it, so that both hold the same
    data. When pg_dump has started writing (it has imported the snapshot), or
    failed, release() is called: the dump may end its transaction.

    The file is ``.<archive name>.pgdump.partial``, mode 0600: a killed run
    leaves it where interrupted archives are listed. ``error`` is what the
    dump raised, if anything.
    """

    def __init__(self, login, directory, name, release=None):
        super().__init__(daemon=True)
        self.login = login
        self.path = os.path.join(directory, "." + name + ".pgdump.partial")
        self.error = None
        self.argv = list(PGDUMP_ARGV)
        self.snapshot = None
        self.release = release or (lambda: None)

    def share(self, snapshot, exclude_table_data):
        self.snapshot = snapshot
        self.argv = pg_dump_argv(snapshot, exclude_table_data)

    def run(self):
        released = False
        try:
            stream = self.login.stream(self.argv, what="pg_dump")
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in stream:
                    if not released:
                        released = True
                        self.release()
                    out.write(chunk)
        except Exception as exc:  # ExecError, OSError, the transport's errors
            self.error = exc
        finally:
            if not released:
                self.release()

    def result(self):
        """The spooled file's path, once pg_dump has finished; raises its error."""
        self.join()
        if self.error is not None:
            if isinstance(self.error, (ExecError, OSError)):
                raise self.error
            raise ExecError(f"pg_dump failed: {self.error}") from self.error
        return self.path

    def remove(self):
        self.join()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class SnapshotWatcher:
    """Reads the fixture dump's standard error as it comes, for the snapshot
    it exports (_backend/dump.py SNAPSHOT_MARKER), and starts the pg_dump
    spool in it. If the dump's output starts without one (it could not make
    its signal directory), pg_dump starts all the same, in a snapshot of its
    own, and ``shared`` stays false."""

    def __init__(self, spool, containers, container_id, python):
        self.spool = spool
        self.containers = containers
        self.container_id = container_id
        self.python = python
        self.text = b""
        self.seen = False
        self.signal = None
        self.shared = False
        if spool is not None:
            spool.release = self.release

    def feed(self, chunk):
        if self.spool is None or self.seen:
            return
        self.text += chunk
        marker = SNAPSHOT_MARKER.encode()
        for line in self.text.split(b"\n")[:-1]:
            if not line.startswith(marker):
                continue
            self.seen = True
            try:
                shared = json.loads(line[len(marker) :].decode("utf-8"))
                snapshot, signal = str(shared["snapshot"]), str(shared["signal"])
                tables = [str(t) for t in shared.get("exclude_table_data") or []]
            except (ValueError, KeyError, TypeError):
                return
            if not (SNAPSHOT_ID.match(snapshot) and SIGNAL_DIR.match(signal)):
                return
            self.signal = signal
            if self.spool.ident is None:
                self.spool.share(snapshot, tables)
                self.shared = True
                self.spool.start()
            else:
                # pg_dump already runs in a snapshot of its own: let the dump go on.
                self.release()
            return

    def stdout(self, stream):
        """The dump's stdout; pg_dump starts on its own snapshot at the first
        chunk if the dump has shared none by then."""
        for chunk in stream:
            if self.spool is not None and self.spool.ident is None:
                self.spool.start()
            yield chunk
        if self.spool is not None and self.spool.ident is None:
            self.spool.start()

    def release(self):
        """Let the dump end its transaction: remove its signal directory."""
        if self.signal is None:
            return
        signal, self.signal = self.signal, None
        with contextlib.suppress(ExecError):
            self.containers.exec(
                self.container_id,
                [self.python, "-c", "import shutil, sys; shutil.rmtree(sys.argv[1])", signal],
                what="the snapshot's release",
            )


def add_media(writer, containers, container_id, media_dir, warnings=None):
    """Copy every regular file under media_dir into media/...; return (files, bytes, skipped).

    The media are read once, as one tar stream from the container. A
    hard-linked file comes in it once as a regular member and at each of its
    other paths as a link entry naming that earlier member, without data: each
    such path is stored with the bytes of the member it links to, copied
    within the archive being written (ArchiveWriter.copy_member). Nothing is
    read from the container a second time, so nothing can be swapped in
    between. A link whose member was not taken is left out.

    Symbolic links, devices and the like are left out. So is a file whose name
    the archive cannot hold (not UTF-8, or refused by the member name rules of
    _format/archive.py, or equal to an earlier one once normalised): it is
    listed in skipped (printable, bytes that are not UTF-8 as \\xNN) and, with
    why, in a warning appended to warnings, as is a link left out.
    """
    files, size, skipped = 0, 0, []
    names = MediaNames()
    chunks, _stat = containers.read_tree(container_id, media_dir.rstrip("/"))
    with tarfile.open(
        fileobj=IterStream(chunks), mode="r|", encoding="utf-8", errors="surrogateescape"
    ) as tar:
        for member in tar:
            relative = media_relative(member.name)
            if relative is None:
                continue
            if is_work_name(relative.split("/", 1)[0]):
                continue  # a restore's work directory (see _deployment/media.py), never media
            if member.isdir():
                continue
            if not (member.isfile() or member.islnk()):
                skipped.append(printable(relative))
                continue
            problem = names.problem(relative)
            source = None
            if problem is None and member.islnk():
                target = media_relative(member.linkname, within=member.name)
                if names.taken(target):
                    source = target
                else:
                    problem = (
                        f"is a hard link of '{printable(target or member.linkname)}',"
                        " which was not taken into the archive before it"
                    )
            if problem is not None:
                names.leave_out(relative, problem)
                skipped.append(printable(relative))
                continue
            names.take(relative)
            if source is None:
                entry = writer.add_stream(
                    MEDIA_PREFIX + relative, tar.extractfile(member), compress=False
                )
            else:
                entry = writer.copy_member(MEDIA_PREFIX + relative, MEDIA_PREFIX + source)
            size += entry["size"]
            files += 1
    if warnings is not None:
        warnings.extend(names.warnings())
    return files, size, skipped


def media_relative(name, within=None):
    """The path under the media root of a name in its tar stream, whose top
    directory is the media root's own name; None for that directory itself,
    and for a name outside the top directory of the name `within` (a link's
    target is looked for under its own link's top directory)."""
    parts = name.split("/", 1)
    if len(parts) < 2 or not parts[1]:
        return None
    if within is not None and within.split("/", 1)[0] != parts[0]:
        return None
    return parts[1]


def printable(name):
    """A media name as text that can be shown and returned on one line: the
    bytes of a name that are not UTF-8 (held as lone surrogates) and control
    characters as \\xNN; format characters and line or paragraph separators
    (which can make a name look like another on a terminal: right-to-left
    overrides, zero-width characters) as \\uNNNN."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)
    return "".join(
        f"\\u{ord(char):04x}" if unicodedata.category(char) in INVISIBLE else char for char in text
    )


class MediaNames:
    """The media names taken into an archive so far, and those left out.

    A name is refused when the archive cannot hold it: it is not UTF-8 (a ZIP
    member name is text), the member name rules refuse it (_format/archive.py
    member_name_problem), or it names the same path as an earlier media file
    once normalised to Unicode NFC (the first is kept), or a path where an
    earlier one has a directory or a file. The archive written then verifies
    whatever names the media root holds.
    """

    LISTED = 20
    NOT_UTF8 = "is not valid UTF-8"

    def __init__(self):
        self.files = {}  # member_path of each media file taken: its name
        self.directories = set()  # member_path of each directory above them
        self.not_utf8 = []
        self.refused = []  # (name, why)

    def problem(self, relative):
        """Why relative cannot be taken, or None."""
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:
            return self.NOT_UTF8
        name = MEDIA_PREFIX + relative
        problem = member_name_problem(name) or ("names a directory" if name.endswith("/") else None)
        if problem is not None:
            return problem
        path = member_path(name)
        first = self.files.get(path)
        if first == relative:
            return "is in the media twice"
        if first is not None:
            return f"names the same path as '{printable(first)}' once normalised to Unicode NFC"
        if path in self.directories or any(above in self.files for above in parents(path)):
            return "names a path where another media file has a directory or a file"
        return None

    def take(self, relative):
        """Record relative as taken (problem() found none)."""
        path = member_path(MEDIA_PREFIX + relative)
        self.files[path] = relative
        self.directories.update(parents(path))

    def taken(self, relative):
        """Whether the media file named exactly relative was taken."""
        if relative is None:
            return False
        return self.files.get(member_path(MEDIA_PREFIX + relative)) == relative

    def leave_out(self, relative, why):
        """Record relative as left out, and why."""
        if why == self.NOT_UTF8:
            self.not_utf8.append(printable(relative))
        else:
            self.refused.append((relative, why))

    def warnings(self):
        found = []
        if self.not_utf8:
            found.append(
                "media files left out of the archive, their names are not valid UTF-8: "
                + self.listed(f"'{name}'" for name in self.not_utf8)
                + ". Django keeps a file field's name as text in the database (UTF-8),"
                " so no row can name these files and the application cannot use them;"
                " rename them to UTF-8 names if they matter"
            )
        if self.refused:
            found.append(
                "media files left out of the archive: "
                + self.listed(f"'{printable(name)}' {why}" for name, why in self.refused)
            )
        return found

    def listed(self, items):
        items = list(items)
        text = "; ".join(items[: self.LISTED])
        if len(items) > self.LISTED:
            text += f"; and {len(items) - self.LISTED} more (see media.skipped)"
        return text


def parents(path):
    """The directories above a member path, outermost first: a/b/c -> a, a/b."""
    above = path.split("/")[:-1]
    return ["/".join(above[: depth + 1]) for depth in range(len(above))]


def build_metadata(report, created, params, project_name):
    display = params["display_timezone"]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "label": params["label"],
        "reason": params["reason"] or "",
        "created_at": utc_iso(created),
        "created_at_local": local_iso(created, display),
        "display_timezone": display,
        "snapshot_at": report["snapshot_at"],
        "tool": {"name": FORMAT, "version": os.environ.get(TOOL_VERSION_VARIABLE, "unknown")},
        "source": {
            "host": socket.gethostname(),
            "compose_project": project_name,
            "backend_service": params["backend_service"],
        },
        "versions": report["versions"],
        "database": report["database"],
        "migrations": report["migrations"],
        "counts": report["counts"],
        "m2m_tables": report["m2m_tables"],
        "file_fields": report["file_fields"],
        "natural_keys": report["natural_keys"],
        "relations": report["relations"],
        "excluded_models": report["excluded_models"],
        "recreated_models": report["recreated_models"],
        "required_models": [label.lower() for label in params["required_models"]],
    }


# A backup planned: the running services it reads, the archive's time and name,
# and the fixture dump's command.
Plan = namedtuple("Plan", "threshold services backend db created name argv recipients")
# What writing put into the archive; media: {"files", "bytes", "skipped"}.
Written = namedtuple("Written", "path metadata report media members")


def create_backup(params, runner=None, containers=None, now=None, check_mode=False, warn=None):
    """Take one archive; return the module's result. Raises BackupError.

    In check mode the deployment is read and the backup directory checked,
    and the result lists the container commands a real run would run.
    warn(message) is called when the counts fell against the previous
    verified archive (see _format/trend.py), which never fails the backup,
    and when no model is required.
    """
    result = {
        "changed": False,
        "commands": [],
        "execs": [],
        "count_drops": [],
        "count_compared_with": None,
    }
    if params.get("maintenance") and not check_mode:
        containers = containers or Containers()
    plan = plan_backup(params, runner, now, result, check_mode=check_mode, containers=containers)
    if check_mode:
        result.update(changed=True, name=plan.name, execs=planned_execs(params, plan))
        return result
    written = write_archive(params, plan, containers, result, sealed=bool(plan.recipients))
    if plan.recipients:
        written = verify_and_seal(result, written, plan, params["encrypt_to"])
        summarise_archive(result, plan, written)
        record_sealed(result, written, params["encrypt_to"])
    else:
        # Hashed and verified through one descriptor: the proof (below) is of
        # the very bytes verified, whatever is moved to the archive's name.
        # Hashed and verified from a private copy of it (proof.private_copy):
        # the proof is of the very bytes verified, whatever is written into
        # the archive meanwhile.
        source = pinned(written.path)
        copy = copy_sha256 = why = None
        if params.get("make_proof"):
            why = "the archive could not be kept open"
            if source != written.path:
                copy, copy_sha256, why = proofs.private_copy(source)
        summarise_archive(result, plan, written, copy or source, sha256=copy_sha256)
        verify_and_record(
            result, written, copy or source, proof=bool(params.get("make_proof")), why_no_proof=why
        )
    if not params["required_models"] and warn is not None:
        warn(
            "no required models were given, so an archive of an empty database would verify"
            " as well; name the models an archive must never be without (required_models,"
            " edms_required_models)"
        )
    result.update(
        against_previous(
            params["backup_dir"], plan.name, params["display_timezone"], plan.threshold, warn
        )
    )
    return result


def plan_backup(params, runner, now, result, check_mode=False, containers=None):
    """The options checked, the services found running and the backup directory
    checked; the archive named. Fills result's commands and archive."""
    threshold = check_options(params, result)
    try:
        recipients = parse_recipients(params.get("encrypt_to") or [])
    except ArchiveError as exc:
        raise BackupError(str(exc), **result) from exc
    services = find_services(params, runner, result, create=not check_mode, containers=containers)
    created = now or datetime.now(timezone.utc)
    name = archive_name(created)
    result["archive"] = os.path.join(params["backup_dir"], name)
    argv = dump_command(
        params["backend_python"],
        params["excludes"],
        django_settings(params),
        share_snapshot=params["pgdump"],
    )
    return Plan(
        threshold=threshold,
        services=services,
        backend=services[0],
        db=services[1] if params["pgdump"] else None,
        created=created,
        name=name,
        argv=argv,
        recipients=recipients,
    )


def check_options(params, result):
    """The count-drop threshold, once it and the display time zone are checked."""
    threshold = params.get("count_drop_threshold", DEFAULT_THRESHOLD)
    try:
        zone(params["display_timezone"])
        check_threshold(threshold)
    except TimeZoneError as exc:
        raise BackupError(f"display_timezone: {exc}", **result) from exc
    except ThresholdError as exc:
        raise BackupError(str(exc), **result) from exc
    return threshold


def find_services(params, runner, result, create=True, containers=None):
    """The running backend (and db service, for a pg_dump), once the backup
    directory is found writable. With maintenance, the backend is a
    maintenance container (_platform/maintenance.py) in place of the stopped
    service, unless this is check mode (create false): then the stopped
    backend is only checked for."""
    compose = ComposeProject(
        project_dir=params["project_dir"], files=params["compose_files"], runner=runner
    )
    result["commands"] = compose.commands
    wanted = [(params["backend_service"], "backend")]
    if params["pgdump"]:
        wanted.append((params["db_service"], "db"))
    try:
        if params.get("maintenance") and not create:
            services = stopped_backend(compose, wanted)
        else:
            services, leftovers = locate_services(
                compose, containers, wanted, params["backend_python"], params.get("maintenance")
            )
            if leftovers:
                result.setdefault("warnings", []).append(
                    "removed the maintenance containers a killed run left: " + ", ".join(leftovers)
                )
        check_backup_dir(params["backup_dir"], create=create)
    except (ComposeError, ExecError) as exc:
        raise BackupError(str(exc), **result) from exc
    except BackupError as exc:
        raise BackupError(str(exc), **result) from exc
    return services


def planned_execs(params, plan):
    """The container commands a real run would run (check mode)."""
    planned = [
        {"container": plan.backend.container_id, "command": describe(plan.argv)},
        {
            "container": plan.backend.container_id,
            "command": f"get_archive {params['media_dir_container']}",
        },
    ]
    if plan.db is not None:
        planned.append({"container": plan.db.container_id, "command": describe(PGDUMP_ARGV)})
    return planned


def write_archive(params, plan, containers, result, sealed=False):
    """Stream the fixture, the media and the pg_dump (taken meanwhile) into the
    archive, metadata last, and put it in place. Fills result's execs.
    sealed: leave it at its partial name (Written.path), to be verified and
    encrypted (verify_and_seal)."""
    backup_dir = params["backup_dir"]
    spool = None
    try:
        containers = containers or Containers()
        result["execs"] = containers.execs
        with ArchiveWriter(backup_dir, plan.name) as writer:
            if plan.db is not None:
                login = DatabaseLogin(
                    containers,
                    plan.backend.container_id,
                    plan.db.container_id,
                    params["backend_python"],
                    django_settings(params),
                )
                result["database_login"] = login.connect()
                spool = PgDumpSpool(login, backup_dir, plan.name)
            watcher = SnapshotWatcher(
                spool, containers, plan.backend.container_id, params["backend_python"]
            )
            dump = containers.exec_stream(
                plan.backend.container_id,
                plan.argv,
                what="the fixture dump",
                on_stderr=watcher.feed,
            )
            try:
                writer.add_stream(FIXTURE, watcher.stdout(dump), compress=True)
            except ExecError as exc:
                raise BackupError(dump_failure(exc), **result) from exc
            report = parse_report(dump.stderr)
            if spool is not None:
                result["pgdump_snapshot"] = "the fixture's" if watcher.shared else "its own"

            media_warnings = []
            files, media_bytes, skipped = add_media(
                writer,
                containers,
                plan.backend.container_id,
                params["media_dir_container"],
                media_warnings,
            )
            if media_warnings:
                result.setdefault("warnings", []).extend(media_warnings)
            if spool is not None:
                writer.add_file(PGDUMP, spool.result(), compress=False)
            metadata = build_metadata(
                report, plan.created, params, compose_project_name(plan.services)
            )
            if spool is not None:
                # Whether database.pgdump holds the fixture's very data.
                metadata["pgdump"] = {
                    "snapshot": "fixture" if watcher.shared else "own",
                    "excluded_table_data": [
                        a.split("=", 1)[1].strip('"')
                        for a in spool.argv
                        if a.startswith("--exclude-table-data=")
                    ],
                }
            path = writer.finish(metadata, place=not sealed)
    except (ExecError, DumpError, DjangoError, ArchiveError, OSError) as exc:
        raise BackupError(
            f"cannot write archive {plan.name} in {backup_dir}: {exc}", **result
        ) from exc
    finally:
        if spool is not None:
            if spool.ident is None:
                spool.release()
            else:
                spool.remove()
    media = {"files": files, "bytes": media_bytes, "skipped": skipped}
    return Written(path, metadata, report, media, writer.members)


def summarise_archive(result, plan, written, source=None, sha256=None):
    """The written archive in the result: size, sha256, time, counts, members.
    source: the path to read it through (pinned, or a private copy), if not
    its own; sha256: its sha256, when already taken."""
    metadata = written.metadata
    source = source or written.path
    result["changed"] = True
    result.update(
        archive=written.path,
        name=plan.name,
        size=os.path.getsize(source),
        sha256=sha256 or file_sha256(source),
        created_at=metadata["created_at"],
        created_at_local=metadata["created_at_local"],
        counts=metadata["counts"],
        objects=written.report["objects"],
        media=written.media,
        pgdump=plan.db is not None,
        members={
            member: info
            for member, info in written.members.items()
            if not member.startswith(MEDIA_PREFIX)
        },
    )


def verify_and_record(result, written, source, proof=False, why_no_proof=None):
    """Verify the archive as written (read through source: the pinned path,
    or the private copy its sha256 was taken from), record the outcome
    beside it, and fail the backup when it does not verify. With proof, when
    it passes: the proof that this host verified those bytes
    (_platform/proof.py) for a rollback to it, made only when source is that
    private copy (why_no_proof None), else proof_not_made says why."""
    verification = verify_archive(
        source,
        required_models=written.metadata["required_models"],
        recreated_models=written.metadata["recreated_models"],
    )
    if source != written.path:
        verification = renamed(verification, source, written.path)
    result["verification"] = verification
    if proof and verification["ok"] and verification["layout"] == "edms.backup v1":
        result["proof"] = None if why_no_proof else proofs.issue(result["sha256"])
        why_no_proof = why_no_proof or (None if result["proof"] else proofs.NO_KEY)
        if why_no_proof:
            result["proof_not_made"] = why_no_proof
    record_status(
        written.path,
        "verification",
        verification_entry(result["verification"]),
        sha256=result["sha256"],
    )
    if not result["verification"]["ok"]:
        raise BackupError(
            "archive {} was written but does not verify: {}".format(
                written.path, "; ".join(result["verification"]["problems"])
            ),
            **result,
        )


def verify_and_seal(result, written, plan, recipients_text):
    """Verify the plain archive at its partial name, then encrypt it into
    place (archive.seal); the plain file is removed either way. Returns the
    Written of the encrypted archive; record_sealed records the verification
    and fails the backup when it did not pass."""
    partial = written.path
    final = os.path.join(os.path.dirname(partial), plan.name)
    try:
        verification, source = verify_pinned(
            partial,
            required_models=written.metadata["required_models"],
            recreated_models=written.metadata["recreated_models"],
        )
        # Encrypted whether it verifies or not: one that does not is kept,
        # recorded as failed (as a plain one is), for someone to look at.
        result["verification"] = renamed(verification, partial, final)
        result["sealed_sha256"] = seal(partial, final, plan.recipients, source=source)
    except ArchiveError as exc:
        raise BackupError(f"cannot encrypt archive {plan.name}: {exc}", **result) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    result["encrypted"] = {"format": "age", "recipients": list(recipients_text)}
    return written._replace(path=final)


def record_sealed(result, written, recipients_text):
    """Record an encrypted archive's verification (of its plaintext, before it
    was encrypted and read back) and its encryption beside it."""
    sha256 = result.pop("sealed_sha256")
    entry = dict(verification_entry(result["verification"]), encrypted=True)
    if entry["problems"]:  # they may name members: not in the clear beside an encrypted archive
        entry["problems"] = [
            f"{len(entry['problems'])} problem(s) found before it was encrypted; verify it with"
            " the key (playbooks/verify.yml) to read them"
        ]
    record_status(written.path, "verification", entry, sha256=sha256)
    record_status(
        written.path,
        "encryption",
        sealed_entry(dict(written.metadata, members=written.members), recipients_text),
        sha256=sha256,
    )
    if not result["verification"]["ok"]:
        raise BackupError(
            "archive {} was written but does not verify (it is kept, encrypted, and recorded"
            " as failed): {}".format(written.path, "; ".join(result["verification"]["problems"])),
            **result,
        )


def against_previous(backup_dir, name, display_timezone, threshold, warn=None):
    """count_drops and count_compared_with of a new archive against the previous
    verified one in its directory. A backup of a damaged database is still
    evidence: what cannot be compared is a warning too, never a failure."""
    warn = warn or (lambda message: None)
    try:
        archives = list_archives(backup_dir, display_timezone)["archives"]
    except CatalogueError as exc:
        warn(f"counts of archive {name} not compared with earlier archives: {exc}")
        return {"count_drops": [], "count_compared_with": None}
    entry = next((a for a in archives if a["name"] == name), None)
    if entry is None:
        warn(f"counts of archive {name} not compared: it is not listed in {backup_dir}")
        return {"count_drops": [], "count_compared_with": None}
    comparison = compare(archives, entry, threshold)
    message = drop_warning(name, comparison, threshold)
    if message:
        warn(message)
    return {"count_drops": comparison["drops"], "count_compared_with": comparison["previous"]}


def dump_failure(exc):
    """The dump's own error from its report, else the exec's failure."""
    try:
        parse_report(getattr(exc, "stderr", b""))
    except DumpError as report_error:
        if not isinstance(report_error.__cause__, NoReport):
            return f"the fixture dump failed: {report_error}"
    return str(exc)


def compose_project_name(services):
    for service in services:
        if service.project:
            return service.project
    return None
