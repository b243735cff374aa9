# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Django set up inside the backend container, as every backend program needs it.

The request of every program is the JSON object in argv[1]. Its "settings"
is {"module", "manage_py"} (or a module name, or null): the settings module
is found the way ``manage.py`` finds it: the one named (the inventory's), else
the container's DJANGO_SETTINGS_MODULE, else the ``os.environ.setdefault``
of ``manage.py`` (the one named, else the one in the working directory), read
from its text, never run. Its optional "database" names another database on
the same server to work on (a rehearsal's), set in the settings before the
first connection, so that the application need not read its name from any
variable.
"""

import ast
import json
import os
import sys

NO_SETTINGS = "DJANGO_SETTINGS_MODULE is not set in the backend container"
VARIABLE = "DJANGO_SETTINGS_MODULE"
FIX = (
    "set edms_django_settings_module to the application's settings module"
    " (e.g. mysite.settings), or edms_manage_py to the path of its manage.py"
    " inside the backend container"
)


def read_request():
    """The program's request (argv[1])."""
    return json.loads(sys.argv[1])


def _is_text(node):
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


class Ambiguous(ValueError):
    """manage.py names more than one settings module (in branches)."""


def settings_in_manage_py(text):
    """The settings module manage.py's text sets: the value of
    ``os.environ.setdefault("DJANGO_SETTINGS_MODULE", "...")`` or of
    ``os.environ["DJANGO_SETTINGS_MODULE"] = "..."``; None when it sets none
    as a plain string. Raises Ambiguous when it names several (which one
    applies depends on how it runs: not guessed)."""
    found = sorted(set(_settings_values(text)))
    if len(found) > 1:
        raise Ambiguous(", ".join(found))
    return found[0] if found else None


def _settings_values(text):
    for node in ast.walk(ast.parse(text)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "setdefault"
            and len(node.args) == 2
            and all(_is_text(arg) for arg in node.args)
            and node.args[0].value == VARIABLE
        ):
            yield node.args[1].value
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Subscript)
            and _is_text(node.targets[0].slice)
            and node.targets[0].slice.value == VARIABLE
            and _is_text(node.value)
        ):
            yield node.value.value


def find_settings(given, environ, cwd, read):
    """(module, source, directory to import from) of the settings, found as
    manage.py finds them; (None, why not, None) when none is found.
    given: the request's "settings"; read(path): the text of a file."""
    if isinstance(given, dict):
        module, manage_py = given.get("module"), given.get("manage_py")
    else:
        module, manage_py = given, None
    if module:
        # The settings are imported from manage.py's directory, as manage.py would.
        return module, "edms_django_settings_module", manage_py and os.path.dirname(manage_py)
    if environ.get(VARIABLE):
        return environ[VARIABLE], "the backend container's environment", None
    path = manage_py or os.path.join(cwd, "manage.py")
    if not path.startswith("/"):
        path = os.path.join(cwd, path)
    try:
        text = read(path)
    except FileNotFoundError:
        return None, f"{NO_SETTINGS}, and there is no {path}: {FIX}", None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{NO_SETTINGS}, and {path} cannot be read ({exc}): {FIX}", None
    try:
        found = settings_in_manage_py(text)
    except SyntaxError as exc:
        return None, f"{NO_SETTINGS}, and {path} is not Python ({exc.msg}): {FIX}", None
    except Ambiguous as exc:
        return None, f"{NO_SETTINGS}, and {path} names several ({exc}): {FIX}", None
    if not found:
        return None, f"{NO_SETTINGS}, and {path} does not set it: {FIX}", None
    return found, f"{path} (its os.environ.setdefault)", os.path.dirname(path)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def choose_settings(request):
    """Set DJANGO_SETTINGS_MODULE as manage.py would (find_settings); the
    request's "settings_source" says where it came from, or why none was
    found. False when none is found."""
    module, source, directory = find_settings(
        request.get("settings"), os.environ, os.getcwd(), _read
    )
    request["settings_source"] = source
    if module is None:
        return False
    os.environ[VARIABLE] = module
    if directory and directory not in sys.path:
        sys.path.insert(0, directory)
    return True


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
        answer({"error": request["settings_source"], "fix": FIX})
        raise SystemExit(0)
    use_database(request)
    import django

    django.setup()
    return request
