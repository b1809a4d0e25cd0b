"""The kiosk's card reader driver: reader and card events, card sessions, state for health.

Hardware I/O only: it reports what the readers and cards do and carries APDUs; it never decides
what a card means (``edge.documents`` reads documents, the lane decides).

::

    reader = CardReader(CardReaderConfig(readers=("OMNIKEY",)))
    async with reader:                                   # starts the watcher thread
        async for event in reader.events():
            match event:
                case CardInserted(name, atr):
                    async with reader.session(name) as card:
                        data = await asyncio.to_thread(read_cbic, card.transmit)
                        # or: response = await card.atransmit(command)
                case CardRemoved(name): ...
        ...
        reader.reader_state().as_dict()                  # for the health report

The pieces, each in its own module:

- :mod:`~edge.devices.card_watcher`: one thread blocked in ``SCardGetStatusChange`` on the
  readers and the PnP pseudo-reader, bridged to asyncio; cancellable with ``SCardCancel``; retries
  with backoff while pcscd is away.
- :mod:`~edge.devices.card_session`: an exclusive connection with a worker thread per session,
  timeouts on every exchange, release on every path, ``CardRemovedError`` for a pulled card.
- :mod:`~edge.devices.apdu_transport`: 61XX/6CXX handling, extended length or command chaining,
  traffic counters.
- :mod:`~edge.devices.card_atr`: extended length support read from the ATR.
- :mod:`~edge.devices.card_state`: the state for the health report.
- :mod:`~edge.devices.card_errors`: the exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType

from edge.devices.apdu_transport import ExchangeStats
from edge.devices.card_atr import CardCapabilities, capabilities_from_atr, parse_atr
from edge.devices.card_config import CardReaderConfig, ReaderFilter
from edge.devices.card_errors import (
    CardCommunicationError,
    CardProtocolError,
    CardReaderError,
    CardRemovedError,
    CardReset,
    CardTimeout,
    CardUnresponsive,
    PcscUnavailable,
    ReaderBusy,
    ReaderUnavailable,
    SessionClosed,
)
from edge.devices.card_session import CardSession, ReaderClaims
from edge.devices.card_state import CardReaderState, ReaderStatus, StateBook, WatcherStatus
from edge.devices.card_watcher import (
    CardEvent,
    CardInserted,
    CardRemoved,
    CardWatcher,
    ReaderAdded,
    ReaderRemoved,
    WatcherStatusChanged,
)

__all__ = [
    "CardCapabilities",
    "CardCommunicationError",
    "CardEvent",
    "CardInserted",
    "CardProtocolError",
    "CardReader",
    "CardReaderConfig",
    "CardReaderError",
    "CardReaderState",
    "CardRemoved",
    "CardRemovedError",
    "CardReset",
    "CardSession",
    "CardTimeout",
    "CardUnresponsive",
    "CardWatcher",
    "ExchangeStats",
    "PcscUnavailable",
    "ReaderAdded",
    "ReaderBusy",
    "ReaderFilter",
    "ReaderRemoved",
    "ReaderStatus",
    "ReaderUnavailable",
    "SessionClosed",
    "WatcherStatus",
    "WatcherStatusChanged",
    "capabilities_from_atr",
    "parse_atr",
]


class CardReader:
    """The driver: a watcher, sessions on configured readers, and their shared state."""

    def __init__(self, config: CardReaderConfig | None = None) -> None:
        self.config = config if config is not None else CardReaderConfig()
        self.filter = self.config.reader_filter
        self._book = StateBook()
        self._claims = ReaderClaims()
        self.watcher = CardWatcher(
            self.filter,
            book=self._book,
            backoff_initial=self.config.backoff_initial,
            backoff_max=self.config.backoff_max,
            stop_timeout=self.config.stop_timeout,
        )

    async def start(self) -> CardReader:
        """Start watching (returns at once; events tell what is there)."""
        await self.watcher.start()
        return self

    async def stop(self) -> None:
        """Stop watching; sessions still open stay open until their ``async with`` ends."""
        await self.watcher.stop()

    async def __aenter__(self) -> CardReader:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def events(self) -> AsyncIterator[CardEvent]:
        """Reader and card events; see :class:`CardWatcher`."""
        return self.watcher.events()

    def session(self, reader: str) -> CardSession:
        """A session on ``reader``, to open with ``async with`` (or ``with`` in a thread).

        Raises :class:`ReaderUnavailable` for a reader the configuration does not allow. Opening
        raises :class:`ReaderBusy` while another session of ours holds the reader, including one
        stuck in a timed-out exchange.
        """
        if not self.filter(reader):
            raise ReaderUnavailable(
                f"{reader!r} is not a configured card reader (configured: {self.filter})",
                reader=reader,
            )
        return CardSession(reader, self.config, book=self._book, claims=self._claims)

    def reader_state(self) -> CardReaderState:
        """A consistent snapshot: every reader seen (present or not), its card, the last error,
        since when; and the watcher's status (running, pcscd unavailable...)."""
        return self._book.snapshot()
