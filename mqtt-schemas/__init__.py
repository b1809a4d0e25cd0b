"""The Borderlane wire contract, shared by the kiosk and the console.

Both sides import this package and nothing else of each other::

    from mqtt_schemas import topics, validate, PayloadError

    topic = topics.device_topic("kiosk-bz-01", "crossings")
    validate("crossing", payload)      # raises PayloadError naming the failing field

``topics.md`` describes every topic; ``schemas/`` holds one JSON Schema per payload and
``examples/`` valid and invalid payloads for each, which the tests check.

Beside them, the Python forms of the contract's rules, so neither side writes its own:

* :mod:`~mqtt_schemas.envelope`: record ids (UUIDv7), UTC timestamps and the clock-sync state;
* :mod:`~mqtt_schemas.identifiers`: the id and name patterns (device ids, site and lane names);
* :mod:`~mqtt_schemas.health`: one component's entry in a heartbeat;
* :mod:`~mqtt_schemas.liveness`: how both sides notice a silent broker, and a console away;
* :mod:`~mqtt_schemas.topics`: the channel table, including which channels carry records;
* :mod:`~mqtt_schemas.watchlist`: canonical encoding, chunking and signing of watchlist deltas.
"""

from . import envelope, health, identifiers, topics
from .errors import ContractError, PayloadError, TopicError
from .validation import examples, names, schema, tag, validate, versions

__all__ = [
    "ContractError",
    "PayloadError",
    "TopicError",
    "envelope",
    "examples",
    "health",
    "identifiers",
    "names",
    "schema",
    "tag",
    "topics",
    "validate",
    "versions",
]
