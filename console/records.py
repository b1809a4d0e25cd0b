"""What one incoming MQTT message is: a record to store, a device state, or something to quarantine.

Pure code, no I/O: :func:`classify` turns a topic and its payload bytes into one of the item
types below, so the ingest worker only batches and stores, and the tests can feed it anything.

Checks, in order, each failure giving a :class:`Quarantined` with a reason that names the field:

1. the topic is a kiosk-published device channel of the contract (``topics.parse``);
2. the payload is UTF-8 JSON, an object;
3. it validates against the channel's schema (the version named by its ``schema`` field);
4. its ``device_id`` is the device id in the topic: a kiosk must not speak for another (the broker
   ACL confines a kiosk to its own topics, so the topic names the authenticated sender).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import mqtt_schemas
from mqtt_schemas import PayloadError, TopicError, topics

RECORD_CHANNELS = ("crossings", "hits", "decisions")
"""Channels whose payloads are records: stored idempotently by id and acked to the kiosk."""

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
REASON_LIMIT = 500
"""The ack schema bounds a rejection reason to 500 characters."""


@dataclass(frozen=True, slots=True)
class Record:
    """A valid crossing, screening hit or officer decision."""

    channel: str
    """``crossings``, ``hits`` or ``decisions``."""
    id: str
    device_id: str
    text: str
    """The payload exactly as received (UTF-8 JSON)."""
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Availability:
    """A birth (``online``), a Last Will or a clean-shutdown ``offline``."""

    device_id: str
    id: str
    state: str
    session: int
    reason: str | None
    agent_version: str | None
    time: str
    text: str


@dataclass(frozen=True, slots=True)
class Health:
    """A heartbeat."""

    device_id: str
    id: str
    seq: int
    session: int
    time: str
    text: str


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A kiosk's answer to a command."""

    device_id: str
    id: str
    command_id: str
    status: str
    time: str
    text: str


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A message the console cannot accept, kept with the reason (never dropped silently)."""

    topic: str
    raw: bytes
    reason: str
    """The whole reason, e.g. ``crossing@1: /document/number: required field is missing``."""
    path: str | None
    """JSON Pointer to the failing field, when the problem is one field."""
    device_id: str | None
    """The device in the topic, when the topic is well formed."""
    record_id: str | None
    """The payload's ``id``, when it has a well-formed one."""
    is_record: bool
    """It came on a record channel: the kiosk is told, in its next ack, under ``rejected``."""


@dataclass(frozen=True, slots=True)
class Cleared:
    """An empty retained availability message: an operator removed a kiosk's retained state."""

    topic: str
    device_id: str


Item = Record | Availability | Health | CommandResult | Quarantined | Cleared


def classify(topic: str, raw: bytes) -> Item:
    """The item for one message received on *topic* with payload *raw*."""
    try:
        route = _parse(topic)
    except TopicError as exc:
        return Quarantined(topic, raw, f"topic: {exc}", None, None, None, False)
    channel = route.channel
    device_id = route.device_id
    is_record = channel.name in RECORD_CHANNELS

    def quarantine(reason: str, path: str | None, record_id: str | None = None) -> Quarantined:
        return Quarantined(topic, raw, reason, path, device_id, record_id, is_record)

    if device_id is None or channel.publisher != "kiosk":
        return quarantine(f"topic: {topic!r} is not a kiosk-published channel", None)
    if not raw and channel.name == "availability":
        return Cleared(topic, device_id)
    try:
        text = raw.decode("utf-8")
        payload = json.loads(text)
    except UnicodeDecodeError as exc:
        return quarantine(f"payload is not UTF-8: byte {exc.start}", "")
    except json.JSONDecodeError as exc:
        return quarantine(f"payload is not JSON: {exc.msg} at {exc.lineno}:{exc.colno}", "")
    record_id = _record_id(payload)
    try:
        mqtt_schemas.validate(channel.schema, payload)
    except PayloadError as exc:
        return quarantine(str(exc), exc.path, record_id)
    if payload["device_id"] != device_id:
        reason = (
            f"{payload['schema']}: /device_id: {payload['device_id']!r} differs from the "
            f"device id in the topic ({device_id!r}); a kiosk may not speak for another"
        )
        return quarantine(reason, "/device_id", record_id)
    if is_record:
        return Record(channel.name, payload["id"], device_id, text, payload)
    if channel.name == "availability":
        return Availability(
            device_id,
            payload["id"],
            payload["state"],
            payload["session"],
            payload.get("reason"),
            payload.get("agent_version"),
            payload["time"],
            text,
        )
    if channel.name == "health":
        return Health(
            device_id, payload["id"], payload["seq"], payload["session"], payload["time"], text
        )
    if channel.name == "command-results":
        return CommandResult(
            device_id,
            payload["id"],
            payload["command_id"],
            payload["status"],
            payload["time"],
            text,
        )
    return quarantine(f"topic: the console does not ingest {channel.name!r}", None, record_id)


@lru_cache(maxsize=8192)
def _parse(topic: str) -> topics.Route:
    """``topics.parse``, remembered: each kiosk uses a few topics, again and again."""
    return topics.parse(topic)


def rejection_reason(item: Quarantined) -> str:
    """The reason as it goes into an ack's ``rejected`` entry (at most 500 characters)."""
    reason = item.reason
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 3] + "..."


def _record_id(payload: Any) -> str | None:
    if isinstance(payload, dict):
        candidate = payload.get("id")
        if isinstance(candidate, str) and _UUID.match(candidate):
            return candidate
    return None
