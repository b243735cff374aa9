# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Programs run inside the backend container, and the reading of their answers.

The container gets no new packages: the programs are the modules of the
``_backend`` folder, whose source is handed to the app's own interpreter with
``python -c`` (backend_program); they set Django up themselves, so that their
standard output is nothing but the JSON answer.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import json
import sys

from ansible_collections.edms.backup.plugins.module_utils._backend import boot
from ansible_collections.edms.backup.plugins.module_utils._backend import counts as counts_program
from ansible_collections.edms.backup.plugins.module_utils._backend.counts import ALL_MODELS

BACKEND = "ansible_collections.edms.backup.plugins.module_utils._backend"


def backend_imports(source):
    """The backend modules that source imports, at its top or in a function
    (names in full; packages, which the program makes empty, left out)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [node.module + "." + alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if is_backend_module(name))
    return found


def is_backend_module(name):
    """Whether name is a module (not a package, not a name in a module) of
    the backend folder; imported here if nothing imported it yet (a program
    may import a module only after Django is set up)."""
    if not name.startswith(BACKEND + "."):
        return False
    try:
        module = importlib.import_module(name)
    except ImportError:
        return False  # a function or class imported from a module
    return not hasattr(module, "__path__")


def backend_sources(*modules):
    """{name: source} of the modules and of every backend module they import,
    however deep."""
    sources, pending = {}, [module.__name__ for module in modules]
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        sources[name] = inspect.getsource(sys.modules[name])
        pending.extend(backend_imports(sources[name]))
    return sources


def with_backend(code, *modules):
    """A program for ``python -c`` in the backend: the backend modules given
    (and what they import) made importable there (_backend/boot.py), then code."""
    sources = dict(sorted(backend_sources(*modules).items()))
    return inspect.getsource(boot) + "\n\ninstall(" + repr(sources) + ")\n" + code


@functools.lru_cache(maxsize=None)
def backend_program(module, function="main"):
    """The program that runs module.function() in the backend."""
    return with_backend(f"run({module.__name__!r}, {function!r})\n", module)


class DjangoError(Exception):
    """The code run in the backend failed or gave an answer that cannot be read."""


class NoReport(DjangoError):
    """The code run in the backend ended without writing its report."""


def read_marked_report(stderr, marker, what):
    """The JSON object on the last stderr line that starts with marker.

    Scripts whose stdout is data (the dump) or who may print noise report so.
    Raises NoReport naming ``what`` ("the dump", "the load") when there is no
    such line, DjangoError when it is not a JSON object; a report with "error" is
    returned as it is, for the caller to raise in its own terms.
    """
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    for line in reversed(text.splitlines()):
        if line.startswith(marker):
            try:
                report = json.loads(line[len(marker) :])
            except ValueError as exc:
                raise DjangoError(f"{what}'s report is not JSON: {exc}") from exc
            if not isinstance(report, dict):
                raise DjangoError(f"{what}'s report is not a JSON object")
            return report
    tail = text.strip()[-2000:]
    raise NoReport(f"{what} ended without a report" + (f": {tail}" if tail else ""))


def normalize_model_labels(value):
    """Validate a model selection: ``__all__`` or a list of ``app_label.ModelName``."""
    if value == ALL_MODELS or value == [ALL_MODELS]:
        return ALL_MODELS
    if isinstance(value, str):
        value = [value]
    labels = []
    for item in value or []:
        item = str(item).strip()
        parts = item.split(".")
        if len(parts) != 2 or not all(parts):
            raise DjangoError(
                f"model {item!r} is not of the form app_label.ModelName (e.g. documents.Document)"
            )
        if item.lower() not in (label.lower() for label in labels):
            labels.append(item)
    if not labels:
        raise DjangoError(f"no models to count: give app_label.ModelName labels or {ALL_MODELS}")
    return labels


def django_settings(params):
    """The "settings" of a backend program's request (_backend/setup.py):
    the module and manage.py the task names, if any."""
    return {"module": params.get("django_settings_module"), "manage_py": params.get("manage_py")}


def backend_command(python, module, request, function="main"):
    """The argv that runs module.function() in the backend with request."""
    return [python, "-c", backend_program(module, function), json.dumps(request)]


def count_command(python, labels, settings_module=None):
    """The argv that counts the given models inside the backend container."""
    request = {"models": labels, "settings": settings_module}
    return backend_command(python, counts_program, request, "count_main")


def parse_answer(stdout):
    """Read the JSON answer a script printed last; anything before it is noise."""
    text = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else stdout
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise DjangoError("the backend printed nothing")
    try:
        answer = json.loads(lines[-1])
    except ValueError as exc:
        raise DjangoError(f"the backend's answer is not JSON: {lines[-1][:200]!r}") from exc
    if not isinstance(answer, dict):
        raise DjangoError(f"the backend's answer is not a JSON object: {lines[-1][:200]!r}")
    return answer


def parse_counts(stdout):
    """{label: {"rows": n, "visible": m}} from the count script's output."""
    answer = parse_answer(stdout)
    if "unknown" in answer:
        raise DjangoError(
            "unknown model(s) {}; the backend has: {}".format(
                ", ".join(answer["unknown"]), ", ".join(answer.get("known", []))
            )
        )
    if "error" in answer:
        raise DjangoError(str(answer["error"]))
    counts = answer.get("counts")
    if not isinstance(counts, dict):
        raise DjangoError("the backend's answer has no counts")
    return counts
