"""The kiosk's watchlist store and its importers (edge.screening.store, .importers)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from edge.screening.importers import import_files
from edge.screening.store import StoreError, WatchlistStore
from mqtt_schemas.watchlist import entry_from_record, record_from_entry

PERSON = {
    "id": "nw-1",
    "kind": "person",
    "names": [
        {"surname": "CHUN", "given_names": "ELIAS"},
        {"surname": "CHUN", "given_names": "ELIAS R"},
    ],
    "birth_date": "1988-11",
    "nationality": ["BLZ", "GTM"],
    "sex": "M",
    "list": "national-wanted",
    "category": "wanted",
    "action": "refer",
}
DOCUMENT = {
    "id": "sltd:MEX:G10583221",
    "kind": "document",
    "number": "G10583221",
    "issuing_state": "MEX",
    "document_type": "P",
    "status": "stolen",
    "list": "interpol-sltd",
    "action": "refer",
}


@pytest.fixture
def store(tmp_path):
    with WatchlistStore(tmp_path / "watchlist.db") as opened:
        yield opened


def rows(store: WatchlistStore, table: str) -> int:
    return store.connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_a_new_store_is_empty_at_version_zero_in_wal_mode(store):
    assert store.version == 0 and store.applied_at is None
    assert store.counts() == {"persons": 0, "documents": 0}
    assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_entries_come_back_as_they_went_in(store):
    with store.transaction():
        store.add(*entry_from_record(PERSON))
        store.add(*entry_from_record(DOCUMENT))
    assert store.get("person", "nw-1") == {
        k: v for k, v in PERSON.items() if k not in ("id", "kind")
    }
    assert store.get("document", DOCUMENT["id"])["status"] == "stolen"
    assert [record_from_entry(*e) for e in store.entries()] == [DOCUMENT, PERSON]
    assert store.counts() == {"persons": 1, "documents": 1}


def test_add_update_remove_are_strict_and_leave_no_index_rows_behind(store):
    kind, entry_id, entry = entry_from_record(PERSON)
    with store.transaction():
        store.add(kind, entry_id, entry)
    keys = rows(store, "person_keys")
    assert keys > 0
    with pytest.raises(StoreError) as present, store.transaction():
        store.add(kind, entry_id, entry)
    assert present.value.reason == "present"
    with store.transaction():
        store.update(
            kind, entry_id, {**entry, "names": [{"surname": "CHUN MAYA", "given_names": "ELIAS"}]}
        )
    assert rows(store, "person_keys") > keys
    assert store.get(kind, entry_id)["names"] == [{"surname": "CHUN MAYA", "given_names": "ELIAS"}]
    with store.transaction():
        store.remove(kind, entry_id)
        store.add(*entry_from_record(DOCUMENT))
        store.remove("document", DOCUMENT["id"])
    assert rows(store, "person_keys") == rows(store, "persons") == rows(store, "documents") == 0
    assert store.counts() == {"persons": 0, "documents": 0}
    with pytest.raises(StoreError) as absent, store.transaction():
        store.remove("person", "nw-1")
    assert absent.value.reason == "absent"


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.add(*entry_from_record(PERSON))
        raise RuntimeError("power cut")
    assert rows(store, "persons") == rows(store, "person_keys") == 0
    assert store.counts()["persons"] == 0


def test_read_only_stores_refuse_changes(tmp_path):
    WatchlistStore(tmp_path / "w.db").close()
    with WatchlistStore(tmp_path / "w.db", readonly=True) as reader:
        with pytest.raises(StoreError) as refused, reader.transaction():
            pass
        assert refused.value.reason == "readonly"
    with pytest.raises(StoreError) as missing:
        WatchlistStore(tmp_path / "none.db", readonly=True)
    assert missing.value.reason == "no-store"


def test_reindex_rebuilds_the_same_index(store):
    with store.transaction():
        store.add(*entry_from_record(PERSON))
    before = store.connection.execute("SELECT * FROM person_keys ORDER BY 1, 2, 3").fetchall()
    assert store.reindex() == 1
    assert (
        store.connection.execute("SELECT * FROM person_keys ORDER BY 1, 2, 3").fetchall() == before
    )


def test_jsonl_import_reports_bad_lines_by_number_and_imports_the_rest(store, tmp_path):
    path = tmp_path / "list.jsonl"
    lines = [
        json.dumps(PERSON),
        "{not json",
        json.dumps({**DOCUMENT, "status": "found"}),
        "",
        json.dumps(DOCUMENT),
        json.dumps({"id": "x", "kind": "vehicle"}),
        json.dumps({**PERSON, "id": "nw-2", "names": []}),
    ]
    path.write_text("\n".join(lines) + "\n")
    report = import_files(store, [path], progress=False)
    assert (report.persons, report.documents, report.skipped) == (1, 1, 4)
    assert [e.split(": ")[0] for e in report.errors] == [
        f"{path}:2",
        f"{path}:3",
        f"{path}:6",
        f"{path}:7",
    ]
    assert "not JSON" in report.errors[0]
    assert "status" in report.errors[1]
    assert store.counts() == {"persons": 1, "documents": 1}


def test_import_replaces_entries_already_there(store, tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text(json.dumps(DOCUMENT) + "\n" + json.dumps({**DOCUMENT, "status": "lost"}) + "\n")
    report = import_files(store, [path], progress=False)
    assert report.replaced == 1
    assert store.get("document", DOCUMENT["id"])["status"] == "lost"
    assert store.counts()["documents"] == 1


def test_csv_import_with_aliases_and_nationalities(store, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(
        "id,kind,surname,given_names,aliases,birth_date,nationality,sex,list,action,"
        "number,issuing_state,status\n"
        'nw-1,person,CHUN,ELIAS,"CHUN, ELIAS R|ЧУН",1988-11,BLZ;GTM,M,national-wanted,refer,,,\n'
        "d-1,document,,,,,,,interpol-sltd,,G 1058-3221,mex,stolen\n"
        "d-2,document,,,,,,,interpol-sltd,,,MEX,stolen\n"
    )
    report = import_files(store, [path], progress=False)
    assert (report.persons, report.documents, report.skipped) == (1, 1, 1)
    assert report.errors[0].startswith(f"{path}:4: ")
    person = store.get("person", "nw-1")
    assert person["names"] == [
        {"surname": "CHUN", "given_names": "ELIAS"},
        {"surname": "CHUN", "given_names": "ELIAS R"},
        {"surname": "ЧУН"},
    ]
    assert person["nationality"] == ["BLZ", "GTM"]
    assert store.get("document", "d-1")["number"] == "G10583221"


def test_csv_with_unknown_columns_is_refused(store, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("id,kind,colour\nx,person,red\n")
    report = import_files(store, [path], progress=False)
    assert report.skipped == 1 and "colour" in report.errors[0]


def test_the_store_is_sqlite_that_other_tools_can_read(store, tmp_path):
    with store.transaction():
        store.add(*entry_from_record(DOCUMENT))
    other = sqlite3.connect(tmp_path / "watchlist.db")
    assert other.execute("SELECT number FROM documents").fetchall() == [("G10583221",)]
    other.close()


def test_a_store_indexed_by_another_matcher_version_must_be_reindexed(store):
    from edge.screening.matcher import Screener

    store.connection.execute("UPDATE meta SET value = 0 WHERE key = 'index_format'")
    with pytest.raises(StoreError) as stale:
        Screener(store)
    assert stale.value.reason == "reindex" and "watchlist reindex" in str(stale.value)
    store.reindex()
    Screener(store)


def test_the_progress_bar_goes_to_standard_error(store, tmp_path, capsys):
    path = tmp_path / "list.jsonl"
    path.write_text(json.dumps(DOCUMENT) + "\n")
    import_files(store, [path], progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert store.counts()["documents"] == 1


def test_an_update_that_leaves_the_indexed_fields_alone_keeps_the_index(store):
    kind, entry_id, entry = entry_from_record(PERSON)
    with store.transaction():
        store.add(kind, entry_id, entry)
        store.add(*entry_from_record(DOCUMENT))
    keys = store.connection.execute("SELECT * FROM person_keys ORDER BY 1, 2, 3").fetchall()
    with store.transaction():
        store.update(kind, entry_id, {**entry, "action": "deny", "list": "sanctions"})
        store.update(
            "document", DOCUMENT["id"], {**entry_from_record(DOCUMENT)[2], "status": "lost"}
        )
    assert store.get(kind, entry_id)["action"] == "deny"
    assert store.get(kind, entry_id)["list"] == "sanctions"
    assert store.get("document", DOCUMENT["id"])["status"] == "lost"
    assert store.connection.execute("SELECT * FROM person_keys ORDER BY 1, 2, 3").fetchall() == keys
    assert store.counts() == {"persons": 1, "documents": 1}
