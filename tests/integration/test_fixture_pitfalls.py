"""What a hand-made dumpdata/loaddata round trip keeps and loses.

These tests document the pitfalls that the collection's archive format avoids:
primary keys survive only without --natural-primary, and stock JSON fixtures
cut timestamps to milliseconds.
"""

import pytest

from .conftest import backend, db_sql, django_json, manage

EXCLUDES = ["-e", "contenttypes", "-e", "auth.permission", "-e", "sessions", "-e", "admin.logentry"]

SNAPSHOT = """
from django.apps import apps
rows = {}
for model in apps.get_models(include_auto_created=True):
    meta = model._meta
    if meta.app_label in ("contenttypes", "sessions", "admin") or meta.label == "auth.Permission":
        continue
    pks = model._base_manager.values_list("pk", flat=True)
    rows[meta.label_lower] = sorted(str(pk) for pk in pks)
from apps.documents.models import Document
stamps = {str(d.pk): d.created_at.isoformat() for d in Document._base_manager.all()}
print(json.dumps({"pks": rows, "document_created_at": stamps}))
"""


@pytest.fixture
def round_trip(stack):
    """Dump the live database with the given flags, load it into a fresh one."""
    made = []

    def run(*flags):
        name = f"edms_roundtrip_{len(made)}"
        path = f"/tmp/{name}.json"
        made.append((name, path))
        manage("dumpdata", "--natural-foreign", "--all", *flags, *EXCLUDES, "-o", path)
        db_sql(f"DROP DATABASE IF EXISTS {name}", database="postgres")
        db_sql(f"CREATE DATABASE {name}", database="postgres")
        env = {"POSTGRES_DB": name}
        manage("migrate", "--noinput", env=env)
        manage("flush", "--noinput", env=env)
        out = manage("loaddata", path, env=env).stdout
        assert "Installed" in out, out
        assert "(of" not in out, out  # "Installed X object(s) (of Y)": some were skipped
        return django_json(SNAPSHOT, env=env)

    yield run
    for name, path in made:
        db_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", database="postgres")
        backend("rm", "-f", path)


def test_natural_foreign_keys_with_real_primary_keys_restore_every_row(round_trip):
    source = django_json(SNAPSHOT)
    restored = round_trip()
    assert restored["pks"] == source["pks"]
    assert len(restored["pks"]["documents.document"]) == 60


def test_natural_primary_keys_give_uuid_rows_new_identities(round_trip):
    source = django_json(SNAPSHOT)
    restored = round_trip("--natural-primary")
    # Same number of rows, but models with a natural key and a UUID primary
    # key got new UUIDs: anything that stored the old one now points nowhere.
    label = "backup.backupconfiguration"
    assert len(restored["pks"][label]) == len(source["pks"][label]) > 0
    assert not set(restored["pks"][label]) & set(source["pks"][label])


def test_stock_json_fixtures_cut_timestamps_to_milliseconds(round_trip):
    source = django_json(SNAPSHOT)["document_created_at"]
    restored = round_trip()["document_created_at"]
    assert restored.keys() == source.keys()
    changed = [pk for pk in source if source[pk] != restored[pk]]
    # The seed writes microseconds; the stock encoder keeps three digits of them.
    assert changed, "expected dumpdata's JSON encoder to drop microseconds"
    assert all(restored[pk][:23] == source[pk][:23] for pk in changed)
