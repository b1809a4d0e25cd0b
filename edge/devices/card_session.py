"""A connection to the card in one reader: exclusive, time-bounded, always released.

::

    async with card_reader.session("OMNIKEY 5422 00 00") as card:
        response = await card.atransmit(CommandApdu(0x00, 0xA4, 0x04, 0x0C, aid))
        # pure document readers take the blocking callable and run in a thread:
        document = await asyncio.to_thread(read_document, card.transmit)

**Exclusive.** The session connects with ``SCARD_SHARE_EXCLUSIVE``: for the length of a read no
other process may talk to the card, interleave APDUs into our secure messaging session, or reset
it under us. The cost (nobody else can even look) is what a kiosk wants. Protocols offered are
T=0 and T=1 (configurable); pcscd picks the one the ATR allows. When the session ends the card is
reset (``SCARD_RESET_CARD``, configurable) so nothing set up for one traveller survives to the
next.

**Threads.** Each session has one worker thread that makes *every* PC/SC call of the session, in
order, on the session's own PC/SC context: establish, connect, transmit, presence checks,
disconnect, release. Callers hand it jobs and wait for the result *with a timeout*:

- ``transmit`` (blocking, for worker threads) waits on a ``concurrent.futures.Future``;
- ``atransmit`` awaits the same future wrapped for asyncio, so the event loop never blocks and the
  APDU layer (:mod:`edge.devices.apdu_transport`) runs on the loop between two exchanges.

**Timeouts.** ``SCardTransmit`` cannot be interrupted: pcsc-lite's ``SCardCancel`` only ends
``SCardGetStatusChange``, and ``SCardDisconnect`` or ``SCardReleaseContext`` from another thread
block on the context's lock until the transmit returns (all three measured with pcsc-lite 1.9.9).
So when an exchange exceeds ``exchange_timeout`` the caller gets :class:`CardTimeout` at once, the
session is marked dead, and the worker is *abandoned*: it finishes the stuck call whenever the
reader driver gives up or the card is pulled, then disconnects and releases (its last job always
runs). Until then the reader is reported ``stuck`` and new sessions on it fail fast with
:class:`ReaderBusy` instead of queueing behind a hung call. The worker is a daemon thread, so a
hung reader cannot keep the agent from exiting either.

**Card pulled.** pcscd reports a pulled card as ``SCARD_W_REMOVED_CARD`` or
``SCARD_E_NO_SMARTCARD`` once its presence poll has run; before that, an exchange in flight may
fail with ``SCARD_E_NOT_TRANSACTED`` or, with vpcd, *succeed with zero bytes* (measured). For
those ambiguous failures the worker watches the reader for up to ``removal_confirm`` seconds: if
the card is gone (or was swapped: pcsc-lite's event counter moved) the caller gets
:class:`CardRemovedError`, else :class:`CardCommunicationError`.

**After any error** the session is dead (a card whose state is unknown is not read further); every
later call raises :class:`SessionClosed`. Open a new session to retry.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any, TypeVar

from smartcard import scard

from edge.devices.apdu_transport import Exchange, ExchangeStats, TransportOptions, exchange
from edge.devices.card_atr import CardCapabilities, capabilities_from_atr
from edge.devices.card_config import CardReaderConfig
from edge.devices.card_errors import (
    AMBIGUOUS,
    CardCommunicationError,
    CardReaderError,
    CardRemovedError,
    CardTimeout,
    ReaderBusy,
    SessionClosed,
    error_for,
    pcsc_code,
    pcsc_message,
)
from edge.devices.card_state import StateBook
from edge.documents.apdu import ApduError, CommandApdu, ResponseApdu

__all__ = ["CardSession", "ReaderClaims"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_SUCCESS = pcsc_code(scard.SCARD_S_SUCCESS)
_TIMEOUT = pcsc_code(scard.SCARD_E_TIMEOUT)
_PROTOCOLS = {"T0": scard.SCARD_PROTOCOL_T0, "T1": scard.SCARD_PROTOCOL_T1}
_PROTOCOL_NAMES = {scard.SCARD_PROTOCOL_T0: "T0", scard.SCARD_PROTOCOL_T1: "T1"}
_DISPOSITIONS = {
    "leave": scard.SCARD_LEAVE_CARD,
    "reset": scard.SCARD_RESET_CARD,
    "unpower": scard.SCARD_UNPOWER_CARD,
}
_COUNTER_SHIFT = 16
#: Extra wait for a presence check beyond its own time budget.
_CHECK_MARGIN = 1.0


class _Link:
    """The session's PC/SC state and calls; only the session's worker thread calls its methods.

    Kept apart from :class:`CardSession` so that the worker thread does not keep the session
    alive: a session dropped without being closed is collected, and its finalizer releases the
    reader.
    """

    def __init__(self, reader: str, config: CardReaderConfig) -> None:
        self.reader = reader
        self.config = config
        self.context: int | None = None
        self.handle: int | None = None
        self.protocol = 0
        self.counter = 0
        #: An exchange timed out while its PC/SC call was running (set by the caller's thread).
        self.stuck = False

    def connect(self) -> tuple[bytes, int]:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if pcsc_code(hresult) != _SUCCESS:
            raise error_for(hresult, "connecting to pcscd", self.reader)
        self.context = context
        protocols = 0
        for name in self.config.protocols:
            protocols |= _PROTOCOLS[name]
        hresult, handle, protocol = scard.SCardConnect(
            context, self.reader, scard.SCARD_SHARE_EXCLUSIVE, protocols
        )
        if pcsc_code(hresult) != _SUCCESS:
            raise error_for(hresult, "connecting to the card", self.reader)
        self.handle = handle
        self.protocol = protocol
        hresult, _name, _state, _protocol, atr = scard.SCardStatus(handle)
        if pcsc_code(hresult) != _SUCCESS:
            raise error_for(hresult, "reading the card status", self.reader)
        # pcsc-lite's event counter now: if it moves, the card was pulled (and maybe put back)
        hresult, states = scard.SCardGetStatusChange(
            context, 0, [(self.reader, scard.SCARD_STATE_UNAWARE)]
        )
        if pcsc_code(hresult) == _SUCCESS:
            self.counter = states[0][1] >> _COUNTER_SHIFT
        return bytes(atr), protocol

    def transmit(self, wire: bytes) -> bytes:
        if self.handle is None:
            raise SessionClosed(f"the session on {self.reader!r} is not connected")
        hresult, response = scard.SCardTransmit(self.handle, self.protocol, list(wire))
        code = pcsc_code(hresult)
        if code == _SUCCESS:
            if len(response) >= 2:
                return bytes(response)
            # vpcd answers so when the card's socket closes mid-exchange
            raise _Ambiguous(f"the reader returned {len(response)} byte(s) and no status word")
        if code in AMBIGUOUS:
            raise _Ambiguous(pcsc_message(code))
        raise error_for(hresult, "exchanging with the card", self.reader)

    def card_gone(self) -> bool:
        """Watch the reader for up to ``removal_confirm``: True if the card left (or was
        swapped), False if it stayed."""
        if self.context is None:
            raise SessionClosed(f"the session on {self.reader!r} is not connected")
        deadline = time.monotonic() + self.config.removal_confirm
        known = scard.SCARD_STATE_UNAWARE  # the first call returns the current state at once
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            hresult, states = scard.SCardGetStatusChange(
                self.context, remaining_ms, [(self.reader, known)]
            )
            code = pcsc_code(hresult)
            if code == _TIMEOUT:
                return False
            if code != _SUCCESS:
                error = error_for(hresult, "checking for the card", self.reader)
                if isinstance(error, CardRemovedError):
                    return True
                raise error
            event = states[0][1]
            if not event & scard.SCARD_STATE_PRESENT or event & scard.SCARD_STATE_UNKNOWN:
                return True
            if event >> _COUNTER_SHIFT != self.counter:
                return True
            if remaining_ms == 0:
                return False
            known = event & ~scard.SCARD_STATE_CHANGED

    def release(self) -> None:
        """Disconnect (with the configured disposition) and release the context; never raises."""
        handle, self.handle = self.handle, None
        context, self.context = self.context, None
        if handle is not None:
            disposition = _DISPOSITIONS[self.config.disposition]
            try:
                hresult = scard.SCardDisconnect(handle, disposition)
                if pcsc_code(hresult) != _SUCCESS:  # the card or pcscd already gone: fine
                    log.debug("SCardDisconnect on %s: %s", self.reader, pcsc_message(hresult))
            except Exception:
                log.debug("SCardDisconnect on %s failed", self.reader, exc_info=True)
        if context is not None:
            try:
                scard.SCardReleaseContext(context)
            except Exception:  # pyscard 2.3.1 has been seen raising SystemError here
                log.debug("SCardReleaseContext failed", exc_info=True)


class ReaderClaims:
    """Which reader each live session holds; one session per reader at a time.

    A claim is taken when a session opens and given back when its worker thread has ended (not
    when the session closes: a worker stuck in a timed-out exchange still holds the reader).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, _Link] = {}

    def claim(self, link: _Link) -> None:
        with self._lock:
            holder = self._holders.get(link.reader)
            if holder is not None and holder is not link:
                why = "is stuck in an exchange that timed out" if holder.stuck else "is in use"
                raise ReaderBusy(f"reader {link.reader!r} {why}", reader=link.reader)
            self._holders[link.reader] = link

    def release(self, link: _Link) -> None:
        with self._lock:
            if self._holders.get(link.reader) is link:
                del self._holders[link.reader]


class _Ambiguous(Exception):
    """The exchange failed in a way that a pulled card also produces; look at the reader."""


class _Worker:
    """A daemon thread running jobs in order, then its finalizer, which always runs."""

    def __init__(self, name: str, finalizer: Callable[[], None]) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._finalizer = finalizer
        #: Done when the thread has run its finalizer; cannot be cancelled.
        self.finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.finished.set_running_or_notify_cancel()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((future, job))
        return future

    def shutdown(self) -> None:
        """Run the finalizer after the jobs already queued; the thread then ends."""
        self._jobs.put(None)

    @property
    def current(self) -> bool:
        return threading.current_thread() is self._thread

    def _run(self) -> None:
        try:
            while (item := self._jobs.get()) is not None:
                future, job = item
                if not future.set_running_or_notify_cancel():
                    continue  # its caller gave up before it started
                try:
                    result = job()
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
        finally:
            try:
                self._finalizer()
            except Exception:
                log.exception("releasing the card session failed")
            finally:
                self.finished.set_result(None)


def _finalizer(
    link: _Link, book: StateBook, claims: ReaderClaims, stats: ExchangeStats
) -> Callable[[], None]:
    """The worker's last job: release the card, then give the reader back.

    Runs in the worker *before* ``finished`` is set: a done-callback would run after the waiters
    of ``finished.result()`` wake up, and a close() could return with the claim still held.
    """

    def finalize() -> None:
        try:
            link.release()
        finally:
            book.add_traffic(link.reader, stats)
            book.session_open(link.reader, False)
            if link.stuck:
                book.set_stuck(link.reader, False)
            claims.release(link)

    return finalize


class CardSession:
    """An exclusive connection to the card in ``reader``; see the module docstring.

    Open it with ``async with`` (or ``with`` outside the event loop); read :attr:`atr`,
    :attr:`protocol` and :attr:`capabilities` once open; exchange with :meth:`transmit` (blocking,
    from a worker thread) or :meth:`atransmit`. One exchange at a time: a second concurrent
    exchange raises ``RuntimeError``. :attr:`stats` counts the traffic.
    """

    def __init__(
        self,
        reader: str,
        config: CardReaderConfig | None = None,
        *,
        book: StateBook | None = None,
        claims: ReaderClaims | None = None,
    ) -> None:
        self.reader = reader
        self.config = config if config is not None else CardReaderConfig()
        self.stats = ExchangeStats()
        self.atr = b""
        self.protocol: str | None = None
        self._learned = CardCapabilities()
        self._options = TransportOptions()
        self._book = book if book is not None else StateBook()
        self._claims = claims if claims is not None else ReaderClaims()
        self._link = _Link(reader, self.config)
        self._worker: _Worker | None = None
        self._gc_guard: weakref.finalize[Any, Any] | None = None
        self._phase = "new"  # new -> open -> closed
        self._dead: CardReaderError | None = None
        self._exchanging = threading.Lock()  # held for one whole logical exchange

    # -- what the session knows --------------------------------------------------------------

    @property
    def capabilities(self) -> CardCapabilities:
        """What the card takes, from the ATR or the configuration; ``extended_length`` turns off
        if the card refuses an extended APDU."""
        learned = self._learned
        if self.config.extended_length is not None:
            learned = replace(learned, source="config")
        return replace(learned, extended_length=self._options.extended_length)

    @property
    def is_open(self) -> bool:
        return self._phase == "open" and self._dead is None

    @property
    def stuck(self) -> bool:
        """An exchange timed out and its PC/SC call has not returned yet."""
        worker = self._worker
        return self._link.stuck and not (worker is not None and worker.finished.done())

    # -- open and close ----------------------------------------------------------------------

    def _begin_open(self) -> _Worker:
        if self._phase != "new":
            raise RuntimeError("a CardSession opens once; ask the card reader for a new one")
        self._claims.claim(self._link)
        self._phase = "open"
        finalize = _finalizer(self._link, self._book, self._claims, self.stats)
        worker = _Worker(f"card-session-{self.reader}", finalize)
        self._worker = worker
        # A session dropped without being closed still gives the reader back.
        self._gc_guard = weakref.finalize(self, worker.shutdown)
        self._book.session_open(self.reader, True)
        return worker

    def _opened(self, atr: bytes, protocol: int) -> None:
        self.atr = atr
        self.protocol = _PROTOCOL_NAMES.get(protocol, f"0x{protocol:X}")
        self._learned = capabilities_from_atr(atr)
        configured = self.config.extended_length
        self._options.extended_length = (
            self._learned.extended_length if configured is None else configured
        )
        self._book.card_state(self.reader, True, atr)
        log.info(
            "session on %s: protocol %s, ATR %s, extended length %s",
            self.reader,
            self.protocol,
            atr.hex().upper(),
            self._options.extended_length,
        )

    def open(self) -> CardSession:
        """Connect (blocking); the sync twin of ``async with``."""
        self._refuse_loop_thread("open")
        worker = self._begin_open()
        try:
            atr, protocol = self._wait(
                worker.submit(self._link.connect), self.config.connect_timeout
            )
        except BaseException as exc:
            self._record(exc)
            self.close()
            raise
        self._opened(atr, protocol)
        return self

    async def aopen(self) -> CardSession:
        """Connect without blocking the event loop."""
        worker = self._begin_open()
        try:
            atr, protocol = await self._await(
                worker.submit(self._link.connect), self.config.connect_timeout
            )
        except BaseException as exc:
            self._record(exc)
            await self.aclose()
            raise
        self._opened(atr, protocol)
        return self

    def _begin_close(self) -> _Worker | None:
        if self._phase == "closed":
            return None
        self._phase = "closed"
        worker = self._worker
        if worker is not None:
            worker.shutdown()
            if self._gc_guard is not None:
                self._gc_guard.detach()
        return worker

    def _close_wait(self) -> float:
        # a stuck worker releases when its call returns; waiting for it would hang the lane
        return 0.0 if self._link.stuck else self.config.close_timeout

    def close(self) -> None:
        """Disconnect and release (blocking, bounded by ``close_timeout``); idempotent."""
        worker = self._begin_close()
        if worker is None:
            return
        try:
            worker.finished.result(self._close_wait())
        except TimeoutError:
            self._not_released()

    async def aclose(self) -> None:
        """Disconnect and release without blocking the loop; idempotent.

        The release is queued on the worker before anything is awaited, so it happens even if
        this coroutine is cancelled while it waits.
        """
        worker = self._begin_close()
        if worker is None:
            return
        waiting = asyncio.wrap_future(worker.finished)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), self._close_wait())
        except TimeoutError:
            self._not_released()

    def _not_released(self) -> None:
        if not self._link.stuck:
            log.warning(
                "card session on %s not released within %.1fs; it will be when the reader answers",
                self.reader,
                self.config.close_timeout,
            )

    def __enter__(self) -> CardSession:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> CardSession:
        return await self.aopen()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- exchanges ---------------------------------------------------------------------------

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        """Send one command and return the complete response (blocking).

        For pure-code document readers running in a worker thread. Raises ``RuntimeError`` when
        called on the event loop's thread (it would freeze the lane): use :meth:`atransmit`.
        """
        self._refuse_loop_thread("transmit")
        worker = self._begin_exchange(command)
        steps: Exchange = exchange(command, self._options, self.stats)
        try:
            wire = next(steps)
            while True:
                wire = steps.send(self._roundtrip(worker, wire))
        except StopIteration as done:
            response: ResponseApdu = done.value
            return response
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self._exchanging.release()

    async def atransmit(self, command: CommandApdu) -> ResponseApdu:
        """Send one command and return the complete response, without blocking the loop."""
        worker = self._begin_exchange(command)
        steps: Exchange = exchange(command, self._options, self.stats)
        try:
            wire = next(steps)
            while True:
                wire = steps.send(await self._aroundtrip(worker, wire))
        except StopIteration as done:
            response: ResponseApdu = done.value
            return response
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self._exchanging.release()

    def _begin_exchange(self, command: CommandApdu) -> _Worker:
        if not isinstance(command, CommandApdu):
            raise TypeError(f"transmit takes a CommandApdu, not {type(command).__name__}")
        if self._dead is not None:
            raise SessionClosed(
                f"the session on {self.reader!r} is unusable after: {self._dead}",
                reader=self.reader,
            ) from self._dead
        if self._phase != "open" or self._worker is None:
            raise SessionClosed(f"the session on {self.reader!r} is not open", reader=self.reader)
        if self._worker.current:
            raise RuntimeError("transmit called from the session's own worker thread")
        if not self._exchanging.acquire(blocking=False):
            raise RuntimeError("one exchange at a time: this session is already exchanging")
        return self._worker

    def _roundtrip(self, worker: _Worker, wire: bytes) -> bytes:
        link, started = self._link, time.perf_counter()
        try:
            try:
                job = worker.submit(lambda: link.transmit(wire))
                return self._wait(job, self.config.exchange_timeout)
            except _Ambiguous as doubt:
                gone = self._wait(worker.submit(link.card_gone), self._check_time())
                raise self._removed_or_failed(gone, doubt) from None
        finally:
            self.stats.seconds += time.perf_counter() - started

    async def _aroundtrip(self, worker: _Worker, wire: bytes) -> bytes:
        link, started = self._link, time.perf_counter()
        try:
            try:
                job = worker.submit(lambda: link.transmit(wire))
                return await self._await(job, self.config.exchange_timeout)
            except _Ambiguous as doubt:
                gone = await self._await(worker.submit(link.card_gone), self._check_time())
                raise self._removed_or_failed(gone, doubt) from None
        finally:
            self.stats.seconds += time.perf_counter() - started

    def _check_time(self) -> float:
        return self.config.removal_confirm + _CHECK_MARGIN

    def _removed_or_failed(self, gone: bool, doubt: _Ambiguous) -> CardReaderError:
        if gone:
            return CardRemovedError(
                f"the card was removed from {self.reader!r} during an exchange", reader=self.reader
            )
        return CardCommunicationError(
            f"exchange with the card in {self.reader!r} failed: {doubt}", reader=self.reader
        )

    # -- waiting for the worker --------------------------------------------------------------

    def _wait(self, future: concurrent.futures.Future[T], timeout: float) -> T:
        try:
            return future.result(timeout)
        except CardReaderError:
            raise  # CardTimeout is a TimeoutError too: it must not look like ours
        except TimeoutError:
            raise self._timed_out(future, timeout) from None

    async def _await(self, future: concurrent.futures.Future[T], timeout: float) -> T:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except CardReaderError:
            raise
        except TimeoutError:
            raise self._timed_out(future, timeout) from None

    def _timed_out(self, future: concurrent.futures.Future[Any], timeout: float) -> CardTimeout:
        # cancel() works only on a job that has not started; one that has is stuck in PC/SC
        if not future.cancel() and not future.done():
            link, book = self._link, self._book
            link.stuck = True
            book.set_stuck(link.reader, True)

            def unstuck(_: concurrent.futures.Future[Any]) -> None:
                link.stuck = False  # the call came back; the worker can release when closed
                book.set_stuck(link.reader, False)

            future.add_done_callback(unstuck)
        return CardTimeout(
            f"the card in {self.reader!r} did not answer within {timeout:.1f}s", reader=self.reader
        )

    def _fail(self, exc: BaseException) -> None:
        """Any failure during an exchange leaves the card in an unknown state: the session dies."""
        if isinstance(exc, asyncio.CancelledError):
            dead: CardReaderError = SessionClosed(
                "an exchange was cancelled mid-way; the card's state is unknown", reader=self.reader
            )
        elif isinstance(exc, CardReaderError):
            dead = exc
        elif isinstance(exc, ApduError):
            return  # a command that cannot be encoded: nothing was sent
        else:
            dead = SessionClosed(f"exchange failed: {exc!r}", reader=self.reader)
        if self._dead is None:
            self._dead = dead
        self._record(dead)

    def _record(self, exc: BaseException) -> None:
        if isinstance(exc, CardReaderError):
            self._book.error(self.reader, str(exc))

    @staticmethod
    def _refuse_loop_thread(what: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise RuntimeError(
            f"CardSession.{what} blocks and this thread runs an event loop; use the async form, "
            "or call it from a worker thread (asyncio.to_thread)"
        )
