# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Instants in UTC, as file names and people read them, and in a display time zone."""

from __future__ import annotations

from datetime import datetime, timezone

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # Python 3.8 on a managed host
    ZoneInfo = None
    ZoneInfoNotFoundError = LookupError


class TimeZoneError(Exception):
    """A time zone name that cannot be used."""


def zone(name):
    """The tzinfo for an IANA name such as Asia/Singapore; clear error otherwise.

    UTC needs no time zone database (nor zoneinfo, absent before Python 3.9).
    """
    if name == "UTC":
        return timezone.utc
    if ZoneInfo is None:
        raise TimeZoneError(
            f"time zone {name!r} needs Python 3.9 or later (zoneinfo) on the managed host"
        )
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        raise TimeZoneError(f"{name!r} is not a time zone name (e.g. Asia/Singapore, UTC)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeZoneError(
            f"unknown time zone {name!r}: not in this host's time zone database"
        ) from exc


def utc_iso(instant):
    """ISO 8601 in UTC with a Z, microseconds kept: 2026-01-01T13:00:29.512345Z."""
    text = instant.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")
    return text + "Z"


def local_iso(instant, zone_name):
    """The same instant in the display zone with its offset: ...T21:00:29.512345+08:00."""
    return instant.astimezone(zone(zone_name)).isoformat(timespec="microseconds")


def parse_instant(text):
    """An aware datetime from ISO 8601 text; a trailing Z means UTC."""
    if not isinstance(text, str):
        raise ValueError(f"not a timestamp: {text!r}")
    value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return value


def describe(instant, zone_name):
    """For people: '2026-01-01 13:00:29 UTC (2026-01-01 21:00:29 +08 Asia/Singapore)'."""
    local = instant.astimezone(zone(zone_name))
    return "{} UTC ({} {})".format(
        instant.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        zone_name,
    )
