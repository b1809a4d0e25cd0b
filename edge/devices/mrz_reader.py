"""Serial MRZ reader driver: what a passport reader sends on its serial line, as parsed documents.

A desktop MRZ reader (OCR swipe or full-page) is a USB-serial device: when a document goes
through it, it writes the machine readable zone as text. Readers differ in how they frame it:

* **lines**: each MRZ line ends with CR, LF or CRLF; a TD3 passport is two lines of 44, a
  TD2 card or MRV-B visa two of 36, a TD1 card three of 30. Some readers send the whole zone
  as one joined line (88, 72 or 90 characters) and some omit the last terminator.
* **stx-etx**: the document sits between STX (0x02) and ETX (0x03), lines inside separated by
  CR, or joined.
* either may be wrapped in vendor bytes (a prefix such as ``ESC 'M'``, a suffix such as a
  checksum marker), configured here so they can be stripped.

The serial line gives no message boundaries: one ``read()`` can end anywhere (mid-line, between
the CR and the LF of a CRLF), so the driver reassembles. In line mode a document is complete
when its lines have an MRZ *shape*: a TD1's first two lines (2 x 30) are not a shape, so the
driver waits for the third. When the reader goes quiet for ``document_timeout`` in the middle of
a document (the traveller pulled the passport out mid-swipe), the fragment is discarded,
counted and logged, never emitted. What arrives between documents (power-up noise, a baud
mismatch, status chatter) is counted as garbage and never stops the next document.

The driver does not decide anything (see ARCHITECTURE.md): each complete read is handed to the
MRZ parser and emitted with the parse result, *valid or not*, or with the parser's error when
the text is not an MRZ at all. The lane decides what to do with it.

Usage::

    config = MrzReaderConfig(port="/dev/serial/by-id/usb-*MRZ*", baudrate=9600)
    async with MrzReader(config) as reader:
        async for event in reader:            # runs until the block is left or cancelled
            if event.document is not None:
                ...                           # event.document.valid, event.document.to_dict()
            else:
                ...                           # event.error: why event.text is not an MRZ
        # reader.state: connected / disconnected / connecting, counters, last error

The port may be absent when the block is entered and may vanish and come back at any time:
``MrzReader`` reopens it with exponential backoff, possibly under another name when ``port`` is
a glob or a USB id, and reports where it stands in :attr:`MrzReader.state`.

I/O design: the port's file descriptor is registered with the event loop (``loop.add_reader``)
and read with ``os.read`` when the kernel says bytes are waiting; pyserial opens and configures
the port (termios, exclusive lock) and answers the "why did it stop" question. On a Raspberry
Pi this costs nothing at idle (the process sleeps in epoll; no thread polls or wakes up on a
read timeout), the latency is one wake-up of the loop (tens of microseconds, far below the
~94 ms a 90-byte document takes on the wire at 9600 baud), and cancellation is immediate and
clean: there is no thread stuck in a blocking ``read()`` to interrupt, so closing the port is
an ordinary ``finally``. A reader thread would cost a stack and GIL hand-offs for no gain at a
few documents per minute. Linux only (``add_reader`` on a tty), which is what a kiosk runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import errno
import glob
import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import serial
from serial.tools import list_ports

from .backoff import Backoff as _Backoff
from .mrz_framing import ETX, STX, Discard, Frame, Framer, LineFramer, StxEtxFramer
from .state_waiters import StateWaiters

if TYPE_CHECKING:
    from edge.documents.mrz import MrzDocument

__all__ = [
    "Discard",
    "Frame",
    "Framer",
    "Framing",
    "LineFramer",
    "MrzReadEvent",
    "MrzReader",
    "MrzReaderConfig",
    "MrzReaderConfigError",
    "MrzReaderState",
    "MrzReaderStatus",
    "PortNotFoundError",
    "StxEtxFramer",
    "make_framer",
    "resolve_port",
]

log = logging.getLogger(__name__)

_USB_ID = re.compile(r"^(?:usb:)?([0-9A-Fa-f]{4}):([0-9A-Fa-f]{4})$")
_GLOB_CHARACTERS = frozenset("*?[")


# --- configuration --------------------------------------------------------------------------


class Framing(enum.StrEnum):
    """How the reader delimits a document on the wire."""

    LINES = "lines"
    """Lines ended by CR, LF or CRLF (any mix); a document is complete when it has an MRZ shape."""
    STX_ETX = "stx-etx"
    """Everything between STX and ETX is one read, whatever its shape."""


class MrzReaderConfigError(ValueError):
    """A configuration value is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class MrzReaderConfig:
    """Where the reader is and how it talks. Checked on construction: errors name the field.

    ``port`` is one of:

    * a device path, e.g. ``/dev/ttyUSB0`` or a stable udev name under ``/dev/serial/by-id/``;
    * a glob, e.g. ``/dev/serial/by-id/usb-*MRZ*``: the first existing match (sorted) is used,
      so a reader that comes back under another name is found again;
    * a USB id ``VID:PID`` in hex (optionally ``usb:VID:PID``), e.g. ``0403:6001``: the first
      serial port of a USB device with that id, found through ``serial.tools.list_ports``.
    """

    port: str
    baudrate: int = 9600
    bytesize: int = serial.EIGHTBITS
    parity: str = serial.PARITY_NONE
    stopbits: float = serial.STOPBITS_ONE
    framing: Framing = Framing.LINES
    prefix: bytes = b""
    """Vendor bytes the reader puts before a document (or a line); stripped."""
    suffix: bytes = b""
    """Vendor bytes the reader puts after a document (or a line); stripped."""
    document_timeout: float = 0.5
    """Seconds without a byte after which a half-received document is discarded."""
    reconnect_initial: float = 0.25
    """First delay before reopening a lost port; doubles per failure up to ``reconnect_max``."""
    reconnect_max: float = 10.0
    presence_interval: float = 1.0
    """How often the open port's path is checked (a udev link can vanish before the fd fails)."""
    queue_size: int = 16
    """Events kept for a slow consumer; beyond that the oldest is dropped (and counted)."""

    def __post_init__(self) -> None:
        if not isinstance(self.port, str) or not self.port.strip():
            raise MrzReaderConfigError("port", "a device path, a glob or a USB id VID:PID")
        if not (
            self.port.startswith("/")
            or _USB_ID.match(self.port)
            or _GLOB_CHARACTERS & set(self.port)
        ):
            raise MrzReaderConfigError(
                "port",
                f"{self.port!r} is neither an absolute device path, a glob, nor a USB id VID:PID",
            )
        _check_int("baudrate", self.baudrate, 50, 4_000_000)
        if self.bytesize not in serial.Serial.BYTESIZES:
            raise MrzReaderConfigError(
                "bytesize", f"{self.bytesize!r} is not one of {list(serial.Serial.BYTESIZES)}"
            )
        if self.parity not in serial.Serial.PARITIES:
            raise MrzReaderConfigError(
                "parity", f"{self.parity!r} is not one of {list(serial.Serial.PARITIES)}"
            )
        if self.stopbits not in serial.Serial.STOPBITS:
            raise MrzReaderConfigError(
                "stopbits", f"{self.stopbits!r} is not one of {list(serial.Serial.STOPBITS)}"
            )
        try:
            object.__setattr__(self, "framing", Framing(self.framing))
        except ValueError:
            choices = ", ".join(f.value for f in Framing)
            raise MrzReaderConfigError(
                "framing", f"{self.framing!r} is not one of {choices}"
            ) from None
        delimiters = b"\r\n" if self.framing is Framing.LINES else bytes([STX, ETX])
        for name in ("prefix", "suffix"):
            value = getattr(self, name)
            if not isinstance(value, bytes):
                raise MrzReaderConfigError(name, f"must be bytes, got {type(value).__name__}")
            if len(value) > 32:
                raise MrzReaderConfigError(name, f"at most 32 bytes, got {len(value)}")
            if set(value) & set(delimiters):
                raise MrzReaderConfigError(
                    name, f"must not contain the {self.framing} delimiters {delimiters!r}"
                )
        _check_seconds("document_timeout", self.document_timeout, 60)
        _check_seconds("reconnect_initial", self.reconnect_initial, 3600)
        _check_seconds("reconnect_max", self.reconnect_max, 3600)
        if self.reconnect_max < self.reconnect_initial:
            raise MrzReaderConfigError(
                "reconnect_max",
                f"{self.reconnect_max} is less than reconnect_initial {self.reconnect_initial}",
            )
        _check_seconds("presence_interval", self.presence_interval, 3600)
        _check_int("queue_size", self.queue_size, 1, 10_000)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MrzReaderConfig:
        """Build from a configuration file's table; ``prefix``/``suffix`` may be hex strings."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MrzReaderConfigError(unknown[0], f"unknown setting (known: {sorted(known)})")
        if "port" not in values:
            raise MrzReaderConfigError("port", "missing")
        arguments = dict(values)
        for name in ("prefix", "suffix"):
            if isinstance(arguments.get(name), str):
                try:
                    arguments[name] = bytes.fromhex(arguments[name])
                except ValueError:
                    raise MrzReaderConfigError(
                        name, f"{arguments[name]!r} is not hex (e.g. '1B4D')"
                    ) from None
        return cls(**arguments)


def _check_int(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MrzReaderConfigError(field, f"an integer in {low}..{high}, got {value!r}")


def _check_seconds(field: str, value: object, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise MrzReaderConfigError(field, f"seconds, more than 0 and at most {high}, got {value!r}")


# --- finding the port -----------------------------------------------------------------------


class PortNotFoundError(OSError):
    """Nothing matches the configured port right now (unplugged, or not enumerated yet)."""


def resolve_port(spec: str, *, comports: Callable[[], list[Any]] = list_ports.comports) -> str:
    """The device path to open for *spec* (a path, a glob or a USB id), or PortNotFoundError.

    A plain path is returned as is (opening it reports its own error). A glob returns the first
    match, sorted, that exists (a dangling udev link is a reader that just left). A USB id scans
    the serial ports the kernel knows; *comports* is injectable for tests.
    """
    usb = _USB_ID.match(spec)
    if usb:
        vid, pid = int(usb[1], 16), int(usb[2], 16)
        devices = sorted(p.device for p in comports() if p.vid == vid and p.pid == pid)
        if not devices:
            raise PortNotFoundError(errno.ENOENT, f"no serial port with USB id {vid:04x}:{pid:04x}")
        return devices[0]
    if _GLOB_CHARACTERS & set(spec):
        matches = sorted(p for p in glob.glob(spec) if os.path.exists(p))
        if not matches:
            raise PortNotFoundError(errno.ENOENT, f"no port matches {spec}")
        return matches[0]
    return spec


def make_framer(config: MrzReaderConfig) -> Framer:
    if config.framing is Framing.STX_ETX:
        return StxEtxFramer(prefix=config.prefix, suffix=config.suffix)
    return LineFramer(prefix=config.prefix, suffix=config.suffix)


# --- state and events -----------------------------------------------------------------------


class MrzReaderStatus(enum.StrEnum):
    CONNECTING = "connecting"
    """Looking for the port and opening it (also the state before the first attempt)."""
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    """Not open: waiting to retry (``last_error`` says why), or the reader was closed."""


@dataclass(frozen=True)
class MrzReaderState:
    """A snapshot for the health report. Replaced, never mutated: safe to keep and compare."""

    status: MrzReaderStatus
    since: datetime
    """When ``status`` last changed (UTC)."""
    port: str | None = None
    """The device path in use, or last tried; None before the first one was found."""
    last_error: str | None = None
    """The most recent error, kept after recovery so a flapping reader shows why it flaps."""
    documents_read: int = 0
    """Reads the parser accepted as an MRZ (valid or not)."""
    parse_errors: int = 0
    """Complete reads whose text the parser rejected as not an MRZ."""
    documents_discarded: int = 0
    """Documents begun but never completed (timeout, interruption, port lost)."""
    garbage_bytes: int = 0
    """Bytes that were no part of any document: a high count with no reads is a baud mismatch."""
    bytes_received: int = 0
    events_dropped: int = 0
    """Events the consumer did not take in time (oldest first)."""
    reconnects: int = 0
    """Times the port was opened again after the first time."""

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["status"] = self.status.value
        values["since"] = self.since.isoformat().replace("+00:00", "Z")
        return values


@dataclass(frozen=True)
class MrzReadEvent:
    """One complete read from the reader, parsed: exactly one of ``document``/``error`` is set.

    Times ``first_byte_at``, ``last_byte_at`` and ``emitted_at`` are ``time.monotonic()``
    seconds (for latencies); ``read_at`` is the wall clock for records. ``raw`` holds the
    traveller's personal data, like ``document``: keep it out of logs.
    """

    raw: bytes
    """The bytes as received, terminators included, bytes between documents excluded."""
    text: str
    """What the parser was given: the MRZ lines, joined by "\\n" (or one joined line)."""
    document: MrzDocument | None
    error: Exception | None
    """Usually an ``MrzError``; any other exception type is a parser bug (and is logged)."""
    port: str
    first_byte_at: float
    last_byte_at: float
    emitted_at: float
    read_at: datetime

    @property
    def ok(self) -> bool:
        """Whether the text parsed as an MRZ (check ``document.valid`` for its check digits)."""
        return self.document is not None

    @property
    def latency(self) -> float:
        """Seconds from the document's last byte arriving to the event being queued."""
        return self.emitted_at - self.last_byte_at


_CLOSED = object()


def _load_parser() -> Callable[[str], MrzDocument]:
    from edge.documents.mrz import parse  # late: the driver stays importable on its own

    return parse


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        name = errno.errorcode.get(exc.errno or 0, "")
        return f"{name + ': ' if name else ''}{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


# --- the reader -----------------------------------------------------------------------------


class MrzReader(StateWaiters[MrzReaderState]):
    """Reads documents from a serial MRZ reader, surviving unplugs, until closed.

    ``async with MrzReader(config) as reader`` starts the connection task (it does not wait for
    the port: a kiosk must boot with its reader unplugged); ``async for event in reader``
    yields :class:`MrzReadEvent` until the block exits; leaving the block or cancelling the
    task closes the port. *parse* defaults to ``edge.documents.mrz.parse``; it must raise
    ``ValueError`` (``MrzError`` is one) for text that is not an MRZ.
    """

    def __init__(
        self,
        config: MrzReaderConfig,
        *,
        parse: Callable[[str], MrzDocument] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._parse = parse
        self._rng = rng or random.Random()
        self._framer = make_framer(config)
        self._state = MrzReaderState(MrzReaderStatus.CONNECTING, datetime.now(UTC))
        self._waiters = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=config.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._quiet_timer: asyncio.TimerHandle | None = None
        self._port_path = ""

    # -- lifecycle

    async def __aenter__(self) -> MrzReader:
        if self._task is not None:
            raise RuntimeError("this MrzReader is already open (readers are not reusable)")
        if self._parse is None:
            self._parse = _load_parser()
        self._task = asyncio.create_task(self._run(), name=f"mrz-reader {self.config.port}")
        self._task.add_done_callback(self._on_task_done)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading and close the port; iteration then ends. Safe to call twice."""
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves, not just our task

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            self._push(_CLOSED)
            return
        exc = task.exception()
        if exc is not None:  # a bug: surface it to the consumer instead of hanging it
            log.error("MRZ reader task failed", exc_info=exc)
            self._push(exc)
        self._push(_CLOSED)

    # -- consuming

    def __aiter__(self) -> MrzReader:
        return self

    async def __anext__(self) -> MrzReadEvent:
        if self._task is None:
            raise RuntimeError("use `async with MrzReader(config) as reader` before iterating")
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # every later call ends too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    @property
    def state(self) -> MrzReaderState:
        return self._state

    async def wait_connected(self, timeout: float | None = None) -> MrzReaderState:
        return await self.wait_state(lambda s: s.status is MrzReaderStatus.CONNECTED, timeout)

    # -- internals

    def _push(self, item: object) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self._update(events_dropped=self._state.events_dropped + 1)
            log.warning("MRZ event dropped: the consumer is not keeping up")
        self._queue.put_nowait(item)

    async def _run(self) -> None:
        backoff = _Backoff(self.config.reconnect_initial, self.config.reconnect_max, self._rng)
        opened_before = False
        try:
            while True:
                self._update(status=MrzReaderStatus.CONNECTING)
                try:
                    path = resolve_port(self.config.port)
                    self._update(port=path)
                    port = self._open(path)
                except OSError as exc:
                    self._lost(_describe(exc), quiet=True)
                    await asyncio.sleep(backoff.next_delay())
                    continue
                if opened_before:
                    self._update(reconnects=self._state.reconnects + 1)
                opened_before = True
                log.info("MRZ reader connected on %s", path)
                self._update(status=MrzReaderStatus.CONNECTED)
                received_before, opened_at = self._state.bytes_received, time.monotonic()
                try:
                    reason = await self._pump(port, path)
                finally:
                    self._close(port, "the port closed mid-document")
                if (
                    self._state.bytes_received > received_before
                    or time.monotonic() - opened_at >= self.config.reconnect_max
                ):
                    backoff.reset()  # it worked for a while: start over from quick retries
                self._lost(reason, quiet=False)
                await asyncio.sleep(backoff.next_delay())
        finally:
            self._update(status=MrzReaderStatus.DISCONNECTED)

    def _open(self, path: str) -> serial.Serial:
        # exclusive: a flock, so a technician's terminal cannot silently steal half the bytes.
        # timeout=0 keeps pyserial out of the way; the event loop does the waiting.
        return serial.Serial(
            port=path,
            baudrate=self.config.baudrate,
            bytesize=self.config.bytesize,
            parity=self.config.parity,
            stopbits=self.config.stopbits,
            timeout=0,
            exclusive=True,
        )

    def _lost(self, reason: str, *, quiet: bool) -> None:
        # An absent reader is retried forever: log the first failure loudly, repeats quietly.
        level = logging.DEBUG if quiet and reason == self._state.last_error else logging.WARNING
        log.log(level, "MRZ reader disconnected: %s", reason)
        self._update(status=MrzReaderStatus.DISCONNECTED, last_error=reason)

    async def _pump(self, port: serial.Serial, path: str) -> str:
        """Feed the framer from the port until it is lost; returns why."""
        loop = asyncio.get_running_loop()
        fd = port.fileno()
        lost: asyncio.Future[str] = loop.create_future()
        self._port_path = path
        loop.add_reader(fd, self._on_readable, port, lost)
        try:
            while True:
                await asyncio.wait([lost], timeout=self.config.presence_interval)
                if lost.done():
                    return lost.result()
                problem = _presence_problem(path, fd)
                if problem:
                    return problem
        finally:
            loop.remove_reader(fd)

    def _on_readable(self, port: serial.Serial, lost: asyncio.Future[str]) -> None:
        fd = port.fileno()
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            reason = _describe(exc)
        else:
            if data:
                self._received(data, time.monotonic())
                return
            # Readable yet empty: end of file. A tty reads EOF once hung up (USB unplug, pty
            # master closed); an ioctl on it then fails with the real error, usually EIO.
            try:
                port.in_waiting  # noqa: B018 -- the ioctl is the question
                reason = "the port reported end of file"
            except OSError as exc:
                reason = _describe(exc)
        asyncio.get_running_loop().remove_reader(fd)  # a hung-up fd stays readable: stop now
        if not lost.done():
            lost.set_result(reason)

    def _received(self, data: bytes, now: float) -> None:
        outputs = self._framer.feed(data, now)
        self._update(
            bytes_received=self._state.bytes_received + len(data),
            garbage_bytes=self._framer.garbage_bytes,
        )
        self._handle(outputs)
        if self._framer.pending and self._quiet_timer is None:
            self._quiet_timer = asyncio.get_running_loop().call_later(
                self.config.document_timeout, self._on_quiet
            )

    def _on_quiet(self) -> None:
        # One timer per quiet spell, re-armed for the remainder rather than reset on every read.
        self._quiet_timer = None
        if not self._framer.pending or self._framer.last_byte_at is None:
            return
        remaining = self._framer.last_byte_at + self.config.document_timeout - time.monotonic()
        if remaining > 0:
            self._quiet_timer = asyncio.get_running_loop().call_later(remaining, self._on_quiet)
            return
        self._handle(self._framer.expire(time.monotonic()))
        self._update(garbage_bytes=self._framer.garbage_bytes)

    def _handle(self, outputs: list[Frame | Discard]) -> None:
        for output in outputs:
            if isinstance(output, Discard):
                # Sizes and reasons only: the bytes hold a traveller's name and numbers.
                log.warning("MRZ read discarded (%d bytes): %s", output.size, output.reason)
                self._update(documents_discarded=self._state.documents_discarded + 1)
            else:
                self._emit(output)

    def _emit(self, frame: Frame) -> None:
        assert self._parse is not None
        document: MrzDocument | None = None
        error: Exception | None = None
        try:
            document = self._parse(frame.text)
        except ValueError as exc:
            error = exc
        except Exception as exc:  # a parser bug must not take the reader down
            log.exception("the MRZ parser failed on a %d-character read", len(frame.text))
            error = exc
        if document is not None:
            self._update(documents_read=self._state.documents_read + 1)
        else:
            self._update(parse_errors=self._state.parse_errors + 1)
        self._push(
            MrzReadEvent(
                raw=frame.raw,
                text=frame.text,
                document=document,
                error=error,
                port=self._port_path,
                first_byte_at=frame.first_byte_at,
                last_byte_at=frame.last_byte_at,
                emitted_at=time.monotonic(),
                read_at=datetime.now(UTC),
            )
        )

    def _close(self, port: serial.Serial, reason: str) -> None:
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
            self._quiet_timer = None
        # What was pending can no longer complete; a complete-but-unterminated one still counts.
        self._handle(self._framer.expire(time.monotonic(), reason))
        with contextlib.suppress(OSError):
            port.close()
        log.debug("MRZ reader port %s closed", self._port_path)


def _presence_problem(path: str, fd: int) -> str | None:
    """Why *path* no longer names the open port, or None while it does."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return f"{path} vanished"
    except OSError as exc:
        return _describe(exc)
    try:
        if named.st_rdev != os.fstat(fd).st_rdev:
            return f"{path} now names another device"
    except OSError as exc:
        return _describe(exc)
    return None
