# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The Python libraries the collection's modules import on the managed host,
and what to say when the interpreter that runs them lacks one.

The host's own Python has none of them. playbooks/prepare_host.yml (role
edms.backup.host) puts them in a virtual environment of their own on the
host; the inventory then points ``ansible_python_interpreter`` at that
environment's python, and every module of the collection runs with it.

LIBRARIES is the one list: roles/host/files/requirements.txt and the
requirements.txt of the repository say the same lower bounds
(tests/unit/plugins/module_utils/_platform/test_host.py checks it).
"""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass

try:
    from importlib import metadata
except ImportError:  # pragma: no cover - Python 3.7 and older
    metadata = None

PREPARE_PLAYBOOK = "playbooks/prepare_host.yml"


@dataclass(frozen=True)
class Library:
    """A library the modules import: its import name, the distributions that
    provide it (the first is the one prepare_host installs), its lower bound,
    whether the collection cannot work without it, and what it is for."""

    name: str
    distributions: tuple
    minimum: str
    required: bool
    used_for: str

    @property
    def requirement(self):
        """The line of a pip requirements file that installs it."""
        return f"{self.distributions[0]}>={self.minimum}"


LIBRARIES = (
    Library(
        "docker",
        ("docker",),
        "7.0",
        True,
        "the Docker engine's API: every module that works on the deployment",
    ),
    Library(
        "ruamel.yaml",
        ("ruamel.yaml",),
        "0.18",
        True,
        "editing the compose file, keeping its comments (compose_storage)",
    ),
    Library(
        "psycopg2",
        ("psycopg2-binary", "psycopg2"),
        "2.9",
        False,
        "preflight's login on the published database port (a TCP connect without it)",
    ),
    Library("jmespath", ("jmespath",), "1.0", False, "archive_info's query option"),
    Library(
        "cryptography",
        ("cryptography",),
        "38",
        False,
        "archives encrypted at rest (edms_encrypt_to, decryption_key)",
    ),
)


def version_tuple(text):
    """The leading numbers of a version ("7.1.0" -> (7, 1, 0), "0.18.6" ->
    (0, 18, 6), "2.9.9 (dt dec)" -> (2, 9, 9)): enough for the lower bounds
    above, which are plain release numbers."""
    numbers = []
    for part in str(text).split()[0].split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(numbers)


def installed_version(library):
    """The version of the first of the library's distributions installed, or None."""
    if metadata is None:  # pragma: no cover - Python 3.7 and older
        return None
    for distribution in library.distributions:
        try:
            return metadata.version(distribution)
        except Exception:  # PackageNotFoundError, or a broken installation
            continue
    return None


def check_library(library, importer=importlib.import_module):
    """What this interpreter has of the library: a dict with ``name``,
    ``present`` (it imports), ``version``, ``minimum``, ``ok`` (it imports,
    and at the lower bound or above when its version is known), ``required``,
    ``used_for`` and ``error`` (why it does not import, or is too old)."""
    found = {
        "name": library.name,
        "distribution": library.distributions[0],
        "minimum": library.minimum,
        "required": library.required,
        "used_for": library.used_for,
        "present": False,
        "version": None,
        "ok": False,
        "error": None,
    }
    try:
        importer(library.name)
    except Exception as exc:  # ImportError, or a library that breaks on import
        found["error"] = f"{type(exc).__name__}: {exc}"
        return found
    found["present"] = True
    found["version"] = installed_version(library)
    if found["version"] and version_tuple(found["version"]) < version_tuple(library.minimum):
        found["error"] = f"version {found['version']} is older than {library.minimum}"
        return found
    found["ok"] = True
    return found


def check_libraries(importer=importlib.import_module):
    """check_library() of every library, in LIBRARIES' order."""
    return [check_library(library, importer) for library in LIBRARIES]


def interpreter():
    """The interpreter running this module, as messages name it."""
    return f"{sys.executable} (Python {platform.python_version()})"


def fix(names=None):
    """How to give the modules their libraries (names: the missing ones)."""
    what = ", ".join(names) if names else "the collection's libraries"
    return (
        f"run {PREPARE_PLAYBOOK} on this host (ansible-playbook -i <inventory>"
        f" {PREPARE_PLAYBOOK}; from an installed collection: edms.backup.prepare_host),"
        f" which installs {what} in a virtual environment of their own, then set the"
        " inventory line it prints, ansible_python_interpreter: <that environment's"
        " python>, for this host"
    )


def missing_message(names, host=None):
    """A module's failure when libraries it needs are missing: which ones, on
    which host and interpreter, and the fix."""
    plural = "libraries" if len(names) > 1 else "library"
    return (
        f"Failed to import the required Python {plural} ({', '.join(names)}) on"
        f" {host or platform.node()} with the interpreter {interpreter()}."
        f" To fix: {fix(names)}."
    )
