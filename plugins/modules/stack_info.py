#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_info
short_description: State of a Compose-run Django application and its record counts
version_added: 0.1.0
description:
  - Lists the services of a Docker Compose project with the state and health
    of their containers.
  - Counts the rows of chosen Django models inside the backend container,
    through the Django ORM, in one repeatable-read, read-only transaction.
    Each count is given twice, through the model's base manager (every row)
    and through its default manager (what the application shows); a default
    manager that hides rows, such as soft-deleted ones, makes the two differ.
  - Changes nothing.
extends_documentation_fragment:
  - edms.backup.project
  - edms.backup.read_only
options:
  count_models:
    description:
      - Models to count, as C(app_label.ModelName), or C(__all__) for every
        model of the application.
    type: list
    elements: str
    default: [__all__]
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Show the services and the record counts of the EDMS
  edms.backup.stack_info:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
  register: edms_stack

- name: Count every model
  edms.backup.stack_info:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    count_models: [__all__]
"""

RETURN = r"""
services:
  description: Every service the compose files define, in their order.
  returned: always
  type: list
  elements: dict
  sample:
    - service: backend
      container_id: 3f1c0e...
      container_name: edms_prod_backend
      state: running
      health: healthy
      running: true
      healthy: true
counts:
  description:
    - Rows per model, through the base manager (C(rows)) and the default
      manager (C(visible)).
  returned: success
  type: dict
  sample: {"documents.Document": {"rows": 60, "visible": 54}}
commands:
  description: The C(docker compose) commands the module ran.
  returned: always
  type: list
  elements: str
execs:
  description: The commands the module ran inside containers (long inline code shown by its size).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.stack_info import (
    StackError,
    stack_info,
)
from ansible_collections.edms.backup.plugins.module_utils._common import DEFAULT_COUNT_MODELS
from ansible_collections.edms.backup.plugins.module_utils._module import options, run_module
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import DOCKER


def argument_spec():
    return options(
        "project",
        count_models=dict(type="list", elements="str", default=DEFAULT_COUNT_MODELS),
    )


def command(module):
    return dict(stack_info(module.params, runner=module.run_command), changed=False)


def main():
    run_module(argument_spec(), command, libraries=[DOCKER], errors=StackError)


if __name__ == "__main__":
    main()
