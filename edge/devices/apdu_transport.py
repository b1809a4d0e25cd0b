"""One APDU layer over any card link: GET RESPONSE, wrong-Le resends, extended length or splitting.

Pure code: :func:`exchange` is a generator that *yields* the bytes of each command APDU to put on
the wire and is *sent* the bytes of each response, then returns the final
:class:`~edge.documents.apdu.ResponseApdu`. The card session drives it with blocking calls in a
worker thread (sync ``transmit``) or with awaits (``atransmit``), so both paths share every rule
below, and tests can drive it with an in-memory card.

What it does with one logical command:

1. **Length form.** A command that needs extended length (Nc > 255 or Ne > 256, or built with
   ``extended=True``) goes out as one extended APDU when the card supports it
   (:attr:`TransportOptions.extended_length`). Otherwise it is *split*: command data over 255
   bytes is sent with **command chaining** (ISO 7816-4 §5.1.1.1: every block but the last has CLA
   bit b5 = ``0x10`` set and no Le; an intermediate block must be answered ``9000``, anything else
   ends the chain and is returned), and Ne is capped at 256 (a short Le ``00``). A card that has
   more to say then answers ``61XX`` and step 3 fetches the rest; a card that does not (a plain
   READ BINARY) returns at most 256 bytes, which ISO allows (Ne is a maximum): reading further is
   the document reader's business (next offset).
2. **6CXX** (wrong Le): the same command is resent once with Le = XX (``00`` = 256).
3. **61XX** (more data): GET RESPONSE (``C0``) with Le = XX, repeated while the card answers
   ``61XX``, the data concatenated; the last status word is the result's.
4. **Refused extended length.** A card that was thought to take extended APDUs but answers
   ``6700`` (wrong length) to one is switched to the split form for the rest of the session, and
   the command is sent again split. A ``67XX`` answer means the command was not executed (a
   checking error), so resending it is safe.

:class:`ExchangeStats` counts commands, APDUs and bytes in both directions (benchmarks use them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from dataclasses import dataclass

from edge.devices.card_errors import CardProtocolError
from edge.documents.apdu import MAX_NE, ApduError, CommandApdu, ResponseApdu, StatusWord

__all__ = [
    "CHAINING_BIT",
    "INS_GET_RESPONSE",
    "Exchange",
    "ExchangeStats",
    "TransportOptions",
    "exchange",
    "get_response_class",
    "split_command",
]

INS_GET_RESPONSE = 0xC0
#: CLA bit b5: "command chaining, not the last command of the chain".
CHAINING_BIT = 0x10

_SHORT_NC = 0xFF
_SHORT_NE = 0x100
# 65 536 bytes arrive in 256 GET RESPONSEs of 256; allow a little slack, then call it a loop.
_MAX_GET_RESPONSES = 300

#: What :func:`exchange` yields (a C-APDU) and is sent (an R-APDU), and finally returns.
Exchange = Generator[bytes, bytes, ResponseApdu]


@dataclass(slots=True)
class TransportOptions:
    """Per-session link options; :func:`exchange` may turn ``extended_length`` off (step 4)."""

    extended_length: bool = False


@dataclass(slots=True)
class ExchangeStats:
    """Counters for one session (or summed over many with :meth:`add`)."""

    commands: int = 0  #: logical commands (transmit calls)
    apdus: int = 0  #: command APDUs on the wire, GET RESPONSEs and resends included
    bytes_sent: int = 0  #: bytes of those command APDUs
    bytes_received: int = 0  #: bytes of the response APDUs (status words included)
    get_responses: int = 0  #: GET RESPONSE commands sent for 61XX
    le_resends: int = 0  #: commands resent with the Le a 6CXX asked for
    chained_blocks: int = 0  #: command APDUs sent with the chaining bit set
    extended_apdus: int = 0  #: command APDUs sent in the extended length form
    extended_fallbacks: int = 0  #: extended APDUs refused with 6700 and sent again split
    seconds: float = 0.0  #: wall time spent in card exchanges

    def add(self, other: ExchangeStats) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def copy(self) -> ExchangeStats:
        return dataclasses.replace(self)

    def as_dict(self) -> dict[str, int | float]:
        return dataclasses.asdict(self)


def get_response_class(cla: int) -> int:
    """The CLA for GET RESPONSE after a command sent with ``cla``.

    Same logical channel, no secure messaging, no chaining: ``0C`` (SM) -> ``00``, ``01`` ->
    ``01``, ``4X`` (channels 4-19) keeps its channel nibble; a proprietary class (``8X``-``FE``)
    uses the interindustry ``00``.
    """
    if cla & 0x80:
        return 0x00
    if cla & 0x40:
        return cla & 0x4F
    return cla & 0x03


def split_command(command: CommandApdu) -> list[CommandApdu]:
    """The short APDUs that carry ``command`` without extended length: chained blocks, then a last
    block with Le capped at 256."""
    le = None if command.le is None else min(command.le, _SHORT_NE)
    data = command.data
    if len(data) <= _SHORT_NC:
        return [CommandApdu(command.cla, command.ins, command.p1, command.p2, data, le)]
    blocks = [data[i : i + _SHORT_NC] for i in range(0, len(data), _SHORT_NC)]
    chained = command.cla | CHAINING_BIT
    head = command.ins, command.p1, command.p2
    return [CommandApdu(chained, *head, block) for block in blocks[:-1]] + [
        CommandApdu(command.cla, *head, blocks[-1], le)
    ]


def _needs_extended(command: CommandApdu) -> bool:
    return command.extended  # CommandApdu sets it whenever a field does not fit the short form


def exchange(command: CommandApdu, options: TransportOptions, stats: ExchangeStats) -> Exchange:
    """Carry one logical command; see the module docstring for the rules."""
    stats.commands += 1
    if _needs_extended(command) and options.extended_length:
        response = yield from _send(command, stats)
        if response.sw != StatusWord.WRONG_LENGTH:
            return (yield from _collect(response, command, stats))
        options.extended_length = False  # the card does not take them after all
        stats.extended_fallbacks += 1
    blocks = split_command(command) if _needs_extended(command) else [command]
    for block in blocks[:-1]:
        stats.chained_blocks += 1
        response = yield from _send(block, stats)
        if response.sw != StatusWord.SUCCESS:
            return response  # the card refused the chain (6884...) or failed mid-way
    last = blocks[-1]
    response = yield from _send(last, stats)
    return (yield from _collect(response, last, stats))


def _send(command: CommandApdu, stats: ExchangeStats) -> Generator[bytes, bytes, ResponseApdu]:
    """One command, resent once with the right Le if the card answers 6CXX."""
    response = yield from _roundtrip(command, stats)
    if response.sw1 == 0x6C:
        stats.le_resends += 1
        exact = response.sw2 or _SHORT_NE
        response = yield from _roundtrip(dataclasses.replace(command, le=exact), stats)
    return response


def _roundtrip(command: CommandApdu, stats: ExchangeStats) -> Generator[bytes, bytes, ResponseApdu]:
    wire = command.to_bytes()
    stats.apdus += 1
    stats.bytes_sent += len(wire)
    if command.extended:
        stats.extended_apdus += 1
    raw = yield wire
    stats.bytes_received += len(raw)
    try:
        return ResponseApdu.parse(raw)
    except ApduError as exc:
        raise CardProtocolError(
            f"the card answered {command.header.hex().upper()} with {len(raw)} bytes: {exc}"
        ) from None


def _collect(
    response: ResponseApdu, command: CommandApdu, stats: ExchangeStats
) -> Generator[bytes, bytes, ResponseApdu]:
    """Follow 61XX with GET RESPONSE until the card has given everything."""
    data = bytearray(response.data)
    rounds = 0
    while response.sw1 == 0x61:
        rounds += 1
        if rounds > _MAX_GET_RESPONSES:
            raise CardProtocolError(f"the card kept answering 61XX after {rounds - 1} GET RESPONSE")
        stats.get_responses += 1
        get_response = CommandApdu(
            get_response_class(command.cla), INS_GET_RESPONSE, 0, 0, le=response.sw2 or _SHORT_NE
        )
        response = yield from _send(get_response, stats)
        data += response.data
        if len(data) > MAX_NE:
            raise CardProtocolError(f"the card returned more than {MAX_NE} bytes through 61XX")
    return ResponseApdu(bytes(data), response.sw)
