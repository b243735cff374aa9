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


def test_without_any_settings_module_the_answer_says_so(tmp_path):
    assert run(tmp_path, {"settings": None}) == {"error": setup.NO_SETTINGS}
