# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Freshness: is the newest verified backup recent, and about as big as the one before?

"Verified" is the state _format/catalogue.py derives from ``<archive>.status.json``:
``passed``, i.e. verification recorded ok with the archive's sha256 and the
archive unchanged since (not ``stale``); check_freshness believes it of the
newest verified archive and of the one before it only once their sha256,
computed again, equals the one recorded (catalogue.py confirm_verified).
Archives newer than the newest verified one (unverified, unconfirmed,
failed, stale, unreadable) are reported, never counted.

Ages are measured with one clock: the host's. The host stamps ``created_at``
when it writes an archive, so a host clock that is off makes neither a fresh
backup look old nor an old one look fresh; the clock check of preflight
reports the skew separately.

Sizes compared are the application's data an archive holds: the fixture and
the media files, uncompressed (from the ZIP's directory or the files of a
directory archive). Not the archive file's size: ``database.pgdump`` is
optional (a third of the file in the demo's archives) and compression
varies, so two backups of the same data can differ widely in file size;
``metadata.json`` is not data.

`assess` is pure (the catalogue entries and "now" in, facts and findings out);
`check_freshness` reads the backup directory and calls it.
"""

from __future__ import annotations

import os
import stat
import zipfile
from datetime import timedelta

from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    METADATA,
    PGDUMP,
    KeyProblem,
    has_decryption_key,
    is_encrypted,
    plaintext_of,
)
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    CatalogueError,
    human_size,
    list_archives,
    newest_confirmed,
    percent,
    read_status,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import (
    open_directory,
    open_regular,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import (
    parse_instant,
    utc_iso,
)

SEVERITIES = ("error", "warning")
# A daily schedule and two hours for a late or slow run.
DEFAULT_MAX_AGE_HOURS = 26.0
# An EDMS in a regulated lab keeps what it has (deletions are soft); its data
# does not shrink by a fifth overnight unless something is missing.
DEFAULT_MIN_SIZE_RATIO = 0.8
# Further in the future than this, a backup's age cannot be judged.
FUTURE_TOLERANCE = timedelta(minutes=5)
NOT_DATA = (METADATA, PGDUMP)


def data_size(path):
    """Bytes of fixture and media an archive (ZIP or directory) holds; None if
    unreadable. A link is not followed, neither the archive nor in it."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return _directory_data_size(path)
        with open_regular(path) as handle:
            if not has_decryption_key() and is_encrypted(handle):
                return _sealed_data_size(path)
            try:
                source = plaintext_of(handle, path)
            except KeyProblem:  # a key that does not open it: as without one
                return _sealed_data_size(path)
            with source, zipfile.ZipFile(source) as archive:
                return sum(
                    info.file_size
                    for info in archive.infolist()
                    if not info.is_dir() and info.filename not in NOT_DATA
                )
    except Exception:  # OSError, BadZipFile, a central directory that lies...
        return None


def _sealed_data_size(path):
    """An encrypted archive's data size as its status file recorded it when it
    was encrypted (archive_create); None when it has changed since."""
    entry = read_status(path).get("encryption") or {}
    size = (entry.get("metadata") or {}).get("data_bytes") if not entry.get("stale") else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _directory_data_size(path):
    top = open_directory(path)
    try:
        total = 0
        for root, _dirs, files, root_fd in os.fwalk(".", dir_fd=top):
            for name in files:
                relative = os.path.normpath(os.path.join(root, name)).replace(os.sep, "/")
                info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
                if relative not in NOT_DATA and stat.S_ISREG(info.st_mode):
                    total += info.st_size
        return total
    finally:
        os.close(top)


def hours(seconds):
    """A duration as people read it: 45 s, 38 min, 26.5 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def limit_hours(value):
    return f"{value:g} h"


def _verified(entry):
    return (entry.get("verification") or {}).get("state") == "passed"


def _fact(entry, now):
    age = (now - parse_instant(entry["created_at"])).total_seconds()
    return {
        "name": entry["name"],
        "path": entry.get("path"),
        "created_at": entry["created_at"],
        "created_at_local": entry.get("created_at_local"),
        "age_seconds": round(age),
        "age_hours": round(age / 3600, 2),
        "size": entry.get("size"),
        "data_size": entry.get("data_size"),
        "label": entry.get("label", ""),
        "copies": list(entry.get("copies") or []),
        "encrypted": bool(entry.get("encrypted")),
    }


def copies_finding(newest):
    """backup_copies: whether the newest verified backup (a fact of assess())
    has a verified copy elsewhere (archive_copy's records); a warning when it
    has none, as one disk then holds the data and every backup of it."""
    copies = newest.get("copies") or []
    if copies:
        return _finding(
            "backup_copies",
            "ok",
            f"the newest verified backup {newest['name']} has verified copies at "
            + ", ".join(f"{c['destination']} ({c['location']})" for c in copies),
        )
    return _finding(
        "backup_copies",
        "warning",
        f"the newest verified backup {newest['name']} has no verified copy off this host:"
        " a lost disk or a removed project directory would take the data and every"
        " backup of it at once",
        "name destinations in edms_copy_destinations (the controller, another host) and"
        " run playbooks/copy.yml; playbooks/backup.yml then copies after every backup",
    )


def _finding(check, severity, message, fix=None):
    return {"check": check, "severity": severity, "message": message, "fix": fix}


def assess(
    archives,
    now,
    max_age_hours=DEFAULT_MAX_AGE_HOURS,
    min_size_ratio=DEFAULT_MIN_SIZE_RATIO,
    severity="error",
    require_verified=False,
    backup_dir="the backup directory",
):
    """Facts and findings about the freshness of the backups.

    archives: catalogue entries (see _format/catalogue.py describe_archive), newest first,
    the verified ones with ``data_size``; now: an aware datetime of the clock
    that stamped them. severity: what a problem is (``error``, or ``warning``
    where preflight gates a backup that would fix it). No verified backup at
    all is a warning unless require_verified. A limit of 0 turns its check off.
    Returns (facts, findings), findings as dicts with check, severity, message
    and fix.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    newest, previous, newer = _newest_verified(archives)
    facts = {
        "now": utc_iso(now),
        "max_age_hours": max_age_hours,
        "min_size_ratio": min_size_ratio,
        "severity": severity,
        "archives": len(archives),
        "newest_verified": _fact(newest, now) if newest else None,
        "previous_verified": _fact(previous, now) if previous else None,
        "not_verified_newer": newer,
        "size_ratio": None,
        "problems": [],
    }
    not_counted = _not_counted(newer)
    if newest is None:
        facts["problems"].append("no_verified_backup")
        lack = severity if require_verified else "warning"
        return facts, [_no_verified_backup(archives, lack, backup_dir, not_counted)]
    findings = [_age_finding(facts, newest, now, max_age_hours, severity, not_counted)]
    if min_size_ratio:
        findings.append(_size_finding(facts, newest, previous, min_size_ratio, severity))
    return facts, findings


def _newest_verified(archives):
    """(newest verified, the verified one before it, [the archives newer than
    the newest verified, as name, created_at and state])."""
    verified = [e for e in archives if _verified(e)]
    newest = verified[0] if verified else None
    previous = verified[1] if len(verified) > 1 else None
    newer = []
    for entry in archives:
        if entry is newest:
            break
        newer.append(
            {
                "name": entry["name"],
                "created_at": entry["created_at"],
                "state": (entry.get("verification") or {}).get("state", "unverified"),
            }
        )
    return newest, previous, newer


def _not_counted(newer):
    """The tail of a message naming the newer archives that were not counted."""
    if not newer:
        return ""
    return "; newer archives not counted: " + ", ".join(
        f"{n['name']} ({n['state']})" for n in newer
    )


def _no_verified_backup(archives, severity, backup_dir, not_counted):
    return _finding(
        "backup_age",
        severity,
        f"there is no verified backup in {backup_dir}"
        + (
            f" ({len(archives)} archive(s), none verified and unchanged since{not_counted})"
            if archives
            else ""
        ),
        "take one with playbooks/backup.yml (it verifies what it writes), or verify"
        " an existing archive with playbooks/verify.yml -e edms_archive=<path>",
    )


def _age_finding(facts, newest, now, max_age_hours, severity, not_counted):
    """backup_age of the newest verified backup: dated in the future, too old, or ok."""
    age = now - parse_instant(newest["created_at"])
    taken = f"the newest verified backup {newest['name']} (taken {newest['created_at']})"
    if max_age_hours and age < -FUTURE_TOLERANCE:
        facts["problems"].append("dated_in_future")
        return _finding(
            "backup_age",
            severity,
            f"{taken} is dated {hours(-age.total_seconds())} after this host's clock"
            f" ({facts['now']}): its age cannot be judged{not_counted}",
            "check the clocks of this host and of the host that wrote it (NTP);"
            " then take a backup with playbooks/backup.yml",
        )
    if max_age_hours and age > timedelta(hours=max_age_hours):
        facts["problems"].append("too_old")
        return _finding(
            "backup_age",
            severity,
            f"{taken} is {hours(age.total_seconds())} old, older than the limit of"
            f" {limit_hours(max_age_hours)} (preflight_max_backup_age_hours){not_counted}",
            "take a backup now with playbooks/backup.yml, then find out why the scheduled"
            " backup did not run or did not verify (its last job's output)",
        )
    return _finding(
        "backup_age",
        "ok",
        f"{taken} is {hours(max(age.total_seconds(), 0))} old"
        + (
            f" (limit {limit_hours(max_age_hours)})"
            if max_age_hours
            else " (age not checked: preflight_max_backup_age_hours is 0)"
        )
        + not_counted,
    )


def _size_finding(facts, newest, previous, min_size_ratio, severity):
    """backup_size: the newest verified backup's data against the one before it."""
    if previous is None:
        return _finding(
            "backup_size",
            "ok",
            f"no verified backup before {newest['name']} to compare its size with",
        )
    new_size, old_size = newest.get("data_size"), previous.get("data_size")
    if new_size is None or not old_size:
        return _finding(
            "backup_size",
            "warning",
            f"cannot compare the data sizes of {newest['name']} and {previous['name']}"
            " (an archive cannot be read, or the older one holds no data)",
            "verify both with playbooks/verify.yml",
        )
    ratio = new_size / old_size
    facts["size_ratio"] = round(ratio, 4)
    sizes = (
        f"the newest verified backup {newest['name']} holds {human_size(new_size)} of data"
        f" (fixture and media), {percent(ratio)} of the {human_size(old_size)} of the verified"
        f" backup before it, {previous['name']}"
    )
    if ratio < min_size_ratio:
        facts["problems"].append("too_small")
        return _finding(
            "backup_size",
            severity,
            f"{sizes}; the limit is {percent(min_size_ratio)} (preflight_min_backup_size_ratio)",
            "compare the counts per model of both archives (archive_info) and do not rely"
            f" on {newest['name']} until the difference is explained; after a planned purge,"
            " lower preflight_min_backup_size_ratio for one run",
        )
    return _finding("backup_size", "ok", f"{sizes} (limit {percent(min_size_ratio)})")


def check_freshness(
    backup_dir,
    display_timezone,
    now,
    max_age_hours=DEFAULT_MAX_AGE_HOURS,
    min_size_ratio=DEFAULT_MIN_SIZE_RATIO,
    severity="error",
    require_verified=False,
):
    """assess() on the archives in backup_dir (none if it does not exist)."""
    archives, newest = [], None
    if os.path.isdir(backup_dir):
        try:
            catalogue = list_archives(backup_dir, display_timezone)
            archives, newest = catalogue["archives"], catalogue["newest_verified"]
        except CatalogueError as exc:
            facts = assess([], now, max_age_hours, min_size_ratio, severity)[0]
            facts.update(backup_dir=backup_dir, problems=["unreadable"])
            return facts, [
                _finding(
                    "backup_age",
                    severity,
                    f"cannot tell how fresh the backups are: {exc}",
                    "make the backup directory readable to the user Ansible runs as",
                )
            ]
    # The newest verified archive is confirmed by list_archives; the one before
    # it, that its size is compared with, here. Those that claim to be verified
    # and do not confirm are stale from then on, and assess() passes them by.
    verified = []
    if newest is not None:
        previous = newest_confirmed(archives[archives.index(newest) + 1 :])
        verified = [newest] + ([previous] if previous else [])
    for entry in verified:
        entry["data_size"] = data_size(entry["path"])
    facts, findings = assess(
        archives,
        now,
        max_age_hours=max_age_hours,
        min_size_ratio=min_size_ratio,
        severity=severity,
        require_verified=require_verified,
        backup_dir=backup_dir,
    )
    facts["backup_dir"] = backup_dir
    return facts, findings
