"""The media work directory: its token, and what makes one a restore's.

The program that runs in the backend (_backend/media.py) is run here with
this Python on real directories, as the container runs it."""

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
import yaml
from ansible.module_utils._internal import _traceback
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edms.backup.plugins.module_utils._backend import media
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_create import add_media
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_rollback import (
    Rollback,
    RollbackError,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.media import (
    MediaError,
    new_token,
    work_dir,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import ArchiveWriter
from ansible_collections.edms.backup.plugins.module_utils._platform.django import backend_program
from ansible_collections.edms.backup.plugins.modules import archive_rollback, restore_finish

from ...modules.test_main import run
from .._format.test_archive import NAME, write_archive

TOKEN = "0123456789ab"
BAD_TOKENS = [
    "abc123/../..",
    "../../..",
    "0123456789ab/..",
    "0123456789AB",
    "0123456789a",
    "0123456789abc",
    " 0123456789ab",
    "0123456789ab\n",
    "01234567/9ab",
    "x" * 500,
]
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))


def media_script(request):
    proc = subprocess.run(
        [sys.executable, "-c", backend_program(media), json.dumps(request)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def tree(top):
    """Every path under top with its content: what a step must leave as it is."""
    found = []
    for directory, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(directory, name)
            relative = os.path.relpath(full, top)
            if os.path.islink(full):
                found.append(f"{relative} -> {os.readlink(full)}")
            elif os.path.isdir(full):
                found.append(relative + "/")
            else:
                with open(full, "rb") as handle:
                    found.append(f"{relative}={handle.read()!r}")
    return found


@pytest.fixture
def fresh_traceback_setting(monkeypatch):
    """Each module run here reads Ansible's traceback setting afresh (see modules/test_main.py)."""
    monkeypatch.setattr(_traceback, "_module_tracebacks_enabled_events", None)


@pytest.fixture
def storage(tmp_path):
    """tmp_path/storage/media: live media, and beside them other data."""
    root = tmp_path / "storage" / "media"
    (root / "documents").mkdir(parents=True)
    (root / "documents" / "live.pdf").write_bytes(b"live")
    (tmp_path / "storage" / "other.txt").write_bytes(b"not media")
    return root


def plant(root, name=".edms-restore-" + TOKEN, marker=None):
    """A directory named like a work directory, holding 'old' media."""
    planted = root / name
    (planted / "old" / "documents").mkdir(parents=True)
    (planted / "old" / "documents" / "live.pdf").write_bytes(b"planted")
    if marker is not None:
        (planted / media.MARKER).write_bytes(marker)
    return planted


# f4: a directory that merely has the right name


def test_f4_a_directory_named_like_a_work_directory_is_not_taken_for_a_leftover(storage):
    plant(storage)
    plant(storage, ".edms-restore-" + "f" * 12, marker=b"0" * 12)  # another token's marker
    plant(storage, ".EDMS-restore-" + TOKEN)
    answer = media_script({"action": "leftovers", "root": str(storage) + "/"})
    assert answer == {
        "leftovers": [],
        "unrecognised": [
            ".EDMS-restore-" + TOKEN,
            ".edms-restore-" + TOKEN,
            ".edms-restore-" + "f" * 12,
        ],
    }


@pytest.mark.parametrize("action", ["putback", "finish", "swap"])
def test_f4_a_planted_work_directory_is_never_put_back_swapped_or_removed(storage, action):
    planted = plant(storage)
    (planted / "new").mkdir()
    before = tree(storage.parent)
    answer = media_script({"action": action, "root": str(storage), "work": str(planted)})
    assert answer == {
        "error": f"{planted} was not made by a restore (it has no {media.MARKER} with its"
        " token); it is left as it is"
    }
    assert tree(storage.parent) == before


def test_f4_a_marker_that_is_a_link_or_a_fifo_is_no_marker(storage, tmp_path):
    (tmp_path / "token").write_bytes(TOKEN.encode())
    linked = plant(storage)
    os.symlink(tmp_path / "token", linked / media.MARKER)
    fifo = plant(storage, ".edms-restore-" + "e" * 12)
    os.mkfifo(fifo / media.MARKER)
    answer = media_script({"action": "leftovers", "root": str(storage)})
    assert answer["leftovers"] == []
    assert answer["unrecognised"] == [linked.name, fifo.name]


def test_f4_the_work_directory_a_restore_made_is_found_and_put_back(storage):
    before = tree(storage)
    work = str(storage / (".edms-restore-" + TOKEN))
    assert media_script({"action": "prepare", "root": str(storage), "work": work}) == {"work": work}
    with open(os.path.join(work, media.MARKER), "rb") as handle:
        assert handle.read() == TOKEN.encode()
    (storage / (".edms-restore-" + TOKEN) / "new" / "archive.pdf").write_bytes(b"archive")
    assert media_script({"action": "swap", "root": str(storage), "work": work}) == {
        "moved_out": 1,
        "moved_in": 1,
    }
    assert media_script({"action": "leftovers", "root": str(storage)}) == {
        "leftovers": [".edms-restore-" + TOKEN],
        "unrecognised": [],
    }
    # Prepared again, the directory is not taken over.
    again = media_script({"action": "prepare", "root": str(storage), "work": work})
    assert again == {"error": f"{work} exists already; it is left as it is"}
    assert media_script({"action": "putback", "root": str(storage), "work": work})["previous"]
    # What was live is kept until the caller finds the media right and finishes.
    assert os.path.isdir(os.path.join(work, "discarded"))
    assert media_script({"action": "finish", "root": str(storage), "work": work})["removed"]
    assert tree(storage) == before


def test_f4_a_rollback_given_the_token_of_a_planted_directory_changes_nothing(tmp_path):
    path = write_archive(tmp_path)
    name = ".edms-restore-" + TOKEN
    asked = []

    class Session(Rollback):
        def locate(self):
            asked.append("locate")

        def media(self, action, work=None, fail_at=None):
            asked.append(action)
            assert action == "leftovers"
            return {"leftovers": [], "unrecognised": [name]}

    params = {
        "archive": path,
        "token": TOKEN,
        "method": "auto",
        "media_dir_container": "/app/media",
        "archive_sha256": None,
    }
    for check_mode in (True, False):
        asked.clear()
        with pytest.raises(RollbackError) as err:
            Session(params, check_mode=check_mode).run()
        assert str(err.value).startswith(
            f"rollback to {path} not started: /app/media/{name} was not made by a restore"
        )
        assert "nothing was changed" in str(err.value)
        assert asked == ["locate", "leftovers"]


def test_f4_a_backup_leaves_out_every_path_named_like_a_work_directory(tmp_path):
    # What the backup reads from the container: a tar of the media root.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [
            ("media/a.pdf", b"a"),
            (f"media/.edms-restore-{TOKEN}/old/a.pdf", b"a work directory"),
            ("media/.EDMS-Restore-x/old/a.pdf", b"one on a case-insensitive volume"),
            ("media/documents/.edms-restore-x.pdf", b"an upload named so"),
            ("media/documents/b.pdf", b"b"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    class Containers:
        def read_tree(self, container_id, path):
            return iter([buffer.getvalue()]), {}

    with ArchiveWriter(str(tmp_path), NAME) as writer:
        files, size, skipped = add_media(writer, Containers(), "backend", "/app/media/")
        assert sorted(writer.members) == ["media/a.pdf", "media/documents/b.pdf"]
    assert (files, size) == (2, 2)
    assert skipped == ["documents/.edms-restore-x.pdf"]


# f5: the token


def test_f5_a_token_is_what_a_restore_makes_and_nothing_else():
    made = {new_token() for _number in range(200)}
    assert len(made) == 200
    for token in made:
        assert media.token_problem(token) is None
        assert work_dir("/app/media/", token) == "/app/media/.edms-restore-" + token
    for token in [*BAD_TOKENS, None, 12]:
        assert media.token_problem(token) is not None
        with pytest.raises(MediaError, match="is not a restore token: a restore token is 12 lower"):
            work_dir("/app/media", token)


@pytest.mark.parametrize("action", ["prepare", "swap", "putback", "finish"])
def test_f5_the_media_program_never_acts_outside_a_work_directory_of_the_root(
    storage, tmp_path, action
):
    # What a token of "abc123/../.." made of the work path: the storage root.
    (storage / ".edms-restore-abc123").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / media.MARKER).write_bytes(TOKEN.encode())
    (outside / "old").mkdir()
    (outside / "new").mkdir()
    os.symlink(outside, storage / (".edms-restore-" + "c" * 12))
    works = {
        str(storage / ".edms-restore-abc123" / ".." / ".."): "is not a work directory directly",
        str(storage / ".edms-restore-abc123"): "its token is not 12 lower-case hexadecimal",
        str(storage / "documents"): "is not a work directory directly",
        str(storage.parent / (".edms-restore-" + TOKEN)): "is not a work directory directly",
        str(storage / (".edms-restore-" + "c" * 12)): "is not a directory (a link or a file",
        str(storage / (".edms-restore-" + TOKEN)) + "/": "is not a work directory directly",
        "": "no work directory given",
        None: "no work directory given",
    }
    before = tree(tmp_path)
    for work, problem in works.items():
        answer = media_script({"action": action, "root": str(storage), "work": work})
        assert problem in answer["error"], (work, answer)
        assert tree(tmp_path) == before, work


@pytest.mark.usefixtures("fresh_traceback_setting")
@pytest.mark.parametrize("token", BAD_TOKENS)
@pytest.mark.parametrize("module", [archive_rollback, restore_finish])
def test_f5_the_modules_refuse_a_token_not_of_the_restore_form_before_anything(
    tmp_path, capsys, monkeypatch, module, token
):
    ran = []
    monkeypatch.setattr(AnsibleModule, "run_command", lambda *args, **kwargs: ran.append(args))
    args = {"project_dir": str(tmp_path), "token": token}
    if module is archive_rollback:
        args["archive"] = str(tmp_path / "edms_20260101T130029Z.zip")
    code, result = run(module, args, capsys)
    assert code == 1
    message = result["msg"]
    assert message.startswith(("rollback to ", "no work directory removed: "))
    assert ": token " in message
    assert "is not a restore token" in message
    assert "a restore token is 12 lower-case hexadecimal digits" in message
    assert "restore_token=" in message
    assert ran == []
    assert result.get("changed") in (None, False)
    assert result.get("execs", []) == []


def test_f5_the_awx_survey_takes_a_token_of_a_restore_token_length_or_none():
    with open(os.path.join(ROOT, "awx", "job_templates.yml")) as handle:
        templates = yaml.safe_load(handle)["edms_job_templates"]
    (question,) = [
        question
        for template in templates
        for question in template["survey"]
        if question["variable"] == "restore_token"
    ]
    assert (question["min"], question["max"]) == (0, len(new_token()))
    assert question["required"] is False
    assert "12 lower-case hexadecimal digits" in question["question_description"]


def test_hostile_a_planted_work_directory_put_back_never_costs_the_live_media(tmp_path):
    """The application can write the media root, marker included: a work
    directory it planted and a rollback given its token swap its files in,
    but what was live stays in discarded/ until the caller finds the media
    right and removes the work directory."""
    storage = tmp_path / "media"
    (storage / "documents").mkdir(parents=True)
    (storage / "documents" / "live.pdf").write_bytes(b"live")
    work = storage / (".edms-restore-" + TOKEN)
    (work / "old").mkdir(parents=True)
    (work / "restore.token").write_text(TOKEN)
    (work / "old" / "planted.pdf").write_bytes(b"planted")
    back = media_script({"action": "putback", "root": str(storage), "work": str(work)})
    assert back["previous"] is True
    assert (work / "discarded" / "documents" / "live.pdf").read_bytes() == b"live"


# f14 (hostile review): the work directory of a rollback's own copy of the media


@pytest.mark.usefixtures("fresh_traceback_setting")
@pytest.mark.parametrize("copy_token", [*BAD_TOKENS[:4], TOKEN])
def test_f14_a_rollback_refuses_a_copy_token_not_of_the_restore_form_or_its_own_token(
    tmp_path, capsys, monkeypatch, copy_token
):
    ran = []
    monkeypatch.setattr(AnsibleModule, "run_command", lambda *args, **kwargs: ran.append(args))
    args = {
        "project_dir": str(tmp_path),
        "archive": str(tmp_path / "edms_20260101T130029Z.zip"),
        "token": TOKEN,
        "copy_token": copy_token,
    }
    code, result = run(archive_rollback, args, capsys)
    assert code == 1
    assert result["msg"].startswith("rollback to ")
    if copy_token == TOKEN:
        assert "copy_token names the restore's own work directory (token)" in result["msg"]
    else:
        assert ": copy_token " in result["msg"]
        assert "is not a restore token" in result["msg"]
    assert ran == []
    assert result.get("changed") in (None, False)


def test_f14_a_rollback_given_a_copy_token_removes_that_earlier_copy_then_copies_into_it(
    monkeypatch,
):
    """A run that died during the copy left its work directory under the
    recorded copy token: the next rollback given it removes that one (never
    another) before it copies the media again, into the same name."""
    copy = "/app/media/.edms-restore-fedcba987654"
    calls = []

    class Session(Rollback):
        def media(self, action, work=None, fail_at=None):
            calls.append((action, work))
            return {"removed": True}

        def media_against(self, metadata, hashes=None):
            return ["documents/a.pdf differs"]

    def swap_in(session, path, work):
        calls.append(("swap_in", work))
        return {"moved_in": 1}

    monkeypatch.setattr(
        "ansible_collections.edms.backup.plugins.module_utils._commands.archive_rollback.swap_in",
        swap_in,
    )
    params = {"media_dir_container": "/app/media/", "copy_token": "fedcba987654"}
    session = Session(params)
    assert session.restore_media("safety.zip", {}, None, hashes={}) is False
    assert calls == [("finish", copy), ("swap_in", copy), ("finish", copy)]
    # Without a copy token: a new name, and nothing removed first.
    calls.clear()
    session = Session({"media_dir_container": "/app/media/", "copy_token": None})
    session.restore_media("safety.zip", {}, None, hashes={})
    assert [action for action, _work in calls] == ["swap_in", "finish"]
    assert calls[0][1] != copy
    assert calls[0][1].startswith("/app/media/.edms-restore-")


def test_f14_a_rollback_whose_copy_token_names_a_planted_directory_changes_nothing(tmp_path):
    """A directory planted under the copy token's name (no marker) would stop
    the copy after the database was put back: refused before anything."""
    path = write_archive(tmp_path)
    copy = "fedcba987654"
    asked = []

    class Session(Rollback):
        def locate(self):
            asked.append("locate")

        def media(self, action, work=None, fail_at=None):
            asked.append(action)
            assert action == "leftovers"
            return {"leftovers": [], "unrecognised": [".edms-restore-" + copy]}

    params = {
        "archive": path,
        "token": None,
        "copy_token": copy,
        "method": "auto",
        "media_dir_container": "/app/media",
        "archive_sha256": None,
    }
    for check_mode in (True, False):
        asked.clear()
        with pytest.raises(RollbackError) as err:
            Session(params, check_mode=check_mode).run()
        assert f"/app/media/.edms-restore-{copy}, the work directory copy_token names" in str(
            err.value
        )
        assert "nothing was changed" in str(err.value)
        assert asked == ["locate", "leftovers"]
