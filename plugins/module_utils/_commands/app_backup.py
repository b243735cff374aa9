# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The application's own backup, as the operators' checklist tests it.

Step 3 (the live counts), Step 4 (the application's backup run in the
backend: by default ``BackupService().execute_backup(config, admin)``, or a
command of the inventory's), Step 5 (the new backup on the host and in the
container, the same bytes in both) and Step 6 (its layout: the native
verification of _format/verification.py, and its counts against Step 3's).

Known issue 1 is the failure this finds first: with no mount, the backup
lands only inside the container and is lost with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import stat
from urllib.error import HTTPError, URLError

from ansible_collections.edms.backup.plugins.module_utils._backend import (
    app_backup as app_backup_program,
)
from ansible_collections.edms.backup.plugins.module_utils._backend.app_backup import (
    PENDING,
    digest,
    sha256_of,
)
from ansible_collections.edms.backup.plugins.module_utils._backend.scrub import scrub
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure, secret
from ansible_collections.edms.backup.plugins.module_utils._deployment.database import LoginError
from ansible_collections.edms.backup.plugins.module_utils._deployment.deployment import Deployment
from ansible_collections.edms.backup.plugins.module_utils._format.verification import (
    renamed,
    verify_archive,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    DjangoError,
    count_command,
    django_settings,
    normalize_model_labels,
    parse_counts,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import ExecError
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import (
    TimeZoneError,
    describe,
    parse_instant,
)

# Models an application's backup may leave out (Django recreates them, or
# they hold nothing to restore): under __all__ their absence is a warning.
LEFT_OUT_BY_DESIGN = frozenset(
    ("contenttypes.contenttype", "auth.permission", "sessions.session", "admin.logentry")
)
DONE = ("COMPLETED", "COMPLETE", "SUCCESS", "SUCCEEDED", "DONE", "OK")
FALLBACK = "/app/backups"


class AppBackupError(ModuleFailure):
    """The application's backup failed, or is not where and what it must be."""


def container_location(path, mounts):
    """Where a path inside the container is kept: ("mount", mount, rel) when a
    mount holds it (the deepest), ("container", None, None) when only the
    container's own layer does. ValueError when path is not a plain absolute
    path (it comes from the application: untrusted)."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise ValueError(f"{path!r} is not an absolute path")
    if posixpath.normpath(path) != path:
        raise ValueError(f"{path!r} is not a plain path ('..', '.', '//' or a trailing /)")
    best = None
    for mount in mounts:
        target = str(mount.get("Destination") or "")
        if not target.startswith("/"):
            continue
        inside = path == target or path.startswith(target.rstrip("/") + "/")
        if inside and (best is None or len(target) > len(best["Destination"])):
            best = mount
    if best is None:
        return "container", None, None
    if path == best["Destination"].rstrip("/"):
        raise ValueError(f"{path!r} is the mounted directory itself, not a backup in it")
    return "mount", best, posixpath.relpath(path, best["Destination"])


def host_location(mount, rel, backup_dir):
    """The path on the host of rel inside a bind mount, checked to lie in
    backup_dir with no link on the way. (path, None) or (None, why)."""
    if mount.get("Type") != "bind":
        return None, "it is in the {} {} mounted at {}, not in a directory of the host".format(
            mount.get("Type") or "mount",
            mount.get("Name") or mount.get("Source"),
            mount.get("Destination"),
        )
    source = os.path.realpath(str(mount.get("Source") or ""))
    path = os.path.normpath(os.path.join(source, rel)) if rel != "." else source
    root = os.path.realpath(backup_dir)
    if path != root and not path.startswith(root.rstrip("/") + "/"):
        return None, f"it is on the host at {path}, not in the backup directory {backup_dir}"
    parent = os.path.dirname(path)
    if os.path.realpath(parent) != parent:
        return None, f"a link on the way to {path} on the host leads elsewhere"
    return path, None


def compare_counts(step3, archive, labels):
    """Step 3's live counts ({label: {"rows", "visible"}}, before and after
    the backup) against the backup's objects per model. Returns (per model,
    errors, warnings): a model is equal when the backup holds what the
    application shows (the default manager, as Step 3 counts) or every row.
    labels: the models to compare, or "__all__": every model counted, where
    one the backup leaves out is a warning (an application may leave out
    content types or sessions), not an error."""
    before, after = step3
    table, errors, warnings = {}, [], []
    every = labels == "__all__"
    if every:
        labels = sorted(before)
    for label in labels:
        key = label.lower()
        live = before.get(label) or before.get(key) or {}
        later = after.get(label) or after.get(key) or {}
        got = archive.get(key)
        row = {
            "live": live.get("visible"),
            "rows": live.get("rows"),
            "backup": got,
        }
        moved = later != live
        row["equal"] = got is not None and got in (live.get("visible"), live.get("rows"))
        # A count that moved during the backup: the backup's must lie between.
        seen = [
            n
            for n in (
                live.get("visible"),
                live.get("rows"),
                later.get("visible"),
                later.get("rows"),
            )
            if isinstance(n, int)
        ]
        within = got is not None and bool(seen) and min(seen) <= got <= max(seen)
        table[label] = row
        if got is None and every and (not live.get("rows") or key in LEFT_OUT_BY_DESIGN):
            row["equal"] = not live.get("rows")
            if live.get("rows"):
                warnings.append(
                    f"{label} is not in the application's backup ({live.get('rows')} rows live)"
                )
        elif got is None:
            errors.append(
                f"{label} is not in the application's backup ({live.get('rows')} rows live)"
            )
        elif not row["equal"]:
            text = (
                f"the application's backup holds {got} {label}, the live count is"
                f" {live.get('visible')} ({live.get('rows')} rows)"
            )
            if moved and within:
                warnings.append(text + "; the live count changed during the backup")
            else:
                errors.append(text)
        elif got != live.get("rows"):
            warnings.append(
                f"the application's backup holds the {got} {label} the application shows;"
                f" the database holds {live.get('rows')}: the {live.get('rows') - got} rows its"
                " default manager hides are not in it"
            )
    return table, errors, warnings


def http_post(url, body, username, password, validate_certs, timeout):
    """(status, text) of a JSON POST to url with HTTP Basic authentication
    (when a username is given); (None, why) when no answer came."""
    from ansible.module_utils.urls import open_url

    try:
        response = open_url(
            url,
            data=json.dumps(body),
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            url_username=username or None,
            url_password=password or None,
            force_basic_auth=bool(username),
            validate_certs=validate_certs,
            timeout=timeout,
            # The credentials go to this URL only, never to where it redirects.
            follow_redirects="none",
        )
    except HTTPError as exc:
        return exc.code, _read(exc)
    except (URLError, OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", None) or exc)
    with response:
        return response.status, _read(response)


def _read(stream, limit=1 << 20):
    try:
        return stream.read(limit).decode("utf-8", "replace")
    except (OSError, AttributeError):
        return ""


def parse_json_object(text):
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def shorten(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def read_on_host(path):
    """(digest, the path to read it from for the rest of the run, its stat)
    of a backup on the host. A file is opened once with O_NOFOLLOW (and
    O_NONBLOCK: a FIFO put there does not hang the run), checked to be a
    regular file, and hashed through that descriptor, which stays open: the
    path returned is /proc/self/fd/N, the very file hashed. A directory is
    digest()'s (no link anywhere in it)."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return {"error": f"{path}: {exc.strerror}"}, path, None
    if stat.S_ISDIR(info.st_mode):
        return digest(path), path, info
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return {"error": f"{path}: {exc.strerror} (a link is never followed)"}, path, info
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return {"error": f"{path} is neither a file nor a directory"}, path, info
    sha, size = sha256_of(fd)
    source = f"/proc/self/fd/{fd}"
    if not os.path.exists(source):  # no /proc: the path itself
        os.close(fd)
        source = path
    return {"kind": "file", "size": size, "sha256": sha}, source, info


def started_text(job, params):
    """The job's start for people, in UTC and the display time zone (names
    are UTC: the checklist's known issue 3), or None."""
    try:
        instant = parse_instant((job or {}).get("started_at"))
        return describe(instant, params.get("display_timezone") or "UTC")
    except (ValueError, TimeZoneError):
        return None


def summary(result):
    """The result as the lines the role prints."""
    who = f" as {result['user']}" if result.get("user") else ""
    config = result.get("configuration")
    config_line = [f"Config      {config.get('text')} ({config.get('how')})"] if config else []
    if "would_run" in result:
        lines = [f"Would run   {result['would_run']}{who}", *config_line]
        if "would_land_on_host" in result:
            lines.append(
                "Would land  "
                + (result["would_land_on_host"] or "only inside the container (known issue 1)")
            )
        return lines
    backup = result["backup"]
    job = result.get("job")
    lines = [
        f"Ran         {result['call']}{who}",
        *config_line,
        "Job         "
        + (f"{job.get('status')} ({job.get('pk')})" if job else "(a command: no job)"),
        *([f"Started     {result['started']}"] if result.get("started") else []),
        f"Container   {backup['container_path']}",
        "Host        {} ({} bytes, the same sha256 {} in both)".format(
            backup["host_path"], backup["on_host"]["size"], backup["on_host"]["sha256"][:16]
        ),
        f"Layout      {result['verification']['layout']}, verified",
    ]
    for label, row in result.get("counts", {}).items():
        lines.append(
            "Counts      {}: backup {}, live {} ({} rows)".format(
                label, row["backup"], row["live"], row["rows"]
            )
        )
    lines.append(
        "Restorable  not checked here; rehearse it: playbooks/rehearse.yml -e edms_archive="
        + backup["host_path"]
    )
    return lines


class AppBackup(Deployment):
    failure = AppBackupError

    def __init__(self, params, runner=None, containers=None, check_mode=False):
        super().__init__(params, runner=runner, containers=containers)
        self.check_mode = check_mode
        self.result["warnings"] = []

    def program(self, function, request, what):
        try:
            return self.backend_call(app_backup_program, function, request, what)
        except (ExecError, DjangoError) as exc:
            self.fail(
                f"cannot run {what} in service '{self.params['backend_service']}': {exc}", exc
            )

    def counts(self, labels):
        argv = count_command(self.params["backend_python"], labels, django_settings(self.params))
        try:
            answer = self.containers.exec(self.backend.container_id, argv, what="the record count")
            return parse_counts(answer.stdout)
        except (ExecError, DjangoError) as exc:
            self.fail(f"cannot count records (Step 3): {exc}", exc)

    def request(self):
        params = self.params
        return {
            "settings": django_settings(params),
            "service": params["service"],
            "method": params["service_method"],
            "configuration_model": params["configuration_model"],
            "configuration": params["configuration"] or None,
            "create_configuration": params["create_configuration"],
            "run_as": params["run_as"],
            "check": self.check_mode,
            "wait_seconds": params["wait_seconds"],
            "backup_dir_fallback": params["fallback_dir"],
        }

    def run(self):
        params = self.params
        secret(params.get("url_password"))
        try:
            labels = normalize_model_labels(params["count_models"])
        except DjangoError as exc:
            self.fail(str(exc), exc)
        self.locate()
        # Read so that the database password is masked in everything returned
        # (the application's messages may quote it); without it, nothing to mask.
        with contextlib.suppress(LoginError, ExecError, DjangoError):
            self.login.credentials()
        request = self.request()
        if params["method"] == "command" and not params["command"]:
            self.fail("method 'command' needs the command to run (a list: the argv)")
        if params["method"] == "http" and not params["url"]:
            self.fail("method 'http' needs the url of the application's backup API")
        if params["method"] != "service":
            ignored = [name for name in ("run_as", "configuration") if params[name]]
            if ignored:
                self.result["warnings"].append(
                    "{} only apply to method service; method {} ignores them".format(
                        " and ".join(ignored), params["method"]
                    )
                )
        if self.check_mode:
            return self.check(request)
        before = self.counts(labels)
        listed = self.program("listing_main", request, "the backup directory's listing")
        self.result["backup_dir"] = listed["backup_dir"]
        if params["method"] == "service":
            path = self.run_service(request)
        elif params["method"] == "http":
            path = self.run_http()
        else:
            path = self.run_command(listed)
        after = self.counts(labels)
        self.result["changed"] = True
        self.locate_backup(path, listed)
        self.check_backup(before, after, labels)
        return self.result

    def landing(self, where):
        """Where a backup in the application's backup directory would be kept:
        the host path, or None (only inside the container: known issue 1),
        with a warning saying so."""
        path = where["path"].rstrip("/") or "/"
        try:
            mounts = self.containers.inspect(self.backend.container_id).get("Mounts") or []
            # A backup in it, not the directory (which may be the mount point).
            probe = posixpath.join(posixpath.normpath(path), "backup")
            kept, mount, rel = container_location(probe, mounts)
        except (ValueError, ExecError) as exc:
            self.result["warnings"].append(f"cannot tell where {path} is kept: {exc}")
            return None
        if kept == "container":
            self.result["warnings"].append(
                f"the application's backups would land only inside the container: {path}"
                " is not mounted from the host (the checklist's known issue 1); run the"
                " storage phase first"
            )
            return None
        host, why = host_location(mount, rel, self.params["backup_dir"])
        if host is None:
            self.result["warnings"].append(
                f"the application's backups would not be in the backup directory: {why}"
            )
            return None
        return os.path.dirname(host)

    def check(self, request):
        method = self.params["method"]
        listed = self.program("listing_main", request, "the backup directory's listing")
        self.result["backup_dir"] = listed["backup_dir"]
        self.result["would_land_on_host"] = self.landing(listed["backup_dir"])
        if method in ("command", "http"):
            if method == "command":
                self.result["would_run"] = " ".join(self.params["command"])
            else:
                self.result["would_run"] = f"POST {self.params['url']}"
                if self.params["url_username"]:
                    self.result["user"] = self.params["url_username"]
            self.result["changed"] = True
            self.result["summary"] = summary(self.result)
            return self.result
        answer = self.program("service_main", request, "the application's backup (check)")
        if "error" in answer:
            self.fail(f"the application's backup cannot run: {answer['error']}")
        config = answer["configuration"]
        self.result.update(
            would_run=answer["call"],
            user=answer["user"],
            configuration=config,
            changed=True,
        )
        self.result["summary"] = summary(self.result)
        return self.result

    def run_service(self, request):
        self.result["changed"] = True  # whatever the service did, it may have written
        answer = self.program("service_main", request, "the application's backup")
        for key in ("call", "user", "configuration", "backup_dir", "job"):
            if key in answer:
                self.result[key] = answer[key]
        if "error" in answer:
            self.fail(f"the application's backup cannot run: {answer['error']}")
        if (answer.get("configuration") or {}).get("how") == "created":
            self.result["warnings"].append(
                "there was no {}: this run created {!r} (create_configuration), as the"
                " checklist's Step 4 does".format(
                    answer["configuration"].get("model"), answer["configuration"].get("text")
                )
            )
        if "failed" in answer:
            self.fail(f"the application's backup failed: {scrub(str(answer['failed']))}")
        return self.finished(answer.get("job") or {})

    def run_http(self):
        """POST to the application's API; the job its answer names, waited for."""
        params = self.params
        url = params["url"]
        self.result["call"] = f"POST {url}"
        if params["url_username"]:
            self.result["user"] = params["url_username"]
        self.result["changed"] = True
        status, text = http_post(
            url,
            params["body"],
            params["url_username"],
            params["url_password"],
            params["validate_certs"],
            params["http_timeout"],
        )
        if status is None:
            self.fail(
                f"no answer from the application's backup API at {url} within"
                f" {params['http_timeout']} s: {text} (if it was reached, the application may"
                " still be making the backup: look at its job list before running this again)"
            )
        answer = parse_json_object(text)
        if not 200 <= status < 300:
            said = answer.get("error") if isinstance(answer, dict) else None
            said = said if isinstance(said, str) else shorten(text)
            self.fail(f"the application's backup failed: HTTP {status} from {url}: {said}")
        if answer is None:
            self.fail(f"the application's API answered {url} with no JSON object: {shorten(text)}")
        pk = answer.get(params["job_id_key"])
        if not isinstance(pk, (str, int)) or isinstance(pk, bool) or not str(pk).strip():
            self.fail(
                f"the application's API answer names no job under {params['job_id_key']!r}"
                f" (keys: {', '.join(sorted(map(str, answer))[:10])})"
            )
        request = {
            "settings": django_settings(params),
            "job_model": params["job_model"],
            "pk": str(pk)[:200],
            "wait_seconds": params["wait_seconds"],
        }
        found = self.program("job_main", request, "the application's backup job")
        if "error" in found:
            self.fail(f"the application's backup job cannot be read: {found['error']}")
        self.result["job"] = found["job"]
        return self.finished(found["job"])

    def finished(self, job):
        """The backup_path of a job that completed; fails on any other end."""
        status = str(job.get("status", "")).upper()
        if status in PENDING:
            self.fail(
                "the application's backup job {} is still {} after {} s".format(
                    job.get("pk", "?"), status, self.params["wait_seconds"]
                )
            )
        if status and status not in DONE:
            self.fail(
                "the application's backup job {} ended {}{}".format(
                    job.get("pk", "?"),
                    status,
                    f": {job.get('error_message') or job.get('error')}"
                    if job.get("error_message") or job.get("error")
                    else "",
                )
            )
        path = job.get("backup_path")
        if not path:
            self.fail("the application's backup job names no backup_path")
        return path

    def run_command(self, listed):
        argv = [str(part) for part in self.params["command"]]
        self.result["call"] = " ".join(argv)
        self.result["changed"] = True
        try:
            self.containers.exec(
                self.backend.container_id,
                argv,
                what="the application's backup command",
                clean=scrub,
            )
        except ExecError as exc:
            self.fail(f"the application's backup failed: {exc}", exc)
        now = self.program("listing_main", self.request(), "the backup directory's listing")
        old, new = listed["entries"] or {}, now["entries"] or {}
        fresh = sorted(
            (name for name in new if name not in old or new[name] != old[name]),
            key=lambda name: new[name]["mtime"],
        )
        if not fresh:
            where = now["backup_dir"]["path"]
            self.fail(f"the application's backup command wrote nothing new into {where}")
        return posixpath.join(now["backup_dir"]["path"], fresh[-1])

    def locate_backup(self, path, listed):
        backend = self.backend
        try:
            mounts = self.containers.inspect(backend.container_id).get("Mounts") or []
            kept, mount, rel = container_location(path, mounts)
        except ValueError as exc:
            self.fail(
                f"the application's backup job gives a backup_path that cannot be used: {exc}"
            )
        except ExecError as exc:
            self.fail(str(exc), exc)
        inside = self.program("digest_main", {"path": path}, "the backup's checksum")["digest"]
        self.result["backup"] = {"container_path": path, "in_container": inside}
        if "error" in inside:
            self.fail(
                f"the application's backup {path} cannot be read in the container:"
                f" {inside['error']}"
            )
        if kept == "container":
            job = self.result.get("job") or {}
            self.fail(
                "the application's backup {} is only inside the container {}: {} is not mounted"
                " from the host, so the backup is lost when the container is removed (the"
                " checklist's known issue 1; BACKUP_DIR is {}). {}Run the storage phase"
                " (playbooks/storage.yml), which recreates the container (and so removes"
                " that file), then run this again".format(
                    path,
                    backend.container_name,
                    posixpath.dirname(path),
                    self.result.get("backup_dir", {}).get("setting") or "not set",
                    f"The application recorded it as job {job['pk']} ({job.get('status')}). "
                    if job.get("pk")
                    else "",
                )
            )
        host, why = host_location(mount, rel, self.params["backup_dir"])
        if host is None:
            self.fail(f"the application's backup {path} is not in the backup directory: {why}")
        # What the container returned is untrusted, and the directory is the
        # application's to write: a file is opened once, without following a
        # link, and that very file is hashed, checked and verified.
        on_host, source, info = read_on_host(host)
        self.archive_path, self.source = host, source
        self.result["backup"].update(host_path=host, on_host=on_host)
        if "error" in on_host:
            self.fail(f"the application's backup is not on the host: {on_host['error']}")
        if (on_host["kind"], on_host["size"], on_host["sha256"]) != (
            inside["kind"],
            inside["size"],
            inside["sha256"],
        ):
            self.fail(
                f"the application's backup differs between the container ({path}: {inside['size']}"
                f" bytes, sha256 {inside['sha256']}) and the host ({host}: {on_host['size']}"
                f" bytes, sha256 {on_host['sha256']})"
            )
        self.result["backup"]["same"] = True
        earlier = (listed["entries"] or {}).get(posixpath.basename(path))
        if earlier and posixpath.dirname(path) == listed["backup_dir"]["path"]:
            if (earlier["size"], earlier["mtime"]) == (info.st_size, info.st_mtime):
                self.fail(
                    f"the application names {path} as its backup, but that was there, unchanged,"
                    " before this run: it made no new backup"
                )
            self.result["warnings"].append(
                f"the application's backup {path} replaced an earlier backup of the same name"
            )
        mode = info.st_mode & 0o777
        if mode & 0o004:
            self.result["warnings"].append(
                f"the application's backup {host} is readable by every user of the host"
                f" (mode {mode:04o}); it holds the application's data, password hashes"
                " included"
            )

    def check_backup(self, before, after, labels):
        host = self.result["backup"]["host_path"]
        verification = verify_archive(self.source)
        if self.source != host:
            verification = renamed(verification, self.source, host)
        self.result["verification"] = verification
        if not verification["ok"]:
            self.fail(
                "the application's backup {} does not verify: {}".format(
                    host, "; ".join(verification["problems"])
                )
            )
        self.result["started"] = started_text(self.result.get("job"), self.params)
        table, errors, warnings = compare_counts(
            (before, after), verification["fixture_counts"], labels
        )
        self.result["counts"] = table
        self.result["warnings"].extend(warnings)
        if errors:
            self.fail("the application's backup does not hold the live data: " + "; ".join(errors))
        self.result["summary"] = summary(self.result)


def app_backup(params, runner=None, containers=None, check_mode=False):
    return AppBackup(params, runner=runner, containers=containers, check_mode=check_mode).run()
