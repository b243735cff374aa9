import hashlib
import io
import json
import os
import tarfile
import zipfile

import pytest
from ansible_collections.edms.backup.plugins.module_utils._backend import load
from ansible_collections.edms.backup.plugins.module_utils._backend.counts import compare_counts
from ansible_collections.edms.backup.plugins.module_utils._backend.scrub import scrub
from ansible_collections.edms.backup.plugins.module_utils._deployment.load import (
    KEEP_TABLES_OF,
    REPORT_MARKER,
    LoadError,
    copy_member,
    finished_load,
    fixture_input,
    keep_tables_of,
    load_command,
    load_request,
    parse_report,
    sent_member,
    tar_of_one,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    FIXTURE as FIXTURE_MEMBER,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    ArchiveError,
    ArchiveReader,
    MemberReader,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import backend_program


def test_the_request_travels_as_one_json_argument():
    request = load_request(
        {"size": 1234, "sha256": "ab" * 32},
        {"Users.User": 3, "workflows.workflow_participants": 4},
        ["workflows.workflow_participants"],
        database="edms_scratch",
        settings_module="edms.settings",
    )
    argv = load_command("python3", request)
    assert argv[:3] == ["python3", "-c", backend_program(load)]
    assert json.loads(argv[3]) == {
        "settings": "edms.settings",
        "fixture": {"size": 1234, "sha256": "ab" * 32, "path": None, "sent_sha256": None},
        "database": "edms_scratch",
        "expected": {"users.user": 3, "workflows.workflow_participants": 4},
        "m2m_tables": ["workflows.workflow_participants"],
        "keep_tables_of": KEEP_TABLES_OF,
        "fail_at": None,
        "reset_models": None,
    }


def test_the_script_is_python_that_compiles():
    program = backend_program(load)
    compile(program, "<load>", "exec")
    assert REPORT_MARKER in program


def test_an_unknown_fault_stage_is_refused():
    with pytest.raises(LoadError, match="unknown fail_at stage 'later'"):
        load_request({"size": 1}, {}, [], fail_at="later")
    assert load_request({"size": 1}, {}, [], fail_at="before_commit")["fail_at"] == "before_commit"


def test_the_report_is_the_last_marked_line_of_stderr():
    stderr = (
        "Traceback (most recent call last): noise\n"
        + REPORT_MARKER
        + json.dumps({"objects": 1})
        + "\n"
        + REPORT_MARKER
        + json.dumps({"objects": 416, "streamed": True})
        + "\n"
    ).encode()
    assert parse_report(stderr) == {"objects": 416, "streamed": True}


def test_a_reported_error_is_raised_with_its_stage():
    stderr = REPORT_MARKER + json.dumps(
        {"error": "RuntimeError: injected failure at load", "stage": "load"}
    )
    with pytest.raises(LoadError, match=r"^the load failed \(stage load\): RuntimeError") as info:
        parse_report(stderr)
    assert info.value.stage == "load"


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        (b"", "the load ended without a report$"),
        (b"Traceback...\nMemoryError\n", "without a report: Traceback...\nMemoryError"),
        ((REPORT_MARKER + "{oops").encode(), "the load's report is not JSON"),
        ((REPORT_MARKER + "[1]").encode(), "not a JSON object"),
    ],
)
def test_no_readable_report_is_an_error(stderr, message):
    with pytest.raises(LoadError, match=message) as info:
        parse_report(stderr)
    assert info.value.stage is None


def test_count_differences_name_model_expected_and_found():
    expected = {"users.user": 3, "workflows.workflow_participants": 4, "gone.model": 1}
    found = {"users.user": 3, "workflows.workflow_participants": 5, "audit.audittrail": 2}
    assert compare_counts(expected, found, ["workflows.workflow_participants"]) == [
        {"model": "audit.audittrail", "expected": 0, "found": 2, "kind": "model"},
        {"model": "gone.model", "expected": 1, "found": None, "kind": "model"},
        {
            "model": "workflows.workflow_participants",
            "expected": 4,
            "found": 5,
            "kind": "m2m table",
        },
    ]
    assert compare_counts({"a.b": 1}, {"a.b": 1, "c.d": 0}, []) == []


FIXTURE = b'[\n{"model": "users.user", "pk": 1, "fields": {}}\n]\n' * 300


def archive_of(kind, tmp_path, fixture):
    """An archive (a ZIP file or a directory) whose fixture is `fixture`."""
    if kind == "zip":
        path = tmp_path / "a.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr(FIXTURE_MEMBER, fixture)
            out.writestr("metadata.json", "{}")
    else:
        path = tmp_path / "a"
        os.mkdir(path)
        (path / FIXTURE_MEMBER).write_bytes(fixture)
    return str(path)


@pytest.fixture(params=["zip", "directory"])
def archive(request, tmp_path):
    return archive_of(request.param, tmp_path, FIXTURE)


def test_the_fixture_is_sent_as_a_tar_stream_made_on_the_way(archive):
    """The tar of one member that put_fixture sends (the Docker side of it is
    tested against the real engine in tests/integration/test_load.py)."""
    with ArchiveReader.open(archive) as reader:
        info = tarfile.TarInfo(FIXTURE_MEMBER)
        info.size = reader.member(FIXTURE_MEMBER).size
        info.mode, info.uid, info.gid = 0o600, 1000, 1001
        source = reader.open_member(FIXTURE_MEMBER)
        chunks = list(tar_of_one(info, source))
        source.close()
    data = b"".join(chunks)
    assert len(chunks) > 1
    assert len(data) % tarfile.BLOCKSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (member,) = tar.getmembers()
        assert member.name == FIXTURE_MEMBER
        assert (member.mode, member.uid, member.gid) == (0o600, 1000, 1001)
        assert tar.extractfile(member).read() == FIXTURE


class Taking:
    """The one call of an engine copy_member makes (put_tree), taking `chunks`
    of the tar stream it is given (None: all of them)."""

    def __init__(self, chunks=None):
        self.chunks, self.data = chunks, b""

    def put_tree(self, container_id, dest_dir, body, what):
        for n, chunk in enumerate(body):
            if self.chunks is not None and n >= self.chunks:
                break
            self.data += chunk
        return True


def test_a_copy_gives_the_sha256_of_the_bytes_it_sent(archive):
    engine = Taking()
    path, sha256 = copy_member(engine, "c" * 64, archive, FIXTURE_MEMBER, "/tmp/x/", (1, 2))
    assert path == "/tmp/x/" + FIXTURE_MEMBER
    assert sha256 == hashlib.sha256(FIXTURE).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(engine.data)) as tar:
        assert tar.extractfile(FIXTURE_MEMBER).read() == FIXTURE


def test_a_copy_the_engine_did_not_take_whole_is_refused(archive):
    with pytest.raises(LoadError, match="was not sent whole into container cccccccccccc"):
        copy_member(Taking(chunks=2), "c" * 64, archive, FIXTURE_MEMBER, "/tmp/x", (1, 2))


HASH = "pbkdf2_sha256$600000$Qx1salt$K2hashvalue="
TOKEN = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"


HIDDEN = "DETAIL:  not shown (it may quote the row's data)"


def test_scrub_hides_the_failing_row_which_holds_every_column():
    text = (
        'null value in column "first_name" of relation "users_user" violates not-null '
        f"constraint\nDETAIL:  Failing row contains (3, {HASH}, null, f, bob,\nsecond line).\n"
        "CONTEXT:  SQL statement\n"
    )
    assert scrub(text) == (
        'null value in column "first_name" of relation "users_user" violates not-null '
        f"constraint\n{HIDDEN}\nCONTEXT:  SQL statement\n"
    )


def test_scrub_keeps_a_key_of_ids_with_integer_or_uuid_values():
    pk = "ERROR:  duplicate key value\nDETAIL:  Key (id)=(1) already exists."
    assert scrub(pk) == pk
    fk = 'DETAIL:  Key (owner_id, "workflow_id")=(42, 7) is not present in table "users_user".'
    assert scrub(fk) == fk
    uuid = "DETAIL:  Key (id)=(9c5b94b1-35ad-49bb-b118-8e8fc24abf80) already exists."
    assert scrub(uuid) == uuid
    referenced = 'DETAIL:  Key (id)=(3) is still referenced from table "documents_document".'
    assert scrub(referenced) == referenced


@pytest.mark.parametrize(
    "detail",
    [
        "Key (email)=(alice@example.org) already exists.",
        # A unique index on an expression.
        "Key (lower(email::text))=(alice@example.org) already exists.",
        # An id by name whose value is not a key.
        "Key (national_id)=(123-45-6789) already exists.",
        # An exclusion constraint.
        "Key (room_id, during)=(1, [2025-01-01,2025-01-02)) conflicts with existing key "
        "(room_id, during)=(1, [2025-01-01,2025-01-03)).",
        "Key (id)=(1) is duplicated.",
        # Another language.
        "Schl\u00fcssel \u00bb(email)=(alice@example.org)\u00ab existiert bereits.",
    ],
)
def test_scrub_hides_every_other_detail(detail):
    assert scrub(f"ERROR:  x\nDETAIL:  {detail}\nHINT:  y") == f"ERROR:  x\n{HIDDEN}\nHINT:  y"


def test_scrub_judges_each_detail_and_a_detail_within_a_line():
    text = (
        "Key (id)=(1) already exists.\n"
        "DETAIL:  Key (id)=(1) already exists.\n"
        "DETAIL:  Key (email)=(bob@example.org) is duplicated.\n"
        "pg_restore: error: x DETAIL:  Failing row contains (secret)."
    )
    assert scrub(text) == (
        "Key (id)=(1) already exists.\n"
        "DETAIL:  Key (id)=(1) already exists.\n"
        f"{HIDDEN}\n"
        f"pg_restore: error: x\n{HIDDEN}"
    )


def test_scrub_hides_what_pg_restore_quotes_of_the_failed_copy():
    text = (
        'pg_restore: error: COPY failed for table "authtoken_token": ERROR:  duplicate key '
        'value violates unique constraint "authtoken_token_pkey"\n'
        f"DETAIL:  Key (key)=({TOKEN}) already exists.\n"
        f'CONTEXT:  COPY authtoken_token, line 1: "{TOKEN}\t2024-01-01\t3"\n'
        "pg_restore: warning: errors ignored on restore: 1\n"
    )
    out = scrub(text)
    assert TOKEN not in out
    assert f"\n{HIDDEN}\n" in out
    assert "CONTEXT:  COPY authtoken_token, line 1 (the line is not shown)\n" in out
    assert out.endswith("errors ignored on restore: 1\n")


def test_a_load_keeps_the_tables_the_archive_left_to_migrate():
    assert keep_tables_of({"recreated_models": ["auth.Permission"]}) == ["auth.permission"]
    # The dump kept content types and permissions: nothing is kept back.
    assert keep_tables_of({"recreated_models": []}) == []
    # An archive from before the field: what the default excludes leave out.
    assert keep_tables_of({}) == KEEP_TABLES_OF == ["contenttypes.contenttype", "auth.permission"]


# The fixture sent as the load's standard input: the host's half
# (fixture_input, sent_member) and the load's (_backend/load.py StreamedFixture,
# read_objects). The Docker side is tested against the real engine in
# tests/integration/test_load.py.

OBJECTS = [{"model": "users.user", "pk": n, "fields": {"name": f"u{n}"}} for n in range(1, 2001)]
LINES = b"[\n" + b",\n".join(json.dumps(o).encode() for o in OBJECTS) + b"\n]\n"
LINES_SHA256 = hashlib.sha256(LINES).hexdigest()


def end_line(data):
    return load.FIXTURE_END + hashlib.sha256(data).hexdigest().encode() + b"\n"


def received(data, size=None, expected=None):
    """The load's side of an input: (StreamedFixture, objects read, state)."""
    sent = load.StreamedFixture(io.BufferedReader(io.BytesIO(data)), size, expected, wait=None)
    text = io.TextIOWrapper(io.BufferedReader(sent, 4096), encoding="utf-8")
    state = {"read": 0, "streamed": True}
    return sent, list(load.read_objects(text, state)), state


def loaded(data, size, expected=None):
    """The objects of an input the load reads to its end line, or ValueError."""
    sent, objects, _state = received(data, size, expected)
    sent.finish()
    return objects


@pytest.fixture(params=["zip", "directory"])
def lines_archive(request, tmp_path):
    return archive_of(request.param, tmp_path, LINES)


def test_the_fixture_goes_as_its_bytes_then_the_end_line_with_their_sha256(lines_archive):
    metadata = {"members": {FIXTURE_MEMBER: {"sha256": LINES_SHA256, "size": len(LINES)}}}
    fixture, chunks = fixture_input(lines_archive, metadata)
    assert fixture == {"size": len(LINES), "sha256": LINES_SHA256}
    data = b"".join(chunks)
    assert data == LINES + end_line(LINES)
    # The load's half reads the objects, then takes the end line.
    sent, objects, state = received(data, fixture["size"], fixture["sha256"])
    assert objects == OBJECTS
    assert state == {"read": len(OBJECTS), "streamed": True}
    sent.finish()


@pytest.mark.parametrize(
    "listed",
    [
        {},
        {"members": {}},
        {"members": {FIXTURE_MEMBER: {"sha256": "AB" * 32}}},
        {"members": [FIXTURE_MEMBER]},
        {"members": {FIXTURE_MEMBER: LINES_SHA256}},
    ],
    ids=["no-members", "not-listed", "not-lower-hex", "a-list", "not-a-mapping"],
)
def test_a_sha256_that_metadata_does_not_give_well_is_not_asked_for(lines_archive, listed):
    fixture, chunks = fixture_input(lines_archive, listed)
    assert fixture["sha256"] is None
    chunks.close()


def test_a_damaged_member_never_sends_the_end_line(tmp_path):
    # More than one chunk, so that some of it is sent before the CRC-32 is
    # checked, at the member's end.
    objects = [{"model": "users.user", "pk": n, "fields": {}} for n in range(1, 60001)]
    data = b"[\n" + b",\n".join(json.dumps(o).encode() for o in objects) + b"\n]\n"
    assert len(data) > 2 * 1024 * 1024
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        out.writestr(FIXTURE_MEMBER, data)
    raw = bytearray(path.read_bytes())
    at = raw.index(b'"pk": 59000')
    raw[at + 7] ^= 0x01  # one digit of the data: the CRC-32 no longer matches
    path.write_bytes(bytes(raw))
    _fixture, chunks = fixture_input(str(path), {})
    sent = []

    def send():
        for chunk in chunks:
            sent.append(chunk)

    with pytest.raises(ArchiveError, match="cannot be read"):
        send()
    assert len(sent) == 2
    assert load.FIXTURE_END not in b"".join(sent)
    # What the load got ends early: it fails, before anything is committed.
    with pytest.raises(ValueError, match="short of its size"):
        loaded(b"".join(sent), len(data))


@pytest.mark.parametrize("change", [-1, 1])
def test_a_member_of_another_size_than_recorded_is_refused(change):
    source = MemberReader(FIXTURE_MEMBER, io.BytesIO(LINES))
    message = "ended 1 bytes short" if change > 0 else "longer than its recorded size"
    with pytest.raises(LoadError, match=message):
        list(sent_member(source, len(LINES) + change, FIXTURE_MEMBER))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (LINES[:-50], "ended 50 bytes short of its size"),
        (LINES, "did not confirm that it sent the fixture whole"),
        (LINES + load.FIXTURE_END + b"0" * 64 + b"\n", "did not confirm"),
        (LINES + end_line(LINES)[:-1], "did not confirm"),
    ],
    ids=["cut-short", "no-end-line", "another-sha256", "end-line-cut"],
)
def test_an_input_the_host_did_not_send_whole_fails_the_load(data, message):
    with pytest.raises(ValueError, match=message):
        loaded(data, len(LINES))


def test_bytes_other_than_the_archives_fail_the_load_even_when_sent_whole():
    other = LINES.replace(b'"u7"', b'"u8"')
    sent, _objects, _state = received(other + end_line(other), len(other), LINES_SHA256)
    with pytest.raises(ValueError, match="the archive's metadata says " + LINES_SHA256):
        sent.finish()


def test_a_fixture_in_another_layout_is_read_whole_from_the_input():
    indented = json.dumps(OBJECTS, indent=2).encode() + b"\n"
    sent, objects, state = received(indented + end_line(indented), len(indented))
    assert objects == OBJECTS
    assert state["streamed"] is False
    sent.finish()


def test_text_after_the_closing_bracket_fails_the_load():
    data = LINES + b"[]\n"
    with pytest.raises(ValueError, match="text after its closing"):
        received(data + end_line(data), len(data))


def test_input_that_stops_coming_fails_the_load_after_its_wait():
    reading, writing = os.pipe()
    try:
        os.write(writing, LINES[:100])
        with open(reading, "rb", buffering=0, closefd=False) as source:
            sent = load.StreamedFixture(source, len(LINES), wait=0.2)
            text = io.TextIOWrapper(io.BufferedReader(sent, 4096), encoding="utf-8-sig")
            with pytest.raises(ValueError, match="no part of the fixture came for 0 s"):
                list(load.read_objects(text, {"read": 0, "streamed": True}))
    finally:
        os.close(reading)
        os.close(writing)


def test_a_byte_order_mark_is_not_part_of_the_text():
    data = b"\xef\xbb\xbf" + LINES
    sent = load.StreamedFixture(
        io.BufferedReader(io.BytesIO(data + end_line(data))), len(data), wait=None
    )
    text = io.TextIOWrapper(io.BufferedReader(sent, 4096), encoding="utf-8-sig")
    state = {"read": 0, "streamed": True}
    assert list(load.read_objects(text, state)) == OBJECTS
    assert state["streamed"] is True
    sent.finish()


def copy_in_the_container(tmp_path, data, size=None, sent=LINES_SHA256, listed=LINES_SHA256):
    """open_fixture of a copy put into the container (the path of the
    request), with the sha256 of what the host sent and the one metadata
    lists."""
    path = tmp_path / "database_backup.json"
    path.write_bytes(data)
    fixture = {"size": len(data) if size is None else size, "sha256": listed}
    return load.open_fixture({"fixture": {**fixture, "path": str(path), "sent_sha256": sent}})


def test_without_a_path_the_fixture_is_the_standard_input_with_its_wait(monkeypatch):
    reading, writing = os.pipe()
    os.close(writing)
    with io.TextIOWrapper(io.BufferedReader(io.FileIO(reading))) as stdin:
        monkeypatch.setattr(load.sys, "stdin", stdin)
        sent, _text = load.open_fixture({"fixture": {"size": 10, "sha256": LINES_SHA256}})
        assert isinstance(sent, load.StreamedFixture)
        assert sent.source is stdin.buffer.raw
        assert sent.wait == load.INPUT_WAIT == 300
        assert sent.expected == LINES_SHA256


@pytest.mark.parametrize("sent", [None, "", LINES_SHA256.upper(), 5, LINES_SHA256 + "\n"])
def test_a_copy_named_without_the_sha256_the_host_sent_is_refused(tmp_path, sent):
    with pytest.raises(ValueError, match="without the sha256 of the bytes the host sent"):
        copy_in_the_container(tmp_path, LINES, sent=sent)


def test_a_copy_that_is_not_a_regular_file_is_not_read(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    request = {"size": 1, "sha256": None, "path": str(fifo), "sent_sha256": LINES_SHA256}
    # Refused at once, not waited on for a writer.
    with pytest.raises(ValueError, match="is not a regular file"):
        load.open_fixture({"fixture": request})
    link = tmp_path / "link"
    (tmp_path / "target").write_bytes(LINES)
    link.symlink_to(tmp_path / "target")
    with pytest.raises(OSError, match="symbolic links"):
        load.open_fixture({"fixture": {**request, "path": str(link)}})


def test_the_hosts_request_for_a_copy_is_what_the_load_reads(tmp_path):
    # The fields the host writes (load_request) are the ones the load reads
    # (open_fixture): a field dropped on the way fails here.
    path = tmp_path / "database_backup.json"
    path.write_bytes(LINES)
    fixture = {"size": len(LINES), "sha256": LINES_SHA256}
    fixture.update(path=str(path), sent_sha256=LINES_SHA256)
    request = json.loads(load_command("python3", load_request(fixture, {}, []))[3])
    sent, text = load.open_fixture(request)
    assert isinstance(sent, load.CopiedFixture)
    assert list(load.read_objects(text, {"read": 0, "streamed": True})) == OBJECTS
    sent.finish()


def test_a_copy_in_the_container_is_read_without_an_end_line(tmp_path):
    sent, text = copy_in_the_container(tmp_path, LINES)
    assert isinstance(sent, load.CopiedFixture)
    assert list(load.read_objects(text, {"read": 0, "streamed": True})) == OBJECTS
    sent.finish()


OTHER = LINES.replace(b'"u7"', b'"u8"')


@pytest.mark.parametrize(
    ("data", "size", "listed", "message"),
    [
        (OTHER, None, LINES_SHA256, "copy in the container has sha256 .*; the host sent"),
        # Without a sha256 in metadata, the copy is still checked against
        # what the host sent.
        (OTHER, None, None, "copy in the container has sha256 .*; the host sent " + LINES_SHA256),
        (LINES + b"\n", len(LINES), LINES_SHA256, "longer than the archive's"),
    ],
    ids=["other-bytes", "other-bytes-no-sha256-listed", "longer"],
)
def test_a_copy_that_is_not_what_the_host_sent_fails_the_load(
    tmp_path, data, size, listed, message
):
    sent, text = copy_in_the_container(tmp_path, data, size, listed=listed)
    list(load.read_objects(text, {"read": 0, "streamed": True}))
    with pytest.raises(ValueError, match=message):
        sent.finish()


def test_a_copy_cut_short_is_named_as_the_copy(tmp_path):
    _sent, text = copy_in_the_container(tmp_path, LINES[:-50], size=len(LINES))
    message = "the fixture's copy in the container ended 50 bytes short"
    with pytest.raises(ValueError, match=message):
        list(load.read_objects(text, {"read": 0, "streamed": True}))


def test_a_copy_the_host_sent_other_bytes_for_fails_on_metadatas_sha256(tmp_path):
    # The copy is what the host sent, but not what metadata lists.
    sent, text = copy_in_the_container(tmp_path, OTHER, sent=hashlib.sha256(OTHER).hexdigest())
    list(load.read_objects(text, {"read": 0, "streamed": True}))
    with pytest.raises(ValueError, match="the archive's metadata says " + LINES_SHA256):
        sent.finish()


class Ended:
    """An ExecStream that ran to its end (rc) with stderr."""

    def __init__(self, rc, stderr):
        self.rc, self.stderr = rc, stderr


def test_a_load_that_reported_its_failure_rolled_back_and_says_why_its_input_stopped():
    stderr = (REPORT_MARKER + json.dumps({"error": "ValueError: short", "stage": "load"})).encode()
    problem = ArchiveError("member 'database_backup.json' cannot be read: Bad CRC-32")
    with pytest.raises(LoadError) as caught:
        finished_load(Ended(3, stderr), input_error=problem)
    assert caught.value.outcome == "rolled back"
    assert caught.value.stage == "load"
    assert str(caught.value).endswith(f"; sending it the fixture stopped: {problem}")


def test_a_failure_as_the_transaction_ended_leaves_the_outcome_unknown():
    report = {"error": "OperationalError: server closed the connection", "stage": "commit"}
    stderr = (REPORT_MARKER + json.dumps({**report, "outcome": "unknown"})).encode()
    with pytest.raises(LoadError, match="whether it committed is not known") as caught:
        finished_load(Ended(3, stderr))
    assert caught.value.outcome == "unknown"
    # Without the mark, a reported failure rolled back.
    with pytest.raises(LoadError) as caught:
        finished_load(Ended(3, (REPORT_MARKER + json.dumps(report)).encode()))
    assert caught.value.outcome == "rolled back"
