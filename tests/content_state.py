# The deployment's content, printed as one JSON object: a digest of every
# table of the application's data and the sha256 of every media file. Run in
# the backend (python -c) by the integration tests and the Molecule scenarios.
#
# Tables that migrate fills (content types, permissions, migrations) and
# sessions are not in a backup; the admin log is (audit evidence). Auto-created m2m tables are
# compared by their pairs: their own id column is a surrogate that fixtures
# (Django's and ours) do not carry and nothing references.
import hashlib
import json
import os

import django

django.setup()
from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

tables = {}
with connection.cursor() as cursor:
    for m in apps.get_models(include_auto_created=True):
        if m._meta.app_label in {"contenttypes", "sessions"}:
            continue
        if m._meta.label == "auth.Permission":
            continue
        columns = [
            f.column for f in m._meta.local_fields if not (m._meta.auto_created and f.primary_key)
        ]
        row = "row({})::text".format(", ".join(f'"{c}"' for c in columns))
        cursor.execute(
            f"SELECT count(*), md5(coalesce(string_agg({row}, chr(10) ORDER BY {row}), ''))"
            f' FROM "{m._meta.db_table}"'
        )
        tables[m._meta.db_table] = list(cursor.fetchone())
media = {}
for directory, dirs, files in os.walk(settings.MEDIA_ROOT):
    dirs[:] = [d for d in dirs if not d.startswith(".edms-restore-")]
    for name in files:
        path = os.path.join(directory, name)
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        media[os.path.relpath(path, settings.MEDIA_ROOT)] = digest
print(json.dumps({"tables": tables, "media": media}, sort_keys=True))
