"""Watchlist chunks on the wire: entries, canonical encoding, digests, chunking and signatures.

The console builds and signs chunks; a kiosk verifies them before it applies anything. Both use
this module, so what is signed is defined once. It is the executable form of the
``watchlist-delta-chunk@1`` schema's prose and of the "Watchlist" section of ``topics.md``.

Canonical encoding (what is hashed and signed)
    JSON (RFC 8259) as UTF-8 bytes, with object members sorted by key (keys compared as
    sequences of Unicode code points), no whitespace anywhere (separators ``,`` and ``:``),
    non-ASCII characters written as themselves (not ``\\u`` escapes), and the string escapes of
    Python's :func:`json.dumps` (``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, other C0 controls as
    ``\\u00xx`` in lower-case hex). Values are objects with string keys, arrays, strings, integers
    within +-(2**53 - 1), ``true``, ``false`` and ``null``; a float, a larger integer or a lone
    surrogate makes the value unencodable (:class:`WatchlistError`). Strings are not
    Unicode-normalized: the signer signs exactly what it sends.

Signature
    Ed25519 (RFC 8032, pure, no pre-hash) by the key named ``key_id`` over
    ``canonical(chunk without signature and without id, device_id, seq, time, clock,
    for_device)``, base64 in ``signature``. The signed part includes ``schema``, so a signature
    can never be replayed as another kind of payload.

Chunks of one delta or snapshot
    Each chunk carries ``kind``, ``from_version`` (deltas), ``to_version``, ``chunk_index``,
    ``chunk_count`` and ``changes_sha256``: the SHA-256 (hex) of **all** the changes of the
    delta, in order, as canonical JSON Lines (``canonical(change) + b"\\n"`` each). All are
    signed, so every chunk is verifiable on its own and commits to the whole: a missing chunk
    (truncation), a chunk out of place (reordering) or a chunk from another delta of the same
    versions (mixing) is detected when the chunks are assembled (:func:`assemble`). For a
    snapshot, whose changes are the whole entry set as ``add`` changes sorted by
    ``(kind, entry_id)``, ``changes_sha256`` is also the manifest's ``snapshot.sha256``.

Example (console side)::

    key = generate_key()
    changes = diff(old_entries, new_entries)                  # [{"op": "add", ...}, ...]
    chunks = sign_chunks(
        make_chunks("delta", changes, from_version=1287, to_version=1288, key_id="wl-2026a"),
        key,
    )

and on the kiosk: ``delta = assemble([verify_chunk(c, trusted) for c in chunks])``.

The files around them live here too, so that both sides read them alike: list files (JSON
Lines or CSV, :func:`list_entries`), changes files (:func:`read_changes`), a changes or list
file cut and signed (:func:`sign_file`) and a signing key pair on disk (:func:`write_key_pair`).
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ContractError
from .identifiers import COUNTRY, DOCUMENT_NUMBER, KEY_ID, NAME
from .validation import parse_json

__all__ = [
    "CHUNK_SCHEMA",
    "LIST_CSV_COLUMNS",
    "MAX_CHUNK_BYTES",
    "MAX_CHUNK_CHANGES",
    "UNSIGNED_FIELDS",
    "ChunkStream",
    "Delta",
    "WatchlistError",
    "assemble",
    "canonical",
    "change_key",
    "changes_sha256",
    "check_change",
    "check_entry",
    "diff",
    "entry_from_record",
    "generate_key",
    "key_fingerprint",
    "list_entries",
    "list_file_format",
    "load_private_key",
    "load_public_key",
    "make_chunks",
    "private_key_pem",
    "public_key_pem",
    "read_changes",
    "read_list_records",
    "record_from_entry",
    "sign_chunks",
    "sign_file",
    "signing_bytes",
    "snapshot_changes",
    "verify_chunk",
    "verify_delta",
    "write_key_pair",
]

CHUNK_SCHEMA = "watchlist-delta-chunk@1"
PUBLICATION_FIELDS = frozenset({"id", "device_id", "seq", "time", "clock", "for_device"})
"""Fields that change with each publication of the same chunk, so they are not signed."""
UNSIGNED_FIELDS = PUBLICATION_FIELDS | {"signature"}
MAX_CHUNK_CHANGES = 5000
"""The schema's bound on ``changes`` per chunk."""
MAX_CHUNK_BYTES = 1 << 20
"""Canonical bytes of changes per chunk, well under the broker's 4 MiB packet limit."""
MAX_SAFE_INTEGER = 2**53 - 1

KINDS = ("person", "document")
OPS = ("add", "update", "remove")
ACTIONS = ("refer", "deny", "alert")
STATUSES = ("stolen", "lost", "revoked", "invalid")
SEXES = ("M", "F", "X")

ENTRY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
DOCUMENT_TYPE = re.compile(r"[A-Z][A-Z0-9]?")
PARTIAL_DATE = re.compile(r"[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SIGNATURE_B64 = re.compile(r"[A-Za-z0-9+/]{85}[AQgw]==")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NUMBER_FILLERS = re.compile(r"[\s<\-./]")


class WatchlistError(ContractError):
    """A watchlist entry, change or chunk is not acceptable.

    ``reason`` is a short machine word (``bad-entry``, ``bad-chunk``, ``untrusted-key``,
    ``bad-signature``, ``reordered``, ``truncated``, ``mixed``, ``digest-mismatch``, ...) for
    logs and counters; the message says what and where for a person.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


# ---------------------------------------------------------------------------------------------
# Canonical encoding and digests


def canonical(value: Any) -> bytes:
    """The canonical encoding of *value* (see the module documentation)."""
    if not _encodable(value):
        _check_canonical(value, "")  # says where and why
    return _dumps(value)


def _dumps(value: Any) -> bytes:
    try:
        text = json.dumps(
            value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        )
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise WatchlistError("not-canonical", "a string holds a lone surrogate") from None
    except ValueError:  # allow_nan=False: a chunk built in Python, not read by parse_json
        raise WatchlistError("not-canonical", "a number that is not finite") from None
    except RecursionError:
        raise WatchlistError("not-canonical", "nested too deeply") from None


def _encodable(value: Any) -> bool:
    """Fast check that *value* holds only what the canonical encoding allows."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if kind is dict:
        return all(type(k) is str and _encodable(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_encodable(item) for item in value)
    return False


def _check_canonical(value: Any, path: str) -> None:
    # The slow twin of _encodable, to name the offending value. json.dumps alone would write
    # floats and turn integer keys into strings.
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return
        raise WatchlistError("not-canonical", f"{path or '/'}: integer beyond 2**53 - 1")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise WatchlistError("not-canonical", f"{path or '/'}: non-string key {key!r}")
            _check_canonical(item, f"{path}/{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_canonical(item, f"{path}/{index}")
        return
    raise WatchlistError(
        "not-canonical", f"{path or '/'}: {type(value).__name__} has no canonical encoding"
    )


def changes_sha256(changes: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 (hex) of *changes* as canonical JSON Lines: what ``changes_sha256`` holds."""
    digest = hashlib.sha256()
    for change in changes:
        digest.update(canonical(change))
        digest.update(b"\n")
    return digest.hexdigest()


def signing_bytes(chunk: Mapping[str, Any]) -> bytes:
    """The bytes a chunk's signature covers: the chunk minus signature and publication fields."""
    return canonical({k: v for k, v in chunk.items() if k not in UNSIGNED_FIELDS})


# ---------------------------------------------------------------------------------------------
# Entries and changes (mirror the person_entry / document_entry definitions of the schema)


def _fail(path: str, problem: str) -> WatchlistError:
    if not path.isprintable():  # a key with a line break must not start a line of its own
        path = path.encode("unicode_escape").decode("ascii")
    return WatchlistError("bad-entry", f"{path}: {problem}")


def _check_name_pattern(value: Any, pattern: re.Pattern[str], path: str, what: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _fail(path, f"{what} expected, got {value!r}")


def _check_person_name(value: Any, path: str, required: bool) -> None:
    if not isinstance(value, str):
        raise _fail(path, f"a string expected, got {type(value).__name__}")
    if required and not value:
        raise _fail(path, "must not be empty")
    if len(value) > 200:
        raise _fail(path, "longer than 200 characters")
    if _CONTROL.search(value):
        raise _fail(path, "holds a control character")


def check_entry(kind: str, entry: Any, path: str = "entry") -> None:
    """Raise :class:`WatchlistError` (``bad-entry``) unless *entry* is a valid *kind* entry.

    The checks are those of the schema's ``person_entry`` and ``document_entry``, in Python so
    that importing 10 million entries does not pay for a JSON Schema validator per entry.
    """
    if not isinstance(entry, dict):
        raise _fail(path, "an object expected")
    if kind == "person":
        allowed = {"names", "birth_date", "nationality", "sex", "list", "category", "action"}
        required = ("names", "list", "category", "action")
    elif kind == "document":
        allowed = {"number", "issuing_state", "document_type", "status", "list", "action"}
        required = ("number", "issuing_state", "status", "list", "action")
    else:
        raise _fail(path, f"unknown kind {kind!r} (person or document)")
    for field in required:
        if field not in entry:
            raise _fail(f"{path}/{field}", "required field is missing")
    for field in entry:
        if field not in allowed:
            raise _fail(f"{path}/{field}", f"unexpected field for a {kind} entry")
    _check_name_pattern(entry["list"], NAME, f"{path}/list", "a list name (e.g. national-wanted)")
    if entry["action"] not in ACTIONS:
        raise _fail(f"{path}/action", f"one of {', '.join(ACTIONS)} expected")
    if kind == "person":
        names = entry["names"]
        if not isinstance(names, list) or not 1 <= len(names) <= 32:
            raise _fail(f"{path}/names", "a list of 1 to 32 names expected")
        for index, name in enumerate(names):
            where = f"{path}/names/{index}"
            if not isinstance(name, dict) or "surname" not in name:
                raise _fail(where, "an object with a surname expected")
            for field in name:
                if field not in ("surname", "given_names"):
                    raise _fail(f"{where}/{field}", "unexpected field (surname, given_names)")
            _check_person_name(name["surname"], f"{where}/surname", required=True)
            if "given_names" in name:
                _check_person_name(name["given_names"], f"{where}/given_names", required=False)
        if "birth_date" in entry:
            birth = entry["birth_date"]
            if not isinstance(birth, str) or not PARTIAL_DATE.fullmatch(birth):
                raise _fail(f"{path}/birth_date", f"YYYY, YYYY-MM or YYYY-MM-DD, got {birth!r}")
        if "nationality" in entry:
            nationality = entry["nationality"]
            if not isinstance(nationality, list) or len(nationality) > 10:
                raise _fail(f"{path}/nationality", "a list of at most 10 state codes expected")
            for index, code in enumerate(nationality):
                _check_name_pattern(code, COUNTRY, f"{path}/nationality/{index}", "a state code")
            if len(set(nationality)) != len(nationality):
                raise _fail(f"{path}/nationality", "a state is listed twice")
        if "sex" in entry and entry["sex"] not in SEXES:
            raise _fail(f"{path}/sex", "M, F or X expected")
        _check_name_pattern(entry["category"], NAME, f"{path}/category", "a category name")
    else:
        _check_name_pattern(entry["number"], DOCUMENT_NUMBER, f"{path}/number", "A-Z and 0-9")
        _check_name_pattern(entry["issuing_state"], COUNTRY, f"{path}/issuing_state", "a state")
        if "document_type" in entry:
            _check_name_pattern(
                entry["document_type"], DOCUMENT_TYPE, f"{path}/document_type", "a document code"
            )
        if entry["status"] not in STATUSES:
            raise _fail(f"{path}/status", f"one of {', '.join(STATUSES)} expected")


def check_change(change: Any, path: str = "change") -> None:
    """Raise :class:`WatchlistError` unless *change* is a valid ``changes`` item."""
    if not isinstance(change, dict):
        raise _fail(path, "an object expected")
    for field in change:
        if field not in ("op", "kind", "entry_id", "entry"):
            raise _fail(f"{path}/{field}", "unexpected field (op, kind, entry_id, entry)")
    op, kind = change.get("op"), change.get("kind")
    if op not in OPS:
        raise _fail(f"{path}/op", "add, update or remove expected")
    if kind not in KINDS:
        raise _fail(f"{path}/kind", "person or document expected")
    _check_name_pattern(change.get("entry_id"), ENTRY_ID, f"{path}/entry_id", "an entry id")
    if op == "remove":
        if "entry" in change:
            raise _fail(f"{path}/entry", "a remove carries the id only")
    elif "entry" not in change:
        raise _fail(f"{path}/entry", "required for add and update")
    else:
        check_entry(kind, change["entry"], f"{path}/entry")


def change_key(change: Mapping[str, Any]) -> tuple[str, str]:
    """``(kind, entry_id)``: what a change is about; at most one change per key in a delta."""
    return change["kind"], change["entry_id"]


# ---------------------------------------------------------------------------------------------
# List files (JSON Lines or CSV) and changes files: what the console publishes and signs
# and the kiosk imports, read one way on both sides


def _clean_document_number(value: Any) -> Any:
    if isinstance(value, str) and not DOCUMENT_NUMBER.fullmatch(value):
        return _NUMBER_FILLERS.sub("", value).upper()
    return value


def _name_from_record(value: Any, path: str) -> Any:
    """A name as the list file gives it: ``{"surname", "given_names"}`` or a string.

    A string is ``"SURNAME, GIVEN NAMES"`` (or MRZ-style ``"SURNAME<<GIVEN<NAMES"``); without
    either separator, the whole string is taken as the surname (the matcher is order-agnostic).
    """
    if isinstance(value, str):
        if "<<" in value:
            surname, _, given = value.partition("<<")
            surname, given = surname.replace("<", " "), given.replace("<", " ")
        else:
            surname, _, given = value.partition(",")
        surname, given = " ".join(surname.split()), " ".join(given.split())
        return {"surname": surname, "given_names": given} if given else {"surname": surname}
    if isinstance(value, dict):
        name = dict(value)
        if name.get("given_names") in (None, ""):
            name.pop("given_names", None)
        for field in ("surname", "given_names"):
            if isinstance(name.get(field), str):
                name[field] = " ".join(name[field].split())
        return name
    raise _fail(path, "a name is an object {surname, given_names} or a string 'SURNAME, GIVEN'")


def entry_from_record(record: Any) -> tuple[str, str, dict[str, Any]]:
    """``(kind, entry_id, entry)`` from one line of a list file, or :class:`WatchlistError`.

    A line is ``{"id", "kind": "person", "names": [...], "birth_date", "nationality", "sex",
    "list", "category", "action"}`` or ``{"id", "kind": "document", "number",
    "issuing_state", "document_type", "status", "list", "action"}``. Absent or null optional
    fields are left out; ``nationality`` may be one code or a list; ``category`` defaults to
    ``unspecified`` and ``action`` to ``refer``; document numbers lose spaces, dashes and
    ``<`` and are upper-cased, state codes are upper-cased.
    """
    if not isinstance(record, dict):
        raise _fail("line", "a JSON object expected")
    kind = record.get("kind")
    if kind not in KINDS:
        raise _fail("kind", "person or document expected")
    entry_id = record.get("id")
    _check_name_pattern(entry_id, ENTRY_ID, "id", "an entry id ([A-Za-z0-9._:-], up to 128)")
    fields = {k: v for k, v in record.items() if k not in ("id", "kind") and v not in (None, "")}
    fields.setdefault("action", "refer")
    if kind == "person":
        fields.setdefault("category", "unspecified")
        names = fields.get("names")
        if isinstance(names, str):
            names = [names]
        if isinstance(names, list):
            fields["names"] = [_name_from_record(n, f"names/{i}") for i, n in enumerate(names)]
        nationality = fields.get("nationality")
        if isinstance(nationality, str):
            nationality = [nationality]
        if isinstance(nationality, list):
            fields["nationality"] = [c.upper() if isinstance(c, str) else c for c in nationality]
            if not fields["nationality"]:
                del fields["nationality"]
        if isinstance(fields.get("sex"), str):
            fields["sex"] = fields["sex"].upper()
    else:
        fields["number"] = _clean_document_number(fields.get("number"))
        for field in ("issuing_state", "document_type"):
            if isinstance(fields.get(field), str):
                fields[field] = fields[field].strip().upper()
    check_entry(kind, fields, path="line")
    return kind, entry_id, fields


def record_from_entry(kind: str, entry_id: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The list-file line of an entry (inverse of :func:`entry_from_record`)."""
    return {"id": entry_id, "kind": kind, **entry}


LIST_CSV_COLUMNS = (
    "id",
    "kind",
    "surname",
    "given_names",
    "aliases",
    "birth_date",
    "nationality",
    "sex",
    "list",
    "category",
    "action",
    "number",
    "issuing_state",
    "document_type",
    "status",
)
"""The columns a CSV list file may have (a header row names them, in any order).

``aliases`` holds more names as ``SURNAME, GIVEN NAMES`` separated by ``|``; ``nationality``
holds state codes separated by spaces or ``;``. A CSV row becomes the record a JSON Lines
line would be, so both formats go through :func:`entry_from_record` alike.
"""


def list_file_format(name: str | PurePath, head: bytes = b"") -> str:
    """The format of a list file from its name and first bytes: ``csv`` (``*.csv``),
    ``un-xml`` (the UN consolidated list), ``ftm`` (FollowTheMoney entities) or ``jsonl``
    (see :func:`mqtt_schemas.list_formats.sniff_format`)."""
    from .list_formats import sniff_format  # here: list_formats imports this module

    return sniff_format(head, str(name))


def _csv_record(row: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {k: v for k, v in row.items() if k in LIST_CSV_COLUMNS and v != ""}
    if record.get("kind") == "person":
        names = [
            {"surname": record.pop("surname", ""), "given_names": record.pop("given_names", "")}
        ]
        for alias in (record.pop("aliases", "") or "").split("|"):
            if alias.strip():
                names.append(alias.strip())
        record["names"] = names
        if "nationality" in record:
            record["nationality"] = record["nationality"].replace(";", " ").split()
    else:
        for name in ("surname", "given_names", "aliases"):
            record.pop(name, None)
    return record


def read_list_records(stream: IO[bytes], fmt: str) -> Iterator[tuple[int, Any]]:
    """``(line number, record or exception)`` for each entry line of a JSONL or CSV list.

    A line that is not a record (not JSON, not UTF-8, a CSV header with unknown columns) comes
    as a :class:`ValueError` in place of the record, so an importer can report it and go on;
    the record itself is not checked yet (that is :func:`entry_from_record`'s job).
    """
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline="")
    if fmt == "csv":
        reader = csv.DictReader(text, restval="")  # a short row: absent columns are empty
        try:
            unknown = [c for c in reader.fieldnames or () if c not in LIST_CSV_COLUMNS]
            if unknown:
                # a quoted header may hold a line break: shown escaped, on one line
                shown = ", ".join(c.encode("unicode_escape").decode("ascii") for c in unknown)
                yield 1, ValueError(f"unknown CSV columns: {shown}")
                return
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # a field beyond the csv module's limit, say
                    yield reader.line_num + 1, ValueError(f"not CSV ({exc})")
                    continue
                yield reader.line_num, _csv_record(row)
        except UnicodeDecodeError as exc:
            yield reader.line_num + 1, ValueError(f"not UTF-8 ({exc.reason})")
        return
    number = 0
    while True:
        try:
            line = text.readline()
        except UnicodeDecodeError as exc:
            yield number + 1, ValueError(f"not UTF-8 ({exc.reason})")
            return
        if not line:
            return
        number += 1
        if not line.strip():
            continue
        try:
            yield number, parse_json(line)
        except ValueError as exc:
            yield number, ValueError(f"not JSON ({exc})")


def list_entries(
    stream: IO[bytes], source: str, fmt: str | None = None
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(kind, entry_id, entry)`` of every record of a list file, strictly.

    For making a delta or a snapshot, which must be exact: the first bad record raises
    :class:`WatchlistError` (``bad-line``) naming ``SOURCE:LINE`` (or the XML element).
    *source* is the file's name; *fmt* (``jsonl``, ``csv``, ``un-xml``, ``ftm``) is found
    from the name and the first bytes when not given. Records that are not persons or
    documents by design (organisations) are left out, as the importer leaves them out.
    """
    from .list_formats import open_list, read_list  # here: it imports this module

    fmt, stream = open_list(stream, source, fmt)
    for event in read_list(stream, source, fmt):
        if event.error is not None:
            raise WatchlistError("bad-line", str(event.error))
        if event.entry is not None:
            yield event.entry


def read_changes(stream: IO[bytes], source: str) -> list[dict[str, Any]]:
    """The changes of a changes file (JSON Lines, one change a line, as :func:`diff` makes).

    Every change is checked; the first bad line raises :class:`WatchlistError` (``bad-line``)
    naming ``SOURCE:LINE``.
    """
    changes = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            change = parse_json(line)
        except ValueError as exc:
            raise WatchlistError(
                "bad-line", f"{source}:{number}: not a JSON change ({exc})"
            ) from None
        try:
            check_change(change, f"line {number}")
        except WatchlistError as exc:
            raise WatchlistError("bad-line", f"{source}:{number}: {exc}") from None
        changes.append(change)
    return changes


# ---------------------------------------------------------------------------------------------
# Deltas: diff, chunks, signatures


def diff(
    old: Iterable[tuple[str, str, Mapping[str, Any]]],
    new: Iterable[tuple[str, str, Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """The changes that turn the entry set *old* into *new*.

    Both are iterables of ``(kind, entry_id, entry)``; each key at most once per side. Adds and
    updates come in *new*'s order, then removes sorted by ``(kind, entry_id)``. Memory holds a
    16-byte digest per old entry, not the entries.
    """
    before: dict[tuple[str, str], bytes] = {}
    for kind, entry_id, entry in old:
        before[(kind, entry_id)] = hashlib.blake2b(canonical(entry), digest_size=16).digest()
    changes: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for kind, entry_id, entry in new:
        key = (kind, entry_id)
        if key in seen:
            raise WatchlistError("duplicate", f"{kind} {entry_id} is listed twice")
        seen.add(key)
        digest = before.get(key)
        if digest is None:
            changes.append({"op": "add", "kind": kind, "entry_id": entry_id, "entry": entry})
        elif digest != hashlib.blake2b(canonical(entry), digest_size=16).digest():
            changes.append({"op": "update", "kind": kind, "entry_id": entry_id, "entry": entry})
    for kind, entry_id in sorted(before.keys() - seen):
        changes.append({"op": "remove", "kind": kind, "entry_id": entry_id})
    return changes


def snapshot_changes(
    entries: Iterable[tuple[str, str, Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """The changes of a snapshot: every entry as an ``add``, sorted by ``(kind, entry_id)``."""
    return [
        {"op": "add", "kind": kind, "entry_id": entry_id, "entry": entry}
        for kind, entry_id, entry in sorted(entries, key=lambda item: (item[0], item[1]))
    ]


def make_chunks(
    kind: str,
    changes: Sequence[Mapping[str, Any]],
    *,
    to_version: int,
    key_id: str,
    from_version: int | None = None,
    max_changes: int = MAX_CHUNK_CHANGES,
    max_bytes: int = MAX_CHUNK_BYTES,
) -> list[dict[str, Any]]:
    """The unsigned chunks of a delta (``from_version`` required) or a snapshot.

    Chunks hold at most *max_changes* changes and *max_bytes* canonical bytes of changes (a
    single larger change gets a chunk of its own). Every change is checked first.
    """
    if kind not in ("delta", "snapshot"):
        raise WatchlistError("bad-chunk", f"kind is delta or snapshot, not {kind!r}")
    if not isinstance(key_id, str) or not KEY_ID.fullmatch(key_id):
        raise WatchlistError("bad-chunk", f"key id {key_id!r} is not [A-Za-z0-9._-], up to 64")
    if kind == "delta":
        if not isinstance(from_version, int) or from_version < 0:
            raise WatchlistError("bad-chunk", "a delta needs from_version >= 0")
        if to_version != from_version + 1:
            raise WatchlistError("bad-chunk", "a delta leads to the next version only")
    elif from_version is not None:
        raise WatchlistError("bad-chunk", "a snapshot has no from_version")
    if not isinstance(to_version, int) or to_version < 0:
        raise WatchlistError("bad-chunk", "to_version must be an integer >= 0")
    max_changes = min(max_changes, MAX_CHUNK_CHANGES)
    keys: set[tuple[str, str]] = set()
    digest = hashlib.sha256()
    groups: list[list[Mapping[str, Any]]] = [[]]
    size = 0
    for index, change in enumerate(changes):
        check_change(change, f"changes/{index}")
        if kind == "snapshot" and change["op"] != "add":
            raise WatchlistError("bad-chunk", f"changes/{index}: a snapshot holds adds only")
        key = change_key(change)
        if key in keys:
            raise WatchlistError("duplicate", f"changes/{index}: {key[0]} {key[1]} changes twice")
        keys.add(key)
        line = _dumps(change) + b"\n"  # check_change vouched for its types
        digest.update(line)
        if groups[-1] and (len(groups[-1]) >= max_changes or size + len(line) > max_bytes):
            groups.append([])
            size = 0
        groups[-1].append(change)
        size += len(line)
    header: dict[str, Any] = {"schema": CHUNK_SCHEMA, "kind": kind}
    if kind == "delta":
        header["from_version"] = from_version
    header |= {
        "to_version": to_version,
        "chunk_count": len(groups),
        "key_id": key_id,
        "changes_sha256": digest.hexdigest(),
    }
    return [
        {**header, "chunk_index": index, "changes": list(group)}
        for index, group in enumerate(groups)
    ]


def sign_chunks(
    chunks: Iterable[Mapping[str, Any]], private_key: Ed25519PrivateKey
) -> list[dict[str, Any]]:
    """The chunks with their ``signature`` (each chunk's ``key_id`` must name *private_key*)."""
    signed = []
    for chunk in chunks:
        body = {k: v for k, v in chunk.items() if k not in UNSIGNED_FIELDS}
        signature = private_key.sign(canonical(body))
        signed.append({**chunk, "signature": base64.b64encode(signature).decode("ascii")})
    return signed


def sign_file(
    stream: IO[bytes],
    source: str,
    key_pem: bytes,
    key_id: str,
    *,
    from_version: int | None = None,
    snapshot_version: int | None = None,
    max_changes: int = MAX_CHUNK_CHANGES,
) -> tuple[list[dict[str, Any]], int]:
    """``(signed chunks, number of changes)`` of a file: what ``watchlist sign`` makes.

    With *from_version* N the file is a changes file (:func:`read_changes`) and the chunks make
    the delta N -> N+1; with *snapshot_version* V it is a list file (:func:`list_entries`) and
    the chunks make the snapshot of version V. Exactly one of the two is given. *key_pem* is
    the Ed25519 private key (:func:`load_private_key`); *key_id* the name kiosks trust it under.
    """
    if (from_version is None) == (snapshot_version is None):
        raise ValueError("give either from_version or snapshot_version")
    key = load_private_key(key_pem)
    if snapshot_version is not None:
        changes = snapshot_changes(list_entries(stream, source))
        chunks = make_chunks(
            "snapshot", changes, to_version=snapshot_version, key_id=key_id, max_changes=max_changes
        )
    else:
        assert from_version is not None
        changes = read_changes(stream, source)
        chunks = make_chunks(
            "delta",
            changes,
            from_version=from_version,
            to_version=from_version + 1,
            key_id=key_id,
            max_changes=max_changes,
        )
    return sign_chunks(chunks, key), len(changes)


def _chunk_header(chunk: Any) -> None:
    """Structural checks of a chunk's own fields (not its changes)."""

    def bad(message: str) -> WatchlistError:
        return WatchlistError("bad-chunk", message)

    if not isinstance(chunk, dict):
        raise bad("a chunk is a JSON object")
    if chunk.get("schema") != CHUNK_SCHEMA:
        raise bad(f"schema is {CHUNK_SCHEMA!r}, not {chunk.get('schema')!r}")
    kind = chunk.get("kind")
    if kind not in ("delta", "snapshot"):
        raise bad("kind is delta or snapshot")
    for field in ("to_version", "chunk_index", "chunk_count"):
        value = chunk.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise bad(f"{field} must be an integer >= 0")
    if kind == "delta":
        from_version = chunk.get("from_version")
        if not isinstance(from_version, int) or isinstance(from_version, bool) or from_version < 0:
            raise bad("a delta needs from_version, an integer >= 0")
        if chunk["to_version"] != from_version + 1:
            raise bad("a delta must lead from one version to the next")
    elif "from_version" in chunk:
        raise bad("a snapshot has no from_version")
    if not 1 <= chunk["chunk_count"] <= 100000 or chunk["chunk_index"] >= chunk["chunk_count"]:
        raise bad("chunk_index must be below chunk_count (1 to 100000)")
    if not isinstance(chunk.get("key_id"), str) or not KEY_ID.fullmatch(chunk["key_id"]):
        raise bad("key_id is missing or malformed")
    digest = chunk.get("changes_sha256")
    if not isinstance(digest, str) or not SHA256_HEX.fullmatch(digest):
        raise bad("changes_sha256 (digest of the whole delta) is missing or malformed")
    if not isinstance(chunk.get("changes"), list) or len(chunk["changes"]) > MAX_CHUNK_CHANGES:
        raise bad(f"changes must be a list of at most {MAX_CHUNK_CHANGES}")
    signature = chunk.get("signature")
    if not isinstance(signature, str) or not SIGNATURE_B64.fullmatch(signature):
        raise WatchlistError("bad-signature", "signature is missing or not 64 bytes of base64")


def verify_chunk(chunk: Any, trusted: Mapping[str, Ed25519PublicKey]) -> dict[str, Any]:
    """Return *chunk* if its signature verifies under a trusted key, else raise.

    Reasons: ``bad-chunk`` (malformed), ``untrusted-key`` (``key_id`` not in *trusted*),
    ``bad-signature`` (forged or altered). The changes themselves are checked by
    :func:`assemble`, after every signature is known to be good.
    """
    _verify(chunk, trusted)
    return chunk


def _verify(chunk: Any, trusted: Mapping[str, Ed25519PublicKey]) -> list[bytes]:
    """Verify *chunk*; return the canonical encoding of each of its changes."""
    _chunk_header(chunk)
    key = trusted.get(chunk["key_id"])
    where = f"chunk {chunk['chunk_index'] + 1} of {chunk['chunk_count']}"
    if key is None:
        raise WatchlistError(
            "untrusted-key", f"{where}: signed by key {chunk['key_id']!r}, which is not trusted"
        )
    # Keys from a trust update (mqtt_schemas.trust.KeyTrust) sign only their versions.
    why_not = getattr(trusted, "why_not", None)
    if why_not is not None:
        refused = why_not(chunk["key_id"], chunk["to_version"])
        if refused is not None:
            raise WatchlistError("untrusted-key", f"{where}: {refused}")
    # The signed bytes, built around the changes' own encodings (which the digest needs too):
    # "changes" sorts first among the signed keys, so canonical(body) is exactly this.
    lines = [_dumps(change) for change in chunk["changes"]]
    rest = {k: v for k, v in chunk.items() if k not in UNSIGNED_FIELDS and k != "changes"}
    signed = b'{"changes":[' + b",".join(lines) + b"]," + canonical(rest)[1:]
    try:
        signature = base64.b64decode(chunk["signature"], validate=True)
        key.verify(signature, signed)
    except (InvalidSignature, binascii.Error):
        raise WatchlistError(
            "bad-signature",
            f"{where}: the signature does not verify under key {chunk['key_id']!r} "
            "(forged or altered)",
        ) from None
    return lines


def verify_delta(chunks: Sequence[Any], trusted: Mapping[str, Ed25519PublicKey]) -> Delta:
    """Verify every chunk and :func:`assemble` them, encoding each change once for both."""
    if not chunks:
        raise WatchlistError("empty", "no chunks")
    encodings = [_verify(chunk, trusted) for chunk in chunks]
    return assemble(chunks, encodings)


class ChunkStream:
    """The chunks of one delta or snapshot verified one at a time, in order, as they stream.

    What :func:`verify_delta` checks of a whole delta, without ever holding it: each chunk's
    signature (:func:`verify_chunk`), that it belongs to the same delta as the first one
    (``mixed``), that it is the next one (``duplicate`` for one already taken, ``reordered``
    for one ahead), its changes (``bad-entry``; a snapshot holds adds only), and at the end
    (:meth:`finish`) that all ``chunk_count`` were taken (``truncated``) and that the changes
    hash to the ``changes_sha256`` every chunk signs (``digest-mismatch``). Memory is one
    chunk and a running SHA-256, whatever the size of the delta::

        stream = ChunkStream(trusted)
        for chunk in chunks:                  # as they arrive, in chunk_index order
            for change in stream.take(chunk):
                apply(change)                 # in one transaction, rolled back on any error
        stream.finish()                       # raises unless the whole digest matches

    A change may only be used once :meth:`take` has returned (the chunk's signature is checked
    before its changes are looked at); nothing is final before :meth:`finish`.
    """

    IDENTITY = ("kind", "from_version", "to_version", "chunk_count", "changes_sha256")

    def __init__(self, trusted: Mapping[str, Ed25519PublicKey]) -> None:
        self.trusted = trusted
        self.identity: tuple[Any, ...] | None = None
        self.next_index = 0
        self.changes = 0
        self.key_ids: set[str] = set()
        self._digest = hashlib.sha256()

    @property
    def kind(self) -> str | None:
        return None if self.identity is None else self.identity[0]

    @property
    def chunk_count(self) -> int | None:
        return None if self.identity is None else self.identity[3]

    @property
    def done(self) -> bool:
        """Whether every chunk has been taken (then :meth:`finish` checks the digest)."""
        return self.identity is not None and self.next_index == self.identity[3]

    def belongs(self, chunk: Mapping[str, Any]) -> bool:
        """Whether *chunk* claims to be part of this delta (its signature not yet checked)."""
        return self.identity is None or self.identity == tuple(
            chunk.get(field) for field in self.IDENTITY
        )

    def take(self, chunk: Any) -> list[dict[str, Any]]:
        """Verify *chunk* as the next one; return its changes, checked, in order."""
        lines = _verify(chunk, self.trusted)
        count = chunk["chunk_count"]
        where = f"chunk {chunk['chunk_index'] + 1} of {count}"
        if self.identity is None:
            self.identity = tuple(chunk.get(field) for field in self.IDENTITY)
        elif not self.belongs(chunk):
            raise WatchlistError(
                "mixed",
                f"{where} belongs to another delta "
                "(kind, versions, chunk count or changes digest differ)",
            )
        index = chunk["chunk_index"]
        if index < self.next_index:
            raise WatchlistError("duplicate", f"{where} was already taken")
        if index > self.next_index:
            raise WatchlistError(
                "reordered",
                f"{where} came where chunk {self.next_index + 1} belongs: "
                "chunks are applied in their signed order",
            )
        snapshot = chunk["kind"] == "snapshot"
        changes = chunk["changes"]
        for position, change in enumerate(changes):
            place = f"chunk {index + 1}, change {self.changes + position + 1}"
            check_change(change, place)
            if snapshot and change["op"] != "add":
                raise WatchlistError("bad-chunk", f"{place}: a snapshot holds adds only")
        for line in lines:
            self._digest.update(line)
            self._digest.update(b"\n")
        self.changes += len(changes)
        self.next_index += 1
        self.key_ids.add(chunk["key_id"])
        return changes

    def finish(self) -> str:
        """Check that the delta is whole and its digest right; return the digest."""
        if self.identity is None:
            raise WatchlistError("empty", "no chunks")
        count, expected = self.identity[3], self.identity[4]
        if self.next_index != count:
            raise WatchlistError(
                "truncated", f"{self.next_index} of {count} chunks: the rest are missing"
            )
        if self._digest.hexdigest() != expected:
            raise WatchlistError(
                "digest-mismatch",
                "the changes do not hash to the changes_sha256 every chunk signs",
            )
        return expected


@dataclass(frozen=True)
class Delta:
    """A complete, verified delta or snapshot, ready to apply."""

    kind: str
    from_version: int | None
    to_version: int
    changes: list[dict[str, Any]]
    changes_sha256: str
    key_ids: frozenset[str]

    def describe(self) -> str:
        if self.kind == "snapshot":
            return f"snapshot of version {self.to_version}"
        return f"delta {self.from_version} -> {self.to_version}"


def assemble(
    chunks: Sequence[Mapping[str, Any]], encodings: Sequence[list[bytes]] | None = None
) -> Delta:
    """One :class:`Delta` from its chunks, given in ``chunk_index`` order, all verified
    (*encodings*: each chunk's changes already encoded, as :func:`verify_delta` has them).

    Raises :class:`WatchlistError` with reason ``empty``, ``mixed`` (chunks of different
    deltas), ``reordered`` (a chunk out of its place; the signed index says where it belongs),
    ``duplicate``, ``truncated`` (chunks missing), ``digest-mismatch`` (the changes are not the
    ones every chunk commits to) or ``bad-entry`` (a change that is not valid). A receiver that
    gets chunks out of order (QoS 1 redelivery) stages them by their signed ``chunk_index``.
    """
    if not chunks:
        raise WatchlistError("empty", "no chunks")
    first = chunks[0]
    identity = ("kind", "from_version", "to_version", "chunk_count", "changes_sha256")
    expected = tuple(first.get(field) for field in identity)
    for position, chunk in enumerate(chunks):
        if tuple(chunk.get(field) for field in identity) != expected:
            raise WatchlistError(
                "mixed",
                f"the chunk at position {position + 1} belongs to another delta "
                "(kind, versions, chunk count or changes digest differ)",
            )
    count = first["chunk_count"]
    indices = [chunk["chunk_index"] for chunk in chunks]
    repeated = sorted(i for i, n in Counter(indices).items() if n > 1)
    if repeated:
        raise WatchlistError("duplicate", f"chunk {repeated[0] + 1} of {count} appears twice")
    missing = sorted(set(range(count)) - set(indices))
    if missing:
        shown = ", ".join(str(i + 1) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise WatchlistError("truncated", f"{len(chunks)} of {count} chunks: chunk {shown} missing")
    for position, index in enumerate(indices):
        if index != position:
            raise WatchlistError(
                "reordered",
                f"chunk {index + 1} of {count} is at position {position + 1}: "
                "chunks are applied in their signed order",
            )
    changes: list[dict[str, Any]] = []
    digest = hashlib.sha256()
    keys: set[tuple[str, str]] = set()
    snapshot = first["kind"] == "snapshot"
    for number, chunk in enumerate(chunks):
        lines = encodings[number] if encodings is not None else None
        for position, change in enumerate(chunk["changes"]):
            where = f"chunk {chunk['chunk_index'] + 1}, change {len(changes) + 1}"
            check_change(change, where)
            if snapshot and change["op"] != "add":
                raise WatchlistError("bad-chunk", f"{where}: a snapshot holds adds only")
            key = change_key(change)
            if key in keys:
                raise WatchlistError("duplicate", f"{where}: {key[0]} {key[1]} changes twice")
            keys.add(key)
            # check_change vouched for its types
            digest.update(lines[position] if lines is not None else _dumps(change))
            digest.update(b"\n")
            changes.append(change)
    if digest.hexdigest() != first["changes_sha256"]:
        raise WatchlistError(
            "digest-mismatch", "the changes do not hash to the changes_sha256 every chunk signs"
        )
    return Delta(
        kind=first["kind"],
        from_version=first.get("from_version"),
        to_version=first["to_version"],
        changes=changes,
        changes_sha256=first["changes_sha256"],
        key_ids=frozenset(chunk["key_id"] for chunk in chunks),
    )


# ---------------------------------------------------------------------------------------------
# Keys


def generate_key() -> Ed25519PrivateKey:
    """A new Ed25519 watchlist-signing key (never a TLS key)."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: keep the file mode 0600 (the console's signing host only)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of the key (what kiosks are given to trust)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM, or :class:`WatchlistError` (``bad-key``)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise WatchlistError("bad-key", f"not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise WatchlistError("bad-key", "the private key is not an Ed25519 key")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (a private key PEM gives its public half)."""
    if b"PRIVATE KEY" in pem:
        return load_private_key(pem).public_key()
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise WatchlistError("bad-key", f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise WatchlistError("bad-key", "the public key is not an Ed25519 key")
    return key


def key_fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw 32-byte public key: a default key id part."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def write_key_pair(directory: Path, key_id: str | None = None) -> tuple[str, str]:
    """Make a signing key; write ``KEY_ID.key.pem`` and ``KEY_ID.pub.pem`` in *directory*.

    Returns ``(key_id, fingerprint)``; *key_id* defaults to ``wl-`` and the first 12 digits of
    the fingerprint. The private key file is created with mode 0600 from the start (never
    readable by others, not even for a moment) and never over an existing one: a key id names
    one key for good, since kiosks trust the public key under it. A bad key id or a key
    already there raises :class:`WatchlistError` (``bad-key``); the file system's errors
    (:class:`OSError`) pass through.
    """
    key = generate_key()
    key_id = key_id or f"wl-{key_fingerprint(key)[:12]}"
    if not KEY_ID.fullmatch(key_id):
        raise WatchlistError(
            "bad-key", f"key id {key_id!r}: letters, digits, '.', '_' and '-' only (up to 64)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{key_id}.key.pem", directory / f"{key_id}.pub.pem"
    if private.exists() or public.exists():
        raise WatchlistError("bad-key", f"{private}: a key with this id is already there")
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made between the check and now
        raise WatchlistError("bad-key", f"{private}: a key with this id is already there") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_pem(key))
    public.write_bytes(public_key_pem(key))
    return key_id, key_fingerprint(key)
