"""Which document is on a card (edge/documents/card.py), over virtual cards called directly.

The end-to-end behaviour through pcscd is in test_card_read_cli.py; here, the corners: what
happens to the caller's own transmit errors, and where a passport's document data comes from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

import pytest

from edge.documents.apdu import CommandApdu, ResponseApdu
from edge.documents.card import CardReadError, MrzRequired, read_card
from edge.documents.emrtd.lds import LdsFile
from edge.documents.emrtd.passive_auth import CscaStore
from edge.documents.mrz import parse as parse_mrz
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import SAMPLES_DIR, create_issuer, issue_card, trust_list_for
from edge.sim.emrtd_chip import EmrtdChip, PassportPki, issue_passport_image
from edge.sim.emrtd_pki import SPECIMEN_MRZ

TODAY = date(2026, 11, 24)
ISSUER = create_issuer("bz-cbic-test-1")
WORKER = json.loads((SAMPLES_DIR / "resident-worker.json").read_text(encoding="utf-8"))
CBIC_IMAGE = issue_card(WORKER, ISSUER)
PKI = PassportPki.create("UT")
PASSPORT = issue_passport_image(SPECIMEN_MRZ, pki=PKI)
MRZ = parse_mrz(SPECIMEN_MRZ)


class Pulled(Exception):
    """What a driver raises when the card leaves."""


def direct(card: CbicCard | EmrtdChip, fail_at: int | None = None) -> Callable[..., ResponseApdu]:
    sent = 0

    def transmit(command: CommandApdu) -> ResponseApdu:
        nonlocal sent
        sent += 1
        if fail_at is not None and sent >= fail_at:
            raise Pulled(f"gone at APDU {sent}")
        return ResponseApdu.parse(card.transmit(command.to_bytes()))

    return transmit


def read(transmit: Callable[..., ResponseApdu], **options: object):
    arguments = {
        "issuers": trust_list_for(ISSUER),
        "site": "bz-santa-elena",
        "today": TODAY,
        "cscas": PKI.trust_store(),
        "mrz": MRZ,
    } | options
    return read_card(transmit, **arguments)


@pytest.mark.parametrize("fail_at", [1, 3], ids=["at SELECT", "mid-read"])
def test_the_callers_transmit_errors_come_back_unchanged(fail_at: int) -> None:
    with pytest.raises(Pulled, match=f"gone at APDU {fail_at}"):
        read(direct(CbicCard.from_image(CBIC_IMAGE), fail_at))
    with pytest.raises(Pulled, match="gone at APDU 6"):
        read(direct(EmrtdChip.from_image(PASSPORT), 6))


def test_a_cbic_first_and_an_epassport_only_with_its_mrz() -> None:
    cbic = read(direct(CbicCard.from_image(CBIC_IMAGE)))
    assert (cbic.kind, cbic.failed, cbic.source) == ("cbic", (), "EF.HOLDER")
    assert cbic.document is not None and cbic.document["category"] == "resident-worker"
    with pytest.raises(MrzRequired):
        read(direct(EmrtdChip.from_image(PASSPORT)), mrz=None)
    passport = read(direct(EmrtdChip.from_image(PASSPORT)))
    assert passport.kind == "passport" and passport.source == "DG1"
    assert passport.failed == ("ds_certificate_revocation",)  # skipped: no CRL given
    assert passport.emrtd is not None and passport.passive_auth is not None


def test_a_passport_without_readable_dg1_or_dg2_still_says_what_it_is() -> None:
    files = {f: data for f, data in PASSPORT.files.items() if f is not LdsFile.DG1}
    files[LdsFile.DG2] = files[LdsFile.DG2][:-1] + b"\x00"  # hash fails; face still parses
    chip = EmrtdChip(files, PASSPORT.keys)
    document = read(direct(chip), cscas=CscaStore())
    assert document.source == "printed MRZ"
    assert document.document is not None and document.document["number"] == "L898902C3"
    assert document.holder["surname"] == "ERIKSSON"
    assert "dg1_hash" in document.failed and "dg2_hash" in document.failed
    no_face = {f: data for f, data in files.items() if f is not LdsFile.DG2}
    document = read(direct(EmrtdChip(no_face, PASSPORT.keys)))
    assert document.holder["face"] == {"error": "EF.DG2 not read (6A82)"}


def test_a_card_that_refuses_reads_is_a_read_error() -> None:
    card = CbicCard.from_image(CBIC_IMAGE)
    del card.files[2]  # no EF.SIG
    with pytest.raises(CardReadError, match=r"the CBIC could not be read: the card has no EF\.SIG"):
        read(direct(card))
