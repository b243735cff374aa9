# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The batched writer of the load (load.py), inside the backend container.

One Table per model of the fixture: each object's fields go through the model
fields' own to_python and get_db_prep_save (what the deserializer and a raw
save do), natural keys are looked up once each, and the rows go to the
database in batches of up to BATCH rows: as COPY ... FROM STDIN in its text
format (copy_text) when the driver is psycopg2 and every value of the batch
is of a type copy_text writes as the database reads the driver's literal
of it (where the two differ, COPY keeps the value: -0.0, a Decimal
infinity, which psycopg2 sends as 0 and NaN), else as one multi-row INSERT.
Django is imported where it is used: the module imports without it.
"""

import datetime
import decimal
import io
import math
import queue
import sys
import threading
import uuid

from ansible_collections.edms.backup.plugins.module_utils._backend.scrub import (
    HIDDEN,
    kept_detail,
    scrub,
)

BATCH = 1000
# Consecutive COPY batches of one table are sent as one COPY of up to this
# many bytes: each statement costs the writer thread a few hand-overs of the
# GIL, which the main thread holds while it converts.
COPY_BYTES = 1 << 20

# {field class: the JSON type} of Django's own fields whose to_python and
# get_db_prep_save return a value of that exact type unchanged: the load
# skips both for such a value (plain_type). Filled on first use. The types
# are compared exactly, never with isinstance(): a subclass (an enum member,
# a str with behaviour of its own) takes the fields' own conversions.
PLAIN = {}


# A UTC time as Django's serializers write it (a 'Z' or +00:00 offset, at
# most microseconds), with fields in the ranges Python's datetime takes, so
# that PostgreSQL reads the same instant from the text as the field's
# to_python would give, and refuses what to_python refuses.
UTC_TEXT = (
    r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-]00:00)\Z"
)


# A UUID as Django's serializers write it (str() of a uuid.UUID: lower case,
# hyphenated), which PostgreSQL's uuid type reads as the same value.
UUID_TEXT = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"


def plain_type(field, connection, signals):
    """(type, check) of the fixture values that are written as they are,
    without field's to_python and get_db_prep_save, or (None, None).

    - str, int or bool for Django's own text, integer and boolean fields (a
      foreign key: to an integer one), when a probe value of the type comes
      back unchanged from both on this connection (a driver may wrap
      integers in types of its own);
    - str, with the check UTC_TEXT, for Django's own DateTimeField under
      USE_TZ on PostgreSQL, for a model without receivers (theirs would see
      the text instead of a datetime): the database reads the instant;
    - str, with the check UUID_TEXT, for Django's own UUIDField (or a
      foreign key to one) on PostgreSQL, whose uuid type reads the text, for
      a model without receivers (theirs would see the text, not a UUID).
    """
    import re

    from django.conf import settings
    from django.db import models

    if not PLAIN:
        for name, kind in (
            ("CharField", str),
            ("TextField", str),
            ("SlugField", str),
            ("EmailField", str),
            ("URLField", str),
            ("IntegerField", int),
            ("BigIntegerField", int),
            ("SmallIntegerField", int),
            ("PositiveIntegerField", int),
            ("PositiveBigIntegerField", int),
            ("PositiveSmallIntegerField", int),
            ("AutoField", int),
            ("BigAutoField", int),
            ("SmallAutoField", int),
            ("BooleanField", bool),
        ):
            if hasattr(models, name):
                PLAIN[getattr(models, name)] = kind
    if (
        type(field) is models.DateTimeField  # pylint: disable=unidiomatic-typecheck
        and not signals
        and settings.USE_TZ
        and connection.vendor == "postgresql"
    ):
        return str, re.compile(UTC_TEXT).match
    related = type(field) in (models.ForeignKey, models.OneToOneField)
    if (
        type(field.target_field if related else field) is models.UUIDField  # pylint: disable=unidiomatic-typecheck
        and not signals
        and connection.vendor == "postgresql"
        and connection.features.has_native_uuid_field
    ):
        return str, re.compile(UUID_TEXT).match
    target = field
    if type(field) in (models.ForeignKey, models.OneToOneField):
        target = field.target_field
        if type(target) not in PLAIN or PLAIN[type(target)] is not int:
            return None, None
    kind = PLAIN.get(type(target))
    if kind is None:
        return None, None
    probe = {str: "7", int: 7, bool: True}[kind]
    try:
        prepared = field.get_db_prep_save(probe, connection)
        converted = target.to_python(probe)
    except Exception:  # pylint: disable=broad-exception-caught
        return None, None
    exact = [type(value) is kind for value in (prepared, converted)]  # pylint: disable=unidiomatic-typecheck
    if all(exact) and prepared == probe and converted == probe:
        return kind, None
    return None, None


class Table:
    """The pending rows of one model and of its auto-created m2m tables."""

    def __init__(self, loader, model):
        from django.db.models.signals import m2m_changed, post_save, pre_save

        meta = model._meta
        self.loader, self.model = loader, model
        self.fields = [f for f in meta.local_concrete_fields if not getattr(f, "generated", False)]
        # The serializer writes a GeneratedField's value; the database computes it.
        self.generated = {
            f.name for f in meta.local_concrete_fields if getattr(f, "generated", False)
        }
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
        connection = loader.connection
        # [(attname, field, type, check)]: a value of that type (that check
        # accepts) is written as it is (plain_type, utc_text).
        self.columns = [
            (f.attname, f, *plain_type(f, connection, self.signals)) for f in self.fields
        ]
        # {name: (attname, type, check)} of the fields whose values of type
        # are taken as they are.
        self.plain = {
            f.name: (attname, kind, check)
            for attname, f, kind, check in self.columns
            if kind is not None and f.name != self.pk.name
        }
        # Pending objects: rows, or for a model with receivers its instances,
        # made rows at the flush, after pre_save (see flush_rows).
        self.rows = []
        self.count = 0

    def add(self, obj):
        loader = self.loader
        if "pk" not in obj or obj["pk"] is None:
            raise ValueError(
                "%s: an object without a primary key (this load keeps every "
                "object's key and does not look objects up by natural key)" % self.model._meta.label
            )
        values = {self.pk.attname: self.pk.to_python(obj["pk"])}
        m2m_values = {}
        plain = self.plain
        for name, raw in obj.get("fields", {}).items():
            kept = plain.get(name)
            # pylint: disable-next=unidiomatic-typecheck
            if kept is not None and type(raw) is kept[1] and (kept[2] is None or kept[2](raw)):
                values[kept[0]] = raw
                continue
            if name in self.convert:
                field, convert = self.convert[name]
                try:
                    value = convert(raw)
                except Exception as exc:
                    raise ValueError(
                        "%s(pk=%s) field %s: %s" % (self.model._meta.label, obj["pk"], name, exc)
                    ) from exc
                if value is DEFER:
                    if not field.null:
                        raise ValueError(
                            "%s(pk=%s) field %s refers to %r, which is not in the database "
                            "yet and cannot be left empty until the end of the load"
                            % (self.model._meta.label, obj["pk"], name, raw)
                        )
                    value = None
                    loader.deferred_fks.append((self, values[self.pk.attname], name, raw))
                values[field.attname] = value
            elif name in self.m2m:
                m2m_values[name] = raw
            elif name in self.generated:
                continue
            else:
                raise ValueError(
                    "%s has no field %r (object pk=%s)" % (self.model._meta.label, name, obj["pk"])
                )
        if len(values) != len(self.fields):  # its keys are attnames of self.fields
            for field in self.fields:
                if field.attname not in values:
                    values[field.attname] = field.get_default()
        instance = None
        if self.signals:
            instance = self.model(**values)
            self.rows.append(instance)
        else:
            connection = loader.connection
            row = []
            for attname, field, kind, check in self.columns:
                value = values[attname]
                row.append(
                    value
                    # pylint: disable-next=unidiomatic-typecheck
                    if kind is not None and type(value) is kind and (check is None or check(value))
                    else field.get_db_prep_save(value, connection)
                )
            self.rows.append(tuple(row))
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
            send(
                pre_save,
                "pre_save",
                sender=model,
                instance=instance,
                raw=True,
                using=using,
                update_fields=None,
            )
        # The rows made now: what a pre_save receiver set is saved, as a raw save() would.
        connection = self.loader.connection
        rows = [
            tuple(
                field.get_db_prep_save(getattr(instance, field.attname), connection)
                for field in self.fields
            )
            for instance in instances
        ]
        self.loader.insert(self.sql, rows, model._meta.label)
        self.loader.sync()
        for instance in instances:
            instance._state.adding = False
            instance._state.db = using
            send(
                post_save,
                "post_save",
                sender=model,
                instance=instance,
                created=True,
                update_fields=None,
                raw=True,
                using=using,
            )
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
                send(
                    m2m_changed,
                    "m2m_changed " + action,
                    sender=through,
                    action=action,
                    instance=instance,
                    reverse=False,
                    model=target_model,
                    pk_set=pk_set,
                    using=using,
                )
        m2m["rows"], m2m["adds"] = [], []


DEFER = object()


class NotCopied(Exception):
    """A value copy_text does not write: its batch goes as an INSERT."""


# COPY's text format: a backslash, and the delimiter and line ends, escaped.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_str(value):
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


def _copy_float(value):
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _copy_bytes(value):
    # bytea's hex input (\x...), its backslash escaped for COPY.
    return "\\\\x" + bytes(value).hex()


def _copy_datetime(value):
    # An aware time as its instant in UTC: the load's session is in UTC
    # (copy_writers is used only then), where the driver's timestamptz
    # literal gives the same value in a timestamptz column and the same wall
    # time in a timestamp one.
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(datetime.timezone.utc)
    return value.isoformat(" ")


def _copy_timedelta(value):
    # As psycopg2 sends an interval: days, and seconds with microseconds.
    return "%d days %d.%06d seconds" % (value.days, value.seconds, value.microseconds)


# By exact type: a subclass (an enum member, a str with behaviour of its
# own) may be sent otherwise by the driver's adapters, so its batch is an
# INSERT.
_COPY_WRITERS = {
    str: _copy_str,
    int: str,
    bool: lambda value: "t" if value else "f",
    float: _copy_float,
    decimal.Decimal: str,
    uuid.UUID: str,
    datetime.datetime: _copy_datetime,
    datetime.date: datetime.date.isoformat,
    datetime.time: datetime.time.isoformat,
    datetime.timedelta: _copy_timedelta,
    bytes: _copy_bytes,
    memoryview: _copy_bytes,
    bytearray: _copy_bytes,
}


def copy_writers():
    """{type: writer} of copy_text for this driver: _COPY_WRITERS, and
    psycopg2's adapters that Django's fields prepare: Binary (BinaryField),
    written as its bytes; Json and its subclasses (JSONField: Django's
    Jsonb), as the text the adapter would quote, its own dumps() of the
    value. None when the driver is not psycopg2."""
    try:
        from psycopg2.extensions import Binary
        from psycopg2.extras import Json
    except ImportError:
        return None

    def write(value):
        return _copy_str(value.dumps(value.adapted))

    def write_binary(value):
        if not isinstance(value.adapted, (bytes, bytearray, memoryview)):
            raise NotCopied(type(value.adapted).__name__)
        return _copy_bytes(value.adapted)

    writers = dict(_COPY_WRITERS)
    writers[Binary] = write_binary
    pending = [Json]
    while pending:
        kind = pending.pop()
        writers[kind] = write
        pending.extend(kind.__subclasses__())
    return writers


def copy_text(rows, writers):
    """rows (tuples of values prepared by get_db_prep_save) in COPY's text
    format, one line each; raises NotCopied at a value of another type.
    writers: {type: function}, _COPY_WRITERS and the driver's adapters."""
    lines = []
    get = writers.get
    for row in rows:
        cells = []
        for value in row:
            if value is None:
                cells.append("\\N")
                continue
            write = get(type(value))
            if write is None:
                raise NotCopied(type(value).__name__)
            cells.append(write(value))
        lines.append("\t".join(cells))
    lines.append("")
    return "\n".join(lines)


COLLISION = (
    "(a row written during the load, by a signal receiver that ignores raw=True "
    "and the restore marker, or an object given twice, collides with one of the "
    "fixture's)"
)


KEY_COLUMNS = {}


def key_columns_of(table):
    """The columns of table that hold keys: its primary key and its foreign keys."""
    if not KEY_COLUMNS:
        from django.apps import apps

        for model in apps.get_models(include_auto_created=True):
            KEY_COLUMNS[model._meta.db_table] = {
                f.column
                for f in model._meta.concrete_fields
                if f.primary_key or f.remote_field is not None
            }
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
            if detail and kept_detail(
                detail,
                lambda columns, keys=keys: all(
                    c.strip().strip('"') in keys for c in columns.split(",")
                ),
            ):
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
        raise RuntimeError(
            "a %s receiver failed for %s%s: %s" % (what, kwargs["sender"]._meta.label, hint, cause)
        ) from exc


class Writer(threading.Thread):
    """Runs the COPYs and INSERTs on their own cursor of the load's connection while the
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
                        if isinstance(params, bytes):
                            # One read of the whole batch: each read takes the
                            # GIL, which the main thread holds while it converts.
                            cursor.copy_expert(text, io.BytesIO(params), size=len(params) + 1)
                        else:
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
            raise RuntimeError(
                "could not write %d row(s) of %s%s: %s" % (count, label, hint, cause)
            ) from exc

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
        self.copy_writers = None  # {type: writer} once the driver is known to copy
        self.pending = None  # [COPY statement, [data], bytes, rows, label] not yet queued

    def table(self, label):
        table = self.tables.get(label)
        if table is None:
            try:
                model = self.apps.get_model(label)
            except (LookupError, ValueError, TypeError) as exc:
                raise ValueError("invalid model identifier in the fixture: %r" % (label,)) from exc
            table = self.tables.get(model._meta.label_lower)
            if table is None:
                table = self.tables[model._meta.label_lower] = Table(self, model)
                self.order.append(table)
            self.tables[label] = table
        return table

    def insert_sql(self, table, columns):
        """(INSERT's start, the number of columns, the COPY statement) of table."""
        quote = self.connection.ops.quote_name
        names = ", ".join(quote(c) for c in columns)
        return (
            "INSERT INTO %s (%s) VALUES " % (quote(table), names),
            len(columns),
            "COPY %s (%s) FROM STDIN" % (quote(table), names),
        )

    def insert(self, sql, rows, label):
        """Queue the rows' writing (Writer): one COPY, or one multi-row INSERT
        when the driver has no copy_expert (psycopg 3) or a value is of a type
        copy_text does not write."""
        text, width, copy = sql
        if self.writer is None:
            self.connection.ensure_connection()
            if type(self.connection.connection).__module__.split(".")[0] == "psycopg2":
                self.copy_writers = copy_writers()
                with self.connection.connection.cursor() as cursor:
                    cursor.execute("SELECT current_setting('TimeZone')")
                    zone = cursor.fetchone()[0]
                if zone not in ("UTC", "Etc/UTC"):
                    # _copy_datetime's text is exact in a session in UTC only
                    # (Django's under USE_TZ): datetimes go as INSERTs.
                    del self.copy_writers[datetime.datetime]
            self.writer = Writer(self.connection.connection)
            # The writer takes the GIL back after each statement; by default the
            # main thread, busy converting, gives it up only every 5 ms.
            sys.setswitchinterval(0.0002)
            self.writer.start()
        if self.copy_writers is not None:
            try:
                data = copy_text(rows, self.copy_writers).encode("utf-8")
            except NotCopied:
                pass
            else:
                pending = self.pending
                if pending is not None and pending[0] != copy:
                    self.send_pending()
                    pending = None
                if pending is None:
                    pending = self.pending = [copy, [], 0, 0, label]
                pending[1].append(data)
                pending[2] += len(data)
                pending[3] += len(rows)
                if pending[2] >= COPY_BYTES:
                    self.send_pending()
                return
        self.send_pending()
        placeholders = "(" + ", ".join(["%s"] * width) + ")"
        params = [value for row in rows for value in row]
        self.writer.submit((text + ", ".join([placeholders] * len(rows)), params, len(rows), label))

    def send_pending(self):
        """Queue the COPY gathered so far (insert), if any."""
        if self.pending is not None:
            copy, chunks, _size, count, label = self.pending
            self.pending = None
            self.writer.submit((copy, b"".join(chunks), count, label))

    def sync(self):
        """Wait until every row given to insert() is written; raise the first
        statement that failed."""
        if self.writer is not None:
            self.send_pending()
            self.writer.sync()

    def close(self):
        """End the writer thread, after what it has queued (call before the
        transaction ends, whatever happened). A COPY gathered and not yet
        queued is not sent: finish() and sync() send it; close() alone is
        the end of a load that failed."""
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

        found = self.keys.setdefault((model, field_name), {})  # natural()'s cache

        def convert(value):
            if value is None:
                return None
            if hasattr(value, "__iter__") and not isinstance(value, str):
                hit = found.get(tuple(value), DEFER)
                return self.natural(model, value, field_name) if hit is DEFER else hit
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
        for earlier in self.order[: self.order.index(table)]:
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
                raise ValueError(
                    "%s(pk=%s) field %s refers to %r, which is neither in the "
                    "fixture nor in the database" % (table.model._meta.label, pk, name, raw)
                )
            updates.setdefault((table, attname), []).append((pk, value))
        for (table, attname), pairs in updates.items():
            manager = table.model._base_manager.using(self.using)
            for pk, value in pairs:
                manager.filter(pk=pk).update(**{attname: value})
        for table, pk, m2m, raw in self.deferred_m2m:
            target = m2m["convert"](raw)
            if target is DEFER:
                raise ValueError(
                    "%s(pk=%s) field %s refers to %r, which is neither in the "
                    "fixture nor in the database"
                    % (table.model._meta.label, pk, m2m["field"].name, raw)
                )
            instance = (
                table.model._base_manager.using(self.using).get(pk=pk) if m2m["signals"] else None
            )
            table.add_m2m(m2m, pk, instance, [raw])
        for table in self.order:
            for m2m in table.m2m.values():
                table.flush_m2m(m2m)
        self.sync()
        self.deferred_fks, self.deferred_m2m = [], []
