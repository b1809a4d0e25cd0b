"""What the matcher finds, what it does not, and why: its behaviour, as documentation.

A listed person must not slip through because a name was transliterated, misspelt, reordered,
shortened or written in another script; a traveller who merely shares a common name, or whose
birth date conflicts, must not become a hit.
"""

from __future__ import annotations

import random
import re

import pytest

from edge.screening.matcher import (
    DEFAULT_THRESHOLD,
    MAX_CANDIDATES,
    Query,
    QueryError,
    Screener,
    compare_birth_dates,
)
from edge.screening.store import WatchlistStore
from mqtt_schemas.watchlist import entry_from_record

LIST = [
    {
        "id": "habbash",
        "kind": "person",
        "names": ["HABBASH, GEORGE"],
        "birth_date": "1926-08-02",
        "nationality": ["JOR"],
        "sex": "M",
        "list": "national-wanted",
    },
    {
        "id": "garcia",
        "kind": "person",
        "names": ["GARCIA LOPEZ, JUAN CARLOS"],
        "birth_date": "1975-03-02",
        "nationality": ["MEX"],
        "sex": "M",
        "list": "national-wanted",
        "action": "deny",
    },
    {
        "id": "cruz",
        "kind": "person",
        "names": ["DE LA CRUZ, MARIA GUADALUPE"],
        "birth_date": "1981-11-20",
        "nationality": ["GTM"],
        "sex": "F",
        "list": "interpol-red",
    },
    {
        "id": "rashid",
        "kind": "person",
        "names": ["AL-RASHID, MOHAMMED BIN SALMAN"],
        "birth_date": "1980",
        "nationality": ["SAU"],
        "sex": "M",
        "list": "sanctions",
    },
    {
        "id": "zhang",
        "kind": "person",
        "names": ["ZHANG, XIAOMING"],
        "birth_date": "1990-05",
        "sex": "M",
        "list": "interpol-red",
    },
    {
        "id": "ivanov",
        "kind": "person",
        "names": ["IVANOV, ALEKSANDR SERGEEVICH"],
        "birth_date": "1970-01-15",
        "nationality": ["RUS"],
        "sex": "M",
        "list": "interpol-red",
    },
    {
        "id": "papadopoulos",
        "kind": "person",
        "names": ["PAPADOPOULOS, GEORGIOS"],
        "birth_date": "1966-07-30",
        "nationality": ["GRC"],
        "sex": "M",
        "list": "national-wanted",
    },
    {
        "id": "tzul",
        "kind": "person",
        "names": ["TZUL"],
        "list": "missing-persons",
        "category": "missing-person",
        "action": "alert",
    },
    {
        "id": "sltd:MEX:G10583221",
        "kind": "document",
        "number": "G10583221",
        "issuing_state": "MEX",
        "document_type": "P",
        "status": "stolen",
        "list": "interpol-sltd",
    },
    {
        "id": "sltd:BLZ:P0318842",
        "kind": "document",
        "number": "P0318842",
        "issuing_state": "BLZ",
        "status": "lost",
        "list": "interpol-sltd",
    },
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("screening") / "watchlist.db"
    with WatchlistStore(path) as writer, writer.transaction():
        for record in LIST:
            writer.add(*entry_from_record(record))
    with WatchlistStore(path, readonly=True) as reader:
        yield reader


@pytest.fixture(scope="module")
def screener(store):
    return Screener(store)


def hits(screener, threshold=None, **traveller):
    return screener.screen(Query.from_dict(traveller), threshold)


def hit_ids(screener, threshold=None, **traveller):
    return [h.entry_id for h in hits(screener, threshold, **traveller)]


def how(hit, part):
    return [r["how"] for r in hit.reasons if r["part"] == part]


# ---------------------------------------------------------------------------------------------
# Listed persons are found through every kind of variant


JUAN = {"birth_date": "1975-03-02", "nationality": "MEX", "sex": "M"}


@pytest.mark.parametrize(
    ("variant", "surname", "given"),
    [
        ("as listed", "GARCIA LOPEZ", "JUAN CARLOS"),
        ("transliteration", "GARSIA LOPES", "JUAN KARLOS"),
        ("typo", "GARCAI LOPEZ", "JUAN CARLOS"),
        ("order swapped", "JUAN CARLOS", "GARCIA LOPEZ"),
        ("second surname dropped", "GARCIA", "JUAN CARLOS"),
        ("middle name dropped", "GARCIA LOPEZ", "JUAN"),
        ("middle name added", "GARCIA LOPEZ", "JUAN CARLOS ALBERTO"),
        ("hyphenated", "GARCIA-LOPEZ", "JUAN-CARLOS"),
        ("lower case, accents", "García López", "Juan Carlos"),
    ],
)
def test_a_listed_person_is_found_despite(screener, variant, surname, given):
    found = hits(screener, surname=surname, given_names=given, **JUAN)
    assert [h.entry_id for h in found] == ["garcia"], variant
    assert found[0].score >= DEFAULT_THRESHOLD
    assert found[0].action == "deny"


@pytest.mark.parametrize(
    ("surname", "given", "birth_date", "expected"),
    [
        ("DELACRUZ", "MARIA GUADALUPE", "1981-11-20", "cruz"),  # compound surname joined
        ("CRUZ", "MARIA", "1981-11-20", "cruz"),  # particles dropped
        ("ALRASHID", "MUHAMMAD", "1980-07-01", "rashid"),  # article joined, respelt
        ("AL RASHID", "MOHAMED SALMAN", "1980-07-01", "rashid"),
        ("RASHID", "MOHAMMED BIN SALMAN", "1980-07-01", "rashid"),  # article dropped
        ("ZHANG", "XIAO MING", "1990-05-05", "zhang"),  # joined given names split
        ("ZHANG", "XIAO-MING", "1990-05-05", "zhang"),
        ("IVANOV", "ALEXANDER", "1970-01-15", "ivanov"),  # patronymic dropped, respelt
        ("IVANOV", "ALEKSANDR SERGEYEVICH", "1970-01-15", "ivanov"),
        ("PAPADOPOULOS", "YIORGOS", "1966-07-30", "papadopoulos"),
    ],
)
def test_compound_joined_and_respelt_names_are_found(
    screener, surname, given, birth_date, expected
):
    assert hit_ids(screener, surname=surname, given_names=given, birth_date=birth_date) == [
        expected
    ]


@pytest.mark.parametrize(
    ("surname", "given", "birth_date", "expected"),
    [
        ("Иванов", "Александр", "1970-01-15", "ivanov"),
        ("Παπαδόπουλος", "Γεώργιος", "1966-07-30", "papadopoulos"),
        ("الرشيد", "محمد بن سلمان", "1980-03-03", "rashid"),
        ("张", "小明", "1990-05-05", "zhang"),
    ],
)
def test_names_in_other_scripts_are_found(screener, surname, given, birth_date, expected):
    found = hits(screener, surname=surname, given_names=given, birth_date=birth_date)
    assert [h.entry_id for h in found] == [expected]


# ---------------------------------------------------------------------------------------------
# ... and others are not


def test_george_bush_is_not_george_habbash(screener):
    assert hit_ids(screener, surname="BUSH", given_names="GEORGE", birth_date="1926-08-02") == []
    # whereas a misspelling of the listed name is
    assert hit_ids(screener, surname="HABASH", given_names="GEORGE", birth_date="1926-08-02") == [
        "habbash"
    ]


def test_sharing_a_given_name_is_not_enough(screener):
    assert hit_ids(screener, surname="MARTINEZ", given_names="JUAN CARLOS", **JUAN) == []


def test_a_conflicting_birth_date_keeps_an_exact_name_below_the_threshold(screener):
    name = {"surname": "GARCIA LOPEZ", "given_names": "JUAN CARLOS", "sex": "M"}
    assert hit_ids(screener, birth_date="1962-03-02", **name) == []
    assert hit_ids(screener, birth_date="1975-09-21", **name) == []  # same year, other day
    # It is still the best match at a lower threshold, with the conflict named.
    [low] = hits(screener, threshold=0.5, birth_date="1962-03-02", **name)
    assert low.entry_id == "garcia" and low.score < DEFAULT_THRESHOLD
    assert how(low, "birth-date") == ["conflict"]


def test_a_near_miss_birth_date_still_hits_with_a_lower_score(screener):
    exact = hits(screener, surname="GARCIA LOPEZ", given_names="JUAN CARLOS", **JUAN)[0]
    swapped = hits(
        screener, surname="GARCIA LOPEZ", given_names="JUAN CARLOS", birth_date="1975-02-03"
    )[0]
    assert swapped.score < exact.score
    assert how(swapped, "birth-date") == ["near"]


@pytest.mark.parametrize(
    ("query", "entry", "how_", "support"),
    [
        ("1980-07-01", "1980", "partial-date", 1),
        ("1980-07-01", "1980-07", "partial-date", 2),
        ("1980", "1980-07-01", "partial-date", 1),
        ("1980-07-01", "1980-07-01", "exact", 2),
        ("1981-07-01", "1980-07-01", "near", 0),
        ("1980-01-07", "1980-07-01", "near", 0),
        ("1980-07-11", "1980-07-01", "near", 0),
        ("1980-08", "1980-07-01", "near", 0),
        ("1983-07-01", "1980-07-01", "conflict", 0),
        ("1980-12-25", "1980-07-01", "conflict", 0),
        ("1982", "1980", "conflict", 0),
        (None, "1980", "missing", 0),
    ],
)
def test_partial_birth_dates_compare_at_their_precision(query, entry, how_, support):
    _, reason, found, _ = compare_birth_dates(query, entry)
    assert (reason["how"], found) == (how_, support)


def test_a_conflicting_sex_lowers_the_score(screener):
    same = hits(screener, surname="GARCIA LOPEZ", given_names="JUAN CARLOS", **JUAN)[0]
    other = hits(
        screener,
        threshold=0.0,
        surname="GARCIA LOPEZ",
        given_names="JUAN CARLOS",
        birth_date="1975-03-02",
        nationality="MEX",
        sex="F",
    )[0]
    assert other.score < same.score
    assert how(other, "sex") == ["conflict"]


def test_without_a_birth_date_a_rare_name_is_enough(screener):
    # The traveller's birth date is unknown: a rare name in full is a hit even so, and the
    # reasons say the date is missing.
    [found] = hits(screener, surname="HABBASH", given_names="GEORGE")
    assert found.entry_id == "habbash" and how(found, "birth-date") == ["missing"]
    # Part of a rare name is still a hit, scored lower and said to be unconfirmed.
    [partial] = hits(screener, surname="HABBASH", given_names="GEORGE MIKHAIL")
    assert partial.entry_id == "habbash" and partial.score < found.score
    assert how(partial, "name") == ["unconfirmed"]


def test_a_single_name_without_a_birth_date_never_hits_alone(screener):
    # The list knows only the surname TZUL (a common Maya name) and no birth date: every
    # TZUL crossing would be stopped. It is reported only below the threshold, as common.
    assert hit_ids(screener, surname="TZUL", birth_date="1990-01-01") == []
    [low] = hits(screener, 0.5, surname="TZUL", birth_date="1990-01-01")
    assert low.entry_id == "tzul" and low.action == "alert"
    assert how(low, "name") == ["common"]


# ---------------------------------------------------------------------------------------------
# Documents


@pytest.mark.parametrize("read_as", ["G10583221", "G1O583221", "6I0S83ZZ1", "g1058-3221"])
def test_document_numbers_match_through_ocr_confusions(screener, read_as):
    [hit] = hits(screener, document_number=read_as, issuing_state="MEX")
    assert hit.entry_id == "sltd:MEX:G10583221" and hit.kind == "document"
    expected = "exact" if read_as.upper().replace("-", "") == "G10583221" else "ocr-confusable"
    assert how(hit, "document-number") == [expected]
    assert hit.score == (1.0 if expected == "exact" else 0.95)


def test_a_document_of_another_state_is_not_a_hit(screener):
    assert hit_ids(screener, document_number="G10583221", issuing_state="GTM") == []
    # with the state unknown, it is, at a lower score
    [hit] = hits(screener, document_number="G10583221")
    assert hit.score == 0.9 and how(hit, "issuing-state") == ["missing"]


def test_person_and_document_hits_come_together_best_first(screener):
    found = hits(
        screener,
        surname="GARCIA LOPEZ",
        given_names="JUAN",
        document_number="P0318842",
        issuing_state="BLZ",
        **JUAN,
    )
    assert [h.kind for h in found] == ["document", "person"] or found[0].score >= found[1].score
    assert {h.entry_id for h in found} == {"garcia", "sltd:BLZ:P0318842"}


# ---------------------------------------------------------------------------------------------
# Reasons


def test_every_hit_explains_itself(screener):
    [hit] = hits(screener, surname="GARSIA", given_names="JUAN CARLOZ", **JUAN)
    parts = {(r["part"], r["how"]) for r in hit.reasons}
    assert ("surname", "phonetic") in parts
    assert ("given-names", "exact") in parts
    assert ("given-names", "phonetic") in parts
    # KARLOS is CARLOS as the other orthography writes it (C as K), not a sound-alike
    [respelt] = hits(screener, surname="GARCIA", given_names="JUAN KARLOS", **JUAN)
    assert ("given-names", "transliteration") in {(r["part"], r["how"]) for r in respelt.reasons}
    assert ("surname", "extra") in parts  # LOPEZ is only on the list
    assert ("birth-date", "exact") in parts
    assert ("nationality", "exact") in parts and ("sex", "exact") in parts
    assert all(set(r) == {"part", "how", "detail"} and r["detail"] for r in hit.reasons)
    [joined] = hits(screener, surname="ZHANG", given_names="XIAO MING", birth_date="1990-05-01")
    assert ("given-names", "joined") in {(r["part"], r["how"]) for r in joined.reasons}
    details = " ".join(r["detail"] for r in joined.reasons)
    assert "XIAO MING ~ XIAOMING" in details


def test_hits_have_the_shape_of_the_screening_hit_payload(screener):
    import mqtt_schemas

    [hit] = hits(screener, surname="GARCIA LOPEZ", given_names="JUAN CARLOS", **JUAN)
    payload = mqtt_schemas.examples("screening-hit")["valid"][0]["payload"]
    payload["hits"] = [{"hit_id": payload["hits"][0]["hit_id"], **hit.to_dict()}]
    mqtt_schemas.validate("screening-hit", payload)


# ---------------------------------------------------------------------------------------------
# Queries


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"birth_date": "1975-13-01"}, "birth_date"),
        ({"sex": "male"}, "sex"),
        ({"nationality": ["MEXICO"]}, "nationality"),
        ({"document_number": "G10-58?"}, "document_number"),
        ({"surname": 7}, "surname"),
        ({"passport": "X"}, "passport"),
    ],
)
def test_a_bad_query_names_its_field(query, field):
    with pytest.raises(QueryError, match=field):
        Query.from_dict(query)


# ---------------------------------------------------------------------------------------------
# Candidates come from indexes, never from a scan, and stay few for common names


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """3,000 MOHAMMEDs and 2,000 GARCIAs over 60 birth years, and the one we look for."""
    rng = random.Random(5)
    path = tmp_path_factory.mktemp("crowded") / "watchlist.db"
    others = ["ALI", "HASSAN", "OMAR", "YOUSSEF", "IBRAHIM", "KHALID", "SAID", "TARIQ"]
    families = ["HADDAD", "AL-MASRI", "KHOURY", "NASSER", "SALEH", "MANSOUR", "ABBAS"]
    with WatchlistStore(path) as writer, writer.transaction():
        for i in range(3000):
            name = f"{rng.choice(families)}, MOHAMMED {rng.choice(others)}"
            birth = f"{rng.randint(1950, 2009)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            writer.add(
                *entry_from_record(
                    {
                        "id": f"m{i}",
                        "kind": "person",
                        "names": [name],
                        "birth_date": birth,
                        "list": "sanctions",
                    }
                )
            )
        for i in range(2000):
            name = (
                f"GARCIA {rng.choice(['LOPEZ', 'PEREZ', 'RUIZ'])}, {rng.choice(['JOSE', 'JUAN'])}"
            )
            birth = f"{rng.randint(1950, 2009)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            writer.add(
                *entry_from_record(
                    {
                        "id": f"g{i}",
                        "kind": "person",
                        "names": [name],
                        "birth_date": birth,
                        "list": "national-wanted",
                    }
                )
            )
        writer.add(
            *entry_from_record(
                {
                    "id": "target",
                    "kind": "person",
                    "names": ["AL-ZAHRANI, MOHAMMED ALI"],
                    "birth_date": "1977-04-09",
                    "list": "sanctions",
                }
            )
        )
    with WatchlistStore(path, readonly=True) as reader:
        yield reader


def test_common_names_are_narrowed_by_rarer_and_combined_keys(crowded):
    screener = Screener(crowded)
    found = screener.screen(
        Query.from_dict(
            {"surname": "ALZAHRANI", "given_names": "MUHAMMAD ALI", "birth_date": "1977-04-09"}
        )
    )
    assert [h.entry_id for h in found] == ["target"]
    # MOHAMMED alone is on 3,001 entries; its pairs and the birth-year window keep the
    # scored candidates to a handful.
    assert screener.last_candidates < 40
    screener.screen(
        Query.from_dict({"surname": "GARCIA", "given_names": "JOSE", "birth_date": "1980-01-01"})
    )
    assert screener.last_candidates <= 100
    # Without a birth date, the candidate set is still bounded.
    screener.screen(Query.from_dict({"surname": "GARCIA LOPEZ", "given_names": "JOSE"}))
    assert screener.last_candidates <= MAX_CANDIDATES


def test_screening_never_scans_a_table(crowded):
    statements: list[str] = []
    crowded.connection.set_trace_callback(statements.append)
    try:
        screener = Screener(crowded)
        for traveller in (
            {"surname": "ALZAHRANI", "given_names": "MUHAMMAD ALI", "birth_date": "1977-04-09"},
            {"surname": "GARCIA LOPEZ", "given_names": "JOSE"},
            {"surname": "GARCAI", "given_names": "JOSE", "birth_date": "1980"},
            {"document_number": "X1", "issuing_state": "MEX"},
            {"document_number": "X1"},
        ):
            screener.screen(Query.from_dict(traveller))
    finally:
        crowded.connection.set_trace_callback(None)
    plans = []
    for sql in set(statements):
        if sql.lstrip().upper().startswith("SELECT"):
            plan = crowded.connection.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
            plans += [row[-1] for row in plan]
    assert plans
    # json_each is the list of keys a statement was given; a subquery is bounded by LIMIT.
    scans = [p for p in plans if re.match(r"SCAN (?!json_each|\(subquery)", p)]
    assert scans == [], scans
