"""BER-TLV as smart cards and the eMRTD LDS use it (ISO/IEC 7816-4 §5.2, Doc 9303 Part 10).

A data object is ``tag ‖ length ‖ value``:

- the *tag* is one byte, or several when the low five bits of the first are all ones
  (``5F1F``, ``7F61``): each further byte has bit 8 set except the last. A tag is handled here as
  the integer of its bytes, so DG1's MRZ is ``0x5F1F``. Bit 6 of the first byte marks a
  *constructed* object, whose value is itself a sequence of data objects.
- the *length* is one byte below ``80``, or ``81``..``84`` followed by that many length bytes.
  The indefinite form ``80`` is not used by the LDS and is rejected.

Decoding never trusts a length: any bytes either decode or raise :class:`TlvError`, and nothing
else. Encoding always produces the shortest length form; decoding accepts longer forms (BER).

>>> encode(0x5F1F, b"P<UTO").hex().upper()
'5F1F05503C55544F'
>>> decode_all(bytes.fromhex("6107 5F1F 04 41424344".replace(" ", "")))[0].children()
[Tlv(tag=0x5F1F, value=41424344)]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "MAX_TAG_BYTES",
    "Tlv",
    "TlvError",
    "decode",
    "decode_all",
    "decode_one",
    "encode",
    "encode_length",
    "encode_tag",
    "header_size",
    "iter_decode",
]

#: Longest tag accepted (4 bytes covers every tag ISO 7816 and the LDS define).
MAX_TAG_BYTES = 4
#: Longest length field accepted after the ``8X`` byte (4 bytes: values up to 4 GiB).
_MAX_LENGTH_BYTES = 4


class TlvError(ValueError):
    """Bytes that are not well-formed BER-TLV, or a tag or length that cannot be encoded."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One data object: its tag (as an int, e.g. ``0x5F1F``) and its value bytes."""

    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        """True when the value holds nested data objects (bit 6 of the first tag byte)."""
        return bool(encode_tag(self.tag)[0] & 0x20)

    def children(self) -> list[Tlv]:
        """The nested data objects of a constructed object.

        Raises :class:`TlvError` if the object is primitive or its value does not decode.
        """
        if not self.constructed:
            raise TlvError(f"tag {self.tag:X} is primitive and has no children")
        return decode_all(self.value)

    def find(self, tag: int) -> Tlv | None:
        """The first child with ``tag``, or None."""
        return next((child for child in self.children() if child.tag == tag), None)

    def require(self, tag: int) -> Tlv:
        """The first child with ``tag``; raise :class:`TlvError` when there is none."""
        child = self.find(tag)
        if child is None:
            raise TlvError(f"tag {self.tag:X} has no child with tag {tag:X}")
        return child

    def encode(self) -> bytes:
        """The object's bytes, with the shortest length form."""
        return encode(self.tag, self.value)

    def __bytes__(self) -> bytes:
        return self.encode()

    def __repr__(self) -> str:
        value = self.value.hex().upper()
        if len(value) > 64:
            value = f"{value[:64]}...({len(self.value)} bytes)"
        return f"Tlv(tag=0x{self.tag:02X}, value={value})"


def encode_tag(tag: int) -> bytes:
    """The bytes of ``tag``, checking that they form one well-formed BER tag."""
    if isinstance(tag, bool) or not isinstance(tag, int) or tag < 0:
        raise TlvError(f"a tag is a non-negative int, got {tag!r}")
    raw = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    if len(raw) > MAX_TAG_BYTES:
        raise TlvError(f"tag {tag:X} is longer than {MAX_TAG_BYTES} bytes")
    multi = raw[0] & 0x1F == 0x1F
    if not multi and len(raw) > 1:
        raise TlvError(f"tag {tag:X}: first byte does not announce a multi-byte tag")
    if multi:
        if len(raw) == 1:
            raise TlvError(f"tag {tag:X} announces more tag bytes but has none")
        if any(b & 0x80 == 0 for b in raw[1:-1]) or raw[-1] & 0x80:
            raise TlvError(f"tag {tag:X}: only its last byte may have bit 8 clear")
    return raw


def encode_length(length: int) -> bytes:
    """The shortest BER length field for ``length`` bytes."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise TlvError(f"a length is a non-negative int, got {length!r}")
    if length < 0x80:
        return bytes((length,))
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(raw) > _MAX_LENGTH_BYTES:
        raise TlvError(f"length {length} needs more than {_MAX_LENGTH_BYTES} length bytes")
    return bytes((0x80 | len(raw),)) + raw


def encode(tag: int, value: bytes | bytearray | memoryview) -> bytes:
    """One data object: ``tag ‖ length ‖ value``."""
    value = bytes(value)
    return encode_tag(tag) + encode_length(len(value)) + value


def _read_header(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, value offset, value length) of the object at ``offset``; lengths not checked."""
    end = len(data)
    if offset >= end:
        raise TlvError(f"expected a tag at offset {offset}, found the end of the data")
    start = offset
    first = data[offset]
    offset += 1
    if first & 0x1F == 0x1F:
        while True:
            if offset >= end:
                raise TlvError(f"tag starting at offset {start} is cut off")
            if offset - start >= MAX_TAG_BYTES:
                raise TlvError(f"tag at offset {start} is longer than {MAX_TAG_BYTES} bytes")
            byte = data[offset]
            offset += 1
            if not byte & 0x80:
                break
    tag = int.from_bytes(data[start:offset], "big")
    if offset >= end:
        raise TlvError(f"tag {tag:X} at offset {start} has no length")
    first_length = data[offset]
    offset += 1
    if first_length < 0x80:
        return tag, offset, first_length
    count = first_length & 0x7F
    if count == 0:
        raise TlvError(f"tag {tag:X} at offset {start}: indefinite length is not supported")
    if count > _MAX_LENGTH_BYTES:
        raise TlvError(f"tag {tag:X} at offset {start}: {count} length bytes is too many")
    if offset + count > end:
        raise TlvError(f"tag {tag:X} at offset {start}: length field is cut off")
    length = int.from_bytes(data[offset : offset + count], "big")
    return tag, offset + count, length


def header_size(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(header bytes, value bytes) of the object that ``data`` starts with.

    Only the header needs to be present: this is how a reader learns a file's total length
    (``sum`` of the two) from its first few bytes. Raises :class:`TlvError` if the header itself
    is cut off or malformed.

    >>> header_size(bytes.fromhex("77820F12"))
    (4, 3858)
    """
    _tag, value_offset, length = _read_header(bytes(data), 0)
    return value_offset, length


def decode(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Tlv, int]:
    """Decode the object starting at ``offset``; return it and the offset just past it."""
    data = bytes(data)
    if offset < 0:
        raise TlvError(f"offset must be non-negative, got {offset}")
    tag, value_offset, length = _read_header(data, offset)
    end = value_offset + length
    if end > len(data):
        raise TlvError(
            f"tag {tag:X} at offset {offset} announces {length} value bytes, "
            f"{len(data) - value_offset} are there"
        )
    return Tlv(tag, data[value_offset:end]), end


def iter_decode(data: bytes | bytearray | memoryview) -> Iterator[tuple[Tlv, int, int]]:
    """Each object in ``data`` with its start and end offsets, so callers can MAC raw bytes."""
    data = bytes(data)
    offset = 0
    while offset < len(data):
        tlv, end = decode(data, offset)
        yield tlv, offset, end
        offset = end


def decode_all(data: bytes | bytearray | memoryview) -> list[Tlv]:
    """All objects in ``data``, which must be exactly a concatenation of objects."""
    return [tlv for tlv, _, _ in iter_decode(data)]


def decode_one(data: bytes | bytearray | memoryview, tag: int | None = None) -> Tlv:
    """The single object that ``data`` consists of, optionally checking its tag.

    Trailing bytes after the object are an error: an LDS file is exactly one object.
    """
    tlv, end = decode(data)
    if end != len(data):
        raise TlvError(f"{len(data) - end} unexpected bytes after the data object")
    if tag is not None and tlv.tag != tag:
        raise TlvError(f"expected tag {tag:X}, found {tlv.tag:X}")
    return tlv
