"""Console ingest on the real broker: workers in the test's event loop, and kiosks that publish
records and collect the acks the console sends them.

::

    async with running_worker(broker, tmp_path / "console.db") as worker, \\
            Kiosk(broker, "kiosk-a") as kiosk:
        record = crossing("kiosk-a", seq=1)
        await kiosk.publish("crossings", record)
        await kiosk.wait_acked({record["id"]})
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
from sqlalchemy import Engine, text

import mqtt_schemas
from console.connection import Endpoint
from console.ingest import IngestConfig, IngestWorker
from console.store import StoreError, open_database
from mqtt_schemas import topics
from mqtt_schemas.envelope import utc_now, uuid7

NODE_ID = "console-1"
_worker_ids = itertools.count(1)


def _example(name: str) -> dict[str, Any]:
    return copy.deepcopy(mqtt_schemas.examples(name)["valid"][0]["payload"])


def crossing(device_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    """A valid crossing from the contract's first example, with a fresh id."""
    payload = _example("crossing")
    payload.update({"id": uuid7(), "device_id": device_id, "seq": seq, "time": utc_now()})
    payload.update(fields)
    return payload


def availability(
    device_id: str, state: str, session: int, seq: int, reason: str | None = None
) -> dict[str, Any]:
    payload = _example("availability")
    payload.update(id=uuid7(), device_id=device_id, seq=seq, time=utc_now())
    payload.update(state=state, session=session)
    if state == "offline":
        payload.pop("agent_version", None)
    if reason:
        payload["reason"] = reason
    return payload


def health(device_id: str, session: int, seq: int) -> dict[str, Any]:
    payload = _example("health")
    payload.update(id=uuid7(), device_id=device_id, seq=seq, time=utc_now(), session=session)
    return payload


def worker_config(broker: Any, db: str | Path, **overrides: Any) -> IngestConfig:
    """A worker of the test broker's console identity, with a client id and group of its own.

    Its own group by default: Mosquitto keeps handing a group's messages to the sessions of
    stopped workers (see test_console_ingest), so tests share a group only on purpose.
    """
    identity = broker.identity("console")
    number = next(_worker_ids)
    options: dict[str, Any] = {
        "db": db,
        "endpoint": Endpoint(
            broker.host,
            broker.port_for("console"),
            broker.ca.cert_path,
            identity.cert_path,
            identity.key_path,
        ),
        "node_id": NODE_ID,
        "client_id": f"test-ingest-{number}-{uuid7()[-12:]}",
        "group": f"test-{number}-{uuid7()[-12:]}",
        "session_expiry": 60,
        "max_delay": 0.005,
        "reconnect_min": 0.1,
    }
    options.update(overrides)
    return IngestConfig(**options)


@asynccontextmanager
async def running_worker(
    broker: Any, db: str | Path, **overrides: Any
) -> AsyncIterator[IngestWorker]:
    """An ingest worker running (subscribed) for the body of the block, then stopped cleanly."""
    worker = IngestWorker(worker_config(broker, db, **overrides))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # raises what stopped it
    if not ready.done():
        ready.cancel()
        raise AssertionError("the ingest worker did not subscribe within 10 s")
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


class Kiosk:
    """A kiosk identity on the TLS listener: publishes on its topics, collects its acks."""

    def __init__(self, broker: Any, device_id: str, **client_options: Any) -> None:
        self.device_id = device_id
        self.client: aiomqtt.Client = broker.client(device_id, **client_options)
        self.acks: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Kiosk:
        await self.client.__aenter__()
        await self.client.subscribe(topics.device_topic(self.device_id, "acks"), qos=1)
        self._collector = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._collector:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
        await self.client.__aexit__(*exc_info)

    async def _collect(self) -> None:
        async for message in self.client.messages:
            self.acks.append(json.loads(message.payload))
            self._changed.set()

    async def publish(
        self, channel: str, payload: dict[str, Any] | bytes, retain: bool = False
    ) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.client.publish(
            topics.device_topic(self.device_id, channel), body, qos=1, retain=retain
        )

    def acked(self) -> set[str]:
        return {i for ack in self.acks for i in ack["acked"]}

    def rejected(self) -> dict[str, str]:
        return {r["id"]: r["reason"] for ack in self.acks for r in ack.get("rejected", [])}

    async def wait_acked(self, ids: Iterable[str], timeout: float = 5) -> None:
        wanted = set(ids)
        async with asyncio.timeout(timeout):
            while not wanted <= self.acked():
                self._changed.clear()
                await self._changed.wait()

    async def wait_ack_count(self, count: int, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while len(self.acks) < count:
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def retained_availability(broker: Any, device_id: str) -> AsyncIterator[None]:
    """Clear *device_id*'s retained availability at the end of the block.

    The broker lives for the whole session: a retained birth or will left behind would reach
    later tests' subscribers (``borderlane/v1/#`` observers, ingest workers).
    """
    try:
        yield
    finally:
        async with broker.client(device_id) as kiosk:
            topic = topics.device_topic(device_id, "availability")
            await kiosk.publish(topic, b"", qos=1, retain=True)


def rows(db: str | Path | Engine, sql: str, *params: Any) -> list[Any]:
    """Query the console database (a SQLite path, a PostgreSQL URL, or an open engine) from the
    test; a path or URL through a separate, short-lived read-only connection. *sql* takes ``?``
    placeholders on both backends; a row reads as a tuple and as a mapping (``row["id"]``,
    ``row._mapping["id"]``)."""
    parts = sql.split("?")
    named = parts[0] + "".join(f":p{i}{part}" for i, part in enumerate(parts[1:]))
    engine = db if isinstance(db, Engine) else open_database(db, readonly=True)
    try:
        with engine.connect() as conn:
            result = conn.execute(text(named), {f"p{i}": v for i, v in enumerate(params)})
            return [_Row(row) for row in result]
    finally:
        if engine is not db:
            engine.dispose()


class _Row(tuple):
    """A result row that reads as a tuple and by column name, as sqlite3.Row did."""

    def __new__(cls, row: Any) -> _Row:
        made = super().__new__(cls, tuple(row))
        made._names = dict(row._mapping)
        return made

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._names[key]
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._names)


async def wait_for_rows(
    db: str | Path, sql: str, count: int, *params: Any, timeout: float = 5
) -> list[Any]:
    """Poll until *sql* returns *count* rows (the worker commits asynchronously)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                found = rows(db, sql, *params)
            except StoreError:  # not made yet
                found = []
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
