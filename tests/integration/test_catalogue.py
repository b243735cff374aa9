"""The catalogue page of a backup directory, from real archives of the demo
stack, written by playbooks/catalogue.yml and opened in headless Chromium.

The archive whose counts fell is a real backup of the live stack taken with
the ``workflows`` app excluded (and the required models set to match, so that
it verifies): to the comparison, two models the previous verified archive
held are gone, as they would be after a damaged table. The live data is only
read.
"""

import os
import shutil
import stat
import struct
import tempfile
import zlib
from html.parser import HTMLParser

import pytest

from .conftest import ROOT, RUN, run, run_module, run_playbook

PROJECT = {"project_dir": RUN, "compose_files": ["docker-compose.prod.yml"]}
ZONE = "Asia/Singapore"
DEFAULT_EXCLUDES = ["contenttypes", "auth.permission", "sessions"]
WITHOUT_WORKFLOWS = {
    "excludes": [*DEFAULT_EXCLUDES, "workflows"],
    "required_models": ["documents.Document", "users.User"],
}
WORKFLOW_MODELS = ["workflows.workflow", "workflows.workflowstep"]
SCREEN = (1400, 2000)
OUTPUT = os.path.join(ROOT, "tests", "output")


def create(directory, **args):
    """archive_create ad hoc: (rc, result, warnings printed on stderr)."""
    params = {
        **PROJECT,
        "backup_dir": directory,
        "display_timezone": ZONE,
        "pgdump": False,
        # The models the demo inventory counts, as the backup role requires them.
        "required_models": ["documents.Document", "users.User", "workflows.Workflow"],
    }
    return run_module("archive_create", {**params, **args}, warnings=True)


@pytest.fixture(scope="module")
def history(stack):
    """Three real archives in a temporary backup directory, each verified with
    archive_verify: a full one, one without the workflows (counts fell), and a
    full one again."""
    directory = tempfile.mkdtemp(prefix="edms-catalogue-")
    taken = {}
    for key, args in (("first", {}), ("fell", WITHOUT_WORKFLOWS), ("after", {})):
        rc, result, warnings = create(directory, **args)
        assert rc == 0, result.get("msg")
        taken[key] = dict(result, warnings=warnings)
        rc, verified = run_module(
            "archive_verify", {"archive": result["archive"], "display_timezone": ZONE}
        )
        assert rc == 0, verified.get("msg")
        assert verified["ok"] is True
    yield directory, taken
    shutil.rmtree(directory, ignore_errors=True)


def recap_changed(proc):
    line = next(line for line in proc.stdout.splitlines() if line.startswith("edms-demo "))
    return int(line.split("changed=")[1].split()[0])


def test_the_backup_warns_on_a_real_fall_and_keeps_the_archive(history):
    _directory, taken = history
    first, fell, after = taken["first"], taken["fell"], taken["after"]
    assert first["count_drops"] == []
    assert first["count_compared_with"] is None
    assert first["warnings"] == []

    assert fell["changed"] is True
    assert fell["verification"]["ok"] is True
    assert os.path.isfile(fell["archive"])
    assert fell["count_compared_with"] == first["name"]
    assert [d["model"] for d in fell["count_drops"]] == WORKFLOW_MODELS
    for drop in fell["count_drops"]:
        assert drop["before"] == first["counts"][drop["model"]] > 0
        assert drop["after"] == 0
        assert drop["vanished"] is True
        assert drop["previous"] == first["name"]
    assert len(fell["warnings"]) == 1
    warning = fell["warnings"][0]
    assert f"counts fell in archive {fell['name']}" in warning
    assert f"previous verified archive {first['name']}" in warning
    for model in WORKFLOW_MODELS:
        assert f"{model} {first['counts'][model]} -> 0 (gone)" in warning

    # The next one is compared with the one that fell (verified): counts rose.
    assert after["count_compared_with"] == fell["name"]
    assert after["count_drops"] == []
    assert after["warnings"] == []


def test_a_threshold_out_of_range_fails_the_backup_before_it_starts(history):
    directory, _taken = history
    before = sorted(os.listdir(directory))
    rc, result, _warnings = create(directory, count_drop_threshold=1.5)
    assert rc != 0
    assert "count_drop_threshold 1.5 is not between 0 (off) and 1" in result["msg"]
    assert sorted(os.listdir(directory)) == before


def test_the_playbook_check_mode_run_and_rerun(history):
    directory, taken = history
    page = os.path.join(directory, "index.html")
    if os.path.exists(page):
        os.remove(page)

    planned = run_playbook("catalogue.yml", f"edms_archive_dir={directory}", check=True, diff=True)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert recap_changed(planned) == 1
    assert "+<!DOCTYPE html>" in planned.stdout
    assert not os.path.exists(page)
    assert [n for n in os.listdir(directory) if n.startswith(".")] == []

    done = run_playbook("catalogue.yml", f"edms_archive_dir={directory}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert recap_changed(done) == 1
    assert stat.S_IMODE(os.stat(page).st_mode) == 0o644
    fell, first = taken["fell"]["name"], taken["first"]["name"]
    assert (
        f"COUNTS FELL {fell} against {first}: workflows.workflow, workflows.workflowstep"
        in done.stdout
    )
    assert done.stdout.count("COUNTS FELL edms_") == 1

    again = run_playbook("catalogue.yml", f"edms_archive_dir={directory}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert recap_changed(again) == 0

    # The page is neither an archive nor an interrupted backup to the list.
    rc, listing = run_module("archive_info", {"backup_dir": directory, "display_timezone": ZONE})
    assert rc == 0
    assert len(listing["archives"]) == 3
    assert listing["partials"] == []


def test_the_page_takes_the_backup_roles_threshold_unless_its_own_is_set(history):
    directory, taken = history
    fell = taken["fell"]["name"]
    off = run_playbook(
        "catalogue.yml", f"edms_archive_dir={directory}", {"backup_count_drop_threshold": 0}
    )
    assert off.returncode == 0, off.stdout + off.stderr
    assert "COUNTS FELL" not in off.stdout
    own = run_playbook(
        "catalogue.yml",
        f"edms_archive_dir={directory}",
        {"backup_count_drop_threshold": 0, "edms_count_drop_threshold": 0.5},
    )
    assert own.returncode == 0, own.stdout + own.stderr
    assert f"COUNTS FELL {fell} against" in own.stdout
    # The page is left as the default threshold writes it.
    again = run_playbook("catalogue.yml", f"edms_archive_dir={directory}")
    assert again.returncode == 0, again.stdout + again.stderr


def test_the_playbook_refuses_bad_input_naming_it(history):
    directory, _taken = history
    typed = run_playbook(
        "catalogue.yml", f"edms_archive_dir={directory}", {"edms_count_drop_threshold": "lots"}
    )
    assert typed.returncode != 0
    assert "edms_count_drop_threshold" in typed.stdout
    ranged = run_playbook(
        "catalogue.yml", f"edms_archive_dir={directory}", {"edms_count_drop_threshold": 1.5}
    )
    assert ranged.returncode != 0
    assert "count_drop_threshold 1.5 is not between 0 (off) and 1" in ranged.stdout
    inherited = run_playbook(
        "catalogue.yml", f"edms_archive_dir={directory}", {"backup_count_drop_threshold": "lots"}
    )
    assert inherited.returncode != 0
    assert "backup_count_drop_threshold" in inherited.stdout
    missing = run_playbook("catalogue.yml", "edms_archive_dir=/nonexistent/edms-backups")
    assert missing.returncode != 0
    assert "cannot list backup directory /nonexistent/edms-backups" in missing.stdout


class Dom(HTMLParser):
    """Archive rows of the rendered DOM: {name: {"classes", "text"}}, and scripts."""

    def __init__(self):
        super().__init__()
        self.rows, self.scripts, self.current = {}, 0, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.scripts += tag == "script"
        if tag == "tr" and "archive" in (attrs.get("class") or "").split():
            self.current = attrs["data-archive"]
            self.rows[self.current] = {"classes": set(attrs["class"].split()), "text": ""}

    def handle_endtag(self, tag):
        if tag == "tr":
            self.current = None

    def handle_data(self, data):
        if self.current:
            self.rows[self.current]["text"] += data


def chromium(profile, *args):
    return run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            *args,
        ],
        timeout=180,
    )


def png_size(path):
    """(width, height) of a PNG, after checking its signature, its IHDR CRC and its end."""
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR"
    assert length == 13
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert crc == zlib.crc32(data[12 : 16 + length])
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82"
    return struct.unpack(">II", data[16:24])


def test_the_page_in_headless_chromium_shows_every_archive_and_flags_the_fall(history, tmp_path):
    directory, taken = history
    written = run_playbook("catalogue.yml", f"edms_archive_dir={directory}")
    assert written.returncode == 0, written.stdout + written.stderr
    url = "file://" + os.path.join(directory, "index.html")
    profile = str(tmp_path / "profile")

    os.makedirs(OUTPUT, exist_ok=True)
    shot = os.path.join(OUTPUT, "catalogue.png")
    if os.path.exists(shot):
        os.remove(shot)
    chromium(profile, f"--screenshot={shot}", "--window-size={},{}".format(*SCREEN), url)
    assert os.path.getsize(shot) > 10_000
    assert png_size(shot) == SCREEN

    dom = Dom()
    dom.feed(chromium(profile, "--dump-dom", url).stdout)
    assert dom.scripts == 0
    names = {taken[key]["name"] for key in ("first", "fell", "after")}
    assert set(dom.rows) == names
    assert list(dom.rows) == sorted(names, reverse=True)  # newest first
    fell, first = taken["fell"], taken["first"]
    assert [n for n, row in dom.rows.items() if "drop" in row["classes"]] == [fell["name"]]
    assert [n for n, row in dom.rows.items() if "COUNTS FELL" in row["text"]] == [fell["name"]]
    marked = dom.rows[fell["name"]]["text"]
    for model in WORKFLOW_MODELS:
        assert f"{model} {first['counts'][model]} -> 0 (gone)" in marked
    assert f"against the previous verified archive {first['name']}" in marked
    for key in ("first", "after"):
        row = dom.rows[taken[key]["name"]]["text"]
        assert "passed, " in row
        assert f"documents.document: {taken[key]['counts']['documents.document']}" in row
        assert taken[key]["created_at_local"][:10] in row
        assert "+08:00" in row
