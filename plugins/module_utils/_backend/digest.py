# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The identity of every object: per model, how many primary keys and an
order-free digest of them (the sum of each key's hash, so that nothing has to
sort or hold them).

The load sums the fixture's keys as it reads them and the database's after the
load, and compares. str() of a key is the same for the fixture's JSON value and
the database's (UUIDs in their hyphenated form). On PostgreSQL the database's
sum of a key column whose text is its str() (integers, UUIDs, text) is
computed by the server (PK_DIGEST_SQL): the same sha256, read as two signed
64-bit halves that halves_total puts together again.
"""

import hashlib


def key_hash(key):
    """The first 128 bits of the sha256 of str(key), as an integer."""
    return int.from_bytes(hashlib.sha256(str(key).encode("utf-8")).digest()[:16], "big")


def digest_text(count, total):
    return [count, "%032x" % (total % (1 << 128))]


def pk_digest(keys):
    count, total = 0, 0
    for key in keys:
        count += 1
        total += key_hash(key)
    return digest_text(count, total)


# The database's side of pk_digest for one key column on PostgreSQL (sha256()
# is in PostgreSQL 11 and later): the count; the sums of each hash's first and
# second 64 bits, read as signed integers, with how many of each were negative.
# The table and column are quoted by the caller. OFFSET 0 keeps each
# subquery apart: flattened, the planner computes the hash once per use of it
# (2.5 times as long, measured).
PK_DIGEST_SQL = (
    "SELECT count(*), coalesce(sum(hi), 0), count(*) FILTER (WHERE hi < 0),"
    " coalesce(sum(lo), 0), count(*) FILTER (WHERE lo < 0)"
    " FROM (SELECT ('x' || pg_catalog.substr(h, 1, 16))::bit(64)::bigint AS hi,"
    " ('x' || pg_catalog.substr(h, 17, 16))::bit(64)::bigint AS lo"
    " FROM (SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to("
    "{column}::text, 'UTF8')), 'hex') AS h"
    " FROM {table} OFFSET 0) AS hashed OFFSET 0) AS halves"
)


def halves_total(hi_sum, hi_negative, lo_sum, lo_negative):
    """The sum of key_hash over the keys, from PK_DIGEST_SQL's sums of signed
    halves: each negative half is its unsigned value less 2**64."""
    high = int(hi_sum) + (int(hi_negative) << 64)
    low = int(lo_sum) + (int(lo_negative) << 64)
    return (high << 64) + low
