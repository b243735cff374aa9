"""The programs sent to the backend: every module they need, and nothing the
host has, run by a Python that cannot import the collection."""

import hashlib
import json
import subprocess
import sys

import pytest
from ansible_collections.edms.backup.plugins.module_utils._backend import (
    app_backup,
    counts,
    dump,
    load,
    media,
    migrations,
    native,
    probe,
    setup,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    BACKEND,
    backend_program,
    backend_sources,
    with_backend,
)

# Linux's limit on one argument (MAX_ARG_STRLEN): the program travels as one.
MAX_ARG_STRLEN = 131072

ENTRIES = [
    (app_backup, "service_main"),
    (app_backup, "listing_main"),
    (app_backup, "job_main"),
    (app_backup, "digest_main"),
    (native, "load_main"),
    (native, "compare_main"),
    (counts, "count_main"),
    (counts, "count_labels_main"),
    (counts, "tables_main"),
    (dump, "main"),
    (load, "main"),
    (media, "main"),
    (migrations, "applied_main"),
    (migrations, "migrate_main"),
    (migrations, "database_name_main"),
    (probe, "main"),
]


def isolated(program, argument, **kwargs):
    """Run a program as the backend would, in a Python that cannot import
    the collection (-I: no site packages of ours, no PYTHONPATH)."""
    return subprocess.run(
        [sys.executable, "-I", "-c", program, argument],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )


@pytest.mark.parametrize(("module", "function"), ENTRIES)
def test_each_program_compiles_fits_one_argument_and_has_its_entry(module, function):
    program = backend_program(module, function)
    compile(program, module.__name__, "exec")
    assert len(program.encode("utf-8")) < MAX_ARG_STRLEN
    assert callable(getattr(module, function))


def test_a_program_carries_every_backend_module_it_imports_and_no_package():
    names = {name.rsplit(".", 1)[1] for name in backend_sources(load)}
    assert names == {"load", "loader", "scrub", "digest", "counts", "setup", "tables"}
    assert {name.rsplit(".", 1)[1] for name in backend_sources(media)} == {"media"}
    # rows and serializer are imported inside a function, after Django is set up
    assert {name.rsplit(".", 1)[1] for name in backend_sources(dump)} == {
        "dump",
        "rows",
        "serializer",
        "setup",
        "tables",
    }


# Every entry module imports without touching Django: none reads the settings
# before its main() has chosen them. A finder placed first notes (and refuses)
# every import of Django, guarded or not.
WITHOUT_DJANGO = f"""
import importlib, importlib.abc, sys
class Watch(importlib.abc.MetaPathFinder):
    seen = []
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "django":
            self.seen.append(name)
            raise ImportError(name)
sys.meta_path.insert(0, Watch())
for name in sys.argv[1].split():
    importlib.import_module("{BACKEND}." + name)
sys.exit("imported " + ", ".join(Watch.seen) if Watch.seen else 0)
"""


@pytest.mark.parametrize("module", sorted({m for m, _f in ENTRIES}, key=lambda m: m.__name__))
def test_no_entry_module_imports_django_before_its_main_sets_it_up(module):
    # One program per module, as each travels: together they exceed one argument.
    program = with_backend(WITHOUT_DJANGO, module)
    proc = isolated(program, module.__name__.rsplit(".", 1)[1])
    assert proc.returncode == 0, proc.stderr


def test_a_program_runs_where_the_collection_is_not_installed(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    request = json.dumps({"action": "hashes", "root": str(tmp_path)})
    proc = isolated(backend_program(media), request)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"hashes": {"a.txt": hashlib.sha256(b"a").hexdigest()}}


# As the dump and the load report a failure: traceback's own formatting.
FAILING = f"""
import sys, traceback
from {BACKEND}.setup import read_request
try:
    read_request()
except ValueError:
    traceback.print_exc()
    sys.exit(3)
"""


def test_a_failing_program_names_its_module_and_line_in_the_traceback():
    proc = isolated(with_backend(FAILING, setup), "{not json")
    assert proc.returncode == 3
    assert f"<edms.backup {BACKEND}.setup>" in proc.stderr
    assert "return json.loads(sys.argv[1])" in proc.stderr  # the line's text, from the source
