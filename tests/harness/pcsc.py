"""A real PC/SC stack (pcscd + vpcd) per test session, and helpers to put cards in its readers.

Use the ``pcsc_stack`` fixture and :func:`card_in_reader`::

    def test_something(pcsc_stack):
        with card_in_reader(pcsc_stack, IsoCard()) as reader:   # pcscd already sees the card
            connection = smartcard.System.readers()[...]         # or any pyscard API on `reader`

libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process, on the first PC/SC call. So the
stack is *planned* in ``pytest_configure`` (socket path chosen, variable set) before any test
can touch pyscard, and *started* only when a test first asks for ``pcsc_stack``. A stack that
cannot start fails those tests with the reason; it is never a skip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from smartcard import scard

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
