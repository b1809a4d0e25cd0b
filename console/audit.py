"""The audit log: one entry for every read of personal data, append-only and tamper-evident.

What an entry says (what EU EES Art. 46 asks of its logs): **who** read (the account's id,
username, agency, role and clearance level), **when** (UTC), **why** (a purpose code from
:data:`PURPOSES`, with free text), **what was asked** (the query's parameters, as JSON),
**which records** were shown or exported (their ids, as a JSON list) and **from where** (the
client's address)::

    entry = audit.record(conn, principal, "crossings.search",
                         purpose="investigation", purpose_text="case 2026/114",
                         query={"document_number": "CB4410275"},
                         records=["0193a5c2-…", "0193a5c3-…"], address="10.1.2.3")
    entry.seq, entry.hash            # 42, "9f86d0…"

    result = audit.verify(conn)      # walks the whole chain, a row at a time
    print(result.describe())         # "audit log intact: 42 entries from seq 1 to 42"
                                     # or "audit log broken at seq 17: its hash does not …"

    audit.purge(conn, before="2024-11-24T00:00:00Z")   # retention: drop what is older

**The chain.** Entries are numbered by ``seq``, 1, 2, 3, … without holes. Each stores the hash
of the entry before it (``prev_hash``) and its own ``hash``::

    hash = sha256(prev_hash + canonical JSON of the entry's fields)   (hex)

where the fields are everything but the two hashes (``seq`` included, so renumbering shows),
and canonical JSON is sorted keys, no spaces, ASCII (:func:`entry_hash`). The first entry's
``prev_hash`` is :data:`GENESIS`. Changing any field of any entry changes its hash; deleting an
entry leaves a hole in ``seq``; inserting one needs a ``seq`` and a ``prev_hash`` that fit.
:func:`verify` recomputes every hash and names the **first** entry that does not fit, and how:
its ``hash`` (its contents were changed), its ``prev_hash`` (it was moved or the entry before it
replaced), or a ``gap`` (entries before it are missing, or it sits before the chain's start).

**Retention.** :func:`purge` deletes the oldest entries in one transaction and keeps the last
deleted entry's ``seq`` and ``hash`` in ``audit_anchor``: the chain then starts from the anchor
instead of :data:`GENESIS`, and :func:`verify` still passes. It only ever deletes a prefix of
the chain (never an entry younger than *before*, never one between two it keeps), and it first
verifies what it deletes, so a purge cannot launder an edited entry.

**Concurrency.** Appends are serialised so two web workers (threads, processes, or console
nodes on one PostgreSQL) never fork the chain: on SQLite the writer's ``BEGIN IMMEDIATE``
already holds the database's write lock; on PostgreSQL :func:`record` takes a transaction-level
advisory lock (:data:`APPEND_LOCK`) before reading the last entry, so the next appender reads
it only after this one commits. The primary key on ``seq`` is the backstop: two entries with
one number cannot both be stored.

**No audit, no read.** A view writes the entry, and commits it, *before* it returns the data;
if the entry cannot be written, the data is not returned (:func:`append` runs
:func:`record` in a transaction of its own; :mod:`console.web.purpose` does this for views).

**What a hash chain does not do.** Someone who can write to the database *and* knows this
module can rewrite the tail and recompute every hash after it, or cut the newest entries off.
Keep the head (``audit verify`` prints the last hash) somewhere they cannot write, and compare.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Row, Select, func, insert, select, text, update

from mqtt_schemas.envelope import format_time, utc_now

from .access import Principal
from .store.database import is_sqlite, retrying
from .store.schema import audit_anchor, audit_log

__all__ = [
    "APPEND_LOCK",
    "GENESIS",
    "PURPOSES",
    "AuditError",
    "Break",
    "Entry",
    "VerifyResult",
    "append",
    "entries",
    "entry_hash",
    "purge",
    "reading",
    "record",
    "verify",
]

PURPOSES: dict[str, str] = {
    "border-control": "Border control: checking a traveller at a crossing",
    "referral-review": "Reviewing a referral or an escalation",
    "investigation": "An investigation (immigration, criminal, financial)",
    "legal-request": "A court order or another legal request",
    "quality-control": "Data quality control",
    "audit": "Auditing how the system is used",
    "other": "Other: say what",
}
"""The purposes a user may give for reading personal data: code -> what it means. ``other``
needs the free text; every other code may have it."""

OTHER = "other"
PURPOSE_TEXT_MAX = 500
GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry ever written (before any purge)."""
APPEND_LOCK = 0x6175_6469_745F
"""PostgreSQL advisory lock key held while appending or purging ("audit_")."""

HASHED_FIELDS = (
    "seq",
    "at",
    "user_id",
    "username",
    "agency",
    "role",
    "level",
    "action",
    "purpose",
    "purpose_text",
    "query",
    "records",
    "address",
)
"""The columns the hash covers, besides ``prev_hash`` (``query`` and ``records`` as the JSON
text stored, so a hash is recomputed from the row exactly as it is)."""

_COLUMNS = [audit_log.c[name] for name in (*HASHED_FIELDS, "prev_hash", "hash")]
_STREAM_ROWS = 5000


class AuditError(ValueError):
    """An entry cannot be written (a missing or unknown purpose, a bad time), or a purge
    cannot be done (a time in the future, a broken chain). The message says which."""


@dataclass(frozen=True)
class Entry:
    """One entry of the audit log, as stored."""

    seq: int
    at: str
    """UTC, ``2026-11-24T07:12:45.301Z``."""
    user_id: int | None
    username: str
    agency: str
    role: str
    level: int
    action: str
    """The policy's action (``crossings.search``, ``audit.view``…)."""
    purpose: str | None
    purpose_text: str | None
    query: str
    """The query's parameters, canonical JSON text (:attr:`query_data` parses it)."""
    records: str
    """The ids of the records shown or exported, a JSON list (:attr:`record_ids`)."""
    address: str | None
    prev_hash: str
    hash: str

    @property
    def query_data(self) -> dict[str, Any]:
        return json.loads(self.query)

    @property
    def record_ids(self) -> list[str]:
        return json.loads(self.records)

    def as_dict(self) -> dict[str, Any]:
        """The entry as plain data (``query`` and ``records`` parsed): one JSON Lines line."""
        data = {name: getattr(self, name) for name in (*HASHED_FIELDS, "prev_hash", "hash")}
        data["query"], data["records"] = self.query_data, self.record_ids
        return data

    @classmethod
    def from_row(cls, row: Row[Any] | Mapping[str, Any]) -> Entry:
        values = row._mapping if isinstance(row, Row) else row
        return cls(**{column.name: values[column.name] for column in _COLUMNS})


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
# The same text for a dict whose keys are already in order (the hashed fields, sorted once):
# verifying millions of entries is mostly this encoding.
_IN_ORDER = json.JSONEncoder(sort_keys=False, separators=(",", ":"), ensure_ascii=True)
_SORTED_FIELDS = tuple(sorted(HASHED_FIELDS))


def canonical_json(value: Any) -> str:
    """*value* as canonical JSON: sorted keys, no spaces, ASCII only (one text per value)."""
    return _CANONICAL.encode(value)


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """``sha256(prev_hash + canonical JSON of the hashed fields)``, hex: the chain's rule."""
    body = _IN_ORDER.encode({name: fields[name] for name in _SORTED_FIELDS})
    return hashlib.sha256((prev_hash + body).encode("ascii")).hexdigest()


# -- writing ---------------------------------------------------------------------------------


def record(
    conn: Connection,
    principal: Principal,
    action: str,
    *,
    purpose: str,
    purpose_text: str | None = None,
    query: Mapping[str, Any] | None = None,
    records: Iterable[str] = (),
    address: str | None = None,
    at: str | None = None,
) -> Entry:
    """Append one entry to the audit log in *conn*'s transaction, and return it.

    *conn* must be in a writing transaction (an engine from :func:`~console.store.open_database`
    with ``engine.begin()``, or :func:`append`); the entry is stored when that transaction
    commits. *purpose* is a code of :data:`PURPOSES`; *purpose_text* is required when it is
    ``other`` (at most 500 characters, no control characters). *query* is what was asked (the
    route's parameters; it must be JSON-serialisable), *records* the ids of the records shown or
    exported, *address* the client's address. *at* is the time of the read, default now
    (tests and imports give it; any ISO 8601 time with a zone, stored as UTC milliseconds).

    Raises :class:`AuditError` for a bad purpose or time, before anything is written.
    """
    purpose, purpose_text = check_purpose(purpose, purpose_text)
    if not action:
        raise AuditError("an audit entry needs the action that read the data")
    fields: dict[str, Any] = {
        "at": utc_now() if at is None else _utc(at, "at"),
        "user_id": principal.user_id,
        "username": principal.username,
        "agency": principal.agency,
        "role": principal.role,
        "level": principal.level,
        "action": action,
        "purpose": purpose,
        "purpose_text": purpose_text,
        "query": canonical_json(dict(query or {})),
        "records": canonical_json([str(record_id) for record_id in records]),
        "address": address,
    }
    _lock(conn)
    last_seq, last_hash = _head(conn)
    fields["seq"] = last_seq + 1
    fields["prev_hash"] = last_hash
    fields["hash"] = entry_hash(last_hash, fields)
    conn.execute(insert(audit_log).values(**fields))
    return Entry(**fields)


def append(engine: Engine, principal: Principal, action: str, **details: Any) -> Entry:
    """:func:`record` in a transaction of its own, committed when this returns (retried when
    PostgreSQL ends it for a deadlock). What a view calls before it returns the data."""
    return retrying(engine, lambda conn: record(conn, principal, action, **details))


def check_purpose(purpose: str | None, purpose_text: str | None) -> tuple[str, str | None]:
    """The purpose code and its text, cleaned (text stripped, empty -> None); or
    :class:`AuditError` saying what is wrong. The web form uses it too."""
    if not purpose:
        raise AuditError("a purpose is required to read personal data")
    if purpose not in PURPOSES:
        raise AuditError(f"unknown purpose {purpose!r} (one of: {', '.join(PURPOSES)})")
    text_value = (purpose_text or "").strip() or None
    if purpose == OTHER and text_value is None:
        raise AuditError("purpose 'other' needs a text saying what the purpose is")
    if text_value is not None:
        if len(text_value) > PURPOSE_TEXT_MAX:
            raise AuditError(f"the purpose text is longer than {PURPOSE_TEXT_MAX} characters")
        if any(ord(char) < 32 or 0x7F <= ord(char) < 0xA0 for char in text_value):
            raise AuditError("the purpose text may not contain control characters")
    return purpose, text_value


def _lock(conn: Connection) -> None:
    """Serialise appends and purges (see the module docstring). SQLite: the writer
    transaction's ``BEGIN IMMEDIATE`` holds the write lock already."""
    if not is_sqlite(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})


def _anchor(conn: Connection) -> tuple[int, str]:
    """Where the chain starts: the anchor left by the last purge, or (0, GENESIS)."""
    row = conn.execute(
        select(audit_anchor.c.seq, audit_anchor.c.hash).where(audit_anchor.c.id == 1)
    ).first()
    return (int(row.seq), row.hash) if row is not None else (0, GENESIS)


def _head(conn: Connection) -> tuple[int, str]:
    """The last entry's seq and hash; the anchor when the log is empty."""
    row = conn.execute(
        select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    return (int(row.seq), row.hash) if row is not None else _anchor(conn)


def _utc(value: str, name: str) -> str:
    """An ISO 8601 time (or date) as UTC milliseconds text; a naive one is taken as UTC."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise AuditError(f"{name}: not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return format_time(moment)


# -- verifying -------------------------------------------------------------------------------

Problem = Literal["hash", "prev_hash", "gap"]


@dataclass(frozen=True)
class Break:
    """The first entry that does not fit the chain, and how."""

    seq: int
    problem: Problem
    """``hash``: its contents do not give its hash (edited); ``prev_hash``: it does not name
    the hash of the entry before it; ``gap``: the entries before it are missing, or it has a
    seq the chain has passed already."""
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found. True when the chain is intact."""

    entries: int
    """Entries checked and found intact (all of them when the chain is intact)."""
    first_seq: int | None
    last_seq: int | None
    """The last intact entry (None: there is none)."""
    last_hash: str
    """The hash the next entry must name: the last intact entry's, or the anchor's."""
    anchor_seq: int
    """The chain starts after this seq (0: from :data:`GENESIS`, no purge yet)."""
    broken: Break | None = None
    checked_at: str = field(default_factory=utc_now)

    @property
    def intact(self) -> bool:
        return self.broken is None

    def __bool__(self) -> bool:
        return self.intact

    def describe(self) -> str:
        """One line: ``audit log intact: N entries from seq A to B`` or the first break."""
        if self.broken is not None:
            return f"audit log broken at seq {self.broken.seq}: {self.broken.detail}"
        if self.entries == 0:
            start = f" (purged up to seq {self.anchor_seq})" if self.anchor_seq else ""
            return f"audit log intact: 0 entries{start}"
        noun = "entry" if self.entries == 1 else "entries"
        return (
            f"audit log intact: {self.entries} {noun} from seq {self.first_seq} to {self.last_seq}"
        )


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection in a read transaction that sees one snapshot of the database from its
    first query to its end, what :func:`verify` wants. PostgreSQL: REPEATABLE READ; SQLite:
    the engine's own transaction (give a read-only engine: a writer's ``BEGIN IMMEDIATE``
    would hold the write lock while the chain is read)."""
    with engine.connect() as conn:
        if not is_sqlite(conn):
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def verify(conn: Connection, *, resume: VerifyResult | None = None) -> VerifyResult:
    """Walk the chain from its start (the anchor, or :data:`GENESIS`) and recompute every
    hash; stop at the first entry that does not fit (:class:`Break`).

    Rows are streamed in order of ``seq``, a few thousand at a time, never all at once
    (about 12 us an entry on one core: a million entries take some 12 s). Give *conn* a
    transaction that sees one snapshot, so a purge committed while it reads does not look like
    a break: ``with audit.reading(engine) as conn`` makes one.

    *resume*: an intact result of an earlier call on the same database; only the entries
    written since are checked, from its last entry's hash (entries it covered are taken as
    still intact, so check in full now and then). If a purge moved the start since, the whole
    chain is checked.
    """
    anchor_seq, anchor_hash = _anchor(conn)
    expected_seq, prev_hash = anchor_seq + 1, anchor_hash
    entries, first_seq, last_seq = 0, None, None
    if resume is not None and resume.intact and resume.anchor_seq == anchor_seq:
        entries, first_seq, last_seq = resume.entries, resume.first_seq, resume.last_seq
        if last_seq is not None:
            expected_seq, prev_hash = last_seq + 1, resume.last_hash
    rows = _stream(conn, after=expected_seq - 1 if entries else None)
    for row in rows:
        broken = _check(row, expected_seq, prev_hash, anchor_seq)
        if broken is not None:
            rows.close()
            return VerifyResult(entries, first_seq, last_seq, prev_hash, anchor_seq, broken)
        if first_seq is None:
            first_seq = row.seq
        entries, last_seq, expected_seq, prev_hash = entries + 1, row.seq, row.seq + 1, row.hash
    return VerifyResult(entries, first_seq, last_seq, prev_hash, anchor_seq)


def _stream(conn: Connection, after: int | None) -> Iterator[Row[Any]]:
    query = select(*_COLUMNS).order_by(audit_log.c.seq)
    if after is not None:
        query = query.where(audit_log.c.seq > after)
    return _rows(conn, query)


def _check(row: Row[Any], expected_seq: int, prev_hash: str, anchor_seq: int) -> Break | None:
    seq = row.seq
    if seq != expected_seq:
        if seq < 1 and anchor_seq == 0:
            detail = "it comes before the chain's start (seq 1)"
        elif seq <= anchor_seq:
            detail = f"it is at or before the chain's start (purged up to seq {anchor_seq})"
        elif seq < expected_seq:  # cannot happen with seq the primary key; said if it does
            detail = f"seq {seq} comes again"
        elif seq == expected_seq + 1:
            detail = f"gap in seq: entry {expected_seq} is missing"
        else:
            detail = f"gap in seq: entries {expected_seq} to {seq - 1} are missing"
        return Break(seq, "gap", detail)
    if row.prev_hash != prev_hash:
        before = f"seq {seq - 1}" if seq - 1 > anchor_seq else "the chain's start"
        return Break(seq, "prev_hash", f"its prev_hash is not the hash of {before}")
    if entry_hash(row.prev_hash, row._mapping) != row.hash:
        return Break(seq, "hash", "its hash does not match its contents (edited)")
    return None


# -- retention -------------------------------------------------------------------------------


def purge(conn: Connection, before: str, *, now: Callable[[], str] = utc_now) -> int:
    """Delete the entries older than *before* (an ISO 8601 time or date, UTC when it names
    no zone) and return how many; in *conn*'s writing transaction.

    Only the oldest part of the chain goes: the entries up to the first one at or after
    *before* (an entry written with a later clock ahead of an earlier one keeps those after
    it). The last deleted entry's seq and hash become the anchor, so :func:`verify` passes
    afterwards. The part to delete (and the link to the entry after it) is verified first:
    a broken chain is not purged (:class:`AuditError` naming the break), nor is a *before*
    in the future.
    """
    cutoff = _utc(before, "before")
    if cutoff > now():
        raise AuditError(f"before {cutoff} is in the future: purging would delete every entry")
    _lock(conn)
    first_kept = conn.execute(
        select(func.min(audit_log.c.seq)).where(audit_log.c.at >= cutoff)
    ).scalar()
    last_seq, _ = _head(conn)
    upto = last_seq if first_kept is None else int(first_kept) - 1
    anchor_seq, anchor_hash = _anchor(conn)
    if upto <= anchor_seq:
        return 0
    end = _verify_upto(conn, upto + 1, anchor_seq, anchor_hash)
    deleted = conn.execute(audit_log.delete().where(audit_log.c.seq <= upto)).rowcount
    values = {"seq": upto, "hash": end, "purged_at": now()}
    if conn.execute(update(audit_anchor).where(audit_anchor.c.id == 1).values(**values)).rowcount:
        return deleted
    conn.execute(insert(audit_anchor).values(id=1, **values))
    return deleted


def _verify_upto(conn: Connection, last: int, anchor_seq: int, anchor_hash: str) -> str:
    """Check the chain from the anchor to seq *last* (if it exists); the hash of seq
    ``last - 1``, or :class:`AuditError` naming the first break."""
    expected_seq, prev_hash = anchor_seq + 1, anchor_hash
    end = anchor_hash
    rows = _stream(conn, after=None)
    try:
        for row in rows:
            if row.seq > last:
                break
            broken = _check(row, expected_seq, prev_hash, anchor_seq)
            if broken is not None:
                raise AuditError(
                    f"not purged: audit log broken at seq {broken.seq}: {broken.detail}"
                )
            if row.seq < last:
                end = row.hash
            expected_seq, prev_hash = row.seq + 1, row.hash
    finally:
        rows.close()
    if expected_seq <= last - 1:  # cannot happen: upto is an existing seq or follows one
        raise AuditError(f"not purged: entry {last - 1} is missing")
    return end


# -- reading ---------------------------------------------------------------------------------


def entries(
    conn: Connection,
    *,
    username: str | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before_seq: int | None = None,
    limit: int | None = 100,
) -> Iterator[Entry]:
    """Entries newest first, streamed (read them before *conn* closes): by *username*,
    *action*, time (*since* inclusive, *until* exclusive: ISO 8601 times or dates, UTC), and
    for the next page, those with a seq below *before_seq* (the last seq of the page before).
    *limit* None: every one. Bad times raise :class:`AuditError` at once."""
    query = select(*_COLUMNS).order_by(audit_log.c.seq.desc())
    if username:
        query = query.where(audit_log.c.username == username)
    if action:
        query = query.where(audit_log.c.action == action)
    if since:
        query = query.where(audit_log.c.at >= _utc(since, "since"))
    if until:
        query = query.where(audit_log.c.at < _utc(until, "until"))
    if before_seq is not None:
        query = query.where(audit_log.c.seq < before_seq)
    if limit is not None:
        query = query.limit(limit)
    return (Entry.from_row(row) for row in _rows(conn, query))


def _rows(conn: Connection, query: Select[Any]) -> Iterator[Row[Any]]:
    # yield_per on the statement, not the connection (that would stay on for the
    # connection's later statements: a DELETE in a server-side cursor, on PostgreSQL).
    result = conn.execute(query.execution_options(yield_per=_STREAM_ROWS))
    try:
        yield from result
    finally:
        result.close()
