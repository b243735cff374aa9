#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: archive_bucket
short_description: Archive copies in an S3-compatible bucket, each read back before it counts
version_added: 0.2.0
description:
  - Runs where boto3 is, normally the controller (C(delegate_to) localhost);
    the role M(edms.backup.copy) calls it for a destination of kind C(s3).
  - A copy is the object O(prefix)/O(name), with the source archive's
    sha256, host, label and time as object metadata.
  - With O(state=present), a copy already in the bucket is read back,
    streaming, and its sha256 compared with O(sha256) (unchanged when equal,
    deleted and the task failed when not). Without one, O(src) (a file on the
    machine the module runs on) is uploaded, then read back and compared the
    same way; a copy that does not verify is deleted and the task fails. Without
    one and without O(src), returns RV(present=false) and changes nothing.
  - An object of the copy's name that is not this collection's copy of that
    very archive from O(source_host) (its metadata) is never overwritten nor
    deleted; the task fails.
  - With O(state=pruned), the copies from O(source_host) directly under
    O(prefix) are pruned by the retention rules of
    M(edms.backup.archive_prune) (O(keep_last), O(keep_daily),
    O(keep_weekly)); the newest is always kept. Other keys are never touched.
  - With O(state=fetched), the copy is downloaded to O(dest)/O(name), mode
    0600, and kept only once its sha256, computed as it arrives, is the one
    recorded with it (and O(sha256) when given); an existing file of that
    name is never replaced.
requirements:
  - boto3 where the module runs
options:
  state:
    description: What to do; see the description.
    type: str
    choices: [present, pruned, fetched]
    default: present
  bucket:
    description: The bucket's name.
    type: str
    required: true
  prefix:
    description: The key prefix of this host's copies; give each backed-up host its own.
    type: str
    default: ""
  endpoint_url:
    description:
      - The S3-compatible service's address, for example
        C(https://s3.example.org); AWS's when not set.
    type: str
  region:
    description: The region, where the service needs one.
    type: str
  access_key:
    description:
      - The access key id; boto3's own chain (environment
        C(AWS_ACCESS_KEY_ID), shared files) when not set.
    type: str
  secret_key:
    description: The secret access key; boto3's own chain when not set. Never shown.
    type: str
  session_token:
    description: A session token, with temporary credentials. Never shown.
    type: str
  ca_bundle:
    description: A CA bundle file to check the service's certificate with.
    type: path
  validate_certs:
    description: Check the service's TLS certificate.
    type: bool
    default: true
  destination:
    description: The destination's name, in messages.
    type: str
    default: s3
  name:
    description: The archive's file name (O(state=present), O(state=fetched)).
    type: str
  sha256:
    description: The source archive's sha256 (O(state=present); optional for O(state=fetched)).
    type: str
  source_host:
    description:
      - The inventory name of the host the archive comes from
        (O(state=present), O(state=pruned)).
    type: str
  src:
    description: With O(state=present), the file to upload when the bucket has no copy.
    type: path
  label:
    description: With O(state=present), the archive's label, stored with the copy for retention.
    type: str
  created_at:
    description:
      - With O(state=present), when the archive was taken (UTC ISO 8601),
        stored with the copy.
    type: str
  dest:
    description: With O(state=fetched), the directory the copy is written to.
    type: path
  keep_last:
    description: With O(state=pruned), keep the newest N copies.
    type: int
    default: 7
  keep_daily:
    description: With O(state=pruned), keep the newest copy of each of the last N days.
    type: int
    default: 7
  keep_weekly:
    description: With O(state=pruned), keep the newest copy of each of the last N ISO weeks.
    type: int
    default: 4
  protect:
    description:
      - With O(state=pruned), copies never deleted whatever the counts say
        (the one just copied).
    type: list
    elements: str
    default: []
  display_timezone:
    description: The IANA time zone days and weeks are counted in for retention.
    type: str
    default: UTC
attributes:
  check_mode:
    support: full
    description: Reads back and compares; says what it would upload, delete or fetch.
  diff_mode:
    support: none
    description: The result lists what was uploaded, deleted or fetched.
  idempotent:
    support: full
    description: A copy that reads back equal is left as it is.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Put the archive in the bucket, read it back, compare
  edms.backup.archive_bucket:
    bucket: lab-backups
    prefix: edms/staging
    endpoint_url: https://s3.example.org
    name: edms_20260101T130029Z.zip
    sha256: "{{ source_sha256 }}"
    source_host: staging
    src: /tmp/edms-copy-x/edms_20260101T130029Z.zip
  delegate_to: localhost
"""

RETURN = r"""
key:
  description: The copy's key in the bucket.
  returned: when O(state=present)
  type: str
location:
  description: The copy as C(s3://bucket/key).
  returned: when O(state=present)
  type: str
present:
  description: Whether a copy that reads back equal is in the bucket now.
  returned: when O(state=present)
  type: bool
copied:
  description: Whether this task uploaded it.
  returned: when O(state=present)
  type: bool
deleted:
  description: With O(state=pruned), the copies deleted (in check mode, that would be).
  returned: when O(state=pruned)
  type: list
  elements: str
path:
  description: With O(state=fetched), where the copy was written.
  returned: when O(state=fetched)
  type: str
sha256:
  description: The copy's sha256, as read.
  returned: when O(state=present) or O(state=fetched)
  type: str
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_bucket import (
    BOTO3,
    BucketError,
    bucket_command,
)
from ansible_collections.edms.backup.plugins.module_utils._module import run_module


def argument_spec():
    return dict(
        state=dict(type="str", choices=["present", "pruned", "fetched"], default="present"),
        bucket=dict(type="str", required=True),
        prefix=dict(type="str", default=""),
        endpoint_url=dict(type="str"),
        region=dict(type="str"),
        access_key=dict(type="str", no_log=True),
        secret_key=dict(type="str", no_log=True),
        session_token=dict(type="str", no_log=True),
        ca_bundle=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        destination=dict(type="str", default="s3"),
        name=dict(type="str"),
        sha256=dict(type="str"),
        source_host=dict(type="str"),
        src=dict(type="path"),
        label=dict(type="str"),
        created_at=dict(type="str"),
        dest=dict(type="path"),
        keep_last=dict(type="int", default=7),
        keep_daily=dict(type="int", default=7),
        keep_weekly=dict(type="int", default=4),
        protect=dict(type="list", elements="str", default=[]),
        display_timezone=dict(type="str", default="UTC"),
    )


def main():
    run_module(
        argument_spec(),
        lambda module: bucket_command(module.params, check_mode=module.check_mode),
        libraries=[BOTO3],
        errors=BucketError,
    )


if __name__ == "__main__":
    main()
