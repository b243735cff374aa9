# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Copies of archives in an S3-compatible bucket, through boto3.

A copy is the object ``<prefix>/<name>``. It carries, as object metadata, the
sha256 of the source archive, the host it came from and the archive's label;
it counts only once it has been read back from the bucket, streaming, and its
sha256 is the source's. One that is not is deleted and the task fails.

The bucket is untrusted, as a backup directory is: an object of the copy's
name that does not carry this archive's metadata (another host's, someone
else's) is never overwritten nor deleted; keys that are not an archive name
directly under the prefix are never touched; a download is written to a
hidden partial name and kept only once its sha256 is the one recorded.
"""

from __future__ import annotations

import hashlib
import os
import stat
import traceback
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._format.archive import is_archive_name
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    ARCHIVE_TIME,
    SHA256,
    archive_name_problem,
    sha256_problem,
)
from ansible_collections.edms.backup.plugins.module_utils._format.retention import (
    protected,
    select,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import (
    CREATE_FLAGS,
    fsync_directory,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import (
    TimeZoneError,
)

try:
    import boto3
    from boto3.exceptions import S3UploadFailedError
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the controller's packages
    boto3 = Config = None

    # Stand-ins that nothing raises: run_module stops before any is caught.
    class BotoCoreError(Exception):
        pass

    class ClientError(Exception):
        pass

    class S3UploadFailedError(Exception):
        pass

    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

BOTO3 = ("boto3", HAS_BOTO3, BOTO3_IMPORT_ERROR)
READ_SIZE = 1 << 20
# Object metadata keys (S3 stores them as x-amz-meta-<key>, lower case).
META_SHA256 = "edms-sha256"
META_HOST = "edms-source-host"
META_LABEL = "edms-label"
META_CREATED = "edms-created-at"


class BucketError(ModuleFailure):
    """A bucket cannot be reached, or a copy in it does not verify."""


def _why(exc):
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip(": ")
    return str(exc) or type(exc).__name__


def client(params):
    """A boto3 S3 client for the destination; credentials from the options,
    else boto3's own chain (environment, shared files, instance role)."""
    options = {
        "endpoint_url": params.get("endpoint_url") or None,
        "region_name": params.get("region") or None,
        "aws_access_key_id": params.get("access_key") or None,
        "aws_secret_access_key": params.get("secret_key") or None,
        "aws_session_token": params.get("session_token") or None,
        "config": Config(retries={"max_attempts": 3, "mode": "standard"}),
    }
    if params.get("ca_bundle"):
        options["verify"] = params["ca_bundle"]
    elif params.get("validate_certs") is False:
        options["verify"] = False
    return boto3.client("s3", **options)


def key_of(prefix, name):
    prefix = (prefix or "").strip("/")
    return f"{prefix}/{name}" if prefix else name


def location(params, name):
    return f"s3://{params['bucket']}/{key_of(params.get('prefix'), name)}"


def check_name(name):
    problem = archive_name_problem(name)
    if problem:
        raise BucketError(problem)


def check_sha256(value):
    problem = sha256_problem(value)
    if problem:
        raise BucketError(problem)


class Bucket:
    def __init__(self, params, s3=None):
        self.params = params
        self.bucket = params["bucket"]
        self.prefix = params.get("prefix") or ""
        self.where = f"destination {params['destination']} ({location(params, '')})"
        try:
            self.s3 = s3 or client(params)
        except (ValueError, BotoCoreError) as exc:
            # An endpoint_url without a scheme, a malformed region...
            self.fail("cannot use these settings", exc)

    def fail(self, what, exc, **partial):
        raise BucketError(f"{self.where}: {what}: {_why(exc)}", **partial) from exc

    def head(self, key):
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            self.fail(f"cannot look at {key}", exc)
        except BotoCoreError as exc:
            self.fail(f"cannot look at {key}", exc)

    def read_sha256(self, key, sink=None):
        """The sha256 of the object's bytes, read once, streaming; each block
        also goes to sink (a file) when given."""
        digest = hashlib.sha256()
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            for block in iter(lambda: body.read(READ_SIZE), b""):
                digest.update(block)
                if sink is not None:
                    sink.write(block)
        except (ClientError, BotoCoreError) as exc:
            self.fail(f"cannot read {key} back", exc)
        return digest.hexdigest()

    def delete(self, key):
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            self.fail(f"cannot delete {key}", exc)

    def ours(self, head, sha256=None):
        """Whether an object is this collection's copy from this host (of the
        archive with sha256, when given)."""
        meta = head.get("Metadata") or {}
        if meta.get(META_HOST) != self.params["source_host"]:
            return False
        return SHA256.match(meta.get(META_SHA256) or "") is not None and (
            sha256 is None or meta.get(META_SHA256) == sha256
        )


def present(params, check_mode=False, s3=None):
    """The verified copy of params["name"] is in the bucket: a copy there is
    read back and compared; otherwise params["src"] (a file on this machine)
    is uploaded, read back and compared. See the module's documentation."""
    check_name(params["name"])
    check_sha256(params["sha256"])
    bucket = Bucket(params, s3)
    key = key_of(bucket.prefix, params["name"])
    base = {
        "key": key,
        "location": location(params, params["name"]),
        "destination": params["destination"],
    }
    head = bucket.head(key)
    if head is not None:
        if not bucket.ours(head, params["sha256"]):
            raise BucketError(
                f"{bucket.where}: {key} exists and is not this collection's copy of"
                f" {params['name']} from {params['source_host']} (sha256 {params['sha256']});"
                " nothing was changed. Give each backed-up host a prefix of its own."
            )
        found = bucket.read_sha256(key)
        if found == params["sha256"]:
            return dict(base, changed=False, present=True, copied=False, sha256=found)
        why = (
            f"{bucket.where}: the copy {key} no longer verifies: read back, its sha256 is"
            f" {found}, not the source's {params['sha256']}."
        )
        if check_mode:
            raise BucketError(f"{why} In check mode it was not deleted.")
        bucket.delete(key)
        raise BucketError(
            f"{why} It was deleted; the copy role (playbooks/copy.yml) sends a fresh one.",
            removed=[key],
        )
    if not params.get("src"):
        return dict(base, changed=False, present=False, copied=False)
    if check_mode:
        return dict(base, changed=True, present=False, copied=False)
    metadata = {
        META_SHA256: params["sha256"],
        META_HOST: params["source_host"],
        META_LABEL: params.get("label") or "",
        META_CREATED: params.get("created_at") or "",
    }
    try:
        bucket.s3.upload_file(params["src"], bucket.bucket, key, ExtraArgs={"Metadata": metadata})
    except (ClientError, BotoCoreError, S3UploadFailedError, OSError) as exc:
        bucket.fail(f"cannot upload {params['src']} as {key}", exc)
    found = bucket.read_sha256(key)
    if found != params["sha256"]:
        bucket.delete(key)
        raise BucketError(
            f"{bucket.where}: the copy {key} does not verify: read back, its sha256 is {found},"
            f" not the source's {params['sha256']}. It was deleted.",
            removed=[key],
        )
    return dict(base, changed=True, present=True, copied=True, sha256=found)


def _listing(bucket):
    """This collection's copies from this host directly under the prefix,
    as retention.select() takes them."""
    prefix = key_of(bucket.prefix, "")
    found = []
    try:
        pages = bucket.s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                match = ARCHIVE_TIME.match(name)
                if "/" in name or not is_archive_name(name) or not match:
                    continue
                head = bucket.head(item["Key"])
                if head is None or not bucket.ours(head):
                    continue
                meta = head.get("Metadata") or {}
                try:
                    created = datetime.strptime(
                        match.group(1) + match.group(2), "%Y%m%d%H%M%S"
                    ).replace(tzinfo=timezone.utc)
                except ValueError:  # edms_20261340T...: no time, never touched
                    continue
                found.append(
                    {
                        "name": name,
                        "created_at": created,
                        "label": meta.get(META_LABEL, ""),
                        "verified": True,
                    }
                )
    except (ClientError, BotoCoreError) as exc:
        bucket.fail("cannot list the copies", exc)
    return found


def pruned(params, check_mode=False, s3=None, now=None):
    """The bucket's copies from this host, by the retention rules of
    _format/retention.py; never the newest (every copy kept there has been
    read back and compared when it was made)."""
    bucket = Bucket(params, s3)
    entries = _listing(bucket)
    try:
        decision = select(
            entries,
            now or datetime.now(timezone.utc),
            keep_last=params["keep_last"],
            keep_daily=params["keep_daily"],
            keep_weekly=params["keep_weekly"],
            display_timezone=params["display_timezone"],
        )
    except (ValueError, TimeZoneError) as exc:
        raise BucketError(f"{bucket.where}: cannot prune: {exc}") from exc
    decision = protected(decision, params.get("protect") or ())
    deleted = [entry["name"] for entry in decision["delete"]]
    if not check_mode:
        for name in deleted:
            bucket.delete(key_of(bucket.prefix, name))
    return {
        "changed": bool(deleted),
        "deleted": deleted,
        "keep": decision["keep"],
        "newest_verified": decision["newest_verified"],
    }


def fetched(params, check_mode=False, s3=None):
    """The copy brought to params["dest"] (a directory on this machine) as
    <name>, kept only once its sha256, computed as it arrives, is the one
    its metadata records (and params["sha256"], when given)."""
    check_name(params["name"])
    if params.get("sha256"):
        check_sha256(params["sha256"])
    bucket = Bucket(params, s3)
    key = key_of(bucket.prefix, params["name"])
    head = bucket.head(key)
    if head is None:
        raise BucketError(f"{bucket.where}: there is no copy {key}")
    if params.get("source_host") and not bucket.ours(head):
        raise BucketError(
            f"{bucket.where}: {key} is not recorded as a copy from {params['source_host']};"
            " a copy from another host is not brought here"
        )
    recorded = (head.get("Metadata") or {}).get(META_SHA256) or ""
    if not SHA256.match(recorded) or (params.get("sha256") and recorded != params["sha256"]):
        raise BucketError(
            f"{bucket.where}: {key} does not record the sha256 of a copy made by this"
            " collection (or not the one expected); it is not fetched"
        )
    directory = params["dest"]
    path = os.path.join(directory, params["name"])
    partial = os.path.join(directory, f".{params['name']}.partial")
    if os.path.lexists(path):
        raise BucketError(
            f"{path} exists already; it is never replaced by a copy. Restore it by that path,"
            " or move it away first"
        )
    if check_mode:
        return {"changed": True, "path": path, "sha256": recorded}
    _clear_partial(partial)
    try:
        descriptor = os.open(partial, CREATE_FLAGS, 0o600)
    except OSError as exc:
        raise BucketError(f"cannot write {partial}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(descriptor, "wb") as handle:
            found = bucket.read_sha256(key, sink=handle)
            handle.flush()
            os.fsync(handle.fileno())
        if found != recorded:
            raise BucketError(
                f"{bucket.where}: {key} does not verify: its sha256 is {found}, not the"
                f" {recorded} recorded when it was copied; nothing was kept"
            )
        os.link(partial, path)  # never over an existing name
        fsync_directory(directory)
    except FileExistsError as exc:
        raise BucketError(
            f"{path} appeared while the copy was fetched; it was not replaced"
        ) from exc
    finally:
        _clear_partial(partial)
    return {"changed": True, "path": path, "sha256": found}


def _clear_partial(partial):
    """Remove this module's own partial file (a killed run's too); a link or
    anything else of that name is left and refused."""
    try:
        info = os.lstat(partial)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise BucketError(f"{partial} is not a regular file; it is left as it is")
    os.unlink(partial)


def bucket_command(params, check_mode=False):
    check = {
        "present": ("name", "sha256", "source_host"),
        "pruned": ("source_host",),
        "fetched": ("name", "dest"),
    }[params["state"]]
    missing = [option for option in check if not params.get(option)]
    if missing:
        raise BucketError(f"state {params['state']} needs {', '.join(missing)}")
    command = {"present": present, "pruned": pruned, "fetched": fetched}[params["state"]]
    return command(params, check_mode=check_mode)
