# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The application's own backup, run as the operators' checklist runs it
(Step 4), inside the backend container.

Entry points (request in argv[1], one JSON answer on stdout):

- service_main: request {"settings", "service", "method", "configuration_model",
  "configuration" (field lookups, or null: the first), "create_configuration"
  (field values, when there is none), "run_as" (a username, or null: the first
  superuser), "check", "wait_seconds", "backup_dir_fallback"}. Finds the user
  and the configuration, calls ``<service>().<method>(configuration, user)``,
  waits while the job it returns is pending or running, and answers
  {"user", "configuration", "call", "backup_dir", "job"} or {"failed": the
  service's message, "exception"}, or {"error"} when it cannot even call it.
  With "check" nothing is created or called: the answer says what would be.
- job_main: request {"settings", "job_model", "pk", "wait_seconds"}: {"job"}
  of that job (as service_main's), waited for, or {"error"}.
- listing_main: request {"settings", "backup_dir_fallback"}: {"backup_dir", "entries":
  {name: {"kind", "size", "mtime"}}} of the directory the application writes
  its backups to (BACKUP_DIR, else the fallback).
- digest_main: request {"path"}: {"digest"} (digest()) of a file or directory.

digest() is also what the host computes of the same backup.
"""

import hashlib
import importlib
import json
import os
import stat
import sys
import time

PENDING = ("PENDING", "QUEUED", "RUNNING", "IN_PROGRESS", "STARTED")
JOB_FIELDS = (
    "status",
    "backup_path",
    "size_bytes",
    "started_at",
    "completed_at",
    "error_message",
    "error",
)


def sha256_of(fd):
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        size += len(chunk)
        digest.update(chunk)
    return digest.hexdigest(), size


def _open(path, directory=False):
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    if directory:
        flags |= os.O_DIRECTORY
    return os.open(path, flags)


def digest(path):
    """What a backup is, comparable between two places: {"kind": "file",
    "size", "sha256"} of a file, or {"kind": "directory", "files", "size",
    "sha256"} of a directory (the sha256 of one line "<sha256> <size> <path>"
    per file, in path order). Links are never followed: a link anywhere is
    {"error"}, as is anything else but files and directories."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return {"error": f"{path}: {exc.strerror}", "missing": exc.errno == 2}
    if stat.S_ISREG(info.st_mode):
        try:
            fd = _open(path)
        except OSError as exc:
            return {"error": f"{path}: {exc.strerror}"}
        try:
            sha, size = sha256_of(fd)
        finally:
            os.close(fd)
        return {"kind": "file", "size": size, "sha256": sha}
    if not stat.S_ISDIR(info.st_mode):
        return {"error": f"{path} is neither a file nor a directory"}
    lines, total, files = [], 0, 0
    for folder, dirs, names in os.walk(path, followlinks=False):
        for name in sorted(dirs + names):
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, path)
            mode = os.lstat(full).st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                return {"error": f"{full} is a link or a special file"}
            fd = _open(full)
            try:
                sha, size = sha256_of(fd)
            finally:
                os.close(fd)
            lines.append(f"{sha} {size} {json.dumps(rel)}")
            total += size
            files += 1
    lines.sort(key=lambda line: line.split(" ", 2)[2])
    summary = hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
    return {"kind": "directory", "files": files, "size": total, "sha256": summary}


def listing(path):
    """{name: {"kind", "size", "mtime"}} of a directory's entries (not
    followed), or None when it is not a directory."""
    try:
        names = os.listdir(path)
    except OSError:
        return None
    entries = {}
    for name in names:
        try:
            info = os.lstat(os.path.join(path, name))
        except OSError:
            continue
        kind = (
            "file"
            if stat.S_ISREG(info.st_mode)
            else "directory"
            if stat.S_ISDIR(info.st_mode)
            else "other"
        )
        entries[name] = {"kind": kind, "size": info.st_size, "mtime": info.st_mtime}
    return entries


def _answer(value):
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def backup_dir(fallback):
    from django.conf import settings

    configured = getattr(settings, "BACKUP_DIR", None)
    return {
        "setting": None if configured is None else str(configured),
        "path": str(configured or fallback),
    }


def _resolve(dotted, what):
    module_name, name = str(dotted).rpartition(".")[::2]
    if not module_name:
        raise LookupError(f"{what} {dotted!r} is not a dotted path (module.Name)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"{what} {dotted}: cannot import {module_name}: {exc}") from exc
    try:
        return getattr(module, name)
    except AttributeError as exc:
        raise LookupError(f"{what} {dotted}: {module_name} has no {name}") from exc


def _user(run_as):
    from django.contrib.auth import get_user_model

    users = get_user_model()._default_manager
    if run_as is None:
        user = users.filter(is_superuser=True).order_by("pk").first()
        if user is None:
            raise LookupError("there is no superuser to run the backup as (the checklist's admin)")
        return user
    try:
        return users.get_by_natural_key(run_as)
    except users.model.DoesNotExist as exc:
        raise LookupError(f"there is no user {run_as!r} to run the backup as") from exc


def _configuration(model, lookup, create, user, check):
    """(configuration or None, what it is): the one lookup names, or the
    first, or (not in check mode) one created as the checklist does."""
    manager = model._default_manager
    if lookup:
        try:
            return manager.get(**lookup), "found"
        except model.DoesNotExist as exc:
            raise LookupError(f"no {model._meta.label} matches {lookup}") from exc
        except model.MultipleObjectsReturned as exc:
            raise LookupError(f"more than one {model._meta.label} matches {lookup}") from exc
    first = manager.order_by("pk").first()
    if first is not None:
        return first, "first"
    values = dict(create or {})
    names = {field.name for field in model._meta.get_fields()}
    if "created_by" in names and "created_by" not in values:
        values["created_by"] = user
    if check:
        return None, "would be created"
    return manager.create(**values), "created"


def _describe(obj):
    if obj is None:
        return None
    return {"pk": str(obj.pk), "text": str(obj), "model": obj._meta.label}


def _job(job):
    if job is None:
        return None
    found = {"model": getattr(getattr(job, "_meta", None), "label", type(job).__name__)}
    pk = getattr(job, "pk", None)
    if pk is not None:
        found["pk"] = str(pk)
    for name in JOB_FIELDS:
        if hasattr(job, name):
            value = getattr(job, name)
            found[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return found


def _wait(job, seconds):
    """The job, refreshed while its status is pending or running (at most seconds)."""
    end = time.monotonic() + seconds
    while (
        str(getattr(job, "status", "")).upper() in PENDING
        and hasattr(job, "refresh_from_db")
        and time.monotonic() < end
    ):
        time.sleep(1)
        job.refresh_from_db()
    return job


def service_main():
    from ansible_collections.edms.backup.plugins.module_utils._backend.setup import setup

    request = setup()
    found = {"backup_dir": backup_dir(request["backup_dir_fallback"])}
    call = "{}().{}(configuration, user)".format(request["service"], request["method"])
    found["call"] = call
    try:
        service = _resolve(request["service"], "service")
        if not callable(getattr(service, request["method"], None)):
            raise LookupError(f"service {request['service']} has no method {request['method']}")
        config_model = _resolve(request["configuration_model"], "configuration model")
        user = _user(request["run_as"])
        found["user"] = user.get_username()
        config, how = _configuration(
            config_model,
            request["configuration"],
            request["create_configuration"],
            user,
            request["check"],
        )
    except LookupError as exc:
        found["error"] = str(exc)
        _answer(found)
        return
    found["configuration"] = _describe(config) or {"text": "new", "model": config_model._meta.label}
    found["configuration"]["how"] = how
    if request["check"]:
        _answer(found)
        return
    try:
        job = getattr(service(), request["method"])(config, user)
    except Exception as exc:  # the checklist prints "Backup failed: <exc>"
        found["failed"] = str(exc) or type(exc).__name__
        found["exception"] = type(exc).__name__
        if how == "created":
            # Made for this call only: not left behind by a refused one.
            try:
                config.delete()
                found["configuration"]["how"] = "created, and removed again"
            except Exception as again:
                found["configuration"]["how"] = f"created, and kept: {type(again).__name__}"
        _answer(found)
        return
    found["job"] = _job(_wait(job, request["wait_seconds"]))
    _answer(found)


def job_main():
    """The job a call of the application's API started, waited for."""
    from ansible_collections.edms.backup.plugins.module_utils._backend.setup import setup

    request = setup()
    try:
        model = _resolve(request["job_model"], "job model")
    except LookupError as exc:
        _answer({"error": str(exc)})
        return
    try:
        job = model._default_manager.get(pk=request["pk"])
    except Exception as exc:  # DoesNotExist, or a pk of the wrong type
        _answer({"error": f"no {model._meta.label} {request['pk']!r}: {type(exc).__name__}"})
        return
    _answer({"job": _job(_wait(job, request["wait_seconds"]))})


def listing_main():
    from ansible_collections.edms.backup.plugins.module_utils._backend.setup import setup

    request = setup()
    where = backup_dir(request["backup_dir_fallback"])
    _answer({"backup_dir": where, "entries": listing(where["path"])})


def digest_main():
    request = json.loads(sys.argv[1])
    _answer({"digest": digest(request["path"])})
