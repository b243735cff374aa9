import json

import pytest
from ansible_collections.edms.backup.plugins.module_utils._backend import dump, rows
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_create import IterStream
from ansible_collections.edms.backup.plugins.module_utils._deployment.dump import (
    REPORT_MARKER,
    DumpError,
    dump_command,
    parse_report,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import backend_sources


def test_the_request_travels_as_one_json_argument():
    argv = dump_command("python3", ["sessions"], "edms.settings")
    assert argv[:2] == ["python3", "-c"]
    assert json.loads(argv[3]) == {"settings": "edms.settings", "excludes": ["sessions"]}


def test_the_instance_path_is_in_the_request_only_when_asked_for():
    argv = dump_command("python3", ["sessions"], instance_path=True)
    request = json.loads(argv[3])
    assert request == {"settings": None, "excludes": ["sessions"], "instance_path": True}


def test_the_script_is_python_and_carries_the_fast_path():
    program = dump_command("python3", [])[2]
    compile(program, "the dump", "exec")
    assert repr(backend_sources(dump)[rows.__name__]) in program


def test_the_report_is_the_last_marked_line_of_stderr():
    stderr = (
        "DeprecationWarning: something\n"
        + REPORT_MARKER
        + json.dumps({"objects": 1})
        + "\n"
        + REPORT_MARKER
        + json.dumps({"objects": 416})
        + "\n"
    ).encode()
    assert parse_report(stderr) == {"objects": 416}


def test_a_reported_error_is_raised_with_its_message():
    stderr = REPORT_MARKER + json.dumps({"error": "unknown app in excludes: x"})
    with pytest.raises(DumpError, match=r"^unknown app in excludes: x$"):
        parse_report(stderr)


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        (b"", "the dump ended without a report$"),
        (b"Traceback...\nMemoryError\n", "without a report: Traceback...\nMemoryError"),
        ((REPORT_MARKER + "{oops").encode(), "the dump's report is not JSON"),
    ],
)
def test_no_readable_report_is_an_error(stderr, message):
    with pytest.raises(DumpError, match=message):
        parse_report(stderr)


def test_iter_stream_reads_across_chunks_in_any_sizes():
    stream = IterStream(iter([b"ab", b"", b"cdef", b"g"]))
    assert stream.read(3) == b"abc"
    assert stream.read(0) == b""
    assert stream.read(2) == b"de"
    assert stream.read() == b"fg"
    assert stream.read(5) == b""
