"""Every role's argument spec against its defaults/main.yml (STYLE.md): each
default in the spec equals the role's default, and each role default is an
input of the spec."""

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(os.listdir(os.path.join(ROOT, "roles")))


def load(*parts):
    with open(os.path.join(ROOT, *parts)) as handle:
        return yaml.safe_load(handle) or {}


@pytest.mark.parametrize("role", ROLES)
def test_the_spec_defaults_are_the_role_defaults(role):
    specs = load("roles", role, "meta", "argument_specs.yml")["argument_specs"]
    defaults_file = os.path.join(ROOT, "roles", role, "defaults", "main.yml")
    defaults = load(defaults_file) if os.path.exists(defaults_file) else {}
    options = {}
    for entry in specs.values():
        options.update(entry.get("options", {}))
    for name, value in defaults.items():
        assert name in options, f"{role}: default {name} is not in the argument spec"
        assert options[name].get("default") == value, (role, name)
    for name, option in options.items():
        if "default" in option:
            assert name in defaults, f"{role}: spec default {name} is not in defaults/main.yml"
