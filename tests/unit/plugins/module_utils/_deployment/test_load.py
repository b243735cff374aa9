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
    keep_tables_of,
    load_command,
    load_request,
    parse_report,
    tar_of_one,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    FIXTURE as FIXTURE_MEMBER,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import ArchiveReader
from ansible_collections.edms.backup.plugins.module_utils._platform.django import backend_program


def test_the_request_travels_as_one_json_argument():
    request = load_request(
        "/tmp/f/database_backup.json",
        {"Users.User": 3, "workflows.workflow_participants": 4},
        ["workflows.workflow_participants"],
        database="edms_scratch",
        settings_module="edms.settings",
    )
    argv = load_command("python3", request)
    assert argv[:3] == ["python3", "-c", backend_program(load)]
    assert json.loads(argv[3]) == {
        "settings": "edms.settings",
        "fixture": "/tmp/f/database_backup.json",
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
        load_request("/f.json", {}, [], fail_at="later")
    assert load_request("/f.json", {}, [], fail_at="before_commit")["fail_at"] == "before_commit"


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


@pytest.fixture(params=["zip", "directory"])
def archive(request, tmp_path):
    if request.param == "zip":
        path = tmp_path / "a.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr(FIXTURE_MEMBER, FIXTURE)
            out.writestr("metadata.json", "{}")
    else:
        path = tmp_path / "a"
        os.mkdir(path)
        (path / FIXTURE_MEMBER).write_bytes(FIXTURE)
    return str(path)


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
