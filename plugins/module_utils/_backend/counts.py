# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Counts of rows, taken inside the backend container, and their comparison.

Entry points (each reads its request from argv[1], see setup.py, and prints
one JSON answer):

- count_main: request {"settings", "models"}; count_models' answer;
- count_labels_main: request {"settings", "database", "expected",
  "m2m_tables", "ignore"}; {"counts", "differences"} of the labels a count of
  a restore's target takes (labels());
- tables_main: the same request; {"database": the database the application
  reads, "tables": {label: table}} of those labels, what a count in SQL needs.
  Reads no row.

compare_counts is also called by the host.
"""

from ansible_collections.edms.backup.plugins.module_utils._backend.setup import answer, setup

ALL_MODELS = "__all__"


def compare_counts(expected, found, m2m_tables):
    """The differences, one dict per label: {"model", "expected", "found",
    "kind"}. A label counted but not expected must be empty (rows made by a
    receiver during the load show up so)."""
    differences = []
    for label in sorted(set(expected) | set(found)):
        want = expected.get(label, 0)
        got = found.get(label)
        if got != want:
            differences.append(
                {
                    "model": label,
                    "expected": want,
                    "found": got,
                    "kind": "m2m table" if label in m2m_tables else "model",
                }
            )
    return differences


def count_models(wanted):
    """wanted: a list of labels or "__all__". {"counts": {label: {"rows",
    "visible"}}} from one repeatable-read, read-only transaction, or {"error":
    "unknown model", "unknown": [...], "known": [...]}."""
    from django.apps import apps
    from django.db import connection, transaction

    if wanted == ALL_MODELS:
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


def count_main():
    request = setup()
    answer(count_models(request["models"]))


def labels(request):
    """(labels, {label: model}): every label of "expected" (models and
    auto-created m2m tables, as in an archive's metadata) and every other
    managed model not in "ignore". Answers {"error"} and ends the program when
    one of them is not a model of this application."""
    from django.apps import apps

    expected = request["expected"]
    ignore = set(request.get("ignore", []))
    by_label = {m._meta.label_lower: m for m in apps.get_models(include_auto_created=True)}
    chosen = set(expected) | {
        label
        for label, m in by_label.items()
        if m._meta.managed
        and not m._meta.proxy
        and not m._meta.auto_created
        and label not in ignore
        and label.split(".")[0] not in ignore
    }
    unknown = sorted(label for label in chosen if label not in by_label)
    if unknown:
        answer({"error": "models not in this application: " + ", ".join(unknown)})
        raise SystemExit(0)
    return chosen, by_label


def count_labels_main():
    """Counts labels() in one repeatable-read, read-only transaction."""
    from django.db import connection, transaction

    request = setup()
    chosen, by_label = labels(request)
    found = {}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for label in sorted(chosen):
            found[label] = by_label[label]._base_manager.count()
    answer(
        {
            "counts": found,
            "differences": compare_counts(request["expected"], found, request["m2m_tables"]),
        }
    )


def tables_main():
    from django.db import connection

    request = setup()
    chosen, by_label = labels(request)
    answer(
        {
            "database": connection.settings_dict["NAME"],
            "tables": {label: by_label[label]._meta.db_table for label in sorted(chosen)},
        }
    )
