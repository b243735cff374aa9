"""The identity digest's two sides agree: the sum PostgreSQL computes in
signed 64-bit halves (digest.PK_DIGEST_SQL), put together by halves_total,
is the sum of key_hash. The halves are computed here as the SQL does: the
sha256's hex digits, 16 at a time, read as a two's-complement bigint."""

import hashlib
import uuid

import pytest
from ansible_collections.edms.backup.plugins.module_utils._backend.digest import (
    PK_DIGEST_SQL,
    digest_text,
    halves_total,
    key_hash,
    pk_digest,
)


def signed(hex_digits):
    value = int(hex_digits, 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def as_the_server_sums(keys):
    his, los = [], []
    for key in keys:
        hexed = hashlib.sha256(str(key).encode("utf-8")).hexdigest()
        his.append(signed(hexed[:16]))
        los.append(signed(hexed[16:32]))
    return (
        len(his),
        sum(his),
        sum(1 for h in his if h < 0),
        sum(los),
        sum(1 for v in los if v < 0),
    )


KEY_SETS = [
    [],
    [1],
    list(range(-50, 500)),
    [uuid.UUID(int=n * 7919) for n in range(300)],
    ["tab\there", "back\\slash \\N", "ünï ✓", "", " lead"],
]


@pytest.mark.parametrize("keys", KEY_SETS, ids=["none", "one", "ints", "uuids", "text"])
def test_the_servers_halves_give_the_sum_of_key_hashes(keys):
    count, *sums = as_the_server_sums(keys)
    assert digest_text(count, halves_total(*sums)) == pk_digest(keys)


def test_halves_that_are_all_negative_or_all_positive_are_put_together():
    assert halves_total(-1, 1, -1, 1) == ((1 << 64) - 1 << 64) + (1 << 64) - 1
    assert halves_total(5, 0, 7, 0) == (5 << 64) + 7
    assert halves_total(0, 0, 0, 0) == 0


def test_a_sum_past_128_bits_wraps_as_the_python_side_does():
    keys = list(range(5000))
    count, *sums = as_the_server_sums(keys)
    total = sum(key_hash(k) for k in keys)
    assert total >= 1 << 128  # the case this test is about
    assert digest_text(count, halves_total(*sums)) == digest_text(count, total)


def test_the_statement_names_the_table_and_column_where_the_caller_puts_them():
    sql = PK_DIGEST_SQL.format(column='"id"', table='"t"')
    assert "pg_catalog.convert_to(\"id\"::text, 'UTF8')" in sql
    assert sql.endswith('FROM "t" OFFSET 0) AS hashed OFFSET 0) AS halves')
