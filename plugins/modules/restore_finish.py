#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: restore_finish
short_description: Remove the previous media a successful restore kept
version_added: 0.1.0
description:
  - M(edms.backup.archive_restore) keeps the media it replaced in a work
    directory inside the media root until the run ends, so that a rollback
    can put them back. Once the restore has succeeded and the services run
    again, this removes that directory.
extends_documentation_fragment:
  - edms.backup.project
  - edms.backup.media_dir
options:
  token:
    description:
      - RV(edms.backup.archive_restore#module:token) of the restore, 12
        lower-case hexadecimal digits; anything else fails the task before
        anything changes.
      - A directory of the token's name that the restore did not make (it
        lacks the restore's marker) is not removed; the task fails.
    type: str
    required: true
attributes:
  check_mode:
    support: full
    description: Says which directory would be removed.
  diff_mode:
    support: none
    description: Nothing to show.
  idempotent:
    support: full
    description: A directory already gone is not an error.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Drop the previous media
  edms.backup.restore_finish:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    token: "{{ restore_result.token }}"
"""

RETURN = r"""
work:
  description: The work directory inside the backend container.
  returned: always
  type: str
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.archive_restore import (
    RestoreError,
)
from ansible_collections.edms.backup.plugins.module_utils._commands.restore_finish import finish
from ansible_collections.edms.backup.plugins.module_utils._module import (
    on_deployment,
    options,
    run_module,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import DOCKER


def argument_spec():
    return options("project", "media_dir", token=dict(type="str", required=True, no_log=False))


def main():
    run_module(argument_spec(), on_deployment(finish), libraries=[DOCKER], errors=RestoreError)


if __name__ == "__main__":
    main()
