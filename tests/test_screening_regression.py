"""The regression set: the screening cases that matter in the field, one test each.

The list is ``tests/data/screening_regression/list.jsonl`` (the list-file format an officer's
list arrives in); the cases are ``cases.jsonl`` next to it, one traveller a line::

    case     the test id
    about    what the case is about (the defect it guards against, the false friend ...)
    traveller  the query, as ``borderlane-edge screen`` reads it
    hits     entry ids the traveller must hit, at the default threshold
    why      [part, how] reasons every such hit must give
    not      entry ids the traveller must not hit
    low      [part, how] reasons the entry in ``not`` must give when screened at a low
             threshold (so a no-hit is for the right reason)

Among them: the four defects of issue 12 (nationality codes normalised one side only, Baltic
transliterations, joined names from structured fields and surname-first, a clashing initial),
the famous false friends (GEORGE BUSH is not GEORGE HABBASH; a person is not an organisation
named after them), name order, transliteration, nicknames only where the list gives them as
aliases, and document numbers read with O/0, I/1, B/8 confusions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.screening.matcher import Query, Screener
from edge.screening.store import WatchlistStore
from mqtt_schemas.watchlist import entry_from_record

DATA = Path(__file__).parent / "data" / "screening_regression"


def _read(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]


CASES = _read("cases.jsonl")


@pytest.fixture(scope="module")
def screener(tmp_path_factory):
    path = tmp_path_factory.mktemp("regression") / "watchlist.db"
    with WatchlistStore(path) as writer, writer.transaction():
        for record in _read("list.jsonl"):
            writer.add(*entry_from_record(record))
    with WatchlistStore(path, readonly=True) as reader:
        yield Screener(reader)


def test_the_cases_are_well_formed():
    ids = [case["case"] for case in CASES]
    assert len(ids) == len(set(ids))
    listed = {record["id"] for record in _read("list.jsonl")}
    for case in CASES:
        assert case.get("hits") or case.get("not"), case["case"]
        assert set(case.get("hits", [])) | set(case.get("not", [])) <= listed, case["case"]


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_regression(screener, case):
    query = Query.from_dict(case["traveller"])
    hits = {hit.entry_id: hit for hit in screener.screen(query)}
    for expected in case.get("hits", []):
        assert expected in hits, f"{case['about']}: no hit on {expected}"
        reasons = {(r["part"], r["how"]) for r in hits[expected].reasons}
        for part, how in case.get("why", []):
            assert (part, how) in reasons, f"{case['about']}: {reasons}"
    for unexpected in case.get("not", []):
        assert unexpected not in hits, f"{case['about']}: {hits[unexpected].reasons}"
    if case.get("low"):
        low = {hit.entry_id: hit for hit in screener.screen(query, threshold=0.3)}
        for unexpected in case["not"]:
            assert unexpected in low, f"{case['about']}: not even a low score"
            reasons = {(r["part"], r["how"]) for r in low[unexpected].reasons}
            for part, how in case["low"]:
                assert (part, how) in reasons, f"{case['about']}: {reasons}"
