"""Reassembling MRZ documents from the bytes a serial reader sends: pure code, no I/O.

A serial line gives no message boundaries: a ``read()`` can end anywhere, even between the CR
and the LF of a CRLF. A framer is fed chunks as they arrive and returns each complete document
(:class:`Frame`) or abandoned fragment (:class:`Discard`); :mod:`edge.devices.mrz_reader` owns
the port and the clock. Tested byte by byte, without a port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

STX = 0x02
ETX = 0x03

#: MRZ line length -> lines in a document of that format (TD1: 3 x 30, TD2: 2 x 36, TD3: 2 x 44).
LINES_PER_DOCUMENT = {30: 3, 36: 2, 44: 2}
#: Length of a whole MRZ sent as one line -> the length of its lines.
JOINED_LENGTHS = {90: 30, 72: 36, 88: 44}

_MRZ_CHARACTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789<")
_BLANKS = b" \t"
_MRZ_CHARACTERS_AND_BLANKS = _MRZ_CHARACTERS | frozenset(_BLANKS)
_DIGITS = frozenset(b"0123456789")
# Stripped from both ends of a line or frame: C0 controls (a stray STX/ETX, NUL padding, ESC)
# and blanks. Never part of an MRZ, often part of a reader's framing.
_STRIPPABLE = bytes(range(0x20)) + b" \x7f"
_TERMINATOR = re.compile(rb"[\r\n]")
_STX_OR_ETX = re.compile(rb"[\x02\x03]")


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete read: the bytes as received and the text to hand to the parser."""

    raw: bytes
    text: str
    first_byte_at: float
    last_byte_at: float


@dataclass(frozen=True, slots=True)
class Discard:
    """Bytes that began a document but never completed it; ``reason`` says why."""

    size: int
    reason: str
    first_byte_at: float
    last_byte_at: float


class Framer(Protocol):
    """Reassembles documents from arbitrary chunks. Times are ``time.monotonic()`` seconds."""

    garbage_bytes: int
    last_byte_at: float | None

    @property
    def pending(self) -> bool:
        """Whether bytes of an unfinished document are held (the timeout applies)."""
        ...

    def feed(self, data: bytes, now: float) -> list[Frame | Discard]: ...

    def expire(self, now: float, reason: str = ...) -> list[Frame | Discard]:
        """Give up on what is pending: the reader went quiet, or the port was lost."""
        ...


class _Stripper:
    """Removes vendor markers, control bytes and blanks from both ends of a line or frame."""

    def __init__(self, prefix: bytes, suffix: bytes) -> None:
        self._markers = tuple(m for m in (prefix, suffix) if m)

    def __call__(self, data: bytes) -> bytes:
        # Both markers at both ends: a suffix after the last terminator shows up at the start of
        # the next line; a prefix may come before each line on some readers. A marker may begin
        # with a control byte (ESC), so it is looked for before that byte is stripped.
        start, end = 0, len(data)
        while start < end:
            for marker in self._markers:
                if data.startswith(marker, start, end):
                    start += len(marker)
                    break
                if data.endswith(marker, start, end):
                    end -= len(marker)
                    break
            else:
                if data[start] in _STRIPPABLE:
                    start += 1
                elif data[end - 1] in _STRIPPABLE:
                    end -= 1
                else:
                    break
        return data[start:end]


@dataclass(slots=True)
class _Line:
    text: str  # what the parser gets: MRZ characters only (no terminator, blanks, vendor bytes)
    length: int  # MRZ characters (blanks not counted)
    digits: int
    raw: bytes  # as received, terminator included
    first_at: float
    last_at: float


def _plausible(lines: list[_Line]) -> bool:
    """Whether consecutive lines of one length are one document's lines, in order.

    Not validation (the parser judges); it only stops a stray line (a reader's aborted first
    attempt) from pairing with the next document's first line and losing that document. The
    test is relative, so OCR confusions (O read as 0) do not defeat it: a TD3/TD2 line 1 holds
    names (no digits), its line 2 dates and check digits; a TD1 line 3 holds names, its lines 1
    and 2 numbers.
    """
    if len(lines) == 2:
        return lines[1].digits > lines[0].digits
    return lines[2].digits < lines[0].digits and lines[2].digits < lines[1].digits


class LineFramer:
    """Line-terminated documents: CR, LF or CRLF, split anywhere, possibly joined on one line.

    Candidate lines (MRZ characters, an MRZ line length) accumulate until they form a
    document: 2 x 44, 2 x 36, 3 x 30, or one joined line of 88, 72 or 90. A line of another
    length or with other characters is garbage and ends any document in progress. Buffers are
    bounded: a line longer than ``max_line`` bytes is dropped up to its terminator.
    """

    def __init__(self, *, prefix: bytes = b"", suffix: bytes = b"", max_line: int = 256) -> None:
        self._strip = _Stripper(prefix, suffix)
        self._max_line = max_line + len(prefix) + len(suffix)
        self._partial = bytearray()
        self._partial_first_at = 0.0
        self._skipping = False  # inside an overlong line: drop bytes until its terminator
        self._lines: list[_Line] = []
        self.garbage_bytes = 0
        self.last_byte_at: float | None = None

    @property
    def pending(self) -> bool:
        return bool(self._lines or self._partial or self._skipping)

    def feed(self, data: bytes, now: float) -> list[Frame | Discard]:
        out: list[Frame | Discard] = []
        self.last_byte_at = now
        start = 0
        for terminator in _TERMINATOR.finditer(data):
            self._take(data[start : terminator.start()], now, out)
            self._end_line(terminator.group(), now, out)
            start = terminator.end()
        self._take(data[start:], now, out)
        return out

    def expire(
        self, now: float, reason: str = "incomplete when the reader went quiet"
    ) -> list[Frame | Discard]:
        out: list[Frame | Discard] = []
        partial, first_at = bytes(self._partial), self._partial_first_at
        self._partial.clear()
        if self._skipping:  # already counted as garbage
            self._skipping, partial = False, b""
        cleaned = self._strip(partial)
        if cleaned:
            line = self._as_line(cleaned, partial, first_at, now)
            if line is not None:
                # A whole line whose terminator never came: some readers omit the last one.
                self._accept(line, out)
                partial = b""
            elif not set(cleaned.translate(None, _BLANKS)) <= _MRZ_CHARACTERS:
                self.garbage_bytes += len(partial)
                partial = b""
            # else: MRZ characters cut short, the fragment of a document: discarded below.
        elif partial:
            partial = b""  # only a vendor marker or control bytes: nothing was lost
        size = sum(len(line.raw) for line in self._lines) + len(partial)
        if size:
            first = self._lines[0].first_at if self._lines else first_at
            out.append(Discard(size, reason, first, self.last_byte_at or now))
        self._lines.clear()
        return out

    def _take(self, segment: bytes, now: float, out: list[Frame | Discard]) -> None:
        if not segment:
            return
        if self._skipping:
            self.garbage_bytes += len(segment)
            return
        if not self._partial:
            self._partial_first_at = now
        self._partial += segment
        if len(self._partial) > self._max_line:
            self.garbage_bytes += len(self._partial)
            self._partial.clear()
            self._skipping = True
            self._drop(out, "interrupted by an overlong line")

    def _end_line(self, terminator: bytes, now: float, out: list[Frame | Discard]) -> None:
        content = bytes(self._partial)
        first_at = self._partial_first_at if content else now
        self._partial.clear()
        if self._skipping:
            self._skipping = False
            self.garbage_bytes += len(terminator)
            return
        cleaned = self._strip(content)
        if not cleaned:
            # The LF of a CRLF, a blank separator line, a lone vendor marker: no content.
            if self._lines:
                self._lines[-1].raw += content + terminator
            return
        line = self._as_line(cleaned, content + terminator, first_at, now)
        if line is None:
            self.garbage_bytes += len(content) + len(terminator)
            self._drop(out, "interrupted by a line that is not MRZ text")
            return
        self._accept(line, out)

    def _as_line(self, cleaned: bytes, raw: bytes, first_at: float, now: float) -> _Line | None:
        """The MRZ line in *cleaned*, or None when it is not one.

        Noise glued in front of a line (power-up bytes, a partial line without terminator) is
        cut off when what follows the last non-MRZ byte is a whole MRZ line by itself.
        """
        compact = cleaned.translate(None, _BLANKS)
        noise = 0
        if not set(compact) <= _MRZ_CHARACTERS:
            noise = 1 + max(
                i for i, byte in enumerate(cleaned) if byte not in _MRZ_CHARACTERS_AND_BLANKS
            )
            compact = cleaned[noise:].translate(None, _BLANKS)
        if len(compact) not in LINES_PER_DOCUMENT and len(compact) not in JOINED_LENGTHS:
            return None
        self.garbage_bytes += noise
        digits = sum(1 for byte in compact if byte in _DIGITS)
        return _Line(compact.decode("ascii"), len(compact), digits, raw, first_at, now)

    def _accept(self, line: _Line, out: list[Frame | Discard]) -> None:
        if line.length in JOINED_LENGTHS:
            self._drop(out, "interrupted by another document")
            out.append(Frame(line.raw, line.text, line.first_at, line.last_at))
            return
        if self._lines and self._lines[0].length != line.length:
            self._drop(out, "interrupted by a line of another format")
        self._lines.append(line)
        if len(self._lines) < LINES_PER_DOCUMENT[line.length]:
            return  # e.g. a TD1's first two lines: 2 x 30 is not a document yet
        if _plausible(self._lines):
            lines, self._lines = self._lines, []
            out.append(
                Frame(
                    b"".join(x.raw for x in lines),
                    "\n".join(x.text for x in lines),
                    lines[0].first_at,
                    lines[-1].last_at,
                )
            )
            return
        stray = self._lines.pop(0)
        out.append(
            Discard(
                len(stray.raw),
                "a line without the rest of its document",
                stray.first_at,
                stray.last_at,
            )
        )

    def _drop(self, out: list[Frame | Discard], reason: str) -> None:
        if self._lines:
            size = sum(len(line.raw) for line in self._lines)
            out.append(Discard(size, reason, self._lines[0].first_at, self._lines[-1].last_at))
            self._lines.clear()


class StxEtxFramer:
    """STX ... ETX framed documents; whatever the frame holds is one read.

    Inside a frame, lines may be separated by CR, LF or CRLF, or joined. Bytes outside frames
    are garbage. An STX inside a frame starts over (the reader restarted); a frame longer than
    ``max_frame`` bytes is dropped.
    """

    def __init__(self, *, prefix: bytes = b"", suffix: bytes = b"", max_frame: int = 512) -> None:
        self._strip = _Stripper(prefix, suffix)
        self._max_frame = max_frame + len(prefix) + len(suffix)
        self._frame: bytearray | None = None  # None: outside a frame
        self._first_at = 0.0
        self.garbage_bytes = 0
        self.last_byte_at: float | None = None

    @property
    def pending(self) -> bool:
        return self._frame is not None

    def feed(self, data: bytes, now: float) -> list[Frame | Discard]:
        out: list[Frame | Discard] = []
        self.last_byte_at = now
        position = 0
        while position < len(data):
            if self._frame is None:
                start = data.find(STX, position)
                if start < 0:
                    self.garbage_bytes += len(data) - position
                    break
                self.garbage_bytes += start - position
                self._frame, self._first_at = bytearray(), now
                position = start + 1
                continue
            delimiter = _STX_OR_ETX.search(data, position)
            end = len(data) if delimiter is None else delimiter.start()
            self._frame += data[position:end]
            if len(self._frame) > self._max_frame:
                out.append(self._discard("longer than any document", now))
                position = end  # the rest, up to the next STX, is garbage
                continue
            if delimiter is None:
                break
            if data[end] == STX:
                out.append(self._discard("restarted by another STX", now))
                self._frame, self._first_at = bytearray(), now
            else:
                out.extend(self._finish(now))
            position = end + 1
        return out

    def expire(
        self, now: float, reason: str = "incomplete when the reader went quiet"
    ) -> list[Frame | Discard]:
        if self._frame is None:
            return []
        return [self._discard(reason, self.last_byte_at or now)]

    def _discard(self, reason: str, now: float) -> Discard:
        assert self._frame is not None
        discard = Discard(len(self._frame) + 1, reason, self._first_at, now)
        self._frame = None
        return discard

    def _finish(self, now: float) -> list[Frame | Discard]:
        assert self._frame is not None
        content, self._frame = bytes(self._frame), None
        raw = bytes([STX]) + content + bytes([ETX])
        lines = [self._strip(line) for line in _TERMINATOR.split(self._strip(content))]
        text = "\n".join(line.decode("ascii", "replace") for line in lines if line)
        if not text:
            self.garbage_bytes += len(raw)  # an empty frame: some readers' keep-alive
            return []
        return [Frame(raw, text, self._first_at, now)]
