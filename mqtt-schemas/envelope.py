"""The envelope every payload carries: its id, its time and the clock-sync state behind that time.

Every payload, whoever publishes it, carries the same six envelope fields
(:data:`ENVELOPE_FIELDS`, the ``envelope`` definition of ``schemas/defs.v1.json``)::

    {"schema": "crossing@1", "id": "0193a6f2-...", "device_id": "kiosk-bz-01", "seq": 41,
     "time": "2026-11-24T07:12:45.301Z", "clock": {"synced": true, "source": "ntp", ...}}

``schema`` comes from :func:`mqtt_schemas.tag` and ``seq`` from the publisher's own persistent
counter; this module makes the other three, the same way on the kiosk and on the console.

Ids: UUIDv7
    :func:`uuid7` returns a new id in its wire form. Python 3.11's :mod:`uuid` cannot make
    version 7 (RFC 9562), so :class:`Uuid7Generator` does, with CPython 3.14's algorithm
    (RFC 9562 section 6.2, method 1). Layout, most significant bit first::

        unix_ts_ms (48) | ver = 7 (4) | counter (42, split 12 + 30 around the variant)
        | var = 0b10 (2) | random (32)

    Ids made by one process sort in the order they were made, even within one millisecond: the
    42-bit counter is seeded at random (top bit clear, so it has room to count) on each new
    millisecond and counts up within it. When the wall clock steps back a little (up to
    :data:`MAX_CLAMP_MS`, e.g. NTP correcting a small drift) the generator keeps the last
    timestamp and counts on, so order holds. A larger step back means the clock was wrong (a
    kiosk that ran for days on its real-time clock has just synced) and is followed, unlike
    CPython: otherwise every id until the clock caught up would carry the wrong, future time.
    Uniqueness never depends on the clock: every id carries a random counter seed or at least
    32 fresh random bits. Ordering is a convenience (compact console indexes, an id that tells
    roughly when its record was made); the kiosk's outbox orders records by ``seq``, never by id.

Time
    :func:`format_time` writes the contract's ``timestamp``: UTC, ISO 8601, milliseconds and a
    ``Z`` (``2026-11-24T07:12:45.301Z``). Fixed width and always UTC, so timestamps compare as
    strings. :func:`utc_now` is the current time in that form.

Clock-sync state
    A timestamp is only as good as the clock that made it, so every payload says how far its
    ``time`` can be trusted (the contract's ``clock``: ``synced``, ``source``, ``offset_ms``,
    ``last_sync``). A :class:`Clock` gives a time and its :class:`ClockState` in one reading, so
    the two never come from different moments. :class:`SystemClock` asks the kernel; a
    :class:`StaticClock` reports a fixed state for tests, the simulator and benchmarks.
    :func:`clock_state` is the process's system clock state as JSON, for a publisher that
    stamps the time separately (the console).

>>> len(uuid7()), uuid7()[14]
(36, '7')
>>> format_time(dt.datetime(2026, 11, 24, 7, 12, 45, 301999, tzinfo=dt.UTC))
'2026-11-24T07:12:45.301Z'
>>> ClockState(True, "gps", 1.25).to_json()
{'synced': True, 'source': 'gps', 'offset_ms': 1.25}
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Protocol

__all__ = [
    "ENVELOPE_FIELDS",
    "MAX_CLAMP_MS",
    "Clock",
    "ClockReading",
    "ClockSource",
    "ClockState",
    "StaticClock",
    "SystemClock",
    "Uuid7Generator",
    "clock_state",
    "format_time",
    "utc_now",
    "uuid7",
    "uuid7_generator",
    "uuid7_time_ms",
]

ENVELOPE_FIELDS = ("schema", "id", "device_id", "seq", "time", "clock")
"""The fields every payload carries (``defs.v1.json``'s ``envelope.required``); a payload body
handed to a publisher to be enveloped must not set them itself."""

# -- ids ------------------------------------------------------------------------------------------

MAX_CLAMP_MS = 10_000
"""A step back of the wall clock up to this keeps ids ordered; a larger one is followed."""
_COUNTER_MAX = (1 << 42) - 1


class Uuid7Generator:
    """Makes UUIDv7s that sort in creation order; one instance may be shared by threads.

    Each instance keeps its own last timestamp and counter, so order is promised among the ids
    of one instance. Use the process's :data:`uuid7_generator` (or :func:`uuid7`) unless a test
    needs a private one to drive with *now_ns*.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_counter = 0

    def __call__(self, now_ns: int | None = None) -> uuid.UUID:
        """A new UUIDv7; *now_ns* (nanoseconds since the epoch) stands in for the clock."""
        timestamp_ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
        with self._lock:
            if timestamp_ms > self._last_ms or self._last_ms - timestamp_ms > MAX_CLAMP_MS:
                counter, tail = _seed()
            else:
                timestamp_ms = self._last_ms  # same millisecond, or a small step back
                counter = self._last_counter + 1
                if counter > _COUNTER_MAX:
                    # 2**41 ids in one millisecond cannot happen in practice; borrowing the
                    # next millisecond keeps the promise of order if it ever did.
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


uuid7_generator = Uuid7Generator()
"""The process's generator; ``uuid7_generator()`` returns a :class:`uuid.UUID` of version 7."""


def uuid7() -> str:
    """A new UUIDv7 from :data:`uuid7_generator`, in the wire form ``0193a6f2-8c1e-7...``.

    The wire form (lower-case hex in 8-4-4-4-12 groups) is what the schemas' ``uuid`` and
    ``uuid7`` definitions accept, and strings of it sort like the ids themselves.
    """
    return str(uuid7_generator())


def uuid7_time_ms(value: uuid.UUID | str) -> int:
    """The Unix time in milliseconds that a UUIDv7 carries (its top 48 bits)."""
    return uuid.UUID(str(value)).int >> 80


# -- time -----------------------------------------------------------------------------------------


def format_time(moment: dt.datetime) -> str:
    """*moment* as the contract's ``timestamp``: ``2026-11-24T07:12:45.301Z``.

    UTC, millisecond precision (truncated, never rounded up into the next second), ``Z``
    suffix. A naive *moment* is taken as local time, as :meth:`datetime.astimezone` does; pass
    aware datetimes (``dt.datetime.now(dt.UTC)``) to leave no doubt.
    """
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def utc_now() -> str:
    """The current time as the contract's ``timestamp`` (see :func:`format_time`)."""
    return format_time(dt.datetime.now(dt.UTC))


# -- clock-sync state -----------------------------------------------------------------------------

ClockSource = Literal["ntp", "gps", "rtc", "none"]
"""What the clock was set from: the contract's ``clock.source`` enum."""


@dataclass(frozen=True)
class ClockState:
    """The envelope's ``clock`` object: how far the publisher's clock can be trusted.

    ``synced`` is true while a time source disciplines the clock (``source`` then names it:
    ``ntp`` or ``gps``); unsynced, ``source`` says what the clock free-runs on: ``rtc`` (a
    battery-backed real-time clock) or ``none``. ``offset_ms`` is the last measured offset from
    the reference, ``last_sync`` the last moment the clock was seen synced (aware datetime).
    """

    synced: bool
    source: ClockSource
    offset_ms: float | None = None
    last_sync: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``clock`` field's value; fields that are not known are left out, not null."""
        out: dict[str, Any] = {"synced": self.synced, "source": self.source}
        if self.offset_ms is not None:
            out["offset_ms"] = self.offset_ms
        if self.last_sync is not None:
            out["last_sync"] = format_time(self.last_sync)
        return out


@dataclass(frozen=True)
class ClockReading:
    """A timestamp (aware, UTC) and the clock's state at that moment."""

    time: dt.datetime
    state: ClockState


class Clock(Protocol):
    """Anything that can say what time it is and how good that answer is."""

    def read(self) -> ClockReading:
        """The current time and the clock's state, read together."""
        ...


class StaticClock:
    """The system time, with a clock state fixed by the caller (tests, simulator, benchmarks)."""

    def __init__(
        self, synced: bool = True, source: ClockSource = "ntp", offset_ms: float | None = None
    ) -> None:
        self.state = ClockState(synced, source, offset_ms)

    def read(self) -> ClockReading:
        """Now, with the fixed state."""
        return ClockReading(dt.datetime.now(dt.UTC), self.state)


class _Timex(ctypes.Structure):
    # The head of struct timex (linux/timex.h) up to ``status``; the tail is padding large
    # enough for the rest on every architecture, so the kernel never writes past the buffer.
    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    )


_TIME_ERROR = 5  # adjtimex(2)'s return value while the clock is not synchronised
_STA_UNSYNC = 0x0040
_STA_NANO = 0x2000


@cache
def _adjtimex() -> Callable[..., int] | None:
    """libc's adjtimex, or None where there is none (not Linux): looked up once per process."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None


class SystemClock:
    """The kernel's clock and its synchronisation state, from ``adjtimex(2)`` (read-only).

    The kernel knows whether the system clock is disciplined: chrony, ntpd and
    systemd-timesyncd all clear ``STA_UNSYNC`` while they steer it, and the kernel sets it again
    once the estimated error passes 16 s with nobody steering. That is exactly "synced recently
    enough to trust", and reading it needs no privilege (``modes = 0``).

    *synced_source* names what disciplines the clock when it is synced (``ntp`` unless the host
    has a GPS receiver). Unsynced, the source is ``rtc`` when the board has a real-time clock
    (*rtc_path* exists) and ``none`` when it does not (a Raspberry Pi before the 5 restores a
    saved time at boot and then free-runs). ``last_sync`` is the last moment this instance saw
    the clock synced, so keep one instance for the life of the process.
    """

    def __init__(
        self, synced_source: ClockSource = "ntp", rtc_path: str = "/sys/class/rtc/rtc0"
    ) -> None:
        self.synced_source = synced_source
        self._has_rtc = os.path.exists(rtc_path)
        self._last_sync: dt.datetime | None = None
        self._lock = threading.Lock()

    def _kernel(self) -> tuple[bool, float | None]:
        """(synced, offset in ms) as the kernel reports them."""
        adjtimex = _adjtimex()
        if adjtimex is None:
            return False, None
        timex = _Timex()  # modes = 0: read only
        state = adjtimex(ctypes.byref(timex))
        if state < 0 or state == _TIME_ERROR or timex.status & _STA_UNSYNC:
            return False, None
        scale = 1e-6 if timex.status & _STA_NANO else 1e-3  # offset in ns or in us
        return True, round(timex.offset * scale, 3)

    def read(self) -> ClockReading:
        """Now, and whether the kernel says the clock is synchronised."""
        synced, offset_ms = self._kernel()
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            if synced:
                self._last_sync = now
            last_sync = self._last_sync
        if synced:
            state = ClockState(True, self.synced_source, offset_ms, last_sync)
        else:
            state = ClockState(False, "rtc" if self._has_rtc else "none", None, last_sync)
        return ClockReading(now, state)


@cache
def _system_clock() -> SystemClock:
    # One instance per process, made on first use: it remembers ``last_sync`` between calls.
    return SystemClock()


def clock_state() -> dict[str, Any]:
    """The process's system clock state as the envelope's ``clock`` value.

    For a publisher that stamps ``time`` with :func:`utc_now` and the clock state separately
    (the console); a kiosk reads both at once from its :class:`Clock`.
    """
    return _system_clock().read().state.to_json()
