"""Smoke runs of the benchmark harnesses, at tiny sizes, so that they cannot rot.

The numbers they print are not asserted here beyond their own pass/fail
(benchmarks/README.md has the measured ones); what is asserted is that each
harness runs end to end against the real stack and reports every row.
"""

import os
import re
import sys

from .conftest import ROOT, db_sql, run

BENCHMARKS = os.path.join(ROOT, "benchmarks")


def test_the_verification_memory_harness_runs():
    proc = run([sys.executable, os.path.join(BENCHMARKS, "verify_memory.py"), "--sizes", "1", "2"])
    assert re.search(r"peak RSS, largest over smallest: \d+\.\d\d", proc.stdout), proc.stdout


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
