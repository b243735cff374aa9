# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The catalogue page of a backup directory (``index.html``), and writing it.

The page is one self-contained HTML file: inline CSS, inline SVG charts drawn
here, no JavaScript, nothing fetched from anywhere (a Content-Security-Policy
says so to the browser too), so it opens on an offline machine straight from
the disk. Every value from an archive or a status file is HTML-escaped.

It holds no time of its own making: the same directory gives the same page,
byte for byte, so rewriting it is idempotent.

The page is replaced whole (_platform/files.py write_atomically), never
written through a link; the page there now is read for the comparison (and
--diff) only if it is a regular file: a link there is neither followed nor
read, it is replaced, and the result says so.
"""

from __future__ import annotations

import html
import os
import stat
from datetime import datetime, timezone

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    CatalogueError,
    human_size,
    list_archives,
    percent,
)
from ansible_collections.edms.backup.plugins.module_utils._format.trend import (
    ThresholdError,
    check_threshold,
    compare_all,
    describe_drop,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.files import (
    NotARegularFile,
    open_regular,
    write_atomically,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.timezones import (
    TimeZoneError,
    local_iso,
    parse_instant,
)

INDEX = "index.html"
PAGE_MODE = 0o644
# Read no more of the page there now than a page of thousands of archives.
PAGE_MAX_SIZE = 64 << 20
DROP_BADGE = "COUNTS FELL"

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1d2430; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; }
p.lead { color: #4a5566; margin-top: 0; }
.alert { border: 2px solid #b3001b; background: #fde8ea; color: #7a0012; padding: 0.6em 1em;
  border-radius: 4px; font-weight: 600; }
.ok-note { border: 1px solid #2e7d32; background: #eaf5ea; padding: 0.5em 1em; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 0.86em; }
th, td { border: 1px solid #c9d0da; padding: 0.35em 0.5em; vertical-align: top; text-align: left; }
th { background: #eef1f5; }
tr.drop td { background: #fde8ea; }
tr.drop td:first-child { border-left: 6px solid #b3001b; }
.badge { display: inline-block; padding: 0.1em 0.5em; border-radius: 3px; font-weight: 700;
  font-size: 0.85em; color: #fff; background: #6b7686; }
.badge.drop-badge { background: #b3001b; }
.state-passed { color: #1b5e20; font-weight: 600; }
.state-failed, .state-stale, .state-unreadable { color: #b3001b; font-weight: 600; }
.state-unverified, .state-unconfirmed, .muted { color: #6b7686; }
.drop-detail { color: #7a0012; margin-top: 0.3em; }
ul.counts { margin: 0; padding-left: 1.1em; }
li.fell { color: #b3001b; font-weight: 700; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; }
figcaption { font-weight: 600; font-size: 0.9em; margin-bottom: 0.2em; }
svg text { font-family: system-ui, sans-serif; font-size: 11px; fill: #4a5566; }
svg .axis { stroke: #8a94a3; stroke-width: 1; }
svg .grid { stroke: #e3e7ed; stroke-width: 1; }
svg .line { fill: none; stroke: #1f5fa8; stroke-width: 2; }
svg .point { fill: #1f5fa8; }
svg .point.drop { fill: #b3001b; }
code { font-size: 0.95em; }
"""


class PageError(ModuleFailure):
    """The catalogue page cannot be made or written."""


def esc(value):
    return html.escape("" if value is None else str(value), quote=True)


def _utc_text(iso):
    """'2026-01-01 13:00:29 UTC' from UTC ISO text; the text itself if unparsable."""
    try:
        return parse_instant(iso).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError):
        return str(iso)


def _local_text(iso, display_timezone):
    """'2026-01-01 21:00:29 +08:00' in the display zone."""
    try:
        local = local_iso(parse_instant(iso), display_timezone)
    except (TypeError, ValueError, TimeZoneError):
        return str(iso)
    return local[:10] + " " + local[11:19] + " " + local[-6:]


def _time_cell(iso, text):
    return f'<time datetime="{esc(iso)}">{esc(text)}</time>'


def _when(iso, display_timezone):
    return f"{_utc_text(iso)} ({_local_text(iso, display_timezone)})"


def verification_text(verification, display_timezone, unreadable=None):
    """What the list module says of the verification, for people."""
    state = verification.get("state", "unverified")
    if state == "unreadable":
        return "UNREADABLE: " + str(unreadable or "the archive cannot be read")
    problem = verification.get("problem")
    if state == "unverified":
        return "unverified" + (f" ({problem})" if problem else "")
    words = {
        "passed": "passed",
        "failed": "FAILED",
        "stale": "stale",
        "unconfirmed": "unconfirmed",
    }.get(state, state)
    text = words
    if verification.get("at"):
        text += ", " + _when(verification["at"], display_timezone)
    if state == "stale":
        text += f" ({problem or 'the archive changed since it was verified'})"
    if state == "unconfirmed":
        text += " (recorded as passed without the archive's sha256, so not believed)"
    problems = verification.get("problems") or []
    if not isinstance(problems, list):
        problems = [problems]
    if state == "failed" and problems:
        text += ": " + "; ".join(str(p) for p in problems[:5])
        if len(problems) > 5:
            text += f" (and {len(problems) - 5} more)"
    return text


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def copies_text(copies, display_timezone):
    """'controller:/srv/... (2026-01-01 21:02 +08); ...' for the verified copies
    recorded beside the archive (archive_copy), or 'no verified copy elsewhere'."""
    if not copies:
        return "no verified copy elsewhere"
    return "; ".join(
        "{} at {} ({})".format(
            copy["destination"], copy["location"], _when(copy["at"], display_timezone)
        )
        for copy in copies
    )


def rehearsal_text(rehearsal, display_timezone):
    """'last rehearsed: ok, <when>, 12.3 s' as the list module records it."""
    if not rehearsal:
        return "never rehearsed"
    if not rehearsal.get("ok"):
        verdict = "FAILED"
    elif _count(rehearsal.get("losses")):
        # An application's own backup that loads, but not as the live data is.
        verdict = "loaded, but {} of its models or media differ from the live data".format(
            rehearsal["losses"]
        )
    else:
        verdict = "ok"
    text = "last rehearsed: " + verdict
    if rehearsal.get("at"):
        text += ", " + _when(rehearsal["at"], display_timezone)
    if rehearsal.get("seconds") is not None:
        text += ", {} s".format(rehearsal["seconds"])
    if rehearsal.get("database"):
        text += ", in database " + str(rehearsal["database"])
    if rehearsal.get("error"):
        text += ": " + str(rehearsal["error"])
    if rehearsal.get("stale"):
        text += " (stale: the archive changed since)"
    elif rehearsal.get("unconfirmed"):
        text += " (unconfirmed: recorded without the archive's sha256)"
    return text


# --- charts -----------------------------------------------------------------


def _seconds(iso):
    try:
        return parse_instant(iso).timestamp()
    except (TypeError, ValueError):
        return None


def _short_utc(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def line_chart(title, points, value_text, width=560, height=200, integers=False):
    """An inline SVG line chart of points [(seconds, value, archive, marked)],
    oldest first; marked points are drawn red and bigger. With integers, the
    top of the scale is even, so that its middle line is a whole number too."""
    left, right, top, bottom = 64, 16, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    times = [p[0] for p in points]
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    if t1 - t0 < 1:
        t0, t1 = t0 - 3600, t1 + 3600
    top_value = max([p[1] for p in points] + [0])
    top_value = top_value if top_value > 0 else 1
    if integers:
        top_value = max(2, int(top_value) + int(top_value) % 2)

    def x(seconds):
        return left + (seconds - t0) / (t1 - t0) * plot_w

    def y(value):
        return top + plot_h - value / top_value * plot_h

    out = [
        f'<svg class="chart" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}"><title>{esc(title)}</title>'
    ]
    for fraction in (0, 0.5, 1):
        value = top_value * fraction
        gy = y(value)
        out.append(
            f'<line class="grid" x1="{left}" y1="{gy:.1f}" x2="{left + plot_w}" y2="{gy:.1f}"/>'
            f'<text x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{esc(value_text(value))}</text>"
        )
    out.append(
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}"'
        f' y2="{top + plot_h}"/>'
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/>'
    )
    if times:
        first, last = min(times), max(times)
        out.append(
            f'<text x="{x(first):.1f}" y="{height - 10}" text-anchor="start">'
            f"{esc(_short_utc(first))}</text>"
        )
        if last - first >= 1:
            out.append(
                f'<text x="{x(last):.1f}" y="{height - 10}" text-anchor="end">'
                f"{esc(_short_utc(last))}</text>"
            )
    if len(points) > 1:
        coords = " ".join(f"{x(p[0]):.1f},{y(p[1]):.1f}" for p in points)
        out.append(f'<polyline class="line" points="{coords}"/>')
    for seconds, value, archive, marked in points:
        css = "point drop" if marked else "point"
        radius = 6 if marked else 3.5
        label = f"{archive}: {value_text(value)}" + (" (counts fell)" if marked else "")
        out.append(
            f'<circle class="{css}" cx="{x(seconds):.1f}" cy="{y(value):.1f}" r="{radius}">'
            f"<title>{esc(label)}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


def _count_text(value):
    return str(round(value))


def charts(archives, comparisons):
    """The size chart and one count chart per model, oldest archive first."""
    timed = [(a, _seconds(a["created_at"])) for a in reversed(archives)]
    timed = [(a, s) for a, s in timed if s is not None]
    flagged = {name: c for name, c in comparisons.items() if c["drops"]}
    sizes = [
        (s, a["size"], a["name"], a["name"] in flagged)
        for a, s in timed
        if isinstance(a["size"], int)  # unknown for an archive that cannot be read
    ]
    parts = [
        "<h2>Archive size over time</h2>",
        '<div class="charts"><figure><figcaption>Size</figcaption>',
        line_chart("Archive size over time", sizes, lambda v: human_size(int(v))),
        "</figure></div>",
        "<h2>Objects per model over time</h2>",
    ]
    models = sorted({m for a, _s in timed for m in a["counts"]})
    if not models:
        parts.append('<p class="muted">No archive has counts in its metadata.</p>')
        return "".join(parts)
    parts.append('<div class="charts">')
    for model in models:
        points = []
        for archive, seconds in timed:
            if not archive["counts"]:
                continue  # no metadata: unknown, not zero
            fell = {d["model"] for d in comparisons[archive["name"]]["drops"]}
            points.append(
                (seconds, archive["counts"].get(model, 0), archive["name"], model in fell)
            )
        parts.append(
            f'<figure class="model-chart" data-model="{esc(model)}">'
            f"<figcaption>{esc(model)}</figcaption>"
            + line_chart(
                f"{model} objects over time", points, _count_text, width=420, integers=True
            )
            + "</figure>"
        )
    parts.append("</div>")
    return "".join(parts)


# --- the page ---------------------------------------------------------------


def _trend_cell(comparison, has_counts, threshold):
    if not threshold:
        return '<span class="muted">comparison off</span>'
    if not has_counts:
        return '<span class="muted">not compared: no counts in its metadata</span>'
    if comparison["previous"] is None:
        return '<span class="muted">no earlier verified archive to compare with</span>'
    if not comparison["drops"]:
        return "no fall against " + esc(comparison["previous"])
    return "fell against " + esc(comparison["previous"])


def _row(archive, comparison, display_timezone, threshold):
    drops = comparison["drops"]
    fell = {d["model"] for d in drops}
    name = archive["name"]
    css = "archive drop" if drops else "archive"
    cells = [f'<strong class="name">{esc(name)}</strong>']
    if drops:
        cells.append(
            f' <span class="badge drop-badge">{DROP_BADGE}</span>'
            '<div class="drop-detail">'
            + esc(", ".join(describe_drop(d) for d in drops))
            + " against the previous verified archive "
            + esc(comparison["previous"])
            + "</div>"
        )
    details = [archive["layout"]]
    if archive.get("label"):
        details.append("label: " + str(archive["label"]))
    if archive.get("reason"):
        details.append("reason: " + str(archive["reason"]))
    cells.append(f'<div class="muted">{esc(" / ".join(details))}</div>')
    verification = archive.get("verification") or {"state": "unverified"}
    state = verification.get("state", "unverified")
    if archive["counts"]:
        items = "".join(
            '<li class="{}">{}: {}</li>'.format(
                "fell" if model in fell else "count", esc(model), esc(count)
            )
            for model, count in sorted(archive["counts"].items())
        )
        items += "".join(
            f'<li class="fell">{esc(model)}: 0 (gone)</li>'
            for model in sorted(fell - set(archive["counts"]))
        )
        counts = f'<ul class="counts">{items}</ul>'
    else:
        counts = '<span class="muted">no counts (no metadata)</span>'
    created = archive["created_at"]
    return (
        f'<tr class="{css}" id="archive-{esc(name)}" data-archive="{esc(name)}">'
        f"<td>{''.join(cells)}</td>"
        f"<td>{_time_cell(created, _utc_text(created))}</td>"
        f"<td>{_time_cell(archive['created_at_local'], _local_text(created, display_timezone))}"
        "</td>"
        f'<td class="num" title="{esc(archive["size"])} bytes">{esc(human_size(archive["size"]))}'
        "</td>"
        f'<td class="state-{esc(state)}">'
        f"{esc(verification_text(verification, display_timezone, archive.get('unreadable')))}"
        "</td>"
        f"<td>{esc(rehearsal_text(archive.get('rehearsal'), display_timezone))}</td>"
        f"<td>{esc(copies_text(archive.get('copies'), display_timezone))}</td>"
        f"<td>{counts}</td>"
        f"<td>{_trend_cell(comparison, bool(archive['counts']), threshold)}</td>"
        "</tr>"
    )


def render_page(catalogue, backup_dir, display_timezone, threshold, comparisons=None):
    """The page for a catalogue from _format/catalogue.py list_archives(); comparisons as
    _format/trend.py compare_all() gives them (computed when not given)."""
    archives = catalogue["archives"]
    if comparisons is None:
        comparisons = compare_all(archives, threshold)
    flagged = [a["name"] for a in archives if comparisons[a["name"]]["drops"]]
    title = f"EDMS backups in {backup_dir}"
    rule = (
        f"An archive is marked {DROP_BADGE} when a model lost more than"
        f" {percent(float(threshold))} of its"
        " objects, or vanished, against the previous verified archive (the newest earlier"
        " archive whose verification passed and is current)."
        if threshold
        else "The comparison of counts between archives is off."
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy"'
        " content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        "</head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="lead">{len(archives)} archive(s), newest first. Times in UTC and in'
        f" {esc(display_timezone)}. {esc(rule)}</p>",
    ]
    newest = catalogue.get("newest")
    newest_verified = catalogue.get("newest_verified")
    parts.append(
        "<p>Newest: <strong>{}</strong>. Newest verified: <strong>{}</strong>.</p>".format(
            esc(newest["name"]) if newest else "none",
            esc(newest_verified["name"]) if newest_verified else "none",
        )
    )
    if flagged:
        parts.append(
            '<p class="alert" role="alert">Counts fell in {} archive(s): {}. A backup of a'
            " damaged database verifies like any other; check the database before relying"
            " on them.</p>".format(len(flagged), esc(", ".join(flagged)))
        )
    elif threshold and archives:
        parts.append('<p class="ok-note">No archive shows a fall in counts.</p>')
    if catalogue.get("partials"):
        parts.append(
            '<p class="muted">Interrupted backups (not archives): {}</p>'.format(
                esc(", ".join(os.path.basename(p) for p in catalogue["partials"]))
            )
        )
    parts.append("<h2>Archives</h2>")
    if archives:
        parts.append(
            '<table class="archives"><thead><tr><th>Archive</th><th>Created (UTC)</th>'
            f"<th>Created ({esc(display_timezone)})</th><th>Size</th><th>Verification</th>"
            "<th>Rehearsal</th><th>Copies</th><th>Objects per model</th>"
            "<th>Counts against the previous verified archive</th></tr></thead><tbody>"
        )
        parts.extend(_row(a, comparisons[a["name"]], display_timezone, threshold) for a in archives)
        parts.append("</tbody></table>")
        parts.append(charts(archives, comparisons))
    else:
        parts.append('<p class="muted">No archive in this directory.</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --- writing it -------------------------------------------------------------


def _current(dest):
    """(text, mode, owner, note) of the page now: (None, None, None, None)
    when there is none; text None and a note saying why when it is not read
    (a link, which is never followed, or a file too big to be the page)."""
    try:
        handle = open_regular(dest)
    except FileNotFoundError:
        return None, None, None, None
    except NotARegularFile:
        if not stat.S_ISLNK(os.lstat(dest).st_mode):
            raise PageError(
                f"cannot write the catalogue page: {dest} exists and is not a file"
            ) from None
        note = (
            f"{dest} is a symbolic link; it is not followed: the page replaces the link,"
            " and what it points to is neither read nor written"
        )
        return None, None, None, note
    with handle:
        st = os.fstat(handle.fileno())
        data = handle.read(PAGE_MAX_SIZE + 1)
    mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
    if len(data) > PAGE_MAX_SIZE:
        note = f"{dest} is more than {PAGE_MAX_SIZE} bytes, so it is not compared: it is replaced"
        return None, mode, owner, note
    return data.decode("utf-8", errors="replace"), mode, owner, None


def _write(dest, text, owner):
    # Not *.partial: that is an interrupted backup to the catalogue.
    write_atomically(dest, text, PAGE_MODE, owner=owner, suffix=".tmp")


def write_catalogue(params, check_mode=False, diff_mode=False):
    """Write index.html for params["backup_dir"]; return the module's result."""
    backup_dir = params["backup_dir"]
    display_timezone = params["display_timezone"]
    threshold = params["count_drop_threshold"]
    dest = params.get("dest") or os.path.join(backup_dir, INDEX)
    result = {"changed": False, "dest": dest}
    try:
        check_threshold(threshold)
        catalogue = list_archives(backup_dir, display_timezone)
    except (ThresholdError, CatalogueError) as exc:
        raise PageError(f"cannot make the catalogue page of {backup_dir}: {exc}", **result) from exc
    if not os.path.isdir(os.path.dirname(dest) or "."):
        raise PageError(f"cannot write {dest}: its directory does not exist", **result)
    comparisons = compare_all(catalogue["archives"], threshold)
    page = render_page(catalogue, backup_dir, display_timezone, threshold, comparisons)
    try:
        before, mode, owner, note = _current(dest)
    except OSError as exc:
        raise PageError(f"cannot read the catalogue page {dest}: {exc}", **result) from exc
    result.update(
        archives=[a["name"] for a in catalogue["archives"]],
        flagged=[
            {"archive": a["name"], "previous": c["previous"], "drops": c["drops"]}
            for a in catalogue["archives"]
            for c in [comparisons[a["name"]]]
            if c["drops"]
        ],
        size=len(page.encode("utf-8")),
        changed=before != page or mode != PAGE_MODE,
    )
    if note:
        result["warnings"] = [note]
    if diff_mode:
        result["diff"] = {
            "before": before or "",
            "after": page,
            "before_header": dest if mode is None else f"{dest} (mode {mode:04o})",
            "after_header": f"{dest} (mode {PAGE_MODE:04o})",
        }
    if result["changed"] and not check_mode:
        try:
            _write(dest, page, owner)
        except OSError as exc:
            raise PageError(f"cannot write the catalogue page {dest}: {exc}", **result) from exc
    return result
