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
from console.store.schema import watchlist_entries
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


# -- the pages ------------------------------------------------------------------------------

PURPOSE = {"purpose": "referral-review", "purpose_text": "shift 2026-11-24"}
SHARED_WITH_POLICE = "interpol-red"
"""A list the console's settings share with the police only: the border agency's staff see
its hits, never its entries."""


@pytest.fixture
def web(console_db, tmp_path):
    from console.settings import Settings
    from harness.console_web import serve_console

    settings = Settings(lists={SHARED_WITH_POLICE: frozenset({"police"})})
    with serve_console(console_db, tmp_path / "instance", settings=settings) as running:
        yield running


def audit_entries(target: str, action: str) -> list[Any]:
    from console import audit

    engine = open_database(target, readonly=True)
    try:
        with engine.connect() as conn:
            return list(audit.entries(conn, action=action, limit=None))
    finally:
        engine.dispose()


def get(client, path: str, **params: str):
    from urllib.parse import urlencode

    return client.get(f"{path}?{urlencode({**PURPOSE, **params})}")


def test_no_referral_or_crossing_page_for_who_sees_no_traveller(web, border):
    """Technicians, analysts, auditors and admins: 403 on every page, with a purpose or not,
    for a referral that exists at the post or not."""
    from harness.console_web import csrf

    crossing, _ = border.referral(HOME, at(1))
    border.decide(crossing, "escalate", at(2))
    hit_id = crossing["screening"]["hits"][0]["hit_id"]
    pages = [
        "/referrals",
        "/referrals/escalated",
        f"/referrals/{crossing['id']}",
        f"/referrals/{uuid7()}",
        "/crossings/search",
        f"/crossings/{crossing['id']}",
        "/travellers/BLZ/P0318842",
    ]
    for role in ("technician", "analyst", "auditor", "admin"):
        client = web.client(role)
        for path in pages:
            assert client.get(path).status_code == 403, (role, path)
            assert get(client, path, document="P0318842").status_code == 403, (role, path)
        token = csrf(client)
        posted = client.post(
            f"/referrals/{crossing['id']}/disposition",
            data={
                **PURPOSE,
                "csrf_token": token,
                "hit_id": hit_id,
                "disposition": "cleared",
                "reason": "Because.",
            },
        )
        assert posted.status_code == 403, role
    assert rows(web.db, "SELECT id FROM dispositions") == []


def test_the_queue_asks_why_then_shows_the_posts_referrals_and_audits_them(web, border):
    ours, hit = border.referral(HOME, at(1), "RAMIREZ", "ANA")
    theirs, _ = border.referral(ELSEWHERE, at(2), "TUN", "PEDRO")
    officer = web.client("officer")

    asked = officer.get("/referrals")
    assert asked.status_code == 200 and 'id="purpose-form"' in asked.get_data(True)
    assert "RAMIREZ" not in asked.get_data(True)

    page = get(officer, "/referrals").get_data(True)
    assert f'id="referral-{ours["id"]}"' in page and "RAMIREZ, ANA" in page
    assert theirs["id"] not in page and "TUN" not in page
    assert "nw-2024-00000" not in page  # a listing never shows the entry
    (entry,) = audit_entries(web.db, "referrals.view")
    assert (entry.username, entry.purpose, entry.purpose_text) == (
        "officer",
        "referral-review",
        "shift 2026-11-24",
    )
    assert entry.record_ids == [ours["id"], hit["id"]]

    assert get(officer, f"/referrals/{theirs['id']}").status_code == 404
    assert get(officer, f"/referrals/{uuid7()}").status_code == 404
    assert theirs["id"] not in str([e.record_ids for e in audit_entries(web.db, "referrals.view")])


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/referrals", {"state": "pending"}, "state"),
        ("/referrals", {"site": "Santa Elena"}, "site"),
        ("/referrals", {"after": "yesterday"}, "after"),
        ("/referrals/escalated", {"after": "2026-11-24T10:00:00Z~x"}, "after"),
        ("/referrals/not-a-crossing-id", {}, "crossing_id"),
    ],
)
def test_malformed_parameters_are_400_naming_them(web, path, params, param):
    response = get(web.client("supervisor"), path, **params)
    assert response.status_code == 400
    assert f"{param}:" in response.get_data(True)


def test_the_watchlist_entry_needs_level_3_and_a_list_shared_with_the_agency(web, border):
    crossing, hit = border.referral(HOME, at(1), lists=("national-wanted", SHARED_WITH_POLICE))
    engine = open_database(web.db)
    with engine.begin() as conn:
        for entry_id in ("nw-2024-00000", "nw-2024-00001"):
            conn.execute(
                watchlist_entries.insert().values(
                    kind="person",
                    entry_id=entry_id,
                    entry=json.dumps(
                        {
                            "names": [{"surname": "CAL", "given_names": "JOSE M"}],
                            "birth_date": "1979",
                            "category": "wanted-person",
                        }
                    ),
                )
            )
    engine.dispose()
    shared, unshared = (hit_["hit_id"] for hit_ in hit["hits"])

    def hit_cell(page: str, hit_id: str) -> str:
        return page.split(f'id="hit-{hit_id}"', 1)[1].split("</tr>", 1)[0]

    page = get(web.client("supervisor"), f"/referrals/{crossing['id']}").get_data(True)  # level 3
    assert "nw-2024-00000" in hit_cell(page, shared) and "wanted-person" in page
    assert "CAL = CAL" in hit_cell(page, shared)  # why it matched
    withheld = hit_cell(page, unshared)
    assert "Details withheld: the list is not shared with immigration" in withheld
    assert "nw-2024-00001" not in page and "national-wanted" in page
    (entry,) = audit_entries(web.db, "referrals.view")
    assert "watchlist:person:nw-2024-00000" in entry.record_ids
    assert "watchlist:person:nw-2024-00001" not in entry.record_ids

    page = get(web.client("officer"), f"/referrals/{crossing['id']}").get_data(True)  # level 2
    assert "Details withheld: hit.details needs level 3" in hit_cell(page, shared)
    assert "nw-2024-0000" not in page and "CAL = CAL" not in page and "wanted-person" not in page
    assert "RAMIREZ" not in page and "CAL, JOSE MANUEL" in page  # the traveller is shown


def test_a_supervisor_records_one_disposition_with_a_reason(web, border):
    from harness.console_web import csrf

    crossing, _ = border.referral(HOME, at(1))
    border.decide(crossing, "escalate", at(2), reason="Possible match; secondary inspection.")
    other, _ = border.referral(ELSEWHERE, at(3))
    border.decide(other, "escalate", at(4))
    hit_id = crossing["screening"]["hits"][0]["hit_id"]
    supervisor = web.client("supervisor")
    queue = get(supervisor, "/referrals/escalated").get_data(True)
    assert f'id="escalation-{crossing["id"]}"' in queue and other["id"] not in queue
    assert "Possible match; secondary inspection." in queue
    token = csrf(supervisor, "/referrals/escalated?purpose=referral-review")
    form = {**PURPOSE, "csrf_token": token, "hit_id": hit_id, "disposition": "false-match"}

    def post(crossing_id: str, **fields: str):
        return supervisor.post(f"/referrals/{crossing_id}/disposition", data={**form, **fields})

    blank = post(crossing["id"], reason="  ")
    assert blank.status_code == 400 and "reason:" in blank.get_data(True)
    assert post(crossing["id"], reason="x", disposition="pardoned").status_code == 400
    assert post(other["id"], reason="Not mine.").status_code == 404
    no_csrf = supervisor.post(
        f"/referrals/{crossing['id']}/disposition", data={**form, "csrf_token": "", "reason": "x"}
    )
    assert no_csrf.status_code == 400
    officer = web.client("officer")
    assert officer.post(
        f"/referrals/{crossing['id']}/disposition",
        data={**form, "csrf_token": csrf(officer), "reason": "Officers may not."},
    ).status_code == 403  # fmt: skip
    assert rows(web.db, "SELECT id FROM dispositions") == []

    done = post(crossing["id"], reason="Birth date differs; a namesake.")
    assert done.status_code == 302 and "purpose=referral-review" in done.headers["Location"]
    stored = rows(
        web.db, "SELECT crossing_id, hit_id, username, disposition, reason FROM dispositions"
    )
    assert [tuple(r) for r in stored] == [
        (crossing["id"], hit_id, "supervisor", "false-match", "Birth date differs; a namesake.")
    ]
    page = supervisor.get(done.headers["Location"]).get_data(True)
    assert "Disposition recorded: false-match" in page and 'id="disposition"' in page
    again = post(crossing["id"], reason="Second thoughts.")
    assert again.status_code == 409 and "already" in again.get_data(True)
    assert len(rows(web.db, "SELECT id FROM dispositions")) == 1
    (entry,) = [e for e in audit_entries(web.db, "referral.dispose") if "disposed" in e.query]
    assert entry.record_ids == [crossing["id"]] and entry.query_data["disposed"] == "false-match"
    assert crossing["id"] not in get(supervisor, "/referrals/escalated").get_data(True)


# -- in a browser ---------------------------------------------------------------------------


def test_a_supervisor_gives_a_purpose_sees_an_escalation_and_disposes_of_it_in_chromium(
    console_web, page
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from harness.console_web import SITE

    def wait_for(element_id: str) -> Any:
        located = shown.presence_of_element_located((By.ID, element_id))
        return WebDriverWait(page, 10).until(located)

    kiosks = Border(console_web.db)
    try:
        crossing, _ = kiosks.referral(SITE, at(1), "QUISPE", "ROSA ELENA")
        kiosks.decide(crossing, "escalate", at(2), reason="Listed name; sent to secondary.")
    finally:
        kiosks.close()

    console_web.login(page, "supervisor")
    page.find_element(By.LINK_TEXT, "Referrals").click()
    Select(wait_for("purpose")).select_by_value("referral-review")
    page.find_element(By.ID, "purpose_text").send_keys("browser shift")
    page.find_element(By.ID, "purpose-submit").click()
    row = wait_for(f"referral-{crossing['id']}")
    assert "QUISPE, ROSA ELENA" in row.text and "escalated" in row.text

    page.find_element(By.ID, "escalated-link").click()
    row = wait_for(f"escalation-{crossing['id']}")
    assert "Listed name; sent to secondary." in row.text
    Select(row.find_element(By.NAME, "disposition")).select_by_value("false-match")
    row.find_element(By.NAME, "reason").send_keys("Birth date and sex differ from the entry.")
    row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    disposition = wait_for("disposition")
    assert "false-match" in disposition.text and "Birth date and sex differ" in disposition.text
    assert "Disposition recorded" in page.find_element(By.ID, "notice").text
    assert page.find_element(By.ID, "state").text == "disposed"
    stored = rows(
        console_web.db,
        "SELECT username, disposition, reason FROM dispositions WHERE crossing_id = ?",
        crossing["id"],
    )
    assert [tuple(r) for r in stored] == [
        ("supervisor", "false-match", "Birth date and sex differ from the entry.")
    ]
    (entry,) = [
        e for e in audit_entries(console_web.db, "referral.dispose") if "disposed" in e.query
    ]
    assert (entry.purpose, entry.purpose_text) == ("referral-review", "browser shift")
