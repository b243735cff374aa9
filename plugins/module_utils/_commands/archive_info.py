# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The archives of a backup directory, as archive_info reports them (the
catalogue itself is _format/catalogue.py)."""

from __future__ import annotations

from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import list_archives


def archive_info(params):
    """The catalogue of params["backup_dir"]; raises CatalogueError."""
    return dict(list_archives(params["backup_dir"], params["display_timezone"]), changed=False)
