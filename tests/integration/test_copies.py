"""Copies elsewhere on the demo stack (playbooks/copy.yml, and backup.yml
after every backup): to the controller and to an S3-compatible bucket on
loopback (tests/s3server.py), each verified where it landed; a copy damaged in
the bucket found, deleted and sent again; each destination pruned by its own
retention; and restores from a copy in the bucket and from one on the
controller after the host lost its archives, proven by the content digest of
every table and the sha256 of every media file.
"""

import hashlib
import json
import os
import shutil
import tempfile

import pytest

from tests.s3server import client, s3_server

from .conftest import ROOT, content, manage, run_playbook

HOST = "edms-demo"
BUCKET = "lab-backups"
PREFIX = "edms/demo"


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def output(proc):
    return proc.stdout[-6000:] + proc.stderr[-3000:]


def succeeded(proc):
    assert proc.returncode == 0, output(proc)
    return proc


def zips(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".zip"))


def objects(s3):
    found = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "/").get("Contents", [])
    return sorted(item["Key"].rsplit("/", 1)[1] for item in found)


def lose(archives, name):
    """The host loses an archive (and what was recorded beside it)."""
    for suffix in ("", ".status.json"):
        os.remove(os.path.join(archives, name + suffix))


@pytest.fixture(scope="module")
def copies(stack):
    work = tempfile.mkdtemp(prefix="edms-copies-", dir=os.path.join(ROOT, "build"))
    archives = os.path.join(work, "archives")
    controller = os.path.join(work, "controller")
    found = {"archives": archives, "controller": controller}
    with s3_server() as server:
        s3 = client(server)
        s3.create_bucket(Bucket=BUCKET)
        found["secret"] = server["secret_key"]
        extra = {
            "edms_archive_dir": archives,
            "edms_copy_destinations": [
                {"name": "controller", "kind": "controller", "path": controller},
                {
                    "name": "bucket",
                    "kind": "s3",
                    "bucket": BUCKET,
                    "prefix": PREFIX,
                    "endpoint_url": server["endpoint_url"],
                    "region": server["region"],
                    "access_key": server["access_key"],
                    "secret_key": server["secret_key"],
                    "keep_last": 1,
                    "keep_daily": 0,
                    "keep_weekly": 0,
                },
            ],
        }

        def play(name, *more, env=None):
            return run_playbook(name, extra, *more, env=env)

        found["backup"] = succeeded(play("backup.yml"))
        (first,) = zips(archives)
        found["first"] = first
        found["first_state"] = content()
        with open(os.path.join(archives, first + ".status.json")) as handle:
            found["first_status"] = json.load(handle)
        found["bucket_after_first"] = objects(s3)
        key = f"{PREFIX}/{first}"
        head = s3.head_object(Bucket=BUCKET, Key=key)
        found["first_metadata"] = head["Metadata"]
        found["first_object"] = hashlib.sha256(
            s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        ).hexdigest()

        # Bit rot behind the service: other bytes, the same metadata.
        body = bytearray(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        body[len(body) // 2] ^= 0xFF
        s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(body), Metadata=head["Metadata"])
        # As verbose as an operator chasing a problem would run it.
        found["damaged"] = play("copy.yml", env={"ANSIBLE_VERBOSITY": "3"})
        found["after_damage"] = hashlib.sha256(
            s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        ).hexdigest()

        manage("simulate_activity", "--iterations", "2", "--interval", "0")
        found["second_backup"] = succeeded(play("backup.yml"))
        second = [n for n in zips(archives) if n != first and n.startswith("edms_")]
        found["second"] = max(second)
        found["second_state"] = content()
        found["bucket_after_second"] = objects(s3)
        found["controller_after_second"] = zips(controller)
        with open(os.path.join(archives, first + ".status.json")) as handle:
            found["first_status_after_second"] = json.load(handle)

        manage("simulate_activity", "--iterations", "2", "--interval", "0")
        found["changed_state"] = content()
        found["unknown_bucket"] = play(
            "restore.yml",
            f"edms_archive=s3://other-bucket/{PREFIX}/{found['second']}",
            f"edms_restore_confirm={HOST}",
        )
        found["after_unknown"] = content()

        lose(archives, found["second"])
        found["restore_from_bucket"] = succeeded(
            play(
                "restore.yml",
                f"edms_archive=s3://{BUCKET}/{PREFIX}/{found['second']}",
                f"edms_restore_confirm={HOST}",
            )
        )
        found["restored_from_bucket"] = content()

        lose(archives, first)
        found["restore_from_controller"] = succeeded(
            play(
                "restore.yml",
                f"edms_archive=controller:{controller}/{first}",
                f"edms_restore_confirm={HOST}",
            )
        )
        found["restored_from_controller"] = content()
    yield found
    shutil.rmtree(work, ignore_errors=True)


def test_the_backup_is_copied_to_the_controller_and_the_bucket_and_recorded(copies):
    first = copies["first"]
    source = copies["first_status"]["verification"]["sha256"]
    assert sha256(os.path.join(copies["controller"], first)) == source
    assert copies["bucket_after_first"] == [first]
    assert copies["first_object"] == source
    assert copies["first_metadata"]["edms-sha256"] == source
    assert copies["first_metadata"]["edms-source-host"] == HOST
    recorded = copies["first_status"]["copies"]["destinations"]
    assert recorded["bucket"]["location"] == f"s3://{BUCKET}/{PREFIX}/{first}"
    assert recorded["controller"]["location"] == f"controller:{copies['controller']}/{first}"


def test_the_buckets_secret_never_reaches_the_output(copies):
    for proc in (copies["backup"], copies["damaged"], copies["restore_from_bucket"]):
        assert copies["secret"] not in proc.stdout + proc.stderr


def test_a_copy_damaged_in_the_bucket_is_found_deleted_and_sent_again(copies):
    proc = copies["damaged"]
    assert proc.returncode != 0, output(proc)
    assert "destination bucket" in proc.stdout
    assert "no longer verifies" in proc.stdout
    assert copies["after_damage"] == copies["first_status"]["verification"]["sha256"]


def test_each_destination_keeps_its_own_retention(copies):
    assert copies["bucket_after_second"] == [copies["second"]]
    assert copies["controller_after_second"] == sorted([copies["first"], copies["second"]])


def test_a_copy_its_destination_pruned_is_no_longer_listed_with_the_archive(copies):
    recorded = copies["first_status_after_second"]["copies"]["destinations"]
    assert sorted(recorded) == ["controller"]


def test_a_copy_in_a_bucket_no_destination_names_is_refused_and_nothing_changes(copies):
    proc = copies["unknown_bucket"]
    assert proc.returncode != 0, output(proc)
    assert "Nothing was changed" in proc.stdout
    assert copies["after_unknown"] == copies["changed_state"]


def test_a_restore_from_the_bucket_gives_back_every_table_and_media_file(copies):
    assert "Brought s3://" in copies["restore_from_bucket"].stdout
    assert copies["changed_state"] != copies["second_state"]
    assert copies["restored_from_bucket"] == copies["second_state"]


def test_a_restore_from_the_controller_gives_back_every_table_and_media_file(copies):
    assert "Brought controller:" in copies["restore_from_controller"].stdout
    assert copies["restored_from_controller"] == copies["first_state"]
