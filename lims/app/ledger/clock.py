"""The time the ledger records: the real clock, or a fixed sequence while the
seed runs (so that a seed gives the same rows every time)."""

from contextlib import contextmanager
from datetime import timedelta

from django.utils import timezone

_ticks = None


def now():
    return next(_ticks) if _ticks is not None else timezone.now()


@contextmanager
def fixed(start, step=timedelta(seconds=1, microseconds=1)):
    """now() returns start, start + step, ... inside the block."""
    global _ticks

    def ticks():
        moment = start
        while True:
            yield moment
            moment += step

    _ticks = ticks()
    try:
        yield
    finally:
        _ticks = None
