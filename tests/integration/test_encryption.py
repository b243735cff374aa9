"""Archives encrypted at rest on the demo stack (edms_encrypt_to): the backup
is written, verified, encrypted to an age recipient and read back without the
private key on the host; its bytes hold none of the archive's text; the age
command reads it; the catalogue lists it without the key; verification and
restore refuse it without the key or with a wrong one, changing nothing, and
with the key verify it and restore every table and media file (digests
computed by PostgreSQL, sha256 of every media file).
"""

import json
import os
import shutil
import subprocess
import tempfile
import zipfile

import pytest

from .conftest import ROOT, content, manage, run_module, run_playbook

HOST = "edms-demo"
AGE_MAGIC = b"age-encryption.org/v1\n"


def keypair():
    """(secret key line, recipient) made by the age-keygen command."""
    proc = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True)
    secret = next(line for line in proc.stdout.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    recipient = subprocess.run(
        ["age-keygen", "-y"], input=secret + "\n", capture_output=True, text=True, check=True
    ).stdout.strip()
    return secret, recipient


def output(proc):
    return proc.stdout[-6000:] + proc.stderr[-3000:]


def succeeded(proc):
    assert proc.returncode == 0, output(proc)
    return proc


def zips(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".zip") and n.startswith("edms_"))


def read_status(archives, name):
    with open(os.path.join(archives, name + ".status.json"), encoding="utf-8") as handle:
        return json.load(handle)


def listing(directory):
    return sorted(os.listdir(directory))


@pytest.fixture(scope="module")
def sealed(stack):
    work = tempfile.mkdtemp(prefix="edms-sealed-", dir=os.path.join(ROOT, "build"))
    archives = os.path.join(work, "archives")
    secret, recipient = keypair()
    wrong, _other = keypair()
    found = {"archives": archives, "secret": secret, "wrong": wrong, "work": work}
    base = {"edms_archive_dir": archives, "edms_encrypt_to": [recipient]}

    def play(name, *more, env=None):
        return run_playbook(name, base, *more, env=env)

    plain_dir = os.path.join(work, "plain")
    succeeded(run_playbook("backup.yml", {"edms_archive_dir": plain_dir}))
    (plain_name,) = zips(plain_dir)
    found["plain_path"] = os.path.join(plain_dir, plain_name)
    found["backup"] = succeeded(play("backup.yml", env={"ANSIBLE_VERBOSITY": "3"}))
    (name,) = zips(archives)
    found["name"] = name
    path = os.path.join(archives, name)
    found["state"] = content()
    found["status"] = read_status(archives, name)
    with open(path, "rb") as handle:
        found["bytes"] = handle.read()
    plain = os.path.join(work, "plain.zip")
    key_file = os.path.join(work, "key.txt")
    with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        handle.write(secret + "\n")
    found["age_cli"] = subprocess.run(
        ["age", "-d", "-i", key_file, "-o", plain, path], capture_output=True, check=False
    )
    found["plain_zip"] = plain
    found["listed"] = run_module("archive_info", {"backup_dir": archives})
    found["listing_before"] = listing(archives)

    found["verify_without_key"] = play("verify.yml", f"edms_archive={path}")
    found["verify_wrong_key"] = play(
        "verify.yml", f"edms_archive={path}", {"edms_decryption_key": wrong}
    )
    found["status_after_refusals"] = read_status(archives, name)

    manage("simulate_activity", "--iterations", "2", "--interval", "0")
    found["changed_state"] = content()
    restore = ("restore.yml", f"edms_archive={path}", f"edms_restore_confirm={HOST}")
    found["restore_without_key"] = play(*restore)
    found["after_without_key"] = content()
    found["restore_wrong_key"] = play(*restore, {"edms_decryption_key": wrong})
    found["after_wrong_key"] = content()
    # A plain archive, while the safety backup would be encrypted: the key
    # that would put it back must be given, and must open it.
    plain = ("restore.yml", f"edms_archive={found['plain_path']}", f"edms_restore_confirm={HOST}")
    found["plain_without_key"] = play(*plain)
    found["plain_wrong_key"] = play(*plain, {"edms_decryption_key": wrong})
    found["after_plain_refusals"] = content()
    found["listing_after_refusals"] = listing(archives)

    found["rehearse_with_key"] = play(
        "rehearse.yml", f"edms_archive={path}", {"edms_decryption_key": secret}
    )
    found["verify_with_key"] = play(
        "verify.yml",
        f"edms_archive={path}",
        {"edms_decryption_key": secret},
        env={"ANSIBLE_VERBOSITY": "3"},
    )
    found["restore_with_key"] = play(
        *restore, {"edms_decryption_key": secret}, env={"ANSIBLE_VERBOSITY": "3"}
    )
    found["restored"] = content()
    found["safety"] = [n for n in zips(archives) if n != name]
    yield found
    shutil.rmtree(work, ignore_errors=True)


def test_the_archive_is_encrypted_and_recorded_as_verified_before_it_was(sealed):
    assert sealed["bytes"].startswith(AGE_MAGIC)
    verification = sealed["status"]["verification"]
    assert verification["ok"] is True
    assert verification["encrypted"] is True
    encryption = sealed["status"]["encryption"]
    assert encryption["format"] == "age"
    assert encryption["metadata"]["counts"]
    assert "members" not in encryption["metadata"]
    # No plain copy is left beside it.
    assert [n for n in sealed["listing_before"] if "partial" in n] == []


def test_no_text_of_the_archive_is_in_its_bytes(sealed):
    with zipfile.ZipFile(sealed["plain_zip"]) as plain:
        names = plain.namelist()
        fixture = plain.read("database_backup.json")
    # What a plain archive shows in the clear: member names, ZIP signatures,
    # and the bytes of stored members (media files).
    markers = [b"PK\x03\x04", b"PK\x01\x02", b"database_backup.json", b"metadata.json"]
    markers += [name.encode() for name in names if name.startswith("media/")][:5]
    assert len(markers) > 4
    for marker in markers:
        assert marker not in sealed["bytes"], marker
    assert b'"model"' in fixture  # the age command gives the archive back whole
    assert b'"model"' not in sealed["bytes"]


def test_the_age_command_reads_it_with_the_key(sealed):
    assert sealed["age_cli"].returncode == 0, sealed["age_cli"].stderr
    with zipfile.ZipFile(sealed["plain_zip"]) as plain:
        assert plain.testzip() is None
        assert "database_backup.json" in plain.namelist()


def test_the_catalogue_lists_it_without_the_key(sealed):
    rc, result = sealed["listed"]
    assert rc == 0, result
    (entry,) = [a for a in result["archives"] if a["name"] == sealed["name"]]
    assert entry["encrypted"] is True
    assert entry["unreadable"] is None
    assert entry["counts"]
    assert entry["verification"]["state"] == "passed"


def test_verification_without_the_key_is_refused_with_the_reason(sealed):
    proc = sealed["verify_without_key"]
    assert proc.returncode != 0, output(proc)
    assert "no decryption key was given" in proc.stdout


def test_a_wrong_key_is_refused_and_changes_nothing(sealed):
    proc = sealed["verify_wrong_key"]
    assert proc.returncode != 0, output(proc)
    assert "not one it is encrypted to" in proc.stdout
    assert sealed["status_after_refusals"]["verification"] == sealed["status"]["verification"]
    for proc in (sealed["restore_without_key"], sealed["restore_wrong_key"]):
        assert proc.returncode != 0, output(proc)
    # The restore refuses before its plan: that key could not put it back either.
    assert "opens none of the recipients" in sealed["restore_wrong_key"].stdout
    assert "no decryption key was given" in sealed["restore_without_key"].stdout
    assert sealed["changed_state"] != sealed["state"]
    assert sealed["after_without_key"] == sealed["changed_state"]
    assert sealed["after_wrong_key"] == sealed["changed_state"]
    assert sealed["listing_after_refusals"] == sealed["listing_before"]


def test_a_restore_whose_safety_backup_could_not_be_read_back_is_refused(sealed):
    no_key, wrong = sealed["plain_without_key"], sealed["plain_wrong_key"]
    for proc in (no_key, wrong):
        assert proc.returncode != 0, output(proc)
        assert "Nothing was changed" in proc.stdout
        assert "safety backup is encrypted" in proc.stdout
    assert "no decryption key was given" in no_key.stdout
    assert "opens none of the recipients" in wrong.stdout
    assert sealed["after_plain_refusals"] == sealed["changed_state"]


def test_with_the_key_it_verifies_rehearses_and_restores_every_table_and_media_file(sealed):
    succeeded(sealed["rehearse_with_key"])
    succeeded(sealed["verify_with_key"])
    succeeded(sealed["restore_with_key"])
    assert sealed["restored"] == sealed["state"]


def test_the_safety_backup_of_an_encrypted_deployment_is_encrypted_too(sealed):
    assert sealed["safety"]
    for name in sealed["safety"]:
        with open(os.path.join(sealed["archives"], name), "rb") as handle:
            assert handle.read(len(AGE_MAGIC)) == AGE_MAGIC


def test_the_key_never_reaches_the_output(sealed):
    for key in (
        "backup",
        "verify_wrong_key",
        "rehearse_with_key",
        "verify_with_key",
        "restore_with_key",
    ):
        proc = sealed[key]
        assert sealed["secret"] not in proc.stdout + proc.stderr, key
        assert sealed["wrong"] not in proc.stdout + proc.stderr, key
    # The key is not written beside the archives either.
    for name in os.listdir(sealed["archives"]):
        path = os.path.join(sealed["archives"], name)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                assert sealed["secret"].encode() not in handle.read(), name
