"""A real Mosquitto broker per test session, with TLS client certificates and the contract ACL.

Use the ``broker`` fixture::

    async def test_something(broker):
        async with broker.client("kiosk-a") as kiosk:      # TLS, certificate CN "kiosk-a"
            await kiosk.publish(topics.device_topic("kiosk-a", "crossings"), b"{}", qos=1)

``broker.observer()`` connects on the plain loopback listener, which sees every topic.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

from provisioning.broker import BrokerConfig, Mosquitto, free_port
from provisioning.pki import CertificateAuthority, Identity

_client_ids = itertools.count(1)


@dataclass
class TestBroker:
    """Where the session's broker listens and how to reach it."""

    __test__ = False  # not a test class, despite the name

    host: str
    tls_port: int
    plain_port: int
    ca: CertificateAuthority
    process: Mosquitto
    _issued: dict[str, Identity] = field(default_factory=dict)

    def identity(self, name: str) -> Identity:
        """A client certificate for *name* from the broker's CA (issued once per session)."""
        if name not in self._issued:
            self._issued[name] = self.ca.issue_client(name)
        return self._issued[name]

    def tls(self, identity: Identity | None, ca_file: Path | None = None) -> aiomqtt.TLSParameters:
        """TLS settings that trust the broker's CA and present *identity* (or no certificate)."""
        return aiomqtt.TLSParameters(
            ca_certs=str(ca_file or self.ca.cert_path),
            certfile=str(identity.cert_path) if identity else None,
            keyfile=str(identity.key_path) if identity else None,
        )

    def client(self, name: str, **options) -> aiomqtt.Client:
        """An MQTT v5 client on the TLS listener, authenticated as *name*."""
        options.setdefault("tls_params", self.tls(self.identity(name)))
        return aiomqtt.Client(
            self.host,
            self.tls_port,
            identifier=f"{name}-{next(_client_ids)}",
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=5,
            **options,
        )

    def observer(self) -> aiomqtt.Client:
        """An MQTT v5 client on the plain loopback listener, allowed everything."""
        return aiomqtt.Client(
            self.host,
            self.plain_port,
            identifier=f"observer-{next(_client_ids)}",
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=5,
        )


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBroker]:
    """Mosquitto on free loopback ports: TLS with client certificates, plus a plain listener."""
    root = tmp_path_factory.mktemp("broker")
    ca = CertificateAuthority.create(root / "pki", "Borderlane Test CA")
    server = ca.issue_server("broker", hosts=["localhost", "127.0.0.1"])
    config = BrokerConfig(
        directory=root / "mosquitto",
        tls_port=free_port(),
        plain_port=free_port(),
        ca_file=ca.cert_path,
        cert_file=server.cert_path,
        key_file=server.key_path,
    )
    process = Mosquitto(config)
    process.start()  # a broker that cannot start raises BrokerError: the tests fail with it
    try:
        yield TestBroker("127.0.0.1", config.tls_port, config.plain_port, ca, process)
    finally:
        process.stop()
