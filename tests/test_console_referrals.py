"""The referral queue and supervisors' dispositions, on SQLite and PostgreSQL: the queue's
states and filters, newest first in stable pages, kept to the principal's posts; one final
disposition per escalation, with a reason, stored and refused a second time."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

import mqtt_schemas
from console.access import Principal
from console.records import Record, classify
from console.store import Store, open_database
from console.store import referrals as ref
from console.store.search import QueryError
from harness.console import rows
from mqtt_schemas import topics
from mqtt_schemas.envelope import uuid7

HOME, ELSEWHERE, THIRD = "bz-santa-elena", "bz-benque-viejo", "bz-corozal"
T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
RECEIVED = "2026-11-24T12:00:00.000Z"


def at(minutes: float) -> str:
    moment = T0 + dt.timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _example(name: str, index: int = 0) -> dict[str, Any]:
    return copy.deepcopy(mqtt_schemas.examples(name)["valid"][index]["payload"])


class Border:
    """Kiosk records (crossings, screening hits, officer decisions) as the lanes send them,
    stored through the console's own writer (so every search key is the writer's)."""

    def __init__(self, target: str) -> None:
        self.store = Store.open(target)
        self.seqs: dict[str, Iterator[int]] = {}

    def close(self) -> None:
        self.store.close()

    def _envelope(self, payload: dict[str, Any], site: str, time: str) -> dict[str, Any]:
        device = f"kiosk-{site}"
        seq = self.seqs.setdefault(device, itertools.count(1))
        payload.update(id=uuid7(), device_id=device, seq=next(seq), time=time)
        return payload

    def save(self, *payloads: dict[str, Any]) -> None:
        items = []
        for payload in payloads:
            channel = {"crossing@1": "crossings", "screening-hit@1": "hits"}.get(
                payload["schema"], "decisions"
            )
            topic = topics.device_topic(payload["device_id"], channel)
            item = classify(topic, json.dumps(payload).encode())
            assert isinstance(item, Record), item
            items.append(item)
        self.store.apply(items, "console-1", RECEIVED)

    def crossing(
        self,
        site: str = HOME,
        time: str | None = None,
        *,
        number: str = "P0318842",
        state: str = "BLZ",
        outcome: str = "pass",
        reasons: tuple[str, ...] = (),
        direction: str = "exit",
        lists: tuple[str, ...] = (),
        save: bool = True,
    ) -> dict[str, Any]:
        payload = self._envelope(_example("crossing", 1), site, time or at(0))
        payload.pop("officer")
        payload.update(site=site, direction=direction)
        payload["document"].update(number=number, issuing_state=state)
        payload["screening"]["hits"] = [
            {
                "hit_id": uuid7(),
                "entry_id": f"nw-2024-{index:05d}",
                "list": name,
                "kind": "person",
                "score": 0.81,
                "action": "refer",
            }
            for index, name in enumerate(lists)
        ]
        payload["screening"]["hit_count"] = len(lists)
        if lists:
            outcome, reasons = "refer", reasons or ("watchlist-hit",)
        payload["decision"] = {"outcome": outcome, "reasons": list(reasons)}
        if save:
            self.save(payload)
        return payload

    def hit(
        self,
        crossing: dict[str, Any],
        surname: str = "CAL",
        given_names: str = "JOSE MANUEL",
        *,
        save: bool = True,
    ) -> dict[str, Any]:
        payload = self._envelope(_example("screening-hit"), crossing["site"], crossing["time"])
        document = crossing["document"]
        payload.update(
            crossing_id=crossing["id"], site=crossing["site"], direction=crossing["direction"]
        )
        payload["traveller"].update(
            surname=surname,
            given_names=given_names,
            document_number=document["number"],
            issuing_state=document["issuing_state"],
        )
        template = payload["hits"][0]
        payload["hits"] = [
            {**template, **{k: hit[k] for k in ("hit_id", "entry_id", "list", "kind")}}
            for hit in crossing["screening"]["hits"]
        ]
        if save:
            self.save(payload)
        return payload

    def referral(
        self,
        site: str = HOME,
        time: str | None = None,
        surname: str = "CAL",
        given_names: str = "JOSE MANUEL",
        *,
        lists: tuple[str, ...] = ("national-wanted",),
        **crossing: Any,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A watchlist referral: the crossing and its screening hit record."""
        made = self.crossing(site, time, lists=lists, save=False, **crossing)
        hit = self.hit(made, surname, given_names, save=False)
        self.save(made, hit)
        return made, hit

    def decide(
        self,
        crossing: dict[str, Any],
        decision: str,
        decided_at: str,
        *,
        hit_id: str | bool | None = True,
        reason: str = "Checked at the lane.",
    ) -> dict[str, Any]:
        payload = self._envelope(_example("officer-decision"), crossing["site"], decided_at)
        payload.update(
            crossing_id=crossing["id"], decision=decision, reason=reason, decided_at=decided_at
        )
        hits = crossing["screening"]["hits"]
        if hit_id is True and hits:
            payload["hit_id"] = hits[0]["hit_id"]
        elif isinstance(hit_id, str):
            payload["hit_id"] = hit_id
        else:
            payload.pop("hit_id", None)
        self.save(payload)
        return payload


def staff(
    role: str = "supervisor", posts: tuple[str, ...] = (HOME,), user_id: int = 7
) -> Principal:
    return Principal(user_id, f"{role}-{user_id}", "immigration", role, 3, frozenset(posts))


@pytest.fixture
def border(console_db) -> Iterator[Border]:
    made = Border(console_db)
    yield made
    made.close()


@pytest.fixture
def reader(console_db, border):
    """A read-only connection, as the web's; a test that writes after reading rolls it back
    to see what it wrote (a transaction reads one snapshot)."""
    engine = open_database(console_db, readonly=True)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def ids(page: ref.Page) -> list[str]:
    return [row["crossing_id"] for row in page.rows]


# -- the queue ------------------------------------------------------------------------------


@pytest.fixture
def four_states(border):
    """Four referrals at HOME, one in each state, and one at another post."""
    opened, _ = border.referral(HOME, at(40), "RAMIREZ", "ANA")
    decided, _ = border.referral(HOME, at(30), "COC", "MARIA")
    border.decide(decided, "escalate", at(31))
    border.decide(decided, "accept", at(35))  # the later decision wins: decided
    escalated, _ = border.referral(HOME, at(20), "CAL", "JOSE")
    border.decide(escalated, "escalate", at(21))
    disposed, _ = border.referral(HOME, at(10), "PENNER", "JACOB")
    border.decide(disposed, "escalate", at(11))
    other, _ = border.referral(ELSEWHERE, at(50), "TUN", "PEDRO")
    border.decide(other, "escalate", at(51))
    with border.store.engine.begin() as conn:
        hit_id = disposed["screening"]["hits"][0]["hit_id"]
        ref.dispose(conn, staff(), disposed["id"], hit_id, "false-match", "Namesake.")
    return {
        "open": opened,
        "decided": decided,
        "escalated": escalated,
        "disposed": disposed,
        "other": other,
    }


def test_the_queue_lists_the_posts_referrals_newest_first_each_in_its_state(
    border, reader, four_states
):
    page = ref.queue(reader, frozenset({HOME}))

    assert ids(page) == [four_states[s]["id"] for s in ("open", "decided", "escalated", "disposed")]
    assert [row["state"] for row in page.rows] == ["open", "decided", "escalated", "disposed"]
    assert page.next is None
    first = page.rows[0]
    assert first["traveller"]["surname"] == "RAMIREZ"
    assert first["site"] == HOME and first["reasons"] == ["watchlist-hit"]
    assert first["hit_records"][0]["hits"][0]["list"] == "national-wanted"
    assert page.rows[1]["decision"]["decision"] == "accept"
    assert page.rows[3]["disposition"]["disposition"] == "false-match"
    for state in ref.STATES:
        found = ref.queue(reader, frozenset({HOME}), state=state)
        assert ids(found) == [four_states[state]["id"]], state


def test_another_posts_referral_is_never_listed_nor_found(reader, four_states):
    other = four_states["other"]["id"]
    assert other not in ids(ref.queue(reader, frozenset({HOME})))
    assert other not in ids(ref.queue(reader, frozenset({HOME}), site=ELSEWHERE))
    assert ref.referral(reader, frozenset({HOME}), other) is None
    assert ids(ref.queue(reader, frozenset({ELSEWHERE}))) == [other]
    assert ref.referral(reader, frozenset({ELSEWHERE}), other)["state"] == "escalated"
    assert len(ref.queue(reader, frozenset({"*"})).rows) == 5
    assert ids(ref.queue(reader, frozenset({"*"}), site=ELSEWHERE)) == [other]
    assert ref.queue(reader, frozenset()).rows == []


def test_a_referral_without_a_hit_is_queued_by_its_crossing(border, reader):
    expired = border.crossing(HOME, at(5), outcome="refer", reasons=("document-expired",))
    border.crossing(HOME, at(6))  # passed: no referral
    border.crossing(ELSEWHERE, at(7), outcome="refer", reasons=("document-expired",))

    page = ref.queue(reader, frozenset({HOME}))

    assert ids(page) == [expired["id"]]
    row = page.rows[0]
    assert row["state"] == "open" and row["traveller"] is None and row["hit_records"] == []
    assert row["reasons"] == ["document-expired"] and row["document"]["number"] == "P0318842"
    border.decide(expired, "escalate", at(8), hit_id=None)
    reader.rollback()
    assert ids(ref.queue(reader, frozenset({HOME}), state="escalated")) == [expired["id"]]
    assert ref.referral(reader, frozenset({HOME}), expired["id"])["decision"]["hit_id"] is None


def test_pages_are_stable_and_bounded(border, reader):
    made = [border.referral(THIRD, at(minute))[0]["id"] for minute in range(7)]
    newest_first = made[::-1]

    seen, after = [], None
    while True:
        page = ref.queue(reader, frozenset({THIRD}), limit=3, after=after)
        seen += ids(page)
        if page.next is None:
            break
        border.referral(THIRD, at(100))  # a newer referral arriving does not shift the pages
        reader.rollback()  # the next page in a new transaction, which sees it
        after = page.next
    assert seen == newest_first
    with pytest.raises(QueryError, match="limit"):
        ref.queue(reader, frozenset({THIRD}), limit=1000)


def test_escalations_come_newest_escalation_first_in_pages(border, reader):
    made = [border.referral(THIRD, at(minute))[0] for minute in range(5)]
    for n, crossing in enumerate(made):  # escalated in the other order than referred
        border.decide(crossing, "escalate", at(100 - n))
    border.decide(made[2], "deny", at(200))  # decided at the kiosk after all: not waiting
    reader.rollback()
    first = ref.queue(reader, frozenset({THIRD}), state="escalated", limit=2)
    rest = ref.queue(reader, frozenset({THIRD}), state="escalated", after=first.next)
    assert ids(first) + ids(rest) == [made[0]["id"], made[1]["id"], made[3]["id"], made[4]["id"]]
    assert first.rows[0]["escalated_at"] == at(100) and rest.next is None
    assert ref.queue(reader, frozenset({HOME}), state="escalated").rows == []


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"state": "pending"}, "state"),
        ({"site": "Santa Elena!"}, "site"),
        ({"after": "yesterday"}, "after"),
        ({"limit": "many"}, "limit"),
    ],
)
def test_malformed_queue_parameters_are_named(reader, arguments, param):
    with pytest.raises(QueryError) as raised:
        ref.queue(reader, frozenset({HOME}), **arguments)
    assert raised.value.param == param


def test_a_referral_in_full_has_every_decision_latest_first(border, reader):
    crossing, hit = border.referral(HOME, at(0), lists=("national-wanted", "interpol-sltd"))
    border.decide(crossing, "escalate", at(1))
    border.decide(crossing, "accept", at(2))

    item = ref.referral(reader, frozenset({HOME}), crossing["id"])

    assert [d["decision"] for d in item["decisions"]] == ["accept", "escalate"]
    assert item["state"] == "decided"
    assert [h["list"] for h in item["hit_records"][0]["hits"]] == [
        "national-wanted",
        "interpol-sltd",
    ]
    assert ref.record_ids(item) == [
        crossing["id"],
        hit["id"],
        *(d["id"] for d in item["decisions"]),
    ]
    assert ref.referral(reader, frozenset({HOME}), uuid7()) is None
    assert ref.site_of(reader, crossing["id"]) == HOME  # for the access decision only
    assert ref.site_of(reader, uuid7()) is None and ref.site_of(reader, "../x") is None
    with pytest.raises(QueryError, match="crossing_id"):
        ref.referral(reader, frozenset({HOME}), "not-an-id")


# -- dispositions ---------------------------------------------------------------------------


def test_a_disposition_is_stored_once_with_its_reason(console_db, border, four_states):
    escalated = four_states["escalated"]
    hit_id = escalated["screening"]["hits"][0]["hit_id"]
    engine = border.store.engine
    with engine.begin() as conn:
        stored = ref.dispose(
            conn, staff(user_id=12), escalated["id"], hit_id, "detained", "  Warrant confirmed.  "
        )
    assert stored["reason"] == "Warrant confirmed."
    found = rows(
        console_db,
        "SELECT crossing_id, hit_id, user_id, username, disposition, reason FROM dispositions "
        "WHERE crossing_id = ?",
        escalated["id"],
    )
    assert [tuple(r) for r in found] == [
        (escalated["id"], hit_id, 12, "supervisor-12", "detained", "Warrant confirmed.")
    ]
    with engine.begin() as conn, pytest.raises(ref.DispositionRefused, match="already"):
        ref.dispose(conn, staff(user_id=13), escalated["id"], hit_id, "cleared", "Changed mind.")
    assert len(rows(console_db, "SELECT id FROM dispositions")) == 2  # and the fixture's


def test_a_second_disposition_is_refused_by_the_database_too(console_db, border, four_states):
    """Two supervisors racing past the check: the unique index keeps one."""
    escalated = four_states["escalated"]
    row = {
        "crossing_id": escalated["id"],
        "hit_id": None,
        "user_id": 1,
        "username": "a",
        "disposition": "cleared",
        "reason": "r",
        "at": at(60),
    }
    from sqlalchemy.exc import IntegrityError

    from console.store.schema import dispositions

    with border.store.engine.begin() as conn:
        conn.execute(dispositions.insert().values(**row))
    with pytest.raises(IntegrityError), border.store.engine.begin() as conn:
        conn.execute(dispositions.insert().values(**row))


@pytest.mark.parametrize(
    ("disposition", "reason", "param"),
    [
        ("pardoned", "Because.", "disposition"),
        ("cleared", "   ", "reason"),
        ("cleared", "", "reason"),
        ("cleared", "x" * 1001, "reason"),
    ],
)
def test_a_disposition_needs_one_of_the_list_and_a_reason(
    border, four_states, disposition, reason, param
):
    escalated = four_states["escalated"]
    hit_id = escalated["screening"]["hits"][0]["hit_id"]
    with border.store.engine.begin() as conn, pytest.raises(QueryError) as raised:
        ref.dispose(conn, staff(), escalated["id"], hit_id, disposition, reason)
    assert raised.value.param == param


def test_only_an_open_escalation_at_ones_posts_is_disposed(border, four_states):
    engine = border.store.engine

    def dispose(item: dict[str, Any], who: Principal | None = None, hit_id: Any = True) -> None:
        if hit_id is True:
            hit_id = item["screening"]["hits"][0]["hit_id"]
        with engine.begin() as conn:
            ref.dispose(conn, who or staff(), item["id"], hit_id, "cleared", "Checked.")

    for state in ("open", "decided"):
        with pytest.raises(ref.DispositionRefused, match=f"is {state}, not escalated"):
            dispose(four_states[state])
    with pytest.raises(LookupError):
        dispose(four_states["other"])  # another post's escalation: as if there were none
    with pytest.raises(QueryError, match="hit_id"):
        dispose(four_states["escalated"], hit_id=uuid7())
    dispose(four_states["other"], staff(posts=(ELSEWHERE,)))
