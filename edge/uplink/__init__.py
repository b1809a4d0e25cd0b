"""The kiosk's uplink: the durable outbox and the MQTT session, the only MQTT code on the kiosk.

* :class:`Outbox` (``outbox.py``): records committed with the lane's state, kept until acked.
* :class:`Uplink` (``session.py``): TLS MQTT v5 session, availability, acks, commands, watchlist.
* :class:`UplinkConfig` (``config.py``): the validated configuration.
* :class:`SystemClock` (:mod:`mqtt_schemas.envelope`): timestamps and the clock-sync state of
  the envelope, shared with the console, as are record ids (:func:`uuid7`).
"""

from mqtt_schemas.envelope import Clock, ClockReading, ClockState, StaticClock, SystemClock, uuid7
from mqtt_schemas.topics import RECORD_CHANNELS

from .config import BackoffSettings, BrokerSettings, DeliverySettings, OutboxLimits, UplinkConfig
from .errors import ConfigError, NotConnected, OutboxError, OutboxFull, UplinkError
from .outbox import Outbox, OutboxStats, Record, Transaction, canonical_json
from .session import ConnectionState, Handler, Incoming, Uplink, UplinkStatus

__all__ = [
    "RECORD_CHANNELS",
    "BackoffSettings",
    "BrokerSettings",
    "Clock",
    "ClockReading",
    "ClockState",
    "ConfigError",
    "ConnectionState",
    "DeliverySettings",
    "Handler",
    "Incoming",
    "NotConnected",
    "Outbox",
    "OutboxError",
    "OutboxFull",
    "OutboxLimits",
    "OutboxStats",
    "Record",
    "StaticClock",
    "SystemClock",
    "Transaction",
    "Uplink",
    "UplinkConfig",
    "UplinkError",
    "UplinkStatus",
    "canonical_json",
    "uuid7",
]
