# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Container execs through the Docker SDK, every exit code checked."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

try:
    import docker
    from docker.errors import DockerException

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the controller's packages
    docker = None
    DockerException = Exception
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()


class ExecError(Exception):
    """A command inside a container could not run or exited non-zero."""


@dataclass
class ExecResult:
    rc: int
    stdout: bytes
    stderr: bytes


def describe(argv, limit=120):
    """A short, log-safe rendering of an exec's argv (long inline code cut)."""
    parts = []
    for arg in argv:
        arg = str(arg)
        if len(arg) > limit or "\n" in arg:
            arg = f"<{len(arg)} characters>"
        parts.append(arg)
    return " ".join(parts)


class Containers:
    """A Docker engine client that records every exec it runs."""

    def __init__(self, client=None):
        if client is None:
            if not HAS_DOCKER:
                raise ExecError("the Python package 'docker' is not installed")
            try:
                client = docker.from_env()
            except DockerException as exc:
                raise ExecError(f"cannot reach the Docker engine: {exc}") from exc
        self.client = client
        self.execs = []

    def exec(self, container_id, argv, user=None, workdir=None, check=True, what=None):
        """Run argv in the container; raise ExecError on failure when check is set."""
        label = what or describe(argv)
        self.execs.append({"container": container_id, "command": describe(argv)})
        try:
            container = self.client.containers.get(container_id)
            kwargs = {"demux": True}
            if user:
                kwargs["user"] = user
            if workdir:
                kwargs["workdir"] = workdir
            rc, (out, err) = container.exec_run(list(argv), **kwargs)
        except DockerException as exc:
            raise ExecError(f"cannot run {label} in container {container_id[:12]}: {exc}") from exc
        result = ExecResult(rc=rc, stdout=out or b"", stderr=err or b"")
        if check and rc != 0:
            tail = (result.stderr or result.stdout).decode("utf-8", "replace").strip()[-2000:]
            raise ExecError(f"{label} failed in container {container_id[:12]} (exit {rc}): {tail}")
        return result
