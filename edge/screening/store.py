"""The kiosk's watchlist: one SQLite file (WAL), read by the matcher, changed in transactions.

Nothing of the list is held in Python memory: the matcher reads it through indexes.

Tables (integers wherever a value repeats millions of times)::

    meta          key -> value: version, applied_at, counts, index format
    lists         id -> list name (national-wanted, interpol-sltd ...)
    persons       pid, entry_id (unique), names as listed (JSON), stored tokens, birth_date,
                  nationality, sex, list_id, category, action
    person_keys   (key, bdate, pid) WITHOUT ROWID: the blocking index. key is a phonetic code
                  (31-bit hash) of one name unit, or of two units together; bdate is the
                  birth date as an integer (YYYYMMDD; YYYYMM00 or YYYY0000 when partial, 0
                  unknown), so a common key is narrowed to the traveller's birth years by a
                  range seek, and candidates whose date conflicts are dropped unread.
    vocab_tokens  (token, persons) WITHOUT ROWID: every name token of the list and how many
                  persons bear it (how common a name is, to weigh a match on it)
    vocab         (variant, text) WITHOUT ROWID: each vocabulary text (tokens and joined
                  tokens) under itself and its one-deletion variants, so a misspelt token
                  finds the list's texts one edit away (SymSpell) without scanning anything.
    documents     (nkey, state, entry_id) WITHOUT ROWID, number as listed, type, status,
                  list_id, action; nkey is the OCR-folded number. Unique index on entry_id.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import string
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from mqtt_schemas.list_formats import DocumentRow
from mqtt_schemas.name_matching import (
    deletions,
    document_key,
    index_names,
    index_person,
    person_tokens,
    state_code,
    stored_keys,
)
from mqtt_schemas.watchlist import ACTIONS, STATUSES

__all__ = [
    "INDEX_FORMAT",
    "Loader",
    "StoreError",
    "WatchlistStore",
    "birth_year",
    "date_number",
]

INDEX_FORMAT = 7
"""Bumped whenever normalization or keys change: an older store must be re-indexed."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lists (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS persons (
    pid INTEGER PRIMARY KEY,
    entry_id TEXT NOT NULL UNIQUE,
    names TEXT NOT NULL,
    stored TEXT NOT NULL,
    birth_date TEXT,
    nationality TEXT,
    sex TEXT,
    list_id INTEGER NOT NULL,
    category TEXT NOT NULL,
    action TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS person_keys (
    key INTEGER NOT NULL, bdate INTEGER NOT NULL, pid INTEGER NOT NULL,
    PRIMARY KEY (key, bdate, pid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vocab_tokens (
    token TEXT PRIMARY KEY, persons INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vocab (
    variant TEXT NOT NULL, text TEXT NOT NULL, PRIMARY KEY (variant, text)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS documents (
    nkey TEXT NOT NULL,
    state TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    number TEXT NOT NULL,
    document_type TEXT,
    status INTEGER NOT NULL,
    list_id INTEGER NOT NULL,
    action INTEGER NOT NULL,
    PRIMARY KEY (nkey, state, entry_id)
) WITHOUT ROWID;
"""
_DOCUMENTS_ENTRY = "CREATE UNIQUE INDEX IF NOT EXISTS documents_entry ON documents (entry_id)"
_SCHEMA += _DOCUMENTS_ENTRY + ";\n"

_STATUS_CODE = {name: code for code, name in enumerate(STATUSES)}
_ACTION_CODE = {name: code for code, name in enumerate(ACTIONS)}
_ALNUM = string.ascii_uppercase + string.digits
# document_key folds each upper-case letter or digit on its own. Its table, read back from it,
# folds a number already in that alphabet (every valid entry's is) in one call instead of three:
# ten million documents are imported a few seconds sooner.
_FOLD = str.maketrans(_ALNUM, document_key(_ALNUM))


class StoreError(Exception):
    """The store cannot do what was asked; ``reason`` is a short machine word."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# One encoder for every person: json.dumps with options makes a new one per call, which was
# a twentieth of an import's time.
_NAMES_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _names_json(names: list[dict[str, str]]) -> str:
    return _NAMES_ENCODER.encode(names)


def date_number(birth_date: str | None) -> int:
    """A partial date as the index's ``bdate``: 1975-03-02 -> 19750302, 1975-03 -> 19750300,
    1975 -> 19750000, unknown -> 0."""
    if not birth_date:
        return 0
    parts = [int(p) for p in birth_date.split("-")] + [0, 0]
    return parts[0] * 10000 + parts[1] * 100 + parts[2]


def birth_year(birth_date: str | None) -> int:
    """The year of a partial date, 0 when unknown."""
    return int(birth_date[:4]) if birth_date else 0


class WatchlistStore:
    """The watchlist store at *path* (created when missing, unless *readonly*).

    ``cache_mib`` is SQLite's page cache for this connection; the operating system's page cache
    holds the rest. Every change goes through :meth:`transaction`; readers (the matcher, in
    another process or connection) keep seeing the previous version until it commits.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        cache_mib: int = 16,
        mmap_mib: int = 0,
    ) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise StoreError("no-store", f"no watchlist store at {self.path}")
            uri = f"file:{self.path}?mode=ro"
            connection = sqlite3.connect(uri, uri=True, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None)
        self.connection = connection
        try:
            connection.execute("PRAGMA busy_timeout = 10000")
            connection.execute(f"PRAGMA cache_size = {-1024 * cache_mib}")
            connection.execute(f"PRAGMA mmap_size = {mmap_mib << 20}")
            self.db = sqlite_utils.Database(connection)
            if not readonly:
                self.db.enable_wal()
                connection.execute("PRAGMA synchronous = NORMAL")
                connection.executescript(_SCHEMA)
                if self._meta("index_format") is None:
                    self._set_meta("index_format", INDEX_FORMAT)
                    self._set_meta("version", 0)
            elif "meta" not in self.db.table_names():
                raise StoreError("no-store", f"{self.path} is not a watchlist store")
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise StoreError("bad-store", f"{self.path}: {exc}") from None
        self.readonly = readonly
        self._lists: dict[str, int] = {}
        self._list_names: dict[int, str] = {}
        self._known_tokens: set[str] = set()
        self._pending_counts: dict[str, int] = {}
        self._data_version: int | None = None

    # -- lifecycle and metadata ---------------------------------------------------------------

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> WatchlistStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _meta(self, key: str) -> Any:
        row = self.connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: Any) -> None:
        self.connection.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def version(self) -> int:
        """The watchlist version the store holds (0: none applied yet)."""
        return int(self._meta("version") or 0)

    @property
    def applied_at(self) -> str | None:
        """When the current version was applied (UTC ISO 8601), or ``None``."""
        return self._meta("applied_at")

    def status(self) -> dict[str, Any]:
        """Version, when it was applied, how, and the entry counts."""
        return {
            "version": self.version,
            "applied_at": self.applied_at,
            "applied_from": self._meta("applied_from"),
            "changes_sha256": self._meta("changes_sha256"),
            "counts": self.counts(),
            "index_format": self._meta("index_format"),
        }

    def counts(self) -> dict[str, int]:
        pending = self._pending_counts
        return {
            "persons": int(self._meta("count_person") or 0) + pending.get("person", 0),
            "documents": int(self._meta("count_document") or 0) + pending.get("document", 0),
        }

    def refresh(self) -> bool:
        """Forget what this connection cached if another connection committed since the last
        call; True when it did (and on the first call), so a caller forgets its own caches.

        The lane screens on its own connection while the watchlist sync applies deltas on
        another. A snapshot rebuilds the ``lists`` table, so a cached list id could name
        another list. ``PRAGMA data_version`` is a cheap way to notice: it changes only when
        another connection commits, and inside a read transaction it matches the snapshot read.
        """
        (data_version,) = self.connection.execute("PRAGMA data_version").fetchone()
        if data_version == self._data_version:
            return False
        self._data_version = data_version
        self._lists.clear()
        self._list_names.clear()
        self._known_tokens.clear()
        return True

    def check_index_format(self) -> None:
        found = self._meta("index_format")
        if found is not None and int(found) != INDEX_FORMAT:
            raise StoreError(
                "reindex",
                f"{self.path} was indexed by another matcher version ({found}, this is "
                f"{INDEX_FORMAT}): run 'borderlane-edge watchlist reindex --db {self.path}'",
            )

    def set_version(self, version: int, *, source: str, digest: str | None = None) -> None:
        """Record *version* as applied now (inside the applying transaction)."""
        self._set_meta("version", version)
        self._set_meta("applied_at", _now())
        self._set_meta("applied_from", source)
        self._set_meta("changes_sha256", digest)

    @contextmanager
    def transaction(self, *, cache_mib: int | None = None) -> Iterator[None]:
        """One write transaction: everything inside commits together or not at all.

        *cache_mib* enlarges SQLite's page cache for the transaction (a large delta touches
        index pages all over the file)."""
        if self.readonly:
            raise StoreError("readonly", "the store is open read-only")
        previous = None
        if cache_mib is not None:
            previous = self.connection.execute("PRAGMA cache_size").fetchone()[0]
            self.connection.execute(f"PRAGMA cache_size = {-1024 * cache_mib}")
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        finally:
            if previous is not None:
                self.connection.execute(f"PRAGMA cache_size = {previous}")
        self.commit()

    def begin(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Commit, with the entry counts kept during the transaction."""
        for kind, delta in self._pending_counts.items():
            if delta:
                self.connection.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                    (f"count_{kind}", delta),
                )
        self._pending_counts.clear()
        self.connection.execute("COMMIT")

    def rollback(self) -> None:
        self.connection.execute("ROLLBACK")
        self._pending_counts.clear()
        self._lists.clear()
        self._list_names.clear()
        self._known_tokens.clear()

    # -- lists ------------------------------------------------------------------------------

    def _list_id(self, name: str) -> int:
        found = self._lists.get(name)
        if found is not None:
            return found
        row = self.connection.execute("SELECT id FROM lists WHERE name = ?", (name,)).fetchone()
        if row is None:
            row = (
                self.connection.execute("INSERT INTO lists (name) VALUES (?)", (name,)).lastrowid,
            )
        self._lists[name] = row[0]
        return row[0]

    def list_name(self, list_id: int) -> str:
        name = self._list_names.get(list_id)
        if name is None:
            row = self.connection.execute("SELECT name FROM lists WHERE id = ?", (list_id,))
            name = self._list_names[list_id] = row.fetchone()[0]
        return name

    # -- changes (call inside transaction()) --------------------------------------------------

    def _count(self, kind: str, delta: int) -> None:
        self._pending_counts[kind] = self._pending_counts.get(kind, 0) + delta

    def add(self, kind: str, entry_id: str, entry: dict[str, Any]) -> None:
        """Add an entry that is not in the store (``StoreError`` ``present`` if it is)."""
        try:
            if kind == "person":
                self._add_person(entry_id, entry)
            else:
                self._add_document(entry_id, entry)
        except sqlite3.IntegrityError:
            raise StoreError("present", f"{kind} {entry_id} is already in the store") from None
        self._count(kind, 1)

    def remove(self, kind: str, entry_id: str) -> None:
        """Remove an entry (``StoreError`` ``absent`` if it is not in the store)."""
        if kind == "person":
            row = self.connection.execute(
                "SELECT pid, stored, birth_date FROM persons WHERE entry_id = ?", (entry_id,)
            ).fetchone()
            if row is None:
                raise StoreError("absent", f"person {entry_id} is not in the store")
            pid, stored, birth_date = row
            bdate = date_number(birth_date)
            self.connection.executemany(
                "DELETE FROM person_keys WHERE key = ? AND bdate = ? AND pid = ?",
                [(key, bdate, pid) for key in stored_keys(stored)],
            )
            self.connection.executemany(
                "UPDATE vocab_tokens SET persons = persons - 1 WHERE token = ?",
                [(token,) for token in person_tokens(stored)],
            )
            self.connection.execute("DELETE FROM persons WHERE pid = ?", (pid,))
        else:
            cursor = self.connection.execute(
                "DELETE FROM documents WHERE entry_id = ?", (entry_id,)
            )
            if cursor.rowcount == 0:
                raise StoreError("absent", f"document {entry_id} is not in the store")
        self._count(kind, -1)

    def update(self, kind: str, entry_id: str, entry: dict[str, Any]) -> None:
        """Replace an entry that is in the store (``StoreError`` ``absent`` if it is not).

        When what the index is built from is unchanged (a person's names and birth date, a
        document's number and state), the row is updated in place and the index left alone:
        most updates change a status, an action or a list."""
        if kind == "person":
            names = _names_json(entry["names"])
            changed = self.connection.execute(
                "UPDATE persons SET nationality = ?, sex = ?, list_id = ?, category = ?, "
                "action = ? WHERE entry_id = ? AND names = ? AND birth_date IS ?",
                (
                    " ".join(entry.get("nationality", ())) or None,
                    entry.get("sex"),
                    self._list_id(entry["list"]),
                    entry["category"],
                    entry["action"],
                    entry_id,
                    names,
                    entry.get("birth_date"),
                ),
            ).rowcount
        else:
            changed = self.connection.execute(
                "UPDATE documents SET number = ?, document_type = ?, status = ?, list_id = ?, "
                "action = ? WHERE entry_id = ? AND nkey = ? AND state = ?",
                (
                    entry["number"],
                    entry.get("document_type"),
                    _STATUS_CODE[entry["status"]],
                    self._list_id(entry["list"]),
                    _ACTION_CODE[entry["action"]],
                    entry_id,
                    document_key(entry["number"]),
                    state_code(entry["issuing_state"]),
                ),
            ).rowcount
        if not changed:
            self.remove(kind, entry_id)
            self.add(kind, entry_id, entry)

    def upsert(self, kind: str, entry_id: str, entry: dict[str, Any]) -> bool:
        """Add or replace; True when the entry was new."""
        try:
            self.add(kind, entry_id, entry)
        except StoreError as exc:
            if exc.reason != "present":
                raise
            self.update(kind, entry_id, entry)
            return False
        return True

    def add_documents(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Add many documents none of which is in the store (faster than :meth:`add`)."""
        try:
            self.connection.executemany(
                "INSERT INTO documents (nkey, state, entry_id, number, document_type, status, "
                "list_id, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [self._document_row(entry_id, entry) for entry_id, entry in items],
            )
        except sqlite3.IntegrityError:
            raise StoreError("present", "a document added is already in the store") from None
        self._count("document", len(items))

    def upsert_documents(self, items: list[tuple[str, dict[str, Any]]]) -> int:
        """Add or replace many documents; returns how many were new."""
        return self._upsert_document_rows(
            [self._document_row(entry_id, entry) for entry_id, entry in items]
        )

    def _upsert_document_rows(self, rows: list[tuple[Any, ...]]) -> int:
        ids = {row[2] for row in rows}
        present = self.connection.execute(
            "SELECT count(*) FROM documents WHERE entry_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(ids)),),
        ).fetchone()[0]
        self.connection.executemany(
            "INSERT OR REPLACE INTO documents (nkey, state, entry_id, number, document_type, "
            "status, list_id, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._count("document", len(ids) - present)
        return len(ids) - present

    def loader(self, *, commit_every: int = 20000) -> Loader:
        """A :class:`Loader` to put many entries in (an import); it begins a transaction."""
        return Loader(self, commit_every)

    def clear(self) -> None:
        """Remove every entry (inside a transaction: a snapshot replaces the store)."""
        for table in ("persons", "person_keys", "documents", "vocab", "vocab_tokens", "lists"):
            self.connection.execute(f"DELETE FROM {table}")
        self._set_meta("count_person", 0)
        self._set_meta("count_document", 0)
        self._pending_counts.clear()
        self._lists.clear()
        self._list_names.clear()
        self._known_tokens.clear()

    def _add_person(self, entry_id: str, entry: dict[str, Any]) -> None:
        index = index_person(entry["names"])
        birth_date = entry.get("birth_date")
        pid = self.connection.execute(
            "INSERT INTO persons (entry_id, names, stored, birth_date, nationality, sex, "
            "list_id, category, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry_id,
                _names_json(entry["names"]),
                index.stored,
                birth_date,
                " ".join(entry.get("nationality", ())) or None,
                entry.get("sex"),
                self._list_id(entry["list"]),
                entry["category"],
                entry["action"],
            ),
        ).lastrowid
        bdate = date_number(birth_date)
        self.connection.executemany(
            "INSERT INTO person_keys (key, bdate, pid) VALUES (?, ?, ?)",
            [(key, bdate, pid) for key in index.keys],
        )
        self._learn(index.vocabulary, person_tokens(index.stored))

    def _learn(self, vocabulary: Iterable[str], counted: Iterable[str]) -> None:
        """Count the person's tokens, and give texts new to the list their fuzzy variants."""
        self.connection.executemany(
            "INSERT INTO vocab_tokens (token, persons) VALUES (?, 1) "
            "ON CONFLICT (token) DO UPDATE SET persons = persons + 1",
            [(text,) for text in counted],
        )
        self._learn_texts(vocabulary)

    def _learn_texts(self, vocabulary: Iterable[str]) -> None:
        """Give the texts new to the list their fuzzy variants."""
        fresh = [text for text in vocabulary if text not in self._known_tokens]
        if not fresh:
            return
        known = {
            row[0]
            for row in self.connection.execute(
                "SELECT variant FROM vocab WHERE variant IN (SELECT value FROM json_each(?)) "
                "AND text = variant",
                (json.dumps(fresh),),
            )
        }
        rows = [(v, text) for text in fresh if text not in known for v in deletions(text)]
        if rows:
            self.connection.executemany(
                "INSERT OR IGNORE INTO vocab (variant, text) VALUES (?, ?)", rows
            )
        if len(self._known_tokens) > 200_000:
            self._known_tokens.clear()
        self._known_tokens.update(fresh)

    def _add_document(self, entry_id: str, entry: dict[str, Any]) -> None:
        self.connection.execute(
            "INSERT INTO documents (nkey, state, entry_id, number, document_type, status, "
            "list_id, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            self._document_row(entry_id, entry),
        )

    def _document_row(self, entry_id: str, entry: dict[str, Any]) -> tuple[Any, ...]:
        return (
            document_key(entry["number"]),
            state_code(entry["issuing_state"]),
            entry_id,
            entry["number"],
            entry.get("document_type"),
            _STATUS_CODE[entry["status"]],
            self._list_id(entry["list"]),
            _ACTION_CODE[entry["action"]],
        )

    # -- reading ----------------------------------------------------------------------------

    def contains(self, kind: str, entry_id: str) -> bool:
        table = "persons" if kind == "person" else "documents"
        sql = f"SELECT 1 FROM {table} WHERE entry_id = ?"
        return self.connection.execute(sql, (entry_id,)).fetchone() is not None

    def get(self, kind: str, entry_id: str) -> dict[str, Any] | None:
        """The entry as the wire carries it, or ``None``."""
        if kind == "person":
            row = self.connection.execute(
                "SELECT names, birth_date, nationality, sex, list_id, category, action "
                "FROM persons WHERE entry_id = ?",
                (entry_id,),
            ).fetchone()
            return self._person_entry(row) if row else None
        row = self.connection.execute(
            "SELECT number, state, document_type, status, list_id, action FROM documents "
            "WHERE entry_id = ?",
            (entry_id,),
        ).fetchone()
        return self._document_entry(row) if row else None

    def _person_entry(self, row: tuple[Any, ...]) -> dict[str, Any]:
        names, birth_date, nationality, sex, list_id, category, action = row
        entry: dict[str, Any] = {"names": json.loads(names)}
        if birth_date:
            entry["birth_date"] = birth_date
        if nationality:
            entry["nationality"] = nationality.split()
        if sex:
            entry["sex"] = sex
        entry |= {"list": self.list_name(list_id), "category": category, "action": action}
        return entry

    def _document_entry(self, row: tuple[Any, ...]) -> dict[str, Any]:
        number, state, document_type, status, list_id, action = row
        entry: dict[str, Any] = {"number": number, "issuing_state": state}
        if document_type:
            entry["document_type"] = document_type
        entry |= {
            "status": STATUSES[status],
            "list": self.list_name(list_id),
            "action": ACTIONS[action],
        }
        return entry

    def entries(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Every entry as ``(kind, entry_id, entry)``, documents then persons, by entry id."""
        for row in self.connection.execute(
            "SELECT entry_id, number, state, document_type, status, list_id, action "
            "FROM documents ORDER BY entry_id"
        ):
            yield "document", row[0], self._document_entry(row[1:])
        for row in self.connection.execute(
            "SELECT entry_id, names, birth_date, nationality, sex, list_id, category, action "
            "FROM persons ORDER BY entry_id"
        ):
            yield "person", row[0], self._person_entry(row[1:])

    # -- maintenance --------------------------------------------------------------------------

    def reindex(self) -> int:
        """Rebuild the blocking index and vocabulary from the stored entries (after an upgrade)."""
        with self.transaction():
            for table in ("person_keys", "vocab", "vocab_tokens"):
                self.connection.execute(f"DELETE FROM {table}")
            self._known_tokens.clear()
            count = 0
            for pid, names, birth_date in self._persons_in_batches():
                index = index_person(json.loads(names))
                self.connection.execute(
                    "UPDATE persons SET stored = ? WHERE pid = ?", (index.stored, pid)
                )
                self.connection.executemany(
                    "INSERT INTO person_keys (key, bdate, pid) VALUES (?, ?, ?)",
                    [(key, date_number(birth_date), pid) for key in index.keys],
                )
                self._learn(index.vocabulary, person_tokens(index.stored))
                count += 1
            self._set_meta("index_format", INDEX_FORMAT)
        return count

    def _persons_in_batches(self, size: int = 2000) -> Iterator[tuple[int, str, str | None]]:
        last = 0
        while True:
            rows = self.connection.execute(
                "SELECT pid, names, birth_date FROM persons WHERE pid > ? ORDER BY pid LIMIT ?",
                (last, size),
            ).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]


LOAD_BATCH = 5000
"""Entries a :class:`Loader` writes with one statement."""
LOAD_CACHE_MIB = 128
"""SQLite's page cache while a :class:`Loader` loads, at least (the persons' entry-id index
and the vocabulary take inserts all over them; the sorts of a bulk load use as much)."""
INDEX_CACHE = 100_000
"""Persons' names whose index a :class:`Loader` keeps (about 60 MB; emptied when full): names
repeat, and a third of the benchmark's 1,050,000 persons have the names of one before."""


class _Memo(dict[str, Any]):
    """A dictionary that computes a missing value once: a C-speed lookup in a loop."""

    def __init__(self, compute: Any) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key: str) -> Any:
        value = self[key] = self.compute(key)
        return value


KEYS_CHUNK = 100_000
"""Sorted index keys a :class:`Loader` writes with one statement (as Python objects)."""


def _key_columns() -> tuple[array[int], array[int], array[int], array[int]]:
    """Empty columns for staged index keys: every key (up to 62 bits); and per person, how
    many keys, the birth date (as ``bdate``) and the person id."""
    return array("q"), array("q"), array("i"), array("q")


class Loader:
    """Puts many entries into a store in few statements: what an import uses.

    Made by :meth:`WatchlistStore.loader`, which begins the transaction; :meth:`finish`
    commits, :meth:`abort` rolls back. Entries go in file order: a later entry with an id
    already seen replaces the earlier one, as :meth:`WatchlistStore.upsert` does.

    A table that is empty when the load begins is bulk-loaded. Documents are staged in a
    temporary table and go in at :meth:`finish` sorted by their primary key, the unique
    index on entry ids built after them (ten million rows put in key order and one index
    sort, instead of ten million inserts at random places of two B-trees). Persons go in by
    the thousand with the person ids SQLite would give them; their index keys are kept in
    three compact arrays (16 bytes a key) and put in at :meth:`finish` in key order, sorted
    by numpy (SQLite's sort of the same eight million rows, staged in a temporary table, was
    a third of the persons' import); their tokens are counted in memory; a person's index
    (:func:`~mqtt_schemas.name_matching.index_names`, no unit objects made) is computed once
    per distinct names (:data:`INDEX_CACHE`). A bulk load is one transaction: a crash
    or an error leaves the store as it was, never persons whose keys are not written yet.

    Into a table that already holds entries, persons go as :meth:`WatchlistStore.upsert`
    puts them and documents by :data:`LOAD_BATCH`, committed every *commit_every* entries
    (as before; readers see the import grow).

    Either way the rows are those the entries put one by one would make: the same person
    ids, index keys, vocabulary and counts (``tests/test_watchlist_load.py`` compares).
    """

    def __init__(self, store: WatchlistStore, commit_every: int) -> None:
        self.store = store
        self.commit_every = commit_every
        self.replaced = 0
        """Entries that replaced one with the same id (known after :meth:`finish`)."""
        self._sql = store.connection
        self._since_commit = 0
        self._persons: list[tuple[str, dict[str, Any], int]] = []
        self._person_ids: set[str] = set()
        self._documents: list[tuple[Any, ...]] = []
        self._staged_documents = 0
        self._tokens: Counter[str] = Counter()
        self._texts: set[str] = set()  # vocabulary texts given their variants in this load
        # The index keys of the persons loaded, put in at the end sorted by numpy: sorting
        # eight million rows in SQLite (staged in a temporary table, spilled to its files)
        # took a quarter of a million persons' import.
        self._keys = _key_columns()
        # names (as stored, JSON) -> index_names(names); emptied when full (names repeat at
        # random across a list: as many hits as a least-recently-used cache, for less work)
        self._index: dict[str, tuple[str, tuple[int, ...], tuple[str, ...], tuple[str, ...]]]
        self._index = {}
        self._states = _Memo(state_code)
        self._dates = _Memo(date_number)
        self._lists = _Memo(store._list_id)
        (self._cache_size,) = self._sql.execute("PRAGMA cache_size").fetchone()
        if -1024 * LOAD_CACHE_MIB < self._cache_size < 0:  # negative: KiB, as we set it
            self._sql.execute(f"PRAGMA cache_size = {-1024 * LOAD_CACHE_MIB}")
        store.begin()
        try:
            self.bulk_persons = self._empty("persons")
            self.bulk_documents = self._empty("documents")
            if self.bulk_persons:
                self._sql.execute("CREATE TEMP TABLE staged_vocab (variant, text)")
                self._next_pid = 1 + (
                    self._sql.execute("SELECT max(pid) FROM persons").fetchone()[0] or 0
                )
            if self.bulk_documents:
                self._sql.execute("DROP INDEX documents_entry")
                self._sql.execute(
                    "CREATE TEMP TABLE staged_documents (nkey, state, entry_id, number, "
                    "document_type, status, list_id, action)"
                )
        except BaseException:
            self.abort()
            raise

    def _empty(self, table: str) -> bool:
        return self._sql.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None

    # -- entries ------------------------------------------------------------------------------

    def person(self, entry_id: str, entry: dict[str, Any]) -> None:
        """Add or replace a person (a valid entry, as :func:`entry_from_record` gives it)."""
        if not self.bulk_persons:
            self.replaced += not self.store.upsert("person", entry_id, entry)
            self._written(1)
            return
        if entry_id in self._person_ids:
            self._flush_persons()  # the second one then finds the first in the table
        self._person_ids.add(entry_id)
        # The list id now, in file order, as an entry added at once gets it.
        self._persons.append((entry_id, entry, self.store._list_id(entry["list"])))
        if len(self._persons) >= LOAD_BATCH:
            self._flush_persons()

    def document(self, entry_id: str, entry: dict[str, Any]) -> None:
        """Add or replace a document (a valid entry)."""
        self._documents.append(self.store._document_row(entry_id, entry))
        if len(self._documents) >= LOAD_BATCH:
            self._flush_documents()

    def documents(self, rows: list[DocumentRow]) -> None:
        """Add or replace documents given as :data:`~mqtt_schemas.list_formats.DocumentRow`."""
        states, lists = self._states, self._lists
        self._documents += [
            (
                number.translate(_FOLD),  # document_key(number)
                states[state],
                entry_id,
                number,
                kind,
                _STATUS_CODE[status],
                lists[name],
                _ACTION_CODE[action],
            )
            for entry_id, number, state, kind, status, name, action in rows
        ]
        if len(self._documents) >= LOAD_BATCH:
            self._flush_documents()

    def finish(self) -> None:
        """Write what waits, build what was deferred, and commit."""
        try:
            self._flush_persons()
            self._flush_documents()
            if self.bulk_persons:
                self._settle_persons()
                self._sql.execute("DROP TABLE temp.staged_vocab")
            if self.bulk_documents:
                self._load_documents()
        except BaseException:
            self.abort()
            raise
        self.store.commit()
        self._sql.execute(f"PRAGMA cache_size = {self._cache_size}")

    def abort(self) -> None:
        """Roll back (a bulk load: everything; else what was not committed yet)."""
        self.store.rollback()
        self._sql.execute(f"PRAGMA cache_size = {self._cache_size}")

    # -- writing ------------------------------------------------------------------------------

    def _written(self, count: int) -> None:
        if self.bulk_persons or self.bulk_documents:
            return
        self._since_commit += count
        if self._since_commit >= self.commit_every:
            self.store.commit()
            self.store.begin()
            self._since_commit = 0

    def _flush_documents(self) -> None:
        rows, self._documents = self._documents, []
        if not rows:
            return
        if self.bulk_documents:
            self._sql.executemany(
                "INSERT INTO staged_documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            self._staged_documents += len(rows)
            return
        self.replaced += len(rows) - self.store._upsert_document_rows(rows)
        self._written(len(rows))

    def _flush_persons(self) -> None:
        persons, self._persons, self._person_ids = self._persons, [], set()
        if not persons:
            return
        rows = []
        keys, counts, bdates, pids = self._keys
        staged = [len(column) for column in self._keys]
        dates = self._dates
        vocabulary: set[str] = set()
        tokens: Counter[str] = Counter()
        pid = self._next_pid
        for entry_id, entry, list_id in persons:
            names = _names_json(entry["names"])
            found = self._index.get(names)
            if found is None:
                if len(self._index) >= INDEX_CACHE:
                    self._index.clear()
                found = self._index[names] = index_names(entry["names"])
            stored, person_keys, texts, counted = found
            birth_date = entry.get("birth_date")
            rows.append(
                (
                    pid,
                    entry_id,
                    names,
                    stored,
                    birth_date,
                    " ".join(entry.get("nationality", ())) or None,
                    entry.get("sex"),
                    list_id,
                    entry["category"],
                    entry["action"],
                )
            )
            keys.extend(person_keys)
            counts.append(len(person_keys))
            bdates.append(dates[birth_date])
            pids.append(pid)
            vocabulary.update(texts)
            tokens.update(counted)
            pid += 1
        self._sql.execute("SAVEPOINT persons")
        try:
            self._sql.executemany(
                "INSERT INTO persons (pid, entry_id, names, stored, birth_date, nationality, "
                "sex, list_id, category, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except sqlite3.IntegrityError:
            # One of them is in the store already: these go one by one, as upsert puts them,
            # on an index made whole first (upsert removes the old one's keys and counts).
            self._sql.execute("ROLLBACK TO persons")
            self._sql.execute("RELEASE persons")
            for column, length in zip(self._keys, staged, strict=True):
                del column[length:]
            self._settle_persons()
            for entry_id, entry, _ in persons:
                self.replaced += not self.store.upsert("person", entry_id, entry)
            self._next_pid = 1 + self._sql.execute("SELECT max(pid) FROM persons").fetchone()[0]
            return
        self._sql.execute("RELEASE persons")
        fresh = vocabulary - self._texts
        self._texts |= fresh
        self._sql.executemany(
            "INSERT INTO staged_vocab VALUES (?, ?)",
            [(variant, text) for text in fresh for variant in deletions(text)],
        )
        self._tokens.update(tokens)
        self.store._count("person", len(rows))
        self._next_pid = pid

    def _settle_persons(self) -> None:
        """Put the staged index keys, fuzzy variants and token counts into their tables (the
        variants of a text already there are there: ignored, as _learn_texts skips them)."""
        keys, counts, dates, persons = (np.frombuffer(c, c.typecode) for c in self._keys)
        bdates, pids = np.repeat(dates, counts), np.repeat(persons, counts)
        order = np.lexsort((pids, bdates, keys))  # the last is the first sort key
        for start in range(0, len(order), KEYS_CHUNK):
            chunk = order[start : start + KEYS_CHUNK]
            self._sql.executemany(
                "INSERT INTO person_keys (key, bdate, pid) VALUES (?, ?, ?)",
                zip(*(column[chunk].tolist() for column in (keys, bdates, pids)), strict=True),
            )
        del keys, counts, dates, persons, bdates, pids, order
        self._keys = _key_columns()
        self._sql.execute(
            "INSERT OR IGNORE INTO vocab (variant, text) "
            "SELECT variant, text FROM staged_vocab ORDER BY variant, text"
        )
        self._sql.execute("DELETE FROM staged_vocab")
        self._sql.executemany(
            "INSERT INTO vocab_tokens (token, persons) VALUES (?, ?) "
            "ON CONFLICT (token) DO UPDATE SET persons = persons + excluded.persons",
            self._tokens.items(),
        )
        self._tokens.clear()

    def _load_documents(self) -> None:
        """The staged documents into their table in key order, then the entry id index."""
        columns = "nkey, state, entry_id, number, document_type, status, list_id, action"
        # Of rows with the same key, the last staged replaces the others.
        self._sql.execute(
            f"INSERT OR REPLACE INTO documents ({columns}) SELECT {columns} "
            "FROM staged_documents ORDER BY nkey, state, entry_id, rowid"
        )
        try:
            self._sql.execute(_DOCUMENTS_ENTRY)
        except sqlite3.IntegrityError:
            # An id came again with another number or state: its last row stays.
            again = "SELECT entry_id FROM staged_documents GROUP BY entry_id HAVING count(*) > 1"
            self._sql.execute(f"DELETE FROM documents WHERE entry_id IN ({again})")
            self._sql.execute(
                f"INSERT INTO documents ({columns}) SELECT {columns} FROM staged_documents "
                "WHERE rowid IN (SELECT max(rowid) FROM staged_documents GROUP BY entry_id "
                "HAVING count(*) > 1)"
            )
            self._sql.execute(_DOCUMENTS_ENTRY)
        (count,) = self._sql.execute("SELECT count(*) FROM documents").fetchone()
        self._sql.execute("DROP TABLE temp.staged_documents")
        self.replaced += self._staged_documents - count
        self.store._count("document", count)
