"""The broker confines each kiosk to its own topics, admits only our certificates, binds each
kiosk's session to its certificate, and drops a revoked kiosk without touching the others.

These tests run against the real Mosquitto started by the ``broker`` fixture, configured by
``provisioning.broker`` exactly as a deployment is (dynamic-security plugin, two listeners).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

import aiomqtt
import pytest

from mqtt_schemas import topics
from mqtt_schemas.broker_access import device_role
from provisioning.pki import CertificateAuthority, PkiError

REFUSED = 0x87  # SUBACK "Not authorized"


def codes(granted) -> list[int]:
    return [code.value for code in granted]


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
async def test_a_kiosk_may_subscribe_only_to_its_own_and_the_fleets_channels(broker):
    async with broker.client("kiosk-a") as kiosk:
        refused = [
            topics.device_topic("kiosk-b", "commands"),
            topics.device_filter("acks"),
            topics.device_filter("crossings"),
            "$share/console-ingest/" + topics.device_filter("crossings"),
            "$share/any/" + topics.device_topic("kiosk-a", "acks"),
            "#",
            "$CONTROL/dynamic-security/v1/response",
        ]
        for topic in refused:
            assert codes(await kiosk.subscribe(topic, qos=1)) == [REFUSED], topic
        allowed = [topics.device_topic("kiosk-a", "acks"), topics.fleet_topic("watchlist/manifest")]
        for topic in allowed:
            assert codes(await kiosk.subscribe(topic, qos=1)) == [1], topic


@pytest.mark.asyncio
async def test_a_kiosk_never_receives_another_kiosks_messages(broker):
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


def connect_over_tls(
    broker, identity, ca_file=None, tls_max=ssl.TLSVersion.MAXIMUM_SUPPORTED, port=None
):
    context = ssl.create_default_context(cafile=str(ca_file or broker.ca.cert_path))
    context.maximum_version = tls_max
    if identity is not None:
        context.load_cert_chain(identity.cert_path, identity.key_path)
    raw = socket.create_connection((broker.host, port or broker.tls_port), timeout=5)
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


def test_a_kiosks_role_grants_each_channel_in_the_direction_of_its_publisher():
    acls = {(a["acltype"], a["topic"]) for a in device_role("kiosk-z")["acls"]}
    for channel in topics.CHANNELS:
        topic = (
            topics.device_topic("kiosk-z", channel.name)
            if channel.scope == "device"
            else topics.fleet_topic(channel.name)
        )
        if channel.publisher == "kiosk":
            assert ("publishClientSend", topic) in acls
            assert ("subscribeLiteral", topic) not in acls
        else:
            assert {("subscribeLiteral", topic), ("publishClientReceive", topic)} <= acls
            assert ("publishClientSend", topic) not in acls
    assert not any("+" in t or "#" in t for _, t in acls)


def test_a_service_certificate_is_refused_on_the_device_listener(broker):
    # Issued by the service CA: the device listener trusts only the device CA.
    with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
        connect_over_tls(broker, broker.identity("console"), tls_max=REFUSAL_TLS)


def test_a_kiosk_certificate_is_refused_on_the_service_listener(broker):
    with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
        connect_over_tls(
            broker, broker.identity("kiosk-a"), tls_max=REFUSAL_TLS, port=broker.service_port
        )


@pytest.mark.parametrize("name", ["console", "broker", "Admin"])
def test_the_device_ca_refuses_a_services_name(broker, name):
    with pytest.raises(PkiError, match="reserved for a service"):
        broker.pki.devices.issue_client(name)


def test_issuing_a_device_again_needs_replace_which_revokes_the_old_certificate(broker):
    broker.pki.devices.issue_client("kiosk-reissued")
    with pytest.raises(PkiError, match="already has a certificate"):
        broker.pki.devices.issue_client("kiosk-reissued")
    old = broker.pki.devices.identity("kiosk-reissued").cert_path.read_bytes()
    broker.pki.devices.issue_client("kiosk-reissued", replace=True)
    revoked = broker.pki.devices.revoked()  # the session's CA: other tests revoke too
    assert [e["reason"] for e in revoked.values() if e["name"] == "kiosk-reissued"] == [
        "superseded"
    ]
    assert broker.pki.devices.identity("kiosk-reissued").cert_path.read_bytes() != old


@pytest.mark.asyncio
async def test_a_kiosk_cannot_take_over_the_consoles_session_or_another_kiosks(broker):
    received = []
    async with broker.client("console", identifier="console:ingest-squat") as console:
        await console.subscribe(topics.device_filter("crossings"), qos=1)
        # Both ask for someone else's client id; the broker gives each its own name.
        async with (
            broker.client("kiosk-b") as victim,
            broker.client("kiosk-a", identifier="console:ingest-squat") as squatter,
            broker.client("kiosk-c", identifier="kiosk-b") as other,
        ):
            await squatter.publish(topics.device_topic("kiosk-a", "crossings"), b"a", qos=1)
            await other.publish(topics.device_topic("kiosk-c", "crossings"), b"c", qos=1)
            await victim.publish(topics.device_topic("kiosk-b", "crossings"), b"b", qos=1)
            async with asyncio.timeout(5):
                async for message in console.messages:
                    received.append(message.payload)
                    if len(received) == 3:
                        break
    assert sorted(received) == [b"a", b"b", b"c"]  # nobody was disconnected on the way
    assert "as kiosk-a " in broker.process.log() and "as kiosk-c " in broker.process.log()


@pytest.mark.asyncio
async def test_a_revoked_kiosk_is_dropped_and_refused_while_the_others_stay_connected(broker):
    import time

    from provisioning.broker import revoke_device

    bystander_got = []
    async with (
        broker.client("kiosk-bystander") as bystander,
        broker.client("console") as console,
    ):
        await bystander.subscribe(topics.device_topic("kiosk-bystander", "acks"), qos=1)
        stolen = broker.client("kiosk-stolen")
        await stolen.__aenter__()
        started = time.monotonic()
        with broker.access_rules() as rules:
            await asyncio.to_thread(
                revoke_device,
                broker.pki.devices,
                "kiosk-stolen",
                "stolen",
                reload=broker.process.reload,
                rules=rules,
            )
        elapsed = time.monotonic() - started
        # The stolen kiosk's session is gone: its next publish fails.
        with pytest.raises(aiomqtt.MqttError):
            await stolen.publish(topics.device_topic("kiosk-stolen", "crossings"), b"x", qos=1)
            await stolen.publish(topics.device_topic("kiosk-stolen", "crossings"), b"y", qos=1)
        with contextlib.suppress(aiomqtt.MqttError):
            await stolen.__aexit__(None, None, None)
        # ... and its certificate no longer passes the handshake.
        with pytest.raises(ssl.SSLError, match=r"CERTIFICATE_REVOKED|certificate revoked"):
            connect_over_tls(broker, broker.identity("kiosk-stolen"), tls_max=REFUSAL_TLS)
        # The bystander's very connection still works (no reconnect in between).
        await console.publish(topics.device_topic("kiosk-bystander", "acks"), b"still-here", qos=1)
        bystander_got.append((await next_message(bystander)).payload)
    assert bystander_got == [b"still-here"]
    assert elapsed < 60
