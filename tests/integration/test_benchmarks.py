"""Smoke runs of the benchmark harnesses, at tiny sizes, so that they cannot rot.

The numbers they print are not asserted here beyond their own pass/fail
(benchmarks/README.md has the measured ones); what is asserted is that each
harness runs end to end against the real stack and reports every row.
"""

import os
import re
import sys

from .conftest import ROOT, content, db_sql, run

BENCHMARKS = os.path.join(ROOT, "benchmarks")


def test_the_verification_memory_harness_runs():
    argv = [sys.executable, os.path.join(BENCHMARKS, "verify_memory.py"), "--sizes", "1", "2"]
    proc = run([*argv, "--encrypted"])
    assert re.search(r"^peak RSS, largest over smallest: \d+\.\d\d", proc.stdout, re.M), proc.stdout
    assert re.search(r"encrypted: peak RSS, largest over smallest: \d+\.\d\d", proc.stdout)


def test_the_restore_memory_harness_loads_both_ways_and_drops_its_database(stack):
    argv = [sys.executable, os.path.join(BENCHMARKS, "restore_memory.py"), "--sizes", "1", "2"]
    proc = run([*argv, "--version-text", "0"])
    rows = [line for line in proc.stdout.splitlines() if re.match(r"\| \d", line)]
    assert [row.split("|")[3].strip() for row in rows] == [
        "collection",
        "loaddata",
        "collection",
        "loaddata",
    ], proc.stdout
    assert "loaddata over collection at the largest size" in proc.stdout
    left = db_sql("SELECT count(*) FROM pg_database WHERE datname = 'edms_bench_restore'")
    assert left.strip() == "0"


def test_the_benchmark_harness_runs_small_once_and_puts_the_demo_back(stack, tmp_path):
    """benchmarks/run.py at the small scale, one run per side: every row and
    target is reported, the restored content equals the live database's, and
    the demo stack holds what it held before (content digests equal)."""
    before = content()
    results = tmp_path / "RESULTS.md"
    argv = [sys.executable, os.path.join(BENCHMARKS, "run.py"), "--scale", "small"]
    proc = run([*argv, "--repeat", "1", "--results", str(results)], timeout=1200)
    text = results.read_text()
    assert "## small: 10,046 objects, 90 media files" in text, text
    table = [line.split("|")[1:3] for line in text.splitlines() if re.match(r"\| [a-z]+ \| ", line)]
    rows = [cells for cells in table if cells[0].strip() not in ("operation", "target")]
    sides = [(operation.strip(), side.split(" (")[0].strip()) for operation, side in rows]
    assert sides == [
        ("backup", "collection"),
        ("backup", "manage.py dumpdata + zip"),
        ("backup", "pg_dump -Fc"),
        ("verify", "collection"),
        ("encrypted", "backup, encrypted"),
        ("encrypted", "age -r on the plain archive"),
        ("encrypted", "verify, encrypted"),
        ("encrypted", "age -d to /dev/null"),
        ("copy", "collection"),
        ("copy", "cp + sha256sum"),
        ("copy", "collection"),
        ("copy", "boto3 upload_file alone"),
        ("restore", "collection"),
        ("restore", "manage.py flush + loaddata"),
        ("restore", "pg_restore into an empty database"),
        ("rollback", "collection"),
        ("rollback", "pg_restore --single-transaction --clean"),
        ("window", "collection"),
        ("window", "by hand"),
        ("window", "collection: the whole restore.yml, for reference"),
        ("preflight", "ansible-playbook playbooks/preflight.yml"),
    ], text
    targets = [line.split("|")[1].strip() for line in text.splitlines() if " x " in line]
    assert any(t.startswith("maintenance window ≤ 3 x") for t in targets), text
    assert any(t.startswith("restore ≤ 2.5 x pg_restore") for t in targets), text
    assert re.search(r"\| restored content: per-table digests .* \| equal \| yes \|", text), text
    assert proc.returncode == 0
    assert content() == before
    left = db_sql("SELECT count(*) FROM pg_database WHERE datname = 'edms_bench_restore'")
    assert left.strip() == "0"
