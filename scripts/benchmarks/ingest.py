"""Console ingest throughput: 50 kiosks publish crossings; how many per second are stored and acked.

Everything is real and on this machine: Mosquitto with TLS client certificates (one per kiosk,
from a throw-away CA) on free ports, the ``borderlane-console ingest`` command as its own
process, and the kiosks as MQTT clients in this process. Each kiosk behaves like an outbox: it
publishes its crossings (QoS 1, serialised in advance, as an outbox stores them) as fast as the
broker's flow control and its window of unacked records allow, frees a slot for each id the
console acks, and republishes a record still unacked after a timeout.

Figures, from the moment every kiosk starts publishing:

* stored: all crossings committed in the console database (``max(rowid)`` polled every 10 ms);
* acked: every kiosk has received the ack of each of its crossings;
* ack latency (publish to ack received) p50 and p99, the mean batch the worker committed, and
  the CPU time per crossing of the worker, the broker and the simulated kiosks, for the profile.

The target is 5,000 crossings/s on a 2-core machine. Quick mode: 2 kiosks x 50 crossings.
``BENCH_INGEST_COMMAND`` replaces ``borderlane-console`` in the worker's command line, e.g. with a
profiler wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

import mqtt_schemas
from console.connection import NO_DELAY
from console.envelope import utc_now, uuid7
from console.ingest import paho_speedups
from mqtt_schemas import topics
from provisioning.broker import BrokerConfig, Mosquitto, free_port
from provisioning.pki import CertificateAuthority, Identity

from . import Figure, at_least

TARGET_PER_S = 5000
WINDOW = 50
"""Unacked records per kiosk. 50 kiosks x 50 stay below what Mosquitto holds for the worker
(its receive maximum, 2,000, plus the default max_queued_messages, 1,000), so the broker never
drops; a kiosk outbox must bound its window the same way."""
REPUBLISH_AFTER_S = 10.0
CONSOLE = Path(sys.executable).parent / "borderlane-console"


@dataclass
class KioskRun:
    device_id: str
    payloads: list[tuple[str, bytes]]
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    republished: int = 0
    done_at: float = 0.0


def _payloads(device_id: str, count: int) -> list[tuple[str, bytes]]:
    template = mqtt_schemas.examples("crossing")["valid"][0]["payload"]
    made = []
    for seq in range(1, count + 1):
        payload = copy.deepcopy(template)
        payload.update(id=uuid7(), device_id=device_id, seq=seq, time=utc_now())
        made.append((payload["id"], json.dumps(payload, separators=(",", ":")).encode()))
    return made


def _client(host: str, port: int, ca: Path, identity: Identity) -> aiomqtt.Client:
    client = aiomqtt.Client(
        host,
        port,
        identifier=f"bench-{identity.name}",
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_params=aiomqtt.TLSParameters(
            ca_certs=str(ca), certfile=str(identity.cert_path), keyfile=str(identity.key_path)
        ),
        timeout=30,
        socket_options=(NO_DELAY,),  # as the console does; see console.connection
    )
    client.pending_calls_threshold = 1_000_000  # many publishes in flight on purpose
    return client


async def _kiosk(client: aiomqtt.Client, run: KioskRun, start: asyncio.Event, window: int) -> None:
    topic = topics.device_topic(run.device_id, "crossings")
    by_id = dict(run.payloads)
    slots = asyncio.Semaphore(window)
    remaining = set(by_id)
    finished = asyncio.Event()

    paho = client._client

    def publish(record_id: str) -> None:
        # paho directly: aiomqtt's awaitable publish costs a task and a future per message, CPU
        # that would be taken from the console on this shared machine. The kiosk learns what
        # was stored from the console's acks, not from PUBACKs.
        run.sent_at[record_id] = time.perf_counter()
        paho.publish(topic, by_id[record_id], qos=1)

    async def receive_acks() -> None:
        async for message in client.messages:
            now = time.perf_counter()
            for record_id in json.loads(message.payload)["acked"]:
                if record_id in remaining:
                    remaining.discard(record_id)
                    run.latencies.append(now - run.sent_at[record_id])
                    slots.release()
            if not remaining:
                run.done_at = now
                finished.set()

    async def republish_stale() -> None:
        while True:
            await asyncio.sleep(1.0)
            cutoff = time.perf_counter() - REPUBLISH_AFTER_S
            for record_id in [r for r in remaining if run.sent_at.get(r, 1e18) < cutoff]:
                run.republished += 1
                publish(record_id)

    receiver = asyncio.create_task(receive_acks())
    janitor = asyncio.create_task(republish_stale())
    try:
        await start.wait()
        for record_id, _ in run.payloads:
            await slots.acquire()
            publish(record_id)
        await finished.wait()
    finally:
        receiver.cancel()
        janitor.cancel()
        await asyncio.gather(receiver, janitor, return_exceptions=True)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_stored(db: Path, count: int, deadline: float) -> float:
    """When ``crossings`` first holds *count* rows (polled from a thread every 10 ms)."""

    def poll() -> float:
        while time.perf_counter() < deadline:
            if db.exists():
                with (
                    contextlib.closing(sqlite3.connect(db, timeout=10)) as conn,
                    contextlib.suppress(sqlite3.OperationalError),
                ):
                    (rows,) = conn.execute("SELECT max(rowid) FROM crossings").fetchone()
                    if (rows or 0) >= count:
                        return time.perf_counter()
            time.sleep(0.01)
        raise TimeoutError(f"fewer than {count} crossings stored in time")

    return await asyncio.to_thread(poll)


async def _measure(root: Path, kiosk_count: int, per_kiosk: int) -> dict[str, float]:
    ca = CertificateAuthority.create(root / "pki", "Bench CA")
    server = ca.issue_server("broker", hosts=["127.0.0.1"])
    console = ca.issue_client("console")
    names = [f"kiosk-bench-{n:02d}" for n in range(1, kiosk_count + 1)]
    identities = {name: ca.issue_client(name) for name in names}
    config = BrokerConfig(
        root / "broker", free_port(), ca.cert_path, server.cert_path, server.key_path,
        persistence=False,
    )  # fmt: skip
    runs = [KioskRun(name, _payloads(name, per_kiosk)) for name in names]
    total = kiosk_count * per_kiosk
    db = root / "console.db"
    with Mosquitto(config) as broker:
        command = os.environ.get("BENCH_INGEST_COMMAND", str(CONSOLE)).split()
        worker = subprocess.Popen(
            [
                *command, "ingest", "--db", str(db),
                "--broker", f"127.0.0.1:{config.tls_port}",
                "--cafile", str(ca.cert_path), "--cert", str(console.cert_path),
                "--key", str(console.key_path), "--client-id", "bench-ingest",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            while "connected to" not in (line := await asyncio.to_thread(worker.stderr.readline)):
                if not line:
                    raise RuntimeError(f"the ingest worker exited with {worker.wait()}")
            clients = [
                _client("127.0.0.1", config.tls_port, ca.cert_path, identities[r.device_id])
                for r in runs
            ]
            async with contextlib.AsyncExitStack() as stack:
                for client, run in zip(clients, runs, strict=True):
                    await stack.enter_async_context(client)
                    await client.subscribe(topics.device_topic(run.device_id, "acks"), qos=1)
                start = asyncio.Event()
                tasks = [
                    asyncio.create_task(_kiosk(c, r, start, WINDOW))
                    for c, r in zip(clients, runs, strict=True)
                ]
                cpu_worker, cpu_broker = _cpu_seconds(worker.pid), _cpu_seconds(broker.pid)
                cpu_kiosks = time.process_time()
                started = time.perf_counter()
                start.set()
                stored_at = await _wait_stored(db, total, started + 300)
                async with asyncio.timeout(300):
                    await asyncio.gather(*tasks)
                cpu_worker = _cpu_seconds(worker.pid) - cpu_worker
                cpu_broker = _cpu_seconds(broker.pid) - cpu_broker
                cpu_kiosks = time.process_time() - cpu_kiosks
            worker.terminate()
            _, log = await asyncio.to_thread(worker.communicate, timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    summary = re.search(r"ingest stopped: (\d+) messages, (\d+) stored.*?(\d+) commits", log)
    if worker.returncode != 0 or summary is None:
        raise RuntimeError(f"the ingest worker failed ({worker.returncode}): {log[-2000:]}")
    messages, stored, commits = (int(g) for g in summary.groups())
    if stored != total:
        raise RuntimeError(f"{stored} crossings stored, expected {total}")
    latencies = sorted(x for r in runs for x in r.latencies)
    acked_at = max(r.done_at for r in runs)
    return {
        "stored_per_s": total / (stored_at - started),
        "acked_per_s": total / (acked_at - started),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "batch": messages / max(commits, 1),
        "worker_cpu": 1e6 * cpu_worker / total,
        "broker_cpu": 1e6 * cpu_broker / total,
        "kiosks_cpu": 1e6 * cpu_kiosks / total,
        "republished": sum(r.republished for r in runs),
        "total": total,
    }


def run(quick: bool) -> list[Figure]:
    kiosks, per_kiosk = (2, 50) if quick else (50, 1000)
    # The simulated kiosks share the machine with the console: keep their paho as cheap as the
    # worker's (in production, kiosks run on their own hardware).
    paho_speedups.install()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        r = asyncio.run(_measure(Path(tmp), kiosks, per_kiosk))
    load = f"{kiosks} kiosks x {per_kiosk}, TLS, window {WINDOW}"
    acked_note = f"{load}; {r['republished']} republished after a timeout"
    figures = [
        at_least("crossings stored", r["stored_per_s"], "crossings/s", TARGET_PER_S, load),
        at_least("crossings acked", r["acked_per_s"], "crossings/s", TARGET_PER_S, acked_note),
        Figure("ack latency p50", r["p50_ms"], "ms"),
        Figure("ack latency p99", r["p99_ms"], "ms"),
        Figure("mean batch committed", r["batch"], "messages"),
    ]
    if not quick:  # a quick run is too short for CPU clock ticks
        figures += [
            Figure("CPU: ingest worker", r["worker_cpu"], "us per crossing"),
            Figure("CPU: broker", r["broker_cpu"], "us per crossing"),
            Figure("CPU: 50 simulated kiosks", r["kiosks_cpu"], "us per crossing"),
        ]
    return figures
