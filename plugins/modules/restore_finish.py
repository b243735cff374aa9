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
    description: RV(edms.backup.archive_restore#module:token) of the restore.
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
from ansible_collections.edms.backup.plugins.module_utils._commands.restore_finish import (
    finish,
)
from ansible_collections.edms.backup.plugins.module_utils._common import (
    media_dir_argument_spec,
    project_argument_spec,
)
from ansible_collections.edms.backup.plugins.module_utils._module import run_module
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
)


def argument_spec():
    spec = project_argument_spec()
    spec.update(media_dir_argument_spec())
    spec.update(token=dict(type="str", required=True, no_log=False))
    return spec


def main():
    run_module(
        argument_spec(),
        lambda module: finish(
            module.params, runner=module.run_command, check_mode=module.check_mode
        ),
        libraries=[("docker", HAS_DOCKER, DOCKER_IMPORT_ERROR)],
        errors=RestoreError,
    )


if __name__ == "__main__":
    main()
