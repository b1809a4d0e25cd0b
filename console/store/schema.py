"""The console database's tables, as SQLAlchemy Core metadata: one definition for SQLite and
PostgreSQL, used by every query. The migrations in ``migrations/versions/`` build the same
tables (a test compares the two on both backends).

``crossings``, ``hits``, ``decisions``
    One row per record id (the primary key), with the fields the console filters and counts on
    and ``payload``, the record exactly as received. Hits and decisions can arrive before their
    crossing; they are stored anyway and joined on ``crossing_id`` when read. Each column is
    declared once, with how a record gives its value (:class:`RecordTable`).
``quarantine``
    Every message the console could not accept, never dropped: when it came, its topic, the
    device (when the topic names one), the record id (when it has one), the reason with the
    failing field's JSON Pointer, and the raw payload bytes. A message received again (a kiosk
    republishing an unacked record) adds to ``times`` instead of adding a row.
``devices``
    One row per kiosk: availability (``state``, the current ``session``, last birth and offline,
    with the reason), the latest heartbeat (``health``) and when the kiosk was last heard from.
``heartbeats``
    Every heartbeat of the last days (by payload id), with the numbers the device page charts.
``availability_log``
    Every availability message once (by id) and whether it was applied: a stale will is logged
    there with ``applied = 0``.
``command_results``
    Kiosks' answers to commands, by id.
``console_nodes``
    The sequence counter of each console node id, for the payloads the console publishes.
``watchlist_versions``, ``watchlist_chunks``, ``watchlist_entries``
    The signed watchlist history (:mod:`console.watchlist`).

Times are UTC ISO 8601 text as the kiosks send them (``2026-11-24T07:12:45.301Z``): they sort
as text the same way on both backends, and ``time`` is always the kiosk's own, never rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

from mqtt_schemas.name_matching import Name, document_key, parse_name, phonetic, tokens

from ..records import Record

metadata = MetaData()

Id = BigInteger().with_variant(Integer, "sqlite")
"""An integer key: BIGINT on PostgreSQL, INTEGER on SQLite (where only ``INTEGER PRIMARY KEY``
is the auto-numbered rowid)."""

Getter = Callable[[Record], Any]


def _field(*path: str) -> Getter:
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
class RecordTable:
    """A table of one record channel: ``id`` first, then *fields* (each a column type and how a
    record gives its value), then ``received_at`` and ``payload`` (the record as received)."""

    table: Table
    fields: dict[str, Getter]
    keys: tuple[Table, Callable[[Record], list[dict[str, Any]]]] | None = None
    """A table of search keys the writer fills for each record it inserts (the rows given by
    the callable), or None."""

    @property
    def name(self) -> str:
        return self.table.name

    def row(self, record: Record, received_at: str) -> dict[str, Any]:
        values = {name: get(record) for name, get in self.fields.items()}
        return {"id": record.id, **values, "received_at": received_at, "payload": record.text}

    def columns(self, records: Collection[Record], received_at: str) -> dict[str, list[Any]]:
        """The rows of *records* as one list per column (what :meth:`row` gives, transposed),
        for a statement that takes one array per column."""
        values = {name: [get(record) for record in records] for name, get in self.fields.items()}
        return {
            "id": [record.id for record in records],
            **values,
            "received_at": [received_at] * len(records),
            "payload": [record.text for record in records],
        }


def _record_table(
    name: str, fields: dict[str, tuple[Any, Getter]], indexes: tuple[tuple[str, ...], ...]
) -> RecordTable:
    columns = [Column("id", Text, primary_key=True)]
    columns += [Column(column, kind) for column, (kind, _) in fields.items()]
    columns += [Column("received_at", Text), Column("payload", Text, nullable=False)]
    table = Table(name, metadata, *columns)
    for index in indexes:
        Index(f"idx_{name}_{'_'.join(index)}", *(table.c[c] for c in index))
    return RecordTable(table, {column: get for column, (_, get) in fields.items()})


RECORD_TABLES: dict[str, RecordTable] = {
    "crossings": _record_table(
        "crossings",
        {
            "device_id": (Text, _device),
            "seq": (BigInteger, _field("seq")),
            "time": (Text, _field("time")),
            "day": (Text, lambda record: record.payload["time"][:10]),
            "site": (Text, _field("site")),
            "lane": (Text, _field("lane")),
            "direction": (Text, _field("direction")),
            "outcome": (Text, _field("decision", "outcome")),
            "watchlist_version": (BigInteger, _field("screening", "watchlist_version")),
            "hit_count": (Integer, _field("screening", "hit_count")),
            "document_kind": (Text, _field("document", "kind")),
            "clock_synced": (Integer, lambda record: 1 if record.payload["clock"]["synced"] else 0),
            "document_number": (Text, _field("document", "number")),  # 0005
            "issuing_state": (Text, _field("document", "issuing_state")),  # 0005
            "document_key": (Text, lambda record: _document_key(record)),  # 0005
        },
        (("site", "day", "outcome"), ("day",), ("time",), ("device_id", "seq")),
    ),
    "hits": _record_table(
        "hits",
        {
            "crossing_id": (Text, _field("crossing_id")),
            "device_id": (Text, _device),
            "seq": (BigInteger, _field("seq")),
            "time": (Text, _field("time")),
            "site": (Text, _field("site")),
            "lane": (Text, _field("lane")),
            "watchlist_version": (BigInteger, _field("watchlist_version")),
            "name_key": (Text, lambda record: _name_key(record)),  # 0005
        },
        (("crossing_id",), ("site", "time"), ("device_id", "seq")),
    ),
    "decisions": _record_table(
        "decisions",
        {
            "crossing_id": (Text, _field("crossing_id")),
            "hit_id": (Text, lambda record: record.payload.get("hit_id")),
            "device_id": (Text, _device),
            "seq": (BigInteger, _field("seq")),
            "time": (Text, _field("time")),
            "officer_id": (Text, _field("officer_id")),
            "decision": (Text, _field("decision")),
            "decided_at": (Text, _field("decided_at")),
        },
        (("crossing_id",), ("device_id", "seq")),
    ),
}
crossings = RECORD_TABLES["crossings"].table
hits = RECORD_TABLES["hits"].table
decisions = RECORD_TABLES["decisions"].table

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("digest", Text),
    Column("received_at", Text),
    Column("last_received_at", Text),
    Column("times", Integer),
    Column("topic", Text),
    Column("device_id", Text),
    Column("record_id", Text),
    Column("reason", Text),
    Column("path", Text),
    Column("payload", LargeBinary),
    Index("idx_quarantine_digest", "digest", unique=True),
    Index("idx_quarantine_device_id_received_at", "device_id", "received_at"),
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("state", Text),
    Column("session", BigInteger),
    Column("agent_version", Text),
    Column("state_time", Text),
    Column("last_birth_at", Text),
    Column("last_offline_at", Text),
    Column("offline_reason", Text),
    Column("health", Text),
    Column("health_time", Text),
    Column("health_seq", BigInteger),
    Column("health_session", BigInteger),
    Column("health_received_at", Text),
    Column("last_seen_at", Text),
)

availability_log = Table(
    "availability_log",
    metadata,
    Column("id", Text, primary_key=True),
    Column("device_id", Text),
    Column("state", Text),
    Column("session", BigInteger),
    Column("reason", Text),
    Column("time", Text),
    Column("received_at", Text),
    Column("applied", Integer),
    Column("payload", Text),
    Index("idx_availability_log_device_id_received_at", "device_id", "received_at"),
)

command_results = Table(
    "command_results",
    metadata,
    Column("id", Text, primary_key=True),
    Column("device_id", Text),
    Column("command_id", Text),
    Column("status", Text),
    Column("time", Text),
    Column("received_at", Text),
    Column("payload", Text),
    Index("idx_command_results_command_id", "command_id"),
)

console_nodes = Table(
    "console_nodes",
    metadata,
    Column("node_id", Text, primary_key=True),
    Column("seq", BigInteger),
)

watchlist_versions = Table(
    "watchlist_versions",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("published_at", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("persons", BigInteger, nullable=False),
    Column("documents", BigInteger, nullable=False),
    Column("delta_chunks", Integer),
    Column("delta_changes", BigInteger),
    Column("delta_bytes", BigInteger),
    Column("snapshot_chunks", Integer),
    Column("snapshot_bytes", BigInteger),
    Column("snapshot_sha256", Text),
)

watchlist_chunks = Table(
    "watchlist_chunks",
    metadata,
    Column("kind", Text, primary_key=True),
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("chunk_index", Integer, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=False),
)

watchlist_entries = Table(
    "watchlist_entries",
    metadata,
    Column("kind", Text, primary_key=True),
    Column("entry_id", Text, primary_key=True),
    Column("entry", Text, nullable=False),
)

# -- people (migration 0003) ---------------------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("agency", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("level", Integer, nullable=False),
    Column("posts", Text, nullable=False),  # JSON list of site ids, ["*"]: every post
    Column("password_hash", Text, nullable=False),
    Column("must_change_password", Integer, nullable=False),
    Column("disabled", Integer, nullable=False),
    Column("api_token_hash", Text),
    Column("created_at", Text, nullable=False),
    Column("password_changed_at", Text),
    Index("idx_users_username", "username", unique=True),
    Index("idx_users_api_token_hash", "api_token_hash", unique=True),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("at", Text, nullable=False),
    Index("idx_login_failures_username_at", "username", "at"),
    Index("idx_login_failures_address_at", "address", "at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", Text, nullable=False),
    Column("user_id", BigInteger),
    Column("username", Text, nullable=False),
    Column("agency", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("level", Integer, nullable=False),
    Column("action", Text, nullable=False),
    Column("purpose", Text),
    Column("purpose_text", Text),
    Column("query", Text, nullable=False),  # JSON: what was asked (the route's parameters)
    Column("records", Text, nullable=False),  # JSON list of the record ids shown or exported
    Column("address", Text),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Index("idx_audit_log_at", "at"),
    Index("idx_audit_log_username_at", "username", "at"),
)

audit_anchor = Table(
    "audit_anchor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),  # the last purged entry: the chain goes on from it
    Column("hash", Text, nullable=False),
    Column("purged_at", Text, nullable=False),
)

enrollment_tokens = Table(
    "enrollment_tokens",
    metadata,
    Column("token_hash", Text, primary_key=True),  # SHA-256 of the token: the token is never kept
    Column("device_id", Text, nullable=False),
    Column("post", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("replaces", Integer, nullable=False, server_default="0"),  # may replace a device
    Column("used_at", Text),
    Index("idx_enrollment_tokens_device_id", "device_id"),
)

device_certificates = Table(
    "device_certificates",
    metadata,
    Column("serial", Text, primary_key=True),  # hexadecimal
    Column("device_id", Text, nullable=False),
    Column("post", Text),
    Column("issued_at", Text, nullable=False),
    Column("not_after", Text, nullable=False),
    Column("revoked_at", Text),
    Column("reason", Text),
    Index("idx_device_certificates_device_id", "device_id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("device_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("raised_at", Text, nullable=False),
    Column("cleared_at", Text),
    Column("detail", Text, nullable=False),
    Index("idx_alerts_open", "device_id", "rule", "cleared_at"),
    Index("idx_alerts_raised_at", "raised_at"),
)

dispositions = Table(
    "dispositions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("crossing_id", Text, nullable=False),
    Column("hit_id", Text),
    Column("user_id", BigInteger, nullable=False),
    Column("username", Text, nullable=False),
    Column("disposition", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", Text, nullable=False),
    Index("idx_dispositions_crossing_id", "crossing_id"),
)

Index(
    "idx_alerts_one_open",
    alerts.c.device_id,
    alerts.c.rule,
    unique=True,
    sqlite_where=alerts.c.cleared_at.is_(None),
    postgresql_where=alerts.c.cleared_at.is_(None),
)
"""At most one open alert per kiosk and rule (migration 0004)."""

# -- heartbeat history (migration 0004) -----------------------------------------------------

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("id", Text, primary_key=True),  # the heartbeat's payload id
    Column("device_id", Text, nullable=False),
    Column("time", Text, nullable=False),  # the kiosk's
    Column("received_at", Text, nullable=False),  # ours: retention goes by it
    Column("session", BigInteger),
    Column("seq", BigInteger),
    Column("outbox_depth", BigInteger),
    Column("outbox_oldest_s", Float),
    Column("disk_free_percent", Float),
    Column("watchlist_version", BigInteger),
    Column("watchlist_age_s", Float),
    Column("clock_synced", Integer),
    Column("clock_offset_ms", Float),
    Index("idx_heartbeats_device_id_time", "device_id", "time"),
    Index("idx_heartbeats_received_at", "received_at"),
)


def heartbeat_row(heartbeat_id: str, device_id: str, text: str, received_at: str) -> dict[str, Any]:
    """A ``heartbeats`` row of a valid ``health@1`` payload (*text*, as received): the numbers
    the device page charts (the whole payload of the latest is in ``devices.health``; a
    thousand kiosks beat every 30 s, so the history keeps numbers only)."""
    payload = json.loads(text)
    disk = payload["disk"]
    outbox = payload["outbox"]
    watchlist = payload["watchlist"]
    clock = payload["clock"]
    return {
        "id": heartbeat_id,
        "device_id": device_id,
        "time": payload["time"],
        "received_at": received_at,
        "session": payload["session"],
        "seq": payload["seq"],
        "outbox_depth": outbox["depth"],
        "outbox_oldest_s": outbox["oldest_age_s"],
        "disk_free_percent": (
            100.0 * disk["free_bytes"] / disk["total_bytes"] if disk["total_bytes"] else None
        ),
        "watchlist_version": watchlist["version"],
        "watchlist_age_s": watchlist["age_s"],
        "clock_synced": 1 if clock["synced"] else 0,
        "clock_offset_ms": clock.get("offset_ms"),
    }


# -- search keys (migration 0005) ------------------------------------------------------------
# What crossing search and the referral queue look up by (console.store.search, .referrals):
# ``crossings.document_key`` is the OCR-folded document number the kiosk's matcher indexes by
# (mqtt_schemas.name_matching.document_key), with the number and issuing state as sent; a hit's
# traveller name is kept as its sorted tokens (``hits.name_key``) and, for finding it, as the
# phonetic codes of its units in ``hit_names`` (one row per code, the writer fills it with the
# hit: RecordTable.keys). Referrals without a hit (expired document, chip check failed ...)
# are found through a partial index on the crossings the kiosk referred without hits.


def _document_key(record: Record) -> str:
    return document_key(record.payload["document"]["number"])


def hit_name(record_payload: dict[str, Any]) -> Name:
    """The traveller's name of a ``screening-hit`` payload, parsed as the matcher parses it."""
    traveller = record_payload["traveller"]
    return parse_name(
        tokens(traveller.get("surname") or ""),
        tokens(traveller.get("given_names") or ""),
    )


def name_codes(name: Name) -> set[str]:
    """The phonetic codes of a name's units (initials left out, as the matcher's index does)."""
    return {phonetic(unit.text) for unit in name.keyed_units}


def name_key(name: Name) -> str:
    """A name's distinct core tokens, sorted, space-separated: ``CAL JOSE MANUEL``."""
    return " ".join(sorted(set(name.core)))


def _name_key(record: Record) -> str:
    return name_key(hit_name(record.payload))


hit_names = Table(
    "hit_names",
    metadata,
    Column("code", Text, primary_key=True),
    Column("time", Text, primary_key=True),  # the hit's: a code's rows newest first
    Column("crossing_id", Text, primary_key=True),
    Column("hit_id", Text, primary_key=True),
    Column("site", Text, nullable=False),
    sqlite_with_rowid=False,
)
"""One row per phonetic code of a hit's traveller name, with what a search filters and pages
by, so that a name search reads this table alone until it knows the page's crossings."""


def hit_name_rows(record_id: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``hit_names`` rows of a screening hit record."""
    where = {
        "time": payload["time"],
        "crossing_id": payload["crossing_id"],
        "hit_id": record_id,
        "site": payload["site"],
    }
    return [{"code": code, **where} for code in sorted(name_codes(hit_name(payload)))]


def _hit_name_rows(record: Record) -> list[dict[str, Any]]:
    return hit_name_rows(record.id, record.payload)


RECORD_TABLES["hits"] = replace(RECORD_TABLES["hits"], keys=(hit_names, _hit_name_rows))

Index("idx_crossings_document_key", crossings.c.document_key)
_REFERRED_WITHOUT_HITS = (crossings.c.outcome == "refer") & (crossings.c.hit_count == 0)
Index(
    "idx_crossings_referred",
    crossings.c.time,
    crossings.c.id,
    crossings.c.site,
    sqlite_where=_REFERRED_WITHOUT_HITS,
    postgresql_where=_REFERRED_WITHOUT_HITS,
)
"""The referrals without a hit, newest first: a partial index, so the crossings that pass
(nearly all) cost ingest nothing here."""
Index("idx_hits_time_crossing_id_site", hits.c.time, hits.c.crossing_id, hits.c.site)
Index(
    "idx_decisions_latest",
    decisions.c.crossing_id,
    decisions.c.decided_at,
    decisions.c.time,
    decisions.c.id,
    decisions.c.decision,
)
"""The latest officer decision of a crossing, read from the index alone (the queue's state)."""
Index("idx_dispositions_one_per_crossing", dispositions.c.crossing_id, unique=True)
Index(
    "idx_decisions_escalations",
    decisions.c.time,
    decisions.c.crossing_id,
    sqlite_where=decisions.c.decision == "escalate",
    postgresql_where=decisions.c.decision == "escalate",
)
"""The escalations, newest first: the supervisor's queue reads them, not every referral."""

# -- rollups (migration 0006) --------------------------------------------------------------

crossing_counts = Table(
    "crossing_counts",
    metadata,
    Column("site", Text, primary_key=True),
    Column("day", Text, primary_key=True),  # the kiosk's UTC date, as crossings.day
    Column("direction", Text, primary_key=True),
    Column("outcome", Text, primary_key=True),
    Column("count", BigInteger, nullable=False),
    # Migration 0007: the all-posts listing sums each (site, day, outcome) in index order.
    Index("idx_crossing_counts_site_day_outcome", "site", "day", "outcome", "count"),
)
"""Crossings per post, day, direction and outcome, kept by the writer in the transaction that
stores the crossings: counting ten million crossings took a second, reading this takes a few
milliseconds."""


def crossing_count_key(record: Record) -> tuple[str, str, str, str]:
    """A crossing's row in :data:`crossing_counts`."""
    payload = record.payload
    return (
        payload["site"],
        payload["time"][:10],
        payload["direction"],
        payload["decision"]["outcome"],
    )
