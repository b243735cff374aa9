# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Django code run inside the backend container, and the reading of its answers.

The container gets no new packages: the code is plain Python handed to the
app's own interpreter with ``python -c``; it sets Django up itself so that its
standard output is nothing but the JSON answer.
"""

from __future__ import annotations

import json

ALL_MODELS = "__all__"

# Runs inside the backend. argv[1]: JSON {"models": [...] or "__all__",
# "settings": module or null (then the container's DJANGO_SETTINGS_MODULE)}.
# Prints one JSON object: {"counts": {label: {"rows", "visible"}}} or {"error"}.
COUNT_SCRIPT = r"""
import json, os, sys
request = json.loads(sys.argv[1])
if request.get("settings"):
    os.environ["DJANGO_SETTINGS_MODULE"] = request["settings"]
if not os.environ.get("DJANGO_SETTINGS_MODULE"):
    print(json.dumps({"error": "DJANGO_SETTINGS_MODULE is not set in the backend container"}))
    sys.exit(0)
import django
django.setup()
from django.apps import apps
from django.db import connection, transaction

wanted = request["models"]
if wanted == "__all__":
    models = [m for m in apps.get_models() if not m._meta.proxy and m._meta.managed]
else:
    by_label = {m._meta.label_lower: m for m in apps.get_models()}
    models, unknown = [], []
    for label in wanted:
        model = by_label.get(label.lower())
        (models if model is not None else unknown).append(model if model is not None else label)
    if unknown:
        print(json.dumps({"error": "unknown model", "unknown": unknown,
                          "known": sorted(by_label)}))
        sys.exit(0)
counts = {}
with transaction.atomic():
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    for model in models:
        counts[model._meta.label] = {
            "rows": model._base_manager.count(),
            "visible": model._default_manager.count(),
        }
print(json.dumps({"counts": counts}))
"""


class DjangoError(Exception):
    """The code run in the backend failed or gave an answer that cannot be read."""


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
