# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The backend's work while the application is out of service: a maintenance container.

A restore stops the backend service itself (nothing may serve requests while
the data is replaced) and yet needs the backend's Python, Django settings and
volumes for the dump of the rollback point, the media swap and the load. A
maintenance container is a one-off container made from the stopped backend
container: the same image (by id), environment, user, working directory,
mounts, networks and confinement (capabilities, security options, read-only
root, runtime, limits: confinement()), but no published port, no health check, no restart
policy and no command of its own (it only waits, so the execs have somewhere
to run). It carries the label MAINTENANCE_LABEL with the Compose project's
name; it is removed when the module that made it ends, and a leftover one (the
module was killed) is removed by the next module that makes one. Removing it
ends whatever still runs in it: a load of a run that died is rolled back by
PostgreSQL when its connection goes.
"""

from __future__ import annotations

import atexit
import contextlib
import secrets

from ansible_collections.edms.backup.plugins.module_utils._platform.compose import (
    ComposeError,
    ServiceState,
    running_services,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import ExecError

try:
    from docker.types import Mount, Ulimit
except ImportError:  # pragma: no cover - depends on the controller's packages
    Mount = Ulimit = None

MAINTENANCE_LABEL = "io.edms-backup.maintenance"
PROJECT_LABEL = "com.docker.compose.project"
# The container's only process: waits, and ends at once on SIGTERM.
WAIT = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: exit(0))\n"
    "while True: time.sleep(3600)"
)


class MaintenanceError(ExecError):
    """The maintenance container could not be made or removed."""


def _mounts(source):
    """The stopped container's mounts, as the SDK makes them again."""
    mounts = []
    for mount in source.get("Mounts") or []:
        kind = mount.get("Type")
        read_only = not mount.get("RW", True)
        if kind == "volume":
            mounts.append(
                Mount(mount["Destination"], mount["Name"], type="volume", read_only=read_only)
            )
        elif kind == "bind":
            mounts.append(
                Mount(mount["Destination"], mount["Source"], type="bind", read_only=read_only)
            )
        elif kind == "tmpfs":
            mounts.append(Mount(mount["Destination"], None, type="tmpfs"))
        else:
            raise MaintenanceError(
                f"the backend's mount of {mount.get('Destination')} is of type {kind!r},"
                " which a maintenance container cannot take over"
            )
    return mounts


def confinement(host_config):
    """The stopped container's confinement as keyword arguments of the SDK's
    containers.create(): capabilities, security options, read-only root,
    runtime, user namespace, groups, devices, limits, tmpfs, name resolution,
    init. The application's code runs in the maintenance container with no
    more privilege than the operator gave the service. A privileged service
    is refused: its confinement cannot be kept."""
    if host_config.get("Privileged"):
        raise MaintenanceError(
            "the backend runs privileged: a maintenance container would run the application's"
            " code with every privilege; run it unprivileged"
        )
    kwargs = {}
    plain = {
        "CapAdd": "cap_add",
        "CapDrop": "cap_drop",
        "SecurityOpt": "security_opt",
        "GroupAdd": "group_add",
        "Tmpfs": "tmpfs",
        "ExtraHosts": "extra_hosts",
        "Dns": "dns",
        "DnsSearch": "dns_search",
        "DnsOptions": "dns_opt",
        "Sysctls": "sysctls",
        "Runtime": "runtime",
        "UsernsMode": "userns_mode",
    }
    for key, name in plain.items():
        if host_config.get(key):
            kwargs[name] = host_config[key]
    if host_config.get("ReadonlyRootfs"):
        kwargs["read_only"] = True
    if host_config.get("Init"):
        kwargs["init"] = True
    limits = (("Memory", "mem_limit"), ("PidsLimit", "pids_limit"), ("ShmSize", "shm_size"))
    for key, name in limits:
        value = host_config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            kwargs[name] = value
    devices = [
        ":".join((d["PathOnHost"], d["PathInContainer"], d.get("CgroupPermissions") or "rwm"))
        for d in host_config.get("Devices") or []
    ]
    if devices:
        kwargs["devices"] = devices
    ulimits = [
        Ulimit(name=u["Name"], soft=u.get("Soft"), hard=u.get("Hard"))
        for u in host_config.get("Ulimits") or []
    ]
    if ulimits:
        kwargs["ulimits"] = ulimits
    return kwargs


def remove_leftovers(client, project):
    """Remove the maintenance containers of project that are still there; their names."""
    removed = []
    try:
        found = client.containers.list(
            all=True, filters={"label": f"{MAINTENANCE_LABEL}={project}"}
        )
        for container in found:
            container.remove(force=True)
            removed.append(container.name)
    except Exception as exc:
        raise MaintenanceError(
            f"cannot remove the maintenance containers a dead run left for {project}: {exc}"
        ) from exc
    return removed


def start_maintenance(containers, service, python):
    """A running maintenance container in place of the stopped container of
    service (a _platform/compose.py ServiceState); its id. It is removed when
    this process ends (atexit), or by remove()."""
    if Mount is None:
        raise MaintenanceError("the Python package 'docker' is not installed")
    client = containers.client
    try:
        source = client.api.inspect_container(service.container_id)
    except Exception as exc:
        raise MaintenanceError(
            f"cannot inspect the stopped {service.service} container: {exc}"
        ) from exc
    if (source.get("State") or {}).get("Running"):
        raise MaintenanceError(f"the {service.service} container runs: stop it first")
    config = source.get("Config") or {}
    confined = confinement(source.get("HostConfig") or {})
    project = (config.get("Labels") or {}).get(PROJECT_LABEL) or "unknown"
    leftovers = remove_leftovers(client, project)
    networks = list(((source.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    name = f"{project}-{service.service}-maintenance-{secrets.token_hex(3)}"
    containers.execs.append({"container": name, "command": "create maintenance container"})
    try:
        container = client.containers.create(
            source["Image"],
            entrypoint=[python, "-c", WAIT],
            command=[],
            environment=config.get("Env") or [],
            user=config.get("User") or None,
            working_dir=config.get("WorkingDir") or None,
            mounts=_mounts(source),
            network=networks[0] if networks else None,
            labels={MAINTENANCE_LABEL: project},
            healthcheck={"test": ["NONE"]},
            name=name,
            **confined,
        )
    except MaintenanceError:
        raise
    except Exception as exc:
        raise MaintenanceError(
            f"cannot create a maintenance container from the {service.service} container: {exc}"
        ) from exc
    atexit.register(remove, client, container.id)
    try:
        for network in networks[1:]:
            client.networks.get(network).connect(container)
        container.start()
    except Exception as exc:
        remove(client, container.id)
        raise MaintenanceError(f"cannot start the maintenance container {name}: {exc}") from exc
    return container.id, leftovers


def remove(client, container_id):
    """Remove a maintenance container (ending whatever runs in it); quiet if it is gone."""
    with contextlib.suppress(Exception):
        client.api.remove_container(container_id, force=True)


def locate_services(compose, containers, wanted, python, maintenance):
    """[ServiceState] of the services of wanted ((name, role) pairs, the
    backend first), each running. With maintenance, the backend must be
    stopped instead, and its state is that of a maintenance container made in
    its place; the result's second item lists the leftover maintenance
    containers removed. Raises ComposeError (a service missing or in the
    wrong state) or MaintenanceError."""
    if not maintenance:
        return running_services(compose, wanted), []
    (backend_name, backend_role), others = wanted[0], wanted[1:]
    found = compose.containers([backend_name])
    backend = found.get(backend_name)
    if backend is None or not backend.container_id:
        raise ComposeError(
            f"the {backend_role} service '{backend_name}' has no container to take over"
            " for the maintenance (run 'docker compose up' for it first)"
        )
    if backend.running:
        raise ComposeError(
            f"the application is not out of service: the {backend_role} service"
            f" '{backend_name}' runs. Stop it first (compose_services, state stopped)"
        )
    rest = running_services(compose, others) if others else []
    container_id, leftovers = start_maintenance(containers, backend, python)
    stand_in = ServiceState(
        service=backend_name,
        container_id=container_id,
        container_name=None,
        state="running",
        project=backend.project,
    )
    return [stand_in, *rest], leftovers


def stopped_backend(compose, wanted):
    """Check mode of locate_services with maintenance: the backend found
    stopped (its own state, no container made) and the others running."""
    (backend_name, backend_role), others = wanted[0], wanted[1:]
    backend = compose.containers([backend_name]).get(backend_name)
    if backend is None or not backend.container_id or backend.running:
        raise ComposeError(
            f"the {backend_role} service '{backend_name}' must be stopped, with its container"
            " kept, for a step with maintenance"
        )
    return [backend, *(running_services(compose, others) if others else [])]
