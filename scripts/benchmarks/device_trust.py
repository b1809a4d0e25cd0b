"""Device trust on the real stack: from enrollment to the first acked crossing, and revocation.

A throw-away PKI (device and service CAs), Mosquitto as ``borderlane-provision`` configures it
(device and service listeners, dynamic-security rules, CRL), the console's enrollment endpoint
over HTTPS and a real ingest worker on SQLite, all on loopback:

* **enroll -> first ack**: for each kiosk, from making its token to the console's ack of its
  first crossing: the kiosk makes its key, enrolls over HTTPS (the console checks, adds it to
  the broker's rules and signs), connects with the new certificate, publishes, gets the ack;
* **revocation**: with the other kiosks connected, from ``console.enrollment.revoke`` to the
  moment the revoked kiosk is disconnected *and* a new TLS handshake with its certificate is
  refused (target <= 60 s); then every other kiosk's connection is checked with a publish on
  the same connection (a kiosk dropped in between would fail it): none may have been dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import socket
import ssl
import statistics
import tempfile
import time
from pathlib import Path

import aiomqtt

import mqtt_schemas
from console.connection import Endpoint
from console.enroll_server import EnrollServer
from console.enrollment import EnrollmentSettings, create_token, revoke
from console.ingest.worker import IngestConfig, IngestWorker
from console.store import open_database
from edge.uplink.enroll import enroll
from mqtt_schemas import topics
from mqtt_schemas.envelope import utc_now, uuid7
from provisioning.broker import BrokerConfig, DynamicSecurity, Mosquitto, drop_device
from provisioning.pki import Pki

from . import Figure, at_least, at_most

TARGET_REVOCATION_S = 60.0
POST = "bz-bench"


def _crossing(device_id: str) -> dict:
    payload = copy.deepcopy(mqtt_schemas.examples("crossing")["valid"][0]["payload"])
    payload.update(id=uuid7(), device_id=device_id, seq=1, time=utc_now())
    return payload


def _tls(state: Path) -> aiomqtt.TLSParameters:
    return aiomqtt.TLSParameters(
        ca_certs=str(state / "ca.crt"),
        certfile=str(state / "kiosk.crt"),
        keyfile=str(state / "kiosk.key"),
    )


def _refused(host: str, port: int, state: Path) -> bool:
    context = ssl.create_default_context(cafile=str(state / "ca.crt"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(state / "kiosk.crt", state / "kiosk.key")
    try:
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost"),
        ):
            return False
    except ssl.SSLError:
        return True


async def _first_ack(config: BrokerConfig, state: Path, device_id: str) -> None:
    record = _crossing(device_id)
    client = aiomqtt.Client(
        "127.0.0.1", config.tls_port, identifier=device_id, tls_params=_tls(state), timeout=10
    )
    async with client:
        await client.subscribe(topics.device_topic(device_id, "acks"), qos=1)
        await client.publish(topics.device_topic(device_id, "crossings"), json.dumps(record), 1)
        async with asyncio.timeout(30):
            async for message in client.messages:
                if record["id"] in json.loads(message.payload).get("acked", []):
                    return


async def _measure(root: Path, kiosks: int) -> dict[str, float]:
    pki = Pki.create(root / "pki", "Bench")
    services = pki.services
    services.issue_server("broker", hosts=["127.0.0.1", "localhost"])
    tls = services.issue_server("enroll", hosts=["127.0.0.1", "localhost"])
    console = services.issue_service_client("console")
    config = BrokerConfig.local(pki, root / "broker", persistence=False)
    endpoint = Endpoint("127.0.0.1", config.service_port, services.cert_path,
                        console.cert_path, console.key_path)  # fmt: skip

    def rules() -> DynamicSecurity:
        return DynamicSecurity(
            "127.0.0.1", config.service_port, services.cert_path, console.cert_path,
            console.key_path, client_id="console:bench-rules",
        )  # fmt: skip

    def register(device_id: str) -> None:
        with rules() as access:
            access.add_device(device_id)

    db = str(root / "console.db")
    engine = open_database(db)
    settings = EnrollmentSettings(pki.devices, "127.0.0.1", config.tls_port,
                                  services.cert_path.read_text())  # fmt: skip
    with Mosquitto(config) as broker:
        server = EnrollServer(engine, settings, ("127.0.0.1", 0), tls.cert_path, tls.key_path,
                              register=register)  # fmt: skip
        server.start()
        worker = IngestWorker(IngestConfig(db=db, endpoint=endpoint, node_id="console-bench",
                                           group="bench", max_delay=0.005))  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await asyncio.wait_for(worker.ready.wait(), 30)
        try:
            durations = []
            states = {}
            for number in range(kiosks):
                device = f"kiosk-bench-{number:03d}"
                states[device] = root / device
                started = time.perf_counter()
                token = create_token(engine, device, POST, ttl_s=600, created_by="bench")
                await asyncio.to_thread(
                    enroll, f"https://127.0.0.1:{server.port}", token, states[device],
                    ca_file=services.cert_path,
                )  # fmt: skip
                await _first_ack(config, states[device], device)
                durations.append(time.perf_counter() - started)

            # Revocation with everyone else connected.
            victim, *others = states
            async with contextlib.AsyncExitStack() as stack:
                clients = {}
                for device, state in states.items():
                    client = aiomqtt.Client(
                        "127.0.0.1", config.tls_port, identifier=device, tls_params=_tls(state)
                    )
                    clients[device] = await stack.enter_async_context(client)

                def disconnect(device: str) -> None:
                    with rules() as access:
                        drop_device(device, reload=broker.reload, rules=access)

                started = time.perf_counter()
                await asyncio.to_thread(revoke, engine, pki.devices, victim, "stolen",
                                        actor="bench", disconnect=disconnect)  # fmt: skip
                while not _refused("127.0.0.1", config.tls_port, states[victim]):
                    await asyncio.sleep(0.05)
                revocation_s = time.perf_counter() - started
                dropped = 0
                for device in others:
                    try:
                        topic = topics.device_topic(device, "crossings")
                        await clients[device].publish(topic, json.dumps(_crossing(device)), 1)
                    except aiomqtt.MqttError:
                        dropped += 1
                with contextlib.suppress(aiomqtt.MqttError):
                    await clients[victim].publish(
                        topics.device_topic(victim, "crossings"), json.dumps(_crossing(victim)), 1
                    )
                    raise AssertionError("the revoked kiosk could still publish")
                # the revoked kiosk's client is gone: leave it out of the exit stack's goodbyes
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            server.close()
    return {
        "enroll_median_s": statistics.median(durations),
        "enroll_max_s": max(durations),
        "revocation_s": revocation_s,
        "dropped": dropped,
        "others": len(others),
    }


def run(quick: bool) -> list[Figure]:
    kiosks = 3 if quick else 20
    with tempfile.TemporaryDirectory(prefix="bench-trust-") as tmp:
        result = asyncio.run(_measure(Path(tmp), kiosks))
    return [
        Figure(
            "enroll -> first crossing acked, median / max",
            result["enroll_median_s"],
            "s",
            note=f"max {result['enroll_max_s']:.2f} s over {kiosks} kiosks (key, CSR, HTTPS, "
            "broker rules, certificate, MQTT connect, crossing, ack)",
        ),
        at_most(
            "revocation: kicked and its certificate refused",
            result["revocation_s"],
            "s",
            TARGET_REVOCATION_S,
            "CRL rewritten, broker SIGHUP, 1 s settle, dynamic-security kick",
        ),
        at_least(
            "other kiosks still connected after the revocation",
            result["others"] - result["dropped"],
            "kiosks",
            result["others"],
            f"of {result['others']}, each checked with a publish on its own connection",
        ),
    ]
