"""The lane (edge/lane): one state machine from a tap to a recorded, shown decision.

Driven with virtual cards called directly (the real document code, no PC/SC), a fake screener
and a real outbox file; the end-to-end run through pcscd is in test_lane_pcsc.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import sqlite3
from datetime import date

import pytest

from edge.devices.card_errors import CardRemovedError
from edge.documents.apdu import CommandApdu, ResponseApdu
from edge.documents.card import CardDocument
from edge.documents.cbic import read_cbic
from edge.documents.emrtd.lds import Dg2, FaceImage, LdsFile
from edge.documents.mrz import check_digit
from edge.documents.mrz import parse as parse_mrz
from edge.lane import (
    CardPresented,
    Lane,
    LaneConfig,
    LaneConfigError,
    LaneState,
    MrzScanned,
    ReviewQueue,
    ScreeningHit,
    ScreeningResult,
    ScreeningUnavailable,
)
from edge.lane.record import MAX_PHOTO_BYTES, document_photo, photo_entry
from edge.lane.reviews import AlreadyDecided
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import SAMPLES_DIR, create_issuer, issue_card, trust_list_for
from edge.sim.emrtd_chip import EmrtdChip, PassportPki, issue_passport_image, passport_chip
from edge.uplink.errors import OutboxFull
from edge.uplink.outbox import Outbox
from mqtt_schemas import PayloadError, validate
from mqtt_schemas.envelope import StaticClock

TODAY = date(2026, 11, 24)
SITE = "bz-santa-elena"
ISSUER = create_issuer("bz-cbic-test-1")
TRUST = trust_list_for(ISSUER)
PKI = PassportPki.create("UT")


def sample(name: str) -> dict:
    return json.loads((SAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))


WORKER = issue_card(sample("resident-worker"), ISSUER)
EXPIRED = issue_card(sample("expired-frequent-crosser"), ISSUER)
ELSEWHERE = issue_card(sample("resident-worker") | {"valid_at": ["bz-benque-viejo"]}, ISSUER)


def td3(number: str = "L898902C3", expiry: str = "310415", birth: str = "740812") -> str:
    line1 = "P<UTOERIKSSON<<ANNA<MARIA".ljust(44, "<")
    num = number.ljust(9, "<")
    body = num + check_digit(num) + "UTO" + birth + check_digit(birth) + "F" + expiry
    body += (
        check_digit(expiry) + "ZE184226B".ljust(14, "<") + check_digit("ZE184226B".ljust(14, "<"))
    )
    composite = body[0:10] + body[13:20] + body[21:43]
    return line1 + "\n" + body + check_digit(composite)


PASSPORT_MRZ = td3()


class FakeScreener:
    def __init__(self, hits=(), version=1288, fail=False):
        self.hits, self.version, self.fail = tuple(hits), version, fail
        self.queries = []

    def screen(self, query, threshold):
        self.queries.append(query)
        if self.fail:
            raise ScreeningUnavailable("no watchlist")
        return ScreeningResult(self.version, self.hits)


def hit(action="refer", score=0.91, entry="nw-2024-00871"):
    return ScreeningHit(
        entry,
        "national-wanted",
        "person",
        score,
        action,
        ({"part": "surname", "how": "exact", "detail": "CASTILLO = CASTILLO"},),
    )


def card_source(card, pull_at: int | None = None) -> CardPresented:
    sent = 0

    class Link:
        def transmit(self, command: CommandApdu) -> ResponseApdu:
            nonlocal sent
            sent += 1
            if pull_at is not None and sent >= pull_at:
                raise CardRemovedError("card removed")
            return ResponseApdu.parse(card.transmit(command.to_bytes()))

    @contextlib.asynccontextmanager
    async def open_():
        yield Link()

    return CardPresented(open_, "virtual")


@pytest.fixture
def outbox(tmp_path):
    with Outbox(tmp_path / "kiosk.db", "kiosk-bz-se-01", StaticClock()) as box:
        yield box


def make_lane(outbox, screener=None, **policy) -> tuple[Lane, list]:
    config = LaneConfig.from_dict(
        {
            "site": SITE,
            "lane": "lane-1",
            "direction": "entry",
            "policy": {"show_s": 0.05, "chip_wait_s": 0.2} | policy,
        }
    )
    lane = Lane(
        config,
        outbox=outbox,
        screener=screener or FakeScreener(),
        issuers=TRUST,
        cscas=PKI.trust_store(),
        today=lambda: TODAY,
    )
    seen: list = []
    lane.add_listener(seen.append)
    return lane, seen


def records(outbox, channel=None):
    out = [json.loads(r.payload) for r in outbox.pending(0, 1000)]
    return [p for p in out if channel is None or p["schema"].startswith(channel)]


def tap(lane, card, **kw):
    asyncio.run(lane.handle(card_source(card, **kw)))


def shown(seen):
    (event,) = [e for e in seen if e.state is LaneState.SHOW]
    return event


def test_a_clean_cbic_passes_and_is_recorded_before_it_is_shown(outbox) -> None:
    lane, seen = make_lane(outbox)
    tap(lane, CbicCard.from_image(WORKER))
    assert [e.state for e in seen] == [
        LaneState.DOCUMENT,
        LaneState.VERIFY,
        LaneState.SCREEN,
        LaneState.DECIDE,
        LaneState.RECORD,
        LaneState.SHOW,
    ]
    event = shown(seen)
    assert event.outcome == "pass" and event.message.key == "lane.pass"
    (crossing,) = records(outbox)
    assert crossing["id"] == event.crossing_id
    validate("crossing", crossing)
    assert crossing["decision"] == {"outcome": "pass", "reasons": []}
    assert crossing["document"]["category"] == "resident-worker"
    assert crossing["screening"] == {"watchlist_version": 1288, "hit_count": 0, "hits": []}
    assert {c["name"] for c in crossing["checks"]} >= {"issuer_signature", "card_authentication"}
    assert "surname" not in json.dumps(crossing)
    assert event.timings.card_io_ms > 0 and event.timings.total_ms >= event.timings.card_io_ms
    assert crossing["latency_ms"] == pytest.approx(event.timings.total_ms, abs=0.01)
    assert lane.reviews.state("lane-1") == {
        "state": "show",
        "crossing_id": event.crossing_id,
        "outcome": "pass",
        "recorded": 1,  # the lane's count of crossings, committed with each one
    }
    assert lane.reviews.pending() == []


@pytest.mark.parametrize(
    ("card", "reason", "code"),
    [
        (lambda: CbicCard.from_image(EXPIRED), "document-expired", "expired"),
        (lambda: CbicCard.from_image(ELSEWHERE), "not-valid-at-site", "not-valid-here"),
        (lambda: CbicCard.from_image(WORKER, cloned=True), "card-auth-failed", "document-check"),
        (
            lambda: CbicCard.from_image(WORKER, bad_issuer_signature=True),
            "card-auth-failed",
            "document-check",
        ),
    ],
    ids=["expired", "wrong-site", "cloned", "bad-signature"],
)
def test_a_doubtful_cbic_is_referred(outbox, card, reason, code) -> None:
    lane, seen = make_lane(outbox)
    tap(lane, card())
    event = shown(seen)
    assert (event.outcome, event.message.key, event.message.code) == (
        "refer",
        "lane.see_officer",
        code,
    )
    (crossing,) = records(outbox, "crossing")
    assert crossing["decision"] == {"outcome": "refer", "reasons": [reason]}
    item = lane.reviews.get(event.crossing_id)
    assert item is not None and item.reasons == (reason,) and item.status == "open"
    assert event.review == item


def test_a_watchlist_hit_refers_without_the_traveller_ever_knowing(outbox) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit(), hit("refer", 0.5, "low")]))
    tap(lane, CbicCard.from_image(WORKER))
    event = shown(seen)
    assert event.outcome == "refer"
    traveller_side = json.dumps([e.message.to_dict() for e in seen if e.message])
    for secret in ("watchlist", "national-wanted", "nw-2024", "0.91", "hit"):
        assert secret not in traveller_side
    assert event.message.code == "routine-check"
    (crossing,) = records(outbox, "crossing")
    assert crossing["decision"]["reasons"] == ["watchlist-hit"]
    screening = crossing["screening"]
    assert screening["hit_count"] == 1  # the 0.5 one is below the threshold
    assert screening["hits"][0]["entry_id"] == "nw-2024-00871"
    (hits,) = records(outbox, "screening-hit")
    validate("screening-hit", hits)
    assert hits["crossing_id"] == crossing["id"]
    assert hits["traveller"]["surname"] == "Castillo"
    assert hits["hits"][0]["hit_id"] == screening["hits"][0]["hit_id"]
    assert event.review.personal["traveller"]["surname"] == "Castillo"


def test_deny_asks_to_wait_and_alert_looks_like_any_referral(outbox) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit("deny")]))
    tap(lane, CbicCard.from_image(WORKER))
    deny = shown(seen)
    assert deny.message.key == "lane.wait_officer" and deny.review.priority == "urgent"
    seen.clear()
    lane.screener = FakeScreener([hit("alert")])
    tap(lane, CbicCard.from_image(WORKER))
    alert = shown(seen)
    seen.clear()
    lane.screener = FakeScreener([hit("refer")])
    tap(lane, CbicCard.from_image(WORKER))
    plain = shown(seen)
    assert alert.message == plain.message
    assert alert.review.priority == "discreet"
    reasons = [c["decision"]["reasons"] for c in records(outbox, "crossing")]
    assert reasons == [["watchlist-deny"], ["watchlist-alert"], ["watchlist-hit"]]


def test_no_watchlist_refers(outbox) -> None:
    lane, _seen = make_lane(outbox, FakeScreener(fail=True))
    tap(lane, CbicCard.from_image(WORKER))
    (crossing,) = records(outbox, "crossing")
    assert crossing["decision"]["reasons"] == ["no-watchlist"]
    assert crossing["screening"]["watchlist_version"] == 0


def test_a_kiosk_that_never_received_a_watchlist_refers_everyone(outbox) -> None:
    """Version 0 is an empty store, not a clean one: nobody can be screened against it."""
    lane, _seen = make_lane(outbox, FakeScreener(version=0))
    tap(lane, CbicCard.from_image(WORKER))
    (crossing,) = records(outbox, "crossing")
    assert crossing["decision"] == {"outcome": "refer", "reasons": ["no-watchlist"]}
    assert crossing["screening"]["watchlist_version"] == 0


def test_a_full_outbox_refers_to_an_officer_and_stores_nothing(outbox, monkeypatch) -> None:
    lane, seen = make_lane(outbox)

    def full(*args, **kwargs):
        raise OutboxFull("budget", "outbox full")

    monkeypatch.setattr(outbox, "_check_room", full)
    tap(lane, CbicCard.from_image(WORKER))
    event = shown(seen)
    assert (event.outcome, event.message.key) == ("refer", "lane.officer_processing")
    assert records(outbox) == [] and lane.reviews.state("lane-1") is None


def test_state_and_record_are_one_transaction(outbox, monkeypatch) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    real = ReviewQueue.write_state

    def then_fail(tx, *args):
        real(tx, *args)
        assert tx.execute("SELECT count(*) FROM lane_state").fetchone()[0] == 1
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ReviewQueue, "write_state", staticmethod(then_fail))
    tap(lane, CbicCard.from_image(WORKER))
    assert shown(seen).message.key == "lane.officer_processing"
    assert records(outbox) == []
    assert lane.reviews.state("lane-1") is None and lane.reviews.pending() == []


@pytest.mark.parametrize("pull_at", [1, 3, 4])
def test_a_card_pulled_mid_read_goes_back_to_idle_and_records_nothing(outbox, pull_at) -> None:
    lane, seen = make_lane(outbox)
    tap(lane, CbicCard.from_image(WORKER), pull_at=pull_at)
    assert [e.state for e in seen] == [LaneState.DOCUMENT, LaneState.IDLE]
    assert seen[-1].message.key == "lane.card_removed"
    assert records(outbox) == [] and lane.reviews.state("lane-1") is None


def run_lane(lane, *inputs, until):
    async def main():
        task = asyncio.create_task(lane.run())
        try:
            for item in inputs:
                lane.submit(item)
            async with asyncio.timeout(10):
                while not until():
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())


def test_a_passport_without_chip_is_decided_on_its_mrz_and_referred(outbox) -> None:
    """Only the chip proves a passport genuine: without it the traveller still gets screened,
    and goes to an officer."""
    lane, seen = make_lane(outbox, FakeScreener([hit("deny")]))
    run_lane(
        lane,
        MrzScanned(parse_mrz(PASSPORT_MRZ)),
        until=lambda: lane.state is LaneState.SHOW,
    )
    (crossing,) = records(outbox, "crossing")
    assert crossing["decision"]["outcome"] == "refer"
    assert crossing["decision"]["reasons"][0] == "chip-auth-failed"
    assert "watchlist-deny" in crossing["decision"]["reasons"]  # screened all the same
    chip = next(c for c in crossing["checks"] if c["name"] == "chip-read")
    assert chip["result"] == "fail"
    assert crossing["latency_ms"] < 1000  # from the decision's start, not the chip wait
    assert seen[-1].message.key == "lane.wait_officer"
    assert lane.reviews.pending()[0].crossing_id == crossing["id"]


def test_with_no_chip_restart_an_mrz_then_no_chip_times_out_to_idle(outbox) -> None:
    lane, seen = make_lane(outbox, no_chip="restart")
    run_lane(
        lane,
        MrzScanned(parse_mrz(PASSPORT_MRZ)),
        until=lambda: lane.state is LaneState.IDLE and len(seen) >= 2,
    )
    assert [(e.state, e.message.key) for e in seen] == [
        (LaneState.DOCUMENT, "lane.place_chip"),
        (LaneState.IDLE, "lane.timeout"),
    ]
    assert records(outbox) == []


def test_a_passport_mrz_then_chip_passes_and_show_returns_to_idle(outbox) -> None:
    lane, seen = make_lane(outbox)
    chip = passport_chip(PASSPORT_MRZ, pki=PKI)
    run_lane(
        lane,
        MrzScanned(parse_mrz(PASSPORT_MRZ)),
        card_source(chip),
        until=lambda: any(e.state is LaneState.SHOW for e in seen) and lane.state is LaneState.IDLE,
    )
    event = shown(seen)
    assert event.outcome == "pass", records(outbox)
    (crossing,) = records(outbox)
    assert crossing["document"]["kind"] == "passport"
    names = [c["name"] for c in crossing["checks"]]
    assert names[:2] == ["mrz-check-digits", "chip-read"] and "dg1_hash" in names
    assert seen[-1].state is LaneState.IDLE and seen[-1].message.key == "lane.welcome"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [("altered-dg1", "chip-auth-failed"), ("wrong-mrz", "chip-auth-failed")],
)
def test_a_doubtful_chip_is_referred(outbox, tamper, reason) -> None:
    lane, seen = make_lane(outbox)
    chip = passport_chip(PASSPORT_MRZ, pki=PKI, tamper=[tamper])
    run_lane(
        lane,
        MrzScanned(parse_mrz(PASSPORT_MRZ)),
        card_source(chip),
        until=lambda: any(e.state is LaneState.SHOW for e in seen),
    )
    (crossing,) = records(outbox)
    assert crossing["decision"] == {"outcome": "refer", "reasons": [reason]}


def test_an_mrz_with_bad_check_digits_is_referred_at_once(outbox) -> None:
    bad = PASSPORT_MRZ[:-1] + ("0" if PASSPORT_MRZ[-1] != "0" else "1")
    lane, _seen = make_lane(outbox)
    asyncio.run(lane.handle(MrzScanned(parse_mrz(bad))))
    (crossing,) = records(outbox)
    assert crossing["decision"]["reasons"] == ["mrz-invalid"]


def test_an_expired_passport_is_referred(outbox) -> None:
    text = td3(expiry="250101")
    lane, seen = make_lane(outbox)
    run_lane(
        lane,
        MrzScanned(parse_mrz(text)),
        card_source(passport_chip(text, pki=PKI)),
        until=lambda: any(e.state is LaneState.SHOW for e in seen),
    )
    (crossing,) = records(outbox)
    assert crossing["decision"]["reasons"] == ["document-expired"]


def test_officer_decisions_are_records_and_clear_personal_data(outbox) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    tap(lane, CbicCard.from_image(WORKER))
    crossing_id = shown(seen).crossing_id
    hit_id = records(outbox, "crossing")[0]["screening"]["hits"][0]["hit_id"]
    lane.officer_decide(
        crossing_id,
        officer_id="BDF-2231",
        decision="escalate",
        reason="Secondary inspection.",
        hit_id=hit_id,
    )
    assert lane.reviews.get(crossing_id).personal is not None
    record_id = lane.officer_decide(
        crossing_id,
        officer_id="BDF-2231",
        decision="accept",
        reason="Namesake; birth date differs.",
        hit_id=hit_id,
    )
    decisions = records(outbox, "officer-decision")
    assert [d["decision"] for d in decisions] == ["escalate", "accept"]
    item = lane.reviews.get(crossing_id)
    assert item.status == "accepted" and item.personal is None
    assert [d["decision"] for d in item.decisions] == ["escalate", "accept"]
    assert lane.reviews.pending() == []
    assert lane.reviews.purge() == 0  # the decision is not acked yet
    outbox.purge([record_id])
    assert lane.reviews.purge() == 1 and lane.reviews.get(crossing_id) is None
    with pytest.raises(KeyError):
        lane.officer_decide(crossing_id, officer_id="BDF-2231", decision="deny", reason="x")


def test_undecided_items_lose_personal_data_after_the_retention(outbox) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit()]), review_retention_s=60)
    tap(lane, CbicCard.from_image(WORKER))
    item = shown(seen).review
    lane.reviews.purge(now_ms=item.created_ms + 61_000)
    assert lane.reviews.get(item.crossing_id).personal is None


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"site": SITE, "lane": "lane-1"}, "lane.direction"),
        ({"site": SITE, "lane": "lane-1", "direction": "in"}, "lane.direction"),
        ({"site": SITE, "lane": "lane-1", "direction": "exit", "sight": 1}, "lane.sight"),
        (
            {"site": SITE, "lane": "lane-1", "direction": "exit", "policy": {"hit_treshold": 0.8}},
            "lane.policy.hit_treshold",
        ),
        (
            {"site": SITE, "lane": "lane-1", "direction": "exit", "policy": {"hit_threshold": 2}},
            "lane.policy.hit_threshold",
        ),
        ({"site": "Bad Site", "lane": "lane-1", "direction": "exit"}, "lane.site"),
    ],
)
def test_config_errors_name_the_key(values, path) -> None:
    with pytest.raises(LaneConfigError) as caught:
        LaneConfig.from_dict(values)
    assert caught.value.path == path


# -- officer decisions are final ------------------------------------------------------------


def test_a_decided_traveller_takes_no_second_decision_but_an_escalated_one_does(outbox) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    tap(lane, CbicCard.from_image(WORKER))
    crossing_id = shown(seen).crossing_id

    def decide(decision: str, officer: str = "BDF-2231") -> str:
        return lane.officer_decide(
            crossing_id, officer_id=officer, decision=decision, reason=f"{decision} it."
        )

    with pytest.raises(PayloadError):  # not a decision: nothing recorded, the item stays open
        decide("maybe")
    assert lane.reviews.get(crossing_id).status == "open"
    decide("escalate")
    decide("escalate", "BDF-0001")  # a supervisor may pass it on again
    assert lane.reviews.get(crossing_id).status == "escalated"
    decide("deny", "BDF-0001")

    # Another officer, whose page still showed the traveller as open, decides too: refused.
    with pytest.raises(AlreadyDecided) as refused:
        decide("accept")
    assert refused.value.status == "denied"
    assert str(refused.value) == f"crossing {crossing_id} was already decided (denied)"
    assert isinstance(refused.value, KeyError)  # the pages' "no longer in the queue" handler
    item = lane.reviews.get(crossing_id)
    assert item.status == "denied"
    assert [d["decision"] for d in item.decisions] == ["escalate", "escalate", "deny"]
    sent = records(outbox, "officer-decision")
    assert [(d["decision"], d["officer_id"]) for d in sent] == [
        ("escalate", "BDF-2231"),
        ("escalate", "BDF-0001"),
        ("deny", "BDF-0001"),
    ]


# -- the document's photo, for the officer only ----------------------------------------------

FACE = (SAMPLES_DIR / "specimen-face.jpg").read_bytes()
FACE_BASE64 = base64.b64encode(FACE).decode()
#: A JPEG 2000 file's start (signature box, file type box "jp2 "), as many passports carry.
JP2_FACE = bytes.fromhex(
    "0000000C6A5020200D0A870A00000014667479706A703220000000006A703220"
) + bytes(400)


def refer_passport(lane, seen, chip, mrz: str = PASSPORT_MRZ):
    run_lane(
        lane,
        MrzScanned(parse_mrz(mrz)),
        card_source(chip),
        until=lambda: any(e.state is LaneState.SHOW for e in seen),
    )
    event = shown(seen)
    assert event.outcome == "refer"
    return event


def test_a_referred_passport_holder_s_face_reaches_the_officer_and_no_record(outbox) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    event = refer_passport(lane, seen, passport_chip(PASSPORT_MRZ, pki=PKI, face=FACE))

    photo = lane.reviews.get(event.crossing_id).personal["photo"]
    assert photo == {"media_type": "image/jpeg", "data": FACE_BASE64}
    assert base64.b64decode(photo["data"]) == FACE  # exactly DG2's image
    assert event.review.personal["photo"] == photo

    # The crossing and the screening hit go to the console: valid, and without the photo.
    sent = records(outbox)
    assert {r["schema"].split("@")[0] for r in sent} == {"crossing", "screening-hit"}
    for record in sent:
        validate(record["schema"].split("@")[0], record)
        assert FACE_BASE64[:64] not in json.dumps(record)
        assert "photo" not in json.dumps(record)


def test_a_passing_traveller_leaves_no_photo_anywhere(outbox) -> None:
    lane, seen = make_lane(outbox)
    run_lane(
        lane,
        MrzScanned(parse_mrz(PASSPORT_MRZ)),
        card_source(passport_chip(PASSPORT_MRZ, pki=PKI, face=FACE)),
        until=lambda: any(e.state is LaneState.SHOW for e in seen),
    )
    assert shown(seen).outcome == "pass" and shown(seen).review is None
    assert FACE_BASE64[:64] not in json.dumps(records(outbox))
    assert outbox.query("SELECT count(*) FROM lane_reviews") == [(0,)]


def test_a_jpeg2000_face_is_not_stored_and_says_why(outbox) -> None:
    """The kiosk's browser cannot show JPEG 2000: the officer page says so instead."""
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    event = refer_passport(lane, seen, passport_chip(PASSPORT_MRZ, pki=PKI, face=JP2_FACE))
    personal = lane.reviews.get(event.crossing_id).personal
    assert "photo" not in personal
    assert personal["photo_unavailable"] == "jpeg2000"


def test_a_face_that_is_not_the_issuer_s_is_not_shown(outbox) -> None:
    """DG2 swapped after issuance (its hash no longer matches the SOD): the officer must not
    compare the traveller with a picture the issuer never signed."""
    issued = issue_passport_image(PASSPORT_MRZ, pki=PKI, face=FACE)
    other = FACE[:-2] + b"\x00\xff\xd9"  # another picture, same size, still a JPEG
    files = dict(issued.files) | {LdsFile.DG2: Dg2((FaceImage(other, 300, 400),)).encode()}
    chip = EmrtdChip.from_image(dataclasses.replace(issued, files=files))
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    event = refer_passport(lane, seen, chip)
    (crossing,) = records(outbox, "crossing")
    dg2_hash = next(c for c in crossing["checks"] if c["name"] == "dg2_hash")
    assert dg2_hash["result"] == "fail"
    personal = lane.reviews.get(event.crossing_id).personal
    assert "photo" not in personal and personal["photo_unavailable"] == "unverified"


def test_the_photo_is_cleared_with_the_rest_on_a_final_decision(outbox) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    event = refer_passport(lane, seen, passport_chip(PASSPORT_MRZ, pki=PKI, face=FACE))
    lane.officer_decide(
        event.crossing_id, officer_id="BDF-2231", decision="escalate", reason="Look closer."
    )
    assert lane.reviews.get(event.crossing_id).personal["photo"]["data"] == FACE_BASE64
    lane.officer_decide(event.crossing_id, officer_id="BDF-2231", decision="deny", reason="No.")
    assert lane.reviews.get(event.crossing_id).personal is None
    stored = outbox.query("SELECT * FROM lane_reviews")
    assert FACE_BASE64[:64] not in json.dumps(stored)


def test_the_photo_is_cleared_with_the_rest_after_the_retention(outbox) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit()]), review_retention_s=60)
    event = refer_passport(lane, seen, passport_chip(PASSPORT_MRZ, pki=PKI, face=FACE))
    lane.reviews.purge(now_ms=event.review.created_ms + 59_000)
    assert lane.reviews.get(event.crossing_id).personal["photo"]["data"] == FACE_BASE64
    lane.reviews.purge(now_ms=event.review.created_ms + 61_000)
    assert lane.reviews.get(event.crossing_id).personal is None
    assert FACE_BASE64[:64] not in json.dumps(outbox.query("SELECT * FROM lane_reviews"))


def cbic_read_with_portrait(card: CbicCard) -> CardDocument:
    """A CBIC read and verified with its EF.PORTRAIT (``read_cbic(read_portrait=True)``)."""
    reading = read_cbic(
        lambda command: ResponseApdu.parse(card.transmit(command.to_bytes())),
        trust=TRUST,
        today=TODAY,
        site=SITE,
        read_portrait=True,
    )
    assert reading.holder is not None
    return CardDocument(
        kind="cbic",
        document=reading.holder.document_summary(),
        holder={},
        checks=reading.checks,
        cbic=reading,
    )


def test_a_cbic_portrait_that_was_read_becomes_the_photo(outbox) -> None:
    with_portrait = issue_card(sample("resident-worker"), ISSUER, portrait=FACE)
    document = cbic_read_with_portrait(CbicCard.from_image(with_portrait))
    assert document_photo(document) == {"photo": {"media_type": "image/jpeg", "data": FACE_BASE64}}
    # A portrait from another card (its hash is not in this card's signed data): not shown.
    swapped = dataclasses.replace(
        with_portrait,
        portrait_data=issue_card(
            sample("resident-worker"), ISSUER, portrait=FACE + b"\x00"
        ).portrait_data,
    )
    assert document_photo(cbic_read_with_portrait(CbicCard.from_image(swapped))) == {
        "photo_unavailable": "unverified"
    }
    # No portrait on the card (or not read): no photo, and nothing to explain.
    assert document_photo(cbic_read_with_portrait(CbicCard.from_image(WORKER))) == {}


# A referred CBIC holder's portrait is read after the result is shown (the tap skips it).

WORKER_WITH_FACE = issue_card(sample("resident-worker"), ISSUER, portrait=FACE)
READ_PORTRAIT = 0x80 | 3  # READ BINARY's P1 for EF.PORTRAIT by short file identifier


def taps_on_the_reader(*cards) -> tuple[CardPresented, list[list[bytes]]]:
    """A tap whose card sessions find ``cards`` on the reader, one per session (the first for
    the read, the next for the portrait; ``None``: the card was taken away). Returns the tap
    and the commands each session sent."""
    sessions: list[list[bytes]] = []

    @contextlib.asynccontextmanager
    async def open_():
        card = cards[len(sessions)]
        sessions.append(sent := [])
        if card is None:
            raise CardRemovedError("no card on the reader")

        class Link:
            def transmit(self, command: CommandApdu) -> ResponseApdu:
                sent.append(command.to_bytes())
                return ResponseApdu.parse(card.transmit(command.to_bytes()))

        yield Link()

    return CardPresented(open_, "virtual"), sessions


def portrait_reads(session: list[bytes]) -> int:
    return sum(1 for command in session if command[1] == 0xB0 and command[2] == READ_PORTRAIT)


def test_a_referred_cbic_holder_s_portrait_is_fetched_for_the_officer_after_the_result(
    outbox,
) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    card = CbicCard.from_image(WORKER_WITH_FACE)
    event, sessions = taps_on_the_reader(card, card)
    asyncio.run(lane.handle(event))

    shown_event = shown(seen)
    assert shown_event.outcome == "refer"
    assert "photo" not in shown_event.review.personal  # the result did not wait for it
    read, fetch = sessions
    assert portrait_reads(read) == 0 and portrait_reads(fetch) > 0
    photo = lane.reviews.get(shown_event.crossing_id).personal["photo"]
    assert photo == {"media_type": "image/jpeg", "data": FACE_BASE64}
    assert FACE_BASE64[:64] not in json.dumps(records(outbox))  # in no record


def test_a_passing_cbic_holder_s_portrait_is_never_read(outbox) -> None:
    lane, seen = make_lane(outbox)
    card = CbicCard.from_image(WORKER_WITH_FACE)
    event, sessions = taps_on_the_reader(card, card)
    asyncio.run(lane.handle(event))
    assert shown(seen).outcome == "pass"
    assert len(sessions) == 1 and portrait_reads(sessions[0]) == 0


def test_a_card_taken_away_before_its_portrait_was_read_leaves_the_reason(outbox) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    event, _ = taps_on_the_reader(CbicCard.from_image(WORKER_WITH_FACE), None)
    asyncio.run(lane.handle(event))
    personal = lane.reviews.get(shown(seen).crossing_id).personal
    assert "photo" not in personal and personal["photo_unavailable"] == "card-removed"
    assert lane.state is LaneState.SHOW  # the traveller's result stays on screen


def test_another_card_s_portrait_is_not_shown_for_the_referred_traveller(outbox) -> None:
    """A card swapped in before the fetch: its portrait is not the one the first card's signed
    data names, so the officer does not get a picture of someone else."""
    other = issue_card(sample("resident-worker"), ISSUER, portrait=FACE[:-2] + b"\x00\xff\xd9")
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    event, _ = taps_on_the_reader(CbicCard.from_image(WORKER_WITH_FACE), CbicCard.from_image(other))
    asyncio.run(lane.handle(event))
    personal = lane.reviews.get(shown(seen).crossing_id).personal
    assert "photo" not in personal and personal["photo_unavailable"] == "unverified"


def test_a_card_whose_issuer_signature_fails_gets_no_portrait_fetched(outbox) -> None:
    """Its holder data, portrait hash included, vouches for nothing."""
    lane, seen = make_lane(outbox)
    card = CbicCard.from_image(WORKER_WITH_FACE, bad_issuer_signature=True)
    event, sessions = taps_on_the_reader(card, card)
    asyncio.run(lane.handle(event))
    assert shown(seen).outcome == "refer"
    assert len(sessions) == 1
    personal = lane.reviews.get(shown(seen).crossing_id).personal
    assert "photo" not in personal and "photo_unavailable" not in personal


def test_a_portrait_is_not_added_once_the_officer_has_decided(outbox) -> None:
    lane, seen = make_lane(outbox, FakeScreener([hit()]))
    asyncio.run(lane.handle(taps_on_the_reader(CbicCard.from_image(WORKER), None)[0]))
    crossing_id = shown(seen).crossing_id
    lane.officer_decide(crossing_id, officer_id="BDF-2231", decision="accept", reason="Known.")
    assert lane.reviews.add_photo(crossing_id, photo_entry(FACE)) is False
    assert lane.reviews.get(crossing_id).personal is None


def test_only_jpeg_and_png_up_to_the_size_bound_are_kept() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    assert photo_entry(png)["photo"]["media_type"] == "image/png"
    assert photo_entry(FACE)["photo"]["media_type"] == "image/jpeg"
    assert photo_entry(JP2_FACE) == {"photo_unavailable": "jpeg2000"}
    assert photo_entry(b"GIF89a" + bytes(100)) == {"photo_unavailable": "unsupported-format"}
    # Bytes after a JPEG's end are still a JPEG, and count towards its size.
    at_bound = FACE + bytes(MAX_PHOTO_BYTES - len(FACE))
    assert base64.b64decode(photo_entry(at_bound)["photo"]["data"]) == at_bound
    assert photo_entry(at_bound + b"\x00") == {"photo_unavailable": "too-large"}
    assert MAX_PHOTO_BYTES == 256 * 1024
