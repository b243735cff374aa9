"""Every relative link in a Markdown file the collection's tarball ships
resolves inside the tarball: to a file or directory that `ansible-galaxy
collection build` keeps (galaxy.yml's build_ignore does not drop it), and,
with a #fragment, to a heading of that file.

The files shipped are worked out here from galaxy.yml as ansible-galaxy
does (its built-in patterns, then build_ignore, matched with fnmatch against
each path relative to the top, a directory's pattern dropping what is under
it), without building; a test compares the two for the Markdown files.
"""

import fnmatch
import os
import pathlib
import re
import unicodedata
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]

# ansible-galaxy's own patterns (ansible.galaxy.collection's
# _build_files_manifest_walk) besides build_ignore; its name-only directory
# ignores below.
BUILT_IN_PATTERNS = [
    "MANIFEST.json",
    "FILES.json",
    "galaxy.yml",
    "galaxy.yaml",
    ".git",
    "*.pyc",
    "*.retry",
    "tests/output",
]
IGNORED_DIR_NAMES = {"CVS", ".bzr", ".hg", ".git", ".svn", "__pycache__", ".tox"}


def galaxy():
    return yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))


def patterns(info=None):
    info = info or galaxy()
    return [
        *BUILT_IN_PATTERNS,
        "{}-{}-*.tar.gz".format(info["namespace"], info["name"]),
        *info.get("build_ignore", []),
    ]


def shipped(relative, ignore):
    """Whether the path (relative to the top, '/'-separated) is in the
    tarball: no directory on its way and not the path itself is ignored."""
    parts = relative.split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        is_dir = depth < len(parts) or (ROOT / prefix).is_dir()
        if is_dir and parts[depth - 1] in IGNORED_DIR_NAMES:
            return False
        if any(fnmatch.fnmatch(prefix, pattern) for pattern in ignore):
            return False
    return True


def shipped_markdown(ignore):
    found = []
    for top, dirs, files in os.walk(ROOT):
        rel_top = pathlib.Path(top).relative_to(ROOT).as_posix()
        rel_top = "" if rel_top == "." else rel_top + "/"
        dirs[:] = sorted(d for d in dirs if shipped(rel_top + d, ignore))
        found += [rel_top + f for f in sorted(files) if f.endswith(".md")]
    return [path for path in found if shipped(path, ignore)]


FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.I)
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def prose(text):
    """The text without fenced code blocks and code spans (no links there)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text):
    body = prose(text)
    return INLINE_LINK.findall(body) + REFERENCE.findall(body) + HTML_LINK.findall(body)


def slug(heading):
    """GitHub's anchor for a heading: lower case, markup and punctuation
    dropped (hyphens and underscores kept), spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").lower()
    text = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return text.replace(" ", "-")


def anchors(text):
    seen, found = {}, set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def problems(source, ignore):
    """What is wrong with the relative links of the shipped file source."""
    text = (ROOT / source).read_text(encoding="utf-8")
    found = []
    for target in links(text):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or not target:
            continue
        path = unquote(parts.path)
        if path.startswith("/"):
            found.append(f"{source}: {target}: an absolute path, not in the tarball")
            continue
        if path:
            resolved = os.path.normpath(os.path.join(os.path.dirname(source), path))
            if resolved == ".." or resolved.startswith("../"):
                found.append(f"{source}: {target}: outside the collection")
                continue
            resolved = "" if resolved == "." else resolved
            if not (ROOT / resolved).exists():
                found.append(f"{source}: {target}: no such file")
                continue
            if resolved and not shipped(resolved, ignore):
                found.append(f"{source}: {target}: left out of the tarball (build_ignore)")
                continue
        else:
            resolved = source
        if parts.fragment and resolved.endswith(".md"):
            fragment = unquote(parts.fragment)
            if fragment not in anchors((ROOT / resolved).read_text(encoding="utf-8")):
                found.append(f"{source}: {target}: no heading #{fragment} in {resolved}")
    return found


IGNORE = patterns()
SHIPPED_MARKDOWN = shipped_markdown(IGNORE)


def test_the_tarball_ships_the_readme_and_the_docs():
    assert "README.md" in SHIPPED_MARKDOWN
    assert "docs/operators.md" in SHIPPED_MARKDOWN
    assert "docs/developers.md" in SHIPPED_MARKDOWN
    assert galaxy()["readme"] in SHIPPED_MARKDOWN
    assert not [path for path in SHIPPED_MARKDOWN if path.split("/")[0] in {"tests", "lims"}]


@pytest.mark.parametrize("source", SHIPPED_MARKDOWN)
def test_every_relative_link_resolves_inside_the_tarball(source):
    assert problems(source, IGNORE) == []


def test_the_shipped_files_are_those_ansible_galaxy_would_ship():
    """The rules above are ansible-galaxy's: its manifest (no tarball
    written) holds the same Markdown files."""
    from ansible.galaxy.collection import _build_files_manifest_walk

    info = galaxy()
    manifest = _build_files_manifest_walk(
        str(ROOT).encode(), info["namespace"], info["name"], info.get("build_ignore", [])
    )
    theirs = sorted(
        entry["name"]
        for entry in manifest["files"]
        if entry["ftype"] == "file" and entry["name"].endswith(".md")
    )
    assert theirs == sorted(SHIPPED_MARKDOWN)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A small collection with a README, docs and an ignored directory."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "notes.md").write_text("# Notes\n")
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Step one\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("link", "wrong"),
    [
        ("docs/guide.md", None),
        ("docs/guide.md#step-one", None),
        ("#top", None),
        ("https://example.org/x.md", None),
        ("tests/notes.md", "left out of the tarball"),
        ("docs/missing.md", "no such file"),
        ("docs/guide.md#step-two", "no heading #step-two"),
        ("#nowhere", "no heading #nowhere"),
        ("../outside.md", "outside the collection"),
    ],
)
def test_a_link_to_an_ignored_or_missing_path_is_found(tree, link, wrong):
    (tree / "README.md").write_text(f"# Top\n\nSee [it]({link}), not `[code](tests/x.md)`.\n")
    found = problems("README.md", ["tests"])
    if wrong is None:
        assert found == []
    else:
        assert len(found) == 1
        assert wrong in found[0]


def test_links_in_code_are_not_links():
    text = "```\n[a](tests/x.md)\n```\nand `[b](tests/y.md)` but [c](docs/z.md)\n"
    assert links(text) == ["docs/z.md"]


def test_a_file_under_an_ignored_directory_is_not_shipped():
    assert not shipped("tests/unit/test_shipped_links.py", IGNORE)
    assert not shipped("demo/README.md", IGNORE)
    assert not shipped("edms-backup-0.1.0.tar.gz", IGNORE)
    assert shipped("docs/operators.md", IGNORE)
    assert shipped("roles/restore/tasks/main.yml", IGNORE)
