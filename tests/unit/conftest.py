"""Every unit test's proof key (plugins/module_utils/_platform/proof.py) in a
directory of the session's own: never the key in the home of the user who
runs the tests."""

import pytest
from ansible_collections.edms.backup.plugins.module_utils._platform import proof as proofs


@pytest.fixture(autouse=True)
def proof_key_of_the_tests(tmp_path_factory, monkeypatch):
    directory = str(tmp_path_factory.getbasetemp() / "proof-key")
    monkeypatch.setattr(proofs, "key_directory", lambda: directory)
    return directory
