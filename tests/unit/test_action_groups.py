"""meta/runtime.yml's action group against the modules' argument specs.

module_defaults over a group gives its options to every module of the group,
and a module that does not take one of them fails the task ("Unsupported
parameters"). So the group ``project`` must hold exactly the modules whose
argument spec takes every project option, and each of them must document the
options with the doc fragment edms.backup.project.
"""

import importlib
import os

import pytest
import yaml
from ansible_collections.edms.backup.plugins.module_utils._common import project_argument_spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = sorted(
    name[:-3]
    for name in os.listdir(os.path.join(ROOT, "plugins", "modules"))
    if name.endswith(".py") and not name.startswith("_")
)
with open(os.path.join(ROOT, "meta", "runtime.yml")) as _handle:
    RUNTIME = yaml.safe_load(_handle)


def module(name):
    return importlib.import_module(f"ansible_collections.edms.backup.plugins.modules.{name}")


def takes_the_project_options(name):
    spec = module(name).argument_spec()
    return all(spec.get(key) == value for key, value in project_argument_spec().items())


def test_the_project_group_is_exactly_the_modules_that_take_the_project_options():
    expected = [name for name in MODULES if takes_the_project_options(name)]
    assert expected, "no module takes the project options: the spec builders changed?"
    assert len(expected) < len(MODULES), "every module takes them: the check proves nothing"
    assert RUNTIME["action_groups"]["project"] == expected


def test_every_action_group_is_one_module_defaults_can_use():
    # Only groups whose options every member takes; see the module docstring.
    assert set(RUNTIME["action_groups"]) == {"project"}


@pytest.mark.parametrize("name", MODULES)
def test_the_project_fragment_documents_exactly_the_group(name):
    documentation = yaml.safe_load(module(name).DOCUMENTATION)
    fragments = documentation.get("extends_documentation_fragment", [])
    in_group = name in RUNTIME["action_groups"]["project"]
    assert ("edms.backup.project" in fragments) == in_group, (name, fragments)
