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


# ---------------------------------------------------------------------------------------------
# The field set (edge/sim/watchlist_field.py): generated differently, measured separately


def test_the_field_list_is_valid_deterministic_and_mixes_belize_names_and_precisions():
    from edge.sim.watchlist_field import field_persons

    records = [record for record, _ in field_persons(2000, seed=5)]
    assert records == [record for record, _ in field_persons(2000, seed=5)]
    for record in records:
        entry_from_record(record)
    surnames = Counter(n["surname"].split()[0] for r in records for n in r["names"])
    assert {"CHOC", "CAAL", "POP", "ARANA", "CAYETANO"} <= set(surnames)
    precision = Counter(len(r.get("birth_date", "")) for r in records)
    assert set(precision) == {0, 4, 10} and precision[4] > 0.25 * len(records)


def test_field_cases_cover_every_kind_and_precision():
    from edge.sim.watchlist_field import FIELD_KINDS, field_cases, field_persons

    persons = [person for _, person in field_persons(3000, seed=6)][::5]
    cases = field_cases(persons, negatives=40, seed=6)
    assert {c["kind"] for c in cases} == {*FIELD_KINDS, "negative"}
    assert {c["precision"] for c in cases if c["expect"]} == {"full", "year", "none"}
    assert sum(c["expect"] is None for c in cases) == 40


def test_cyrillic_names_are_written_by_six_systems():
    from edge.sim.watchlist_field import cyrillic_latin

    name = "Юрий Лавров"
    assert {s: cyrillic_latin(name, s) for s in ("icao", "bgn", "german", "latvian")} == {
        "icao": "IURII LAVROV",
        "bgn": "YURIY LAVROV",
        "german": "JURIJ LAWROW",
        "latvian": "JURIJS LAVROVS",
    }
    assert cyrillic_latin("Сергей Лавров", "lithuanian") == "SERGEJUS LAVROVAS"
    assert cyrillic_latin("Наталья Иванова", "latvian", female=True) == "NATALJA IVANOVA"
