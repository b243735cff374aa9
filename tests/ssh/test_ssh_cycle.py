"""The operators' path over real SSH as the unprivileged user lims
(tests/ssh/conftest.py): the host made ready by playbooks/prepare_host.yml;
the storage phase refused without root, changing nothing, then done with
become; backup, verification, rehearsal, a gated restore and a rollback, each
proven by per-table digests computed by PostgreSQL and media hashes computed
by sha256sum (tests/pg_digest.py); and a run killed while it holds the lock,
whose lock ends with its SSH connection so that the next run proceeds.
Then copies: to the controller and to a second SSH host, each verified where
it landed; a copy damaged there found, removed and sent again; each
destination pruned by its own retention.
"""

import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from tests import pg_digest
from tests.ssh.conftest import (
    ARCHIVES,
    BUILD,
    COMPOSE_FILE,
    CONTROL_PERSIST,
    COPY_HOME,
    COPY_HOST,
    DB_PORT,
    HOST,
    PROJECT,
    VENV,
    ansible_env,
    compose,
    playbook_argv,
    run,
    sudo_rule,
)

BACKUPS = os.path.join(PROJECT, "backups")
MEDIA = "/app/storage/media"
LOCK = os.path.join(PROJECT, ".edms-backup.lock")


def output(proc):
    return proc.stdout[-6000:] + proc.stderr[-3000:]


def succeeded(proc):
    assert proc.returncode == 0, output(proc)
    return proc


def environment():
    found = {}
    with open(os.path.join(PROJECT, ".env"), encoding="utf-8") as handle:
        for line in handle:
            key, sep, value = line.strip().partition("=")
            if sep:
                found[key] = value
    return found


def state():
    env = environment()
    tables = pg_digest.table_digests(
        "127.0.0.1", DB_PORT, env["POSTGRES_DB"], env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]
    )
    backend = compose("ps", "-q", "backend").stdout.strip()
    return {"tables": tables, "media": pg_digest.media_hashes(backend, MEDIA)}


def archives():
    return set(glob.glob(os.path.join(ARCHIVES, "*.zip")))


def new_archive(before):
    made = archives() - before
    assert made, f"no new archive in {ARCHIVES}"
    return max(made)


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def writer(seconds):
    """The demo's activity simulator writes documents and media for a while."""
    compose("--profile", "activity", "up", "-d", "worker")
    time.sleep(seconds)
    compose("--profile", "activity", "stop", "worker")


@pytest.fixture(scope="module")
def cycle(ssh_host):
    inventory, entry = ssh_host
    found = {"entry": entry}

    def play(name, *extra):
        return run(playbook_argv(inventory, name, *extra), check=False, env=ansible_env())

    # The host's own Python has none of the collection's libraries.
    found["not_ready"] = play("preflight.yml", "ansible_python_interpreter=/usr/bin/python3")
    found["prepare"] = succeeded(play("prepare_host.yml"))
    found["prepare_again"] = succeeded(play("prepare_host.yml"))

    compose_before = sha256(COMPOSE_FILE)
    found["storage_check"] = run(
        [*playbook_argv(inventory, "storage.yml"), "--check", "--diff"],
        check=False,
        env=ansible_env(),
    )
    found["storage_refused"] = play("storage.yml")
    found["after_refusal"] = {
        "compose": sha256(COMPOSE_FILE) == compose_before,
        "backups": os.path.exists(BACKUPS),
    }
    with sudo_rule():
        found["storage"] = succeeded(play("storage.yml", "storage_become=true"))
    found["backups_stat"] = os.stat(BACKUPS)

    before = archives()
    succeeded(play("backup.yml"))
    archive = new_archive(before)
    found["archive"] = archive
    found["archive_stat"] = os.stat(archive)
    found["verify"] = succeeded(play("verify.yml", f"edms_archive={archive}"))
    found["rehearse"] = succeeded(play("rehearse.yml", f"edms_archive={archive}"))
    found["before"] = state()

    writer(3)
    found["changed"] = state()
    found["restore_ungated"] = play("restore.yml", f"edms_archive={archive}")
    found["after_ungated"] = state()
    before = archives()
    found["restore"] = succeeded(
        play("restore.yml", f"edms_archive={archive}", f"edms_restore_confirm={HOST}")
    )
    safety = new_archive(before)
    found["restored"] = state()
    found["rollback"] = succeeded(
        play("rollback.yml", f"edms_archive={safety}", f"edms_restore_confirm={HOST}")
    )
    found["rolled_back"] = state()
    return found


def test_the_hosts_own_python_is_named_not_ready_with_the_playbook_that_fixes_it(cycle):
    proc = cycle["not_ready"]
    assert proc.returncode != 0, output(proc)
    assert "prepare_host.yml" in proc.stdout, output(proc)


def test_prepare_host_makes_the_environment_as_lims_and_changes_nothing_the_second_time(cycle):
    entry = cycle["entry"]
    python = os.path.join(VENV, "bin", "python")
    assert os.stat(os.path.join(VENV, "pyvenv.cfg")).st_uid == entry.pw_uid
    for library in ("docker", "ruamel.yaml", "psycopg2", "jmespath"):
        run([python, "-c", f"import {library}"], user="lims")
    recap = cycle["prepare_again"].stdout.split("PLAY RECAP", 1)[1]
    assert "changed=0" in recap, recap
    assert "failed=0" in recap, recap


def test_storage_without_root_stops_before_changing_anything_and_says_what_to_run(cycle):
    proc = cycle["storage_refused"]
    assert proc.returncode != 0, output(proc)
    text = proc.stdout
    assert "only root can do. Nothing was changed" in text, output(proc)
    assert "storage_become=true" in text
    assert f"install -d -o 1000 -g 1000 -m 0775 {BACKUPS}" in text
    assert cycle["after_refusal"] == {"compose": True, "backups": False}


def test_storage_in_check_mode_shows_the_change_and_warns_that_it_needs_root(cycle):
    proc = cycle["storage_check"]
    assert proc.returncode == 0, output(proc)
    assert "./backups:/app/backups" in proc.stdout  # the diff
    assert "only root can do" in proc.stdout + proc.stderr


def test_storage_with_become_gives_the_directory_to_the_containers_user(cycle):
    st = cycle["backups_stat"]
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o775)
    with open(COMPOSE_FILE) as handle:
        text = handle.read()
    assert "./backups:/app/backups" in text
    # The compose file stays lims's: become edits it in place.
    assert os.stat(COMPOSE_FILE).st_uid == cycle["entry"].pw_uid


def test_the_archive_is_lims_own_and_readable_by_no_one_else(cycle):
    st = cycle["archive_stat"]
    assert st.st_uid == cycle["entry"].pw_uid
    assert st.st_mode & 0o077 == 0


def test_a_restore_without_the_gate_is_refused_and_changes_nothing(cycle):
    proc = cycle["restore_ungated"]
    assert proc.returncode != 0, output(proc)
    assert "edms_restore_confirm" in proc.stdout
    assert cycle["after_ungated"] == cycle["changed"]


def test_the_writer_changed_the_data_between_backup_and_restore(cycle):
    assert cycle["changed"]["tables"] != cycle["before"]["tables"]


def test_a_restore_over_ssh_gives_back_every_table_and_media_file(cycle):
    assert pg_digest.differences(cycle["before"]["tables"], cycle["restored"]["tables"]) == []
    assert cycle["restored"]["media"] == cycle["before"]["media"]


def test_a_rollback_over_ssh_puts_back_what_the_restore_replaced(cycle):
    assert pg_digest.differences(cycle["changed"]["tables"], cycle["rolled_back"]["tables"]) == []
    assert cycle["rolled_back"]["media"] == cycle["changed"]["media"]


def test_a_killed_run_holding_the_lock_lets_the_next_run_proceed_within_seconds(ssh_host, cycle):
    """The lock's lease is bound to the run: over SSH its anchor is the sshd
    of the controller's connection, which ends ControlPersist seconds after
    the controller does. A rehearsal, whose first task on the host takes the
    lock over a connection opened just before it, is killed (SIGKILL, as a
    cancelled AWX job's container is) while it holds the lock; the next run,
    a backup on a connection of its own as a new AWX job's is, takes the lock
    over and completes."""
    inventory, _entry = ssh_host
    first_cp = tempfile.mkdtemp(prefix="edms-ssh-cp-")
    killed = subprocess.Popen(
        playbook_argv(inventory, "rehearse.yml", f"edms_archive={cycle['archive']}"),
        env=ansible_env(first_cp),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not os.path.exists(LOCK):
        assert killed.poll() is None, "the rehearsal ended before it took the lock"
        assert time.monotonic() < deadline, "the rehearsal never took the lock"
        time.sleep(0.1)
    with open(LOCK) as handle:
        taken = json.load(handle)
    assert taken["operation"] == "rehearsal"
    assert "kept: ControlPersist" in taken["anchor"]["kind"]
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    killed_at = time.monotonic()
    assert os.path.exists(LOCK)

    # The lease: ControlPersist, then one look of the holder (2 s), then the
    # next run's own start. The test allows ten times that margin.
    lease = CONTROL_PERSIST + 2
    second_cp = tempfile.mkdtemp(prefix="edms-ssh-cp-")
    proc = None
    while time.monotonic() - killed_at < 10 * (lease + 5):
        proc = run(playbook_argv(inventory, "backup.yml"), check=False, env=ansible_env(second_cp))
        if proc.returncode == 0 or "another operation is running" not in proc.stdout:
            break
        time.sleep(1)
    waited = time.monotonic() - killed_at
    assert proc is not None
    assert proc.returncode == 0, output(proc)
    assert "took over the stale lock" in proc.stdout + proc.stderr, output(proc)
    assert waited < 10 * (lease + 5), waited
    assert not os.path.exists(LOCK)


CONTROLLER_COPIES = os.path.join(BUILD, "copies", HOST)
HOST_COPIES = os.path.join(COPY_HOME, "edms-copies", HOST)
DESTINATIONS = {
    "edms_copy_destinations": [
        {"name": "controller", "kind": "controller", "path": CONTROLLER_COPIES},
        {
            "name": "offsite",
            "kind": "host",
            "host": COPY_HOST,
            "path": HOST_COPIES,
            "keep_last": 1,
            "keep_daily": 0,
            "keep_weekly": 0,
        },
    ]
}


def status_of(path):
    with open(path + ".status.json") as handle:
        return json.load(handle)


def copies_at(directory):
    return sorted(glob.glob(os.path.join(directory, "edms_*.zip")))


@pytest.fixture(scope="module")
def copies(ssh_host, cycle):
    inventory, _entry = ssh_host
    found = {}
    for directory in (CONTROLLER_COPIES, HOST_COPIES):
        shutil.rmtree(directory, ignore_errors=True)
    destinations = os.path.join(BUILD, "destinations.json")
    with open(destinations, "w") as handle:
        json.dump(DESTINATIONS, handle)

    def play(name, *extra):
        argv = [*playbook_argv(inventory, name, *extra), "-e", "@" + destinations]
        return run(argv, check=False, env=ansible_env())

    found["preflight_before"] = succeeded(play("preflight.yml"))
    before = archives()
    found["backup"] = succeeded(play("backup.yml"))
    first = new_archive(before)
    found["first"] = first
    found["first_sha256"] = sha256(first)
    found["first_status"] = status_of(first)
    found["controller_after_first"] = copies_at(CONTROLLER_COPIES)
    found["host_after_first"] = {
        path: (sha256(path), os.stat(path)) for path in copies_at(HOST_COPIES)
    }
    found["preflight_after"] = succeeded(play("preflight.yml"))
    found["again"] = succeeded(play("copy.yml"))

    # A copy damaged where it is kept.
    damaged = os.path.join(HOST_COPIES, os.path.basename(first))
    with open(damaged, "r+b") as handle:
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 0xFF]))
    found["damaged"] = play("copy.yml")
    found["host_after_damage"] = {path: sha256(path) for path in copies_at(HOST_COPIES)}

    time.sleep(1)  # archive names carry the second
    before = archives()
    succeeded(play("backup.yml"))
    found["second"] = new_archive(before)
    found["second_state"] = state()
    found["controller_after_second"] = copies_at(CONTROLLER_COPIES)
    found["host_after_second"] = copies_at(HOST_COPIES)

    # The host loses the archive; the copy on the second host brings it back.
    writer(3)
    found["changed_state"] = state()
    second = found["second"]
    for path in (second, second + ".status.json"):
        os.remove(path)
    remote = f"{COPY_HOST}:{HOST_COPIES}/{os.path.basename(second)}"
    found["restore_from_host"] = play(
        "restore.yml", f"edms_archive={remote}", f"edms_restore_confirm={HOST}"
    )
    found["restored_from_host"] = state()
    return found


def test_preflight_warns_until_the_newest_backup_has_a_verified_copy_elsewhere(copies):
    assert "WARNING backup_copies" in copies["preflight_before"].stdout
    after = copies["preflight_after"].stdout
    assert "OK backup_copies" in after, after[-3000:]
    line = " ".join(after.split("OK backup_copies", 1)[1][:600].split())
    assert f"offsite ({COPY_HOST}:{HOST_COPIES}/" in line, line


def test_the_backup_is_copied_to_the_controller_and_to_the_second_host_verified_there(copies):
    name = os.path.basename(copies["first"])
    assert [os.path.basename(p) for p in copies["controller_after_first"]] == [name]
    controller_copy = copies["controller_after_first"][0]
    assert sha256(controller_copy) == copies["first_sha256"]
    assert status_of(controller_copy)["verification"]["ok"] is True
    ((host_copy, (digest, st)),) = copies["host_after_first"].items()
    assert os.path.basename(host_copy) == name
    assert digest == copies["first_sha256"]
    assert st.st_uid == pwd.getpwnam("edmscopy").pw_uid
    assert st.st_mode & 0o077 == 0
    recorded = copies["first_status"]["copies"]["destinations"]
    assert sorted(recorded) == ["controller", "offsite"]
    assert recorded["offsite"]["location"] == f"{COPY_HOST}:{host_copy}"
    assert recorded["offsite"]["sha256"] == copies["first_sha256"]


def test_copying_again_checks_the_copies_in_place_and_sends_nothing(copies):
    out = copies["again"].stdout
    assert "already there, sha256 checked" in out
    fetch = out.split("Fetch the archive to the controller", 1)[1].split("TASK [", 1)[0]
    assert "skipping:" in fetch, fetch
    assert "changed:" not in fetch, fetch
    recap = out.split("PLAY RECAP", 1)[1]
    assert "failed=0" in recap


def test_a_copy_damaged_at_the_destination_is_found_removed_and_sent_again(copies):
    proc = copies["damaged"]
    assert proc.returncode != 0, output(proc)
    assert "destination offsite" in proc.stdout
    assert "no longer verifies" in proc.stdout
    # Sent again and verified in the same run: the destination is whole, the
    # run still fails so that someone looks at that disk.
    assert list(copies["host_after_damage"].values()) == [copies["first_sha256"]]


def test_each_destination_keeps_its_own_retention(copies):
    first, second = (os.path.basename(copies[k]) for k in ("first", "second"))
    assert [os.path.basename(p) for p in copies["host_after_second"]] == [second]
    controller = [os.path.basename(p) for p in copies["controller_after_second"]]
    assert controller == sorted([first, second])


def test_a_restore_from_the_second_hosts_copy_gives_back_every_table_and_media_file(copies):
    proc = copies["restore_from_host"]
    assert proc.returncode == 0, output(proc)
    assert f"Brought {COPY_HOST}:" in proc.stdout
    assert copies["changed_state"]["tables"] != copies["second_state"]["tables"]
    restored, expected = copies["restored_from_host"], copies["second_state"]
    assert pg_digest.differences(expected["tables"], restored["tables"]) == []
    assert restored["media"] == expected["media"]
