# Private to the edms.backup collection: no compatibility promise to anyone else.
"""What stack_info does, as plain Python: services, their state, record counts."""

from __future__ import annotations

import os

from ansible_collections.edms.backup.plugins.module_utils._common import ModuleFailure
from ansible_collections.edms.backup.plugins.module_utils._platform.compose import (
    ComposeError,
    ComposeProject,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    DjangoError,
    count_command,
    django_settings,
    normalize_model_labels,
    parse_counts,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.docker import (
    Containers,
    ExecError,
)


class StackError(ModuleFailure):
    """The services or the counts of a deployment cannot be read."""


def stack_info(params, runner=None, containers=None):
    project_dir = params["project_dir"]
    if not os.path.isdir(project_dir):
        raise StackError(f"project directory {project_dir} does not exist")
    compose = ComposeProject(project_dir=project_dir, files=params["compose_files"], runner=runner)
    result = {"services": [], "commands": compose.commands, "execs": []}
    try:
        labels = normalize_model_labels(params["count_models"])
        services = compose.services()
    except (ComposeError, DjangoError) as exc:
        raise StackError(str(exc), **result) from exc
    result["services"] = [s.as_dict() for s in services]

    backend_name = params["backend_service"]
    backend = next((s for s in services if s.service == backend_name), None)
    if backend is None:
        raise StackError(
            "service '{}' is not defined in {} (services: {})".format(
                backend_name,
                ", ".join(params["compose_files"]),
                ", ".join(s.service for s in services),
            ),
            **result,
        )
    if not backend.running:
        raise StackError(
            f"cannot count records: service '{backend_name}' is not running"
            f" (state: {backend.state})",
            **result,
        )
    try:
        containers = containers or Containers()
        result["execs"] = containers.execs
        argv = count_command(params["backend_python"], labels, django_settings(params))
        answer = containers.exec(backend.container_id, argv, what="the record count")
        result["counts"] = parse_counts(answer.stdout)
    except (ExecError, DjangoError) as exc:
        raise StackError(
            f"cannot count records in service '{backend_name}': {exc}", **result
        ) from exc
    return result
