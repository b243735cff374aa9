# Model shapes the demo application does not have, each loaded by the
# restore's batch loader (_backend/loader.py BatchLoader) and compared row by row with what
# was dumped. Run in the backend (python -c) by tests/integration/test_load.py
# against a scratch database (POSTGRES_DB), with the text of
# a program that makes _backend/loader.py importable (_platform/django.py with_backend)
# as argv[1]. Prints one JSON object:
# {shape: "ok" or the error}.
#
# The models are made at run time in the documents app (so that the loader's
# apps.get_model finds them) with tables of their own (probe_*), created here
# and left to the scratch database's drop. Each shape's objects are serialized
# with natural foreign keys, as the backup's dump writes them, its tables are
# emptied, and the loader writes them back in one transaction, as a restore
# does.
import datetime
import decimal
import json
import sys
import threading
import uuid

import django
import psycopg2

django.setup()
from django.apps import apps  # noqa: E402
from django.contrib.postgres.fields import ArrayField  # noqa: E402
from django.core import serializers  # noqa: E402
from django.db import DEFAULT_DB_ALIAS, connection, models, transaction  # noqa: E402

exec(sys.argv[1], {})
from ansible_collections.edms.backup.plugins.module_utils._backend import loader  # noqa: E402

BatchLoader = loader.BatchLoader
# Small batches: every shape crosses batch boundaries, and a model's batch is
# written while the models before it still have rows pending.
loader.BATCH = 3


class ByName(models.Manager):
    def get_by_natural_key(self, name):
        return self.get(name=name)


def model(name, fields, natural_key=None, manager=None):
    attrs = {
        "__module__": __name__,
        "Meta": type("Meta", (), {"app_label": "documents", "db_table": "probe_" + name.lower()}),
        **fields,
    }
    if natural_key is not None:
        attrs["natural_key"] = natural_key
        attrs["objects"] = manager or ByName()
    return type("Probe" + name, (models.Model,), attrs)


# A GeneratedField: the serializer writes its value, the database computes it.
Sum = model(
    "Sum",
    {
        "a": models.IntegerField(),
        "b": models.IntegerField(),
        "total": models.GeneratedField(
            expression=models.F("a") + models.F("b"),
            output_field=models.IntegerField(),
            db_persist=True,
        ),
    },
)

# A self-referencing m2m by natural key, the model's last object naming itself
# and an earlier one.
Node = model(
    "Node",
    {
        "name": models.CharField(max_length=20, unique=True),
        "links": models.ManyToManyField("self", symmetrical=False),
    },
    natural_key=lambda self: (self.name,),
)

# An m2m by natural key to a model whose primary key is a OneToOne.
Person = model(
    "Person",
    {"name": models.CharField(max_length=20, unique=True)},
    natural_key=lambda self: (self.name,),
)


class ByCode(models.Manager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


Profile = model(
    "Profile",
    {
        "person": models.OneToOneField(Person, models.CASCADE, primary_key=True),
        "code": models.CharField(max_length=20, unique=True),
    },
    natural_key=lambda self: (self.code,),
    manager=ByCode(),
)
Team = model(
    "Team",
    {"name": models.CharField(max_length=20), "profiles": models.ManyToManyField(Profile)},
)

# A natural key whose lookup joins another model: both have rows not written yet.
Group = model("Group", {"name": models.CharField(max_length=20, unique=True)})


class ByGroupAndName(models.Manager):
    def get_by_natural_key(self, group, name):
        return self.get(group__name=group, name=name)


Member = model(
    "Member",
    {
        "group": models.ForeignKey(Group, models.CASCADE),
        "name": models.CharField(max_length=20),
    },
    natural_key=lambda self: (self.group.name, self.name),
    manager=ByGroupAndName(),
)
Badge = model("Badge", {"member": models.ForeignKey(Member, models.CASCADE)})

# A pre_save receiver that changes the instance of a raw save (loaddata's):
# what it set is what the save stores.
Stamp = model("Stamp", {"name": models.CharField(max_length=20)})


def upper_when_raw(sender, instance, raw=False, **kwargs):
    if raw:
        instance.name = instance.name.upper()


models.signals.pre_save.connect(upper_when_raw, sender=Stamp)

# A post_save receiver (raw) that reads another model: every object before its
# own in the fixture is written when it runs, as under loaddata, though that
# model's last batch is not full.
Parent = model("Parent", {"name": models.CharField(max_length=20)})
Child = model("Child", {"parent": models.ForeignKey(Parent, models.CASCADE)})
parents_seen = []


def count_parents(sender, instance, raw=False, **kwargs):
    if raw:
        parents_seen.append(Parent.objects.count())


models.signals.post_save.connect(count_parents, sender=Child)

# Values of every type the load writes with COPY, and text that COPY's
# format escapes: the rows must come back as they were dumped.
Typed = model(
    "Typed",
    {
        "text": models.TextField(),
        "data": models.BinaryField(),
        "amount": models.DecimalField(max_digits=12, decimal_places=4, null=True),
        "ratio": models.FloatField(),
        "span": models.DurationField(),
        "day": models.DateField(),
        "at": models.TimeField(),
        "when": models.DateTimeField(),
        "uid": models.UUIDField(),
        "meta": models.JSONField(),
        "flag": models.BooleanField(null=True),
        "count": models.PositiveIntegerField(),
    },
)
# A value COPY's text is not written for (a list): its batch is an INSERT.
Arrayed = model(
    "Arrayed", {"numbers": ArrayField(models.IntegerField()), "name": models.TextField()}
)

# Keys of every kind PostgreSQL sums for the load's identity check
# (_backend/load.py server_digest): a UUID, text (tabs, backslashes, non-ASCII),
# negative integers, a multi-table child (keyed by its parent link to a text
# key). Checked against the keys' own digest (_backend/digest.py pk_digest).
KeyedUuid = model("KeyedUuid", {"id": models.UUIDField(primary_key=True)})
KeyedText = model("KeyedText", {"code": models.CharField(max_length=40, primary_key=True)})
KeyedNumber = model("KeyedNumber", {"number": models.IntegerField(primary_key=True)})
KeyedChild = type(
    "ProbeKeyedChild",
    (KeyedText,),
    {
        "__module__": __name__,
        "Meta": type("Meta", (), {"app_label": "documents", "db_table": "probe_keyedchild"}),
        "note": models.CharField(max_length=20, default=""),
    },
)
KEYED = [KeyedUuid, KeyedText, KeyedNumber, KeyedChild]
# A text key on a char(n) column (its table made so below): its text drops the padding
# its value keeps, so the server must not sum it.
KeyedPadded = model("KeyedPadded", {"code": models.CharField(max_length=10, primary_key=True)})


# A base manager that filters, named by a parent: its child inherits it, so
# neither's keys are summed by the server (which reads every row of a table).
class OnlyLive(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(live=True)


FilteredParent = type(
    "ProbeFilteredParent",
    (models.Model,),
    {
        "__module__": __name__,
        "live": models.BooleanField(default=True),
        "objects": models.Manager(),
        "only_live": OnlyLive(),
        "Meta": type(
            "Meta",
            (),
            {
                "app_label": "documents",
                "db_table": "probe_filteredparent",
                "base_manager_name": "only_live",
            },
        ),
    },
)
FilteredChild = type(
    "ProbeFilteredChild",
    (FilteredParent,),
    {
        "__module__": __name__,
        "Meta": type("Meta", (), {"app_label": "documents", "db_table": "probe_filteredchild"}),
    },
)

# UUIDs as text: a UUID primary key, a foreign key to it and a UUIDField,
# which the load writes as the fixture gives them (plain_type), and, in
# another spelling (upper case, no hyphens), through the fields' own
# conversions: both give the same rows.
Folder = model(
    "Folder",
    {"id": models.UUIDField(primary_key=True), "name": models.CharField(max_length=20)},
)
Sheet = model(
    "Sheet",
    {
        "folder": models.ForeignKey(Folder, models.CASCADE, null=True),
        "ref": models.UUIDField(null=True),
    },
)

SHAPES = {
    "generated_field": [Sum],
    "self_m2m_by_natural_key": [Node],
    "m2m_by_natural_key_to_a_one_to_one_pk": [Person, Profile, Team],
    "natural_key_that_joins_pending_rows": [Group, Member, Badge],
    "pre_save_change_is_stored": [Stamp],
    "receivers_see_every_earlier_object": [Parent, Child],
    "copy_writes_every_type_as_it_was": [Typed],
    "a_value_copy_does_not_write_goes_as_an_insert": [Arrayed],
    "uuids_are_written_as_text_or_converted": [Folder, Sheet],
}

# The BatchLoader of the last shape loaded.
loaded = {}

# {label: ["COPY" or "INSERT", ...]}: the statements the writer was given.
statements = {}
_submit = loader.Writer.submit


def noting_submit(self, item):
    statements.setdefault(item[3], []).append(item[0].split(" ", 1)[0])
    return _submit(self, item)


loader.Writer.submit = noting_submit


def written_by(label, kind):
    def check():
        seen = set(statements.get(label, []))
        if seen != {kind}:
            return f"{label} was written by {sorted(seen)}, not by {kind} alone"
        return None

    return check


def uuids_taken_as_text():
    """The load of the shape took Sheet's UUIDs as text (plain_type), in their
    serializers' spelling only."""
    table = loaded["loader"].tables["documents.probesheet"]
    for name in ("folder", "ref"):
        _attname, kind, check = table.plain.get(name, (None, None, None))
        if kind is not str:
            return f"{name} is not taken as text"
        if check("0" * 8 + "-0000-0000-0000-" + "0" * 12) is None:
            return f"{name} does not take a UUID in the serializers' spelling"
        if check("0" * 32) or check("A" * 8 + "-0000-0000-0000-" + "0" * 12):
            return f"{name} takes a UUID in another spelling as text"
    return None


def all_parents_seen():
    if parents_seen != [5] * 5:
        return f"the receiver saw {parents_seen} parents, not 5 each time"
    return None


# What else must hold after the load: None, or what does not.
CHECKS = {
    "receivers_see_every_earlier_object": all_parents_seen,
    "copy_writes_every_type_as_it_was": written_by("documents.ProbeTyped", "COPY"),
    "uuids_are_written_as_text_or_converted": uuids_taken_as_text,
    "a_value_copy_does_not_write_goes_as_an_insert": written_by("documents.ProbeArrayed", "INSERT"),
}

# What the load must give, from what was dumped (by default the same rows).
EXPECT = {
    "pre_save_change_is_stored": lambda before: {
        "probe_stamp": [[pk, name.upper()] for pk, name in before["probe_stamp"]]
    },
}


def make():
    Sum.objects.create(a=1, b=2)
    Sum.objects.create(a=-5, b=5)
    first = Node.objects.create(name="first")
    second = Node.objects.create(name="second")
    last = Node.objects.create(name="last")
    first.links.set([second])
    last.links.set([first, last])
    ann, bob = Person.objects.create(name="ann"), Person.objects.create(name="bob")
    profiles = [
        Profile.objects.create(person=ann, code="A"),
        Profile.objects.create(person=bob, code="B"),
    ]
    Team.objects.create(name="both").profiles.set(profiles)
    for group_name in ("g1", "g2"):
        group = Group.objects.create(name=group_name)
        for name in ("m1", "m2"):
            Badge.objects.create(member=Member.objects.create(group=group, name=name))
    for name in ("one", "two"):
        Stamp.objects.create(name=name)
    for number in range(5):
        Parent.objects.create(name=f"p{number}")
    for parent in Parent.objects.order_by("pk"):
        Child.objects.create(parent=parent)
    tricky = ["tab\there", "lines\nand\r\nends", "back\\slash \\N \\.", "\\", "", "ünï ✓"]
    for number, text in enumerate(tricky):
        Typed.objects.create(
            text=text,
            data=bytes([0, 1, 92, 9, 10, 255, number]),
            amount=None if number == 2 else decimal.Decimal("-1.2345") * number,
            ratio=[1.5, float("inf"), float("-inf"), 1e-300, -0.0, 2.0**60][number],
            span=datetime.timedelta(days=-number, seconds=5, microseconds=7000),
            day=datetime.date(2024, 2, 29),
            at=datetime.time(23, 59, 58, 1000 * number),
            when=datetime.datetime(2024, 2, 29, 1, 2, 3, 4000, tzinfo=datetime.UTC)
            + datetime.timedelta(hours=number),
            uid=uuid.UUID(int=number),
            meta={"text": text, "list": [1, None, number], "nested": {"tab": "\t"}},
            flag=[True, False, None][number % 3],
            count=number,
        )
    for number in range(40):
        KeyedUuid.objects.create(id=uuid.UUID(int=(number * 2**121 + number) % 2**128))
        KeyedNumber.objects.create(number=(number - 20) * 99991)
    for text in ["tab\there", "back\\slash \\N", "ünï ✓", "", " lead", "Z"]:
        KeyedText.objects.create(code=text)
    for text in ["child ✓", "child\tb"]:
        KeyedChild.objects.create(code=text, note="n")
    for number in range(6):
        folder = Folder.objects.create(id=uuid.UUID(int=number * 7919 + 1), name=f"f{number}")
        Sheet.objects.create(folder=folder, ref=uuid.UUID(int=number * 104729 + 2))
    Sheet.objects.create(folder=None, ref=None)
    Arrayed.objects.create(numbers=[1, 2, 3], name="tab\tname")
    Arrayed.objects.create(numbers=[], name="none")
    parents_seen.clear()


def tables(models_):
    """Every table of the models, their auto-created m2m tables included."""
    found = []
    for m in models_:
        found.append(m)
        for field in m._meta.local_many_to_many:
            found.append(field.remote_field.through)
    return found


def rows(models_):
    with connection.cursor() as cursor:
        out = {}
        for m in tables(models_):
            table = connection.ops.quote_name(m._meta.db_table)
            # An m2m row's own id is not in the fixture: the load gives it a new one.
            fields = [
                f
                for f in m._meta.local_concrete_fields
                if not m._meta.auto_created or not f.primary_key
            ]
            columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
            cursor.execute(f"SELECT {columns} FROM {table} ORDER BY {columns}")
            out[m._meta.db_table] = [
                [bytes(v).hex() if isinstance(v, memoryview) else str(v) for v in row]
                for row in cursor.fetchall()
            ]
        return out


def load(shape, models_):
    objects = []
    for m in models_:
        objects.extend(m._base_manager.order_by("pk"))
    fixture = json.loads(serializers.serialize("json", objects, use_natural_foreign_keys=True))
    for obj in fixture:
        if obj["model"] == "documents.probesheet" and obj["fields"]["folder"] and obj["pk"] % 2:
            # Other spellings of the same UUIDs: through the fields' conversions.
            obj["fields"]["folder"] = obj["fields"]["folder"].upper()
            obj["fields"]["ref"] = obj["fields"]["ref"].replace("-", "")
    before = rows(models_)
    expected = EXPECT.get(shape, lambda rows: rows)(before)
    if shape in EXPECT and expected == before:
        return "the expected rows are the dumped ones: the shape checks nothing"
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
                names = [connection.ops.quote_name(m._meta.db_table) for m in tables(models_)]
                cursor.execute("TRUNCATE " + ", ".join(names))
            loader = loaded["loader"] = BatchLoader(connection, DEFAULT_DB_ALIAS, apps)
            try:
                for obj in fixture:
                    loader.table(obj["model"]).add(obj)
                loader.finish()
            finally:
                loader.close()
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            after = rows(models_)
            if after != expected:
                raise RuntimeError(f"rows differ: expected {expected}, loaded {after}")
            failed = CHECKS.get(shape, lambda: None)()
            if failed:
                raise RuntimeError(failed)
    except Exception as exc:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return "ok"


with connection.schema_editor() as editor:
    for shape_models in [*SHAPES.values(), KEYED]:
        for m in shape_models:
            editor.create_model(m)
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE probe_keyedpadded (code char(10) PRIMARY KEY)")
make()


def writer_without_a_cursor():
    """A writer thread that cannot open its cursor: sync() raises, it does not wait for ever."""
    raw = psycopg2.connect(**connection.get_connection_params())
    raw.close()
    writer = loader.Writer(raw)
    writer.start()
    outcome = []

    def write_and_sync():
        try:
            writer.submit(("SELECT 1", [], 1, "documents.ProbeSum"))
            writer.sync()
            outcome.append("sync() raised nothing")
        except RuntimeError as exc:
            outcome.append(str(exc))

    waiting = threading.Thread(target=write_and_sync, daemon=True)
    waiting.start()
    waiting.join(10)
    if waiting.is_alive():
        return "sync() still waits after 10 s"
    writer.stop()
    if not outcome[0].startswith("the writer stopped: connection already closed"):
        return outcome[0]
    return "ok"


def server_digest_is_the_keys_own():
    """PostgreSQL's sum of every probe model's keys (PK_DIGEST_SQL) is the one
    the keys give in Python (pk_digest), and every KEYED model is summed there."""
    from ansible_collections.edms.backup.plugins.module_utils._backend import digest
    from ansible_collections.edms.backup.plugins.module_utils._backend import load as program

    summed = set()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for m in [m for shape_models in SHAPES.values() for m in shape_models] + KEYED:
            table, column = quote(m._meta.db_table), quote(m._meta.pk.column)
            if not program.server_digest(connection, m) or not program.column_summable(
                cursor, table, m._meta.pk.column
            ):
                continue
            cursor.execute(digest.PK_DIGEST_SQL.format(column=column, table=table))
            count, *sums = cursor.fetchone()
            server = digest.digest_text(count, digest.halves_total(*sums))
            own = digest.pk_digest(m._base_manager.values_list("pk", flat=True))
            if server != own or count == 0:
                return f"{m._meta.label}: the server's sum {server}, the keys' own {own}"
            summed.add(m)
    missing = [m._meta.label for m in KEYED if m not in summed]
    if missing:
        return f"not summed by the server: {missing}"
    with connection.cursor() as cursor:
        if program.column_summable(cursor, quote("probe_keyedpadded"), "code"):
            return "a char(n) key would be summed by the server"
    for m in (FilteredParent, FilteredChild):
        if program.server_digest(connection, m):
            return f"{m._meta.label}, whose base manager filters, would be summed by the server"
    return "ok"


results = {shape: load(shape, shape_models) for shape, shape_models in SHAPES.items()}
results["writer_without_a_cursor"] = writer_without_a_cursor()
results["server_digest_is_the_keys_own"] = server_digest_is_the_keys_own()
print(json.dumps(results))
