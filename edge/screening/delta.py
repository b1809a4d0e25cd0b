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

Refusals raise :class:`DeltaRejected` with a ``reason`` for logs and for the catch-up request
(``gap`` asks for the missing deltas, ``diverged`` for a snapshot).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mqtt_schemas.watchlist import Delta, WatchlistError, load_public_key, verify_delta

from .store import StoreError, WatchlistStore

__all__ = ["ApplyResult", "DeltaRejected", "apply_chunks", "load_trust", "verify_chunks"]

APPLY_CACHE_MIB = 128
"""SQLite's page cache while a delta is applied (back to the store's own afterwards)."""


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


def _check_version(delta: Delta, current: int) -> None:
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
