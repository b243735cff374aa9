# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The controller's half of archive_create: the collection's version, which
metadata records as the tool's, read where the collection's release keeps it.

galaxy.yml is the one place the version is written. An installed collection
carries it in MANIFEST.json (``ansible-galaxy collection build`` copies it
there from galaxy.yml); a checkout of the repository has galaxy.yml itself.
The module gets it in its environment (TOOL_VERSION_VARIABLE), not as an
option: it is not the user's to set. Everything else is the normal action.
"""

from __future__ import annotations

import json
import os

import yaml
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible_collections.edms.backup.plugins.module_utils._commands.archive_create import (
    TOOL_VERSION_VARIABLE,
)

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collection_version(root=COLLECTION_ROOT):
    """The version in MANIFEST.json, else in galaxy.yml, else "unknown"."""
    try:
        with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as handle:
            return str(json.load(handle)["collection_info"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as handle:
            return str(yaml.safe_load(handle)["version"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "unknown"


class ActionModule(NormalAction):
    def _compute_environment_string(self, raw_environment_out=None):
        environment = {}
        super()._compute_environment_string(environment)
        environment[TOOL_VERSION_VARIABLE] = collection_version()
        if isinstance(raw_environment_out, dict):
            raw_environment_out.clear()
            raw_environment_out.update(environment)
        return self._connection._shell.env_prefix(**environment)
