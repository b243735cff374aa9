# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Preflight: everything the operators' checklist checks by hand, read-only.

The facts come from three places: `docker compose` (services and health), one
probe run inside the backend through Django (settings, directories as the
application sees them, the database through the application's own
connection, clocks, record counts), and this host (the backup directory and
the freshness of the verified backups in it, see _format/freshness.py).
Each finding has a severity (ok, warning, error) and a fix hint.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import stat
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._backend import probe as probe_program
from ansible_collections.edms.backup.plugins.module_utils._commands import lock as project_lock
from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._deployment.database import DatabaseLogin
from ansible_collections.edms.backup.plugins.module_utils._format.freshness import (
    check_freshness,
    copies_finding,
)
from ansible_collections.edms.backup.plugins.module_utils._platform import host as libraries_on_host
from ansible_collections.edms.backup.plugins.module_utils._platform.compose import (
    ComposeError,
    ComposeProject,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    DjangoError,
    backend_command,
    django_settings,
    normalize_model_labels,
    parse_answer,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import (
    Containers,
    ExecError,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import (
    TimeZoneError,
    parse_instant,
    utc_iso,
    zone,
)

try:
    import psycopg2

    HAS_PSYCOPG2 = True
except ImportError:  # pragma: no cover - depends on the managed host's packages
    psycopg2 = None
    HAS_PSYCOPG2 = False

SEVERITIES = ("ok", "warning", "error")


class PreflightError(ModuleFailure):
    """Preflight could not look (as opposed to finding problems, which are findings)."""


class Findings:
    def __init__(self):
        self.items = []

    def add(self, check, severity, message, fix=None):
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        self.items.append({"check": check, "severity": severity, "message": message, "fix": fix})

    def summary(self):
        return {s: sum(1 for f in self.items if f["severity"] == s) for s in SEVERITIES}


def probe_command(python, params, labels):
    request = {
        "settings": django_settings(params),
        "models": labels,
        "backup_dir": params["backup_dir_container"],
        "media_dir": params["media_dir_container"],
    }
    return backend_command(python, probe_program, request)


def owner_names(uid, gid):
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return user, group


def host_backup_dir(path):
    """Facts about the backup directory on this host."""
    facts = {"path": path, "exists": os.path.isdir(path)}
    if not facts["exists"]:
        return facts
    info = os.stat(path)
    usage = shutil.disk_usage(path)
    owner, group = owner_names(info.st_uid, info.st_gid)
    facts.update(
        uid=info.st_uid,
        gid=info.st_gid,
        owner=owner,
        group=group,
        mode=f"{stat.S_IMODE(info.st_mode):04o}",
        free_bytes=usage.free,
        total_bytes=usage.total,
    )
    return facts


def writable_by(facts, uid, gid):
    """Whether uid/gid may create files in the directory, from owner and mode bits."""
    mode = int(facts["mode"], 8)
    if uid == 0:
        return True
    if facts["uid"] == uid:
        return bool(mode & stat.S_IWUSR and mode & stat.S_IXUSR)
    if facts["gid"] == gid:
        return bool(mode & stat.S_IWGRP and mode & stat.S_IXGRP)
    return bool(mode & stat.S_IWOTH and mode & stat.S_IXOTH)


def check_services(services, params, findings):
    required = {params["backend_service"]: "backend", params["db_service"]: "database"}
    for name, role in required.items():
        service = next((s for s in services if s.service == name), None)
        if service is None:
            findings.add(
                "services",
                "error",
                f"the {role} service '{name}' is not defined in the compose files",
                "set edms_backend_service / edms_db_service to the compose service names",
            )
        elif not service.running:
            findings.add(
                "services",
                "error",
                f"the {role} service '{name}' is not running (state: {service.state})",
                "start it: docker compose up -d " + name,
            )
        elif not service.healthy:
            findings.add(
                "services",
                "error",
                f"the {role} service '{name}' is running but {service.health}",
                f"see its logs: docker compose logs {name}",
            )
        else:
            findings.add("services", "ok", f"the {role} service '{name}' is running and healthy")
    for service in services:
        if service.service not in required and not service.running:
            findings.add(
                "services",
                "warning",
                f"service '{service.service}' is not running (state: {service.state})",
                "start it if the application needs it",
            )


def check_backup_storage(params, host, probe, mounts, findings):
    path, inside = params["backup_dir"], params["backup_dir_container"]
    if not host["exists"]:
        findings.add(
            "backup_dir",
            "error",
            f"the backup directory {path} does not exist on the host",
            "run the storage phase (playbooks/storage.yml), which creates it and mounts it",
        )
    else:
        findings.add(
            "backup_dir",
            "ok",
            "{} exists, owner {}:{}, mode {}, {:.1f} GiB free".format(
                path, host["owner"], host["group"], host["mode"], host["free_bytes"] / 2**30
            ),
        )
        need = params["min_free_bytes"]
        if host["free_bytes"] < need:
            findings.add(
                "free_space",
                "error",
                "only {:.2f} GiB free in {}, {:.2f} GiB required".format(
                    host["free_bytes"] / 2**30, path, need / 2**30
                ),
                "free space (df -h) or lower preflight_min_free_bytes",
            )
        user = probe.get("user") if probe else None
        if user and not writable_by(host, user["uid"], user["gid"]):
            findings.add(
                "backup_dir_permissions",
                "error",
                "the backend runs as uid {} gid {}, which cannot write to {} ({}:{} {})".format(
                    user["uid"], user["gid"], path, host["owner"], host["group"], host["mode"]
                ),
                "chown {}:{} {} (checklist: Storage Permissions)".format(
                    user["uid"], user["gid"], path
                ),
            )
    mount = next((m for m in mounts or () if m.get("Destination") == inside), None)
    if mounts is None:
        pass  # the containers' mounts are not known (no Docker SDK: check docker_checks)
    elif mount is None:
        findings.add(
            "backup_mount",
            "warning",
            f"{inside} in the backend is not mounted from the host: files the application"
            " writes there are lost when its container is removed",
            "run the storage phase (playbooks/storage.yml): it adds ./backups:" + inside,
        )
    elif os.path.realpath(mount.get("Source", "")) != os.path.realpath(path):
        findings.add(
            "backup_mount",
            "error",
            "{} in the backend is mounted from {}, not from the backup directory {}".format(
                inside, mount.get("Source"), path
            ),
            "set edms_backup_dir to the mounted directory, or fix the mount",
        )
    else:
        findings.add("backup_mount", "ok", f"{inside} in the backend is {path} on the host")
    if probe is None:
        return
    setting = probe["settings"]["BACKUP_DIR"]
    if not setting and probe["environment"].get("BACKUP_DIR") == inside:
        findings.add(
            "backup_dir_setting",
            "ok",
            f"BACKUP_DIR is {inside} in the backend's environment; the application's"
            " settings do not read it (only an application that writes backups of its own,"
            " as the EDMS does, needs them to)",
        )
    elif not setting:
        findings.add(
            "backup_dir_setting",
            "warning",
            "BACKUP_DIR is not set in the backend: the application's own backups go to a"
            " default place inside the container",
            f"run the storage phase: it sets BACKUP_DIR={inside}",
        )
    elif setting != inside:
        findings.add(
            "backup_dir_setting",
            "warning",
            f"BACKUP_DIR in the backend is {setting}, not {inside}",
            f"set BACKUP_DIR={inside} in the backend's environment",
        )
    else:
        findings.add("backup_dir_setting", "ok", f"BACKUP_DIR is {inside} in the backend")


def _ancestors(path):
    """path's parent directories, nearest first, up to /."""
    parent = os.path.dirname(path)
    while parent and parent != path:
        yield parent
        path, parent = parent, os.path.dirname(parent)


def _within(path, top):
    """Whether path is top or below it (both absolute, normalised)."""
    return path == top or path.startswith(top.rstrip("/") + "/")


def check_archive_store(params, mounts_by_service, findings):
    """The collection's archive directory: where the application cannot write.

    The archives (with every password hash and document), their status files
    and the catalogue page must not be writable, or replaceable, by the
    application: not the application's own backup directory, not inside a
    directory mounted into a container of the project, not owned by anyone but
    the user that runs the collection (or root), not writable by group or
    others, and no directory above it writable by everyone without the sticky
    bit. mounts_by_service: None when the containers' mounts are not known
    (no Docker SDK), and then not checked."""
    path = params.get("archive_dir")
    if not path:
        findings.add(
            "archive_store",
            "warning",
            "the collection's archives are read from the application's backup directory "
            f"{params['backup_dir']}, which the backend can write: it can delete, replace or "
            "forge them",
            "set edms_archive_dir to a directory of its own (see the README)",
        )
        return
    path = os.path.normpath(os.path.abspath(path))
    problems = []
    backup_dir = os.path.normpath(os.path.abspath(params["backup_dir"]))
    if _within(path, backup_dir) or _within(backup_dir, path):
        problems.append(
            f"it is, contains or lies inside the application's backup directory {backup_dir}"
        )
    for service, mounts in sorted((mounts_by_service or {}).items()):
        for mount in mounts:
            source = os.path.normpath(mount.get("Source") or "")
            # A bind mount or a volume: both are host directories the container writes.
            if source.startswith("/") and _within(path, source):
                problems.append(
                    "it is mounted into the {} service's container ({} at {}, {})".format(
                        service,
                        source,
                        mount.get("Destination"),
                        "read-write" if mount.get("RW") else "read-only",
                    )
                )
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        problems.append(f"it cannot be looked at: {exc.strerror}")
        info = None
    me = os.geteuid()
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            problems.append("it is a symbolic link")
        elif not stat.S_ISDIR(info.st_mode):
            problems.append("it is not a directory")
        else:
            if info.st_uid not in (me, 0):
                owner, _group = owner_names(info.st_uid, info.st_gid)
                problems.append(
                    f"it is owned by {owner}, not by the user that runs this (uid {me}) or root"
                )
            if stat.S_IMODE(info.st_mode) & 0o022:
                mode = stat.S_IMODE(info.st_mode)
                problems.append(f"its mode {mode:04o} lets group or others write it")
    # The application reaches host paths only through its mounts (checked
    # above); a directory above that everyone may write, without the sticky
    # bit, lets any user of the host rename it away and put another in place.
    for parent in _ancestors(path):
        try:
            mode = stat.S_IMODE(os.stat(parent).st_mode)
        except OSError:
            continue
        if mode & 0o002 and not mode & stat.S_ISVTX:
            problems.append(f"{parent}, above it, is writable by everyone")
    if problems:
        findings.add(
            "archive_store",
            "error",
            "the archive directory {} is not safe from the application: {}".format(
                path, "; ".join(problems)
            ),
            "set edms_archive_dir to a directory of its own outside every mount, for example "
            "beside the project (mode 0700, owned by the user that runs the collection)",
        )
    elif info is None:
        findings.add(
            "archive_store",
            "ok",
            f"the archive directory {path} does not exist yet; the first backup creates it "
            "(mode 0700)",
        )
    else:
        findings.add(
            "archive_store",
            "ok",
            f"the archive directory {path} is the collection's own"
            f" (mode {stat.S_IMODE(info.st_mode):04o}, "
            + (
                "no container mounts it)"
                if mounts_by_service is not None
                else "the containers' mounts not checked: see docker_checks)"
            ),
        )


def service_mounts(services, containers):
    """{service: its container's mounts} of every service with a container,
    running or not; {} when the engine cannot be asked."""
    found = {}
    if containers is None:
        return found
    for service in services:
        if not service.container_id:
            continue
        try:
            found[service.service] = containers.inspect(service.container_id).get("Mounts") or []
        except ExecError:
            continue
    return found


# A backup needs room for an archive as large as the newest one, and some:
# data grows, and a restore writes a safety backup of the same size first.
SPACE_MARGIN = 1.5
# An encrypted backup holds the plain archive and its encryption at once for a moment.
SEALED_SPACE_MARGIN = 2.5


def check_project_lock(params, findings):
    """The project lock: a run going on (fine), or the record of a restore or
    rollback whose run died, which stops every backup and restore until it is
    recovered (an error, with the recovery)."""
    found = project_lock.status(params["project_dir"])
    holder = found["holder"]
    if holder is None:
        findings.add("project_lock", "ok", "no backup or restore of the project is running")
        return
    if project_lock.unfinished(holder) and found["state"] != "live":
        findings.add(
            "project_lock",
            "error",
            "a run died in the middle of a {}: the lock {} recorded that {}; every backup,"
            " restore and rollback is refused until it is recovered".format(
                holder.get("operation", "?"),
                found["path"],
                project_lock.describe_journal(holder.get("journal")),
            ),
            f"run {project_lock.recovery_command()}; never remove the lock by hand",
        )
        return
    findings.add(
        "project_lock",
        "ok" if found["state"] == "live" else "warning",
        "{} holds the lock{}".format(
            holder.get("owner", "?"),
            f" for {holder.get('operation', '?')} since {holder.get('started_at', '?')}"
            + ("" if found["state"] == "live" else f" ({found['state']}: its holder is gone)"),
        ),
        None
        if found["state"] == "live"
        else "the next backup or restore takes over the lock of a run that provably died,"
        " or says how to clear it",
    )


def check_archive_space(params, freshness, findings):
    """Free space where the archives go, against the newest archive's size
    (min_free_bytes at least); the facts."""
    path = os.path.normpath(os.path.abspath(params["archive_dir"]))
    existing = next((p for p in [path, *_ancestors(path)] if os.path.isdir(p)), "/")
    usage = shutil.disk_usage(existing)
    newest = (freshness or {}).get("newest_verified") or {}
    size = newest.get("size") if isinstance(newest.get("size"), int) else 0
    sealed = params.get("encrypted") or newest.get("encrypted")
    margin = SEALED_SPACE_MARGIN if sealed else SPACE_MARGIN
    need = max(params["min_free_bytes"], int(size * margin))
    facts = {"path": path, "free_bytes": usage.free, "needed_bytes": need, "newest_size": size}
    basis = (
        f"{need / 2**30:.2f} GiB: {margin} times the newest verified archive"
        f"{' (encrypted)' if sealed else ''}, {size / 2**30:.2f} GiB"
        if need > params["min_free_bytes"]
        else f"{need / 2**30:.2f} GiB (preflight_min_free_bytes)"
    )
    if usage.free < need:
        findings.add(
            "archive_space",
            "error",
            f"only {usage.free / 2**30:.2f} GiB free for the archives in {existing};"
            f" a backup needs about {basis}",
            "free space (df -h), prune old archives (archive_prune), or move edms_archive_dir",
        )
    else:
        findings.add(
            "archive_space",
            "ok",
            f"{usage.free / 2**30:.1f} GiB free for the archives in {existing};"
            f" a backup needs about {basis}",
        )
    return facts


def check_media(probe, findings):
    media = probe["media_dir"]
    if media["exists"]:
        findings.add("media_dir", "ok", f"{media['path']} exists in the backend")
    else:
        findings.add(
            "media_dir",
            "error",
            f"the media directory {media['path']} does not exist in the backend",
            "set edms_media_dir_container to the media root (MEDIA_ROOT is "
            f"{probe['settings']['MEDIA_ROOT'] or 'not set'})",
        )


def check_clocks(params, probe, findings, host_now, controller_now):
    clocks = {"host": utc_iso(host_now)}
    if controller_now is not None:
        clocks["controller"] = utc_iso(controller_now)
    clocks["backend"] = utc_iso(parse_instant(probe["now"]))
    if probe["database"]["reachable"]:
        clocks["database"] = utc_iso(parse_instant(probe["database"]["now"]))
    worst = max(abs((parse_instant(t) - host_now).total_seconds()) for t in clocks.values())
    limit = params["max_clock_skew"]
    if worst > limit:
        findings.add(
            "clocks",
            "warning",
            f"clocks differ by up to {worst:.1f} s (limit {limit} s): {clocks}",
            "synchronise the clocks (NTP) of the controller and the host",
        )
    else:
        findings.add("clocks", "ok", f"clocks agree within {worst:.1f} s")
    display = params["display_timezone"]
    findings.add(
        "time_zones",
        "ok",
        "archive names and created_at are UTC; times are also shown in {} (the application's"
        " TIME_ZONE is {}, PostgreSQL's is {})".format(
            display,
            probe["settings"]["TIME_ZONE"],
            probe["database"].get("timezone", "unknown"),
        ),
    )
    return clocks


def preflight(params, runner=None, containers=None, now=None, libraries=None):
    """Gather the facts and findings. Raises PreflightError only when it cannot look.

    libraries: what this interpreter has of the collection's libraries
    (libraries_on_host.check_libraries(), its default). Without the Docker SDK nothing
    that asks Docker runs: the finding host_ready says what is missing and
    how to prepare the host, and the checks of this host alone still run."""
    result = {"commands": [], "execs": []}
    labels, controller_now = read_options(params, result)
    findings = Findings()
    docker_ready = check_host_ready(libraries, findings)
    if docker_ready:
        services = list_services(params, runner, result)
        check_services(services, params, findings)
    else:
        services = []
    check_project_lock(params, findings)
    result["services"] = [s.as_dict() for s in services]

    host = host_backup_dir(params["backup_dir"])
    result["backup_dir"] = host
    probe, mounts = None, []
    if not docker_ready:
        containers, mounts = None, None
    else:
        try:
            containers = containers or Containers()
        except ExecError as exc:
            findings.add(
                "docker",
                "error",
                str(exc),
                "start the Docker engine, or give this user its socket (the docker group,"
                " or become)",
            )
        else:
            result["execs"] = containers.execs
            probe, mounts = probe_backend(params, services, labels, containers, findings, result)
    check_backup_storage(params, host, probe, mounts, findings)
    check_archive_store(
        params, service_mounts(services, containers) if docker_ready else None, findings
    )
    host_now = now or datetime.now(timezone.utc)
    result["freshness"] = check_backup_freshness(params, host_now, findings)
    if params.get("archive_dir"):
        result["archive_dir"] = check_archive_space(params, result["freshness"], findings)
    if probe is not None:
        check_database(probe, findings, result)
        login = check_database_login(params, services, containers, findings, result)
        if login is not None:
            check_ownership(login, findings)
        if login is not None and params.get("db_port"):
            check_published_port(params["db_port"], login, containers, findings)
        check_media(probe, findings)
        result["clocks"] = check_clocks(params, probe, findings, host_now, controller_now)
        result["backend"] = {
            "settings": probe["settings"],
            "user": probe["user"],
            "backup_dir": probe["backup_dir"],
            "media_dir": probe["media_dir"],
        }
        result["database"] = probe["database"]
    result["findings"] = findings.items
    result["summary"] = findings.summary()
    result["errors"] = [f for f in findings.items if f["severity"] == "error"]
    result["ok"] = not result["errors"]
    return result


# What preflight leaves out without the Docker SDK.
DOCKER_CHECKS = (
    "the services (docker compose), the backend probe (settings, directories, clocks,"
    " counts), the mounts of the backup directory and of the archive directory, the"
    " database login, its ownership and its published port"
)


def check_host_ready(libraries, findings):
    """Finding host_ready: whether the interpreter running the modules has the
    collection's libraries (an error without a required one, a warning
    without an optional one). True when the Docker SDK is there; otherwise
    a finding says which checks are skipped, and why."""
    if libraries is None:
        libraries = libraries_on_host.check_libraries()
    broken = [lib for lib in libraries if not lib["ok"]]
    required = [lib for lib in broken if lib["required"]]
    if not broken:
        findings.add(
            "host_ready",
            "ok",
            "the modules run with {}, which has {}".format(
                libraries_on_host.interpreter(),
                ", ".join(f"{lib['name']} {lib['version'] or ''}".strip() for lib in libraries),
            ),
        )
    else:
        findings.add(
            "host_ready",
            "error" if required else "warning",
            "the modules run with {}, which lacks {}: {}".format(
                libraries_on_host.interpreter(),
                "a library the collection needs" if required else "an optional library",
                "; ".join(
                    "{} ({}{}; for {})".format(
                        lib["name"],
                        "required" if lib["required"] else "optional",
                        f", {lib['error']}" if lib["error"] else "",
                        lib["used_for"],
                    )
                    for lib in broken
                ),
            ),
            libraries_on_host.fix([lib["name"] for lib in broken]),
        )
    docker_ready = not any(lib["name"] == "docker" for lib in broken)
    if not docker_ready:
        findings.add(
            "docker_checks",
            "warning",
            "not checked, since the Docker SDK (docker) is missing (see host_ready): "
            + DOCKER_CHECKS,
            "prepare the host (see host_ready), then run preflight again",
        )
    return docker_ready


def read_options(params, result):
    """(the count_models labels, the controller's time or None), once every
    option is checked."""
    try:
        zone(params["display_timezone"])
        labels = normalize_model_labels(params["count_models"])
    except (TimeZoneError, DjangoError) as exc:
        raise PreflightError(str(exc), **result) from exc
    for option in ("max_backup_age_hours", "min_backup_size_ratio"):
        if params[option] < 0:
            raise PreflightError(
                f"{option} must be 0 (not checked) or more, not {params[option]}", **result
            )
    controller_now = None
    if params.get("controller_time"):
        try:
            controller_now = parse_instant(params["controller_time"])
        except ValueError as exc:
            raise PreflightError(
                f"controller_time {params['controller_time']!r} is not an ISO 8601 time"
                f" with a time zone: {exc}",
                **result,
            ) from exc
    return labels, controller_now


def list_services(params, runner, result):
    """The project's services as `docker compose` lists them."""
    if not os.path.isdir(params["project_dir"]):
        raise PreflightError(f"project directory {params['project_dir']} does not exist", **result)
    compose = ComposeProject(
        project_dir=params["project_dir"], files=params["compose_files"], runner=runner
    )
    result["commands"] = compose.commands
    try:
        return compose.services()
    except ComposeError as exc:
        raise PreflightError(str(exc), **result) from exc


def probe_backend(params, services, labels, containers, findings, result):
    """(the probe's answer, the backend's mounts) when the backend runs and
    Django answers in it; (None, []) otherwise, with a finding saying why."""
    backend = next((s for s in services if s.service == params["backend_service"]), None)
    probe, mounts = None, []
    if backend is None or not backend.running:
        return probe, mounts
    argv = probe_command(params["backend_python"], params, labels)
    try:
        answer = containers.exec(backend.container_id, argv, what="the preflight probe")
        probe = parse_answer(answer.stdout)
        mounts = containers.inspect(backend.container_id)["Mounts"]
    except (ExecError, DjangoError) as exc:
        findings.add(
            "backend_probe",
            "error",
            f"cannot run Django in the backend: {exc}",
            "check edms_backend_python and edms_django_settings_module",
        )
    if probe is not None and "unknown" in probe:
        raise PreflightError(
            "unknown model(s) {} in count_models; the backend has: {}".format(
                ", ".join(probe["unknown"]), ", ".join(probe["known"])
            ),
            **result,
        )
    if probe is not None and "error" in probe and "settings" not in probe:
        findings.add(
            "backend_probe",
            "error",
            probe["error"],
            probe.get("fix") or "check edms_backend_python and edms_django_settings_module",
        )
        probe = None
    if probe is not None:
        settings = probe["settings"]
        findings.add(
            "django_settings",
            "ok",
            "Django settings {} (from {})".format(settings["module"], settings["source"]),
        )
    return probe, mounts


def check_backup_freshness(params, host_now, findings):
    """The freshness facts of the backups on this host; adds their findings."""
    facts, fresh = check_freshness(
        params.get("archive_dir") or params["backup_dir"],
        params["display_timezone"],
        host_now,
        max_age_hours=params["max_backup_age_hours"],
        min_size_ratio=params["min_backup_size_ratio"],
        severity=params["freshness_severity"],
        require_verified=params["require_verified_backup"],
    )
    for finding in fresh:
        findings.add(**finding)
    if facts.get("newest_verified"):
        findings.add(**copies_finding(facts["newest_verified"]))
    return facts


def check_database_login(params, services, containers, findings, result):
    """How the PostgreSQL programs in the db container log in as the
    application (_deployment/database.py); the DatabaseLogin when they can."""
    by_name = {s.service: s for s in services}
    backend, db = by_name.get(params["backend_service"]), by_name.get(params["db_service"])
    if backend is None or db is None or not backend.running or not db.running:
        return None
    login = DatabaseLogin(
        containers,
        backend.container_id,
        db.container_id,
        params["backend_python"],
        django_settings(params),
    )
    try:
        how = login.connect()
    except (DjangoError, ExecError) as exc:
        findings.add(
            "database_login",
            "error",
            str(exc),
            "give the application's database user a password in its settings that the"
            " server accepts on the db container's local socket or on 127.0.0.1"
            " (pg_hba.conf), or fix the settings' NAME and USER",
        )
        return None
    result["database_login"] = how
    findings.add(
        "database_login",
        "ok",
        f"pg_dump, pg_restore and psql in the db container log in {how}",
    )
    return login


# The objects of the application's database that its login does not own (nor
# a role it is a member of): TRUNCATE in a restore and pg_restore --clean in a
# rollback need to own them.
NOT_OWNED_SQL = (
    "SELECT count(*), string_agg(DISTINCT n.nspname || '.' || c.relname, ', ')"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm')"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg\\_%'"
    " AND NOT pg_has_role(current_user, c.relowner, 'USAGE')"
)


def check_ownership(login, findings):
    """Whether the application's login owns its database's tables."""
    try:
        said = login.psql(NOT_OWNED_SQL)
    except (DjangoError, ExecError) as exc:
        findings.add(
            "database_ownership",
            "warning",
            f"cannot tell who owns the application's tables: {exc}",
            "check that the application's database user owns its tables",
        )
        return
    count, _sep, names = said.partition("|")
    if count.strip() in ("", "0"):
        findings.add(
            "database_ownership",
            "ok",
            "the application's database user owns every table, sequence and view of its database",
        )
        return
    findings.add(
        "database_ownership",
        "warning",
        f"the application's database user does not own {count.strip()} object(s): "
        f"{names[:500]}; a restore (TRUNCATE) or a rollback (pg_restore --clean) fails on them",
        "make the application's user their owner (ALTER TABLE ... OWNER TO ...), or leave"
        " them out of the application",
    )


def published(container, port):
    """Whether the container publishes a port on this host's port `port`."""
    bindings = (container.get("NetworkSettings") or {}).get("Ports") or {}
    return any(
        str(binding.get("HostPort")) == str(port)
        for targets in bindings.values()
        for binding in targets or ()
    )


def check_published_port(port, login, containers, findings):
    """Whether PostgreSQL answers on the port it is published on, on this
    host's loopback, to the application's login (psycopg2; a TCP connect
    only where psycopg2 is not installed). The password goes only to a port
    the db service's container publishes."""
    where = f"127.0.0.1:{port}"
    try:
        db = containers.inspect(login.db_id)
    except ExecError as exc:
        findings.add("published_port", "error", str(exc), "check the db service")
        return
    if not published(db, port):
        findings.add(
            "published_port",
            "error",
            f"the db service does not publish port {port} on this host (edms_db_port)",
            "set edms_db_port to the host port in the db service's ports, or leave it out"
            " when the database is not published",
        )
        return
    credentials = login.credentials()
    if not HAS_PSYCOPG2:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except OSError as exc:
            findings.add(
                "published_port",
                "error",
                f"nothing answers on the published database port {where}: {exc.strerror}",
                "check the db service's ports in the compose file and edms_db_port",
            )
            return
        findings.add(
            "published_port",
            "warning",
            f"the published database port {where} accepts connections; psycopg2 is not"
            " installed on this host, so no login was tried there",
            "install psycopg2 (or psycopg2-binary) on the host to have the login checked",
        )
        return
    try:
        connection = psycopg2.connect(
            host="127.0.0.1",
            port=port,
            dbname=credentials["name"],
            user=credentials["user"],
            password=credentials["password"] or None,
            connect_timeout=5,
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('server_version')")
                version = cursor.fetchone()[0]
        finally:
            connection.close()
    except psycopg2.Error as exc:
        said = (getattr(exc, "pgerror", None) or str(exc)).strip().splitlines()
        reason = said[0] if said else type(exc).__name__
        findings.add(
            "published_port",
            "error",
            f"the application's login is refused on the published database port {where}: {reason}",
            "check the db service's ports in the compose file, edms_db_port and the"
            " server's pg_hba.conf for host connections",
        )
        return
    findings.add(
        "published_port",
        "ok",
        f"PostgreSQL {version} answers the application's login on the published port {where}",
    )


def check_database(probe, findings, result):
    """Whether the application reaches its database; its counts if it does."""
    database = probe["database"]
    if database["reachable"]:
        findings.add(
            "database",
            "ok",
            "database {} answers through the application: {}".format(
                database["name"], database["version"]
            ),
        )
        result["counts"] = probe["counts"]
    else:
        findings.add(
            "database",
            "error",
            f"the application cannot reach its database: {database['error']}",
            "check the db service and the backend's database settings",
        )
