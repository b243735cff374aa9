import os
import re
import stat
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_catalogue import (
    PageError,
    rehearsal_text,
    render_page,
    write_catalogue,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import ArchiveWriter
from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    human_size,
    list_archives,
    record_status,
    verification_entry,
)

from .._format.test_catalogue import forge_status

FIXTURE = b'[\n{"model": "users.user", "pk": 1, "fields": {"username": "admin"}}\n]\n'
HOSTILE = '<script>alert("x")</script> & co'


def write_archive(directory, day, counts, label="manual", reason=""):
    when = datetime(2026, 1, day, 13, 0, 29, tzinfo=UTC)
    name = when.strftime("edms_%Y%m%dT%H%M%SZ.zip")
    with ArchiveWriter(str(directory), name) as writer:
        writer.add_stream("database_backup.json", FIXTURE)
        return writer.finish(
            {
                "format": "edms.backup",
                "format_version": 1,
                "created_at": when.strftime("%Y-%m-%dT%H:%M:%S.000001Z"),
                "label": label,
                "reason": reason,
                "counts": counts,
                "m2m_tables": [],
            }
        )


def verified(path, ok=True):
    record_status(path, "verification", verification_entry({"ok": ok, "problems": []}))
    return path


class Rows(HTMLParser):
    """The archive rows of the page: {name: {"classes": set, "text": str}}, and
    every tag seen."""

    def __init__(self):
        super().__init__()
        self.rows, self.tags, self.current = {}, [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "tr" and "archive" in (attrs.get("class") or "").split():
            self.current = attrs["data-archive"]
            self.rows[self.current] = {"classes": set(attrs["class"].split()), "text": ""}

    def handle_endtag(self, tag):
        if tag == "tr":
            self.current = None

    def handle_data(self, data):
        if self.current:
            self.rows[self.current]["text"] += data


def parse(text):
    parser = Rows()
    parser.feed(text)
    return parser


@pytest.fixture
def history(tmp_path):
    """Four archives: a, b verified; c (verified) whose documents fell and whose
    workflows vanished; d after it, back to normal."""
    a = verified(write_archive(tmp_path, 1, {"documents.document": 58, "workflows.workflow": 30}))
    b = verified(write_archive(tmp_path, 2, {"documents.document": 60, "workflows.workflow": 30}))
    c = verified(write_archive(tmp_path, 3, {"documents.document": 5}, label=HOSTILE))
    d = write_archive(tmp_path, 4, {"documents.document": 61, "workflows.workflow": 31})
    record_status(
        d,
        "rehearsal",
        {"ok": True, "at": "2026-01-04T13:10:00.000000Z", "seconds": 12.3, "database": "t"},
    )
    return tmp_path, [os.path.basename(p) for p in (a, b, c, d)]


def params(directory, **extra):
    return {
        "backup_dir": str(directory),
        "display_timezone": "Asia/Singapore",
        "count_drop_threshold": 0.5,
        "dest": None,
        **extra,
    }


def page_of(directory, threshold=0.5):
    catalogue = list_archives(str(directory), "Asia/Singapore")
    return render_page(catalogue, str(directory), "Asia/Singapore", threshold)


def test_every_archive_has_a_row_and_only_the_one_that_fell_is_marked(history):
    directory, (a, b, c, d) = history
    rows = parse(page_of(directory)).rows
    assert list(rows) == [d, c, b, a]  # newest first
    assert {name for name, row in rows.items() if "drop" in row["classes"]} == {c}
    marked = rows[c]["text"]
    assert "COUNTS FELL" in marked
    assert "documents.document 60 -> 5" in marked
    assert "workflows.workflow 30 -> 0 (gone)" in marked
    assert f"against the previous verified archive {b}" in marked
    for name in (a, b, d):
        assert "COUNTS FELL" not in rows[name]["text"]
    # d is compared with c, the previous verified one: it rose, no mark.
    assert f"no fall against {c}" in rows[d]["text"]
    assert "no earlier verified archive" in rows[a]["text"]


def test_the_row_shows_times_in_both_zones_size_states_and_counts(history):
    directory, (_a, b, _c, d) = history
    rows = parse(page_of(directory)).rows
    text = rows[b]["text"]
    assert "2026-01-02 13:00:29 UTC" in text
    assert "2026-01-02 21:00:29 +08:00" in text
    assert "passed, " in text
    assert "never rehearsed" in text
    assert "documents.document: 60" in text
    assert "workflows.workflow: 30" in text
    size = os.path.getsize(os.path.join(directory, b))
    assert human_size(size) in text
    assert rows[d]["text"].count("unverified") == 1
    assert (
        "last rehearsed: ok, 2026-01-04 13:10:00 UTC (2026-01-04 21:10:00 +08:00), 12.3 s"
        in rows[d]["text"]
    )


def test_every_value_is_escaped(history):
    directory, _names = history
    text = page_of(directory)
    assert "<script" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in text
    # And it comes back as the text it was, not as markup.
    parsed = parse(text)
    assert not [tag for tag, _attrs in parsed.tags if tag == "script"]
    assert any(HOSTILE in row["text"] for row in parsed.rows.values())


def test_the_page_is_self_contained(history):
    directory, _names = history
    text = page_of(directory)
    tags = parse(text).tags
    assert "http://" not in text
    assert "https://" not in text
    assert not [t for t, attrs in tags if t in ("script", "link", "img", "iframe", "object")]
    assert not [t for t, attrs in tags if "src" in attrs or "href" in attrs]
    csp = [a for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp
    assert csp[0]["content"].startswith("default-src 'none'")


def test_charts_of_size_and_of_each_model_with_the_fall_in_red(history):
    directory, (_a, _b, c, _d) = history  # c fell
    text = page_of(directory)
    tags = parse(text).tags
    assert len([tag for tag, _attrs in tags if tag == "svg"]) == 3  # sizes, documents, workflows
    figures = [a["data-model"] for t, a in tags if t == "figure" and "data-model" in a]
    assert figures == ["documents.document", "workflows.workflow"]
    red = [a for t, a in tags if t == "circle" and a["class"] == "point drop"]
    # c is red in the size chart and in both model charts (vanished plots as 0).
    assert len(red) == 3
    red_titles = re.findall(r'<circle class="point drop"[^>]*><title>([^<]*)</title>', text)
    assert len(red_titles) == 3
    assert all(t.startswith(c + ": ") and t.endswith("(counts fell)") for t in red_titles)
    assert len([t for t, a in tags if t == "circle"]) == 4 * 3


def test_the_same_directory_gives_the_same_page(history):
    directory, _names = history
    assert page_of(directory) == page_of(directory)


def test_threshold_zero_marks_nothing(history):
    directory, _names = history
    rows = parse(page_of(directory, threshold=0)).rows
    assert not [n for n, row in rows.items() if "drop" in row["classes"]]
    assert "COUNTS FELL" not in "".join(row["text"] for row in rows.values())


def test_an_empty_directory_gives_a_page_that_says_so(tmp_path):
    text = page_of(tmp_path)
    assert "No archive in this directory." in text
    assert parse(text).rows == {}


def test_rehearsal_text_as_the_list_module_records_it():
    assert rehearsal_text(None, "UTC") == "never rehearsed"
    failed = {"ok": False, "at": "2026-01-01T00:00:00.000000Z", "seconds": 2.5, "error": "boom"}
    assert rehearsal_text(failed, "UTC") == (
        "last rehearsed: FAILED, 2026-01-01 00:00:00 UTC (2026-01-01 00:00:00 +00:00), 2.5 s: boom"
    )
    assert rehearsal_text({"ok": True, "stale": True}, "UTC").endswith(
        "(stale: the archive changed since)"
    )


def test_write_check_mode_rerun_and_diff(history):
    directory, names = history
    dest = os.path.join(directory, "index.html")

    planned = write_catalogue(params(directory), check_mode=True, diff_mode=True)
    assert planned["changed"] is True
    assert not os.path.exists(dest)
    assert planned["diff"]["before"] == ""
    assert planned["diff"]["after"].startswith("<!DOCTYPE html>")
    assert planned["archives"] == names[::-1]
    assert [f["archive"] for f in planned["flagged"]] == [names[2]]
    assert planned["flagged"][0]["previous"] == names[1]

    written = write_catalogue(params(directory))
    assert written["changed"] is True
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o644
    with open(dest, encoding="utf-8") as handle:
        assert handle.read() == planned["diff"]["after"]
    assert sorted(n for n in os.listdir(directory) if n.startswith(".")) == []
    # The page is not an archive, nor an interrupted backup.
    catalogue = list_archives(str(directory), "UTC")
    assert len(catalogue["archives"]) == 4
    assert catalogue["partials"] == []

    again = write_catalogue(params(directory), diff_mode=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]


def test_a_new_state_or_a_wrong_mode_rewrites_it(history):
    directory, (_a, _b, _c, d) = history
    dest = os.path.join(directory, "index.html")
    write_catalogue(params(directory))
    verified(os.path.join(directory, d))
    assert write_catalogue(params(directory))["changed"] is True
    os.chmod(dest, 0o600)
    result = write_catalogue(params(directory), diff_mode=True)
    assert result["changed"] is True
    assert result["diff"]["before_header"] == f"{dest} (mode 0600)"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o644
    assert write_catalogue(params(directory))["changed"] is False


def test_dest_elsewhere(history, tmp_path_factory):
    directory, _names = history
    dest = os.path.join(str(tmp_path_factory.mktemp("site")), "backups.html")
    assert write_catalogue(params(directory, dest=dest))["dest"] == dest
    assert os.path.isfile(dest)
    assert not os.path.exists(os.path.join(directory, "index.html"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"count_drop_threshold": 1.0}, "count_drop_threshold 1.0 is not between 0"),
        ({"display_timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"backup_dir": "/nonexistent/backups"}, "cannot list backup directory"),
        ({"dest": "/nonexistent/dir/index.html"}, "its directory does not exist"),
    ],
)
def test_bad_input_fails_naming_it_and_writes_nothing(history, extra, message):
    directory, _names = history
    with pytest.raises(PageError, match=message):
        write_catalogue(params(directory, **extra))
    assert "index.html" not in os.listdir(directory)


def test_dest_that_is_a_directory_is_refused(history):
    directory, _names = history
    os.mkdir(os.path.join(directory, "index.html"))
    with pytest.raises(PageError, match="exists and is not a file"):
        write_catalogue(params(directory))


def test_a_rehearsal_that_loaded_an_applications_backup_with_losses_says_so():
    entry = {"ok": True, "losses": 3, "database": "edms_test_restore"}
    assert rehearsal_text(entry, "UTC") == (
        "last rehearsed: loaded, but 3 of its models or media differ from the live data,"
        " in database edms_test_restore"
    )
    assert rehearsal_text(dict(entry, losses=0), "UTC").startswith("last rehearsed: ok")
    assert rehearsal_text(dict(entry, losses="3"), "UTC").startswith("last rehearsed: ok")


def test_f2_a_page_that_is_a_link_is_neither_read_nor_written_through(history):
    """index.html planted as a link to a file elsewhere: the link is replaced
    by the page, the file it points to neither written nor read (not even
    into --diff), and the result says so."""
    directory, _names = history
    target = directory.parent / (directory.name + "-secret.txt")
    target.write_text("password=hunter2\n")
    dest = directory / "index.html"
    dest.symlink_to(target)
    planned = write_catalogue(params(directory), check_mode=True, diff_mode=True)
    assert planned["diff"]["before"] == ""
    assert "hunter2" not in str(planned)
    assert "symbolic link" in planned["warnings"][0]
    assert dest.is_symlink()  # check mode
    written = write_catalogue(params(directory), diff_mode=True)
    assert written["changed"] is True
    assert "hunter2" not in written["diff"]["before"]
    assert target.read_text() == "password=hunter2\n"
    assert not dest.is_symlink()
    assert dest.read_text(encoding="utf-8") == written["diff"]["after"]


def test_a_link_at_the_pages_temporary_name_is_neither_followed_nor_removed(history, monkeypatch):
    from ansible_collections.edms.backup.plugins.module_utils._platform import files

    directory, _names = history
    monkeypatch.setattr(files.secrets, "token_hex", lambda nbytes: "f" * 2 * nbytes)
    target = directory.parent / (directory.name + "-target.txt")
    target.write_text("not yours\n")
    planted = directory / ".index.html.ffffffff.tmp"
    planted.symlink_to(target)
    with pytest.raises(PageError, match="cannot write the catalogue page"):
        write_catalogue(params(directory))
    assert target.read_text() == "not yours\n"
    assert planted.is_symlink()
    assert not (directory / "index.html").exists()


def test_f6_the_page_lists_unreadable_archives_and_says_why(history):
    directory, names = history
    with open(directory / "edms_20260105T130029Z.zip", "wb") as handle:
        handle.write(b"PK\x03\x04 not a zip at all")
    bad_name = os.path.join(os.fsencode(str(directory)), b"edms_20260106T130029Z\xff.zip")
    with open(bad_name, "wb") as handle:
        handle.write(b"PK")
    with open(directory / (names[0] + ".status.json"), "w", encoding="utf-8") as handle:
        handle.write('{"verification": ["ok"]}')
    result = write_catalogue(params(directory))
    assert result["archives"][:2] == [
        "edms_20260106T130029Z\\xff.zip",
        "edms_20260105T130029Z.zip",
    ]
    rows = parse((directory / "index.html").read_text(encoding="utf-8")).rows
    assert "UNREADABLE: not a readable ZIP file" in rows["edms_20260105T130029Z.zip"]["text"]
    assert "not valid UTF-8" in rows["edms_20260106T130029Z\\xff.zip"]["text"]
    assert "unverified (status file" in rows[names[0]]["text"]


def test_f1_the_page_says_a_verification_without_a_sha256_is_not_believed(history):
    directory, names = history
    forge_status(str(directory / names[3]))
    text = parse(page_of(directory)).rows[names[3]]["text"]
    assert "unconfirmed" in text
    assert "not believed" in text
    assert "passed" not in text.replace("recorded as passed", "")
