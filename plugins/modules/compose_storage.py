#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_storage
short_description: Give a Compose service a backup directory on the host, and prove it works
version_added: 0.1.0
description:
  - Adds a bind mount of a host directory (C(./backups:/app/backups) by
    default) to one service of a Docker Compose file, and variables (by
    default E(BACKUP_DIR=/app/backups)) to its C(environment).
  - The compose file keeps its comments, blank lines, key order, quoting and
    indentation; only the lines of the change are added or replaced. A mount
    that is already there, in short or long syntax, is left alone.
  - Creates the host directory, or corrects its owner, group and mode, before
    the service is recreated (Docker would otherwise create it owned by
    root). Only the directory itself is changed, not what it holds.
  - Keeps a copy of the compose file and writes the new one atomically, after
    C(docker compose config) accepted it.
  - Recreates only that service (C(docker compose up -d --no-deps --wait)),
    when the file changed or when its running container does not have the
    mount and variables yet.
  - Then proves the mount from inside the container. As the user the
    container runs as, it writes a probe file into the container path, checks
    that the file appears in the host directory with that user's uid, and
    removes it; it reads each variable back with C(printenv).
  - Never prints the C(.env) file or the output of C(docker compose config),
    which hold secrets, nor the value of a variable whose name looks like a
    secret's (in the diff, the actions, the proof, the messages).
extends_documentation_fragment:
  - edms.backup.project
options:
  compose_file:
    description:
      - The compose file to edit, one of O(compose_files). Defaults to the
        first of them.
    type: str
  service:
    description:
      - The service that gets the mount and the variables. Defaults to
        O(backend_service).
    type: str
  host_path:
    description:
      - The directory on the host, relative to O(project_dir) (written so,
        for example C(./backups)) or absolute.
    type: str
    default: ./backups
  container_path:
    description:
      - Where the directory appears inside the container (an absolute path).
    type: str
    default: /app/backups
  mount_mode:
    description:
      - Options of the bind mount as in the short syntax, such as C(rw) or
        C(rw,z).
      - When not set, a mount of the same directory that is there already is
        kept whatever its options, unless it is read-only.
    type: str
  replace_mount:
    description:
      - Replace a mount of something else at O(container_path). Without it
        such a mount is an error that names it, and nothing changes.
    type: bool
    default: false
  environment:
    description:
      - Variables to set in the service's C(environment), whether the file
        writes it as a mapping or as a list of C(KEY=VALUE). A variable that
        is there with another value gets the new one.
      - Defaults to E(BACKUP_DIR) set to O(container_path). An empty mapping
        sets none.
    type: dict
  host_path_owner:
    description:
      - Owner of the host directory, a user name or uid on the managed host.
      - Defaults to the uid the service's container runs as (its
        C(Config.User), else its image's user, resolved with C(id -u) in the
        container).
    type: str
  host_path_group:
    description:
      - Group of the host directory, a group name or gid on the managed host.
      - Defaults to the gid the service's container runs as (C(id -g) in the
        container).
    type: str
  host_path_mode:
    description:
      - Mode of the host directory, in octal.
    type: str
    default: "0775"
  recreate:
    description:
      - Recreate the service after a change so that it gets the mount and
        the variables, and then prove them.
      - When false, the file is changed and the proof is left out (RV(proof.reason)
        says so).
    type: bool
    default: true
  backup:
    description:
      - Keep a copy of the compose file, C(<file>.<UTC time>.bak) beside it,
        before changing it.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description:
      - Reads the file, the container's user and state, computes the change
        and the diff; writes, creates and recreates nothing and lists the
        commands it would run.
  diff_mode:
    support: full
    description:
      - The change to the compose file as a unified diff, only the lines that
        change and three lines around each.
      - The values of secrets are masked in it, before and after (the value of
        any key or C(NAME=value) item whose name looks like a secret's, such
        as C(DB_PASSWORD), C(SECRET_KEY) or C(API_TOKEN), anywhere in the file,
        and the password of any URL), as in RV(actions).
  idempotent:
    support: full
    description:
      - A second run changes nothing and reports no change; it proves the
        mount again, with a probe file it removes.
requirements:
  - ruamel.yaml on the managed host
author:
  - edms.backup developers (@edms-backup)
notes:
  - Values are written as given; Compose interpolates C(${...}) in them.
"""

EXAMPLES = r"""
- name: Persist the backups on the host, as the checklist asks
  edms.backup.compose_storage:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]

- name: Show what would change, without changing it
  edms.backup.compose_storage:
    project_dir: /home/lims/edms-staging
    compose_files: [docker-compose.prod.yml]
  check_mode: true
  diff: true

- name: Another directory, owned by the operators' group
  edms.backup.compose_storage:
    project_dir: /srv/app
    compose_files: [docker-compose.yml, docker-compose.prod.yml]
    compose_file: docker-compose.prod.yml
    service: web
    host_path: /srv/backups/app
    container_path: /var/backups
    environment:
      BACKUP_DIR: /var/backups
    host_path_group: operators
    host_path_mode: "2775"
"""

RETURN = r"""
actions:
  description: What changed, or would change in check mode, one line each.
  returned: always
  type: list
  elements: str
  sample:
    - "services.backend.volumes: add ./backups:/app/backups"
    - "services.backend.environment: add BACKUP_DIR=/app/backups"
    - "host directory /home/lims/edms-staging/backups: owner 0:0 -> 1000:1000"
    - "service 'backend': recreate (docker-compose.prod.yml changed)"
backup_file:
  description: The copy of the compose file made before it was changed.
  returned: when the file was changed and O(backup) is true
  type: str
  sample: /home/lims/edms-staging/docker-compose.prod.yml.20260102T091500Z.bak
host_dir:
  description: The host directory and the owner, group and mode it has (or will have).
  returned: success
  type: dict
  sample:
    path: /home/lims/edms-staging/backups
    owner: 1000
    group: 1000
    mode: "0775"
    state: ok
commands:
  description:
    - The C(docker) and C(docker compose) commands the module ran; in check
      mode also those it would run.
  returned: always
  type: list
  elements: str
execs:
  description:
    - The commands run inside the service's container; in check mode also
      those that would run.
  returned: always
  type: list
  elements: dict
proof:
  description:
    - What was seen from inside the container after the change. C(verified)
      is true only when every check passed.
  returned: always
  type: dict
  contains:
    verified:
      description: Whether the mount, the variables and the probe file all checked out.
      type: bool
    reason:
      description: Why there is no proof (check mode, O(recreate=false), service not running).
      type: str
    user:
      description: The user the container runs as, with its uid and gid.
      type: dict
    mount:
      description: The container's mount at O(container_path) as Docker reports it.
      type: dict
    environment:
      description: Each variable as C(printenv) shows it in the container.
      type: dict
    probe:
      description:
        - The probe file's paths, its owner and group on the host, and whether
          it was removed.
      type: dict
  sample:
    verified: true
    container_id: 5d0c1e...
    service: backend
    user: {user: app, uid: 1000, gid: 1000}
    mount:
      type: bind
      source: /home/lims/edms-staging/backups
      destination: /app/backups
      rw: true
    environment: {BACKUP_DIR: /app/backups}
    probe:
      container_path: /app/backups/.edms-storage-probe-3f2a...
      host_path: /home/lims/edms-staging/backups/.edms-storage-probe-3f2a...
      owner: 1000
      group: 1000
      expected_owner: 1000
      removed: true
"""

from ansible_collections.edms.backup.plugins.module_utils._commands.compose_storage import (
    StorageError,
    compose_storage,
)
from ansible_collections.edms.backup.plugins.module_utils._module import options, run_module
from ansible_collections.edms.backup.plugins.module_utils._platform.compose_file import (
    HAS_RUAMEL,
    RUAMEL_IMPORT_ERROR,
    looks_secret,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import DOCKER


def argument_spec():
    return options(
        "project",
        compose_file=dict(type="str"),
        service=dict(type="str"),
        host_path=dict(type="str", default="./backups"),
        container_path=dict(type="str", default="/app/backups"),
        mount_mode=dict(type="str"),
        replace_mount=dict(type="bool", default=False),
        environment=dict(type="dict"),
        host_path_owner=dict(type="str"),
        host_path_group=dict(type="str"),
        host_path_mode=dict(type="str", default="0775"),
        recreate=dict(type="bool", default=True),
        backup=dict(type="bool", default=True),
    )


def command(module):
    # A secret given in environment stays out of the output, the task's
    # arguments (invocation) included.
    for key, value in (module.params.get("environment") or {}).items():
        if looks_secret(key) and value not in (None, "") and not isinstance(value, bool):
            module.no_log_values.add(str(value))
    return compose_storage(
        module.params,
        runner=module.run_command,
        check_mode=module.check_mode,
        diff_mode=module._diff,
    )


def main():
    libraries = [("ruamel.yaml", HAS_RUAMEL, RUAMEL_IMPORT_ERROR), DOCKER]
    run_module(argument_spec(), command, libraries=libraries, errors=StorageError)


if __name__ == "__main__":
    main()
