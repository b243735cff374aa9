# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Django fixtures read as a stream, and checked without a database.

``iter_fixture`` yields the objects of a fixture one at a time, whatever the
JSON formatting (one object per line, ``indent=2``, all on one line): memory
holds the largest single object plus one chunk, never the whole file.

``FixtureAnalysis`` takes those objects one at a time and remembers only
compact identities (integer primary keys in increasing runs, everything else
as 64-bit digests in one flat array), so a fixture of any size is checked in
memory of a few bytes per object.
"""

from __future__ import annotations

import codecs
import json
import re
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

    def offset(self, pos=None):
        """Byte offset in the stream of position `pos` (default: the current one) of _buf."""
        return self._dropped + _utf8_length(self._buf[: self._pos if pos is None else pos])

    def _fill(self, at_least=0):
        """Append the next chunk (at least `at_least` bytes) to _buf; False at the end."""
        if self._eof:
            return False
        if self._pos:
            self._dropped += _utf8_length(self._buf[: self._pos])
            self._buf = self._buf[self._pos :]
            self._pos = 0
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


def _digest(*parts):
    """A non-zero 64-bit digest of text parts."""
    data = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little") | (1 << 63)


def _key(value):
    """A primary-key value as compared: by its text, so "1" and 1 are the same key."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return int(text) if _DECIMAL.match(text) else text


def _natural_key_text(values):
    """An injective text of a natural key: length-prefixed strings in the
    usual case (all strings), JSON otherwise."""
    if all(isinstance(value, str) for value in values):
        return "".join(f"{len(value)}:{value}" for value in values)
    return "j" + json.dumps(values, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


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


class _IntRanges:
    """Integers recorded in increasing order, kept as runs: a dense
    auto-increment key costs nothing per row."""

    def __init__(self):
        self._starts = array("q")
        self._ends = array("q")

    def append(self, key):
        """Record `key` if it is above every key recorded so far; else False."""
        ends = self._ends
        if ends and key <= ends[-1]:
            return False
        if ends and key == ends[-1] + 1:
            ends[-1] = key
        else:
            self._starts.append(key)
            ends.append(key)
        return True

    def __contains__(self, key):
        i = bisect_right(self._starts, key) - 1
        return i >= 0 and key <= self._ends[i]


class _TextRun:
    """The text primary keys of a model that nothing references, while they
    arrive in increasing order (as dumpdata writes them): a key above the
    last one cannot be a duplicate, so their digests are only appended to a
    flat array (8 bytes per key, no hash table), until a key breaks the order."""

    __slots__ = ("digests", "last")

    def __init__(self, key, digest):
        self.last = key
        self.digests = array("Q", [digest])


class _Identities:
    """The primary keys and natural keys seen so far, per model label.

    referenced: the model labels that references can point to (None: all);
    only their keys are ever looked up."""

    def __init__(self, referenced=None):
        self._ranges = {}
        self._digests = _DigestTable()
        self._referenced = referenced
        self._runs = {}  # label: _TextRun, or None once its order broke

    def add_pk(self, label, key):
        """Record a primary key; False if the model already had it."""
        if (isinstance(key, int) and not isinstance(key, bool)) and _INT64_MIN <= key <= _INT64_MAX:
            ranges = self._ranges.get(label)
            if ranges is None:
                ranges = self._ranges[label] = _IntRanges()
            # An integer above every one in the runs cannot be among the
            # digests either: those were all below the runs' top when added.
            if ranges.append(key):
                return True
            if key in ranges:
                return False
        digest = _digest(label, "pk", str(key))
        if isinstance(key, str) and self._referenced is not None and label not in self._referenced:
            run = self._runs.get(label, False)
            if run is False:
                self._runs[label] = _TextRun(key, digest)
                return True
            if run is not None:
                if key > run.last:
                    run.last = key
                    run.digests.append(digest)
                    return True
                # Out of order: from here on, this model's keys go to the table.
                self._runs[label] = None
                for earlier in run.digests:
                    self._digests.add(earlier)
        return self._digests.add(digest)

    def has_pk(self, label, key):
        if isinstance(key, int) and not isinstance(key, bool):
            ranges = self._ranges.get(label)
            if ranges is not None and key in ranges:
                return True
        digest = _digest(label, "pk", str(key))
        run = self._runs.get(label)
        if run is not None and digest in run.digests:
            return True
        return digest in self._digests

    def add_natural_key(self, label, values):
        self._digests.add(_digest(label, "nk", _natural_key_text(values)))

    def has_natural_key(self, label, values):
        return _digest(label, "nk", _natural_key_text(values)) in self._digests


def _json_type(value):
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), "a number")


def _structure_problem(obj):
    """What makes `obj` not a fixture object, or None."""
    if not isinstance(obj, dict):
        return f"is {_json_type(obj)}, not an object"
    missing = [key for key in ("model", "pk", "fields") if key not in obj]
    if missing:
        return "has no " + " and no ".join(repr(key) for key in missing)
    model = obj["model"]
    if not isinstance(model, str) or model.count(".") != 1:
        return f"has model {model!r}, which is not an 'app_label.model' label"
    if obj["pk"] is None:
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
    """Checks fixture objects given one at a time with add(); report() at the end.

    relations: {model: {field: {"model": target, "many": bool}}} as in the
        archive metadata; without it references are not checkable.
    natural_keys: {model: [field, ...]}: the natural key of a model, made of
        its own fields; a reference written as a list resolves against these.
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
    ):
        self._relations = None
        if relations is not None:
            self._relations = {
                label: tuple(
                    (field, str(spec["model"]).lower(), bool(spec.get("many")))
                    for field, spec in fields.items()
                )
                for label, fields in _lower_keys(relations).items()
            }
        targets = {
            target for plan in (self._relations or {}).values() for _field, target, _many in plan
        }
        self._natural_keys = {
            label: tuple(fields)
            for label, fields in _lower_keys(natural_keys).items()
            if label in targets
        }
        self._recreated = {label.lower() for label in recreated_models}
        self._file_fields = None if file_fields is None else _lower_keys(file_fields)
        self._media = media_files
        self._referenced_media = _DigestTable()
        self._ids = _Identities(targets)
        self._limit = limit

        self.objects = 0
        self.counts = {}
        self._structure = _Bounded(limit)
        self._duplicates = _Bounded(limit)
        self._pending = []  # references whose target had not been seen yet
        self._refs = dict.fromkeys(("checked", "resolved", "recreated", "null"), 0)
        self._uncheckable = _Bounded(limit)
        self._uncheckable_models = set()
        self._files_checked = 0
        self._missing_files = _Bounded(limit)

    def add(self, obj):
        index = self.objects
        self.objects += 1
        problem = _structure_problem(obj)
        if problem:
            self._structure.add({"index": index, "problem": f"object index {index} {problem}"})
            return
        label = obj["model"].lower()
        self.counts[label] = self.counts.get(label, 0) + 1
        pk = obj["pk"]
        if not self._ids.add_pk(label, _key(pk)):
            self._duplicates.add({"index": index, "model": label, "pk": pk})
        fields = obj["fields"]
        nk_fields = self._natural_keys.get(label)
        if nk_fields and all(name in fields for name in nk_fields):
            self._ids.add_natural_key(label, [fields[name] for name in nk_fields])
        if self._relations is not None:
            for field, target, many in self._relations.get(label, ()):
                if field not in fields:
                    continue
                value = fields[field]
                if many and isinstance(value, list):
                    for item in value:
                        self._reference(index, label, pk, field, target, item)
                else:
                    self._reference(index, label, pk, field, target, value)
        if self._file_fields is not None and self._media is not None:
            for field in self._file_fields.get(label, ()):
                self._file(index, label, pk, field, fields.get(field))

    def _reference(self, index, label, pk, field, target, value):
        refs = self._refs
        if value is None:
            refs["null"] += 1
            return
        refs["checked"] += 1
        if target in self._recreated:
            refs["recreated"] += 1
        elif isinstance(value, list) and target not in self._natural_keys:
            self._uncheckable_models.add(target)
            self._uncheckable.add(
                {"index": index, "model": label, "pk": pk, "field": field, "target": target}
            )
        elif self._resolves(target, value):
            refs["resolved"] += 1
        else:
            self._pending.append((index, label, pk, field, target, value))

    def _resolves(self, target, value):
        if isinstance(value, list):
            return self._ids.has_natural_key(target, value)
        return self._ids.has_pk(target, _key(value))

    def _file(self, index, label, pk, field, value):
        if value in (None, ""):
            return
        self._files_checked += 1
        if isinstance(value, str) and value in self._media:
            self._referenced_media.add(_digest("media", value))
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
                        "target": target,
                        "value": value,
                    }
                )
        return {
            "objects": self.objects,
            "counts": dict(self.counts),
            "structure": {"count": self._structure.count, "errors": self._structure.items},
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
        return dict(
            self._refs,
            resolved=self._refs["resolved"] + late,
            checkable=True,
            dangling=dangling.count,
            dangling_items=dangling.items,
            not_checkable=self._uncheckable.count,
            not_checkable_items=self._uncheckable.items,
            not_checkable_models=sorted(self._uncheckable_models),
        )

    def _files_report(self):
        if self._file_fields is None:
            return {"checkable": False, "reason": "the metadata does not name the file fields"}
        if self._media is None:
            return {"checkable": False, "reason": "the media files are not known"}
        orphans = sorted(
            name for name in self._media if _digest("media", name) not in self._referenced_media
        )
        return {
            "checkable": True,
            "checked": self._files_checked,
            "missing": self._missing_files.count,
            "missing_items": self._missing_files.items,
            "media_files": len(self._media),
            "orphans": len(orphans),
            "orphan_items": orphans[: self._limit],
        }
