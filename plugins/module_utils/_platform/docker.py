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

# The Docker SDK as a module's run_module(libraries=...) takes it (_module.py).
DOCKER = ("docker", HAS_DOCKER, DOCKER_IMPORT_ERROR)


class ExecError(Exception):
    """A command inside a container could not run or exited non-zero.

    ``rc`` is its exit code when it ran to its end, None when it could not run
    or its end is not known."""

    def __init__(self, message, rc=None):
        super().__init__(message)
        self.rc = rc


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

    def exec(
        self,
        container_id,
        argv,
        user=None,
        workdir=None,
        check=True,
        what=None,
        clean=None,
        environment=None,
    ):
        """Run argv in the container; raise ExecError on failure when check is set.

        clean: a function the failure's output goes through whole, before it is
        shortened for the message (to take out what must not be shown).
        environment: variables for the command (credentials go here, never in
        argv); neither they nor their names are recorded."""
        label = what or describe(argv)
        self.execs.append({"container": container_id, "command": describe(argv)})
        try:
            container = self.client.containers.get(container_id)
            kwargs = {"demux": True}
            if user:
                kwargs["user"] = user
            if workdir:
                kwargs["workdir"] = workdir
            if environment:
                kwargs["environment"] = dict(environment)
            rc, (out, err) = container.exec_run(list(argv), **kwargs)
        except DockerException as exc:
            raise ExecError(f"cannot run {label} in container {container_id[:12]}: {exc}") from exc
        result = ExecResult(rc=rc, stdout=out or b"", stderr=err or b"")
        if check and rc != 0:
            said = (result.stderr or result.stdout).decode("utf-8", "replace")
            tail = (clean(said) if clean else said).strip()[-2000:]
            raise ExecError(
                f"{label} failed in container {container_id[:12]} (exit {rc}): {tail}", rc
            )
        return result

    def exec_stream(
        self,
        container_id,
        argv,
        user=None,
        workdir=None,
        what=None,
        environment=None,
        on_stderr=None,
    ):
        """An ExecStream: iterate it for the command's stdout as it comes
        (environment: as exec's; on_stderr(bytes) is called with each piece
        of standard error as it comes)."""
        label = what or describe(argv)
        self.execs.append({"container": container_id, "command": describe(argv)})
        return ExecStream(
            self.client.api,
            container_id,
            argv,
            label,
            user=user,
            workdir=workdir,
            environment=environment,
            on_stderr=on_stderr,
        )

    def inspect(self, container_id):
        """The engine's description of the container (its Mounts, State...)."""
        self.execs.append({"container": container_id, "command": "inspect"})
        try:
            return self.client.api.inspect_container(container_id)
        except DockerException as exc:
            raise ExecError(f"cannot inspect container {container_id[:12]}: {exc}") from exc

    def read_tree(self, container_id, path):
        """A tar stream (iterator of bytes) of path in the container, and its stat."""
        self.execs.append({"container": container_id, "command": f"get_archive {path}"})
        try:
            return self.client.containers.get(container_id).get_archive(path)
        except DockerException as exc:
            short = container_id[:12]
            raise ExecError(f"cannot read {path} from container {short}: {exc}") from exc


class ExecStream:
    """A command in a container whose stdout is read as a stream of bytes.

    Standard error is kept (it is small: diagnostics and a final report).
    When the stream is exhausted the exit code is checked: non-zero raises
    ExecError, which carries the stderr bytes in its ``stderr`` attribute.
    """

    def __init__(
        self,
        api,
        container_id,
        argv,
        label,
        user=None,
        workdir=None,
        environment=None,
        on_stderr=None,
    ):
        self.api = api
        self.on_stderr = on_stderr
        self.environment = dict(environment) if environment else None
        self.container_id = container_id
        self.argv = list(argv)
        self.label = label
        self.user = user
        self.workdir = workdir
        self.rc = None
        self.stderr = b""

    def _error(self, message, rc=None):
        error = ExecError(message, rc)
        error.stderr = self.stderr
        return error

    def __iter__(self):
        errors = []
        short = self.container_id[:12]
        try:
            exec_id = self.api.exec_create(
                self.container_id,
                self.argv,
                stdout=True,
                stderr=True,
                user=self.user or "",
                workdir=self.workdir,
                environment=self.environment,
            )["Id"]
            for out, err in self.api.exec_start(exec_id, stream=True, demux=True):
                if err:
                    errors.append(err)
                    if self.on_stderr is not None:
                        self.on_stderr(err)
                if out:
                    yield out
            self.rc = self.api.exec_inspect(exec_id)["ExitCode"]
        except DockerException as exc:
            self.stderr = b"".join(errors)
            raise self._error(f"cannot run {self.label} in container {short}: {exc}") from exc
        self.stderr = b"".join(errors)
        if self.rc != 0:
            tail = self.stderr.decode("utf-8", "replace").strip()[-2000:]
            raise self._error(
                f"{self.label} failed in container {short} (exit {self.rc}): {tail}", self.rc
            )
