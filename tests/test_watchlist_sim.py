"""The synthetic watchlist generator (edge/sim/watchlist.py) behind tests and benchmarks."""

from __future__ import annotations

import json
from collections import Counter

from edge.sim.watchlist import (
    CLASSES,
    document_number,
    generate_documents,
    generate_persons,
    labelled_queries,
    to_cyrillic,
)
from mqtt_schemas.watchlist import entry_from_record


def test_the_same_seed_gives_the_same_list_and_every_record_is_valid():
    first = [record for record, _ in generate_persons(300, seed=3)]
    assert first == [record for record, _ in generate_persons(300, seed=3)]
    assert first != [record for record, _ in generate_persons(300, seed=4)]
    for record in first:
        entry_from_record(record)
    for line in generate_documents(300, seed=3):
        entry_from_record(json.loads(line))


def test_the_list_mixes_cultures_scripts_and_birth_date_precisions():
    records = [record for record, _ in generate_persons(3000, seed=1)]
    names = " ".join(
        n["surname"] + " " + n.get("given_names", "") for r in records for n in r["names"]
    )
    assert "GARCIA" in names and "MOHAMMED" in names and "WANG" in names
    assert sum(not c.isascii() for c in names) > 50  # aliases in Han, Arabic, Cyrillic, Greek
    precision = Counter(len(r.get("birth_date", "")) for r in records)
    assert set(precision) == {0, 4, 7, 10} and precision[10] > 0.85 * len(records)


def test_document_numbers_are_unique():
    numbers = {document_number(i, 7) for i in range(20000)}
    assert len(numbers) == 20000


def test_labelled_travellers_cover_every_variant_class_and_people_not_listed():
    profiles = [profile for _, profile in generate_persons(2000, seed=2)][::10]
    cases = labelled_queries(profiles, negatives=50, seed=2)
    classes = Counter(case["class"] for case in cases)
    assert set(classes) == {*CLASSES, "negative"}
    assert classes["negative"] == 50
    assert all((case["expect"] is None) == (case["class"] == "negative") for case in cases)


def test_russian_names_are_written_in_cyrillic():
    assert to_cyrillic("ALEKSANDR SHCHERBAKOV") == "Александр Щербаков"
