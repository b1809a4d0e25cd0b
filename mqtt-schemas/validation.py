"""Read JSON as the contract means it, and validate payloads against the schemas in ``schemas/``.

Schemas are draft 2020-12 files named ``<name>.v<version>.json``; a payload names the version it
follows in its ``schema`` field (``"crossing@1"``), so several versions of one payload can be on
the wire while a fleet upgrades. Every schema is loaded and compiled once, on first use.

:func:`parse_json` is the one reader of JSON from outside (MQTT payloads, delta chunks): it
raises :class:`JsonError`, and nothing else, for anything that is not JSON (RFC 8259) as both
sides can use it, which Python's :mod:`json` is more lenient than.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from .errors import ContractError, PayloadError

MAX_DEPTH = 64
"""How deeply arrays and objects may nest in JSON from outside. No payload of the contract
comes close (a crossing nests 4 levels, a delta chunk 5); the limit keeps every reader of a
parsed value (the canonical encoding, the schema validator, ``json.dumps``) far from Python's
recursion limit, which a 1,000-deep array reaches."""


class JsonError(ContractError):
    """Text that is not JSON as the contract means it. The message is one line and quotes
    nothing from the text (it may be a name or a document number)."""


def _refuse_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: valid JSON, but no double holds it
        raise JsonError("a number beyond the range of a double")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
# A JSON string may escape any UTF-16 code unit, so "\ud800" reads as a lone surrogate: not a
# character, and UTF-8 cannot encode it (neither database stores it, the validator refuses it).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(data: bytes | bytearray | memoryview | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The value of one JSON text from outside, or :class:`JsonError` and nothing else.

    Refused, each with a one-line reason: bytes that are not UTF-8; text that is not JSON;
    ``NaN``, ``Infinity`` and numbers beyond a double (Python's :mod:`json` reads them);
    integers of more digits than Python converts (4,300); a lone surrogate, escaped or not;
    arrays and objects nested deeper than ``max_depth``.

    >>> parse_json(b'{"a": [1, 2.5, null]}')
    {'a': [1, 2.5, None]}
    >>> parse_json(b"[NaN]")
    Traceback (most recent call last):
    mqtt_schemas.validation.JsonError: NaN is not a JSON number
    """
    if isinstance(data, str):
        text = data
        if _SURROGATE.search(text):
            raise JsonError("a lone surrogate is not text")
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError(f"not UTF-8: byte {exc.start} ({exc.reason})") from None
    try:
        value = _DECODER.decode(text)
    except JsonError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonError(str(exc)) from None  # "Expecting value: line 1 column 5 (char 4)"
    except RecursionError:  # the C scanner stops at Python's recursion limit, cleanly
        raise JsonError(f"nested deeper than {max_depth} levels") from None
    except ValueError:  # the scanner's only other one: int() refuses that many digits
        limit = sys.get_int_max_str_digits()
        raise JsonError(f"an integer of more than {limit} digits") from None
    # Each walk below costs a pass over the value (about as long as the parse): only when the
    # text could need it.
    if text.count("[") + text.count("{") > max_depth and _too_deep(value, max_depth):
        raise JsonError(f"nested deeper than {max_depth} levels")
    if _SURROGATE_ESCAPE.search(text) and _holds_surrogate(value):
        raise JsonError("a \\u escape of a lone surrogate")
    return value


_CONTAINERS = (dict, list)


def _too_deep(value: Any, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than ``max_depth`` in ``value``: level by level,
    iteratively (the value may nest as deep as the scanner allowed)."""
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > max_depth:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below += [child for child in children if type(child) in _CONTAINERS]
        level = below
    return False


def _holds_surrogate(value: Any) -> bool:
    """Whether a string in ``value``, or a key, holds a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)  # the keys
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and _SURROGATE.search(item):
            return True
    return False


_FILE_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)\.v(?P<version>[0-9]+)\.json$")
_SCHEMA_TAG = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)@(?P<version>[0-9]+)$")
DEFS = "defs"
"""Shared definitions (envelope, ids, time); referenced by the payload schemas, not a payload."""

# jsonschema-rs, not the pure-Python reference implementation: the console validates every
# payload it ingests (target 5,000 crossings/s on two cores) and the reference implementation
# manages about 1,400 crossing payloads/s on one core; see scripts/benchmarks/contract.py.
# It also gives `pattern` JSON Schema's (ECMA-262) meaning, where `$` is the end of the string,
# so "kiosk-1\n" does not pass for a device id.
_Validator = jsonschema_rs.Draft202012Validator


def _schema_files() -> Iterator[tuple[str, int, Any]]:
    for entry in resources.files(__package__).joinpath("schemas").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            yield match["name"], int(match["version"]), entry


@cache
def _catalogue() -> dict[str, dict[int, _Compiled]]:
    documents = [(n, v, json.loads(f.read_text("utf-8"))) for n, v, f in _schema_files()]
    registry = jsonschema_rs.Registry([(doc["$id"], doc) for _, _, doc in documents])
    catalogue: dict[str, dict[int, _Compiled]] = {}
    for name, version, doc in documents:
        jsonschema_rs.meta.validate(doc)
        if name == DEFS:
            continue
        validator = _Compiled(doc, _Validator(doc, registry=registry))
        catalogue.setdefault(name, {})[version] = validator
    return catalogue


def names() -> list[str]:
    """The payload names of the contract, e.g. ``["ack", "availability", ...]``."""
    return sorted(_catalogue())


def versions(name: str) -> list[int]:
    """The schema versions known for payload *name*."""
    return sorted(_validators(name))


def schema(name: str, version: int | None = None) -> Mapping[str, Any]:
    """The JSON Schema document of *name* (the latest version unless one is given)."""
    validators = _validators(name)
    return validators[version if version is not None else max(validators)].schema


def tag(name: str) -> str:
    """The ``schema`` field value for the latest version of *name*: ``"crossing@1"``."""
    return f"{name}@{max(_validators(name))}"


def examples(name: str) -> Mapping[str, Any]:
    """The worked examples of *name*: ``{"valid": [...], "invalid": [...]}``.

    Each valid entry is ``{why, payload}``; each invalid one ``{why, path, payload}``.

    Every valid example validates and every invalid one fails at ``path``; the tests hold the
    examples to that, so they are safe to copy when writing a producer or consumer.
    """
    _validators(name)
    source = resources.files(__package__).joinpath("examples", f"{name}.json")
    return json.loads(source.read_text("utf-8"))


class _Compiled:
    """A schema document and its compiled validator."""

    __slots__ = ("schema", "validator")

    def __init__(self, schema: Mapping[str, Any], validator: Any) -> None:
        self.schema = schema
        self.validator = validator


def _validators(name: str) -> dict[int, _Compiled]:
    try:
        return _catalogue()[name]
    except KeyError:
        raise PayloadError(name, "", f"no schema named {name!r} in the contract") from None


def validate(name: str, payload: Any) -> None:
    """Check that *payload* is a valid *name* payload, or raise :class:`PayloadError`.

    The version comes from the payload's own ``schema`` field, which must name *name*::

        >>> validate("ack", {"schema": "ack@1", ...})          # returns None when valid
        >>> validate("ack", {"schema": "crossing@1", ...})
        Traceback (most recent call last):
        PayloadError: ack: /schema: expected 'ack@<version>', got 'crossing@1'
    """
    validators = _validators(name)
    if not isinstance(payload, dict):
        raise PayloadError(name, "", f"expected a JSON object, got {type(payload).__name__}")
    declared = payload.get("schema")
    match = _SCHEMA_TAG.match(declared) if isinstance(declared, str) else None
    if match is None or match["name"] != name:
        raise PayloadError(name, "/schema", f"expected '{name}@<version>', got {declared!r}")
    version = int(match["version"])
    validator = validators.get(version)
    if validator is None:
        known = ", ".join(f"{name}@{v}" for v in sorted(validators))
        raise PayloadError(name, "/schema", f"unknown version {declared!r} (known: {known})")
    if validator.validator.is_valid(payload):
        return
    # Only invalid payloads pay for error collection. The first error is the one reported:
    # jsonschema-rs yields them in schema order, envelope fields first.
    error = next(iter(validator.validator.iter_errors(payload)))
    path, problem = _describe(error)
    raise PayloadError(declared, path, problem)


def _describe(error: jsonschema_rs.ValidationError) -> tuple[str, str]:
    """A JSON Pointer to the failing field and a short statement of the problem."""
    error = _most_specific(error)
    path = "".join(f"/{_escape(part)}" for part in error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        return f"{path}/{_escape(kind.property)}", "required field is missing"
    if isinstance(
        kind,
        jsonschema_rs.ValidationErrorKind.AdditionalProperties
        | jsonschema_rs.ValidationErrorKind.UnevaluatedProperties,
    ):
        return f"{path}/{_escape(kind.unexpected[0])}", "unexpected field (not in the schema)"
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Not):
        return path, "field not allowed in this case"  # defs' "absent", used in if/then
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Pattern):
        return path, f"{_shorten(repr(error.instance), 60)} does not match {kind.pattern!r}"
    return path, _shorten(error.message, 200)


def _most_specific(error: jsonschema_rs.ValidationError) -> jsonschema_rs.ValidationError:
    """For "none of anyOf/oneOf matched", the error inside the branch the payload came closest to.

    A branch whose very type differs from the value's was not what the sender meant; among the
    rest, the error deepest in the payload names the field to fix.
    """
    kind = error.kind
    if not isinstance(
        kind,
        jsonschema_rs.ValidationErrorKind.AnyOf | jsonschema_rs.ValidationErrorKind.OneOfNotValid,
    ):
        return error
    depth = len(error.instance_path)
    candidates = [
        inner
        for branch in kind.context
        for inner in branch
        if not (
            isinstance(inner.kind, jsonschema_rs.ValidationErrorKind.Type)
            and len(inner.instance_path) == depth
        )
    ]
    if not candidates:
        return error
    return _most_specific(max(candidates, key=lambda inner: len(inner.instance_path)))


def _shorten(text: str, limit: int) -> str:
    """*text* cut to *limit* characters, on one line: a 32 KiB PEM must not flood a log line,
    and a value or a key with a line break must not start a line of its own."""
    text = _printable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escape(part: object) -> str:
    """One JSON Pointer reference token, printable (a key may hold a line break)."""
    return _printable(str(part).replace("~", "~0").replace("/", "~1"))


def _printable(text: str) -> str:
    """*text* with line breaks, other control characters and lone surrogates as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
