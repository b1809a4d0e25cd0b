"""The card reader driver's state, for the health report: readers, cards, errors, the watcher.

:class:`StateBook` is written by the watcher thread and by card sessions (their worker threads
and the event loop), and read by whoever builds the health report; a lock makes each update and
each :meth:`StateBook.snapshot` atomic. Snapshots are frozen dataclasses;
:meth:`CardReaderState.as_dict` gives a JSON-ready form (ATR in hex, times as UTC ISO 8601).
Times are wall-clock (``time.time``), because the health report shows them to people.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from edge.devices.apdu_transport import ExchangeStats

__all__ = ["CardReaderState", "ReaderStatus", "StateBook", "WatcherState", "WatcherStatus"]

#: ``stopped``: not started or shut down. ``starting``: thread up, first look not done yet.
#: ``running``: watching. ``pcscd_unavailable``: no PC/SC service; retrying with backoff.
WatcherState = Literal["stopped", "starting", "running", "pcscd_unavailable"]


@dataclass(frozen=True, slots=True)
class WatcherStatus:
    state: WatcherState = "stopped"
    #: Why, when not running (the PC/SC error), else None.
    detail: str | None = None
    since: float = field(default_factory=time.time)
    #: Times the PC/SC context was re-established after pcscd went away.
    reconnects: int = 0
    #: SCardGetStatusChange returns: stays flat while nothing happens (no polling).
    wakeups: int = 0


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    name: str
    #: The reader is connected (pcscd lists it).
    present: bool = False
    card_present: bool = False
    #: The card's ATR while one is present.
    atr: bytes | None = None
    #: A card is in but does not answer to reset.
    mute: bool = False
    #: When ``present`` or ``card_present`` last changed.
    since: float = field(default_factory=time.time)
    #: One of our sessions holds the reader.
    in_session: bool = False
    #: An exchange timed out and its PC/SC call has not returned yet: the reader is unusable.
    stuck: bool = False
    last_error: str | None = None
    last_error_at: float | None = None
    #: Totals over every session on this reader since the driver started.
    apdus: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass(frozen=True, slots=True)
class CardReaderState:
    watcher: WatcherStatus
    readers: Mapping[str, ReaderStatus]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: bytes as upper-case hex, times as UTC ISO 8601."""
        return {
            "watcher": {
                "state": self.watcher.state,
                "detail": self.watcher.detail,
                "since": _iso(self.watcher.since),
                "reconnects": self.watcher.reconnects,
                "wakeups": self.watcher.wakeups,
            },
            "readers": {
                name: {
                    "present": status.present,
                    "card_present": status.card_present,
                    "atr": status.atr.hex().upper() if status.atr is not None else None,
                    "mute": status.mute,
                    "since": _iso(status.since),
                    "in_session": status.in_session,
                    "stuck": status.stuck,
                    "last_error": status.last_error,
                    "last_error_at": _iso(status.last_error_at),
                    "apdus": status.apdus,
                    "bytes_sent": status.bytes_sent,
                    "bytes_received": status.bytes_received,
                }
                for name, status in self.readers.items()
            },
        }


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


class StateBook:
    """Thread-safe record of what the driver knows; one per :class:`CardReader`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._watcher = WatcherStatus(since=clock())
        self._readers: dict[str, ReaderStatus] = {}

    # -- watcher -----------------------------------------------------------------------------

    def watcher_state(self, state: WatcherState, detail: str | None = None) -> None:
        with self._lock:
            current = self._watcher
            if (current.state, current.detail) != (state, detail):
                since = current.since if current.state == state else self._clock()
                self._watcher = replace(current, state=state, detail=detail, since=since)

    def watcher_woke(self) -> None:
        with self._lock:
            self._watcher = replace(self._watcher, wakeups=self._watcher.wakeups + 1)

    def watcher_reconnected(self) -> None:
        with self._lock:
            self._watcher = replace(self._watcher, reconnects=self._watcher.reconnects + 1)

    # -- readers -----------------------------------------------------------------------------

    def _apply(self, name: str, *, moved: bool = False, **changes: Any) -> None:
        """Apply ``changes`` to a reader (created if new); ``moved`` refreshes ``since``.

        The caller holds the lock.
        """
        status = self._readers.get(name) or ReaderStatus(name, since=self._clock())
        if moved:
            changes["since"] = self._clock()
        self._readers[name] = replace(status, **changes)

    def reader_present(self, name: str, present: bool) -> None:
        with self._lock:
            known = self._readers.get(name)
            if known is not None and known.present == present:
                return
            card = {} if present else {"card_present": False, "atr": None, "mute": False}
            self._apply(name, moved=True, present=present, **card)

    def card_state(self, name: str, present: bool, atr: bytes | None, mute: bool = False) -> None:
        with self._lock:
            known = self._readers.get(name)
            atr = atr if present else None
            mute = mute and present
            card = (present, atr, mute)
            moved = known is None or (known.card_present, known.atr, known.mute) != card
            self._apply(name, moved=moved, present=True, card_present=present, atr=atr, mute=mute)

    def session_open(self, name: str, open_: bool) -> None:
        with self._lock:
            self._apply(name, in_session=open_)

    def set_stuck(self, name: str, stuck: bool) -> None:
        with self._lock:
            self._apply(name, stuck=stuck)

    def error(self, name: str, message: str) -> None:
        with self._lock:
            self._apply(name, last_error=message, last_error_at=self._clock())

    def add_traffic(self, name: str, stats: ExchangeStats) -> None:
        with self._lock:
            status = self._readers.get(name) or ReaderStatus(name, since=self._clock())
            self._readers[name] = replace(
                status,
                apdus=status.apdus + stats.apdus,
                bytes_sent=status.bytes_sent + stats.bytes_sent,
                bytes_received=status.bytes_received + stats.bytes_received,
            )

    def reader(self, name: str) -> ReaderStatus | None:
        with self._lock:
            return self._readers.get(name)

    def snapshot(self) -> CardReaderState:
        with self._lock:
            return CardReaderState(self._watcher, MappingProxyType(dict(self._readers)))
