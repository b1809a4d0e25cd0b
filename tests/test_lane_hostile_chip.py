"""Issue 14: what a chip says can refer a traveller, never stop the lane.

A passport chip whose files make a document parser fail is an unreadable document: the lane
records the crossing as referred, with the failing check and its reason for the officer, and
goes back to idle. The first test runs through pcscd + vpcd and the real card reader driver; the
others call the virtual chip directly (test_lane.py's rig).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from test_emrtd_passive_auth import sod_with_certificate, with_empty_bit_string
from test_lane import (
    PASSPORT_MRZ,
    PKI,
    TODAY,
    TRUST,
    FakeScreener,
    card_source,
    make_lane,
    records,
    run_lane,
)

from edge.devices.card_reader import CardReader, CardReaderConfig
from edge.documents import card as card_module
from edge.documents import tlv
from edge.documents.emrtd.lds import LdsFile
from edge.documents.mrz import parse as parse_mrz
from edge.lane import CardPresented, Lane, LaneConfig, LaneState, MrzScanned
from edge.sim.emrtd_chip import EmrtdChip, issue_passport_image
from edge.uplink.outbox import Outbox
from mqtt_schemas import validate
from mqtt_schemas.envelope import StaticClock

ISSUED = issue_passport_image(PASSPORT_MRZ, pki=PKI)


@pytest.fixture
def outbox(tmp_path):
    with Outbox(tmp_path / "kiosk.db", "kiosk-bz-se-01", StaticClock()) as box:
        yield box


def chip_with(**files: bytes) -> EmrtdChip:
    """The specimen chip with some of its files replaced (``SOD=...``, ``DG1=...``)."""
    replaced = dict(ISSUED.files) | {LdsFile[name]: data for name, data in files.items()}
    return EmrtdChip.from_image(dataclasses.replace(ISSUED, files=replaced))


def empty_bit_string_sod(where: str) -> bytes:
    """The issue's SOD: a DS certificate whose ``where`` BIT STRING is zero-length."""
    certificate = PKI.ds.certificate.public_bytes(Encoding.DER)
    return sod_with_certificate(
        ISSUED.files[LdsFile.SOD], with_empty_bit_string(certificate, where)
    )


def check(crossing: dict, name: str) -> dict:
    return next(c for c in crossing["checks"] if c["name"] == name)


def test_the_issue_s_chip_through_pcscd_is_referred_with_the_reason(card_slot, outbox) -> None:
    reader = CardReader(CardReaderConfig())
    config = LaneConfig.from_dict(
        {"site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "policy": {"show_s": 0}}
    )
    lane = Lane(
        config,
        outbox=outbox,
        screener=FakeScreener(),
        issuers=TRUST,
        cscas=PKI.trust_store(),
        today=lambda: TODAY,
    )
    seen: list = []
    lane.add_listener(seen.append)
    card_slot.put(chip_with(SOD=empty_bit_string_sod("signature")))

    async def traveller() -> None:
        await lane.handle(MrzScanned(parse_mrz(PASSPORT_MRZ)))
        await lane.handle(CardPresented(lambda: reader.session(card_slot.reader), card_slot.reader))

    asyncio.run(traveller())  # returns: the lane did not fail
    (event,) = [e for e in seen if e.state is LaneState.SHOW]
    assert event.outcome == "refer"
    (record,) = outbox.pending(0, 10)
    crossing = json.loads(record.payload)
    validate("crossing", crossing)
    assert crossing["decision"] == {"outcome": "refer", "reasons": ["chip-auth-failed"]}
    parsed = check(crossing, "sod_parsed")
    assert parsed["result"] == "fail"
    assert "certificate 1 is malformed" in parsed["detail"]
    assert check(crossing, "chip-read")["result"] == "pass"  # read; its data is what failed
    assert lane.reviews.pending()[0].reasons == ("chip-auth-failed",)


@pytest.mark.parametrize(
    ("files", "failing"),
    [
        ({"SOD": "public_key"}, "sod_parsed"),
        ({"SOD": b"\x77\x82\x00\x03\x30\x01\x00"}, "sod_parsed"),  # a length past the end
        ({"SOD": tlv.encode(0x77, b"\x30\x80" * 200)}, "sod_parsed"),  # deep indefinite
        ({"DG1": tlv.encode(0x61, tlv.encode(0x5F1F, b"\xff" * 88))}, "dg1_hash"),
        ({"DG2": tlv.encode(0x75, b"\x7f\x61\x01")}, "dg2_hash"),
    ],
)
def test_a_chip_whose_files_do_not_parse_is_referred(outbox, files, failing) -> None:
    replaced = {
        name: empty_bit_string_sod(data) if isinstance(data, str) else data
        for name, data in files.items()
    }
    lane, seen = make_lane(outbox)
    run_lane(
        lane,
        MrzScanned(parse_mrz(PASSPORT_MRZ)),
        card_source(chip_with(**replaced)),
        until=lambda: any(e.state is LaneState.SHOW for e in seen),
    )
    (crossing,) = records(outbox, "crossing")
    validate("crossing", crossing)
    assert crossing["decision"]["outcome"] == "refer"
    assert "chip-auth-failed" in crossing["decision"]["reasons"]
    assert check(crossing, failing)["result"] == "fail"


def test_a_parser_bug_on_a_card_s_answer_refers_and_does_not_stop_the_lane(
    outbox, monkeypatch
) -> None:
    """Belt and braces: were a parser to let another error through, read_card turns it into
    an unreadable card; the lane decides on the printed MRZ."""

    def broken(*args: object, **kwargs: object) -> None:
        raise IndexError("index out of range")

    monkeypatch.setattr(card_module, "verify", broken)
    lane, seen = make_lane(outbox)
    run_lane(
        lane,
        MrzScanned(parse_mrz(PASSPORT_MRZ)),
        card_source(chip_with()),
        until=lambda: any(e.state is LaneState.SHOW for e in seen),
    )
    (crossing,) = records(outbox, "crossing")
    assert crossing["decision"]["reasons"] == ["chip-auth-failed"]
    chip = check(crossing, "chip-read")
    assert chip["result"] == "fail"
    assert chip["detail"] == "the card's answers could not be understood (IndexError)"
    assert lane.reviews.pending()[0].crossing_id == crossing["id"]
