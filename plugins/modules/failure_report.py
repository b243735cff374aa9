#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: failure_report
short_description: Save what an operator looks at first when a run fails, in one file
version_added: 0.1.0
description:
  - The checklist's "If something goes wrong" in one file, written when a
    backup, rehearsal, restore or rollback fails. It holds the failure's
    message; C(docker compose ps) of every service; the free space of the
    archive directory and of the backup directory; and C(docker compose logs)
    of the backend and db services since the run began (the newest
    O(max_lines) lines of each).
  - Written into O(report_dir) (the archive directory) as
    C(edms-failure-<UTC time>-<operation>.log), created new (never through a
    link, never over another file), mode 0600. O(report_dir) must be a real
    directory of the running user's (or root's) that no one else may write.
    When it is missing, no report is written (a run that failed before it
    made the archive directory leaves nothing behind).
  - Secrets are taken out before anything is written, replaced by
    C(********). The values of the containers' environment variables whose
    names look like a secret's (password, secret, token, key and the like),
    the password of any URL in their environment or in the logs, and the
    values given in O(secrets).
  - Each part is gathered on its own. One that cannot be read (the Docker
    engine down, a service without a container) is named in the report,
    which is written all the same.
extends_documentation_fragment:
  - edms.backup.project
options:
  report_dir:
    description:
      - The directory the report is written into, on the managed host (the
        archive directory).
    type: path
    required: true
  operation:
    description:
      - The operation that failed (C(backup), C(restore)...), lower-case
        letters and C(_); it names the file.
    type: str
    required: true
  since:
    description:
      - When the run began, UTC, as C(2026-12-04T06:33:23Z). The logs are
        those written since then.
    type: str
    required: true
  failure:
    description: The failure's message, written at the top of the report.
    type: str
  backup_dir:
    description:
      - The application's backup directory on the host, whose free space is
        reported too.
    type: path
  max_lines:
    description: The most log lines kept per service (the newest).
    type: int
    default: 2000
  secrets:
    description: More values to take out of the report.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: Says where the report would be written; reads and writes nothing.
  diff_mode:
    support: none
    description: Nothing to show.
  idempotent:
    support: none
    description: Each run writes a new report.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Save the logs of the failed backup
  edms.backup.failure_report:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    report_dir: /home/lims/edms-staging/edms-archives
    backup_dir: /home/lims/edms-staging/backups
    operation: backup
    since: "2026-12-04T06:33:23Z"
    failure: "{{ ansible_failed_result.msg }}"
  register: report
"""

RETURN = r"""
path:
  description: The report's path on the managed host.
  returned: always
  type: str
services:
  description: The state of every service, as M(edms.backup.stack_info) reports it.
  returned: when written
  type: list
  elements: dict
log_lines:
  description: The number of log lines kept, per service whose logs were read.
  returned: when written
  type: dict
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.failure_report import (
    ReportError,
    failure_report,
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
        report_dir=dict(type="path", required=True),
        operation=dict(type="str", required=True),
        since=dict(type="str", required=True),
        failure=dict(type="str"),
        backup_dir=dict(type="path"),
        max_lines=dict(type="int", default=2000),
        secrets=dict(type="list", elements="str", no_log=True),
    )


def main():
    run_module(
        argument_spec(), on_deployment(failure_report), libraries=[DOCKER], errors=ReportError
    )


if __name__ == "__main__":
    main()
