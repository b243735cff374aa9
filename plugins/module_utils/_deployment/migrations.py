# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The migration state of an archive against the database it would go into.

A fixture loads only into the schema it was dumped from: a model with a field
more or less makes the load fail halfway or, worse, lose a column's values.
The archive's metadata lists the migrations applied per app when it was
taken; the target's list is read inside the backend.
"""

from __future__ import annotations

from ansible_collections.edms.backup.plugins.module_utils._backend import (
    migrations as migrations_program,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import backend_command


def migrations_command(python, settings_module=None, database=None):
    request = {"settings": settings_module, "database": database}
    return backend_command(python, migrations_program, request, "applied_main")


def compare(archive, target):
    """Differences between two {app: [migration names]} maps, one line each.

    Empty when they are the same. Order within an app does not matter; the
    recorder's order is not the dependency order.
    """
    lines = []
    for app in sorted(set(archive) | set(target)):
        have, want = set(target.get(app, [])), set(archive.get(app, []))
        if app not in target:
            lines.append(f"{app}: in the archive ({len(want)} migrations), not in the target")
            continue
        if app not in archive:
            lines.append(f"{app}: in the target ({len(have)} migrations), not in the archive")
            continue
        missing = sorted(want - have)
        extra = sorted(have - want)
        if missing:
            lines.append(f"{app}: the target lacks {', '.join(missing)}")
        if extra:
            lines.append(f"{app}: the target has {', '.join(extra)}, which the archive lacks")
    return lines
