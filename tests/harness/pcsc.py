"""A real PC/SC stack (pcscd + vpcd) per test session, and helpers to put cards in its readers.

Use the ``pcsc_stack`` fixture and :func:`card_in_reader`::

    def test_something(pcsc_stack):
        with card_in_reader(pcsc_stack, IsoCard()) as reader:   # pcscd already sees the card
            connection = smartcard.System.readers()[...]         # or any pyscard API on `reader`

Modules that read many cards use the ``card_slot`` fixture instead: pcscd notices insertions
only on its ~0.4 s presence poll, so one card position stays in reader slot 1 for the whole
module and each test swaps the card behind it (:class:`CardSlot`), then talks to it through
:func:`pyscard_transmit`::

    def test_something(card_slot):
        card_slot.put(CbicCard.from_image(image))
        with pyscard_transmit(card_slot) as transmit:           # CommandApdu -> ResponseApdu
            read_cbic(transmit, ...)

libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process, on the first PC/SC call. So the
stack is *planned* in ``pytest_configure`` (socket path chosen, variable set) before any test
can touch pyscard, and *started* only when a test first asks for ``pcsc_stack``. A stack that
cannot start fails those tests with the reason; it is never a skip.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from smartcard import scard
from smartcard.CardConnection import CardConnection
from smartcard.System import readers

from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord
from edge.sim.cards import IsoCard
from edge.sim.pcscd import PcscStack, PcscStackError
from edge.sim.vpcd import VirtualCard, VpcdClient

_STACK = pytest.StashKey[PcscStack]()
_PREVIOUS_ENV = pytest.StashKey[str | None]()
_ENV = "PCSCLITE_CSOCK_NAME"


def pytest_configure(config: pytest.Config) -> None:
    stack = PcscStack()
    config.stash[_STACK] = stack
    config.stash[_PREVIOUS_ENV] = os.environ.get(_ENV)
    os.environ[_ENV] = str(stack.socket_path)


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(_STACK, None)
    if stack is None:
        return
    stack.stop()
    previous = config.stash[_PREVIOUS_ENV]
    if previous is None:
        os.environ.pop(_ENV, None)
    else:
        os.environ[_ENV] = previous


@pytest.fixture(scope="session")
def pcsc_stack(pytestconfig: pytest.Config) -> Iterator[PcscStack]:
    """The session's started pcscd with two vpcd readers (``reader_names``)."""
    stack = pytestconfig.stash[_STACK]
    if os.environ.get(_ENV) != str(stack.socket_path):
        pytest.fail(
            f"{_ENV} was changed during the session (now {os.environ.get(_ENV)!r}); "
            f"pyscard must talk to {stack.socket_path}",
            pytrace=False,
        )
    try:
        stack.start()
    except PcscStackError as exc:
        pytest.fail(f"the PC/SC test stack could not start: {exc}", pytrace=False)
    try:
        yield stack
    finally:
        stack.stop()


def wait_for_card(reader: str, *, present: bool, timeout: float = 3.0) -> bytes:
    """Block until pcscd reports a card in (``present``) or out of ``reader``.

    Returns the ATR pcscd holds (empty when absent). Uses SCardGetStatusChange, the same
    notification a kiosk's card watcher uses. vpcd has no insertion events, so pcscd notices
    on its presence poll, a few hundred milliseconds later.
    """
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        raise RuntimeError(f"SCardEstablishContext: {scard.SCardGetErrorMessage(hr)}")
    try:
        deadline = time.monotonic() + timeout
        known = scard.SCARD_STATE_UNAWARE  # first call returns the current state at once
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            hr, states = scard.SCardGetStatusChange(context, remaining_ms, [(reader, known)])
            if hr == scard.SCARD_E_TIMEOUT:
                where = "in" if present else "out of"
                raise TimeoutError(f"pcscd saw no card {where} {reader!r} within {timeout}s")
            if hr != scard.SCARD_S_SUCCESS:
                raise RuntimeError(f"SCardGetStatusChange: {scard.SCardGetErrorMessage(hr)}")
            _, event, atr = states[0]
            if event & scard.SCARD_STATE_UNKNOWN:
                raise LookupError(f"pcscd knows no reader {reader!r}")
            if bool(event & scard.SCARD_STATE_PRESENT) == present:
                return bytes(atr)
            known = event & ~scard.SCARD_STATE_CHANGED
    finally:
        scard.SCardReleaseContext(context)


@contextmanager
def card_in_reader(
    stack: PcscStack, card: VirtualCard, slot: int = 0, timeout: float = 3.0
) -> Iterator[str]:
    """Insert ``card`` into the stack's reader ``slot``; yield the reader name once pcscd sees it.

    On exit the card is removed and we wait until pcscd sees the reader empty, so the next
    test starts from a known state.
    """
    reader = stack.reader_names[slot]
    with VpcdClient(card, port=stack.vpcd_port + slot):
        wait_for_card(reader, present=True, timeout=timeout)
        yield reader
    wait_for_card(reader, present=False, timeout=timeout)


#: The reader slot the swappable card position lives in (slot 0 holds module cards of
#: tests/test_pcsc_stack.py and tests/test_card_reader.py).
SWAP_SLOT = 1
#: pcscd polls a vpcd reader for presence every 400 ms.
PCSCD_POLL = 0.5


class CardSlot(VirtualCard):
    """A card position in a vpcd reader; the card in it can be swapped while it stays inserted.

    :meth:`put` swaps the card (resetting it, and wiring its ``unplug`` hook, if it has one, to
    this position's link so a card can pull itself out mid-read); :meth:`ensure_inserted`
    (re)inserts the position after such a pull. pcscd sees one card the whole time, with the
    ATR of :class:`~edge.sim.cards.IsoCard`.
    """

    atr = IsoCard.ATR

    def __init__(self, stack: PcscStack, slot: int = SWAP_SLOT) -> None:
        self.stack = stack
        self.slot = slot
        self.reader = stack.reader_names[slot]
        self.card: VirtualCard = IsoCard()
        self.client: VpcdClient | None = None

    def put(self, card: VirtualCard) -> None:
        self.ensure_inserted()
        card.reset()
        self.card = card
        if hasattr(card, "unplug"):
            assert self.client is not None
            card.unplug = self.client.remove  # for pull_after

    def ensure_inserted(self) -> None:
        if self.client is not None and self.client.inserted:
            return
        if self.client is not None:  # pulled by the previous test: let pcscd see it gone
            wait_for_card(self.reader, present=False)
            # A card pulled mid-APDU shows as absent at once (the failed transmit says so), but
            # pcscd's presence poll has not seen it leave yet: a card inserted before its next
            # poll (400 ms) would go unnoticed, the poller seeing "present" before and after.
            time.sleep(PCSCD_POLL)
        for attempt in range(3):  # should a loaded machine delay that poll: out, wait, in again
            self.client = VpcdClient(self, port=self.stack.vpcd_port + self.slot).insert()
            try:
                wait_for_card(self.reader, present=True, timeout=1.5)
                return
            except TimeoutError:
                if attempt == 2:
                    raise
            self.client.remove()
            time.sleep(PCSCD_POLL)

    def remove(self) -> None:
        if self.client is not None and self.client.inserted:
            self.client.remove()
        wait_for_card(self.reader, present=False)

    # VirtualCard, forwarded
    def transmit(self, apdu: bytes) -> bytes:
        return self.card.transmit(apdu)

    def reset(self) -> None:
        self.card.reset()


@pytest.fixture(scope="module")
def card_slot(pcsc_stack: PcscStack) -> Iterator[CardSlot]:
    """A :class:`CardSlot` in reader slot 1 for the module; empty again afterwards."""
    slot = CardSlot(pcsc_stack)
    yield slot
    slot.remove()


@contextmanager
def pyscard_transmit(slot: CardSlot | str) -> Iterator[Callable[[CommandApdu], ResponseApdu]]:
    """A ``transmit`` over a fresh pyscard connection to the card in ``slot`` (or a reader name).

    It sends a :class:`CommandApdu` as is (short or extended) and returns the
    :class:`ResponseApdu`, as the kiosk's driver does; pyscard's own exception when the card
    is gone propagates unchanged.
    """
    if isinstance(slot, CardSlot):
        slot.ensure_inserted()
    name = slot.reader if isinstance(slot, CardSlot) else slot
    (reader,) = [r for r in readers() if str(r) == name]
    connection: CardConnection = reader.createConnection()
    connection.connect()

    def transmit(command: CommandApdu) -> ResponseApdu:
        data, sw1, sw2 = connection.transmit(list(command.to_bytes()))
        return ResponseApdu(bytes(data), StatusWord.from_bytes_pair(sw1, sw2))

    try:
        yield transmit
    finally:
        with contextlib.suppress(Exception):  # the card may have been pulled
            connection.disconnect()
        connection.release()
