"""A live restore whose Docker engine is lost, or whose code fails, after its
first destructive step: the failure always carries the restore token and
what is live, and never says that nothing was replaced."""

import hashlib
import json
import types
import zipfile

import pytest
import requests
from ansible_collections.edms.backup.plugins.module_utils._commands import archive_restore
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_restore import (
    LiveRestore,
    RestoreError,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.load import (
    LOAD_PROGRAM,
    REPORT_MARKER,
    LoadError,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import FIXTURE
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import (
    Containers,
    ExecError,
)

from .._platform.fake_docker import Exec, FakeClient

BACKEND = "b" * 64
METADATA = {"counts": {"app.thing": 1}, "m2m_tables": [], "members": {}}
LOST = requests.exceptions.ConnectionError("Connection aborted: the engine restarted")


def report(**fields):
    return (REPORT_MARKER + json.dumps(fields) + "\n").encode()


class Restore(LiveRestore):
    """LiveRestore with its checks done and media steps answered by the test;
    the load runs through Deployment.load against the fake engine."""

    def __init__(self, archive, load, media_faults=None, **kwargs):
        params = {
            "archive": archive,
            "media_dir_container": "/app/media",
            "backend_python": "python3",
            "verify_only": False,
            "allow_migration_mismatch": False,
            "django_settings_module": None,
            "manage_py": None,
        }

        def answer(argv):
            if LOAD_PROGRAM in argv:
                return load
            if argv[0] == "sh" and "mkdir" in argv[2]:
                return Exec(frames=[(b"1000\n1000\n", None)])
            return Exec()

        def put(container, path, data):
            for _chunk in data:
                pass
            return True

        client = FakeClient(answer, put=put)
        super().__init__(params, containers=Containers(client=client, poll_seconds=0.05))
        self.media_faults = media_faults or {}
        self.media_done = []

    def verify(self):
        self.archive_path = self.source = self.params["archive"]
        self.backend = types.SimpleNamespace(container_id=BACKEND)
        return METADATA

    def media(self, action, work=None, fail_at=None):
        self.media_done.append(action)
        if action in self.media_faults:
            raise self.media_faults[action]
        return {"swap": {"moved_in": 1}, "putback": {"previous": True}}.get(action, {})

    def media_against(self, metadata, hashes=None):
        return []


@pytest.fixture(autouse=True, params=["http+docker://localhost", "https://engine:2376"])
def engine_address(request, monkeypatch):
    """Every test twice: the fixture sent on the load's standard input (a
    local socket), and copied into the backend first (TLS)."""
    from .._platform.fake_docker import FakeAPI

    monkeypatch.setattr(FakeAPI, "base_url", request.param)
    return request.param


@pytest.fixture
def archive(tmp_path, monkeypatch):
    path = tmp_path / "edms.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr(FIXTURE, b'[{"model": "app.thing", "pk": 1, "fields": {}}]\n')

    def swap_in(session, archive, work, fail_at=None):
        session.media("prepare", work)
        return {"files": 1, **session.media("swap", work, fail_at=fail_at)}

    monkeypatch.setattr(archive_restore, "swap_in", swap_in)
    return str(path)


def failure(restore):
    with pytest.raises(RestoreError) as caught:
        restore.run()
    partial = caught.value.partial
    message = str(caught.value)
    assert partial["token"]
    assert f"restore_token={partial['token']}" in message
    assert "nothing was replaced" not in message.lower()
    return message, partial


@pytest.mark.parametrize(
    "load",
    [
        # the stream broken by the transport
        Exec(frames=[(None, b"loading\n")], raises={"stream": LOST}),
        # the stream ended quietly (the SDK's way), the engine gone when asked
        Exec(frames=[(None, b"loading\n")], raises={"inspect": LOST}),
        # the engine stopped answering while the load printed nothing
        Exec(silent=5, raises={"inspect": requests.exceptions.ReadTimeout("timed out")}),
    ],
    ids=["stream", "inspect", "silent"],
)
def test_f3_the_engine_lost_during_the_load_keeps_the_token_and_says_it_may_commit(archive, load):
    restore = Restore(archive, load)
    message, partial = failure(restore)
    assert partial["database_load"] == "unknown"
    assert "may still be running in the backend container" in message
    assert "the load may still commit in the container" in message
    assert partial["media_live"] == "previous"  # put back, the engine answering again
    assert restore.media_done == ["prepare", "swap", "putback", "finish"]


def test_f3_the_engine_lost_during_the_swap_and_the_put_back_says_the_media_are_unknown(archive):
    lost = ExecError(
        "lost the Docker engine at exec start of media swap in container bbbbbbbbbbbb"
        " (ConnectionError: aborted): its end is not known, the command may still be running"
        " in the container"
    )
    restore = Restore(archive, Exec(), media_faults={"swap": lost, "putback": lost})
    message, partial = failure(restore)
    assert partial["media_live"] == "unknown"
    assert partial["database_load"] == "not started"
    assert partial["media_put_back"].startswith("FAILED: lost the Docker engine")
    assert "which media are live is not known" in message
    assert "the database is as it was (the load did not start)" in message


def test_f3_an_error_not_ours_after_the_swap_still_carries_the_token(archive, monkeypatch):
    # What escaped before: a transport error straight out of the SDK.
    def swap_in(session, archive, work, fail_at=None):
        session.media("prepare", work)
        raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)")

    monkeypatch.setattr(archive_restore, "swap_in", swap_in)
    message, partial = failure(Restore(archive, Exec()))
    assert "ReadTimeout: Read timed out" in message
    assert partial["media_live"] == "previous"
    assert partial["media_put_back"] == "previous media moved back"


def test_f3_a_fault_of_our_own_after_the_commit_still_carries_the_token(archive, monkeypatch):
    # A report without its counts: a KeyError, out of our own code.
    monkeypatch.setattr(Restore, "load", lambda *args, **kwargs: {"objects": 1})
    message, partial = failure(Restore(archive, Exec()))
    assert "KeyError: 'counts'" in message
    assert partial["database_load"] == "committed"
    assert partial["media_live"] == "archive"
    assert "the database holds the archive's data" in message


def test_f3_the_injected_failure_after_the_commit_says_what_is_live(archive, monkeypatch):
    done = report(objects=1, counts={"app.thing": 1})
    monkeypatch.setattr(archive_restore, "injected_fault", lambda stages: "after_commit")
    message, partial = failure(Restore(archive, Exec(frames=[(None, done)])))
    assert "injected failure after commit" in message
    assert (partial["database_load"], partial["media_live"]) == ("committed", "archive")


def test_f3_a_load_that_ended_with_exit_0_without_its_report_committed(archive):
    restore = Restore(archive, Exec(frames=[(None, b"no report\n")], rc=0))
    message, partial = failure(restore)
    assert partial["database_load"] == "committed"
    assert partial["media_live"] == "archive"  # left with the database they belong to
    assert "putback" not in restore.media_done
    assert "the load ended with exit 0, so it committed" in message


def test_f3_a_load_that_reported_its_failure_rolled_back_and_the_media_went_back(archive):
    said = report(error="count of app.thing is 0, expected 1", stage="count_check")
    restore = Restore(archive, Exec(frames=[(None, said)], rc=1))
    message, partial = failure(restore)
    assert partial["database_load"] == "rolled back"
    assert partial["stage"] == "database_count_check"
    assert partial["media_live"] == "previous"
    assert "the database is as it was (the load is one transaction and rolled back)" in message


FIXTURE_BYTES = b'[{"model": "app.thing", "pk": 1, "fields": {}}]\n'


@pytest.fixture
def commands(monkeypatch):
    """The commands the fake engine is asked to run, as they come."""
    from .._platform.fake_docker import FakeAPI

    seen = []
    create = FakeAPI.exec_create

    def recorded(self, container, cmd, **kwargs):
        seen.append(cmd)
        return create(self, container, cmd, **kwargs)

    monkeypatch.setattr(FakeAPI, "exec_create", recorded)
    return seen


def test_the_load_is_sent_the_fixture_or_told_the_sha256_of_its_copy(
    archive, engine_address, commands
):
    """Deployment.load's two modes: over a local socket the request has no
    path (the fixture comes on the load's standard input); over TLS it names
    the copy in a private directory, and the sha256 of the bytes sent there,
    which the load checks its copy against."""
    restore = Restore(archive, Exec(frames=[(None, report(objects=1, counts={"app.thing": 1}))]))
    restore.verify()
    restore.load(archive, METADATA)
    (argv,) = [cmd for cmd in commands if LOAD_PROGRAM in cmd]
    (request,) = [json.loads(word) for word in argv if word.startswith("{")]
    fixture = request["fixture"]
    assert fixture["size"] == len(FIXTURE_BYTES)
    if engine_address.startswith("https"):
        assert argv[:2] == ["sh", "-c"]  # the load's shell removes the private directory
        assert fixture["path"].startswith(argv[4] + "/")
        assert fixture["path"].endswith("/" + FIXTURE)
        assert fixture["sent_sha256"] == hashlib.sha256(FIXTURE_BYTES).hexdigest()
    else:
        assert fixture["path"] is None
        assert fixture["sent_sha256"] is None


def test_a_fixture_other_than_metadata_lists_over_tls_never_reaches_a_load(
    archive, engine_address, commands
):
    """Over TLS the copy's sha256 is compared with metadata's on the host: an
    archive changed after its verification never reaches a load. On a local
    socket the fixture goes on the load's input, and the load compares it
    before it commits (tests/integration/test_load.py)."""
    listed = {**METADATA, "members": {FIXTURE: {"sha256": "0" * 64}}}
    restore = Restore(archive, Exec(frames=[(None, report(objects=1, counts={"app.thing": 1}))]))
    restore.verify()
    if not engine_address.startswith("https"):
        restore.load(archive, listed)  # the canned load reports success
        assert [cmd for cmd in commands if LOAD_PROGRAM in cmd]
        return
    with pytest.raises(LoadError, match="the archive changed after it was verified") as caught:
        restore.load(archive, listed)
    assert caught.value.outcome is None  # not started
    assert not [cmd for cmd in commands if LOAD_PROGRAM in cmd]
