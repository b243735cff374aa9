# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Django set up inside the backend container, as every backend program needs it.

The request of every program is the JSON object in argv[1]. Its "settings"
names a settings module, or is null for the container's own
DJANGO_SETTINGS_MODULE; its optional "database" names another database on the
same server to work on (a rehearsal's), set in the settings before the first
connection, so that the application need not read its name from any variable.
"""

import json
import os
import sys

NO_SETTINGS = "DJANGO_SETTINGS_MODULE is not set in the backend container"


def read_request():
    """The program's request (argv[1])."""
    return json.loads(sys.argv[1])


def choose_settings(request):
    """Set DJANGO_SETTINGS_MODULE from the request; False when none is known."""
    if request.get("settings"):
        os.environ["DJANGO_SETTINGS_MODULE"] = request["settings"]
    return bool(os.environ.get("DJANGO_SETTINGS_MODULE"))


def use_database(request):
    """Point the default database at the request's "database", if it names one."""
    if request.get("database"):
        from django.conf import settings

        settings.DATABASES["default"]["NAME"] = request["database"]


def answer(value):
    """The program's answer: one JSON line on standard output."""
    sys.stdout.write(json.dumps(value) + "\n")


def setup():
    """The request, with Django set up as it asks. When no settings module is
    known, answers {"error"} and ends the program (exit code 0: the host reads
    the answer)."""
    request = read_request()
    if not choose_settings(request):
        answer({"error": NO_SETTINGS})
        raise SystemExit(0)
    use_database(request)
    import django

    django.setup()
    return request
