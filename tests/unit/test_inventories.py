"""The inventories describe deployments with the variables the collection reads.

Every variable an inventory sets is read by something (a role's argument spec
or a playbook), every input a role requires is set (except those given per
run), and in inventories/staging, the operators' own, each is explained by a
comment just above it.
"""

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
INVENTORIES = ["demo", "lims", "staging"]
# Given per run on the command line (-e), never in an inventory.
PER_RUN = {"edms_archive", "edms_restore_confirm"}


def spec_options():
    """{option: required anywhere} over every entry point of every role."""
    options = {}
    for path in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        for spec in yaml.safe_load(path.read_text())["argument_specs"].values():
            for name, option in spec.get("options", {}).items():
                options[name] = options.get(name, False) or bool(option.get("required"))
    return options


def playbook_text():
    return "\n".join(p.read_text() for p in sorted(ROOT.glob("playbooks/*.yml")))


def group_vars(inventory):
    path = ROOT / "inventories" / inventory / "group_vars" / "edms.yml"
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_variable_is_read_by_something(inventory):
    options = spec_options()
    playbooks = playbook_text()
    for name in group_vars(inventory):
        assert name in options or name in playbooks, f"{inventory}: {name} is read by nothing"


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_required_input_is_set(inventory):
    variables = group_vars(inventory)
    for name, required in spec_options().items():
        if required and name not in PER_RUN:
            assert name in variables, f"{inventory}: a role requires {name}"


def test_every_staging_variable_is_explained():
    lines = (ROOT / "inventories" / "staging" / "group_vars" / "edms.yml").read_text().splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith((" ", "#", "-")):
            assert lines[number - 1].startswith("#"), f"no comment above {line!r}"
