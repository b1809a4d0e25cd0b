"""The terminal's read sequence for an eMRTD chip, over any ``transmit`` function (no I/O here).

:func:`read_emrtd` (or :class:`EmrtdReader` for finer control) runs, over a caller-supplied
``transmit(CommandApdu) -> ResponseApdu``:

1. ``SELECT`` the eMRTD application (``00 A4 04 0C 07 A0000002471001``);
2. BAC: ``GET CHALLENGE``, ``EXTERNAL AUTHENTICATE`` (:mod:`.bac`);
3. for each file (EF.COM, DG1, DG2, SOD by default), with secure messaging (:mod:`.sm`):
   ``SELECT`` it by file identifier, ``READ BINARY`` its first 4 bytes to learn its length from
   the BER-TLV header, then the rest in blocks.

**Block size.** Each file is read with the largest block the chip accepts, kept from file to
file. With ``extended_length=True`` (the caller knows that reader and card both support extended
APDUs) the first request asks for everything that is left of the file, up to 65 511 bytes (the
most whose protected answer fits one extended response). Otherwise it asks for ``0xE7`` (231)
bytes, the most whose protected answer (padding, ``DO'87'``, ``DO'99'``, ``DO'8E'``) still fits
a short 256-byte response. When the chip answers ``6700`` (wrong length) or ``6CXX`` (use Le
XX), the block shrinks: to ``XX`` when given, else by half, down to ``0xE7`` and then ``0xDF``
(223, the size many older chips and readers were tested with) before halving further. A chip
that answers those errors without secure messaging has dropped the session: the reader runs BAC
again (at most ``max_authentications`` times in all), re-selects the file and goes on from the
same offset; when the refused command was an extended one, it goes straight to short reads
(``0xE7``), since such a bare refusal means extended length does not get through at all.
Offsets above ``7FFF`` do not fit P1-P2 and use ``READ BINARY`` with the odd INS ``B1`` and an
offset data object ``54``.

Everything is counted (:class:`ReadStats`): APDUs, bytes each way, authentications, fallbacks.
Exceptions from ``transmit`` itself (card removed, reader gone) propagate unchanged.

>>> # result = read_emrtd(transmit, BacKeys.from_mrz("L898902C<", "690806", "940623"))
>>> # result.files[LdsFile.DG1], result.stats.apdus
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from edge.documents import tlv
from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord
from edge.documents.emrtd.bac import BacError, BacKeys, BacTerminal, get_challenge_command
from edge.documents.emrtd.lds import MRTD_AID, LdsFile
from edge.documents.emrtd.sm import SecureMessaging, SecureMessagingError

__all__ = [
    "DEFAULT_FILES",
    "EXTENDED_MAX_BLOCK",
    "SHORT_MAX_BLOCK",
    "AccessDeniedError",
    "EmrtdReadError",
    "EmrtdReader",
    "NotAnEmrtdError",
    "ReadResult",
    "ReadStats",
    "Transmit",
    "max_plain_length",
    "read_emrtd",
]

Transmit = Callable[[CommandApdu], ResponseApdu]

#: What a border lane reads: the directory, the MRZ, the face, the security object.
DEFAULT_FILES = (LdsFile.COM, LdsFile.DG1, LdsFile.DG2, LdsFile.SOD)

_INS_SELECT = 0xA4
_INS_READ_BINARY = 0xB0
_INS_READ_BINARY_ODD = 0xB1
_TAG_OFFSET = 0x54
_TAG_DISCRETIONARY = 0x53
_HEADER_READ = 4  # tag + 82 XX XX: enough for any LDS file below 64 KiB
_MAX_P1P2_OFFSET = 0x7FFF
_OLD_SAFE_BLOCK = 0xDF
_SW_WRONG_LENGTH = StatusWord.WRONG_LENGTH
_FILE_ABSENT = (StatusWord.FILE_NOT_FOUND, StatusWord.SECURITY_STATUS_NOT_SATISFIED)


def max_plain_length(response_limit: int) -> int:
    """The most plain bytes whose 3DES-protected answer fits ``response_limit`` bytes.

    The protected answer is ``87 L 01 <pad(n)>`` + ``99 02 SW`` + ``8E 08 MAC``.

    >>> hex(max_plain_length(256)), max_plain_length(65536)
    ('0xe7', 65511)
    """
    best = 0
    # the padded length is a multiple of 8 above n; search the largest that fits
    for padded in range(8, response_limit + 1, 8):
        value = padded + 1
        size = 1 + len(tlv.encode_length(value)) + value + 4 + 10
        if size <= response_limit:
            best = padded - 1
    return best


#: Largest plain block whose protected answer fits a short response (``0xE7``).
SHORT_MAX_BLOCK = max_plain_length(256)
#: Largest plain block whose protected answer fits an extended response.
EXTENDED_MAX_BLOCK = max_plain_length(65536)


class EmrtdReadError(Exception):
    """The chip could not be read: it refused, broke secure messaging, or sent nonsense."""


class NotAnEmrtdError(EmrtdReadError):
    """The card has no eMRTD application (SELECT of the AID failed)."""


class AccessDeniedError(EmrtdReadError):
    """BAC failed: the chip refused EXTERNAL AUTHENTICATE, most likely a wrong MRZ."""


class _SessionLost(Exception):
    def __init__(self, sw: StatusWord) -> None:
        super().__init__(f"chip answered {sw} without secure messaging")
        self.sw = sw


@dataclass
class ReadStats:
    """What reading cost: APDUs, bytes on the wire each way, and how often it had to adapt."""

    apdus: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    authentications: int = 0
    fallbacks: int = 0
    block_size: int = 0
    apdus_by_file: dict[LdsFile, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadResult:
    """The files read (bytes exactly as on the chip), those absent, and the statistics.

    ``missing`` maps each requested file the chip does not hold (``6A82``) or will not give
    (``6982``, e.g. DG3 without Extended Access Control) to its status word.
    """

    files: Mapping[LdsFile, bytes]
    missing: Mapping[LdsFile, StatusWord]
    stats: ReadStats

    def data_groups(self) -> dict[int, bytes]:
        """The data groups read, by number, as :func:`~.passive_auth.verify` takes them."""
        return {f.number: data for f, data in self.files.items() if f.number is not None}


class EmrtdReader:
    """Reads files from one eMRTD chip through ``transmit``; see the module docstring.

    ``keys`` are the BAC keys from the MRZ; ``extended_length`` allows extended APDUs;
    ``max_block`` caps the block size (e.g. a reader's known limit); ``random`` supplies the
    terminal's BAC nonce and key share (pass a seeded source for reproducible tests).
    """

    def __init__(
        self,
        transmit: Transmit,
        keys: BacKeys,
        *,
        extended_length: bool = False,
        max_block: int | None = None,
        max_authentications: int = 3,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._send = transmit
        self.keys = keys
        self.extended_length = extended_length
        ceiling = EXTENDED_MAX_BLOCK if extended_length else SHORT_MAX_BLOCK
        if max_block is not None and max_block < 1:
            raise ValueError("max_block must be positive")
        self._block = min(ceiling, max_block or ceiling)
        self.max_authentications = max_authentications
        self._random = random
        self._sm: SecureMessaging | None = None
        self._selected: LdsFile | None = None
        self._current_file: LdsFile | None = None
        self.stats = ReadStats(block_size=self._block)

    @property
    def block_size(self) -> int:
        """The block size in use: the largest the chip has accepted so far."""
        return self._block

    # -- wire ---------------------------------------------------------------------------

    def _transmit(self, command: CommandApdu) -> ResponseApdu:
        self.stats.apdus += 1
        self.stats.bytes_sent += len(command.to_bytes())
        if self._current_file is not None:
            by_file = self.stats.apdus_by_file
            by_file[self._current_file] = by_file.get(self._current_file, 0) + 1
        response = self._send(command)
        self.stats.bytes_received += len(response.to_bytes())
        return response

    def _protected(self, command: CommandApdu) -> ResponseApdu:
        if self._sm is None:
            self.open()
        assert self._sm is not None
        response = self._transmit(self._sm.wrap_command(command))
        try:
            return self._sm.unwrap_response(response)
        except SecureMessagingError as error:
            self._sm = None
            self._selected = None
            if error.unprotected_sw is not None:
                raise _SessionLost(error.unprotected_sw) from None
            raise EmrtdReadError(f"secure messaging failed: {error}") from error

    # -- session ------------------------------------------------------------------------

    def open(self) -> None:
        """Select the eMRTD application and run BAC; done automatically when needed.

        Raises :class:`NotAnEmrtdError`, :class:`AccessDeniedError`, or
        :class:`EmrtdReadError` when the authentication budget is spent.
        """
        if self.stats.authentications >= self.max_authentications:
            raise EmrtdReadError(
                f"gave up after {self.stats.authentications} authentications "
                "(the chip keeps dropping secure messaging)"
            )
        self.stats.authentications += 1
        self._sm = None
        self._selected = None
        select = self._transmit(CommandApdu(0x00, _INS_SELECT, 0x04, 0x0C, MRTD_AID))
        if select.sw != StatusWord.SUCCESS:
            raise NotAnEmrtdError(f"SELECT of the eMRTD application answered {select.sw}")
        challenge = self._transmit(get_challenge_command())
        if challenge.sw != StatusWord.SUCCESS or len(challenge.data) != 8:
            raise EmrtdReadError(
                f"GET CHALLENGE answered {challenge.sw} with {len(challenge.data)} bytes"
            )
        bac = BacTerminal(self.keys, random=self._random)
        answer = self._transmit(bac.external_authenticate(challenge.data))
        if answer.sw != StatusWord.SUCCESS:
            raise AccessDeniedError(
                f"EXTERNAL AUTHENTICATE answered {answer.sw}: the MRZ keys are probably wrong"
            )
        try:
            self._sm = bac.complete(answer.data)
        except BacError as error:
            raise EmrtdReadError(f"the chip's authentication answer is invalid: {error}") from None

    # -- files --------------------------------------------------------------------------

    def _select(self, file: LdsFile) -> StatusWord:
        while True:
            try:
                response = self._protected(CommandApdu(0x00, _INS_SELECT, 0x02, 0x0C, file.fid))
            except _SessionLost as lost:
                if lost.sw in _FILE_ABSENT:
                    return lost.sw
                continue  # the next attempt authenticates again
            if response.sw == StatusWord.SUCCESS:
                self._selected = file
            return response.sw

    def _read_command(self, offset: int, length: int) -> tuple[CommandApdu, int]:
        """READ BINARY for ``length`` plain bytes at ``offset``, and the Ne it asks for."""
        if offset <= _MAX_P1P2_OFFSET:
            ne = length
            command = CommandApdu(
                0x00,
                _INS_READ_BINARY,
                offset >> 8,
                offset & 0xFF,
                le=ne,
                extended=ne > SHORT_MAX_BLOCK,
            )
            return command, ne
        # B1: the response is 53 L data, so ask for the header bytes too
        ne = length + 1 + len(tlv.encode_length(length))
        offset_bytes = offset.to_bytes((offset.bit_length() + 7) // 8, "big")
        command = CommandApdu(
            0x00,
            _INS_READ_BINARY_ODD,
            0x00,
            0x00,
            tlv.encode(_TAG_OFFSET, offset_bytes),
            ne,
            extended=ne > SHORT_MAX_BLOCK,
        )
        return command, ne

    def _shrink(self, sw: StatusWord, asked: int) -> None:
        if sw.sw1 == 0x6C and 0 < sw.sw2 < asked:
            new = sw.sw2
        elif asked > SHORT_MAX_BLOCK:
            new = max(asked // 2, SHORT_MAX_BLOCK)
        elif asked > _OLD_SAFE_BLOCK:
            new = _OLD_SAFE_BLOCK
        else:
            new = asked // 2
        if new < 1:
            raise EmrtdReadError(f"the chip refuses even {asked}-byte reads ({sw})")
        self._block = min(self._block, new)
        self.stats.fallbacks += 1
        self.stats.block_size = self._block

    def _read_binary(self, file: LdsFile, offset: int, wanted: int) -> bytes:
        """Up to ``wanted`` bytes of ``file`` at ``offset`` (fewer at the end of the file)."""
        while True:
            if self._selected is not file:
                sw = self._select(file)
                if sw != StatusWord.SUCCESS:
                    raise EmrtdReadError(f"{file.value} could not be selected again: {sw}")
            odd = offset > _MAX_P1P2_OFFSET
            overhead = 4 if odd else 0  # 53 82 XX XX at most
            length = max(1, min(wanted, self._block - overhead))
            command, ne = self._read_command(offset, length)
            try:
                response = self._protected(command)
            except _SessionLost as lost:
                if lost.sw == _SW_WRONG_LENGTH or lost.sw.sw1 == 0x6C:
                    # A bare refusal of an extended APDU: the reader or the chip does not do
                    # extended length at all; halving would cost one BAC per step.
                    self._shrink(lost.sw, min(ne, SHORT_MAX_BLOCK + 1) if command.extended else ne)
                continue  # re-authenticate, re-select, retry from the same offset
            sw = response.sw
            if sw in (StatusWord.SUCCESS, StatusWord.END_OF_FILE):
                if not odd:
                    return response.data
                try:
                    return tlv.decode_one(response.data, _TAG_DISCRETIONARY).value
                except tlv.TlvError as error:
                    raise EmrtdReadError(f"READ BINARY (B1) answer is malformed: {error}") from None
            if sw == _SW_WRONG_LENGTH or sw.sw1 == 0x6C:
                self._shrink(sw, ne)
                continue
            raise EmrtdReadError(f"READ BINARY of {file.value} at offset {offset} answered {sw}")

    def read_file(self, file: LdsFile) -> bytes | None:
        """The whole of ``file`` as stored on the chip, or None if the chip does not give it.

        Raises :class:`EmrtdReadError` when the file is not a well-formed object of its tag
        or the chip stops answering sensibly.
        """
        data = self._read_file(file)
        return data if isinstance(data, bytes) else None

    def _read_file(self, file: LdsFile) -> bytes | StatusWord:
        """The file's bytes, or the status word saying it is absent or refused."""
        self._current_file = file
        try:
            sw = self._select(file)
            if sw in _FILE_ABSENT:
                return sw
            if sw != StatusWord.SUCCESS:
                raise EmrtdReadError(f"SELECT {file.value} answered {sw}")
            head = self._read_binary(file, 0, _HEADER_READ)
            if len(head) < 2 or head[0] != file.tag:
                raise EmrtdReadError(
                    f"{file.value} starts with {head[:2].hex().upper() or 'nothing'}, "
                    f"not tag {file.tag:02X}"
                )
            header_length = 2 + (head[1] & 0x7F if head[1] & 0x80 else 0)
            while len(head) < header_length:
                more = self._read_binary(file, len(head), header_length - len(head))
                if not more:
                    raise EmrtdReadError(f"{file.value} ends inside its own header")
                head += more
            try:
                header_size, value_size = tlv.header_size(head)
            except tlv.TlvError as error:
                raise EmrtdReadError(f"{file.value} has a malformed header: {error}") from None
            total = header_size + value_size
            data = bytearray(head[:total])
            while len(data) < total:
                chunk = self._read_binary(file, len(data), total - len(data))
                if not chunk:
                    raise EmrtdReadError(
                        f"{file.value} ended at {len(data)} bytes, its header says {total}"
                    )
                data += chunk
            return bytes(data[:total])
        finally:
            self._current_file = None

    def read(self, files: Iterable[LdsFile] = DEFAULT_FILES) -> ReadResult:
        """Open the session if needed and read ``files`` in order."""
        if self._sm is None:
            self.open()
        found: dict[LdsFile, bytes] = {}
        missing: dict[LdsFile, StatusWord] = {}
        for file in files:
            data = self._read_file(file)
            if isinstance(data, StatusWord):
                missing[file] = data
            else:
                found[file] = data
        self.stats.block_size = self._block
        return ReadResult(found, missing, self.stats)


def read_emrtd(
    transmit: Transmit,
    keys: BacKeys,
    *,
    files: Iterable[LdsFile] = DEFAULT_FILES,
    extended_length: bool = False,
    max_block: int | None = None,
    random: Callable[[int], bytes] = secrets.token_bytes,
) -> ReadResult:
    """Select, authenticate with BAC and read ``files`` from an eMRTD chip.

    ``transmit`` sends one command APDU and returns the response (a PC/SC connection, a
    virtual chip...). See :class:`EmrtdReader` for the other arguments.
    """
    reader = EmrtdReader(
        transmit, keys, extended_length=extended_length, max_block=max_block, random=random
    )
    return reader.read(files)
