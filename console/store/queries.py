"""Read-side queries over the console database, shared by the web app and the export command.

Every function takes a SQLAlchemy connection (from ``open_database(target, readonly=True)``)
and returns plain JSON-ready values; the same query runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Row, desc, func, select

from .schema import (
    RECORD_TABLES,
    availability_log,
    crossings,
    devices,
    quarantine,
)
from .schema import crossing_counts as counts_table

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
_STREAM_ROWS = 1000


def iter_crossings(conn: Connection, columns: tuple[str, ...]) -> Iterator[tuple]:
    """Every stored crossing, by the kiosk's time then id, as tuples of *columns*.

    Streamed (a server-side cursor on PostgreSQL), so an export of millions of crossings does
    not hold them all in memory.
    """
    unknown = set(columns) - {*CROSSING_COLUMNS, "payload"}
    if unknown:
        raise ValueError(f"unknown crossing columns: {', '.join(sorted(unknown))}")
    query = select(*(crossings.c[name] for name in columns)).order_by(
        crossings.c.time, crossings.c.id
    )
    result = conn.execution_options(stream_results=True, yield_per=_STREAM_ROWS).execute(query)
    for row in result:
        yield tuple(row)


def _device(row: Row) -> dict[str, Any]:
    mapping = row._mapping
    found = {name: mapping[name] for name in _DEVICE_FIELDS}
    found["health"] = json.loads(mapping["health"]) if mapping["health"] else None
    return found


def fleet(conn: Connection) -> list[dict[str, Any]]:
    """Every known kiosk with its availability and latest heartbeat, by device id."""
    rows = conn.execute(select(devices).order_by(devices.c.device_id))
    return [_device(row) for row in rows]


def device(conn: Connection, device_id: str, history: int = 20) -> dict[str, Any] | None:
    """One kiosk in detail: state, heartbeat, what it sent, its latest availability messages."""
    row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
    if row is None:
        return None
    found = _device(row)
    records: dict[str, Any] = {}
    for name, spec in RECORD_TABLES.items():
        table = spec.table
        mine = table.c.device_id == device_id
        # Both from the (device_id, seq) index: the count without reading a row, the last record
        # by one row; max(time) read every row of the kiosk (0.5 s at 10,000 crossings).
        count = conn.execute(select(func.count()).select_from(table).where(mine)).scalar_one()
        last = conn.execute(
            select(table.c.seq, table.c.time).where(mine).order_by(table.c.seq.desc()).limit(1)
        ).first()
        records[name] = {
            "count": count,
            "last_seq": last.seq if last else None,
            "last_time": last.time if last else None,
        }
    found["records"] = records
    found["quarantined"] = conn.execute(
        select(func.count()).select_from(quarantine).where(quarantine.c.device_id == device_id)
    ).scalar_one()
    log = availability_log.c
    found["availability_log"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(
                log.id, log.state, log.session, log.reason, log.time, log.received_at, log.applied
            )
            .where(log.device_id == device_id)
            .order_by(desc(log.received_at), desc(log.time), desc(log.id))
            .limit(history)
        )
    ]
    return found


def crossing_counts(
    conn: Connection,
    site: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[dict[str, Any]]:
    """Crossings per site, day (the kiosk's UTC date) and decision outcome.

    *since* and *until* are inclusive ``YYYY-MM-DD`` bounds.
    """
    c = counts_table.c  # the writer's rollup: a few rows a day per post
    query = select(c.site, c.day, c.outcome, func.sum(c.count).label("count"))
    if site is not None:
        query = query.where(c.site == site)
    if since is not None:
        query = query.where(c.day >= since)
    if until is not None:
        query = query.where(c.day <= until)
    query = query.group_by(c.site, c.day, c.outcome).order_by(c.site, c.day, c.outcome)
    return [{**row._mapping, "count": int(row.count)} for row in conn.execute(query)]
