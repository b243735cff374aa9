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
options:
  token:
    description: RV(edms.backup.archive_restore#module:token) of the restore.
    type: str
    required: true
  media_dir_container:
    description: Media root inside the backend container.
    type: str
    default: /app/storage/media
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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.edms.backup.plugins.module_utils._common import project_argument_spec
from ansible_collections.edms.backup.plugins.module_utils._docker import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
)
from ansible_collections.edms.backup.plugins.module_utils._restore import (
    RestoreError,
    finish,
)


def main():
    argument_spec = project_argument_spec()
    argument_spec.update(
        token=dict(type="str", required=True, no_log=False),
        media_dir_container=dict(type="str", default="/app/storage/media"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    try:
        result = finish(module.params, runner=module.run_command, check_mode=module.check_mode)
    except RestoreError as exc:
        module.fail_json(msg=str(exc), **exc.partial)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
