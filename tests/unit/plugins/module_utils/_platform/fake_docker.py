"""A minimal stand-in for the Docker SDK's client (client.api), for the pure
logic of _platform/docker.py: each exec is answered by a function of its argv."""

import socket
import struct
import threading


class Exec:
    """How the fake engine answers one exec: its output frames, how it ends,
    and what a step raises instead (create, start, stream, inspect)."""

    def __init__(
        self, frames=(), rc=0, raises=None, silent=0.0, running_after_end=0, reads_input=True
    ):
        self.frames = list(frames)
        self.reads_input = reads_input  # it reads its standard input to its end
        self.rc = rc
        self.raises = raises or {}
        self.silent = silent  # seconds the stream stays silent before its frames
        self.running_after_end = running_after_end  # inspects saying Running after its end
        self.inspects = 0  # all of them
        self.ended = False  # its output ended (it runs until then)
        self.input = bytearray()  # what was sent to its standard input
        self.input_ended = threading.Event()  # ... and its end
        self.input_closed = False  # its end came while it ran (the sender closed it)


class FakeAPI:
    # The engine's address, as the SDK gives it: a local UNIX socket.
    base_url = "http+docker://localhost"

    def __init__(self, answer, put=None, get=None):
        self.answer = answer  # argv -> Exec
        self.put = put
        self.get = get
        self.execs = {}
        self.created = []

    def exec_create(self, container, cmd, **kwargs):
        plan = self.answer(list(cmd))
        if "create" in plan.raises:
            raise plan.raises["create"]
        exec_id = f"exec{len(self.execs)}"
        self.execs[exec_id] = plan
        self.created.append((container, list(cmd), kwargs))
        return {"Id": exec_id}

    def exec_start(self, exec_id, stream=False, demux=False, socket=False):
        plan = self.execs[exec_id]
        if "start" in plan.raises:
            raise plan.raises["start"]
        if socket:
            return self._socket(plan)
        assert stream
        assert demux
        return self._stream(plan)

    def _socket(self, plan):
        """The exec's connection with its standard input attached, as the
        engine gives it: one end of a real socket pair. The other end keeps
        what is sent and writes the frames, multiplexed as the engine does. A
        broken stream ("stream") ends the output quietly, as the SDK reads a
        broken connection, and the engine is then lost ("inspect")."""
        ours, theirs = socket.socketpair()

        def drain():
            while True:
                try:
                    data = theirs.recv(65536)
                except OSError:
                    break
                if not data:
                    plan.input_closed = not plan.ended
                    break
                plan.input += data
            plan.input_ended.set()

        def serve():
            reading = threading.Thread(target=drain, daemon=True)
            if plan.reads_input:
                reading.start()
            if plan.silent:
                threading.Event().wait(plan.silent)
            try:
                for frame in plan.frames:
                    for kind, data in zip((1, 2), frame, strict=True):
                        if data:
                            theirs.sendall(struct.pack(">BxxxL", kind, len(data)) + data)
            except OSError:
                pass
            if "stream" in plan.raises:
                plan.raises.setdefault("inspect", plan.raises["stream"])
            elif plan.reads_input:
                plan.input_ended.wait(5)
            plan.ended = True
            theirs.close()

        threading.Thread(target=serve, daemon=True).start()
        return ours

    def _stream(self, plan):
        if plan.silent:
            threading.Event().wait(plan.silent)
        yield from plan.frames
        if "stream" in plan.raises:
            raise plan.raises["stream"]
        plan.ended = True

    def exec_inspect(self, exec_id):
        plan = self.execs[exec_id]
        plan.inspects += 1
        if "inspect" in plan.raises:
            raise plan.raises["inspect"]
        if not plan.ended:
            return {"Running": True, "ExitCode": None}
        if plan.running_after_end > 0:
            plan.running_after_end -= 1
            return {"Running": True, "ExitCode": None}
        return {"Running": False, "ExitCode": plan.rc}

    def put_archive(self, container, path, data):
        return self.put(container, path, data)

    def get_archive(self, container, path):
        return self.get(container, path)

    def inspect_container(self, container):
        return self.get(container, None)


class FakeClient:
    def __init__(self, answer, put=None, get=None):
        self.api = FakeAPI(answer, put=put, get=get)
