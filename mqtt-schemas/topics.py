"""The MQTT topic tree of Borderlane, as data.

Every topic lives under ``borderlane/v1/``. A *channel* is one kind of message; it is either
per device (``borderlane/v1/devices/<device_id>/<channel>``) or fleet-wide
(``borderlane/v1/fleet/<channel>``). :data:`CHANNELS` is the single source of truth for the
channels: their payload schema, who publishes them, QoS and retain flag. ``topics.md`` documents
the same table and a test keeps the two in step.

Build topics from ids, never by string concatenation, so that an id that would break the topic
structure (``+``, ``#``, ``/``, control characters) is refused before it reaches a broker::

    >>> device_topic("kiosk-bz-01", "crossings")
    'borderlane/v1/devices/kiosk-bz-01/crossings'
    >>> parse("borderlane/v1/devices/kiosk-bz-01/crossings").device_id
    'kiosk-bz-01'
    >>> device_filter("crossings")
    'borderlane/v1/devices/+/crossings'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import TopicError
from .identifiers import DEVICE_ID, DEVICE_ID_PATTERN

ROOT = "borderlane/v1"
DEVICES = f"{ROOT}/devices"
FLEET = f"{ROOT}/fleet"

Publisher = Literal["kiosk", "console"]
Scope = Literal["device", "fleet"]

__all__ = [
    "CHANNELS",
    "DEVICES",
    "DEVICE_ID_PATTERN",
    "FLEET",
    "RECORD_CHANNELS",
    "ROOT",
    "Channel",
    "Publisher",
    "Route",
    "Scope",
    "channel",
    "check_device_id",
    "device_filter",
    "device_topic",
    "fleet_topic",
    "parse",
]


@dataclass(frozen=True)
class Channel:
    """One kind of message on the wire."""

    name: str
    """Topic suffix after the device id (or after ``fleet/``), e.g. ``watchlist/catchup``."""
    scope: Scope
    schema: str
    """Name of the payload schema (without version), see :func:`mqtt_schemas.validate`."""
    publisher: Publisher
    qos: int
    retain: bool
    summary: str
    record: bool = False
    """A record: kept in the kiosk's durable outbox until the console acks that it stored it
    (idempotently, by ``id``), then purged. Other payloads are sent once and never acked."""


CHANNELS: tuple[Channel, ...] = (
    Channel(
        "availability",
        "device",
        "availability",
        "kiosk",
        1,
        True,
        "Birth (online) on connect and Last Will (offline), with a session counter.",
    ),
    Channel(
        "health",
        "device",
        "health",
        "kiosk",
        0,
        False,
        "Periodic heartbeat: versions, resources, device states, outbox and watchlist.",
    ),
    Channel(
        "crossings",
        "device",
        "crossing",
        "kiosk",
        1,
        False,
        "One record per traveller crossing, from the durable outbox.",
        record=True,
    ),
    Channel(
        "hits",
        "device",
        "screening-hit",
        "kiosk",
        1,
        False,
        "A watchlist hit, for the console's review queue.",
        record=True,
    ),
    Channel(
        "decisions",
        "device",
        "officer-decision",
        "kiosk",
        1,
        False,
        "An officer's decision on a referred traveller, taken at the kiosk.",
        record=True,
    ),
    Channel(
        "acks",
        "device",
        "ack",
        "console",
        1,
        False,
        "Application-level acknowledgement: these record ids are stored; purge them.",
    ),
    Channel(
        "commands",
        "device",
        "command",
        "console",
        1,
        False,
        "A command for one kiosk (ping, watchlist resync, config reload, ...).",
    ),
    Channel(
        "command-results",
        "device",
        "command-result",
        "kiosk",
        1,
        False,
        "The kiosk's answer to a command, success or error.",
    ),
    Channel(
        "watchlist/catchup",
        "device",
        "watchlist-catchup",
        "kiosk",
        1,
        False,
        "A kiosk that missed watchlist versions asks for the ones it lacks.",
    ),
    Channel(
        "watchlist/deltas",
        "device",
        "watchlist-delta-chunk",
        "console",
        1,
        False,
        "Catch-up answer: delta or snapshot chunks for this kiosk only.",
    ),
    Channel(
        "enrollment/request",
        "device",
        "enrollment-request",
        "kiosk",
        1,
        False,
        "A new kiosk asks for its operational certificate (CSR + one-time token).",
    ),
    Channel(
        "enrollment/response",
        "device",
        "enrollment-response",
        "console",
        1,
        False,
        "The issued certificate chain, or the reason enrollment was refused.",
    ),
    Channel(
        "watchlist/manifest",
        "fleet",
        "watchlist-manifest",
        "console",
        1,
        True,
        "The current watchlist version and how to reach it; retained.",
    ),
    Channel(
        "watchlist/trust",
        "fleet",
        "watchlist-trust",
        "console",
        1,
        True,
        "Which keys sign which watchlist versions, signed by the offline trust anchor; retained.",
    ),
    Channel(
        "watchlist/deltas",
        "fleet",
        "watchlist-delta-chunk",
        "console",
        1,
        False,
        "Signed delta chunks broadcast to every kiosk.",
    ),
)

RECORD_CHANNELS: tuple[str, ...] = tuple(c.name for c in CHANNELS if c.record)
"""Names of the record channels (``crossings``, ``hits``, ``decisions``): all device channels
published by the kiosk, whose payloads' ``id`` the console's ack names."""

_BY_KEY = {(c.scope, c.name): c for c in CHANNELS}


@dataclass(frozen=True)
class Route:
    """What a concrete topic means: its channel and, for device topics, the device id."""

    channel: Channel
    device_id: str | None = None


def check_device_id(device_id: str) -> str:
    """Return *device_id* unchanged, or raise :class:`TopicError` saying what is wrong with it."""
    if not isinstance(device_id, str) or not device_id:
        raise TopicError("device id must be a non-empty string")
    for forbidden, why in (("+", "a wildcard"), ("#", "a wildcard"), ("/", "a level separator")):
        if forbidden in device_id:
            raise TopicError(f"device id {device_id!r} contains {forbidden!r} ({why})")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in device_id):
        raise TopicError(f"device id {device_id!r} contains a control character")
    if not DEVICE_ID.fullmatch(device_id):
        raise TopicError(
            f"device id {device_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return device_id


def channel(name: str, scope: Scope = "device") -> Channel:
    """Look up a channel by its name and scope; raise :class:`TopicError` if there is none."""
    try:
        return _BY_KEY[(scope, name)]
    except KeyError:
        raise TopicError(f"no {scope} channel named {name!r}") from None


def device_topic(device_id: str, channel_name: str) -> str:
    """The topic of *channel_name* for one device."""
    ch = channel(channel_name, "device")
    return f"{DEVICES}/{check_device_id(device_id)}/{ch.name}"


def fleet_topic(channel_name: str) -> str:
    """The topic of a fleet-wide channel."""
    return f"{FLEET}/{channel(channel_name, 'fleet').name}"


def device_filter(channel_name: str, device_id: str = "+") -> str:
    """A subscription filter for *channel_name* of one device, or of every device (``+``)."""
    ch = channel(channel_name, "device")
    who = device_id if device_id == "+" else check_device_id(device_id)
    return f"{DEVICES}/{who}/{ch.name}"


def parse(topic: str) -> Route:
    """Tell which channel (and device) a concrete topic belongs to.

    Raises :class:`TopicError` for anything outside the contract, so a consumer can quarantine
    the message with the reason instead of guessing.
    """
    if topic.startswith(DEVICES + "/"):
        device_id, sep, rest = topic[len(DEVICES) + 1 :].partition("/")
        if not sep:
            raise TopicError(f"topic {topic!r} has no channel after the device id")
        check_device_id(device_id)
        return Route(channel(rest, "device"), device_id)
    if topic.startswith(FLEET + "/"):
        return Route(channel(topic[len(FLEET) + 1 :], "fleet"))
    raise TopicError(f"topic {topic!r} is not under {DEVICES}/ or {FLEET}/")
