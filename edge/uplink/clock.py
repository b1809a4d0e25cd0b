"""Where envelope timestamps come from, and how far they can be trusted.

Every payload carries ``time`` (UTC) and ``clock`` (``synced``, ``source``, ``offset_ms``,
``last_sync``), see the contract's "Time and clock-sync state". A :class:`Clock` gives both in
one reading, so a timestamp and the state it is judged by never come from different moments.

:class:`SystemClock` asks the kernel (``adjtimex(2)``, read-only), which knows whether the
system clock is disciplined: chrony, ntpd and systemd-timesyncd all clear ``STA_UNSYNC`` while
they steer it, and the kernel sets it again once the estimated error passes 16 s with nobody
steering. That is exactly "synced recently enough to trust". :class:`StaticClock` reports a
fixed state, for tests, the simulator and benchmarks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import os
import threading
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["Clock", "ClockReading", "ClockState", "StaticClock", "SystemClock", "format_time"]

Source = Literal["ntp", "gps", "rtc", "none"]


def format_time(moment: dt.datetime) -> str:
    """``2026-11-24T07:12:45.301Z``: UTC, millisecond precision, ``Z`` suffix."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class ClockState:
    """The envelope's ``clock`` object."""

    synced: bool
    source: Source
    offset_ms: float | None = None
    last_sync: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
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

    def read(self) -> ClockReading: ...


class StaticClock:
    """The system time, with a clock state fixed by the caller (tests, simulator, benchmarks)."""

    def __init__(self, synced: bool = True, source: Source = "ntp", offset_ms: float | None = None):
        self.state = ClockState(synced, source, offset_ms)

    def read(self) -> ClockReading:
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


_TIME_ERROR = 5
_STA_UNSYNC = 0x0040
_STA_NANO = 0x2000


class SystemClock:
    """The kernel's clock and its synchronisation state.

    *synced_source* names what disciplines the clock when it is synced (``ntp`` unless the
    kiosk has a GPS receiver). Unsynced, the source is ``rtc`` when the board has a real-time
    clock and ``none`` when it does not (a Raspberry Pi before the 5 restores a saved time at
    boot and then free-runs). ``last_sync`` is the last moment this process saw the clock synced.
    """

    def __init__(self, synced_source: Source = "ntp", rtc_path: str = "/sys/class/rtc/rtc0"):
        self.synced_source = synced_source
        self._has_rtc = os.path.exists(rtc_path)
        self._last_sync: dt.datetime | None = None
        self._lock = threading.Lock()
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name, use_errno=True) if name else None
        self._adjtimex = getattr(libc, "adjtimex", None)

    def _kernel(self) -> tuple[bool, float | None]:
        if self._adjtimex is None:
            return False, None
        timex = _Timex()  # modes = 0: read only, needs no privilege
        state = self._adjtimex(ctypes.byref(timex))
        if state < 0 or state == _TIME_ERROR or timex.status & _STA_UNSYNC:
            return False, None
        scale = 1e-6 if timex.status & _STA_NANO else 1e-3
        return True, round(timex.offset * scale, 3)

    def read(self) -> ClockReading:
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
