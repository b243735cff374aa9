# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Stopping the services that write for a maintenance window, and starting them again.

A restore empties tables with TRUNCATE, which waits for every other session's
locks and blocks every other session until it commits: a worker writing
during a restore waits, times out or, worse, writes into the restored data
afterwards. The services that write are stopped first and started again
afterwards. With ``application``, the backend itself is stopped first (and
started last): nothing serves requests while the data is replaced, and the
restore's work runs in a maintenance container (_platform/maintenance.py).
The db is never stopped: the restore runs in it. Starting the backend removes
first any maintenance container of the project still there: a dead run's.

Containers are stopped and started through the Docker engine, by the
container Compose made for the service: a service of an inactive profile is
handled like any other.
"""

from __future__ import annotations

import time

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._platform.compose import (
    ComposeError,
    ComposeProject,
    ServiceState,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import Containers
from ansible_collections.edms.backup.plugins.module_utils._platform.maintenance import (
    PROJECT_LABEL,
    remove_leftovers,
)


class ServicesError(ModuleFailure):
    """Services that could not be stopped or started."""


def project_services(params, runner):
    """{service: ServiceState} of every service with a container (any profile)."""
    compose = ComposeProject(
        project_dir=params["project_dir"], files=params["compose_files"], runner=runner
    )
    try:
        merged = {name: ServiceState(service=name) for name in compose.service_names()}
        merged.update(compose.containers())
    except ComposeError as exc:
        raise ServicesError(str(exc), commands=compose.commands) from exc
    return merged, compose.commands


def choose(params, services):
    """The services to handle: those named, or every running one but backend
    and db; with application and state stopped, the backend first. Started,
    the backend comes last."""
    backend = params["backend_service"]
    names = _named(params, services)
    if params.get("application") and params["state"] == "stopped" and backend not in names:
        names = [backend, *names]
    first = [n for n in names if n == backend and params["state"] == "stopped"]
    last = [n for n in names if n == backend and params["state"] == "started"]
    return first + [n for n in names if n != backend] + last


def _named(params, services):
    protected = {params["backend_service"], params["db_service"]}
    named = params.get("services")
    if named is not None:
        # "web, worker" (a comma-separated survey answer) names web and worker.
        named = [name.strip() for name in named if name.strip()]
    if named is None:
        return sorted(
            name for name, state in services.items() if state.running and name not in protected
        )
    refused = sorted(set(named) & {params["db_service"]})
    if refused:
        raise ServicesError(
            "services {} run the restore and are never stopped; leave them out".format(
                ", ".join(refused)
            )
        )
    unknown = sorted(set(named) - set(services))
    if unknown:
        raise ServicesError(
            "services {} are not services of the project (known: {})".format(
                ", ".join(unknown), ", ".join(sorted(services))
            )
        )
    return list(named)


def wait_running(container, timeout):
    """Wait until the container runs and, if it has a health check, is healthy."""
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        state = container.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status")
        if state.get("Running") and health in (None, "healthy"):
            return "running" if health is None else "healthy"
        if time.monotonic() > deadline:
            return state.get("Status", "unknown") + (f" ({health})" if health else "")
        time.sleep(0.5)


def manage_services(params, runner=None, containers=None, check_mode=False):
    services, commands = project_services(params, runner)
    result = {"changed": False, "commands": commands, "state": params["state"]}
    try:
        names = choose(params, services)
    except ServicesError as exc:
        raise ServicesError(str(exc), **result) from exc
    result["services"] = names
    if params["state"] == "stopped":
        todo = [n for n in names if services[n].running]
    else:
        todo = [n for n in names if not services[n].running]
    missing = [n for n in todo if not services[n].container_id]
    if missing:
        raise ServicesError(
            "services {} have no container to start; run 'docker compose up' for them".format(
                ", ".join(missing)
            ),
            **result,
        )
    result["stopped" if params["state"] == "stopped" else "started"] = todo
    if check_mode or not todo:
        result["changed"] = bool(todo)
        return result
    client = (containers or Containers()).client
    backend = params["backend_service"]
    if params["state"] == "started" and backend in todo:
        # A maintenance container exists only while the application is
        # stopped: one still there when it starts is a dead run's, maybe still
        # running that run's program against the data. It goes first.
        try:
            labels = client.containers.get(services[backend].container_id).labels or {}
            result["maintenance_removed"] = remove_leftovers(
                client, labels.get(PROJECT_LABEL) or "unknown"
            )
        except Exception as exc:  # the engine's errors and its transport's
            raise ServicesError(
                f"{backend} not started: the maintenance containers a dead run left could"
                f" not be looked for or removed: {type(exc).__name__}: {exc}",
                **result,
            ) from exc
    failed = []
    for name in todo:
        try:
            container = client.containers.get(services[name].container_id)
            if params["state"] == "stopped":
                container.stop(timeout=params["timeout"])
            else:
                container.start()
                status = wait_running(container, params["timeout"])
                if status not in ("running", "healthy"):
                    failed.append(f"{name} is {status} after {params['timeout']} s")
            result["changed"] = True
        except Exception as exc:  # the engine's errors and its transport's
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    if failed:
        raise ServicesError(
            "could not {} every service: {}".format(
                "stop" if params["state"] == "stopped" else "start", "; ".join(failed)
            ),
            **result,
        )
    return result
