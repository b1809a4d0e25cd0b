"""The console's MQTT connection: TLS with its client certificate, MQTT 5, persistent session.

Two things aiomqtt 2.x does not expose are reached through its paho-mqtt client here, and only
here:

* manual PUBACK (paho's ``manual_ack``): the ingest worker acknowledges a QoS 1 message to the
  broker only after the database commit that stored it, so a worker that dies mid-batch gets
  those messages again from its persistent session instead of losing them; a batch's PUBACKs
  go out in one write (:func:`puback_all`);
* the pending-call warning threshold, which aiomqtt logs past 10 concurrent publishes (the acks
  of one commit are published concurrently);
* buffered reads (:func:`buffer_reads`): paho reads each packet with three or more ``recv``
  calls (its first byte, each byte of its length, then the rest), each a call into the TLS
  socket.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from cryptography import x509
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_schemas.broker_access import service_client_id

NO_DELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
"""Nagle off. paho-mqtt leaves it on, and the worker writes small packets back to back (the
PUBACKs of a batch, then its acks): with Nagle each ack waited for the TCP ack of the previous
write, up to the peer's 40 ms delayed-ACK timer."""


@dataclass(frozen=True)
class Endpoint:
    """Where the broker is and the console's TLS identity."""

    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


def parse_address(text: str, default_port: int = 8883) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8883`` for IPv6; the port defaults to 8883)."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {text!r}: expected HOST:PORT")
    return host, int(port)


def common_name(cert_file: Path) -> str:
    """The subject common name of a PEM certificate: the identity the broker knows us by."""
    certificate = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ValueError(f"{cert_file} has no common name")
    return str(names[0].value)


def client(
    endpoint: Endpoint,
    client_id: str,
    *,
    session_expiry: int,
    receive_maximum: int,
    manual_ack: bool,
    inbox: asyncio.Queue[aiomqtt.Message] | None = None,
    timeout: float = 10.0,
    keepalive: int = 60,
) -> aiomqtt.Client:
    """A client that resumes the session *client_id* (``clean_start`` false) when it exists.

    The id goes on the wire as :func:`mqtt_schemas.broker_access.service_client_id` makes it
    (``console:`` in front unless it holds a ``:``), an id no kiosk can take.

    *receive_maximum* caps the QoS 1 messages the broker sends before we PUBACK them; with
    manual acks it bounds what one worker holds uncommitted. Received messages go to *inbox*
    when given (aiomqtt's ``queue_type``), so a consumer can take everything already received
    at once instead of paying ``client.messages``' task per message.

    *keepalive* (seconds) is declared to the broker, which drops us after 1.5 x *keepalive* of
    silence; paho on its own notices a silent connection (a cut link: no RST, no FIN) within
    about twice it, unless the caller makes it ping sooner once connected
    (:mod:`mqtt_schemas.liveness`, as the ingest worker does).
    """
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = session_expiry
    properties.ReceiveMaximum = receive_maximum
    mqtt = aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        identifier=service_client_id(client_id),
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=properties,
        tls_params=aiomqtt.TLSParameters(
            ca_certs=str(endpoint.ca_file),
            certfile=str(endpoint.cert_file),
            keyfile=str(endpoint.key_file),
        ),
        timeout=timeout,
        keepalive=keepalive,
        queue_type=None if inbox is None else (lambda maxsize=0: inbox),
        socket_options=(NO_DELAY,),
    )
    mqtt.pending_calls_threshold = 100_000
    # Before connecting: a resumed session delivers queued messages right after CONNACK.
    mqtt._client.manual_ack_set(manual_ack)  # private: see the module docstring
    buffer_reads(mqtt._client)
    return mqtt


READ_SIZE = 65536
"""Bytes asked of the socket per read; a TLS socket returns at most one record (16 KiB)."""


def buffer_reads(paho: Any) -> None:
    """Serve paho's small reads from a buffer filled by large ones.

    paho reads a packet with a ``recv`` of 1 byte (its type), one per byte of its remaining
    length, then one of the rest: four calls into the TLS socket for a crossing. Profiled under
    the ingest benchmark those calls were a fifth of the worker's main thread. Here each
    ``recv`` of paho's is answered from a buffer, refilled by one read of up to
    :data:`READ_SIZE` bytes when empty; paho's own state machine already copes with short
    reads (it keeps a partial packet across calls), so what it reads is unchanged.

    The buffered bytes are invisible to the event loop, which wakes the reader only when the
    socket has new bytes: ``loop_read`` is wrapped to go on reading while the buffer holds
    any (aiomqtt likewise goes on while the TLS socket has bytes ``pending``). The buffer
    belongs to one socket; a new connection starts with an empty one.
    """
    original_recv = paho._sock_recv
    original_loop_read = paho.loop_read
    state: dict[str, Any] = {"sock": None, "buffer": b"", "at": 0}

    def _sock_recv(bufsize: int) -> bytes:
        if state["sock"] is not paho._sock:  # a new connection: nothing buffered for it
            state.update(sock=paho._sock, buffer=b"", at=0)
        buffer, at = state["buffer"], state["at"]
        if at >= len(buffer):
            buffer, at = original_recv(READ_SIZE), 0  # BlockingIOError etc. as paho expects
            if not buffer:
                return buffer  # the peer closed: paho sees the empty read
            state["buffer"] = buffer
        end = min(at + bufsize, len(buffer))
        state["at"] = end
        return buffer[at:end]

    def loop_read(max_packets: int = 1) -> Any:
        while True:
            rc = original_loop_read(max_packets)
            if rc or paho._sock is None or state["at"] >= len(state["buffer"]):
                return rc

    paho._sock_recv = _sock_recv
    paho.loop_read = loop_read


_PUBACK = 0x40


def puback_all(mqtt: aiomqtt.Client, messages: Iterable[aiomqtt.Message]) -> None:
    """Acknowledge every QoS 1 message of *messages* to the broker in one socket write.

    ``ack`` queues one 4-byte PUBACK per message, and paho sends each queued packet with its
    own ``send``: for a 500-message batch, 500 TLS records, each encrypted and sent alone (and
    decrypted alone by the broker). The same PUBACKs (``0x40 0x02 mid``, success implied, as
    paho writes them) are queued here as one buffer, which paho sends like any other packet.
    """
    mids = [message.mid for message in messages if message.qos == 1]
    if not mids:
        return
    packet = b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in mids)
    mqtt._client._packet_queue(_PUBACK, packet, 0, 0)  # private: see the module docstring
