import threading

import pytest
import requests
import urllib3
from ansible_collections.edms.backup.plugins.module_utils._platform import docker as docker_utils
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import (
    Containers,
    ExecError,
    describe,
)

from .fake_docker import Exec, FakeClient


def test_describe_keeps_short_arguments_and_hides_inline_code():
    code = "import json\n" * 50
    assert describe(["python", "-c", code, "x"]) == f"python -c <{len(code)} characters> x"


# The Docker engine lost or slow: every SDK call gives ExecError.

CONTAINER = "0123456789abcdef0123"
TRANSPORT_ERRORS = [
    requests.exceptions.ConnectionError("Connection aborted: engine restarted"),
    requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)"),
    urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead"),
    RuntimeError("something else out of the SDK"),
]


def containers(plan, **kwargs):
    return Containers(client=FakeClient(lambda argv: plan, **kwargs), poll_seconds=0.05)


@pytest.mark.parametrize("error", TRANSPORT_ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("step", ["create", "start", "stream", "inspect"])
def test_f3_a_transport_error_at_any_exec_step_is_an_exec_error_with_rc_none(step, error):
    plan = Exec(frames=[(b"out", None)], raises={step: error})
    for run in (
        lambda c: c.exec(CONTAINER, ["true"], what="the step", check=False),
        lambda c: list(c.exec_stream(CONTAINER, ["true"], what="the step")),
        lambda c: list(c.exec_stream(CONTAINER, ["cat"], what="the step", stdin=[b"in"])),
    ):
        with pytest.raises(ExecError) as caught:
            run(containers(plan))
        message = str(caught.value)
        assert caught.value.rc is None
        assert "Docker engine" in message
        assert CONTAINER[:12] in message
        assert "the step" in message
        assert type(error).__name__ in message
        if step == "create":
            assert message.startswith("cannot run the step in container")
        else:
            assert "may still be running in the container" in message


def test_f3_an_output_ended_by_a_lost_engine_is_not_taken_for_the_end():
    # The SDK ends a stream quietly when its connection breaks; the engine,
    # asked how the command ended, is gone.
    plan = Exec(frames=[(None, b"half a report")], raises={"inspect": requests.ConnectionError()})
    with pytest.raises(ExecError) as caught:
        containers(plan).exec(CONTAINER, ["load"], what="the load")
    assert caught.value.rc is None
    assert caught.value.stderr == b"half a report"
    assert "exec inspect of the load" in str(caught.value)


def test_f3_a_long_silent_exec_is_waited_for_while_the_engine_says_it_runs():
    # Silent for 8 polls (a load of many minutes printing nothing), then its report.
    plan = Exec(frames=[(b"done", b"report")], silent=0.4)
    result = containers(plan).exec(CONTAINER, ["load"], what="the load")
    assert (result.rc, result.stdout, result.stderr) == (0, b"done", b"report")
    assert plan.inspects >= 3  # asked while it printed nothing, then for its end


def test_f3_an_engine_that_stops_answering_fails_a_silent_exec():
    plan = Exec(frames=[(b"never", None)], silent=5, raises={"inspect": requests.ReadTimeout()})
    with pytest.raises(ExecError) as caught:
        containers(plan).exec(CONTAINER, ["load"], what="the load")
    assert caught.value.rc is None
    assert "may still be running in the container" in str(caught.value)


def test_f3_an_output_cut_while_the_command_runs_on_is_an_error(monkeypatch):
    monkeypatch.setattr(docker_utils, "ENDING_SECONDS", 0.01)
    monkeypatch.setattr(docker_utils, "ENDING_GRACE", 0.05)
    plan = Exec(frames=[(b"part", None)], rc=0, running_after_end=20)
    with pytest.raises(ExecError, match="was cut off while it ran") as caught:
        containers(plan).exec(CONTAINER, ["dump"], what="pg_dump")
    assert caught.value.rc == 0
    # The engine's brief lag between the end of the output and the end: no error.
    plan = Exec(frames=[(b"all", None)], rc=0, running_after_end=2)
    assert containers(plan).exec(CONTAINER, ["dump"], what="pg_dump").stdout == b"all"


def test_f3_exit_codes_are_still_checked():
    plan = Exec(frames=[(None, b"no such table")], rc=3)
    with pytest.raises(ExecError, match=r"the step failed in container 0123456789ab \(exit 3\)"):
        containers(plan).exec(CONTAINER, ["x"], what="the step")
    assert containers(plan).exec(CONTAINER, ["x"], check=False).rc == 3


@pytest.mark.parametrize("error", TRANSPORT_ERRORS, ids=lambda e: type(e).__name__)
def test_f3_put_get_and_inspect_turn_transport_errors_into_exec_errors(error):
    def raising(*args):
        raise error

    ran = containers(Exec(), put=raising, get=raising)
    with pytest.raises(ExecError, match="Docker engine failed at put_archive"):
        ran.put_tree(CONTAINER, "/tmp/x", iter([b"tar"]), "the fixture")
    with pytest.raises(ExecError, match="Docker engine failed at get_archive /media"):
        ran.read_tree(CONTAINER, "/media")
    with pytest.raises(ExecError, match="Docker engine failed at inspect"):
        ran.inspect(CONTAINER)

    def broken_chunks():
        yield b"first"
        raise error

    ran = containers(Exec(), get=lambda container, path: (broken_chunks(), {}))
    chunks, _stat = ran.read_tree(CONTAINER, "/media")
    with pytest.raises(ExecError, match="get_archive /media for container 0123456789ab"):
        list(chunks)


def test_f3_put_tree_raises_the_body_own_error_as_it_is():
    class Unreadable(Exception):
        pass

    def body():
        yield b"header"
        raise Unreadable("member ended short")

    def put(container, path, data):
        try:
            list(data)
        except Unreadable as exc:
            raise requests.ConnectionError("aborted") from exc
        return True

    with pytest.raises(Unreadable, match="member ended short"):
        containers(Exec(), put=put).put_tree(CONTAINER, "/tmp/x", body(), "the fixture")
    refused = containers(Exec(), put=lambda *args: False)
    with pytest.raises(ExecError, match="refused the fixture"):
        refused.put_tree(CONTAINER, "/tmp/x", iter([b"tar"]), "the fixture")


# Standard input sent while the output is read.


def test_the_input_is_sent_whole_and_then_its_end_while_the_output_is_read():
    plan = Exec(frames=[(b"out", None), (None, b"err")])
    chunks = [bytes([n]) * 65536 for n in range(64)]  # 4 MiB: more than any socket buffer
    stream = containers(plan).exec_stream(CONTAINER, ["cat"], stdin=iter(chunks))
    assert b"".join(stream) == b"out"
    assert stream.rc == 0
    assert stream.stderr == b"err"
    assert stream.input_error is None
    assert plan.input_closed  # the command read the end of its input
    assert bytes(plan.input) == b"".join(chunks)


def test_what_making_the_input_raises_ends_the_input_there_and_is_kept():
    plan = Exec(frames=[(None, b"the load failed: its input ended early")], rc=3)

    def chunks():
        yield b"first"
        raise OSError("the archive cannot be read")

    stream = containers(plan).exec_stream(CONTAINER, ["cat"], stdin=chunks())
    with pytest.raises(ExecError, match="exit 3"):
        list(stream)
    assert isinstance(stream.input_error, OSError)
    assert plan.input_closed
    assert bytes(plan.input) == b"first"


def test_a_command_that_ends_without_reading_its_input_stops_the_sending_quietly():
    plan = Exec(frames=[(None, b"failed before reading")], rc=2, reads_input=False)
    closed = []

    def chunks():
        try:
            while True:
                yield b"x" * 65536
        finally:
            closed.append(True)

    stream = containers(plan).exec_stream(CONTAINER, ["cat"], stdin=chunks())
    with pytest.raises(ExecError, match="exit 2"):
        list(stream)
    assert stream.rc == 2
    assert stream.input_error is None
    assert closed == [True]  # the input's maker was closed: its archive too


@pytest.mark.parametrize(
    ("base_url", "takes"),
    [
        ("http+docker://localhost", True),  # the local UNIX socket
        ("http://10.0.0.5:2375", True),  # TCP without TLS
        ("https://10.0.0.5:2376", False),  # TLS: one SSL state for both directions
        ("http+docker://ssh", False),
        ("http+docker://localnpipe", False),
    ],
)
def test_input_is_sent_only_on_a_plain_socket(base_url, takes, monkeypatch):
    from .fake_docker import FakeAPI

    monkeypatch.setattr(FakeAPI, "base_url", base_url)
    assert containers(Exec()).takes_input() is takes


def test_an_ssl_connection_is_not_used_to_send_input():
    import socket
    import ssl

    ours, theirs = socket.socketpair()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    wrapped = context.wrap_socket(ours, do_handshake_on_connect=False)
    with pytest.raises(ExecError, match="cannot be sent on a SSLSocket connection"):
        docker_utils._Attached(wrapped)
    assert wrapped.fileno() == -1  # closed
    theirs.close()


def test_a_sender_that_does_not_stop_is_left_and_said_not_to_have_ended(monkeypatch):
    monkeypatch.setattr(docker_utils, "SENDER_GRACE", 0.2)
    plan = Exec(frames=[(None, b"ended without its input")], rc=3, reads_input=False)
    release = threading.Event()

    def chunks():
        release.wait(10)  # a source that hangs (a read of a lost network mount)
        yield b"late"

    stream = containers(plan).exec_stream(CONTAINER, ["cat"], stdin=chunks())
    with pytest.raises(ExecError, match="exit 3"):
        list(stream)
    assert isinstance(stream.input_error, ExecError)
    assert "did not end within 0.2 s" in str(stream.input_error)
    release.set()
