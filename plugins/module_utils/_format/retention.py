# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Retention: which backup archives to keep and which to delete.

The classic grandfather-father-son scheme (the N newest archives, the newest
of each of the N newest days and of the N newest ISO weeks) plus protections
that no count can override. Nothing here touches a file: select() only
decides, from a list of archive descriptions, and says why.
"""

from __future__ import annotations

from collections import Counter, namedtuple
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import utc_iso, zone

FUTURE_REASON = "created in the future: clock problem"
NEWEST_VERIFIED_REASON = "newest verified"

_Archive = namedtuple("_Archive", "name created_at label verified")


def select(
    archives,
    now,
    keep_last=7,
    keep_daily=7,
    keep_weekly=4,
    display_timezone="UTC",
    safety_labels=("pre-restore safety",),
    safety_min_age_days=30,
    confirm=None,
):
    """Decide which archives to keep and which to delete.

    archives: mappings (or objects) with name (str, unique), created_at (aware
    datetime), label (str) and verified (bool: the last verification passed
    and is current). now: an aware datetime.

    An archive is kept for every rule that applies to it, and each kept
    archive lists all its reasons, in this order:

    - created after now: kept and reported, as the clock that stamped it (or
      this one) is wrong. Such archives take no part in the rules below, so a
      wrong timestamp cannot push a genuine archive out of its slot.
    - the newest verified archive ("newest verified"), whatever the counts.
      With confirm, a function(name) -> bool, the verification is believed
      only once confirm says so for that archive (the caller compares its
      sha256 with the one recorded): one that does not confirm counts as not
      verified, for this rule and in the result, and the next verified
      archive is asked in its place. So a forged record can neither protect
      its archive nor, by taking the slot, leave the genuine newest verified
      archive to the counts.
    - a label in safety_labels and younger than safety_min_age_days
      ("safety backup younger than 30 days"; exactly that old is not younger).
    - keep_last: the keep_last newest archives.
    - keep_daily: the newest archive of each of the keep_daily newest calendar
      days that have an archive, days counted in display_timezone.
    - keep_weekly: likewise for ISO weeks (Monday to Sunday, 2026-W53) in
      display_timezone.

    The rules overlap, as restic's do: the newest archive can fill the first
    keep_last, keep_daily and keep_weekly slots at once. (borg instead lets
    an archive count towards one rule only, so each rule reaches further back,
    and keeps the oldest archive when a rule has slots left; neither applies
    here.) Days and weeks without an archive use no slot.

    All archives count towards keep_last/daily/weekly, verified or not: an
    unverified archive kept by those rules stays kept, and it is up to the
    operator to verify or remove it. Equal created_at: the name that sorts
    later counts as the newer, so the result never depends on input order.
    All counts 0 deletes everything that is not protected; that is allowed.

    Returns {"keep": [...], "delete": [...], "newest_verified": name or None,
    "future": [names], "not_confirmed": [names]}, every list newest first. Each entry of keep and
    delete has name, created_at (UTC ISO 8601 text), label and verified;
    those of keep also have reasons. Raises ValueError for bad input, and
    _platform/timezones.py TimeZoneError for an unusable display_timezone.
    """
    _check_arguments(now, safety_labels, keep_last, keep_daily, keep_weekly, safety_min_age_days)
    # zoneinfo is missing on Python 3.8; UTC, the default, needs no database.
    tz = zone(display_timezone)

    records = _records(archives)  # newest first
    reasons = {record.name: [] for record in records}
    future = [record for record in records if record.created_at > now]
    past = [record for record in records if record.created_at <= now]

    for record in future:
        reasons[record.name].append(FUTURE_REASON)
    not_confirmed = []
    newest_verified = _keep_newest_verified(past, reasons, confirm, not_confirmed)
    _keep_young_safety_backups(past, now, safety_labels, safety_min_age_days, reasons)
    _keep_last(past, keep_last, reasons)
    _keep_per_day_and_week(past, tz, keep_daily, keep_weekly, reasons)

    keep, delete = _keep_and_delete(records, reasons, set(not_confirmed))
    return {
        "keep": keep,
        "delete": delete,
        "newest_verified": newest_verified,
        "future": [record.name for record in future],
        "not_confirmed": not_confirmed,
    }


def _check_arguments(now, safety_labels, keep_last, keep_daily, keep_weekly, safety_min_age_days):
    for parameter, value in (
        ("keep_last", keep_last),
        ("keep_daily", keep_daily),
        ("keep_weekly", keep_weekly),
        ("safety_min_age_days", safety_min_age_days),
    ):
        _check_count(parameter, value)
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValueError(f"now must be an aware datetime, got {now!r}")
    if isinstance(safety_labels, str):
        raise ValueError(
            f"safety_labels must be a list of labels, got the string {safety_labels!r}"
        )


def _keep_newest_verified(past, reasons, confirm, not_confirmed):
    """Keep the newest verified archive that confirm (if given) confirms;
    return its name, or None. Those that do not confirm go to not_confirmed."""
    for record in past:
        if not record.verified:
            continue
        if confirm is None or confirm(record.name):
            reasons[record.name].append(NEWEST_VERIFIED_REASON)
            return record.name
        not_confirmed.append(record.name)
    return None


def _keep_young_safety_backups(past, now, safety_labels, safety_min_age_days, reasons):
    safety_labels = set(safety_labels)
    min_age = timedelta(days=safety_min_age_days)
    for record in past:
        if record.label in safety_labels and now - record.created_at < min_age:
            reasons[record.name].append(f"safety backup younger than {safety_min_age_days} days")


def _keep_last(past, keep_last, reasons):
    for position, record in enumerate(past[:keep_last], 1):
        reasons[record.name].append(f"keep_last ({position} of {keep_last})")


def _keep_per_day_and_week(past, tz, keep_daily, keep_weekly, reasons):
    """The newest archive of each of the keep_daily newest days, then of each of
    the keep_weekly newest ISO weeks, in time zone tz."""

    def day(record):
        return record.created_at.astimezone(tz).date().isoformat()

    def week(record):
        year, number = record.created_at.astimezone(tz).isocalendar()[:2]
        return f"{year}-W{number:02d}"

    for rule, period, count in (
        ("keep_daily", day, keep_daily),
        ("keep_weekly", week, keep_weekly),
    ):
        for position, (name, record) in enumerate(_newest_per_period(past, period, count), 1):
            reasons[record.name].append(f"{rule} ({name}, {position} of {count})")


def _keep_and_delete(records, reasons, not_confirmed):
    """(keep, delete): the records as result entries, those with reasons kept."""
    keep, delete = [], []
    for record in records:
        entry = {
            "name": record.name,
            "created_at": utc_iso(record.created_at),
            "label": record.label,
            "verified": record.verified and record.name not in not_confirmed,
        }
        if reasons[record.name]:
            entry["reasons"] = reasons[record.name]
            keep.append(entry)
        else:
            delete.append(entry)
    return keep, delete


def _check_count(parameter, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{parameter} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{parameter} must be 0 or more, got {value}")


def _newest_per_period(records, period, count):
    """[(period name, newest record of it)] for the count newest periods that
    have a record; records come newest first, so a period's first is its newest."""
    chosen = []
    seen = set()
    for record in records:
        if len(chosen) >= count:
            break
        name = period(record)
        if name not in seen:
            seen.add(name)
            chosen.append((name, record))
    return chosen


def _records(archives):
    """The archives checked and in UTC, newest first, equal times by name."""
    records = []
    for archive in archives:
        name = _field(archive, "name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"an archive name must be a non-empty string, got {name!r}")
        created_at = _field(archive, "created_at")
        if not isinstance(created_at, datetime) or created_at.utcoffset() is None:
            raise ValueError(
                f"archive {name!r}: created_at must be an aware datetime, got {created_at!r}"
            )
        label = _field(archive, "label")
        if not isinstance(label, str):
            raise ValueError(f"archive {name!r}: label must be a string, got {label!r}")
        verified = _field(archive, "verified")
        if not isinstance(verified, bool):
            raise ValueError(f"archive {name!r}: verified must be true or false, got {verified!r}")
        records.append(_Archive(name, created_at.astimezone(timezone.utc), label, verified))
    twice = sorted(name for name, n in Counter(r.name for r in records).items() if n > 1)
    if twice:
        raise ValueError(f"archive names must be unique; listed more than once: {twice}")
    records.sort(key=lambda record: (record.created_at, record.name), reverse=True)
    return records


def _field(archive, key):
    try:
        return archive[key] if isinstance(archive, Mapping) else getattr(archive, key)
    except (KeyError, AttributeError):
        raise ValueError(f"archive without {key}: {archive!r}") from None


def protected(decision, names):
    """retention.select()'s decision with the archives named kept whatever
    the counts say ("just copied": the copy a run has just verified)."""
    names = set(names)
    spared = [dict(e, reasons=["just copied"]) for e in decision["delete"] if e["name"] in names]
    return dict(
        decision,
        keep=decision["keep"] + spared,
        delete=[e for e in decision["delete"] if e["name"] not in names],
    )
