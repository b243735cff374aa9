# Private to the edms.backup collection: no compatibility promise to anyone else.
"""A bind mount and environment variables added to one service of a Compose
file, for the storage phase (_commands/compose_storage.py).

Editing keeps the file as its authors wrote it. ruamel.yaml's round-trip
parser gives every node of the file with its exact place and quoting style;
the new text is the old text with a few insertions and replacements at those
places, so comments, blank lines, key order, quoting, indentation and line
lengths everywhere else stay byte for byte as they were. The new text is then
parsed again and must hold exactly the old data plus the intended change, or
the edit is refused.
"""

from __future__ import annotations

import json
import posixpath
import re
import traceback
from dataclasses import dataclass, field

try:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import (
        AliasEvent,
        DocumentStartEvent,
        MappingEndEvent,
        MappingStartEvent,
        ScalarEvent,
        SequenceEndEvent,
        SequenceStartEvent,
    )

    HAS_RUAMEL = True
    RUAMEL_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the managed host's packages
    YAML = None
    YAMLError = Exception
    HAS_RUAMEL = False
    RUAMEL_IMPORT_ERROR = traceback.format_exc()


class ComposeEditError(Exception):
    """The compose file cannot be edited as asked; the message says why."""


class MountConflict(ComposeEditError):
    """The service already mounts something else at the container path."""


# Options a bind mount's short syntax may carry (the third field).
BIND_OPTIONS = ("rw", "ro", "z", "Z", "cached", "delegated", "consistent")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# A string written without quotes only when it matches this and reads back as
# itself; in flow collections (`[...]`, `{...}`) ',' and ':' are quoted too.
_PLAIN_BLOCK = re.compile(r"^[A-Za-z0-9_./~@%+$-][A-Za-z0-9_./~@%+=:$,{}-]*$")
_PLAIN_FLOW = re.compile(r"^[A-Za-z0-9_./~@%+$-][A-Za-z0-9_./~@%+=$-]*$")
_YAML11_WORDS = {"y", "yes", "n", "no", "on", "off", "true", "false", "null", "~"}


@dataclass
class BindMount:
    """A host directory mounted into the service.

    host_path: relative to the project directory (``./backups``) or absolute.
    mode: the short syntax's options, such as ``rw`` or ``rw,z``; None: any
    mount of the same directory that is not read-only will do.
    """

    host_path: str
    container_path: str
    mode: str | None = None

    def short_syntax(self):
        spec = f"{self.host_path}:{self.container_path}"
        return f"{spec}:{self.mode}" if self.mode else spec

    def long_syntax(self):
        entry = {"type": "bind", "source": self.host_path, "target": self.container_path}
        options = _mode_options(self.mode)
        if "ro" in options:
            entry["read_only"] = True
        selinux = [o for o in options if o in ("z", "Z")]
        if selinux:
            entry["bind"] = {"selinux": selinux[0]}
        consistency = [o for o in options if o in ("cached", "delegated", "consistent")]
        if consistency:
            entry["consistency"] = consistency[0]
        return entry


@dataclass
class EditResult:
    """The text before and after; actions: what changed, one line each."""

    before: str
    after: str
    actions: list = field(default_factory=list)

    @property
    def changed(self):
        return self.before != self.after


# --- Reading: the file's nodes with their places ------------------------------


class _Node:
    """One YAML node and where it is in the text (character offsets)."""

    def __init__(self, kind, event, anchor=None):
        self.kind = kind  # scalar, map, seq, alias
        self.start = event.start_mark.index
        self.end = event.end_mark.index
        self.line = event.start_mark.line
        self.col = event.start_mark.column
        self.value = getattr(event, "value", None)
        self.style = getattr(event, "style", None)
        self.flow = bool(getattr(event, "flow_style", False))
        self.anchor = anchor
        self.items = []  # map: [(key, value)]; seq: [node]
        self.pending_key = None

    @property
    def is_null(self):
        return self.kind == "scalar" and self.style is None and self.value in ("", "~", "null")

    @property
    def is_empty(self):
        return self.kind == "scalar" and self.style is None and self.value == ""

    def get(self, key):
        """The (key node, value node) of a mapping's own key, or (None, None)."""
        for k, v in self.items:
            if k.kind == "scalar" and k.value == key:
                return k, v
        return None, None

    def value_of(self, key):
        """The value node of a mapping's own key, or None."""
        return self.get(key)[1]

    def first_col(self):
        if self.kind == "map" and not self.flow and self.items:
            return self.items[0][0].col
        return self.col


class _Document:
    def __init__(self, text, filename):
        self.text = text
        self.filename = filename
        self.root = None
        self.anchors = {}
        self.aliases = set()
        self._read()

    def _read(self):
        yaml = YAML(typ="rt")
        stack = []
        documents = 0
        try:
            for event in yaml.parse(self.text):
                if isinstance(event, DocumentStartEvent):
                    documents += 1
                    if documents > 1:
                        raise ComposeEditError(f"{self.filename} holds more than one YAML document")
                    continue
                if isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                    node = stack.pop()
                    if node.flow:
                        node.end = event.end_mark.index
                    continue
                if isinstance(event, AliasEvent):
                    node = _Node("alias", event)
                    node.value = event.anchor
                    self.aliases.add(event.anchor)
                elif isinstance(event, ScalarEvent):
                    node = _Node("scalar", event, event.anchor)
                elif isinstance(event, MappingStartEvent):
                    node = _Node("map", event, event.anchor)
                elif isinstance(event, SequenceStartEvent):
                    node = _Node("seq", event, event.anchor)
                else:
                    continue
                if node.anchor:
                    self.anchors[node.anchor] = node
                self._attach(stack, node)
                if node.kind in ("map", "seq"):
                    stack.append(node)
        except YAMLError as exc:
            raise ComposeEditError(f"{self.filename} is not valid YAML: {exc}") from exc

    def _attach(self, stack, node):
        if not stack:
            self.root = node
            return
        parent = stack[-1]
        if parent.kind == "seq":
            parent.items.append(node)
        elif parent.pending_key is None:
            parent.pending_key = node
        else:
            parent.items.append((parent.pending_key, node))
            parent.pending_key = None

    def resolve(self, node):
        """The node an alias stands for (or the node itself)."""
        seen = 0
        while node is not None and node.kind == "alias" and seen < 100:
            node = self.anchors.get(node.value)
            seen += 1
        return node

    def content_end(self, node):
        """Offset just after the node's last character of content, or None for
        an empty scalar (whose place is the end of its key's line)."""
        if node.kind == "scalar":
            if node.is_empty:
                return None
            end = node.end
            if node.style in ("|", ">"):
                while end > node.start and self.text[end - 1] in " \t\r\n":
                    end -= 1
            return end
        if node.kind == "alias" or node.flow:
            return node.end
        if node.kind == "map":
            key, value = node.items[-1]
            end = self.content_end(value)
            return end if end is not None else self.content_end(key)
        for item in reversed(node.items):
            end = self.content_end(item)
            if end is not None:
                return end
        return node.start + 1

    def line_end(self, index):
        """Offset of the end of the line holding index (before its line break)."""
        newline = self.text.find("\n", index)
        if newline == -1:
            return len(self.text)
        if newline > 0 and self.text[newline - 1] == "\r":
            return newline - 1
        return newline


# --- Showing: the text with the values of secrets masked ----------------------

# What shows in place of a secret's value.
MASK = "********"
# Names (of variables, of keys) whose values are secrets, as people name them:
# DB_PASSWORD, SECRET_KEY, API_TOKEN, AWS_SECRET_ACCESS_KEY, SENTRY_DSN...
_SECRET_NAME = re.compile(
    r"pass|pwd|secret|token|key|credential|auth|private|salt|dsn|cookie|signature",
    re.IGNORECASE,
)
# The password of a URL: scheme://user:password@host.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)([^@/\s]+)(@)")
# NAME: value or NAME=value in a comment.
_COMMENTED = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)(\s*[:=]\s*)(\S.*)$")


def looks_secret(name):
    """Whether a variable or key of this name holds a secret."""
    return bool(_SECRET_NAME.search(str(name)))


def shown_value(name, value):
    """value as output may show it: masked when name looks like a secret's, and
    a URL's password masked in any case."""
    if looks_secret(name):
        return MASK
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), str(value))


def mask_secrets(text, filename="the compose file"):
    """text with the values of secrets replaced by MASK, for showing it (a diff).

    Masked: the value of every key that looks like a secret's, anywhere in the
    file (a service's environment mapping, an ``x-`` block an anchor feeds into
    one), everything under such a key, the value of every ``NAME=value`` list
    item whose name does (environment lists), the password of every URL, and
    the same in comments. Text that is not YAML is masked line by line."""
    try:
        doc = _Document(text, filename)
    except ComposeEditError:
        return "".join(_mask_line(line, force=True) for line in text.splitlines(True))
    spans = []
    if doc.root is not None:
        _secret_spans(doc, doc.root, False, spans)
    for start, end, replacement in sorted(spans, reverse=True):
        text = text[:start] + replacement + text[end:]
    return "".join(_mask_line(line) for line in text.splitlines(True))


def _mask_line(line, force=False):
    """A comment line's (or, forced, any line's) NAME: value masked."""
    body = line.rstrip("\r\n")
    ending = line[len(body) :]
    if not force and not body.lstrip().startswith("#"):
        return line
    body = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), body)

    def one(match):
        if looks_secret(match.group(1)):
            return match.group(1) + match.group(2) + MASK
        return match.group(0)

    return _COMMENTED.sub(one, body, count=1) + ending


def _secret_spans(doc, node, secret, spans):
    """(start, end, replacement) for each secret value under node; secret:
    node is the value of a key that looks like a secret's."""
    if node.kind == "map":
        for key, value in node.items:
            named = key.kind == "scalar" and looks_secret(key.value)
            _secret_spans(doc, value, secret or named, spans)
    elif node.kind == "seq":
        for item in node.items:
            if item.kind == "scalar" and not secret and "=" in (item.value or ""):
                name, value = item.value.split("=", 1)
                if looks_secret(name.strip()):
                    _mask_scalar(doc, item, f"{name}={MASK}", spans)
                    continue
            _secret_spans(doc, item, secret, spans)
    elif node.kind == "scalar":
        if secret and not node.is_null:
            _mask_scalar(doc, node, MASK, spans)
        elif _URL_PASSWORD.search(node.value or ""):
            masked = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), node.value)
            _mask_scalar(doc, node, masked, spans)


def _mask_scalar(doc, node, shown, spans):
    """Show node as shown; a value over several lines keeps its lines (a block
    scalar its indicator), each masked."""
    end = doc.content_end(node)
    if end is None:
        return
    lines = doc.text[node.start : end].split("\n")
    if len(lines) > 1:
        first = lines[0] if node.style in ("|", ">") else MASK
        rest = [re.sub(r"^(\s*)\S.*$", lambda m: m.group(1) + MASK, line) for line in lines[1:]]
        shown = "\n".join([first, *rest])
    elif node.style in ('"', "'"):
        shown = node.style + shown + node.style
    spans.append((node.start, end, shown))


# --- Writing: scalars and blocks in the file's own style ----------------------


def _reads_back(fragment, value):
    try:
        loaded = YAML(typ="rt").load("k: " + fragment)
    except YAMLError:
        return False
    got = loaded.get("k") if isinstance(loaded, dict) else None
    if isinstance(got, list):
        got = got[0] if got else None
    return isinstance(got, str) and str(got) == value


def _scalar(value, style=None, flow=False):
    """value (a str) as a YAML scalar: plain where that reads back as the same
    string, else in the given quote style, else double-quoted."""
    if style is None and value.lower() not in _YAML11_WORDS:
        pattern = _PLAIN_FLOW if flow else _PLAIN_BLOCK
        if pattern.match(value) and _reads_back(f"[{value}]" if flow else value, value):
            return value
    if style == "'" and value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value, ensure_ascii=False)


def _flow(value, style=None):
    """A str, dict or list in flow style."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v, style)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v, style) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _scalar(value, style, flow=True)


def _block_map_lines(entries, col, step, style=None):
    """Lines of a block mapping at column col (dict values nest by step)."""
    lines = []
    for key, value in entries.items():
        if isinstance(value, dict):
            lines.append(" " * col + f"{key}:")
            lines.extend(_block_map_lines(value, col + step, step, style))
        elif isinstance(value, bool):
            lines.append(" " * col + f"{key}: {'true' if value else 'false'}")
        else:
            lines.append(" " * col + f"{key}: {_scalar(value, style)}")
    return lines


def _seq_item_lines(value, dash_col, content_col, step, style=None):
    """Lines of one block sequence item whose dash is at dash_col."""
    lead = " " * dash_col + "-" + " " * max(content_col - dash_col - 1, 1)
    if isinstance(value, dict):
        lines = _block_map_lines(value, content_col, step, style)
        return [lead + lines[0][content_col:], *lines[1:]]
    return [lead + _scalar(value, style)]


# --- Mount entries ------------------------------------------------------------


def _mode_options(mode):
    """The options of a short-syntax mode as a set, without the default rw."""
    if not mode:
        return frozenset()
    options = [o.strip() for o in str(mode).split(",") if o.strip()]
    return frozenset(o for o in options if o != "rw")


def _split_short(spec):
    """Split SOURCE:TARGET:MODE at the colons that are not inside ${...}."""
    parts, current, depth, i = [], "", 0, 0
    while i < len(spec):
        char = spec[i]
        if char == "$" and spec[i + 1 : i + 2] == "{":
            depth += 1
            current += "${"
            i += 2
            continue
        if char == "}" and depth:
            depth -= 1
        if char == ":" and not depth:
            parts.append(current)
            current = ""
        else:
            current += char
        i += 1
    parts.append(current)
    return parts


def _is_path(source):
    return source == "." or source.startswith(("/", "./", "../", "~"))


def _source_key(source, project_dir):
    """What a mount source refers to, comparable across spellings."""
    if source is None:
        return ("anonymous", None)
    if source.startswith("$"):
        return ("interpolated", source)
    if not _is_path(source):
        return ("volume", source)
    if source.startswith("~") or posixpath.isabs(source):
        return ("path", posixpath.normpath(source))
    if project_dir:
        return ("path", posixpath.normpath(posixpath.join(project_dir, source)))
    return ("relative", posixpath.normpath(source))


@dataclass
class _Mount:
    kind: str
    source: str | None
    target: str
    options: frozenset
    text: str


def _read_mount(doc, node):
    """The mount a volumes item describes, or None if it cannot be read."""
    node = doc.resolve(node)
    if node is None:
        return None
    if node.kind == "scalar":
        parts = _split_short(node.value)
        if len(parts) == 1:
            return _Mount("volume", None, parts[0], frozenset(), node.value)
        if len(parts) in (2, 3):
            source, target = parts[0], parts[1]
            kind = "volume" if not (_is_path(source) or source.startswith("$")) else "bind"
            mode = parts[2] if len(parts) == 3 else ""
            return _Mount(kind, source, target, _mode_options(mode), node.value)
        return None
    if node.kind == "map":
        fields = {}
        for key, value in node.items:
            value = doc.resolve(value)
            if key.kind == "scalar" and value is not None:
                fields[key.value] = value
        target = fields.get("target")
        if target is None or target.kind != "scalar":
            return None
        source = fields.get("source")
        kind = fields.get("type")
        options = set()
        read_only = fields.get("read_only")
        if (
            read_only is not None
            and read_only.kind == "scalar"
            and read_only.value.lower() in ("true", "yes", "on")
        ):
            options.add("ro")
        bind = fields.get("bind")
        if bind is not None and bind.kind == "map":
            selinux = bind.value_of("selinux")
            if selinux is not None and selinux.kind == "scalar":
                options.add(selinux.value)
        consistency = fields.get("consistency")
        if consistency is not None and consistency.kind == "scalar":
            options.add(consistency.value)
        text = ", ".join(
            f"{k}: {v.value}" for k, v in fields.items() if v.kind == "scalar" and k != "target"
        )
        return _Mount(
            kind.value if kind is not None and kind.kind == "scalar" else "volume",
            source.value if source is not None and source.kind == "scalar" else None,
            target.value,
            frozenset(options),
            "{" + text + "}",
        )
    return None


# --- The edit -----------------------------------------------------------------


_SAME_LINE = 1 << 30  # the "depth" of text added to an existing line


class _Editor:
    def __init__(self, doc, service_name):
        self.doc = doc
        self.text = doc.text
        self.service_name = service_name
        self.newline = "\r\n" if "\r\n" in self.text else "\n"
        # (start, end, replacement, -depth, order): at one offset, the text of
        # deeper (more indented) blocks goes first, then in the order made.
        self.edits = []
        self.actions = []
        self.where = f"services.{service_name}"
        self.services, self.service = self._find_service()
        self.step = self._indent_step()
        self.seq_offset = self._seq_offset()

    # Locating

    def _find_service(self):
        doc = self.doc
        root = doc.root
        name = doc.filename
        if root is None or root.kind != "map":
            raise ComposeEditError(f"{name} is not a YAML mapping, so not a Compose file")
        services = root.value_of("services")
        services = doc.resolve(services)
        if services is None or services.kind != "map":
            raise ComposeEditError(f"{name} has no 'services' mapping")
        service = services.value_of(self.service_name)
        if service is None:
            known = ", ".join(pair[0].value for pair in services.items if pair[0].kind == "scalar")
            raise ComposeEditError(
                f"service '{self.service_name}' is not defined in {name}"
                f" (services: {known or 'none'})"
            )
        if service.kind == "alias":
            raise ComposeEditError(
                f"service '{self.service_name}' in {name} is an alias (*{service.value});"
                " edit the anchored mapping instead"
            )
        if service.kind != "map":
            raise ComposeEditError(f"service '{self.service_name}' in {name} is not a mapping")
        if service.anchor and service.anchor in doc.aliases:
            raise ComposeEditError(
                f"service '{self.service_name}' in {name} is anchored (&{service.anchor}) and"
                " reused elsewhere; editing it would change the other places too"
            )
        return services, service

    def _indent_step(self):
        if not self.service.flow and self.service.items:
            step = self.service.first_col() - self.services.first_col()
            if step > 0:
                return step
        return 2

    def _seq_offset(self):
        """How far a block sequence's dashes sit right of their key, as this
        file does it elsewhere (0: `key:` then `- item` at the key's column)."""

        def walk(node):
            if node.kind == "map" and not node.flow:
                for key, value in node.items:
                    if value.kind == "seq" and not value.flow and value.items:
                        return value.col - key.col
                    found = walk(value)
                    if found is not None:
                        return found
            elif node.kind in ("map", "seq"):
                for item in node.items:
                    for child in item if isinstance(item, tuple) else (item,):
                        found = walk(child)
                        if found is not None:
                            return found
            return None

        found = walk(self.doc.root)
        return found if found is not None and found >= 0 else self.step

    def _own(self, key):
        """The service's own (key, value) for key, refusing shared or inherited ones."""
        key_node, value = self.service.get(key)
        where = f"'{key}' of service '{self.service_name}' in {self.doc.filename}"
        if value is None:
            merge = self.service.value_of("<<")
            if merge is not None:
                merged = merge.items if merge.kind == "seq" else [merge]
                for source in merged:
                    source = self.doc.resolve(source)
                    if source is not None and source.kind == "map" and source.get(key)[1]:
                        raise ComposeEditError(
                            f"{where} is inherited through a YAML merge key (<<); adding it"
                            " to the service would drop the inherited entries. Give the"
                            f" service its own '{key}' or edit the anchored mapping"
                        )
            return None, None
        if value.kind == "alias":
            raise ComposeEditError(
                f"{where} is an alias (*{value.value}) shared with other places; refusing to"
                " edit it through the service"
            )
        if value.anchor and value.anchor in self.doc.aliases:
            raise ComposeEditError(
                f"{where} is anchored (&{value.anchor}) and reused elsewhere; editing it"
                " would change the other places too"
            )
        return key_node, value

    # Low-level text edits

    def _insert(self, index, text, depth=0):
        self.edits.append((index, index, text, -depth, len(self.edits)))

    def _replace(self, start, end, text):
        self.edits.append((start, end, text, 0, len(self.edits)))

    def _lines(self, lines):
        return self.newline + self.newline.join(lines)

    def _add_pair(self, mapping, key, value, style=None):
        """Add key: value (a list or dict) at the end of mapping."""
        doc = self.doc
        if mapping.flow:
            pair = f"{key}: {_flow(value, style)}"
            if mapping.items:
                end = doc.content_end(mapping.items[-1][1]) or mapping.items[-1][0].end
                self._insert(end, ", " + pair)
            else:
                self._insert(mapping.start + 1, pair)
            return
        col = mapping.first_col()
        lines = [" " * col + f"{key}:"]
        lines.extend(self._block_value(value, col, style))
        self._insert(doc.line_end(doc.content_end(mapping)), self._lines(lines), col)

    def _block_value(self, value, key_col, style=None):
        if isinstance(value, dict):
            return _block_map_lines(value, key_col + self.step, self.step, style)
        dash = key_col + self.seq_offset
        lines = []
        for item in value:
            lines.extend(_seq_item_lines(item, dash, dash + 2, self.step, style))
        return lines

    def _fill_null(self, key_node, null_node, value):
        """Give a key whose value is empty or ~ a block value."""
        doc = self.doc
        if not null_node.is_empty:
            colon = doc.text.index(":", key_node.end)
            self._replace(colon + 1, null_node.end, "")
        lines = self._block_value(value, key_node.col)
        self._insert(doc.line_end(key_node.end), self._lines(lines), key_node.col + 1)

    def _append_item(self, seq, value, style=None):
        doc = self.doc
        if seq.flow:
            if seq.items:
                self._insert(doc.content_end(seq.items[-1]), ", " + _flow(value, style))
            else:
                self._insert(seq.start + 1, _flow(value, style))
            return
        dash = seq.col
        first = seq.items[0]
        content = first.first_col() if first.line == seq.line else dash + 2
        lines = _seq_item_lines(value, dash, content, self.step, style)
        self._insert(doc.line_end(doc.content_end(seq)), self._lines(lines), dash + 1)

    def _replace_item(self, seq, node, value, style=None):
        doc = self.doc
        if seq.flow or node.flow:
            self._replace(node.start, doc.content_end(node), _flow(value, style))
        elif node.kind == "scalar":
            self._replace(node.start, doc.content_end(node), _scalar(value, style))
        else:
            col = node.first_col()
            lines = _block_map_lines(value, col, self.step, style)
            text = self.newline.join([lines[0][col:], *lines[1:]])
            self._replace(node.items[0][0].start, doc.content_end(node), text)

    def _set_scalar(self, key_node, node, value, flow=False):
        doc = self.doc
        style = node.style if node.style in (None, '"', "'") else '"'
        text = _scalar(value, style, flow=flow)
        if node.is_empty:
            colon = doc.text.index(":", key_node.end)
            # On the key's own line: before any line inserted at the same place.
            self._insert(colon + 1, " " + text, _SAME_LINE)
        else:
            self._replace(node.start, doc.content_end(node), text)

    # The two parts of the change

    def add_mount(self, mount, replace, project_dir):
        doc = self.doc
        entry_short = mount.short_syntax()
        key_node, volumes = self._own("volumes")
        where = f"{self.where}.volumes"
        if volumes is None:
            self._add_pair(self.service, "volumes", [entry_short])
            self.actions.append(f"{where}: add {entry_short}")
            return ("add", None, entry_short)
        if volumes.is_null:
            self._fill_null(key_node, volumes, [entry_short])
            self.actions.append(f"{where}: add {entry_short}")
            return ("add", None, entry_short)
        if volumes.kind != "seq":
            raise ComposeEditError(
                f"'volumes' of service '{self.service_name}' in {doc.filename} is not a list"
            )
        wanted_target = posixpath.normpath(mount.container_path)
        wanted_source = _source_key(mount.host_path, project_dir)
        wanted_options = _mode_options(mount.mode)
        for index, item in enumerate(volumes.items):
            found = _read_mount(doc, item)
            if found is None or posixpath.normpath(found.target) != wanted_target:
                continue
            same = found.kind == "bind" and _source_key(found.source, project_dir) == wanted_source
            if same and mount.mode is None and "ro" not in found.options:
                return ("keep", index, None)
            if same and mount.mode is not None and found.options == wanted_options:
                return ("keep", index, None)
            if not replace:
                why = "read-only" if same and "ro" in found.options else "a different mount"
                raise MountConflict(
                    f"service '{self.service_name}' in {doc.filename} already mounts"
                    f" '{found.text}' at {found.target} ({why}; wanted {entry_short})"
                )
            if item.kind == "alias":
                raise ComposeEditError(
                    f"volume {index + 1} of service '{self.service_name}' in {doc.filename}"
                    f" is an alias (*{item.value}); replace it by hand"
                )
            new = mount.long_syntax() if item.kind == "map" else entry_short
            self._replace_item(volumes, item, new, self._style_of(item))
            self.actions.append(f"{where}: replace {found.text} with {entry_short}")
            return ("replace", index, new)
        last = doc.resolve(volumes.items[-1]) if volumes.items else None
        long = last is not None and last.kind == "map"
        new = mount.long_syntax() if long else entry_short
        self._append_item(volumes, new, self._style_of(last))
        self.actions.append(f"{where}: add {entry_short}")
        return ("add", None, new)

    def _style_of(self, node):
        """The quote style of a sibling scalar (long syntax: of its source)."""
        if node is None:
            return None
        if node.kind == "map":
            source = node.value_of("source")
            node = source
        if node is not None and node.kind == "scalar" and node.style in ('"', "'"):
            return node.style
        return None

    def set_environment(self, environment):
        doc = self.doc
        where = f"{self.where}.environment"
        changes = []
        if not environment:
            return changes
        key_node, env = self._own("environment")
        pairs = [f"{k}={v}" for k, v in environment.items()]
        if env is None or env.is_null:
            as_list = self._file_uses_env_lists()
            value = pairs if as_list else dict(environment)
            if env is None:
                self._add_pair(self.service, "environment", value)
            else:
                self._fill_null(key_node, env, value)
            for name, text in environment.items():
                self.actions.append(f"{where}: add {name}={shown_value(name, text)}")
            changes.append(("new", value))
            return changes
        if env.kind == "map":
            for key, value in environment.items():
                k_node, v_node = env.get(key)
                if v_node is None:
                    style = self._style_of(env.items[-1][1]) if env.items else None
                    self._add_pair_to_env_map(env, key, value, style)
                    self.actions.append(f"{where}: add {key}={shown_value(key, value)}")
                    changes.append(("set", key, value))
                    continue
                v_node = doc.resolve(v_node)
                if v_node.kind != "scalar":
                    raise ComposeEditError(
                        f"variable {key} of service '{self.service_name}' in {doc.filename}"
                        " is not a single value"
                    )
                if not v_node.is_null and v_node.value == value:
                    continue
                if v_node is not env.get(key)[1]:
                    raise ComposeEditError(
                        f"variable {key} of service '{self.service_name}' in {doc.filename}"
                        " is an alias; set it by hand"
                    )
                self._set_scalar(k_node, v_node, value, flow=env.flow)
                old = "unset" if v_node.is_null else f"was {shown_value(key, v_node.value)}"
                self.actions.append(f"{where}: set {key}={shown_value(key, value)} ({old})")
                changes.append(("set", key, value))
            return changes
        if env.kind == "seq":
            for key, value in environment.items():
                pair = f"{key}={value}"
                index, item = self._find_env_item(env, key)
                if item is None:
                    style = self._style_of(env.items[-1]) if env.items else None
                    self._append_item(env, pair, style)
                    self.actions.append(f"{where}: add {key}={shown_value(key, value)}")
                    changes.append(("append", pair))
                    continue
                if item.value == pair:
                    continue
                style = item.style if item.style in (None, '"', "'") else '"'
                self._replace(item.start, doc.content_end(item), _scalar(pair, style, env.flow))
                old = item.value.split("=", 1)
                was = (
                    f"was {shown_value(key, old[1])}"
                    if len(old) == 2
                    else "passed through from the host"
                )
                self.actions.append(f"{where}: set {key}={shown_value(key, value)} ({was})")
                changes.append(("replace", index, pair))
            return changes
        raise ComposeEditError(
            f"'environment' of service '{self.service_name}' in {doc.filename}"
            " is neither a mapping nor a list"
        )

    def _add_pair_to_env_map(self, env, key, value, style):
        doc = self.doc
        if env.flow:
            pair = f"{key}: {_scalar(value, style, flow=True)}"
            if env.items:
                end = doc.content_end(env.items[-1][1]) or env.items[-1][0].end
                self._insert(end, ", " + pair)
            else:
                self._insert(env.start + 1, pair)
            return
        col = env.first_col()
        line = " " * col + f"{key}: {_scalar(value, style)}"
        self._insert(doc.line_end(doc.content_end(env)), self._lines([line]), col)

    def _find_env_item(self, env, key):
        for index, item in enumerate(env.items):
            if item.kind != "scalar":
                raise ComposeEditError(
                    f"item {index + 1} of the environment of service '{self.service_name}'"
                    f" in {self.doc.filename} is not a KEY=VALUE string"
                )
            if item.value.split("=", 1)[0] == key:
                return index, item
        return None, None

    def _file_uses_env_lists(self):
        """Whether the file's other services write environment as a list."""
        for service in (pair[1] for pair in self.services.items):
            service = self.doc.resolve(service)
            if service is None or service.kind != "map":
                continue
            env = service.value_of("environment")
            env = self.doc.resolve(env) if env is not None else None
            if env is not None and env.kind in ("map", "seq") and env.items:
                return env.kind == "seq"
        return False

    def apply(self):
        spans = sorted(self.edits, key=lambda e: (e[0], e[3], e[4]))
        for before, after in zip(spans, spans[1:]):
            if after[0] < before[1]:  # pragma: no cover - a defect of this module
                raise ComposeEditError(f"overlapping edits in {self.doc.filename}")
        text = self.text
        for span in reversed(spans):
            start, end, replacement = span[:3]
            text = text[:start] + replacement + text[end:]
        return text


def _plain(value):
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def _load(text, filename):
    try:
        return _plain(YAML(typ="rt").load(text))
    except YAMLError as exc:
        raise ComposeEditError(f"{filename} is not valid YAML: {exc}") from exc


def _check_inputs(mount, environment):
    host = mount.host_path
    if not host or not _is_path(host):
        raise ComposeEditError(
            f"host path {host!r} is not a path: a bare name is a named volume in Compose;"
            " write it relative to the project directory (./backups) or absolute"
        )
    target = mount.container_path
    if not target or not target.startswith("/"):
        raise ComposeEditError(f"container path {target!r} is not an absolute path")
    for path in (host, target):
        if ":" in path or "\n" in path:
            raise ComposeEditError(f"path {path!r} must not contain ':' or a line break")
    if mount.mode is not None:
        options = [o.strip() for o in str(mount.mode).split(",")]
        unknown = [o for o in options if o not in BIND_OPTIONS]
        if unknown or not options:
            raise ComposeEditError(
                f"mount mode {mount.mode!r} is not made of bind mount options"
                f" ({', '.join(BIND_OPTIONS)})"
            )
    for key, value in environment.items():
        if not _ENV_NAME.match(str(key)):
            raise ComposeEditError(f"{key!r} is not a valid environment variable name")
        if not isinstance(value, str):
            raise ComposeEditError(f"the value of {key} must be a string, not {value!r}")


def edit_storage(
    text,
    service,
    mount,
    environment=None,
    replace=False,
    project_dir=None,
    filename="the compose file",
):
    """Add mount (a BindMount) and environment ({name: str}) to service.

    text: the compose file's content. project_dir: the directory relative
    sources are resolved against, so that ./backups and /srv/app/backups count
    as the same directory. replace: replace a mount of something else at the
    same container path instead of failing (MountConflict). Returns an
    EditResult; an unchanged file gives after == before, byte for byte.
    """
    if not HAS_RUAMEL:
        raise ComposeEditError("the Python package 'ruamel.yaml' is not installed")
    environment = dict(environment or {})
    _check_inputs(mount, environment)
    doc = _Document(text, filename)
    editor = _Editor(doc, service)
    volume_change = editor.add_mount(mount, replace, project_dir)
    env_changes = editor.set_environment(environment)
    if not editor.edits:
        return EditResult(before=text, after=text, actions=[])
    after = editor.apply()

    # The new text must hold the old data plus exactly the intended change.
    expected = _load(text, filename)
    target = expected["services"][service]
    verb, index, new = volume_change
    if verb == "add":
        if target.get("volumes") is None:
            target["volumes"] = []
        target["volumes"].append(new)
    elif verb == "replace":
        target["volumes"][index] = new
    for change in env_changes:
        if change[0] == "new":
            target["environment"] = change[1]
        elif change[0] == "set":
            target["environment"][change[1]] = change[2]
        elif change[0] == "append":
            target["environment"].append(change[1])
        else:
            target["environment"][change[1]] = change[2]
    got = _load(after, filename)
    if got != expected:  # pragma: no cover - a defect of this module, never written
        raise ComposeEditError(
            f"refusing to write {filename}: the edited text does not read back as intended"
        )
    return EditResult(before=text, after=after, actions=editor.actions)
