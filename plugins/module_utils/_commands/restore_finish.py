# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The end of a successful restore (restore_finish): the work directory, which
holds the previous media, removed."""

from __future__ import annotations

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_restore import (
    LiveRestore,
)


def finish(params, runner=None, containers=None, check_mode=False):
    """Remove the work directory (the previous media) a successful restore kept."""
    return LiveRestore(params, runner=runner, containers=containers, check_mode=check_mode).finish()
