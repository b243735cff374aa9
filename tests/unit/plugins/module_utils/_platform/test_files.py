import hashlib
import os
import stat

import pytest
from ansible_collections.edms.backup.plugins.module_utils._platform import files as _files
from ansible_collections.edms.backup.plugins.module_utils._platform.files import (
    READ_SIZE,
    file_sha256,
    temporary_name,
    write_atomically,
)


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def hidden(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


@pytest.fixture
def fixed_random_part(monkeypatch):
    """The temporary file's random part made known, so a test can plant something there."""
    monkeypatch.setattr(_files.secrets, "token_hex", lambda nbytes: "f" * 2 * nbytes)
    return "f" * 8


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_the_text_lands_with_the_mode_and_nothing_else_is_left(tmp_path, mode):
    path = tmp_path / "index.html"
    write_atomically(str(path), "première ligne\r\nsecond\n", mode)
    assert path.read_bytes() == "première ligne\r\nsecond\n".encode()
    assert mode_of(path) == mode
    assert os.listdir(tmp_path) == ["index.html"]


def test_the_mode_is_exact_whatever_the_umask(tmp_path):
    path = tmp_path / "status.json"
    previous = os.umask(0o077)
    try:
        write_atomically(str(path), "{}", 0o644)
    finally:
        os.umask(previous)
    assert mode_of(path) == 0o644


def test_an_existing_file_is_replaced_not_rewritten(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text("old\n")
    before = os.stat(path).st_ino
    with open(path, encoding="utf-8") as reader:  # a reader holds the old file
        write_atomically(str(path), "new\n", 0o644)
        assert reader.read() == "old\n"
    assert path.read_text() == "new\n"
    assert os.stat(path).st_ino != before


def test_the_owner_is_given_when_root_and_left_to_the_writer_otherwise(tmp_path):
    # Only root may give a file away; anyone else writes it as their own.
    path = tmp_path / "index.html"
    write_atomically(str(path), "x", 0o644, owner=(1234, 5678))
    info = os.stat(path)
    expected = (1234, 5678) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    assert (info.st_uid, info.st_gid) == expected


def test_a_link_planted_at_the_final_name_is_replaced_and_its_target_untouched(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("not yours\n")
    target.chmod(0o600)
    path = tmp_path / "index.html"
    path.symlink_to(target)
    write_atomically(str(path), "page\n", 0o644)
    assert not path.is_symlink()
    assert path.read_text() == "page\n"
    assert target.read_text() == "not yours\n"
    assert mode_of(target) == 0o600


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path, fixed_random_part):
    target = tmp_path / "elsewhere"
    target.write_text("not yours\n")
    path = tmp_path / "a.zip.status.json"
    planted = temporary_name(str(path), fixed_random_part, ".partial")
    os.symlink(target, planted)
    with pytest.raises(FileExistsError):
        write_atomically(str(path), "{}", 0o600, suffix=".partial")
    assert target.read_text() == "not yours\n"
    assert os.path.islink(planted)  # not ours, so not removed
    assert not path.exists()


def test_a_file_at_the_temporary_name_is_neither_truncated_nor_removed(tmp_path, fixed_random_part):
    path = tmp_path / "index.html"
    planted = temporary_name(str(path), fixed_random_part, ".tmp")
    with open(planted, "w", encoding="utf-8") as handle:
        handle.write("someone else's\n")
    with pytest.raises(FileExistsError):
        write_atomically(str(path), "page\n", 0o644)
    with open(planted, encoding="utf-8") as handle:
        assert handle.read() == "someone else's\n"


def test_the_temporary_name_is_hidden_beside_the_file(tmp_path):
    assert temporary_name("/srv/backups/index.html", "0a1b2c3d", ".tmp") == (
        "/srv/backups/.index.html.0a1b2c3d.tmp"
    )
    assert temporary_name("index.html", "0a1b2c3d", ".partial") == ".index.html.0a1b2c3d.partial"


def test_before_replace_sees_the_complete_file_under_its_temporary_name(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text("old\n")
    seen = []

    def check(temporary):
        with open(temporary, encoding="utf-8") as handle:
            seen.append((os.path.basename(temporary), handle.read(), mode_of(temporary)))
        assert path.read_text() == "old\n"

    write_atomically(str(path), "new\n", 0o640, before_replace=check)
    [(name, text, mode)] = seen
    assert name.startswith(".compose.yaml.")
    assert name.endswith(".tmp")
    assert (text, mode) == ("new\n", 0o640)
    assert path.read_text() == "new\n"


def test_a_failed_check_leaves_the_file_as_it_was_and_no_temporary_file(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text("old\n")

    def refuse(temporary):
        raise RuntimeError("does not pass")

    with pytest.raises(RuntimeError, match="does not pass"):
        write_atomically(str(path), "new\n", 0o644, before_replace=refuse)
    assert path.read_text() == "old\n"
    assert hidden(tmp_path) == []


def test_a_failed_rename_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "index.html"
    path.mkdir()
    (path / "inside").write_text("kept\n")
    with pytest.raises(IsADirectoryError):
        write_atomically(str(path), "page\n", 0o644)
    assert hidden(tmp_path) == []
    assert (path / "inside").read_text() == "kept\n"


def test_a_missing_directory_fails_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomically(str(tmp_path / "missing" / "index.html"), "page\n", 0o644)
    assert os.listdir(tmp_path) == []


def test_file_sha256_reads_every_block(tmp_path):
    path = tmp_path / "archive.zip"
    data = os.urandom(1000) * (READ_SIZE // 1000 + 3)
    path.write_bytes(data)
    assert len(data) > READ_SIZE
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()


def test_file_sha256_of_an_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert file_sha256(str(path)) == hashlib.sha256(b"").hexdigest()
