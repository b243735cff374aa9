import ast
import hashlib
import os
import stat

import pytest
from ansible_collections.edms.backup.plugins.module_utils._platform import proof as proofs

KEY = b"k" * 32
CODE = "c" * 64
SHA = "a" * 64
NOW = 1_800_000_000
# Before tests/unit/conftest.py puts each test's key elsewhere.
KEY_DIRECTORY = proofs.key_directory


def test_a_proof_holds_for_the_sha256_it_was_issued_for():
    made = proofs.issue(SHA, key=KEY, code=CODE, now=NOW)
    assert made.startswith(f"v1:{NOW}:")
    assert proofs.holds(made, SHA, key=KEY, code=CODE, now=NOW + 60)


@pytest.mark.parametrize(
    "change",
    [
        {"sha256": "b" * 64},  # other bytes
        {"key": b"x" * 32},  # another host's key
        {"code": "d" * 64},  # other verification code
        {"now": NOW + proofs.PROOF_MAX_AGE + 1},  # too old
        {"now": NOW - 120},  # made in the future
    ],
)
def test_a_proof_does_not_hold_for_anything_else(change):
    made = proofs.issue(SHA, key=KEY, code=CODE, now=NOW)
    asked = {"sha256": SHA, "key": KEY, "code": CODE, "now": NOW, **change}
    assert not proofs.holds(made, asked.pop("sha256"), **asked)


def test_a_changed_proof_does_not_hold():
    made = proofs.issue(SHA, key=KEY, code=CODE, now=NOW)
    mac = made.rsplit(":", 1)[1]
    flipped = made[: -len(mac)] + ("0" if mac[0] != "0" else "1") + mac[1:]
    assert not proofs.holds(flipped, SHA, key=KEY, code=CODE, now=NOW)
    # Its moment moved: the HMAC covers it.
    later = made.replace(f"v1:{NOW}:", f"v1:{NOW + 10}:")
    assert not proofs.holds(later, SHA, key=KEY, code=CODE, now=NOW + 10)


@pytest.mark.parametrize(
    "value",
    [None, "", "yes", True, 1, "v1:1:" + "0" * 63, "v2:1:" + "0" * 64, SHA, ["v1:1:" + "0" * 64]],
)
def test_what_is_not_a_proof_never_holds(value):
    assert not proofs.holds(value, SHA, key=KEY, code=CODE, now=NOW)


def test_no_proof_without_a_key_or_a_code_digest_or_a_sha256():
    assert proofs.issue(SHA, key=b"", code=CODE) is None
    assert proofs.issue(SHA, key=KEY, code="") is None
    assert proofs.issue("not a sha256", key=KEY, code=CODE) is None


def test_the_key_is_made_once_private_to_its_user(tmp_path):
    directory = tmp_path / "cache" / "edms-backup"
    key = proofs.load_key(str(directory))
    assert len(key) == proofs.KEY_SIZE
    assert proofs.load_key(str(directory)) == key
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(directory / "proof.key").st_mode) == 0o600
    assert os.listdir(directory) == ["proof.key"]


def test_without_create_a_missing_key_is_none(tmp_path):
    directory = tmp_path / "edms-backup"
    directory.mkdir(mode=0o700)
    assert proofs.load_key(str(directory), create=False) is None
    assert os.listdir(directory) == []


def test_a_key_others_can_read_is_not_used(tmp_path):
    directory = tmp_path / "edms-backup"
    proofs.load_key(str(directory))
    os.chmod(directory / "proof.key", 0o640)
    assert proofs.load_key(str(directory)) is None


def test_a_directory_others_can_enter_is_not_used(tmp_path):
    directory = tmp_path / "edms-backup"
    proofs.load_key(str(directory))
    os.chmod(directory, 0o755)
    assert proofs.load_key(str(directory)) is None


def test_a_key_that_is_a_link_is_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere.key"
    elsewhere.write_bytes(KEY)
    os.chmod(elsewhere, 0o600)
    directory = tmp_path / "edms-backup"
    directory.mkdir(mode=0o700)
    os.symlink(elsewhere, directory / "proof.key")
    assert proofs.load_key(str(directory)) is None


def test_a_directory_that_is_a_link_is_not_used(tmp_path):
    real = tmp_path / "real"
    proofs.load_key(str(real))
    os.symlink(real, tmp_path / "edms-backup")
    assert proofs.load_key(str(tmp_path / "edms-backup")) is None


def test_a_key_of_another_size_is_not_used(tmp_path):
    directory = tmp_path / "edms-backup"
    directory.mkdir(mode=0o700)
    (directory / "proof.key").write_bytes(b"short")
    os.chmod(directory / "proof.key", 0o600)
    assert proofs.load_key(str(directory)) is None


def test_the_code_digest_is_of_the_verifying_modules():
    digest = proofs.code_digest()
    assert digest is not None
    assert len(digest) == 64
    assert proofs.code_digest() == digest


class _Source:
    """A module as code_digest reads it: its loader gives its source."""

    def __init__(self, data):
        self.__file__ = "source.py"
        self.__loader__ = self
        self.data = data

    def get_data(self, _path):
        return self.data


def test_a_change_to_any_verifying_module_changes_the_code_digest(monkeypatch):
    sources = {name: _Source(name.encode()) for name in proofs.VERIFYING_MODULES}
    monkeypatch.setattr(proofs.importlib, "import_module", sources.__getitem__)
    first = proofs.code_digest()
    for name in proofs.VERIFYING_MODULES:
        sources[name].data += b"# changed"
        changed = proofs.code_digest()
        assert changed != first, name
        first = changed
    monkeypatch.setattr(proofs.sys, "version", "another Python")
    assert proofs.code_digest() != first
    # A module whose source cannot be read: no digest, so no proof.
    sources[proofs.VERIFYING_MODULES[0]].get_data = None
    assert proofs.code_digest() is None


def _imports(name, seen):
    """The collection's modules that name imports, and theirs, into seen."""
    if name in seen:
        return
    seen.add(name)
    root = os.path.join(os.path.dirname(proofs.__file__), os.pardir)
    relative = name[len(proofs._PREFIX) :].split(".")
    path = os.path.join(root, *relative) + ".py"
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(proofs._PREFIX):
            for alias in node.names:
                module = f"{node.module}.{alias.name}"
                below = module[len(proofs._PREFIX) :].split(".")
                if os.path.exists(os.path.join(root, *below) + ".py"):
                    _imports(module, seen)
                else:
                    _imports(node.module, seen)


def test_the_verifying_modules_include_everything_verification_imports():
    seen = set()
    _imports(proofs._PREFIX + "_format.verification", seen)
    assert seen <= set(proofs.VERIFYING_MODULES), seen - set(proofs.VERIFYING_MODULES)
    assert len(seen) >= 5


def test_a_user_without_a_home_gets_no_key(monkeypatch):
    def unknown(_uid):
        raise KeyError("getpwuid(): uid not found: 4242")

    monkeypatch.setattr(proofs, "key_directory", KEY_DIRECTORY)  # the real one
    monkeypatch.setattr(proofs.pwd, "getpwuid", unknown)
    assert proofs.load_key() is None
    assert proofs.issue(SHA, code=CODE) is None


def test_a_refusal_says_why(tmp_path, monkeypatch):
    made = proofs.issue(SHA, key=KEY, code=CODE, now=NOW)
    assert proofs.refusal(made, SHA, key=KEY, code=CODE, now=NOW) is None
    assert "not a proof" in proofs.refusal("yes", SHA, key=KEY, code=CODE, now=NOW)
    old = proofs.refusal(made, SHA, key=KEY, code=CODE, now=NOW + proofs.PROOF_MAX_AGE + 1)
    assert "not from the last 6 hours" in old
    other = proofs.refusal(made, "b" * 64, key=KEY, code=CODE, now=NOW)
    assert "does not hold: made for other bytes" in other
    monkeypatch.setattr(proofs, "key_directory", lambda: str(tmp_path / "none"))
    assert "no proof key can be used" in proofs.refusal(made, SHA, code=CODE, now=NOW)


@pytest.mark.parametrize("maker", ["_commands.archive_create", "_deployment.deployment"])
def test_every_module_that_makes_or_takes_a_proof_carries_the_verifying_modules(maker):
    """Ansible ships a module with the module_utils it imports only: one of
    the verifying modules missing there, code_digest() is None (no proof)."""
    seen = set()
    _imports(proofs._PREFIX + maker, seen)
    assert set(proofs.VERIFYING_MODULES) <= seen, set(proofs.VERIFYING_MODULES) - seen


def test_a_private_copy_is_of_the_bytes_hashed_and_has_no_name(tmp_path):
    original = tmp_path / "archive.zip"
    original.write_bytes(os.urandom(3 << 20) + b"end")
    directory = tmp_path / "edms-backup"
    copy, digest, why = proofs.private_copy(str(original), str(directory))
    assert why is None
    assert copy.startswith("/proc/self/fd/")
    with open(copy, "rb") as handle:
        data = handle.read()
    assert data == original.read_bytes()
    assert digest == hashlib.sha256(data).hexdigest()
    # Written into the original afterwards: the copy stays as it was.
    original.write_bytes(b"changed")
    with open(copy, "rb") as handle:
        assert handle.read() == data
    assert os.listdir(directory) == []  # unnamed: no one can open it by a name
    assert stat.S_IMODE(os.stat(copy).st_mode) & 0o077 == 0
    os.close(int(copy.rsplit("/", 1)[1]))


def test_no_private_copy_where_the_directory_is_open_to_others(tmp_path):
    original = tmp_path / "archive.zip"
    original.write_bytes(b"bytes")
    directory = tmp_path / "edms-backup"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    assert proofs.private_copy(str(original), str(directory)) == (None, None, proofs.NO_KEY)


def test_no_private_copy_that_would_fill_the_disk(tmp_path, monkeypatch):
    original = tmp_path / "archive.zip"
    original.write_bytes(b"bytes")
    monkeypatch.setattr(proofs, "MIN_LEFT", 1 << 62)
    copy, digest, why = proofs.private_copy(str(original), str(tmp_path / "edms-backup"))
    assert (copy, digest) == (None, None)
    assert "would keep less than 1 GiB or 5% free" in why
    assert os.listdir(tmp_path / "edms-backup") == []
