"""Basic Access Control (Doc 9303 Part 11 §4.3, worked example in Appendix D).

BAC proves that the terminal has seen the data page, and sets up secure messaging:

1. **Document basic access keys** (:class:`BacKeys`): the *MRZ information* is the document
   number (padded with ``<`` to at least 9 characters) and its check digit, the date of birth
   ``YYMMDD`` and its check digit, the date of expiry ``YYMMDD`` and its check digit.
   ``K_seed`` is the first 16 bytes of its SHA-1; ``K_enc`` and ``K_mac`` come from the KDF
   (:func:`~.crypto.derive_key`, counters 1 and 2).
2. **Mutual authentication**: the terminal asks GET CHALLENGE for the chip's 8-byte ``RND.IC``,
   picks ``RND.IFD`` and a 16-byte key share ``K.IFD``, and sends EXTERNAL AUTHENTICATE with
   ``E_IFD ‖ M_IFD`` where ``E_IFD = 3DES(K_enc, RND.IFD ‖ RND.IC ‖ K.IFD)`` and ``M_IFD`` is its
   retail MAC under ``K_mac``. The chip checks the MAC and that its own nonce came back, and
   answers ``E_IC ‖ M_IC`` over ``RND.IC ‖ RND.IFD ‖ K.IC``.
3. **Session keys**: ``K_seed = K.IFD xor K.IC``, then ``KS_enc`` and ``KS_mac`` by the KDF, and
   the send sequence counter ``SSC = RND.IC[4:] ‖ RND.IFD[4:]``
   (:class:`~.sm.SecureMessaging`).

:class:`BacTerminal` is the inspection system's side, :class:`BacChip` the chip's (for virtual
chips). Both take a ``random`` callable (``n -> n random bytes``) so tests are deterministic.

>>> keys = BacKeys.from_mrz("L898902C<", "690806", "940623")
>>> keys.k_enc.hex().upper()
'AB94FDECF2674FDFB9B391F85D7F76F2'
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge.documents.apdu import CommandApdu
from edge.documents.emrtd.crypto import (
    ENC,
    MAC,
    derive_key,
    equal,
    pad,
    retail_mac,
    tdes_decrypt,
    tdes_encrypt,
)
from edge.documents.emrtd.sm import SecureMessaging
from edge.documents.mrz import check_digit

if TYPE_CHECKING:
    from edge.documents.mrz import MrzDocument

__all__ = [
    "INS_EXTERNAL_AUTHENTICATE",
    "INS_GET_CHALLENGE",
    "NONCE_SIZE",
    "BacChip",
    "BacError",
    "BacKeys",
    "BacTerminal",
    "get_challenge_command",
    "mrz_information",
    "session_from_key_shares",
]

INS_GET_CHALLENGE = 0x84
INS_EXTERNAL_AUTHENTICATE = 0x82
#: RND.IC and RND.IFD are 8 bytes; K.IFD and K.IC 16.
NONCE_SIZE = 8
KEY_SHARE_SIZE = 16
#: E (32 bytes) ‖ M (8 bytes), in both directions.
CRYPTOGRAM_SIZE = 40

Random = Callable[[int], bytes]

#: Where birth and expiry dates (YYMMDD) sit on the second MRZ line of each format.
_DATE_COLUMNS = {
    "TD1": (slice(0, 6), slice(8, 14)),
    "TD2": (slice(13, 19), slice(21, 27)),
    "TD3": (slice(13, 19), slice(21, 27)),
}


class BacError(Exception):
    """Mutual authentication failed: wrong MAC, wrong nonce, or a malformed cryptogram.

    On the terminal side this almost always means the MRZ keys are wrong (or the chip was
    swapped mid-session); a chip answers it with ``6300`` (or ``6982``).
    """


def _mrz_field(value: str, name: str, *, length: int | None = None) -> str:
    value = value.strip().upper()
    if not value or any(not (c.isascii() and (c.isalnum() or c == "<")) for c in value):
        raise ValueError(f"{name} must be MRZ characters (A-Z, 0-9, <), got {value!r}")
    if length is not None and (len(value) != length or not value.isdigit()):
        raise ValueError(f"{name} must be {length} digits (YYMMDD), got {value!r}")
    return value


def mrz_information(document_number: str, birth_date: str, expiry_date: str) -> str:
    """The BAC key input: each field followed by its check digit.

    The document number is padded with ``<`` to 9 characters; a longer one (whose MRZ check
    digit position holds ``<`` and which continues in the optional data) is used in full.
    Dates are ``YYMMDD`` as printed in the MRZ.

    >>> mrz_information("L898902C", "690806", "940623")
    'L898902C<369080619406236'
    """
    number = _mrz_field(document_number, "document number").ljust(9, "<")
    birth = _mrz_field(birth_date, "birth date", length=6)
    expiry = _mrz_field(expiry_date, "expiry date", length=6)
    return "".join(f"{value}{check_digit(value)}" for value in (number, birth, expiry))


@dataclass(frozen=True, slots=True)
class BacKeys:
    """The document basic access keys: ``K_seed`` and the two 3DES keys derived from it."""

    k_seed: bytes
    k_enc: bytes = field(repr=False)
    k_mac: bytes = field(repr=False)

    @classmethod
    def from_seed(cls, k_seed: bytes) -> BacKeys:
        """Derive ``K_enc`` (counter 1) and ``K_mac`` (counter 2) from a 16-byte seed."""
        return cls(bytes(k_seed), derive_key(k_seed, ENC), derive_key(k_seed, MAC))

    @classmethod
    def from_mrz_information(cls, information: str) -> BacKeys:
        """Keys from a ready MRZ information string (see :func:`mrz_information`)."""
        return cls.from_seed(hashlib.sha1(information.encode("ascii")).digest()[:16])

    @classmethod
    def from_mrz(cls, document_number: str, birth_date: str, expiry_date: str) -> BacKeys:
        """Keys from the three MRZ fields (without check digits; they are computed)."""
        return cls.from_mrz_information(mrz_information(document_number, birth_date, expiry_date))

    @classmethod
    def from_mrz_document(cls, document: MrzDocument) -> BacKeys:
        """Keys from an MRZ parsed by :func:`edge.documents.mrz.parse` (TD1, TD2 or TD3).

        The dates are taken as printed (``YYMMDD`` from the MRZ lines), not from the parsed
        ISO dates, which are None when a date is impossible; the chip's keys use what is printed.
        """
        if document.format not in _DATE_COLUMNS or len(document.lines) < 2:
            raise ValueError(f"a {document.format} MRZ belongs to no chip that BAC opens")
        birth, expiry = _DATE_COLUMNS[document.format]
        line = document.lines[1]
        return cls.from_mrz(document.document_number, line[birth], line[expiry])


def _seal(keys: BacKeys, plain: bytes) -> bytes:
    """``E ‖ M``: 3DES-CBC of the 32-byte plaintext, then the retail MAC of the cryptogram."""
    encrypted = tdes_encrypt(keys.k_enc, plain)
    return encrypted + retail_mac(keys.k_mac, pad(encrypted))


def _open(keys: BacKeys, cryptogram: bytes) -> bytes:
    """Check the MAC of ``E ‖ M`` first, then decrypt ``E``."""
    if len(cryptogram) != CRYPTOGRAM_SIZE:
        raise BacError(f"the authentication cryptogram is {len(cryptogram)} bytes, not 40")
    encrypted, mac = cryptogram[:32], cryptogram[32:]
    if not equal(retail_mac(keys.k_mac, pad(encrypted)), mac):
        raise BacError("the authentication MAC is wrong (wrong MRZ keys?)")
    return tdes_decrypt(keys.k_enc, encrypted)


def session_from_key_shares(
    k_ifd: bytes, k_ic: bytes, rnd_ic: bytes, rnd_ifd: bytes
) -> SecureMessaging:
    """The secure messaging session both sides derive after a successful authentication."""
    seed = bytes(a ^ b for a, b in zip(k_ifd, k_ic, strict=True))
    ssc = rnd_ic[-4:] + rnd_ifd[-4:]
    return SecureMessaging(derive_key(seed, ENC), derive_key(seed, MAC), ssc)


def get_challenge_command() -> CommandApdu:
    """GET CHALLENGE for the chip's 8-byte nonce: ``00 84 00 00 08``."""
    return CommandApdu(0x00, INS_GET_CHALLENGE, 0x00, 0x00, le=NONCE_SIZE)


class BacTerminal:
    """The inspection system's side of BAC.

    Usage::

        bac = BacTerminal(BacKeys.from_mrz(number, birth, expiry))
        rnd_ic = transmit(get_challenge_command()).check().data
        response = transmit(bac.external_authenticate(rnd_ic))
        if response.sw != 0x9000: ...          # 6300: the chip refused (wrong MRZ)
        sm = bac.complete(response.data)       # raises BacError if the chip's answer is bad

    ``random`` supplies ``RND.IFD`` (8 bytes) then ``K.IFD`` (16 bytes).
    """

    def __init__(self, keys: BacKeys, *, random: Random = secrets.token_bytes) -> None:
        self.keys = keys
        self._random = random
        self._pending: tuple[bytes, bytes, bytes] | None = None

    def authentication_data(self, rnd_ic: bytes) -> bytes:
        """``E_IFD ‖ M_IFD`` (40 bytes) for the chip's challenge ``rnd_ic``."""
        if len(rnd_ic) != NONCE_SIZE:
            raise BacError(f"RND.IC is {len(rnd_ic)} bytes, not {NONCE_SIZE}")
        rnd_ifd = self._random(NONCE_SIZE)
        k_ifd = self._random(KEY_SHARE_SIZE)
        if len(rnd_ifd) != NONCE_SIZE or len(k_ifd) != KEY_SHARE_SIZE:
            raise ValueError("the random source returned the wrong number of bytes")
        self._pending = (bytes(rnd_ic), rnd_ifd, k_ifd)
        return _seal(self.keys, rnd_ifd + rnd_ic + k_ifd)

    def external_authenticate(self, rnd_ic: bytes) -> CommandApdu:
        """The EXTERNAL AUTHENTICATE command: ``00 82 00 00 28 <E_IFD ‖ M_IFD> 28``."""
        return CommandApdu(
            0x00,
            INS_EXTERNAL_AUTHENTICATE,
            0x00,
            0x00,
            self.authentication_data(rnd_ic),
            CRYPTOGRAM_SIZE,
        )

    def complete(self, response_data: bytes) -> SecureMessaging:
        """Check the chip's ``E_IC ‖ M_IC`` (MAC first, then both nonces) and open the session.

        Raises :class:`BacError` if the MAC is wrong or the nonces do not match. Single use:
        the pending nonces are forgotten either way.
        """
        if self._pending is None:
            raise BacError("no authentication is pending; call external_authenticate first")
        rnd_ic, rnd_ifd, k_ifd = self._pending
        self._pending = None
        plain = _open(self.keys, response_data)
        if not equal(plain[:8], rnd_ic) or not equal(plain[8:16], rnd_ifd):
            raise BacError("the chip's answer does not carry our nonces")
        return session_from_key_shares(k_ifd, plain[16:], rnd_ic, rnd_ifd)


class BacChip:
    """The chip's side of BAC, for virtual chips.

    Usage, inside the chip's instruction handlers::

        bac = BacChip(keys)
        rnd_ic = bac.challenge()                         # answer to GET CHALLENGE (Le 08)
        answer, sm = bac.authenticate(command.data)      # EXTERNAL AUTHENTICATE; BacError -> 6300

    ``random`` supplies ``RND.IC`` (8 bytes) then ``K.IC`` (16 bytes).
    """

    def __init__(self, keys: BacKeys, *, random: Random = secrets.token_bytes) -> None:
        self.keys = keys
        self._random = random
        self._rnd_ic: bytes | None = None

    def challenge(self) -> bytes:
        """A fresh ``RND.IC``; the next :meth:`authenticate` must answer this one."""
        self._rnd_ic = self._random(NONCE_SIZE)
        if len(self._rnd_ic) != NONCE_SIZE:
            raise ValueError("the random source returned the wrong number of bytes")
        return self._rnd_ic

    def authenticate(self, command_data: bytes) -> tuple[bytes, SecureMessaging]:
        """Check the terminal's ``E_IFD ‖ M_IFD``; return ``E_IC ‖ M_IC`` and the chip's session.

        Raises :class:`BacError` on a wrong MAC, a nonce that is not the last challenge, or when
        no challenge was issued. The challenge is used up either way.
        """
        rnd_ic, self._rnd_ic = self._rnd_ic, None
        if rnd_ic is None:
            raise BacError("EXTERNAL AUTHENTICATE without a preceding GET CHALLENGE")
        plain = _open(self.keys, command_data)
        rnd_ifd, echoed, k_ifd = plain[:8], plain[8:16], plain[16:]
        if not equal(echoed, rnd_ic):
            raise BacError("the terminal did not answer our challenge")
        k_ic = self._random(KEY_SHARE_SIZE)
        if len(k_ic) != KEY_SHARE_SIZE:
            raise ValueError("the random source returned the wrong number of bytes")
        answer = _seal(self.keys, rnd_ic + rnd_ifd + k_ic)
        return answer, session_from_key_shares(k_ifd, k_ic, rnd_ic, rnd_ifd)
