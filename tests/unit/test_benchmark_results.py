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
