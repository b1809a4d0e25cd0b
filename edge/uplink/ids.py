"""UUIDv7 record ids (RFC 9562), which Python 3.11's :mod:`uuid` does not make.

Layout, most significant bit first::

    unix_ts_ms (48) | ver = 7 (4) | counter (42, split 12 + 30 around the variant) | var (2)
    | random (32)

This is CPython 3.14's ``uuid.uuid7`` algorithm (RFC 9562 section 6.2, method 1): ids made by
one process sort in the order they were made. Within one millisecond a 42-bit counter, seeded
at random with its top bit clear, counts up. When the wall clock steps back a little (up to
:data:`MAX_CLAMP_MS`), the generator keeps the last timestamp and counts on, so ordering holds.
Unlike CPython, a larger step back (the clock was wrong, and has just been corrected after days
on the real-time clock) is followed: otherwise every id until the clock caught up would carry
the wrong, future time. Uniqueness never depends on the clock: every id carries a random
counter seed or at least 32 fresh random bits.

The outbox orders records by ``seq``, never by id; ids are time-ordered so that the console's
indexes stay compact and an id tells roughly when its record was made.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["MAX_CLAMP_MS", "Uuid7Generator", "uuid7", "uuid7_time_ms"]

MAX_CLAMP_MS = 10_000
"""A step back of the clock up to this keeps ids ordered; a larger one is followed."""
_COUNTER_MAX = (1 << 42) - 1


class Uuid7Generator:
    """Makes UUIDv7s that sort in creation order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_counter = 0

    def __call__(self, now_ns: int | None = None) -> uuid.UUID:
        """A new UUIDv7; *now_ns* (nanoseconds since the epoch) is for tests."""
        timestamp_ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
        with self._lock:
            if timestamp_ms > self._last_ms or self._last_ms - timestamp_ms > MAX_CLAMP_MS:
                counter, tail = _seed()
            else:
                timestamp_ms = self._last_ms  # same millisecond, or a small step back
                counter = self._last_counter + 1
                if counter > _COUNTER_MAX:
                    timestamp_ms += 1
                    counter, tail = _seed()
                else:
                    tail = int.from_bytes(os.urandom(4), "big")
            self._last_ms, self._last_counter = timestamp_ms, counter
        value = (
            (timestamp_ms & 0xFFFF_FFFF_FFFF) << 80
            | 0x7 << 76
            | (counter >> 30) << 64
            | 0b10 << 62
            | (counter & 0x3FFF_FFFF) << 32
            | tail
        )
        return uuid.UUID(int=value)


def _seed() -> tuple[int, int]:
    """A fresh random counter (top bit clear, leaving room to count) and random tail."""
    bits = int.from_bytes(os.urandom(10), "big")
    return (bits >> 32) & (_COUNTER_MAX >> 1), bits & 0xFFFF_FFFF


uuid7 = Uuid7Generator()
"""The process's generator: ``uuid7()`` returns a new :class:`uuid.UUID` of version 7."""


def uuid7_time_ms(value: uuid.UUID | str) -> int:
    """The Unix time in milliseconds that a UUIDv7 carries."""
    return uuid.UUID(str(value)).int >> 80
