# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The end of a successful restore (restore_finish): the work directory, which
holds the previous media, removed.

The token is checked first: one that is not of the form a restore makes
(_deployment/media.py) could name another path, and changes nothing. The
program in the container removes only a directory a restore made."""

from __future__ import annotations

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_restore import (
    LiveRestore,
    RestoreError,
)
from ansible_collections.edms.backup.plugins.module_utils._deployment.media import token_error


def finish(params, runner=None, containers=None, check_mode=False):
    """Remove the work directory (the previous media) a successful restore kept."""
    message = token_error(params.get("token"))
    if message:
        raise RestoreError(f"no work directory removed: {message}", changed=False)
    return LiveRestore(params, runner=runner, containers=containers, check_mode=check_mode).finish()
