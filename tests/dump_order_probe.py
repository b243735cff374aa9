# A model whose primary key is a OneToOne to a model ordered by another field
# (Meta.ordering), with an m2m: the dump reads its rows and its m2m rows in
# step, by primary key. Run in the backend (python -c) by
# tests/integration/test_backup.py against a scratch database (POSTGRES_DB),
# with the dump's program (_deployment/dump.py dump_command) as argv[1] and its request as argv[2]:
# makes the models (at run time, in the documents app, tables probe_*) and
# their rows, then runs the dump itself, which writes the fixture to standard
# output and its report to standard error.
import sys

import django

django.setup()
from django.db import connection, models  # noqa: E402


def meta(name, **options):
    return type("Meta", (), {"app_label": "documents", "db_table": "probe_" + name, **options})


class ProbeTag(models.Model):
    name = models.CharField(max_length=20)
    Meta = meta("tag")


class ProbeOwner(models.Model):
    name = models.CharField(max_length=20)
    Meta = meta("owner", ordering=["-name"])


class ProbeCard(models.Model):
    owner = models.OneToOneField(ProbeOwner, models.CASCADE, primary_key=True)
    tags = models.ManyToManyField(ProbeTag)
    Meta = meta("card")


if "probe_card" not in connection.introspection.table_names():  # the first of the runs
    with connection.schema_editor() as editor:
        for model in (ProbeTag, ProbeOwner, ProbeCard):
            editor.create_model(model)
    tags = [ProbeTag.objects.create(name=f"t{n}") for n in range(3)]
    # Primary keys 1, 2, 3; by name descending (Meta.ordering) they come 3, 2, 1.
    for number, name in enumerate(("a", "b", "c")):
        card = ProbeCard.objects.create(owner=ProbeOwner.objects.create(name=name))
        card.tags.set(tags[: number + 1])

script, request = sys.argv[1:3]
sys.argv = [sys.argv[0], request]
exec(script, {"__name__": "__main__"})
