# Shared option documentation of the edms.backup modules that can work while
# the application is out of service; the argument spec that goes with it is
# maintenance_argument_spec() in plugins/module_utils/_common.py.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  maintenance:
    description:
      - The application is out of service. The backend service must be stopped
        (M(edms.backup.compose_services) stops it) and the module fails if it
        runs; the work that runs in the backend runs in a maintenance
        container instead, a one-off container of the stopped backend
        container's image with its environment, user, working directory,
        mounts and networks, but no published port and no command of its
        own. The module removes it when it ends, and removes one that a
        killed run left behind.
      - The restore role sets it from the moment the services are stopped
        until they are started again, so that nothing answers requests while
        the data is replaced.
    type: bool
    default: false
"""
