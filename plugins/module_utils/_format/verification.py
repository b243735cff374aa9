# Private to the edms.backup collection: no compatibility promise to anyone else.
"""Offline verification of an archive: every check of docs/archive-format.md,
without a database.

The archive is read through _format/archive.py, whose safety checks (names,
links, bombs) come first; verification then reads every member once, the
fixture as a stream (_format/fixture.py).
"""

from __future__ import annotations

import json
import re

from ansible_collections.edms.backup.plugins.module_utils._format.archive import (
    DEFAULT_MAX_ARCHIVE_RATIO,
    DEFAULT_MAX_RATIO,
    DEFAULT_MAX_TOTAL_SIZE,
    DEFAULT_RATIO_MIN_SIZE,
    DEFAULT_RECREATED_MODELS,
    FIXTURE,
    FORMAT,
    FORMAT_VERSION,
    MEDIA_PREFIX,
    METADATA,
    METADATA_MAX_SIZE,
    ArchiveError,
    ArchiveReader,
    KeyProblem,
    bomb_problems,
    link_problems,
    name_problems,
    pinned,
)
from ansible_collections.edms.backup.plugins.module_utils._format.fixture import (
    CHUNK_SIZE,
    LIST_LIMIT,
    FixtureAnalysis,
    FixtureError,
    iter_fixture,
)

PASS = "pass"
FAIL = "fail"
NOT_CHECKABLE = "not_checkable"
CHECKS = (
    "archive_opens",
    "member_names",
    "no_links",
    "no_bomb",
    "zip_crc",
    "metadata",
    "member_checksums",
    "fixture_parses",
    "object_structure",
    "counts",
    "unique_pks",
    "references",
    "required_models",
    "media_files",
)
_EXAMPLES = 3


def _labels(value):
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _per_label(test):
    def mapping(value):
        return isinstance(value, dict) and all(
            isinstance(key, str) and test(item) for key, item in value.items()
        )

    return mapping


def _key_parts(value):
    """A natural key's description: field names, "pk", {"natural_key_of": field}."""
    return isinstance(value, list) and all(
        isinstance(part, str)
        or (
            isinstance(part, dict)
            and list(part) == ["natural_key_of"]
            and isinstance(part["natural_key_of"], str)
        )
        for part in value
    )


def _relation(spec):
    return (
        isinstance(spec, dict)
        and isinstance(spec.get("model"), str)
        and isinstance(spec.get("many", False), bool)
        and isinstance(spec.get("to_field", ""), str)
    )


def _checksum(entry):
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and (isinstance(entry.get("size"), int) and not isinstance(entry.get("size"), bool))
    )


# The metadata keys that verification uses, all required in format version 1:
# what each must be, and the test of it. A value that fails its test is not used.
METADATA_KEYS = {
    "members": ("an object of {sha256, size} per member", _per_label(_checksum)),
    "counts": (
        "an object of a count per model",
        _per_label(lambda count: isinstance(count, int) and not isinstance(count, bool)),
    ),
    "m2m_tables": ("a list of model labels", _labels),
    "relations": (
        "an object of {field: {model, many, to_field}} per model",
        _per_label(_per_label(_relation)),
    ),
    "natural_keys": (
        "an object of natural-key parts (field names, pk, {natural_key_of}) per model",
        _per_label(_key_parts),
    ),
    "file_fields": ("an object of field names per model", _per_label(_labels)),
    "recreated_models": ("a list of model labels", _labels),
    "required_models": ("a list of model labels", _labels),
}


def verify_archive(
    path,
    required_models=None,
    recreated_models=None,
    max_total_size=DEFAULT_MAX_TOTAL_SIZE,
    max_ratio=DEFAULT_MAX_RATIO,
    ratio_min_size=DEFAULT_RATIO_MIN_SIZE,
    max_archive_ratio=DEFAULT_MAX_ARCHIVE_RATIO,
    chunk_size=CHUNK_SIZE,
    limit=LIST_LIMIT,
):
    """Verify an archive without a database; return the result as plain data.

    {"archive", "layout", "ok", "checks": [{"name", "status", "detail",
    "numbers", "items"}], "problems": [one line per failed check]}, the checks
    in the order of CHECKS. A check that the archive (or what its metadata
    says) cannot support is "not_checkable", with the reason; `ok` is true
    when no check failed. required_models and recreated_models default to what
    the metadata says.
    """
    verification = _Verification(
        path,
        required_models=required_models,
        recreated_models=recreated_models,
        limits=(max_total_size, max_ratio, ratio_min_size, max_archive_ratio),
        chunk_size=chunk_size,
        limit=limit,
    )
    return verification.run()


def verify_pinned(path, source=None, **options):
    """(verify_archive's result, source): the archive verified through
    pinned(path) (or source, pinned(path) taken earlier), the result naming
    ``path``; read it from source after."""
    source = source or pinned(path)
    try:
        result = verify_archive(source, **options)
    except ArchiveError as exc:  # a KeyProblem: named by the archive's path, not the pin's
        raise type(exc)(str(exc).replace(source, path)) from None
    if source != path:
        result = renamed(result, source, path)
    return result, source


def renamed(value, old, new):
    """value (plain data) with every string's ``old`` replaced by ``new``."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [renamed(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: renamed(item, old, new) for key, item in value.items()}
    return value


def _examples(items, render, count):
    """The first few items rendered, and how many more there are."""
    text = "; ".join(render(item) for item in items[:_EXAMPLES])
    if count > _EXAMPLES:
        text += f"; and {count - _EXAMPLES} more"
    return text


def _plural(count, word, plural=None):
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _show(value):
    return json.dumps(value, ensure_ascii=False)


class _MediaFiles:
    """The paths under media/ of an archive, looked up in the archive's own
    directory rather than copied."""

    def __init__(self, reader):
        self._reader = reader

    def __contains__(self, path):
        member = self._reader.member(MEDIA_PREFIX + path)
        return member is not None and member.kind == "file"

    def __iter__(self):
        for member in self._reader.iter_members():
            if member.kind == "file" and member.name.startswith(MEDIA_PREFIX):
                yield member.name[len(MEDIA_PREFIX) :]

    def __len__(self):
        return sum(1 for _member in self)


_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
_ENTRY = 41  # bytes per member in _Checksums: a flag, the sha256 digest, the size
_LISTED, _PACKED = 1, 2


class _Checksums:
    """Metadata's member list, {name: {"sha256", "size"}}, held compactly for
    the reading: one flat buffer of 41 bytes per archive member, in the
    archive's order, instead of a dict and two strings per member (about
    500 bytes). Nothing of the parsed list is kept, so its memory is free
    again before the fixture is analysed. A sha256 that is not 64 lower-case
    hex digits, or a size that does not fit 8 bytes, is kept as given."""

    def __init__(self, members, names):
        """members: the parsed list (emptied here); names: the archive's
        file members, in the order that expected() is asked with."""
        self._buffer = bytearray(_ENTRY * len(names))
        self._unusual = {}  # index: (sha256, size), as metadata gives them
        self._count = len(members)
        for index, name in enumerate(names):
            entry = members.pop(name, None)
            if entry is None:
                continue
            sha256, size = entry["sha256"], entry["size"]
            start = index * _ENTRY
            if _SHA256_HEX.match(sha256) and 0 <= size < 1 << 64:
                self._buffer[start] = _LISTED | _PACKED
                self._buffer[start + 1 : start + _ENTRY] = bytes.fromhex(sha256) + size.to_bytes(
                    8, "big"
                )
            else:
                self._buffer[start] = _LISTED
                self._unusual[index] = (sha256, size)
        # Listed, but not in the archive.
        self.missing = sorted(members)
        members.clear()

    def expected(self, index):
        """(sha256, size) that metadata gives for archive member `index`, or None."""
        start = index * _ENTRY
        flags = self._buffer[start]
        if not flags & _LISTED:
            return None
        if not flags & _PACKED:
            return self._unusual[index]
        packed = self._buffer[start + 1 : start + _ENTRY]
        return packed[:32].hex(), int.from_bytes(packed[32:], "big")

    def __len__(self):
        return self._count


class _Verification:
    """One run of verify_archive: reads the archive once, then reports each check."""

    def __init__(self, path, required_models, recreated_models, limits, chunk_size, limit):
        self.path = path
        self.required_models = required_models
        self.recreated_models = recreated_models
        self.limits = limits
        self.chunk_size = chunk_size
        self.limit = limit
        self.checks = {}
        self.layout = "unknown"
        self.metadata = {}
        self.usable = {}  # the keys of METADATA_KEYS whose values pass their test
        self.malformed = []  # and those whose values do not
        self.read_count = 0  # members read in full, and their bytes
        self.read_bytes = 0
        self.read_errors = {}  # member name: why it could not be read
        self.listed = None  # metadata's "members" as _Checksums, when it has them
        self.checksum_problems = []  # (member name, problem)
        self.matched = 0
        self.extra = 0
        self.has_metadata = False
        self.metadata_problem = None
        self.has_fixture = False
        self.fixture_error = None
        self.fixture_size = 0
        self.report = None
        self.media = None
        self.media_bytes = 0
        self.skipped = "not run: the fixture cannot be read"

    def check(self, name, status, detail, items=(), **numbers):
        self.checks[name] = {
            "name": name,
            "status": status,
            "detail": detail,
            "numbers": numbers,
            "items": list(items),
        }

    def run(self):
        try:
            reader = ArchiveReader.open(self.path)
        except KeyProblem:
            raise  # a verdict on the key, not on the archive: the caller says so
        except ArchiveError as exc:
            self.check("archive_opens", FAIL, str(exc))
            return self.result("not run: the archive cannot be opened")
        self.encrypted = getattr(reader, "encrypted", False)
        with reader:
            if not self.safety(reader):
                return self.result(
                    "not run: the archive failed a safety check, so nothing in it was read"
                )
            self.read(reader)
            self.check_crc(reader.kind)
            self.check_metadata(reader.kind)
            self.check_checksums()
            self.check_fixture()
        return self.result(self.skipped)

    def result(self, reason):
        checks = [
            self.checks.get(name)
            or {
                "name": name,
                "status": NOT_CHECKABLE,
                "detail": reason,
                "numbers": {},
                "items": [],
            }
            for name in CHECKS
        ]
        return {
            "archive": self.path,
            "encrypted": getattr(self, "encrypted", False),
            "layout": self.layout,
            "ok": all(check["status"] != FAIL for check in checks),
            "checks": checks,
            "problems": [check["detail"] for check in checks if check["status"] == FAIL],
            # The fixture's objects per model (lower-case labels), as found.
            "fixture_counts": dict(self.report["counts"]) if self.report else {},
        }

    # Safety, from the archive's directory alone.

    def safety(self, reader):
        members = reader.members()
        self.check(
            "archive_opens",
            PASS,
            f"the archive opens as a {reader.kind} of {_plural(len(members), 'member')}",
            members=len(members),
        )
        problems = name_problems(members)
        self.check(
            "member_names",
            FAIL if problems else PASS,
            _examples(problems, str, len(problems))
            or "no member name is absolute, has a '..', '.' or empty component, a backslash,"
            " a NUL or a work directory's name, or extracts to the path of another",
            items=problems[: self.limit],
            members=len(members),
            unsafe=len(problems),
        )
        links = link_problems(members)
        self.check(
            "no_links",
            FAIL if links else PASS,
            _examples(links, str, len(links)) or "no member is a link or a special file",
            items=links[: self.limit],
            members=len(members),
            links=len(links),
        )
        bombs, numbers = bomb_problems(members, *self.limits)
        self.check(
            "no_bomb",
            FAIL if bombs else PASS,
            _examples(bombs, str, len(bombs))
            or f"{numbers['bytes']} bytes in all, within the limit of {self.limits[0]}; "
            f"no member over {self.limits[2]} bytes expands more than {self.limits[1]}:1, "
            f"nor the archive as a whole more than {self.limits[3]}:1",
            items=bombs[: self.limit],
            **numbers,
        )
        return not (problems or links or bombs)

    # Reading: metadata first (it says what the fixture holds), then every
    # other member once, in archive order.

    def read(self, reader):
        files = []
        for member in reader.iter_members():
            if member.kind == "file":
                files.append(member.name)
                if member.name.startswith(MEDIA_PREFIX):
                    self.media_bytes += member.size
        self.media = _MediaFiles(reader)
        self.has_metadata = reader.member(METADATA) is not None
        self.has_fixture = reader.member(FIXTURE) is not None
        if self.has_metadata:
            self.read_metadata(reader, reader.member(METADATA), files)
        self.listed = self.usable.get("members")
        for index, name in enumerate(files):
            if name == METADATA:
                continue
            try:
                with reader.open_member(name) as stream:
                    if name == FIXTURE:
                        self.read_fixture(stream)
                    stream.drain()
            except ArchiveError as exc:
                self.read_errors[name] = str(exc)
                self.compare(index, name, None, None)
            else:
                self.read_count += 1
                self.read_bytes += stream.size
                if name == FIXTURE:
                    self.fixture_size = stream.size
                self.compare(index, name, stream.sha256, stream.size)
        if self.listed is not None:
            self.checksum_problems += [
                (name, f"member {name!r} is listed in metadata.json but missing")
                for name in self.listed.missing
            ]
            self.checksum_problems.sort()

    def compare(self, index, name, sha256, size):
        """Compare file member `index` of the archive (sha256 None: it could not
        be read) with metadata's list."""
        if self.listed is None:
            return
        expected = self.listed.expected(index)
        if expected is None:
            self.extra += 1
            problem = f"member {name!r} is not listed in metadata.json"
        elif sha256 is None:
            problem = f"member {name!r} cannot be read, so its sha256 is unknown"
        elif (sha256, size) != expected:
            problem = (
                f"member {name!r} has sha256 {sha256} and size {size}; metadata.json "
                f"says {expected[0]} and {expected[1]}"
            )
        else:
            self.matched += 1
            return
        self.checksum_problems.append((name, problem))

    def read_metadata(self, reader, member, files):
        if member.size > METADATA_MAX_SIZE:
            self.metadata_problem = (
                f"metadata.json is {member.size} bytes, over the {METADATA_MAX_SIZE} "
                "a metadata file may have"
            )
            return
        try:
            with reader.open_member(METADATA) as stream:
                data = stream.read()
            self.read_count += 1
            self.read_bytes += stream.size
        except ArchiveError as exc:
            self.read_errors[METADATA] = str(exc)
            self.metadata_problem = f"metadata.json cannot be read: {exc}"
            return
        try:
            text = data.decode("utf-8")
            del data  # the text only, while it is parsed
            metadata = json.loads(text)
        except ValueError as exc:
            self.metadata_problem = f"metadata.json is not valid JSON: {exc}"
            return
        del text
        if not isinstance(metadata, dict):
            self.metadata_problem = "metadata.json is not a JSON object"
            return
        self.metadata = metadata
        for key, (_description, test) in METADATA_KEYS.items():
            if key in metadata:
                if test(metadata[key]):
                    self.usable[key] = metadata[key]
                else:
                    self.malformed.append(key)
        if "members" in self.usable:
            # The one part of the metadata that grows with the archive: held
            # compactly from here on, before the fixture is analysed.
            checksums = _Checksums(self.usable["members"], files)
            self.usable["members"] = metadata["members"] = checksums

    def read_fixture(self, stream):
        usable = self.usable
        recreated = self.recreated_models
        if recreated is None:
            recreated = usable.get("recreated_models", DEFAULT_RECREATED_MODELS)
        analysis = FixtureAnalysis(
            relations=usable.get("relations"),
            natural_keys=usable.get("natural_keys"),
            recreated_models=recreated,
            file_fields=usable.get("file_fields"),
            media_files=self.media,
            limit=self.limit,
            # Only a foreign archive may leave primary keys out: this
            # collection's fixtures keep every one.
            keyless=self.metadata.get("format") != FORMAT,
        )
        try:
            analysis.add_all(iter_fixture(stream, self.chunk_size))
        except FixtureError as exc:
            self.fixture_error = str(exc)
        except RecursionError:
            # json's decoder recurses once per level of nesting.
            self.fixture_error = "a value is nested too deeply to be read"
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            self.fixture_error = "a value cannot be read: " + " ".join(str(exc).split())
        self.report = analysis.report()

    # The checks, in order.

    def check_crc(self, kind):
        errors = sorted(self.read_errors.values())
        numbers = {
            "members": self.read_count + len(errors),
            "bytes": self.read_bytes,
            "damaged": len(errors),
        }
        if errors:
            self.check(
                "zip_crc",
                FAIL,
                _examples(errors, str, len(errors)),
                items=errors[: self.limit],
                **numbers,
            )
        elif kind == "zip":
            self.check(
                "zip_crc",
                PASS,
                f"every member reads in full with a matching CRC-32 ({numbers['bytes']} bytes)",
                **numbers,
            )
        else:
            self.check(
                "zip_crc",
                NOT_CHECKABLE,
                "a directory has no CRC-32s; every file in it reads in full",
                **numbers,
            )

    def check_metadata(self, kind):
        metadata = self.metadata
        native = f"edms-native {'zip' if kind == 'zip' else 'directory'}"
        if metadata.get("format") == FORMAT:
            self.layout = f"{FORMAT} v{metadata.get('format_version', '?')}"
        else:
            self.layout = native
        if not self.has_metadata:
            self.check("metadata", FAIL, "metadata.json is missing")
            return
        if self.metadata_problem:
            self.check("metadata", FAIL, self.metadata_problem)
            return
        numbers = {"keys": len(metadata)}
        if self.layout not in (native, f"{FORMAT} v{FORMAT_VERSION}"):
            self.check(
                "metadata",
                FAIL,
                f"metadata.json is {FORMAT} format version {metadata.get('format_version')!r}; "
                f"this collection reads version {FORMAT_VERSION}",
                **numbers,
            )
            return
        wrong = [f"{key} is not {METADATA_KEYS[key][0]}" for key in self.malformed]
        if self.layout != native:
            wrong = [f"{key} is missing" for key in METADATA_KEYS if key not in metadata] + wrong
        if wrong:
            self.check("metadata", FAIL, "in metadata.json, " + "; ".join(wrong), **numbers)
        elif self.layout == native:
            self.check(
                "metadata",
                PASS,
                "metadata.json is not this collection's; of what verification uses it gives "
                + (", ".join(self.usable) or "nothing"),
                **numbers,
            )
        else:
            self.check("metadata", PASS, f"metadata.json is {FORMAT} format version 1", **numbers)

    def check_checksums(self):
        if self.listed is None:
            self.check(
                "member_checksums",
                NOT_CHECKABLE,
                "metadata.json lists no member checksums",
            )
            return
        problems = [problem for _member, problem in self.checksum_problems]
        numbers = {
            "listed": len(self.listed),
            "matched": self.matched,
            "extra": self.extra,
            "problems": len(problems),
        }
        if problems:
            detail = _examples(problems, str, len(problems))
            self.check("member_checksums", FAIL, detail, items=problems[: self.limit], **numbers)
        else:
            self.check(
                "member_checksums",
                PASS,
                f"{_plural(self.matched, 'member')} listed, each with the sha256 and size "
                "that metadata.json gives",
                **numbers,
            )

    def check_fixture(self):
        if not self.has_fixture:
            self.check("fixture_parses", FAIL, f"{FIXTURE} is missing")
            self.skipped = "not run: the archive has no fixture"
            return
        if FIXTURE in self.read_errors:
            self.check("fixture_parses", FAIL, self.read_errors[FIXTURE])
            return
        size = self.fixture_size
        report = self.report
        if self.fixture_error:
            self.check(
                "fixture_parses",
                FAIL,
                f"{FIXTURE} does not parse: {self.fixture_error}",
                objects=report["objects"],
                bytes=size,
            )
            self.skipped = "not run: the fixture does not parse"
            return
        self.check(
            "fixture_parses",
            PASS,
            f"{FIXTURE} parses: {_plural(report['objects'], 'object')}, {size} bytes",
            objects=report["objects"],
            bytes=size,
        )
        self.check_structure()
        self.check_counts()
        self.check_duplicates()
        self.check_references()
        self.check_required()
        self.check_files()

    def check_structure(self):
        structure = self.report["structure"]
        numbers = {"objects": self.report["objects"], "bad": structure["count"]}
        if structure["count"]:
            detail = f"malformed objects in the fixture ({structure['count']}): "
            detail += _examples(structure["errors"], lambda e: e["problem"], structure["count"])
            self.check("object_structure", FAIL, detail, items=structure["errors"], **numbers)
        elif self.report["keyless"]:
            keyless = self.report["keyless"]
            numbers["keyless"] = sum(keyless.values())
            self.check(
                "object_structure",
                PASS,
                "every object has a model and fields; {} carry no primary key (natural"
                " primary keys: a load gives them new ones): {}".format(
                    _plural(numbers["keyless"], "object"),
                    ", ".join(f"{n} {label}" for label, n in sorted(keyless.items())),
                ),
                keyless_models=keyless,
                **numbers,
            )
        else:
            self.check(
                "object_structure",
                PASS,
                "every object has a model, a primary key and fields",
                **numbers,
            )

    def check_counts(self):
        declared = self.usable.get("counts")
        if declared is None:
            self.check("counts", NOT_CHECKABLE, "metadata.json gives no counts per model")
            return
        declared = {str(label).lower(): count for label, count in declared.items()}
        found = self.report["counts"]
        m2m_tables = self.usable.get("m2m_tables")
        if m2m_tables is not None:
            # This collection's metadata counts every model: compare them all,
            # except the auto-created m2m tables, which are not fixture objects.
            skip = {str(label).lower() for label in m2m_tables}
            compared = (set(declared) | set(found)) - skip
        else:
            # Foreign counts may be partial, and may count m2m tables: compare
            # the models the fixture or the relations know.
            known = set(found) | set(self.usable.get("relations", {}))
            compared = set(declared) & known
        differing = [
            {"model": label, "fixture": found.get(label, 0), "metadata": declared.get(label)}
            for label in sorted(compared)
            if found.get(label, 0) != declared.get(label)
        ]
        not_compared = sorted(set(declared) - compared)
        numbers = {
            "models": len(compared),
            "differing": len(differing),
            "not_compared": len(not_compared),
        }
        if differing:
            detail = "object counts differ from metadata.json: " + _examples(
                differing,
                lambda d: (
                    f"{d['model']} has {d['fixture']} in the fixture, "
                    f"{d['metadata'] if d['metadata'] is not None else 'none'} in metadata"
                ),
                len(differing),
            )
            self.check("counts", FAIL, detail, items=differing[: self.limit], **numbers)
        elif not compared:
            self.check("counts", NOT_CHECKABLE, "no model of metadata.json counts can be compared")
        else:
            detail = f"the counts of {_plural(len(compared), 'model')} equal metadata.json"
            if not_compared:
                detail += f" ({_plural(len(not_compared), 'label')} not compared: "
                detail += ", ".join(not_compared[: self.limit]) + ")"
            self.check("counts", PASS, detail, items=not_compared[: self.limit], **numbers)

    def check_duplicates(self):
        duplicates = self.report["duplicates"]
        numbers = {"objects": self.report["objects"], "duplicates": duplicates["count"]}
        if duplicates["count"]:
            detail = f"primary keys given twice ({duplicates['count']}): "
            detail += _examples(
                duplicates["items"],
                lambda d: (
                    f"{d['model']} object index {d['index']} is the same as an earlier one"
                    " (no primary key)"
                    if d.get("identical")
                    else f"{d['model']} pk {_show(d['pk'])} again at object index {d['index']}"
                ),
                duplicates["count"],
            )
            self.check("unique_pks", FAIL, detail, items=duplicates["items"], **numbers)
        elif self.report["keyless"]:
            self.check(
                "unique_pks",
                PASS,
                "no model has a primary key twice, and no object without one is the same as"
                " another of its model (objects without a primary key may still share a natural"
                " key, which cannot be told without the application's models)",
                **numbers,
            )
        else:
            self.check("unique_pks", PASS, "no model has a primary key twice", **numbers)

    def check_references(self):
        refs = self.report["references"]
        if not refs["checkable"]:
            self.check("references", NOT_CHECKABLE, f"not checkable: {refs['reason']}")
            return
        numbers = {
            key: refs[key]
            for key in ("checked", "resolved", "recreated", "not_checkable", "dangling", "null")
        }
        summary = (
            f"{refs['resolved']} of {_plural(refs['checked'], 'reference')} resolve in the "
            f"fixture, {refs['recreated']} to models the target recreates"
        )
        if refs["dangling"]:
            detail = f"references that do not resolve ({refs['dangling']}): " + _examples(
                refs["dangling_items"],
                lambda d: (
                    f"{d['model']} pk {_show(d['pk'])} (object index {d['index']}): "
                    f"{d['field']} = {_show(d['value'])} is no {d['target']} in the fixture"
                ),
                refs["dangling"],
            )
            self.check(
                "references", FAIL, f"{detail} ({summary})", items=refs["dangling_items"], **numbers
            )
        elif refs["not_checkable"]:
            models = ", ".join(refs["not_checkable_models"])
            self.check(
                "references",
                NOT_CHECKABLE,
                f"{summary}; {refs['not_checkable']} natural-key references to {models} "
                "cannot be checked: metadata.json gives no natural key for it",
                items=refs["not_checkable_items"],
                **numbers,
            )
        else:
            self.check("references", PASS, summary, **numbers)

    def check_required(self):
        required = self.required_models
        if required is None:
            required = self.usable.get("required_models")
        if not required:
            self.check(
                "required_models",
                NOT_CHECKABLE,
                "no required models were given and metadata.json names none",
            )
            return
        required = [str(label).lower() for label in required]
        counts = self.report["counts"]
        missing = [label for label in required if not counts.get(label)]
        numbers = {"required": len(required), "missing": len(missing)}
        if missing:
            self.check(
                "required_models",
                FAIL,
                "required models without any object in the fixture: " + ", ".join(missing),
                items=missing,
                **numbers,
            )
        else:
            self.check(
                "required_models",
                PASS,
                "every required model has objects: "
                + ", ".join(f"{label} ({counts[label]})" for label in required),
                **numbers,
            )

    def check_files(self):
        files = self.report["files"]
        if not files["checkable"]:
            self.check(
                "media_files",
                NOT_CHECKABLE,
                f"not checkable: {files['reason']}",
                media_files=len(self.media),
                bytes=self.media_bytes,
            )
            return
        numbers = {
            "file_references": files["checked"],
            "missing": files["missing"],
            "media_files": files["media_files"],
            "orphans": files["orphans"],
            "bytes": self.media_bytes,
        }
        orphans = ""
        if files["orphans"]:
            orphans = f"; media files that no file field names: {files['orphans']}"
        if files["missing"]:
            detail = f"file field values without their file under media/ ({files['missing']}): "
            detail += _examples(
                files["missing_items"],
                lambda m: f"{m['model']} pk {_show(m['pk'])} {m['field']} = {_show(m['value'])}",
                files["missing"],
            )
            self.check(
                "media_files", FAIL, detail + orphans, items=files["missing_items"], **numbers
            )
        else:
            self.check(
                "media_files",
                PASS,
                f"{_plural(files['checked'], 'file field value')}, each with its file under "
                f"media/{orphans}",
                items=files["orphan_items"],
                **numbers,
            )
