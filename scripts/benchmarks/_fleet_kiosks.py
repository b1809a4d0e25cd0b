"""One process of simulated kiosks for the fleet benchmark (:mod:`benchmarks.fleet`).

Run as ``python -m benchmarks._fleet_kiosks CONFIG.json`` (``scripts/`` on ``PYTHONPATH``); the
coordinator talks to it over pipes:

* stdout, one line each: ``connected N`` whenever the number of this process's kiosks connected
  (CONNACK received and acks subscribed) changes, sampled every 50 ms, and ``done`` at the end;
* stdin: ``stop`` ends the crossings; the process then waits until every record it published is
  acked (or ``drain_timeout_s``), writes its results to ``results`` and exits. End of file (the
  coordinator is gone) exits at once.

Each kiosk is one asyncio task family with one TLS connection and its own client certificate,
speaking MQTT 5 through :class:`_lean_mqtt.LeanPublisher` (clean start: after a broker crash
its sessions are gone anyway, and a real kiosk resubscribes and resends on every connect too).
It behaves as the agent's uplink does, simplified:

* reconnects with the uplink's own back-off (:meth:`edge.uplink.session.Uplink._backoff` with the
  default :class:`~edge.uplink.config.BackoffSettings`): "equal jitter", counting failed
  attempts since the last connection that succeeded;
* crossings arrive at random (a Poisson process of ``crossings_per_min``) into an outbox of
  unacked records; each is published at QoS 1 when connected, every unacked record is published
  again after each reconnect, and one not acked within the uplink's ``ack_timeout_s`` (30 s;
  the config's ``ack_timeout_s`` replaces it for quick runs) is published again (not doubling
  the wait for further resends as the uplink does); the console's ``ack@1`` removes it; a
  PUBACK saying nobody subscribes (the console is not back yet after a broker restart) has the
  outbox published again after the uplink's ``UNHEARD_RETRY_S``, doubling until an ack comes;
* a ``health@1`` heartbeat every ``heartbeat_s`` (QoS 0, not kept when offline, as the agent's
  ``publish_now``), checked against the contract before it is sent.

Every time is wall-clock (``time.time()``), comparable across the processes of one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import random
import resource
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mqtt_schemas
from edge.uplink.config import BackoffSettings, BrokerSettings, DeliverySettings
from edge.uplink.session import UNHEARD_RETRY_S, Uplink
from mqtt_schemas import topics
from mqtt_schemas.envelope import utc_now, uuid7

from ._lean_mqtt import PUBLISH, LeanMqttError, LeanPublisher, packet, utf8, varint

_UPLINK = SimpleNamespace(config=SimpleNamespace(backoff=BackoffSettings()))
"""What :meth:`Uplink._backoff` reads (``self.config.backoff``): the uplink's default policy."""
CONNECT_TIMEOUT_S = BrokerSettings.__dataclass_fields__["connect_timeout_s"].default
ACK_TIMEOUT_S = DeliverySettings().ack_timeout_s
PUBLISH_TIMEOUT_S = DeliverySettings().publish_timeout_s
DISCONNECTED = (OSError, EOFError, LeanMqttError, TimeoutError, ssl.SSLError)
"""How a connection attempt or a connection ends (refused, reset, closed, timed out)."""


def backoff(failures: int) -> float:
    """Seconds to wait before the next attempt: the real uplink's function and settings."""
    return Uplink._backoff(_UPLINK, failures)  # type: ignore[arg-type]


def raise_fd_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class KioskClient(LeanPublisher):
    """:class:`LeanPublisher` with QoS 0 publishes (heartbeats), an explicit close that sends
    nothing (the connection may be gone), and reuse: one client (so one TLS context, its
    certificate and key loaded once, as a kiosk's agent does) serves every connection."""

    def publish_qos0(self, topic: bytes, payload: bytes) -> None:
        assert self._writer is not None
        self._writer.write(packet(PUBLISH << 4, topic + varint(0) + payload))

    @property
    def reading(self) -> asyncio.Task[None]:
        """The read loop; it ends (with an error) when the connection does."""
        assert self._reading is not None
        return self._reading

    async def close(self) -> None:
        """Drop this connection (without a DISCONNECT); the client may connect again. A
        publish still waiting for a slot of this connection writes to the closed one: lost,
        as on a real kiosk, and resent from the outbox."""
        reading, writer = self._reading, self._writer
        if reading is not None:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
        if writer is not None:
            writer.close()
            with contextlib.suppress(*DISCONNECTED):
                async with asyncio.timeout(2):
                    await writer.wait_closed()


@dataclass
class Record:
    id: str
    body: bytes
    created: float
    first_sent: float = 0.0
    last_sent: float = 0.0
    acked: float = 0.0
    sends: int = 0


@dataclass
class Kiosk:
    name: str
    cert: str
    key: str
    settings: dict[str, Any]
    connects: list[float] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)
    failed_attempts: int = 0
    heartbeats_sent: int = 0
    duplicate_acks: int = 0
    rejected: int = 0
    records: list[Record] = field(default_factory=list)
    outbox: dict[str, Record] = field(default_factory=dict)
    client: KioskClient | None = None
    seq: int = 0
    last_ack: str | None = None
    unheard: asyncio.TimerHandle | None = None
    unheard_streak: int = 0

    def __post_init__(self) -> None:
        self.crossings_topic = utf8(topics.device_topic(self.name, "crossings"))
        self.health_topic = utf8(topics.device_topic(self.name, "health"))
        self.drained = asyncio.Event()
        self.drained.set()

    # -- the connection ---------------------------------------------------------------------

    async def life(self, start_after: float) -> None:
        """Connect, serve until the connection drops, wait the uplink's back-off, again."""
        s = self.settings
        client = KioskClient(
            s["host"], s["port"], Path(s["ca"]), Path(self.cert), Path(self.key),
            self.name, self.on_message,
        )  # fmt: skip
        client.on_unheard = self.nobody_listening
        await asyncio.sleep(start_after)
        failures = 0
        while True:
            connected = False
            self.attempts.append(time.time())
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await client.__aenter__()
                    await client.subscribe(topics.device_topic(self.name, "acks"))
                connected = True
                self.connects.append(time.time())
                self.client = client
                for record in list(self.outbox.values()):  # a new session: resend the outbox
                    self.send(record)
                with contextlib.suppress(*DISCONNECTED):
                    await client.reading
            except DISCONNECTED:
                pass
            finally:
                self.client = None
                await client.close()
            if not connected:
                self.failed_attempts += 1
            failures = 0 if connected else failures + 1
            await asyncio.sleep(backoff(failures))

    def on_message(self, topic: str, payload: bytes) -> None:
        """An ``ack@1``: its ids leave the outbox."""
        now = time.time()
        ack = json.loads(payload)
        self.rejected += len(ack.get("rejected") or ())
        for record_id in ack["acked"]:
            record = self.outbox.pop(record_id, None)
            if record is None:
                self.duplicate_acks += 1
                continue
            record.acked = now
        self.last_ack = ack["time"]
        self.unheard_streak = 0
        if not self.outbox:
            self.drained.set()

    def nobody_listening(self) -> None:
        """The uplink's answer to a PUBACK with no matching subscribers: the outbox again soon."""
        if self.unheard is not None:
            return
        timeout = self.settings.get("ack_timeout_s") or ACK_TIMEOUT_S
        delay = min(UNHEARD_RETRY_S * 2**self.unheard_streak, timeout)
        self.unheard_streak += 1
        self.unheard = asyncio.get_running_loop().call_later(delay, self._send_unheard)

    def _send_unheard(self) -> None:
        self.unheard = None
        for record in list(self.outbox.values()):
            self.send(record)

    def send(self, record: Record) -> None:
        """Publish *record* now (QoS 1) if connected; it stays in the outbox until acked."""
        client = self.client
        if client is None:
            return
        now = time.time()
        record.first_sent = record.first_sent or now
        record.last_sent = now
        record.sends += 1
        task = asyncio.create_task(self._publish(client, record.body))
        _PENDING.add(task)
        task.add_done_callback(_PENDING.discard)

    async def _publish(self, client: KioskClient, body: bytes) -> None:
        # Waits only for a slot under the broker's Receive Maximum; a dropped connection can
        # leave it waiting: the record is resent on the next connection in any case.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await client.publish(self.crossings_topic, body)

    # -- what the kiosk produces ------------------------------------------------------------

    def _envelope(self, template: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        payload = copy.deepcopy(template)
        payload.update(id=uuid7(), device_id=self.name, seq=self.seq, time=utc_now())
        return payload

    async def crossings(self, producing: asyncio.Event) -> None:
        """Travellers at random: exponential gaps, ``crossings_per_min`` on average."""
        per_s = self.settings["crossings_per_min"] / 60
        while producing.is_set():
            await asyncio.sleep(random.expovariate(per_s))
            if not producing.is_set():
                break
            payload = self._envelope(_CROSSING)
            mqtt_schemas.validate("crossing", payload)
            body = json.dumps(payload, separators=(",", ":")).encode()
            record = Record(payload["id"], body, time.time())
            self.records.append(record)
            self.outbox[record.id] = record
            self.drained.clear()
            self.send(record)

    async def heartbeats(self) -> None:
        period = self.settings["heartbeat_s"]
        await asyncio.sleep(random.uniform(0, period))
        while True:
            client = self.client
            if client is not None:
                payload = self._envelope(_HEALTH)
                oldest = min((r.created for r in self.outbox.values()), default=None)
                payload.update(
                    session=len(self.connects),
                    uptime_s=round(time.monotonic() - _STARTED, 1),
                    outbox={
                        "depth": len(self.outbox),
                        "oldest_age_s": None if oldest is None else round(time.time() - oldest, 1),
                        "bytes": sum(len(r.body) for r in self.outbox.values()),
                        "alarm": False,
                    },
                    last_ack=self.last_ack,
                )
                mqtt_schemas.validate("health", payload)
                client.publish_qos0(self.health_topic, json.dumps(payload).encode())
                self.heartbeats_sent += 1
            await asyncio.sleep(period)

    async def resend_overdue(self) -> None:
        """The uplink's ack timeout: a record unacked that long is published again."""
        timeout = self.settings.get("ack_timeout_s") or ACK_TIMEOUT_S
        while True:
            await asyncio.sleep(timeout / 6)
            cutoff = time.time() - timeout
            for record in list(self.outbox.values()):
                if record.last_sent and record.last_sent < cutoff:
                    self.send(record)

    def results(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "connects": self.connects,
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
            "heartbeats": self.heartbeats_sent,
            "duplicate_acks": self.duplicate_acks,
            "rejected": self.rejected,
            "records": [[r.id, r.created, r.first_sent, r.acked, r.sends] for r in self.records],
        }


_PENDING: set[asyncio.Task[None]] = set()
_CROSSING = mqtt_schemas.examples("crossing")["valid"][0]["payload"]
_HEALTH = mqtt_schemas.examples("health")["valid"][0]["payload"]
_STARTED = time.monotonic()


async def _commands(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
    """Lines from stdin, read on a thread (``""`` at end of file)."""
    queue: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.strip())
        loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=read, daemon=True).start()
    return queue


async def main(config: dict[str, Any]) -> int:
    raise_fd_limit()
    random.seed(config["seed"])
    loop = asyncio.get_running_loop()
    kiosks = [Kiosk(name, cert, key, config) for name, cert, key in config["kiosks"]]
    producing = asyncio.Event()
    producing.set()
    tasks = []
    for kiosk in kiosks:
        tasks += [
            asyncio.create_task(kiosk.life(random.uniform(0, config["ramp_s"]))),
            asyncio.create_task(kiosk.crossings(producing)),
            asyncio.create_task(kiosk.heartbeats()),
            asyncio.create_task(kiosk.resend_overdue()),
        ]

    async def report() -> None:
        told = -1
        while True:
            count = sum(k.client is not None for k in kiosks)
            if count != told:
                print(f"connected {count}", flush=True)
                told = count
            await asyncio.sleep(0.05)

    tasks.append(asyncio.create_task(report()))
    commands = await _commands(loop)
    try:
        if await commands.get() != "stop":
            return 1  # the coordinator is gone
        producing.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(config["drain_timeout_s"]):
                await asyncio.gather(*(k.drained.wait() for k in kiosks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(k.client.close() for k in kiosks if k.client is not None))
    Path(config["results"]).write_text(json.dumps([k.results() for k in kiosks]))
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(json.loads(Path(sys.argv[1]).read_text()))))
