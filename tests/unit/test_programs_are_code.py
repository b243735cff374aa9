"""No Python program hides in a string constant under plugins/: programs run
in the backend container are modules of plugins/module_utils/_backend/, which
linters, sanity and coverage read (the host sends their source)."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGINS = os.path.join(ROOT, "plugins")
CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import )", re.MULTILINE)


def programs_in(source):
    """(line, lines) of each string constant of source that looks like a
    program: more than 15 lines, one of them a def, class or import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            lines = node.value.splitlines()
            if len(lines) > 15 and CODE_LINE.search(node.value):
                found.append((node.lineno, len(lines)))
    return found


def test_the_scan_finds_a_program_and_passes_prose():
    program = "\n".join(["import json", "def f():"] + ["    x = 1"] * 14 + ["    return x"])
    assert programs_in(f"SCRIPT = {program!r}\n") == [(1, 17)]
    fifteen = "\n".join(["import json"] * 15)
    assert programs_in(f"SCRIPT = {fifteen!r}\n") == []
    prose = "\n".join(["A documentation line."] * 40)
    assert programs_in(f'"""{prose}"""\n') == []


def test_no_string_constant_under_plugins_holds_a_program():
    found = []
    for directory, _dirs, files in os.walk(PLUGINS):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as handle:
                    found += [
                        f"{os.path.relpath(path, ROOT)}:{line} ({count} lines)"
                        for line, count in programs_in(handle.read())
                    ]
    assert found == []
