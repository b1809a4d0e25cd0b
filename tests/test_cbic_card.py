"""A virtual CBIC read and verified end to end: pyscard -> libpcsclite -> pcscd -> vpcd -> card.

The terminal side is :func:`edge.documents.cbic.read_cbic` with a ``transmit`` wrapping a pyscard
connection, as the kiosk's card reader driver will provide it. Nothing is mocked.

pcscd notices insertions and removals only on its presence poll (~400 ms), so the module keeps
one card position in reader slot 1 and swaps the card *behind* it between tests (a
:class:`Slot` forwards to whichever card it holds). Only the card-pulled test takes the card out;
the next test puts it back.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

import pytest
from smartcard.CardConnection import CardConnection
from smartcard.System import readers

from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord
from edge.documents.cbic import (
    CHECK_CARD_AUTHENTICATION,
    CHECK_CROSSING_POINT,
    CHECK_EXPIRY,
    CHECK_ISSUER_SIGNATURE,
    CHECK_PORTRAIT_HASH,
    CbicReadError,
    CbicReading,
    NotACbic,
    read_cbic,
)
from edge.sim.cards import IsoCard
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import SAMPLES_DIR, create_issuer, issue_card, trust_list_for
from edge.sim.pcscd import PcscStack
from edge.sim.vpcd import VirtualCard, VpcdClient
from harness.pcsc import wait_for_card

SLOT = 1  # slot 0 holds tests/test_pcsc_stack.py's module card
PCSCD_POLL = 0.5  # pcscd polls a vpcd reader for presence every 400 ms
TODAY = date(2026, 11, 24)
ISSUER = create_issuer("bz-cbic-test-1")
TRUST = trust_list_for(ISSUER)
WORKER = json.loads((SAMPLES_DIR / "resident-worker.json").read_text(encoding="utf-8"))
WORKER_IMAGE = issue_card(WORKER, ISSUER)


class Slot(VirtualCard):
    """A card position in a vpcd reader; the card in it can be swapped while it stays inserted."""

    atr = IsoCard.ATR

    def __init__(self, stack: PcscStack) -> None:
        self.stack = stack
        self.reader = stack.reader_names[SLOT]
        self.card: VirtualCard = IsoCard()
        self.client: VpcdClient | None = None

    def put(self, card: VirtualCard) -> None:
        card.reset()
        self.card = card
        if isinstance(card, CbicCard):
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
            self.client = VpcdClient(self, port=self.stack.vpcd_port + SLOT).insert()
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
def slot(pcsc_stack: PcscStack) -> Iterator[Slot]:
    slot = Slot(pcsc_stack)
    yield slot
    slot.remove()


@contextmanager
def connected(slot: Slot) -> Iterator[Callable[[CommandApdu], ResponseApdu]]:
    """A ``transmit`` over a fresh pyscard connection to the card in ``slot``."""
    slot.ensure_inserted()
    (reader,) = [r for r in readers() if str(r) == slot.reader]
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


def read_through_pcsc(slot: Slot, card: VirtualCard, **kwargs) -> CbicReading:
    slot.ensure_inserted()
    slot.put(card)
    options = {"trust": TRUST, "today": TODAY, "site": "bz-santa-elena"} | kwargs
    with connected(slot) as transmit:
        return read_cbic(transmit, **options)


def test_a_genuine_cbic_reads_and_verifies_through_pcscd(slot: Slot) -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    reading = read_through_pcsc(slot, card)
    assert reading.passed, reading.checks
    assert reading.apdus == 4 and card.apdu_count == 4
    assert reading.holder is not None and reading.holder.card_number == "CB4410275"
    assert reading.data.holder_data == WORKER_IMAGE.holder_data


def test_a_portrait_and_long_files_cross_pcscd_in_chunks(slot: Slot) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # ~10 kB
    long_names = WORKER | {"given_names": "Marisol Andrea Guadalupe de los Ángeles" * 2}
    card = CbicCard.from_image(issue_card(long_names, ISSUER, portrait=jpeg))
    reading = read_through_pcsc(slot, card, read_portrait=True)
    assert reading.passed, reading.checks
    assert reading.verification.portrait is not None
    assert reading.verification.portrait.image == jpeg
    assert reading.verification.check(CHECK_PORTRAIT_HASH).passed
    assert reading.apdus == 1 + 2 + 1 + 41 + 1  # EF.HOLDER in two reads, EF.PORTRAIT in 41


TAMPERING = [
    ("bad issuer signature", CHECK_ISSUER_SIGNATURE, {"bad_issuer_signature": True}, {}),
    ("cloned card", CHECK_CARD_AUTHENTICATION, {"cloned": True}, {}),
    ("expired", CHECK_EXPIRY, {}, {"expiry_date": "2026-11-23"}),
    ("other crossing point", CHECK_CROSSING_POINT, {}, {"valid_at": ["bz-benque-viejo"]}),
]


@pytest.mark.parametrize(
    ("check", "switches", "holder_changes"),
    [t[1:] for t in TAMPERING],
    ids=[t[0] for t in TAMPERING],
)
def test_each_tampered_card_fails_exactly_its_check(
    slot: Slot, check: str, switches: dict, holder_changes: dict
) -> None:
    image = issue_card(WORKER | holder_changes, ISSUER) if holder_changes else WORKER_IMAGE
    reading = read_through_pcsc(slot, CbicCard.from_image(image, **switches))
    assert reading.verification.failed == (check,), reading.checks
    assert {str(c.result) for c in reading.checks if c.name != check} == {"pass"}


def test_a_card_without_the_cbic_application(slot: Slot) -> None:
    with pytest.raises(NotACbic, match="SELECT answered 6A82"):
        read_through_pcsc(slot, IsoCard())


def test_a_card_pulled_mid_read_ends_in_a_read_error_without_hanging(slot: Slot) -> None:
    card = CbicCard.from_image(WORKER_IMAGE, pull_after=2)  # SELECT, EF.HOLDER, then gone
    started = time.monotonic()
    with pytest.raises(CbicReadError, match="link lost at APDU 3") as caught:
        read_through_pcsc(slot, card)
    elapsed = time.monotonic() - started
    assert caught.value.apdus == 3 and card.pulled
    assert elapsed < 3, f"took {elapsed:.1f}s to notice the card was gone"
    assert slot.client is not None and not slot.client.inserted
    wait_for_card(slot.reader, present=False)


def test_the_slot_works_again_after_a_pull(slot: Slot) -> None:
    assert read_through_pcsc(slot, CbicCard.from_image(WORKER_IMAGE)).passed
