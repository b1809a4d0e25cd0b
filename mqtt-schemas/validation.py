"""Validate payloads against the JSON Schemas in ``schemas/``.

Schemas are draft 2020-12 files named ``<name>.v<version>.json``; a payload names the version it
follows in its ``schema`` field (``"crossing@1"``), so several versions of one payload can be on
the wire while a fleet upgrades. Every schema is loaded and compiled once, on first use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from .errors import PayloadError

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
    """*text* cut to *limit* characters: a 32 KiB PEM must not flood a log line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escape(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")
