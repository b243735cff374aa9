"""The password read from the application's settings kept out of results
(_common.py hide_secrets), without rewriting paths, digests or counts."""

import pytest
from ansible_collections.edms.backup.plugins.module_utils import _common
from ansible_collections.edms.backup.plugins.module_utils._common import MASK, hide_secrets, secret


@pytest.fixture(autouse=True)
def no_secrets():
    _common.SECRETS.clear()
    yield
    _common.SECRETS.clear()


def test_a_long_secret_is_masked_in_every_text_of_the_result():
    secret("Zx8_kq2LmN0pQr")
    result = {"msg": "psql: Zx8_kq2LmN0pQr", "items": [{"said": "...Zx8_kq2LmN0pQr..."}], "n": 7}
    assert hide_secrets(result) == {
        "msg": f"psql: {MASK}",
        "items": [{"said": f"...{MASK}..."}],
        "n": 7,
    }


def test_a_short_secret_is_masked_in_a_message_only_and_never_rewrites_other_values():
    secret("edms")
    result = {"archive": "/srv/edms/backups/edms_20260101T000000Z.zip", "count": 2026}
    assert hide_secrets(result) == result
    assert hide_secrets("login as edms failed", message=True) == f"login as {MASK} failed"


def test_nothing_is_masked_without_a_secret_and_an_empty_one_is_none():
    secret("")
    secret(None)
    assert hide_secrets({"msg": "nothing to hide"}) == {"msg": "nothing to hide"}
