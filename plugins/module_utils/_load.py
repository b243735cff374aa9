# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The fixture load (the database part of a restore), run inside the backend container.

LOAD_SCRIPT is plain Python for the application's own interpreter (the
container gets no new packages). It replaces the content of a database with a
fixture of ours (docs/archive-format.md) and reports, as the last line of
standard error, one JSON object after REPORT_MARKER.

It gives what ``manage.py loaddata`` gives (the fields' own ``to_python``
and ``get_db_prep_save``, raw saves, natural keys looked up with
``get_by_natural_key``, forward references written at the end, sequences
reset), about 20 to 30 times faster (benchmarks/RESULTS.md), and:

- the objects are written as multi-row INSERTs of up to BATCH rows per model,
  not saved one by one; every natural key is looked up once; rows of the
  auto-created m2m tables are written in batches too;
- signals as under loaddata, per batch: ``pre_save`` (``raw=True``) for each
  object of the batch, the INSERT, ``post_save`` (``raw=True``,
  ``created=True``) for each, then ``m2m_changed`` ``pre_add``, the m2m rows,
  ``post_add`` for each object with m2m values. Instances are built only for
  models with receivers, and what a ``pre_save`` receiver sets on one is
  saved. Before a batch with receivers, the pending rows of every model
  before it in the fixture are written: a receiver that reads the database
  sees every object that precedes its own (and the whole batch in
  ``post_save``). Pending rows are written in the fixture's model order (the
  dump's dependency order), never alphabetically;
- a natural key not found is looked up again after its model's pending rows
  are written, then after every model's (its lookup may join another model);
  a GeneratedField's value in the fixture is left to the database;
- everything is ONE transaction: the tables are emptied (one TRUNCATE, which
  is transactional in PostgreSQL), the fixture is loaded, foreign keys are
  checked (``SET CONSTRAINTS ALL IMMEDIATE``), sequences are reset and the row
  count of every model and auto-created m2m table is compared with the
  archive's metadata. Any failure or difference rolls all of it back: the
  database either holds the archive or is as it was;
- the tables of ``keep_tables_of`` (content types, permissions: ``migrate``
  recreates them and the fixture refers to them by natural key) and
  ``django_migrations`` are not emptied;
- the fixture is read one line at a time (one object per line), so memory does
  not grow with it; a fixture in another layout is read whole and the report
  says ``"streamed": false``;
- every object is INSERTed into emptied tables, never upserted: a row written
  during the load (by a receiver that ignores ``raw`` and the marker below)
  that the fixture also holds fails the load on its primary key, where
  loaddata would overwrite it unnoticed;
- the application can tell that a restore runs: the script sets the
  environment variable ``EDMS_RESTORE_IN_PROGRESS=1`` and the setting
  ``settings.EDMS_RESTORE_IN_PROGRESS = True`` before Django is set up.
  ``pre_save``/``post_save`` receivers see ``raw=True`` as under loaddata;
  ``m2m_changed`` has no raw flag, so its receivers should check the marker.

The request (argv[1], JSON):

- ``settings``: settings module, or null for the container's DJANGO_SETTINGS_MODULE;
- ``fixture``: absolute path of the fixture inside the container;
- ``database``: the database to load into, or null for the app's own; set as
  ``DATABASES["default"]["NAME"]`` before the first connection;
- ``expected``: ``{model label (lower case): count}`` from metadata;
- ``m2m_tables``: the labels in ``expected`` that are auto-created m2m tables;
- ``keep_tables_of``: model labels whose tables are not emptied;
- ``fail_at``: null, or ``empty``, ``load``, ``count_check`` or ``before_commit``:
  FAULT INJECTION for the tests of the one-transaction invariant only; it
  raises ``RuntimeError("injected failure at <stage>")`` at that point: after
  the TRUNCATE, after every object and deferred field is saved, after the
  counts matched, and as the last statement of the transaction.

Before commit it also compares every model's primary keys in the database
with the fixture's (PK_DIGEST_FUNCTION): a load that kept the count but not the
identities (new UUIDs) fails.

The report: ``{"objects", "counts", "seconds", "peak_rss_kb", "streamed",
"database", "identities"}``, or ``{"error", "stage"}`` with stage ``setup`` (before the
transaction), ``empty``, ``load``, ``count_check`` or ``commit``; the exit code
is then non-zero.
"""

from __future__ import annotations

import json
import secrets
import tarfile
from contextlib import contextmanager

from ansible_collections.edms.backup.plugins.module_utils._archive import (
    DEFAULT_RECREATED_MODELS,
    FIXTURE,
    ArchiveReader,
)
from ansible_collections.edms.backup.plugins.module_utils._django import (
    DjangoError,
    read_marked_report,
)
from ansible_collections.edms.backup.plugins.module_utils._docker import ExecError

REPORT_MARKER = "EDMS-RESTORE-REPORT "

# What a load keeps when it is not told: the tables ``migrate`` fills. An
# archive names its own (metadata's recreated_models: the ones its dump left out).
KEEP_TABLES_OF = list(DEFAULT_RECREATED_MODELS)


def keep_tables_of(metadata):
    """The tables a load of this archive must not empty: those its dump left out
    and migrate recreates. A dump that kept content types and permissions has
    them in its fixture: their tables are emptied and loaded like any other."""
    return [str(label).lower() for label in metadata.get("recreated_models", KEEP_TABLES_OF)]


FAIL_STAGES = ("empty", "load", "count_check", "before_commit")

# compare_counts(expected, found, m2m_tables): the differences, one dict per
# label: {"model", "expected", "found", "kind"}. A label counted but not
# expected must be empty (rows made by a receiver during the load show up so).
# One source: the script runs it in the backend; this module execs the same text.
COMPARE_FUNCTION = r"""
def compare_counts(expected, found, m2m_tables):
    differences = []
    for label in sorted(set(expected) | set(found)):
        want = expected.get(label, 0)
        got = found.get(label)
        if got != want:
            differences.append({
                "model": label,
                "expected": want,
                "found": got,
                "kind": "m2m table" if label in m2m_tables else "model",
            })
    return differences
"""

# scrub(text): a database error's text without the row data PostgreSQL puts
# in it. A DETAIL line is kept only when it names a key whose columns are ids
# (named id or ending in _id) and whose values are integers or UUIDs, in one
# of the wordings of a key collision or a missing reference: what an operator
# needs to find either. Any other DETAIL
# ("Failing row contains (...)": every column of the row, a user's password
# hash among them; a key of emails; an exclusion constraint's ranges) is
# replaced, with the lines that continue it (a row's text may hold line
# breaks), up to the next line PostgreSQL, pg_restore or a traceback starts.
# A COPY's CONTEXT line (pg_restore quotes the line it failed on) is cut after
# the line number. The rollback runs it on pg_restore's output; the load
# builds its messages from psycopg's fields instead (describe(), below) and
# uses it for the rest. English server messages are what it knows: a DETAIL
# in another language is hidden whole, but a DETAIL tag in another language
# is not recognised (lc_messages of the demo's server is C).
SCRUB_FUNCTION = r"""
import re

KEY_DETAIL = re.compile(
    r'Key \(([\w", ]+)\)=\(([\w, -]*)\) (already exists|is not present in table "[^"\n]*"'
    r'|is still referenced from table "[^"\n]*")\.?[ \t]*$')
COPY_LINE = re.compile(r"(CONTEXT:\s+COPY [^,\n]+, line \d+)[^\n]*")
STARTS = re.compile(
    r"\s*(?:(?:HINT|CONTEXT|STATEMENT|WHERE|LOCATION|QUERY|ERROR|FATAL|PANIC|WARNING|NOTICE"
    r"|LINE \d+):|pg_restore: |Traceback |File \"|The above exception|During handling)")
HIDDEN = "DETAIL:  not shown (it may quote the row's data)"


def ids_only(columns):
    names = [name.strip().strip('"') for name in columns.split(",")]
    return all(name == "id" or name.endswith("_id") for name in names)


KEY_VALUE = re.compile(r"^(-?\d+|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})$")


def kept_detail(detail, columns_ok=ids_only):
    # detail: the text after "DETAIL:"; kept only if it is a key of ids whose
    # values are integers or UUIDs.
    match = KEY_DETAIL.match(detail.strip())
    return (bool(match) and columns_ok(match.group(1))
            and all(KEY_VALUE.match(v.strip()) for v in match.group(2).split(",")))


def scrub(text):
    out, hiding = [], False
    for line in re.sub(r"(?<=\S)[ \t]*(DETAIL:)", r"\n\1", text).splitlines(True):
        if hiding and not STARTS.match(line):
            continue  # the hidden DETAIL goes on
        hiding = False
        stripped = line.lstrip()
        if stripped.startswith("DETAIL:"):
            if kept_detail(stripped[len("DETAIL:"):]):
                out.append(line)
            else:
                end = "\n" if line.endswith("\n") else ""
                out.append(line[:len(line) - len(stripped)] + HIDDEN + end)
                hiding = True
            continue
        out.append(COPY_LINE.sub(r"\1 (the line is not shown)", line))
    return "".join(out)
"""

# The identity of every object: per model, how many primary keys and an
# order-free digest of them (the sum of each key's hash, so that nothing has to
# sort or hold them). The load sums the fixture's keys as it reads them and
# the database's after the load, and compares. str() of a key is the same for
# the fixture's JSON value and the database's (UUIDs in their hyphenated form).
PK_DIGEST_FUNCTION = r"""
import hashlib


def key_hash(key):
    return int(hashlib.sha256(str(key).encode("utf-8")).hexdigest()[:32], 16)


def digest_text(count, total):
    return [count, "%032x" % (total % (1 << 128))]


def pk_digest(keys):
    count, total = 0, 0
    for key in keys:
        count += 1
        total += key_hash(key)
    return digest_text(count, total)
"""

# The batched writer. One Table per model of the fixture: each object's
# fields go through the model fields' own to_python and get_db_prep_save (what
# the deserializer and a raw save do), natural keys are looked up once each,
# and the rows go to the database as multi-row INSERTs of up to BATCH rows.
BATCH_LOADER = r'''
import queue, threading

BATCH = 1000


class Table:
    """The pending rows of one model and of its auto-created m2m tables."""

    def __init__(self, loader, model):
        from django.db.models.signals import m2m_changed, post_save, pre_save

        meta = model._meta
        self.loader, self.model = loader, model
        self.fields = [f for f in meta.local_concrete_fields if not getattr(f, "generated", False)]
        # The serializer writes a GeneratedField's value; the database computes it.
        self.generated = {f.name for f in meta.local_concrete_fields
                          if getattr(f, "generated", False)}
        self.pk = meta.pk
        self.convert = {}
        for field in self.fields:
            if field.remote_field is not None:
                self.convert[field.name] = (field, loader.fk_converter(field))
            else:
                self.convert[field.name] = (field, field.to_python)
        self.m2m = {}
        for field in meta.local_many_to_many:
            through = field.remote_field.through
            if not through._meta.auto_created:
                continue
            source = through._meta.get_field(field.m2m_field_name())
            target = through._meta.get_field(field.m2m_reverse_field_name())
            self.m2m[field.name] = {
                "field": field,
                "source": source,
                "target": target,
                "convert": loader.m2m_converter(field),
                "sql": loader.insert_sql(through._meta.db_table, [source.column, target.column]),
                "signals": m2m_changed.has_listeners(through),
                "rows": [],
                "adds": [],
            }
        self.sql = loader.insert_sql(meta.db_table, [f.column for f in self.fields])
        self.signals = pre_save.has_listeners(model) or post_save.has_listeners(model)
        self.signals = self.signals or any(m["signals"] for m in self.m2m.values())
        # Pending objects: rows, or for a model with receivers its instances,
        # made rows at the flush, after pre_save (see flush_rows).
        self.rows = []
        self.count = 0

    def add(self, obj):
        loader, using = self.loader, self.loader.using
        if "pk" not in obj or obj["pk"] is None:
            raise ValueError("%s: an object without a primary key (this load keeps every "
                             "object's key and does not look objects up by natural key)"
                             % self.model._meta.label)
        values = {self.pk.attname: self.pk.to_python(obj["pk"])}
        m2m_values = {}
        for name, raw in obj.get("fields", {}).items():
            if name in self.convert:
                field, convert = self.convert[name]
                try:
                    value = convert(raw)
                except Exception as exc:
                    raise ValueError("%s(pk=%s) field %s: %s" % (
                        self.model._meta.label, obj["pk"], name, exc)) from exc
                if value is DEFER:
                    if not field.null:
                        raise ValueError(
                            "%s(pk=%s) field %s refers to %r, which is not in the database "
                            "yet and cannot be left empty until the end of the load" % (
                                self.model._meta.label, obj["pk"], name, raw))
                    value = None
                    loader.deferred_fks.append((self, values[self.pk.attname], name, raw))
                values[field.attname] = value
            elif name in self.m2m:
                m2m_values[name] = raw
            elif name in self.generated:
                continue
            else:
                raise ValueError("%s has no field %r (object pk=%s)" % (
                    self.model._meta.label, name, obj["pk"]))
        for field in self.fields:
            if field.attname not in values:
                values[field.attname] = field.get_default()
        instance = None
        if self.signals:
            instance = self.model(**values)
            self.rows.append(instance)
        else:
            connection = loader.connection
            self.rows.append(tuple(
                field.get_db_prep_save(values[field.attname], connection)
                for field in self.fields))
        for name, raw in m2m_values.items():
            self.add_m2m(self.m2m[name], values[self.pk.attname], instance, raw)
        self.count += 1
        if len(self.rows) >= BATCH:
            self.flush()

    def add_m2m(self, m2m, pk, instance, raw):
        if raw is None:
            raw = []
        targets = []
        for value in raw:
            target = m2m["convert"](value)
            if target is DEFER:
                self.loader.deferred_m2m.append((self, pk, m2m, value))
                continue
            targets.append(target)
        if not targets:
            return
        connection = self.loader.connection
        source = m2m["source"].get_db_prep_save(pk, connection)
        for target in targets:
            m2m["rows"].append((source, m2m["target"].get_db_prep_save(target, connection)))
        if m2m["signals"]:
            m2m["adds"].append((instance, set(targets)))

    def flush(self):
        if self.rows:
            self.flush_rows()
        for m2m in self.m2m.values():
            self.flush_m2m(m2m)

    def flush_rows(self):
        from django.db.models.signals import post_save, pre_save

        using, model = self.loader.using, self.model
        if not self.signals:
            self.loader.insert(self.sql, self.rows, model._meta.label)
            self.rows = []
            return
        instances = self.rows
        self.loader.flush_before(self)
        self.loader.sync()  # receivers see every earlier object written
        for instance in instances:
            send(pre_save, "pre_save", sender=model, instance=instance, raw=True,
                 using=using, update_fields=None)
        # The rows made now: what a pre_save receiver set is saved, as a raw save() would.
        connection = self.loader.connection
        rows = [
            tuple(field.get_db_prep_save(getattr(instance, field.attname), connection)
                  for field in self.fields)
            for instance in instances]
        self.loader.insert(self.sql, rows, model._meta.label)
        self.loader.sync()
        for instance in instances:
            instance._state.adding = False
            instance._state.db = using
            send(post_save, "post_save", sender=model, instance=instance, created=True,
                 update_fields=None, raw=True, using=using)
        self.rows = []

    def flush_m2m(self, m2m):
        from django.db.models.signals import m2m_changed

        if not m2m["rows"]:
            return
        through = m2m["field"].remote_field.through
        target_model = m2m["field"].remote_field.model
        using = self.loader.using
        for action in ("pre_add", None, "post_add"):
            if action is None:
                self.loader.insert(m2m["sql"], m2m["rows"], through._meta.label)
                continue
            if m2m["adds"]:
                self.loader.sync()
            for instance, pk_set in m2m["adds"]:
                send(m2m_changed, "m2m_changed " + action, sender=through, action=action,
                     instance=instance, reverse=False, model=target_model, pk_set=pk_set,
                     using=using)
        m2m["rows"], m2m["adds"] = [], []


DEFER = object()

COLLISION = ("(a row written during the load, by a signal receiver that ignores raw=True "
             "and the restore marker, or an object given twice, collides with one of the "
             "fixture's)")


KEY_COLUMNS = {}


def key_columns_of(table):
    """The columns of table that hold keys: its primary key and its foreign keys."""
    if not KEY_COLUMNS:
        from django.apps import apps
        for model in apps.get_models(include_auto_created=True):
            KEY_COLUMNS[model._meta.db_table] = {
                f.column for f in model._meta.concrete_fields
                if f.primary_key or f.remote_field is not None}
    return KEY_COLUMNS.get(table, set())


def describe(exc):
    """exc's text for the report, one line, without the row data a database
    error may quote. A database error (psycopg's, or Django's that wraps it
    with the same text) by its primary message, and its detail only when that
    names key columns of the table (its primary key, its foreign keys) with
    integer or UUID values; anything else through scrub()."""
    seen = exc
    while seen is not None:
        diag = getattr(seen, "diag", None)
        primary = getattr(diag, "message_primary", None)
        if primary:
            detail = diag.message_detail or ""
            keys = key_columns_of(diag.table_name)
            if detail and kept_detail(detail, lambda columns: all(
                    c.strip().strip('"') in keys for c in columns.split(","))):
                primary += " DETAIL: " + detail
            elif detail:
                primary += " " + HIDDEN
            return " ".join(primary.split())
        # Django's database errors wrap psycopg's with the same text.
        cause = seen.__cause__
        seen = cause if cause is not None and str(cause) == str(seen) else None
    return " ".join(scrub(str(exc)).split()) or repr(exc)


def scrubbed_traceback(exc):
    """traceback.format_exc() of exc, each exception of the chain by describe()."""
    import traceback
    chain, seen = [], exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    parts = []
    for item in reversed(chain):
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(item.__traceback__))
        parts.append("%s: %s\n" % (type(item).__name__, describe(item)))
    return "".join(parts)


def send(signal, what, **kwargs):
    """signal.send(**kwargs); a receiver's failure names the signal and the sender."""
    try:
        signal.send(**kwargs)
    except Exception as exc:
        cause = describe(exc)
        hint = " " + COLLISION if "duplicate key" in cause else ""
        # The cause last: a DETAIL kept by describe() ends the text, where
        # scrub() of the whole message keeps it too.
        raise RuntimeError("a %s receiver failed for %s%s: %s" % (
            what, kwargs["sender"]._meta.label, hint, cause)) from exc


class Writer(threading.Thread):
    """Runs the INSERTs on their own cursor of the load's connection while the
    main thread converts the next batch: the database works on one core while
    Python works on the other (psycopg releases the GIL while it waits).

    The connection serialises statements; the main thread calls sync() before
    anything it does on the database itself (a natural-key lookup, a signal,
    the counts), so it always sees every row queued before. The first failed
    statement is kept and raised in the main thread by the next submit() or
    sync(); nothing after it is run.
    """

    def __init__(self, connection):
        super().__init__(daemon=True)
        self.connection = connection
        self.queue = queue.Queue(maxsize=4)
        self.error = None

    def run(self):
        try:
            self.write()
        except BaseException as exc:
            # Whatever ended the writing (no cursor), the queue is still
            # emptied: sync() and submit() would otherwise wait for ever.
            if self.error is None:
                self.error = (exc, None, None)
            while True:
                item = self.queue.get()
                self.queue.task_done()
                if item is None:
                    return

    def write(self):
        cursor = self.connection.cursor()
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    text, params, count, label = item
                    try:
                        cursor.execute(text, params)
                    except Exception as exc:
                        self.error = (exc, count, label)
            finally:
                self.queue.task_done()

    def check(self):
        if self.error is not None:
            exc, count, label = self.error
            cause = describe(exc)
            if label is None:
                raise RuntimeError("the writer stopped: %s" % cause) from exc
            hint = " " + COLLISION if "duplicate key" in cause else ""
            raise RuntimeError("could not write %d row(s) of %s%s: %s" % (
                count, label, hint, cause)) from exc

    def submit(self, item):
        self.check()
        self.queue.put(item)

    def sync(self):
        self.queue.join()
        self.check()

    def stop(self):
        """Wait for what is queued, then end the thread (errors are left to sync())."""
        self.queue.put(None)
        self.join()


class BatchLoader:
    """Loads fixture objects in batches; natural keys looked up once each."""

    def __init__(self, connection, using, apps):
        from django.core.exceptions import ObjectDoesNotExist

        self.connection, self.using, self.apps = connection, using, apps
        self.missing = ObjectDoesNotExist
        self.tables = {}
        self.order = []  # one Table per model, in the fixture's order (the dump's dependency order)
        self.keys = {}
        self.deferred_fks, self.deferred_m2m = [], []
        self.writer = None

    def table(self, label):
        table = self.tables.get(label)
        if table is None:
            try:
                model = self.apps.get_model(label)
            except (LookupError, ValueError, TypeError):
                raise ValueError("invalid model identifier in the fixture: %r" % (label,))
            table = self.tables.get(model._meta.label_lower)
            if table is None:
                table = self.tables[model._meta.label_lower] = Table(self, model)
                self.order.append(table)
            self.tables[label] = table
        return table

    def insert_sql(self, table, columns):
        quote = self.connection.ops.quote_name
        return "INSERT INTO %s (%s) VALUES " % (
            quote(table), ", ".join(quote(c) for c in columns)), len(columns)

    def insert(self, sql, rows, label):
        """Queue one multi-row INSERT (Writer)."""
        text, width = sql
        placeholders = "(" + ", ".join(["%s"] * width) + ")"
        params = [value for row in rows for value in row]
        if self.writer is None:
            self.connection.ensure_connection()
            self.writer = Writer(self.connection.connection)
            self.writer.start()
        self.writer.submit((text + ", ".join([placeholders] * len(rows)), params,
                            len(rows), label))

    def sync(self):
        """Wait until every queued INSERT ran; raise the first that failed."""
        if self.writer is not None:
            self.writer.sync()

    def close(self):
        """End the writer thread, after what it has queued (call before the
        transaction ends, whatever happened)."""
        if self.writer is not None:
            self.writer.stop()

    def natural(self, model, key, field_name):
        """The value of field_name of the object with natural key `key`, or DEFER."""
        cache = self.keys.setdefault((model, field_name), {})
        key = tuple(key)
        if key in cache:
            return cache[key]
        manager = model._default_manager.db_manager(self.using)
        self.sync()
        own = self.tables.get(model._meta.label_lower)
        while True:
            try:
                obj = manager.get_by_natural_key(*key)
                break
            except self.missing:
                # It may be among its model's rows not written yet; or a row
                # its lookup joins may be, of any model.
                if own is not None and own.rows:
                    own.flush()
                elif any(t.rows for t in self.order):
                    self.flush()
                else:
                    return DEFER
                self.sync()
        # The column's value: a OneToOne primary key's is the related key.
        value = getattr(obj, model._meta.get_field(field_name).attname)
        cache[key] = value
        return value

    def fk_converter(self, field):
        model = field.remote_field.model
        field_name = field.remote_field.field_name
        to_python = model._meta.get_field(field_name).to_python
        if not hasattr(model._default_manager, "get_by_natural_key"):
            return lambda value: None if value is None else to_python(value)

        def convert(value):
            if value is None:
                return None
            if hasattr(value, "__iter__") and not isinstance(value, str):
                return self.natural(model, value, field_name)
            return to_python(value)
        return convert

    def m2m_converter(self, field):
        model = field.remote_field.model
        to_python = model._meta.pk.to_python
        if not hasattr(model._default_manager, "get_by_natural_key"):
            return to_python

        def convert(value):
            if hasattr(value, "__iter__") and not isinstance(value, str):
                return self.natural(model, value, model._meta.pk.name)
            return to_python(value)
        return convert

    def flush(self):
        """Every pending row, model by model in the fixture's order."""
        for table in self.order:
            table.flush()

    def flush_before(self, table):
        """The pending rows of the models before table in the fixture: its
        receivers see every object that precedes its own, as under loaddata."""
        for earlier in self.order[:self.order.index(table)]:
            earlier.flush()

    def finish(self):
        """Write what is pending, then the forward references (as loaddata does last)."""
        self.flush()
        self.sync()
        updates = {}
        for table, pk, name, raw in self.deferred_fks:
            field, convert = table.convert[name]
            attname = field.attname
            value = convert(raw)
            if value is DEFER:
                raise ValueError("%s(pk=%s) field %s refers to %r, which is neither in the "
                                 "fixture nor in the database" % (
                                     table.model._meta.label, pk, name, raw))
            updates.setdefault((table, attname), []).append((pk, value))
        for (table, attname), pairs in updates.items():
            manager = table.model._base_manager.using(self.using)
            for pk, value in pairs:
                manager.filter(pk=pk).update(**{attname: value})
        for table, pk, m2m, raw in self.deferred_m2m:
            target = m2m["convert"](raw)
            if target is DEFER:
                raise ValueError("%s(pk=%s) field %s refers to %r, which is neither in the "
                                 "fixture nor in the database" % (
                                     table.model._meta.label, pk, m2m["field"].name, raw))
            instance = table.model._base_manager.using(self.using).get(pk=pk) \
                if m2m["signals"] else None
            table.add_m2m(m2m, pk, instance, [raw])
        for table in self.order:
            for m2m in table.m2m.values():
                table.flush_m2m(m2m)
        self.sync()
        self.deferred_fks, self.deferred_m2m = [], []
'''

# Runs inside the backend. argv[1]: the JSON request described above.
LOAD_SCRIPT = (
    r"""
import json, os, resource, sys, time

MARKER = "EDMS-RESTORE-REPORT "
started = time.monotonic()
request = json.loads(sys.argv[1])
state = {"stage": "setup", "streamed": True, "read": 0}


def finish(report, code):
    sys.stderr.write(MARKER + json.dumps(report) + "\n")
    sys.stderr.flush()
    sys.exit(code)


def fail(message):
    finish({"error": message, "stage": state["stage"]}, 3)


def inject(stage):
    if request.get("fail_at") == stage:
        raise RuntimeError("injected failure at %s" % stage)
"""
    + COMPARE_FUNCTION
    + PK_DIGEST_FUNCTION
    + SCRUB_FUNCTION
    + BATCH_LOADER
    + r'''

def read_objects(path):
    """The fixture's objects: one per line if it has our layout, else the whole file."""
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
        if first.strip() == "[":
            number = 1
            for line in handle:
                number += 1
                text = line.strip()
                if not text:
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
                        break  # not one object per line: read it whole below
                    raise ValueError(
                        "fixture line %d is not one JSON object, in a fixture that "
                        "started with one object per line" % number)
                state["read"] += 1
                yield obj
            else:
                raise ValueError("the fixture ends without its closing ']'")
    state["streamed"] = False
    with open(path, "rb") as handle:
        objects = json.load(handle)
    if not isinstance(objects, list):
        raise ValueError("the fixture is not a JSON array")
    for obj in objects:
        state["read"] += 1
        yield obj


def load_all(loader, fixture_keys, allowed):
    """Every object of the fixture through the loader, then what it deferred;
    fixture_keys gets the count and key digest of each model's objects."""
    count = 0
    for obj in read_objects(request["fixture"]):
        if not isinstance(obj, dict) or "model" not in obj:
            raise ValueError("fixture object %d is not an object with a model" % (count + 1))
        table = loader.table(obj["model"])
        model = table.model
        if model not in allowed:
            if not router.allow_migrate_model(using, model):
                raise RuntimeError("the router refuses %s here" % model._meta.label)
            allowed.add(model)
        entry = fixture_keys.setdefault(model._meta.label_lower, [0, 0])
        entry[0] += 1
        entry[1] += key_hash(obj.get("pk"))
        table.add(obj)
        count += 1
    loader.finish()


try:
    if request.get("settings"):
        os.environ["DJANGO_SETTINGS_MODULE"] = request["settings"]
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        fail("DJANGO_SETTINGS_MODULE is not set in the backend container")
    if request.get("fail_at") not in (None, "empty", "load", "count_check", "before_commit"):
        fail("unknown fail_at stage: %s" % request["fail_at"])
    os.environ["EDMS_RESTORE_IN_PROGRESS"] = "1"
    from django.conf import settings
    if request.get("database"):
        settings.DATABASES["default"]["NAME"] = request["database"]
    settings.EDMS_RESTORE_IN_PROGRESS = True

    import django
    django.setup()
    from django.apps import apps
    from django.core.management.color import no_style
    from django.db import DEFAULT_DB_ALIAS, connections, router, transaction

    using = DEFAULT_DB_ALIAS
    connection = connections[using]
    keep = {label.lower() for label in request.get("keep_tables_of") or []}
    m2m_tables = set(request.get("m2m_tables") or [])
    expected = request.get("expected") or {}

    emptied = [
        m for m in apps.get_models(include_auto_created=True)
        if m._meta.managed and not m._meta.proxy and m._meta.label_lower not in keep
        and router.allow_migrate_model(using, m)
    ]
    by_label = {m._meta.label_lower: m for m in apps.get_models(include_auto_created=True)}
    unknown = sorted(label for label in expected if label not in by_label)
    if unknown:
        fail("the fixture's models are not in this application: %s" % ", ".join(unknown))

    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            state["stage"] = "empty"
            tables = sorted({m._meta.db_table for m in emptied} - {"django_migrations"})
            if tables:
                cursor.execute("TRUNCATE %s RESTART IDENTITY" % ", ".join(
                    connection.ops.quote_name(t) for t in tables))
            inject("empty")

            state["stage"] = "load"
            loader = BatchLoader(connection, using, apps)
            fixture_keys, objects, allowed = {}, 0, set()
            try:
                load_all(loader, fixture_keys, allowed)
            finally:
                loader.close()  # before the transaction ends, whatever happened
            objects = sum(entry[0] for entry in fixture_keys.values())
            loaded_models = {t.model for t in loader.tables.values() if t.count}
            inject("load")
            # Foreign keys are checked here, inside the transaction.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            sequenced = set(loaded_models) | {
                m for m in emptied if m._meta.auto_created}
            for sql in connection.ops.sequence_reset_sql(no_style(), sorted(
                    sequenced, key=lambda m: m._meta.label)):
                cursor.execute(sql)

            state["stage"] = "count_check"
            counted = {m._meta.label_lower: m for m in emptied}
            counted.update({label: by_label[label] for label in expected})
            found = {
                label: model._base_manager.using(using).count()
                for label, model in sorted(counted.items())
            }
            differences = compare_counts(expected, found, m2m_tables)
            if differences:
                raise RuntimeError("the counts after the load differ from the archive's: "
                    + "; ".join("%s expected %s, found %s" % (
                        d["model"], d["expected"], d["found"]) for d in differences))
            # Every object kept its primary key (UUIDs included).
            identities = {}
            for label in sorted(set(fixture_keys) | (set(expected) - m2m_tables)):
                if label not in by_label:
                    continue
                keys = by_label[label]._base_manager.using(using).values_list("pk", flat=True)
                identities[label] = (
                    pk_digest(keys.iterator(chunk_size=5000)),
                    digest_text(*fixture_keys.get(label, (0, 0))))
            differ = sorted(label for label, (db, fx) in identities.items() if db != fx)
            if differ:
                raise RuntimeError("after the load the primary keys (UUIDs included) of %s "
                                   "differ from the fixture's" % ", ".join(differ))
            inject("count_check")

            state["stage"] = "commit"
            inject("before_commit")
            database = connection.settings_dict["NAME"]
    connection.close()
except SystemExit:
    raise
except BaseException as exc:
    sys.stderr.write(scrubbed_traceback(exc))
    fail("%s: %s" % (type(exc).__name__, describe(exc)))

finish({
    "objects": objects,
    "counts": found,
    "seconds": round(time.monotonic() - started, 3),
    "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "streamed": state["streamed"],
    "database": database,
    "identities": {"models": len(identities), "objects": objects, "equal": True},
}, 0)
'''
)


class LoadError(Exception):
    """The load in the backend failed or its report cannot be read.

    ``stage`` names where it failed (see the module docstring), or is None.
    """

    def __init__(self, message, stage=None):
        super().__init__(message)
        self.stage = stage


_COMPARE_NAMESPACE = {}
exec(COMPARE_FUNCTION, _COMPARE_NAMESPACE)  # pylint: disable=exec-used
compare_counts = _COMPARE_NAMESPACE["compare_counts"]
exec(SCRUB_FUNCTION, _COMPARE_NAMESPACE)  # pylint: disable=exec-used
scrub = _COMPARE_NAMESPACE["scrub"]


def load_request(
    fixture,
    expected,
    m2m_tables,
    database=None,
    settings_module=None,
    keep_tables_of=None,
    fail_at=None,
):
    """The request LOAD_SCRIPT reads (see the module docstring)."""
    if fail_at is not None and fail_at not in FAIL_STAGES:
        raise LoadError(f"unknown fail_at stage {fail_at!r} (one of {', '.join(FAIL_STAGES)})")
    return {
        "settings": settings_module,
        "fixture": fixture,
        "database": database,
        "expected": {str(label).lower(): int(count) for label, count in expected.items()},
        "m2m_tables": [str(label).lower() for label in m2m_tables],
        "keep_tables_of": list(KEEP_TABLES_OF if keep_tables_of is None else keep_tables_of),
        "fail_at": fail_at,
    }


def load_command(python, request):
    """The argv that runs the load inside the backend container."""
    return [python, "-c", LOAD_SCRIPT, json.dumps(request)]


def parse_report(stderr):
    """The load's report: the last stderr line that carries the marker."""
    try:
        report = read_marked_report(stderr, REPORT_MARKER, "the load")
    except DjangoError as exc:
        raise LoadError(str(exc)) from exc
    if "error" in report:
        stage = report.get("stage")
        where = f" (stage {stage})" if stage else ""
        raise LoadError(f"the load failed{where}: {report['error']}", stage=stage)
    return report


CHUNK = 1024 * 1024


def tar_member(info, source):
    """One member of a tar stream, as chunks: header, content read from `source`
    (its size known up front) chunk by chunk, padding. Nothing holds more than
    one chunk."""
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    left = info.size
    while left > 0:
        data = source.read(min(CHUNK, left))
        if not data:
            raise LoadError(f"{info.name} ended {left} bytes short of its size")
        left -= len(data)
        yield data
    if source.read(1):
        raise LoadError(f"{info.name} is longer than its recorded size")
    remainder = info.size % tarfile.BLOCKSIZE
    if remainder:
        yield tarfile.NUL * (tarfile.BLOCKSIZE - remainder)


def tar_of_one(info, source):
    """A whole tar stream, as chunks, of one member (tar_member, then the end blocks)."""
    yield from tar_member(info, source)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def container_owner(containers, container_id):
    """(uid, gid) of the user the container runs commands as."""
    out = containers.exec(container_id, ["sh", "-c", "id -u && id -g"], what="id").stdout
    return parse_owner(out, container_id)


def parse_owner(out, container_id):
    """(uid, gid) from the output of ``id -u; id -g``."""
    try:
        uid, gid = (int(word) for word in out.decode("ascii", "replace").split())
    except ValueError:
        raise ExecError(f"cannot tell the user of container {container_id[:12]}") from None
    return uid, gid


# $1: a directory made private to the container's user; its uid and gid printed.
SCRATCH_SCRIPT = 'mkdir -m 700 "$1" && id -u && id -g'

# Runs "$@" and removes the directory $1 when it ends, with its exit code
# kept: the fixture or dump copied there (password hashes) does not outlive
# the command, even when the module that started it is gone (only a kill of
# this shell itself would leave it).
IN_SCRATCH_SCRIPT = 'scratch=$1; shift; trap \'rm -rf "$scratch"\' EXIT; "$@"'


class Scratch:
    """A directory of a container's /tmp, private to the container's user, for
    a copy that holds secrets: ``path``, ``owner`` (uid, gid) and
    ``command(argv)``, argv wrapped so that the directory goes when it ends."""

    def __init__(self, path, owner):
        self.path, self.owner = path, owner
        self.removed = False  # a command of command() ran to its end

    def command(self, argv):
        return ["sh", "-c", IN_SCRATCH_SCRIPT, "sh", self.path, *argv]


@contextmanager
def scratch(containers, container_id, prefix):
    """A new Scratch: made, with the owner read, in one exec. When no command
    of its own ran to its end (set ``removed``), it is removed on the way out."""
    path = f"/tmp/{prefix}-{secrets.token_hex(6)}"
    out = containers.exec(
        container_id, ["sh", "-c", SCRATCH_SCRIPT, "sh", path], what=f"mkdir {path}"
    ).stdout
    made = Scratch(path, None)
    try:
        made.owner = parse_owner(out, container_id)
        yield made
    finally:
        if not made.removed:
            containers.exec(container_id, ["rm", "-rf", path], check=False)


def put_fixture(containers, container_id, archive_path, dest_dir, owner=None):
    """Copy the archive's fixture into the container; return its path there.

    The file lands as ``<dest_dir>/database_backup.json``, mode 0600, owned by
    the container's user (it holds password hashes).
    """
    return put_member(containers, container_id, archive_path, FIXTURE, dest_dir, owner)


def put_member(containers, container_id, archive_path, name, dest_dir, owner=None):
    """Copy one member of the archive into the container; return its path there.

    The file lands as ``<dest_dir>/<name>``, mode 0600, owned by the user the
    container runs commands as (``owner``: its (uid, gid) if known). The tar
    stream is made while it is sent: the Docker SDK passes a generator body on
    to requests, which sends it chunked, so the member is never whole in memory.
    """
    uid, gid = owner or container_owner(containers, container_id)
    path = dest_dir.rstrip("/") + "/" + name
    containers.execs.append({"container": container_id, "command": f"put_archive {path}"})
    with ArchiveReader.open(archive_path) as archive:
        member = archive.member(name)
        source = archive.open_member(name)
        try:
            info = tarfile.TarInfo(name)
            info.size = member.size
            info.mode = 0o600
            info.uid, info.gid = uid, gid
            try:
                done = containers.client.containers.get(container_id).put_archive(
                    dest_dir, tar_of_one(info, source)
                )
            except Exception as exc:  # DockerException and the transport's errors
                raise ExecError(
                    f"cannot copy {name} into container {container_id[:12]}: {exc}"
                ) from exc
        finally:
            source.close()
    if not done:
        raise ExecError(f"the Docker engine refused {name} at {path}")
    return path


def remove_fixture(containers, container_id, path):
    """Delete the fixture copied by put_fixture (it holds password hashes)."""
    containers.exec(container_id, ["rm", "-f", path], what=f"rm {path}")
