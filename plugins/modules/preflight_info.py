#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight_info
short_description: Everything the backup checklist checks by hand, as data, changing nothing
version_added: 0.1.0
description:
  - Reads the Compose project's services and health; runs one probe inside
    the backend through Django (the settings C(BACKUP_DIR), C(MEDIA_ROOT),
    C(TIME_ZONE); the backup and media directories as the application sees
    them; C(SELECT version()) and the clock of PostgreSQL through the
    application's own connection; record counts per model); reads the backup
    directory on the host (owner, mode, free space) and the backend's mounts;
    compares the clocks of the controller, the host, the backend and
    PostgreSQL.
  - Each finding has a severity (C(ok), C(warning), C(error)) and, when
    something is wrong, a fix hint, like the checklist's known issues.
  - Changes nothing. A deployment with problems is not a module failure; the
    findings say so, and RV(ok) is false when any finding is an error.
extends_documentation_fragment:
  - edms.backup.project
  - edms.backup.backup_dir
options:
  backup_dir_container:
    description:
      - The backup directory inside the backend container.
    type: str
    default: /app/backups
  media_dir_container:
    description:
      - Media root inside the backend container.
    type: str
    default: /app/storage/media
  count_models:
    description:
      - Models to count, as C(app_label.ModelName), or C(__all__).
    type: list
    elements: str
    default: [documents.Document, users.User, workflows.Workflow]
  min_free_bytes:
    description:
      - Free space the backup directory's file system must have.
    type: int
    default: 1073741824
  max_clock_skew:
    description:
      - Seconds by which the clocks may differ before it is a warning.
    type: float
    default: 5.0
  controller_time:
    description:
      - The controller's current time, ISO 8601 with a time zone (the roles
        pass it), to compare with the host's clock.
    type: str
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no difference to show.
  idempotent:
    support: full
    description: Reads only.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Preflight of the staging EDMS
  edms.backup.preflight_info:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    backup_dir: /home/lims/edms-staging/backups
    display_timezone: Asia/Singapore
    controller_time: "{{ now(utc=true).isoformat() }}+00:00"
  register: edms_preflight

- name: Stop on errors
  ansible.builtin.assert:
    that: edms_preflight.ok
    fail_msg: "{{ edms_preflight.errors | map(attribute='message') | join('; ') }}"
"""

RETURN = r"""
ok:
  description: True when no finding is an error.
  returned: always
  type: bool
findings:
  description: Every check with C(check), C(severity), C(message) and C(fix).
  returned: always
  type: list
  elements: dict
errors:
  description: The findings of severity C(error).
  returned: always
  type: list
  elements: dict
summary:
  description: Number of findings per severity.
  returned: always
  type: dict
  sample: {"ok": 9, "warning": 2, "error": 0}
services:
  description: Services of the project with state and health (see M(edms.backup.stack_info)).
  returned: always
  type: list
  elements: dict
backup_dir:
  description: The backup directory on the host; owner, group, mode and free space when it exists.
  returned: always
  type: dict
backend:
  description: What the backend sees; settings, its user, the backup and media directories.
  returned: when the backend runs
  type: dict
database:
  description: PostgreSQL as the application reaches it; version, time zone, clock.
  returned: when the backend runs
  type: dict
counts:
  description:
    - Rows per model, through the base manager (C(rows)) and the default
      manager (C(visible)).
  returned: when the database is reachable
  type: dict
clocks:
  description: UTC clocks of the controller (if given), the host, the backend and PostgreSQL.
  returned: when the backend runs
  type: dict
commands:
  description: The C(docker compose) commands run.
  returned: always
  type: list
  elements: str
execs:
  description: Commands run in containers.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.edms.backup.plugins.module_utils._common import (
    DEFAULT_COUNT_MODELS,
    backup_dir_argument_spec,
    project_argument_spec,
)
from ansible_collections.edms.backup.plugins.module_utils._docker import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
)
from ansible_collections.edms.backup.plugins.module_utils._preflight import (
    PreflightError,
    preflight,
)


def main():
    argument_spec = project_argument_spec()
    argument_spec.update(backup_dir_argument_spec())
    argument_spec.update(
        backup_dir_container=dict(type="str", default="/app/backups"),
        media_dir_container=dict(type="str", default="/app/storage/media"),
        count_models=dict(type="list", elements="str", default=DEFAULT_COUNT_MODELS),
        min_free_bytes=dict(type="int", default=2**30),
        max_clock_skew=dict(type="float", default=5.0),
        controller_time=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    try:
        result = preflight(module.params, runner=module.run_command)
    except PreflightError as exc:
        module.fail_json(msg=str(exc), **exc.partial)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
