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
    return int(hashlib.sha256(str(key).encode("utf-8")).hexdigest()[:32], 16)


def digest_text(count, total):
    return [count, "%032x" % (total % (1 << 128))]


def pk_digest(keys):
    count, total = 0, 0
    for key in keys:
        count += 1
        total += key_hash(key)
    return digest_text(count, total)
