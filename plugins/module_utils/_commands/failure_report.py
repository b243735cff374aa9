# Private to the edms.backup collection: no compatibility promise to anyone else.
"""What an operator looks at first when a run fails, in one file (failure_report).

The checklist's "If something goes wrong": the logs of the backend (and of
the database), the state of the services, the free space. The report holds,
since the run began: ``docker compose logs`` of the backend and db services
(the newest lines, up to a limit per service), ``docker compose ps`` of
every service, and the free space of the archive directory and of the
backup directory; with the failure's message, the operation and the times.

It is written beside the archives, as ``edms-failure-<UTC time>-<operation>.log``,
created new (never through a link, never over a file), mode 0600. Secrets are
taken out before anything is written: the values of the containers'
environment variables whose names look like a secret's, the passwords of URLs
in any of them, and those the module was told of. Each part is gathered on its
own: one that fails (the engine down, a service gone) is named in the report,
which is written all the same.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from datetime import datetime, timezone
from urllib.parse import unquote

from ansible_collections.edms.backup.plugins.module_utils._common import (
    MASK,
    ModuleFailure,
    hide_secrets,
    secret,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.compose import (
    ComposeError,
    ComposeProject,
    run_command,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.compose_file import (
    looks_secret,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import (
    Containers,
    ExecError,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import utc_iso

# The operations that name a report (its file name holds the operation).
OPERATION = re.compile(r"^[a-z][a-z_]{0,31}$")
# What `docker compose logs --since` takes: RFC 3339 in UTC.
SINCE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
# The password of a URL: scheme://user:password@host.
URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:([^@/\s]+)@")
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
# The longest log line kept whole, in characters.
LINE_LIMIT = 4096


class ReportError(ModuleFailure):
    """No report could be written; the message says why."""


def check_params(params):
    """Fail, writing nothing, on options that are not what they must be."""
    if not OPERATION.match(params["operation"] or ""):
        raise ReportError(
            f"operation {params['operation']!r} is not a name such as backup or restore"
            " (lower-case letters and _, up to 32)"
        )
    if not SINCE.match(params["since"] or ""):
        raise ReportError(
            f"since {params['since']!r} is not a UTC time such as 2026-12-04T06:33:23Z"
        )
    if params["max_lines"] < 1:
        raise ReportError(f"max_lines must be at least 1, not {params['max_lines']}")


def report_directory(path):
    """The directory the report goes into: the archive directory, a real
    directory of the running user's (or root's) that no one else may write.
    One that is missing is not made: a run that failed before it made the
    archive directory leaves nothing behind."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise ReportError(f"no report written: {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise ReportError(f"no report written: {path} is not a directory (a link is not followed)")
    if info.st_uid not in (os.geteuid(), 0) or info.st_mode & 0o022:
        raise ReportError(
            f"no report written: {path} is owned by uid {info.st_uid} or writable by others"
            " (mode {:04o}); the archive directory must be this user's alone".format(
                stat.S_IMODE(info.st_mode)
            )
        )
    return path


def remember(name, value):
    """secret() value when name looks like a secret's, and the password of
    any URL in it, as written and URL-decoded."""
    if looks_secret(name):
        secret(value)
    for found in URL_PASSWORD.finditer(value):
        secret(found.group(1))
        secret(unquote(found.group(1)))


def environment_secrets(containers, services):
    """Remember the secrets of the services' containers' environment; the
    problems met, as text (none: every container's environment was read)."""
    problems = []
    for state in services:
        if not state.container_id:
            continue
        try:
            config = containers.inspect(state.container_id).get("Config") or {}
        except ExecError as exc:
            problems.append(f"the environment of {state.service} was not read: {exc}")
            continue
        for entry in config.get("Env") or []:
            name, _sep, value = str(entry).partition("=")
            remember(name, value)
    return problems


def dotenv_secrets(project_dir):
    """Remember the secrets of the project's .env (NAME=value lines), which
    Compose reads and a log line may quote."""
    try:
        with open(os.path.join(project_dir, ".env"), encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            remember(name.removeprefix("export ").strip(), value.strip().strip("'\""))


def capped(text):
    """Log text with each line cut at LINE_LIMIT characters."""
    return "\n".join(
        line if len(line) <= LINE_LIMIT else line[:LINE_LIMIT] + " [cut]"
        for line in text.splitlines()
    )


def free_space(label, path):
    if not path:
        return f"{label}: not given"
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return f"{label} {path}: not measured ({exc.strerror or exc})"
    share = usage.free / usage.total if usage.total else 0
    return f"{label} {path}: {usage.free} bytes free of {usage.total} ({share:.0%} free)"


def scrubbed(text):
    """text without any secret remembered, nor a URL's password."""
    text = hide_secrets(text, message=True)
    return URL_PASSWORD.sub(lambda found: found.group(0).replace(found.group(1), MASK), text)


def failure_report(params, runner=None, containers=None, check_mode=False, now=None):
    check_params(params)
    directory = params["report_dir"]
    now = now or datetime.now(timezone.utc)
    name = "edms-failure-{}-{}.log".format(now.strftime("%Y%m%dT%H%M%SZ"), params["operation"])
    result = {"changed": False, "path": os.path.join(directory, name)}
    if check_mode:
        return result
    report_directory(directory)
    for value in params.get("secrets") or []:
        secret(value)
    compose = ComposeProject(params["project_dir"], params["compose_files"], runner=runner)
    parts = [
        f"edms.backup failure report: the {params['operation']} run that began {params['since']}",
        f"written {utc_iso(now)}",
        "",
        "== failure",
        params.get("failure") or "(not given)",
        "",
        "== services (docker compose ps --all)",
    ]
    services = []
    try:
        services = compose.services()
    except ComposeError as exc:
        parts.append(f"not read: {exc}")
    for state in services:
        parts.append(
            "{:<20} {:<10} health {:<10} container {}".format(
                state.service, state.state, state.health or "-", state.container_name or "-"
            )
        )
    result["services"] = [state.as_dict() for state in services]
    dotenv_secrets(params["project_dir"])
    # The logs are written only once every secret the containers hold is known.
    unknown = ["the services were not listed"] if not services else []
    if services:
        try:
            containers = containers or Containers()
            unknown = environment_secrets(containers, services)
        except ExecError as exc:
            unknown = [f"the containers' environment was not read: {exc}"]
    parts.extend(unknown)
    parts += [
        "",
        "== free space",
        free_space("archive directory", directory),
        free_space("backup directory", params.get("backup_dir")),
    ]
    lines = {}
    for service in (params["backend_service"], params["db_service"]):
        parts += ["", f"== docker compose logs {service} (since {params['since']})"]
        if unknown:
            parts.append("left out: the secrets they may quote are not known (see above)")
            continue
        argv = [
            *compose.base_argv(),
            "logs",
            "--no-color",
            "--timestamps",
            "--since",
            params["since"],
            "--tail",
            str(params["max_lines"]),
            service,
        ]
        rc, out, err = (runner or run_command)(argv)
        if rc != 0:
            parts.append(f"not read (exit {rc}): {(err or out).strip()[-2000:]}")
            continue
        text = capped(out.rstrip("\n"))
        lines[service] = len(text.splitlines()) if text else 0
        parts.append(text or "(no lines)")
    result["log_lines"] = lines
    report = scrubbed("\n".join(parts) + "\n")
    result["path"] = write_new(result["path"], report)
    result["changed"] = True
    return result


def write_new(path, text):
    """text in a new file at path (or at path with -2, -3... before .log when
    one of that name is there: two failures in one second); never through a
    link or over a file. A write that fails removes what it wrote. The path
    written."""
    stem = path[: -len(".log")]
    for attempt in range(1, 10):
        candidate = path if attempt == 1 else f"{stem}-{attempt}.log"
        try:
            fd = os.open(candidate, CREATE_FLAGS, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ReportError(f"no report written: cannot create {candidate}: {exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            os.unlink(candidate)
            raise ReportError(f"no report written: cannot write {candidate}: {exc}") from exc
        return candidate
    raise ReportError(f"no report written: {path} and nine more of its name are there")
