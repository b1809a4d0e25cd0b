"""A virtual serial MRZ reader on a pseudo-terminal, for tests, the demo and technicians.

A pseudo-terminal is a pair: the *slave* (``/dev/pts/N``) behaves like any serial port, so the
real driver opens it exactly as it opens ``/dev/ttyUSB0``; this module holds the *master* and
writes what a reader's firmware would. Closing the master hangs the slave up, which is what a
USB-serial unplug does to an open port (reads end, ioctls fail with EIO); a symlink to the
slave plays the part of udev's ``/dev/serial/by-id/...`` name, gone on unplug and possibly
different on replug.

::

    with VirtualMrzReader(link=tmp / "serial/by-id/usb-Acme_MRZ-if00") as reader:
        ...                                 # the driver opens reader.device
        reader.send(SPECIMENS["TD3"])       # CRLF lines, written at once
        reader.unplug()
        reader.plug(tmp / "serial/by-id/usb-Acme_MRZ-if01")   # back, under another name

How bytes leave it is a :class:`WireFormat` (line endings or STX/ETX, joined lines, vendor
prefix and suffix) plus delivery options: split into chunks, delayed between chunks, noisy (OCR
confusions in the text, garbage between documents).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import os
import random
import re
import select
import string
import termios
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = [
    "OCR_CONFUSIONS",
    "SIM_FRAMINGS",
    "SPECIMENS",
    "NobodyReading",
    "VirtualMrzReader",
    "WireFormat",
    "confuse",
    "split_documents",
    "synthetic_documents",
]

#: ICAO Doc 9303 specimens (the fictional state Utopia): Part 4 (TD3), Part 6 (TD2), Part 5 (TD1).
SPECIMENS: dict[str, str] = {
    "TD3": (
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
    ),
    "TD2": "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6",
    "TD1": (
        "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
    ),
}

#: The wire framings the virtual reader speaks (what ``--framing`` accepts).
SIM_FRAMINGS = ("crlf", "cr", "lf", "stx-etx")
_TERMINATORS = {"crlf": b"\r\n", "cr": b"\r", "lf": b"\n", "stx-etx": b"\r"}
_STX, _ETX = b"\x02", b"\x03"

#: Characters OCR engines mistake for one another on OCR-B, both ways.
OCR_CONFUSIONS = {
    **{a: b for a, b in ("O0", "I1", "B8", "S5", "Z2", "G6")},
    **{b: a for a, b in ("O0", "I1", "B8", "S5", "Z2", "G6")},
    "D": "0",
    "Q": "0",
}


@dataclass(frozen=True)
class WireFormat:
    """How a document's text becomes bytes on the wire.

    Lines framings end every line (the last included) with CR, LF or CRLF; ``stx-etx`` wraps
    the document in STX ... ETX with CR between lines. ``joined`` sends the MRZ as one line.
    The vendor ``prefix`` and ``suffix`` go before and after the document: around the lines,
    or just inside STX and ETX.
    """

    framing: str = "crlf"
    joined: bool = False
    prefix: bytes = b""
    suffix: bytes = b""

    def __post_init__(self) -> None:
        if self.framing not in SIM_FRAMINGS:
            raise ValueError(f"framing {self.framing!r} is not one of {', '.join(SIM_FRAMINGS)}")

    def encode(self, text: str) -> bytes:
        lines = [line.strip() for line in re.split(r"\r\n|\r|\n", text) if line.strip()]
        if self.joined:
            lines = ["".join(lines)]
        terminator = _TERMINATORS[self.framing]
        body = b"".join(line.encode() + terminator for line in lines)
        if self.framing == "stx-etx":
            return _STX + self.prefix + body + self.suffix + _ETX
        return self.prefix + body + self.suffix

    @property
    def driver_framing(self) -> str:
        """The driver's ``MrzReaderConfig.framing`` for this format."""
        return "stx-etx" if self.framing == "stx-etx" else "lines"


class NobodyReading(TimeoutError):
    """The pseudo-terminal's buffer stayed full: no program is reading the device."""


def confuse(text: str, probability: float, rng: random.Random) -> str:
    """*text* with each confusable character swapped (O/0, I/1, B/8...) with *probability*."""
    return "".join(
        OCR_CONFUSIONS[c] if c in OCR_CONFUSIONS and rng.random() < probability else c for c in text
    )


def _garbage(rng: random.Random, framing: str) -> bytes:
    noise = bytes(rng.randrange(256) for _ in range(rng.randint(1, 24)))
    # A reader's noise between documents is its own failed read, ended like a line; noise glued
    # to the next document's first line would take that line with it (the driver's tests cover
    # the recoverable case separately).
    return noise + _TERMINATORS[framing] if framing != "stx-etx" else noise


class VirtualMrzReader:
    """A serial MRZ reader on a fresh pseudo-terminal; plugged in on construction.

    ``device`` is the path to open: the symlink when *link* is given, else the pty slave.
    ``chunk``/``delay`` split each document into writes of that many bytes, that many seconds
    apart; ``noise`` is the probability of an OCR confusion per confusable character and of
    garbage before each document (``seed`` makes it repeatable).
    """

    def __init__(
        self,
        wire: WireFormat | None = None,
        *,
        link: str | os.PathLike[str] | None = None,
        chunk: int | None = None,
        delay: float = 0.0,
        noise: float = 0.0,
        seed: int | None = None,
        write_timeout: float = 5.0,
    ) -> None:
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be at least 1 byte, got {chunk}")
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay}")
        if not 0 <= noise <= 1:
            raise ValueError(f"noise is a probability in 0..1, got {noise}")
        self.wire = wire or WireFormat()
        self.chunk, self.delay, self.noise = chunk, delay, noise
        self.write_timeout = write_timeout
        self.rng = random.Random(seed)
        self.documents_sent = 0
        self._master: int | None = None
        self._slave_path = ""
        self._link: Path | None = None
        self.plug(link)

    # -- plugging

    def plug(self, link: str | os.PathLike[str] | None = None) -> str:
        """Connect a new pseudo-terminal (a fresh ``/dev/pts/N``); returns ``device``.

        *link*: where to put the udev-like symlink this time (default: no link). Parent
        directories are created. An existing symlink there is replaced; a file is refused.
        """
        if self._master is not None:
            raise RuntimeError("already plugged in: unplug() first")
        master, slave = os.openpty()
        try:
            # Raw mode from the start: bytes written before the driver opens the port must not
            # go through a line discipline that turns CR into LF or echoes them back.
            tty.setraw(slave, termios.TCSANOW)
            self._slave_path = os.ttyname(slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            # Only the driver holds the slave: a hang-up reaches it alone, and is_open() can tell.
            os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        if link is not None:
            try:
                self._make_link(Path(link))
            except BaseException:
                self.unplug()
                raise
        return self.device

    def unplug(self) -> None:
        """Pull the cable: the link goes, then the master closes and the open port hangs up."""
        if self._link is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.readlink(self._link) == self._slave_path:
                    self._link.unlink()
            self._link = None
        if self._master is not None:
            os.close(self._master)
            self._master = None

    def replug(self, link: str | os.PathLike[str] | None = None) -> str:
        """Unplug, then plug back in (under *link*, or the previous link when None)."""
        previous = self._link
        self.unplug()
        return self.plug(link if link is not None else previous)

    def remove_link(self) -> None:
        """Remove the udev-like symlink only: the port stays up (a udev rule being reloaded)."""
        if self._link is not None:
            self._link.unlink(missing_ok=True)
            self._link = None

    def close(self) -> None:
        self.unplug()

    def __enter__(self) -> VirtualMrzReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def slave_path(self) -> str:
        """The pty slave, ``/dev/pts/N`` (changes on every plug)."""
        return self._slave_path

    @property
    def link(self) -> Path | None:
        return self._link

    @property
    def device(self) -> str:
        """What to open: the link when there is one, else the pty slave."""
        return str(self._link) if self._link is not None else self._slave_path

    def is_open(self) -> bool:
        """Whether some program has the device open (the master sees no hang-up)."""
        if self._master is None:
            return False
        poller = select.poll()
        poller.register(self._master, select.POLLIN)
        return not any(events & select.POLLHUP for _, events in poller.poll(0))

    def wait_open(self, timeout: float | None = None, *, settle: float = 0.1) -> None:
        """Block until a program opens the device, then *settle* (pyserial flushes on open).

        Raises TimeoutError after *timeout* seconds. A hung-up master reports POLLHUP without
        blocking, so this polls every 50 ms; it is for the CLI, not for latency.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_open():
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"nobody opened {self.device} within {timeout} s")
            time.sleep(0.05)
        time.sleep(settle)

    # -- sending

    def encode(self, text: str) -> bytes:
        """The bytes :meth:`send` would write for *text*, garbage included (uses the noise)."""
        if self.noise:
            text = confuse(text, self.noise, self.rng)
        data = self.wire.encode(text)
        if self.noise and self.rng.random() < self.noise:
            data = _garbage(self.rng, self.wire.framing) + data
        return data

    def chunks(self, data: bytes) -> list[bytes]:
        size = self.chunk or len(data) or 1
        return [data[i : i + size] for i in range(0, len(data), size)]

    def send(self, text: str) -> int:
        """Write one document (blocking, ``delay`` between chunks); returns the bytes written."""
        data = self.encode(text)
        for index, piece in enumerate(self.chunks(data)):
            if index and self.delay:
                time.sleep(self.delay)
            self.write(piece)
        self.documents_sent += 1
        return len(data)

    async def send_async(self, text: str) -> int:
        """:meth:`send` for an event loop: never blocks it, even when the buffer is full."""
        data = self.encode(text)
        for index, piece in enumerate(self.chunks(data)):
            if index and self.delay:
                await asyncio.sleep(self.delay)
            await self.write_async(piece)
        self.documents_sent += 1
        return len(data)

    def write(self, data: bytes) -> None:
        """Write raw bytes as the reader's firmware would (garbage, partial documents...)."""
        view = memoryview(data)
        deadline = time.monotonic() + self.write_timeout
        while view:
            try:
                view = view[os.write(self._fd(), view) :]
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([], [self._fd()], [], remaining)[1]:
                    raise NobodyReading(
                        errno.EAGAIN, f"nobody is reading {self.device}: its buffer is full"
                    ) from None

    async def write_async(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd(), view) :]
            except BlockingIOError:
                writable = loop.create_future()
                fd = self._fd()
                loop.add_writer(fd, _settle, writable)
                try:
                    await asyncio.wait_for(writable, self.write_timeout)
                except TimeoutError:
                    raise NobodyReading(
                        errno.EAGAIN, f"nobody is reading {self.device}: its buffer is full"
                    ) from None
                finally:
                    loop.remove_writer(fd)

    def _fd(self) -> int:
        if self._master is None:
            raise OSError(errno.ENODEV, "the virtual MRZ reader is unplugged")
        return self._master

    def _make_link(self, link: Path) -> None:
        if os.path.lexists(link) and not link.is_symlink():
            raise FileExistsError(errno.EEXIST, "not a symlink, refusing to replace it", str(link))
        link.parent.mkdir(parents=True, exist_ok=True)
        # Atomic, as udev does it: a reader never sees the name missing or half-made.
        temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(self._slave_path)
        temporary.replace(link)
        self._link = link


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# --- documents to send --------------------------------------------------------------------------


def split_documents(text: str) -> list[str]:
    """The MRZs in *text*: blocks of non-empty lines separated by blank lines."""
    blocks = re.split(r"(?:\r\n|\r|\n)\s*(?:\r\n|\r|\n)", text.strip())
    return [block.strip() for block in blocks if block.strip()]


_SURNAMES = ("ERIKSSON", "MUSTERMANN", "GARCIA LOPEZ", "OKAFOR", "NGUYEN", "SMITH-JONES", "HAN")
_GIVEN = ("ANNA MARIA", "ERIKA", "JOSE LUIS", "CHIDI", "THI MAI", "OLIVER", "MIN JUN", "")
_STATES = ("UTO", "D", "FRA", "CAN", "USA", "MEX", "NGA", "VNM", "KOR")


def synthetic_documents(seed: int | None = None) -> Iterator[str]:
    """The three specimens, then endless made-up travellers in every format (valid MRZs)."""
    from edge.documents.mrz import compose  # late: only the generator needs the parser module

    yield from SPECIMENS.values()
    rng = random.Random(seed)
    today = datetime.date.today()
    while True:
        state = rng.choice(_STATES)
        birth = datetime.date(1940, 1, 1) + datetime.timedelta(days=rng.randrange(70 * 365))
        yield compose(
            rng.choice(("TD3", "TD3", "TD1", "TD2")),
            issuing_state=state,
            surname=rng.choice(_SURNAMES),
            given_names=rng.choice(_GIVEN),
            document_number="".join(rng.choices(string.ascii_uppercase[:3] + string.digits, k=9)),
            nationality=rng.choice((state, rng.choice(_STATES))),
            birth_date=birth,
            sex=rng.choice("MFX"),
            expiry_date=today + datetime.timedelta(days=rng.randrange(30, 10 * 365)),
        )
