"""ISO 7816-4 APDUs: the request/response unit every smart card speaks.

A *command APDU* (C-APDU) is what the terminal sends to the card::

    CLA INS P1 P2 [Lc data] [Le]

- ``CLA`` is the class byte (interindustry ``0x00``, secure messaging ``0x0C``, proprietary
  ``0x80``...), ``INS`` the instruction (``0xA4`` SELECT, ``0x84`` GET CHALLENGE...), ``P1``/``P2``
  its parameters.
- ``Lc`` is the length of the command data (``Nc``); ``Le`` encodes ``Ne``, the maximum number of
  response data bytes the terminal expects.

Whether ``Lc``/``Le`` are present gives the four ISO *cases*:

====  =================  ==============================================
case  body               meaning
====  =================  ==============================================
1     (empty)            no data sent, none expected
2     Le                 no data sent, up to Ne bytes expected
3     Lc data            data sent, none expected
4     Lc data Le         data sent, up to Ne bytes expected
====  =================  ==============================================

Each length field comes in a *short* form (one byte: ``Nc`` 1..255, ``Ne`` 1..256 where the byte
``00`` means 256) and an *extended* form (``Nc`` up to 65 535, ``Ne`` up to 65 536), announced by a
``00`` byte right after the header; in case 4 extended, ``Le`` is then two bytes without another
``00``. An ``Le`` of ``00``/``0000`` therefore means "the maximum", never "zero bytes".

A *response APDU* (R-APDU) is ``[data] SW1 SW2``: the two trailing bytes are the status word,
``9000`` meaning success (see :class:`StatusWord`).

This module only does framing: it never talks to a card and never rejects a command for its
*values* (a card answers ``6E00`` to a class it does not support; that is the card's decision, and
PC/SC pseudo-APDUs use ``CLA FF``). Malformed bytes raise :class:`ApduError`, and nothing else.

>>> select = CommandApdu(0x00, 0xA4, 0x04, 0x0C, data=bytes.fromhex("A0000002471001"))
>>> select.to_bytes().hex().upper()
'00A4040C07A0000002471001'
>>> CommandApdu.parse(bytes.fromhex("0084000008")).le
8
>>> ResponseApdu.parse(bytes.fromhex("6A82")).sw
StatusWord(0x6A82)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

__all__ = [
    "MAX_NC",
    "MAX_NE",
    "ApduError",
    "CommandApdu",
    "ResponseApdu",
    "StatusWord",
    "StatusWordError",
]

#: Largest command data field (extended Lc is two bytes, and 0 is not a valid Lc).
MAX_NC = 0xFFFF
#: Largest expected response length (extended Le ``0000``).
MAX_NE = 0x10000

_SHORT_MAX_NC = 0xFF
_SHORT_MAX_NE = 0x100

Bytes = bytes | bytearray | memoryview


class ApduError(ValueError):
    """Bytes that are not a well-formed APDU, or APDU fields out of range."""


class StatusWord(int):
    """The two status bytes SW1 SW2 ending every response, as one 16-bit integer.

    It is an ``int``, so ``sw == 0x9000`` works, and it adds the ISO 7816-4 reading of the
    value: ``9000`` and ``61XX`` are normal processing, ``62XX``/``63XX`` warnings, anything else
    an error. Named constants cover the status words our cards use; build any other with
    ``StatusWord(0x6A80)``.
    """

    SUCCESS: ClassVar[StatusWord]
    VERIFICATION_FAILED: ClassVar[StatusWord]
    END_OF_FILE: ClassVar[StatusWord]
    WRONG_LENGTH: ClassVar[StatusWord]
    LOGICAL_CHANNEL_NOT_SUPPORTED: ClassVar[StatusWord]
    SECURE_MESSAGING_NOT_SUPPORTED: ClassVar[StatusWord]
    CHAINING_NOT_SUPPORTED: ClassVar[StatusWord]
    SECURITY_STATUS_NOT_SATISFIED: ClassVar[StatusWord]
    CONDITIONS_NOT_SATISFIED: ClassVar[StatusWord]
    SM_DATA_OBJECTS_MISSING: ClassVar[StatusWord]
    SM_DATA_OBJECTS_INCORRECT: ClassVar[StatusWord]
    WRONG_DATA: ClassVar[StatusWord]
    FUNCTION_NOT_SUPPORTED: ClassVar[StatusWord]
    FILE_NOT_FOUND: ClassVar[StatusWord]
    RECORD_NOT_FOUND: ClassVar[StatusWord]
    INCORRECT_P1P2: ClassVar[StatusWord]
    REFERENCED_DATA_NOT_FOUND: ClassVar[StatusWord]
    WRONG_P1P2: ClassVar[StatusWord]
    INS_NOT_SUPPORTED: ClassVar[StatusWord]
    CLA_NOT_SUPPORTED: ClassVar[StatusWord]
    NO_PRECISE_DIAGNOSIS: ClassVar[StatusWord]

    def __new__(cls, value: int) -> StatusWord:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"a status word is an int, not {type(value).__name__}")
        if not 0 <= value <= 0xFFFF:
            raise ApduError(f"status word {value:#x} does not fit in two bytes")
        return super().__new__(cls, value)

    @classmethod
    def from_bytes_pair(cls, sw1: int, sw2: int) -> StatusWord:
        """Build from the two bytes as they appear on the wire."""
        if not (0 <= sw1 <= 0xFF and 0 <= sw2 <= 0xFF):
            raise ApduError(f"SW1/SW2 must be bytes, got {sw1:#x} {sw2:#x}")
        return cls(sw1 << 8 | sw2)

    @classmethod
    def bytes_remaining(cls, count: int) -> StatusWord:
        """``61XX``: success, and ``count`` more bytes wait for GET RESPONSE (0 means 256+)."""
        return cls(0x6100 | (count & 0xFF))

    @classmethod
    def wrong_le(cls, exact: int) -> StatusWord:
        """``6CXX``: wrong Le; resend the command with Le = ``exact`` (0 means 256)."""
        return cls(0x6C00 | (exact & 0xFF))

    @property
    def sw1(self) -> int:
        return int(self) >> 8

    @property
    def sw2(self) -> int:
        return int(self) & 0xFF

    @property
    def is_success(self) -> bool:
        """Normal processing: ``9000``, or ``61XX`` (more data available)."""
        return self == 0x9000 or self.sw1 == 0x61

    @property
    def is_warning(self) -> bool:
        """Processed with a warning (``62XX``, ``63XX``), e.g. end of file reached early."""
        return self.sw1 in (0x62, 0x63)

    def to_bytes(  # type: ignore[override]
        self, length: int = 2, byteorder: Literal["little", "big"] = "big", *, signed: bool = False
    ) -> bytes:
        """The two wire bytes SW1 SW2 (``int.to_bytes`` with the defaults a status word needs)."""
        return int(self).to_bytes(length, byteorder, signed=signed)

    def __repr__(self) -> str:
        return f"StatusWord(0x{int(self):04X})"

    def __str__(self) -> str:
        return f"{int(self):04X}"


StatusWord.SUCCESS = StatusWord(0x9000)
StatusWord.VERIFICATION_FAILED = StatusWord(0x6300)
StatusWord.END_OF_FILE = StatusWord(0x6282)
StatusWord.WRONG_LENGTH = StatusWord(0x6700)
StatusWord.LOGICAL_CHANNEL_NOT_SUPPORTED = StatusWord(0x6881)
StatusWord.SECURE_MESSAGING_NOT_SUPPORTED = StatusWord(0x6882)
StatusWord.CHAINING_NOT_SUPPORTED = StatusWord(0x6884)
StatusWord.SECURITY_STATUS_NOT_SATISFIED = StatusWord(0x6982)
StatusWord.CONDITIONS_NOT_SATISFIED = StatusWord(0x6985)
StatusWord.SM_DATA_OBJECTS_MISSING = StatusWord(0x6987)
StatusWord.SM_DATA_OBJECTS_INCORRECT = StatusWord(0x6988)
StatusWord.WRONG_DATA = StatusWord(0x6A80)
StatusWord.FUNCTION_NOT_SUPPORTED = StatusWord(0x6A81)
StatusWord.FILE_NOT_FOUND = StatusWord(0x6A82)
StatusWord.RECORD_NOT_FOUND = StatusWord(0x6A83)
StatusWord.INCORRECT_P1P2 = StatusWord(0x6A86)
StatusWord.REFERENCED_DATA_NOT_FOUND = StatusWord(0x6A88)
StatusWord.WRONG_P1P2 = StatusWord(0x6B00)
StatusWord.INS_NOT_SUPPORTED = StatusWord(0x6D00)
StatusWord.CLA_NOT_SUPPORTED = StatusWord(0x6E00)
StatusWord.NO_PRECISE_DIAGNOSIS = StatusWord(0x6F00)


class StatusWordError(Exception):
    """A card answered with a status word that is not success.

    Raised on the terminal side by :meth:`ResponseApdu.check`. A virtual card's instruction
    handler may raise it too, to answer with that status word.
    """

    def __init__(self, sw: int, message: str = "") -> None:
        self.sw = StatusWord(sw)
        super().__init__(f"card answered {self.sw}" + (f": {message}" if message else ""))


def _as_bytes(raw: Bytes, what: str) -> bytes:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes, not {type(raw).__name__}")
    return bytes(raw)


def _check_byte(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ApduError(f"{name} must be an int in 0..255, got {value!r}")


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A command APDU: header, optional data (``Nc = len(data)``) and optional ``Ne``.

    ``le`` is *Ne*, the number of response bytes asked for, not the encoded Le byte: ``None``
    means no Le field, ``256`` is what the short Le byte ``00`` means, ``65536`` the extended
    ``0000``. ``le=0`` is rejected because it is ambiguous.

    The encoding is short unless a field needs the extended form; ``extended=True`` forces it.
    :meth:`parse` records which form it saw, so ``CommandApdu.parse(b).to_bytes() == b``.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            _check_byte(name, getattr(self, name))
        # frozen: normalise through object.__setattr__ (bytearray in, bytes out)
        object.__setattr__(self, "data", _as_bytes(self.data, "data"))
        if len(self.data) > MAX_NC:
            raise ApduError(f"data is {len(self.data)} bytes, at most {MAX_NC} fit in an APDU")
        le = self.le
        if le is not None and (
            isinstance(le, bool) or not isinstance(le, int) or not 1 <= le <= MAX_NE
        ):
            raise ApduError(
                f"le is Ne, the expected length: 1..{MAX_NE} or None, got {le!r} "
                "(the Le byte 00 means 256, extended 0000 means 65536)"
            )
        # case 1 has no length fields, so "extended" would be unobservable; keep equality honest
        if not self.data and le is None:
            object.__setattr__(self, "extended", False)
        elif len(self.data) > _SHORT_MAX_NC or (le is not None and le > _SHORT_MAX_NE):
            object.__setattr__(self, "extended", True)

    @property
    def case(self) -> int:
        """ISO 7816-3 case: 1 (no data, no Le), 2 (Le), 3 (data), 4 (data and Le)."""
        return 1 + (self.le is not None) + 2 * bool(self.data)

    @property
    def nc(self) -> int:
        """Length of the command data field."""
        return len(self.data)

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def to_bytes(self) -> bytes:
        """Encode for the wire."""
        body = bytearray()
        if self.extended:
            if self.data:
                body += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                # 65536 wraps to 0000; the 00 marker is already there when data precedes Le
                body += (b"" if self.data else b"\x00") + (self.le % MAX_NE).to_bytes(2, "big")
        else:
            if self.data:
                body += bytes((len(self.data),)) + self.data
            if self.le is not None:
                body.append(self.le % _SHORT_MAX_NE)
        return self.header + bytes(body)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def parse(cls, raw: Bytes) -> CommandApdu:
        """Decode a command APDU, telling the cases apart by the length of the body.

        Raises :class:`ApduError` for anything that is not exactly one well-formed APDU.
        """
        apdu = _as_bytes(raw, "a command APDU")
        if len(apdu) < 4:
            raise ApduError(f"a command APDU has a 4-byte header, got {len(apdu)} bytes")
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        n = len(body)

        def make(data: bytes = b"", le: int | None = None, *, extended: bool) -> CommandApdu:
            return cls(cla, ins, p1, p2, data, le, extended=extended)

        if n == 0:
            return make(extended=False)
        if n == 1:  # case 2 short
            return make(le=body[0] or _SHORT_MAX_NE, extended=False)
        if body[0] != 0:  # short Lc: case 3 or 4 short
            lc = body[0]
            if n == 1 + lc:
                return make(body[1:], extended=False)
            if n == 2 + lc:
                return make(body[1:-1], body[-1] or _SHORT_MAX_NE, extended=False)
            raise ApduError(f"Lc says {lc} data bytes but the body holds {n - 1} bytes after it")
        # A leading 00 with more bytes after it announces extended length fields.
        if n == 3:  # case 2 extended
            return make(le=int.from_bytes(body[1:3], "big") or MAX_NE, extended=True)
        if n < 3:
            raise ApduError(f"a body starting with 00 is extended and needs 3+ bytes, got {n}")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise ApduError("extended Lc is 0000, which is not a valid data length")
        if n == 3 + lc:
            return make(body[3:], extended=True)
        if n == 5 + lc:
            return make(body[3:-2], int.from_bytes(body[-2:], "big") or MAX_NE, extended=True)
        raise ApduError(f"extended Lc says {lc} data bytes but the body holds {n - 3} after it")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU: optional data followed by the status word."""

    data: bytes = b""
    sw: StatusWord = StatusWord.SUCCESS

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _as_bytes(self.data, "data"))
        if len(self.data) > MAX_NE:
            raise ApduError(f"response data is {len(self.data)} bytes, at most {MAX_NE}")
        if not isinstance(self.sw, StatusWord):
            object.__setattr__(self, "sw", StatusWord(self.sw))

    @property
    def sw1(self) -> int:
        return self.sw.sw1

    @property
    def sw2(self) -> int:
        return self.sw.sw2

    def check(self) -> ResponseApdu:
        """Return ``self`` if the status word is success, else raise :class:`StatusWordError`.

        Lets the terminal side read ``conn.transmit(cmd).check().data`` in one go.
        """
        if not self.sw.is_success:
            raise StatusWordError(self.sw)
        return self

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes()

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def parse(cls, raw: Bytes) -> ResponseApdu:
        """Split the trailing status word from the data."""
        response = _as_bytes(raw, "a response APDU")
        if len(response) < 2:
            raise ApduError(f"a response APDU ends with SW1 SW2, got {len(response)} bytes")
        if len(response) > MAX_NE + 2:
            raise ApduError(f"a response APDU holds at most {MAX_NE} data bytes")
        return cls(response[:-2], StatusWord.from_bytes_pair(response[-2], response[-1]))
