"""Archives encrypted at rest (age v1) as the rest of the collection meets them:
reading with and without the key, sealing a finished archive, verification,
the listing and freshness without the key, a received copy, and the free
space preflight asks for.

Keys are made here with age.py's own helpers; no age command is needed.
"""

import hashlib
import json
import os
import random
import zipfile
from datetime import UTC, datetime
from typing import NamedTuple

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_copy import (
    CopyError,
    copy,
)
from ansible_collections.edms.backup.plugins.module_utils._commands.preflight_info import (
    Findings,
    check_archive_space,
)
from ansible_collections.edms.backup.plugins.module_utils._format import age, archive
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    FIXTURE,
    METADATA,
    PGDUMP,
    ArchiveError,
    ArchiveReader,
    ArchiveWriter,
    KeyProblem,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    describe_archive,
    list_archives,
    read_status,
    record_status,
    sealed_entry,
    status_path,
    verification_entry,
)
from ansible_collections.edms.backup.plugins.module_utils._format.freshness import data_size
from ansible_collections.edms.backup.plugins.module_utils._format.verification import (
    verify_pinned,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256

from .._commands.test_archive_copy import present as copy_params
from .._commands.test_archive_copy import receive
from .test_archive import (
    FILE1,
    FILE2,
    NAME,
    counts_of,
    fixture_bytes,
    metadata_for,
    objects,
    write_archive,
)

NOW = datetime(2026, 1, 2, 8, 0, 0, tzinfo=UTC)
# More than two of age's 64 KiB chunks, and incompressible: the plaintext
# spans several chunks and the archive's ratio checks stay quiet.
BIG = random.Random(7).randbytes(150_000)
MEDIA = {FILE1: BIG, FILE2: b"two" * 100}


class Key(NamedTuple):
    identity: object
    text: str  # AGE-SECRET-KEY-1...
    recipient: str  # age1...
    raw: bytes


def new_key():
    identity = age.X25519PrivateKey.generate()
    recipient = age.recipient_of(identity)
    return Key(identity, age.identity_text(identity), recipient, age.parse_recipient(recipient))


@pytest.fixture(autouse=True)
def no_key_between_tests():
    """The module-level key is set by some tests: none before or after any."""
    archive.use_decryption_key(None)
    yield
    archive.use_decryption_key(None)


@pytest.fixture
def key():
    return new_key()


@pytest.fixture
def other_key():
    return new_key()


def encrypt_file(plain, target, *recipients):
    with open(plain, "rb") as source, open(target, "wb") as sink:
        age.encrypt(source, sink, [age.parse_recipient(r) for r in recipients])
    return str(target)


@pytest.fixture
def plain(tmp_path):
    """A plain archive that passes every check of the verification."""
    directory = tmp_path / "plain"
    directory.mkdir()
    return write_archive(directory, media=MEDIA)


@pytest.fixture
def sealed(tmp_path, plain, key):
    """The plain archive encrypted to ``key``, under its own name in backups/."""
    directory = tmp_path / "backups"
    directory.mkdir()
    return encrypt_file(plain, directory / NAME, key.recipient)


def zip_metadata(path):
    with zipfile.ZipFile(path) as plain_zip:
        return json.loads(plain_zip.read(METADATA))


def contents(reader):
    """{name: bytes} of every file member an ArchiveReader holds."""
    found = {}
    for member in reader.members():
        if member.kind == "file":
            with reader.open_member(member.name) as stream:
                found[member.name] = stream.read()
    return found


def data_bytes_of(metadata):
    return sum(
        info["size"] for name, info in metadata["members"].items() if name not in (METADATA, PGDUMP)
    )


# ---- 1. reading an encrypted archive: the key given, a wrong one, none ----


def test_an_encrypted_archive_without_a_key_is_a_key_problem_naming_it(sealed):
    assert archive.has_decryption_key() is False
    with pytest.raises(KeyProblem) as failure:
        ArchiveReader.open(sealed)
    assert sealed in str(failure.value)
    assert "no decryption key" in str(failure.value)


def test_an_encrypted_archive_with_a_wrong_key_is_a_key_problem(sealed, other_key):
    archive.use_decryption_key(other_key.text)
    with pytest.raises(KeyProblem) as failure:
        ArchiveReader.open(sealed)
    assert sealed in str(failure.value)
    assert "not one it is encrypted to" in str(failure.value)
    assert other_key.text not in str(failure.value)


def test_with_the_key_the_members_read_as_the_plain_archives(sealed, plain, key):
    archive.use_decryption_key(key.text)
    assert archive.has_decryption_key() is True
    with ArchiveReader.open(plain) as reader:
        plain_members, plain_contents = reader.members(), contents(reader)
    with ArchiveReader.open(sealed) as reader:
        assert reader.encrypted is True
        assert reader.members() == plain_members
        assert contents(reader) == plain_contents
    assert plain_contents["media/" + FILE1] == BIG


def test_a_key_file_with_comments_and_another_key_opens_the_archive(sealed, key, other_key):
    text = f"# created: today\n{other_key.text}\n\n{key.text}\n"
    archive.use_decryption_key(text)
    with ArchiveReader.open(sealed) as reader:
        assert contents(reader)[FIXTURE] == fixture_bytes(objects())


def secret_typo(text):
    middle = len(text) // 2
    return text[:middle] + ("Q" if text[middle] != "Q" else "P") + text[middle + 1 :]


@pytest.mark.parametrize(
    "make",
    [
        lambda key: "hunter2 is my passphrase",
        lambda key: secret_typo(key.text),
        lambda key: key.text[:-3],
        lambda key: key.recipient,
        lambda key: "# a comment only\n",
    ],
    ids=["words", "one-char-changed", "cut", "a-recipient", "comment-only"],
)
def test_a_key_that_is_not_one_is_refused_without_quoting_it(key, make):
    text = make(key)
    with pytest.raises(ArchiveError) as failure:
        archive.use_decryption_key(text)
    message = str(failure.value)
    for line in filter(None, (part.strip() for part in text.splitlines())):
        assert line not in message
        assert line.lower() not in message
    assert archive.has_decryption_key() is False


# ---- 2. seal: a finished plain archive encrypted into place ----


def write_partial(directory):
    """A finished plain archive left at its partial name, as archive_create
    leaves it before sealing."""
    objs = objects()
    writer = ArchiveWriter(str(directory), NAME)
    writer.add_stream(FIXTURE, fixture_bytes(objs))
    for name, data in MEDIA.items():
        writer.add_stream("media/" + name, data)
    return writer.finish(metadata_for(objs), place=False)


def sealed_partial(directory):
    return os.path.join(str(directory), f".{NAME}.sealed.partial")


def test_seal_puts_the_encrypted_archive_in_place_and_removes_the_plain_one(tmp_path, key):
    partial = write_partial(tmp_path)
    assert os.path.basename(partial).endswith(".partial")
    with open(partial, "rb") as handle:
        plain_bytes = handle.read()
    final = str(tmp_path / NAME)
    digest = archive.seal(partial, final, [key.raw])
    with open(final, "rb") as handle:
        written = handle.read()
    assert written.startswith(age.MAGIC)
    assert plain_bytes not in written
    assert BIG[:64] not in written
    with age.open_decrypted(final, identities=[key.identity]) as reader:
        assert reader.read() == plain_bytes
    assert os.stat(final).st_mode & 0o777 == 0o600
    assert digest == hashlib.sha256(written).hexdigest()
    assert not os.path.exists(partial)
    assert not os.path.exists(sealed_partial(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [NAME]


def test_seal_to_two_recipients_opens_with_either(tmp_path, key, other_key):
    partial = write_partial(tmp_path)
    with open(partial, "rb") as handle:
        plain_bytes = handle.read()
    final = str(tmp_path / NAME)
    archive.seal(partial, final, [key.raw, other_key.raw])
    for identity in (key.identity, other_key.identity):
        with age.open_decrypted(final, identities=[identity]) as reader:
            assert reader.read() == plain_bytes


def test_seal_never_writes_over_an_archive_that_appeared(tmp_path, key):
    partial = write_partial(tmp_path)
    final = tmp_path / NAME
    final.write_bytes(b"an archive someone else put here")
    with pytest.raises(ArchiveError) as failure:
        archive.seal(partial, str(final), [key.raw])
    assert "appeared" in str(failure.value)
    assert str(final) in str(failure.value)
    assert final.read_bytes() == b"an archive someone else put here"
    assert not os.path.exists(partial)
    assert not os.path.exists(sealed_partial(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [NAME]


# ---- 3. verification ----


def test_verify_pinned_without_a_key_names_the_archive_not_the_pin(sealed):
    with pytest.raises(KeyProblem) as failure:
        verify_pinned(sealed)
    message = str(failure.value)
    assert sealed in message
    assert "no decryption key" in message
    assert "/proc/self/fd" not in message


def test_verify_pinned_with_a_wrong_key_names_the_archive_not_the_pin(sealed, other_key):
    archive.use_decryption_key(other_key.text)
    with pytest.raises(KeyProblem) as failure:
        verify_pinned(sealed)
    message = str(failure.value)
    assert sealed in message
    assert "not one it is encrypted to" in message
    assert "/proc/self/fd" not in message


def test_verify_pinned_with_the_key_verifies_the_plaintext(sealed, plain, key):
    archive.use_decryption_key(key.text)
    result, _source = verify_pinned(sealed)
    assert result["ok"] is True, result["problems"]
    assert result["encrypted"] is True
    assert result["archive"] == sealed
    plain_result, _plain_source = verify_pinned(plain)
    assert plain_result["ok"] is True
    assert plain_result["encrypted"] is False
    assert [c["status"] for c in result["checks"]] == [c["status"] for c in plain_result["checks"]]


# ---- 4. key_problem_for ----


def test_key_problem_for_no_recipients_is_none(key):
    assert archive.key_problem_for([]) is None
    archive.use_decryption_key(key.text)
    assert archive.key_problem_for([]) is None


def test_key_problem_for_without_a_key(key):
    problem = archive.key_problem_for([key.recipient])
    assert problem is not None
    assert "no decryption key" in problem


@pytest.mark.parametrize("case", [str.lower, str.upper], ids=["lower", "upper"])
def test_key_problem_for_a_key_of_one_recipient_is_none(key, other_key, case):
    archive.use_decryption_key(key.text)
    assert archive.key_problem_for([case(key.recipient)]) is None
    assert archive.key_problem_for([case(other_key.recipient), case(key.recipient)]) is None


def test_key_problem_for_a_key_of_none_names_the_recipients_not_the_key(key, other_key):
    third = new_key()
    archive.use_decryption_key(key.text)
    problem = archive.key_problem_for([other_key.recipient, third.recipient.upper()])
    assert problem is not None
    assert "opens none" in problem
    assert other_key.recipient in problem
    assert third.recipient in problem
    assert key.text not in problem
    assert key.text.lower() not in problem
    assert key.recipient not in problem


@pytest.mark.parametrize("with_key", [False, True])
def test_key_problem_for_a_malformed_recipient_is_its_error(key, with_key):
    if with_key:
        archive.use_decryption_key(key.text)
    bad = "age1notarecipient"
    with pytest.raises(age.AgeError) as expected:
        age.parse_recipient(bad)
    problem = archive.key_problem_for([key.recipient, bad])
    assert problem == str(expected.value)
    assert "is not an age recipient" in problem


# ---- 5. the listing without the key ----


def describe_sealed(path, recipient):
    record_status(path, "encryption", sealed_entry(zip_metadata_of_sealed(path), [recipient]))


def zip_metadata_of_sealed(path):
    """metadata.json of the plain archive the sealed one in backups/ was made of."""
    plain = os.path.join(os.path.dirname(os.path.dirname(path)), "plain", NAME)
    return zip_metadata(plain)


def test_an_encrypted_archive_is_listed_from_its_status_file_without_the_key(sealed, key):
    describe_sealed(sealed, key.recipient)
    entry = describe_archive(sealed, "UTC")
    assert archive.has_decryption_key() is False
    assert entry["encrypted"] is True
    assert entry["unreadable"] is None
    assert entry["metadata"] is True
    assert entry["counts"] == counts_of(objects())
    assert entry["label"] == "manual"
    assert entry["created_at"] == "2026-01-01T13:00:29.512345Z"
    assert entry["size"] == os.path.getsize(sealed)
    listing = list_archives(os.path.dirname(sealed), "UTC")
    assert [e["name"] for e in listing["archives"]] == [NAME]
    assert listing["archives"][0]["encrypted"] is True
    assert listing["archives"][0]["counts"] == counts_of(objects())


def test_counts_come_from_the_summary_recorded(sealed, key):
    entry = sealed_entry(zip_metadata_of_sealed(sealed), [key.recipient])
    entry["metadata"]["counts"] = {"users.user": 41}
    entry["metadata"]["label"] = "from-the-summary"
    record_status(sealed, "encryption", entry)
    listed = describe_archive(sealed, "UTC")
    assert listed["counts"] == {"users.user": 41}
    assert listed["label"] == "from-the-summary"


def test_an_encrypted_archive_verified_is_the_newest_verified(sealed, key):
    describe_sealed(sealed, key.recipient)
    record_status(sealed, "verification", verification_entry({"ok": True, "problems": []}))
    listing = list_archives(os.path.dirname(sealed), "UTC")
    assert listing["newest_verified"]["name"] == NAME
    assert listing["newest_verified"]["verification"]["state"] == "passed"


def test_an_encrypted_archive_without_a_status_file_is_unreadable(sealed):
    assert not os.path.exists(status_path(sealed))
    entry = describe_archive(sealed, "UTC")
    assert entry["encrypted"] is True
    assert entry["unreadable"]
    assert "encrypted" in entry["unreadable"]
    assert entry["verification"]["state"] == "unreadable"
    assert entry["counts"] == {}
    listing = list_archives(os.path.dirname(sealed), "UTC")
    assert listing["archives"][0]["unreadable"] == entry["unreadable"]
    assert listing["newest_verified"] is None


def test_an_encrypted_archive_that_changed_since_its_summary_is_unreadable(sealed, key):
    describe_sealed(sealed, key.recipient)
    assert describe_archive(sealed, "UTC")["unreadable"] is None
    info = os.stat(sealed)
    with open(sealed, "ab") as handle:
        handle.write(b"\0")
    os.utime(sealed, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    assert read_status(sealed)["encryption"]["stale"] is True
    entry = describe_archive(sealed, "UTC")
    assert entry["encrypted"] is True
    assert entry["unreadable"]
    assert "encrypted" in entry["unreadable"]
    assert entry["counts"] == {}


def test_with_the_key_the_listing_reads_the_archive_itself(sealed, key):
    archive.use_decryption_key(key.text)
    entry = describe_archive(sealed, "UTC")
    assert entry["encrypted"] is True
    assert entry["unreadable"] is None
    assert entry["counts"] == counts_of(objects())


def test_sealed_entry_keeps_a_summary_without_member_names():
    metadata = metadata_for(
        objects(),
        members={
            FIXTURE: {"size": 10, "sha256": "a" * 64},
            "media/" + FILE1: {"size": 5, "sha256": "b" * 64},
            "media/" + FILE2: {"size": 7, "sha256": "c" * 64},
            METADATA: {"size": 1000, "sha256": "d" * 64},
            PGDUMP: {"size": 7000, "sha256": "e" * 64},
        },
    )
    entry = sealed_entry(metadata, ["age1recipient"])
    summary = entry["metadata"]
    assert entry["format"] == "age"
    assert entry["recipients"] == ["age1recipient"]
    assert "members" not in summary
    assert FILE1 not in json.dumps(entry)
    assert summary["data_bytes"] == 22
    assert summary["counts"] == metadata["counts"]
    assert summary["label"] == "manual"
    assert "recipients" not in sealed_entry(metadata)


def test_sealed_entry_of_a_real_archive_counts_what_data_size_counts(plain):
    metadata = zip_metadata(plain)
    summary = sealed_entry(metadata)["metadata"]
    assert summary["data_bytes"] == data_size(plain)
    assert summary["data_bytes"] == len(fixture_bytes(objects())) + len(BIG) + 300


# ---- 6. freshness ----


def test_data_size_without_the_key_is_the_one_recorded(sealed, key):
    assert data_size(sealed) is None  # nothing recorded: unknown
    entry = sealed_entry(zip_metadata_of_sealed(sealed), [key.recipient])
    recorded = entry["metadata"]["data_bytes"]
    record_status(sealed, "encryption", entry)
    assert data_size(sealed) == recorded
    entry["metadata"]["data_bytes"] = 12345
    record_status(sealed, "encryption", entry)
    assert data_size(sealed) == 12345


def test_data_size_with_the_key_is_read_from_the_zip(sealed, plain, key):
    entry = sealed_entry(zip_metadata_of_sealed(sealed), [key.recipient])
    entry["metadata"]["data_bytes"] = 12345
    record_status(sealed, "encryption", entry)
    archive.use_decryption_key(key.text)
    assert data_size(sealed) == data_size(plain)
    assert data_size(sealed) == data_bytes_of(zip_metadata(plain))


def test_data_size_of_an_archive_changed_since_its_summary_is_unknown(sealed, key):
    describe_sealed(sealed, key.recipient)
    info = os.stat(sealed)
    with open(sealed, "ab") as handle:
        handle.write(b"\0")
    os.utime(sealed, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    assert data_size(sealed) is None


# ---- 7. a received copy of an encrypted archive, at a destination without the key ----


@pytest.fixture
def destination(tmp_path):
    directory = tmp_path / "destination"
    directory.mkdir(mode=0o700)
    return str(directory)


def test_a_received_encrypted_copy_is_installed_by_its_sha256(destination, sealed):
    partial = receive(destination, sealed)
    result = copy(copy_params(destination, sealed), now=NOW)
    assert (result["present"], result["copied"], result["changed"]) == (True, True, True)
    path = os.path.join(destination, NAME)
    assert file_sha256(path) == file_sha256(sealed)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert not os.path.exists(partial)
    verification = read_status(path)["verification"]
    assert verification["ok"] is True
    assert verification["encrypted"] is True
    assert "encrypted" in verification["contents"]
    assert verification["sha256"] == file_sha256(sealed)


@pytest.mark.parametrize("brought", [False, True], ids=["copy", "brought-back"])
def test_a_received_encrypted_copy_with_the_key_is_verified_in_full_and_installed(
    destination, sealed, key, brought
):
    archive.use_decryption_key(key.text)
    partial = receive(destination, sealed)
    result = copy(copy_params(destination, sealed, brought=brought), now=NOW)
    assert (result["present"], result["copied"], result["changed"]) == (True, True, True)
    path = os.path.join(destination, NAME)
    assert not os.path.exists(partial)
    status = read_status(path)
    assert status["verification"]["ok"] is True
    assert status["verification"]["encrypted"] is True
    assert ("brought_from" if brought else "copy_of") in status


def test_an_encrypted_copy_brought_back_without_the_key_is_refused_and_removed(destination, sealed):
    partial = receive(destination, sealed)
    with pytest.raises(CopyError) as failure:
        copy(copy_params(destination, sealed, brought=True), now=NOW)
    assert "no decryption key" in str(failure.value)
    assert "removed" in str(failure.value)
    assert not os.path.exists(partial)
    assert os.listdir(destination) == []


def test_a_received_encrypted_copy_with_other_bytes_is_refused(destination, sealed):
    with open(sealed, "rb") as handle:
        data = bytearray(handle.read())
    data[-100] ^= 0xFF
    partial = receive(destination, sealed, bytes(data))
    with pytest.raises(CopyError, match="not the source's"):
        copy(copy_params(destination, sealed), now=NOW)
    assert not os.path.exists(partial)
    assert os.listdir(destination) == []


@pytest.mark.parametrize(
    ("index", "why"),
    [(0, "does not verify"), (1, "cannot be read")],
    ids=["magic-line", "first-stanza-line"],
)
def test_a_received_copy_with_a_garbage_age_header_is_refused_and_removed(
    destination, sealed, index, why
):
    with open(sealed, "rb") as handle:
        data = handle.read()
    lines = data.split(b"\n")
    lines[index] = b"garbage " * 3
    damaged = b"\n".join(lines)
    partial = receive(destination, sealed, damaged)
    # Its sha256 is the one the source is said to have: only the header refuses it.
    params = copy_params(destination, sealed, sha256=hashlib.sha256(damaged).hexdigest())
    with pytest.raises(CopyError) as failure:
        copy(params, now=NOW)
    assert why in str(failure.value)
    assert "removed" in str(failure.value)
    assert not os.path.exists(partial)
    assert os.listdir(destination) == []


# ---- 8. preflight: room for the plain archive and its encryption ----


@pytest.mark.parametrize(
    ("encrypted", "needed", "words"),
    [(True, 2500 << 20, "2.5 times"), (False, 1500 << 20, "1.5 times"), (None, 1500 << 20, "1.5")],
)
def test_archive_space_asks_more_room_before_an_encrypted_backup(
    tmp_path, encrypted, needed, words
):
    newest = {"size": 1000 << 20}
    if encrypted is not None:
        newest["encrypted"] = encrypted
    findings = Findings()
    facts = check_archive_space(
        {"archive_dir": str(tmp_path), "min_free_bytes": 0},
        {"newest_verified": newest},
        findings,
    )
    assert facts["needed_bytes"] == needed
    assert facts["newest_size"] == 1000 << 20
    [finding] = findings.items
    assert finding["check"] == "archive_space"
    assert words in finding["message"]
    assert ("(encrypted)" in finding["message"]) is bool(encrypted)


def test_archive_space_minimum_still_wins_over_an_encrypted_margin(tmp_path):
    findings = Findings()
    facts = check_archive_space(
        {"archive_dir": str(tmp_path), "min_free_bytes": 10_000},
        {"newest_verified": {"size": 1000, "encrypted": True}},
        findings,
    )
    assert facts["needed_bytes"] == 10_000
    assert "preflight_min_free_bytes" in findings.items[0]["message"]
