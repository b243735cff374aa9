# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The archives of a backup directory, as archive_info reports them (the
catalogue itself is _format/catalogue.py)."""

from __future__ import annotations

import traceback

from ansible_collections.edms.backup.plugins.module_utils._format.catalogue import (
    CatalogueError,
    list_archives,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.host import missing_message

try:
    import jmespath
    from jmespath.exceptions import JMESPathError

    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the managed host's packages
    jmespath = None
    JMESPathError = Exception
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

# jmespath as a module's run_module(libraries=...) takes it (_module.py).
JMESPATH = ("jmespath", HAS_JMESPATH, JMESPATH_IMPORT_ERROR)


def archive_info(params):
    """The catalogue of params["backup_dir"], with the answer of the JMESPath
    expression params["query"] over it in "query" when one is given; raises
    CatalogueError."""
    result = dict(list_archives(params["backup_dir"], params["display_timezone"]), changed=False)
    expression = params.get("query")
    if expression:
        if not HAS_JMESPATH:
            raise CatalogueError("query needs jmespath. " + missing_message(["jmespath"]))
        try:
            result["query"] = jmespath.search(expression, result)
        except JMESPathError as exc:
            raise CatalogueError(
                f"query {expression!r} is not a JMESPath expression: {exc}"
            ) from exc
    return result
