"""A test PKI for CBIC issuers and a card issuing tool: holder JSON -> signed card image.

Functions come in pairs: a pure one on values (:func:`issue_card`, :meth:`IssuerKey.from_pem`...)
and a thin file wrapper (:func:`issue_card_file`, :func:`save_issuer`...), so that the CLI
(``borderlane-edge sim issue-cbic``, ``sim card --cbic IMAGE``) only parses options::

    issuer = create_issuer("bz-cbic-test-1")
    save_issuer(issuer, keys_dir)                  # bz-cbic-test-1.key (private), .pem (public)
    issue_card_file(SAMPLES_DIR / "resident-worker.json", issuer, "card.json")
    card = CbicCard.from_image(load_card_image("card.json"))

A holder JSON file names the fields of the profile (``edge/documents/cbic.md``), dates in ISO
format: ``card_number``, ``issuing_state``, ``surname``, ``given_names``, ``date_of_birth``,
``sex``, ``nationality``, ``community``, ``category``, ``valid_at`` (list of site ids),
``issue_date``, ``expiry_date``; optionally ``portrait`` (an image file, relative to the JSON
file, put on the card as EF.PORTRAIT) or ``portrait_sha256`` (hex, when the issuer keeps the
portrait off the card), and a free-text ``comment``. The card key is made at issuance.

Issuer keys are saved as ``<key id>.key`` (PKCS#8 PEM, mode 0600) and ``<key id>.pem`` (public
key); a directory of ``.pem`` files is a trust list (:func:`edge.trust.load_trust_list`, the
kiosk's loader, re-exported here for the issuing workflow).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge.documents.cbic import (
    CbicFormatError,
    CbicHolder,
    CbicPortrait,
    CbicSignature,
    IssuerTrustList,
    TrustListError,
    ecdsa_sign_raw,
)
from edge.sim.cbic_card import CardImage

__all__ = [
    "HOLDER_FIELDS",
    "SAMPLES_DIR",
    "IssueError",
    "IssuerKey",
    "create_issuer",
    "holder_from_json",
    "issue_card",
    "issue_card_file",
    "load_card_image",
    "load_issuer",
    "save_card_image",
    "save_issuer",
    "trust_list_for",
]

#: Sample holder files: a resident worker, a student, an expired frequent crosser.
SAMPLES_DIR = Path(__file__).with_name("samples")

#: Mandatory fields of a holder JSON file.
HOLDER_FIELDS = (
    "card_number",
    "issuing_state",
    "surname",
    "given_names",
    "date_of_birth",
    "sex",
    "nationality",
    "community",
    "category",
    "valid_at",
    "issue_date",
    "expiry_date",
)
_OPTIONAL_FIELDS = ("portrait", "portrait_sha256", "comment")
_MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jp2": "image/jp2",
    ".png": "image/png",
}


class IssueError(ValueError):
    """A holder file or issuer key that cannot make a card; the message names the field."""


# -- issuer keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerKey:
    """An issuing authority's signing key (ECDSA P-256) and the id cards name it by."""

    key_id: str
    private_key: ec.EllipticCurvePrivateKey

    def __post_init__(self) -> None:
        try:  # the trust list applies the same rules to key ids and keys
            IssuerTrustList({self.key_id: self.private_key.public_key()})
        except (TrustListError, AttributeError) as exc:
            raise IssueError(f"issuer key {self.key_id!r}: {exc}") from None

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_pem(cls, key_id: str, pem: bytes | str) -> IssuerKey:
        raw = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError) as exc:
            raise IssueError(f"issuer key {key_id!r}: not an unencrypted PEM key ({exc})") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise IssueError(f"issuer key {key_id!r} is not an EC key")
        return cls(key_id, key)


def create_issuer(key_id: str) -> IssuerKey:
    """A fresh issuer key; ``key_id`` as cards will name it (``^[a-z0-9][a-z0-9._-]{0,63}$``)."""
    return IssuerKey(key_id, ec.generate_private_key(ec.SECP256R1()))


def trust_list_for(*issuers: IssuerKey) -> IssuerTrustList:
    """The trust list a kiosk needs to accept cards from ``issuers``."""
    return IssuerTrustList({issuer.key_id: issuer.public_key for issuer in issuers})


def save_issuer(issuer: IssuerKey, directory: Path | str) -> tuple[Path, Path]:
    """Write ``<key id>.key`` (private, 0600) and ``<key id>.pem`` (public) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / f"{issuer.key_id}.key"
    public = directory / f"{issuer.key_id}.pem"
    descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(issuer.private_pem())
    public.write_bytes(issuer.public_pem())
    return private, public


def load_issuer(path: Path | str) -> IssuerKey:
    """Load ``<key id>.key`` written by :func:`save_issuer`; the key id is the file name."""
    path = Path(path)
    if path.suffix != ".key":
        raise IssueError(f"{path}: an issuer key file is named <key id>.key")
    return IssuerKey.from_pem(path.stem, path.read_bytes())


# -- issuing ---------------------------------------------------------------------------------------


def _date(document: Mapping[str, Any], name: str) -> date:
    value = document[name]
    if not isinstance(value, str):
        raise IssueError(f"{name} must be an ISO date string (YYYY-MM-DD), got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise IssueError(f"{name} {value!r} is not an ISO date (YYYY-MM-DD)") from None


def holder_from_json(
    document: Mapping[str, Any],
    *,
    card_public_key: bytes,
    issuer_key_id: str,
    portrait_sha256: bytes | None = None,
) -> CbicHolder:
    """The :class:`CbicHolder` for a holder JSON object (see the module) and the given keys.

    ``portrait_sha256`` overrides the file's ``portrait_sha256`` (used when the portrait itself
    goes on the card).
    """
    if not isinstance(document, Mapping):
        raise IssueError("holder data must be a JSON object")
    missing = [name for name in HOLDER_FIELDS if name not in document]
    unknown = sorted(set(document) - set(HOLDER_FIELDS) - set(_OPTIONAL_FIELDS))
    if missing or unknown:
        raise IssueError(
            f"holder file: missing {missing or 'nothing'}, unknown {unknown or 'none'}"
        )
    if portrait_sha256 is None and document.get("portrait_sha256") is not None:
        try:
            portrait_sha256 = bytes.fromhex(document["portrait_sha256"])
        except (TypeError, ValueError):
            raise IssueError("portrait_sha256 must be 64 hex digits") from None
    valid_at = document["valid_at"]
    if not isinstance(valid_at, list):
        raise IssueError("valid_at must be a list of site ids")
    try:
        return CbicHolder(
            card_number=document["card_number"],
            issuing_state=document["issuing_state"],
            surname=document["surname"],
            given_names=document["given_names"],
            date_of_birth=_date(document, "date_of_birth"),
            sex=document["sex"],
            nationality=document["nationality"],
            community=document["community"],
            category=document["category"],
            valid_at=tuple(valid_at),
            issue_date=_date(document, "issue_date"),
            expiry_date=_date(document, "expiry_date"),
            card_public_key=card_public_key,
            issuer_key_id=issuer_key_id,
            portrait_sha256=portrait_sha256,
        )
    except CbicFormatError as exc:
        raise IssueError(f"holder file: {exc}") from None


def issue_card(
    document: Mapping[str, Any],
    issuer: IssuerKey,
    *,
    portrait: bytes | None = None,
    media_type: str = "image/jpeg",
    card_key: ec.EllipticCurvePrivateKey | None = None,
) -> CardImage:
    """Personalise a card: make its key (unless given), sign its holder data, build its files."""
    card_key = card_key if card_key is not None else ec.generate_private_key(ec.SECP256R1())
    public_point = card_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    portrait_file = None
    portrait_hash = None
    if portrait is not None:
        try:
            on_card = CbicPortrait(media_type, portrait)
            portrait_file = on_card.encode()
        except CbicFormatError as exc:
            raise IssueError(f"portrait: {exc}") from None
        portrait_hash = on_card.sha256()
    holder = holder_from_json(
        document,
        card_public_key=public_point,
        issuer_key_id=issuer.key_id,
        portrait_sha256=portrait_hash,
    )
    holder_data = holder.encode()
    signature = CbicSignature(issuer.key_id, ecdsa_sign_raw(issuer.private_key, holder_data))
    return CardImage(holder_data, signature.encode(), card_key, portrait_file)


def issue_card_file(
    holder_path: Path | str, issuer: IssuerKey, image_path: Path | str | None = None
) -> CardImage:
    """Issue from a holder JSON file (and its ``portrait`` file); write the image if asked."""
    holder_path = Path(holder_path)
    try:
        document = json.loads(holder_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IssueError(f"{holder_path}: not JSON ({exc})") from None
    portrait = None
    media_type = "image/jpeg"
    if isinstance(document, dict) and document.get("portrait") is not None:
        picture = holder_path.parent / str(document["portrait"])
        media_type = _MEDIA_TYPES.get(picture.suffix.lower(), "")
        if not media_type:
            raise IssueError(f"portrait {picture.name}: use .jpg, .jp2 or .png")
        portrait = picture.read_bytes()
    image = issue_card(document, issuer, portrait=portrait, media_type=media_type)
    if image_path is not None:
        save_card_image(image, image_path)
    return image


def save_card_image(image: CardImage, path: Path | str) -> Path:
    """Write the image JSON (it holds the card's private key: mode 0600)."""
    path = Path(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(image.to_json())
    return path


def load_card_image(path: Path | str) -> CardImage:
    return CardImage.from_json(Path(path).read_text(encoding="utf-8"))
