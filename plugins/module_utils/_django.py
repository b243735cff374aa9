# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Django code run inside the backend container, and the reading of its answers.

The container gets no new packages: the code is plain Python handed to the
app's own interpreter with ``python -c``; it sets Django up itself so that its
standard output is nothing but the JSON answer.
"""

from __future__ import annotations

import json

ALL_MODELS = "__all__"

# The start of every script run in the backend. argv[1]: JSON request with
# "settings": a settings module, or null for the container's
# DJANGO_SETTINGS_MODULE; optionally "database": the name of another database
# on the same server to work on (a rehearsal's), set in the settings before
# the first connection, so the app need not read its name from any variable.
# Prints {"error": ...} and stops when Django cannot be set up that way.
SETUP = r"""
import json, os, sys
request = json.loads(sys.argv[1])
if request.get("settings"):
    os.environ["DJANGO_SETTINGS_MODULE"] = request["settings"]
if not os.environ.get("DJANGO_SETTINGS_MODULE"):
    print(json.dumps({"error": "DJANGO_SETTINGS_MODULE is not set in the backend container"}))
    sys.exit(0)
if request.get("database"):
    from django.conf import settings as _settings
    _settings.DATABASES["default"]["NAME"] = request["database"]
import django
django.setup()
from django.apps import apps
from django.db import connection, transaction
"""

# count_models(wanted): wanted is a list of labels or "__all__". Returns
# {"counts": {label: {"rows", "visible"}}} from one repeatable-read, read-only
# transaction, or {"error": "unknown model", "unknown": [...], "known": [...]}.
COUNT_FUNCTION = r"""
def count_models(wanted):
    if wanted == "__all__":
        models = [m for m in apps.get_models() if not m._meta.proxy and m._meta.managed]
    else:
        by_label = {m._meta.label_lower: m for m in apps.get_models()}
        models = [by_label.get(label.lower()) for label in wanted]
        unknown = [label for label, model in zip(wanted, models) if model is None]
        if unknown:
            return {"error": "unknown model", "unknown": unknown, "known": sorted(by_label)}
    counts = {}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for model in models:
            counts[model._meta.label] = {
                "rows": model._base_manager.count(),
                "visible": model._default_manager.count(),
            }
    return {"counts": counts}
"""

# Request: {"settings", "models"}. Prints count_models' answer.
COUNT_SCRIPT = SETUP + COUNT_FUNCTION + 'print(json.dumps(count_models(request["models"])))\n'


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


def count_command(python, labels, settings_module=None):
    """The argv that counts the given models inside the backend container."""
    request = {"models": labels, "settings": settings_module}
    return [python, "-c", COUNT_SCRIPT, json.dumps(request)]


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
