"""benchmarks/run.py's results file: a scale's section is replaced in place,
a new one goes before the notes written by hand, and the notes stay."""

import importlib
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "benchmarks")


@pytest.fixture(scope="module")
def harness():
    sys.path.insert(0, BENCHMARKS)
    try:
        yield importlib.import_module("run")
    finally:
        sys.path.remove(BENCHMARKS)


def section(scale, body):
    return f"<!-- scale:{scale} -->\n## {scale}\n{body}\n<!-- /scale:{scale} -->"


def test_a_new_file_gets_the_header_and_the_section(harness, tmp_path):
    path = tmp_path / "RESULTS.md"
    harness.write_results(str(path), section("small", "one"), "small")
    text = path.read_text()
    assert text.startswith(harness.HEADER)
    assert text.endswith(section("small", "one") + "\n")


def test_a_scale_run_again_replaces_its_section_and_keeps_the_rest(harness, tmp_path):
    path = tmp_path / "RESULTS.md"
    notes = harness.NOTES + "\n## Notes\nwritten by hand\n"
    path.write_text(
        "# Results\n\n" + section("small", "old") + "\n\n" + section("medium", "m") + "\n\n" + notes
    )
    harness.write_results(str(path), section("small", "new"), "small")
    assert path.read_text() == (
        "# Results\n\n" + section("small", "new") + "\n\n" + section("medium", "m") + "\n\n" + notes
    )


def test_a_new_scale_goes_before_the_notes(harness, tmp_path):
    path = tmp_path / "RESULTS.md"
    notes = harness.NOTES + "\n## Notes\nwritten by hand\n"
    path.write_text("# Results\n\n" + section("small", "s") + "\n\n" + notes)
    harness.write_results(str(path), section("large", "l"), "large")
    text = path.read_text()
    assert text.index(section("small", "s")) < text.index(section("large", "l"))
    assert text.index(section("large", "l")) < text.index(harness.NOTES)
    assert text.endswith(notes)


def rows_of(harness, by_hand):
    """The rows of one scale as measure_scale makes them, from made-up runs:
    the collection 2 s everywhere, the hand-made sides 40 s, the floors 1 s."""

    def runs(seconds):
        return [{"seconds": seconds, "host_rss_mb": 50.0}]

    def side(seconds, hand=False):
        return runs(seconds) if by_hand or not hand else None

    verify = harness.row("verify", "collection (archive_verify)", runs(0.5))
    verify.update(mb_s=80.0, fixture_mb_s=320.0)
    return [
        harness.row("backup", "collection (archive_create)", runs(2.0), 2.0),
        harness.row("backup", "manage.py dumpdata + zip", side(40.0, hand=True), 2.0),
        harness.row("backup", "pg_dump -Fc", runs(1.0), 2.0),
        verify,
        harness.row("restore", "collection (load)", runs(2.0), 2.0),
        harness.row("restore", "manage.py flush + loaddata", side(40.0, hand=True), 2.0),
        harness.row("restore", "pg_restore into an empty database", runs(1.0), 2.0),
        harness.row("rollback", "collection (archive_rollback)", runs(2.0), 2.0),
        harness.row("rollback", "pg_restore --single-transaction --clean", runs(1.0), 2.0),
        harness.row("window", "collection (restore.yml)", runs(2.0), 2.0),
        harness.row("window", "by hand (pg_dump, pg_restore, counts)", runs(1.0), 2.0),
        harness.row("window", "collection: the whole restore.yml, for reference", runs(9.0), 2.0),
        harness.row("preflight", "ansible-playbook playbooks/preflight.yml", runs(3.0)),
    ]


FACTS = {
    "scale": "large",
    "objects": 1000,
    "media": 10,
    "documents": 10,
    "fixture_mb": 1.0,
    "archive_mb": 0.5,
    "seconds": 60.0,
    "problems": [],
    "restored_equal": {"collection": True, "pg_restore": True},
}
MACHINE = {"date": "2026-11-27 00:00 UTC", "summary": "a machine"}


def test_the_targets_against_the_hand_made_sides_are_judged_when_measured(harness):
    text = harness.section(rows_of(harness, True), FACTS, "run.py", MACHINE)
    assert "| backup ≥ 20 x faster than dumpdata + zip | 20.0 x | yes |" in text
    assert "| restore ≥ 50 x faster than flush + loaddata | 20.0 x | NO |" in text
    assert "| rollback ≤ 1.2 x pg_restore --single-transaction --clean | 2.00 x | NO |" in text


def test_the_targets_against_postgresqls_tools_are_judged(harness):
    text = harness.section(rows_of(harness, False), FACTS, "run.py", MACHINE)
    assert "| backup ≤ 2.0 x pg_dump -Fc | 2.00 x | yes |" in text
    assert "| restore ≤ 2.5 x pg_restore into an empty database | 2.00 x | yes |" in text
    assert "| maintenance window ≤ 3 x the sequence by hand | 2.00 x | yes |" in text


def test_without_the_hand_made_sides_their_targets_say_not_measured(harness):
    text = harness.section(rows_of(harness, False), FACTS, "run.py", MACHINE)
    assert "| backup ≥ 20 x faster than dumpdata + zip | not measured (--skip-by-hand) | — |" in (
        text
    )
    assert (
        "| restore ≥ 50 x faster than flush + loaddata | not measured (--skip-by-hand) | — |"
        in text
    )
    assert "| backup | manage.py dumpdata + zip | 0 | — | — | — | — | — |" in text
    # The targets against the floors are still judged.
    assert "| rollback ≤ 1.2 x pg_restore --single-transaction --clean | 2.00 x | NO |" in text


def test_skip_by_hand_leaves_out_exactly_the_two_slow_sides(harness):
    backup = [(name, None) for name in ("collection", "dumpdata + zip", "pg_dump -Fc")]
    restore = [(name, None) for name in ("collection", "flush + loaddata", "pg_restore")]
    kept = [side[0] for side in harness.by_hand_or_not(False, backup)]
    assert kept == ["collection", "pg_dump -Fc"]
    kept = [side[0] for side in harness.by_hand_or_not(False, restore)]
    assert kept == ["collection", "pg_restore"]
    assert harness.by_hand_or_not(True, backup) == backup


def test_fewer_runs_of_a_side_are_spread_and_the_others_run_every_time(harness, capsys):
    calls = []

    def side(name):
        def call():
            calls.append(name)
            return {"seconds": 1.0}

        return call

    sides = [(name, side(name)) for name in ("collection", "dumpdata + zip", "pg_dump -Fc")]
    runs = harness.alternate(3, sides, {"dumpdata + zip": 1})
    assert {name: len(made) for name, made in runs.items()} == {
        "collection": 3,
        "dumpdata + zip": 1,
        "pg_dump -Fc": 3,
    }
    # The one run is in the last repetition; the order still turns round.
    assert calls == [
        "collection",
        "pg_dump -Fc",
        "pg_dump -Fc",
        "collection",
        "collection",
        "dumpdata + zip",
        "pg_dump -Fc",
    ]
    # Two of four: spread, in the second and the last.
    calls.clear()
    harness.alternate(4, sides, {"dumpdata + zip": 2})
    assert [n for n, name in enumerate(calls) if name == "dumpdata + zip"] == [3, 8]
    capsys.readouterr()


def test_a_commands_peak_memory_is_its_own_not_the_harness(harness, tmp_path):
    # The harness holding 200 MB more must not show in a small command's peak,
    # as it does in the peak the kernel gives for a child started straight
    # from it; the command holding 100 MB must.
    ballast = bytearray(200 << 20)
    ballast[:: 1 << 12] = b"\1" * len(ballast[:: 1 << 12])
    code = (
        "import sys; held = bytearray(int(sys.argv[1]) << 20);"
        " held[::4096] = b'1' * len(held[::4096])"
    )
    returncode, seconds, small = harness.peak_of(
        [sys.executable, "-c", code, "0"], str(tmp_path / "small")
    )
    assert returncode == 0
    assert seconds > 0
    _returncode, _seconds, large = harness.peak_of(
        [sys.executable, "-c", code, "100"], str(tmp_path / "large")
    )
    assert small < 100, small
    assert 90 < large - small < 150, (small, large)
    del ballast


def test_a_failing_command_gives_its_status(harness, tmp_path):
    returncode, _seconds, _peak = harness.peak_of(
        [sys.executable, "-c", "raise SystemExit(3)"], str(tmp_path / "peak")
    )
    assert returncode == 3
