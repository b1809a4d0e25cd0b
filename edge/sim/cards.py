"""Virtual smart cards for vpcd: a minimal ISO 7816-4 card that richer cards build on.

:class:`IsoCard` parses each command APDU, checks the class byte, and dispatches on INS to a
method marked with :func:`instruction`. A handler receives the parsed :class:`CommandApdu` and
returns a :class:`ResponseApdu`, or raises :class:`StatusWordError` to answer with a status word.
The CBIC card and the eMRTD chip subclass it and add instructions::

    class ReadableCard(IsoCard):
        SUPPORTED_CLASSES = IsoCard.SUPPORTED_CLASSES | {0x0C}  # also secure messaging

        @instruction(0xB0)
        def read_binary(self, command: CommandApdu) -> ResponseApdu:
            if self.selected is None:
                raise StatusWordError(StatusWord.CONDITIONS_NOT_SATISFIED)
            ...

Out of the box it answers SELECT by AID and GET CHALLENGE; everything else gets the ISO error:
``6D00`` for an unknown INS, ``6E00`` for an unsupported CLA, ``6700`` for bytes that are not an
APDU at all.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from functools import reduce
from typing import ClassVar, TypeVar

from edge.documents.apdu import (
    ApduError,
    CommandApdu,
    ResponseApdu,
    StatusWord,
    StatusWordError,
)
from edge.sim.vpcd import VirtualCard

__all__ = [
    "DEMO_AID",
    "INS_GET_CHALLENGE",
    "INS_SELECT",
    "IsoCard",
    "build_atr",
    "instruction",
]

INS_SELECT = 0xA4
INS_GET_CHALLENGE = 0x84

#: Our demo application: "F0" starts an unregistered proprietary AID, then "BLANE" and 01.
DEMO_AID = bytes.fromhex("F0") + b"BLANE" + b"\x01"

_Handler = Callable[["IsoCard", CommandApdu], ResponseApdu]
_H = TypeVar("_H", bound=_Handler)


def build_atr(historical: bytes) -> bytes:
    """An ATR offering only T=1, with the given historical bytes and a valid TCK.

    Layout (ISO 7816-3): ``TS=3B`` (direct convention), ``T0`` (high nibble 8: TD1 follows;
    low nibble: number of historical bytes), ``TD1=01`` (T=1, no more interface bytes), the
    historical bytes, then ``TCK``, chosen so that T0..TCK XOR to zero. TCK is mandatory as soon as
    any protocol other than T=0 is offered.
    """
    if len(historical) > 15:
        raise ValueError(f"at most 15 historical bytes fit in an ATR, got {len(historical)}")
    body = bytes((0x80 | len(historical), 0x01)) + historical
    tck = reduce(lambda acc, b: acc ^ b, body, 0)
    return b"\x3b" + body + bytes((tck,))


def instruction(ins: int) -> Callable[[_H], _H]:
    """Mark a method of an :class:`IsoCard` subclass as the handler of instruction ``ins``."""
    if not 0 <= ins <= 0xFF:
        raise ValueError(f"INS must be a byte, got {ins:#x}")

    def mark(handler: _H) -> _H:
        handler._iso_ins = ins  # type: ignore[attr-defined]
        return handler

    return mark


class IsoCard(VirtualCard):
    """A minimal ISO 7816-4 card: SELECT by AID and GET CHALLENGE, dispatch by INS.

    ``aids`` are the applications the card holds (exact match; no partial DF names).
    ``random`` produces challenge bytes; pass a seeded source for reproducible runs.
    """

    #: Historical bytes: category 80 (COMPACT-TLV follows), then issuer data (tag 5) "BLANE".
    ATR: ClassVar[bytes] = build_atr(b"\x80\x55BLANE")
    #: Class bytes accepted: plain interindustry class, logical channel 0, no secure messaging.
    SUPPORTED_CLASSES: ClassVar[frozenset[int]] = frozenset({0x00})
    #: Largest GET CHALLENGE answer (a short Le of 00).
    MAX_CHALLENGE: ClassVar[int] = 256

    _instructions: ClassVar[dict[int, str]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._instructions = _collect_instructions(cls)

    def __init__(
        self,
        aids: Iterable[bytes] = (DEMO_AID,),
        *,
        atr: bytes | None = None,
        random: Callable[[int], bytes] = secrets.token_bytes,
        pull_after: int | None = None,
    ) -> None:
        self.atr = self.ATR if atr is None else bytes(atr)
        self.aids = frozenset(bytes(aid) for aid in aids)
        self._random = random
        #: AID of the selected application, or None; forgotten on reset and power-on.
        self.selected: bytes | None = None
        #: The last GET CHALLENGE answer (authentication protocols check it later).
        self.last_challenge: bytes | None = None
        #: Command APDUs received through :meth:`transmit` (the vpcd path).
        self.apdu_count = 0
        #: Take the card out of the reader when command APDU ``pull_after + 1`` arrives: a
        #: traveller pulling the card mid-read. Needs :attr:`unplug`.
        self.pull_after = pull_after
        #: Called once to take the card out of the reader; wire it to ``VpcdClient.remove``.
        self.unplug: Callable[[], None] | None = None
        self.pulled = False

    def reset(self) -> None:
        self.selected = None
        self.last_challenge = None

    # -- dispatch ----------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        self.apdu_count += 1
        if self.pull_after is not None and self.apdu_count > self.pull_after:
            if not self.pulled and self.unplug is not None:
                self.pulled = True
                self.unplug()
            # Never delivered when unplugged; without an unplug hook the card is merely mute.
            return StatusWord.NO_PRECISE_DIAGNOSIS.to_bytes()
        return self.answer(apdu)

    def answer(self, apdu: bytes) -> bytes:
        """The response to one command APDU's bytes (a card that was not pulled)."""
        try:
            command = CommandApdu.parse(apdu)
        except ApduError:
            return StatusWord.WRONG_LENGTH.to_bytes()
        return self.process(command).to_bytes()

    def process(self, command: CommandApdu) -> ResponseApdu:
        """Answer one parsed command: class check, then the INS handler."""
        if command.cla not in self.SUPPORTED_CLASSES:
            return ResponseApdu(sw=StatusWord.CLA_NOT_SUPPORTED)
        name = self._instructions.get(command.ins)
        if name is None:
            return ResponseApdu(sw=StatusWord.INS_NOT_SUPPORTED)
        handler: Callable[[CommandApdu], ResponseApdu] = getattr(self, name)
        try:
            return handler(command)
        except StatusWordError as refusal:
            return ResponseApdu(sw=refusal.sw)

    # -- instructions ------------------------------------------------------------------------

    @instruction(INS_SELECT)
    def select(self, command: CommandApdu) -> ResponseApdu:
        """SELECT by DF name (P1=04), first occurrence; P2=00 returns the FCI, P2=0C nothing."""
        if command.p1 != 0x04 or command.p2 not in (0x00, 0x0C):
            raise StatusWordError(StatusWord.INCORRECT_P1P2, "only SELECT by AID is supported")
        if not 1 <= command.nc <= 16:
            raise StatusWordError(StatusWord.WRONG_LENGTH, "an AID is 1..16 bytes")
        if command.data not in self.aids:
            raise StatusWordError(StatusWord.FILE_NOT_FOUND)
        self.selected = command.data
        if command.p2 == 0x0C or command.le is None:
            return ResponseApdu()
        # FCI template (6F) holding just the DF name (84)
        fci = _tlv(0x6F, _tlv(0x84, command.data))
        if command.le < len(fci):
            raise StatusWordError(StatusWord.wrong_le(len(fci)))
        return ResponseApdu(fci)

    @instruction(INS_GET_CHALLENGE)
    def get_challenge(self, command: CommandApdu) -> ResponseApdu:
        """GET CHALLENGE: Ne fresh random bytes (P1=P2=00, no data, Le required)."""
        if command.p1 or command.p2:
            raise StatusWordError(StatusWord.INCORRECT_P1P2)
        if command.data or command.le is None or command.le > self.MAX_CHALLENGE:
            raise StatusWordError(StatusWord.WRONG_LENGTH)
        self.last_challenge = self._random(command.le)
        return ResponseApdu(self.last_challenge)


def _collect_instructions(cls: type) -> dict[int, str]:
    """INS -> method name over the MRO, nearest class winning.

    Names rather than functions: a subclass overriding ``select`` without repeating the
    decorator still gets called for INS A4.
    """
    table: dict[int, str] = {}
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            ins = getattr(member, "_iso_ins", None)
            if ins is not None:
                table[ins] = name
    return table


IsoCard._instructions = _collect_instructions(IsoCard)


def _tlv(tag: int, value: bytes) -> bytes:
    # short BER-TLV lengths are enough for the FCI we build (< 128 bytes)
    return bytes((tag, len(value))) + value
