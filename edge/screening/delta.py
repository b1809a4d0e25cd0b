"""Applying signed deltas and snapshots to the kiosk's store: verified, in order, all or nothing.

A delta is applied only when every chunk's signature verifies under a trusted key, the chunks
assemble into the whole delta (none missing, none out of place, none from another delta, the
changes matching the digest each chunk signs), and its ``from_version`` is exactly the store's
version. It is applied in one SQLite transaction, which also records the new version and when
it was applied; if anything fails (an entry to update that the store does not hold, a disk
error) the transaction rolls back and the store is as it was. Readers keep screening against
the previous version until the commit.

A snapshot replaces the whole store in one transaction the same way; it must not be older than
the store's version (that would roll a wanted person off the list).

Over the air a delta or snapshot is applied as it streams (:class:`StreamApply`): each chunk
verified and applied as it comes, inside the one transaction, the whole digest checked before
the commit; :func:`apply_chunks` takes a delta already whole (files).

Refusals raise :class:`DeltaRejected` with a ``reason`` for logs and for the catch-up request
(``gap`` asks for the missing deltas, ``diverged`` for a snapshot).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mqtt_schemas.watchlist import (
    ChunkStream,
    Delta,
    WatchlistError,
    load_public_key,
    verify_delta,
)

from .store import StoreError, WatchlistStore

__all__ = [
    "ApplyResult",
    "DeltaRejected",
    "StreamApply",
    "apply_chunks",
    "apply_stream",
    "load_trust",
    "verify_chunks",
]

APPLY_CACHE_MIB = 128
"""SQLite's page cache while a delta is applied (back to the store's own afterwards)."""
STREAM_CACHE_MIB = 16
"""SQLite's page cache while a delta or snapshot streams in, so that the kiosk agent stays
under its 256 MB: against 48 MiB, a snapshot of 150,000 persons applies ~9% slower and the
process takes ~35 MB less (scripts/benchmarks/watchlist_ota.py)."""


class DeltaRejected(Exception):
    """A delta or snapshot was refused; the store is unchanged."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class ApplyResult:
    kind: str
    from_version: int | None
    to_version: int
    added: int
    updated: int
    removed: int
    seconds: float

    def describe(self) -> str:
        what = (
            f"snapshot of version {self.to_version}"
            if self.kind == "snapshot"
            else f"delta {self.from_version} -> {self.to_version}"
        )
        return (
            f"applied {what}: {self.added} added, {self.updated} updated, "
            f"{self.removed} removed in {self.seconds:.2f} s; version {self.to_version}"
        )


def load_trust(
    pairs: Iterable[tuple[str, Path]] = (), directory: Path | None = None
) -> dict[str, Ed25519PublicKey]:
    """Trusted watchlist keys by key id: explicit ``(key_id, pem_path)`` pairs, and every
    ``<key_id>.pub.pem`` in *directory*. Raises ``WatchlistError`` for an unusable key."""
    trusted: dict[str, Ed25519PublicKey] = {}
    if directory is not None:
        for path in sorted(directory.glob("*.pub.pem")):
            trusted[path.name[: -len(".pub.pem")]] = load_public_key(path.read_bytes())
    for key_id, path in pairs:
        trusted[key_id] = load_public_key(path.read_bytes())
    return trusted


def verify_chunks(
    chunks: Sequence[Mapping[str, Any]], trusted: Mapping[str, Ed25519PublicKey]
) -> Delta:
    """Verify every chunk and assemble the delta, or raise :class:`DeltaRejected`."""
    if not trusted:
        raise DeltaRejected("untrusted-key", "no trusted watchlist keys are configured")
    try:
        return verify_delta(chunks, trusted)
    except WatchlistError as exc:
        raise DeltaRejected(exc.reason, str(exc)) from None


def _check_version(delta: Delta | _Header, current: int) -> None:
    if delta.kind == "snapshot":
        if delta.to_version < current:
            raise DeltaRejected(
                "older",
                f"snapshot of version {delta.to_version} is older than the store's "
                f"version {current}",
            )
        return
    assert delta.from_version is not None
    if delta.to_version == current:
        raise DeltaRejected(
            "replay", f"delta {delta.from_version} -> {delta.to_version} is already applied"
        )
    if delta.to_version < current:
        raise DeltaRejected(
            "older",
            f"delta {delta.from_version} -> {delta.to_version} is older than the store's "
            f"version {current}",
        )
    if delta.from_version != current:
        raise DeltaRejected(
            "gap",
            f"delta {delta.from_version} -> {delta.to_version} does not follow the store's "
            f"version {current}: the deltas in between are missing",
        )


@dataclass(frozen=True)
class _Header:
    kind: str
    from_version: int | None
    to_version: int

    def describe(self) -> str:
        if self.kind == "snapshot":
            return f"snapshot of version {self.to_version}"
        return f"delta {self.from_version} -> {self.to_version}"


def apply_chunks(
    store: WatchlistStore,
    chunks: Sequence[Mapping[str, Any]],
    trusted: Mapping[str, Ed25519PublicKey],
) -> ApplyResult:
    """Verify and apply a delta or snapshot to *store*, or raise :class:`DeltaRejected`."""
    started = time.perf_counter()
    delta = verify_chunks(chunks, trusted)
    _check_version(delta, store.version)
    added = updated = removed = 0
    try:
        with store.transaction(cache_mib=APPLY_CACHE_MIB):
            _check_version(delta, store.version)  # again, now that the store is locked
            if delta.kind == "snapshot":
                store.clear()
            documents: list[tuple[str, dict[str, Any]]] = []  # added in bulk
            for change in delta.changes:
                op, kind, entry_id = change["op"], change["kind"], change["entry_id"]
                if op == "add" and kind == "document":
                    documents.append((entry_id, change["entry"]))
                    added += 1
                    if len(documents) < 5000:
                        continue
                if documents:
                    store.add_documents(documents)
                    documents.clear()
                    if op == "add" and kind == "document":
                        continue
                if op == "add":
                    store.add(kind, entry_id, change["entry"])
                    added += 1
                elif op == "update":
                    store.update(kind, entry_id, change["entry"])
                    updated += 1
                else:
                    store.remove(kind, entry_id)
                    removed += 1
            if documents:
                store.add_documents(documents)
            source = delta.describe()
            store.set_version(delta.to_version, source=source, digest=delta.changes_sha256)
    except StoreError as exc:
        raise DeltaRejected(
            "diverged",
            f"{delta.describe()} does not fit the store ({exc}); nothing was applied: "
            "ask for a snapshot",
        ) from None
    return ApplyResult(
        delta.kind,
        delta.from_version,
        delta.to_version,
        added,
        updated,
        removed,
        time.perf_counter() - started,
    )


class StreamApply:
    """One delta or snapshot applied chunk by chunk, as it streams in, in one transaction.

    ::

        stream = StreamApply(store, trusted)      # nothing happens until the first chunk
        for chunk in chunks:                      # in chunk_index order, as they arrive
            stream.feed(chunk)                    # verified, then applied (not committed)
        result = stream.finish()                  # whole digest checked, then one commit

    Each chunk is verified (:class:`~mqtt_schemas.watchlist.ChunkStream`: signature, same
    delta, next in order, valid changes) before any of its changes touches the store, and
    applied inside the one write transaction opened by the first chunk (a snapshot first
    empties the store, inside it too). :meth:`finish` checks that every chunk came and that the
    changes hash to the signed ``changes_sha256``, records the version and commits. Any refusal
    (:class:`DeltaRejected`) or other error rolls the whole transaction back: the store, its
    version and what the lane reads are as before the first chunk. Memory is one chunk
    and SQLite's page cache (*cache_mib*), whatever the size of the snapshot.

    A kiosk that stops half way (power cut, crash) never committed anything: SQLite drops the
    transaction when the store is next opened, and the delta is asked for again.
    """

    def __init__(
        self,
        store: WatchlistStore,
        trusted: Mapping[str, Ed25519PublicKey],
        *,
        cache_mib: int = STREAM_CACHE_MIB,
    ) -> None:
        if not trusted:
            raise DeltaRejected("untrusted-key", "no trusted watchlist keys are configured")
        self.store = store
        self.stream = ChunkStream(trusted)
        self.cache_mib = cache_mib
        self.header: _Header | None = None
        self.added = self.updated = self.removed = 0
        self.started = time.perf_counter()
        self.last_progress = time.monotonic()
        self._previous_cache: int | None = None
        self._open = False
        self.closed = False

    @property
    def next_index(self) -> int:
        return self.stream.next_index

    @property
    def chunk_count(self) -> int | None:
        return self.stream.chunk_count

    @property
    def done(self) -> bool:
        return self.stream.done

    @property
    def active(self) -> bool:
        """Whether the transaction is open (a first chunk was applied, nothing decided yet)."""
        return self._open

    def describe(self) -> str:
        return "a delta" if self.header is None else self.header.describe()

    def belongs(self, chunk: Mapping[str, Any]) -> bool:
        return self.stream.belongs(chunk)

    def feed(self, chunk: Mapping[str, Any]) -> None:
        """Verify *chunk* as the next one and apply its changes.

        A chunk that is not the genuine next one (forged, malformed, of another delta, out of
        place) raises :class:`DeltaRejected` having changed nothing: the caller may go on with
        the genuine one (a receiver refusing an injected message) or give up (:meth:`abort`,
        as :func:`apply_stream` does). Any error while applying rolls everything back.
        """
        if self.closed:
            raise DeltaRejected("closed", f"{self.describe()}: this apply is over")
        try:
            changes = self.stream.take(chunk)
        except WatchlistError as exc:
            raise DeltaRejected(exc.reason, str(exc)) from None
        try:
            if not self._open:
                self._begin(chunk)
            self._apply(changes)
        except BaseException:
            self.abort()
            raise
        self.last_progress = time.monotonic()

    def _begin(self, chunk: Mapping[str, Any]) -> None:
        header = _Header(chunk["kind"], chunk.get("from_version"), chunk["to_version"])
        _check_version(header, self.store.version)
        connection = self.store.connection
        self._previous_cache = connection.execute("PRAGMA cache_size").fetchone()[0]
        connection.execute(f"PRAGMA cache_size = {-1024 * self.cache_mib}")
        self.store.begin()
        self._open = True
        self.header = header
        _check_version(header, self.store.version)  # again, now that the store is locked
        if header.kind == "snapshot":
            self.store.clear()

    def _apply(self, changes: list[dict[str, Any]]) -> None:
        store = self.store
        assert self.header is not None
        documents: list[tuple[str, dict[str, Any]]] = []
        try:
            for change in changes:
                op, kind, entry_id = change["op"], change["kind"], change["entry_id"]
                if op == "add" and kind == "document":
                    documents.append((entry_id, change["entry"]))
                    continue
                if documents:
                    store.add_documents(documents)
                    self.added += len(documents)
                    documents = []
                if op == "add":
                    store.add(kind, entry_id, change["entry"])
                    self.added += 1
                elif op == "update":
                    store.update(kind, entry_id, change["entry"])
                    self.updated += 1
                else:
                    store.remove(kind, entry_id)
                    self.removed += 1
            if documents:
                store.add_documents(documents)
                self.added += len(documents)
        except StoreError as exc:
            raise DeltaRejected(
                "diverged",
                f"{self.header.describe()} does not fit the store ({exc}); nothing was "
                "applied: ask for a snapshot",
            ) from None

    def finish(self) -> ApplyResult:
        """Check the whole digest, record the version and commit; else roll back and raise."""
        if self.closed:
            raise DeltaRejected("closed", f"{self.describe()}: this apply is over")
        try:
            try:
                digest = self.stream.finish()
            except WatchlistError as exc:
                raise DeltaRejected(exc.reason, f"{self.describe()}: {exc}") from None
            assert self.header is not None
            self.store.set_version(
                self.header.to_version, source=self.header.describe(), digest=digest
            )
            self.store.commit()
            self._open = False
        except BaseException:
            self.abort()
            raise
        self._close()
        header = self.header
        return ApplyResult(
            header.kind,
            header.from_version,
            header.to_version,
            self.added,
            self.updated,
            self.removed,
            time.perf_counter() - self.started,
        )

    def abort(self) -> None:
        """Roll back whatever was applied (the store is as before the first chunk)."""
        if self._open:
            self._open = False
            # SQLite may have rolled back already (e.g. after a disk error)
            with contextlib.suppress(sqlite3.Error):
                self.store.rollback()
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self._previous_cache is not None:
            self.store.connection.execute(f"PRAGMA cache_size = {self._previous_cache}")
            self._previous_cache = None


def apply_stream(
    store: WatchlistStore,
    chunks: Iterable[Mapping[str, Any]],
    trusted: Mapping[str, Ed25519PublicKey],
) -> ApplyResult:
    """Apply the chunks of one delta or snapshot as they come from *chunks* (an iterator:
    a file read chunk by chunk, a staging table), in one transaction; or raise
    :class:`DeltaRejected` with the store unchanged. See :class:`StreamApply`."""
    stream = StreamApply(store, trusted)
    try:
        for chunk in chunks:
            stream.feed(chunk)
        return stream.finish()
    finally:
        stream.abort()
