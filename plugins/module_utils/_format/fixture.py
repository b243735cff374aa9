# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Django fixtures read as a stream, and checked without a database.

``iter_fixture`` yields the objects of a fixture one at a time, whatever the
JSON formatting (one object per line, ``indent=2``, all on one line): memory
holds the largest single object (or the few small ones decoded together) plus
one chunk, never the whole file.

``FixtureAnalysis`` takes those objects one at a time and remembers only
compact identities (integer primary keys in increasing runs, everything else
as 64-bit digests in one flat array) and a bounded number of keys that
references resolved to, so a fixture of any size is checked in memory of a
few bytes per object.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from array import array
from bisect import bisect_right
from hashlib import blake2b

CHUNK_SIZE = 1 << 20
LIST_LIMIT = 20

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECIMAL = re.compile(r"(?:0|-?[1-9][0-9]*)\Z")
# A decoding error this close to the end of the buffer may be a value cut by
# the chunk boundary (a literal such as `fals`, a `\u00` escape): read on.
_CUT_MARGIN = 16
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
_TOP = 1 << 63
_MASK = (1 << 64) - 1
_MEDIA = "media\x00"
_MISSING = object()
# Characters of one-object-per-line text decoded in one call (see
# _ArrayStream._batch): few enough objects that they stay below the cyclic
# garbage collector's threshold (700 new containers), so that reference
# counting alone frees them; a larger batch makes the collector run, and
# promote and traverse them again, for nothing (JSON values hold no cycles).
_BATCH = 1 << 14
# Model names whose _Model is found by the name as the fixture spells it.
_NAMES_LIMIT = 1 << 10
# The keys remembered as resolved (see _Model), at most, all models together.
_RESOLVED_LIMIT = 1 << 12


class FixtureError(ValueError):
    """The fixture is not a JSON array that can be read; says where."""

    def __init__(self, message, index=None, offset=None):
        super().__init__(message)
        self.index = index
        self.offset = offset


def iter_fixture(stream, chunk_size=CHUNK_SIZE):
    """Yield the elements of the top-level JSON array in binary `stream`.

    Reads `chunk_size` bytes at a time. Raises FixtureError, naming the object
    index and byte offset, on input that is not UTF-8, not an array, invalid,
    truncated, or followed by anything but whitespace after the closing `]`.
    """
    return _ArrayStream(stream, chunk_size).elements()


def _utf8_length(text):
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class _ArrayStream:
    """A JSON array decoded element by element from a buffer refilled in chunks."""

    def __init__(self, stream, chunk_size):
        self._stream = stream
        self._chunk_size = chunk_size
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._dropped = 0  # bytes of text already dropped from the front of _buf
        self._read = 0  # bytes read from the stream
        self._eof = False
        self._dropped_chars = 0  # characters dropped from the front of _buf
        self._batching = True  # False once a batch did not decode
        self._unbatched = 0  # no batch before this character of the text (from its start)

    def offset(self, pos=None):
        """Byte offset in the stream of position `pos` (default: the current one) of _buf."""
        return self._dropped + _utf8_length(self._buf[: self._pos if pos is None else pos])

    def _compact(self):
        """Drop the text before the current position from _buf."""
        if self._pos:
            rest = self._buf[self._pos :]
            # What was decoded (read, less what the decoder holds of a
            # character cut by the chunk's end), less the text kept.
            decoded = self._read - len(self._text.getstate()[0])
            self._dropped = decoded - _utf8_length(rest)
            self._dropped_chars += self._pos
            self._buf = rest
            self._pos = 0

    def _fill(self, at_least=0):
        """Append the next chunk (at least `at_least` bytes) to _buf; False at the end."""
        if self._eof:
            return False
        self._compact()
        data = self._stream.read(max(self._chunk_size, at_least))
        try:
            self._buf += self._text.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise FixtureError(
                f"the fixture is not UTF-8 text at byte offset {self._read + exc.start}",
                offset=self._read + exc.start,
            ) from None
        self._read += len(data)
        self._eof = not data
        return True

    def _next_char(self):
        """Skip whitespace; the next character, or '' at the end of the stream."""
        while True:
            self._pos = _WHITESPACE.match(self._buf, self._pos).end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def _value(self, index):
        """Decode the value at the current position, reading on while it is incomplete."""
        while True:
            try:
                value, end = self._json.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated string")
                if not self._eof and (cut or exc.pos >= len(self._buf) - _CUT_MARGIN):
                    self._fill(at_least=len(self._buf) - self._pos)
                    continue
                offset = self.offset(exc.pos)
                if cut or exc.pos >= len(self._buf.rstrip()):
                    message = (
                        f"the fixture ends inside object index {index} (byte offset {offset}): "
                        "it is truncated"
                    )
                else:
                    message = (
                        f"object index {index} is not valid JSON at byte offset {offset}: {exc.msg}"
                    )
                raise FixtureError(message, index=index, offset=offset) from None
            if type(value) in (int, float) and len(self._buf) - end <= 2 and not self._eof:
                # A number at the end of the buffer may go on in the next chunk:
                # "1" of "12", "1" and "." of "1.5", "1" and "e-" of "1e-3".
                self._fill()
                continue
            self._pos = end
            return value

    def _batch(self):
        """The elements from the current position to the last ",\n" in the
        next _BATCH characters of _buf, decoded in one call, or None.

        In the one-object-per-line layout a ",\n" is always between two
        elements (a newline inside a JSON string is escaped), so the text up
        to one is whole elements, which decode as an array faster than one
        by one. Anything else (another layout, invalid JSON) gives None, and
        the elements are decoded one at a time as before, with the same
        errors; a batch that does not decode turns batches off for good."""
        buf, pos = self._buf, self._pos
        if self._dropped_chars + pos < self._unbatched:
            return None
        cut = buf.rfind(",\n", pos, pos + _BATCH)
        if cut <= pos:
            if pos + _BATCH < len(buf):
                # No line end in reach: an element longer than _BATCH, or
                # another layout. One at a time until past the text searched.
                self._unbatched = self._dropped_chars + pos + _BATCH
            else:
                # The element may go on in the next chunk: it alone, from a
                # _buf that holds little else (an error's line count is quick).
                self._unbatched = self._dropped_chars + pos + 1
                self._compact()
            return None
        text = "[" + buf[pos:cut] + "]"
        try:
            values, end = self._json.raw_decode(text)
        except (ValueError, RecursionError):
            values, end = None, 0
        if not values or end != len(text):
            self._batching = False
            return None
        self._pos = cut + 2
        return values

    def elements(self):
        first = self._next_char()
        if not first:
            raise FixtureError("the fixture is empty", offset=self.offset())
        if first != "[":
            raise FixtureError(
                f"the fixture is not a JSON array: it starts with {first!r} "
                f"at byte offset {self.offset()}",
                offset=self.offset(),
            )
        self._pos += 1
        index = 0
        if self._next_char() == "]":
            self._pos += 1
        else:
            while True:
                if not self._next_char():
                    raise FixtureError(
                        f"the fixture ends before object index {index} "
                        f"(byte offset {self.offset()}): it is truncated",
                        index=index,
                        offset=self.offset(),
                    )
                if self._batching:
                    batch = self._batch()
                    if batch:
                        index += len(batch)
                        yield from batch
                        continue
                yield self._value(index)
                index += 1
                # The one-object-per-line layout: ",\n" right after the object.
                if self._buf.startswith(",\n", self._pos):
                    self._pos += 2
                    continue
                separator = self._next_char()
                if separator == ",":
                    self._pos += 1
                    continue
                if separator == "]":
                    self._pos += 1
                    break
                offset = self.offset()
                if not separator:
                    raise FixtureError(
                        f"the fixture ends after object index {index - 1} (byte offset {offset}) "
                        "without the closing ']': it is truncated",
                        index=index - 1,
                        offset=offset,
                    )
                raise FixtureError(
                    f"expected ',' or ']' after object index {index - 1} at byte offset "
                    f"{offset}, found {separator!r}",
                    index=index - 1,
                    offset=offset,
                )
        if self._next_char():
            raise FixtureError(
                f"unexpected data after the closing ']' at byte offset {self.offset()}",
                offset=self.offset(),
            )


def _prefix(*parts):
    """What the text of a digest under `parts` (a model label, a kind) starts with."""
    return "".join(part + "\x00" for part in parts)


if sys.hash_info.width >= 64 and sys.hash_info.algorithm.startswith("siphash"):

    def _digest(prefix, text):
        """A non-zero 64-bit digest of `text` under a _prefix(): Python's own
        string hash, SipHash keyed anew in each process (the digests are
        never kept or compared beyond it), five times faster than blake2b."""
        return hash(prefix + text) & _MASK | _TOP

else:

    def _digest(prefix, text):
        """A non-zero 64-bit digest of `text` under a _prefix()."""
        data = (prefix + text).encode("utf-8", "surrogatepass")
        return int.from_bytes(blake2b(data, digest_size=8).digest(), "little") | _TOP


def _key(value):
    """A primary-key value as compared: by its text, so "1" and 1 are the same key."""
    kind = type(value)
    if kind is int or (kind is not str and isinstance(value, int) and not isinstance(value, bool)):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    # Only digits, or "-" and digits, can be a decimal integer.
    if (text.isdigit() or text[:1] == "-") and _DECIMAL.match(text):
        return int(text)
    return text


def _natural_key_text(values):
    """An injective text of a natural key: length-prefixed strings in the
    usual case (all strings), JSON otherwise."""
    if all(isinstance(value, str) for value in values):
        return "".join(f"{len(value)}:{value}" for value in values)
    return "j" + json.dumps(values, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _key_part(part):
    """A part of a natural-key description (see FixtureAnalysis) as the
    analysis uses it: a field name or "pk", or ("natural_key_of", field)."""
    if isinstance(part, dict):
        return ("natural_key_of", str(part["natural_key_of"]))
    return part


def _is_int(value):
    """An integer from JSON: a bool is not a key."""
    return isinstance(value, int) and not isinstance(value, bool)


def _natural_key_id(values):
    """A natural key as a set member, when it is all strings; else None."""
    if len(values) == 1:
        value = values[0]
        return value if isinstance(value, str) else None
    if all(isinstance(value, str) for value in values):
        return tuple(values)
    return None


class _DigestTable:
    """A set of non-zero 64-bit digests in one flat array (open addressing,
    linear probing): 11 to 21 bytes per entry, where a Python set of bytes
    takes about 100."""

    _INITIAL_SLOTS = 1 << 10

    def __init__(self):
        self._slots = array("Q", [0]) * self._INITIAL_SLOTS
        self._mask = self._INITIAL_SLOTS - 1
        self._size = 0

    def __contains__(self, digest):
        slots, mask = self._slots, self._mask
        i = digest & mask
        while True:
            found = slots[i]
            if found == digest:
                return True
            if not found:
                return False
            i = (i + 1) & mask

    def add(self, digest):
        """Add `digest`; False if it was there already."""
        slots, mask = self._slots, self._mask
        i = digest & mask
        while True:
            found = slots[i]
            if found == digest:
                return False
            if not found:
                break
            i = (i + 1) & mask
        slots[i] = digest
        self._size += 1
        if 4 * self._size > 3 * (mask + 1):
            self._grow()
        return True

    def _grow(self):
        old = self._slots
        self._slots = array("Q", [0]) * (2 * len(old))
        self._mask = 2 * len(old) - 1
        self._size = 0
        for digest in old:
            if digest:
                self.add(digest)


class _TextRun:
    """The text primary keys of a model that nothing references, while they
    arrive in increasing order (as dumpdata writes them): a key above the
    last one cannot be a duplicate, so their digests are only appended to a
    flat array (8 bytes per key, no hash table), until a key breaks the order."""

    __slots__ = ("digests", "last")

    def __init__(self, key, digest):
        self.last = key
        self.digests = array("Q", [digest])


class _Keys:
    """The identities of one model label that _Identities keeps apart from
    its table: integer primary keys recorded in increasing order, as runs
    (`starts`, `ends`: a dense auto-increment key costs nothing per row),
    and, for a model that nothing references, its text keys while they are
    in order (`run`: False before the first, a _TextRun, None once the order
    broke or for a referenced model)."""

    __slots__ = ("ends", "nk_prefix", "pk_prefix", "run", "starts")

    def __init__(self, label, referenced):
        self.starts = array("q")
        self.ends = array("q")
        self.run = None if referenced else False
        self.pk_prefix = _prefix(label, "pk")
        self.nk_prefix = _prefix(label, "nk")

    def in_ranges(self, key):
        i = bisect_right(self.starts, key) - 1
        return i >= 0 and key <= self.ends[i]


class _Identities:
    """The primary keys and natural keys seen so far, per model label.

    referenced: the model labels that references can point to (None: all);
    only their keys are ever looked up."""

    def __init__(self, referenced=None):
        self._digests = _DigestTable()
        self._referenced = referenced

    def keys(self, label):
        """A new, empty _Keys for `label`."""
        return _Keys(label, self._referenced is None or label in self._referenced)

    def add_pk(self, keys, key):
        """Record a primary key (as _key() gives it) in `keys`; False if the
        model already had it."""
        if (isinstance(key, int) and not isinstance(key, bool)) and _INT64_MIN <= key <= _INT64_MAX:
            ends = keys.ends
            if not ends or key > ends[-1]:
                if ends and key == ends[-1] + 1:
                    ends[-1] = key
                else:
                    keys.starts.append(key)
                    ends.append(key)
                return True
            # An integer above every one in the runs cannot be among the
            # digests either: those were all below the runs' top when added.
            if keys.in_ranges(key):
                return False
        digest = _digest(keys.pk_prefix, str(key))
        run = keys.run
        if run is not None and isinstance(key, str):
            if run is False:
                keys.run = _TextRun(key, digest)
                return True
            if key > run.last:
                run.last = key
                run.digests.append(digest)
                return True
            # Out of order: from here on, this model's keys go to the table.
            keys.run = None
            for earlier in run.digests:
                self._digests.add(earlier)
        return self._digests.add(digest)

    def has_pk(self, keys, key):
        if isinstance(key, int) and not isinstance(key, bool) and keys.in_ranges(key):
            return True
        digest = _digest(keys.pk_prefix, str(key))
        run = keys.run
        if run and digest in run.digests:
            return True
        return digest in self._digests

    def add_natural_key(self, keys, values):
        self._digests.add(_digest(keys.nk_prefix, _natural_key_text(values)))

    def has_natural_key(self, keys, values):
        return _digest(keys.nk_prefix, _natural_key_text(values)) in self._digests


class _Model:
    """What the analysis knows of one model label: how its objects are
    checked (from the metadata, worked out once) and its identities.

    relations: ((field, target _Model, many), ...) and to_recreated: ((field,
    many), ...) for targets that are recreated, set on the model's first
    object; natural_key: its fields, if references to the model by natural
    key can be checked; resolved_pks, resolved_nks: keys of this model that
    references resolved to, as the fixture writes them (a str or int primary
    key; the str of a one-field natural key, else a tuple of str), so that a
    key referenced again is not digested and looked up again: at most
    _RESOLVED_LIMIT of all models together (see FixtureAnalysis._forget)."""

    __slots__ = (
        "alternates",
        "count",
        "file_fields",
        "keyless",
        "keys",
        "label",
        "natural_key",
        "real",
        "recreated",
        "relations",
        "resolved_nks",
        "resolved_pks",
        "to_recreated",
    )

    def __init__(self, label, keys, natural_key, file_fields, recreated):
        self.label = label
        self.count = 0
        self.keyless = 0  # objects without a primary key (natural primary keys)
        self.keys = keys
        self.relations = self.to_recreated = None
        self.natural_key = natural_key
        self.file_fields = file_fields
        self.recreated = recreated
        self.resolved_pks = set()
        self.resolved_nks = set()
        # ((field, _Model of its values), ...): this model's unique fields
        # that foreign keys point to (to_field); real: for such a _Model of
        # values, the model itself (a natural key in a reference is its).
        self.alternates = ()
        self.real = None

    def resolved_sets(self):
        return self.resolved_pks, self.resolved_nks


def _json_type(value):
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), "a number")


def _structure_problem(obj, keyless=False):
    """What makes `obj` not a fixture object, or None. keyless: an object
    without a "pk" is one (Django's natural primary keys leave it out)."""
    if not isinstance(obj, dict):
        return f"is {_json_type(obj)}, not an object"
    wanted = ("model", "fields") if keyless and "pk" not in obj else ("model", "pk", "fields")
    missing = [key for key in wanted if key not in obj]
    if missing:
        return "has no " + " and no ".join(repr(key) for key in missing)
    model = obj["model"]
    if not isinstance(model, str) or model.count(".") != 1:
        return f"has model {model!r}, which is not an 'app_label.model' label"
    if "pk" in obj and obj["pk"] is None:
        return "has a null primary key"
    if not isinstance(obj["fields"], dict):
        return f"has fields that are {_json_type(obj['fields'])}, not an object"
    return None


def _lower_keys(mapping):
    return {str(label).lower(): value for label, value in (mapping or {}).items()}


class _Bounded:
    """A count and the first `limit` items counted."""

    def __init__(self, limit):
        self.limit = limit
        self.count = 0
        self.items = []

    def add(self, item):
        self.count += 1
        if len(self.items) < self.limit:
            self.items.append(item)


class FixtureAnalysis:
    """Checks fixture objects given one at a time with add(), or as a stream
    with add_all(); report() at the end.

    relations: {model: {field: {"model": target, "many": bool}}} as in the
        archive metadata; without it references are not checkable.
    natural_keys: {model: [part, ...]}: how the natural key of a model is
        made from its object: a part is the name of one of its fields, "pk"
        (its primary key) or {"natural_key_of": field} (the list a foreign
        key of its own holds, in place); a reference written as a list
        resolves against these.
    recreated_models: targets that the database recreates on migrate
        (content types, permissions): references to them count as resolved.
    file_fields: {model: [field, ...]}; with media_files (the paths under
        media/ that the archive holds: a container that can be iterated)
        every non-empty value is looked up.
    """

    def __init__(
        self,
        relations=None,
        natural_keys=None,
        recreated_models=(),
        file_fields=None,
        media_files=None,
        limit=LIST_LIMIT,
        keyless=False,
    ):
        # keyless: objects without a "pk" are well-formed (a fixture of
        # Django's natural primary keys, which a load gives new keys).
        self._keyless = keyless
        self._identical = _DigestTable()  # keyless objects seen, by their whole text
        self._relations = None
        # A foreign key to a unique field that is not the key (to_field) holds
        # that field's value: it resolves against the values of that field,
        # kept as the keys of a model of their own, "<target> (<field>)".
        self._alternates = {}  # target: ((field, its own label), ...)
        self._real = {}  # the label of a to_field's values: its target
        if relations is not None:
            self._relations = {
                label: tuple(
                    (field, self._target_label(spec), bool(spec.get("many")))
                    for field, spec in fields.items()
                )
                for label, fields in _lower_keys(relations).items()
            }
        targets = {
            target for plan in (self._relations or {}).values() for _field, target, _many in plan
        }
        targets |= set(self._alternates)
        self._natural_keys = {
            label: tuple(_key_part(part) for part in parts)
            for label, parts in _lower_keys(natural_keys).items()
            if label in targets
        }
        self._recreated = {label.lower() for label in recreated_models}
        self._file_fields = None if file_fields is None else _lower_keys(file_fields)
        self._media = media_files
        self._referenced_media = _DigestTable()
        self._ids = _Identities(targets)
        self._limit = limit
        self._models = {}  # label: _Model
        self._by_name = {}  # model as the fixture spells it: _Model, for the first few names
        self._remembered = 0  # keys in the resolved_pks and resolved_nks of all models

        self.objects = 0
        self._counted = []  # the _Model of each label counted, in the order first seen
        self._structure = _Bounded(limit)
        self._duplicates = _Bounded(limit)
        self._pending = []  # references whose target had not been seen yet
        self._checked = self._resolved = self._recreated_refs = self._null = 0
        self._uncheckable = _Bounded(limit)
        self._uncheckable_models = set()
        self._files_checked = 0
        self._missing_files = _Bounded(limit)

    def _target_label(self, spec):
        target = str(spec["model"]).lower()
        to_field = spec.get("to_field")
        if not to_field:
            return target
        label = f"{target} ({to_field})"
        self._real[label] = target
        known = self._alternates.setdefault(target, ())
        if (to_field, label) not in known:
            self._alternates[target] = (*known, (to_field, label))
        return label

    @property
    def counts(self):
        """{label: objects} of the well-formed objects, per lower-case label."""
        return {model.label: model.count for model in self._counted}

    def _model(self, label):
        """The _Model of a lower-case label, made on first use (the _Model of
        a to_field's values with its real model: a natural key in a
        reference is the real model's, whether or not its objects came)."""
        model = self._models.get(label)
        if model is None:
            files = None
            if self._file_fields is not None and self._media is not None:
                files = tuple(self._file_fields.get(label, ()))
            model = self._models[label] = _Model(
                label,
                self._ids.keys(label),
                self._natural_keys.get(label),
                files,
                label in self._recreated,
            )
            real = self._real.get(label)
            if real is not None:
                model.real = self._model(real)
        return model

    def _model_of(self, name):
        """The _Model of an object's model `name` ('app_label.model', any case)."""
        model = self._model(name.lower())
        if model.relations is None:
            plan = [
                (field, self._model(target), many)
                for field, target, many in (self._relations or {}).get(model.label, ())
            ]
            model.relations = tuple(ref for ref in plan if not ref[1].recreated)
            model.to_recreated = tuple(
                (field, many) for field, target, many in plan if target.recreated
            )
            model.alternates = tuple(
                (field, self._model(label))
                for field, label in self._alternates.get(model.label, ())
            )
        if len(self._by_name) < _NAMES_LIMIT:
            self._by_name[name] = model
        return model

    def _admit(self, index, obj):
        """(model, pk, fields) of an object that did not pass add()'s quick
        test, or Nones if it is malformed (counted as such)."""
        problem = _structure_problem(obj, self._keyless)
        if problem:
            self._structure.add({"index": index, "problem": f"object index {index} {problem}"})
            return None, None, None
        model = self._model_of(obj["model"])
        if not model.count:
            self._counted.append(model)
        return model, obj.get("pk"), obj["fields"]

    def add(self, obj):
        """Check one object (its index: the number of objects added before it)."""
        self.add_all((obj,))

    def add_all(self, objects):
        """add() each object of an iterable in turn (a fixture stream: what
        iter_fixture yields). If the iterable raises, the objects before
        count, and the exception goes on."""
        by_name = self._by_name
        add_pk = self._ids.add_pk
        reference = self._reference
        is_known = self._is_known
        index = self.objects - 1
        known = recreated = null = 0  # references counted here, not by _reference()
        try:
            for obj in objects:
                index += 1
                # The usual object passes this quick test (a model name seen
                # before, a primary key, fields); any other, _structure_problem().
                try:
                    model = by_name[obj["model"]]
                    pk = obj["pk"]
                    fields = obj["fields"]
                except (KeyError, TypeError):
                    pk = None
                if pk is None or not isinstance(fields, dict):
                    model, pk, fields = self._admit(index, obj)
                    if model is None:
                        continue
                model.count += 1
                keys = model.keys
                ends = keys.ends
                # A dense integer key: the next of its run.
                if pk is None:
                    # Admitted without one: an object the same as an earlier
                    # one of its model is the duplicate there can be (a load
                    # by natural key makes one row of both).
                    model.keyless += 1
                    text = json.dumps(fields, sort_keys=True, default=str)
                    if not self._identical.add(_digest(_prefix(model.label, "keyless"), text)):
                        self._duplicates.add(
                            {"index": index, "model": model.label, "pk": None, "identical": True}
                        )
                elif _is_int(pk) and ends and pk == ends[-1] + 1 and pk <= _INT64_MAX:
                    ends[-1] = pk
                elif not add_pk(keys, _key(pk)):
                    self._duplicates.add({"index": index, "model": model.label, "pk": pk})
                if model.natural_key and pk is not None:
                    self._add_natural_key(model, pk, fields)
                for field, alternate in model.alternates:
                    value = fields.get(field)
                    if value is not None:
                        self._ids.add_pk(alternate.keys, _key(value))
                for field, target, many in model.relations:
                    value = fields.get(field, _MISSING)
                    if many and isinstance(value, list):
                        for item in value:
                            if not is_known(target, item):
                                reference(index, model.label, pk, field, target, item)
                        continue
                    # A key that a reference resolved to before (see _Model),
                    # or an integer among the target's runs: is_known() inline.
                    kind = type(value)
                    if kind is str:
                        if value in target.resolved_pks:
                            known += 1
                            continue
                    elif kind is int:
                        runs = target.keys
                        i = bisect_right(runs.starts, value)
                        if i and value <= runs.ends[i - 1]:
                            known += 1
                            continue
                    elif kind is list:
                        if (
                            len(value) == 1
                            and isinstance(value[0], str)
                            and value[0] in target.resolved_nks
                        ):
                            known += 1
                            continue
                    elif value is _MISSING:
                        continue
                    reference(index, model.label, pk, field, target, value)
                for field, many in model.to_recreated:
                    value = fields.get(field, _MISSING)
                    if value is _MISSING:
                        continue
                    for item in value if many and isinstance(value, list) else (value,):
                        if item is None:
                            null += 1
                        else:
                            recreated += 1
                if model.file_fields:
                    for field in model.file_fields:
                        self._file(index, model.label, pk, field, fields.get(field))
        finally:
            self.objects = index + 1
            self._checked += known + recreated
            self._resolved += known
            self._recreated_refs += recreated
            self._null += null

    def _is_known(self, target, value):
        """Whether `value` is a key that a reference to `target` resolved to
        before (see _Model), or an integer among the target's runs; counted."""
        kind = type(value)
        if kind is str:
            found = value in target.resolved_pks
        elif kind is int:
            i = bisect_right(target.keys.starts, value)
            found = i > 0 and value <= target.keys.ends[i - 1]
        elif kind is list and len(value) == 1 and isinstance(value[0], str):
            found = value[0] in target.resolved_nks
        else:
            return False
        if found:
            self._checked += 1
            self._resolved += 1
        return found

    def _add_natural_key(self, model, pk, fields):
        """The object's natural key, rebuilt from its parts (see natural_keys)."""
        values = []
        for part in model.natural_key:
            if part == "pk":
                values.append(pk)
            elif isinstance(part, tuple):  # ("natural_key_of", field): a list, in place
                value = fields.get(part[1])
                if not isinstance(value, list):
                    return
                values.extend(value)
            elif part in fields:
                values.append(fields[part])
            else:
                return
        self._ids.add_natural_key(model.keys, values)

    def _reference(self, index, label, pk, field, target, value):
        if value is None:
            self._null += 1
            return
        self._checked += 1
        if target.recreated:
            self._recreated_refs += 1
            return
        if isinstance(value, list) and target.real is not None:
            target = target.real
        if isinstance(value, list):
            if target.natural_key is None:
                self._uncheckable_models.add(target.label)
                self._uncheckable.add(
                    {
                        "index": index,
                        "model": label,
                        "pk": pk,
                        "field": field,
                        "target": target.label,
                    }
                )
                return
            resolved, key = target.resolved_nks, _natural_key_id(value)
        else:
            resolved = target.resolved_pks
            key = value if isinstance(value, str) or _is_int(value) else None
        if key is not None and key in resolved:
            self._resolved += 1
        elif self._resolves(target, value):
            self._resolved += 1
            if key is not None:
                if self._remembered >= _RESOLVED_LIMIT:
                    self._forget(resolved)
                resolved.add(key)
                self._remembered += 1
        else:
            self._pending.append((index, label, pk, field, target, value))

    def _forget(self, resolved):
        """Make room in the sets of resolved keys: empty `resolved`, the set
        that grows (the keys of a model referenced in order, each a few
        times: the usual case), or the largest if `resolved` is small."""
        if len(resolved) < _RESOLVED_LIMIT // 4:
            sets = (keys for model in self._models.values() for keys in model.resolved_sets())
            resolved = max(sets, key=len)
        self._remembered -= len(resolved)
        resolved.clear()

    def _resolves(self, target, value):
        if isinstance(value, list):
            return self._ids.has_natural_key(target.keys, value)
        return self._ids.has_pk(target.keys, _key(value))

    def _file(self, index, label, pk, field, value):
        if value in (None, ""):
            return
        self._files_checked += 1
        if isinstance(value, str) and value in self._media:
            self._referenced_media.add(_digest(_MEDIA, value))
        else:
            self._missing_files.add(
                {"index": index, "model": label, "pk": pk, "field": field, "value": value}
            )

    def report(self):
        """What the objects added so far show, as plain data.

        Forward references are resolved here, against everything added.
        """
        late = 0
        dangling = _Bounded(self._limit)
        for index, label, pk, field, target, value in self._pending:
            if self._resolves(target, value):
                late += 1
            else:
                dangling.add(
                    {
                        "index": index,
                        "model": label,
                        "pk": pk,
                        "field": field,
                        "target": target.label,
                        "value": value,
                    }
                )
        return {
            "objects": self.objects,
            "counts": self.counts,
            "structure": {"count": self._structure.count, "errors": self._structure.items},
            "keyless": {model.label: model.keyless for model in self._counted if model.keyless},
            "duplicates": {"count": self._duplicates.count, "items": self._duplicates.items},
            "references": self._references_report(late, dangling),
            "files": self._files_report(),
        }

    def _references_report(self, late, dangling):
        if self._relations is None:
            return {
                "checkable": False,
                "reason": "the metadata does not say which fields are references",
            }
        return {
            "checked": self._checked,
            "resolved": self._resolved + late,
            "recreated": self._recreated_refs,
            "null": self._null,
            "checkable": True,
            "dangling": dangling.count,
            "dangling_items": dangling.items,
            "not_checkable": self._uncheckable.count,
            "not_checkable_items": self._uncheckable.items,
            "not_checkable_models": sorted(self._uncheckable_models),
        }

    def _files_report(self):
        if self._file_fields is None:
            return {"checkable": False, "reason": "the metadata does not name the file fields"}
        if self._media is None:
            return {"checkable": False, "reason": "the media files are not known"}
        media_files = 0
        orphans = []
        for name in self._media:
            media_files += 1
            if _digest(_MEDIA, name) not in self._referenced_media:
                orphans.append(name)
        orphans.sort()
        return {
            "checkable": True,
            "checked": self._files_checked,
            "missing": self._missing_files.count,
            "missing_items": self._missing_files.items,
            "media_files": media_files,
            "orphans": len(orphans),
            "orphan_items": orphans[: self._limit],
        }
