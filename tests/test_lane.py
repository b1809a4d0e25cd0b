"""The lane (edge/lane): one state machine from a tap to a recorded, shown decision.

Driven with virtual cards called directly (the real document code, no PC/SC), a fake screener
and a real outbox file; the end-to-end run through pcscd is in test_lane_pcsc.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from datetime import date

import pytest

from edge.devices.card_errors import CardRemovedError
from edge.documents.apdu import CommandApdu, ResponseApdu
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
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import SAMPLES_DIR, create_issuer, issue_card, trust_list_for
from edge.sim.emrtd_chip import PassportPki, passport_chip
from edge.uplink.clock import StaticClock
from edge.uplink.errors import OutboxFull
from edge.uplink.outbox import Outbox
from mqtt_schemas import validate

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


def test_an_mrz_then_no_chip_times_out_to_idle(outbox) -> None:
    lane, seen = make_lane(outbox)
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
