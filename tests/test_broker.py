"""The broker confines each kiosk to its own topics and admits only our certificates.

These tests run against the real Mosquitto started by the ``broker`` fixture, configured by
``provisioning.broker`` exactly as a deployment is.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiomqtt
import pytest

from mqtt_schemas import topics
from provisioning.broker import render_acl
from provisioning.pki import CertificateAuthority


async def next_message(client: aiomqtt.Client, timeout: float = 5) -> aiomqtt.Message:
    async with asyncio.timeout(timeout):
        async for message in client.messages:
            return message
    raise AssertionError("the subscription ended without a message")


@pytest.mark.asyncio
async def test_kiosk_certificate_connects_and_publishes_to_its_own_topics(broker):
    async with broker.observer() as observer, broker.client("kiosk-a") as kiosk:
        await observer.subscribe(topics.device_filter("crossings"), qos=1)
        await kiosk.publish(topics.device_topic("kiosk-a", "crossings"), b"record-1", qos=1)
        message = await next_message(observer)
    assert str(message.topic) == "borderlane/v1/devices/kiosk-a/crossings"
    assert message.payload == b"record-1"


@pytest.mark.asyncio
async def test_kiosk_receives_what_the_console_publishes_for_it(broker):
    async with broker.client("kiosk-a") as kiosk, broker.client("console") as console:
        await kiosk.subscribe(topics.device_topic("kiosk-a", "acks"), qos=1)
        await kiosk.subscribe(topics.fleet_topic("watchlist/manifest"), qos=1)
        await console.publish(topics.device_topic("kiosk-a", "acks"), b"ack", qos=1)
        assert (await next_message(kiosk)).payload == b"ack"
        await console.publish(topics.fleet_topic("watchlist/manifest"), b"v42", qos=1)
        assert (await next_message(kiosk)).payload == b"v42"


@pytest.mark.asyncio
async def test_publishing_to_another_kiosks_topic_never_reaches_subscribers(broker):
    async with broker.observer() as observer, broker.client("kiosk-a") as kiosk:
        await observer.subscribe("borderlane/v1/#", qos=1)
        await kiosk.publish(topics.device_topic("kiosk-b", "crossings"), b"forged", qos=1)
        await kiosk.publish(topics.device_topic("kiosk-a", "acks"), b"forged-ack", qos=1)
        await kiosk.publish(topics.fleet_topic("watchlist/deltas"), b"forged-delta", qos=1)
        # One connection's QoS 1 messages arrive in order, so once the allowed message is
        # delivered the refused ones would have been delivered before it.
        await kiosk.publish(topics.device_topic("kiosk-a", "crossings"), b"allowed", qos=1)
        message = await next_message(observer)
    assert (str(message.topic), message.payload) == (
        "borderlane/v1/devices/kiosk-a/crossings",
        b"allowed",
    )


@pytest.mark.asyncio
async def test_a_kiosk_never_receives_another_kiosks_messages(broker):
    # Mosquitto grants the subscription and filters each message by the read ACL instead.
    async with broker.client("kiosk-a") as kiosk, broker.client("console") as console:
        await kiosk.subscribe(topics.device_topic("kiosk-b", "commands"), qos=1)
        await kiosk.subscribe(topics.device_filter("acks"), qos=1)
        await kiosk.subscribe(topics.device_topic("kiosk-a", "commands"), qos=1)
        await console.publish(topics.device_topic("kiosk-b", "commands"), b"for-b", qos=1)
        await console.publish(topics.device_topic("kiosk-b", "acks"), b"ack-for-b", qos=1)
        await console.publish(topics.device_topic("kiosk-a", "commands"), b"for-a", qos=1)
        message = await next_message(kiosk)
    assert (str(message.topic), message.payload) == (
        "borderlane/v1/devices/kiosk-a/commands",
        b"for-a",
    )


# Refusals are checked at the TLS layer, where the broker states its reason in an alert; a
# well-formed MQTT CONNECT follows the handshake so that acceptance would be visible as a CONNACK.
MQTT_CONNECT = bytes.fromhex("101300044d5154540402003c0007") + b"refusal"
CONNACK_ACCEPTED = bytes.fromhex("20020000")


def connect_over_tls(broker, identity, ca_file=None, tls_max=ssl.TLSVersion.MAXIMUM_SUPPORTED):
    context = ssl.create_default_context(cafile=str(ca_file or broker.ca.cert_path))
    context.maximum_version = tls_max
    if identity is not None:
        context.load_cert_chain(identity.cert_path, identity.key_path)
    raw = socket.create_connection((broker.host, broker.tls_port), timeout=5)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(MQTT_CONNECT)
        return tls.recv(4)


def test_kiosk_certificate_from_our_ca_is_accepted(broker):
    assert connect_over_tls(broker, broker.identity("kiosk-a")) == CONNACK_ACCEPTED


# Under TLS 1.3 the broker checks the client certificate after the handshake and its alert can
# race the connection's close; TLS 1.2 checks it inside the handshake, so the broker's reason
# reaches the client every time. The verification itself is the same.
REFUSAL_TLS = ssl.TLSVersion.TLSv1_2


def test_client_without_certificate_is_refused(broker):
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        connect_over_tls(broker, None, tls_max=REFUSAL_TLS)


def test_certificate_from_another_ca_is_refused(broker, tmp_path):
    rogue_ca = CertificateAuthority.create(tmp_path / "rogue", "Rogue CA")
    impostor = rogue_ca.issue_client("kiosk-a")  # the right name, the wrong issuer
    with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
        connect_over_tls(broker, impostor, tls_max=REFUSAL_TLS)


def test_kiosk_refuses_a_broker_it_does_not_trust(broker, tmp_path):
    other_ca = CertificateAuthority.create(tmp_path / "other", "Other CA")
    with pytest.raises(ssl.SSLCertVerificationError):
        connect_over_tls(broker, broker.identity("kiosk-a"), ca_file=other_ca.cert_path)


def test_plain_mqtt_on_the_tls_port_gets_no_connack(broker):
    with socket.create_connection((broker.host, broker.tls_port), timeout=5) as raw:
        raw.sendall(MQTT_CONNECT)
        try:
            answer = raw.recv(4)
        except ConnectionResetError:
            answer = b""
    assert answer != CONNACK_ACCEPTED


def test_acl_grants_each_device_channel_in_the_direction_of_its_publisher():
    acl = render_acl().splitlines()
    for channel in topics.CHANNELS:
        if channel.scope == "device":
            access = "write" if channel.publisher == "kiosk" else "read"
            assert f"pattern {access} borderlane/v1/devices/%u/{channel.name}" in acl
    assert "pattern read borderlane/v1/fleet/#" in acl
    assert not any("readwrite" in line for line in acl if line.startswith("pattern"))
