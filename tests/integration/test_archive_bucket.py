"""archive_bucket against a real S3-compatible server (moto in server mode,
tests/s3server.py), no mock of boto3 or S3: a copy counts only once it reads
back equal, a damaged one is deleted, another's object is never touched, a
bucket is pruned by the retention rules without touching anything else, and a
fetched copy is kept only once its sha256 is the recorded one.

The server authenticates: moto checks no credentials until told to, so the
fixture first makes an IAM user allowed everything, then turns the checks on;
from then every request must be signed with that user's key, and wrong
credentials are refused as a real service refuses them."""

import contextlib
import json
import os
import stat
import urllib.request
import uuid
from datetime import UTC, datetime

import boto3
import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_bucket import (
    BucketError,
    bucket_command,
    fetched,
    present,
    pruned,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import archive_name
from ansible_collections.edms.backup.plugins.module_utils._platform.files import file_sha256
from ansible_collections.edms.backup.plugins.modules.archive_bucket import argument_spec

from tests.s3server import client, free_port, s3_server
from tests.unit.plugins.module_utils._format.test_archive import NAME, write_archive

PREFIX = "edms/staging"
HOST = "staging"
DESTINATION = "offsite"
OTHER_SHA256 = "0" * 64
# Stands for the sha256 of the test's archive in parameters.
SOURCE = "<source sha256>"


def authenticating(server):
    """Make the server check every request's signature and key from now on;
    returns the server with the only credentials it accepts."""
    iam = boto3.client(
        "iam",
        endpoint_url=server["endpoint_url"],
        region_name=server["region"],
        aws_access_key_id=server["access_key"],
        aws_secret_access_key=server["secret_key"],
    )
    iam.create_user(UserName="edms-backup")
    iam.put_user_policy(
        UserName="edms-backup",
        PolicyName="everything",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="edms-backup")["AccessKey"]
    # No proxy between the tests and the loopback server.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        server["endpoint_url"] + "/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with opener.open(request, timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"
    return dict(server, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])


@pytest.fixture(scope="module")
def server():
    with s3_server() as started:
        yield authenticating(started)


@pytest.fixture
def s3(server):
    return client(server)


@pytest.fixture
def bucket(s3):
    name = "edms-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def archive(tmp_path):
    directory = tmp_path / "source"
    directory.mkdir()
    return write_archive(directory)


def params(server, bucket, **options):
    """The params the module would pass: every option of its argument_spec,
    its defaults filled in, then the task's options."""
    values = {option: spec.get("default") for option, spec in argument_spec().items()}
    values.update(
        bucket=bucket,
        prefix=PREFIX,
        endpoint_url=server["endpoint_url"],
        region=server["region"],
        access_key=server["access_key"],
        secret_key=server["secret_key"],
        destination=DESTINATION,
    )
    values.update(options)
    assert set(values) == set(argument_spec())
    return values


def putting(server, bucket, path, **options):
    """The params of state=present for the archive at path, from HOST."""
    task = {
        "name": os.path.basename(path),
        "sha256": file_sha256(path),
        "source_host": HOST,
        "src": str(path),
        "label": "manual",
        "created_at": "2026-01-01T13:00:29.512345Z",
    }
    task.update(options)
    return params(server, bucket, **task)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def keys(s3, bucket):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def stored(s3, bucket, key):
    """(bytes, metadata) of an object."""
    answer = s3.get_object(Bucket=bucket, Key=key)
    return answer["Body"].read(), answer["Metadata"]


def key(name=NAME, prefix=PREFIX):
    return f"{prefix}/{name}" if prefix else name


def damage(s3, bucket, object_key):
    """Other bytes under the same key and the same metadata: bit rot behind
    the service, as the module would see it."""
    data, metadata = stored(s3, bucket, object_key)
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=object_key, Body=bytes(damaged), Metadata=metadata)
    return bytes(damaged)


# present


def test_present_uploads_reads_back_and_records_the_archive(server, s3, bucket, archive):
    task = putting(server, bucket, archive)
    result = bucket_command(task)
    assert (result["present"], result["copied"], result["changed"]) == (True, True, True)
    assert result["sha256"] == task["sha256"]
    assert result["key"] == key()
    assert result["location"] == f"s3://{bucket}/{key()}"
    assert result["destination"] == DESTINATION
    assert keys(s3, bucket) == [key()]
    data, metadata = stored(s3, bucket, key())
    assert data == read(archive)
    assert metadata == {
        "edms-sha256": task["sha256"],
        "edms-source-host": HOST,
        "edms-label": "manual",
        "edms-created-at": "2026-01-01T13:00:29.512345Z",
    }
    etag = s3.head_object(Bucket=bucket, Key=key())["ETag"]

    again = bucket_command(task)
    assert (again["present"], again["copied"], again["changed"]) == (True, False, False)
    assert again["sha256"] == task["sha256"]
    assert s3.head_object(Bucket=bucket, Key=key())["ETag"] == etag
    # Without src, the copy there is found and read back just the same.
    found = bucket_command(dict(task, src=None, label=None, created_at=None))
    assert (found["present"], found["copied"], found["changed"]) == (True, False, False)


def test_present_without_a_prefix_puts_the_copy_at_the_top(server, s3, bucket, archive):
    result = bucket_command(putting(server, bucket, archive, prefix=""))
    assert result["key"] == NAME
    assert keys(s3, bucket) == [NAME]


def test_present_in_check_mode_uploads_nothing(server, s3, bucket, archive):
    result = bucket_command(putting(server, bucket, archive), check_mode=True)
    assert (result["present"], result["copied"], result["changed"]) == (False, False, True)
    assert keys(s3, bucket) == []


def test_present_without_src_and_no_copy_changes_nothing(server, s3, bucket, archive):
    result = bucket_command(putting(server, bucket, archive, src=None))
    assert (result["present"], result["copied"], result["changed"]) == (False, False, False)
    assert keys(s3, bucket) == []


def test_an_upload_that_does_not_verify_is_deleted(server, s3, bucket, tmp_path, archive):
    # The file given is not the archive whose sha256 the task names.
    other = tmp_path / NAME
    other.write_bytes(read(archive) + b"\0")
    with pytest.raises(BucketError, match="does not verify") as failure:
        bucket_command(putting(server, bucket, archive, src=str(other)))
    assert failure.value.partial["removed"] == [key()]
    assert keys(s3, bucket) == []


def test_a_damaged_copy_is_deleted_only_outside_check_mode(server, s3, bucket, archive):
    task = putting(server, bucket, archive, src=None)
    bucket_command(putting(server, bucket, archive))
    damaged = damage(s3, bucket, key())

    with pytest.raises(BucketError, match="no longer verifies") as failure:
        bucket_command(task, check_mode=True)
    assert "removed" not in failure.value.partial
    assert "not deleted" in str(failure.value)
    assert stored(s3, bucket, key())[0] == damaged

    with pytest.raises(BucketError, match="no longer verifies") as failure:
        bucket_command(task)
    assert failure.value.partial["removed"] == [key()]
    assert file_sha256(archive) in str(failure.value)
    assert keys(s3, bucket) == []

    # What the copy role does next: send a fresh one.
    result = bucket_command(putting(server, bucket, archive))
    assert (result["present"], result["copied"]) == (True, True)
    assert stored(s3, bucket, key())[0] == read(archive)


@pytest.mark.parametrize(
    "metadata",
    [
        {"edms-sha256": SOURCE, "edms-source-host": "production", "edms-label": "manual"},
        {},
        {"edms-sha256": OTHER_SHA256, "edms-source-host": HOST, "edms-label": "manual"},
        {"edms-sha256": "not-a-sha256", "edms-source-host": HOST},
        {"edms-source-host": HOST, "edms-label": "manual"},
    ],
    ids=["another-host", "no-metadata", "another-sha256", "bad-sha256", "no-sha256"],
)
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_another_object_of_the_name_is_left_as_it_is(
    server, s3, bucket, archive, metadata, check_mode
):
    metadata = {
        field: file_sha256(archive) if value == SOURCE else value
        for field, value in metadata.items()
    }
    theirs = b"someone else's object"
    s3.put_object(Bucket=bucket, Key=key(), Body=theirs, Metadata=metadata)
    for src in (str(archive), None):
        with pytest.raises(BucketError, match="is not this collection's copy") as failure:
            bucket_command(putting(server, bucket, archive, src=src), check_mode=check_mode)
        assert "removed" not in failure.value.partial
        assert f"destination {DESTINATION}" in str(failure.value)
        assert stored(s3, bucket, key()) == (theirs, metadata)
    assert keys(s3, bucket) == [key()]


# pruned


def upload(server, bucket, tmp_path, when, host=HOST, prefix=PREFIX):
    """An archive named for when, put in the bucket by state=present."""
    name = archive_name(when)
    directory = tmp_path / "made" / name
    directory.mkdir(parents=True)
    path = write_archive(directory, name=name)
    result = bucket_command(putting(server, bucket, path, source_host=host, prefix=prefix))
    assert result["copied"]
    return name


def at(*fields):
    return datetime(*fields, tzinfo=UTC)


def pruning(server, bucket, **options):
    return params(server, bucket, state="pruned", source_host=HOST, **options)


def test_pruned_with_the_module_defaults(server, s3, bucket, tmp_path):
    days = [
        (2026, 1, 10),  # 2026-W02
        (2026, 1, 9),
        (2026, 1, 8),
        (2026, 1, 7),
        (2026, 1, 6),
        (2026, 1, 5),
        (2026, 1, 4),  # 2026-W01 (Monday 2025-12-29 to Sunday 2026-01-04)
        (2026, 1, 3),
        (2025, 12, 28),  # 2025-W52
        (2025, 12, 27),
        (2025, 12, 20),  # 2025-W51
        (2025, 12, 13),  # 2025-W50
        (2025, 12, 6),  # 2025-W49
    ]
    names = [upload(server, bucket, tmp_path, at(*day, 13, 0, 29)) for day in days]
    # keep_last 7 and keep_daily 7: the seven newest; keep_weekly 4: also the
    # newest of 2025-W52 and 2025-W51.
    expected_deleted = [names[7], names[9], names[11], names[12]]

    result = bucket_command(pruning(server, bucket))
    assert result["changed"] is True
    assert result["deleted"] == expected_deleted
    assert [entry["name"] for entry in result["keep"]] == [
        name for name in names if name not in expected_deleted
    ]
    assert result["newest_verified"] == names[0]
    assert keys(s3, bucket) == sorted(key(name) for name in names if name not in expected_deleted)

    again = bucket_command(pruning(server, bucket))
    assert (again["changed"], again["deleted"]) == (False, [])


@pytest.mark.parametrize("prefix", [PREFIX, ""], ids=["prefix", "top"])
def test_pruned_touches_only_this_hosts_archives_under_the_prefix(
    server, s3, bucket, tmp_path, prefix
):
    names = [
        upload(server, bucket, tmp_path, at(2026, 1, day, 3, 0, 0), prefix=prefix)
        for day in (5, 4, 3, 2)
    ]
    ours = {"edms-sha256": OTHER_SHA256, "edms-source-host": HOST, "edms-label": "manual"}
    old = "edms_20250101T000000Z.zip"
    others = {
        # Not an archive's name.
        key("notes.txt", prefix): ours,
        key("edms_20250101T000000Z.tar", prefix): ours,
        # An impossible time in an archive's name.
        key("edms_20251340T000000Z.zip", prefix): ours,
        # Below the prefix, beside it, above it.
        key("sub/" + old, prefix): ours,
        "edms/staging-old/" + old: ours,
        "edms/" + old: ours,
        # Another host's copy, and objects that are nobody's copy.
        key("edms_20250102T000000Z.zip", prefix): dict(ours, **{"edms-source-host": "production"}),
        key("edms_20250103T000000Z.zip", prefix): {},
        key("edms_20250104T000000Z.zip", prefix): {"edms-source-host": HOST},
    }
    for other, metadata in others.items():
        s3.put_object(Bucket=bucket, Key=other, Body=b"not to be touched", Metadata=metadata)
    before = keys(s3, bucket)
    task = pruning(server, bucket, prefix=prefix, keep_last=1, keep_daily=0, keep_weekly=0)

    preview = bucket_command(task, check_mode=True)
    assert (preview["changed"], preview["deleted"]) == (True, names[1:])
    assert keys(s3, bucket) == before

    result = bucket_command(task)
    assert (result["changed"], result["deleted"]) == (True, names[1:])
    assert [entry["name"] for entry in result["keep"]] == names[:1]
    assert keys(s3, bucket) == sorted(set(before) - {key(name, prefix) for name in names[1:]})
    for other, metadata in others.items():
        assert stored(s3, bucket, other) == (b"not to be touched", metadata)


def test_pruned_always_keeps_the_newest(server, s3, bucket, tmp_path):
    names = [upload(server, bucket, tmp_path, at(2026, 1, 2, hour, 0, 0)) for hour in (9, 8, 7)]
    result = pruned(pruning(server, bucket, keep_last=0, keep_daily=0, keep_weekly=0))
    assert result["deleted"] == names[1:]
    assert [entry["name"] for entry in result["keep"]] == names[:1]
    assert result["newest_verified"] == names[0]
    assert keys(s3, bucket) == [key(names[0])]


@pytest.mark.parametrize(
    ("display_timezone", "deleted"),
    # 12:00Z on the 4th, 10:00Z and 12:00Z on the 5th: in Auckland (UTC+13)
    # 01:00 and 23:00 on the 5th, 01:00 on the 6th.
    [("UTC", [1]), ("Pacific/Auckland", [2])],
)
def test_pruned_counts_days_in_the_display_timezone(
    server, s3, bucket, tmp_path, display_timezone, deleted
):
    names = [
        upload(server, bucket, tmp_path, when)
        for when in (at(2026, 1, 5, 12, 0, 0), at(2026, 1, 5, 10, 0, 0), at(2026, 1, 4, 12, 0, 0))
    ]
    task = pruning(
        server,
        bucket,
        keep_last=0,
        keep_daily=2,
        keep_weekly=0,
        display_timezone=display_timezone,
    )
    assert bucket_command(task)["deleted"] == [names[index] for index in deleted]
    assert keys(s3, bucket) == sorted(
        key(name) for index, name in enumerate(names) if index not in deleted
    )


def test_pruned_leaves_the_copies_of_another_host(server, s3, bucket, tmp_path):
    theirs = [
        upload(server, bucket, tmp_path, at(2026, 1, 1, hour, 0, 0), host="production")
        for hour in (9, 8)
    ]
    ours = [upload(server, bucket, tmp_path, at(2026, 1, 2, hour, 0, 0)) for hour in (9, 8)]
    result = bucket_command(pruning(server, bucket, keep_last=1, keep_daily=0, keep_weekly=0))
    assert result["deleted"] == ours[1:]
    assert keys(s3, bucket) == sorted(key(name) for name in theirs + ours[:1])


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"keep_last": -1}, "cannot prune"),
        ({"display_timezone": "Mars/Olympus_Mons"}, "cannot prune"),
    ],
)
def test_pruned_with_bad_rules_deletes_nothing(server, s3, bucket, tmp_path, options, why):
    for hour in (9, 8):
        upload(server, bucket, tmp_path, at(2026, 1, 2, hour, 0, 0))
    before = keys(s3, bucket)
    rules = {"keep_last": 0, "keep_daily": 0, "keep_weekly": 0}
    task = pruning(server, bucket, **dict(rules, **options))
    with pytest.raises(BucketError, match=why):
        bucket_command(task)
    assert keys(s3, bucket) == before


# fetched


@pytest.fixture
def dest(tmp_path):
    directory = tmp_path / "staging"
    directory.mkdir(mode=0o700)
    return directory


def fetching(server, bucket, dest, **options):
    return params(
        server, bucket, **dict({"state": "fetched", "name": NAME, "dest": str(dest)}, **options)
    )


def test_fetched_writes_the_copy_mode_0600(server, s3, bucket, archive, dest):
    bucket_command(putting(server, bucket, archive))
    result = bucket_command(fetching(server, bucket, dest))
    path = dest / NAME
    assert result == {"changed": True, "path": str(path), "sha256": file_sha256(archive)}
    assert read(path) == read(archive)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert os.listdir(dest) == [NAME]


def test_fetched_with_the_expected_sha256(server, s3, bucket, archive, dest):
    bucket_command(putting(server, bucket, archive))
    result = bucket_command(fetching(server, bucket, dest, sha256=file_sha256(archive)))
    assert result["changed"] is True
    assert read(dest / NAME) == read(archive)


def test_fetched_in_check_mode_writes_nothing(server, s3, bucket, archive, dest):
    bucket_command(putting(server, bucket, archive))
    result = bucket_command(fetching(server, bucket, dest), check_mode=True)
    assert (result["changed"], result["sha256"]) == (True, file_sha256(archive))
    assert os.listdir(dest) == []


@pytest.mark.parametrize("kind", ["file", "link"])
def test_fetched_never_replaces_a_file(server, s3, bucket, archive, dest, tmp_path, kind):
    bucket_command(putting(server, bucket, archive))
    path = dest / NAME
    if kind == "file":
        path.write_bytes(b"mine")
    else:
        os.symlink(tmp_path / "nowhere", path)
    with pytest.raises(BucketError, match="exists already"):
        bucket_command(fetching(server, bucket, dest))
    if kind == "file":
        assert read(path) == b"mine"
    else:
        assert os.readlink(path) == str(tmp_path / "nowhere")
    assert os.listdir(dest) == [NAME]


def test_fetched_keeps_nothing_of_a_damaged_copy(server, s3, bucket, archive, dest):
    bucket_command(putting(server, bucket, archive))
    damage(s3, bucket, key())
    with pytest.raises(BucketError, match="does not verify"):
        bucket_command(fetching(server, bucket, dest))
    assert os.listdir(dest) == []


def test_fetched_refuses_a_copy_of_another_sha256(server, s3, bucket, archive, dest):
    bucket_command(putting(server, bucket, archive))
    with pytest.raises(BucketError, match="not the one expected"):
        bucket_command(fetching(server, bucket, dest, sha256=OTHER_SHA256))
    assert os.listdir(dest) == []


@pytest.mark.parametrize(
    "metadata",
    [{}, {"edms-sha256": "not-a-sha256", "edms-source-host": HOST}],
    ids=["no-metadata", "bad-sha256"],
)
def test_fetched_refuses_an_object_that_is_not_a_copy(server, s3, bucket, archive, dest, metadata):
    s3.put_object(Bucket=bucket, Key=key(), Body=read(archive), Metadata=metadata)
    with pytest.raises(BucketError, match="does not record the sha256"):
        bucket_command(fetching(server, bucket, dest))
    assert os.listdir(dest) == []


def test_fetched_without_a_copy(server, s3, bucket, dest):
    with pytest.raises(BucketError, match="there is no copy"):
        bucket_command(fetching(server, bucket, dest))
    assert os.listdir(dest) == []


def test_fetched_replaces_a_killed_runs_partial(server, s3, bucket, archive, dest):
    bucket_command(putting(server, bucket, archive))
    partial = dest / f".{NAME}.partial"
    partial.write_bytes(b"half a copy")
    bucket_command(fetching(server, bucket, dest))
    assert read(dest / NAME) == read(archive)
    assert os.listdir(dest) == [NAME]


def test_fetched_refuses_a_link_at_the_partial_name(server, s3, bucket, archive, dest, tmp_path):
    bucket_command(putting(server, bucket, archive))
    target = tmp_path / "target"
    target.write_bytes(b"elsewhere")
    partial = dest / f".{NAME}.partial"
    os.symlink(target, partial)
    with pytest.raises(BucketError, match="not a regular file"):
        bucket_command(fetching(server, bucket, dest))
    assert os.readlink(partial) == str(target)
    assert read(target) == b"elsewhere"
    assert os.listdir(dest) == [partial.name]


# Credentials and reachability


def tasks(server, bucket, archive, dest):
    return {
        "present": putting(server, bucket, archive),
        "pruned": pruning(server, bucket),
        "fetched": fetching(server, bucket, dest),
    }


@pytest.mark.parametrize("state", ["present", "pruned", "fetched"])
@pytest.mark.parametrize("wrong", ["secret_key", "access_key"])
def test_wrong_credentials_fail_naming_the_destination(
    server, s3, bucket, archive, dest, state, wrong
):
    if state != "present":
        bucket_command(putting(server, bucket, archive))
    before = keys(s3, bucket)
    bad = dict(server, **{wrong: "AKIA0000WRONG" if wrong == "access_key" else "x" * 40})
    task = tasks(bad, bucket, archive, dest)[state]
    with pytest.raises(BucketError) as failure:
        bucket_command(task)
    message = str(failure.value)
    assert f"destination {DESTINATION} (s3://{bucket}/{PREFIX}/)" in message
    for secret in (server["secret_key"], bad["secret_key"]):
        assert secret not in message
        assert secret not in repr(failure.value.partial)
    assert keys(s3, bucket) == before
    assert os.listdir(dest) == []


@pytest.mark.parametrize("state", ["present", "pruned", "fetched"])
def test_an_unreachable_endpoint_fails_cleanly(server, bucket, archive, dest, state):
    nowhere = dict(server, endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BucketError, match=f"destination {DESTINATION}") as failure:
        bucket_command(tasks(nowhere, bucket, archive, dest)[state])
    assert server["secret_key"] not in str(failure.value)


def test_an_endpoint_without_a_scheme_fails_cleanly(server, bucket, archive, dest):
    bad = dict(server, endpoint_url="s3.example.org")
    with pytest.raises(BucketError, match=f"destination {DESTINATION}.*s3.example.org"):
        bucket_command(putting(bad, bucket, archive))


def test_a_missing_bucket_fails_cleanly(server, s3, archive):
    missing = "edms-" + uuid.uuid4().hex[:16]
    with pytest.raises(BucketError, match=f"destination {DESTINATION}"):
        bucket_command(putting(server, missing, archive))
    assert missing not in [entry["Name"] for entry in s3.list_buckets()["Buckets"]]


# Refused before any request


@contextlib.contextmanager
def counting(server):
    """A real client of the server that counts the requests it sends."""
    sent = []
    observed = client(server)
    observed.meta.events.register("before-send.s3", lambda request, **_kw: sent.append(request))
    yield observed, sent


@pytest.mark.parametrize(
    "name",
    [
        "../x.zip",
        "notes.txt",
        f"../{NAME}",
        f"sub/{NAME}",
        "edms_20260101T130029Z.zip/x",
        "",
    ],
)
def test_a_bad_name_is_refused_before_any_request(server, s3, bucket, archive, dest, name):
    with counting(server) as (observed, sent):
        with pytest.raises(BucketError, match="is not the name of an archive"):
            present(putting(server, bucket, archive, name=name), s3=observed)
        with pytest.raises(BucketError, match="is not the name of an archive"):
            fetched(fetching(server, bucket, dest, name=name), s3=observed)
        assert sent == []
    # The same through bucket_command, as the module calls it.
    for task in (
        putting(server, bucket, archive, name=name),
        fetching(server, bucket, dest, name=name),
    ):
        if not task["name"]:
            continue
        with pytest.raises(BucketError, match="is not the name of an archive"):
            bucket_command(task)
    assert keys(s3, bucket) == []
    assert os.listdir(dest) == []


@pytest.mark.parametrize(
    "sha256",
    [
        "ABC",
        "A" * 64,
        "0" * 63,
        "0" * 65,
        "g" * 64,
        "0" * 64 + "\n",
    ],
)
def test_a_bad_sha256_is_refused_before_any_request(server, s3, bucket, archive, dest, sha256):
    bucket_command(putting(server, bucket, archive))
    before = keys(s3, bucket)
    with counting(server) as (observed, sent):
        with pytest.raises(BucketError, match="is not a sha256"):
            present(putting(server, bucket, archive, sha256=sha256), s3=observed)
        with pytest.raises(BucketError, match="is not a sha256"):
            fetched(fetching(server, bucket, dest, sha256=sha256), s3=observed)
        assert sent == []
    assert keys(s3, bucket) == before
    assert os.listdir(dest) == []


@pytest.mark.parametrize(
    ("state", "drop", "needs"),
    [
        ("present", "sha256", "sha256"),
        ("present", "source_host", "source_host"),
        ("pruned", "source_host", "source_host"),
        ("fetched", "dest", "dest"),
        ("fetched", "name", "name"),
    ],
)
def test_a_missing_option_is_named(server, s3, bucket, archive, dest, state, drop, needs):
    task = dict(tasks(server, bucket, archive, dest)[state], **{drop: None})
    with pytest.raises(BucketError, match=f"state {state} needs {needs}"):
        bucket_command(task)
    assert keys(s3, bucket) == []
