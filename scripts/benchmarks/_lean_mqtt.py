"""A lean MQTT 5 publisher over TLS: the ingest benchmark's kiosks, cheap enough to share a machine.

The ingest benchmark runs 50 kiosks, the broker, the console's workers and the database on one
2-core machine, so whatever the simulated kiosks spend is taken from the system under test. With
paho-mqtt each crossing cost the kiosks ~55 µs of CPU (building a ``MQTTMessageInfo`` per
publish, a ``ReasonCode`` and a condition variable per PUBACK): a quarter of the machine at
9,000 crossings/s. Real kiosks run on their own devices.

This client speaks the same protocol on the wire as a kiosk's agent, only less of it: MQTT 5
over TLS with the kiosk's own client certificate, CONNECT (clean start), SUBSCRIBE to its acks
topic at QoS 1, PUBLISH at QoS 1 with a packet id, PUBACK of the acks it receives. It honours
the broker's Receive Maximum from CONNACK (at most that many of its QoS 1 publishes awaiting a
PUBACK; Mosquitto disconnects a client that exceeds it) and fails loudly on anything it does not
expect (a refused CONNECT or SUBSCRIBE, a malformed packet, a DISCONNECT). No retained messages,
no QoS 2, no will, no keep-alive pings (the benchmark's runs last seconds; keep-alive 0 tells
the broker not to expect them).
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Callable
from pathlib import Path

from console.connection import NO_DELAY
from mqtt_schemas.liveness import NO_MATCHING_SUBSCRIBERS

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, DISCONNECT = 1, 2, 3, 4, 8, 9, 14
RECEIVE_MAXIMUM = 0x21
"""The CONNACK property that bounds our unacknowledged QoS 1 publishes."""
DEFAULT_RECEIVE_MAXIMUM = 65535


class LeanMqttError(Exception):
    """The broker refused us or sent what this client does not speak."""


def varint(value: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def utf8(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + varint(len(body)) + body


class LeanPublisher:
    """One kiosk's connection. ``async with`` connects; :meth:`publish` queues a QoS 1 PUBLISH
    (it waits only for a free slot under the broker's Receive Maximum); *on_message* is called
    with (topic, payload) of each PUBLISH the broker delivers, which is PUBACKed; *on_unheard*,
    when set, is called for each PUBACK whose reason code says nobody subscribes."""

    def __init__(
        self,
        host: str,
        port: int,
        ca: Path,
        cert: Path,
        key: Path,
        client_id: str,
        on_message: Callable[[str, bytes], None],
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.context = ssl.create_default_context(cafile=str(ca))
        self.context.load_cert_chain(str(cert), str(key))
        self.on_message = on_message
        self.on_unheard: Callable[[], None] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._inflight: asyncio.Semaphore | None = None
        self._next_id = 0
        self._suback: asyncio.Future[bytes] | None = None

    async def __aenter__(self) -> LeanPublisher:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.context, server_hostname=self.host
        )
        writer.get_extra_info("socket").setsockopt(*NO_DELAY)
        self._reader, self._writer = reader, writer
        # CONNECT: protocol "MQTT" level 5, clean start, keep-alive 0, no properties.
        body = utf8("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 0) + varint(0)
        writer.write(packet(CONNECT << 4, body + utf8(self.client_id)))
        kind, _, payload = await self._read_packet()
        if kind != CONNACK or len(payload) < 3 or payload[1] != 0:
            raise LeanMqttError(f"{self.client_id}: CONNECT refused ({payload[1:2].hex()})")
        self._inflight = asyncio.Semaphore(_receive_maximum(payload))
        self._reading = asyncio.create_task(self._read_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
        if self._writer is not None:
            self._writer.write(packet(DISCONNECT << 4, b"\x00\x00"))
            self._writer.close()
            await asyncio.gather(self._writer.wait_closed(), return_exceptions=True)

    async def subscribe(self, topic_filter: str) -> None:
        """SUBSCRIBE at QoS 1 and wait for its SUBACK."""
        assert self._writer is not None
        self._suback = asyncio.get_running_loop().create_future()
        body = struct.pack("!H", self._packet_id()) + varint(0) + utf8(topic_filter) + b"\x01"
        self._writer.write(packet((SUBSCRIBE << 4) | 0x02, body))
        codes = await asyncio.wait_for(self._suback, 30)
        if any(code >= 0x80 for code in codes):
            raise LeanMqttError(f"{self.client_id}: SUBSCRIBE {topic_filter!r} refused")

    async def publish(self, topic: bytes, payload: bytes) -> None:
        """PUBLISH *payload* at QoS 1 on *topic* (``utf8()``-encoded once by the caller)."""
        assert self._writer is not None and self._inflight is not None
        await self._inflight.acquire()
        body = b"".join((topic, struct.pack("!H", self._packet_id()), b"\x00", payload))
        self._writer.write(packet((PUBLISH << 4) | 0x02, body))

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    async def _read_packet(self) -> tuple[int, int, bytes]:
        assert self._reader is not None
        first = (await self._reader.readexactly(1))[0]
        length, shift = 0, 0
        for _ in range(4):
            byte = (await self._reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        else:
            raise LeanMqttError(f"{self.client_id}: malformed remaining length")
        return first >> 4, first & 0x0F, await self._reader.readexactly(length)

    async def _read_loop(self) -> None:
        """Packets from the broker, read in large chunks and parsed in place."""
        assert self._reader is not None and self._writer is not None
        assert self._inflight is not None
        buffer = b""
        while True:
            chunk = await self._reader.read(65536)
            if not chunk:
                raise LeanMqttError(f"{self.client_id}: the broker closed the connection")
            buffer = buffer + chunk if buffer else chunk
            at, end = 0, len(buffer)
            pubacks = []
            while at < end:
                first = buffer[at]
                length, shift, cursor = 0, 0, at + 1
                while cursor < end:
                    byte = buffer[cursor]
                    cursor += 1
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                else:
                    break  # the length continues in the next chunk
                if cursor + length > end:
                    break  # the body continues in the next chunk
                body = buffer[cursor : cursor + length]
                at = cursor + length
                kind = first >> 4
                if kind == PUBACK:
                    self._inflight.release()
                    if length >= 3 and body[2] == NO_MATCHING_SUBSCRIBERS and self.on_unheard:
                        self.on_unheard()
                elif kind == PUBLISH:
                    pubacks.append(self._delivered(first, body))
                elif kind == SUBACK and self._suback is not None and not self._suback.done():
                    (properties, offset) = _read_varint(body, 2)
                    self._suback.set_result(body[offset + properties :])
                else:
                    raise LeanMqttError(f"{self.client_id}: unexpected packet type {kind}")
            buffer = buffer[at:]
            acks = b"".join(p for p in pubacks if p)
            if acks:
                self._writer.write(acks)

    def _delivered(self, first: int, body: bytes) -> bytes:
        """Hand one delivered PUBLISH to *on_message*; its PUBACK (QoS 1) to write."""
        (topic_length,) = struct.unpack_from("!H", body)
        topic = body[2 : 2 + topic_length].decode()
        at = 2 + topic_length
        packet_id = None
        if first & 0x06:
            (packet_id,) = struct.unpack_from("!H", body, at)
            at += 2
        properties, at = _read_varint(body, at)
        self.on_message(topic, body[at + properties :])
        return b"" if packet_id is None else struct.pack("!BBH", PUBACK << 4, 2, packet_id)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, offset after it) of the variable byte integer at *at*."""
    value, shift = 0, 0
    for _ in range(4):
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at
    raise LeanMqttError("malformed variable byte integer")


def _receive_maximum(connack: bytes) -> int:
    """The Receive Maximum property of a CONNACK's variable header, or MQTT's default."""
    length, at = _read_varint(connack, 2)
    end = at + length
    while at < end:
        identifier = connack[at]
        at += 1
        if identifier == RECEIVE_MAXIMUM:
            return struct.unpack_from("!H", connack, at)[0]
        at += _PROPERTY_SIZES.get(identifier, 0) or _variable_size(connack, at, identifier)
    return DEFAULT_RECEIVE_MAXIMUM


_PROPERTY_SIZES = {
    0x11: 4, 0x13: 2, 0x21: 2, 0x22: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1,
}  # fmt: skip
"""Fixed-size CONNACK properties (session expiry, keep-alive, maxima, flags)."""


def _variable_size(data: bytes, at: int, identifier: int) -> int:
    if identifier in (0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F):  # strings and binary data
        return 2 + struct.unpack_from("!H", data, at)[0]
    if identifier == 0x26:  # user property: a pair of strings
        first = 2 + struct.unpack_from("!H", data, at)[0]
        return first + 2 + struct.unpack_from("!H", data, at + first)[0]
    raise LeanMqttError(f"unknown CONNACK property 0x{identifier:02x}")
