"""What the ATR tells the driver about a card: protocols, and whether it takes extended APDUs.

Pure code (no I/O). ISO 7816-3 §8 lays the ATR out as::

    TS T0 [TA1 TB1 TC1 TD1] [TA2 TB2 TC2 TD2] ... historical bytes (K of them) [TCK]

``T0`` and each ``TDi`` say which interface bytes follow (high nibble: bit 1 TA, 2 TB, 3 TC, 4 TD);
the low nibble of ``T0`` is K, the number of historical bytes, and of ``TDi`` a protocol (0: T=0,
1: T=1, 15: global bytes). ``TCK`` is present when any protocol other than T=0 is announced.

The historical bytes (ISO 7816-4 §8.1.1) start with a *category indicator*: ``00`` or ``80`` means
COMPACT-TLV data objects follow (one byte: tag in the high nibble, length in the low nibble; with
``00`` a 3-byte status indicator ends the bytes and is not TLV). The object ``7X``, *card
capabilities* (§8.1.1.2.7), holds up to three software function tables; the third says:

====  ==================================================
bit   meaning
====  ==================================================
b8    command chaining supported
b7    extended Lc and Le fields supported
b6-4  logical channel assignment
b3-1  maximum number of logical channels
====  ==================================================

Many cards (most ePassports among them) say nothing here; they then get short APDUs unless the
kiosk's configuration says otherwise. A contactless card's ATR is made up by the reader from the
ATS or ATQB (PC/SC part 3), so its historical bytes are only as reliable as that card's ATS.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Atr", "CardCapabilities", "capabilities_from_atr", "compact_tlv", "parse_atr"]

_T0_ONLY = frozenset({0})


@dataclass(frozen=True, slots=True)
class Atr:
    """An ATR split into the parts the driver uses."""

    raw: bytes
    #: Protocols announced in TD1, TD2...; T=0 alone when there is no TD byte.
    protocols: frozenset[int]
    historical: bytes
    #: False when the bytes did not parse (truncated, bad TS); ``historical`` is then empty.
    well_formed: bool = True


def parse_atr(raw: bytes) -> Atr:
    """Split an ATR; never raises (a malformed ATR gives ``well_formed=False``)."""
    atr = bytes(raw)
    bad = Atr(atr, frozenset(), b"", well_formed=False)
    if len(atr) < 2 or atr[0] not in (0x3B, 0x3F):
        return bad
    y, k = atr[1] >> 4, atr[1] & 0x0F
    position = 2
    protocols: list[int] = []
    while True:
        count = bin(y).count("1")  # TA, TB, TC, TD present per bit
        if position + count > len(atr):
            return bad
        has_td = bool(y & 0x8)
        position += count
        if not has_td:
            break
        td = atr[position - 1]
        if td & 0x0F != 15:  # T=15 carries global bytes, it is not a protocol
            protocols.append(td & 0x0F)
        y = td >> 4
    announced = frozenset(protocols) or _T0_ONLY
    end = position + k
    tck = 0 if announced <= _T0_ONLY else 1
    if end + tck != len(atr):
        return bad
    return Atr(atr, announced, atr[position:end])


def compact_tlv(data: bytes) -> dict[int, bytes] | None:
    """COMPACT-TLV objects by tag (first occurrence wins); None if the bytes do not parse."""
    objects: dict[int, bytes] = {}
    position = 0
    while position < len(data):
        tag, length = data[position] >> 4, data[position] & 0x0F
        value = data[position + 1 : position + 1 + length]
        if len(value) != length:
            return None
        objects.setdefault(tag, value)
        position += 1 + length
    return objects


@dataclass(frozen=True, slots=True)
class CardCapabilities:
    """What the driver may use with a card. ``source`` says where it was learnt."""

    extended_length: bool = False
    command_chaining: bool = False
    source: str = "default"  # "atr", "config" or "default" (the ATR said nothing)


_CARD_CAPABILITIES_TAG = 0x7
_CHAINING = 0x80
_EXTENDED = 0x40


def capabilities_from_atr(raw: bytes) -> CardCapabilities:
    """Read the card capabilities data object from the ATR's historical bytes, if any."""
    historical = parse_atr(raw).historical
    if not historical:
        return CardCapabilities()
    category = historical[0]
    if category == 0x80:
        body = historical[1:]
    elif category == 0x00 and len(historical) >= 4:  # a 3-byte status indicator ends it
        body = historical[1:-3]
    else:
        return CardCapabilities()
    objects = compact_tlv(body)
    tables = (objects or {}).get(_CARD_CAPABILITIES_TAG)
    if tables is None or len(tables) < 3:
        return CardCapabilities()
    third = tables[2]
    return CardCapabilities(
        extended_length=bool(third & _EXTENDED),
        command_chaining=bool(third & _CHAINING),
        source="atr",
    )
