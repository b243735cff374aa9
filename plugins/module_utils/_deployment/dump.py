# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The fixture dump, run inside the backend container, and the reading of its report.

The dump itself is _backend/dump.py, run with the application's own
interpreter (the container gets no new packages). It writes the fixture to standard output and,
as the last line of standard error, one JSON report with everything metadata
needs. See docs/archive-format.md for the format.

What it does differently from ``manage.py dumpdata --natural-foreign --all``:

- one REPEATABLE READ, READ ONLY transaction around the counts and the dump,
  so a backup taken while the application writes is one consistent snapshot;
- datetimes and times keep their microseconds (Django's encoder cuts them);
- natural keys of referenced models come from one map per model, and the rows
  of each auto-created m2m table are read once, in step with the objects
  (dumpdata queries once per object per m2m field and per natural key);
- no model instances: each model is read with one query (``values_list`` in
  primary-key order, through a server-side cursor in chunks) and each value
  converted the way the serializer would convert it from an instance
  (_backend/rows.py); a model with a field or behaviour that conversion cannot
  reproduce exactly is dumped through instances and Django's serializer as
  before (``row_plan`` says why), and so is every model when the request asks
  for ``instance_path``: both give the same bytes;
- one object per line, so both sides can stream it.

The output is still a fixture that plain ``manage.py loaddata`` reads.
"""

from __future__ import annotations

from ansible_collections.edms.backup.plugins.module_utils._backend import dump as dump_program
from ansible_collections.edms.backup.plugins.module_utils._backend.dump import REPORT_MARKER
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    DjangoError,
    backend_command,
    read_marked_report,
)


class DumpError(Exception):
    """The dump in the backend failed or its report cannot be read."""


def dump_command(python, excludes, settings_module=None, instance_path=False, share_snapshot=False):
    """The argv that dumps the fixture inside the backend container.

    instance_path: every model through instances and Django's serializer (the
    fast path's fallback; the same output, slower), for the tests.
    share_snapshot: export the dump's snapshot for the pg_dump taken beside it
    (_backend/dump.py SNAPSHOT_MARKER).
    """
    request = {"settings": settings_module, "excludes": list(excludes)}
    if share_snapshot:
        request["share_snapshot"] = True
    if instance_path:
        request["instance_path"] = True
    return backend_command(python, dump_program, request)


def parse_report(stderr):
    """The dump's report: the last stderr line that carries the marker."""
    try:
        report = read_marked_report(stderr, REPORT_MARKER, "the dump")
    except DjangoError as exc:
        raise DumpError(str(exc)) from exc  # the cause says whether a report was there
    if "error" in report:
        raise DumpError(report["error"])
    return report
