"""A real Mosquitto broker per test session: TLS client certificates from two authorities, the
contract's access rules in the dynamic-security plugin, a revocation list.

Use the ``broker`` fixture::

    async def test_something(broker):
        async with broker.client("kiosk-a") as kiosk:      # device listener, CN "kiosk-a"
            await kiosk.publish(topics.device_topic("kiosk-a", "crossings"), b"{}", qos=1)
        async with broker.client("console") as console:    # service listener
            ...

A kiosk name gets a device certificate and is added to the broker's access rules the first time
it is used; ``console`` (and any name in ``SERVICES``) gets a service certificate.
``broker.observer()`` connects on the plain loopback listener, which sees every topic.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

from provisioning.broker import BrokerConfig, DynamicSecurity, Mosquitto
from provisioning.pki import Identity, Pki

SERVICES = frozenset({"console"})
"""Names that are services (service CA, service listener); every other name is a kiosk."""

_client_ids = itertools.count(1)


def issue(pki: Pki, name: str) -> Identity:
    """*name*'s certificate: from the service CA for a service, else the device CA."""
    if name in SERVICES:
        return pki.services.issue_service_client(name)
    return pki.devices.issue_client(name)


def broker_config(pki: Pki, directory: Path) -> BrokerConfig:
    """A test broker's configuration on free loopback ports."""
    return BrokerConfig.local(pki, directory)


@dataclass
class TestBroker:
    """Where the session's broker listens and how to reach it."""

    __test__ = False  # not a test class, despite the name

    host: str
    tls_port: int
    """The device listener (kiosks)."""
    service_port: int
    """The service listener (the console)."""
    plain_port: int
    pki: Pki
    process: Mosquitto
    _issued: dict[str, Identity] = field(default_factory=dict)

    @property
    def ca(self):
        """The service CA: what clients trust to recognise the broker."""
        return self.pki.services

    def identity(self, name: str) -> Identity:
        """A client certificate for *name* (issued once per session): a service's from the
        service CA, a kiosk's from the device CA, the kiosk then added to the access rules."""
        if name not in self._issued:
            self._issued[name] = issue(self.pki, name)
            if name not in SERVICES:
                with self.access_rules() as rules:
                    rules.add_device(name)
        return self._issued[name]

    def access_rules(self) -> DynamicSecurity:
        """A console connection to the broker's dynamic-security plugin."""
        console = self.identity("console")
        return DynamicSecurity(
            self.host,
            self.service_port,
            self.ca.cert_path,
            console.cert_path,
            console.key_path,
            client_id=f"console:rules-{next(_client_ids)}",
        )

    def port_for(self, name: str) -> int:
        """The listener *name* connects to: the service listener for services."""
        return self.service_port if name in SERVICES else self.tls_port

    def tls(self, identity: Identity | None, ca_file: Path | None = None) -> aiomqtt.TLSParameters:
        """TLS settings that trust the broker's CA and present *identity* (or no certificate)."""
        return aiomqtt.TLSParameters(
            ca_certs=str(ca_file or self.ca.cert_path),
            certfile=str(identity.cert_path) if identity else None,
            keyfile=str(identity.key_path) if identity else None,
        )

    def client(self, name: str, **options) -> aiomqtt.Client:
        """An MQTT v5 client on its listener (device or service), authenticated as *name*. A
        kiosk's client id is its name whatever it asks for; a service's contains ``:``."""
        options.setdefault("tls_params", self.tls(self.identity(name)))
        options.setdefault("identifier", f"{name}:{next(_client_ids)}")
        return aiomqtt.Client(
            self.host,
            self.port_for(name),
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
    pki = Pki.create(root / "pki", "Borderlane Test")
    pki.services.issue_server("broker", hosts=["localhost", "127.0.0.1"])
    config = broker_config(pki, root / "mosquitto")
    process = Mosquitto(config)
    process.start()  # a broker that cannot start raises BrokerError: the tests fail with it
    try:
        yield TestBroker(
            "127.0.0.1", config.tls_port, config.service_port, config.plain_port, pki, process
        )
    finally:
        process.stop()
