"""The console's database: SQLite in WAL mode, created and read through sqlite-utils.

Tables (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`):

``crossings``, ``hits``, ``decisions``
    One row per record id (the primary key), with the fields the console filters and counts on
    and ``payload``, the record exactly as received. Hits and decisions can arrive before their
    crossing; they are stored anyway and joined on ``crossing_id`` when read.
``quarantine``
    Every message the console could not accept, never dropped: when it came, its topic, the
    device (when the topic names one), the record id (when it has one), the reason with the
    failing field's JSON Pointer, and the raw payload bytes. A message received again (a kiosk
    republishing an unacked record) adds to ``times`` instead of adding a row.
``devices``
    One row per kiosk: availability (``state``, the current ``session``, last birth and offline,
    with the reason), the latest heartbeat (``health``) and when the kiosk was last heard from.
``availability_log``
    Every availability message once (by id) and whether it was applied: a stale will is logged
    there with ``applied = 0``.
``command_results``
    Kiosks' answers to commands, by id.
``console_nodes``
    The sequence counter of each console node id, for the payloads the console publishes.

Idempotence: a record whose id is already stored, with the same content, is a redelivery; it is
acked again and costs nothing. A record whose id is stored with *different* content (a kiosk bug,
or another kiosk reusing an id) never replaces the stored one: it goes to quarantine and the kiosk
that sent it is told, under ``rejected``, so it can purge it.

``received_at`` is when the console committed the batch (at most the batch delay after receipt);
``time`` is the kiosk's own, never rewritten.

Durability: ``synchronous = FULL``, so a commit is on disk before the kiosk is acked and may purge
its copy; batching keeps that to one fsync per batch. Writers take the write lock up front
(``BEGIN IMMEDIATE``) and wait up to 10 s for it, so several ingest workers may share the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from mqtt_schemas import topics

from .. import acks as ackmod
from ..records import (
    Availability,
    Cleared,
    CommandResult,
    Health,
    Item,
    Quarantined,
    Record,
    rejection_reason,
)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
_LOOKUP_CHUNK = 500

log = logging.getLogger("borderlane.console.store")


class StoreError(Exception):
    """The database is missing, is not a console database, or cannot be opened."""


Column = tuple[type, Callable[[Record], Any]]
"""A record table's column: its type, and how a record gives its value."""


def _field(*path: str) -> Callable[[Record], Any]:
    """The value at *path* in the record's payload."""

    def get(record: Record) -> Any:
        value: Any = record.payload
        for key in path:
            value = value[key]
        return value

    return get


def _device(record: Record) -> str:
    return record.device_id


@dataclass(frozen=True)
class _RecordTable:
    """A table of one record channel: ``id`` first, then *fields*, then ``received_at`` and
    ``payload`` (the record as received)."""

    name: str
    fields: dict[str, Column]
    indexes: tuple[tuple[str, ...], ...]

    @property
    def columns(self) -> dict[str, type]:
        middle = {name: kind for name, (kind, _) in self.fields.items()}
        return {"id": str, **middle, "received_at": str, "payload": str}

    @property
    def insert_sql(self) -> str:
        names = ", ".join(self.columns)
        marks = ", ".join("?" * len(self.columns))
        return f"INSERT OR IGNORE INTO {self.name} ({names}) VALUES ({marks})"

    def row(self, record: Record, received_at: str) -> tuple[Any, ...]:
        values = (get(record) for _, get in self.fields.values())
        return (record.id, *values, received_at, record.text)


RECORD_TABLES: dict[str, _RecordTable] = {
    "crossings": _RecordTable(
        "crossings",
        {
            "device_id": (str, _device),
            "seq": (int, _field("seq")),
            "time": (str, _field("time")),
            "day": (str, lambda record: record.payload["time"][:10]),
            "site": (str, _field("site")),
            "lane": (str, _field("lane")),
            "direction": (str, _field("direction")),
            "outcome": (str, _field("decision", "outcome")),
            "watchlist_version": (int, _field("screening", "watchlist_version")),
            "hit_count": (int, _field("screening", "hit_count")),
            "document_kind": (str, _field("document", "kind")),
            "clock_synced": (int, lambda record: 1 if record.payload["clock"]["synced"] else 0),
        },
        (("site", "day", "outcome"), ("day",), ("time",), ("device_id", "seq")),
    ),
    "hits": _RecordTable(
        "hits",
        {
            "crossing_id": (str, _field("crossing_id")),
            "device_id": (str, _device),
            "seq": (int, _field("seq")),
            "time": (str, _field("time")),
            "site": (str, _field("site")),
            "lane": (str, _field("lane")),
            "watchlist_version": (int, _field("watchlist_version")),
        },
        (("crossing_id",), ("site", "time"), ("device_id", "seq")),
    ),
    "decisions": _RecordTable(
        "decisions",
        {
            "crossing_id": (str, _field("crossing_id")),
            "hit_id": (str, lambda record: record.payload.get("hit_id")),
            "device_id": (str, _device),
            "seq": (int, _field("seq")),
            "time": (str, _field("time")),
            "officer_id": (str, _field("officer_id")),
            "decision": (str, _field("decision")),
            "decided_at": (str, _field("decided_at")),
        },
        (("crossing_id",), ("device_id", "seq")),
    ),
}

_DEVICE_COLUMNS: dict[str, type] = {
    "device_id": str,
    "state": str,
    "session": int,
    "agent_version": str,
    "state_time": str,
    "last_birth_at": str,
    "last_offline_at": str,
    "offline_reason": str,
    "health": str,
    "health_time": str,
    "health_seq": int,
    "health_session": int,
    "health_received_at": str,
    "last_seen_at": str,
}


def create_schema(db: sqlite_utils.Database) -> None:
    """Create every table and index that is missing (idempotent)."""
    for spec in RECORD_TABLES.values():
        db[spec.name].create(spec.columns, pk="id", not_null={"payload"}, if_not_exists=True)
        for columns in spec.indexes:
            db[spec.name].create_index(columns, if_not_exists=True)
    db["quarantine"].create(
        {
            "id": int,
            "digest": str,
            "received_at": str,
            "last_received_at": str,
            "times": int,
            "topic": str,
            "device_id": str,
            "record_id": str,
            "reason": str,
            "path": str,
            "payload": bytes,
        },
        pk="id",
        if_not_exists=True,
    )
    db["quarantine"].create_index(["digest"], unique=True, if_not_exists=True)
    db["quarantine"].create_index(["device_id", "received_at"], if_not_exists=True)
    db["devices"].create(_DEVICE_COLUMNS, pk="device_id", if_not_exists=True)
    db["availability_log"].create(
        {
            "id": str,
            "device_id": str,
            "state": str,
            "session": int,
            "reason": str,
            "time": str,
            "received_at": str,
            "applied": int,
            "payload": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db["availability_log"].create_index(["device_id", "received_at"], if_not_exists=True)
    db["command_results"].create(
        {
            "id": str,
            "device_id": str,
            "command_id": str,
            "status": str,
            "time": str,
            "received_at": str,
            "payload": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db["command_results"].create_index(["command_id"], if_not_exists=True)
    db["console_nodes"].create({"node_id": str, "seq": int}, pk="node_id", if_not_exists=True)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def connect(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) the console database at *path* for writing."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db = sqlite_utils.Database(conn)
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        # Workers may start together on a new file. A CREATE that has read the schema and then
        # needs the write lock gets "database is locked" at once (SQLite will not wait on a
        # possible deadlock); asking for the write lock first makes the others wait their turn.
        conn.execute("BEGIN IMMEDIATE")
        try:
            create_schema(db)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the console database {path}: {exc}") from None
    return db


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch a database to WAL, waiting out other openers as the busy timeout would.

    SQLite answers a journal-mode change that meets another connection's lock with "database
    is locked" at once, without calling the busy handler, so the wait is done here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = wal")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def connect_readonly(path: Path | str) -> sqlite3.Connection:
    """Open an existing console database for reading; :class:`StoreError` says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"no console database at {path}")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.row_factory = sqlite3.Row
        found = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {path}: {exc}") from None
    if "crossings" not in found or "devices" not in found:
        conn.close()
        raise StoreError(f"{path} is not a console database (run borderlane-console ingest)")
    return conn


@dataclass
class Outcome:
    """What one committed batch did, and what to tell the kiosks."""

    acks: dict[str, ackmod.DeviceAcks] = field(default_factory=dict)
    ack_seqs: range = range(0)
    """The console sequence numbers reserved, in the commit, for the ack payloads."""
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    stale_offlines: int = 0

    def device(self, device_id: str) -> ackmod.DeviceAcks:
        found = self.acks.get(device_id)
        if found is None:
            found = self.acks[device_id] = ackmod.DeviceAcks()
        return found


class Store:
    """The write side, used by one ingest worker from one thread at a time."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.conn: sqlite3.Connection = db.conn

    @classmethod
    def open(cls, path: Path | str) -> Store:
        return cls(connect(path))

    def close(self) -> None:
        self.conn.close()

    def apply(self, items: Sequence[Item], node_id: str, received_at: str) -> Outcome:
        """Store *items* in one transaction; reserve the ack sequence numbers in it too."""
        outcome = Outcome()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            by_channel: dict[str, list[Record]] = {}
            seen: dict[str, str] = {}
            for item in items:
                if isinstance(item, Record):
                    by_channel.setdefault(item.channel, []).append(item)
                    seen[item.device_id] = received_at
                elif isinstance(item, Availability):
                    self._availability(item, received_at, outcome)
                elif isinstance(item, Health):
                    self._health(item, received_at)
                elif isinstance(item, CommandResult):
                    self._command_result(item, received_at)
                    seen[item.device_id] = received_at
                elif isinstance(item, Cleared):
                    log.info("retained availability of %s cleared at the broker", item.device_id)
                else:
                    self._quarantine(item, received_at, outcome)
            for channel, records in by_channel.items():
                self._records(RECORD_TABLES[channel], records, received_at, outcome)
            if seen:
                conn.executemany(
                    "INSERT INTO devices (device_id, last_seen_at) VALUES (?, ?) "
                    "ON CONFLICT (device_id) DO UPDATE SET last_seen_at = excluded.last_seen_at",
                    seen.items(),
                )
            count = ackmod.payload_count(outcome.acks)
            if count:
                (last,) = conn.execute(
                    "INSERT INTO console_nodes (node_id, seq) VALUES (?, ?) "
                    "ON CONFLICT (node_id) DO UPDATE SET seq = seq + excluded.seq RETURNING seq",
                    (node_id, count),
                ).fetchall()[0]
                outcome.ack_seqs = range(last - count + 1, last + 1)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return outcome

    # -- records --------------------------------------------------------------------------

    def _records(
        self, table: _RecordTable, records: list[Record], received_at: str, outcome: Outcome
    ) -> None:
        stored = self._stored_payloads(table.name, {r.id for r in records})
        rows = []
        for record in records:
            previous = stored.get(record.id)
            if previous is None:
                stored[record.id] = record.text
                rows.append(table.row(record, received_at))
                outcome.device(record.device_id).ack(record.id)
            elif _same_content(previous, record):
                outcome.duplicates += 1
                outcome.device(record.device_id).ack(record.id)
            else:
                conflict = Quarantined(
                    topic=topics.device_topic(record.device_id, record.channel),
                    raw=record.text.encode(),
                    reason=(
                        f"{record.payload['schema']}: /id: {record.id} is already stored with "
                        "different content; the stored record is kept"
                    ),
                    path="/id",
                    device_id=record.device_id,
                    record_id=record.id,
                    is_record=True,
                )
                self._quarantine(conflict, received_at, outcome)
        if rows:
            self.conn.executemany(table.insert_sql, rows)
            outcome.stored += len(rows)

    def _stored_payloads(self, table: str, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        found: dict[str, str] = {}
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            found.update(
                self.conn.execute(
                    f"SELECT id, payload FROM {table} WHERE id IN ({marks})", chunk
                ).fetchall()
            )
        return found

    # -- quarantine -----------------------------------------------------------------------

    def _quarantine(self, item: Quarantined, received_at: str, outcome: Outcome) -> None:
        digest = hashlib.sha256(item.topic.encode() + b"\0" + item.raw).hexdigest()
        self.conn.execute(
            "INSERT INTO quarantine (digest, received_at, last_received_at, times, topic, "
            "device_id, record_id, reason, path, payload) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (digest) DO UPDATE SET times = times + 1, "
            "last_received_at = excluded.received_at",
            (
                digest,
                received_at,
                received_at,
                item.topic,
                item.device_id,
                item.record_id,
                item.reason,
                item.path,
                item.raw,
            ),
        )
        outcome.quarantined += 1
        log.warning("quarantined %s from %s: %s", item.record_id or "-", item.topic, item.reason)
        if item.is_record and item.device_id and item.record_id:
            outcome.device(item.device_id).reject(item.record_id, rejection_reason(item))

    # -- device state ---------------------------------------------------------------------

    def _device(self, device_id: str) -> sqlite3.Row | None:
        cursor = self.conn.execute(
            "SELECT state, session, health_seq, health_session FROM devices WHERE device_id = ?",
            (device_id,),
        )
        return cursor.fetchone()

    def _availability(self, item: Availability, received_at: str, outcome: Outcome) -> None:
        """Apply a birth or an offline with the stale-will rule (mqtt-schemas/topics.md)."""
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO availability_log (id, device_id, state, session, reason, "
            "time, received_at, applied, payload) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (
                item.id,
                item.device_id,
                item.state,
                item.session,
                item.reason,
                item.time,
                received_at,
                item.text,
            ),
        )
        if cursor.rowcount == 0:
            return  # seen before: a retained copy, a redelivery, or another worker's
        current = self._device(item.device_id)
        if item.state == "online":
            self.conn.execute(
                "INSERT INTO devices (device_id, state, session, agent_version, state_time, "
                "last_birth_at, offline_reason, last_seen_at) "
                "VALUES (?, 'online', ?, ?, ?, ?, NULL, ?) "
                "ON CONFLICT (device_id) DO UPDATE SET state = 'online', "
                "session = excluded.session, agent_version = excluded.agent_version, "
                "state_time = excluded.state_time, last_birth_at = excluded.last_birth_at, "
                "offline_reason = NULL, last_seen_at = excluded.last_seen_at",
                (
                    item.device_id,
                    item.session,
                    item.agent_version,
                    item.time,
                    received_at,
                    received_at,
                ),
            )
        elif current is None or current[1] is None or current[1] == item.session:
            self.conn.execute(
                "INSERT INTO devices (device_id, state, session, state_time, last_offline_at, "
                "offline_reason) VALUES (?, 'offline', ?, ?, ?, ?) "
                "ON CONFLICT (device_id) DO UPDATE SET state = 'offline', "
                "session = excluded.session, state_time = excluded.state_time, "
                "last_offline_at = excluded.last_offline_at, "
                "offline_reason = excluded.offline_reason",
                (item.device_id, item.session, item.time, received_at, item.reason),
            )
        else:
            outcome.stale_offlines += 1
            log.info(
                "ignored a stale offline of %s: session %s, current session %s",
                item.device_id,
                item.session,
                current[1],
            )
            return
        self.conn.execute("UPDATE availability_log SET applied = 1 WHERE id = ?", (item.id,))

    def _health(self, item: Health, received_at: str) -> None:
        """Keep the latest heartbeat; a heartbeat of a newer session proves an offline stale."""
        current = self._device(item.device_id)
        if current is None:
            self.conn.execute(
                "INSERT INTO devices (device_id, state, session, health, health_time, "
                "health_seq, health_session, health_received_at, last_seen_at) "
                "VALUES (?, 'online', ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.device_id,
                    item.session,
                    item.text,
                    item.time,
                    item.seq,
                    item.session,
                    received_at,
                    received_at,
                ),
            )
            return
        _state, session, health_seq, health_session = current
        # Heartbeats of one connection can be reordered across workers of a share group; a
        # heartbeat of another session (a reconnect, or a kiosk whose counters restarted) wins.
        if health_seq is None or item.session != health_session or item.seq > health_seq:
            self.conn.execute(
                "UPDATE devices SET health = ?, health_time = ?, health_seq = ?, "
                "health_session = ?, health_received_at = ?, last_seen_at = ? "
                "WHERE device_id = ?",
                (
                    item.text,
                    item.time,
                    item.seq,
                    item.session,
                    received_at,
                    received_at,
                    item.device_id,
                ),
            )
        if session is None or item.session > session:
            self.conn.execute(
                "UPDATE devices SET state = 'online', session = ?, offline_reason = NULL "
                "WHERE device_id = ?",
                (item.session, item.device_id),
            )

    def _command_result(self, item: CommandResult, received_at: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO command_results (id, device_id, command_id, status, time, "
            "received_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                item.id,
                item.device_id,
                item.command_id,
                item.status,
                item.time,
                received_at,
                item.text,
            ),
        )


def _same_content(stored_text: str, record: Record) -> bool:
    """Whether a stored payload is the same record (byte-equal, or equal as JSON)."""
    if stored_text == record.text:
        return True
    try:
        return json.loads(stored_text) == record.payload
    except json.JSONDecodeError:
        return False
