"""Every module's and doc fragment's DOCUMENTATION, EXAMPLES and RETURN is
YAML (ansible-doc refuses a module whose documentation does not parse)."""

import ast
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = sorted(ROOT.glob("plugins/modules/*.py")) + sorted(ROOT.glob("plugins/doc_fragments/*.py"))


def documents(path):
    """{name: text} of the module-level string constants DOCUMENTATION, EXAMPLES, RETURN."""
    found = {}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in {
                    "DOCUMENTATION",
                    "EXAMPLES",
                    "RETURN",
                }:
                    found[target.id] = node.value.value
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_documentation_parses(path):
    found = documents(path)
    assert "DOCUMENTATION" in found
    for name, text in found.items():
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            pytest.fail(f"{path.name} {name}: {exc}")
