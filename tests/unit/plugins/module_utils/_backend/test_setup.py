"""Django set up as a backend program asks, with the real Django (the demo's
version) and a settings module of the test's own."""

import json
import subprocess
import sys

from ansible_collections.edms.backup.plugins.module_utils._backend import setup
from ansible_collections.edms.backup.plugins.module_utils._platform.django import (
    BACKEND,
    with_backend,
)

SETTINGS = """
SECRET_KEY = "not secret"
INSTALLED_APPS = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "own"}}
"""

SHOW = f"""
from {BACKEND}.setup import answer, setup
setup()
from django.conf import settings
from django.db import connection
answer([settings.DATABASES["default"]["NAME"], connection.settings_dict["NAME"]])
"""


def run(tmp_path, request, environment=None):
    (tmp_path / "probe_settings.py").write_text(SETTINGS)
    env = {"PYTHONPATH": str(tmp_path), **(environment or {})}
    proc = subprocess.run(
        [sys.executable, "-c", with_backend(SHOW, setup), json.dumps(request)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
    )
    return json.loads(proc.stdout)


def test_the_database_is_chosen_before_the_first_connection(tmp_path):
    request = {"settings": "probe_settings", "database": "edms_test_restore"}
    assert run(tmp_path, request) == ["edms_test_restore", "edms_test_restore"]


def test_without_a_database_the_applications_own_is_used(tmp_path):
    assert run(tmp_path, {"settings": "probe_settings"}) == ["own", "own"]


def test_the_containers_settings_module_is_used_when_none_is_given(tmp_path):
    environment = {"DJANGO_SETTINGS_MODULE": "probe_settings"}
    assert run(tmp_path, {"settings": None}, environment) == ["own", "own"]


MANAGE_PY = """#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "probe_settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""


def test_the_settings_module_manage_py_sets_is_found_in_the_working_directory(tmp_path):
    (tmp_path / "manage.py").write_text(MANAGE_PY)
    assert run(tmp_path, {"settings": {"module": None, "manage_py": None}}) == ["own", "own"]


def test_manage_py_elsewhere_is_read_and_its_directory_imported_from(tmp_path):
    project = tmp_path / "srv" / "project"
    project.mkdir(parents=True)
    (project / "manage.py").write_text(MANAGE_PY)
    (project / "probe_settings.py").write_text(SETTINGS.replace('"own"', '"elsewhere"'))
    request = {"settings": {"module": None, "manage_py": str(project / "manage.py")}}
    # probe_settings.py of tmp_path (on PYTHONPATH) is not the one manage.py's directory holds.
    assert run(tmp_path, request) == ["elsewhere", "elsewhere"]


def test_the_environment_goes_before_manage_py(tmp_path):
    (tmp_path / "manage.py").write_text(MANAGE_PY.replace("probe_settings", "no_such_module"))
    environment = {"DJANGO_SETTINGS_MODULE": "probe_settings"}
    assert run(tmp_path, {"settings": {}}, environment) == ["own", "own"]


def test_without_any_settings_module_the_answer_says_where_it_looked_and_the_fix(tmp_path):
    found = run(tmp_path, {"settings": None})
    assert found == {
        "error": f"{setup.NO_SETTINGS}, and there is no {tmp_path}/manage.py: {setup.FIX}",
        "fix": setup.FIX,
    }
    assert "edms_django_settings_module" in found["fix"]
    assert "edms_manage_py" in found["fix"]


def test_a_manage_py_that_sets_no_settings_module_is_named(tmp_path):
    (tmp_path / "manage.py").write_text("import sys\nprint(sys.argv)\n")
    found = run(tmp_path, {"settings": None})
    assert found["error"].startswith(f"{setup.NO_SETTINGS}, and {tmp_path}/manage.py does not")


def test_manage_py_is_read_not_run():
    # Only a string constant counts: a computed value is not guessed at.
    assert setup.settings_in_manage_py('import os\nos.environ.setdefault("X", "a")') is None
    computed = 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", NAME + ".settings")'
    assert setup.settings_in_manage_py(computed) is None
    assigned = 'import os\nos.environ["DJANGO_SETTINGS_MODULE"] = "site.settings"'
    assert setup.settings_in_manage_py(assigned) == "site.settings"


def test_a_named_module_is_imported_from_the_directory_of_a_named_manage_py(tmp_path):
    project = tmp_path / "srv" / "project"
    project.mkdir(parents=True)
    (project / "manage.py").write_text("")
    (project / "named_settings.py").write_text(SETTINGS.replace('"own"', '"named"'))
    request = {"settings": {"module": "named_settings", "manage_py": str(project / "manage.py")}}
    assert run(tmp_path, request) == ["named", "named"]


def test_a_manage_py_that_names_several_settings_modules_is_not_guessed(tmp_path):
    (tmp_path / "manage.py").write_text(
        "import os, sys\n"
        "if 'test' in sys.argv:\n"
        "    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site.settings.test')\n"
        "else:\n"
        "    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site.settings.prod')\n"
    )
    found = run(tmp_path, {"settings": None})
    assert "names several (site.settings.prod, site.settings.test)" in found["error"]
