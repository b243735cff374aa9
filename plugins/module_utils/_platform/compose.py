# Private to the edms.backup collection: no compatibility promise to anyone else.
"""A Docker Compose project as the collection sees it: its files, its services
and the containers that run them, read through the `docker compose` CLI."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field


class ComposeError(Exception):
    """A `docker compose` call failed or answered something unreadable."""


def run_command(argv, cwd=None):
    """Run argv without a shell; return (rc, stdout, stderr) as text."""
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@dataclass
class ServiceState:
    """One service of the project and the container that runs it, if any."""

    service: str
    container_id: str | None = None
    container_name: str | None = None
    state: str = "missing"
    health: str | None = None
    project: str | None = None

    @property
    def running(self):
        return self.state == "running"

    @property
    def healthy(self):
        # A container without a health check counts as healthy once running.
        return self.running and self.health in (None, "", "healthy")

    def as_dict(self):
        return {
            "service": self.service,
            "container_id": self.container_id,
            "container_name": self.container_name,
            "state": self.state,
            "health": self.health or None,
            "running": self.running,
            "healthy": self.healthy,
        }


@dataclass
class ComposeProject:
    """Calls `docker compose` for one project directory and its files.

    ``runner`` takes an argv list and returns (rc, stdout, stderr); modules pass
    AnsibleModule.run_command so the calls show in Ansible's logs, unit tests
    pass a function of their own.
    """

    project_dir: str
    files: list = field(default_factory=list)
    runner: object = None
    commands: list = field(default_factory=list)

    def base_argv(self):
        # Compose resolves -f against the working directory, not the project
        # directory: make the files absolute so any working directory works.
        argv = ["docker", "compose", "--project-directory", self.project_dir]
        for name in self.files:
            argv += ["-f", os.path.join(self.project_dir, name)]
        return argv

    def _run(self, args):
        argv = self.base_argv() + list(args)
        self.commands.append(" ".join(argv))
        runner = self.runner or (lambda a: run_command(a, cwd=self.project_dir))
        rc, out, err = runner(argv)
        if rc != 0:
            raise ComposeError(
                "'docker compose {}' failed in {} (exit {}): {}".format(
                    " ".join(args), self.project_dir, rc, (err or out).strip()
                )
            )
        return out

    def service_names(self):
        """The services the compose files define (profiles not active left out)."""
        return [
            line.strip()
            for line in self._run(["config", "--services"]).splitlines()
            if line.strip()
        ]

    def containers(self, names=()):
        """{service: ServiceState} of every service with a container, any
        profile; with names, of those services only (ComposeError when one
        of them is not defined)."""
        return parse_ps_output(self._run(["ps", "--all", "--format", "json", *names]))

    def services(self):
        """State of every defined service, in the order the files define them."""
        names = self.service_names()
        found = self.containers()
        return [found.get(name) or ServiceState(service=name) for name in names]


def running_services(compose, wanted):
    """[ServiceState] of the services named in wanted ((name, role) pairs),
    each running; else ComposeError naming the first that is not defined or
    not running.

    One `docker compose ps` of those services when all run; the whole list of
    services (services()) only to say which is missing."""
    names = [name for name, _role in wanted]
    try:
        found = compose.containers(names)
    except ComposeError:
        found = {}
    if all(name in found and found[name].running for name in names):
        return [found[name] for name in names]
    services = compose.services()
    return [running_service(services, name, role) for name, role in wanted]


def running_service(services, name, role):
    """The service called name among services, running; ComposeError naming it otherwise."""
    service = next((s for s in services if s.service == name), None)
    if service is None:
        raise ComposeError(
            "the {} service '{}' is not defined (services: {})".format(
                role, name, ", ".join(s.service for s in services)
            )
        )
    if not service.running:
        raise ComposeError(f"the {role} service '{name}' is not running (state: {service.state})")
    return service


def parse_ps_output(text):
    """Parse `docker compose ps --format json` output into {service: ServiceState}.

    Compose v2 prints one JSON object per line; versions before 2.21 printed one
    JSON array. Both are read. When a service has several containers (scaled),
    the first running one is reported.
    """
    text = text.strip()
    if not text:
        return {}
    try:
        if text.startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise ComposeError(f"cannot read the output of 'docker compose ps': {exc}") from exc
    result = {}
    for row in rows:
        if not isinstance(row, dict) or "Service" not in row:
            raise ComposeError(f"unexpected row in 'docker compose ps' output: {row!r}")
        state = ServiceState(
            service=row["Service"],
            container_id=row.get("ID"),
            container_name=row.get("Name"),
            state=(row.get("State") or "unknown").lower(),
            health=(row.get("Health") or None),
            project=row.get("Project"),
        )
        previous = result.get(state.service)
        if previous is None or (state.running and not previous.running):
            result[state.service] = state
    return result
