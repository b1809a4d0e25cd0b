"""Which keys may sign which watchlist versions: trust updates signed by an offline anchor.

Without anchors a kiosk trusts every ``<key id>.pub.pem`` it holds for every version, forever.
With anchors (public keys installed with the kiosk, their private halves kept offline by the
ministry), the keys come from a **trust update** (``watchlist-trust@1``, retained on the fleet
trust topic or applied from a file) that gives each key the versions it may sign and a state:

``active``   signing now (``until_version`` null);
``retired``  no longer signing; the versions it signed stay valid (rotation);
``revoked``  compromised: nothing it signed is accepted, for any version.

An update is applied only when the anchor's signature verifies and its ``sequence`` is higher
than the held one, so an old update replayed cannot bring a revoked key back::

    update = sign_trust_update(keys, sequence=8, anchor=anchor_key, anchor_id="wl-anchor-2026")
    trust = verify_trust_update(update, anchors={"wl-anchor-2026": anchor_public})
    trust.allows("wl-sign-2026a", 1290)      # False: its versions end at 1288
    verify_chunk(chunk, trust)               # refuses a chunk outside its key's versions

:class:`KeyTrust` is a mapping from key id to public key (what :func:`verify_chunk` takes),
and :func:`mqtt_schemas.watchlist.verify_chunk` asks it :meth:`KeyTrust.allows` for the
chunk's version. Every problem is a :class:`TrustError`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import PayloadError
from .validation import validate
from .watchlist import canonical

__all__ = ["KeyTrust", "TrustError", "TrustedKey", "sign_trust_update", "verify_trust_update"]

SCHEMA = "watchlist-trust@1"
SIGNED_FIELDS = ("schema", "sequence", "anchor_id", "keys")


class TrustError(ValueError):
    """A trust update that cannot be applied, or a key a version may not use; one line."""


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_key: Ed25519PublicKey
    from_version: int
    until_version: int | None
    state: str
    reason: str | None = None

    def why_not(self, version: int) -> str | None:
        """Why this key may not sign *version* (None: it may)."""
        if self.state == "revoked":
            return f"key {self.key_id!r} is revoked" + (f" ({self.reason})" if self.reason else "")
        if version < self.from_version:
            return f"key {self.key_id!r} signs from version {self.from_version}"
        if self.until_version is not None and version > self.until_version:
            return f"key {self.key_id!r} signs up to version {self.until_version}"
        return None


class KeyTrust(Mapping[str, Ed25519PublicKey]):
    """The keys of one verified trust update, by key id (revoked ones included, refused by
    :meth:`allows`), and the update's ``sequence``."""

    def __init__(self, keys: Mapping[str, TrustedKey], sequence: int, document: dict) -> None:
        self.keys = dict(keys)
        self.sequence = sequence
        self.document = document
        """The update as received (to keep it, and to show it)."""

    def __getitem__(self, key_id: str) -> Ed25519PublicKey:
        return self.keys[key_id].public_key

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def allows(self, key_id: str, version: int) -> bool:
        key = self.keys.get(key_id)
        return key is not None and key.why_not(version) is None

    def why_not(self, key_id: str, version: int) -> str | None:
        key = self.keys.get(key_id)
        if key is None:
            return f"key {key_id!r} is not in trust update {self.sequence}"
        return key.why_not(version)


def _raw(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign_trust_update(
    keys: list[TrustedKey], *, sequence: int, anchor: Ed25519PrivateKey, anchor_id: str
) -> dict[str, Any]:
    """The body of a ``watchlist-trust@1`` update (without the publication's envelope fields,
    which the publisher adds), signed by the anchor's private key."""
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "sequence": sequence,
        "anchor_id": anchor_id,
        "keys": [
            {
                "key_id": key.key_id,
                "public_key": _raw(key.public_key),
                "from_version": key.from_version,
                "until_version": key.until_version,
                "state": key.state,
                **({"reason": key.reason} if key.reason else {}),
            }
            for key in keys
        ],
    }
    if len({k["key_id"] for k in body["keys"]}) != len(body["keys"]):
        raise TrustError("a key id appears twice in the update")
    body["signature"] = base64.b64encode(anchor.sign(canonical(body))).decode("ascii")
    return body


def verify_trust_update(
    update: Any, anchors: Mapping[str, Ed25519PublicKey], *, validate_envelope: bool = True
) -> KeyTrust:
    """The :class:`KeyTrust` of *update* if an anchor's signature verifies over it; else
    :class:`TrustError`. *validate_envelope*: the whole payload as received on the wire (a file
    holds the signed body only)."""
    try:
        if validate_envelope:
            validate("watchlist-trust", update)
        elif not isinstance(update, dict) or update.get("schema") != SCHEMA:
            raise TrustError(f"not a {SCHEMA} document")
    except PayloadError as exc:
        raise TrustError(f"trust update: {exc}") from None
    anchor = anchors.get(update.get("anchor_id")) if isinstance(update, dict) else None
    if anchor is None:
        raise TrustError(f"trust update signed by {update.get('anchor_id')!r}, not an anchor")
    try:
        body = {name: update[name] for name in SIGNED_FIELDS}
        signature = base64.b64decode(update["signature"], validate=True)
        anchor.verify(signature, canonical(body))
    except (KeyError, TypeError, binascii.Error, InvalidSignature, ValueError):
        raise TrustError("trust update: the anchor's signature does not verify") from None
    keys: dict[str, TrustedKey] = {}
    for entry in update["keys"]:
        if not isinstance(entry, dict) or entry.get("key_id") in keys:
            raise TrustError("trust update: a key appears twice or is malformed")
        try:
            raw = base64.b64decode(entry["public_key"], validate=True)
            public = Ed25519PublicKey.from_public_bytes(raw)
            key = TrustedKey(
                entry["key_id"],
                public,
                int(entry["from_version"]),
                None if entry["until_version"] is None else int(entry["until_version"]),
                entry["state"],
                entry.get("reason"),
            )
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise TrustError(f"trust update: key {entry.get('key_id')!r} is malformed") from None
        if key.state not in ("active", "retired", "revoked"):
            raise TrustError(f"trust update: key {key.key_id!r} has state {key.state!r}")
        keys[key.key_id] = key
    sequence = update["sequence"]
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise TrustError("trust update: sequence is a positive integer")
    return KeyTrust(keys, sequence, update)
