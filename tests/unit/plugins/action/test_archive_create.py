"""The collection's version as archive_create's action plugin reads it: from
an installed collection's MANIFEST.json, else from galaxy.yml."""

import json

import yaml
from ansible_collections.edms.backup.plugins.action.archive_create import (
    COLLECTION_ROOT,
    collection_version,
)


def test_the_checkout_gives_galaxy_yml_s_version():
    with open(f"{COLLECTION_ROOT}/galaxy.yml", encoding="utf-8") as handle:
        assert collection_version() == yaml.safe_load(handle)["version"]


def test_an_installed_collection_gives_its_manifest_s_version(tmp_path):
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "1.2.3"}}))
    (tmp_path / "galaxy.yml").write_text("version: 9.9.9\n")
    assert collection_version(str(tmp_path)) == "1.2.3"


def test_a_manifest_without_a_version_falls_back_to_galaxy_yml(tmp_path):
    (tmp_path / "MANIFEST.json").write_text("{}")
    (tmp_path / "galaxy.yml").write_text("version: 0.2.0\n")
    assert collection_version(str(tmp_path)) == "0.2.0"


def test_neither_file_gives_unknown(tmp_path):
    assert collection_version(str(tmp_path)) == "unknown"
    (tmp_path / "galaxy.yml").write_text(": not yaml [")
    assert collection_version(str(tmp_path)) == "unknown"
