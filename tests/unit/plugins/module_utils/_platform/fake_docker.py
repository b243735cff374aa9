"""A minimal stand-in for the Docker SDK's client (client.api), for the pure
logic of _platform/docker.py: each exec is answered by a function of its argv."""

import threading


class Exec:
    """How the fake engine answers one exec: its output frames, how it ends,
    and what a step raises instead (create, start, stream, inspect)."""

    def __init__(self, frames=(), rc=0, raises=None, silent=0.0, running_after_end=0):
        self.frames = list(frames)
        self.rc = rc
        self.raises = raises or {}
        self.silent = silent  # seconds the stream stays silent before its frames
        self.running_after_end = running_after_end  # inspects saying Running after its end
        self.inspects = 0  # all of them
        self.ended = False  # its output ended (it runs until then)


class FakeAPI:
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

    def exec_start(self, exec_id, stream=False, demux=False):
        assert stream
        assert demux
        plan = self.execs[exec_id]
        if "start" in plan.raises:
            raise plan.raises["start"]
        return self._stream(plan)

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
