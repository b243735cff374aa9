"""Every preflight finding that can be an error carries a fix: read from the
code (AST), so that a new check cannot forget it."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[5]
SOURCES = [
    ROOT / "plugins/module_utils/_commands/preflight_info.py",
    ROOT / "plugins/module_utils/_format/freshness.py",
]


def finding_calls(path):
    """(line, severity node, fix node or None) of each findings.add(...) and
    _finding(...) call."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in {"add", "_finding"} or (
            name == "add" and getattr(func.value, "id", None) != "findings"
        ):
            continue
        args = list(node.args)
        keywords = {k.arg: k.value for k in node.keywords}
        if None in keywords:
            continue  # findings.add(**finding): made by _finding, checked there
        severity = args[1] if len(args) > 1 else keywords.get("severity")
        fix = args[3] if len(args) > 3 else keywords.get("fix")
        yield node.lineno, severity, fix


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_finding_that_can_be_an_error_has_a_fix(path):
    calls = list(finding_calls(path))
    assert len(calls) > 5
    missing = [
        line
        for line, severity, fix in calls
        if not (isinstance(severity, ast.Constant) and severity.value in ("ok", "warning"))
        and (fix is None or (isinstance(fix, ast.Constant) and not fix.value))
    ]
    assert missing == [], f"{path.name}: findings without a fix at lines {missing}"
