#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_services
short_description: Stop the services that write for a maintenance window, start them again
version_added: 0.1.0
description:
  - Stops (V(stopped)) or starts (V(started)) the containers of Compose
    services through the Docker engine, and with V(started) waits until each
    runs and, if it has a health check, is healthy.
  - Without O(services), V(stopped) stops every running service but the
    backend and the db and returns their names in RV(stopped); pass that list
    to V(started) afterwards, so that what was stopped before is left
    stopped.
  - With O(application), V(stopped) stops the backend too, before the
    others, so that nothing serves requests (the work that needs the
    backend then runs in a maintenance container, see
    O(edms.backup.archive_restore#module:maintenance)); V(started) starts it
    after the others.
  - V(started), when it starts the backend, first removes every maintenance
    container of the project that is still there (that of a run that died,
    which may still be running its program) and names them in
    RV(maintenance_removed).
  - The db service is refused.
extends_documentation_fragment:
  - edms.backup.project
options:
  state:
    description: V(stopped) or V(started).
    type: str
    choices: [stopped, started]
    required: true
  services:
    description: The services; by default every running one but the backend and the db.
    type: list
    elements: str
  application:
    description:
      - With V(stopped), stop the backend service as well (first), when it runs.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for each container to stop, or to run and be healthy.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Says which services would be stopped or started.
  diff_mode:
    support: none
    description: RV(stopped) and RV(started) say what changed.
  idempotent:
    support: full
    description: Services already in the state are left alone.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Stop the services that write
  edms.backup.compose_services:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    state: stopped
  register: maintenance

- name: Start them again
  edms.backup.compose_services:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    state: started
    services: "{{ maintenance.stopped }}"
"""

RETURN = r"""
services:
  description: The services handled.
  returned: always
  type: list
  elements: str
stopped:
  description: The services this run stopped (or would stop).
  returned: with state=stopped
  type: list
  elements: str
started:
  description: The services this run started (or would start).
  returned: with state=started
  type: list
  elements: str
maintenance_removed:
  description: The maintenance containers of a dead run removed before the backend started.
  returned: when the backend was started
  type: list
  elements: str
commands:
  description: The C(docker compose) commands run.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.compose_services import (
    ServicesError,
    manage_services,
)
from ansible_collections.edms.backup.plugins.module_utils._module import (
    on_deployment,
    options,
    run_module,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import DOCKER


def argument_spec():
    return options(
        "project",
        state=dict(type="str", choices=["stopped", "started"], required=True),
        services=dict(type="list", elements="str"),
        application=dict(type="bool", default=False),
        timeout=dict(type="int", default=60),
    )


def command(module):
    if module.params["timeout"] < 1:
        module.fail_json(msg=f"timeout must be at least 1 second, not {module.params['timeout']}")
    return on_deployment(manage_services)(module)


def main():
    run_module(argument_spec(), command, libraries=[DOCKER], errors=ServicesError)


if __name__ == "__main__":
    main()
