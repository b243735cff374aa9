# Private to the edms.backup collection: no compatibility promise to anyone else.
"""A rehearsal of the application's own backup (a native archive), inside
the backend container: the checklist's Test 3 on the archive the operators
would restore from, loaded the way they would load it.

Entry points (request in argv[1], one JSON answer on stdout):

- load_main: request {"settings", "database", "fixture"}: Django's own
  ``loaddata`` of the fixture into the rehearsal's database (one
  transaction, as loaddata does), with the restore marker set (m2m_changed
  receivers that check it stay quiet, as under the collection's own load).
  Answers {"installed", "of", "fixtures", "output"} or {"error"}.
- compare_main: request {"settings", "database", "backup_counts"}: every
  concrete model read in the live database and in the rehearsal's, rows
  matched by natural key where the model has one (a natural primary key
  gives a loaded row a new primary key) and by primary key otherwise, each
  field compared through Django's python serializer with natural foreign
  keys. Answers {"models": {label: comparison()}} or {"error"}.
"""

import io
import json
import os
import re
import sys

REHEARSAL = "rehearsal"
INSTALLED = re.compile(r"Installed (\d+) object\(s\)(?: \(of (\d+)\))? from (\d+) fixture")


def _setup(request, alias=False):
    """Django set up on the live database (and, with alias, the rehearsal's
    database as the connection "rehearsal"), or on the rehearsal's only."""
    from ansible_collections.edms.backup.plugins.module_utils._backend.setup import (
        FIX,
        choose_settings,
    )

    if not choose_settings(request):
        return {"error": request["settings_source"], "fix": FIX}
    from django.conf import settings

    if alias:
        settings.DATABASES[REHEARSAL] = dict(
            settings.DATABASES["default"], NAME=request["database"]
        )
    else:
        settings.DATABASES["default"]["NAME"] = request["database"]
    import django

    django.setup()
    return None


def _said(exc):
    """An exception's text without the row data a database error quotes
    ("Failing row contains (...)": a password hash among it)."""
    from ansible_collections.edms.backup.plugins.module_utils._backend.scrub import scrub

    return scrub(f"{type(exc).__name__}: {exc}")[:4000]


def _answer(value):
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def load_main():
    request = json.loads(sys.argv[1])
    os.environ["EDMS_RESTORE_IN_PROGRESS"] = "1"
    failed = _setup(request)
    if failed:
        _answer(failed)
        return
    from django.conf import settings
    from django.core.management import call_command

    settings.EDMS_RESTORE_IN_PROGRESS = True
    out = io.StringIO()
    try:
        call_command("loaddata", request["fixture"], verbosity=1, stdout=out)
    except Exception as exc:  # loaddata's own message says what failed, row data scrubbed
        _answer({"error": _said(exc)})
        return
    text = out.getvalue()
    found = INSTALLED.search(text)
    if not found:
        _answer({"error": "loaddata did not say what it installed", "output": text[-2000:]})
        return
    installed = int(found.group(1))
    of = int(found.group(2)) if found.group(2) else installed
    _answer({"installed": installed, "of": of, "fixtures": int(found.group(3)), "output": text})


def _is_datetime(value):
    return hasattr(value, "microsecond") and hasattr(value, "tzinfo")


def _cut_to_milliseconds(live, loaded):
    return (
        _is_datetime(live)
        and _is_datetime(loaded)
        and live != loaded
        and live.replace(microsecond=live.microsecond // 1000 * 1000) == loaded
    )


def _rows(model, alias, serializer):
    """{key: (pk, fields)} of every row of model in the database alias, the
    key being the natural key (as a JSON text) where the model has one."""
    natural = hasattr(model, "natural_key")
    many = [field.name for field in model._meta.many_to_many]
    found = {}
    for obj in model._base_manager.using(alias).order_by("pk").iterator():
        fields = serializer.serialize([obj], use_natural_foreign_keys=True)[0]["fields"]
        for name in many:  # a set: its order is the database's
            if isinstance(fields.get(name), list):
                fields[name] = sorted(fields[name], key=lambda v: json.dumps(v, default=str))
        key = json.dumps(list(obj.natural_key()), default=str) if natural else str(obj.pk)
        found[key] = (str(obj.pk), fields)
    return found


def comparison(live, loaded):
    """How a model's rows loaded from the backup differ from the live ones.

    live, loaded: {key: (pk, fields)}. Answers {"live", "loaded", "missing",
    "extra", "pk_replaced", "fields": {field: {"rows", "kind"}}} (no key is
    returned: a key may be a secret, such as a session's):
    rows of the live data the load lacks, rows it has that the live data
    does not, matched rows whose primary key is another, and per field the
    matched rows whose value differs; "kind" says "times cut to milliseconds"
    of the differences that are a time without its last three digits."""
    missing = [key for key in live if key not in loaded]
    extra = [key for key in loaded if key not in live]
    replaced = 0
    fields = {}
    for key, (pk, values) in live.items():
        if key not in loaded:
            continue
        other_pk, other = loaded[key]
        if other_pk != pk:
            replaced += 1
        for name in sorted(set(values) | set(other)):
            a, b = values.get(name), other.get(name)
            if a == b:
                continue
            entry = fields.setdefault(name, {"rows": 0, "cut": 0})
            entry["rows"] += 1
            if _cut_to_milliseconds(a, b):
                entry["cut"] += 1
    for entry in fields.values():
        cut = entry.pop("cut")
        if cut == entry["rows"]:
            entry["kind"] = "times cut to milliseconds"
        elif cut:
            entry["kind"] = f"{cut} times cut to milliseconds, {entry['rows'] - cut} values differ"
        else:
            entry["kind"] = "values differ"
    return {
        "live": len(live),
        "loaded": len(loaded),
        "missing": len(missing),
        "extra": len(extra),
        "pk_replaced": replaced,
        "fields": fields,
    }


def compare_main():
    request = json.loads(sys.argv[1])
    failed = _setup(request, alias=True)
    if failed:
        _answer(failed)
        return
    from django.apps import apps
    from django.core import serializers

    serializer = serializers.get_serializer("python")()
    models = {}
    try:
        for model in apps.get_models():
            meta = model._meta
            if meta.proxy or not meta.managed:
                continue
            result = comparison(
                _rows(model, "default", serializer), _rows(model, REHEARSAL, serializer)
            )
            result["backup"] = request["backup_counts"].get(meta.label_lower, 0)
            models[meta.label] = result
    except Exception as exc:
        _answer({"error": _said(exc)})
        return
    _answer({"models": models})
