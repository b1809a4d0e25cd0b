"""Keeping the kiosk's watchlist current over MQTT: manifest, broadcast deltas, catch-up.

::

    sync = WatchlistSync(store_path, load_trust(directory=keys), device_id,
                         on_applied=lambda result: log.info(result.describe()))
    sync.attach(transport)                # before it runs: subscribes to three channels
    ...
    body["watchlist"] = sync.health()     # heartbeat
    body["components"]["watchlist"] = sync.component()
    await sync.resync()                   # the console's watchlist-resync command

What arrives, and what the kiosk does (``mqtt-schemas/topics.md``, "Watchlist"):

Manifest (fleet, retained, so re-delivered on every (re)connect)
    Nothing is ever applied from it: it is not signed. It only says where the console is.
    Equal to the store's version: the kiosk knows it is up to date (``age_s`` counts from
    here). One behind, with the manifest's delta leading from the store's version: the
    broadcast delta is on its way; if it has not been applied after ``delta_grace_s``, the
    kiosk asks for it. Further behind, version 0, or only a snapshot leading there: it asks
    at once (``watchlist-catchup``, reason ``startup``). While still behind it asks again
    every ``retry_s``; offline (:class:`~.transport.Offline`) it simply waits for the next
    manifest, which the broker re-delivers on reconnect.

Chunks (fleet broadcasts, and catch-up answers on the kiosk's own topic)
    A chunk addressed to another kiosk (``for_device``) is ignored. Every chunk's signature
    and shape are verified before anything else; a forged, untrusted or malformed one is
    dropped, logged with its reason, and health shows ``degraded`` (it changes nothing, and
    does not undo an apply under way: the genuine chunk completes it). Chunks that are
    already applied (a replay, a duplicate) are dropped quietly.

    Deltas and snapshots are applied **as they stream** (:class:`~.delta.StreamApply`): the
    first chunk of one that follows the store's version opens one store transaction (on the
    sync thread's own connection), each next chunk is verified and applied in it at once,
    and after the last the whole ``changes_sha256`` is checked and the version committed.
    Anything wrong (the digest, a change that does not fit the store, a disk error) rolls
    the whole transaction back: store and version as before, a one-line reason in the log
    and in health. Memory is a chunk or two whatever the size: a 1,000,000-person snapshot
    is some 240 chunks of 1 MiB (~10 MB each once parsed).

    Catch-up answers come a ``window`` of chunks at a time (``watchlist-catchup@2``): as it
    applies them the kiosk asks for the next window (``reason: continue`` with ``resume``),
    then for the next delta; a window that does not come within ``retry_s`` is asked for
    again (``retry``), and an apply with no chunk for ``staging_expiry_s`` is rolled back.
    The lane keeps screening against the committed version until the commit.

    Only chunks that arrive ahead of their turn (a redelivery out of order, the deltas that
    follow a snapshot being applied) are staged **on disk** (a small SQLite file next to the
    store, ``staging_max_bytes``); they are applied from there, in order, when their turn
    comes. A delta that does not follow the store's version yet waits while the kiosk asks
    for the missing ones (``gap``); one that does not fit the store (``diverged``) makes it
    ask for a snapshot.

Restart: an apply under way is never committed, so a kiosk stopped or powered off half way
finds its store at the version it had (SQLite drops the open transaction) and asks for it
again when the manifest comes. Staging is bounded: a partial delta untouched for
``staging_expiry_s`` is dropped, and past ``staging_max_bytes`` the stalest partial deltas make
room (their chunks come again in a catch-up).

The lane screens on its own read-only store connection; it sees a new version as soon as the
apply commits (:meth:`WatchlistStore.refresh` tells the matcher to forget what it cached).

The network is not the sync's business: it is given a :class:`~.transport.Transport` (subscribe
to a channel, publish on one or raise :class:`~.transport.Offline`), which on the kiosk is the
uplink seen through :class:`edge.agent.transport.UplinkTransport`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import datetime as dt
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mqtt_schemas.health import component_entry
from mqtt_schemas.trust import TrustError, verify_trust_update
from mqtt_schemas.validation import JsonError, parse_json
from mqtt_schemas.watchlist import WatchlistError, verify_chunk

from .delta import ApplyResult, DeltaRejected, StreamApply
from .store import WatchlistStore
from .transport import Offline, Transport

__all__ = ["SyncSettings", "WatchlistSync"]

log = logging.getLogger("edge.watchlist.sync")
T = TypeVar("T")

Reason = Literal["gap", "restore", "resync", "startup", "continue", "retry"]
Want = Literal["delta", "snapshot", "auto"]

QUIET_REJECTIONS = frozenset({"replay", "older"})
"""Refusals that only mean "already have it": logged at info level, health unaffected."""


@dataclass(frozen=True)
class SyncSettings:
    """Timings and bounds of :class:`WatchlistSync` (tests shorten the timings)."""

    delta_grace_s: float = 30.0
    """One version behind, how long to wait for the broadcast delta before asking for it."""
    retry_s: float = 120.0
    """While behind the manifest, ask again this often (a catch-up or its answer was lost)."""
    staging_max_bytes: int = 64 * 1024 * 1024
    """Staged chunk bytes at most. Chunks are applied as they come; only those that arrive
    ahead of their turn wait here (a redelivery out of order, the deltas after a snapshot
    being applied), so a snapshot of any size needs none of it."""
    staging_expiry_s: float = 6 * 3600.0
    """A partial delta whose last chunk came longer ago than this is dropped, and an apply
    under way that long without a chunk is rolled back."""
    window_chunks: int = 2
    """Chunks a catch-up answer may send at once (``window``): the kiosk asks for the next
    window as it applies, so a snapshot of any size never queues up in its memory (a chunk
    of 1 MiB is ~10 MB once parsed; applying one takes ~1 s, the round trip milliseconds)."""

    def __post_init__(self) -> None:
        if self.delta_grace_s <= 0 or self.retry_s <= 0 or self.staging_expiry_s <= 0:
            raise ValueError("delta_grace_s, retry_s and staging_expiry_s must be positive")
        if not 1 <= self.window_chunks <= 1000:
            raise ValueError("window_chunks must be 1 to 1000")
        if self.staging_max_bytes < 1 << 20:
            raise ValueError("staging_max_bytes must be at least 1 MiB (one chunk)")


# ---------------------------------------------------------------------------------------------
# Staging on disk


@dataclass(frozen=True)
class Staged:
    """A delta or snapshot some of whose chunks are staged."""

    key: str
    kind: str
    from_version: int | None
    to_version: int
    chunk_count: int
    received: int

    @property
    def complete(self) -> bool:
        return self.received == self.chunk_count

    def describe(self) -> str:
        if self.kind == "snapshot":
            return f"snapshot of version {self.to_version}"
        return f"delta {self.from_version} -> {self.to_version}"


class StagingFull(Exception):
    """A chunk does not fit in the staging budget even after evicting partial deltas."""


_STAGING_SCHEMA = """
CREATE TABLE IF NOT EXISTS staged (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    from_version INTEGER,
    to_version INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    received INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    last_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staged_chunks (
    key TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (key, chunk_index)
) WITHOUT ROWID;
"""


def staging_key(chunk: Mapping[str, Any]) -> str:
    """Which delta a chunk belongs to: kind, versions, chunk count and the changes' digest.

    The digest (signed in every chunk) is what tells two deltas of the same versions apart;
    ``chunk_count`` is part of the identity :func:`~mqtt_schemas.watchlist.assemble` checks.
    The key id is not: chunks are verified one by one as they arrive, whoever signed them.
    """
    source = chunk.get("from_version")
    return ":".join(
        (
            chunk["kind"],
            "-" if source is None else str(source),
            str(chunk["to_version"]),
            str(chunk["chunk_count"]),
            chunk["changes_sha256"],
        )
    )


class ChunkStaging:
    """Verified chunks on disk, by delta, until their delta is complete (one thread only)."""

    def __init__(self, path: Path, *, max_bytes: int, expiry_s: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.expiry_s = expiry_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = NORMAL")
        self.connection.executescript(_STAGING_SCHEMA)

    def close(self) -> None:
        self.connection.close()

    def add(self, chunk: Mapping[str, Any], now: float | None = None) -> Staged:
        """Stage *chunk* (a redelivered one is ignored); the delta's state afterwards."""
        now = time.time() if now is None else now
        key = staging_key(chunk)
        body = json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()
        db = self.connection
        db.execute("BEGIN IMMEDIATE")
        try:
            self._expire(now)
            if not db.execute(
                "SELECT 1 FROM staged_chunks WHERE key = ? AND chunk_index = ?",
                (key, chunk["chunk_index"]),
            ).fetchone():
                self._make_room(len(body), keep=key)
                db.execute(
                    "INSERT INTO staged (key, kind, from_version, to_version, chunk_count, "
                    "last_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                    (
                        key,
                        chunk["kind"],
                        chunk.get("from_version"),
                        chunk["to_version"],
                        chunk["chunk_count"],
                        now,
                    ),
                )
                db.execute(
                    "INSERT INTO staged_chunks (key, chunk_index, body) VALUES (?, ?, ?)",
                    (key, chunk["chunk_index"], body),
                )
                db.execute(
                    "UPDATE staged SET received = received + 1, bytes = bytes + ?, last_at = ? "
                    "WHERE key = ?",
                    (len(body), now, key),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        found = self.get(key)
        assert found is not None
        return found

    def _expire(self, now: float) -> None:
        stale = [
            row[0]
            for row in self.connection.execute(
                "SELECT key FROM staged WHERE received < chunk_count AND last_at < ?",
                (now - self.expiry_s,),
            )
        ]
        for key in stale:
            log.info("watchlist: dropped a partial %s that stopped arriving", _describe_key(key))
            self._delete(key)

    def _make_room(self, size: int, keep: str) -> None:
        used = self.bytes()
        if used + size <= self.max_bytes:
            return
        for (key,) in self.connection.execute(
            "SELECT key FROM staged WHERE key != ? AND received < chunk_count ORDER BY last_at",
            (keep,),
        ).fetchall():
            (freed,) = self.connection.execute(
                "SELECT bytes FROM staged WHERE key = ?", (key,)
            ).fetchone()
            log.warning(
                "watchlist: staging full; dropped the partial %s to make room", _describe_key(key)
            )
            self._delete(key)
            used -= freed
            if used + size <= self.max_bytes:
                return
        raise StagingFull(
            f"{used + size} bytes would exceed the staging budget of {self.max_bytes}"
        )

    def bytes(self) -> int:
        return int(self.connection.execute("SELECT total(bytes) FROM staged").fetchone()[0])

    def get(self, key: str) -> Staged | None:
        row = self.connection.execute(
            "SELECT key, kind, from_version, to_version, chunk_count, received FROM staged "
            "WHERE key = ?",
            (key,),
        ).fetchone()
        return Staged(*row) if row else None

    def all(self) -> list[Staged]:
        rows = self.connection.execute(
            "SELECT key, kind, from_version, to_version, chunk_count, received FROM staged "
            "ORDER BY to_version, kind"
        ).fetchall()
        return [Staged(*row) for row in rows]

    def chunks(self, key: str) -> list[dict[str, Any]]:
        """The staged chunks of *key*, in chunk order."""
        return [
            json.loads(body)
            for (body,) in self.connection.execute(
                "SELECT body FROM staged_chunks WHERE key = ? ORDER BY chunk_index", (key,)
            )
        ]

    def has(self, key: str, index: int) -> bool:
        return (
            self.connection.execute(
                "SELECT 1 FROM staged_chunks WHERE key = ? AND chunk_index = ?", (key, index)
            ).fetchone()
            is not None
        )

    def take(self, key: str, index: int) -> dict[str, Any] | None:
        """Remove and return the staged chunk *index* of *key* (``None`` if not staged)."""
        db = self.connection
        row = db.execute(
            "SELECT body FROM staged_chunks WHERE key = ? AND chunk_index = ?", (key, index)
        ).fetchone()
        if row is None:
            return None
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM staged_chunks WHERE key = ? AND chunk_index = ?", (key, index))
        db.execute(
            "UPDATE staged SET received = received - 1, bytes = bytes - ? WHERE key = ?",
            (len(row[0]), key),
        )
        db.execute("COMMIT")
        return json.loads(row[0])

    def drop(self, key: str) -> None:
        self.connection.execute("BEGIN IMMEDIATE")
        self._delete(key)
        self.connection.execute("COMMIT")

    def _delete(self, key: str) -> None:
        self.connection.execute("DELETE FROM staged_chunks WHERE key = ?", (key,))
        self.connection.execute("DELETE FROM staged WHERE key = ?", (key,))


def _describe_key(key: str) -> str:
    kind, source, target, *_ = key.split(":")
    return f"snapshot of version {target}" if kind == "snapshot" else f"delta {source} -> {target}"


# ---------------------------------------------------------------------------------------------
# The synchroniser


@dataclass(frozen=True)
class _Progress:
    """Where the delta or snapshot being applied stands (computed in the sync thread)."""

    key: str
    kind: str
    to_version: int
    changes_sha256: str
    next_index: int
    chunk_count: int
    direct: bool
    """Its chunks come as a catch-up answer to this kiosk (so it asks for the next window)."""

    def describe(self) -> str:
        return _describe_key(self.key)


@dataclass
class _Outcome:
    """What one chunk (or a manifest, or a timer) came to in the sync thread."""

    version: int = 0
    applied_at: str | None = None
    applied: list[ApplyResult] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    """``(reason, message)`` of chunks refused (the stream, if any, goes on)."""
    aborted: list[tuple[str, str]] = field(default_factory=list)
    """``(reason, message)`` of applies rolled back (bad chunk k, digest, store, stall)."""
    obsolete: bool = False
    full: str = ""
    gap: bool = False
    progress: _Progress | None = None


class WatchlistSync:
    """Keeps the watchlist store at *store_path* current; see the module documentation.

    *trusted*: watchlist signing keys by key id (:func:`~edge.screening.delta.load_trust`).
    *anchors*: trust anchors (``[watchlist] trust_anchors``): with them, the keys come from the
    latest trust update (:mod:`mqtt_schemas.trust`) received on the fleet trust topic and kept
    in *trust_path* (default ``<store>.trust.json``), each key for its versions only; *trusted*
    serves until the first update arrives (a kiosk's install).
    *staging_path*: where chunks wait (default: ``<store>.staging`` next to the store).
    *on_applied*: called on the event loop after each delta or snapshot is applied.
    """

    def __init__(
        self,
        store_path: Path,
        trusted: Mapping[str, Ed25519PublicKey],
        device_id: str,
        *,
        staging_path: Path | None = None,
        settings: SyncSettings | None = None,
        on_applied: Callable[[ApplyResult], None] | None = None,
        anchors: Mapping[str, Ed25519PublicKey] | None = None,
        trust_path: Path | None = None,
    ) -> None:
        self.store_path = Path(store_path)
        self.trusted: Mapping[str, Ed25519PublicKey] = dict(trusted)
        self.anchors = dict(anchors or {})
        self.trust_path = trust_path or self.store_path.with_name(
            self.store_path.name + ".trust.json"
        )
        if self.anchors:
            self._load_trust()
        self.device_id = device_id
        self.staging_path = staging_path or self.store_path.with_name(
            self.store_path.name + ".staging"
        )
        self.settings = settings or SyncSettings()
        self.on_applied = on_applied
        with WatchlistStore(self.store_path) as store:  # creates an empty store if missing
            self._version = store.version
            self._applied_at = store.applied_at
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="watchlist")
        self._staging: ChunkStaging | None = None  # opened in the thread, used only there
        self._stream: StreamApply | None = None  # the apply under way, in the thread only
        self._stream_key: str | None = None
        self._stream_direct = False
        self._transport: Transport | None = None
        self._lock = asyncio.Lock()
        self._manifest: dict[str, Any] | None = None
        self._latest_at: float | None = None
        self._behind_since: float | None = None
        self._snapshot_wanted = False
        self._last_ask: tuple[float, int] | None = None
        self._progress: _Progress | None = None
        self._progress_at = 0.0
        self._asked_upto: dict[str, int] = {}
        self._timer: asyncio.Task[None] | None = None
        self._fault: str | None = None
        self._state: tuple[str, str] = ("starting", "")
        self._since = dt.datetime.now(dt.UTC)
        self.asked: list[dict[str, Any]] = []
        """Every catch-up body this kiosk published (newest last, at most 100)."""

    # -- wiring ---------------------------------------------------------------------------

    def attach(self, transport: Transport) -> None:
        """Subscribe to the manifest and both deltas channels on *transport* (before it runs).

        Called again with a new transport when the agent restarts its uplink: catch-ups then
        go out through the new one.
        """
        self._transport = transport
        if self.anchors:
            transport.subscribe("watchlist/trust", self._on_trust, scope="fleet")
        transport.subscribe("watchlist/manifest", self._on_manifest, scope="fleet")
        transport.subscribe("watchlist/deltas", self._on_chunk, scope="fleet")
        transport.subscribe("watchlist/deltas", self._on_chunk, scope="device")

    # -- trust --------------------------------------------------------------------------------

    def _load_trust(self) -> None:
        """The trust update kept from before (checked again: the file is outside input too)."""
        try:
            held = parse_json(self.trust_path.read_bytes())
            self.trusted = verify_trust_update(held, self.anchors)
        except FileNotFoundError:
            return  # a new kiosk: its installed keys serve until the first update
        except (OSError, JsonError, TrustError) as exc:
            log.error("watchlist trust: %s is unusable (%s); using the installed keys",
                      self.trust_path.name, exc)  # fmt: skip

    async def _on_trust(self, update: dict[str, Any]) -> None:
        """A trust update: applied if an anchor signed it and it is newer than the held one."""
        try:
            trust = verify_trust_update(update, self.anchors)
        except TrustError as exc:
            log.warning("watchlist trust: ignored an update: %s", exc)
            return
        held = getattr(self.trusted, "sequence", 0)
        if trust.sequence <= held:
            if trust.sequence < held:
                log.warning(
                    "watchlist trust: ignored update %d, older than %d", trust.sequence, held
                )
            return
        temporary = self.trust_path.with_name(self.trust_path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(update).encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.trust_path)
        self.trusted = trust
        states = ", ".join(f"{k.key_id} {k.state}" for k in trust.keys.values())
        log.info("watchlist trust: update %d applied (%s)", trust.sequence, states)

    async def close(self) -> None:
        """Stop the retry timer, roll back an apply under way (it is asked for again after a
        restart) and release the staging file."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        await self._run(self._close_thread)
        self._thread.shutdown(wait=True)

    async def __aenter__(self) -> WatchlistSync:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- what the agent asks --------------------------------------------------------------

    @property
    def version(self) -> int:
        """The version the store holds (as of the last apply or manifest)."""
        return self._version

    @property
    def applying(self) -> str | None:
        """What is being applied, e.g. ``snapshot of version 9: chunk 40 of 212``, or None."""
        progress = self._progress
        if progress is None:
            return None
        return f"{progress.describe()}: chunk {progress.next_index + 1} of {progress.chunk_count}"

    async def resync(self) -> dict[str, Any]:
        """Ask the console for a fresh snapshot (the ``watchlist-resync`` command).

        Returns the catch-up body sent; raises :class:`~.transport.Offline` when offline (the
        command's answer says so; nothing is lost, the store keeps its version).
        """
        async with self._lock:
            self._snapshot_wanted = True
            return await self._ask("resync", "snapshot", raise_offline=True)

    def health(self) -> dict[str, Any]:
        """The ``watchlist`` object of a ``health`` heartbeat."""
        age = None if self._latest_at is None else round(time.monotonic() - self._latest_at, 1)
        return {
            "version": self._version,
            "applied_at": self._applied_at if self._version else None,
            "age_s": age,
        }

    def component(self) -> dict[str, Any]:
        """The ``components.watchlist`` entry of a heartbeat: ok, degraded, down or starting."""
        self._update_state()
        state, detail = self._state
        return component_entry(state, self._since, detail)

    def _update_state(self) -> None:
        manifest = self._manifest
        behind = manifest is not None and self._version < manifest["version"]
        if self._version == 0:
            state = (
                ("starting", "")
                if manifest is None
                else (
                    "down",
                    "no watchlist applied yet (travellers are referred); a snapshot is requested",
                )
            )
        elif self._fault:
            state = ("degraded", self._fault)
        elif (
            behind
            and self._behind_since is not None
            and time.monotonic() - self._behind_since > self.settings.delta_grace_s
        ):
            assert manifest is not None
            state = (
                "degraded",
                f"version {self._version}, the console's is {manifest['version']}: catching up",
            )
        else:
            state = ("ok", "")
        if state != self._state:
            self._state = state
            self._since = dt.datetime.now(dt.UTC)

    # -- manifest -------------------------------------------------------------------------

    async def _on_manifest(self, manifest: dict[str, Any]) -> None:
        async with self._lock:
            self._manifest = manifest
            outcome = await self._run(self._advance_only)
            await self._handle(outcome)
            if not self._check_latest():
                await self._ask_if_behind()

    def _check_latest(self) -> bool:
        """Whether the store is at (or past) the manifest's version; if so, note it (lock held)."""
        manifest = self._manifest
        if manifest is None:
            return False
        latest, version = manifest["version"], self._version
        if version >= latest:
            if version > latest:
                # An older manifest queued in the session while a newer delta was applied,
                # or a console whose history was restored: the kiosk never goes back.
                log.info(
                    "watchlist: the manifest announces version %d, the store holds %d; keeping it",
                    latest,
                    version,
                )
            else:
                self._latest_at = time.monotonic()
            self._behind_since = None
            if self._progress is None:
                self._cancel_timer()
            self._update_state()
            return True
        return False

    def _streaming(self) -> bool:
        """Whether an apply is under way and its chunks still come (lock held)."""
        return (
            self._progress is not None
            and time.monotonic() - self._progress_at < self.settings.retry_s
        )

    async def _ask_if_behind(self) -> None:
        """After a manifest: wait for the broadcast delta, or ask for a catch-up (lock held)."""
        manifest = self._manifest
        assert manifest is not None
        latest, version = manifest["version"], self._version
        if self._behind_since is None:
            self._behind_since = time.monotonic()
        delta = manifest.get("delta")
        if self._streaming():
            self._arm(self.settings.retry_s)  # its chunks are coming: do not ask it again
        elif version > 0 and latest == version + 1 and delta and delta["from_version"] == version:
            # The broadcast delta is normally published just before the manifest.
            self._arm(self.settings.delta_grace_s)
        else:
            await self._ask("startup", "snapshot" if version == 0 else "auto")
            self._arm(self.settings.retry_s)
        self._update_state()

    def _arm(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = asyncio.create_task(self._still_behind(delay), name="watchlist-retry")

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None

    async def _still_behind(self, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._lock:
            self._timer = None
            progress = self._progress
            if progress is not None:
                idle = time.monotonic() - self._progress_at
                if idle >= self.settings.staging_expiry_s:
                    outcome = await self._run(self._abandon, "stalled")
                    await self._handle(outcome)
                elif idle >= self.settings.retry_s:
                    # Its next chunk was lost (or the request for it): ask for it again.
                    await self._ask_window(progress, progress.next_index, reason="retry")
                if self._progress is not None:
                    self._arm(self.settings.retry_s)
                    return
            manifest = self._manifest
            if manifest is None or self._version >= manifest["version"]:
                return
            await self._ask("startup", "snapshot" if self._version == 0 else "auto")
            self._arm(self.settings.retry_s)

    # -- chunks ---------------------------------------------------------------------------

    async def _on_chunk(self, chunk: dict[str, Any]) -> None:
        addressee = chunk.get("for_device")
        if addressee is not None and addressee != self.device_id:
            log.info("watchlist: ignored a chunk addressed to another kiosk")
            return
        async with self._lock:
            outcome = await self._run(self._receive, chunk)
            await self._handle(outcome)
            if outcome.obsolete:
                log.debug("watchlist: ignored a chunk of an applied version (duplicate or replay)")
            if outcome.full:
                log.warning("watchlist: chunk not staged: %s", outcome.full)
            if outcome.gap:
                await self._ask("gap", "delta", throttle=True)
            if outcome.applied or outcome.aborted:
                # Only the manifest (and the retry timer) ask when merely behind: a catch-up
                # answer of several deltas must not ask again after each one. An answer of
                # one window of one step is followed by the next step's ask, though.
                latest = self._check_latest()
                if not latest and self._progress is None and self._manifest is not None:
                    if self._snapshot_wanted:
                        pass  # asked for one already (restore)
                    elif outcome.aborted:
                        await self._ask("retry", "snapshot" if self._version == 0 else "auto")
                    elif chunk.get("for_device") == self.device_id:
                        await self._ask("continue", "auto")
                    self._arm(self.settings.retry_s)

    async def _handle(self, outcome: _Outcome) -> None:
        """Take in what the thread did: versions, refusals, applies, progress (lock held)."""
        self._version, self._applied_at = outcome.version, outcome.applied_at
        for reason, message in outcome.refused:
            self._refused(reason, message)
        for reason, message in outcome.aborted:
            if reason == "diverged":
                log.warning("watchlist: %s", message)
                self._snapshot_wanted = True
                await self._ask("restore", "snapshot")
            else:
                self._refused(reason, message, rolled_back=True)
        for result in outcome.applied:
            log.info("watchlist: %s", result.describe())
            self._fault = None
            if result.kind == "snapshot":
                self._snapshot_wanted = False
            self._asked_upto.clear()
            self._check_latest()  # before anything else can observe the new version
            if self.on_applied is not None:
                try:
                    self.on_applied(result)
                except Exception:
                    log.exception("watchlist: the on_applied callback failed")
        progress = outcome.progress
        if progress is not None and progress != self._progress:
            self._progress_at = time.monotonic()
        self._progress = progress
        if progress is not None:
            if self._timer is None:
                self._arm(self.settings.retry_s)
            if progress.direct:
                window = self.settings.window_chunks
                upto = self._asked_upto.setdefault(progress.key, window)
                if upto < progress.chunk_count and progress.next_index >= upto - window // 2:
                    await self._ask_window(progress, upto, reason="continue")

    def _refused(self, reason: str, message: str, *, rolled_back: bool = False) -> None:
        if reason in QUIET_REJECTIONS:
            log.info("watchlist: %s", message)
            return
        if rolled_back:
            log.warning("watchlist: rolled back (%s): %s", reason, message)
            self._fault = f"rolled back a watchlist apply ({reason}): {message}"
        else:
            log.warning("watchlist: refused (%s): %s", reason, message)
            self._fault = f"refused a watchlist chunk ({reason}): {message}"
        self._update_state()

    # -- asking for a catch-up ------------------------------------------------------------

    async def _ask_window(self, progress: _Progress, start: int, *, reason: Reason) -> None:
        """Ask for the next window of the apply under way, from chunk *start* (lock held)."""
        resume = {
            "kind": progress.kind,
            "to_version": progress.to_version,
            "changes_sha256": progress.changes_sha256,
            "from_chunk": start,
        }
        body = await self._ask(reason, "auto", resume=resume)
        if self.asked and self.asked[-1] is body:
            self._asked_upto[progress.key] = start + self.settings.window_chunks

    async def _ask(
        self,
        reason: Reason,
        want: Want,
        *,
        throttle: bool = False,
        raise_offline: bool = False,
        resume: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "have_version": self._version,
            "want": want,
            "reason": reason,
            "window": self.settings.window_chunks,
        }
        if resume is not None:
            body["resume"] = resume
        now = time.monotonic()
        if throttle and self._last_ask is not None:
            at, version = self._last_ask
            if version == self._version and now - at < self.settings.retry_s:
                return body  # a catch-up for the same version is under way
        transport = self._transport
        try:
            if transport is None:
                raise Offline("no transport attached")
            await transport.publish("watchlist/catchup", body)
        except Offline as exc:
            log.info("watchlist: catch-up (%s) not sent: %s", reason, exc)
            if raise_offline:
                raise
            return body
        self._last_ask = (now, self._version)
        self.asked = [*self.asked[-99:], body]
        log.info(
            "watchlist: asked for a catch-up from version %d (%s, %s)%s",
            self._version,
            want,
            reason,
            f", {_describe_key_parts(resume)} from chunk {resume['from_chunk'] + 1}"
            if resume
            else "",
        )
        return body

    # -- in the sync thread ---------------------------------------------------------------

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, function, *args)

    def _stage_db(self) -> ChunkStaging:
        if self._staging is None:
            self._staging = ChunkStaging(
                self.staging_path,
                max_bytes=self.settings.staging_max_bytes,
                expiry_s=self.settings.staging_expiry_s,
            )
        return self._staging

    def _close_thread(self) -> None:
        if self._stream is not None:
            log.info("watchlist: stopped while applying the %s; rolled back", self._describe())
            self._end_stream()
        if self._staging is not None:
            self._staging.close()
            self._staging = None

    def _describe(self) -> str:
        return _describe_key(self._stream_key) if self._stream_key else "delta"

    def _read_store(self) -> tuple[int, str | None]:
        stream = self._stream
        if stream is not None:  # its own connection sees the version before the apply
            return stream.store.version, stream.store.applied_at
        with WatchlistStore(self.store_path) as store:
            return store.version, store.applied_at

    def _outcome(self, outcome: _Outcome | None = None) -> _Outcome:
        outcome = outcome or _Outcome()
        outcome.version, outcome.applied_at = self._read_store()
        stream, key = self._stream, self._stream_key
        if stream is not None and key is not None and stream.header is not None:
            kind, _, target, count, digest = key.split(":")
            outcome.progress = _Progress(
                key, kind, int(target), digest, stream.next_index, int(count), self._stream_direct
            )
        else:
            outcome.progress = None
        return outcome

    def _advance_only(self) -> _Outcome:
        outcome = _Outcome()
        self._advance(outcome)
        return self._outcome(outcome)

    def _abandon(self, reason: str) -> _Outcome:
        outcome = _Outcome()
        if self._stream is not None:
            what = self._describe()
            self._end_stream()
            outcome.aborted.append(
                (reason, f"{what}: no chunk came for too long; nothing of it was applied")
            )
        return self._outcome(outcome)

    def _receive(self, chunk: dict[str, Any]) -> _Outcome:
        outcome = _Outcome()
        direct = chunk.get("for_device") == self.device_id
        stream = self._stream
        index = chunk.get("chunk_index")
        if stream is not None and stream.belongs(chunk) and index == stream.next_index:
            self._feed(chunk, outcome)  # verifies it first; a bad one rolls the apply back
            self._stream_direct = self._stream_direct or direct
            self._advance(outcome)
            return self._outcome(outcome)
        try:
            verify_chunk(chunk, self.trusted)
        except WatchlistError as exc:
            outcome.refused.append((exc.reason, str(exc)))
            return self._outcome(outcome)
        version, _ = self._read_store()
        kind, source, target = chunk["kind"], chunk.get("from_version"), chunk["to_version"]
        if self._obsolete(kind, target, version) or (
            stream is not None and stream.belongs(chunk) and index < stream.next_index
        ):
            outcome.obsolete = True
            return self._outcome(outcome)
        if stream is None and index == 0 and self._startable(kind, source, target, version):
            self._start(staging_key(chunk), direct)
            self._feed(chunk, outcome)
        else:
            if kind == "delta" and source > version and stream is None:
                outcome.gap = True
            try:
                self._stage_db().add(chunk)
            except StagingFull as exc:
                outcome.full = str(exc)
        self._advance(outcome)
        return self._outcome(outcome)

    def _obsolete(self, kind: str, target: int, version: int) -> bool:
        if kind == "snapshot":
            return target < version or (target == version and not self._snapshot_wanted)
        return target <= version

    def _startable(self, kind: str, source: int | None, target: int, version: int) -> bool:
        if kind == "snapshot":
            return not self._obsolete(kind, target, version)
        return source == version

    def _start(self, key: str, direct: bool) -> None:
        store = WatchlistStore(self.store_path)
        self._stream = StreamApply(store, self.trusted)
        self._stream_key = key
        self._stream_direct = direct

    def _end_stream(self) -> None:
        stream, key = self._stream, self._stream_key
        self._stream = self._stream_key = None
        self._stream_direct = False
        if stream is not None:
            stream.abort()
            stream.store.close()
        if key is not None and self._staging is not None:
            self._staging.drop(key)

    def _feed(self, chunk: Mapping[str, Any], outcome: _Outcome) -> None:
        stream = self._stream
        assert stream is not None
        what = self._describe()
        try:
            stream.feed(chunk)
        except DeltaRejected as exc:
            if not stream.closed and stream.header is not None:
                # Refused before anything of it was applied (forged, malformed): the apply
                # goes on with the genuine chunk, asked for again if it does not come.
                outcome.refused.append((exc.reason, f"{what}: {exc}"))
                return
            self._end_stream()
            outcome.aborted.append((exc.reason, f"{what}: {exc}"))
            return
        except (sqlite3.Error, OSError) as exc:
            self._end_stream()
            outcome.aborted.append(("store-error", f"{what}: {type(exc).__name__}: {exc}"))
            return
        _release_memory()
        if stream.done:
            try:
                result = stream.finish()
            except DeltaRejected as exc:
                outcome.aborted.append((exc.reason, str(exc)))
            except (sqlite3.Error, OSError) as exc:
                outcome.aborted.append(("store-error", f"{what}: {type(exc).__name__}: {exc}"))
            else:
                outcome.applied.append(result)
            self._end_stream()

    def _advance(self, outcome: _Outcome) -> None:
        """Apply what staging holds in order: the stream's next chunks, then whatever can
        start from the store's version."""
        staging = self._stage_db()
        while True:
            stream, key = self._stream, self._stream_key
            if stream is not None and key is not None:
                chunk = staging.take(key, stream.next_index)
                if chunk is None:
                    return
                self._feed(chunk, outcome)
                continue
            version, _ = self._read_store()
            start: Staged | None = None
            for staged in staging.all():
                if self._obsolete(staged.kind, staged.to_version, version):
                    staging.drop(staged.key)
                elif (
                    start is None
                    and self._startable(
                        staged.kind, staged.from_version, staged.to_version, version
                    )
                    and staging.has(staged.key, 0)
                ):
                    start = staged
            if start is None:
                return
            chunk = staging.take(start.key, 0)
            assert chunk is not None
            self._start(start.key, chunk.get("for_device") == self.device_id)
            self._feed(chunk, outcome)


def _trimmer() -> Callable[[], None]:
    """glibc's ``malloc_trim``: give freed heap pages back to the system (else a no-op)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


_release_memory = _trimmer()
"""Called after each chunk: each is parsed on the event loop's thread and freed on this one,
~10 MB of small objects a time, and glibc otherwise keeps the freed pages of every thread's
arena; over a 1M-person snapshot that alone grew the agent by ~40 MB."""


def _describe_key_parts(resume: Mapping[str, Any]) -> str:
    if resume["kind"] == "snapshot":
        return f"snapshot of version {resume['to_version']}"
    return f"delta {resume['to_version'] - 1} -> {resume['to_version']}"
