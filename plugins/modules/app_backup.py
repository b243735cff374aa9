#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_backup
short_description: Run the application's own backup and check it as the checklist does
version_added: 0.1.0
description:
  - The checklist's Steps 3 to 6 and Test 1, on the application's own backup
    feature rather than this collection's archive.
  - Step 3, counts the live records of O(count_models) (again after the
    backup, to tell a count that changed during it).
  - Step 4, runs the application's backup in the backend container. With
    O(method=service) (the default), the checklist's call in the Django
    shell, C(<service>().<service_method>(configuration, user)), where the
    user is O(run_as) (by default the first superuser, the checklist's
    C(admin)) and the configuration is the one O(configuration) selects (by
    default the first, or, when there is none, one created from
    O(create_configuration) as the checklist does). The job it returns is
    waited for while its status is pending or running. With
    O(method=command), runs O(command) in the backend and takes the newest
    entry it adds to the application's backup directory.
  - With O(method=http), POSTs O(body) as JSON to O(url), the application's
    backup API (from the managed host, with HTTP Basic authentication as
    O(url_username) when given), reads the job's primary key from the key
    O(job_id_key) of the JSON answer, and waits for that job of
    O(job_model) in the backend.
  - An exception of the service, a command that fails, an HTTP error, or a job that ends
    in a status other than completed fails the task with the
    application's own message.
  - Step 5, finds the new backup inside the container (the job's
    C(backup_path)) and, through the container's mounts, on the host in
    O(backup_dir); compares their size and sha256 (of every file, for a
    directory). A backup that only the container holds (there is no mount,
    the checklist's known issue 1) fails the task and names the fix, the
    storage phase.
  - Step 6, verifies the backup as a native archive, with the checks of
    M(edms.backup.archive_verify) (members, CRCs, the fixture, the counts
    against its metadata), and compares its objects per model with Step 3's
    counts. A model whose count differs while the live count stayed the
    same fails the task; rows the default manager hides and that are not in
    the backup give a warning.
  - Changes what the application's backup changes (its file, its job
    record, a configuration it creates); nothing else.
extends_documentation_fragment:
  - edms.backup.project
options:
  backup_dir:
    description:
      - The directory on the managed host where the application's backups
        must land (the host side of the backend's mount of its backup
        directory).
    type: path
    required: true
  fallback_dir:
    description:
      - Where, inside the backend, the application writes its backups when
        its C(BACKUP_DIR) setting is unset (the checklist's known issue 1,
        the EDMS's C(/app/backups)). The setting's name is C(BACKUP_DIR).
    type: str
    default: /app/backups
  method:
    description: How the application's backup is run.
    type: str
    choices: [service, command, http]
    default: service
  service:
    description: The backup service class, as a dotted path (O(method=service)).
    type: str
    default: apps.backup.services.BackupService
  service_method:
    description: The method of O(service) that is called with the configuration and the user.
    type: str
    default: execute_backup
  configuration_model:
    description: The model of the backup configurations, as a dotted path.
    type: str
    default: apps.backup.models.BackupConfiguration
  configuration:
    description:
      - Field lookups that select one configuration, for example the field
        C(name) with the value C(Nightly full backup). Empty, the first
        configuration.
    type: dict
    default: {}
  create_configuration:
    description:
      - The fields of the configuration that is created when there is none
        (and O(configuration) is empty). Its C(created_by), if it has one,
        is the user.
    type: dict
    default: {name: Test Backup, backup_type: DATABASE}
  run_as:
    description:
      - The username of the application's user the backup runs as. Unset,
        the first superuser (the checklist's C(admin)).
    type: str
  command:
    description:
      - The command that makes the application's backup (O(method=command)),
        run in the backend as its own user, for example
        C([python, manage.py, backup_now]).
    type: list
    elements: str
    default: []
  url:
    description:
      - The URL of the application's backup API (O(method=http)), reached
        from the managed host, for example C(http://127.0.0.1:8001/api/backups/).
    type: str
  url_username:
    description: The application's username for HTTP Basic authentication (O(method=http)).
    type: str
  url_password:
    description: Its password; never shown in the result.
    type: str
  body:
    description: The JSON object POSTed to O(url), for example the configuration's name.
    type: dict
    default: {}
  job_id_key:
    description: The key of the API's JSON answer that holds the job's primary key.
    type: str
    default: job
  job_model:
    description:
      - The model of the backup jobs (dotted path), where the job is waited
        for (O(method=http)).
    type: str
    default: apps.backup.models.BackupJob
  validate_certs:
    description: Check the TLS certificate of an C(https) O(url).
    type: bool
    default: true
  http_timeout:
    description: Seconds to wait for the API's answer (the backup may run before it answers).
    type: int
    default: 3600
  wait_seconds:
    description: How long to wait for a job the service returns pending or running.
    type: int
    default: 3600
  display_timezone:
    description:
      - IANA time zone in which people read the job's start (RV(started));
        backup names are the application's, in UTC.
    type: str
    default: UTC
  count_models:
    description:
      - Models whose live counts (Step 3) the backup must match, as
        C(app_label.ModelName), or C(__all__) for every model (a model the
        backup leaves out is then a warning).
    type: list
    elements: str
    default: [__all__]
attributes:
  check_mode:
    support: full
    description:
      - Says what would run, as whom, with which configuration, and whether
        the backup would land on the host or only inside the container. It
        reads the configuration and user tables and the backend's mounts; it
        calls no service, command or API (so their own refusals are not
        tested) and creates nothing.
  diff_mode:
    support: none
    description: The application writes a new backup; there is no before and after to show.
  idempotent:
    support: none
    description: Every run makes a new backup.
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: The checklist's Steps 3 to 6 on the application's own backup
  edms.backup.app_backup:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    backup_dir: /home/lims/edms-staging/backups
    count_models: [documents.Document, users.User, workflows.Workflow]

- name: A backup through the application's API, as a staff user
  edms.backup.app_backup:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
    backup_dir: /home/lims/edms-staging/backups
    method: http
    url: http://127.0.0.1:3001/api/backups/
    url_username: backup-operator
    url_password: "{{ vault_edms_backup_operator_password }}"
    body: {configuration: Nightly full backup}

- name: A backup the application makes with a management command
  edms.backup.app_backup:
    project_dir: /srv/app
    compose_files: [compose.yaml]
    backup_dir: /srv/app/backups
    method: command
    command: [python, manage.py, backup_now]
"""

RETURN = r"""
call:
  description: What ran (in the backend, or the POST to the API).
  returned: when it ran
  type: str
  sample: apps.backup.services.BackupService().execute_backup(configuration, user)
would_run:
  description: In check mode, what would run.
  returned: check mode
  type: str
user:
  description: The application's user the backup ran (or would run) as.
  returned: methods service and http
  type: str
  sample: admin
configuration:
  description:
    - The configuration used; C(how) it was chosen is C(found), C(first),
      C(created) or C(would be created).
  returned: method service
  type: dict
backup_dir:
  description: The application's C(BACKUP_DIR) setting and the directory it writes to.
  returned: when the backend was reached
  type: dict
  sample: {"setting": null, "path": /app/backups}
would_land_on_host:
  description:
    - In check mode, the host path of the application's backup directory,
      or null when backups would land only inside the container (known
      issue 1).
  returned: check mode
  type: str
job:
  description:
    - The job the service returned (or the API named), with its status,
      backup_path, times and size.
  returned: methods service and http
  type: dict
backup:
  description:
    - The backup in the container and on the host, each with its kind,
      size and sha256; C(same) when they are equal.
  returned: when the backup was found
  type: dict
verification:
  description: The native verification of the backup (as M(edms.backup.archive_verify) returns it).
  returned: when the backup is on the host
  type: dict
counts:
  description: Per model, the live count (default manager), the live rows and the backup's objects.
  returned: success
  type: dict
  sample: {"documents.Document": {"live": 54, "rows": 60, "backup": 54, "equal": true}}
started:
  description: The job's start in UTC and in O(display_timezone).
  returned: when the job gives its start
  type: str
  sample: 2026-01-01 13:00:29 UTC (2026-01-01 21:00:29 +08 Asia/Singapore)
summary:
  description: The result in a few lines, as the role prints it.
  returned: success
  type: list
  elements: str
warnings:
  description: What is true of the backup but worth knowing (rows it leaves out).
  returned: always
  type: list
  elements: str
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

from ansible_collections.edms.backup.plugins.module_utils._commands.app_backup import (
    AppBackupError,
    app_backup,
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
        backup_dir=dict(type="path", required=True),
        fallback_dir=dict(type="str", default="/app/backups"),
        method=dict(type="str", choices=["service", "command", "http"], default="service"),
        service=dict(type="str", default="apps.backup.services.BackupService"),
        service_method=dict(type="str", default="execute_backup"),
        configuration_model=dict(type="str", default="apps.backup.models.BackupConfiguration"),
        configuration=dict(type="dict", default={}),
        create_configuration=dict(
            type="dict", default={"name": "Test Backup", "backup_type": "DATABASE"}
        ),
        run_as=dict(type="str"),
        command=dict(type="list", elements="str", default=[]),
        url=dict(type="str"),
        url_username=dict(type="str"),
        url_password=dict(type="str", no_log=True),
        body=dict(type="dict", default={}),
        job_id_key=dict(type="str", default="job", no_log=False),
        job_model=dict(type="str", default="apps.backup.models.BackupJob"),
        validate_certs=dict(type="bool", default=True),
        http_timeout=dict(type="int", default=3600),
        wait_seconds=dict(type="int", default=3600),
        count_models=dict(type="list", elements="str", default=["__all__"]),
        display_timezone=dict(type="str", default="UTC"),
    )


def main():
    run_module(
        argument_spec(),
        on_deployment(app_backup),
        libraries=[DOCKER],
        errors=AppBackupError,
        required_if=[("method", "command", ("command",)), ("method", "http", ("url",))],
    )


if __name__ == "__main__":
    main()
