"""Names and document numbers as the matcher sees them (mqtt_schemas.name_matching: shared by the
kiosk's matcher and the console's crossing search)."""

from __future__ import annotations

import pytest

from edge.sim.watchlist import generate_persons
from edge.sim.watchlist_field import field_persons
from mqtt_schemas.name_matching import (
    MIN_FUZZY_LENGTH,
    code_hash,
    deletions,
    document_key,
    index_names,
    index_person,
    name_fields,
    pair_key,
    parse_name,
    parse_stored,
    person_tokens,
    phonetic,
    state_code,
    store_form,
    stored_keys,
    tokens,
    unit_keys,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("García-López", ["GARCIA", "LOPEZ"]),
        ("O'Brien", ["OBRIEN"]),
        ("Müller  Straße", ["MULLER", "STRASSE"]),
        ("J0HN", ["JOHN"]),  # an OCR'd MRZ name
        ("Александр Пушкин", ["ALEKSANDR", "PUSHKIN"]),
        ("Γεώργιος Παπαδόπουλος", ["GEORGIOS", "PAPADOPOULOS"]),
        ("Ευάγγελος", ["EVANGELOS"]),
        ("张小明", ["ZHANG", "XIAO", "MING"]),
        ("محمد", ["MHMD"]),
        ("عبد الرحمن", ["ABD", "AL", "RHMN"]),
        ("أسامة", ["ASAMA"]),
    ],
)
def test_tokens_transliterate_fold_and_split(text, expected):
    assert tokens(text) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("MOHAMMED", "MUHAMMAD"),
        ("MOHAMMED", "MHMD"),  # Arabic script, written without short vowels
        ("ALEKSANDR", "ALEXANDER"),
        ("KHALID", "CHALID"),
        ("SERGEY", "SERGEJ"),
        ("TCHAIKOVSKY", "CHAIKOVSKII"),
        ("PAPADOPOULOS", "PAPADOPOYLOS"),
        ("GEORGIOS", "YIORGOS"),
        ("GONZALEZ", "GONZALES"),
        ("OSAMA", "USAMA"),
        ("IVANOV", "IVANOFF"),
    ],
)
def test_transliteration_variants_share_a_phonetic_skeleton(a, b):
    assert phonetic(a) == phonetic(b)


@pytest.mark.parametrize(("a", "b"), [("BUSH", "HABBASH"), ("SMITH", "JONES"), ("LEE", "LI")])
def test_different_names_keep_different_skeletons(a, b):
    if (a, b) == ("LEE", "LI"):
        assert phonetic(a) == phonetic(b)  # the same name, as it happens
    else:
        assert phonetic(a) != phonetic(b)


def test_particles_do_not_count_but_joined_forms_are_units():
    name = parse_name(tokens("DE LA CRUZ AL-RASHID"), tokens("XIAO MING"))
    assert name.core == ("CRUZ", "RASHID", "XIAO", "MING")
    texts = {u.text: u.kind for u in name.units}
    assert texts["DELACRUZ"] == "prefixed"
    assert texts["ALRASHID"] == "prefixed"
    assert texts["XIAOMING"] == "joined"
    stripped = parse_name(tokens("ALRASHID"), [])
    assert {u.text: u.kind for u in stripped.units}["RASHID"] == "stripped"


def test_a_particle_alone_is_a_name():
    # Vietnamese LE, a surname on its own, is not the French particle.
    assert parse_name(["LE"], ["VAN", "THANH"]).core == ("LE", "THANH")


def test_document_numbers_fold_ocr_confusions_identically():
    assert document_key("G1O583221") == document_key("G10583221") == document_key("6IO5B322I")
    assert document_key("AB-12 34<5") == document_key("A812345")
    assert document_key("SZ0") == document_key("520")
    assert document_key("X123") != document_key("Y123")
    assert state_code("d<<") == "D" and state_code("DEU") == "D"


def test_keys_are_disjoint_ranges_and_order_free():
    a, b = code_hash("MMT"), code_hash("ALRST")
    assert 0 < a < 2**31 and 0 < b < 2**31
    assert pair_key(a, b) == pair_key(b, a) >= 2**31
    assert pair_key(2**31 - 1, 2**31 - 1) < 2**63


def test_deletions_meet_within_one_edit():
    assert deletions("SMITH") & deletions("SMIHT")  # transposition
    assert deletions("SMITH") & deletions("SMYTH")  # substitution
    assert deletions("SMITH") & deletions("SMITHE")  # insertion
    assert not deletions("SMITH") & deletions("JONES")


def test_index_of_a_person_keys_surname_pairs_and_learns_vocabulary():
    index = index_person(
        [{"surname": "GARCIA LOPEZ", "given_names": "JUAN"}, {"surname": "Гарсия"}]
    )
    assert index.stored == "GARCIA LOPEZ/JUAN|GARSIYA/"
    assert {"GARCIA", "LOPEZ", "JUAN", "GARCIALOPEZ", "GARSIYA"} <= index.vocabulary
    garcia, lopez, juan = (code_hash(phonetic(t)) for t in ("GARCIA", "LOPEZ", "JUAN"))
    assert {garcia, lopez, pair_key(garcia, juan), pair_key(garcia, lopez)} <= index.keys
    # A hit always involves a surname, so given names alone are never a key.
    assert juan not in index.keys


def _keys_through_units(stored: str) -> tuple[set[int], set[str], set[str]]:
    """What the index of a stored name was before the fast path: units, then unit_keys."""
    keys: set[int] = set()
    vocabulary: set[str] = set()
    for parsed in parse_stored(stored):
        units = parsed.keyed_units
        keys |= unit_keys(units, {u: (code_hash(phonetic(u.text)),) for u in units})
        vocabulary |= {
            u.text
            for u in units
            if u.kind in ("token", "joined") and len(u.text) >= MIN_FUZZY_LENGTH
        }
    core = {t for parsed in parse_stored(stored) for t in parsed.core}
    return keys, vocabulary, core


def _corpus() -> list[list[dict[str, str]]]:
    names = [record["names"] for record, _ in generate_persons(3000, 7)]
    names += [record["names"] for record, _ in field_persons(2000, 7)]
    tricky = [
        ("DE LA CRUZ AL-RASHID", "XIAO MING"),  # particles, joined and prefixed units
        ("VANDERBERG", "J"),  # a particle written joined; an initial
        ("LE", "VAN THANH"),  # particles that are names
        ("DE A", "B C"),  # a particle before an initial: a keyed unit of one core letter
        ("SERGEJS LAVROVS", "JURIJS"),  # baltic units
        ("POL", "POL"),  # crossed units alike in both orders
        ("", "MADONNA"),  # no surname
        ("", "JOSE LUIS MARIA"),  # no surname: given-name pairs are keys
        ("ALI", ""),  # one token
        ("X", "Y Z"),  # nothing keyed but prefixes
        ("BIN LADEN", "OSAMA BIN MOHAMMED BIN AWAD"),
    ]
    names += [[{"surname": s, "given_names": g}] for s, g in tricky]
    names.append([{"surname": s, "given_names": g} for s, g in tricky[:3]])  # aliases
    return names


def test_index_keys_are_those_of_the_units():
    # index_person and stored_keys compute keys without making units (an import's speed);
    # they must give exactly what the units the matcher aligns give, or a hit is lost.
    for names in _corpus():
        index = index_person(names)
        assert index.stored == store_form([name_fields(name) for name in names])
        keys, vocabulary, core = _keys_through_units(index.stored)
        assert index.keys == keys == stored_keys(index.stored), index.stored
        assert index.vocabulary == vocabulary, index.stored
        assert person_tokens(index.stored) == core, index.stored
        stored, bulk_keys, bulk_vocabulary, bulk_core = index_names(names)
        assert (stored, set(bulk_keys), set(bulk_vocabulary), set(bulk_core)) == (
            index.stored,
            keys,
            vocabulary,
            core,
        )
