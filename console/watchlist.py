"""Watchlist versions on the console: signed history, broadcast, manifest, catch-up answers.

::

    history = WatchlistHistory("console.db")                  # or a postgresql:// URL
    publisher = WatchlistPublisher(history, signing_key, "wl-2026a", node_id="console-1")
    async with connection.client(endpoint, ...) as mqtt:
        published = await publisher.publish_list(mqtt, entries)   # (kind, entry_id, entry)...

    responder = CatchupResponder(history, endpoint, node_id="console-1", publisher=publisher)
    await responder.run(stop)                                  # answers watchlist-catchup

Versions increase by exactly 1. Version 1 is a snapshot (there is nothing to diff against);
every later version is a delta from the one before, and every ``snapshot_every`` versions (or
when the deltas since the last snapshot outweigh it) a snapshot is kept as well, so the manifest
always names one. Everything a catch-up may need is stored **signed**, in
``watchlist_chunks``: answers re-publish those chunks unchanged with new publication fields
(``id``, ``device_id``, ``seq``, ``time``, ``clock``, ``for_device``), which the signature
excludes. ``watchlist_entries`` holds the current list, to diff the next one against.

Publication order: store (one transaction), then broadcast the delta's chunks (QoS 1), then the
retained manifest. A broadcast lost to a broker outage costs nothing: the stored version is
re-announced by the next publication or by the responder when it (re)connects, and kiosks that
missed the delta catch up.

The responder takes catch-up requests through an MQTT 5 shared subscription (like the ingest
worker), so several consoles may run and only one answers each request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, bindparam, delete, func, select, update

import mqtt_schemas
from mqtt_schemas import PayloadError, TopicError, topics
from mqtt_schemas.envelope import clock_state, utc_now, uuid7
from mqtt_schemas.validation import parse_json
from mqtt_schemas.watchlist import (
    MAX_CHUNK_BYTES,
    MAX_CHUNK_CHANGES,
    diff,
    make_chunks,
    sign_chunks,
    snapshot_changes,
)

from . import connection
from .store import open_database
from .store.schema import console_nodes, watchlist_chunks, watchlist_entries
from .store.schema import watchlist_versions as versions
from .store.writer import upsert

__all__ = [
    "CatchupResponder",
    "Published",
    "WatchlistHistory",
    "WatchlistPublisher",
    "WatchlistSetupError",
]

log = logging.getLogger("borderlane.console.watchlist")
T = TypeVar("T")

DEFAULT_GROUP = "console-watchlist"
Entry = tuple[str, str, dict[str, Any]]
Step = tuple[Literal["delta", "snapshot"], int]
"""One thing to send: the delta leading to a version, or the snapshot of a version."""


class WatchlistSetupError(Exception):
    """The watchlist history cannot be used as asked (the message says why)."""


@dataclass(frozen=True)
class Published:
    """What :meth:`WatchlistPublisher.prepare` stored (and :meth:`publish_list` sent)."""

    version: int
    changes: int
    """Changes from the previous version (0: the list was unchanged, nothing new stored)."""
    delta_chunks: int
    snapshot: bool
    """Whether a snapshot of this version was stored too."""

    def describe(self) -> str:
        if not self.changes:
            return f"unchanged: version {self.version}"
        what = f"version {self.version}: {self.changes} changes"
        if self.delta_chunks:
            what += f" in {self.delta_chunks} delta chunks"
        return what + (", with a snapshot" if self.snapshot else "")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class WatchlistHistory:
    """The watchlist tables of the console database (use from the history's own thread,
    through :meth:`call` from async code)."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = target
        self.engine = open_database(target)  # the console schema (and its seq counters) too
        self.reader = open_database(target, readonly=True)
        self._tx: Connection | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="watchlist")

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.reader.dispose()
        self.engine.dispose()

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run *function* on the history's own thread: the publisher and the responder share
        the history, and every use of it goes through here from async code."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: function(*args, **kwargs))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; what the history reads meanwhile is read inside it."""
        with self.engine.begin() as conn:
            self._tx = conn
            try:
                yield conn
            finally:
                self._tx = None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        if self._tx is not None:
            yield self._tx
        else:
            with self.reader.connect() as conn:
                yield conn

    def _scalar(self, query: Any) -> Any:
        with self._reading() as conn:
            return conn.execute(query).scalar()

    # -- reading --------------------------------------------------------------------------

    def version(self) -> int:
        """The latest version (0: nothing published yet)."""
        return int(self._scalar(select(func.max(versions.c.version))) or 0)

    def entries(self) -> Iterator[Entry]:
        """The current list, as ``(kind, entry_id, entry)``."""
        e = watchlist_entries.c
        with self._reading() as conn:
            rows = conn.execute(select(e.kind, e.entry_id, e.entry).order_by(e.kind, e.entry_id))
            for kind, entry_id, entry in rows:
                yield kind, entry_id, json.loads(entry)

    def _row(self, version: int) -> Any:
        with self._reading() as conn:
            return conn.execute(select(versions).where(versions.c.version == version)).first()

    def latest_snapshot(self) -> int | None:
        return self._scalar(
            select(func.max(versions.c.version)).where(versions.c.snapshot_chunks.is_not(None))
        )

    def manifest_body(self) -> dict[str, Any] | None:
        """The manifest of the latest version, without its envelope (None before version 1)."""
        latest = self.version()
        if latest == 0:
            return None
        row = self._row(latest)
        snap = self._row(self.latest_snapshot() or 0)
        assert row is not None and snap is not None, "every history names a snapshot"
        delta = None
        if row.delta_chunks is not None:
            delta = {
                "from_version": latest - 1,
                "to_version": latest,
                "chunk_count": row.delta_chunks,
            }
        return {
            "version": latest,
            "key_id": row.key_id,
            "published_at": row.published_at,
            "counts": {"persons": row.persons, "documents": row.documents},
            "delta": delta,
            "snapshot": {
                "version": snap.version,
                "chunk_count": snap.snapshot_chunks,
                "sha256": snap.snapshot_sha256,
            },
        }

    def status(self) -> dict[str, Any]:
        """What ``borderlane-console watchlist status`` prints."""
        with self._reading() as conn:
            kept, first = conn.execute(select(func.count(), func.min(versions.c.version))).one()
            chunks, size = conn.execute(
                select(
                    func.count(), func.coalesce(func.sum(func.length(watchlist_chunks.c.body)), 0)
                )
            ).one()
        return {
            "manifest": self.manifest_body(),
            "versions_kept": kept,
            "oldest_version": first,
            "chunks_kept": chunks,
            "chunk_bytes": int(size),
        }

    def plan(self, have_version: int, want: str) -> list[Step] | None:
        """What answers a catch-up from *have_version*: the deltas after it, or the latest
        snapshot then the deltas after that. ``[]``: nothing to send (up to date). ``None``:
        only a snapshot newer than the kiosk's version would do, and none is stored yet.

        ``auto`` takes the deltas unless they are missing or weigh more than the snapshot
        path; ``delta`` takes them whenever they are all there; ``snapshot`` never does.
        """
        latest = self.version()
        if latest == 0:
            return []
        if want != "snapshot":
            if have_version >= latest:
                return []
            if have_version >= 1:
                with self._reading() as conn:
                    sizes = dict(
                        conn.execute(
                            select(versions.c.version, versions.c.delta_bytes).where(
                                versions.c.version > have_version,
                                versions.c.delta_chunks.is_not(None),
                            )
                        )
                        .tuples()
                        .all()
                    )
                if len(sizes) == latest - have_version:
                    deltas: list[Step] = [("delta", v) for v in sorted(sizes)]
                    snap = self.latest_snapshot()
                    if want == "delta" or snap is None or snap <= have_version:
                        return deltas
                    snapshot_bytes = self._scalar(
                        select(versions.c.snapshot_bytes).where(versions.c.version == snap)
                    )
                    after = sum(size for version, size in sizes.items() if version > snap)
                    if sum(sizes.values()) <= snapshot_bytes + after:
                        return deltas
        snap = self.latest_snapshot()
        if snap is None or snap < have_version or (snap == have_version and want != "snapshot"):
            return None
        return [("snapshot", snap)] + [("delta", v) for v in range(snap + 1, latest + 1)]

    def chunk_count(self, step: Step) -> int:
        kind, version = step
        column = versions.c.delta_chunks if kind == "delta" else versions.c.snapshot_chunks
        found = self._scalar(select(column).where(versions.c.version == version))
        return int(found or 0)

    def holds(self, step: Step, changes_sha256: str) -> bool:
        """Whether the chunks of *step* are stored and sign *changes_sha256* (what a kiosk
        resuming an apply has)."""
        if not self.chunk_count(step):
            return False
        kind, version = step
        if kind == "snapshot":
            found = self._scalar(
                select(versions.c.snapshot_sha256).where(versions.c.version == version)
            )
            return found == changes_sha256
        return self.chunk(step, 0).get("changes_sha256") == changes_sha256

    def chunk(self, step: Step, index: int) -> dict[str, Any]:
        """One stored signed chunk (read one at a time: a snapshot may be hundreds of MiB)."""
        kind, version = step
        c = watchlist_chunks.c
        body = self._scalar(
            select(c.body).where(c.kind == kind, c.version == version, c.chunk_index == index)
        )
        return json.loads(body)

    def reserve_seqs(self, node_id: str, count: int) -> range:
        """*count* sequence numbers of the console node *node_id* (shared with the acks)."""
        if count <= 0:
            return range(0)
        with self.engine.begin() as conn:
            statement = upsert(conn, console_nodes).values(node_id=node_id, seq=count)
            last = conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[console_nodes.c.node_id],
                    set_={"seq": console_nodes.c.seq + statement.excluded.seq},
                ).returning(console_nodes.c.seq)
            ).scalar_one()
        return range(last - count + 1, last + 1)

    # -- writing (inside WatchlistPublisher.prepare's transaction) -------------------------

    def _store_chunks(self, kind: str, version: int, chunks: list[dict[str, Any]]) -> int:
        assert self._tx is not None, "written inside a transaction"
        rows = [
            {"kind": kind, "version": version, "chunk_index": c["chunk_index"], "body": _json(c)}
            for c in chunks
        ]
        statement = upsert(self._tx, watchlist_chunks)
        self._tx.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    watchlist_chunks.c.kind,
                    watchlist_chunks.c.version,
                    watchlist_chunks.c.chunk_index,
                ],
                set_={"body": statement.excluded.body},
            ),
            rows,
        )
        return sum(len(row["body"]) for row in rows)

    def _apply_to_entries(self, changes: Iterable[dict[str, Any]]) -> None:
        conn = self._tx
        assert conn is not None, "written inside a transaction"
        e = watchlist_entries.c
        removed, put = [], []
        for change in changes:
            key = {"kind": change["kind"], "entry_id": change["entry_id"]}
            if change["op"] == "remove":
                removed.append(key)
            else:
                put.append({**key, "entry": _json(change["entry"])})
        if removed:
            conn.execute(
                delete(watchlist_entries).where(
                    e.kind == bindparam("b_kind"), e.entry_id == bindparam("b_entry_id")
                ),
                [{"b_kind": k["kind"], "b_entry_id": k["entry_id"]} for k in removed],
            )
        if put:
            statement = upsert(conn, watchlist_entries)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[e.kind, e.entry_id], set_={"entry": statement.excluded.entry}
                ),
                put,
            )

    def _counts(self) -> dict[str, int]:
        e = watchlist_entries.c
        with self._reading() as conn:
            counts = dict(
                conn.execute(select(e.kind, func.count()).group_by(e.kind)).tuples().all()
            )
        return {"persons": counts.get("person", 0), "documents": counts.get("document", 0)}


class WatchlistPublisher:
    """Makes, signs, stores and publishes watchlist versions; see the module documentation."""

    def __init__(
        self,
        history: WatchlistHistory,
        signing_key: Ed25519PrivateKey,
        key_id: str,
        *,
        node_id: str,
        snapshot_every: int = 50,
        max_changes: int = MAX_CHUNK_CHANGES,
        max_bytes: int = MAX_CHUNK_BYTES,
    ) -> None:
        if snapshot_every < 1:
            raise WatchlistSetupError("snapshot_every must be at least 1")
        topics.check_device_id(node_id)
        self.history = history
        self.signing_key = signing_key
        self.key_id = key_id
        self.node_id = node_id
        self.snapshot_every = snapshot_every
        self.max_changes = max_changes
        self.max_bytes = max_bytes

    def _sign(self, kind: str, changes: list[dict[str, Any]], **versions: int) -> list[dict]:
        unsigned = make_chunks(
            kind,
            changes,
            key_id=self.key_id,
            max_changes=self.max_changes,
            max_bytes=self.max_bytes,
            **versions,
        )
        return sign_chunks(unsigned, self.signing_key)

    def prepare(self, entries: Iterable[Entry], *, snapshot: bool | None = None) -> Published:
        """Store the version that turns the current list into *entries* (nothing when equal).

        *snapshot*: True keeps a snapshot of the new version, False none, None decides (every
        ``snapshot_every`` versions, or when the deltas since the last one outweigh it).
        """
        new = list(entries)
        history = self.history
        with history.transaction() as conn:
            current = history.version()
            changes = diff(history.entries(), new)
            if not changes:
                return Published(current, 0, 0, False)
            version = current + 1
            history._apply_to_entries(changes)
            delta_chunks = delta_bytes = None
            if current > 0:
                chunks = self._sign("delta", changes, from_version=current, to_version=version)
                delta_bytes = history._store_chunks("delta", version, chunks)
                delta_chunks = len(chunks)
            counts = history._counts()
            conn.execute(
                versions.insert().values(
                    version=version,
                    published_at=utc_now(),
                    key_id=self.key_id,
                    persons=counts["persons"],
                    documents=counts["documents"],
                    delta_chunks=delta_chunks,
                    delta_changes=len(changes),
                    delta_bytes=delta_bytes,
                )
            )
            if snapshot is None:
                snapshot = current == 0 or self._snapshot_due(version)
            if snapshot:
                self._store_snapshot(version)
        return Published(version, len(changes), delta_chunks or 0, bool(snapshot))

    def _snapshot_due(self, version: int) -> bool:
        last = self.history.latest_snapshot() or 0
        if version - last >= self.snapshot_every:
            return True
        v = versions.c
        since = self.history._scalar(
            select(func.coalesce(func.sum(v.delta_bytes), 0)).where(v.version > last)
        )
        snapshot_bytes = self.history._scalar(select(v.snapshot_bytes).where(v.version == last))
        return snapshot_bytes is not None and since >= snapshot_bytes

    def _store_snapshot(self, version: int) -> None:
        history = self.history
        assert history._tx is not None, "written inside a transaction"
        chunks = self._sign("snapshot", snapshot_changes(history.entries()), to_version=version)
        size = history._store_chunks("snapshot", version, chunks)
        history._tx.execute(
            update(versions)
            .where(versions.c.version == version)
            .values(
                snapshot_chunks=len(chunks),
                snapshot_bytes=size,
                snapshot_sha256=chunks[0]["changes_sha256"],
            )
        )

    def snapshot(self) -> int:
        """Keep a snapshot of the current version (if it has none yet); return the version."""
        with self.history.transaction():
            version = self.history.version()
            if version == 0:
                raise WatchlistSetupError("nothing published yet: no version to snapshot")
            if self.history.latest_snapshot() != version:
                self._store_snapshot(version)
        return version

    async def publish_list(
        self, mqtt: aiomqtt.Client, entries: Iterable[Entry], *, snapshot: bool | None = None
    ) -> Published:
        """:meth:`prepare`, then broadcast the delta (QoS 1) and publish the retained manifest."""
        published = await self.history.call(self.prepare, entries, snapshot=snapshot)
        if published.delta_chunks:
            await send_steps(mqtt, self.history, self.node_id, [("delta", published.version)])
        await publish_manifest(mqtt, self.history, self.node_id)
        return published


async def send_steps(
    mqtt: aiomqtt.Client,
    history: WatchlistHistory,
    node_id: str,
    steps: list[Step],
    for_device: str | None = None,
    *,
    start: int = 0,
    window: int | None = None,
) -> int:
    """Publish the stored chunks of *steps* in order (QoS 1): on the fleet deltas topic, or on
    *for_device*'s own with ``for_device`` set. Returns how many chunks were sent.

    With *window* (a ``watchlist-catchup@2`` answer) only the first step is sent, from chunk
    *start*, at most *window* chunks: the kiosk asks for the next window as it applies them.
    """
    run = history.call
    if window is not None:
        steps = steps[:1]
    counts = [await run(history.chunk_count, step) for step in steps]
    ranges = [range(count) for count in counts]
    if window is not None and ranges:
        ranges[0] = range(min(start, counts[0]), min(start + window, counts[0]))
    seqs = iter(await run(history.reserve_seqs, node_id, sum(len(r) for r in ranges)))
    if for_device is None:
        topic = topics.fleet_topic("watchlist/deltas")
    else:
        topic = topics.device_topic(for_device, "watchlist/deltas")
    clock = clock_state()
    for step, indices in zip(steps, ranges, strict=True):
        for index in indices:
            chunk = await run(history.chunk, step, index)
            chunk.update(id=uuid7(), device_id=node_id, seq=next(seqs), time=utc_now(), clock=clock)
            if for_device is not None:
                chunk["for_device"] = for_device
            await mqtt.publish(topic, _json(chunk).encode(), qos=1)
    return sum(len(r) for r in ranges)


async def publish_manifest(
    mqtt: aiomqtt.Client, history: WatchlistHistory, node_id: str
) -> dict[str, Any] | None:
    """Publish the retained manifest of the latest version (nothing before version 1)."""
    body = await history.call(history.manifest_body)
    if body is None:
        return None
    (seq,) = await history.call(history.reserve_seqs, node_id, 1)
    payload = {
        "schema": mqtt_schemas.tag("watchlist-manifest"),
        "id": uuid7(),
        "device_id": node_id,
        "seq": seq,
        "time": utc_now(),
        "clock": clock_state(),
        **body,
    }
    mqtt_schemas.validate("watchlist-manifest", payload)
    await mqtt.publish(
        topics.fleet_topic("watchlist/manifest"), _json(payload).encode(), qos=1, retain=True
    )
    return payload


async def publish_trust(
    mqtt: aiomqtt.Client, history: WatchlistHistory, node_id: str, update: dict[str, Any]
) -> dict[str, Any]:
    """Publish a signed trust update (:mod:`mqtt_schemas.trust`, as made offline by the
    anchor's holder) retained on the fleet trust topic, with this console's envelope; the
    signature covers only the update's own fields, so the envelope does not disturb it."""
    (seq,) = await history.call(history.reserve_seqs, node_id, 1)
    payload = {
        **update,
        "id": uuid7(),
        "device_id": node_id,
        "seq": seq,
        "time": utc_now(),
        "clock": clock_state(),
    }
    mqtt_schemas.validate("watchlist-trust", payload)
    await mqtt.publish(
        topics.fleet_topic("watchlist/trust"), _json(payload).encode(), qos=1, retain=True
    )
    return payload


class CatchupLimiter:
    """How much one kiosk may be sent: a kiosk (perhaps stolen and reprogrammed) that asks for
    the full list again and again must not make the console resend it each time.

    Per kiosk, in any hour (sliding): at most *chunks_per_hour* chunks, and at most
    *snapshots_per_hour* snapshots (a kiosk's start-up and an operator's resync right after it
    are two; continuing one under way, ``resume``, is not a new one). A refused request costs
    nothing: the kiosk retries with its backoff and is answered once its budget allows. Memory
    is bounded: beyond *max_devices* the least recently seen kiosks are forgotten.
    """

    def __init__(
        self,
        *,
        chunks_per_hour: int = 5000,
        snapshots_per_hour: int = 3,
        max_devices: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chunks_per_hour = chunks_per_hour
        self.snapshots_per_hour = snapshots_per_hour
        self.max_devices = max_devices
        self.clock = clock
        self._sent: OrderedDict[str, deque[tuple[float, int, bool]]] = OrderedDict()
        self.refused = 0

    def _recent(self, device_id: str) -> deque[tuple[float, int, bool]]:
        """(time, chunks, was a snapshot) of what *device_id* was sent in the last hour."""
        sent = self._sent.pop(device_id, None) or deque()
        self._sent[device_id] = sent  # most recently seen last
        while len(self._sent) > self.max_devices:
            self._sent.popitem(last=False)
        horizon = self.clock() - 3600
        while sent and sent[0][0] < horizon:
            sent.popleft()
        return sent

    def refusal(self, device_id: str, *, snapshot: bool) -> str | None:
        """Why *device_id* may not be sent this now (None: it may)."""
        recent = self._recent(device_id)
        chunks = sum(count for _, count, _ in recent)
        if chunks >= self.chunks_per_hour:
            self.refused += 1
            return f"sent {chunks} chunks in the last hour (limit {self.chunks_per_hour})"
        snapshots = sum(1 for _, _, full in recent if full)
        if snapshot and snapshots >= self.snapshots_per_hour:
            self.refused += 1
            return f"sent {snapshots} snapshots in the last hour (limit {self.snapshots_per_hour})"
        return None

    def record(self, device_id: str, chunks: int, *, snapshot: bool) -> None:
        self._recent(device_id).append((self.clock(), chunks, snapshot))


class CatchupResponder:
    """Answers kiosks' ``watchlist-catchup`` requests from the stored history, within each
    kiosk's budget (:class:`CatchupLimiter`).

    *publisher* (optional) lets it make a fresh snapshot when a kiosk wants one newer than
    the latest stored (a ``resync`` of a kiosk already at the latest version).
    """

    def __init__(
        self,
        history: WatchlistHistory,
        endpoint: connection.Endpoint,
        *,
        node_id: str,
        publisher: WatchlistPublisher | None = None,
        group: str = DEFAULT_GROUP,
        client_id: str | None = None,
        session_expiry: int = 600,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        limiter: CatchupLimiter | None = None,
    ) -> None:
        if not group or any(c in group for c in "/+#") or any(ord(c) < 0x20 for c in group):
            raise WatchlistSetupError(
                f"share group {group!r}: non-empty, without / + # or controls"
            )
        self.history = history
        self.endpoint = endpoint
        self.node_id = node_id
        self.publisher = publisher
        self.group = group
        self.client_id = client_id or f"{node_id}-watchlist-{group}"
        self.session_expiry = session_expiry
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.ready = asyncio.Event()
        """Set while subscribed (tests wait for it)."""
        self.answered = 0
        self.limiter = limiter or CatchupLimiter()

    @property
    def subscription(self) -> str:
        return f"$share/{self.group}/{topics.device_filter('watchlist/catchup')}"

    async def run(self, stop: asyncio.Event) -> None:
        """Answer catch-ups until *stop* is set, reconnecting with backoff."""
        delay = self.reconnect_min
        while not stop.is_set():
            try:
                await self._connection(stop)
                delay = self.reconnect_min
            except aiomqtt.MqttError as exc:
                self.ready.clear()
                wait = delay * random.uniform(0.8, 1.2)
                log.warning("broker connection: %s; retrying in %.1f s", exc, wait)
                delay = min(delay * 2, self.reconnect_max)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        self.ready.clear()

    async def _connection(self, stop: asyncio.Event) -> None:
        mqtt = connection.client(
            self.endpoint,
            self.client_id,
            session_expiry=self.session_expiry,
            receive_maximum=64,
            manual_ack=False,
        )
        async with mqtt:
            await mqtt.subscribe(self.subscription, qos=1)
            # Re-announce the latest version: a manifest lost to an outage is repaired here.
            await publish_manifest(mqtt, self.history, self.node_id)
            self.ready.set()
            log.info("answering watchlist catch-ups (share group %s)", self.group)
            receiver = asyncio.create_task(self._receive(mqtt))
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({receiver, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (receiver, stopper):
                    task.cancel()
                await asyncio.gather(receiver, stopper, return_exceptions=True)
            if receiver.done() and not receiver.cancelled() and receiver.exception():
                raise receiver.exception()  # the connection dropped: reconnect

    async def _receive(self, mqtt: aiomqtt.Client) -> None:
        async for message in mqtt.messages:
            try:
                await self.answer(mqtt, str(message.topic), message.payload)
            except aiomqtt.MqttError:
                raise
            except Exception:
                log.exception("a catch-up request could not be answered")

    async def answer(self, mqtt: aiomqtt.Client, topic: str, raw: Any) -> int:
        """Answer one request; returns how many chunks were sent (0: refused or up to date)."""
        try:
            route = topics.parse(topic)
            request = parse_json(raw)
            mqtt_schemas.validate("watchlist-catchup", request)
        except (TopicError, PayloadError, ValueError, TypeError) as exc:
            log.warning("ignored a catch-up request on %s: %s", topic, exc)
            return 0
        device_id = route.device_id
        assert device_id is not None
        if request["device_id"] != device_id:
            log.warning("ignored a catch-up on %s sent as %s", topic, request["device_id"])
            return 0
        have, want = request["have_version"], request["want"]
        window, resume = request.get("window"), request.get("resume")
        refused = self.limiter.refusal(device_id, snapshot=False)
        if refused is not None:
            log.warning("catch-up of %s refused: %s", device_id, refused)
            return 0
        if resume is not None:
            step: Step = (resume["kind"], resume["to_version"])
            if await self.history.call(self.history.holds, step, resume["changes_sha256"]):
                sent = await send_steps(
                    mqtt,
                    self.history,
                    self.node_id,
                    [step],
                    device_id,
                    start=resume["from_chunk"],
                    window=window,
                )
                self.limiter.record(device_id, sent, snapshot=False)
                log.info(
                    "catch-up of %s (%s): %s %d from chunk %d: sent %d chunks",
                    device_id,
                    request["reason"],
                    *step,
                    resume["from_chunk"] + 1,
                    sent,
                )
                return sent
            log.info(
                "catch-up of %s: %s %d is no longer kept as the kiosk has it; starting over",
                device_id,
                *step,
            )
        steps = await self.history.call(self.history.plan, have, want)
        if steps is None and self.publisher is not None:
            await self.history.call(self.publisher.snapshot)
            steps = await self.history.call(self.history.plan, have, want)
        if not steps:
            log.info(
                "catch-up of %s from version %d (%s): %s",
                device_id,
                have,
                want,
                "nothing newer to send" if steps == [] else "no snapshot newer than it is stored",
            )
            return 0
        snapshot = any(kind == "snapshot" for kind, _ in steps)
        refused = self.limiter.refusal(device_id, snapshot=snapshot)
        if refused is not None:
            log.warning("catch-up of %s refused: %s", device_id, refused)
            return 0
        sent = await send_steps(mqtt, self.history, self.node_id, steps, device_id, window=window)
        self.limiter.record(device_id, sent, snapshot=snapshot)
        self.answered += 1
        log.info(
            "catch-up of %s from version %d (%s, %s): sent %s in %d chunks",
            device_id,
            have,
            want,
            request["reason"],
            ", ".join(f"{kind} {version}" for kind, version in steps),
            sent,
        )
        return sent
