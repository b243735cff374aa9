# Copyright: (c) 2026, edms.backup contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Archives encrypted at rest in the age v1 format (https://age-encryption.org/v1),
to X25519 recipients ("age1..."), readable by the ``age`` and ``rage`` commands.

Why not ``pyrage`` or the ``age`` command: both only stream, start to end, and a
ZIP is read from its end (the central directory) and then member by member.
age's payload is a sequence of 64 KiB chunks, each sealed on its own with a
nonce that is its index, so a reader can decrypt the chunk a read falls in and
no other: DecryptingReader is a seekable file, zipfile reads it as it reads a
plain archive, once through, memory flat. The primitives (X25519, HKDF-SHA256,
ChaCha20-Poly1305, HMAC-SHA256) come from ``cryptography`` (pyca), which
ansible-core itself needs and Debian ships as python3-cryptography.

Everything read here is untrusted: the header's size and stanza count are
bounded, every base64 text must be canonical, and the header's MAC, every
chunk's tag and the last chunk's flag are checked before a byte is returned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import re

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - the message below says what to install
    HAS_CRYPTOGRAPHY = False

MAGIC = b"age-encryption.org/v1\n"
CHUNK = 64 * 1024
TAG = 16
NONCE = 16
X25519_INFO = b"age-encryption.org/v1/X25519"
MAX_HEADER = 64 * 1024
MAX_STANZAS = 64
MAX_RECIPIENTS = 64

_B64_LINE = 64
_ARG = re.compile(rb"[\x21-\x7e]+\Z")
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


class AgeError(Exception):
    """An encrypted archive that cannot be read, or a key or recipient that is not one."""


class AgeKeyError(AgeError):
    """The key given does not open the file: it says nothing of the file's state."""


def require_cryptography():
    if not HAS_CRYPTOGRAPHY:
        raise AgeError(
            "encrypted archives need the Python package 'cryptography' (38 or newer) in the"
            " Python the modules run with on this host: run playbooks/prepare_host.yml,"
            " which installs it into the modules' environment, or"
            " <that python> -m pip install 'cryptography>=38'"
        )


def is_encrypted(head):
    """True when ``head`` (the first bytes of a file) starts an age v1 file."""
    return head[: len(MAGIC)] == MAGIC


def file_is_encrypted(path):
    """True when the regular file at ``path`` is an age v1 file (False for a directory)."""
    if os.path.isdir(path):
        return False
    with open(path, "rb") as handle:
        return is_encrypted(handle.read(len(MAGIC)))


# ---- bech32 (BIP 173), the text form of age's keys ----


def _polymod(values):
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            check ^= generator[i] if (top >> i) & 1 else 0
    return check


def _hrp_expand(hrp):
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data, source_bits, target_bits, pad):
    accumulator = bits = 0
    out = []
    maximum = (1 << target_bits) - 1
    for value in data:
        accumulator = (accumulator << source_bits) | value
        bits += source_bits
        while bits >= target_bits:
            bits -= target_bits
            out.append((accumulator >> bits) & maximum)
    if pad:
        if bits:
            out.append((accumulator << (target_bits - bits)) & maximum)
    elif bits >= source_bits or (accumulator << (target_bits - bits)) & maximum:
        return None
    return out


def bech32_encode(hrp, data):
    values = _regroup(data, 8, 5, True)
    checksum = _polymod(_hrp_expand(hrp) + values + [0] * 6) ^ 1
    values += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[v] for v in values)


def bech32_decode(text):
    """(hrp, bytes) of a bech32 string in one case; raises ValueError."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixes upper and lower case")
    text = text.lower()
    separator = text.rfind("1")
    if separator < 1 or separator + 7 > len(text):
        raise ValueError("is not bech32 text")
    hrp, rest = text[:separator], text[separator + 1 :]
    if any(c not in _BECH32 for c in rest) or any(not 33 <= ord(c) <= 126 for c in hrp):
        raise ValueError("holds a character bech32 does not use")
    values = [_BECH32.index(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise ValueError("has a wrong checksum (mistyped or cut)")
    data = _regroup(values[:-6], 5, 8, False)
    if data is None:
        raise ValueError("has bad padding")
    return hrp, bytes(data)


# ---- keys ----


def _raw_public(key):
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def parse_recipient(text):
    """The 32 raw bytes of an age X25519 recipient ("age1..."); raises AgeError."""
    require_cryptography()
    if "SECRET-KEY" in str(text).upper():
        raise AgeError(
            "a recipient given is a secret key (AGE-SECRET-KEY-1...), not a recipient: give"
            " its public key (age1..., from age-keygen -y); keep the secret key off this"
            " inventory and rotate it, it has been written where recipients go"
        )
    shown = text if len(text) < 80 else text[:77] + "..."
    try:
        hrp, data = bech32_decode(text.strip())
    except ValueError as exc:
        raise AgeError(f"recipient {shown!r} is not an age recipient: it {exc}") from None
    if hrp != "age" or len(data) != 32:
        raise AgeError(f"recipient {shown!r} is not an age X25519 recipient (age1...)")
    return data


def parse_identities(text):
    """The X25519 private keys in ``text``: an age identity file (comments and
    blank lines allowed) or one AGE-SECRET-KEY-1... line. Raises AgeError,
    never quoting the text (it is a secret)."""
    require_cryptography()
    keys = []
    for number, line in enumerate(str(text).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            hrp, data = bech32_decode(line)
        except ValueError as exc:
            raise AgeError(
                f"line {number} of the decryption key is not an age key: it {exc}"
            ) from None
        if hrp != "age-secret-key-" or len(data) != 32:
            raise AgeError(
                f"line {number} of the decryption key is not an age X25519 identity"
                " (AGE-SECRET-KEY-1...)"
            )
        keys.append(X25519PrivateKey.from_private_bytes(data))
    if not keys:
        raise AgeError("the decryption key holds no age identity (AGE-SECRET-KEY-1...)")
    return keys


def recipient_of(identity):
    """The "age1..." recipient of an X25519 private key."""
    return bech32_encode("age", _raw_public(identity.public_key()))


def identity_text(identity):
    """The AGE-SECRET-KEY-1... text of an X25519 private key."""
    raw = identity.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return bech32_encode("age-secret-key-", raw).upper()


# ---- primitives ----


def _hkdf(ikm, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _b64encode(data):
    return base64.b64encode(data).rstrip(b"=")


def _b64decode(text):
    """Canonical unpadded standard base64, as age writes it; raises ValueError."""
    if b"=" in text or len(text) % 4 == 1:
        raise ValueError("not unpadded base64")
    data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    if _b64encode(data) != text:
        raise ValueError("not canonical base64")
    return data


def _chunk_nonce(index, last):
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


# ---- the header ----


class Stanza:
    __slots__ = ("args", "body", "kind")

    def __init__(self, kind, args, body):
        self.kind, self.args, self.body = kind, args, body


def _read_line(handle, budget):
    line = handle.readline(budget + 1)
    if len(line) > budget or not line.endswith(b"\n"):
        raise AgeError("its age header is cut short or longer than this collection reads")
    return line


def read_header(handle):
    """(stanzas, the bytes the MAC covers, the MAC) of the age header at the
    start of ``handle``, which is left at the payload's nonce. Raises AgeError."""
    head = handle.read(len(MAGIC))
    if head != MAGIC:
        raise AgeError("it is not an age v1 file")
    covered = bytearray(MAGIC)
    stanzas = []
    while True:
        line = _read_line(handle, MAX_HEADER - len(covered))
        if line.startswith(b"--- "):
            covered += b"---"
            try:
                mac = _b64decode(line[4:-1])
            except ValueError:
                mac = b""
            if len(mac) != 32:
                raise AgeError("its age header's MAC line is malformed")
            return stanzas, bytes(covered), mac
        covered += line
        if not line.startswith(b"-> "):
            raise AgeError("its age header holds a line that is neither a stanza nor the MAC")
        args = line[3:-1].split(b" ")
        if not all(_ARG.match(a) for a in args):
            raise AgeError("its age header holds a malformed stanza")
        body = bytearray()
        while True:
            line = _read_line(handle, MAX_HEADER - len(covered))
            covered += line
            text = line[:-1]
            if len(text) > _B64_LINE:
                raise AgeError("its age header holds a stanza body line longer than 64")
            try:
                body += _b64decode(text)
            except ValueError:
                raise AgeError("its age header holds a stanza body that is not base64") from None
            if len(text) < _B64_LINE:
                break
        stanzas.append(Stanza(args[0].decode("ascii"), args[1:], bytes(body)))
        if len(stanzas) > MAX_STANZAS:
            raise AgeError(f"its age header has more than {MAX_STANZAS} stanzas")


def _unwrap(stanzas, identities):
    """The file key of the first X25519 stanza one of ``identities`` opens."""
    kinds = {s.kind for s in stanzas}
    if "scrypt" in kinds:
        raise AgeKeyError(
            "it is encrypted with a passphrase (age scrypt); this collection reads"
            " archives encrypted to X25519 recipients (age1...)"
        )
    x25519 = [s for s in stanzas if s.kind == "X25519"]
    if not x25519:
        raise AgeError(
            "it is not encrypted to any X25519 recipient (stanzas: {})".format(
                ", ".join(sorted(kinds)) or "none"
            )
        )
    for stanza in x25519:
        if len(stanza.args) != 1 or len(stanza.body) != 32:
            raise AgeError("its age header holds a malformed X25519 stanza")
        try:
            share = _b64decode(stanza.args[0])
        except ValueError:
            share = b""
        if len(share) != 32:
            raise AgeError("its age header holds a malformed X25519 stanza")
        for identity in identities:
            try:
                secret = identity.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                raise AgeError("its age header holds an X25519 share of low order") from None
            if secret == bytes(32):
                raise AgeError("its age header holds an X25519 share of low order")
            salt = share + _raw_public(identity.public_key())
            wrap_key = _hkdf(secret, salt, X25519_INFO)
            try:
                return ChaCha20Poly1305(wrap_key).decrypt(bytes(12), stanza.body, None)
            except InvalidTag:
                continue
    raise AgeKeyError(
        "the decryption key given is not one it is encrypted to"
        " (a wrong key, or the archive was encrypted to other recipients)"
    )


def _wrap(file_key, recipient):
    ephemeral = X25519PrivateKey.generate()
    share = _raw_public(ephemeral.public_key())
    secret = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    wrap_key = _hkdf(secret, share + recipient, X25519_INFO)
    body = _b64encode(ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None))
    lines = [body[i : i + _B64_LINE] for i in range(0, len(body), _B64_LINE)]
    if not lines or len(lines[-1]) == _B64_LINE:
        lines.append(b"")
    return b"-> X25519 " + _b64encode(share) + b"\n" + b"\n".join(lines) + b"\n"


# ---- writing ----


def encrypt(source, target, recipients):
    """Encrypt the readable ``source`` into the writable ``target`` for the raw
    X25519 ``recipients``, in one pass. Return (file key, sha256 of the
    plaintext read, its size): the key lets the writer read back what it wrote
    (DecryptingReader(file_key=...)) and is never kept."""
    require_cryptography()
    if not recipients or len(recipients) > MAX_RECIPIENTS:
        raise AgeError(f"give between 1 and {MAX_RECIPIENTS} recipients")
    file_key = os.urandom(16)
    header = MAGIC + b"".join(_wrap(file_key, r) for r in recipients) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest()
    nonce = os.urandom(NONCE)
    target.write(header + b" " + _b64encode(mac) + b"\n" + nonce)
    sealer = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    digest = hashlib.sha256()
    size = index = 0
    pending = _read_full(source, CHUNK)
    while True:
        following = _read_full(source, CHUNK) if len(pending) == CHUNK else b""
        last = not following
        digest.update(pending)
        size += len(pending)
        target.write(sealer.encrypt(_chunk_nonce(index, last), pending, None))
        if last:
            return file_key, digest.hexdigest(), size
        pending, index = following, index + 1


def _read_full(source, size):
    parts = []
    wanted = size
    while wanted:
        block = source.read(wanted)
        if not block:
            break
        parts.append(block)
        wanted -= len(block)
    return b"".join(parts)


# ---- reading ----


class DecryptingReader(io.RawIOBase):
    """A read-only, seekable file of the plaintext of the age file open in
    ``handle`` (binary, seekable; this reader closes it). Opened with
    ``identities`` (X25519 private keys) or with the ``file_key`` the writer
    kept. The header's MAC and the last chunk are checked on opening, so a
    wrong key, a forged header or a cut file is refused before anything is
    read; every other chunk is checked when it is first read. Only one chunk
    is held in memory."""

    def __init__(self, handle, identities=None, file_key=None, name=None):
        super().__init__()
        require_cryptography()
        self._handle = handle
        self.name = name
        stanzas, covered, mac = read_header(handle)
        if file_key is None:
            file_key = _unwrap(stanzas, identities or [])
        expected = hmac.new(_hkdf(file_key, b"", b"header"), covered, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, mac):
            raise AgeError("its age header's MAC does not match: the header was altered")
        nonce = handle.read(NONCE)
        if len(nonce) != NONCE:
            raise AgeError("it ends inside the age payload's nonce (cut short)")
        self._start = handle.tell()
        payload = os.fstat(handle.fileno()).st_size - self._start
        sealed = CHUNK + TAG
        self._chunks = -(-payload // sealed)
        tail = payload - (self._chunks - 1) * sealed
        if payload <= 0 or tail < TAG or (tail == TAG and self._chunks > 1):
            raise AgeError("its age payload is cut short or malformed")
        self._size = payload - self._chunks * TAG
        self._opener = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._position = 0
        self._cached = (None, b"")
        self._chunk(self._chunks - 1)  # a cut or extended file fails here

    @property
    def size(self):
        """The plaintext's size in bytes."""
        return self._size

    def _chunk(self, index):
        if self._cached[0] == index:
            return self._cached[1]
        sealed = CHUNK + TAG
        self._handle.seek(self._start + index * sealed)
        data = _read_full(self._handle, sealed)
        last = index == self._chunks - 1
        try:
            plain = self._opener.decrypt(_chunk_nonce(index, last), data, None)
        except InvalidTag:
            raise AgeError(
                f"chunk {index} of its age payload fails authentication:"
                " the encrypted archive is damaged or was altered"
                + (" (or cut short)" if last else "")
            ) from None
        self._cached = (index, plain)
        return plain

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._position

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise OSError(22, "negative seek position")
        self._position = position
        return position

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._position < self._size:
            index, within = divmod(self._position, CHUNK)
            plain = self._chunk(index)
            count = min(len(view) - done, len(plain) - within)
            view[done : done + count] = plain[within : within + count]
            done += count
            self._position += count
        return done

    def close(self):
        if not self.closed:
            self._handle.close()
            self._cached = (None, b"")
        super().close()


def open_decrypted(path, identities=None, file_key=None):
    """A buffered, seekable reader of the plaintext of the age file at ``path``."""
    handle = open(path, "rb")  # noqa: SIM115 - the reader closes it
    try:
        raw = DecryptingReader(handle, identities=identities, file_key=file_key, name=path)
    except BaseException:
        handle.close()
        raise
    return io.BufferedReader(raw, buffer_size=CHUNK)
