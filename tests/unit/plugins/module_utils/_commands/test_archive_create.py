"""The backup's comparison of a new archive's counts with the previous verified one."""

import contextlib
import hashlib
import io
import json
import os
import tarfile
import unicodedata
import zipfile

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_create import (
    BackupError,
    Written,
    add_media,
    against_previous,
    create_backup,
    printable,
    verify_and_record,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    ArchiveWriter,
    pinned,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    read_status,
    status_path,
)
from ansible_collections.edms.backup.plugins.module_utils._format.verification import verify_archive
from ansible_collections.edms.backup.plugins.module_utils._platform import proof as proofs
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256

from .._format.test_archive import FILE1, FILE2, NAME, fixture_bytes, metadata_for, objects
from .._format.test_archive import write_archive as clean_archive
from .._format.test_catalogue import member_data_offset, rewrite_keeping_time, zip_with
from .test_archive_catalogue import verified, write_archive


def test_a_fall_warns_naming_models_counts_and_the_previous_archive(tmp_path):
    good = verified(write_archive(tmp_path, 1, {"documents.document": 60, "users.user": 12}))
    skipped = verified(write_archive(tmp_path, 2, {"documents.document": 1}), ok=False)
    new = verified(write_archive(tmp_path, 3, {"documents.document": 6, "users.user": 12}))
    warnings = []
    result = against_previous(str(tmp_path), os.path.basename(new), "UTC", 0.5, warnings.append)
    assert result["count_compared_with"] == os.path.basename(good)
    assert result["count_drops"] == [
        {
            "model": "documents.document",
            "before": 60,
            "after": 6,
            "fell_by": 0.9,
            "vanished": False,
            "previous": os.path.basename(good),
        }
    ]
    assert len(warnings) == 1
    assert "documents.document 60 -> 6" in warnings[0]
    assert os.path.basename(good) in warnings[0]
    assert os.path.basename(skipped) not in warnings[0]


def test_no_fall_no_warning_and_an_empty_list(tmp_path):
    verified(write_archive(tmp_path, 1, {"documents.document": 60}))
    new = verified(write_archive(tmp_path, 2, {"documents.document": 59}))
    warnings = []
    result = against_previous(str(tmp_path), os.path.basename(new), "UTC", 0.5, warnings.append)
    assert result["count_drops"] == []
    assert warnings == []


def test_what_cannot_be_compared_is_a_warning_not_a_failure(tmp_path):
    warnings = []
    result = against_previous(str(tmp_path / "gone"), "edms_x.zip", "UTC", 0.5, warnings.append)
    assert result == {"count_drops": [], "count_compared_with": None}
    assert "not compared" in warnings[0]


def test_a_bad_threshold_fails_before_anything_is_read():
    params = {"display_timezone": "UTC", "count_drop_threshold": 2.0}
    with pytest.raises(BackupError, match=r"count_drop_threshold 2\.0 is not between 0") as caught:
        create_backup(params)
    assert caught.value.partial["count_drops"] == []


def test_f1_the_backup_records_the_sha256_of_the_archive_it_wrote(tmp_path):
    path = write_archive(tmp_path, 1, {"users.user": 1})
    result = {"sha256": file_sha256(path)}
    written = Written(path, {"required_models": [], "recreated_models": []}, {}, {}, {})
    with contextlib.suppress(BackupError):  # what it found is beside the point here
        verify_and_record(result, written, path)
    assert read_status(path)["verification"]["sha256"] == result["sha256"]


def test_a_backup_that_verifies_gives_the_proof_of_its_bytes(tmp_path, monkeypatch):
    """What a rollback to it in the same run shows instead of verifying again:
    only for bytes that passed, through the one descriptor hashed and verified."""
    monkeypatch.setattr(proofs, "key_directory", lambda: str(tmp_path / "key"))
    (tmp_path / "good").mkdir()
    path = clean_archive(tmp_path / "good")
    metadata = json.loads(zipfile.ZipFile(path).read("metadata.json"))
    copy, sha256, why = proofs.private_copy(pinned(path))
    assert why is None
    result = {"sha256": sha256}
    verify_and_record(result, Written(path, metadata, {}, {}, {}), copy, proof=True)
    assert result["verification"]["ok"], result["verification"]["problems"]
    assert copy not in json.dumps(result["verification"])  # named by its path
    assert proofs.holds(result["proof"], result["sha256"])
    # Read through the file itself (no copy could be made): no proof, and why.
    result = {"sha256": sha256}
    written = Written(path, metadata, {}, {}, {})
    verify_and_record(result, written, path, proof=True, why_no_proof="no room")
    assert result["proof"] is None
    assert result["proof_not_made"] == "no room"
    # None asked for: none made, nothing said.
    result = {"sha256": sha256}
    verify_and_record(result, written, copy)
    assert "proof" not in result
    assert "proof_not_made" not in result
    # One that does not verify: no proof, the backup fails.
    bad = write_archive(tmp_path, 1, {"users.user": 1})
    result = {"sha256": file_sha256(bad)}
    written = Written(bad, {"required_models": [], "recreated_models": []}, {}, {}, {})
    with pytest.raises(BackupError, match="does not verify"):
        verify_and_record(result, written, bad)
    assert "proof" not in result


def test_f6_the_comparison_of_a_new_archive_runs_past_unreadable_ones(tmp_path):
    good = verified(write_archive(tmp_path, 1, {"documents.document": 60}))
    rotten = verified(write_archive(tmp_path, 2, {"documents.document": 60}))
    start = member_data_offset(rotten, "metadata.json")
    rewrite_keeping_time(rotten, lambda data: data.__setitem__(start, 0xFF))
    with open(status_path(good), "a", encoding="utf-8"):
        pass
    zip_with(tmp_path, "edms_20260102T200000Z.zip", {"metadata.json": "[" * 100_000})
    new = verified(write_archive(tmp_path, 3, {"documents.document": 6}))
    warnings = []
    result = against_previous(str(tmp_path), os.path.basename(new), "UTC", 0.5, warnings.append)
    assert result["count_compared_with"] == os.path.basename(good)


# The media as the backend's container gives them: tar streams, read in stream mode.


def tar_of(entries, tar_format=tarfile.GNU_FORMAT):
    """A tar stream of (name, data) regular files and (name, tarfile.LNKTYPE,
    target) hard links, names given as the container's tar holds them."""
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer,
        mode="w",
        format=tar_format,
        encoding="utf-8",
        errors="surrogateescape",
    ) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry[0])
            if len(entry) == 3:
                info.type, info.linkname = entry[1], entry[2]
                tar.addfile(info)
            else:
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return buffer.getvalue()


class MediaContainer:
    """read_tree of the backend's container: the media root's stream, in
    chunks. Any other read fails the test: the media are read once, and a
    path the application can swap is never read again."""

    def __init__(self, tree):
        self.tree = tree
        self.read = []

    def read_tree(self, container_id, path):
        self.read.append(path)
        assert (container_id, path) == ("backend", "/app/media"), f"{path} read again"
        assert len(self.read) == 1, "the media root read twice"
        return iter([self.tree[i : i + 700] for i in range(0, len(self.tree), 700)]), {}


def back_up_media(tmp_path, container):
    """add_media into a real archive with the fixture of test_archive; the
    archive verified, with what add_media returned and warned."""
    warnings = []
    with ArchiveWriter(str(tmp_path), NAME) as writer:
        writer.add_stream("database_backup.json", fixture_bytes(objects()))
        files, size, skipped = add_media(writer, container, "backend", "/app/media/", warnings)
        path = writer.finish(metadata_for(objects()))
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every member's CRC
        media = {n: archive.read(n) for n in archive.namelist() if n.startswith("media/")}
        metadata = json.loads(archive.read("metadata.json"))
    return {
        "files": files,
        "bytes": size,
        "skipped": skipped,
        "warnings": warnings,
        "media": media,
        "members": metadata["members"],
        "verification": verify_archive(path),
    }


def test_f12_hard_linked_media_are_copied_within_the_archive(tmp_path):
    # FILE2 and a copy are hard links of FILE1: the stream holds link entries
    # for them, without data; they get FILE1's bytes as written to the archive.
    copy = "documents/2025/01/copy-of-DOC-000001.bin"
    data = bytes(range(256)) * 40
    tree = tar_of(
        [
            ("media/" + FILE1, data),
            ("media/" + FILE2, tarfile.LNKTYPE, "media/" + FILE1),
            ("media/" + copy, tarfile.LNKTYPE, "media/" + FILE1),
            ("media/documents/link.bin", tarfile.SYMTYPE, "/etc/passwd"),
        ]
    )
    container = MediaContainer(tree)
    backed_up = back_up_media(tmp_path, container)

    assert backed_up["media"] == {
        "media/" + FILE1: data,
        "media/" + FILE2: data,
        "media/" + copy: data,
    }
    assert (backed_up["files"], backed_up["bytes"]) == (3, 3 * len(data))
    expected = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    for name in backed_up["media"]:
        assert backed_up["members"][name] == expected
    # A symbolic link can point anywhere: left out, as before.
    assert backed_up["skipped"] == ["documents/link.bin"]
    assert backed_up["warnings"] == []
    assert backed_up["verification"]["ok"], backed_up["verification"]["problems"]
    assert container.read == ["/app/media"]


def test_f12_the_media_are_read_once_and_a_link_path_never_again(tmp_path):
    # What the container would give for a link's path read on its own, had
    # the application swapped it meanwhile: never asked for, never archived.
    class SwappingContainer(MediaContainer):
        def read_tree(self, container_id, path):
            if path != "/app/media":
                self.read.append(path)
                return iter([tar_of([(path.rsplit("/", 1)[-1], b"root:x:0:0")])]), {}
            return super().read_tree(container_id, path)

    tree = tar_of(
        [
            ("media/" + FILE1, b"one" * 100),
            ("media/" + FILE2, tarfile.LNKTYPE, "media/" + FILE1),
        ]
    )
    container = SwappingContainer(tree)
    backed_up = back_up_media(tmp_path, container)

    assert container.read == ["/app/media"]
    assert backed_up["media"] == {"media/" + FILE1: b"one" * 100, "media/" + FILE2: b"one" * 100}
    assert backed_up["verification"]["ok"], backed_up["verification"]["problems"]


def test_f12_a_hard_link_whose_file_was_left_out_is_left_out_and_named(tmp_path):
    odd = b"documents/caf\xe9.pdf".decode("utf-8", "surrogateescape")
    nfd = unicodedata.normalize("NFD", "documents/café.pdf")
    tree = tar_of(
        [
            ("media/" + FILE1, b"one" * 100),
            ("media/documents/back\\slash.pdf", b"refused"),
            ("media/" + odd, b"latin-1"),
            ("media/" + unicodedata.normalize("NFC", "documents/café.pdf"), b"nfc"),
            ("media/" + nfd, b"nfd, refused"),
            ("media/documents/link.bin", tarfile.SYMTYPE, "/etc/passwd"),
            ("media/.edms-restore-1/old.bin", b"a restore's work directory"),
            # Links to each of those, to a file later in the stream, to one
            # that is not there, to itself, and outside the media root.
            ("media/a/1.bin", tarfile.LNKTYPE, "media/documents/back\\slash.pdf"),
            ("media/a/2.bin", tarfile.LNKTYPE, "media/" + odd),
            ("media/a/3.bin", tarfile.LNKTYPE, "media/" + nfd),
            ("media/a/4.bin", tarfile.LNKTYPE, "media/documents/link.bin"),
            ("media/a/5.bin", tarfile.LNKTYPE, "media/.edms-restore-1/old.bin"),
            ("media/a/6.bin", tarfile.LNKTYPE, "media/" + FILE2),
            ("media/a/7.bin", tarfile.LNKTYPE, "media/a/gone.bin"),
            ("media/a/8.bin", tarfile.LNKTYPE, "media/a/8.bin"),
            ("media/a/9.bin", tarfile.LNKTYPE, "/etc/shadow"),
            ("media/" + FILE2, b"two" * 100),
            ("media/a/10.bin", tarfile.LNKTYPE, "media/" + FILE2),
        ]
    )
    container = MediaContainer(tree)
    backed_up = back_up_media(tmp_path, container)

    assert backed_up["media"] == {
        "media/" + FILE1: b"one" * 100,
        "media/" + unicodedata.normalize("NFC", "documents/café.pdf"): b"nfc",
        "media/" + FILE2: b"two" * 100,
        "media/a/10.bin": b"two" * 100,
    }
    links = [f"a/{number}.bin" for number in range(1, 10)]
    assert backed_up["skipped"] == [
        "documents/back\\slash.pdf",
        "documents/caf\\xe9.pdf",
        nfd,
        "documents/link.bin",
        *links,
    ]
    not_utf8, refused = backed_up["warnings"]
    assert "'documents/caf\\xe9.pdf'" in not_utf8
    for link in links:
        assert f"'{link}' is a hard link of '" in refused
    left_out = "which was not taken into the archive before it"
    assert f"'a/2.bin' is a hard link of 'documents/caf\\xe9.pdf', {left_out}" in refused
    assert f"'a/6.bin' is a hard link of '{FILE2}', {left_out}" in refused
    assert f"'a/9.bin' is a hard link of '/etc/shadow', {left_out}" in refused
    assert backed_up["verification"]["ok"], backed_up["verification"]["problems"]
    assert container.read == ["/app/media"]


@pytest.mark.parametrize("tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_f12_a_media_name_that_is_not_utf8_is_left_out_and_named(tmp_path, tar_format):
    # caf\xe9: Latin-1, not UTF-8, and a line feed; tarfile holds the byte as a lone surrogate.
    odd = b"documents/caf\xe9\n.pdf".decode("utf-8", "surrogateescape")
    # A hard link of FILE1 whose own name is not UTF-8.
    odd_link = b"documents/\xff.bin".decode("utf-8", "surrogateescape")
    tree = tar_of(
        [
            ("media/" + FILE1, b"one" * 100),
            ("media/" + odd, b"latin-1"),
            ("media/" + odd_link, tarfile.LNKTYPE, "media/" + FILE1),
            ("media/" + FILE2, b"two" * 100),
        ],
        tar_format,
    )
    backed_up = back_up_media(tmp_path, MediaContainer(tree))

    assert sorted(backed_up["media"]) == ["media/" + FILE1, "media/" + FILE2]
    assert backed_up["skipped"] == ["documents/caf\\xe9\\x0a.pdf", "documents/\\xff.bin"]
    [warning] = backed_up["warnings"]
    assert "'documents/caf\\xe9\\x0a.pdf'; 'documents/\\xff.bin'." in warning
    assert "not valid UTF-8" in warning
    assert "no row can name" in warning
    # Everything returned can be shown and serialised.
    warning.encode("utf-8")
    assert backed_up["verification"]["ok"], backed_up["verification"]["problems"]


def test_f12_a_name_the_archive_rules_refuse_is_left_out_and_the_archive_verifies(tmp_path):
    nfc = unicodedata.normalize("NFC", "documents/café.pdf")
    nfd = unicodedata.normalize("NFD", "documents/café.pdf")
    refused = [
        "documents/./dot.pdf",
        "documents//empty.pdf",
        "documents/back\\slash.pdf",
        "documents/deep/.EDMS-restore-x/a.pdf",
        nfd,  # the same path as the NFC name before it
        unicodedata.normalize("NFD", "documents/Zoë/a.pdf"),  # under the file "Zoë"
        FILE1,  # the same name twice
    ]
    tree = tar_of(
        [
            ("media/" + FILE1, b"one" * 100),
            ("media/" + nfc, b"first"),
            ("media/" + unicodedata.normalize("NFC", "documents/Zoë"), b"a file"),
            *[("media/" + name, b"refused") for name in refused],
            ("media/" + FILE2, b"two" * 100),
        ]
    )
    backed_up = back_up_media(tmp_path, MediaContainer(tree))

    assert backed_up["media"] == {
        "media/" + FILE1: b"one" * 100,
        "media/" + nfc: b"first",
        "media/" + unicodedata.normalize("NFC", "documents/Zoë"): b"a file",
        "media/" + FILE2: b"two" * 100,
    }
    assert backed_up["skipped"] == refused
    [warning] = backed_up["warnings"]
    for name in refused:
        assert f"'{name}'" in warning
    assert f"'{nfd}' names the same path as '{nfc}' once normalised to Unicode NFC" in warning
    assert f"'{FILE1}' is in the media twice" in warning
    assert "'documents/./dot.pdf' has a '.' component" in warning
    assert backed_up["verification"]["ok"], backed_up["verification"]["problems"]


def test_a_left_out_name_is_shown_with_invisible_characters_escaped():
    """A right-to-left override or a zero-width character in a name would make
    it look like another in the job's output: shown as \\uNNNN."""
    assert printable("documents/invoice\u202efdp.exe") == "documents/invoice\\u202efdp.exe"
    assert printable("a\u200bb\u2028c\u2029d") == "a\\u200bb\\u2028c\\u2029d"
    assert printable("documents/caf\u00e9 \u4e2d.pdf") == "documents/caf\u00e9 \u4e2d.pdf"
