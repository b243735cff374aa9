# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The fixture load (the database part of a restore), inside the backend container.

Entry point main: the request is argv[1] (the host's _deployment/load.py documents
it and the report); the report is one JSON object after REPORT_MARKER, the
last line of standard error, and the exit code is non-zero on a failure.
"""

import contextlib
import hashlib
import io
import json
import os
import re
import resource
import select
import stat
import sys
import time

from ansible_collections.edms.backup.plugins.module_utils._backend.counts import compare_counts
from ansible_collections.edms.backup.plugins.module_utils._backend.digest import (
    PK_DIGEST_SQL,
    digest_text,
    halves_total,
    key_hash,
    pk_digest,
)
from ansible_collections.edms.backup.plugins.module_utils._backend.loader import (
    BatchLoader,
    describe,
    scrubbed_traceback,
)
from ansible_collections.edms.backup.plugins.module_utils._backend.setup import (
    choose_settings,
    use_database,
)
from ansible_collections.edms.backup.plugins.module_utils._backend.tables import (
    holds_data,
    relations,
)

REPORT_MARKER = "EDMS-RESTORE-REPORT "

# FAULT INJECTION for the tests of the one-transaction invariant only: the
# request's "fail_at" raises RuntimeError("injected failure at <stage>") after
# the TRUNCATE, after every object and deferred field is saved, after the
# counts matched, and as the last statement of the transaction.
FAIL_STAGES = ("empty", "load", "count_check", "before_commit")

# What the host sends after the fixture on the load's standard input, with
# the sha256 of the fixture's bytes: only once it read the archive's member
# to its end (a ZIP member's CRC-32 is checked there). A load that does not
# get it fails, and its transaction rolls back.
FIXTURE_END = b"EDMS-FIXTURE-END "
# How long the load waits for the next part of its input: a host that
# stopped sending fails the load (rolled back) instead of holding its locks.
INPUT_WAIT = 300
# A sha256 as the host writes it.
SHA256_TEXT = re.compile(r"[0-9a-f]{64}\Z")


def finish(report, code):
    sys.stderr.write(REPORT_MARKER + json.dumps(report) + "\n")
    sys.stderr.flush()
    raise SystemExit(code)


def fail(message, state):
    report = {"error": message, "stage": state["stage"]}
    if state.get("committing"):
        # The failure came as the transaction ended: it may have committed.
        report["outcome"] = "unknown"
    finish(report, 3)


def inject(request, stage):
    if request.get("fail_at") == stage:
        raise RuntimeError("injected failure at %s" % stage)


class SentFixture(io.RawIOBase):
    """The fixture as the host gives it: exactly `size` bytes of `source`
    (unbuffered), hashed as they are read; then finish(), which checks the
    end of the input (StreamedFixture, CopiedFixture) and the sha256 the
    archive's metadata lists (`expected`, when the request gives it)."""

    # The error of a source that ends early, with the bytes it lacks.
    SHORT = "the fixture ended %d bytes short of its size"

    def __init__(self, source, size, expected=None):
        super().__init__()
        self.source, self.left, self.expected = source, size, expected
        self.hash = hashlib.sha256()

    def readable(self):
        return True

    def _ready(self):
        """Before each read of the source."""

    def readinto(self, buffer):
        if self.left <= 0:
            return 0
        with memoryview(buffer) as view:
            part = view[: min(len(view), self.left)]
            self._ready()
            count = self.source.readinto(part)
            if not count:
                raise ValueError(self.SHORT % self.left)
            self.hash.update(part[:count])
        self.left -= count
        return count

    def finish(self):
        """Every byte read, the end of the input as its mode has it
        (confirm), and their sha256 the archive's. Raises ValueError
        otherwise."""
        if self.left:
            raise ValueError("the fixture was not read to its end (%d bytes left)" % self.left)
        digest = self.hash.hexdigest()
        self.confirm(digest)
        if self.expected is not None and digest != self.expected:
            raise ValueError(
                "the fixture received has sha256 %s; the archive's metadata says %s"
                % (digest, self.expected)
            )

    def confirm(self, digest):
        raise NotImplementedError


class StreamedFixture(SentFixture):
    """The load's standard input: the fixture, then the host's FIXTURE_END
    with the sha256 of what it sent, which the host sends only once it read
    the archive's member to its end. `wait` seconds without a byte fail the
    load (None: no wait, for a source that select cannot watch)."""

    SHORT = "the fixture sent ended %d bytes short of its size: the host did not send it whole"

    def __init__(self, source, size, expected=None, wait=INPUT_WAIT):
        super().__init__(source, size, expected)
        self.wait = wait

    def _ready(self):
        if self.wait is not None and not select.select([self.source], [], [], self.wait)[0]:
            raise ValueError(
                "no part of the fixture came for %d s: the host stopped sending it" % self.wait
            )

    def confirm(self, digest):
        expected_end = FIXTURE_END + digest.encode("ascii") + b"\n"
        end = b""
        while len(end) < len(expected_end):
            self._ready()
            part = self.source.read(len(expected_end) - len(end))
            if not part:
                break
            end += part
        if end != expected_end:
            raise ValueError(
                "the host did not confirm that it sent the fixture whole (it could not read"
                " the archive's fixture to its end, or the input was damaged)"
            )


class CopiedFixture(SentFixture):
    """A copy of the fixture the host put in the container (a file): no
    more than `size` bytes, and their sha256 the one of the bytes the host
    sent (`sent`)."""

    SHORT = "the fixture's copy in the container ended %d bytes short of its size"

    def __init__(self, source, size, sent, expected=None):
        super().__init__(source, size, expected)
        self.sent = sent

    def confirm(self, digest):
        if self.source.read(1):
            raise ValueError("the fixture's copy in the container is longer than the archive's")
        if digest != self.sent:
            raise ValueError(
                "the fixture's copy in the container has sha256 %s; the host sent %s"
                % (digest, self.sent)
            )


def open_fixture(request):
    """The fixture of the request: (SentFixture, its text). It is the load's
    standard input, or, given its ``path``, a copy in the container with the
    sha256 of what the host sent (``sent_sha256``)."""
    sent = request["fixture"]
    if sent.get("path"):
        sent_sha256 = sent.get("sent_sha256")
        if not (isinstance(sent_sha256, str) and SHA256_TEXT.match(sent_sha256)):
            raise ValueError(
                "the request names a copy of the fixture without the sha256 of the bytes"
                " the host sent"
            )
        # Not followed if a link, not waited on if a FIFO: only a regular
        # file is read. Closed with the load's process, as stdin is.
        fd = os.open(sent["path"], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ValueError("the fixture's copy in the container is not a regular file")
        source = os.fdopen(fd, "rb", buffering=0)
        raw = CopiedFixture(source, int(sent["size"]), sent_sha256, sent.get("sha256"))
    else:
        raw = StreamedFixture(sys.stdin.buffer.raw, int(sent["size"]), sent.get("sha256"))
    # utf-8-sig: a byte order mark at the start is not part of the text.
    text = io.TextIOWrapper(io.BufferedReader(raw, 1 << 20), encoding="utf-8-sig")
    return raw, text


def read_objects(handle, state):
    """The fixture's objects from its text: one per line if it has our
    layout, else the whole text."""
    first = handle.readline()
    consumed = [first]
    if first.strip() == "[":
        number = 1
        for line in handle:
            number += 1
            text = line.strip()
            if not text:
                consumed.append(line)
                continue
            if text == "]":
                if handle.read().strip():
                    raise ValueError("the fixture has text after its closing ']'")
                return
            if text.endswith(","):
                text = text[:-1]
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                if state["read"] == 0:
                    consumed.append(line)
                    break  # not one object per line: read it whole below
                raise ValueError(
                    "fixture line %d is not one JSON object, in a fixture that "
                    "started with one object per line" % number
                )
            state["read"] += 1
            yield obj
        else:
            raise ValueError("the fixture ends without its closing ']'")
    state["streamed"] = False
    objects = json.loads("".join(consumed) + handle.read())
    del consumed
    if not isinstance(objects, list):
        raise ValueError("the fixture is not a JSON array")
    for obj in objects:
        state["read"] += 1
        yield obj


def load_all(loader, objects, fixture_keys, allowed, using):
    """Every object through the loader, then what it deferred; fixture_keys
    gets the count and key digest of each model's objects."""
    from django.db import router

    for number, obj in enumerate(objects, 1):
        if not isinstance(obj, dict) or "model" not in obj:
            raise ValueError("fixture object %d is not an object with a model" % number)
        table = loader.table(obj["model"])
        model = table.model
        if model not in allowed:
            if not router.allow_migrate_model(using, model):
                raise RuntimeError("the router refuses %s here" % model._meta.label)
            allowed.add(model)
        entry = fixture_keys.setdefault(model._meta.label_lower, [0, 0, None])
        entry[0] += 1
        pk = obj.get("pk")
        entry[1] += key_hash(pk)
        if isinstance(pk, int) and (entry[2] is None or pk > entry[2]):
            entry[2] = pk
        table.add(obj)
    loader.finish()


def setup_for_restore(request, state):
    """Django set up with the restore marker (see the host's _deployment/load.py), or the
    program ended with the reason."""
    if not choose_settings(request):
        fail(request["settings_source"], state)
    if request.get("fail_at") not in (None, *FAIL_STAGES):
        fail("unknown fail_at stage: %s" % request["fail_at"], state)
    os.environ["EDMS_RESTORE_IN_PROGRESS"] = "1"
    from django.conf import settings

    use_database(request)
    settings.EDMS_RESTORE_IN_PROGRESS = True

    import django

    django.setup()


def emptied_models(keep, expected, reset, using):
    """The models whose tables the load empties: those the archive holds
    (expected) and those listed as reset on restore, if they hold data of
    their own (_backend/tables.py) and are not kept. A table the archive
    does not hold is never emptied unless it is listed as reset: an archive
    whose dump left a model out (by choice, or made before that model was
    kept) leaves its rows as they are."""
    from django.apps import apps
    from django.db import router

    base_tables, views = relations(using)
    return [
        m
        for m in apps.get_models(include_auto_created=True)
        if holds_data(m, base_tables, views)
        and (m._meta.label_lower in expected or m._meta.label_lower in reset)
        and m._meta.label_lower not in keep
        and router.allow_migrate_model(using, m)
    ]


def resolve_reset(labels, state):
    """The reset labels (lower case) of installed models; an unknown one fails
    the load before anything changed. None: sessions.session when installed."""
    from django.apps import apps

    known = {m._meta.label_lower for m in apps.get_models(include_auto_created=True)}
    if labels is None:
        return {"sessions.session"} & known
    unknown = sorted({str(label).lower() for label in labels} - known)
    if unknown:
        fail(
            "reset_models names models this application does not have: %s" % ", ".join(unknown),
            state,
        )
    return {str(label).lower() for label in labels}


# Foreign keys between tables of the search path: (referencing, referenced).
REFERENCES_SQL = (
    "SELECT DISTINCT s.relname, t.relname FROM pg_constraint c"
    " JOIN pg_class s ON s.oid = c.conrelid JOIN pg_class t ON t.oid = c.confrelid"
    " WHERE c.contype = 'f' AND pg_table_is_visible(s.oid) AND pg_table_is_visible(t.oid)"
)


def referencing_tables(cursor, connection, emptied):
    """Tables left as they are that refer to an emptied one: those that hold
    no row are emptied with them (TRUNCATE needs every referencing table;
    emptying an empty table changes nothing); one that holds rows fails the
    load before anything changed, since its rows would lose what they refer to.
    Returns the extra (empty) tables to TRUNCATE."""
    from django.apps import apps

    tables = {m._meta.db_table for m in emptied}
    cursor.execute(REFERENCES_SQL)
    quote = connection.ops.quote_name
    referencing = {}
    for source, target in cursor.fetchall():
        if target in tables and source not in tables:
            referencing.setdefault(source, set()).add(target)
    extra, holding = [], []
    every = apps.get_models(include_auto_created=True)
    models = {m._meta.db_table: m._meta.label_lower for m in every}
    for table in sorted(referencing):
        cursor.execute("SELECT EXISTS (SELECT 1 FROM %s)" % quote(table))
        if cursor.fetchone()[0]:
            holding.append(
                "%s (%s) refers to %s"
                % (
                    models.get(table, "no model"),
                    table,
                    ", ".join(sorted(referencing[table])),
                )
            )
        else:
            extra.append(table)
    if holding:
        raise RuntimeError(
            "the archive does not hold these tables, which refer to tables the restore "
            "replaces: %s. Their rows would be left pointing at replaced rows, so nothing "
            "was changed. List their models in reset_models (restore_reset_models) to "
            "empty them in the restore (their rows are lost), or restore an archive "
            "that holds them" % "; ".join(holding)
        )
    return extra


def empty(cursor, connection, emptied, extra=()):
    """One TRUNCATE of every emptied table but django_migrations, and of the
    extra (empty, referencing) tables."""
    tables = sorted(({m._meta.db_table for m in emptied} | set(extra)) - {"django_migrations"})
    if tables:
        cursor.execute(
            "TRUNCATE %s RESTART IDENTITY" % ", ".join(connection.ops.quote_name(t) for t in tables)
        )


# The sequence of every emptied table with an integer key the database
# numbers is set halfway to its maximum for the load: a row that a receiver
# which ignores raw=True writes during the load takes a number there, never
# one of the fixture's, and is removed before the counts are compared
# (remove_written_by_receivers). The fixture's own rows keep their keys.
# Half the column type's maximum (a sequence may allow more than its column),
# for an ascending sequence only.
PARK_SQL = (
    "SELECT setval(s, least(q.seqmax, t.top) / 2, false)"
    " FROM pg_get_serial_sequence(%s, %s) AS s"
    " JOIN pg_sequence q ON q.seqrelid = s::regclass"
    " CROSS JOIN (SELECT CASE %s WHEN 'smallint' THEN 32767 WHEN 'integer' THEN 2147483647"
    " ELSE 9223372036854775807 END AS top) AS t"
    " WHERE q.seqincrement > 0"
)


def park_sequences(cursor, connection, emptied):
    """{label: (model, first number of the parked sequence)} of the emptied
    models (not the auto-created m2m tables, whose rows the load numbers)
    whose integer primary key has a sequence."""
    from django.db.models import AutoField, BigAutoField, SmallAutoField

    parked = {}
    for model in emptied:
        pk = model._meta.pk
        if model._meta.auto_created or not isinstance(
            pk, (AutoField, BigAutoField, SmallAutoField)
        ):
            continue
        # The table's name is parsed as SQL (a mixed-case name must be
        # quoted), the column's is taken as it is.
        cursor.execute(
            PARK_SQL,
            [
                connection.ops.quote_name(model._meta.db_table),
                pk.column,
                pk.db_type(connection).split(" ")[0],
            ],
        )
        row = cursor.fetchone()
        if row is not None:
            parked[model._meta.label_lower] = (model, row[0])
    return parked


def remove_written_by_receivers(cursor, connection, parked, fixture_keys):
    """Remove the rows the parked sequences numbered during the load: rows a
    signal receiver wrote (the load writes the fixture's keys, and no other
    session can write a table emptied in this transaction). A model whose
    fixture holds a key as high is left alone (its count check says so).
    {label: rows removed}."""
    removed = {}
    for label, (model, start) in sorted(parked.items()):
        highest = (fixture_keys.get(label) or (0, 0, None))[2]
        if highest is not None and highest >= start:
            continue
        cursor.execute(
            "DELETE FROM %s WHERE %s >= %%s"
            % (
                connection.ops.quote_name(model._meta.db_table),
                connection.ops.quote_name(model._meta.pk.column),
            ),
            [start],
        )
        if cursor.rowcount:
            removed[label] = cursor.rowcount
    return removed


# The foreign keys between the emptied tables that the load drops and adds
# again once every row is in (as pg_restore adds them after its data):
# adding one checks every row in one query, where a deferred key checks each
# row written, one by one, at the end. Only keys from an emptied table to an
# emptied table (the TRUNCATE holds both already: no table the restore keeps
# is locked by dropping or adding one), validated, of their table's own (not
# inherited, not of a partition), of tables the load's role owns; any other
# key stays and is checked at the end as before.
FOREIGN_KEYS_SQL = (
    # The statements made by the server: names quoted by format()'s %I and by
    # regclass (qualified when not on the search path), the definition as
    # the server gives it back.
    "SELECT format('ALTER TABLE %%s DROP CONSTRAINT %%I', c.conrelid::regclass, c.conname),"
    " format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', c.conrelid::regclass, c.conname,"
    " pg_get_constraintdef(c.oid))"
    " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
    " JOIN pg_class r ON r.oid = c.confrelid"
    " WHERE c.contype = 'f' AND c.convalidated AND c.conparentid = 0 AND c.coninhcount = 0"
    " AND t.relkind = 'r' AND NOT t.relispartition AND pg_table_is_visible(t.oid)"
    " AND t.oid = ANY(%s::regclass[]) AND r.oid = ANY(%s::regclass[])"
    " AND pg_has_role(t.relowner, 'USAGE') AND pg_has_role(r.relowner, 'USAGE')"
    " ORDER BY t.relname, c.conname"
)


def drop_foreign_keys(cursor, connection, tables):
    """Drop the foreign keys between tables (names) that FOREIGN_KEYS_SQL
    chooses; the statements that add them again (add_foreign_keys)."""
    if not tables:
        return []
    names = [connection.ops.quote_name(t) for t in sorted(tables)]
    cursor.execute(FOREIGN_KEYS_SQL, [names, names])
    chosen = cursor.fetchall()
    for drop, _add in chosen:
        cursor.execute(drop)
    return [add for _drop, add in chosen]


def add_foreign_keys(cursor, dropped):
    """Add the keys drop_foreign_keys dropped, as they were; each checks every
    row of its table (a row that refers to nothing fails the load)."""
    for add in dropped:
        cursor.execute(add)


def reset_sequences(cursor, connection, models):
    from django.core.management.color import no_style

    for sql in connection.ops.sequence_reset_sql(
        no_style(), sorted(models, key=lambda m: m._meta.label)
    ):
        cursor.execute(sql)


def check_counts(counted, expected, m2m_tables, using):
    """The rows of every counted model; raises when they differ from expected."""
    found = {
        label: model._base_manager.using(using).count() for label, model in sorted(counted.items())
    }
    differences = compare_counts(expected, found, m2m_tables)
    if differences:
        raise RuntimeError(
            "the counts after the load differ from the archive's: "
            + "; ".join(
                "%s expected %s, found %s" % (d["model"], d["expected"], d["found"])
                for d in differences
            )
        )
    return found


# Key fields whose value's str() is the column's text in PostgreSQL (digest.py).
TEXT_KEYS = (
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
    "UUIDField",
    "CharField",
    "TextField",
    "SlugField",
)


def server_digest(connection, model):
    """Whether PostgreSQL can sum model's keys (PK_DIGEST_SQL): a key of one of
    Django's own TEXT_KEYS types (a one-to-one parent link by its target's),
    on PostgreSQL 11 or later, of a model whose base manager is Django's own
    (every row of its table)."""
    from django.db import models

    if connection.vendor != "postgresql" or (connection.pg_version or 0) < 110000:
        return False
    # Its base manager Django's own: Meta.base_manager_name, a model's or
    # (for a child or a proxy) its parent's, may name one that filters.
    manager = model._base_manager
    if type(manager) is not models.Manager or not getattr(manager, "auto_created", False):  # pylint: disable=unidiomatic-typecheck
        return False
    field = model._meta.pk
    while type(field) in (models.OneToOneField, models.ForeignKey):
        if field.target_field is field:
            return False
        field = field.target_field
    kinds = tuple(getattr(models, name) for name in TEXT_KEYS if hasattr(models, name))
    return type(field) in kinds  # pylint: disable=unidiomatic-typecheck


# The column types whose text is str() of what psycopg2 reads from them (not,
# say, char(n), whose text drops the padding its value keeps).
TEXT_KEY_TYPES = ("int2", "int4", "int8", "uuid", "varchar", "text")

COLUMN_TYPE_SQL = (
    "SELECT t.typname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t"
    " ON t.oid = a.atttypid WHERE a.attrelid = %s::regclass AND a.attname = %s"
    " AND NOT a.attisdropped AND t.typnamespace = 'pg_catalog'::regnamespace"
)


def column_summable(cursor, table, column):
    """Whether the column's type in the database is one of TEXT_KEY_TYPES."""
    cursor.execute(COLUMN_TYPE_SQL, [table, column])
    found = cursor.fetchone()
    return found is not None and found[0] in TEXT_KEY_TYPES


def check_identities(by_label, fixture_keys, expected, m2m_tables, using, cursor=None):
    """Every object kept its primary key (UUIDs included); raises when not.
    The database's side is summed by PostgreSQL where it can (server_digest,
    a column of TEXT_KEY_TYPES), else here from every key. Returns {label:
    (database's, fixture's)}, and how many models the server summed."""
    from django.db import connections

    connection = connections[using]
    identities, by_server = {}, 0
    for label in sorted(set(fixture_keys) | (set(expected) - m2m_tables)):
        if label not in by_label:
            continue
        model = by_label[label]
        quote = connection.ops.quote_name
        if (
            cursor is not None
            and server_digest(connection, model)
            and column_summable(cursor, quote(model._meta.db_table), model._meta.pk.column)
        ):
            cursor.execute(
                PK_DIGEST_SQL.format(
                    column=quote(model._meta.pk.column), table=quote(model._meta.db_table)
                )
            )
            count, hi_sum, hi_negative, lo_sum, lo_negative = cursor.fetchone()
            database = digest_text(count, halves_total(hi_sum, hi_negative, lo_sum, lo_negative))
            by_server += 1
        else:
            keys = model._base_manager.using(using).values_list("pk", flat=True)
            database = pk_digest(keys.iterator(chunk_size=5000))
        identities[label] = (database, digest_text(*fixture_keys.get(label, (0, 0))[:2]))
    differ = sorted(label for label, (db, fx) in identities.items() if db != fx)
    if differ:
        raise RuntimeError(
            "after the load the primary keys (UUIDs included) of %s "
            "differ from the fixture's" % ", ".join(differ)
        )
    return identities, by_server


def load(request, state):
    """The whole load in one transaction; the report's fields."""
    from django.apps import apps
    from django.db import DEFAULT_DB_ALIAS, connections, transaction

    using = DEFAULT_DB_ALIAS
    connection = connections[using]
    keep = {label.lower() for label in request.get("keep_tables_of") or []}
    m2m_tables = set(request.get("m2m_tables") or [])
    expected = request.get("expected") or {}

    reset = resolve_reset(request.get("reset_models"), state)
    emptied = emptied_models(keep, expected, reset, using)
    by_label = {m._meta.label_lower: m for m in apps.get_models(include_auto_created=True)}
    unknown = sorted(label for label in expected if label not in by_label)
    if unknown:
        fail("the fixture's models are not in this application: %s" % ", ".join(unknown), state)

    # Opened before the transaction: a copy that cannot be read fails the
    # load before anything is emptied.
    sent, text = open_fixture(request)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        state["stage"] = "empty"
        extra = referencing_tables(cursor, connection, emptied)
        empty(cursor, connection, emptied, extra)
        parked = park_sequences(cursor, connection, emptied)
        dropped = drop_foreign_keys(
            cursor, connection, {m._meta.db_table for m in emptied} | set(extra)
        )
        inject(request, "empty")

        state["stage"] = "load"
        loader = BatchLoader(connection, using, apps)
        fixture_keys, allowed = {}, set()
        try:
            load_all(loader, read_objects(text, state), fixture_keys, allowed, using)
        finally:
            loader.close()  # before the transaction ends, whatever happened
        # Before anything is checked or committed: the host sent all of it.
        sent.finish()
        objects = sum(entry[0] for entry in fixture_keys.values())
        loaded_models = {t.model for t in loader.tables.values() if t.count}
        inject(request, "load")
        written_by_receivers = remove_written_by_receivers(cursor, connection, parked, fixture_keys)
        # Foreign keys are checked here, inside the transaction: the deferred
        # ones all at once (which also empties the queue of their pending
        # checks, without which no table that has some can be altered), then
        # those dropped as they are added again.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        add_foreign_keys(cursor, dropped)
        reset_sequences(cursor, connection, set(loaded_models) | set(emptied))

        state["stage"] = "count_check"
        counted = {m._meta.label_lower: m for m in emptied}
        counted.update({label: by_label[label] for label in expected})
        found = check_counts(counted, expected, m2m_tables, using)
        identities, by_server = check_identities(
            by_label, fixture_keys, expected, m2m_tables, using, cursor
        )
        inject(request, "count_check")

        state["stage"] = "commit"
        inject(request, "before_commit")
        database = connection.settings_dict["NAME"]
        # Past this line the transaction commits as the blocks end: a failure
        # there leaves it unknown whether it did.
        state["committing"] = True
    # Committed: closing the connection changes nothing of it.
    with contextlib.suppress(Exception):
        connection.close()
    return {
        "objects": objects,
        "counts": found,
        "database": database,
        "identities": {
            "models": len(identities),
            "summed_by_the_server": by_server,
            "objects": objects,
            "equal": True,
        },
        "written_by_receivers": written_by_receivers,
        "foreign_keys_added_again": len(dropped),
    }


def main():
    started = time.monotonic()
    request = json.loads(sys.argv[1])
    state = {"stage": "setup", "streamed": True, "read": 0}
    try:
        setup_for_restore(request, state)
        loaded = load(request, state)
    except SystemExit:
        raise
    except BaseException as exc:
        sys.stderr.write(scrubbed_traceback(exc))
        fail("%s: %s" % (type(exc).__name__, describe(exc)), state)
    finish(
        {
            "objects": loaded["objects"],
            "counts": loaded["counts"],
            "seconds": round(time.monotonic() - started, 3),
            "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "streamed": state["streamed"],
            "database": loaded["database"],
            "identities": loaded["identities"],
            "written_by_receivers": loaded["written_by_receivers"],
            "foreign_keys_added_again": loaded["foreign_keys_added_again"],
        },
        0,
    )
