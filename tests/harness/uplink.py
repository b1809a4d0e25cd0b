"""Uplink test harness: a broker per test (to kill and restart), a test console, kiosk processes.

``uplink_broker`` is a real Mosquitto configured exactly as ``broker`` is (TLS, client
certificates, the contract ACL) but started for one test on its own ports, so a test may
``kill()`` it (SIGKILL, as a crash) and ``start()`` it again on the same ports::

    async def test_something(uplink_broker, tmp_path):
        config = uplink_broker.uplink_config("kiosk-a")
        async with TestConsole(uplink_broker) as console, Uplink(config, outbox, clock) as up:
            ...

:class:`TestConsole` plays the console's ingest: it stores each record by id (a duplicate is
counted, not stored twice) and acks what it stored, following the ``ack`` schema.

Run as a program (``PYTHONPATH=tests python -m harness.uplink ...``) it is a kiosk process to
kill -9: ``writer DB DEVICE N`` commits N records (printing each id once committed), and
``kiosk CONFIG_JSON DB`` runs an uplink (printing ``connected <session>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import mqtt_schemas
from console.connection import Endpoint
from edge.uplink import Outbox, StaticClock, Uplink, UplinkConfig
from mqtt_schemas import topics
from mqtt_schemas.envelope import ENVELOPE_FIELDS
from provisioning.broker import BrokerConfig, DynamicSecurity, Mosquitto
from provisioning.pki import CertificateAuthority, Identity, Pki

from .broker import SERVICES, broker_config, issue

TESTS = Path(__file__).resolve().parent.parent
_ids = itertools.count(1)


def crossing_body(number: int = 0) -> dict[str, Any]:
    """A valid crossing payload without its envelope (the outbox fills that in)."""
    example = mqtt_schemas.examples("crossing")["valid"][0]["payload"]
    body = {k: v for k, v in example.items() if k not in ENVELOPE_FIELDS}
    body["latency_ms"] = number
    return body


@dataclass
class UplinkPki:
    pki: Pki
    issued: dict[str, Identity] = field(default_factory=dict)

    @property
    def ca(self) -> CertificateAuthority:
        """The service CA: what clients trust to recognise the broker."""
        return self.pki.services

    def identity(self, name: str) -> Identity:
        if name not in self.issued:
            self.issued[name] = issue(self.pki, name)
        return self.issued[name]


@pytest.fixture(scope="session")
def uplink_pki(tmp_path_factory: pytest.TempPathFactory) -> UplinkPki:
    root = tmp_path_factory.mktemp("uplink-pki")
    pki = Pki.create(root, "Borderlane Uplink Test")
    pki.services.issue_server("broker", hosts=["localhost", "127.0.0.1"])
    return UplinkPki(pki)


@dataclass
class UplinkBroker:
    """One test's own Mosquitto: start, kill (SIGKILL) and start again on the same ports."""

    __test__ = False

    pki: UplinkPki
    config: BrokerConfig
    process: Mosquitto
    host: str = "127.0.0.1"
    registered: set[str] = field(default_factory=set)
    """Kiosks this broker's access rules know (its rules file outlives a kill and restart)."""

    @property
    def tls_port(self) -> int:
        return self.config.tls_port

    @property
    def ca(self) -> CertificateAuthority:
        """The CA (so ``harness.console.worker_config`` can run a real console here too)."""
        return self.pki.ca

    def start(self) -> None:
        self.process.start()

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()

    def identity(self, name: str) -> Identity:
        """*name*'s certificate; a kiosk is also added to this broker's access rules."""
        identity = self.pki.identity(name)
        if name not in SERVICES and name not in self.registered:
            console = self.pki.identity("console")
            with DynamicSecurity(
                self.host,
                self.config.service_port,
                self.ca.cert_path,
                console.cert_path,
                console.key_path,
                client_id=f"console:rules-{next(_ids)}",
            ) as rules:
                rules.add_device(name)
            self.registered.add(name)
        return identity

    def port_for(self, name: str) -> int:
        return self.config.service_port if name in SERVICES else self.tls_port

    def client(self, name: str, **options: Any) -> aiomqtt.Client:
        """An MQTT v5 client on its listener, authenticated as *name*."""
        identity = self.identity(name)
        options.setdefault(
            "tls_params",
            aiomqtt.TLSParameters(
                ca_certs=str(self.pki.ca.cert_path),
                certfile=str(identity.cert_path),
                keyfile=str(identity.key_path),
            ),
        )
        options.setdefault("identifier", f"{name}:{next(_ids)}")
        options.setdefault("socket_options", [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        return aiomqtt.Client(
            self.host,
            self.port_for(name),
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=5,
            **options,
        )

    def console_endpoint(self, name: str = "console") -> Endpoint:
        """Where and as whom a console process connects (``console.connection.Endpoint``)."""
        identity = self.identity(name)
        return Endpoint(
            self.host, self.port_for(name), self.ca.cert_path, identity.cert_path, identity.key_path
        )

    def console_cli_args(self, name: str = "console") -> list[str]:
        """The broker options of a ``borderlane-console`` command, as that console."""
        endpoint = self.console_endpoint(name)
        return [
            "--broker",
            f"{endpoint.host}:{endpoint.port}",
            "--cafile",
            str(endpoint.ca_file),
            "--cert",
            str(endpoint.cert_file),
            "--key",
            str(endpoint.key_file),
        ]

    def observer(self) -> aiomqtt.Client:
        """A client on the plain loopback listener, which sees every topic."""
        return aiomqtt.Client(
            self.host,
            self.config.plain_port,
            identifier=f"observer-{next(_ids)}",
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=5,
        )

    def uplink_settings(self, device_id: str, **delivery: Any) -> dict[str, Any]:
        """An ``uplink`` configuration table for *device_id* with test-speed timings."""
        identity = self.identity(device_id)
        return {
            "device_id": device_id,
            "agent_version": "0.1.0+test",
            "broker": {
                "host": self.host,
                "port": self.tls_port,
                "ca_file": str(self.ca.cert_path),
                "cert_file": str(identity.cert_path),
                "key_file": str(identity.key_path),
                "keepalive_s": 5,
                "connect_timeout_s": 3,
            },
            "delivery": {"window": 64, "ack_timeout_s": 5, **delivery},
            "backoff": {"initial_s": 0.05, "max_s": 0.4},
        }

    def uplink_config(self, device_id: str, **delivery: Any) -> UplinkConfig:
        return UplinkConfig.from_dict(self.uplink_settings(device_id, **delivery))


@pytest.fixture
def uplink_broker(uplink_pki: UplinkPki, tmp_path: Path) -> Iterator[UplinkBroker]:
    config = broker_config(uplink_pki.pki, tmp_path / "mosquitto")
    broker = UplinkBroker(uplink_pki, config, Mosquitto(config))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class TestConsole:
    """The console's ingest, reduced to what the kiosk sees: store by id, then ack.

    ``persistent``: keep a broker session (fixed client id, no clean start), so records
    published while the console is reconnecting wait for it.

    ``acks``: ``True`` acks every record once stored, ``False`` stores and acks nothing, or a
    function ``(record_id, deliveries_so_far) -> bool`` deciding per delivery. Reconnects by
    itself when the broker goes away. ``deliveries`` counts every delivery of each id,
    duplicates included; ``stored`` holds each id once.
    """

    __test__ = False

    def __init__(
        self,
        broker: UplinkBroker,
        *,
        acks: bool | Callable[[str, int], bool] = True,
        name: str = "console",
        persistent: bool = False,
    ) -> None:
        self.broker = broker
        self.acks = acks
        self.name = name
        self._options: dict[str, Any] = {}
        if persistent:  # a session that outlives the connection (and an orderly broker stop)
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 300
            self._options = {
                "identifier": f"test-console-{next(_ids)}",
                "clean_start": False,
                "properties": properties,
            }
        self.stored: dict[str, dict[str, Any]] = {}
        self.deliveries: Counter[str] = Counter()
        self.order: list[str] = []
        self.acked: list[str] = []
        self.invalid = 0
        self.connected = asyncio.Event()
        self._seq = itertools.count(1)
        self._changed = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TestConsole:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(10):
            await self.connected.wait()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with self.broker.client(self.name, **self._options) as client:
                    self._client = client
                    await client.subscribe(
                        [(topics.device_filter(channel), 1) for channel in topics.RECORD_CHANNELS]
                    )
                    self.connected.set()
                    pending: dict[str, list[str]] = {}
                    have = asyncio.Event()
                    # Acks go out from their own task: a publish waiting for its PUBACK must
                    # not keep the receive loop from noticing that the broker is gone.
                    acker = asyncio.create_task(self._acker(client, pending, have))
                    try:
                        async for message in client.messages:
                            self._ingest(message, pending)
                            have.set()
                    finally:
                        acker.cancel()
                        await asyncio.gather(acker, return_exceptions=True)
            except aiomqtt.MqttError:
                self._client = None
                self.connected.clear()
                await asyncio.sleep(0.05)

    async def _acker(
        self, client: aiomqtt.Client, pending: dict[str, list[str]], have: asyncio.Event
    ) -> None:
        while True:
            await have.wait()
            have.clear()
            batches = list(pending.items())
            pending.clear()
            for device_id, ids in batches:
                await self._ack(client, device_id, ids)

    def _ingest(self, message: aiomqtt.Message, pending: dict[str, list[str]]) -> None:
        route = topics.parse(str(message.topic))
        try:
            payload = json.loads(message.payload)
            mqtt_schemas.validate(route.channel.schema, payload)
        except (ValueError, mqtt_schemas.PayloadError):
            self.invalid += 1
            return
        record_id = payload["id"]
        self.deliveries[record_id] += 1
        self.order.append(record_id)
        wanted = (
            self.acks
            if isinstance(self.acks, bool)
            else self.acks(record_id, self.deliveries[record_id])
        )
        if wanted:
            self.stored.setdefault(record_id, payload)  # idempotent by id
            pending.setdefault(route.device_id, []).append(record_id)
        self._changed.set()

    async def _ack(self, client: aiomqtt.Client, device_id: str, ids: list[str]) -> None:
        for start in range(0, len(ids), 1000):
            chunk = list(dict.fromkeys(ids[start : start + 1000]))
            payload = {
                "schema": "ack@1",
                "id": str(uuid.uuid4()),
                "device_id": self.name,
                "seq": next(self._seq),
                "time": "2026-11-24T15:04:05.123Z",
                "clock": {"synced": True, "source": "ntp"},
                "acked": chunk,
            }
            mqtt_schemas.validate("ack", payload)
            await client.publish(
                topics.device_topic(device_id, "acks"), json.dumps(payload).encode(), qos=1
            )
            self.acked += chunk

    async def ack_received(self, device_id: str) -> None:
        """Store and ack every record received so far (for a console that held back)."""
        assert self._client is not None
        ids = [i for i in self.deliveries if i not in self.acked]
        for record_id in ids:
            self.stored.setdefault(record_id, {})
        await self._ack(self._client, device_id, ids)

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        """Wait until *condition()* holds, re-checking after every delivery."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await self._changed.wait()


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start this module as a kiosk process (see the module documentation)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "harness.uplink", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _writer(db: str, device_id: str, count: int) -> None:
    outbox = Outbox(db, device_id, StaticClock())
    outbox.db.execute(
        "CREATE TABLE IF NOT EXISTS lane_state (id INTEGER PRIMARY KEY, crossings INTEGER)"
    )
    outbox.db.execute("INSERT OR IGNORE INTO lane_state VALUES (1, 0)")
    for number in range(count):
        with outbox.transaction() as tx:
            tx.execute("UPDATE lane_state SET crossings = crossings + 1 WHERE id = 1")
            record = tx.enqueue("crossings", crossing_body(number))
        print(record.id, flush=True)  # only once committed


async def _kiosk(settings: str, db: str) -> None:
    config = UplinkConfig.from_dict(json.loads(settings))
    clock = StaticClock()
    outbox = Outbox(db, config.device_id, clock, config.outbox)
    async with Uplink(config, outbox, clock) as uplink:
        runner = asyncio.create_task(uplink.run())
        await uplink.wait_connected(10)
        print("connected", uplink.status().session, flush=True)
        await runner


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "writer":
        _writer(rest[0], rest[1], int(rest[2]))
    elif mode == "kiosk":
        asyncio.run(_kiosk(rest[0], rest[1]))
    else:
        sys.exit(f"unknown mode {mode!r}")
