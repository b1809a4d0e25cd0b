"""Crossing search on SQLite and PostgreSQL: by document number (as written, and OCR-folded as
the kiosk's matcher folds it), by name (normalised and transliterated as the matcher reads
names), by date range, post, direction and outcome; a traveller's crossings over time; stable
pages; the principal's posts only; malformed parameters named; and the search keys of rows
stored before schema 0005, filled in by the migration exactly as the writer fills them."""

from __future__ import annotations

import json

import pytest
import test_console_referrals
from sqlalchemy import text
from test_console_referrals import ELSEWHERE, HOME, THIRD, Border, at

from console.records import Record
from console.store import migrations
from console.store import search as s
from console.store.database import make_engine
from console.store.schema import RECORD_TABLES
from harness.console import rows
from mqtt_schemas.envelope import uuid7

EVERY = frozenset({"*"})
border = test_console_referrals.border  # the fixtures: a writer of kiosk records, a reader
reader = test_console_referrals.reader


def find(reader, posts=EVERY, **args) -> list[str]:
    return [
        row["id"] for row in s.search_crossings(reader, posts, s.CrossingQuery.from_args(args)).rows
    ]


# -- documents ------------------------------------------------------------------------------


def test_a_document_number_finds_its_crossings_and_the_ocr_confused_spellings(border, reader):
    first = border.crossing(HOME, at(1), number="G10583221", state="GTM")
    second = border.crossing(ELSEWHERE, at(2), number="G10583221", state="GTM")
    misread = border.crossing(HOME, at(3), number="G1O5B3221", state="GTM")  # O for 0, B for 8
    border.crossing(HOME, at(4), number="G10583222", state="GTM")

    assert find(reader, document="G10583221") == [misread["id"], second["id"], first["id"]]
    assert find(reader, document="g1058-3221") == [misread["id"], second["id"], first["id"]]
    assert find(reader, document="G10583221", exact="1") == [second["id"], first["id"]]
    page = s.search_crossings(reader, EVERY, s.CrossingQuery.from_args({"document": "G10583221"}))
    assert [row["document_match"] for row in page.rows] == ["folded", "exact", "exact"]
    assert page.rows[0]["document"]["number"] == "G1O5B3221"
    assert find(reader, frozenset({HOME}), document="G10583221") == [misread["id"], first["id"]]


def test_a_travellers_crossings_over_time(border, reader):
    made = [
        border.crossing(site, at(minute), number="P0318842", state="BLZ", direction=direction)
        for minute, site, direction in (
            (1, HOME, "exit"),
            (60, HOME, "entry"),
            (120, ELSEWHERE, "exit"),
            (180, HOME, "entry"),
        )
    ]
    border.crossing(HOME, at(5), number="P0318842", state="GTM")  # another state's document
    border.crossing(HOME, at(6), number="P03I8842", state="BLZ")  # another number, same key

    page = s.traveller_crossings(reader, frozenset({HOME}), "BLZ", "P0318842")

    assert [row["id"] for row in page.rows] == [made[3]["id"], made[1]["id"], made[0]["id"]]
    assert [row["direction"] for row in page.rows] == ["entry", "entry", "exit"]
    assert s.traveller_summary(reader, frozenset({HOME}), "BLZ", "P0318842") == {
        "count": 3,
        "first": made[0]["time"],
        "last": made[3]["time"],
    }
    everywhere = s.traveller_crossings(reader, EVERY, "blz", "P0318842", limit=2)
    assert [row["id"] for row in everywhere.rows] == [made[3]["id"], made[2]["id"]]
    rest = s.traveller_crossings(reader, EVERY, "BLZ", "P0318842", after=everywhere.next)
    assert [row["id"] for row in rest.rows] == [made[1]["id"], made[0]["id"]]
    assert rest.next is None
    with pytest.raises(s.QueryError, match="issuing_state"):
        s.traveller_crossings(reader, EVERY, "BELIZE", "P0318842")
    with pytest.raises(s.QueryError, match="document_number"):
        s.traveller_crossings(reader, EVERY, "BLZ", "P-03/18842")


# -- names ----------------------------------------------------------------------------------


@pytest.fixture
def named(border):
    """Referred travellers at HOME whose names the screening hits carry."""
    return {
        key: border.referral(HOME, at(minute), surname, given)[0]["id"]
        for key, minute, surname, given in (
            ("cal", 1, "CAL", "JOSE MANUEL"),
            ("alexander", 2, "PETROV", "ALEXANDER"),
            ("cruz", 3, "DE LA CRUZ", "MARIA"),
            ("ramirez", 4, "RAMÍREZ LÓPEZ", "ANA LUCÍA"),
            ("xiaoming", 5, "WANG", "XIAOMING"),
            ("other", 6, "COC", "JOSE"),
        )
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("José Cal", ["cal"]),
        ("jose  cal", ["cal"]),
        ("Cal, José Manuel", ["cal"]),
        ("Александр Петров", ["alexander"]),  # Cyrillic for ALEXANDER PETROV
        ("Aleksandr Petrov", ["alexander"]),
        ("Delacruz", ["cruz"]),
        ("de la Cruz María", ["cruz"]),
        ("Ramirez", ["ramirez"]),
        ("ramírez lópez ana", ["ramirez"]),
        ("Xiao Ming Wang", ["xiaoming"]),
        ("Jose", ["other", "cal"]),
        ("Jose Smith", []),
    ],
)
def test_a_name_is_found_as_the_matcher_reads_it(reader, named, query, expected):
    assert find(reader, name=query) == [named[key] for key in expected]


def test_an_exact_name_keeps_the_spelling(reader, named):
    assert find(reader, name="Aleksandr Petrov", exact="1") == []
    assert find(reader, name="Alexander Petrov", exact="1") == [named["alexander"]]
    assert find(reader, name="Ramirez Lopez", exact="1") == [named["ramirez"]]


def test_a_name_search_shows_the_traveller_and_keeps_to_the_posts(border, reader, named):
    elsewhere, _ = border.referral(ELSEWHERE, at(7), "CAL", "JOSE")
    page = s.search_crossings(reader, frozenset({HOME}), s.CrossingQuery.from_args({"name": "Cal"}))
    assert [row["id"] for row in page.rows] == [named["cal"]]
    assert page.rows[0]["traveller"]["given_names"] == "JOSE MANUEL"
    assert len(page.rows[0]["hit_ids"]) == 1
    assert find(reader, name="Cal") == [elsewhere["id"], named["cal"]]
    assert find(reader, name="Cal", site=ELSEWHERE) == [elsewhere["id"]]
    assert find(reader, frozenset(), name="Cal") == []


def test_a_common_names_pages_and_filters(border, reader):
    """A name search reads the name's hits a page at a time, also when filters on the
    crossings drop some of them."""
    made = []
    for minute in range(12):
        direction = "entry" if minute % 3 == 0 else "exit"
        made.append(border.referral(HOME, at(minute), "GARCIA", "MARIA", direction=direction)[0])
    border.referral(ELSEWHERE, at(30), "GARCIA", "MARIA")
    query = s.CrossingQuery.from_args({"name": "María García"})
    seen, after = [], None
    while True:
        page = s.search_crossings(reader, frozenset({HOME}), query, limit=5, after=after)
        assert len(page.rows) == 5 or page.next is None
        seen += [row["id"] for row in page.rows]
        if page.next is None:
            break
        after = page.next
    assert seen == [c["id"] for c in made[::-1]]
    entries = [c["id"] for c in made[::-1] if c["direction"] == "entry"]
    assert find(reader, frozenset({HOME}), name="Garcia", direction="entry") == entries
    assert find(reader, frozenset({HOME}), name="Garcia", outcome="pass") == []
    few = s.CrossingQuery.from_args({"name": "Garcia", "direction": "entry"})
    first = s.search_crossings(reader, frozenset({HOME}), few, limit=3)
    assert [row["id"] for row in first.rows] == entries[:3]
    rest = s.search_crossings(reader, frozenset({HOME}), few, limit=3, after=first.next)
    assert [row["id"] for row in rest.rows] == entries[3:] and rest.next is None
    later, _ = border.referral(HOME, "2026-11-25T09:00:00Z", "GARCIA", "MARIA")
    reader.rollback()  # a new snapshot, with it
    assert find(reader, name="Garcia", since="2026-11-25", until="2026-11-25") == [later["id"]]
    assert later["id"] not in find(reader, name="Garcia", until="2026-11-24")


# -- filters and pages ----------------------------------------------------------------------


def test_date_range_post_direction_and_outcome(border, reader):
    day1 = border.crossing(HOME, "2026-11-24T23:59:59.999Z", direction="entry")
    day2 = border.crossing(HOME, "2026-11-25T00:00:00.000Z", direction="exit", outcome="refer",
                           reasons=("document-expired",))  # fmt: skip
    day3 = border.crossing(THIRD, "2026-11-26T12:00:00Z", direction="entry")

    assert find(reader, since="2026-11-24", until="2026-11-24") == [day1["id"]]
    assert find(reader, since="2026-11-24", until="2026-11-26") == [
        day3["id"],
        day2["id"],
        day1["id"],
    ]
    assert find(reader, since="2026-11-24", until="2026-11-26", site=THIRD) == [day3["id"]]
    assert find(reader, since="2026-11-24", until="2026-11-26", direction="entry") == [
        day3["id"],
        day1["id"],
    ]
    assert find(reader, since="2026-11-24", until="2026-11-26", outcome="refer") == [day2["id"]]
    assert find(reader, frozenset({THIRD}), since="2026-11-20", until="2026-11-30") == [day3["id"]]
    assert find(reader, document="P0318842", since="2026-11-25") == [day3["id"], day2["id"]]


def test_pages_are_newest_first_and_stable(border, reader):
    made = [border.crossing(HOME, at(m), number="X1234567")["id"] for m in range(5)]
    query = s.CrossingQuery.from_args({"document": "X1234567"})
    seen, after = [], None
    while True:
        page = s.search_crossings(reader, EVERY, query, limit=2, after=after)
        seen += [row["id"] for row in page.rows]
        if page.next is None:
            break
        after = page.next
    assert seen == made[::-1]


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({}, "document"),
        ({"site": HOME}, "document"),
        ({"since": "2026-11-01"}, "document"),
        ({"since": "2026-01-01", "until": "2026-03-01"}, "until"),
        ({"since": "2026-11-02", "until": "2026-11-01", "document": "X1"}, "until"),
        ({"document": "X1", "since": "24/11/2026"}, "since"),
        ({"document": "X1", "until": "2026-13-01"}, "until"),
        ({"document": "P*"}, "document"),
        ({"document": "X" * 25}, "document"),
        ({"name": "J."}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Cal", "direction": "in"}, "direction"),
        ({"name": "Cal", "outcome": "denied"}, "outcome"),
        ({"name": "Cal", "site": "Santa Elena"}, "site"),
        ({"name": "Cal", "exact": "perhaps"}, "exact"),
    ],
)
def test_malformed_parameters_are_named(args, param):
    with pytest.raises(s.QueryError) as raised:
        s.CrossingQuery.from_args(args)
    assert raised.value.param == param


@pytest.mark.parametrize(
    ("after", "limit", "param"), [("2026-11-24", 10, "after"), (None, 0, "limit")]
)
def test_malformed_page_parameters_are_named(reader, after, limit, param):
    query = s.CrossingQuery.from_args({"document": "X1"})
    with pytest.raises(s.QueryError) as raised:
        s.search_crossings(reader, EVERY, query, after=after, limit=limit)
    assert raised.value.param == param


def test_one_crossing_in_full_at_ones_posts_only(border, reader):
    crossing, hit = border.referral(HOME, at(1))
    border.decide(crossing, "accept", at(2))
    found = s.crossing(reader, frozenset({HOME}), crossing["id"])
    assert found["hit_records"][0]["id"] == hit["id"]
    assert found["hit_records"][0]["traveller"]["surname"] == "CAL"
    assert [d["decision"] for d in found["decisions"]] == ["accept"]
    assert found["checks"] == crossing["checks"] and found["disposition"] is None
    assert s.crossing(reader, frozenset({ELSEWHERE}), crossing["id"]) is None
    assert s.crossing(reader, EVERY, uuid7()) is None
    assert s.site_of(reader, crossing["id"]) == HOME and s.site_of(reader, "nope") is None


# -- the keys of rows stored before schema 0005 ---------------------------------------------


KEYS = {
    "crossings": "SELECT id, document_number, issuing_state, document_key FROM crossings",
    "hit_names": "SELECT code, time, crossing_id, hit_id, site FROM hit_names",
    "hits": "SELECT id, name_key FROM hits",
}
_NEW_COLUMNS = ("document_number", "issuing_state", "document_key", "name_key")


def test_the_migration_fills_the_keys_of_earlier_rows_as_the_writer_does(console_db, tmp_path):
    """Rows stored at schema 0004 get the keys the writer gives the same records now."""
    reference = Border(str(tmp_path / "reference.db"))  # the writer's keys, for comparison
    try:
        misread = reference.crossing(HOME, at(1), number="G1O5B3221", state="GTM")
        crossing, hit = reference.referral(HOME, at(2), "Αλέξανδρος", "DE LA CRUZ", number="DX01O")
        expected = {table: sorted(rows(reference.store.engine, sql)) for table, sql in KEYS.items()}
    finally:
        reference.close()
    engine = make_engine(console_db)
    try:
        with engine.begin() as conn:
            assert migrations.upgrade(conn, "0004")[-1] == "0004"
            for table, payload in (("crossings", misread), ("crossings", crossing), ("hits", hit)):
                row = RECORD_TABLES[table].row(_record(table, payload), "2026-11-24T12:00:00Z")
                old = {k: v for k, v in row.items() if k not in _NEW_COLUMNS}
                values = ", ".join(f":{k}" for k in old)
                conn.execute(text(f"INSERT INTO {table} ({', '.join(old)}) VALUES ({values})"), old)
        with engine.begin() as conn:
            assert migrations.upgrade(conn, "0005") == ["0005"]
        found = {table: sorted(rows(engine, sql)) for table, sql in KEYS.items()}
    finally:
        engine.dispose()
    assert found == expected
    assert (misread["id"], "G1O5B3221", "GTM", "610583221") in found["crossings"]
    assert len(found["hit_names"]) >= 4  # the Greek name transliterated, DE LA CRUZ's units


def _record(channel: str, payload: dict) -> Record:
    return Record(channel, payload["id"], payload["device_id"], json.dumps(payload), payload)


# -- the pages ------------------------------------------------------------------------------

web = test_console_referrals.web  # the console on waitress, an account per role
get = test_console_referrals.get  # a GET with the purpose given
audit_entries = test_console_referrals.audit_entries


def test_the_search_page_asks_why_finds_and_audits_what_it_shows(web, border):
    ours, hit = border.referral(HOME, at(1), "CAL", "JOSE MANUEL", number="G10583221")
    misread = border.crossing(HOME, at(2), number="G1O5B3221")
    theirs = border.crossing(ELSEWHERE, at(3), number="G10583221")
    officer = web.client("officer")

    asked = officer.get("/crossings/search?document=G10583221")
    assert 'id="purpose-form"' in asked.get_data(True) and "G1O5B3221" not in asked.get_data(True)
    form = get(officer, "/crossings/search").get_data(True)
    assert 'id="search-form"' in form and 'id="results"' not in form

    page = get(officer, "/crossings/search", document="G10583221").get_data(True)
    assert f'id="crossing-{ours["id"]}"' in page and f'id="crossing-{misread["id"]}"' in page
    assert theirs["id"] not in page and "CAL, JOSE MANUEL" in page
    found = audit_entries(web.db, "crossings.search")
    assert found[0].record_ids == [misread["id"], ours["id"], hit["id"]]
    assert found[0].query_data == {"document": "G10583221"}
    assert found[1].record_ids == []  # the empty form: asked, nothing shown

    by_name = get(officer, "/crossings/search", name="José Cal").get_data(True)
    assert f'id="crossing-{ours["id"]}"' in by_name and misread["id"] not in by_name


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"document": "X1", "since": "24/11/2026"}, "since"),
        ({"name": "Cal", "direction": "inbound"}, "direction"),
        ({"site": HOME}, "document"),
        ({"document": "X1", "after": "page-2"}, "after"),
    ],
)
def test_a_malformed_search_is_400_naming_the_parameter(web, params, param):
    response = get(web.client("supervisor"), "/crossings/search", **params)
    assert response.status_code == 400 and f"{param}:" in response.get_data(True)
    assert 'id="search-form"' in response.get_data(True)  # shown again to correct


def test_a_crossing_and_a_travellers_crossings_at_ones_posts(web, border):
    crossing, _ = border.referral(HOME, at(1), "CAL", "JOSE MANUEL")
    later = border.crossing(HOME, at(60), direction="entry")
    elsewhere = border.crossing(ELSEWHERE, at(90))
    officer = web.client("officer")

    page = get(officer, f"/crossings/{crossing['id']}").get_data(True)
    assert "P0318842" in page and "CAL, JOSE MANUEL" in page and "mrz-check-digits" in page
    assert "Details withheld: hit.details needs level 3" in page  # the officer is level 2
    assert get(officer, f"/crossings/{elsewhere['id']}").status_code == 404
    assert get(officer, f"/crossings/{uuid7()}").status_code == 404
    assert get(officer, "/crossings/nope").status_code == 400

    page = get(officer, "/travellers/BLZ/P0318842").get_data(True)
    assert "2 crossings at your posts" in page and "CAL, JOSE MANUEL" in page
    assert later["id"] in page and elsewhere["id"] not in page
    (entry,) = audit_entries(web.db, "crossings.search")
    assert entry.record_ids[:1] == [later["id"]] and crossing["id"] in entry.record_ids
    response = get(officer, "/travellers/BELIZE/P0318842")
    assert response.status_code == 400 and "issuing_state:" in response.get_data(True)
