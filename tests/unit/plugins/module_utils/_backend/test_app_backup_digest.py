"""digest(): what a backup is, on the host and in the container alike."""

import os

from ansible_collections.edms.backup.plugins.module_utils._backend.app_backup import (
    digest,
    listing,
)


def test_a_file_is_its_size_and_sha256(tmp_path):
    path = tmp_path / "20260101_130029.zip"
    path.write_bytes(b"abc")
    assert digest(str(path)) == {
        "kind": "file",
        "size": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }


def make_tree(root):
    (root / "media" / "documents").mkdir(parents=True)
    (root / "database_backup.json").write_bytes(b"[]")
    (root / "metadata.json").write_bytes(b"{}")
    (root / "media" / "documents" / "a.bin").write_bytes(b"x" * 10)


def test_a_directory_digest_is_the_same_wherever_it_lies_and_changes_with_any_byte(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    make_tree(one)
    make_tree(two)
    first = digest(str(one))
    assert first["kind"] == "directory"
    assert (first["files"], first["size"]) == (3, 14)
    assert digest(str(two)) == first
    (two / "media" / "documents" / "a.bin").write_bytes(b"x" * 9 + b"y")
    assert digest(str(two))["sha256"] != first["sha256"]
    (two / "media" / "documents" / "a.bin").write_bytes(b"x" * 10)
    os.rename(two / "media" / "documents" / "a.bin", two / "media" / "documents" / "b.bin")
    assert digest(str(two))["sha256"] != first["sha256"]  # a name is part of it


def test_a_link_is_never_followed(tmp_path):
    target = tmp_path / "secret"
    target.write_bytes(b"not a backup")
    (tmp_path / "backup.zip").symlink_to(target)
    assert "error" in digest(str(tmp_path / "backup.zip"))
    tree = tmp_path / "tree"
    make_tree(tree)
    (tree / "media" / "link").symlink_to(target)
    found = digest(str(tree))
    assert "link" in found["error"]


def test_a_missing_path_says_so(tmp_path):
    found = digest(str(tmp_path / "gone.zip"))
    assert found["missing"] is True
    assert "gone.zip" in found["error"]


def test_listing_names_each_entry_with_its_kind_and_not_a_missing_directory(tmp_path):
    (tmp_path / "20260101_130029.zip").write_bytes(b"zip")
    (tmp_path / "20260102_130029").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "20260101_130029.zip")
    entries = listing(str(tmp_path))
    assert {name: e["kind"] for name, e in entries.items()} == {
        "20260101_130029.zip": "file",
        "20260102_130029": "directory",
        "link": "other",
    }
    assert listing(str(tmp_path / "none")) is None
