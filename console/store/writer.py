"""The console's write side: one committed batch of classified messages at a time.

::

    store = Store.open("console.db")            # or "postgresql://…"
    outcome = store.apply(items, node_id="console-1", received_at=utc_now())

Idempotence: a record whose id is already stored, with the same content, is a redelivery; it is
acked again and costs nothing. A record whose id is stored with *different* content (a kiosk bug,
or another kiosk reusing an id) never replaces the stored one: it goes to quarantine and the kiosk
that sent it is told, under ``rejected``, so it can purge it. Rows are inserted with ``ON
CONFLICT DO NOTHING ... RETURNING id``, so two workers racing with the same record (a kiosk's
republication dealt to both) store it once, and the one that lost compares contents as above.

``received_at`` is when the console committed the batch (at most the batch delay after receipt);
``time`` is the kiosk's own, never rewritten. Tables: :mod:`console.store.schema`.

Durability: a commit is on disk before the kiosk is acked and may purge its copy (SQLite
``synchronous = FULL``; PostgreSQL's default ``synchronous_commit``); batching keeps that to
one flush per batch. Several workers may write at once (:mod:`console.store.database`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

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
    from_revoked_device,
    rejection_reason,
)
from .database import StoreError, open_database, retrying
from .schema import (
    RECORD_TABLES,
    RecordTable,
    availability_log,
    command_results,
    console_nodes,
    crossing_count_key,
    crossing_counts,
    device_certificates,
    devices,
    heartbeat_row,
    heartbeats,
    quarantine,
)

__all__ = ["Outcome", "Store", "StoreError", "upsert"]

_LOOKUP_CHUNK = 500

log = logging.getLogger("borderlane.console.store")


def upsert(conn: Connection, table: Table) -> Any:
    """``INSERT`` for *table* with the ``ON CONFLICT`` clauses of the connection's dialect
    (SQLite and PostgreSQL spell them the same; SQLAlchemy has one construct per dialect)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


_UNNESTED_INSERTS: dict[str, str] = {}


def _insert_unnested(conn: Connection, table: Table, columns: dict[str, list[Any]]) -> set[str]:
    """PostgreSQL: ``INSERT … ON CONFLICT (id) DO NOTHING RETURNING id`` of the rows given
    as one list per column (*columns*, in the table's column order), sent as one array per
    column (``SELECT * FROM unnest(…)``); the ids this statement inserted.

    The same statement text for every batch, so psycopg parses it once and the server plans it
    once, and the arrays go in binary (``%(name)b``), so the JSON payloads are not escaped.
    SQLAlchemy's multi-row ``VALUES`` has 15 placeholders per crossing that psycopg parses again
    in Python for every batch: ~100 µs of the worker's CPU per crossing stored in batches of
    500, ~19 µs like this (SQLite's ``executemany``: ~21 µs). The statement runs on the
    connection's own psycopg cursor, in the transaction of *conn*: SQLAlchemy's result rows
    for the 500 returned ids cost more than the insert's own Python work.
    """
    statement = _UNNESTED_INSERTS.get(table.name)
    if statement is None:
        preparer = conn.dialect.identifier_preparer
        names = ", ".join(preparer.quote(column.name) for column in table.columns)
        arrays = ", ".join(
            f"%({column.name})b::{column.type.compile(conn.dialect)}[]" for column in table.columns
        )
        statement = _UNNESTED_INSERTS[table.name] = (
            f"INSERT INTO {preparer.format_table(table)} ({names}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({preparer.quote('id')}) DO NOTHING RETURNING {preparer.quote('id')}"
        )
    with conn.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(statement, columns)
        return {row[0] for row in cursor.fetchall()}


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

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, target: str | os.PathLike[str]) -> Store:
        """The store of the console database at *target* (a SQLite path or a URL)."""
        return cls(open_database(target))

    def close(self) -> None:
        self.engine.dispose()

    def apply(self, items: Sequence[Item], node_id: str, received_at: str) -> Outcome:
        """Store *items* in one transaction; reserve the ack sequence numbers in it too."""
        return retrying(self.engine, lambda conn: _Batch(conn, received_at).apply(items, node_id))


class _Batch:
    """One transaction's work; made anew when PostgreSQL has the transaction redone."""

    def __init__(self, conn: Connection, received_at: str) -> None:
        self.conn = conn
        self.received_at = received_at
        self.outcome = Outcome()

    def apply(self, items: Sequence[Item], node_id: str) -> Outcome:
        conn, received_at, outcome = self.conn, self.received_at, self.outcome
        by_channel: dict[str, list[Record]] = {}
        seen: dict[str, str] = {}
        revoked = self._revoked(items)
        for item in items:
            device = getattr(item, "device_id", None)
            if device in revoked and not isinstance(item, (Quarantined, Cleared)):
                item = from_revoked_device(item, revoked[device])
            if isinstance(item, Record):
                by_channel.setdefault(item.channel, []).append(item)
                seen[item.device_id] = received_at
            elif isinstance(item, Availability):
                self._availability(item)
            elif isinstance(item, Health):
                self._health(item)
            elif isinstance(item, CommandResult):
                self._command_result(item)
                seen[item.device_id] = received_at
            elif isinstance(item, Cleared):
                log.info("retained availability of %s cleared at the broker", item.device_id)
            else:
                self._quarantine(item)
        for channel, records in by_channel.items():
            self._records(RECORD_TABLES[channel], records)
        if seen:
            # In device id order: workers of a share group lock the same rows in one order.
            statement = upsert(conn, devices)
            statement = statement.on_conflict_do_update(
                index_elements=[devices.c.device_id],
                set_={"last_seen_at": statement.excluded.last_seen_at},
            )
            conn.execute(
                statement,
                [{"device_id": d, "last_seen_at": seen[d]} for d in sorted(seen)],
            )
        count = ackmod.payload_count(outcome.acks)
        if count:
            statement = upsert(conn, console_nodes).values(node_id=node_id, seq=count)
            statement = statement.on_conflict_do_update(
                index_elements=[console_nodes.c.node_id],
                set_={"seq": console_nodes.c.seq + statement.excluded.seq},
            ).returning(console_nodes.c.seq)
            last = conn.execute(statement).scalar_one()
            outcome.ack_seqs = range(last - count + 1, last + 1)
        return outcome

    def _revoked(self, items: Sequence[Item]) -> dict[str, str]:
        """The kiosks among *items*' whose every certificate is revoked, with the last
        revocation's time: what they still had in flight is refused (one indexed query)."""
        kiosks = {getattr(item, "device_id", None) for item in items} - {None}
        if not kiosks:
            return {}
        table = device_certificates
        rows = self.conn.execute(
            select(table.c.device_id, func.max(table.c.revoked_at))
            .where(table.c.device_id.in_(sorted(kiosks)))
            .group_by(table.c.device_id)
            .having(func.count(table.c.revoked_at) == func.count())
        )
        return {device: revoked_at for device, revoked_at in rows}

    # -- records --------------------------------------------------------------------------

    def _records(self, table: RecordTable, records: list[Record]) -> None:
        """Insert first, look only at the ids that were already there: in the common case (new
        records) one statement per batch, with no lookup before it."""
        outcome = self.outcome
        first: dict[str, Record] = {}
        again: list[Record] = []  # an id twice in one batch: settled against what is stored
        for record in records:
            if record.id in first:
                again.append(record)
            else:
                first[record.id] = record
        if self.conn.dialect.name == "postgresql":
            columns = table.columns(first.values(), self.received_at)
            inserted = _insert_unnested(self.conn, table.table, columns)
        else:
            rows = [table.row(record, self.received_at) for record in first.values()]
            statement: Insert = upsert(self.conn, table.table).on_conflict_do_nothing(
                index_elements=[table.table.c.id]
            )
            inserted = set(
                self.conn.execute(statement.returning(table.table.c.id), rows).scalars().all()
            )
        outcome.stored += len(inserted)
        if table.name == "crossings" and inserted:
            self._count([record for rid, record in first.items() if rid in inserted])
        if table.keys is not None and inserted:  # search keys of the records stored now
            keys_table, key_rows = table.keys
            keys = [
                row for rid, record in first.items() if rid in inserted for row in key_rows(record)
            ]
            if keys:
                self.conn.execute(insert(keys_table), keys)
        # Stored before (a republication), or by another worker since our transaction began
        # (PostgreSQL waits for its commit): the stored record is kept, ours compared with it.
        existing = [record_id for record_id in first if record_id not in inserted]
        stored = self._stored_payloads(table.table, existing) if existing else {}
        for record_id, record in first.items():
            if record_id in inserted:
                outcome.device(record.device_id).ack(record_id)
            else:
                self._settle_existing(record, stored[record_id])
        for record in again:
            kept = first[record.id].text if record.id in inserted else stored[record.id]
            self._settle_existing(record, kept)

    def _count(self, stored: list[Record]) -> None:
        """Add the crossings stored now to ``crossing_counts`` (in this transaction, so the
        counts are exactly the stored crossings, redeliveries never counted twice)."""
        added = Counter(crossing_count_key(record) for record in stored)
        statement = upsert(self.conn, crossing_counts)
        statement = statement.on_conflict_do_update(
            index_elements=[
                crossing_counts.c.site,
                crossing_counts.c.day,
                crossing_counts.c.direction,
                crossing_counts.c.outcome,
            ],
            set_={"count": crossing_counts.c.count + statement.excluded.count},
        )
        rows = [
            {"site": site, "day": day, "direction": direction, "outcome": result, "count": n}
            # in key order: workers of a share group update the same rows in one order
            for (site, day, direction, result), n in sorted(added.items())
        ]
        self.conn.execute(statement, rows)

    def _settle_existing(self, record: Record, previous: str) -> None:
        """*record*'s id is stored already: a redelivery (ack again) or a conflict (quarantine)."""
        if _same_content(previous, record):
            self.outcome.duplicates += 1
            self.outcome.device(record.device_id).ack(record.id)
            return
        self._quarantine(
            Quarantined(
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
        )

    def _stored_payloads(self, table: Table, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        found: dict[str, str] = {}
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            query = select(table.c.id, table.c.payload).where(table.c.id.in_(chunk))
            found.update(self.conn.execute(query).tuples().all())
        return found

    # -- quarantine -----------------------------------------------------------------------

    def _quarantine(self, item: Quarantined) -> None:
        digest = hashlib.sha256(item.topic.encode() + b"\0" + item.raw).hexdigest()
        statement = upsert(self.conn, quarantine).values(
            digest=digest,
            received_at=self.received_at,
            last_received_at=self.received_at,
            times=1,
            topic=item.topic,
            device_id=item.device_id,
            record_id=item.record_id,
            reason=item.reason,
            path=item.path,
            payload=item.raw,
        )
        self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=[quarantine.c.digest],
                set_={
                    "times": quarantine.c.times + 1,
                    "last_received_at": statement.excluded.received_at,
                },
            )
        )
        self.outcome.quarantined += 1
        log.warning("quarantined %s from %s: %s", item.record_id or "-", item.topic, item.reason)
        if item.is_record and item.device_id and item.record_id:
            self.outcome.device(item.device_id).reject(item.record_id, rejection_reason(item))

    # -- device state ---------------------------------------------------------------------

    def _device(self, device_id: str) -> Any:
        query = select(
            devices.c.state, devices.c.session, devices.c.health_seq, devices.c.health_session
        ).where(devices.c.device_id == device_id)
        return self.conn.execute(query).first()

    def _availability(self, item: Availability) -> None:
        """Apply a birth or an offline with the stale-will rule (mqtt-schemas/topics.md)."""
        conn, received_at = self.conn, self.received_at
        logged = conn.execute(
            upsert(conn, availability_log)
            .values(
                id=item.id,
                device_id=item.device_id,
                state=item.state,
                session=item.session,
                reason=item.reason,
                time=item.time,
                received_at=received_at,
                applied=0,
                payload=item.text,
            )
            .on_conflict_do_nothing(index_elements=[availability_log.c.id])
        )
        if logged.rowcount == 0:
            return  # seen before: a retained copy, a redelivery, or another worker's
        current = self._device(item.device_id)
        if item.state == "online":
            values = {
                "state": "online",
                "session": item.session,
                "agent_version": item.agent_version,
                "state_time": item.time,
                "last_birth_at": received_at,
                "offline_reason": None,
                "last_seen_at": received_at,
            }
        elif current is None or current.session is None or current.session == item.session:
            values = {
                "state": "offline",
                "session": item.session,
                "state_time": item.time,
                "last_offline_at": received_at,
                "offline_reason": item.reason,
            }
        else:
            self.outcome.stale_offlines += 1
            log.info(
                "ignored a stale offline of %s: session %s, current session %s",
                item.device_id,
                item.session,
                current.session,
            )
            return
        statement = upsert(conn, devices).values(device_id=item.device_id, **values)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[devices.c.device_id],
                set_={name: statement.excluded[name] for name in values},
            )
        )
        conn.execute(
            update(availability_log).where(availability_log.c.id == item.id).values(applied=1)
        )

    def _health(self, item: Health) -> None:
        """Keep the latest heartbeat, and every heartbeat in the history (once, by id); a
        heartbeat of a newer session proves an offline stale."""
        conn, received_at = self.conn, self.received_at
        conn.execute(
            upsert(conn, heartbeats)
            .values(heartbeat_row(item.id, item.device_id, item.text, received_at))
            .on_conflict_do_nothing(index_elements=[heartbeats.c.id])
        )
        current = self._device(item.device_id)
        heartbeat = {
            "health": item.text,
            "health_time": item.time,
            "health_seq": item.seq,
            "health_session": item.session,
            "health_received_at": received_at,
            "last_seen_at": received_at,
        }
        if current is None:
            first = conn.execute(
                upsert(conn, devices)
                .values(device_id=item.device_id, state="online", session=item.session, **heartbeat)
                .on_conflict_do_nothing(index_elements=[devices.c.device_id])
            )
            if first.rowcount:
                return
            current = self._device(item.device_id)  # another worker made the row meanwhile
        # Heartbeats of one connection can be reordered across workers of a share group; a
        # heartbeat of another session (a reconnect, or a kiosk whose counters restarted) wins.
        if (
            current.health_seq is None
            or item.session != current.health_session
            or item.seq > current.health_seq
        ):
            conn.execute(
                update(devices).where(devices.c.device_id == item.device_id).values(**heartbeat)
            )
        if current.session is None or item.session > current.session:
            conn.execute(
                update(devices)
                .where(devices.c.device_id == item.device_id)
                .values(state="online", session=item.session, offline_reason=None)
            )

    def _command_result(self, item: CommandResult) -> None:
        self.conn.execute(
            upsert(self.conn, command_results)
            .values(
                id=item.id,
                device_id=item.device_id,
                command_id=item.command_id,
                status=item.status,
                time=item.time,
                received_at=self.received_at,
                payload=item.text,
            )
            .on_conflict_do_nothing(index_elements=[command_results.c.id])
        )


def _same_content(stored_text: str, record: Record) -> bool:
    """Whether a stored payload is the same record (byte-equal, or equal as JSON)."""
    if stored_text == record.text:
        return True
    try:
        return json.loads(stored_text) == record.payload
    except json.JSONDecodeError:
        return False
