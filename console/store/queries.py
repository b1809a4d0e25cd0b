"""Read-side queries over the console database, shared by the web app and the export command.

Every function takes a connection from :func:`console.store.connect_readonly` (rows as
``sqlite3.Row``) and returns plain JSON-ready values.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

CROSSING_COLUMNS = (
    "id",
    "device_id",
    "seq",
    "time",
    "site",
    "lane",
    "direction",
    "outcome",
    "watchlist_version",
    "hit_count",
    "document_kind",
    "clock_synced",
    "received_at",
)
"""The flat columns of a crossing (CSV export); ``time`` is the kiosk's, ``received_at`` ours."""

_DEVICE_FIELDS = (
    "device_id",
    "state",
    "session",
    "agent_version",
    "state_time",
    "last_birth_at",
    "last_offline_at",
    "offline_reason",
    "last_seen_at",
    "health_time",
    "health_received_at",
)


def iter_crossings(conn: sqlite3.Connection, columns: tuple[str, ...]) -> Iterator[tuple]:
    """Every stored crossing, by the kiosk's time then id, as tuples of *columns*."""
    unknown = set(columns) - {*CROSSING_COLUMNS, "payload"}
    if unknown:
        raise ValueError(f"unknown crossing columns: {', '.join(sorted(unknown))}")
    cursor = conn.execute(f"SELECT {', '.join(columns)} FROM crossings ORDER BY time, id")
    cursor.row_factory = None  # plain tuples, whatever the connection's factory
    yield from cursor


def _device(row: sqlite3.Row) -> dict[str, Any]:
    found = {name: row[name] for name in _DEVICE_FIELDS}
    found["health"] = json.loads(row["health"]) if row["health"] else None
    return found


def fleet(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every known kiosk with its availability and latest heartbeat, by device id."""
    rows = conn.execute("SELECT * FROM devices ORDER BY device_id")
    return [_device(row) for row in rows]


def device(conn: sqlite3.Connection, device_id: str, history: int = 20) -> dict[str, Any] | None:
    """One kiosk in detail: state, heartbeat, what it sent, its latest availability messages."""
    row = conn.execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)).fetchone()
    if row is None:
        return None
    found = _device(row)
    records: dict[str, Any] = {}
    for table in ("crossings", "hits", "decisions"):
        count, last_seq, last_time = conn.execute(
            f"SELECT count(*), max(seq), max(time) FROM {table} WHERE device_id = ?",
            (device_id,),
        ).fetchone()
        records[table] = {"count": count, "last_seq": last_seq, "last_time": last_time}
    found["records"] = records
    (found["quarantined"],) = conn.execute(
        "SELECT count(*) FROM quarantine WHERE device_id = ?", (device_id,)
    ).fetchone()
    found["availability_log"] = [
        dict(r)
        for r in conn.execute(
            "SELECT id, state, session, reason, time, received_at, applied "
            "FROM availability_log WHERE device_id = ? ORDER BY received_at DESC, rowid DESC "
            "LIMIT ?",
            (device_id, history),
        )
    ]
    return found


def crossing_counts(
    conn: sqlite3.Connection,
    site: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[dict[str, Any]]:
    """Crossings per site, day (the kiosk's UTC date) and decision outcome.

    *since* and *until* are inclusive ``YYYY-MM-DD`` bounds.
    """
    where, params = [], []
    for clause, value in (("site = ?", site), ("day >= ?", since), ("day <= ?", until)):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = "SELECT site, day, outcome, count(*) AS count FROM crossings"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " GROUP BY site, day, outcome ORDER BY site, day, outcome"
    return [dict(row) for row in conn.execute(sql, params)]
