"""A virtual CBIC read and verified end to end: pyscard -> libpcsclite -> pcscd -> vpcd -> card.

The terminal side is :func:`edge.documents.cbic.read_cbic` with a ``transmit`` wrapping a pyscard
connection, as the kiosk's card reader driver will provide it. Nothing is mocked.

pcscd notices insertions and removals only on its presence poll (~400 ms), so the module keeps
one card position in reader slot 1 and swaps the card *behind* it between tests (the harness's
``card_slot``, a :class:`~harness.pcsc.CardSlot` forwarding to whichever card it holds). Only the
card-pulled test takes the card out; the next test puts it back.
"""

from __future__ import annotations

import json
import time
from datetime import date

import pytest

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
from edge.sim.vpcd import VirtualCard
from harness.pcsc import CardSlot, pyscard_transmit, wait_for_card

TODAY = date(2026, 11, 24)
ISSUER = create_issuer("bz-cbic-test-1")
TRUST = trust_list_for(ISSUER)
WORKER = json.loads((SAMPLES_DIR / "resident-worker.json").read_text(encoding="utf-8"))
WORKER_IMAGE = issue_card(WORKER, ISSUER)


def read_through_pcsc(slot: CardSlot, card: VirtualCard, **kwargs) -> CbicReading:
    slot.put(card)
    options = {"trust": TRUST, "today": TODAY, "site": "bz-santa-elena"} | kwargs
    with pyscard_transmit(slot) as transmit:
        return read_cbic(transmit, **options)


def test_a_genuine_cbic_reads_and_verifies_through_pcscd(card_slot: CardSlot) -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    reading = read_through_pcsc(card_slot, card)
    assert reading.passed, reading.checks
    assert reading.apdus == 4 and card.apdu_count == 4
    assert reading.holder is not None and reading.holder.card_number == "CB4410275"
    assert reading.data.holder_data == WORKER_IMAGE.holder_data


def test_a_portrait_and_long_files_cross_pcscd_in_chunks(card_slot: CardSlot) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # ~10 kB
    long_names = WORKER | {"given_names": "Marisol Andrea Guadalupe de los Ángeles" * 2}
    card = CbicCard.from_image(issue_card(long_names, ISSUER, portrait=jpeg))
    reading = read_through_pcsc(card_slot, card, read_portrait=True)
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
    card_slot: CardSlot, check: str, switches: dict, holder_changes: dict
) -> None:
    image = issue_card(WORKER | holder_changes, ISSUER) if holder_changes else WORKER_IMAGE
    reading = read_through_pcsc(card_slot, CbicCard.from_image(image, **switches))
    assert reading.verification.failed == (check,), reading.checks
    assert {str(c.result) for c in reading.checks if c.name != check} == {"pass"}


def test_a_card_without_the_cbic_application(card_slot: CardSlot) -> None:
    with pytest.raises(NotACbic, match="SELECT answered 6A82"):
        read_through_pcsc(card_slot, IsoCard())


def test_a_card_pulled_mid_read_ends_in_a_read_error_without_hanging(card_slot: CardSlot) -> None:
    card = CbicCard.from_image(WORKER_IMAGE, pull_after=2)  # SELECT, EF.HOLDER, then gone
    started = time.monotonic()
    with pytest.raises(CbicReadError, match="link lost at APDU 3") as caught:
        read_through_pcsc(card_slot, card)
    elapsed = time.monotonic() - started
    assert caught.value.apdus == 3 and card.pulled
    assert elapsed < 3, f"took {elapsed:.1f}s to notice the card was gone"
    assert card_slot.client is not None and not card_slot.client.inserted
    wait_for_card(card_slot.reader, present=False)


def test_the_slot_works_again_after_a_pull(card_slot: CardSlot) -> None:
    assert read_through_pcsc(card_slot, CbicCard.from_image(WORKER_IMAGE)).passed
