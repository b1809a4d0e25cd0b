"""The Borderlane wire contract, shared by the kiosk and the console.

Both sides import this package and nothing else of each other::

    from mqtt_schemas import topics, validate, PayloadError

    topic = topics.device_topic("kiosk-bz-01", "crossings")
    validate("crossing", payload)      # raises PayloadError naming the failing field

``topics.md`` describes every topic; ``schemas/`` holds one JSON Schema per payload and
``examples/`` valid and invalid payloads for each, which the tests check.
"""

from . import topics
from .errors import ContractError, PayloadError, TopicError
from .validation import examples, names, schema, tag, validate, versions

__all__ = [
    "ContractError",
    "PayloadError",
    "TopicError",
    "examples",
    "names",
    "schema",
    "tag",
    "topics",
    "validate",
    "versions",
]
