"""collections/ansible_collections/edms/backup: how a checkout finds itself.

ansible.cfg's collections_path starts with collections/, where these links,
committed to git, make the repository the collection edms.backup. They link
to the collection's own parts only, never to the repository (a link to it
would be a loop for every tool that follows links), and galaxy.yml is among
them because the archive_create action plugin reads the version beside its
plugins/ directory.
"""

import os
import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
LINKS = ROOT / "collections" / "ansible_collections" / "edms" / "backup"
PARTS = ["galaxy.yml", "meta", "playbooks", "plugins", "roles"]


def test_the_links_are_the_collections_parts_and_relative():
    assert sorted(p.name for p in LINKS.iterdir()) == PARTS
    for name in PARTS:
        link = LINKS / name
        assert link.is_symlink(), name
        assert os.readlink(link) == f"../../../../{name}", name
        assert link.resolve() == (ROOT / name).resolve(), name


def test_nothing_under_collections_leads_back_to_it():
    for path, dirs, _files in os.walk(ROOT / "collections", followlinks=True):
        assert "collections" not in pathlib.Path(path).relative_to(ROOT).parts[1:], path
        assert "ansible_collections" not in dirs or pathlib.Path(path) == ROOT / "collections"


def test_the_action_plugin_reads_the_version_through_the_links():
    from ansible_collections.edms.backup.plugins.action import archive_create

    assert pathlib.Path(archive_create.COLLECTION_ROOT) == LINKS
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert archive_create.collection_version() == str(galaxy["version"])
