"""Commands to kiosks: publish a ``command@1`` and wait for the kiosk's ``command-result@1``.

::

    settings = CommandSettings(Endpoint(host, 8883, ca, cert, key), node_id="console-commands")
    answer = await send_command(settings, "kiosk-bz-01", "diagnostics", {"sections": ["outbox"]},
                                expires_in_s=300, wait_s=10)
    answer["status"]        # "ok" -> answer["result"]; "error" -> answer["error"]["code"]

The answer is the kiosk's ``command-result`` payload as received (validated). The wait uses a
plain subscription to that kiosk's ``command-results``, made *before* the command is published,
so an answer cannot slip past; the ingest workers still store every answer through their shared
subscription (table ``command_results``), so an answer that comes after :class:`NoAnswer` is
not lost, only not waited for.

Kiosks run a command id at most once. Sending the same command again means a new id: the kiosk
cannot tell a resend from a new request otherwise. Give commands that must not fire late (an
agent restart) an expiry: a kiosk that was offline answers ``expired`` instead of running them.

Envelope: ``device_id`` is the console node's id; ``seq`` comes from the wall clock in
microseconds (kept increasing within the process), since a one-shot command line has no counter
to continue. That keeps it increasing across runs while the console's clock is synced, and is
why the command sender uses a node id of its own (``<certificate CN>-commands`` by default)
rather than the ingest workers', whose seq is a database counter.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiomqtt

from mqtt_schemas import PayloadError, tag, topics, validate
from mqtt_schemas.envelope import clock_state, uuid7
from mqtt_schemas.validation import parse_json

from . import connection
from .connection import Endpoint

__all__ = [
    "CommandSettings",
    "CommandsError",
    "NoAnswer",
    "build_command",
    "send_command",
]

log = logging.getLogger("borderlane.console.commands")

DEFAULT_WAIT_S = 10.0


class CommandsError(Exception):
    """The command could not be sent (broker unreachable, refused, bad TLS files)."""


class NoAnswer(CommandsError):
    """The kiosk did not answer within the wait; it may still run the command and answer later."""

    def __init__(self, device_id: str, command_id: str, wait_s: float) -> None:
        self.device_id = device_id
        self.command_id = command_id
        self.wait_s = wait_s
        super().__init__(
            f"no answer from {device_id} within {wait_s:g} s (command {command_id}); a kiosk "
            "that is offline runs it when it reconnects, unless it expired"
        )


@dataclass(frozen=True)
class CommandSettings:
    """Where the broker is, who the console is, and the node id stamped on commands."""

    endpoint: Endpoint
    node_id: str
    client_id: str | None = None
    """MQTT client id (default: a fresh one per call; the session is not kept)."""
    connect_timeout_s: float = 10.0


_seq_lock = threading.Lock()
_last_seq = 0


def _next_seq() -> int:
    """Wall-clock microseconds, strictly increasing within this process (see the module doc)."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(_last_seq + 1, time.time_ns() // 1000)
        return _last_seq


def _format(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def build_command(
    node_id: str,
    name: str,
    args: Mapping[str, Any] | None = None,
    *,
    expires_in_s: float | None = None,
) -> dict[str, Any]:
    """A complete, validated ``command@1`` payload; :class:`PayloadError` names a bad field."""
    now = dt.datetime.now(dt.UTC)
    payload: dict[str, Any] = {
        "schema": tag("command"),
        "id": uuid7(),
        "device_id": node_id,
        "seq": _next_seq(),
        "time": _format(now),
        "clock": clock_state(),
        "name": name,
        "args": dict(args or {}),
    }
    if expires_in_s is not None:
        if expires_in_s <= 0:
            raise ValueError("expires_in_s must be positive")
        payload["expires_at"] = _format(now + dt.timedelta(seconds=expires_in_s))
    validate("command", payload)
    return payload


async def send_command(
    settings: CommandSettings,
    device_id: str,
    name: str,
    args: Mapping[str, Any] | None = None,
    *,
    expires_in_s: float | None = None,
    wait_s: float = DEFAULT_WAIT_S,
) -> dict[str, Any]:
    """Send command *name* to kiosk *device_id* and return its ``command-result`` payload.

    Raises :class:`~mqtt_schemas.TopicError` for a device id that is not one,
    :class:`~mqtt_schemas.PayloadError` for a command the contract refuses (naming the field:
    ``/args/...``, ``/name``), :class:`NoAnswer` when no answer comes within *wait_s*, and
    :class:`CommandsError` when the broker cannot be reached.
    """
    commands_topic = topics.device_topic(device_id, "commands")
    results_topic = topics.device_topic(device_id, "command-results")
    command = build_command(settings.node_id, name, args, expires_in_s=expires_in_s)
    endpoint = settings.endpoint
    client = connection.client(
        endpoint,
        settings.client_id or f"{settings.node_id}-{command['id'][-12:]}",
        session_expiry=0,
        receive_maximum=100,
        manual_ack=False,
        timeout=settings.connect_timeout_s,
    )
    try:
        async with client:
            await client.subscribe(results_topic, qos=1)
            await client.publish(
                commands_topic, json.dumps(command).encode(), qos=topics.channel("commands").qos
            )
            log.info("command %s (%s) sent to %s", command["id"], name, device_id)
            try:
                async with asyncio.timeout(wait_s):
                    return await _answer(client, command["id"])
            except TimeoutError:
                raise NoAnswer(device_id, command["id"], wait_s) from None
    except aiomqtt.MqttError as exc:
        raise CommandsError(
            f"cannot talk to the broker at {endpoint.host}:{endpoint.port}: {exc}"
        ) from None
    except OSError as exc:  # TLS files missing or unreadable
        raise CommandsError(f"cannot connect with the TLS files given: {exc}") from None


async def _answer(client: aiomqtt.Client, command_id: str) -> dict[str, Any]:
    async for message in client.messages:
        try:
            payload = parse_json(message.payload)
            validate("command-result", payload)
        except (ValueError, PayloadError) as exc:
            # The ingest workers quarantine it; here it is simply not the answer.
            log.warning("ignored an invalid command result on %s: %s", message.topic, exc)
            continue
        if payload["command_id"] == command_id:
            return payload
    raise aiomqtt.MqttError("the connection ended before the answer came")
