# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Container execs through the Docker SDK, every exit code checked.

Every call into the SDK goes through Containers, which turns whatever the SDK
or its transport raises (the engine's own errors, but also a connection
refused or reset, a read timeout, a broken stream: the engine restarted, or
stopped answering) into ExecError, naming the engine, the container and the
step. An exec whose end is not known (the engine was lost after it may have
started) has ``rc`` None, and its message says that the command may still be
running in the container.

The client's timeout (the SDK's default, 60 s) bounds each request to the
engine. An exec's output is not read under it: while an exec prints nothing,
the engine is asked every POLL_SECONDS whether it still runs, so a long
silent command (a load of many minutes) is waited for as long as it runs and
the engine answers, and only a lost engine fails it.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
import traceback
from dataclasses import dataclass

try:
    import docker
    from docker.utils.socket import demux_adaptor, frames_iter

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the controller's packages
    docker = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

# How long an exec may print nothing before the engine is asked whether it
# still runs; how often it is asked once its output has ended but it runs.
POLL_SECONDS = 30
ENDING_SECONDS = 1
# An exec still running this long after its output ended had its output cut.
ENDING_GRACE = 5
# Output frames read ahead of the caller (backpressure beyond that).
READ_AHEAD = 64
# How long, once an exec's output ended, its input's sender may take to stop
# (it may be reading its source); past that it is left, and the input said
# not to have ended.
SENDER_GRACE = 30

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


def engine_failure(exc):
    """What the SDK or its transport raised, as text: its type and message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Containers:
    """A Docker engine client that records every exec it runs.

    client: a docker.DockerClient (made from the environment when not given).
    poll_seconds: how long an exec may print nothing before the engine is
    asked whether it still runs."""

    def __init__(self, client=None, poll_seconds=POLL_SECONDS):
        if client is None:
            if not HAS_DOCKER:
                raise ExecError("the Python package 'docker' is not installed")
            try:
                client = docker.from_env()
            except Exception as exc:  # the SDK's errors and its transport's
                raise ExecError(f"cannot reach the Docker engine: {engine_failure(exc)}") from exc
        self.client = client
        self.poll_seconds = poll_seconds
        self.execs = []

    def engine(self, step, container_id, call):
        """call()'s value; whatever it raises but an ExecError turned into one
        naming the Docker engine, the step and the container."""
        try:
            return call()
        except ExecError:
            raise
        except Exception as exc:  # the SDK's errors and its transport's
            raise ExecError(
                f"the Docker engine failed at {step} for container {container_id[:12]}:"
                f" {engine_failure(exc)}"
            ) from exc

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
        argv); neither they nor their names are recorded. Whatever check says,
        a command whose end is not known (the engine lost) raises ExecError
        with rc None."""
        label = what or describe(argv)
        self.execs.append({"container": container_id, "command": describe(argv)})
        stream = ExecStream(
            self,
            container_id,
            argv,
            label,
            user=user,
            workdir=workdir,
            environment=environment,
            check=False,
        )
        stdout = b"".join(stream)
        result = ExecResult(rc=stream.rc, stdout=stdout, stderr=stream.stderr)
        if check and result.rc != 0:
            said = (result.stderr or result.stdout).decode("utf-8", "replace")
            tail = (clean(said) if clean else said).strip()[-2000:]
            raise ExecError(
                f"{label} failed in container {container_id[:12]} (exit {result.rc}): {tail}",
                result.rc,
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
        stdin=None,
    ):
        """An ExecStream: iterate it for the command's stdout as it comes
        (environment: as exec's; on_stderr(bytes) is called with each piece
        of standard error as it comes; stdin: an iterable of bytes sent as
        the command's standard input while it runs, see ExecStream)."""
        label = what or describe(argv)
        self.execs.append({"container": container_id, "command": describe(argv)})
        return ExecStream(
            self,
            container_id,
            argv,
            label,
            user=user,
            workdir=workdir,
            environment=environment,
            on_stderr=on_stderr,
            stdin=stdin,
        )

    def takes_input(self):
        """Whether an exec's standard input can be sent on this engine's
        connection (exec_stream's stdin): a plain socket, the local UNIX
        socket or TCP without TLS, which one thread sends on while another
        receives, and which half-closes. Not over TLS (an SSL socket shares
        its state between the two directions) nor SSH."""
        base = str(getattr(self.client.api, "base_url", ""))
        return base == "http+docker://localhost" or base.startswith("http://")

    def inspect(self, container_id):
        """The engine's description of the container (its Mounts, State...)."""
        self.execs.append({"container": container_id, "command": "inspect"})
        return self.engine(
            "inspect", container_id, lambda: self.client.api.inspect_container(container_id)
        )

    def read_tree(self, container_id, path):
        """A tar stream (iterator of bytes) of path in the container, and its stat."""
        step = f"get_archive {path}"
        self.execs.append({"container": container_id, "command": step})
        chunks, stat = self.engine(
            step, container_id, lambda: self.client.api.get_archive(container_id, path)
        )
        return self._read(step, container_id, chunks), stat

    def _read(self, step, container_id, chunks):
        """chunks, what reading them raises turned into ExecError (engine())."""
        chunks = iter(chunks)
        while True:
            chunk = self.engine(step, container_id, lambda: next(chunks, None))
            if chunk is None:
                return
            yield chunk

    def put_tree(self, container_id, directory, chunks, what):
        """Unpack a tar stream (an iterable of bytes, sent as it is made) into
        directory in the container. What making the stream raises is raised as
        it is; what the engine or the transport raises becomes ExecError."""
        step = f"put_archive {directory}"
        self.execs.append({"container": container_id, "command": step})
        failed = []

        def body():
            try:
                yield from chunks
            except Exception as exc:
                failed.append(exc)
                raise

        try:
            done = self.client.api.put_archive(container_id, directory, body())
        except Exception as exc:  # the SDK's errors and its transport's
            if failed:
                raise failed[0] from None
            raise ExecError(
                f"cannot copy {what} into {directory} in container {container_id[:12]}: the"
                f" Docker engine failed at put_archive: {engine_failure(exc)}"
            ) from exc
        if not done:
            raise ExecError(
                f"the Docker engine refused {what} at {directory} in container {container_id[:12]}"
            )


class _Attached:
    """The connection of an exec started with its standard input attached:
    its output as (stdout, stderr) pieces, the raw socket input is sent
    through, and close()."""

    def __init__(self, sock):
        self.sock = sock
        # The SDK gives a socket, or a file object around one.
        self.raw = getattr(sock, "_sock", sock)
        # pylint: disable-next=unidiomatic-typecheck
        if type(self.raw) is not socket.socket:  # an SSL socket, an SSH channel
            self.close()
            raise ExecError(
                f"standard input cannot be sent on a {type(self.raw).__name__} connection"
            )
        # Input may wait on the command longer than the client's timeout
        # (its set-up, a lock): sending is not timed; reading is not either
        # (the SDK polls before each read).
        self.raw.settimeout(None)

    def __iter__(self):
        for stream, data in frames_iter(self.sock, False):
            yield demux_adaptor(stream, data)

    def close(self):
        with contextlib.suppress(OSError):
            self.raw.shutdown(socket.SHUT_RDWR)
        for part in (self.sock, self.raw):
            with contextlib.suppress(OSError):
                part.close()


class _Sender(threading.Thread):
    """Sends an exec's standard input, an iterable of bytes, then closes the
    writing half of the connection: the command reads the end of its input.

    What making the input raises is kept in ``failed`` (the input then ends
    there: the command sees it end early); a connection that will take no
    more (the command ended, or the engine went) stops it quietly."""

    def __init__(self, raw, chunks):
        super().__init__(daemon=True)
        self.raw = raw
        self.chunks = chunks
        self.failed = None
        self.sent = 0

    def run(self):
        try:
            for chunk in self.chunks:
                try:
                    self.raw.sendall(chunk)
                except OSError:
                    return  # the other end takes no more: the command says why
                self.sent += len(chunk)
        except Exception as exc:  # whatever the input's maker raises, kept for the caller
            self.failed = exc
        finally:
            close = getattr(self.chunks, "close", None)
            if close:
                with contextlib.suppress(Exception):
                    close()
            with contextlib.suppress(OSError):
                self.raw.shutdown(socket.SHUT_WR)


class _Reader(threading.Thread):
    """Reads an exec's output frames into a bounded queue, so that the exec
    can be watched while it prints nothing: ("frame", (stdout, stderr)), then
    ("end", None) or ("error", exception)."""

    def __init__(self, output):
        super().__init__(daemon=True)
        self.output = output
        self.items = queue.Queue(maxsize=READ_AHEAD)
        self.stopped = threading.Event()

    def run(self):
        try:
            for frame in self.output:
                if not self._put(("frame", frame)):
                    return
        except Exception as exc:  # the SDK's errors and its transport's
            self._put(("error", exc))
            return
        self._put(("end", None))

    def _put(self, item):
        while not self.stopped.is_set():
            try:
                self.items.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def stop(self):
        self.stopped.set()
        close = getattr(self.output, "close", None)
        if close:
            with contextlib.suppress(Exception):  # what it closes may be broken already
                close()


class ExecStream:
    """A command in a container whose stdout is read as a stream of bytes.

    Standard error is kept (it is small: diagnostics and a final report).
    When the stream is exhausted the exit code is checked: non-zero raises
    ExecError (unless check is false), which carries the stderr bytes in its
    ``stderr`` attribute. A command whose end is not known (the engine lost,
    or not answering, after it may have started) raises ExecError with rc
    None, and ``rc`` stays None.

    While the command prints nothing the engine is asked every
    ``poll_seconds`` of the Containers whether it still runs: a long, silent
    command is waited for, a lost engine fails it.

    ``stdin``: an iterable of bytes, sent as the command's standard input
    while its output is read, then its end. What iterating it raises ends
    the input there and is kept in ``input_error`` once the command ended
    (the caller decides what it means: the command saw its input end early).
    """

    def __init__(
        self,
        containers,
        container_id,
        argv,
        label,
        user=None,
        workdir=None,
        environment=None,
        check=True,
        on_stderr=None,
        stdin=None,
    ):
        self.containers = containers
        self.on_stderr = on_stderr
        self.stdin = stdin
        self.input_error = None
        self.environment = dict(environment) if environment else None
        self.container_id = container_id
        self.argv = list(argv)
        self.label = label
        self.user = user
        self.workdir = workdir
        self.check = check
        self.rc = None
        self.stderr = b""

    def _error(self, message, rc=None):
        error = ExecError(message, rc)
        error.stderr = self.stderr
        return error

    def __iter__(self):
        errors = []
        try:
            for out, err in self._frames():
                if err:
                    errors.append(err)
                    if self.on_stderr is not None:
                        self.on_stderr(err)
                if out:
                    yield out
        except ExecError as exc:
            self.stderr = b"".join(errors)
            exc.stderr = self.stderr
            raise
        self.stderr = b"".join(errors)
        if self.check and self.rc != 0:
            tail = self.stderr.decode("utf-8", "replace").strip()[-2000:]
            short = self.container_id[:12]
            raise self._error(
                f"{self.label} failed in container {short} (exit {self.rc}): {tail}", self.rc
            )

    def _engine(self, step, started, call):
        """call()'s value; what it raises but an ExecError becomes ExecError
        (rc None) that says, once the command may have started, that its end
        is not known."""
        try:
            return call()
        except ExecError:
            raise
        except Exception as exc:  # the SDK's errors and its transport's
            raise self._lost(step, started, exc) from exc

    def _lost(self, step, started, exc):
        short = self.container_id[:12]
        if not started:
            return self._error(
                f"cannot run {self.label} in container {short}: the Docker engine failed at"
                f" {step}: {engine_failure(exc)}"
            )
        return self._error(
            f"lost the Docker engine at {step} of {self.label} in container {short}"
            f" ({engine_failure(exc)}): its end is not known, the command may still be"
            " running in the container"
        )

    def _frames(self):
        """(stdout, stderr) pieces of the command's output; sets rc at its end."""
        api = self.containers.client.api
        exec_id = self._engine(
            "exec create",
            False,
            lambda: api.exec_create(
                self.container_id,
                self.argv,
                stdout=True,
                stderr=True,
                stdin=self.stdin is not None,
                user=self.user or "",
                workdir=self.workdir,
                environment=self.environment,
            )["Id"],
        )
        sender = None
        if self.stdin is None:
            output = self._engine(
                "exec start", True, lambda: api.exec_start(exec_id, stream=True, demux=True)
            )
        else:
            output = self._engine(
                "exec start", True, lambda: _Attached(api.exec_start(exec_id, socket=True))
            )
            sender = _Sender(output.raw, self.stdin)
            sender.start()
        reader = _Reader(output)
        reader.start()
        try:
            while True:
                try:
                    kind, item = reader.items.get(timeout=self.containers.poll_seconds)
                except queue.Empty:
                    if self._inspect(exec_id).get("Running"):
                        continue
                    break  # ended, its output silent since: no more is coming
                if kind == "end":
                    break
                if kind == "error":
                    raise self._lost("reading the output", True, item) from item
                yield item
        finally:
            reader.stop()
            if sender is not None:
                # The connection is closed: a send still waiting on it ends.
                sender.join(SENDER_GRACE)
                self.input_error = sender.failed
                if sender.is_alive():
                    self.input_error = ExecError(
                        f"the sending of the input did not end within {SENDER_GRACE} s"
                        " of the command's end"
                    )
        self.rc = self._ended(exec_id)

    def _inspect(self, exec_id):
        api = self.containers.client.api
        info = self._engine("exec inspect", True, lambda: api.exec_inspect(exec_id))
        if not isinstance(info, dict):
            raise self._lost("exec inspect", True, TypeError(f"answered {type(info).__name__}"))
        return info

    def _ended(self, exec_id):
        """The exit code, once the engine says the command ended.

        The SDK ends an exec's output quietly when its connection breaks: an
        output that ended while the command still ran on (longer than the
        engine takes to record an end) was cut, and what it printed is not
        whole. That raises ExecError, with the exit code once it ended."""
        info = self._inspect(exec_id)
        waited = 0
        while info.get("Running"):
            # Its output ended but it runs: wait for its end while the engine answers.
            time.sleep(ENDING_SECONDS)
            waited += ENDING_SECONDS
            info = self._inspect(exec_id)
        rc = info.get("ExitCode")
        short = self.container_id[:12]
        if not isinstance(rc, int) or isinstance(rc, bool):
            raise self._error(
                f"the Docker engine does not say how {self.label} ended in container {short}"
                f" (exit code {rc!r}): its end is not known, the command may still be running"
                " in the container"
            )
        if waited > ENDING_GRACE:
            raise self._error(
                f"the output of {self.label} in container {short} was cut off while it ran"
                f" (it ended {waited} s later, exit {rc}): what it printed is not whole",
                rc,
            )
        return rc
