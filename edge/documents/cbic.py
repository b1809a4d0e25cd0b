"""The Cross-Border Identification Card (CBIC): holder data, verification, and the terminal's read.

The profile is specified in ``cbic.md`` beside this module; in brief, an ISO 7816-4 application
(:data:`CBIC_AID`) holds three transparent files, read with READ BINARY by short EF identifier:

- EF.HOLDER (SFI 1): the holder data, one BER-TLV template ``E1`` (:class:`CbicHolder`);
- EF.SIG (SFI 2): template ``E2``: the issuer key id and the issuer's ECDSA P-256 signature
  (raw ``r || s``) over the exact bytes of EF.HOLDER;
- EF.PORTRAIT (SFI 3, optional): template ``E3``: media type and image, hashed in EF.HOLDER.

The card also holds a P-256 private key whose public half is in the signed holder data. It answers
INTERNAL AUTHENTICATE over a fresh 16-byte kiosk challenge with an ECDSA signature over
``SHA-256("BORDERLANE-CBIC-IA-1" || challenge)``, so data copied onto another card fails.

This module is pure: no I/O. :func:`read_cbic` talks to a card only through the ``transmit``
callable it is given (the PC/SC driver's, or a virtual card's ``process``).

Verification yields named checks (``name``, ``result``, ``detail``) as the crossing record carries
them: :data:`CHECK_HOLDER_DATA_FORMAT`, :data:`CHECK_ISSUER_SIGNATURE`,
:data:`CHECK_CARD_AUTHENTICATION`, :data:`CHECK_EXPIRY`, :data:`CHECK_CROSSING_POINT`, and
:data:`CHECK_PORTRAIT_HASH` when a portrait was read.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from edge.documents import tlv
from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord
from edge.documents.checks import Check, CheckResult
from mqtt_schemas.identifiers import COUNTRY, DOCUMENT_NUMBER, KEY_ID, NAME

__all__ = [
    "CBIC_AID",
    "CHALLENGE_LENGTH",
    "CHECK_CARD_AUTHENTICATION",
    "CHECK_CROSSING_POINT",
    "CHECK_EXPIRY",
    "CHECK_HOLDER_DATA_FORMAT",
    "CHECK_ISSUER_SIGNATURE",
    "CHECK_PORTRAIT_HASH",
    "IA_PREFIX",
    "INS_INTERNAL_AUTHENTICATE",
    "INS_READ_BINARY",
    "MAX_FILE_SIZE",
    "MAX_HOLDER_SIZE",
    "PROFILE_VERSION",
    "SFI_HOLDER",
    "SFI_PORTRAIT",
    "SFI_SIGNATURE",
    "CbicCardData",
    "CbicFormatError",
    "CbicHolder",
    "CbicPortrait",
    "CbicReadError",
    "CbicReading",
    "CbicSignature",
    "CbicVerification",
    "IssuerTrustList",
    "NotACbic",
    "TrustListError",
    "card_authentication_message",
    "ecdsa_sign_raw",
    "ecdsa_verify_raw",
    "internal_authenticate",
    "read_binary_offset",
    "read_binary_sfi",
    "read_cbic",
    "read_cbic_portrait",
    "select_cbic",
    "verify_cbic",
]

# -- the profile's constants ---------------------------------------------------------------------

#: "F0" (unregistered, proprietary AID) + "BLANE" + "CBIC" + application version 01.
CBIC_AID = bytes.fromhex("F0") + b"BLANE" + b"CBIC" + b"\x01"
#: Version of the holder data layout (tag 80 in EF.HOLDER).
PROFILE_VERSION = 1

INS_READ_BINARY = 0xB0
INS_INTERNAL_AUTHENTICATE = 0x88

SFI_HOLDER = 1
SFI_SIGNATURE = 2
SFI_PORTRAIT = 3

#: READ BINARY addresses 15-bit offsets: no file may be longer.
MAX_FILE_SIZE = 0x7FFF
#: A terminal reads at most this much EF.HOLDER (real holder data is 300-700 bytes).
MAX_HOLDER_SIZE = 1024
#: The kiosk's INTERNAL AUTHENTICATE challenge is exactly this long.
CHALLENGE_LENGTH = 16
#: Domain separation: the card signs SHA-256(IA_PREFIX || challenge), never a bare challenge.
IA_PREFIX = b"BORDERLANE-CBIC-IA-1"

_RAW_SIGNATURE = 64  # P-256 r || s, 32 bytes each, big-endian
_POINT = 65  # uncompressed P-256 point: 04 || X || Y

CHECK_HOLDER_DATA_FORMAT = "holder_data_format"
CHECK_ISSUER_SIGNATURE = "issuer_signature"
CHECK_CARD_AUTHENTICATION = "card_authentication"
CHECK_EXPIRY = "expiry"
CHECK_CROSSING_POINT = "crossing_point"
CHECK_PORTRAIT_HASH = "portrait_hash"

_MEDIA_TYPE = re.compile(r"[a-z]+/[a-z0-9.+-]{1,60}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_TEXT = 200  # characters in a name or place (the contract's person_name)
_MAX_SITES = 32


class CbicFormatError(ValueError):
    """Bytes or values that are not valid under the CBIC profile."""


# -- checks ----------------------------------------------------------------------------------------


# -- BER-TLV under the profile's rules -------------------------------------------------------------
# edge.documents.tlv encodes and measures the data objects; the profile asks more than BER does,
# because the holder data is signed and must have exactly one encoding: one-byte tags (every tag
# of the profile is one), definite lengths in their shortest form and no longer than 82 XX XX
# (files stay below 32 KiB), one template per file. Messages name the byte where a rule breaks.

_LONG_LENGTH_FORMS = (0x81, 0x82)
_MAX_VALUE = 0xFFFF


def _tlv(tag: int, value: bytes) -> bytes:
    if len(value) > _MAX_VALUE:
        raise CbicFormatError(f"a value of {len(value)} bytes is too long for this profile")
    return tlv.encode(tag, value)


def _read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, value, end offset) of the data object at ``offset``, checked against the profile."""
    start = offset
    if offset >= len(data):
        raise CbicFormatError(f"expected a tag at byte {start}, found the end")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise CbicFormatError(f"multi-byte tag at byte {start}: the profile's tags are one byte")
    if offset + 1 >= len(data):
        raise CbicFormatError(f"tag {tag:X} at byte {start} has no length")
    first = data[offset + 1]
    if first >= 0x80 and first not in _LONG_LENGTH_FORMS:
        raise CbicFormatError(f"tag {tag:X} at byte {start}: length byte {first:02X} not allowed")
    try:
        header, length = tlv.header_size(data[offset : offset + 4])
    except tlv.TlvError:
        raise CbicFormatError(f"tag {tag:X} at byte {start}: truncated length") from None
    value_at = offset + header
    if data[offset + 1 : value_at] != tlv.encode_length(length):
        raise CbicFormatError(f"tag {tag:X} at byte {start}: length not in its shortest form")
    end = value_at + length
    if end > len(data):
        raise CbicFormatError(
            f"tag {tag:X} at byte {start} says {length} bytes, only {len(data) - value_at} follow"
        )
    return tag, data[value_at:end], end


def _children(value: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset < len(value):
        tag, child, offset = _read_tlv(value, offset)
        yield tag, child


def _template(data: bytes, tag: int, what: str) -> bytes:
    """The value of the single TLV ``tag`` that ``data`` must consist of."""
    found, value, end = _read_tlv(data, 0)
    if found != tag:
        raise CbicFormatError(f"{what} starts with tag {found:X}, expected {tag:X}")
    if end != len(data):
        raise CbicFormatError(f"{what}: {len(data) - end} bytes after the {tag:X} template")
    return value


def _fields(value: bytes, order: tuple[int, ...], what: str) -> dict[int, bytes]:
    """Children of a template, each tag at most once and in the profile's order."""
    found: dict[int, bytes] = {}
    last = -1
    for tag, child in _children(value):
        if tag not in order:
            raise CbicFormatError(f"{what}: unknown tag {tag:X}")
        rank = order.index(tag)
        if tag in found:
            raise CbicFormatError(f"{what}: tag {tag:X} appears twice")
        if rank < last:
            raise CbicFormatError(f"{what}: tag {tag:X} out of order")
        last = rank
        found[tag] = child
    return found


def _total_tlv_length(prefix: bytes) -> int | None:
    """Length of the whole TLV starting ``prefix`` (header + value), or None if not yet known.

    Lenient (any BER header): the reader only needs to know how much to read; the format
    check then judges the bytes.
    """
    try:
        header, length = tlv.header_size(prefix)
    except tlv.TlvError:
        return None
    return header + length


# -- holder data -----------------------------------------------------------------------------------

# EF.HOLDER: template E1, children in this order (context-specific tag numbers 0..15)
_T_VERSION = 0x80
_T_CARD_NUMBER = 0x81
_T_ISSUING_STATE = 0x82
_T_SURNAME = 0x83
_T_GIVEN_NAMES = 0x84
_T_BIRTH = 0x85
_T_SEX = 0x86
_T_NATIONALITY = 0x87
_T_COMMUNITY = 0x88
_T_CATEGORY = 0x89
_T_VALID_AT = 0xAA  # constructed: one 80 per site id
_T_ISSUED = 0x8B
_T_EXPIRES = 0x8C
_T_PORTRAIT_HASH = 0x8D
_T_CARD_KEY = 0x8E
_T_ISSUER_KEY_ID = 0x8F
_HOLDER_ORDER = (
    _T_VERSION,
    _T_CARD_NUMBER,
    _T_ISSUING_STATE,
    _T_SURNAME,
    _T_GIVEN_NAMES,
    _T_BIRTH,
    _T_SEX,
    _T_NATIONALITY,
    _T_COMMUNITY,
    _T_CATEGORY,
    _T_VALID_AT,
    _T_ISSUED,
    _T_EXPIRES,
    _T_PORTRAIT_HASH,
    _T_CARD_KEY,
    _T_ISSUER_KEY_ID,
)
_HOLDER_OPTIONAL = frozenset({_T_PORTRAIT_HASH})
_T_HOLDER = 0xE1
_T_SITE = 0x80


def _check_text(what: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise CbicFormatError(f"{what} must be text, not {type(value).__name__}")
    if not (0 if empty else 1) <= len(value) <= _MAX_TEXT:
        raise CbicFormatError(f"{what} must be {0 if empty else 1}..{_MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise CbicFormatError(f"{what} contains a control character")
    return value


def _check_pattern(what: str, value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise CbicFormatError(f"{what} {value!r} does not match {pattern.pattern}")
    return value


_ISSUER_KEY_ID_RULE = "a key id in lower case: a-z or 0-9, then up to 63 of a-z 0-9 . _ -"


def _is_issuer_key_id(value: object) -> TypeGuard[str]:
    """Whether *value* is an issuer key id (tag ``8F``): the contract's key id, lower case only.

    ``cbic.md`` allows only lower case, and cards are issued so; the rest of the rule is the
    wire contract's ``key_id`` (:data:`mqtt_schemas.identifiers.KEY_ID`), not restated here.
    """
    return isinstance(value, str) and bool(KEY_ID.fullmatch(value)) and value == value.lower()


def _check_issuer_key_id(value: object) -> str:
    if not _is_issuer_key_id(value):
        raise CbicFormatError(f"issuer key id {value!r} is not {_ISSUER_KEY_ID_RULE}")
    return value


def _check_date(what: str, value: object) -> date:
    if type(value) is not date:  # a datetime is not a date here
        raise CbicFormatError(f"{what} must be a date, not {type(value).__name__}")
    if value.year < 1000:
        raise CbicFormatError(f"{what} {value} has no four-digit year")
    return value


def _encode_date(value: date) -> bytes:
    return value.strftime("%Y%m%d").encode("ascii")


def _decode_date(what: str, raw: bytes) -> date:
    if len(raw) != 8 or not raw.isdigit():
        raise CbicFormatError(f"{what} must be 8 ASCII digits YYYYMMDD, got {raw!r}")
    try:
        return _check_date(what, date(int(raw[:4]), int(raw[4:6]), int(raw[6:])))
    except ValueError as exc:
        raise CbicFormatError(f"{what} {raw.decode()} is not a date: {exc}") from None


def _decode_text(what: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CbicFormatError(f"{what} is not UTF-8") from None


def _decode_ascii(what: str, raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise CbicFormatError(f"{what} is not ASCII") from None


def _load_point(raw: bytes) -> ec.EllipticCurvePublicKey:
    if len(raw) != _POINT or raw[0] != 0x04:
        raise CbicFormatError(
            f"card public key must be an uncompressed P-256 point (65 bytes 04..), got {len(raw)}"
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise CbicFormatError("card public key is not a point on P-256") from None


@dataclass(frozen=True, slots=True)
class CbicHolder:
    """The holder data of EF.HOLDER; construction validates every field (:class:`CbicFormatError`).

    ``card_public_key`` is the uncompressed P-256 point (65 bytes) of the key the card holds;
    ``portrait_sha256`` the SHA-256 of the portrait image (None when the issuer recorded none).
    """

    card_number: str
    issuing_state: str
    surname: str
    given_names: str
    date_of_birth: date
    sex: str
    nationality: str
    community: str
    category: str
    valid_at: tuple[str, ...]
    issue_date: date
    expiry_date: date
    card_public_key: bytes
    issuer_key_id: str
    portrait_sha256: bytes | None = None

    def __post_init__(self) -> None:
        _check_pattern("card number", self.card_number, DOCUMENT_NUMBER)
        _check_pattern("issuing state", self.issuing_state, COUNTRY)
        _check_text("surname", self.surname)
        _check_text("given names", self.given_names, empty=True)
        _check_date("date of birth", self.date_of_birth)
        if self.sex not in ("M", "F", "X"):
            raise CbicFormatError(f"sex must be M, F or X, got {self.sex!r}")
        _check_pattern("nationality", self.nationality, COUNTRY)
        _check_text("community", self.community)
        _check_pattern("category", self.category, NAME)
        if isinstance(self.valid_at, str):
            raise CbicFormatError("valid_at is a sequence of site ids, not one string")
        sites = tuple(self.valid_at)
        if not 1 <= len(sites) <= _MAX_SITES:
            raise CbicFormatError(f"valid_at must name 1..{_MAX_SITES} sites, got {len(sites)}")
        for site in sites:
            _check_pattern("site id", site, NAME)
        if len(set(sites)) != len(sites):
            raise CbicFormatError("valid_at names a site twice")
        object.__setattr__(self, "valid_at", sites)
        _check_date("issue date", self.issue_date)
        _check_date("expiry date", self.expiry_date)
        if self.expiry_date < self.issue_date:
            raise CbicFormatError(f"expiry {self.expiry_date} is before issue {self.issue_date}")
        if not isinstance(self.card_public_key, bytes):
            raise CbicFormatError("card public key must be bytes")
        _load_point(self.card_public_key)
        _check_issuer_key_id(self.issuer_key_id)
        if self.portrait_sha256 is not None and (
            not isinstance(self.portrait_sha256, bytes) or len(self.portrait_sha256) != 32
        ):
            raise CbicFormatError("portrait hash must be 32 bytes (SHA-256) or absent")
        size = len(self.encode())
        if size > MAX_HOLDER_SIZE:
            raise CbicFormatError(f"holder data is {size} bytes, at most {MAX_HOLDER_SIZE}")

    def card_key(self) -> ec.EllipticCurvePublicKey:
        return _load_point(self.card_public_key)

    def encode(self) -> bytes:
        """The exact bytes of EF.HOLDER (the E1 template); the issuer signs these."""
        sites = b"".join(_tlv(_T_SITE, site.encode("ascii")) for site in self.valid_at)
        parts = [
            _tlv(_T_VERSION, bytes((PROFILE_VERSION,))),
            _tlv(_T_CARD_NUMBER, self.card_number.encode("ascii")),
            _tlv(_T_ISSUING_STATE, self.issuing_state.encode("ascii")),
            _tlv(_T_SURNAME, self.surname.encode("utf-8")),
            _tlv(_T_GIVEN_NAMES, self.given_names.encode("utf-8")),
            _tlv(_T_BIRTH, _encode_date(self.date_of_birth)),
            _tlv(_T_SEX, self.sex.encode("ascii")),
            _tlv(_T_NATIONALITY, self.nationality.encode("ascii")),
            _tlv(_T_COMMUNITY, self.community.encode("utf-8")),
            _tlv(_T_CATEGORY, self.category.encode("ascii")),
            _tlv(_T_VALID_AT, sites),
            _tlv(_T_ISSUED, _encode_date(self.issue_date)),
            _tlv(_T_EXPIRES, _encode_date(self.expiry_date)),
        ]
        if self.portrait_sha256 is not None:
            parts.append(_tlv(_T_PORTRAIT_HASH, self.portrait_sha256))
        parts.append(_tlv(_T_CARD_KEY, self.card_public_key))
        parts.append(_tlv(_T_ISSUER_KEY_ID, self.issuer_key_id.encode("ascii")))
        return _tlv(_T_HOLDER, b"".join(parts))

    @classmethod
    def decode(cls, data: bytes) -> CbicHolder:
        """Parse EF.HOLDER strictly: one E1 template, known tags once each in order, DER lengths.

        Strict on purpose: the bytes are signed, so there is exactly one way to write them.
        """
        data = bytes(data)
        if len(data) > MAX_HOLDER_SIZE:
            raise CbicFormatError(f"holder data is {len(data)} bytes, at most {MAX_HOLDER_SIZE}")
        found = _fields(_template(data, _T_HOLDER, "holder data"), _HOLDER_ORDER, "holder data")
        missing = [t for t in _HOLDER_ORDER if t not in found and t not in _HOLDER_OPTIONAL]
        if missing:
            raise CbicFormatError(
                "holder data lacks tag(s) " + ", ".join(f"{t:X}" for t in missing)
            )
        if found[_T_VERSION] != bytes((PROFILE_VERSION,)):
            raise CbicFormatError(f"holder data version {found[_T_VERSION].hex()} is not 01")
        sites = []
        for tag, site in _children(found[_T_VALID_AT]):
            if tag != _T_SITE:
                raise CbicFormatError(f"valid-at list holds tag {tag:X}, expected 80")
            sites.append(_decode_ascii("site id", site))
        holder = cls(
            card_number=_decode_ascii("card number", found[_T_CARD_NUMBER]),
            issuing_state=_decode_ascii("issuing state", found[_T_ISSUING_STATE]),
            surname=_decode_text("surname", found[_T_SURNAME]),
            given_names=_decode_text("given names", found[_T_GIVEN_NAMES]),
            date_of_birth=_decode_date("date of birth", found[_T_BIRTH]),
            sex=_decode_ascii("sex", found[_T_SEX]),
            nationality=_decode_ascii("nationality", found[_T_NATIONALITY]),
            community=_decode_text("community", found[_T_COMMUNITY]),
            category=_decode_ascii("category", found[_T_CATEGORY]),
            valid_at=tuple(sites),
            issue_date=_decode_date("issue date", found[_T_ISSUED]),
            expiry_date=_decode_date("expiry date", found[_T_EXPIRES]),
            card_public_key=found[_T_CARD_KEY],
            issuer_key_id=_decode_ascii("issuer key id", found[_T_ISSUER_KEY_ID]),
            portrait_sha256=found.get(_T_PORTRAIT_HASH),
        )
        if holder.encode() != data:  # e.g. text not in the form we write; cannot happen today
            raise CbicFormatError("holder data is not in its canonical encoding")
        return holder

    def document_summary(self) -> dict[str, Any]:
        """The crossing record's ``document`` object for this card."""
        return {
            "kind": "cbic",
            "document_type": "IC",
            "category": self.category,
            "issuing_state": self.issuing_state,
            "nationality": self.nationality,
            "number": self.card_number,
            "expiry_date": self.expiry_date.isoformat(),
            "birth_year": self.date_of_birth.year,
        }


# -- EF.SIG and EF.PORTRAIT ----------------------------------------------------------------------

_T_SIGNATURE_OBJECT = 0xE2
_T_PORTRAIT_OBJECT = 0xE3


@dataclass(frozen=True, slots=True)
class CbicSignature:
    """EF.SIG: which issuer key signed, and the raw ECDSA P-256 signature ``r || s``."""

    issuer_key_id: str
    signature: bytes

    def __post_init__(self) -> None:
        _check_issuer_key_id(self.issuer_key_id)
        if not isinstance(self.signature, bytes) or len(self.signature) != _RAW_SIGNATURE:
            raise CbicFormatError(f"the signature must be {_RAW_SIGNATURE} bytes (r || s)")

    def encode(self) -> bytes:
        return _tlv(
            _T_SIGNATURE_OBJECT,
            _tlv(0x80, self.issuer_key_id.encode("ascii")) + _tlv(0x81, self.signature),
        )

    @classmethod
    def decode(cls, data: bytes) -> CbicSignature:
        found = _fields(
            _template(bytes(data), _T_SIGNATURE_OBJECT, "signature object"),
            (0x80, 0x81),
            "signature object",
        )
        if len(found) != 2:
            raise CbicFormatError("signature object needs both 80 (key id) and 81 (signature)")
        return cls(_decode_ascii("issuer key id", found[0x80]), found[0x81])


@dataclass(frozen=True, slots=True)
class CbicPortrait:
    """EF.PORTRAIT: the image and its media type; EF.HOLDER carries SHA-256(image)."""

    media_type: str
    image: bytes

    def __post_init__(self) -> None:
        _check_pattern("media type", self.media_type, _MEDIA_TYPE)
        if not isinstance(self.image, bytes) or not self.image:
            raise CbicFormatError("the portrait image must be non-empty bytes")

    def encode(self) -> bytes:
        encoded = _tlv(
            _T_PORTRAIT_OBJECT,
            _tlv(0x80, self.media_type.encode("ascii")) + _tlv(0x81, self.image),
        )
        if len(encoded) > MAX_FILE_SIZE:
            raise CbicFormatError(f"portrait file would be {len(encoded)} bytes, max 32767")
        return encoded

    @classmethod
    def decode(cls, data: bytes) -> CbicPortrait:
        found = _fields(
            _template(bytes(data), _T_PORTRAIT_OBJECT, "portrait"), (0x80, 0x81), "portrait"
        )
        if len(found) != 2:
            raise CbicFormatError("portrait needs both 80 (media type) and 81 (image)")
        return cls(_decode_ascii("media type", found[0x80]), found[0x81])

    def sha256(self) -> bytes:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(self.image)
        return digest.finalize()


# -- signatures ------------------------------------------------------------------------------------


def ecdsa_sign_raw(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """ECDSA P-256 with SHA-256 over ``message``, as 64 raw bytes ``r || s``."""
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def ecdsa_verify_raw(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """True if ``signature`` (``r || s``) is ECDSA P-256/SHA-256 over ``message`` under ``key``."""
    if len(signature) != _RAW_SIGNATURE:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def card_authentication_message(challenge: bytes) -> bytes:
    """What the card signs for INTERNAL AUTHENTICATE (hashed with SHA-256 by ECDSA)."""
    return IA_PREFIX + bytes(challenge)


# -- the issuer trust list -------------------------------------------------------------------------


class TrustListError(ValueError):
    """An issuer key or trust list document that cannot be used."""


class IssuerTrustList:
    """Issuer key id -> ECDSA P-256 public key: the CBIC issuers this kiosk trusts.

    Built from keys, from PEM texts (:meth:`from_pem`), or from a JSON document
    (:meth:`from_json`); reading files is the caller's business.
    """

    def __init__(self, keys: Mapping[str, ec.EllipticCurvePublicKey] | None = None) -> None:
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        for key_id, key in (keys or {}).items():
            if not _is_issuer_key_id(key_id):
                raise TrustListError(f"issuer key id {key_id!r} is not {_ISSUER_KEY_ID_RULE}")
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise TrustListError(f"issuer key {key_id!r} is not an EC P-256 public key")
            self._keys[key_id] = key

    @classmethod
    def from_pem(cls, entries: Mapping[str, bytes | str]) -> IssuerTrustList:
        """From key id -> PEM SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``)."""
        keys = {}
        for key_id, pem in entries.items():
            try:  # a PEM is ASCII: other text is no PEM (UnicodeEncodeError, a ValueError)
                raw = pem.encode("ascii") if isinstance(pem, str) else bytes(pem)
                key = serialization.load_pem_public_key(raw)
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise TrustListError(
                    f"issuer key {key_id!r}: not a PEM public key ({exc})"
                ) from None
            keys[key_id] = key
        return cls(keys)  # type: ignore[arg-type]  # checked in __init__

    @classmethod
    def from_json(cls, document: str | bytes | Mapping[str, Any]) -> IssuerTrustList:
        """From ``{"issuers": [{"key_id": "...", "public_key_pem": "-----BEGIN..."}, ...]}``."""
        if not isinstance(document, Mapping):
            try:
                document = json.loads(document)
            except ValueError as exc:
                raise TrustListError(f"trust list is not JSON: {exc}") from None
            except RecursionError:
                raise TrustListError("trust list is not JSON: nested too deeply") from None
        issuers = document.get("issuers") if isinstance(document, Mapping) else None
        if not isinstance(issuers, list):
            raise TrustListError('a trust list is an object with an "issuers" list')
        entries: dict[str, str] = {}
        for entry in issuers:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("public_key_pem"), str):
                raise TrustListError("each issuer needs key_id and public_key_pem")
            key_id = entry.get("key_id")
            if not isinstance(key_id, str) or key_id in entries:
                raise TrustListError(f"issuer key id {key_id!r} missing or repeated")
            entries[key_id] = entry["public_key_pem"]
        return cls.from_pem(entries)

    def to_json(self) -> str:
        issuers = [
            {
                "key_id": key_id,
                "public_key_pem": key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ).decode("ascii"),
            }
            for key_id, key in sorted(self._keys.items())
        ]
        return json.dumps({"issuers": issuers}, indent=2) + "\n"

    def public_key(self, key_id: str) -> ec.EllipticCurvePublicKey | None:
        return self._keys.get(key_id)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"IssuerTrustList({list(self.key_ids)!r})"


# -- verification ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CbicCardData:
    """What a terminal read from a card, unverified.

    ``authentication`` is the card's answer to INTERNAL AUTHENTICATE over ``challenge``.
    ``portrait_data`` is None when EF.PORTRAIT was not read or the card has none.
    """

    holder_data: bytes
    signature_data: bytes
    challenge: bytes
    authentication: ResponseApdu
    portrait_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class CbicVerification:
    """The checks, in order, and the holder data when it could be decoded."""

    holder: CbicHolder | None
    checks: tuple[Check, ...]
    portrait: CbicPortrait | None = None

    @property
    def passed(self) -> bool:
        """Every check passed (a skipped or errored check is not a pass)."""
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the checks that did not pass."""
        return tuple(check.name for check in self.checks if not check.passed)

    def check(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)


def _guarded(name: str, run: Callable[[], tuple[CheckResult, str]]) -> Check:
    try:
        result, detail = run()
    except Exception as exc:  # a bug in a check must not take the lane down
        return Check(name, CheckResult.ERROR, f"{type(exc).__name__}: {exc}")
    return Check(name, result, detail)


def verify_cbic(
    data: CbicCardData, *, trust: IssuerTrustList, today: date, site: str | None
) -> CbicVerification:
    """Judge what was read: one :class:`Check` per property, independent of each other.

    ``today`` is the kiosk's local date; ``site`` its crossing point id (e.g. bz-santa-elena),
    or None when it is not known (a technician's reader): ``crossing_point`` is then skipped.
    A check that needs the holder data is skipped when it cannot be decoded; the issuer signature
    is still judged, from the key named in EF.SIG.
    """
    holder: CbicHolder | None = None
    format_problem = ""
    try:
        holder = CbicHolder.decode(data.holder_data)
    except CbicFormatError as exc:
        format_problem = str(exc)

    def holder_format() -> tuple[CheckResult, str]:
        if holder is None:
            return CheckResult.FAIL, format_problem
        return CheckResult.PASS, f"card {holder.card_number}, {holder.category}"

    def issuer_signature() -> tuple[CheckResult, str]:
        try:
            signed = CbicSignature.decode(data.signature_data)
        except CbicFormatError as exc:
            return CheckResult.FAIL, f"signature object unreadable: {exc}"
        key_id = signed.issuer_key_id
        if holder is not None and holder.issuer_key_id != key_id:
            return CheckResult.FAIL, (
                f"signature names issuer key {key_id!r}, holder data {holder.issuer_key_id!r}"
            )
        key = trust.public_key(key_id)
        if key is None and not len(trust):
            return CheckResult.FAIL, f"no issuer keys were given: cannot verify key {key_id!r}"
        if key is None:
            return CheckResult.FAIL, f"issuer key {key_id!r} is not in the trust list"
        if not ecdsa_verify_raw(key, signed.signature, data.holder_data):
            return CheckResult.FAIL, f"signature does not verify under issuer key {key_id!r}"
        return CheckResult.PASS, f"signed by issuer key {key_id!r}"

    def card_authentication() -> tuple[CheckResult, str]:
        if holder is None:
            return CheckResult.SKIPPED, "no card key: holder data unreadable"
        answer = data.authentication
        if not answer.sw.is_success:
            return CheckResult.FAIL, f"card answered {answer.sw} to INTERNAL AUTHENTICATE"
        if len(data.challenge) != CHALLENGE_LENGTH:
            return CheckResult.FAIL, f"challenge is {len(data.challenge)} bytes, not 16"
        if len(answer.data) != _RAW_SIGNATURE:
            return CheckResult.FAIL, f"card answered {len(answer.data)} bytes, not a 64-byte r||s"
        message = card_authentication_message(data.challenge)
        if not ecdsa_verify_raw(holder.card_key(), answer.data, message):
            return CheckResult.FAIL, "the card does not hold the key in its signed data"
        return CheckResult.PASS, "the card holds the key in its signed data"

    def expiry() -> tuple[CheckResult, str]:
        if holder is None:
            return CheckResult.SKIPPED, "holder data unreadable"
        if today > holder.expiry_date:
            return CheckResult.FAIL, f"expired {holder.expiry_date.isoformat()}"
        if today < holder.issue_date:
            return CheckResult.FAIL, f"not valid before {holder.issue_date.isoformat()}"
        return CheckResult.PASS, f"valid until {holder.expiry_date.isoformat()}"

    def crossing_point() -> tuple[CheckResult, str]:
        if holder is None:
            return CheckResult.SKIPPED, "holder data unreadable"
        sites = ", ".join(holder.valid_at)
        if site is None:
            return CheckResult.SKIPPED, f"no crossing point given; valid at {sites}"
        if site in holder.valid_at:
            return CheckResult.PASS, f"valid at {site}"
        return CheckResult.FAIL, f"not valid at {site}; valid at {sites}"

    checks = [
        _guarded(CHECK_HOLDER_DATA_FORMAT, holder_format),
        _guarded(CHECK_ISSUER_SIGNATURE, issuer_signature),
        _guarded(CHECK_CARD_AUTHENTICATION, card_authentication),
        _guarded(CHECK_EXPIRY, expiry),
        _guarded(CHECK_CROSSING_POINT, crossing_point),
    ]
    portrait: CbicPortrait | None = None
    if data.portrait_data is not None:
        try:
            portrait = CbicPortrait.decode(data.portrait_data)
        except CbicFormatError as exc:
            portrait_problem = str(exc)
        else:
            portrait_problem = ""
        expected = holder.portrait_sha256 if holder is not None else None

        def portrait_hash() -> tuple[CheckResult, str]:
            if holder is None:
                return CheckResult.SKIPPED, "holder data unreadable"
            if portrait is None:
                return CheckResult.FAIL, f"portrait unreadable: {portrait_problem}"
            if expected is None:
                return CheckResult.FAIL, "the card has a portrait but its data names no hash"
            if portrait.sha256() != expected:
                return CheckResult.FAIL, "portrait does not match the hash in the signed data"
            return CheckResult.PASS, f"{portrait.media_type}, {len(portrait.image)} bytes"

        checks.append(_guarded(CHECK_PORTRAIT_HASH, portrait_hash))
    return CbicVerification(holder, tuple(checks), portrait)


# -- the terminal's APDUs --------------------------------------------------------------------------


def select_cbic() -> CommandApdu:
    """SELECT the CBIC application by AID, no FCI wanted."""
    return CommandApdu(0x00, 0xA4, 0x04, 0x0C, CBIC_AID)


def read_binary_sfi(sfi: int, offset: int = 0, le: int = 256) -> CommandApdu:
    """READ BINARY by short EF identifier (P1 = 80 | SFI, P2 = offset 0..255); selects the EF."""
    if not 1 <= sfi <= 30 or not 0 <= offset <= 0xFF:
        raise ValueError(f"SFI 1..30 and offset 0..255, got {sfi}, {offset}")
    return CommandApdu(0x00, INS_READ_BINARY, 0x80 | sfi, offset, le=le)


def read_binary_offset(offset: int, le: int = 256) -> CommandApdu:
    """READ BINARY in the current EF at a 15-bit offset (P1 b8 = 0)."""
    if not 0 <= offset <= MAX_FILE_SIZE:
        raise ValueError(f"offset must be 0..32767, got {offset}")
    return CommandApdu(0x00, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=le)


def internal_authenticate(challenge: bytes) -> CommandApdu:
    """INTERNAL AUTHENTICATE over the kiosk's challenge; the card answers 64 bytes ``r || s``."""
    return CommandApdu(0x00, INS_INTERNAL_AUTHENTICATE, 0x00, 0x00, bytes(challenge), le=256)


class CbicReadError(Exception):
    """The card could not be read to the end (link lost, card refused a read, not a CBIC).

    ``apdus`` is how many commands were sent, the failing one included.
    """

    def __init__(self, message: str, apdus: int) -> None:
        self.apdus = apdus
        super().__init__(message)


class NotACbic(CbicReadError):
    """The card has no CBIC application (SELECT was refused): try another document kind."""


@dataclass(frozen=True, slots=True)
class CbicReading:
    """The outcome of :func:`read_cbic`: raw data, verification, and the APDUs it took."""

    data: CbicCardData
    verification: CbicVerification
    apdus: int

    @property
    def holder(self) -> CbicHolder | None:
        return self.verification.holder

    @property
    def checks(self) -> tuple[Check, ...]:
        return self.verification.checks

    @property
    def passed(self) -> bool:
        return self.verification.passed


@dataclass
class _Session:
    transmit: Callable[[CommandApdu], ResponseApdu]
    apdus: int = 0

    def send(self, command: CommandApdu, what: str) -> ResponseApdu:
        self.apdus += 1
        try:
            response = self.transmit(command)
        except Exception as exc:  # whatever the driver raises when the card is gone
            raise CbicReadError(
                f"card link lost at APDU {self.apdus} ({what}): {exc}", self.apdus
            ) from exc
        if not isinstance(response, ResponseApdu):
            raise CbicReadError(f"transmit returned {type(response).__name__}", self.apdus)
        return response

    def read_file(self, sfi: int, limit: int, what: str, chunk: int) -> bytes | None:
        """The whole TLV file at ``sfi``; None if the card has no such file (6A82).

        Reads the first chunk by SFI, learns the total length from the TLV header, then reads
        the rest by offset. Returns what it got when the header is unreadable, declares more than
        ``limit`` bytes or the file ends early: the format check then says what is wrong.
        """
        first = self.send(read_binary_sfi(sfi, 0, chunk), f"READ BINARY {what}")
        if first.sw == StatusWord.FILE_NOT_FOUND:
            return None
        if not (first.sw.is_success or first.sw == StatusWord.END_OF_FILE):
            raise CbicReadError(f"card answered {first.sw} reading {what}", self.apdus)
        content = bytearray(first.data)
        total = _total_tlv_length(bytes(content))
        if total is None or total > limit:
            return bytes(content)
        while len(content) < total:
            ask = min(chunk, total - len(content))
            answer = self.send(read_binary_offset(len(content), ask), f"READ BINARY {what}")
            if answer.sw == StatusWord.WRONG_P1P2:  # offset beyond the end: the file is short
                break
            if not (answer.sw.is_success or answer.sw == StatusWord.END_OF_FILE):
                raise CbicReadError(f"card answered {answer.sw} reading {what}", self.apdus)
            if not answer.data:
                break
            content += answer.data
        return bytes(content[:total])


def read_cbic(
    transmit: Callable[[CommandApdu], ResponseApdu],
    *,
    trust: IssuerTrustList,
    today: date,
    site: str | None,
    random: Callable[[int], bytes] = secrets.token_bytes,
    read_portrait: bool = False,
    chunk: int = 256,
) -> CbicReading:
    """Read a CBIC through ``transmit`` and verify it; no I/O of its own.

    SELECT, READ BINARY EF.HOLDER and EF.SIG (several reads when a file exceeds ``chunk``),
    EF.PORTRAIT if ``read_portrait``, then INTERNAL AUTHENTICATE over a fresh challenge from
    ``random(16)``. Raises :class:`NotACbic` if SELECT is refused and :class:`CbicReadError` if the
    link fails or a mandatory file cannot be read; anything the card *says* is judged by the checks.
    """
    if not 1 <= chunk <= 256:
        raise ValueError(f"chunk is a short Le, 1..256, got {chunk}")
    session = _Session(transmit)
    selected = session.send(select_cbic(), "SELECT")
    if not selected.sw.is_success:
        raise NotACbic(f"no CBIC application: SELECT answered {selected.sw}", session.apdus)
    holder_data = session.read_file(SFI_HOLDER, MAX_HOLDER_SIZE, "EF.HOLDER", chunk)
    signature_data = session.read_file(SFI_SIGNATURE, 256, "EF.SIG", chunk)
    if holder_data is None or signature_data is None:
        missing = "EF.HOLDER" if holder_data is None else "EF.SIG"
        raise CbicReadError(f"the card has no {missing}", session.apdus)
    portrait_data = None
    if read_portrait:
        portrait_data = session.read_file(SFI_PORTRAIT, MAX_FILE_SIZE, "EF.PORTRAIT", chunk)
    challenge = bytes(random(CHALLENGE_LENGTH))
    if len(challenge) != CHALLENGE_LENGTH:
        raise ValueError(f"random gave {len(challenge)} bytes for a 16-byte challenge")
    answer = session.send(internal_authenticate(challenge), "INTERNAL AUTHENTICATE")
    data = CbicCardData(holder_data, signature_data, challenge, answer, portrait_data)
    verification = verify_cbic(data, trust=trust, today=today, site=site)
    return CbicReading(data, verification, session.apdus)


def read_cbic_portrait(
    transmit: Callable[[CommandApdu], ResponseApdu],
    expected_sha256: bytes,
    *,
    chunk: int = 256,
) -> CbicPortrait:
    """Read EF.PORTRAIT of a card already read and verified, and check it against the hash in
    that card's signed holder data (``expected_sha256``).

    The lane leaves the portrait out of the tap (up to 32 KB: seconds on a contactless link)
    and fetches it afterwards, only for a referred traveller, for the officer's screen. The card
    on the reader by then may be another one; the hash from the verified holder data is what
    makes the picture the issuer's. Raises :class:`CbicReadError` when the card has no CBIC
    application or no portrait, the portrait is malformed, or it does not match.
    """
    session = _Session(transmit)
    selected = session.send(select_cbic(), "SELECT")
    if not selected.sw.is_success:
        raise CbicReadError(f"no CBIC application: SELECT answered {selected.sw}", session.apdus)
    data = session.read_file(SFI_PORTRAIT, MAX_FILE_SIZE, "EF.PORTRAIT", chunk)
    if data is None:
        raise CbicReadError("the card has no EF.PORTRAIT", session.apdus)
    try:
        portrait = CbicPortrait.decode(data)
    except CbicFormatError as exc:
        raise CbicReadError(f"the portrait is unreadable: {exc}", session.apdus) from None
    if portrait.sha256() != expected_sha256:
        raise CbicReadError(
            "the portrait does not match the hash in the signed holder data", session.apdus
        )
    return portrait
