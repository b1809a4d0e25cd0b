"""The population table: its file, its import on the kiosk, and what the matcher does with it.

A lane's travellers are not the list's people: at a Belizean post CHOC and JUANA are everyday
names that a list of a million people from everywhere hardly knows. Without the table, a
partial match on them looks like a rare coincidence and hits; with it, the chance gate knows
better, while the full name as listed (always a hit) and a slip of the pen in it (a spelling
nobody bears) still hit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.screening.matcher import Query, Screener
from edge.screening.population import (
    FORMAT_LINE,
    Population,
    PopulationError,
    count_tokens,
    info,
    install,
    load,
    parse,
    read,
    write,
)
from edge.screening.store import WatchlistStore
from mqtt_schemas.watchlist import entry_from_record

EDGE = Path(sys.executable).parent / "borderlane-edge"

LIST = [
    {
        "id": "choc-pop",
        "kind": "person",
        "names": [{"surname": "CHOC POP", "given_names": "JUANA"}],
        "birth_date": "1966",
        "nationality": ["BLZ"],
        "sex": "F",
        "list": "field-watch",
        "action": "refer",
    },
    {
        "id": "teul-undated",
        "kind": "person",
        "names": [{"surname": "TEUL", "given_names": "MARIA ROSA"}],
        "nationality": ["BLZ"],
        "sex": "F",
        "list": "field-watch",
        "action": "refer",
    },
]
# A post where these names are everyday ones: a tenth of travellers are CHOCs, and so on.
COMMON = Population(
    10_000, {"CHOC": 1000, "POP": 800, "JUANA": 1500, "TEUL": 600, "MARIA": 2000, "ROSA": 900}
)


def _store(path: Path, population: Population | None) -> Path:
    with WatchlistStore(path) as writer:
        with writer.transaction():
            for record in LIST:
                writer.add(*entry_from_record(record))
        if population is not None:
            install(writer, population, source="test")
    return path


def _hits(path: Path, **traveller: str) -> set[str]:
    with WatchlistStore(path, readonly=True) as reader:
        return {hit.entry_id for hit in Screener(reader).screen(Query.from_dict(traveller))}


JUANA = {"birth_date": "1966-03-02", "nationality": "BLZ", "sex": "F"}


def test_a_partial_match_on_names_common_at_the_post_is_a_coincidence(tmp_path):
    # Without the table the list's frequencies (each name once) make CHOC JUANA born 1966 a
    # rare coincidence; with it, about 75 in a thousand bear the name.
    bare = _store(tmp_path / "bare.db", None)
    table = _store(tmp_path / "table.db", COMMON)
    assert _hits(bare, surname="CHOC", given_names="JUANA", **JUANA) == {"choc-pop"}
    assert _hits(table, surname="CHOC", given_names="JUANA", **JUANA) == set()


def test_the_full_name_and_a_slip_in_it_still_hit_with_the_table(tmp_path):
    table = _store(tmp_path / "table.db", COMMON)
    assert _hits(table, surname="CHOC POP", given_names="JUANA", **JUANA) == {"choc-pop"}
    # JUAMA is nobody's name: a slip of the pen, not a namesake's name.
    assert _hits(table, surname="CHOC POP", given_names="JUAMA", **JUANA) == {"choc-pop"}


def test_the_full_name_of_an_undated_entry_is_a_hit_and_says_why(tmp_path):
    table = _store(tmp_path / "table.db", COMMON)
    with WatchlistStore(table, readonly=True) as reader:
        query = Query.from_dict({"surname": "TEUL", "given_names": "ROSA MARIA", **JUANA})
        (hit,) = Screener(reader).screen(query)
    assert hit.entry_id == "teul-undated"
    assert hit.reasons[0]["how"] == "exact-name"
    assert "no birth date listed: always a hit" in hit.reasons[0]["detail"]
    # A part of it, unconfirmed by any birth date, is a coincidence at this post.
    assert _hits(table, surname="TEUL", given_names="MARIA", **JUANA) == set()


def test_count_tokens_counts_travellers_and_suppresses_rare_tokens():
    names = [("CHOC", "JUANA JUANA")] * 12 + [("Pérez", "Ana")] * 3
    table = count_tokens(names, min_count=10)
    assert table.travellers == 15
    assert table.counts == {"CHOC": 12, "JUANA": 12}  # once per traveller; PEREZ, ANA too rare
    assert table.share("CHOC") == pytest.approx(0.8)
    assert table.share("PEREZ") == 0.0


def test_the_file_round_trips_with_mode_0600(tmp_path):
    path = tmp_path / "post.population"
    write(COMMON, path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert path.read_text().splitlines()[:2] == [FORMAT_LINE, "travellers 10000"]
    assert read(path) == COMMON


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1"),
        ("borderlane-population 2\ntravellers 5\n", "line 1"),
        (f"{FORMAT_LINE}\n", "line 2: the file ends"),
        (f"{FORMAT_LINE}\npersons 5\n", "line 2: 'travellers N'"),
        (f"{FORMAT_LINE}\ntravellers 0\n", "line 2: a positive whole number"),
        (f"{FORMAT_LINE}\ntravellers 5\nCHOC 6\n", "line 3: more travellers"),
        (f"{FORMAT_LINE}\ntravellers 5\nChoc 2\n", "line 3: a token is A to Z"),
        (f"{FORMAT_LINE}\ntravellers 5\nCHOC 2\nCHOC 3\n", "line 4: CHOC given twice"),
        (f"{FORMAT_LINE}\ntravellers 5\nCHOC  2\n", "line 3: a token and a count"),
        (f"{FORMAT_LINE}\ntravellers 5\nCHOC 2.0\n", "line 3: a positive whole number"),
        (f"{FORMAT_LINE}\ntravellers 5\nCHOC NaN\n", "line 3: a positive whole number"),
        (f"{FORMAT_LINE}\ntravellers 5\nCHOC 1e3\n", "line 3: a positive whole number"),
        (f"{FORMAT_LINE}\ntravellers 5\n{'A' * 300} 1\n", "line 3: longer than"),
        (f"{FORMAT_LINE}\ntravellers {'9' * 5000}\n", "line 2: longer than"),
    ],
)
def test_a_bad_file_is_one_error_naming_the_line(text, message):
    with pytest.raises(PopulationError, match=message):
        parse(text.splitlines(keepends=True))


def test_bytes_that_are_not_ascii_are_a_population_error(tmp_path):
    path = tmp_path / "bad.population"
    path.write_bytes(f"{FORMAT_LINE}\ntravellers 5\n".encode() + "PÉREZ 2\n".encode("latin-1"))
    with pytest.raises(PopulationError, match="line 3: not ASCII"):
        read(path)


def test_install_replaces_the_table_and_load_reads_it(tmp_path):
    path = tmp_path / "wl.db"
    with WatchlistStore(path) as store:
        assert load(store.connection) is None and info(store.connection) is None
        install(store, COMMON, source="first")
        install(store, Population(10, {"XI": 4}), source="second")
        assert load(store.connection) == Population(10, {"XI": 4})
        assert info(store.connection)["source"] == "second"


def _edge(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(EDGE), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_the_cli_imports_a_table_and_refuses_a_bad_one_in_one_line(tmp_path):
    db = _store(tmp_path / "wl.db", None)
    good = tmp_path / "post.population"
    write(COMMON, good)
    result = _edge("watchlist", "population", "import", "--db", str(db), str(good))
    assert result.returncode == 0, result.stderr
    assert "6 tokens of 10000 travellers imported" in result.stderr
    status = _edge("watchlist", "population", "status", "--db", str(db))
    assert json.loads(status.stdout)["travellers"] == 10_000

    bad = tmp_path / "bad.population"
    bad.write_text(f"{FORMAT_LINE}\ntravellers 5\nCHOC -1\n")
    result = _edge("watchlist", "population", "import", "--db", str(db), str(bad))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "line 3" in result.stderr and "the store is unchanged" in result.stderr
    with WatchlistStore(db, readonly=True) as reader:
        assert load(reader.connection) == COMMON

    missing = _edge("watchlist", "population", "import", "--db", str(db), str(tmp_path / "no"))
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
