"""Make paho-mqtt's MQTT 5 ``Properties`` cheap to create: the ingest worker's largest cost.

paho-mqtt 2.x builds a ``Properties`` object for every MQTT 5 PUBLISH it receives, and its
constructor rebuilds three lookup tables (28 property names, their types and packet types, with
~30 ``list.index`` calls) through a validating ``__setattr__``; ``unpack`` then calls ``clear``,
which probes all 28 names with ``hasattr``. Profiled under the ingest benchmark, that was a fifth
of the worker's main thread, more than JSON decoding and schema validation together.

:func:`install` replaces ``Properties.__init__`` and ``Properties.clear`` with equivalents that
share the tables (which paho only ever reads) and delete only the properties actually set. The
tables are taken from paho's own constructor, not copied here, and behaviour is otherwise
unchanged: setting a property still goes through paho's validating ``__setattr__``. If the class
does not look as expected (another paho version), nothing is patched.
"""

from __future__ import annotations

import logging
from typing import Any

from paho.mqtt import properties as _properties
from paho.mqtt.packettypes import PacketTypes

log = logging.getLogger("borderlane.console.paho")

_TABLES = ("types", "names", "properties")
_PRIVATE = frozenset(("packetType", *_TABLES))
_installed = False


def install() -> bool:
    """Patch paho's ``Properties`` (idempotent); return whether the fast path is in place."""
    global _installed
    if _installed:
        return True
    cls = _properties.Properties
    template = cls(PacketTypes.PUBLISH)
    if set(vars(template)) != _PRIVATE:
        log.info("paho Properties has an unexpected layout; speed-up not installed")
        return False
    tables = {name: getattr(template, name) for name in _TABLES}

    def __init__(self: Any, packetType: int) -> None:  # paho's parameter name
        attributes = self.__dict__
        attributes["packetType"] = packetType
        attributes.update(tables)

    def clear(self: Any) -> None:
        attributes = self.__dict__
        for name in [name for name in attributes if name not in _PRIVATE]:
            del attributes[name]

    cls.__init__ = __init__
    cls.clear = clear
    _installed = True
    return True
