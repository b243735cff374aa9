"""The collection's libraries on the managed host (_platform/host.py): the
one list, the requirements files that install it, and how a missing or old
library is told."""

import os
import pathlib
import re
import sys

import pytest
from ansible_collections.edms.backup.plugins.module_utils._platform import host

ROOT = str(pathlib.Path(__file__).resolve().parents[5])


def requirement_lines(*parts):
    with open(os.path.join(ROOT, *parts)) as handle:
        lines = [line.split("#", 1)[0].strip() for line in handle]
    return [line for line in lines if line]


def test_the_role_installs_exactly_the_libraries_with_their_lower_bounds():
    assert requirement_lines("roles", "host", "files", "requirements.txt") == [
        library.requirement for library in host.LIBRARIES
    ]


def test_the_repository_requirements_say_the_same_lower_bounds():
    controller = requirement_lines("requirements.txt")
    for library in host.LIBRARIES:
        assert library.requirement in controller, library.requirement
    # and nothing for the host that the role would not install (boto3 is the
    # controller's: archive_bucket runs there)
    others = [line for line in controller if not line.startswith(("ansible-core", "boto3"))]
    assert sorted(others) == sorted(library.requirement for library in host.LIBRARIES)


def test_every_library_a_module_imports_on_the_host_is_listed():
    """The third-party imports under plugins/modules and module_utils (the
    backend programs run inside the container, Django there, not here)."""
    imported = set()
    pattern = re.compile(
        r"^\s+(?:import|from) (docker|ruamel|psycopg2|jmespath|cryptography|requests|yaml)\b"
    )
    for top in ("modules", "module_utils"):
        for folder, _dirs, files in os.walk(os.path.join(ROOT, "plugins", top)):
            if folder.endswith("_backend"):
                continue
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(folder, name)) as handle:
                        imported |= {m.group(1) for m in map(pattern.match, handle) if m}
    assert imported == {"docker", "ruamel", "psycopg2", "jmespath", "cryptography"}
    assert {library.name.split(".")[0] for library in host.LIBRARIES} == imported


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7.1.0", (7, 1, 0)),
        ("0.18.6", (0, 18, 6)),
        ("2.9.9 (dt dec pq3)", (2, 9, 9)),
        ("1.0rc1", (1, 0)),
        ("0.19.1", (0, 19, 1)),
    ],
)
def test_version_tuple(text, expected):
    assert host.version_tuple(text) == expected


def refuse(*names):
    def importer(name):
        if name in names:
            raise ModuleNotFoundError(f"No module named '{name}'")
        return sys.modules.get(name)

    return importer


def test_a_missing_library_is_not_ok_with_the_import_error():
    found = {lib["name"]: lib for lib in host.check_libraries(refuse("docker"))}
    assert found["docker"]["present"] is False
    assert found["docker"]["ok"] is False
    assert found["docker"]["required"] is True
    assert found["docker"]["error"] == "ModuleNotFoundError: No module named 'docker'"
    assert found["jmespath"]["ok"] is True


def test_a_library_older_than_its_bound_is_not_ok(monkeypatch):
    monkeypatch.setattr(host, "installed_version", lambda library: "0.17.4")
    found = host.check_library(host.LIBRARIES[1], refuse())
    assert found["present"] is True
    assert found["ok"] is False
    assert found["error"] == "version 0.17.4 is older than 0.18"


def test_the_message_names_the_libraries_the_host_the_interpreter_and_the_fix():
    message = host.missing_message(["ruamel.yaml", "docker"], host="staging")
    assert message.startswith(
        "Failed to import the required Python libraries (ruamel.yaml, docker) on staging"
        f" with the interpreter {sys.executable} (Python "
    )
    assert "playbooks/prepare_host.yml" in message
    assert "edms.backup.prepare_host" in message
    assert "ansible_python_interpreter" in message
    assert host.missing_message(["docker"]).startswith(
        "Failed to import the required Python library (docker) on "
    )
