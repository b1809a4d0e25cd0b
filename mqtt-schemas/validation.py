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

import jsonschema
import referencing
from jsonschema.exceptions import ValidationError, best_match

from .errors import PayloadError

_FILE_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)\.v(?P<version>[0-9]+)\.json$")
_SCHEMA_TAG = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)@(?P<version>[0-9]+)$")
_UNEXPECTED = re.compile(r"\((.+) (?:was|were) unexpected\)")
DEFS = "defs"
"""Shared definitions (envelope, ids, time); referenced by the payload schemas, not a payload."""


@cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """Compile a schema ``pattern`` with ECMA-262's ``$``: the end of the input, nothing else.

    Python's ``$`` also matches before a final newline, so ``^[a-z]+$`` would let
    ``"kiosk\\n"`` through. Every unescaped ``$`` outside a character class becomes ``\\Z``.
    """
    out, escaped, in_class = [], False, False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        elif ch == "$" and not in_class:
            ch = r"\Z"
        out.append(ch)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})
"""Draft 2020-12 with JSON Schema's regex semantics for ``pattern`` (see :func:`_ecma_regex`)."""


def _schema_files() -> Iterator[tuple[str, int, Any]]:
    for entry in resources.files(__package__).joinpath("schemas").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            yield match["name"], int(match["version"]), entry


@cache
def _catalogue() -> dict[str, dict[int, jsonschema.protocols.Validator]]:
    documents = [(n, v, json.loads(f.read_text("utf-8"))) for n, v, f in _schema_files()]
    registry = referencing.Registry().with_resources(
        (doc["$id"], referencing.Resource.from_contents(doc)) for _, _, doc in documents
    )
    catalogue: dict[str, dict[int, jsonschema.protocols.Validator]] = {}
    for name, version, doc in documents:
        if name == DEFS:
            continue
        jsonschema.Draft202012Validator.check_schema(doc)
        validator = _Validator(doc, registry=registry)
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


def _validators(name: str) -> dict[int, jsonschema.protocols.Validator]:
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
    errors = validator.iter_errors(payload)
    first = next(errors, None)
    if first is None:
        return
    error = best_match([first, *errors])
    path, problem = _describe(error)
    raise PayloadError(declared, path, problem)


def _describe(error: ValidationError) -> tuple[str, str]:
    """A JSON Pointer to the failing field and a short statement of the problem."""
    path = "".join(f"/{_escape(part)}" for part in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        if missing:
            return f"{path}/{_escape(missing[0])}", "required field is missing"
    if error.validator == "not" and error.validator_value == {}:
        return path, "field not allowed in this case"  # defs' "absent", used in if/then
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        unexpected = _UNEXPECTED.search(error.message)
        if unexpected:
            first = unexpected.group(1).split(", ")[0].strip("'")
            return f"{path}/{_escape(first)}", "unexpected field (not in the schema)"
    return path, error.message


def _escape(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")
