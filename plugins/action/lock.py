# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The controller's half of the lock: whether the controller keeps this host's
SSH connection from task to task.

Over SSH the lock follows the sshd of the controller's connection. A
connection the module finds only just opened may be one the controller opens
for each task (it would end with the task, and the lock with it), so the
module follows such a connection only when it knows the controller keeps it:
ControlMaster with ControlPersist in the connection's ssh arguments, which
only the controller can read. The module gets that in its environment
(CONNECTION_KEPT_VARIABLE), not as an option: it is not the user's to set.
Everything else is the normal action.
"""

from __future__ import annotations

from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible_collections.edms.backup.plugins.module_utils._commands.lock import (
    CONNECTION_KEPT_VARIABLE,
    connection_kept,
)


def kept_by(connection):
    """True when connection is Ansible's ssh connection and its arguments keep
    the connection (ControlMaster, ControlPersist); False otherwise."""
    if getattr(connection, "transport", None) != "ssh":
        return False
    arguments = []
    for name in ("ssh_args", "ssh_common_args", "ssh_extra_args"):
        try:
            arguments.append(connection.get_option(name) or "")
        except Exception:  # an option this connection does not have
            arguments.append("")
    return connection_kept(arguments)


class ActionModule(NormalAction):
    def _compute_environment_string(self, raw_environment_out=None):
        environment = {}
        super()._compute_environment_string(environment)
        # Always set, 0 or 1: a value the host's own environment carries
        # (a shell start-up file) never counts.
        environment[CONNECTION_KEPT_VARIABLE] = "1" if kept_by(self._connection) else "0"
        if isinstance(raw_environment_out, dict):
            raw_environment_out.clear()
            raw_environment_out.update(environment)
        return self._connection._shell.env_prefix(**environment)
