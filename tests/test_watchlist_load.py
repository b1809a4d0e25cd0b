"""The fast import: documents read in blocks (mqtt_schemas.list_formats.read_list_blocks) and
entries put in by a Loader (edge.screening.store), compared with the strict reader and with
entries put in one by one, which they must not differ from in anything."""

from __future__ import annotations

import io
import json
import random
import sqlite3
from pathlib import Path

import pytest

from edge.screening import store as store_module
from edge.screening.importers import import_files
from edge.screening.store import WatchlistStore
from edge.sim.watchlist import generate_documents, generate_persons
from mqtt_schemas import list_formats
from mqtt_schemas.list_formats import DocumentRows, read_list, read_list_blocks
from mqtt_schemas.name_matching import document_key

DOCUMENT = (
    '{"id":"sltd:MEX:G10583221","kind":"document","number":"G10583221","issuing_state":"MEX",'
    '"document_type":"P","status":"stolen","list":"interpol-sltd"}'
)
PERSON = {
    "id": "nw-1",
    "kind": "person",
    "names": [{"surname": "CHUN", "given_names": "ELIAS"}],
    "birth_date": "1988-11",
    "list": "national-wanted",
    "category": "wanted",
}

GREEK_SURNAME = "\u03a7\u039f\u03a5\u039d"  # in Greek capitals, which ruff takes for Latin

# Lines a reader of our JSON Lines may meet: the fast shape and everything near it. Each one
# not in the fast shape must come out of read_list_blocks exactly as read_list has it.
LINES = [
    DOCUMENT,
    DOCUMENT.replace('"document_type":"P",', ""),  # no type
    DOCUMENT.replace('"list":"interpol-sltd"', '"list":"interpol-sltd","action":"deny"'),
    DOCUMENT.replace('"issuing_state":"MEX"', '"issuing_state":"D"'),
    DOCUMENT.replace('"issuing_state":"MEX"', '"issuing_state":"DEU"'),  # becomes D
    DOCUMENT.replace('"issuing_state":"MEX"', '"issuing_state":"mex"'),  # upper-cased
    DOCUMENT.replace('"issuing_state":"MEX"', '"issuing_state":" MEX "'),  # stripped
    DOCUMENT.replace('"issuing_state":"MEX"', '"issuing_state":"MEXI"'),  # too long
    DOCUMENT.replace('"number":"G10583221"', '"number":"G1058-3221"'),  # cleaned
    DOCUMENT.replace('"number":"G10583221"', '"number":"g10583221"'),  # upper-cased
    DOCUMENT.replace('"number":"G10583221"', '"number":"G1058\\u0033221"'),  # an escape
    DOCUMENT.replace('"number":"G10583221"', '"number":"' + "1" * 25 + '"'),  # too long
    DOCUMENT.replace('"number":"G10583221"', '"number":""'),
    DOCUMENT.replace('"status":"stolen"', '"status":"found"'),
    DOCUMENT.replace('"status":"stolen"', '"status":"Stolen"'),
    DOCUMENT.replace('"action":"refer"', "").replace('"list"', '"action":"arrest","list"'),
    DOCUMENT.replace('"list":"interpol-sltd"', '"list":"Interpol"'),
    DOCUMENT.replace('"document_type":"P"', '"document_type":"p"'),
    DOCUMENT.replace('"document_type":"P"', '"document_type":""'),
    DOCUMENT.replace('"document_type":"P"', '"document_type":null'),
    DOCUMENT.replace('"id":"sltd:MEX:G10583221"', '"id":"-bad"'),
    DOCUMENT.replace('"id":"sltd:MEX:G10583221"', '"id":"' + "x" * 129 + '"'),
    DOCUMENT.replace('"kind":"document"', '"kind":"person"'),
    DOCUMENT.replace("}", ',"extra":1}'),
    DOCUMENT.replace("}", ',"number":"X1"}'),  # a key twice: JSON keeps the last
    DOCUMENT.replace(",", ", "),  # spaces
    " " + DOCUMENT,
    DOCUMENT + " ",
    DOCUMENT + "\r",  # CRLF
    DOCUMENT + "\r" + DOCUMENT,  # a carriage return alone ends a line
    DOCUMENT + "\r\r",
    "",
    "   ",
    "{not json",
    "[]",
    json.dumps(PERSON),
    json.dumps({**PERSON, "names": []}),
    json.dumps({**PERSON, "names": [{"surname": GREEK_SURNAME, "given_names": "Elias"}]}),
    "\ufeff" + DOCUMENT,  # a byte order mark is not JSON
    DOCUMENT.replace("G10583221", "H20000001"),
]


def strict(data: bytes, source: str = "list.jsonl") -> list[tuple[str, object]]:
    """What read_list says of *data*, one item per line told about."""
    return [
        (e.where, e.entry if e.entry is not None else str(e.error))
        for e in read_list(io.BytesIO(data), source, "jsonl")
    ]


def fast(data: bytes, source: str = "list.jsonl") -> list[tuple[str, object]]:
    """What read_list_blocks says of *data*, its rows told line by line."""
    told: list[tuple[str, object]] = []
    for event in read_list_blocks(io.BytesIO(data), source, "jsonl"):
        if isinstance(event, DocumentRows):
            name, first = event.where.rsplit(":", 1)
            for offset, row in enumerate(event.rows):
                entry_id, number, state, kind, status, list_name, action = row
                entry = {"number": number, "issuing_state": state}
                if kind is not None:
                    entry["document_type"] = kind
                entry |= {"status": status, "list": list_name, "action": action}
                told.append((f"{name}:{int(first) + offset}", ("document", entry_id, entry)))
        else:
            told.append((event.where, event.entry if event.entry is not None else str(event.error)))
    return told


def test_the_fast_shape_is_what_our_writers_write():
    line = next(generate_documents(1, 7))
    events = list(read_list_blocks(io.BytesIO(line.encode() + b"\n"), "d.jsonl", "jsonl"))
    assert len(events) == 1 and isinstance(events[0], DocumentRows)
    assert fast(DOCUMENT.encode()) == strict(DOCUMENT.encode())


@pytest.mark.parametrize("line", LINES)
def test_each_line_reads_as_the_strict_reader_reads_it(line):
    # Alone, and between two fast lines (a run broken and resumed).
    for data in (line, f"{DOCUMENT}\n{line}\n{DOCUMENT}\n"):
        assert fast(data.encode()) == strict(data.encode())


@pytest.mark.parametrize("block", [1 << 22, 7, 64, 300])
def test_any_mixture_in_any_blocks_reads_as_the_strict_reader_reads_it(block, monkeypatch):
    monkeypatch.setattr(list_formats, "BLOCK_BYTES", block)
    rng = random.Random(block)
    lines = [rng.choice(LINES) for _ in range(400)]
    for data in ("\n".join(lines), "\n".join(lines) + "\n", "\r\n".join(lines)):
        assert fast(data.encode()) == strict(data.encode())


def test_a_line_that_is_not_utf8_is_reported_where_it_is_and_ends_the_file():
    data = (DOCUMENT + "\n" + DOCUMENT + "\n").encode() + b'{"id":"\xff"}\n' + DOCUMENT.encode()
    told = fast(data)
    assert [where for where, _ in told] == ["list.jsonl:1", "list.jsonl:2", "list.jsonl:3"]
    assert "not UTF-8" in told[-1][1]


def test_the_fold_read_back_from_document_key_is_document_key():
    rng = random.Random(3)
    alphabet = store_module._ALNUM
    for _ in range(2000):
        number = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        assert number.translate(store_module._FOLD) == document_key(number)


# ---------------------------------------------------------------------------------------------
# The loader: the same store as entries put in one by one


def write_list(path: Path, seed: int, renumbered: int = 5) -> None:
    """Persons (repeated names) and documents, with ids again: the same entry, a changed one
    (other names; another status; *renumbered* of them another number), and bad lines."""
    rng = random.Random(seed)
    persons = [json.dumps(r) for r, _ in generate_persons(300, seed)]
    documents = list(generate_documents(400, seed))
    lines = persons + documents
    again = [json.loads(rng.choice(persons)) for _ in range(8)]
    for record in again[:4]:
        record["names"] = [{"surname": "OTHER", "given_names": "NAME"}]
    lines += [json.dumps(r) for r in again]
    moved = [json.loads(rng.choice(documents)) for _ in range(10)]
    for record in moved[:renumbered]:
        record["number"] = "Z" + record["number"][1:]
    for record in moved[renumbered:8]:
        record["status"] = "revoked" if record["status"] != "revoked" else "lost"
    lines += [json.dumps(r, separators=(",", ":")) for r in moved]
    lines += ["{not json", json.dumps({**PERSON, "names": []}), ""]
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n")


def one_by_one(store: WatchlistStore, path: Path) -> int:
    """The list put in as the importer did before the loader: upsert each entry."""
    replaced = 0
    with store.transaction(), open(path, "rb") as stream:
        for event in read_list(stream, str(path), "jsonl"):
            if event.entry is not None:
                kind, entry_id, entry = event.entry
                if kind == "document":
                    replaced += 1 - store.upsert_documents([(entry_id, entry)])
                else:
                    replaced += not store.upsert(kind, entry_id, entry)
    return replaced


def dump(path: Path) -> dict[str, object]:
    connection = sqlite3.connect(path)
    tables = ["meta", "lists", "persons", "person_keys", "vocab", "vocab_tokens", "documents"]
    content: dict[str, object] = {
        table: sorted(connection.execute(f"SELECT * FROM {table}")) for table in tables
    }
    content["meta"] = [row for row in content["meta"] if row[0] != "applied_at"]  # type: ignore[union-attr]
    content["schema"] = sorted(connection.execute("SELECT type, name, sql FROM sqlite_schema"))
    content["check"] = connection.execute("PRAGMA integrity_check").fetchall()
    connection.close()
    return content


@pytest.mark.parametrize("renumbered", [5, 0], ids=["renumbered", "same-numbers"])
@pytest.mark.parametrize("prefilled", ["empty", "emptied", "filled"])
def test_an_import_makes_the_store_entries_put_in_one_by_one_make(tmp_path, prefilled, renumbered):
    # Renumbered documents take the bulk load's other way (an id again under another key). An
    # emptied store (an entry added and removed) is bulk-loaded with a vocabulary already
    # there; into a filled one (an entry in each table) nothing is bulk-loaded.
    path = tmp_path / "list.jsonl"
    write_list(path, 11, renumbered)
    expected = {}
    for name, how in (("loaded.db", "loader"), ("one.db", "one by one")):
        with WatchlistStore(tmp_path / name) as store:
            if prefilled != "empty":
                listed = {**PERSON, "names": [{"surname": "BOGNIKOVA", "given_names": "GALINA"}]}
                with store.transaction():
                    store.add("person", "pre-1", {**listed, "action": "refer"})
                    store.add_documents([("pre-2", {**json.loads(DOCUMENT), "action": "refer"})])
                if prefilled == "emptied":
                    with store.transaction():
                        store.remove("person", "pre-1")
                        store.remove("document", "pre-2")
            if how == "loader":
                report = import_files(store, [path], progress=False, batch=100)
                assert (report.persons, report.documents, report.skipped) == (308, 410, 2)
                replaced = report.replaced
            else:
                expected["replaced"] = one_by_one(store, path)
        expected[how] = dump(tmp_path / name)
    assert replaced == expected["replaced"] == 18
    assert expected["loader"] == expected["one by one"]
    assert expected["loader"]["check"] == [("ok",)]


def test_an_import_into_an_empty_store_that_fails_leaves_it_as_it_was(tmp_path):
    # A bulk load is one transaction: the first file read, the second missing, nothing stays
    # (never persons without their index keys, never documents without their id index).
    path = tmp_path / "list.jsonl"
    write_list(path, 12)
    db = tmp_path / "wl.db"
    with WatchlistStore(db):
        pass
    before = dump(db)
    with WatchlistStore(db) as store:
        with pytest.raises(FileNotFoundError):
            import_files(store, [path, tmp_path / "missing.jsonl"], progress=False)
        assert store.counts() == {"persons": 0, "documents": 0}
    assert dump(db) == before
    with WatchlistStore(db) as store:
        loader = store.loader()
        assert loader.bulk_persons and loader.bulk_documents
        loader.abort()
        import_files(store, [path], progress=False)
        assert store.counts()["documents"] > 0
