# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Options the modules share: where the deployment is and what it is made of.

Each spec here has the doc fragment of the same name in plugins/doc_fragments/
(project.py, backup_dir.py, media_dir.py); keep each pair in step. The modules
whose spec holds project_argument_spec() make the action group ``project`` of
meta/runtime.yml, the one module_defaults gives these options to.
"""

from __future__ import annotations

# What preflight_info and stack_info count unless told: every model (a
# default that names one application's models fits no other).
DEFAULT_COUNT_MODELS = ["__all__"]


# Values no result may show (the database password read from the
# application's settings, _deployment/database.py). Nothing puts them into a
# result on purpose; run_module takes them out of the message of a failure
# (hide_secrets), the one place a program's output is quoted, and out of
# every other text of the result when they are long enough that they cannot
# be part of a path, a digest or a count by chance (Ansible's no_log masking
# would replace them inside any value, and turn numbers into text).
SECRETS = set()
SHORTEST_MASKED_ANYWHERE = 12
SHORTEST_MASKED = 4
MASK = "********"


def secret(value):
    """Keep value out of the module's result and messages."""
    if value:
        SECRETS.add(str(value))


def hide_secrets(value, message=False):
    """value with every secret replaced by MASK in its texts (lists and dicts
    are walked; other values are left as they are). message: value is a
    failure's message, where shorter secrets are masked too."""
    shortest = SHORTEST_MASKED if message else SHORTEST_MASKED_ANYWHERE
    if isinstance(value, str):
        for text in SECRETS:
            if len(text) >= shortest:
                value = value.replace(text, MASK)
        return value
    if isinstance(value, dict):
        return {key: hide_secrets(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [hide_secrets(item) for item in value]
    return value


class ModuleFailure(Exception):
    """A failure a module reports with fail_json: its message, and in
    ``partial`` the part of the result gathered before it (commands, execs...)."""

    def __init__(self, msg, **partial):
        super().__init__(msg)
        self.partial = partial


def project_argument_spec():
    return dict(
        project_dir=dict(type="path", required=True),
        compose_files=dict(type="list", elements="str", default=["docker-compose.yml"]),
        backend_service=dict(type="str", default="backend"),
        db_service=dict(type="str", default="db"),
        backend_python=dict(type="str", default="python"),
        django_settings_module=dict(type="str"),
        manage_py=dict(type="str"),
    )


def media_dir_argument_spec():
    """The media root inside the backend container (doc fragment media_dir)."""
    return dict(media_dir_container=dict(type="str", default="/app/storage/media"))


def decryption_argument_spec():
    """The key of encrypted archives (doc fragment decryption); never logged."""
    return dict(decryption_key=dict(type="str", no_log=True))


def maintenance_argument_spec():
    """The application out of service (doc fragment maintenance)."""
    return dict(maintenance=dict(type="bool", default=False))


def backup_dir_argument_spec():
    """Where archives live and how their times are shown (doc fragment backup_dir)."""
    return dict(
        backup_dir=dict(type="path", required=True),
        display_timezone=dict(type="str", default="UTC"),
    )
