"""The envelope fields of payloads the console publishes: ids, UTC time and clock-sync state."""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import os
import time
from functools import cache
from typing import Any

_TIME_ERROR = 5
"""adjtimex(2) returns TIME_ERROR while the kernel clock is not synchronised."""


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 68) << 64
        | 0b10 << 62
        | (rand & ((1 << 62) - 1))
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utc_now() -> str:
    """Now, in UTC ISO 8601 with milliseconds and ``Z``: ``2026-11-24T07:12:45.301Z``."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def clock_state() -> dict[str, Any]:
    """The console's ``clock`` field: whether the kernel says the clock is synchronised.

    Read with adjtimex(2) in read-only mode (modes = 0), which needs no privilege. A host whose
    clock nobody disciplines reports ``synced: false, source: rtc``; where the call is missing
    (not Linux), ``source: none``.
    """
    status = _adjtimex_status()
    if status is None:
        return {"synced": False, "source": "none"}
    if status == _TIME_ERROR:
        return {"synced": False, "source": "rtc"}
    return {"synced": True, "source": "ntp"}


@cache
def _adjtimex() -> Any:
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    try:
        return ctypes.CDLL(libc_name, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None


def _adjtimex_status() -> int | None:
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    buffer = ctypes.create_string_buffer(512)  # larger than struct timex; modes (first) = 0
    result = adjtimex(buffer)
    return None if result < 0 else result
