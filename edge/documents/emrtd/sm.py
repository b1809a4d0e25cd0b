"""Secure messaging with 3DES session keys (Doc 9303 Part 11 §9.8, ISO/IEC 7816-4 §10).

After BAC, every APDU is protected: command data is encrypted with ``KS_enc`` and every command
and response carries a retail MAC under ``KS_mac``, computed over the *send sequence counter*
(SSC) and the protected fields. The SSC starts at the value BAC derived and is incremented
before each command and again before each response, so both sides must stay in step: a
replayed or dropped APDU fails the MAC.

A protected command (:meth:`SecureMessaging.wrap_command`)::

    CLA|0C INS P1 P2 Lc [DO'87' or DO'85'] [DO'97'] DO'8E' Le(00 or 0000)

- ``DO'87' = 87 L 01 ‖ E(KS_enc, pad(data))``: the ``01`` says the padding is ISO 9797-1
  method 2. An odd INS (its data is BER-TLV, e.g. READ BINARY ``B1``) uses
  ``DO'85' = 85 L E(KS_enc, pad(data))`` instead.
- ``DO'97' = 97 01 Le`` (two bytes for an extended Le) when a response is expected.
- ``DO'8E' = 8E 08 MAC(KS_mac, pad(SSC ‖ pad(CLA INS P1 P2) ‖ DO'87' ‖ DO'97'))``.

A protected response (:meth:`SecureMessaging.unwrap_response`) is
``[DO'87' or DO'85'] DO'99' DO'8E' SW1 SW2`` where ``DO'99'`` holds the real status word and
``DO'8E'`` the MAC of ``pad(SSC ‖ DO'87' ‖ DO'99')``. The MAC is checked before anything in
the response is used.

One :class:`SecureMessaging` object holds one side's session: the terminal uses
:meth:`~SecureMessaging.wrap_command` and :meth:`~SecureMessaging.unwrap_response`, the chip
:meth:`~SecureMessaging.unwrap_command` and :meth:`~SecureMessaging.wrap_response`. Any error
closes the session (Doc 9303: the chip then discards its session keys), and every later call
raises :class:`SecureMessagingError` until BAC runs again.

>>> sm = SecureMessaging(
...     bytes.fromhex("979EC13B1CBFE9DCD01AB0FED307EAE5"),
...     bytes.fromhex("F1CB1F1FB5ADF208806B89DC579DC1F8"),
...     bytes.fromhex("887022120C06C226"),
... )
>>> select_com = CommandApdu(0x00, 0xA4, 0x02, 0x0C, bytes.fromhex("011E"))
>>> sm.wrap_command(select_com).to_bytes().hex().upper()
'0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800'
"""

from __future__ import annotations

from edge.documents import tlv
from edge.documents.apdu import MAX_NE, CommandApdu, ResponseApdu, StatusWord
from edge.documents.emrtd.crypto import (
    BLOCK,
    PaddingError,
    equal,
    pad,
    retail_mac,
    tdes_decrypt,
    tdes_encrypt,
    unpad,
)

__all__ = [
    "SecureMessaging",
    "SecureMessagingError",
]

TAG_CRYPTOGRAM_PADDED = 0x87  # padding-content indicator byte ‖ cryptogram
TAG_CRYPTOGRAM = 0x85  # cryptogram of BER-TLV data (odd INS)
TAG_LE = 0x97
TAG_STATUS = 0x99
TAG_MAC = 0x8E
_PADDING_INDICATOR = 0x01  # ISO/IEC 9797-1 padding method 2
_MAC_SIZE = 8
_SSC_MODULUS = 1 << 64
_SM_CLASS_BITS = 0x0C


class SecureMessagingError(Exception):
    """A protected APDU that must not be used: bad MAC, missing or malformed data objects.

    ``sw`` is the status word a chip answers with when it detects the error (``6987`` when
    data objects are missing, ``6988`` when they are incorrect). ``unprotected_sw`` is set on the
    terminal side when the chip answered a bare status word without secure messaging, as chips
    do on errors; that status word is unauthenticated, and the session is over.
    """

    def __init__(
        self,
        message: str,
        *,
        sw: int = StatusWord.SM_DATA_OBJECTS_INCORRECT,
        unprotected_sw: int | None = None,
    ) -> None:
        super().__init__(message)
        self.sw = StatusWord(sw)
        self.unprotected_sw = None if unprotected_sw is None else StatusWord(unprotected_sw)


def _missing(message: str) -> SecureMessagingError:
    return SecureMessagingError(message, sw=StatusWord.SM_DATA_OBJECTS_MISSING)


class SecureMessaging:
    """One side of a 3DES secure messaging session: the session keys and the SSC.

    ``ks_enc`` and ``ks_mac`` are the 16-byte session keys; ``ssc`` the 8-byte initial send
    sequence counter (bytes or int), all as BAC derived them (:class:`~.bac.BacTerminal`).
    """

    def __init__(self, ks_enc: bytes, ks_mac: bytes, ssc: bytes | int) -> None:
        if len(ks_enc) != 16 or len(ks_mac) != 16:
            raise ValueError("3DES session keys are 16 bytes each")
        if isinstance(ssc, bytes | bytearray):
            if len(ssc) != 8:
                raise ValueError(f"the SSC is 8 bytes, got {len(ssc)}")
            ssc = int.from_bytes(ssc, "big")
        if not 0 <= ssc < _SSC_MODULUS:
            raise ValueError("the SSC is a 64-bit counter")
        self.ks_enc = bytes(ks_enc)
        self.ks_mac = bytes(ks_mac)
        self._ssc = ssc
        self._closed: str | None = None

    # -- state ---------------------------------------------------------------------------

    @property
    def ssc(self) -> bytes:
        """The current send sequence counter, as the 8 bytes that go into each MAC."""
        return self._ssc.to_bytes(8, "big")

    @property
    def closed(self) -> bool:
        """True once an error ended the session; run BAC again for a new one."""
        return self._closed is not None

    def close(self, reason: str = "closed by the caller") -> None:
        """End the session: every later wrap/unwrap raises :class:`SecureMessagingError`."""
        if self._closed is None:
            self._closed = reason

    def _next_ssc(self) -> bytes:
        if self._closed is not None:
            raise SecureMessagingError(f"the secure messaging session is over: {self._closed}")
        self._ssc = (self._ssc + 1) % _SSC_MODULUS
        return self.ssc

    def _fail(self, error: SecureMessagingError) -> SecureMessagingError:
        self.close(str(error))
        return error

    # -- building blocks -----------------------------------------------------------------

    def _mac(self, ssc: bytes, message: bytes) -> bytes:
        return retail_mac(self.ks_mac, pad(ssc + message))

    def _encrypt_data(self, data: bytes, *, odd_ins: bool) -> bytes:
        cryptogram = tdes_encrypt(self.ks_enc, pad(data))
        if odd_ins:
            return tlv.encode(TAG_CRYPTOGRAM, cryptogram)
        return tlv.encode(TAG_CRYPTOGRAM_PADDED, bytes((_PADDING_INDICATOR,)) + cryptogram)

    def _decrypt_data(self, obj: tlv.Tlv) -> bytes:
        cryptogram = obj.value
        if obj.tag == TAG_CRYPTOGRAM_PADDED:
            if not cryptogram or cryptogram[0] != _PADDING_INDICATOR:
                raise SecureMessagingError("DO'87' lacks the padding-content indicator 01")
            cryptogram = cryptogram[1:]
        if not cryptogram or len(cryptogram) % BLOCK:
            raise SecureMessagingError(
                f"the cryptogram is {len(cryptogram)} bytes, not a multiple of {BLOCK}"
            )
        try:
            return unpad(tdes_decrypt(self.ks_enc, cryptogram))
        except PaddingError as error:
            raise SecureMessagingError(f"decrypted data has bad padding: {error}") from None

    @staticmethod
    def _split(data: bytes, allowed: dict[int, str]) -> tuple[dict[int, tlv.Tlv], int]:
        """The data objects before DO'8E' by tag, and the offset where DO'8E' starts.

        Checks structure only: known tags, each at most once, DO'8E' present, last, 8 bytes.
        """
        objects: dict[int, tlv.Tlv] = {}
        mac_start: int | None = None
        try:
            for obj, start, _end in tlv.iter_decode(data):
                if mac_start is not None:
                    raise SecureMessagingError("data objects follow the MAC (DO'8E')")
                if obj.tag == TAG_MAC:
                    if len(obj.value) != _MAC_SIZE:
                        raise SecureMessagingError(f"DO'8E' holds {len(obj.value)} bytes, not 8")
                    mac_start = start
                    objects[TAG_MAC] = obj
                    continue
                if obj.tag not in allowed:
                    raise SecureMessagingError(f"unexpected data object {obj.tag:02X}")
                if obj.tag in objects:
                    raise SecureMessagingError(f"data object {obj.tag:02X} appears twice")
                objects[obj.tag] = obj
        except tlv.TlvError as error:
            raise SecureMessagingError(f"malformed secure messaging data: {error}") from None
        if mac_start is None:
            raise _missing("the MAC data object DO'8E' is missing")
        if TAG_CRYPTOGRAM in objects and TAG_CRYPTOGRAM_PADDED in objects:
            raise SecureMessagingError("both DO'85' and DO'87' are present")
        return objects, mac_start

    # -- terminal side -------------------------------------------------------------------

    def wrap_command(self, command: CommandApdu) -> CommandApdu:
        """Protect a plain command: increments the SSC, encrypts the data, adds DO'97' and MAC.

        The protected command is extended-length when the plain one is, or when its data no
        longer fits a short Lc.
        """
        if command.cla & _SM_CLASS_BITS:
            raise ValueError(f"CLA {command.cla:02X} already announces secure messaging")
        ssc = self._next_ssc()
        cla = command.cla | _SM_CLASS_BITS
        header = bytes((cla, command.ins, command.p1, command.p2))
        objects = b""
        if command.data:
            objects += self._encrypt_data(command.data, odd_ins=bool(command.ins & 1))
        if command.le is not None:
            long_le = command.extended or command.le > 256
            le = (command.le % MAX_NE).to_bytes(2, "big") if long_le else bytes((command.le % 256,))
            objects += tlv.encode(TAG_LE, le)
        mac = self._mac(ssc, pad(header) + objects)
        body = objects + tlv.encode(TAG_MAC, mac)
        extended = command.extended or len(body) > 0xFF
        return CommandApdu(
            cla,
            command.ins,
            command.p1,
            command.p2,
            body,
            MAX_NE if extended else 256,
            extended=extended,
        )

    def unwrap_response(self, response: ResponseApdu) -> ResponseApdu:
        """Check and decrypt a protected response; return the plain data and ``DO'99'`` status.

        Raises :class:`SecureMessagingError` (and closes the session) when the MAC is wrong or
        missing, ``DO'99'`` is missing, or the data does not decrypt to correctly padded bytes;
        when the chip answered a bare status word, the error's ``unprotected_sw`` holds it.
        """
        if self._closed is not None:
            raise SecureMessagingError(f"the secure messaging session is over: {self._closed}")
        if not response.data:
            sw = response.sw
            self._ssc = (self._ssc + 1) % _SSC_MODULUS
            raise self._fail(
                SecureMessagingError(
                    f"the chip answered {sw} without secure messaging",
                    sw=StatusWord.SM_DATA_OBJECTS_MISSING,
                    unprotected_sw=sw,
                )
            )
        ssc = self._next_ssc()
        try:
            objects, mac_start = self._split(
                response.data,
                {TAG_CRYPTOGRAM_PADDED: "data", TAG_CRYPTOGRAM: "data", TAG_STATUS: "status"},
            )
            expected = self._mac(ssc, response.data[:mac_start])
            if not equal(expected, objects[TAG_MAC].value):
                raise SecureMessagingError("the response MAC is wrong")
            # Authentic from here on.
            status = objects.get(TAG_STATUS)
            if status is None:
                raise _missing("the status data object DO'99' is missing")
            if len(status.value) != 2:
                raise SecureMessagingError(f"DO'99' holds {len(status.value)} bytes, not 2")
            cryptogram = objects.get(TAG_CRYPTOGRAM_PADDED) or objects.get(TAG_CRYPTOGRAM)
            data = b"" if cryptogram is None else self._decrypt_data(cryptogram)
        except SecureMessagingError as error:
            raise self._fail(error) from None
        return ResponseApdu(data, StatusWord.from_bytes_pair(*status.value))

    # -- chip side -----------------------------------------------------------------------

    def unwrap_command(self, command: CommandApdu) -> CommandApdu:
        """Check and decrypt a protected command; return the plain command it carries.

        The plain command's CLA has the secure messaging bits cleared, its data is the
        decrypted ``DO'87'``/``DO'85'`` and its ``le`` comes from ``DO'97'``. Raises
        :class:`SecureMessagingError` (and closes the session) when anything is wrong; answer
        with its ``sw`` and drop the session.
        """
        if command.cla & _SM_CLASS_BITS != _SM_CLASS_BITS:
            raise self._fail(_missing(f"CLA {command.cla:02X} does not announce secure messaging"))
        ssc = self._next_ssc()
        try:
            objects, mac_start = self._split(
                command.data,
                {TAG_CRYPTOGRAM_PADDED: "data", TAG_CRYPTOGRAM: "data", TAG_LE: "le"},
            )
            header = bytes((command.cla, command.ins, command.p1, command.p2))
            expected = self._mac(ssc, pad(header) + command.data[:mac_start])
            if not equal(expected, objects[TAG_MAC].value):
                raise SecureMessagingError("the command MAC is wrong")
            cryptogram = objects.get(TAG_CRYPTOGRAM_PADDED) or objects.get(TAG_CRYPTOGRAM)
            if cryptogram is not None and (cryptogram.tag == TAG_CRYPTOGRAM) != bool(
                command.ins & 1
            ):
                raise SecureMessagingError(
                    f"INS {command.ins:02X} needs DO'{'85' if command.ins & 1 else '87'}'"
                )
            data = b"" if cryptogram is None else self._decrypt_data(cryptogram)
            le: int | None = None
            long_le = False
            if TAG_LE in objects:
                raw_le = objects[TAG_LE].value
                if len(raw_le) == 1:
                    le = raw_le[0] or 256
                elif len(raw_le) == 2:
                    le = int.from_bytes(raw_le, "big") or MAX_NE
                    long_le = True
                else:
                    raise SecureMessagingError(f"DO'97' holds {len(raw_le)} bytes, not 1 or 2")
            return CommandApdu(
                command.cla & ~_SM_CLASS_BITS & 0xFF,
                command.ins,
                command.p1,
                command.p2,
                data,
                le,
                extended=long_le or len(data) > 0xFF,
            )
        except SecureMessagingError as error:
            raise self._fail(error) from None

    def wrap_response(self, response: ResponseApdu, *, odd_ins: bool = False) -> ResponseApdu:
        """Protect a plain response: increments the SSC, encrypts the data, adds DO'99' and MAC.

        ``odd_ins`` puts the data in ``DO'85'`` (the answer to an odd INS such as ``B1``). The
        outer status word repeats the one in ``DO'99'``.
        """
        ssc = self._next_ssc()
        objects = b""
        if response.data:
            objects += self._encrypt_data(response.data, odd_ins=odd_ins)
        objects += tlv.encode(TAG_STATUS, response.sw.to_bytes())
        mac = self._mac(ssc, objects)
        return ResponseApdu(objects + tlv.encode(TAG_MAC, mac), response.sw)
