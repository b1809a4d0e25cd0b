"""The uplink's configuration: typed, validated, and strict about keys.

The agent reads its configuration file and hands the ``uplink`` section to
:meth:`UplinkConfig.from_dict`. An unknown key is an error naming its path (a misspelt
``ack_timout_s`` must not silently fall back to a default)::

    UplinkConfig.from_dict({
        "device_id": "kiosk-bz-se-01",
        "agent_version": "1.4.2",
        "broker": {"host": "mqtt.borderlane.example", "ca_file": "/etc/borderlane/ca.crt",
                   "cert_file": "/etc/borderlane/kiosk.crt",
                   "key_file": "/etc/borderlane/kiosk.key"},
        "delivery": {"window": 256, "ack_timeout_s": 30},
        "outbox": {"max_bytes": 536870912},
    })
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mqtt_schemas.errors import TopicError
from mqtt_schemas.topics import check_device_id

from .errors import ConfigError

__all__ = [
    "BackoffSettings",
    "BrokerSettings",
    "DeliverySettings",
    "OutboxLimits",
    "UplinkConfig",
]

MiB = 1024 * 1024
_AGENT_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")


def _check(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(key, problem)


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and how the kiosk proves who it is (its client certificate)."""

    host: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    port: int = 8883
    keepalive_s: int = 30
    """The broker declares the kiosk gone (and publishes its will) after 1.5 x this."""
    connect_timeout_s: float = 10.0
    session_expiry_s: int = 7 * 86400
    """How long the broker keeps the kiosk's session (subscriptions and queued commands)."""

    def __post_init__(self) -> None:
        _check(bool(self.host), "host", "must not be empty")
        for name in ("ca_file", "cert_file", "key_file"):
            _check(str(getattr(self, name)) not in ("", "."), name, "must name a file")
        _check(0 < self.port < 65536, "port", f"{self.port} is not a TCP port")
        _check(5 <= self.keepalive_s <= 3600, "keepalive_s", "must be within 5..3600")
        _check(0 < self.connect_timeout_s <= 300, "connect_timeout_s", "must be within 0..300")
        _check(0 <= self.session_expiry_s <= 0xFFFF_FFFF, "session_expiry_s", "must fit 32 bits")


@dataclass(frozen=True)
class DeliverySettings:
    """How records flow: the in-flight window and when unacked records are sent again."""

    window: int = 256
    """Records published and not yet acked by the console, at most. It bounds what one
    reconnect resends and what a slow console has to absorb; the drain rate is about
    ``window / ack round trip``, so it must cover the console's ack batching."""
    ack_timeout_s: float = 30.0
    """A record not acked this long after it was published is published again."""
    ack_timeout_max_s: float = 600.0
    """Each further resend of the same record waits twice as long, up to this."""
    publish_timeout_s: float = 10.0
    """How long :meth:`Uplink.publish_now` waits for the broker's PUBACK."""
    mqtt_inflight: int = 64
    """QoS 1 publications awaiting PUBACK at once (MQTT level, inside the window); must not
    exceed the broker's Receive Maximum (Mosquitto sets none by default)."""

    def __post_init__(self) -> None:
        _check(1 <= self.window <= 4096, "window", "must be within 1..4096")
        _check(0 < self.ack_timeout_s <= 86400, "ack_timeout_s", "must be within 0..86400")
        _check(
            self.ack_timeout_s <= self.ack_timeout_max_s <= 86400,
            "ack_timeout_max_s",
            "must be within ack_timeout_s..86400",
        )
        _check(0 < self.publish_timeout_s <= 300, "publish_timeout_s", "must be within 0..300")
        _check(1 <= self.mqtt_inflight <= 65535, "mqtt_inflight", "must be within 1..65535")


@dataclass(frozen=True)
class BackoffSettings:
    """Reconnect delays: exponential from ``initial_s`` to ``max_s``, with jitter."""

    initial_s: float = 0.5
    max_s: float = 60.0

    def __post_init__(self) -> None:
        _check(0 < self.initial_s <= 60, "initial_s", "must be within 0..60")
        _check(self.initial_s <= self.max_s <= 3600, "max_s", "must be within initial_s..3600")


@dataclass(frozen=True)
class OutboxLimits:
    """The outbox's disk budget and its health alarm thresholds.

    When the unacked records reach ``max_bytes``, or the file system's free space falls below
    ``reserve_free_bytes``, new records are refused (:class:`OutboxFull`) and the lane refers
    travellers to an officer; nothing stored is dropped. The alarm rises long before: at
    ``alarm_ratio`` of the budget, below ``alarm_free_bytes`` free, past ``alarm_age_s`` of
    oldest-record age or past ``alarm_depth`` records.
    """

    max_bytes: int = 512 * MiB
    alarm_ratio: float = 0.8
    reserve_free_bytes: int = 64 * MiB
    alarm_free_bytes: int = 512 * MiB
    alarm_age_s: float = 6 * 3600.0
    alarm_depth: int = 100_000
    max_record_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        _check(self.max_bytes >= 64 * 1024, "max_bytes", "must be at least 65536")
        _check(0 < self.alarm_ratio < 1, "alarm_ratio", "must be within 0..1 (exclusive)")
        _check(self.reserve_free_bytes >= 0, "reserve_free_bytes", "must not be negative")
        _check(
            self.alarm_free_bytes >= self.reserve_free_bytes,
            "alarm_free_bytes",
            "must be at least reserve_free_bytes (the alarm comes before the refusal)",
        )
        _check(self.alarm_age_s > 0, "alarm_age_s", "must be positive")
        _check(self.alarm_depth > 0, "alarm_depth", "must be positive")
        _check(
            1024 <= self.max_record_bytes <= 4 * MiB,
            "max_record_bytes",
            "must be within 1024..4194304 (the broker's packet limit)",
        )


@dataclass(frozen=True)
class UplinkConfig:
    """Everything :class:`~edge.uplink.session.Uplink` needs; see :meth:`from_dict`."""

    device_id: str
    agent_version: str
    broker: BrokerSettings
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    outbox: OutboxLimits = field(default_factory=OutboxLimits)

    def __post_init__(self) -> None:
        try:
            check_device_id(self.device_id)
        except TopicError as exc:
            raise ConfigError("device_id", str(exc)) from None
        _check(
            isinstance(self.agent_version, str) and bool(_AGENT_VERSION.match(self.agent_version)),
            "agent_version",
            "must be 1-64 characters of A-Z a-z 0-9 . + _ -",
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "uplink") -> UplinkConfig:
        """Build from parsed configuration; :class:`ConfigError` names the offending key path."""
        return _build(cls, data, path)


def _build(kind: type, data: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a table of keys, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{path}.{key}", f"unknown key (known: {', '.join(fields)})")
    hints = typing.get_type_hints(kind)
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        key = f"{path}.{name}"
        if name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(key, "required key is missing")
            continue
        values[name] = _convert(hints[name], data[name], key)
    try:
        return kind(**values)
    except ConfigError as exc:
        raise ConfigError(f"{path}.{exc.path}", exc.problem) from None


def _convert(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(key, f"expected a file path, got {value!r}")
        return Path(value)
    raise TypeError(f"{key}: unsupported configuration type {hint!r}")  # a bug here, not input
