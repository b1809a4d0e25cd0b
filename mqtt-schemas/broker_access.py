"""Who may do what at the broker, as data both sides build from: device roles and identities.

The broker (Mosquitto with its dynamic-security plugin) knows every kiosk as a *client* whose
username is the common name of its certificate (the device id), holding one *role* of its own
whose access-control entries are derived from :data:`~mqtt_schemas.topics.CHANNELS`: a kiosk
may publish only the channels kiosks publish, under its own device id, and subscribe only to
the channels published for it and to the fleet's. Literal topics, not ``%u`` patterns: the
plugin checks subscriptions when they are made (Mosquitto's ACL file only checks deliveries,
so any client could join the console's ``$share`` group), and a role per device can be
audited and removed on its own::

    >>> role = device_role("kiosk-bz-07")
    >>> role["rolename"]
    'device:kiosk-bz-07'
    >>> {"acltype": "publishClientSend", "topic": "borderlane/v1/devices/kiosk-bz-07/crossings",
    ...  "allow": True, "priority": 0} in role["acls"]
    True

Identities are split so that no kiosk can pose as a service:

* device certificates come from the *device* CA and connect to the device listener, where the
  MQTT client id is forced to the certificate's name (``use_username_as_clientid``): a kiosk
  can only ever be itself, and never take over another client's session;
* service client ids (the console's workers) always contain ``:`` (:func:`service_client_id`),
  which a device id cannot, so no device can ever connect under one;
* the names of services (:data:`RESERVED_NAMES`) are refused as device ids
  (:func:`check_new_device_id`), because the broker's usernames are one namespace.

The ``$CONTROL/dynamic-security/v1`` commands that add and remove a device are built here too
(:func:`add_device_commands`, :func:`remove_device_commands`); each side sends them with its own
MQTT client.
"""

from __future__ import annotations

from typing import Any

from .errors import TopicError
from .topics import CHANNELS, DEVICES, FLEET, ROOT, check_device_id

__all__ = [
    "CONTROL_RESPONSE_TOPIC",
    "CONTROL_TOPIC",
    "RESERVED_NAMES",
    "SERVICE_ROLE",
    "add_device_commands",
    "check_new_device_id",
    "device_role",
    "device_role_name",
    "remove_device_commands",
    "service_client_id",
    "service_role",
]

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
CONTROL_RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
SERVICE_ROLE = "service:console"
RESERVED_NAMES = frozenset(
    {"console", "broker", "admin", "administrator", "root", "mosquitto", "provision", "service"}
)
"""Names of services and administrators: never a device id (compared case-insensitively)."""

_SEND, _RECEIVE = "publishClientSend", "publishClientReceive"
_SUBSCRIBE, _UNSUBSCRIBE = "subscribeLiteral", "unsubscribeLiteral"


def check_new_device_id(device_id: str) -> str:
    """*device_id* unchanged if a new device may take it; :class:`TopicError` says why not.

    >>> check_new_device_id("console")
    Traceback (most recent call last):
    ...
    mqtt_schemas.errors.TopicError: device id 'console' is reserved for a service
    """
    check_device_id(device_id)
    if device_id.lower() in RESERVED_NAMES:
        raise TopicError(f"device id {device_id!r} is reserved for a service")
    return device_id


def service_client_id(client_id: str) -> str:
    """The MQTT client id a service connects under: *client_id* if it contains ``:``, else
    ``console:`` + *client_id*. No device id contains ``:``, and a kiosk's client id is forced
    to its device id, so no kiosk can ever hold (and so take over) a service's session.

    >>> service_client_id("bz-1-ingest-console-ingest"), service_client_id("console:a")
    ('console:bz-1-ingest-console-ingest', 'console:a')
    """
    if not isinstance(client_id, str) or not client_id or len(client_id) > 128:
        raise TopicError("a service client id is 1-128 characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in client_id):
        raise TopicError("service client id contains a control character")
    return client_id if ":" in client_id else f"console:{client_id}"


def device_role_name(device_id: str) -> str:
    return f"device:{check_device_id(device_id)}"


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "allow": True, "priority": 0}


def device_role(device_id: str) -> dict[str, Any]:
    """The dynamic-security role of one kiosk: its own channels and the fleet's, nothing else."""
    check_device_id(device_id)
    acls = []
    for channel in CHANNELS:
        if channel.scope == "device":
            topic = f"{DEVICES}/{device_id}/{channel.name}"
        else:
            topic = f"{FLEET}/{channel.name}"
        if channel.publisher == "kiosk":
            acls.append(_acl(_SEND, topic))
        else:
            acls += [_acl(_SUBSCRIBE, topic), _acl(_UNSUBSCRIBE, topic), _acl(_RECEIVE, topic)]
    return {"rolename": device_role_name(device_id), "acls": acls}


def service_role() -> dict[str, Any]:
    """The console's role: the whole Borderlane tree (shared subscriptions included) and the
    broker's dynamic-security control topic, through which it adds and removes devices."""
    acls = []
    for topic in (f"{ROOT}/#", CONTROL_TOPIC, CONTROL_RESPONSE_TOPIC):
        acls += [
            _acl(_SEND, topic),
            _acl(_RECEIVE, topic),
            _acl("subscribePattern", topic),
            _acl("unsubscribePattern", topic),
        ]
    # Shared subscriptions are checked with their $share/<group>/ prefix.
    shared = f"$share/+/{ROOT}/#"
    acls += [_acl(kind, shared) for kind in ("subscribePattern", "unsubscribePattern")]
    return {"rolename": SERVICE_ROLE, "acls": acls}


def add_device_commands(device_id: str) -> list[dict[str, Any]]:
    """Commands that let *device_id* connect with its role (replacing any earlier role)."""
    role = device_role(device_id)
    return [
        {"command": "deleteClient", "username": device_id},
        {"command": "deleteRole", "rolename": role["rolename"]},
        {"command": "createRole", **role},
        {
            "command": "createClient",
            "username": device_id,
            "roles": [{"rolename": role["rolename"], "priority": 0}],
        },
    ]


def remove_device_commands(device_id: str) -> list[dict[str, Any]]:
    """Commands that disconnect *device_id* at once and take away all its access."""
    return [
        {"command": "deleteClient", "username": check_device_id(device_id)},
        {"command": "deleteRole", "rolename": device_role_name(device_id)},
    ]
