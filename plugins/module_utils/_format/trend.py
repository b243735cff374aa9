# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Counts that fell: an archive compared with the previous verified one.

A backup of an already damaged database verifies: the archive is sound, it
only holds less. What shows the damage is the trend, so every archive is
compared with the previous verified one.

A verified archive whose counts fell is still the reference for the next
one: a fall is reported once, on the archive where it happened (the
catalogue keeps that archive marked), and the backups after it are compared
with what is now the normal state. Skipping fallen archives as references
would instead flag every later backup after a planned purge.

The rule, in one place for the backup module and the catalogue page:

- The *previous verified* archive of an archive A is the newest archive
  created strictly before A (by ``created_at``, then by name) whose
  verification state is ``passed`` (verified, the check passed, and the
  archive has not changed since), and that has counts in its metadata.
  Unverified, failed and stale archives are skipped: they are no reference.
- The *threshold* ``t`` is the fraction of a model's objects that may go
  between the two: a model *fell* when it lost more than ``t`` of them,
  ``before - after > t * before``; with ``t = 0.5`` that is fewer than half
  left. Exactly at the threshold is not a fall. The comparison is exact
  (decimal fractions, no float rounding).
- A model the previous archive held (count above zero) and A does not hold
  (absent from its counts, or zero) *vanished*: always a fall while the
  check is on, whatever the reason (a damaged table, an exclude).
- A model new in A, a model that grew or held steady, and a model with no
  objects before cannot fall. An archive without counts (no metadata) is
  not compared.
- ``t = 0`` turns the check off; ``t`` must be at least 0 and below 1 (at 1
  nothing could ever fall).

Counts are objects per model as the catalogue lists them (m2m tables are not
objects).
"""

from __future__ import annotations

from fractions import Fraction

# Half of a model's objects gone between two backups is no ordinary day's
# deletions in a records system that rarely deletes, yet small tables (a
# handful of rows, one deleted) do not cry wolf.
DEFAULT_THRESHOLD = 0.5
PASSED = "passed"


class ThresholdError(ValueError):
    """A threshold outside [0, 1)."""


def check_threshold(threshold):
    """The threshold as an exact fraction; raises ThresholdError when out of range."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ThresholdError(f"count_drop_threshold {threshold!r} is not a number")
    if not 0 <= threshold < 1:
        raise ThresholdError(
            f"count_drop_threshold {threshold!r} is not between 0 (off) and 1"
            " (exclusive): it is the fraction of a model's objects that may go"
            " between two backups, e.g. 0.5"
        )
    # repr() gives the decimal a person wrote (0.3, not 0.299999...).
    return Fraction(repr(float(threshold)))


def count_drops(before, after, threshold):
    """The models that fell from counts ``before`` to counts ``after``.

    Returns a list sorted by model of {"model", "before", "after",
    "fell_by" (fraction lost, rounded to 4 places), "vanished"}.
    """
    limit = check_threshold(threshold)
    if limit == 0:
        return []
    drops = []
    for model in sorted(before):
        was = before[model]
        if not isinstance(was, int) or isinstance(was, bool) or was <= 0:
            continue
        now = after.get(model)
        vanished = not isinstance(now, int) or isinstance(now, bool) or now <= 0
        now = 0 if vanished else now
        if was - now > limit * was:
            drops.append(
                {
                    "model": model,
                    "before": was,
                    "after": now,
                    "fell_by": round((was - now) / was, 4),
                    "vanished": vanished,
                }
            )
    return drops


def _order(entry):
    return (entry["created_at"], entry["name"])


def previous_verified(archives, archive):
    """The newest archive before ``archive`` whose verification passed and
    that has counts, or None. ``archives`` are catalogue entries (see
    _format/catalogue.py list_archives): ``name``, ``created_at`` (UTC ISO text of one
    fixed width, so it sorts as text), ``verification.state``, ``counts``."""
    earlier = [
        entry
        for entry in archives
        if _order(entry) < _order(archive)
        and (entry.get("verification") or {}).get("state") == PASSED
        and entry.get("counts")
    ]
    return max(earlier, key=_order) if earlier else None


def compare(archives, archive, threshold):
    """{"previous": name or None, "drops": [...]} for one catalogue entry;
    each drop names the previous archive too."""
    check_threshold(threshold)
    if not threshold or not archive.get("counts"):
        return {"previous": None, "drops": []}
    previous = previous_verified(archives, archive)
    if previous is None:
        return {"previous": None, "drops": []}
    drops = count_drops(previous["counts"], archive["counts"], threshold)
    for drop in drops:
        drop["previous"] = previous["name"]
    return {"previous": previous["name"], "drops": drops}


def compare_all(archives, threshold):
    """compare() for every archive, by name."""
    return {entry["name"]: compare(archives, entry, threshold) for entry in archives}


def describe_drop(drop):
    """'documents.document 60 -> 5' or 'workflows.workflow 30 -> 0 (gone)'."""
    text = "{} {} -> {}".format(drop["model"], drop["before"], drop["after"])
    return text + " (gone)" if drop["vanished"] else text


def drop_warning(archive_name, comparison, threshold):
    """The warning for an archive whose counts fell, or None."""
    if not comparison["drops"]:
        return None
    return (
        "counts fell in archive {} against the previous verified archive {}"
        " (more than {:g}% of a model's objects gone): {}. The archive is kept and"
        " verified; check the database before relying on it.".format(
            archive_name,
            comparison["previous"],
            float(threshold) * 100,
            ", ".join(describe_drop(d) for d in comparison["drops"]),
        )
    )
