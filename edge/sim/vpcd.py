"""Put a virtual card into a vpcd reader: the card side of the vsmartcard vpcd protocol.

vpcd is a pcscd reader driver (Debian: vsmartcard-vpcd) whose "slot" is a TCP port. A virtual
card is the TCP *client*: connecting to the port inserts the card, closing the socket removes it.
Every message in both directions is a 2-byte big-endian length followed by the payload. From vpcd
to the card, a 1-byte payload is a control code (:class:`Control`); anything longer is a command
APDU, answered with a response APDU. Power off/on and reset get no answer; an ATR request and an
APDU must be answered, because vpcd blocks pcscd's reader thread until they are.

vpcd asks for the ATR on every presence poll (pcscd polls a few times a second), so a card sees
many ``ATR`` requests; that is normal.

Usage, with a reader listening on port 35963::

    with VpcdClient(IsoCard(), port=35963):
        ...  # the card is in the reader; PC/SC applications can connect to it
"""

from __future__ import annotations

import abc
import contextlib
import enum
import logging
import socket
import threading
from types import TracebackType

from edge.documents.apdu import StatusWord

__all__ = ["VPCD_DEFAULT_PORT", "Control", "VirtualCard", "VpcdClient", "VpcdUnavailable"]

log = logging.getLogger(__name__)

#: Port of the first vpcd slot in Debian's /etc/reader.conf.d/vpcd (0x8C7B); slot n is port + n.
VPCD_DEFAULT_PORT = 0x8C7B

_MAX_MESSAGE = 0xFFFF  # the length prefix is two bytes


class Control(enum.IntEnum):
    """Control codes vpcd sends as 1-byte messages."""

    POWER_OFF = 0
    POWER_ON = 1
    RESET = 2
    ATR = 4  # "send me your ATR"; the answer is the ATR bytes as a message


class VirtualCard(abc.ABC):
    """A smart card living in this process; :class:`VpcdClient` plugs it into a reader.

    Subclasses set ``atr`` (class or instance attribute) and implement :meth:`transmit`. The
    power methods default to: power-on and reset forget volatile state through :meth:`reset`,
    power-off does nothing. All methods are called from the client's I/O thread, one at a time.
    """

    atr: bytes

    def power_on(self) -> None:
        """The reader powered the contacts: a cold start, so volatile state goes."""
        self.reset()

    def power_off(self) -> None:  # noqa: B027 -- an optional hook, empty on purpose
        """The reader cut the power."""

    def reset(self) -> None:  # noqa: B027 -- an optional hook, empty on purpose
        """Warm reset: forget volatile state (selected application, session keys...)."""

    @abc.abstractmethod
    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU and return the response APDU (data + SW1 SW2)."""


class VpcdUnavailable(ConnectionError):
    """No vpcd slot is listening where we tried to insert the card."""


class VpcdClient:
    """Connects one :class:`VirtualCard` to one vpcd slot and serves it from a daemon thread.

    :meth:`insert` connects (raising :class:`VpcdUnavailable` if nothing listens) and starts the
    thread; :meth:`remove` closes the socket, which vpcd sees as the card leaving the reader.
    If vpcd drops the connection (pcscd stopped), the thread ends, :attr:`inserted` turns False
    and :meth:`wait` returns; :attr:`error` then says why. A client is single-use: make a new one
    to insert the card again.

    The card never takes the link down: an exception in :meth:`VirtualCard.transmit`, or a
    response that is not bytes of a sane length, is answered with ``6F00`` and logged.
    """

    def __init__(
        self,
        card: VirtualCard,
        host: str = "127.0.0.1",
        port: int = VPCD_DEFAULT_PORT,
        *,
        connect_timeout: float = 2.0,
    ) -> None:
        self.card = card
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.error: BaseException | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._removing = False

    # -- lifecycle ---------------------------------------------------------------------------

    def insert(self) -> VpcdClient:
        """Connect to vpcd (= insert the card) and start serving it."""
        if self._thread is not None:
            raise RuntimeError("this VpcdClient was already used; create a new one")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise VpcdUnavailable(
                f"vpcd is not listening on {self.host}:{self.port} ({reason}); "
                "is pcscd running with the vpcd driver (apt-get install pcscd vsmartcard-vpcd)?"
            ) from exc
        # Blocking from here on: the thread waits for vpcd as long as the card is inserted.
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._thread = threading.Thread(
            target=self._serve, name=f"vpcd-card-{self.host}:{self.port}", daemon=True
        )
        self._thread.start()
        log.info("card inserted into vpcd at %s:%d", self.host, self.port)
        return self

    def remove(self, timeout: float = 2.0) -> None:
        """Close the connection (= pull the card out) and wait for the I/O thread to end."""
        self._removing = True
        if self._sock is not None:
            # shutdown() wakes the thread blocked in recv(); close() alone would not
            with contextlib.suppress(OSError):  # already disconnected by the peer
                self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"vpcd card thread did not stop within {timeout}s")
        self._closed.set()

    @property
    def inserted(self) -> bool:
        """True while the connection to vpcd is up."""
        return self._thread is not None and not self._closed.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the link is closed (by :meth:`remove` or by vpcd); False on timeout."""
        return self._closed.wait(timeout)

    def __enter__(self) -> VpcdClient:
        return self.insert()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    # -- the message loop (I/O thread) -------------------------------------------------------

    def _serve(self) -> None:
        assert self._sock is not None
        sock = self._sock
        try:
            while (message := self._receive(sock)) is not None:
                if len(message) == 1:
                    self._control(sock, message[0])
                elif message:
                    self._send(sock, self._answer(message))
                # vpcd never sends an empty message; should one come, there is nothing to answer
        except OSError as exc:
            if not self._removing:
                self.error = exc
                log.warning("vpcd link %s:%d failed: %s", self.host, self.port, exc)
        except Exception as exc:  # a broken card must not leave a zombie link
            self.error = exc
            log.exception("virtual card failed; removing it from %s:%d", self.host, self.port)
        else:
            if not self._removing:
                self.error = ConnectionResetError("vpcd closed the connection")
                log.info("vpcd at %s:%d closed the connection", self.host, self.port)
        finally:
            sock.close()
            self._closed.set()

    def _control(self, sock: socket.socket, code: int) -> None:
        if code == Control.ATR:
            self._send(sock, bytes(self.card.atr))
        elif code == Control.POWER_ON:
            self.card.power_on()
        elif code == Control.POWER_OFF:
            self.card.power_off()
        elif code == Control.RESET:
            self.card.reset()
        else:
            # Unknown codes carry no answer we could give; answering would desynchronise vpcd.
            log.debug("ignoring unknown vpcd control code %d", code)

    def _answer(self, apdu: bytes) -> bytes:
        log.debug("C-APDU %s", apdu.hex(" ").upper())
        try:
            response = self.card.transmit(apdu)
        except Exception:
            log.exception("virtual card raised on %s; answering 6F00", apdu.hex().upper())
            return StatusWord.NO_PRECISE_DIAGNOSIS.to_bytes()
        if not isinstance(response, bytes | bytearray) or not 2 <= len(response) <= _MAX_MESSAGE:
            log.error("virtual card returned an invalid response %r; answering 6F00", response)
            return StatusWord.NO_PRECISE_DIAGNOSIS.to_bytes()
        log.debug("R-APDU %s", bytes(response).hex(" ").upper())
        return bytes(response)

    @staticmethod
    def _send(sock: socket.socket, payload: bytes) -> None:
        if len(payload) > _MAX_MESSAGE:
            raise ValueError(f"vpcd message of {len(payload)} bytes exceeds {_MAX_MESSAGE}")
        sock.sendall(len(payload).to_bytes(2, "big") + payload)

    @staticmethod
    def _receive(sock: socket.socket) -> bytes | None:
        """One message, or None when vpcd closed the connection."""
        header = _receive_exactly(sock, 2)
        if header is None:
            return None
        size = int.from_bytes(header, "big")
        if size == 0:
            return b""
        return _receive_exactly(sock, size)


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        _ack_now(sock)
        chunks += chunk
    return bytes(chunks)


def _ack_now(sock: socket.socket) -> None:
    """ACK what we just received at once instead of after Linux's ~40 ms delayed-ACK timer.

    vpcd writes with Nagle's algorithm on, and control messages (power on, reset) get no reply to
    carry the ACK: its next message (the ATR request that always follows) would sit in vpcd's
    buffer until our delayed ACK fires, adding 40 ms to every connect, reset and APDU. The kernel
    clears TCP_QUICKACK by itself, hence setting it after every read.
    """
    if _TCP_QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
