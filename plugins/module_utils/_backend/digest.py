# Private to the edms.backup collection: no compatibility promise to anyone else.
"""The identity of every object: per model, how many primary keys and an
order-free digest of them (the sum of each key's hash, so that nothing has to
sort or hold them).

The load sums the fixture's keys as it reads them and the database's after the
load, and compares. str() of a key is the same for the fixture's JSON value and
the database's (UUIDs in their hyphenated form).
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
