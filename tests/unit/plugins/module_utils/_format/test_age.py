"""Tests of module_utils/_format/age.py, the age v1 format (https://age-encryption.org/v1).

Interoperability is checked against the real ``age`` and ``age-keygen`` commands
(Debian package ``age``), a declared test dependency: without them these tests
fail, they do not skip. Headers and payloads that age.py must refuse are built
here with ``cryptography`` directly, following the specification, not with the
module's own private helpers.
"""

import base64
import hashlib
import hmac
import io
import os
import random
import shutil
import subprocess
import zipfile

import pytest
from ansible_collections.edms.backup.plugins.module_utils._format import age
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SIZES = [0, 1, 65535, 65536, 65537, 131072, 300001]
SEALED = age.CHUNK + age.TAG

# A real passphrase-encrypted file: `age -p` (age 1.1.1) reads the passphrase
# from a terminal, so it was made once, by hand, and is kept here. Plaintext
# b"hi\n", passphrase "correct horse battery".
PASSPHRASE_FILE = base64.b64decode(
    "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IHNjcnlwdCByL1FFQU1qRHd1dG9tdEI5QzRJcEt3IDE4"
    "Ckxtd3NvNGwyWEk5a2Fla0hTVGE4U3VrVEF5TEJQNWhKL0FBQW5EUmpCdXMKLS0tIEpjMTdQMUJO"
    "RS9oLzRXYXIzYlZQUSsrOEQ0VjBGbFJZYmZ5d1dYdWMreVkKPt4uhJmPzUJXTJFsegi9v6Y4tKzT"
    "y7+j7Ti1PK6Q8ojL8vs="
)


# ---- the age command line ----


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"the `{name}` command is not installed: the age command line (Debian package"
            " `age`) is a declared dependency of these tests; install it (apt-get install age)",
            pytrace=False,
        )
    return path


def run(name, *args, ok=True):
    """Stdout of the command ``name``; asserts it succeeded (or, ok=False, failed)."""
    result = subprocess.run([tool(name), *args], capture_output=True, check=False)
    if ok:
        assert result.returncode == 0, f"{name} {args} failed: {result.stderr!r}"
    else:
        assert result.returncode != 0, f"{name} {args} succeeded, expected a refusal"
    return result.stdout


def keygen(directory, name):
    """(path of a fresh age-keygen identity file, its recipient)."""
    path = directory / name
    run("age-keygen", "-o", str(path))
    return path, run("age-keygen", "-y", str(path)).decode().strip()


def cli_encrypt(directory, plaintext, recipients, *extra):
    source = directory / "cli-plain"
    source.write_bytes(plaintext)
    target = directory / "cli.age"
    args = [a for r in recipients for a in ("-r", r)]
    run("age", *args, *extra, "-o", str(target), str(source))
    return target


def cli_decrypt(path, key_file, ok=True):
    return run("age", "-d", "-i", str(key_file), str(path), ok=ok)


# ---- this module ----


def plain(size, seed=0):
    return random.Random(seed).randbytes(size)


def encrypt_file(path, plaintext, recipients):
    """Encrypt with age.encrypt to ``recipients`` ("age1..."); its return value."""
    with open(path, "wb") as target:
        return age.encrypt(
            io.BytesIO(plaintext), target, [age.parse_recipient(r) for r in recipients]
        )


def identities_of(key_file):
    return age.parse_identities(key_file.read_text())


def decrypt(path, **keys):
    with age.open_decrypted(str(path), **keys) as reader:
        return reader.read()


def refusal(path, **keys):
    """The AgeError opening (and reading) ``path`` raises."""
    with pytest.raises(age.AgeError) as caught:
        decrypt(path, **keys)
    return str(caught.value)


def refusal_on_open(path, **keys):
    """The AgeError opening ``path`` raises, before anything is read."""
    with pytest.raises(age.AgeError) as caught:
        age.open_decrypted(str(path), **keys)
    return str(caught.value)


# ---- the format, from the specification ----


def b64(data):
    return base64.b64encode(data).rstrip(b"=")


def hkdf(ikm, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def split(data):
    """(the stanza lines, the nonce and payload) of an age file."""
    mac_line = data.index(b"\n--- ") + 1
    end = data.index(b"\n", mac_line) + 1
    return data[len(age.MAGIC) : mac_line], data[end:]


def with_header(stanzas, file_key, rest):
    """An age file of ``stanzas`` (lines) and ``rest`` (nonce and payload), with the MAC."""
    covered = age.MAGIC + stanzas + b"---"
    mac = hmac.new(hkdf(file_key, b"", b"header"), covered, hashlib.sha256).digest()
    return covered + b" " + b64(mac) + b"\n" + rest


def sealed_payload(file_key, pieces, nonce=b"n" * 16):
    """The nonce and payload of ``pieces``, a list of (chunk plaintext, last flag)."""
    sealer = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    return nonce + b"".join(
        sealer.encrypt(index.to_bytes(11, "big") + bytes([last]), piece, None)
        for index, (piece, last) in enumerate(pieces)
    )


def replace_b64(text, index):
    """``text`` with the base64 character at ``index`` changed to another."""
    new = b"A" if text[index : index + 1] != b"A" else b"B"
    return text[:index] + new + text[index + 1 :]


@pytest.fixture
def key(tmp_path):
    """(identity file, recipient) made by age-keygen."""
    return keygen(tmp_path, "key.txt")


@pytest.fixture
def sample(tmp_path, key):
    """(path, bytes, plaintext, file key) of a 5-chunk file this module encrypted."""
    plaintext = plain(300001, seed=3)
    path = tmp_path / "sample.age"
    file_key = encrypt_file(path, plaintext, [key[1]])[0]
    return path, path.read_bytes(), plaintext, file_key


# ---- 1. interoperability with the age command ----


def test_age_command_line_is_installed():
    """Fails, rather than skips, without the declared dependency (the other tests
    that need it fail or error with the same message)."""
    assert run("age", "--version").strip()
    tool("age-keygen")


@pytest.mark.parametrize("size", SIZES)
def test_cli_encrypted_file_reads_back(tmp_path, key, size):
    plaintext = plain(size, seed=size)
    path = cli_encrypt(tmp_path, plaintext, [key[1]])
    with age.open_decrypted(str(path), identities=identities_of(key[0])) as reader:
        assert reader.raw.size == size
        assert reader.read() == plaintext
        assert reader.read() == b""


@pytest.mark.parametrize("size", SIZES)
def test_our_file_decrypts_with_cli(tmp_path, key, size):
    plaintext = plain(size, seed=size + 1)
    path = tmp_path / "ours.age"
    file_key, digest, written = encrypt_file(path, plaintext, [key[1]])
    assert (digest, written) == (hashlib.sha256(plaintext).hexdigest(), size)
    assert len(file_key) == 16
    assert cli_decrypt(path, key[0]) == plaintext
    assert decrypt(path, file_key=file_key) == plaintext
    assert decrypt(path, identities=identities_of(key[0])) == plaintext


def test_ours_to_two_recipients(tmp_path):
    first, second, other = (keygen(tmp_path, f"{n}.txt") for n in ("one", "two", "other"))
    plaintext = plain(140000, seed=11)
    path = tmp_path / "two.age"
    encrypt_file(path, plaintext, [first[1], second[1]])
    for key_file, _recipient in (first, second):
        assert cli_decrypt(path, key_file) == plaintext
        assert decrypt(path, identities=identities_of(key_file)) == plaintext
    cli_decrypt(path, other[0], ok=False)
    assert "not one it is encrypted to" in refusal(path, identities=identities_of(other[0]))


def test_cli_to_two_recipients(tmp_path):
    first, second = keygen(tmp_path, "one.txt"), keygen(tmp_path, "two.txt")
    plaintext = plain(70000, seed=12)
    path = cli_encrypt(tmp_path, plaintext, [first[1], second[1]])
    for key_file, _recipient in (first, second):
        assert decrypt(path, identities=identities_of(key_file)) == plaintext
    # An identity file holding both keys, the one that opens nothing first.
    both = identities_of(keygen(tmp_path, "other.txt")[0]) + identities_of(second[0])
    assert decrypt(path, identities=both) == plaintext


def test_our_keys_work_with_cli(tmp_path):
    identity = X25519PrivateKey.generate()
    text = age.identity_text(identity)
    recipient = age.recipient_of(identity)
    assert text.startswith("AGE-SECRET-KEY-1")
    assert text == text.upper()
    assert recipient.startswith("age1")
    assert recipient == recipient.lower()
    key_file = tmp_path / "ours.txt"
    key_file.write_text(f"# made by age.identity_text\n{text}\n")
    assert run("age-keygen", "-y", str(key_file)).decode().strip() == recipient

    plaintext = plain(66000, seed=13)
    path = cli_encrypt(tmp_path, plaintext, [recipient])
    assert cli_decrypt(path, key_file) == plaintext
    (parsed,) = age.parse_identities(text)
    assert decrypt(path, identities=[parsed]) == plaintext
    assert age.identity_text(parsed) == text


def test_keygen_key_round_trips(key):
    key_file, recipient = key
    secret = next(line for line in key_file.read_text().splitlines() if line.startswith("AGE-"))
    (identity,) = identities_of(key_file)
    assert age.recipient_of(identity) == recipient
    assert age.identity_text(identity) == secret
    assert age.parse_recipient(recipient) == age.parse_recipient(recipient.upper())


# ---- 2. seeking ----


def open_raw(path, key_file):
    return age.DecryptingReader(open(path, "rb"), identities=identities_of(key_file))


def open_buffered(path, key_file):
    return age.open_decrypted(str(path), identities=identities_of(key_file))


@pytest.mark.parametrize("opener", [open_raw, open_buffered], ids=["raw", "buffered"])
def test_random_seeks_match_plaintext(sample, key, opener):
    path, _data, plaintext, _file_key = sample
    size = len(plaintext)
    rng = random.Random(20260101)
    lengths = (0, 1, 17, 4096, age.CHUNK - 1, age.CHUNK, age.CHUNK + 1, 150000)
    with opener(path, key[0]) as reader:
        position = 0
        for step in range(400):
            whence = rng.choice((io.SEEK_SET, io.SEEK_CUR, io.SEEK_END))
            target = rng.randrange(0, size + 2000)
            offset = target - {io.SEEK_SET: 0, io.SEEK_CUR: position, io.SEEK_END: size}[whence]
            assert reader.seek(offset, whence) == target, f"step {step}"
            length = rng.choice(lengths)
            got = reader.read(length)
            assert got == plaintext[target : target + length], f"step {step}"
            position = target + len(got)
            assert reader.tell() == position, f"step {step}"


@pytest.mark.parametrize("opener", [open_raw, open_buffered], ids=["raw", "buffered"])
def test_seek_end_cur_and_past_end(sample, key, opener):
    path, _data, plaintext, _file_key = sample
    size = len(plaintext)
    with opener(path, key[0]) as reader:
        assert reader.seekable()
        assert reader.readable()
        assert reader.seek(-10, io.SEEK_END) == size - 10
        assert reader.read() == plaintext[-10:]
        assert reader.tell() == size
        assert reader.read(5) == b""
        assert reader.seek(-(size - age.CHUNK + 3), io.SEEK_CUR) == age.CHUNK - 3
        assert reader.read(6) == plaintext[age.CHUNK - 3 : age.CHUNK + 3]
        assert reader.seek(age.CHUNK, io.SEEK_CUR) == 2 * age.CHUNK + 3
        assert reader.read(2) == plaintext[2 * age.CHUNK + 3 : 2 * age.CHUNK + 5]
        assert reader.seek(0, io.SEEK_END) == size
        assert reader.read() == b""
        assert reader.seek(size + 12345) == size + 12345
        assert reader.read(10) == b""
        assert reader.read() == b""
        assert reader.seek(0) == 0
        assert reader.read(3) == plaintext[:3]
        with pytest.raises(OSError, match="negative"):
            reader.seek(-1)


def test_readinto_and_close(sample, key):
    path, plaintext = sample[0], sample[2]
    with open(path, "rb") as handle:
        reader = age.DecryptingReader(handle, identities=identities_of(key[0]))
        buffer = bytearray(age.CHUNK + 100)
        reader.seek(age.CHUNK - 50)
        assert reader.readinto(buffer) == len(buffer)
        assert bytes(buffer) == plaintext[age.CHUNK - 50 : 2 * age.CHUNK + 50]
        reader.close()
        assert reader.closed
        assert handle.closed  # the reader closes the file it reads


# ---- 3. zipfile over the decrypting reader ----


def test_zipfile_reads_encrypted_archive(tmp_path, key):
    members = {
        "manifest.json": b'{"documents": 3}\n',
        "documents/big.bin": plain(230000, seed=21),
        "documents/text.txt": b"Standard operating procedure, revision 7.\n" * 8000,
        "documents/empty.bin": b"",
        "documents/small.bin": plain(70000, seed=22),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number, (name, content) in enumerate(members.items()):
            kind = zipfile.ZIP_DEFLATED if number % 2 else zipfile.ZIP_STORED
            archive.writestr(name, content, compress_type=kind)
    path = tmp_path / "archive.zip.age"
    encrypt_file(path, buffer.getvalue(), [key[1]])
    assert age.file_is_encrypted(str(path))
    assert not age.file_is_encrypted(str(tmp_path))

    with (
        age.open_decrypted(str(path), identities=identities_of(key[0])) as reader,
        zipfile.ZipFile(reader) as archive,
    ):
        assert archive.namelist() == list(members)
        assert archive.testzip() is None
        for name in reversed(list(members)):
            assert archive.read(name) == members[name], name


# ---- 4. refusals ----


def test_wrong_key_refused(sample, tmp_path):
    path = sample[0]
    other_file = keygen(tmp_path, "other.txt")[0]
    secret = age.identity_text(identities_of(other_file)[0])
    message = refusal_on_open(path, identities=identities_of(other_file))
    assert "not one it is encrypted to" in message
    assert secret not in message
    assert secret.lower() not in message
    assert "MAC" in refusal_on_open(path, file_key=bytes(16))
    assert "not one it is encrypted to" in refusal_on_open(path)


@pytest.mark.parametrize(
    ("where", "word"),
    [
        ("share", "not one it is encrypted to"),
        ("body", "not one it is encrypted to"),
        ("other stanza body", "MAC"),
        ("other stanza share", "MAC"),
        ("mac", "MAC"),
    ],
)
def test_flipped_header_byte(tmp_path, where, word):
    mine, mine_recipient = keygen(tmp_path, "mine.txt")
    other_recipient = keygen(tmp_path, "other.txt")[1]
    path = tmp_path / "two.age"
    encrypt_file(path, plain(1000), [mine_recipient, other_recipient])
    data = path.read_bytes()
    stanzas, rest = split(data)
    lines = stanzas.split(b"\n")  # share line, body line, share line, body line, ""
    assert [line[:10] for line in lines[::2]] == [b"-> X25519 "] * 2 + [b""]
    if where == "mac":
        mac_line = data[len(age.MAGIC) + len(stanzas) : -len(rest)]
        changed = stanzas + replace_b64(mac_line, 10)
    else:
        line = {"share": 0, "body": 1, "other stanza share": 2, "other stanza body": 3}[where]
        lines[line] = replace_b64(lines[line], 20)
        changed = b"\n".join(lines) + data[len(age.MAGIC) + len(stanzas) : -len(rest)]
    path.write_bytes(age.MAGIC + changed + rest)
    message = refusal_on_open(path, identities=identities_of(mine))
    assert word in message


def test_every_header_bit_flip_refused(tmp_path):
    """Whatever single bit of the header changes, opening raises AgeError (and nothing else)."""
    mine, mine_recipient = keygen(tmp_path, "mine.txt")
    other_recipient = keygen(tmp_path, "other.txt")[1]
    path = tmp_path / "flip.age"
    encrypt_file(path, b"x", [mine_recipient, other_recipient])
    data = path.read_bytes()
    identities = identities_of(mine)
    header = len(data) - len(split(data)[1])
    for offset in range(header):
        for bit in (0x01, 0x80):
            changed = bytearray(data)
            changed[offset] ^= bit
            path.write_bytes(changed)
            with pytest.raises(age.AgeError):
                age.open_decrypted(str(path), identities=identities).close()


def test_flipped_middle_chunk_refused_when_read(sample, key):
    path, data, plaintext, _file_key = sample
    start = len(data) - len(split(data)[1]) + age.NONCE
    changed = bytearray(data)
    changed[start + 2 * SEALED + 1000] ^= 0x04
    path.write_bytes(changed)
    with age.open_decrypted(str(path), identities=identities_of(key[0])) as reader:
        assert reader.read(2 * age.CHUNK) == plaintext[: 2 * age.CHUNK]
        with pytest.raises(age.AgeError) as caught:
            reader.read(1)
        assert "chunk 2" in str(caught.value)
        reader.seek(3 * age.CHUNK + 7)
        assert reader.read() == plaintext[3 * age.CHUNK + 7 :]
        reader.seek(2 * age.CHUNK + 1000)
        with pytest.raises(age.AgeError, match="chunk 2"):
            reader.read(10)
    assert "chunk 2" in refusal(path, identities=identities_of(key[0]))
    cli_decrypt(path, key[0], ok=False)


@pytest.mark.parametrize(
    ("where", "word"),
    [
        ("last chunk", "chunk 4"),
        ("last tag", "chunk 4"),
        ("nonce", "chunk 4"),
    ],
)
def test_flipped_last_chunk_or_nonce_refused_on_open(sample, key, where, word):
    path, data, _plaintext, _file_key = sample
    nonce = len(data) - len(split(data)[1])
    offset = {"last chunk": nonce + 16 + 4 * SEALED + 5, "last tag": len(data) - 1, "nonce": nonce}
    changed = bytearray(data)
    changed[offset[where]] ^= 0x10
    path.write_bytes(changed)
    assert word in refusal_on_open(path, identities=identities_of(key[0]))


@pytest.mark.parametrize(
    ("size", "keep", "word"),
    [
        (300001, 3 * SEALED, "chunk 2"),
        (300001, SEALED, "chunk 0"),
        (131072, SEALED, "chunk 0"),
        (300001, 2 * SEALED + 30000, "cut short"),
        (300001, 2 * SEALED - 3, "cut short"),
        (300001, 3 * SEALED + 5, "cut short"),
        (0, age.TAG - 1, "cut short"),
        (300001, 0, "cut short"),
        (300001, -5, "nonce"),
        (300001, -age.NONCE, "nonce"),
        (300001, None, "cut short"),
    ],
    ids=[
        "at chunk boundary 3",
        "at chunk boundary 1",
        "after the first of two full chunks",
        "mid chunk",
        "inside a tag",
        "a few bytes into a chunk",
        "inside the empty chunk's tag",
        "after the nonce",
        "inside the nonce",
        "after the header",
        "inside the header",
    ],
)
def test_cut_file_refused_on_open(tmp_path, key, size, keep, word):
    """``keep``: the bytes of the payload (after its nonce) left; None: cut in the header."""
    path = tmp_path / "cut.age"
    encrypt_file(path, plain(size), [key[1]])
    data = path.read_bytes()
    payload = len(data) - len(split(data)[1]) + age.NONCE
    path.write_bytes(data[: 60 if keep is None else payload + keep])
    assert word in refusal_on_open(path, identities=identities_of(key[0]))


@pytest.mark.parametrize(
    ("size", "extra"),
    [(300001, 1), (300001, 16), (300001, SEALED), (65536, 16), (65536, 17), (0, 1)],
)
def test_appended_bytes_refused_on_open(tmp_path, key, size, extra):
    path = tmp_path / "long.age"
    encrypt_file(path, plain(size), [key[1]])
    with open(path, "ab") as handle:
        handle.write(plain(extra, seed=99))
    message = refusal_on_open(path, identities=identities_of(key[0]))
    assert "chunk" in message or "malformed" in message


def test_chunking_by_the_specification(tmp_path, key):
    """A payload sealed here from the specification reads back; an empty last chunk
    after a full one, or a last chunk not flagged last, is refused."""
    file_key = os.urandom(16)
    identity = identities_of(key[0])[0]
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    recipient = identity.public_key().public_bytes_raw()
    wrap_key = hkdf(ephemeral.exchange(identity.public_key()), share + recipient, age.X25519_INFO)
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
    stanzas = b"-> X25519 " + b64(share) + b"\n" + b64(body) + b"\n"
    full = plain(age.CHUNK, seed=5)
    cases = {
        "good": ([(full, 0), (b"tail", 1)], None),
        "empty last chunk": ([(full, 0), (b"", 1)], "malformed"),
        "last not flagged": ([(full, 0), (b"tail", 0)], "chunk 1"),
        "middle flagged last": ([(full, 1), (b"tail", 1)], "chunk 0"),
    }
    path = tmp_path / "spec.age"
    for name, (pieces, word) in cases.items():
        path.write_bytes(with_header(stanzas, file_key, sealed_payload(file_key, pieces)))
        if word is None:
            assert cli_decrypt(path, key[0]) == full + b"tail", name
            assert decrypt(path, identities=[identity]) == full + b"tail", name
        else:
            cli_decrypt(path, key[0], ok=False)
            assert word in refusal(path, identities=[identity]), name


@pytest.mark.parametrize(
    "content",
    [b"", b"PK\x03\x04" + bytes(100), b"age-encryption.org/v2\n-> X25519 x\n", b"age"],
    ids=["empty", "zip", "v2", "short"],
)
def test_not_age_refused(tmp_path, key, content):
    path = tmp_path / "not.age"
    path.write_bytes(content)
    assert not age.file_is_encrypted(str(path))
    assert "not an age v1 file" in refusal_on_open(path, identities=identities_of(key[0]))


def test_armored_file_refused(tmp_path, key):
    path = cli_encrypt(tmp_path, b"armored", [key[1]], "-a")
    assert path.read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert "not an age v1 file" in refusal_on_open(path, identities=identities_of(key[0]))


def test_passphrase_file_refused(tmp_path, key):
    path = tmp_path / "passphrase.age"
    path.write_bytes(PASSPHRASE_FILE)
    assert age.file_is_encrypted(str(path))
    message = refusal_on_open(path, identities=identities_of(key[0]))
    assert "passphrase" in message
    assert "scrypt" in message


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ("body trailing bits", "not base64"),
        ("body padded", "not base64"),
        ("body bad character", "not base64"),
        ("body line of 65", "longer than 64"),
        ("share trailing bits", "malformed X25519 stanza"),
        ("share padded", "malformed X25519 stanza"),
        ("share short", "malformed X25519 stanza"),
        ("mac trailing bits", "MAC line is malformed"),
        ("mac padded", "MAC line is malformed"),
        ("two args", "malformed X25519 stanza"),
        ("empty arg", "malformed stanza"),
        ("low order share", "low order"),
        ("not a stanza", "neither a stanza nor the MAC"),
    ],
)
def test_malformed_header_refused(sample, key, change, word):
    path, data, plaintext, file_key = sample
    stanzas, rest = split(data)
    share_line, body, empty = stanzas.split(b"\n")
    assert empty == b""
    assert len(body) == 43
    share = share_line[len(b"-> X25519 ") :]
    assert len(share) == 43
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    def odd_end(text):  # the same bytes, but a padding bit set: not canonical
        return text[:-1] + alphabet[alphabet.index(text[-1]) | 1 :][:1]

    lines = {
        "body trailing bits": (share_line, odd_end(body)),
        "body padded": (share_line, body + b"="),
        "body bad character": (share_line, body[:5] + b"." + body[6:]),
        "body line of 65": (share_line, b"A" * 65, b""),
        "share trailing bits": (b"-> X25519 " + odd_end(share), body),
        "share padded": (share_line + b"=", body),
        "share short": (share_line[:-4], body),
        "two args": (share_line + b" extra", body),
        "empty arg": (share_line + b" ", body),
        "low order share": (b"-> X25519 " + b64(bytes(32)), body),
        "not a stanza": (b"=> X25519 " + share, body),
    }.get(change, (share_line, body))
    changed = with_header(b"\n".join(lines) + b"\n", file_key, rest)
    if change.startswith("mac"):
        mac_start = changed.index(b"\n--- ") + 5
        mac = changed[mac_start : mac_start + 43]
        mac = odd_end(mac) if change == "mac trailing bits" else mac + b"="
        changed = changed[:mac_start] + mac + changed[mac_start + 43 :]
    path.write_bytes(changed)
    assert word in refusal_on_open(path, identities=identities_of(key[0]))
    # With the file key instead of an identity, only the X25519 checks are not made.
    if "X25519" not in word and "low order" not in word:
        assert word in refusal_on_open(path, file_key=file_key)
    # The unchanged stanzas under a fresh MAC open: the refusal was the change's.
    path.write_bytes(with_header(stanzas, file_key, rest))
    assert decrypt(path, identities=identities_of(key[0])) == plaintext


def padded_header(x25519, size, file_key, rest):
    """An age file whose header is ``size`` bytes: the X25519 stanza and one
    stanza of a kind no one reads, its body padding the header to size."""
    mac_line = len(b"--- ") + 43 + 1
    for argument in range(4):
        kind = b"-> grease" + b" x" * argument + b"\n"
        room = size - len(age.MAGIC) - len(x25519) - len(kind) - mac_line
        full, last = divmod(room - 1, 65)  # lines of 64 characters, then a short one
        if last % 4 != 1 and last < 64:
            body = b"A" * 64 + b"\n"
            stanzas = x25519 + kind + body * full + b"A" * last + b"\n"
            data = with_header(stanzas, file_key, rest)
            assert len(data) - len(rest) == size
            return data
    raise AssertionError("no padding fits")


def test_header_size_limit(sample, key):
    path, data, plaintext, file_key = sample
    stanzas, rest = split(data)
    path.write_bytes(padded_header(stanzas, age.MAX_HEADER, file_key, rest))
    assert decrypt(path, identities=identities_of(key[0])) == plaintext
    for size in (age.MAX_HEADER + 1, age.MAX_HEADER + 100, 3 * age.MAX_HEADER):
        path.write_bytes(padded_header(stanzas, size, file_key, rest))
        assert "longer" in refusal_on_open(path, identities=identities_of(key[0]))
    # One line longer than the whole limit, and a header with no end.
    path.write_bytes(age.MAGIC + b"-> grease " + b"x" * age.MAX_HEADER + b"\n")
    assert "longer" in refusal_on_open(path, file_key=file_key)
    path.write_bytes(age.MAGIC + b"-> grease\n" + (b"A" * 64 + b"\n") * 2000)
    assert "longer" in refusal_on_open(path, file_key=file_key)


def test_stanza_count_limit(sample, key):
    path, data, plaintext, file_key = sample
    stanzas, rest = split(data)
    grease = b"".join(b"-> grease%d\n\n" % n for n in range(age.MAX_STANZAS))
    path.write_bytes(with_header(grease[: -len(b"-> grease63\n\n")] + stanzas, file_key, rest))
    assert decrypt(path, identities=identities_of(key[0])) == plaintext
    assert cli_decrypt(path, key[0]) == plaintext
    path.write_bytes(with_header(grease + stanzas, file_key, rest))
    message = refusal_on_open(path, identities=identities_of(key[0]))
    assert f"more than {age.MAX_STANZAS} stanzas" in message


def test_no_x25519_stanza_refused(sample, key):
    path, data, _plaintext, file_key = sample
    rest = split(data)[1]
    path.write_bytes(with_header(b"-> ssh-ed25519 abc def\n\n", file_key, rest))
    message = refusal_on_open(path, identities=identities_of(key[0]))
    assert "not encrypted to any X25519 recipient" in message
    assert "ssh-ed25519" in message


# ---- 5. keys ----


def secret_line(key_file):
    return next(line for line in key_file.read_text().splitlines() if line.startswith("AGE-"))


def test_parse_identities_reads_keygen_files(tmp_path):
    one, two = keygen(tmp_path, "one.txt"), keygen(tmp_path, "two.txt")
    text = one[0].read_text() + "\n   \n# another key\n" + two[0].read_text()
    identities = age.parse_identities(text)
    assert [age.recipient_of(i) for i in identities] == [one[1], two[1]]
    assert text.count("# ") >= 5  # age-keygen's own comments were there
    windows = secret_line(one[0]) + "\r\n"
    assert [age.recipient_of(i) for i in age.parse_identities(windows)] == [one[1]]


def mixed_case(line):
    index = next(i for i in range(len("AGE-SECRET-KEY-1"), len(line)) if line[i].isalpha())
    return line[:index] + line[index].lower() + line[index + 1 :]


def one_char_changed(line, index=30):
    charset = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
    new = charset[(charset.index(line[index]) + 1) % 32]
    return line[:index] + new + line[index + 1 :]


@pytest.mark.parametrize(
    ("make", "word"),
    [
        (mixed_case, "case"),
        (one_char_changed, "checksum"),
        (lambda line: one_char_changed(line, len(line) - 1), "checksum"),
        (lambda line: line[:-1], "checksum"),
        (lambda line: line.replace("AGE-SECRET-KEY-1", "AGE-SECRET-KEX-1"), "checksum"),
        (lambda line: line.replace("1", "I", 1), "not bech32"),
        (lambda line: line + "Q", "checksum"),
        (lambda line: line[:20] + "O" + line[21:], "character"),
    ],
    ids=["mixed case", "checksum", "last char", "cut", "hrp", "no separator", "longer", "O"],
)
def test_parse_identities_rejects_damaged_key(key, make, word):
    line = secret_line(key[0])
    damaged = make(line)
    assert damaged != line
    text = f"# created: 2026-01-01\n# public key: {key[1]}\n{damaged}\n"
    with pytest.raises(age.AgeError) as caught:
        age.parse_identities(text)
    message = str(caught.value)
    assert word in message
    assert "line 3" in message
    for secret in (line, damaged):
        assert secret[16:40] not in message
        assert secret[16:40].lower() not in message


def test_parse_identities_rejects_non_identities(key):
    recipient = key[1]
    cases = {
        recipient: "not an age X25519 identity",
        age.bech32_encode("age-secret-key-", bytes(31)).upper(): "not an age X25519 identity",
        "": "holds no age identity",
        "# only a comment\n\n": "holds no age identity",
        "-----BEGIN OPENSSH PRIVATE KEY-----": "not an age key",
    }
    for text, word in cases.items():
        with pytest.raises(age.AgeError) as caught:
            age.parse_identities(text)
        assert word in str(caught.value), text
        assert recipient not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("garbage", "not an age recipient"),
        ("age1", "not an age recipient"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDx", "not an age recipient"),
        ("x" * 200, "not an age recipient"),
    ],
)
def test_parse_recipient_rejects_garbage(text, word):
    with pytest.raises(age.AgeError) as caught:
        age.parse_recipient(text)
    message = str(caught.value)
    assert word in message
    assert repr(text[:40])[:-1] in message  # names the recipient (shortened when long)
    assert len(message) < 200


def test_parse_recipient_rejects_damaged_recipient(key):
    recipient = key[1]
    damaged = recipient[:20] + ("q" if recipient[20] != "q" else "p") + recipient[21:]
    letter = next(i for i in range(4, len(recipient)) if recipient[i].isalpha())
    cases = {
        damaged: "checksum",
        recipient[:letter] + recipient[letter].upper() + recipient[letter + 1 :]: "case",
        age.bech32_encode("age", bytes(31)): "not an age X25519 recipient",
        age.bech32_encode("agf", bytes(32)): "not an age X25519 recipient",
    }
    for text, word in cases.items():
        with pytest.raises(age.AgeError) as caught:
            age.parse_recipient(text)
        assert word in str(caught.value), text
        assert text in str(caught.value), text


def test_parse_recipient_never_quotes_a_secret_key(key):
    line = secret_line(key[0])
    for given in (line, line.lower(), "  " + line + "\n"):
        with pytest.raises(age.AgeError, match="is a secret key") as caught:
            age.parse_recipient(given)
        assert line[16:40] not in str(caught.value)
        assert line[16:40].lower() not in str(caught.value)


def test_encrypt_recipient_count():
    one = age.parse_recipient(age.recipient_of(X25519PrivateKey.generate()))
    for recipients in ([], [one] * (age.MAX_RECIPIENTS + 1)):
        with pytest.raises(age.AgeError, match="between 1 and"):
            age.encrypt(io.BytesIO(b"x"), io.BytesIO(), recipients)


# ---- 6. nothing of the plaintext in the ciphertext ----


def test_ciphertext_holds_no_plaintext(tmp_path, key):
    marker = b"CONFIDENTIAL-BATCH-RECORD-4711;"
    plaintext = marker * 20000  # 620000 bytes, 10 chunks
    first, second = tmp_path / "a.age", tmp_path / "b.age"
    key_one = encrypt_file(first, plaintext, [key[1]])[0]
    key_two = encrypt_file(second, plaintext, [key[1]])[0]
    for path in (first, second):
        data = path.read_bytes()
        assert len(data) > len(plaintext)
        for part in (marker, marker[:8], marker[-8:], b"BATCH-RE", b"4711;CON"):
            assert part not in data
    assert key_one != key_two
    assert first.read_bytes()[-1000:] != second.read_bytes()[-1000:]
    assert decrypt(first, identities=identities_of(key[0])) == plaintext
