"""The durable outbox: crossing records wait here, on disk, until the console says it stored them.

One SQLite file holds the lane's own state and the outbox, so that the lane commits its state
and the record of what it decided in **one** transaction, before the traveller sees the result::

    outbox = Outbox("/var/lib/borderlane/kiosk.db", "kiosk-bz-se-01", SystemClock())
    crossing_id = outbox.new_id()
    with outbox.transaction() as tx:
        tx.execute("UPDATE lane SET state = 'done', crossing_id = ? WHERE id = 1", [crossing_id])
        tx.enqueue("crossings", {"site": ..., "lane": ..., ...}, id=crossing_id)
    # committed and fsynced: now show the traveller the result

``enqueue`` takes the payload *without* its envelope and fills the envelope in: ``schema``
(the channel's schema, latest version), ``id`` (a UUIDv7, or the one given), ``device_id``,
``seq`` (the next value of a persistent counter), ``time`` and ``clock`` (from the clock
provider). It validates the whole payload against the contract, so a record the console would
reject never gets stored (:class:`~mqtt_schemas.PayloadError`, and the transaction rolls back),
and stores it as the canonical JSON bytes that will be published, unchanged, until acked.

Durability
    WAL mode with ``synchronous=FULL``: a commit returns only after the WAL is fsynced, so a
    committed record survives kill -9 and power loss, and an uncommitted one leaves nothing.

Order and counters
    ``seq`` comes from the ``uplink_counters`` table, incremented in the enqueuing transaction:
    it never goes backwards, is never reused (purging a record does not free its seq), and is
    shared with every other payload the kiosk publishes (availability, health, command results:
    :meth:`Outbox.envelope`). The same table holds the availability ``session`` counter. On
    open, ``seq`` is raised to at least the highest seq still in the outbox. A database restored
    from a backup restores older counters with it; the restore procedure raises them above what
    the console has seen with :meth:`Outbox.advance_counters` (the console still stores by id,
    so a reused seq never costs a record).

Full disk (policy)
    The outbox never drops a record on its own. It has a byte budget (``max_bytes``) and keeps
    a reserve of free space on the file system (``reserve_free_bytes``) for the lane's state and
    SQLite's journal. A record that would pass either is **refused**: ``enqueue`` raises
    :class:`~edge.uplink.errors.OutboxFull`, the transaction (lane state included) rolls back,
    and the lane refers the traveller to an officer, who processes the crossing by hand. The
    health alarm (:meth:`Outbox.stats`) rises long before that, at 80 % of the budget or when
    free space falls below ``alarm_free_bytes``; at about 1 KiB a record, the default 512 MiB
    budget holds some 500,000 crossings, months of a busy lane.

    A disk filled by something else (logs, another program) leaves no room even to delete: in
    WAL mode a DELETE appends pages to the WAL first, and SQLite answers "database or disk is
    full", so acked records could never be purged and the outbox could never drain. So the
    outbox keeps a **ballast**: ``kiosk.db.reserve`` (0600; a quarter of
    ``reserve_free_bytes``, 1 to 4 MiB), allocated when there is room. When a purge or a
    counter write finds the disk full, the ballast is deleted and the write tried again (and
    the WAL checkpointed and truncated, giving its pages back). The room a delete needs is the
    WAL's growth plus what a checkpoint adds to the database file (the pages only in the WAL
    so far); the WAL is checkpointed every :data:`WAL_CHECKPOINT_PAGES` pages (256 KiB) to keep
    the second small, so 1 MiB covers both for a purge of some 1,000 records. While the
    ballast is missing, its size counts as used: new records are refused (reason ``disk``)
    until the file system has room for the ballast and the reserve again, when it is
    allocated anew and the lane records again. :meth:`Outbox.refusal` says whether, and why,
    a record would be refused now (the agent shows it in the heartbeat's ``lane`` component).

Lifetime (a clock no clock jump can stretch)
    :meth:`Outbox.lifetime_ms` is how long this kiosk database has been in use: milliseconds of
    ``CLOCK_BOOTTIME`` (monotonic, counting suspend) accumulated over every run, kept in
    ``uplink_counters`` and written with every commit and on close. Wall time may jump a year
    either way (a bad RTC, a wrong NTP server, a technician); this does not. Retention of
    personal data (:mod:`edge.lane.reviews`) and the command ids' window
    (:mod:`edge.agent.commands`) are measured with it. A kill -9 loses only the time since the
    last commit (the agent's housekeeping commits at least every 10 minutes).

Threads
    Writes go through one connection, guarded by a lock: the lane calls :meth:`transaction` on
    its own thread (the event loop is fine: a commit is one fsync), the uplink calls
    :meth:`purge` from a worker thread. The uplink's reads (:meth:`pending`) use a second
    connection, which in WAL mode never waits for a writer's fsync and sees committed records
    only. One process opens the file at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from mqtt_schemas import topics, validate
from mqtt_schemas.envelope import ENVELOPE_FIELDS, Clock, format_time, uuid7
from mqtt_schemas.topics import RECORD_CHANNELS
from mqtt_schemas.validation import tag

from .config import OutboxLimits
from .errors import OutboxError, OutboxFull

__all__ = [
    "Outbox",
    "OutboxStats",
    "Record",
    "Transaction",
    "canonical_json",
    "private_database",
]

RECORD_OVERHEAD = 96
"""Bytes counted per record beside its payload: the row, its id index entry, page slack."""
TYPICAL_RECORD = 4096
"""A crossing with its hits, about: what :meth:`Outbox.refusal` checks the budget against."""
BALLAST_MIN = 1024 * 1024
BALLAST_MAX = 4 * 1024 * 1024
"""Bounds of the ballast file (module docs: Full disk); a quarter of the reserve between them."""
WAL_CHECKPOINT_PAGES = 64
"""SQLite's automatic checkpoint, in WAL pages (its default: 1000): what the database file may
still have to grow by when the disk fills is kept small (module docs: Full disk)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uplink_outbox (
    seq INTEGER PRIMARY KEY,       -- the envelope's seq: publication order
    id TEXT NOT NULL UNIQUE,       -- the envelope's id (UUIDv7), named by the console's ack
    channel TEXT NOT NULL,         -- crossings, hits, decisions
    created_ms INTEGER NOT NULL,   -- wall clock when enqueued, for the oldest-record age
    payload BLOB NOT NULL          -- canonical JSON, published byte for byte until acked
);
CREATE TABLE IF NOT EXISTS uplink_counters (
    name TEXT PRIMARY KEY,         -- seq, session
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

_BUMP = (
    "INSERT INTO uplink_counters (name, value) VALUES (?, 1) "
    "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value"
)


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """The bytes a payload is stored and published as: UTF-8 JSON, keys sorted, no spaces."""
    try:
        text = json.dumps(
            payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        )
        return text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise OutboxError(f"payload cannot be encoded as JSON: {exc}") from None


@dataclass(frozen=True)
class Record:
    """A record in the outbox: what is published, and where."""

    seq: int
    id: str
    channel: str
    payload: bytes


@dataclass(frozen=True)
class OutboxStats:
    """What the heartbeat reports about the outbox (``health.outbox``) and why it alarms."""

    depth: int
    bytes: int
    oldest_age_s: float | None
    alarm: bool
    alarm_reasons: tuple[str, ...]
    """Any of ``budget``, ``disk``, ``age``, ``depth``."""
    max_bytes: int
    free_bytes: int

    def to_health(self) -> dict[str, Any]:
        """The ``outbox`` object of a ``health`` payload."""
        return {
            "depth": self.depth,
            "oldest_age_s": self.oldest_age_s,
            "bytes": self.bytes,
            "alarm": self.alarm,
        }


class Transaction:
    """One open transaction on the kiosk database (see :meth:`Outbox.transaction`).

    Use :meth:`execute` for the lane's own tables. Do not call helpers that commit by
    themselves (``sqlite_utils`` table methods do) inside a transaction.
    """

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self.records: list[Record] = []
        self._bytes = 0

    def lifetime_ms(self) -> int:
        """:meth:`Outbox.lifetime_ms`: to stamp a row with a clock-jump-proof age."""
        return self._outbox.lifetime_ms()

    def execute(
        self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()
    ) -> sqlite3.Cursor:
        return self._outbox._connection.execute(sql, parameters)

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        return self._outbox._connection.executemany(sql, rows)

    def enqueue(self, channel: str, body: Mapping[str, Any], *, id: str | None = None) -> Record:
        """Add a record to the outbox in this transaction; return it as it will be published.

        *body* is the payload without the envelope. Raises :class:`OutboxFull` when the record
        does not fit, :class:`~mqtt_schemas.PayloadError` when it is not a valid record.
        """
        outbox = self._outbox
        if channel not in RECORD_CHANNELS:
            raise OutboxError(
                f"{channel!r} is not a record channel ({', '.join(RECORD_CHANNELS)}); "
                "use Uplink.publish_now for other messages"
            )
        clash = [key for key in ENVELOPE_FIELDS if key in body]
        if clash:
            raise OutboxError(f"the outbox fills in the envelope; remove {', '.join(clash)}")
        connection = outbox._connection
        # A savepoint makes the enqueue all-or-nothing inside the lane's transaction: a refused
        # record leaves no trace (not even a consumed seq) if the lane goes on to commit.
        connection.execute("SAVEPOINT uplink_enqueue")
        try:
            payload = outbox._stamp(topics.channel(channel).schema, body, id)
            data = canonical_json(payload)
            size = len(data)
            if size > outbox.limits.max_record_bytes:
                raise OutboxError(
                    f"record of {size} bytes exceeds max_record_bytes "
                    f"({outbox.limits.max_record_bytes})"
                )
            outbox._check_room(size + RECORD_OVERHEAD + self._bytes)
            connection.execute(
                "INSERT INTO uplink_outbox (seq, id, channel, created_ms, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                (payload["seq"], payload["id"], channel, int(time.time() * 1000), data),
            )
        except BaseException as exc:
            if connection.in_transaction:  # SQLite may have rolled back everything already
                connection.execute("ROLLBACK TO uplink_enqueue")
                connection.execute("RELEASE uplink_enqueue")
            if isinstance(exc, sqlite3.IntegrityError):
                raise OutboxError(f"record id {id!r} is already in the outbox") from None
            raise
        connection.execute("RELEASE uplink_enqueue")
        record = Record(payload["seq"], payload["id"], channel, data)
        self.records.append(record)
        self._bytes += _cost(record)
        return record


def _cost(record: Record) -> int:
    return len(record.payload) + RECORD_OVERHEAD


class Outbox:
    """The outbox (and counters) in the kiosk database at *path*; see the module docs."""

    def __init__(
        self,
        path: str | Path,
        device_id: str,
        clock: Clock,
        limits: OutboxLimits | None = None,
        *,
        disk_free: Callable[[Path], int] | None = None,
        uptime: Callable[[], float] | None = None,
    ) -> None:
        self.path = Path(path)
        self.device_id = topics.check_device_id(device_id)
        self.clock = clock
        self.limits = limits or OutboxLimits()
        self._disk_free = disk_free or (lambda p: shutil.disk_usage(p).free)
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []
        try:
            private_database(self.path)
        except OSError as exc:
            raise OutboxError(f"{self.path}: {exc.strerror or exc}") from None
        connection = _connect(self.path)
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise OutboxError(f"{self.path}: cannot use WAL mode (got {mode})")
            connection.execute("PRAGMA journal_size_limit = 16777216")
            connection.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            depth, size, top = connection.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(max(seq), 0) "
                "FROM uplink_outbox"
            ).fetchone()
            # The counter never falls below a seq still in the outbox (defence in depth).
            connection.execute(
                "INSERT INTO uplink_counters (name, value) VALUES ('seq', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                (top,),
            )
            (lifetime,) = connection.execute(
                "SELECT coalesce(max(value), 0) FROM uplink_counters WHERE name = 'lifetime_ms'"
            ).fetchone()
            connection.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise OutboxError(f"{self.path}: {exc}") from None
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        # Reads of committed records (the sender's) use a connection of their own: in WAL mode
        # they never wait for a writer's fsync, nor see the lane's uncommitted transaction.
        self._reader = _connect(self.path)
        self._reader.execute("PRAGMA query_only = ON")
        self._aux: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._depth = depth
        self._bytes = size + depth * RECORD_OVERHEAD
        self._uptime = uptime or _boot_time
        self.ballast_path = self.path.with_name(self.path.name + ".reserve")
        self.ballast_bytes = min(BALLAST_MAX, max(BALLAST_MIN, self.limits.reserve_free_bytes // 4))
        self._ballast = False
        self._restore_ballast()
        self._lifetime_base = lifetime
        self._lifetime_start = self._uptime()

    # -- the lane's side ----------------------------------------------------------------------

    @property
    def db(self) -> sqlite_utils.Database:
        """The kiosk database through sqlite-utils, on a connection of its own.

        For the lane's schema and reads, and for writes that need no record. Its statements
        are transactions of their own (SQLite serialises them with the outbox's); a change
        that must commit together with a record goes through :meth:`transaction` instead.
        """
        with self._lock:
            if self._aux is None:
                self._aux = _connect(self.path)
            return sqlite_utils.Database(self._aux)

    def query(
        self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Rows of a read on the outbox's own connection, under its lock.

        Sees everything committed, and, from the thread holding a :meth:`transaction`, that
        transaction's own changes: for the lane's reads of its state and review queue.
        """
        with self._lock:
            return self._connection.execute(sql, parameters).fetchall()

    def lifetime_ms(self) -> int:
        """Milliseconds this kiosk database has been in use, over every run (module docs)."""
        return self._lifetime_base + int((self._uptime() - self._lifetime_start) * 1000)

    def _keep_lifetime(self) -> None:
        """Write :meth:`lifetime_ms` in the open transaction (never lowering it)."""
        self._connection.execute(
            "INSERT INTO uplink_counters (name, value) VALUES ('lifetime_ms', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
            (self.lifetime_ms(),),
        )

    @staticmethod
    def new_id() -> str:
        """A new record id (UUIDv7), for a record that others name before it is enqueued."""
        return uuid7()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction: commit (fsynced) on normal exit, roll back on an exception."""
        with self._lock:
            connection = self._connection
            if connection.in_transaction:
                raise OutboxError("outbox transactions do not nest")
            connection.execute("BEGIN IMMEDIATE")
            tx = Transaction(self)
            try:
                yield tx
                self._keep_lifetime()
                connection.execute("COMMIT")
            except BaseException as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and _disk_full(exc):
                    raise OutboxFull("disk", f"{self.path}: the disk is full ({exc})") from exc
                raise
            self._depth += len(tx.records)
            self._bytes += tx._bytes
        if tx.records:
            self._notify()

    def enqueue(self, channel: str, body: Mapping[str, Any], *, id: str | None = None) -> Record:
        """Enqueue one record in a transaction of its own (when there is no lane state)."""
        with self.transaction() as tx:
            return tx.enqueue(channel, body, id=id)

    # -- envelope and counters ----------------------------------------------------------------

    def envelope(
        self, schema_name: str, body: Mapping[str, Any], *, id: str | None = None
    ) -> dict[str, Any]:
        """A complete, validated payload for a non-record message, with the next ``seq``.

        The seq is committed before this returns, so it is never handed out twice, even if the
        message is then never sent (a gap in seq is normal for heartbeats: QoS 0 may lose them).
        """
        with self._lock:
            return self._with_room(
                lambda: self._in_own_transaction(self._stamp, schema_name, body, id)
            )

    def next_session(self) -> int:
        """Increment the availability session counter, commit (fsync) and return it."""
        with self._lock:
            return self._with_room(
                lambda: self._in_own_transaction(
                    lambda: self._connection.execute(_BUMP, ("session",)).fetchone()[0]
                )
            )

    def counters(self) -> dict[str, int]:
        """The persistent counters: ``seq`` (last handed out) and ``session``."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT name, value FROM uplink_counters WHERE name IN ('seq', 'session')"
            ).fetchall()
        return {"seq": 0, "session": 0, **dict(rows)}

    def advance_counters(self, *, seq: int = 0, session: int = 0) -> None:
        """Raise the counters to at least these values (after restoring the database)."""
        with self._lock, self._own_transaction():
            for name, value in (("seq", seq), ("session", session)):
                self._connection.execute(
                    "INSERT INTO uplink_counters (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                    (name, value),
                )

    def _in_own_transaction(self, function: Callable[..., Any], *args: Any) -> Any:
        with self._own_transaction():
            return function(*args)

    @contextmanager
    def _own_transaction(self) -> Iterator[None]:
        connection = self._connection
        if connection.in_transaction:
            raise OutboxError("not allowed inside an outbox transaction")
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._keep_lifetime()
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _stamp(self, schema_name: str, body: Mapping[str, Any], id: str | None) -> dict[str, Any]:
        """Fill in the envelope (allocating a seq in the open transaction) and validate."""
        seq = self._connection.execute(_BUMP, ("seq",)).fetchone()[0]
        reading = self.clock.read()
        payload = {
            **body,
            "schema": tag(schema_name),
            "id": id or uuid7(),
            "device_id": self.device_id,
            "seq": seq,
            "time": format_time(reading.time),
            "clock": reading.state.to_json(),
        }
        validate(schema_name, payload)
        return payload

    # -- the ballast (module docs: Full disk) -------------------------------------------------

    def _restore_ballast(self) -> None:
        """Allocate the ballast if it is missing and the disk has room for it and the reserve."""
        if self._ballast:
            return
        path = self.ballast_path
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size >= self.ballast_bytes:  # kept from the last run
                self._ballast = True
                return
        if self._disk_free(self.path.parent) - self.ballast_bytes < self.limits.reserve_free_bytes:
            return
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(descriptor, 0, self.ballast_bytes)  # real blocks, not a hole
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError:  # the space went meanwhile: try again later
            with contextlib.suppress(OSError):
                path.unlink()
            return
        self._ballast = True

    def _release_ballast(self) -> bool:
        """Delete the ballast to make room for a write the full disk refused; False if gone."""
        if not self._ballast:
            return False
        with contextlib.suppress(FileNotFoundError):
            self.ballast_path.unlink()
        self._ballast = False
        return True

    def _with_room(self, write: Callable[[], Any]) -> Any:
        """*write* (a whole transaction); on a full disk, release the ballast and retry once."""
        try:
            return write()
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc) or not self._release_ballast():
                raise
        result = write()
        with contextlib.suppress(sqlite3.Error):  # give the WAL's pages back to the disk
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return result

    def _free_for_records(self) -> int:
        """Free bytes as records may use them: a missing ballast's size counts as used."""
        free = self._disk_free(self.path.parent)
        return free if self._ballast else free - self.ballast_bytes

    def refusal(self) -> str | None:
        """Why a new record would be refused now (``budget`` or ``disk``), or None."""
        with self._lock:
            self._restore_ballast()
            if self._bytes + TYPICAL_RECORD > self.limits.max_bytes:
                return "budget"
            if self._free_for_records() < self.limits.reserve_free_bytes:
                return "disk"
        return None

    def _check_room(self, adding: int) -> None:
        limits = self.limits
        self._restore_ballast()
        if self._bytes + adding > limits.max_bytes:
            raise OutboxFull(
                "budget",
                f"outbox full: {self._bytes} of {limits.max_bytes} bytes held by {self._depth} "
                "unacked records; refer travellers to an officer until the uplink drains it",
            )
        free = self._free_for_records()
        if free - adding < limits.reserve_free_bytes:
            raise OutboxFull(
                "disk",
                f"disk nearly full: {free} bytes free on {self.path.parent} for records, reserve "
                f"is {limits.reserve_free_bytes}; refer travellers to an officer",
            )

    # -- the uplink's side --------------------------------------------------------------------

    def pending(self, after_seq: int, limit: int, up_to_seq: int | None = None) -> list[Record]:
        """Up to *limit* records with ``after_seq < seq <= up_to_seq``, in seq order."""
        top = up_to_seq if up_to_seq is not None else (1 << 63) - 1
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT seq, id, channel, payload FROM uplink_outbox "
                "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after_seq, top, limit),
            ).fetchall()
        return [Record(*row) for row in rows]

    def last_seq(self) -> int:
        """The highest seq in the outbox (0 when it is empty)."""
        with self._read_lock:
            return self._reader.execute(
                "SELECT coalesce(max(seq), 0) FROM uplink_outbox"
            ).fetchone()[0]

    def purge(self, ids: Iterable[str]) -> int:
        """Delete the records the console acked, in one transaction; return how many were here.

        Unknown ids (already purged, or never ours) are ignored: acking twice is harmless.
        """
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0

        def delete() -> tuple[int, int]:
            removed = freed = 0
            with self._own_transaction():
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows = self._connection.execute(
                        f"DELETE FROM uplink_outbox WHERE id IN ({marks}) "
                        "RETURNING length(payload)",
                        chunk,
                    ).fetchall()
                    removed += len(rows)
                    freed += sum(size for (size,) in rows) + len(rows) * RECORD_OVERHEAD
            return removed, freed

        with self._lock:
            removed, freed = self._with_room(delete)
            self._depth -= removed
            self._bytes -= freed
        return removed

    def stats(self) -> OutboxStats:
        """Depth, size, oldest-record age and the health alarm."""
        limits = self.limits
        with self._lock:
            depth, size = self._depth, self._bytes
        with self._read_lock:
            row = self._reader.execute(
                "SELECT created_ms FROM uplink_outbox ORDER BY seq LIMIT 1"
            ).fetchone()
        oldest = None if row is None else max(0.0, time.time() - row[0] / 1000)
        refused = self.refusal()
        free = self._disk_free(self.path.parent)
        reasons = []
        if size >= limits.alarm_ratio * limits.max_bytes:
            reasons.append("budget")
        if free < limits.alarm_free_bytes or refused == "disk":
            reasons.append("disk")
        if oldest is not None and oldest > limits.alarm_age_s:
            reasons.append("age")
        if depth >= limits.alarm_depth:
            reasons.append("depth")
        return OutboxStats(
            depth=depth,
            bytes=size,
            oldest_age_s=None if oldest is None else round(oldest, 3),
            alarm=bool(reasons),
            alarm_reasons=tuple(reasons),
            max_bytes=limits.max_bytes,
            free_bytes=free,
        )

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call *callback* (from the committing thread) after each commit that added records."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.remove(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            callback()

    def close(self) -> None:
        with self._lock, self._read_lock:
            # commits the lifetime; on a full disk (or closed twice) minutes of it are lost
            with contextlib.suppress(sqlite3.Error):
                if not self._connection.in_transaction:
                    with self._own_transaction():
                        pass
            self._reader.close()
            if self._aux is not None:
                self._aux.close()
            self._connection.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def private_database(path: Path) -> None:
    """Make *path* a private SQLite file (0600) in a private directory (0700) before SQLite
    opens it, whatever the process umask.

    SQLite creates the ``-wal`` and ``-shm`` files with the database file's own permissions,
    so creating (or tightening) the main file first keeps all three private: they hold
    travellers' identities. A missing directory is made 0700; an existing one is left as it is
    (the state directory's mode is the image's and systemd's, ``StateDirectoryMode=0700``).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(descriptor).st_mode & 0o077:  # made by an older agent, or by hand
            os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)
    for suffix in ("-wal", "-shm"):  # left by an older agent with the old file's mode
        with contextlib.suppress(FileNotFoundError):
            companion = path.with_name(path.name + suffix)
            if companion.stat().st_mode & 0o077:
                companion.chmod(0o600)


def _connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), every commit fsynced."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 10000")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
    return connection


def _boot_time() -> float:
    """Seconds of ``CLOCK_BOOTTIME``: monotonic, and counting time suspended (unlike
    ``time.monotonic``); where the platform lacks it, ``time.monotonic``."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else time.monotonic()


def _disk_full(exc: sqlite3.OperationalError) -> bool:
    return "full" in str(exc).lower()
