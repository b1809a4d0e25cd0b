"""The officers who may use the officer review screen: a small JSON file of scrypt PIN hashes.

Why a file on the kiosk and not a call to the console: the officer screen must work with no
network, like the rest of the lane. Why scrypt: a PIN has few digits, so a stolen file must be
slow to brute-force (scrypt is memory-hard, in the standard library, and cheap enough for one
login on a Raspberry Pi).

The file (``officers.json``)::

    {"officers": {"BDF-2231": {"kdf": "scrypt", "n": 16384, "r": 8, "p": 1,
                               "salt": "<base64>", "hash": "<base64>"}}}

Make entries with :func:`add_officer` (or ``borderlane-edge ui officer-add``); check a PIN with
:meth:`OfficerDirectory.verify`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "OFFICER_ID_PATTERN",
    "OfficerDirectory",
    "OfficerDirectoryError",
    "add_officer",
    "make_entry",
]

#: The contract's officer id (mqtt-schemas defs ``officer_id``): a badge or staff number.
OFFICER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
#: PINs: 4 to 12 digits (what an officer can type on a kiosk's touch keypad).
PIN_PATTERN = re.compile(r"[0-9]{4,12}")

_N, _R, _P, _LENGTH = 2**14, 8, 1, 32
_MAX_N = 2**20  # refuse entries that would take the kiosk's memory (n * r * 128 bytes)


class OfficerDirectoryError(ValueError):
    """The directory file, an officer id or a PIN is not acceptable; the message says why."""


def _hash(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        pin.encode(), salt=salt, n=n, r=r, p=p, dklen=_LENGTH, maxmem=256 * r * n + 2**20
    )


def check_officer_id(officer_id: str) -> str:
    if not OFFICER_ID_PATTERN.fullmatch(officer_id):
        raise OfficerDirectoryError(
            "an officer id is 1 to 64 letters, digits or . _ @ - (a badge number, never a name)"
        )
    return officer_id


def make_entry(pin: str, *, n: int = _N, r: int = _R, p: int = _P) -> dict[str, Any]:
    """One officer's entry for the directory file: a fresh salt and the PIN's scrypt hash."""
    if not PIN_PATTERN.fullmatch(pin):
        raise OfficerDirectoryError("a PIN is 4 to 12 digits")
    salt = secrets.token_bytes(16)
    digest = _hash(pin, salt, n, r, p)
    return {
        "kdf": "scrypt",
        "n": n,
        "r": r,
        "p": p,
        "salt": base64.b64encode(salt).decode(),
        "hash": base64.b64encode(digest).decode(),
    }


@dataclass(frozen=True)
class _Entry:
    salt: bytes
    digest: bytes
    n: int
    r: int
    p: int


def _entry(officer_id: str, raw: Any) -> _Entry:
    where = f"officer {officer_id!r}"
    if not isinstance(raw, Mapping) or raw.get("kdf") != "scrypt":
        raise OfficerDirectoryError(f"{where}: an entry needs kdf 'scrypt'")
    try:
        n, r, p = int(raw["n"]), int(raw["r"]), int(raw["p"])
        salt = base64.b64decode(raw["salt"], validate=True)
        digest = base64.b64decode(raw["hash"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise OfficerDirectoryError(f"{where}: n, r, p, salt and hash are needed ({exc})") from None
    if n < 2 or n > _MAX_N or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise OfficerDirectoryError(f"{where}: scrypt parameters out of range")
    if len(salt) < 8 or len(digest) != _LENGTH:
        raise OfficerDirectoryError(f"{where}: salt or hash has the wrong length")
    return _Entry(salt, digest, n, r, p)


class OfficerDirectory:
    """Who may log in to the officer screen, and the check of their PIN."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]]) -> None:
        self._entries = {check_officer_id(oid): _entry(oid, raw) for oid, raw in entries.items()}
        # A PIN for an unknown officer is hashed too, so a wrong id takes as long as a wrong PIN.
        self._decoy = _entry("decoy", make_entry("0000"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OfficerDirectory:
        """Read an ``officers.json`` file; :class:`OfficerDirectoryError` names what is wrong."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OfficerDirectoryError(f"{path}: no such officer directory file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OfficerDirectoryError(f"{path}: not a readable JSON file ({exc})") from None
        if not isinstance(data, Mapping) or not isinstance(data.get("officers"), Mapping):
            raise OfficerDirectoryError(f'{path}: expected {{"officers": {{...}}}}')
        try:
            return cls(data["officers"])
        except OfficerDirectoryError as exc:
            raise OfficerDirectoryError(f"{path}: {exc}") from None

    def __contains__(self, officer_id: object) -> bool:
        return officer_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, officer_id: str, pin: str) -> bool:
        """True when ``pin`` is this officer's PIN. Slow on purpose (scrypt): call it off the
        event loop (``asyncio.to_thread``)."""
        entry = self._entries.get(officer_id, self._decoy)
        digest = _hash(pin, entry.salt, entry.n, entry.r, entry.p)
        return hmac.compare_digest(digest, entry.digest) and officer_id in self._entries


def add_officer(path: str | os.PathLike[str], officer_id: str, pin: str) -> bool:
    """Add an officer to the directory file (made when missing) or change their PIN.

    Returns True when the officer was new. The file is replaced atomically and readable by its
    owner only: it holds hashes, but a PIN's hash is still worth guarding.
    """
    path = Path(path)
    check_officer_id(officer_id)
    officers: dict[str, Any] = {}
    if path.exists():
        OfficerDirectory.load(path)  # refuse to rewrite a file we cannot read
        officers = dict(json.loads(path.read_text(encoding="utf-8"))["officers"])
    new = officer_id not in officers
    officers[officer_id] = make_entry(pin)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"officers": officers}, out, indent=2, sort_keys=True)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    return new
