"""What one incoming MQTT message is: a record to store, a device state, or something to quarantine.

Pure code, no I/O: :func:`classify` turns a topic and its payload bytes into one of the item
types below, so the ingest worker only batches and stores, and the tests can feed it anything.

Checks, in order, each failure giving a :class:`Quarantined` with a reason that names the field:

1. the topic is a kiosk-published device channel of the contract (``topics.parse``);
2. the payload is UTF-8 JSON, an object; "JSON" as the contract means it, which Python's
   ``json`` is more lenient than: no ``NaN``/``Infinity``, no number beyond a double, no
   integer Python refuses to convert (over 4,300 digits), no ``\\u`` escape of a lone surrogate
   (text that is not Unicode), and nesting no deeper than the parser's recursion limit;
3. it validates against the channel's schema (the version named by its ``schema`` field);
4. its ``device_id`` is the device id in the topic: a kiosk must not speak for another (the broker
   ACL confines a kiosk to its own topics, so the topic names the authenticated sender).

:func:`classify` is total: whatever bytes arrive on whatever topic, it returns an item and never
raises, because one kiosk (compromised, or just buggy) must not be able to stop ingest for all.
A quarantine reason is one line of at most :data:`REASON_LIMIT` characters, storable as UTF-8
text, and names the failing field and rule but never a value from the payload (it goes to the
database, the log and the kiosk's ack, and a value may be a document number or a name); the
only exceptions are the ids it compares (a device id that differs from the topic's, a record
id stored with other content), which are not personal data.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import mqtt_schemas
from mqtt_schemas import PayloadError, TopicError, topics
from mqtt_schemas.topics import RECORD_CHANNELS

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""Used with ``fullmatch``: ``re``'s ``$`` also matches before a final newline, and an id
ending in one would make the kiosk's ack invalid, so the kiosk would drop the whole ack."""
REASON_LIMIT = 500
"""The ack schema bounds a rejection reason to 500 characters; quarantine reasons and paths are
held to the same bound."""
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""A ``\\uD800``-``\\uDFFF`` escape: the only way a lone surrogate gets into a payload decoded
from UTF-8. Text without one skips the slower check that surrogates come in pairs."""
_VALUE_FREE_PROBLEMS = frozenset(
    {
        "required field is missing",
        "unexpected field (not in the schema)",
        "field not allowed in this case",
    }
)
"""Problems :func:`mqtt_schemas.validate` states without showing the field's value."""
_MISSING = object()


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
    """The topic as received; a character UTF-8 cannot encode (a lone surrogate) as an escape."""
    raw: bytes
    reason: str
    """The whole reason, e.g. ``crossing@1: /document/number: required field is missing``: one
    line, at most :data:`REASON_LIMIT` characters, no value from the payload but ids."""
    path: str | None
    """JSON Pointer to the failing field, when the problem is one field (bounded as reasons)."""
    device_id: str | None
    """The device in the topic, when the topic is well formed."""
    record_id: str | None
    """The payload's ``id``, when it has a well-formed one."""
    is_record: bool
    """It came on a record channel: the kiosk is told, in its next ack, under ``rejected``
    (false for the console's own failures, see :func:`internal_error`)."""


@dataclass(frozen=True, slots=True)
class Cleared:
    """An empty retained availability message: an operator removed a kiosk's retained state."""

    topic: str
    device_id: str


Item = Record | Availability | Health | CommandResult | Quarantined | Cleared

_CHANNEL_OF = {Availability: "availability", Health: "health", CommandResult: "command-results"}


def from_revoked_device(item: Item, revoked_at: str) -> Quarantined:
    """*item* (from a kiosk whose certificates were all revoked at *revoked_at*) refused: a
    message already in flight when the broker dropped the kiosk is kept, never accepted."""
    channel = item.channel if isinstance(item, Record) else _CHANNEL_OF[type(item)]
    device_id = item.device_id  # type: ignore[union-attr]
    return Quarantined(
        topics.device_topic(device_id, channel),
        item.text.encode("utf-8"),  # type: ignore[union-attr]
        f"device: {device_id}'s certificate was revoked at {revoked_at}",
        None,
        device_id,
        item.id,  # type: ignore[union-attr]
        isinstance(item, Record),
    )


def classify(topic: str, raw: bytes) -> Item:
    """The item for one message received on *topic* with payload *raw*; never raises."""
    try:
        route = _parse(topic)
    except TopicError as exc:
        return Quarantined(_storable(topic), raw, _line(f"topic: {exc}"), None, None, None, False)
    channel = route.channel
    device_id = route.device_id
    is_record = channel.name in RECORD_CHANNELS

    def quarantine(reason: str, path: str | None, record_id: str | None = None) -> Quarantined:
        bounded_path = None if path is None else _line(path)
        return Quarantined(
            _storable(topic), raw, _line(reason), bounded_path, device_id, record_id, is_record
        )

    if device_id is None or channel.publisher != "kiosk":
        return quarantine(f"topic: {topic!r} is not a kiosk-published channel", None)
    if not raw and channel.name == "availability":
        return Cleared(topic, device_id)
    try:
        text = raw.decode("utf-8")
        payload = _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        return quarantine(f"payload is not UTF-8: byte {exc.start}", "")
    except json.JSONDecodeError as exc:
        return quarantine(f"payload is not JSON: {exc.msg} at {exc.lineno}:{exc.colno}", "")
    except _NotContractJson as exc:
        return quarantine(f"payload is not JSON: {exc}", "", _salvage_id(text))
    except RecursionError:
        return quarantine("payload is not JSON the console reads: nested too deeply", "")
    except ValueError:
        # The C scanner's only other ValueError: int() refuses to convert that many digits.
        limit = sys.get_int_max_str_digits()
        reason = f"payload is not JSON the console reads: an integer of more than {limit} digits"
        return quarantine(reason, "", _salvage_id(text))
    record_id = _record_id(payload)
    if _SURROGATE_ESCAPE.search(text) and not _is_unicode(payload):
        # A JSON string may escape any code unit, but a lone surrogate is not a character:
        # UTF-8 cannot encode it, so the schema validator and both databases refuse it.
        reason = "payload is not JSON text: a \\u escape of a lone surrogate"
        return quarantine(reason, "", record_id)
    try:
        mqtt_schemas.validate(channel.schema, payload)
    except PayloadError as exc:
        return quarantine(_schema_reason(exc, payload, channel.schema), exc.path, record_id)
    except Exception as exc:  # the validator refuses some payloads outright; never stop ingest
        return quarantine(_unvalidatable(exc, payload, channel.schema), "", record_id)
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


def internal_error(
    topic: str, raw: bytes, stage: str, exc: BaseException, record_id: str | None = None
) -> Quarantined:
    """The quarantine item for a message the console itself failed on while *stage*
    (``"classifying"``, ``"storing"``); never raises. The ingest worker's last line of defence.

    The reason names the exception's type only: its text may quote the payload. The kiosk is not
    told (``is_record`` false, so no ``rejected`` entry): the fault is the console's, so the
    kiosk keeps the record and republishes it, and a fixed console stores it then.
    """
    try:
        device_id = _parse(topic).device_id
    except Exception:  # the topic may be what failed
        device_id = None
    reason = f"internal error {stage}: {type(exc).__name__}"
    return Quarantined(_storable(topic), raw, _line(reason), None, device_id, record_id, False)


def rejection_reason(item: Quarantined) -> str:
    """The reason as it goes into an ack's ``rejected`` entry (at most 500 characters)."""
    reason = item.reason
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 3] + "..."


def _record_id(payload: Any) -> str | None:
    if isinstance(payload, dict):
        candidate = payload.get("id")
        if isinstance(candidate, str) and _UUID.fullmatch(candidate):
            return candidate
    return None


# -- JSON as the contract means it ---------------------------------------------------------


class _NotContractJson(ValueError):
    """Python's ``json`` reads it, but it is not JSON (RFC 8259) or not a double; the message
    is the reason and shows no value."""


def _refuse_constant(name: str) -> Any:
    raise _NotContractJson(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: valid JSON, but no double holds it
        raise _NotContractJson("a number beyond the range of a double")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
"""Made once: ``json.loads`` with hooks would build a decoder per message."""


def _salvage_id(text: str) -> str | None:
    """The record id of a payload refused for one of its numbers, so the kiosk can be told.

    Read again leniently (every number as 0), on the refusal path only.
    """
    try:
        lenient = json.loads(
            text, parse_constant=lambda _: 0, parse_int=lambda _: 0, parse_float=lambda _: 0
        )
    except Exception:
        return None
    return _record_id(lenient)


def _is_unicode(payload: Any) -> bool:
    """Whether every string in *payload*, keys too, is text UTF-8 can encode (no lone
    surrogate). Iterative: the payload may nest as deep as the parser allowed."""
    stack = [payload]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)  # the keys
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


# -- reasons -------------------------------------------------------------------------------


def _line(text: str, limit: int = REASON_LIMIT) -> str:
    """*text* as one line of at most *limit* characters that UTF-8 can encode: line breaks,
    other control characters and lone surrogates shown as escapes (``\\n``, ``\\ud800``)."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
        if len(text) > limit:
            text = text[: limit - 3] + "..."
    return text


def _storable(text: str) -> str:
    """*text* as both backends store text: a NUL (PostgreSQL refuses it) and lone surrogates
    (UTF-8 cannot encode them) as escapes; anything else unchanged."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _schema_reason(exc: PayloadError, payload: Any, schema_name: str) -> str:
    """*exc* as a reason that names the failing field and the rule, never the field's value.

    :func:`mqtt_schemas.validate` shows the value in most problems (``'AB<12' does not match
    '^[A-Z0-9]{1,24}$'``, ``"X" is not one of "entry" or "exit"``); a value that fails its
    schema can be a document number or a name, so it is cut out where it is recognised exactly
    (``the value does not match ...``), and the problem is left unstated where it is not.
    """
    problem = exc.problem
    if exc.path == "/schema":
        known = ", ".join(f"{schema_name}@{v}" for v in mqtt_schemas.versions(schema_name))
        problem = f"not a schema tag this console reads ({known})"
    elif problem not in _VALUE_FREE_PROBLEMS and not problem.startswith("expected a JSON object"):
        problem = _without_value(problem, _at(payload, exc.path))
    where = exc.path or "(payload)"
    if len(where) > 200:  # keys are the sender's too: the problem must stay in the reason
        where = where[:197] + "..."
    return f"{exc.schema}: {where}: {problem}"


def _without_value(problem: str, value: Any) -> str:
    if value is not _MISSING:
        shown, sep, rule = problem.rpartition(" does not match ")
        if sep and shown == _shortened_repr(value):  # mqtt_schemas' own pattern message
            return f"the value does not match {rule}"
        # jsonschema-rs puts the value first, as compact JSON: `"X" is not one of ...`
        rendered = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if problem.startswith(rendered + " "):
            return "the value" + problem[len(rendered) :]
    return "the value does not match the schema"


def _shortened_repr(value: Any) -> str:
    text = repr(value)  # as mqtt_schemas.validation shows a value that fails a pattern
    return text if len(text) <= 60 else text[:57] + "..."


def _at(payload: Any, pointer: str) -> Any:
    """The value at JSON Pointer *pointer* in *payload*, or ``_MISSING``."""
    value = payload
    for part in pointer.split("/")[1:] if pointer else ():
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _MISSING
    return value


def _unvalidatable(exc: Exception, payload: Any, schema_name: str) -> str:
    """Why the validator could not even judge *payload*, e.g. jsonschema-rs refusing a payload
    nested 255 levels deep (its "Recursion limit reached"). The exception's text is not used:
    it may quote the payload."""
    depth = _depth(payload)
    if depth > 64:  # no payload of the contract comes close (a crossing nests 4 levels)
        return f"{schema_name}: (payload): nested {depth} levels deep, too deep to validate"
    return f"{schema_name}: (payload): cannot be validated ({type(exc).__name__})"


def _depth(payload: Any) -> int:
    """How deeply arrays and objects nest in *payload* (iteratively: it may be very deep)."""
    deepest, stack = 0, [(payload, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
        else:
            continue
        deepest = max(deepest, depth + 1)
    return deepest
