"""Kiosk uplink: how fast the outbox takes records, and drains a backlog after an outage.

Everything is real and on this machine: the kiosk database (SQLite, WAL, ``synchronous=FULL``)
in a temporary directory, Mosquitto with TLS client certificates from a throw-away CA on a free
port, the kiosk's :class:`~edge.uplink.Uplink`, and a console stand-in (an MQTT client with the
console identity) that acks in batches as the real ingest does: when 500 ids are pending or
20 ms after the first, whichever comes first.

Figures:

* enqueue, one transaction per record: what the lane pays per traveller. Each commit is one
  fsync of the WAL (``synchronous=FULL``), so this is mostly the disk's fsync latency: on a
  server SSD a fraction of a millisecond, on a Raspberry Pi's SD card typically 2 to 20 ms
  (and worse on a worn card). A lane needs about one record every 10 s, so even 50 commits/s is
  ample; an SD card's fsync is still the one delay the traveller may notice, so kiosks should
  use a high-endurance card or USB SSD.
* drain: a backlog of 100,000 records (days of a busy lane offline) from the uplink's connect
  until the console acked the last one and the outbox is empty. Target 2,000 records/s.

Quick mode: 300 records; the figures then judge nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiomqtt

import mqtt_schemas
from edge.uplink import Outbox, StaticClock, Uplink, UplinkConfig
from mqtt_schemas import topics
from provisioning.broker import BrokerConfig, Mosquitto
from provisioning.pki import Pki

from . import Figure, at_least

DRAIN_TARGET_PER_S = 2000
DEVICE = "kiosk-bench-01"
ACK_BATCH = 500
ACK_DELAY_S = 0.020


def _body() -> dict:
    example = copy.deepcopy(mqtt_schemas.examples("crossing")["valid"][0]["payload"])
    for key in ("schema", "id", "device_id", "seq", "time", "clock"):
        example.pop(key)
    return example


def _enqueue_one_per_commit(outbox: Outbox, count: int) -> list[float]:
    body = _body()
    outbox.db.execute("CREATE TABLE IF NOT EXISTS lane (id INTEGER PRIMARY KEY, n INTEGER)")
    outbox.db.execute("INSERT OR IGNORE INTO lane VALUES (1, 0)")
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with outbox.transaction() as tx:
            tx.execute("UPDATE lane SET n = n + 1 WHERE id = 1")
            tx.enqueue("crossings", body)
        times.append(time.perf_counter() - started)
    return times


def _backlog(outbox: Outbox, count: int) -> None:
    body = _body()
    for start in range(0, count, 5000):
        with outbox.transaction() as tx:
            for _ in range(min(5000, count - start)):
                tx.enqueue("crossings", body)


async def _console(client: aiomqtt.Client, stored: set[str], ready: asyncio.Event) -> None:
    """Store ids, ack them per 500 or 20 ms after the first, like the real ingest worker."""
    await client.subscribe(topics.device_filter("crossings"), qos=1)
    ready.set()
    pending: list[str] = []
    have, full = asyncio.Event(), asyncio.Event()
    seq = 0

    async def receive() -> None:
        async for message in client.messages:
            record_id = json.loads(message.payload)["id"]
            stored.add(record_id)
            pending.append(record_id)
            have.set()
            if len(pending) >= ACK_BATCH:
                full.set()

    async def flush() -> None:
        nonlocal pending, seq
        while True:
            await have.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ACK_DELAY_S):
                    await full.wait()
            batch, pending = list(dict.fromkeys(pending)), []
            have.clear()
            full.clear()
            for start in range(0, len(batch), 1000):
                seq += 1
                ack = {
                    "schema": "ack@1",
                    "id": str(uuid.uuid4()),
                    "device_id": "console",
                    "seq": seq,
                    "time": "2026-11-24T00:00:00Z",
                    "clock": {"synced": True, "source": "ntp"},
                    "acked": batch[start : start + 1000],
                }
                topic = topics.device_topic(DEVICE, "acks")
                await client.publish(topic, json.dumps(ack), qos=1)

    async with asyncio.TaskGroup() as group:
        group.create_task(receive())
        group.create_task(flush())


async def _drain(outbox: Outbox, config: UplinkConfig, console_tls, console_port: int) -> float:
    stored: set[str] = set()
    ready = asyncio.Event()
    console_client = aiomqtt.Client(
        config.broker.host,
        console_port,
        identifier="console:bench",
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_params=console_tls,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        timeout=30,
    )
    console_client.pending_calls_threshold = 1_000_000
    clock = StaticClock()
    total = outbox.stats().depth
    async with console_client:
        console = asyncio.create_task(_console(console_client, stored, ready))
        await ready.wait()
        async with Uplink(config, outbox, clock) as uplink:
            runner = asyncio.create_task(uplink.run())
            await uplink.wait_connected(30)
            started = time.perf_counter()
            async with asyncio.timeout(600):
                while outbox.stats().depth:
                    await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            await uplink.stop()
            await runner
        console.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await console
    if len(stored) != total:
        raise AssertionError(f"console stored {len(stored)} of {total} records")
    return total / elapsed


def run(quick: bool) -> list[Figure]:
    backlog = 300 if quick else 100_000
    commits = 50 if quick else 1000
    with tempfile.TemporaryDirectory(prefix="bench-uplink-") as tmp:
        root = Path(tmp)
        pki = Pki.create(root / "pki", "Bench Uplink")
        ca = pki.services  # clients recognise the broker by it
        ca.issue_server("broker", hosts=["127.0.0.1", "localhost"])
        kiosk = pki.devices.issue_client(DEVICE)
        console = ca.issue_service_client("console")
        broker = BrokerConfig.local(pki, root / "mosquitto", devices=(DEVICE,), persistence=False)
        config = UplinkConfig.from_dict(
            {
                "device_id": DEVICE,
                "agent_version": "0.0.0+bench",
                "broker": {
                    "host": "127.0.0.1",
                    "port": broker.tls_port,
                    "ca_file": str(ca.cert_path),
                    "cert_file": str(kiosk.cert_path),
                    "key_file": str(kiosk.key_path),
                },
            }
        )
        clock = StaticClock()
        with Outbox(root / "enqueue.db", DEVICE, clock) as outbox:
            times = _enqueue_one_per_commit(outbox, commits)
        enqueue_rate = len(times) / sum(times)
        commit_ms = statistics.median(times) * 1000
        commit_p99_ms = sorted(times)[int(len(times) * 0.99) - 1] * 1000

        with Outbox(root / "kiosk.db", DEVICE, clock) as outbox:
            started = time.perf_counter()
            _backlog(outbox, backlog)
            backlog_rate = backlog / (time.perf_counter() - started)
            tls = aiomqtt.TLSParameters(
                ca_certs=str(ca.cert_path),
                certfile=str(console.cert_path),
                keyfile=str(console.key_path),
            )
            with Mosquitto(broker):
                drain_rate = asyncio.run(_drain(outbox, config, tls, broker.service_port))

    return [
        at_least(
            f"drain a {backlog:,}-record backlog (TLS, acked by a console stand-in)",
            drain_rate,
            "records/s",
            DRAIN_TARGET_PER_S,
            f"window {config.delivery.window}, acks per {ACK_BATCH} or {ACK_DELAY_S * 1000:g} ms",
        ),
        Figure(
            "enqueue, one transaction per record (synchronous=FULL)",
            enqueue_rate,
            "records/s",
            note="bounded by fsync; SD cards: 2-20 ms per commit",
        ),
        Figure("commit latency p50 (one fsync)", commit_ms, "ms"),
        Figure("commit latency p99", commit_p99_ms, "ms"),
        Figure("enqueue, 5,000 records per transaction", backlog_rate, "records/s"),
    ]
