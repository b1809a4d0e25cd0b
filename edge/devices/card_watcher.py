"""Watch card readers and cards without polling, and hand the events to asyncio.

One daemon thread owns a PC/SC context and sleeps in ``SCardGetStatusChange(INFINITE)`` on the
configured readers plus the ``\\\\?PnP?\\Notification`` pseudo-reader, which pcsc-lite signals
when a reader is plugged or unplugged. It wakes only when something changed, turns the change
into events, and posts them to the event loop with ``loop.call_soon_threadsafe``; the consumer
reads them with ``async for event in watcher.events()``.

Shutdown: :meth:`CardWatcher.stop` sets a flag and calls ``SCardCancel`` on the thread's context,
which makes the blocked ``SCardGetStatusChange`` return ``SCARD_E_CANCELLED`` at once. A cancel
that lands just before the thread enters the call would be lost, so ``stop`` repeats it every
50 ms until the thread is gone. (``SCardCancel`` must use the same context as the wait, per
pcsc-lite's documentation; it is one of the calls pcsc-lite allows from another thread.)

pcscd going away: the blocked call returns ``SCARD_F_COMM_ERROR`` (measured with pcsc-lite
1.9.9), later calls ``SCARD_E_NO_SERVICE``. The watcher then reports ``CardRemoved`` and
``ReaderRemoved`` for what it knew (nothing can be read while pcscd is down), sets its state
to ``pcscd_unavailable`` and tries to establish a new context after 0.5 s, 1 s, 2 s... up to
``backoff_max``; when pcscd is back, the readers and cards are announced again.

Card events come from the reader state bits: PRESENT appearing or disappearing, and the event
counter pcsc-lite keeps in the high 16 bits of ``dwEventState``: if it moved while the card stayed
PRESENT, the card was pulled and put back between two wake-ups, which is reported as a removal
and an insertion.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from smartcard import scard

from edge.devices.card_config import ReaderFilter
from edge.devices.card_errors import CardReaderError, error_for, pcsc_code
from edge.devices.card_state import StateBook, WatcherState

__all__ = [
    "PNP_NOTIFICATION",
    "CardEvent",
    "CardInserted",
    "CardRemoved",
    "CardWatcher",
    "ReaderAdded",
    "ReaderRemoved",
    "WatcherStatusChanged",
]

log = logging.getLogger(__name__)

#: pcsc-lite's pseudo-reader whose state changes when a reader is added or removed.
PNP_NOTIFICATION = "\\\\?PnP?\\Notification"


@dataclass(frozen=True, slots=True)
class ReaderAdded:
    reader: str


@dataclass(frozen=True, slots=True)
class ReaderRemoved:
    reader: str


@dataclass(frozen=True, slots=True)
class CardInserted:
    reader: str
    atr: bytes
    #: The card did not answer to reset (no usable ATR); a session will fail.
    mute: bool = False


@dataclass(frozen=True, slots=True)
class CardRemoved:
    reader: str


@dataclass(frozen=True, slots=True)
class WatcherStatusChanged:
    state: WatcherState
    detail: str | None = None


CardEvent = ReaderAdded | ReaderRemoved | CardInserted | CardRemoved | WatcherStatusChanged

_SUCCESS = pcsc_code(scard.SCARD_S_SUCCESS)
_CANCELLED = pcsc_code(scard.SCARD_E_CANCELLED)
_TIMEOUT = pcsc_code(scard.SCARD_E_TIMEOUT)
_NO_READERS = pcsc_code(scard.SCARD_E_NO_READERS_AVAILABLE)
_READER_VANISHED = frozenset(
    pcsc_code(c) for c in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE)
)
_UNAWARE = scard.SCARD_STATE_UNAWARE
_CHANGED = scard.SCARD_STATE_CHANGED
_PRESENT = scard.SCARD_STATE_PRESENT
_UNKNOWN = scard.SCARD_STATE_UNKNOWN
_MUTE = scard.SCARD_STATE_MUTE
_EVENT_COUNTER_SHIFT = 16

#: Without PnP notifications (a PC/SC stack that lacks them), re-list readers this often.
_FALLBACK_RELIST_MS = 2000
_CANCEL_REPEAT = 0.05
_RELIST_THROTTLE = 0.1


class _End:
    """Queued after the last event: the iterator ends."""


_END = _End()


class _ServiceLost(Exception):
    def __init__(self, error: CardReaderError) -> None:
        super().__init__(str(error))
        self.error = error


class CardWatcher:
    """Reader and card events from a dedicated thread, as an async iterator.

    ::

        async with CardWatcher(ReaderFilter(["OMNIKEY"])) as watcher:
            async for event in watcher.events():
                match event:
                    case CardInserted(reader, atr): ...
                    case CardRemoved(reader): ...

    On start (and after pcscd comes back) the current picture is announced: ``ReaderAdded`` for
    each matching reader, ``CardInserted`` for each card already in one. A watcher starts once.
    """

    def __init__(
        self,
        readers: ReaderFilter | Iterable[str] = (),
        *,
        book: StateBook | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        stop_timeout: float = 2.0,
    ) -> None:
        self.filter = readers if isinstance(readers, ReaderFilter) else ReaderFilter(readers)
        self.book = book if book is not None else StateBook()
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._stop_timeout = stop_timeout
        self._queue: asyncio.Queue[CardEvent | _End] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._done: asyncio.Future[None] | None = None
        self._stopping = threading.Event()
        # The context the thread waits on; guarded so stop() never cancels a released context.
        self._context_lock = threading.Lock()
        self._context: int | None = None
        self._watched: dict[str, int] = {}  # reader -> the state we last fed back (thread only)
        self._state: WatcherState = "stopped"

    # -- lifecycle (event loop side) ---------------------------------------------------------

    async def start(self) -> CardWatcher:
        if self._thread is not None or self._stopping.is_set():
            raise RuntimeError("a CardWatcher starts once; create a new one")
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        self._set_state("starting")
        self._thread = threading.Thread(target=self._run, name="card-watcher", daemon=True)
        self._thread.start()
        return self

    async def stop(self) -> None:
        """Stop the thread (promptly: see the module docstring); the event iterator then ends."""
        self._stopping.set()
        if self._thread is None or self._done is None:
            self._queue.put_nowait(_END)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_timeout
        while not self._done.done():
            self._cancel_wait()
            try:
                await asyncio.wait_for(asyncio.shield(self._done), _CANCEL_REPEAT)
            except TimeoutError:
                if loop.time() >= deadline:
                    log.error("card watcher thread did not stop within %.1fs", self._stop_timeout)
                    return
        # "done" is posted from the thread's last lines; wait for it to have really ended
        thread = self._thread
        if thread.is_alive():
            await asyncio.to_thread(thread.join, max(0.0, deadline - loop.time()))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def __aenter__(self) -> CardWatcher:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def events(self) -> AsyncIterator[CardEvent]:
        """Events in the order they happened; ends after :meth:`stop`. One consumer only."""
        while True:
            event = await self._queue.get()
            if isinstance(event, _End):
                self._queue.put_nowait(event)  # later calls end at once too
                return
            yield event

    def __aiter__(self) -> AsyncIterator[CardEvent]:
        return self.events()

    def _cancel_wait(self) -> None:
        with self._context_lock:
            if self._context is not None:
                # the return code is of no use: a cancel with nothing to cancel is harmless
                scard.SCardCancel(self._context)

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff_initial
        lost = False
        failure: str | None = None
        try:
            while not self._stopping.is_set():
                hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
                if pcsc_code(hresult) != _SUCCESS:
                    self._unavailable(error_for(hresult, "connecting to pcscd"))
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, self._backoff_max)
                    continue
                with self._context_lock:
                    self._context = context
                if lost:
                    self.book.watcher_reconnected()
                try:
                    self._watch(context)
                    return  # only on stop
                except _ServiceLost as gone:
                    lost = True
                    self._forget_all()
                    self._unavailable(gone.error)
                    backoff = self._backoff_initial  # it was up: retry soon
                finally:
                    with self._context_lock:
                        self._context = None
                    _release_context(context)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max)
        except Exception as exc:
            log.exception("card watcher thread failed")
            failure = f"the watcher thread failed: {exc!r}"
        finally:
            self._set_state("stopped", failure)
            self._post(_END)
            self._call_soon(self._finish)

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _watch(self, context: int) -> None:
        """Wait for changes until stopped; raise _ServiceLost if pcscd goes away."""
        self._relist(context)
        self._set_state("running")
        pnp_state: int | None = _UNAWARE  # None: this PC/SC stack has no PnP notifications
        last_listing: list[str] | None = None
        while not self._stopping.is_set():
            states = [(name, state) for name, state in self._watched.items()]
            if pnp_state is not None:
                states.insert(0, (PNP_NOTIFICATION, pnp_state))
            elif not states:  # nothing to wait on: a wait could return at once, so sleep
                self._stopping.wait(_FALLBACK_RELIST_MS / 1000)
                self._relist(context)
                continue
            timeout = scard.INFINITE if pnp_state is not None else _FALLBACK_RELIST_MS
            hresult, results = scard.SCardGetStatusChange(context, timeout, states)
            self.book.watcher_woke()
            code = pcsc_code(hresult)
            if self._stopping.is_set():
                return
            if code in (_CANCELLED, _TIMEOUT):
                if code == _TIMEOUT:
                    self._relist(context)
                continue
            if code in _READER_VANISHED:
                # a reader went between listing and waiting; pcsc-lite 1.9.9 fails the call
                listing = self._relist(context)
                if listing == last_listing:  # pcscd still lists it: do not spin
                    self._stopping.wait(_RELIST_THROTTLE)
                last_listing = listing
                continue
            if code != _SUCCESS:
                raise _ServiceLost(error_for(hresult, "waiting for reader events"))
            last_listing = None
            relist = False
            for name, event, atr in results:
                if name == PNP_NOTIFICATION:
                    if event & _UNKNOWN:
                        log.info(
                            "no PnP notifications: re-listing every %d ms", _FALLBACK_RELIST_MS
                        )
                        pnp_state = None
                    else:
                        relist = relist or bool(event & _CHANGED)
                        pnp_state = event & ~_CHANGED
                elif name in self._watched:
                    if event & _UNKNOWN:
                        relist = True  # the reader is gone; the listing confirms it
                    else:
                        self._card_change(name, event, bytes(atr))
            if relist:
                self._relist(context)

    def _relist(self, context: int) -> list[str]:
        hresult, names = scard.SCardListReaders(context, [])
        code = pcsc_code(hresult)
        if code == _NO_READERS:
            names = []
        elif code != _SUCCESS:
            raise _ServiceLost(error_for(hresult, "listing readers"))
        wanted = [name for name in names if self.filter(name)]
        for name in [n for n in self._watched if n not in wanted]:
            self._reader_gone(name)
        for name in wanted:
            if name not in self._watched:
                self._watched[name] = _UNAWARE  # the next wait returns its state at once
                self.book.reader_present(name, True)
                log.info("card reader added: %s", name)
                self._post(ReaderAdded(name))
        return list(names)

    def _reader_gone(self, name: str) -> None:
        state = self._watched.pop(name)
        if state & _PRESENT:
            self._post(CardRemoved(name))
        self.book.reader_present(name, False)
        log.info("card reader removed: %s", name)
        self._post(ReaderRemoved(name))

    def _forget_all(self) -> None:
        for name in list(self._watched):
            self._reader_gone(name)

    def _card_change(self, name: str, event: int, atr: bytes) -> None:
        before = self._watched[name]
        self._watched[name] = event & ~_CHANGED
        was_in = bool(before & _PRESENT)
        is_in = bool(event & _PRESENT)
        swapped = (
            was_in and is_in and before >> _EVENT_COUNTER_SHIFT != event >> _EVENT_COUNTER_SHIFT
        )
        if was_in and (swapped or not is_in):
            self.book.card_state(name, False, None)
            log.info("card removed from %s", name)
            self._post(CardRemoved(name))
        if is_in and (swapped or not was_in):
            mute = bool(event & _MUTE)
            self.book.card_state(name, True, atr, mute)
            log.info("card inserted in %s (ATR %s, mute=%s)", name, atr.hex().upper(), mute)
            self._post(CardInserted(name, atr, mute))

    # -- reporting ---------------------------------------------------------------------------

    def _unavailable(self, error: CardReaderError) -> None:
        if self._state != "pcscd_unavailable":
            log.warning("PC/SC unavailable, retrying with backoff: %s", error)
        self._set_state("pcscd_unavailable", str(error))

    def _set_state(self, state: WatcherState, detail: str | None = None) -> None:
        self.book.watcher_state(state, detail)
        if state != self._state:
            self._state = state
            self._post(WatcherStatusChanged(state, detail))

    def _post(self, event: CardEvent | _End) -> None:
        self._call_soon(self._queue.put_nowait, event)

    def _call_soon(self, callback: object, *args: object) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(callback, *args)  # type: ignore[arg-type]
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopping.set()


def _release_context(context: int) -> None:
    try:
        scard.SCardReleaseContext(context)
    except Exception:  # pcscd gone, or pyscard's own failure: nothing left to release then
        log.debug("SCardReleaseContext failed", exc_info=True)
