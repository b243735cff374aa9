# Private to the edms.backup collection: no compatibility promise to anyone else.
"""A copy of an archive at a destination, verified where it landed, and its
record beside the source archive.

The copy role (roles/copy) moves the bytes with Ansible's own transfer (fetch
to the controller, copy to another host); this module decides what counts:

- at the destination (``present``): a copy received as ``.<name>.partial``
  in the destination directory is verified in full (the same checks as
  archive_verify, in one streaming pass) and its sha256 compared with the
  source's; only then is it renamed into place, mode 0600, with its own
  status file saying it passed and which archive of which host it copies.
  A received copy that does not verify is removed and the task fails saying
  where and why. A copy already in place is checked against the source's
  sha256 (computed again, streaming): one that no longer matches is removed,
  with its status file, and the task fails; a file of that name that this
  collection did not put there as a copy of this archive is never touched.
- at the source (``recorded``): the archive's status file gains, under
  ``copies``, the destination, where the copy is and when it verified.

Everything at a destination is untrusted, as in a backup directory: no link
is followed, no name but the archive's own is made or removed.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._format import age
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    ArchiveError,
    has_decryption_key,
    is_encrypted,
    pinned,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    archive_name_problem,
    describe_sealed,
    read_status,
    record_status,
    sha256_problem,
    status_path,
    verification_entry,
)
from ansible_collections.edms.backup.plugins.module_utils._format.verification import verify_pinned
from ansible_collections.edms.backup.plugins.module_utils._platform.files import (
    archive_sha256,
    fsync_directory,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import utc_iso

# The status kind of a copy's own record (at the destination) and of the
# list of copies (beside the source archive).
ORIGIN = "copy_of"
# The record of an archive brought back to its host from a copy (bring.yml):
# not a copy there, so never pruned as one.
BROUGHT = "brought_from"
COPIES = "copies"
# Keys record_status adds to every entry; not part of what a caller records.
_FINGERPRINT = ("sha256", "archive_size", "archive_mtime_ns", "stale")


class CopyError(ModuleFailure):
    """A copy cannot be checked, installed or recorded, or does not verify."""


def partial_path(directory, name):
    """Where the transfer puts a copy before it is verified: a name archive_prune
    removes once it is an hour old, should a run die before this module ran."""
    return os.path.join(directory, f".{name}.partial")


def check_name(name):
    problem = archive_name_problem(name)
    if problem:
        raise CopyError(problem)


def check_sha256(value):
    problem = sha256_problem(value)
    if problem:
        raise CopyError(problem)


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _regular(path, info, where):
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise CopyError(
            f"{where}: {path} is not a regular file (a link or a directory is never"
            " followed nor replaced); nothing was changed. Move it away."
        )


def _same_file(info, other):
    return (
        info is not None
        and stat.S_ISREG(info.st_mode)
        and (info.st_dev, info.st_ino) == (other.st_dev, other.st_ino)
    )


def _remove(path, where):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CopyError(f"{where}: cannot remove {path}: {exc.strerror or exc}") from exc


def _origin(status):
    origin = status.get(ORIGIN)
    return origin if isinstance(origin, dict) else None


def _check_in_place(path, params, where, check_mode=False):
    """A copy already at the destination: unchanged when it is a copy of this
    archive with the source's sha256; removed (and the task fails) when it is
    a copy of this archive that no longer matches; refused when it is not a
    copy this collection made of this archive."""
    status = read_status(path)
    origin = _origin(status)
    same_source = (
        origin is not None
        and origin.get("source_host") == params["source_host"]
        and origin.get("name") == params["name"]
        and origin.get("source_sha256") == params["sha256"]
    )
    if not same_source:
        raise CopyError(
            f"{where}: {path} exists and is not a copy of this archive"
            f" ({params['name']} of {params['source_host']}, sha256 {params['sha256']}) that"
            " this collection made; nothing was changed. Give each backed-up host a"
            " directory of its own at the destination, or move the file away."
        )
    try:
        found = archive_sha256(path)
    except OSError as exc:
        raise CopyError(f"{where}: cannot read the copy {path}: {exc.strerror or exc}") from exc
    if found == params["sha256"]:
        return {"changed": False, "present": True, "copied": False, "sha256": found}
    if check_mode:
        raise CopyError(
            f"{where}: the copy {path} no longer verifies: its sha256 is {found}, not the"
            f" source's {params['sha256']}. Check mode: it was not removed.",
        )
    _remove(path, where)
    _remove(status_path(path), where)
    raise CopyError(
        f"{where}: the copy {path} no longer verifies: its sha256 is {found}, not the"
        f" source's {params['sha256']}. The damaged copy and its status file were removed;"
        " the copy role (playbooks/copy.yml) sends a fresh one.",
        removed=[path],
    )


def _verify_received(partial, brought=False):
    """(verification, the pinned path) of a received copy. An encrypted copy
    where no key was given (a copy never needs one) is checked as far as can
    be without it: its age header is read whole, and the caller compares its
    sha256 with the source's, whose contents were verified before they were
    encrypted. A copy brought back has no such source here: without the key
    it is refused."""
    source = pinned(partial)
    if has_decryption_key() or not is_encrypted(source):
        return verify_pinned(partial, required_models=None)
    if brought:
        raise ArchiveError(
            "it is encrypted and no decryption key was given; a copy brought back is"
            " verified in full where it lands, so bring it with the key (edms_decryption_key)"
        )
    with open(source, "rb") as handle:
        age.read_header(handle)
    contents = (
        "not read here: encrypted and no key given; its sha256 is compared with the"
        " source's, whose contents were verified before they were encrypted"
    )
    return {"ok": True, "problems": [], "encrypted": True, "contents": contents}, source


def _install(partial, path, params, where, now):
    """Verify the received copy in full, then put it in place."""
    try:
        result, source = _verify_received(partial, brought=params.get("brought"))
        found = archive_sha256(source, follow_symlinks=True)
    except (ArchiveError, OSError, age.AgeError) as exc:
        _remove(partial, where)
        raise CopyError(
            f"{where}: the copy received as {partial} cannot be read ({exc}); it was removed",
            removed=[partial],
        ) from exc
    problems = list(result.get("problems", []))
    if found != params["sha256"]:
        problems.insert(0, f"its sha256 is {found}, not the source's {params['sha256']}")
    if problems:
        _remove(partial, where)
        raise CopyError(
            f"{where}: the copy of {params['name']} does not verify and was removed: "
            + "; ".join(problems),
            removed=[partial],
            verification=result,
        )
    # What is renamed must be the very file verified: the name may have been
    # given to another file since (the destination directory is untrusted).
    verified = os.stat(source)
    if not _same_file(_lstat(partial), verified):
        raise CopyError(
            f"{where}: {partial} was replaced while it was verified; nothing was put in place"
        )
    os.chmod(source, 0o600)  # the verified file itself, never through a name
    try:
        os.link(partial, path, follow_symlinks=False)  # never over a name that appeared
    except FileExistsError as exc:
        _remove(partial, where)
        raise CopyError(
            f"{where}: {path} appeared while the copy was verified; it was left as it is and"
            " the copy received was removed",
            removed=[partial],
        ) from exc
    _remove(partial, where)
    fsync_directory(os.path.dirname(path))
    if not _same_file(_lstat(path), verified):
        raise CopyError(f"{where}: {path} was replaced as it was put in place")
    entry = verification_entry(result, at=now)
    if result.get("encrypted"):
        entry["encrypted"] = True
        if result.get("contents"):  # not read here: said why
            entry["contents"] = result["contents"]
    record_status(path, "verification", entry, sha256=found)
    if result.get("encrypted") and not result.get("contents"):  # read with the key
        describe_sealed(path, source, sha256=found)
    record_status(
        path,
        BROUGHT if params.get("brought") else ORIGIN,
        {
            "source_host": params["source_host"],
            "source_path": params["source_path"],
            "name": params["name"],
            "source_sha256": params["sha256"],
            "at": utc_iso(now),
        },
        sha256=found,
    )
    return {"changed": True, "present": True, "copied": True, "sha256": found}


def present(params, check_mode=False, now=None):
    """At the destination: the verified copy is in place (see the module's doc)."""
    now = now or datetime.now(timezone.utc)
    check_name(params["name"])
    check_sha256(params["sha256"])
    directory = params["backup_dir"]
    where = f"destination {params['destination']}"
    info = _lstat(directory)
    path = os.path.join(directory, params["name"])
    if info is None:
        return {
            "path": path,
            "destination": params["destination"],
            "changed": False,
            "present": False,
            "copied": False,
            "directory": False,
        }
    if not stat.S_ISDIR(info.st_mode):
        raise CopyError(
            f"{where}: {directory} is not a directory (a link is not followed); nothing was changed"
        )
    partial = partial_path(directory, params["name"])
    in_place, received = _lstat(path), _lstat(partial)
    _regular(path, in_place, where)
    _regular(partial, received, where)
    base = {"path": path, "destination": params["destination"], "directory": True}
    if in_place is not None:
        try:
            result = _check_in_place(path, params, where, check_mode)
        except CopyError:
            if received is not None and not check_mode:
                _remove(partial, where)  # this run's transfer, never installed
            raise
        if received is not None and not check_mode:
            _remove(partial, where)  # a transfer this run need not have made
            result["changed"] = True
        return dict(base, **result)
    if received is None:
        return dict(base, changed=False, present=False, copied=False)
    if check_mode:
        return dict(base, changed=True, present=False, copied=False)
    return dict(base, **_install(partial, path, params, where, now))


def recorded(params, check_mode=False, now=None):
    """At the source: the copy at params["destination"] is recorded beside the archive."""
    now = now or datetime.now(timezone.utc)
    archive = params["archive"]
    if not archive:
        raise CopyError("recorded needs the archive whose copy is recorded")
    check_name(os.path.basename(archive))
    check_sha256(params["sha256"])
    info = _lstat(archive)
    _regular(archive, info, "source")
    if info is None:
        raise CopyError(f"source: archive {archive} does not exist")
    found = archive_sha256(archive)
    if found != params["sha256"]:
        raise CopyError(
            f"source: archive {archive} changed while it was copied: its sha256 is now"
            f" {found}, not {params['sha256']}; its copies are not recorded"
        )
    status = read_status(archive)
    copies = status.get(COPIES) if isinstance(status.get(COPIES), dict) else {}
    if copies.get("stale") or copies.get("sha256") != found:
        copies = {}  # copies of what the archive was before
    destinations = copies.get("destinations")
    destinations = dict(destinations) if isinstance(destinations, dict) else {}
    known = destinations.get(params["destination"])
    if (
        isinstance(known, dict)
        and isinstance(known.get("at"), str)
        and (known.get("kind"), known.get("location"), known.get("sha256"))
        == (params["kind"], params["location"], found)
    ):
        return {"changed": False, "copies": destinations}  # recorded when it was made
    destinations[params["destination"]] = {
        "kind": params["kind"],
        "location": params["location"],
        "at": utc_iso(now),
        "sha256": found,
    }
    if check_mode:
        return {"changed": True, "copies": destinations}
    record_status(archive, COPIES, {"destinations": destinations}, sha256=found)
    return {"changed": True, "copies": destinations}


def forgotten(params, check_mode=False):
    """At the source: the copy at params["destination"] is no longer recorded
    (its destination pruned it). Nothing to do when the archive is gone."""
    archive = params["archive"]
    if not archive:
        raise CopyError("forgotten needs the archive whose copy is forgotten")
    check_name(os.path.basename(archive))
    info = _lstat(archive)
    if info is None:
        return {"changed": False, "copies": {}}
    _regular(archive, info, "source")
    status = read_status(archive)
    copies = status.get(COPIES) if isinstance(status.get(COPIES), dict) else {}
    destinations = copies.get("destinations")
    destinations = dict(destinations) if isinstance(destinations, dict) else {}
    if params["destination"] not in destinations:
        return {"changed": False, "copies": destinations}
    del destinations[params["destination"]]
    if not check_mode:
        sha256 = copies.get("sha256") if not copies.get("stale") else None
        record_status(archive, COPIES, {"destinations": destinations}, sha256=sha256)
    return {"changed": True, "copies": destinations}


def copy(params, check_mode=False, now=None):
    if params["state"] == "recorded":
        return recorded(params, check_mode=check_mode, now=now)
    if params["state"] == "forgotten":
        return forgotten(params, check_mode=check_mode)
    if not params["backup_dir"]:
        raise CopyError("present needs backup_dir, the destination's directory")
    if not params["source_host"]:
        raise CopyError("present needs source_host, the host whose archive this copies")
    return present(params, check_mode=check_mode, now=now)
