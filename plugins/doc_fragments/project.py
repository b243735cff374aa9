# Shared option documentation of the edms.backup modules that work with the
# Compose project; the argument spec that goes with it is
# project_argument_spec() in plugins/module_utils/_common.py.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  project_dir:
    description:
      - Directory of the Docker Compose project on the managed host (the
        directory holding the compose files and the C(.env)).
    type: path
    required: true
  compose_files:
    description:
      - Compose files of the project, relative to O(project_dir) or absolute,
        in the order C(docker compose -f) takes them.
    type: list
    elements: str
    default: [docker-compose.yml]
  backend_service:
    description:
      - Compose service that runs the Django application.
    type: str
    default: backend
  db_service:
    description:
      - Compose service that runs PostgreSQL.
    type: str
    default: db
  backend_python:
    description:
      - Python interpreter inside the backend container, the one that has
        Django installed.
    type: str
    default: python
  django_settings_module:
    description:
      - Django settings module for code run in the backend. When not set, it
        is found the way C(manage.py) finds it, read from the container
        without running anything there. First the container's own
        E(DJANGO_SETTINGS_MODULE), else the module C(manage.py) names in its
        C(os.environ.setdefault("DJANGO_SETTINGS_MODULE", ...)) (see
        O(manage_py)); a C(manage.py) that names several is not guessed from.
    type: str
  manage_py:
    description:
      - Path of the application's C(manage.py) inside the backend container,
        read for its settings module when neither O(django_settings_module)
        nor the container's E(DJANGO_SETTINGS_MODULE) gives one; its directory
        is where the settings are imported from. Default the C(manage.py) in
        the container's working directory.
    type: str
requirements:
  - docker (the Python SDK) on the managed host
  - the Docker CLI with the Compose v2 plugin on the managed host
"""
