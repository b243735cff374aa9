"""The pure parts of the storage phase; the phase itself is tested against the
real demo stack in tests/integration/test_storage.py."""

import pytest
from ansible_collections.edms.backup.plugins.module_utils._commands.compose_storage import (
    StorageError,
    backup_name,
    parse_mode,
)


def test_mode_and_backup_names():
    assert parse_mode("0775") == 0o775
    assert parse_mode("2775") == 0o2775
    assert parse_mode(0o700) == 0o700
    assert backup_name("/x/dc.yml", now=0) == "/x/dc.yml.19700101T000000Z.bak"


def test_backup_names_do_not_collide(tmp_path):
    first = backup_name(str(tmp_path / "dc.yml"), now=0)
    open(first, "w").close()
    assert backup_name(str(tmp_path / "dc.yml"), now=0) == str(
        tmp_path / "dc.yml.19700101T000000Z.1.bak"
    )


@pytest.mark.parametrize("mode", ["rwx", "0999", "77", ""])
def test_a_mode_that_is_not_octal_is_refused_naming_it(mode):
    with pytest.raises(StorageError, match=f"host_path_mode {mode!r} is not an octal mode"):
        parse_mode(mode)
