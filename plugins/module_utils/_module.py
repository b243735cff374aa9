# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The main() every module of the collection shares.

A module states its argument spec, the Python libraries it needs, the
command that does its work and the error that command raises for a failure
it reports; run_module() does the rest, the same way for every module.
"""

from __future__ import annotations

import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edms.backup.plugins.module_utils._common import (
    backup_dir_argument_spec,
    decryption_argument_spec,
    hide_secrets,
    maintenance_argument_spec,
    media_dir_argument_spec,
    project_argument_spec,
)
from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    ArchiveError,
    use_decryption_key,
)
from ansible_collections.edms.backup.plugins.module_utils._platform.host import missing_message

SHARED_OPTIONS = {
    "project": project_argument_spec,
    "backup_dir": backup_dir_argument_spec,
    "media_dir": media_dir_argument_spec,
    "maintenance": maintenance_argument_spec,
    "decryption": decryption_argument_spec,
}


def options(*shared, **own):
    """An argument spec: the shared option groups named (``project``,
    ``backup_dir``, ``media_dir``: _common.py, each with its doc fragment),
    then the module's own options."""
    spec = {}
    for name in shared:
        spec.update(SHARED_OPTIONS[name]())
    spec.update(own)
    return spec


def on_deployment(function):
    """command(module) for a command that works on the deployment:
    ``function(params, runner=module.run_command, check_mode=module.check_mode)``."""
    return lambda module: function(
        module.params, runner=module.run_command, check_mode=module.check_mode
    )


def run_module(
    argument_spec,
    command,
    *,
    libraries=(),
    errors=(),
    supports_check_mode=True,
    **module_kwargs,
):
    """Parse the task's arguments, check the libraries, run the command, report.

    ``libraries``: ``(name, present, import_error)`` for each Python library
    the module needs. When any is missing the task fails before the command
    runs, naming every missing one, the host and the interpreter the module
    ran with, and the fix (playbooks/prepare_host.yml, then
    ansible_python_interpreter: _platform/host.py), with the first missing
    one's import traceback.
    ``command(module)`` does the work and returns the result for
    ``exit_json``. ``errors``: the exception class (or tuple of classes) the
    command raises for a failure to report; the task fails with its message
    and its ``partial`` result (``ModuleFailure.partial``; none when the
    exception has no such attribute). Any other exception is a bug and shows
    as a traceback. ``module_kwargs`` go to AnsibleModule as they are
    (``required_one_of``, ``required_if``...).
    """
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=supports_check_mode,
        **module_kwargs,
    )
    missing = [(name, import_error) for name, present, import_error in libraries if not present]
    if missing:
        names = [name for name, _error in missing]
        module.fail_json(
            msg=missing_message(names),
            exception=missing[0][1],
            missing_libraries=names,
            interpreter=sys.executable,
        )
    try:
        use_decryption_key(module.params.get("decryption_key"))
    except ArchiveError as exc:  # the message never quotes the key
        module.fail_json(msg=f"decryption_key: {exc}")
    try:
        result = command(module)
    except errors as exc:
        partial = hide_secrets(getattr(exc, "partial", {}))
        _warn(module, partial)
        module.fail_json(msg=hide_secrets(str(exc), message=True), **partial)
    result = hide_secrets(result)
    _warn(module, result)
    module.exit_json(**result)


def _warn(module, result):
    """A result's "warnings" given to Ansible as warnings (it shows them and
    returns them under the same key; passing the key itself is deprecated)."""
    for text in result.pop("warnings", None) or []:
        module.warn(str(text))
