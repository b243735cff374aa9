#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: host_info
short_description: Whether the interpreter running the modules has the collection's Python libraries
version_added: 0.1.0
description:
  - Imports each Python library the collection's modules need on the managed
    host (docker, ruamel.yaml; psycopg2 and jmespath optional) with the
    interpreter Ansible runs it with (C(ansible_python_interpreter)), and
    reports it, its version against the collection's lower bound, and the
    interpreter.
  - The role C(edms.backup.host) (C(playbooks/prepare_host.yml)) runs it with
    the python of the virtual environment it makes, to decide whether to
    install and to prove the result. M(edms.backup.preflight_info) reports
    the same as its check C(host_ready).
  - Changes nothing. A missing library is not a module failure; RV(ready)
    says whether the collection can work, RV(missing) what to install.
options: {}
extends_documentation_fragment:
  - edms.backup.read_only
author:
  - edms.backup developers (@edms-backup)
"""

EXAMPLES = r"""
- name: Libraries of the interpreter the inventory gives the collection's modules
  edms.backup.host_info:
  register: edms_host

- name: Stop when the host is not ready
  ansible.builtin.assert:
    that: edms_host.ready
    fail_msg: "{{ edms_host.message }}"

- name: The libraries of a given interpreter
  edms.backup.host_info:
  vars:
    ansible_python_interpreter: /home/lims/.local/share/edms-backup/venv/bin/python
  register: edms_venv
"""

RETURN = r"""
python:
  description: The interpreter that ran the module (C(sys.executable)) and its version.
  returned: always
  type: dict
  sample: {"executable": "/home/lims/.local/share/edms-backup/venv/bin/python", "version": "3.11.2"}
libraries:
  description:
    - Each library with C(name) (as imported), C(distribution) (as
      installed), C(minimum), C(required), C(used_for), C(present) (it
      imports), C(version), C(ok) (present and not older than C(minimum))
      and C(error) (why not).
  returned: always
  type: list
  elements: dict
ready:
  description: True when every required library is there (not older than its lower bound).
  returned: always
  type: bool
complete:
  description: True when every library, optional ones included, is there.
  returned: always
  type: bool
missing:
  description: The libraries absent or too old, required or not, as imported.
  returned: always
  type: list
  elements: str
  sample: [docker, ruamel.yaml]
requirements:
  description: The pip requirements that install every library, lower bounds included.
  returned: always
  type: list
  elements: str
  sample: ["docker>=7.0", "ruamel.yaml>=0.18", "psycopg2-binary>=2.9", "jmespath>=1.0"]
message:
  description: What is missing and how to fix it, or that nothing is.
  returned: always
  type: str
"""

import platform
import sys

from ansible_collections.edms.backup.plugins.module_utils._module import run_module
from ansible_collections.edms.backup.plugins.module_utils._platform.host import (
    LIBRARIES,
    check_libraries,
    interpreter,
    missing_message,
)


def argument_spec():
    return {}


def command(module):
    libraries = check_libraries()
    missing = [lib["name"] for lib in libraries if not lib["ok"]]
    ready = all(lib["ok"] for lib in libraries if lib["required"])
    return {
        "changed": False,
        "python": {"executable": sys.executable, "version": platform.python_version()},
        "libraries": libraries,
        "ready": ready,
        "complete": not missing,
        "missing": missing,
        "requirements": [library.requirement for library in LIBRARIES],
        "message": missing_message(missing)
        if missing
        else f"{interpreter()} has every library the collection needs",
    }


def main():
    run_module(argument_spec(), command)


if __name__ == "__main__":
    main()
