"""The Logical Data Structure of an eMRTD chip (Doc 9303 Part 10): files, EF.COM, DG1, DG2.

The eMRTD application (AID ``A0 00 00 02 47 10 01``) holds elementary files, each one BER-TLV
object (:mod:`.tlv`) whose tag says what it is:

=========  ======  =====  ===  ========================================================
file       tag     FID    SFI  content
=========  ======  =====  ===  ========================================================
EF.COM     ``60``  011E   1E   LDS and Unicode versions, the tags of the DGs present
EF.DG1     ``61``  0101   01   the MRZ (``5F1F``)
EF.DG2     ``75``  0102   02   the face: biometric information template(s) (``7F61``)
EF.DGn     ...     01 0n  0n   DG3 fingers, DG7 signature, DG11/12 details, DG14/15 keys...
EF.SOD     ``77``  011D   1D   the Document Security Object (:mod:`.sod`)
=========  ======  =====  ===  ========================================================

:class:`LdsFile` lists them; :class:`EfCom`, :class:`Dg1` and :class:`Dg2` parse and build
the three files a border lane reads besides the SOD. Parsers raise :class:`LdsError`, and nothing
else, on any bytes.

>>> mrz = "P<UTOERIKSSON<<ANNA<MARIA" + "<" * 19 + "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
>>> Dg1.parse(Dg1(mrz).encode()).lines[1]
'L898902C36UTO7408122F1204159ZE184226B<<<<<10'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edge.documents import tlv

__all__ = [
    "MRTD_AID",
    "Dg1",
    "Dg2",
    "EfCom",
    "FaceImage",
    "ImageFormat",
    "LdsError",
    "LdsFile",
    "image_format",
]

#: The eMRTD application's AID (Doc 9303 Part 10 §3.1.1).
MRTD_AID = bytes.fromhex("A0000002471001")

_TAG_LDS_VERSION = 0x5F01
_TAG_UNICODE_VERSION = 0x5F36
_TAG_TAG_LIST = 0x5C
_TAG_MRZ = 0x5F1F
_TAG_BIOMETRIC_GROUP = 0x7F61
_TAG_INSTANCE_COUNT = 0x02
_TAG_BIOMETRIC_TEMPLATE = 0x7F60
_TAG_BIOMETRIC_HEADER = 0xA1
_TAG_BIOMETRIC_DATA = 0x5F2E
_TAG_BIOMETRIC_DATA_ENCIPHERED = 0x7F2E


class LdsError(ValueError):
    """An LDS file that is not what Doc 9303 Part 10 describes."""


class LdsFile(enum.Enum):
    """An elementary file of the eMRTD application: its tag, file identifier and short EF id.

    >>> LdsFile.DG2.fid.hex().upper(), LdsFile.DG2.sfi, LdsFile.from_tag(0x77)
    ('0102', 2, <LdsFile.SOD: 'EF.SOD'>)
    """

    COM = "EF.COM"
    DG1 = "EF.DG1"
    DG2 = "EF.DG2"
    DG3 = "EF.DG3"
    DG4 = "EF.DG4"
    DG5 = "EF.DG5"
    DG6 = "EF.DG6"
    DG7 = "EF.DG7"
    DG8 = "EF.DG8"
    DG9 = "EF.DG9"
    DG10 = "EF.DG10"
    DG11 = "EF.DG11"
    DG12 = "EF.DG12"
    DG13 = "EF.DG13"
    DG14 = "EF.DG14"
    DG15 = "EF.DG15"
    DG16 = "EF.DG16"
    SOD = "EF.SOD"

    @property
    def number(self) -> int | None:
        """The data group number (1..16), or None for EF.COM and EF.SOD."""
        return int(self.name[2:]) if self.name.startswith("DG") else None

    @property
    def tag(self) -> int:
        """The tag of the file's single data object (``61`` for DG1...)."""
        return _FILE_TAGS[self]

    @property
    def sfi(self) -> int:
        """The short EF identifier (``01``..``10`` for DGs, ``1E`` COM, ``1D`` SOD)."""
        if self is LdsFile.COM:
            return 0x1E
        if self is LdsFile.SOD:
            return 0x1D
        assert self.number is not None
        return self.number

    @property
    def fid(self) -> bytes:
        """The two-byte file identifier for SELECT (``01 01`` for DG1, ``01 1E`` for COM)."""
        return bytes((0x01, self.sfi))

    @classmethod
    def data_group(cls, number: int) -> LdsFile:
        """The file of data group ``number`` (1..16)."""
        if not 1 <= number <= 16:
            raise LdsError(f"data groups are numbered 1..16, got {number}")
        return cls[f"DG{number}"]

    @classmethod
    def from_tag(cls, tag: int) -> LdsFile:
        """The file whose data object has ``tag``; raise :class:`LdsError` for others."""
        for file, file_tag in _FILE_TAGS.items():
            if file_tag == tag:
                return file
        raise LdsError(f"tag {tag:X} is not an LDS file tag")


_FILE_TAGS: dict[LdsFile, int] = {
    LdsFile.COM: 0x60,
    LdsFile.DG1: 0x61,
    LdsFile.DG2: 0x75,
    LdsFile.DG3: 0x63,
    LdsFile.DG4: 0x76,
    LdsFile.DG5: 0x65,
    LdsFile.DG6: 0x66,
    LdsFile.DG7: 0x67,
    LdsFile.DG8: 0x68,
    LdsFile.DG9: 0x69,
    LdsFile.DG10: 0x6A,
    LdsFile.DG11: 0x6B,
    LdsFile.DG12: 0x6C,
    LdsFile.DG13: 0x6D,
    LdsFile.DG14: 0x6E,
    LdsFile.DG15: 0x6F,
    LdsFile.DG16: 0x70,
    LdsFile.SOD: 0x77,
}


def _file_object(data: bytes, file: LdsFile) -> tlv.Tlv:
    try:
        return tlv.decode_one(data, file.tag)
    except tlv.TlvError as error:
        raise LdsError(f"{file.value}: {error}") from None


def _ascii(value: bytes, what: str) -> str:
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise LdsError(f"{what} is not ASCII") from None


# -- EF.COM -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EfCom:
    """EF.COM: versions and the list of data groups present.

    ``lds_version`` is four digits ``aabb`` (``"0107"`` is LDS 1.7), ``unicode_version`` six
    (``"040000"`` is Unicode 4.0.0), ``data_groups`` the numbers of the DGs the chip holds.
    """

    lds_version: str = "0107"
    unicode_version: str = "040000"
    data_groups: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        if len(self.lds_version) != 4 or not self.lds_version.isdigit():
            raise LdsError(f"the LDS version is 4 digits, got {self.lds_version!r}")
        if len(self.unicode_version) != 6 or not self.unicode_version.isdigit():
            raise LdsError(f"the Unicode version is 6 digits, got {self.unicode_version!r}")
        object.__setattr__(self, "data_groups", tuple(self.data_groups))
        for number in self.data_groups:
            LdsFile.data_group(number)

    @property
    def files(self) -> tuple[LdsFile, ...]:
        """The data groups as :class:`LdsFile` members."""
        return tuple(LdsFile.data_group(n) for n in self.data_groups)

    @classmethod
    def parse(cls, data: bytes) -> EfCom:
        """Parse EF.COM (tag ``60``)."""
        com = _file_object(data, LdsFile.COM)
        try:
            lds = com.require(_TAG_LDS_VERSION).value
            unicode = com.require(_TAG_UNICODE_VERSION).value
            tags = com.require(_TAG_TAG_LIST).value
        except tlv.TlvError as error:
            raise LdsError(f"EF.COM: {error}") from None
        numbers = []
        for tag in tags:
            file = LdsFile.from_tag(tag)
            if file.number is None:
                raise LdsError(f"EF.COM lists {file.value}, which is not a data group")
            numbers.append(file.number)
        return cls(
            _ascii(lds, "the LDS version"), _ascii(unicode, "the Unicode version"), tuple(numbers)
        )

    def encode(self) -> bytes:
        """EF.COM's bytes."""
        tags = bytes(file.tag for file in self.files)
        return tlv.encode(
            LdsFile.COM.tag,
            tlv.encode(_TAG_LDS_VERSION, self.lds_version.encode("ascii"))
            + tlv.encode(_TAG_UNICODE_VERSION, self.unicode_version.encode("ascii"))
            + tlv.encode(_TAG_TAG_LIST, tags),
        )


# -- EF.DG1 -------------------------------------------------------------------------------

_MRZ_FORMATS = {90: ("TD1", 30), 72: ("TD2", 36), 88: ("TD3", 44)}
_MRZ_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<")


@dataclass(frozen=True, slots=True)
class Dg1:
    """EF.DG1: the MRZ as one string without line breaks (90, 72 or 88 characters).

    Parse the fields with :mod:`edge.documents.mrz`; :attr:`lines` splits it as printed.
    """

    mrz: str

    def __post_init__(self) -> None:
        if len(self.mrz) not in _MRZ_FORMATS:
            raise LdsError(f"an MRZ has 90, 72 or 88 characters, got {len(self.mrz)}")
        if not set(self.mrz) <= _MRZ_CHARACTERS:
            raise LdsError("the MRZ holds characters other than A-Z, 0-9 and <")

    @property
    def document_code(self) -> str:
        """``TD1`` (ID card, 3x30), ``TD2`` (2x36) or ``TD3`` (passport, 2x44)."""
        return _MRZ_FORMATS[len(self.mrz)][0]

    @property
    def lines(self) -> tuple[str, ...]:
        """The MRZ lines as printed."""
        width = _MRZ_FORMATS[len(self.mrz)][1]
        return tuple(self.mrz[i : i + width] for i in range(0, len(self.mrz), width))

    @property
    def issuing_state(self) -> str:
        """The issuing state or organization (characters 3-5, fillers removed: ``D``, ``UTO``)."""
        return self.mrz[2:5].rstrip("<")

    @classmethod
    def parse(cls, data: bytes) -> Dg1:
        """Parse EF.DG1 (tag ``61``, MRZ in ``5F1F``)."""
        dg1 = _file_object(data, LdsFile.DG1)
        try:
            mrz = dg1.require(_TAG_MRZ).value
        except tlv.TlvError as error:
            raise LdsError(f"EF.DG1: {error}") from None
        return cls(_ascii(mrz, "the MRZ"))

    def encode(self) -> bytes:
        """EF.DG1's bytes."""
        return tlv.encode(LdsFile.DG1.tag, tlv.encode(_TAG_MRZ, self.mrz.encode("ascii")))


# -- EF.DG2 -------------------------------------------------------------------------------


class ImageFormat(enum.StrEnum):
    """How a face image is encoded, as told by its first bytes."""

    JPEG = "jpeg"
    JPEG2000 = "jpeg2000"
    UNKNOWN = "unknown"

    @property
    def media_type(self) -> str:
        """The MIME type, for storing or showing the image."""
        return {
            ImageFormat.JPEG: "image/jpeg",
            ImageFormat.JPEG2000: "image/jp2",
            ImageFormat.UNKNOWN: "application/octet-stream",
        }[self]


_JPEG_MAGIC = bytes.fromhex("FFD8FF")
_JP2_MAGIC = bytes.fromhex("0000000C6A5020200D0A870A")  # JP2 file signature box
_J2K_MAGIC = bytes.fromhex("FF4FFF51")  # raw JPEG 2000 codestream: SOC then SIZ


def image_format(image: bytes) -> ImageFormat:
    """JPEG (``FF D8 FF``), JPEG 2000 (JP2 signature box or ``FF 4F FF 51``), or unknown."""
    if image.startswith(_JPEG_MAGIC):
        return ImageFormat.JPEG
    if image.startswith(_JP2_MAGIC) or image.startswith(_J2K_MAGIC):
        return ImageFormat.JPEG2000
    return ImageFormat.UNKNOWN


# ISO/IEC 19794-5:2005 face record, the format Doc 9303 specifies for DG2.
_FACE_FORMAT_ID = b"FAC\x00"
_FACE_VERSION = b"010\x00"
_FACE_HEADER = 14  # format id, version, record length (4), number of faces (2)
_FACE_INFO = 20  # facial information block
_FEATURE_POINT = 8
_IMAGE_INFO = 12  # image information block
_IMAGE_DATA_TYPES = {ImageFormat.JPEG: 0x00, ImageFormat.JPEG2000: 0x01}
_CBEFF_FORMAT_OWNER = bytes.fromhex("0101")  # ISO/IEC JTC 1/SC 37
_CBEFF_FORMAT_FACE = bytes.fromhex("0008")
_ICAO_HEADER_VERSION = bytes.fromhex("0101")
_BIOMETRIC_TYPE_FACE = bytes.fromhex("02")


@dataclass(frozen=True, slots=True)
class FaceImage:
    """One face image from DG2 and what its face record says about it.

    ``image`` is the encoded picture (JPEG or JPEG 2000 bytes); ``image_format`` is judged from
    its first bytes (the record's own image data type is in ``declared_type``: 0 JPEG,
    1 JPEG 2000, None when the record could not be read). ``width``/``height`` are the
    record's pixel dimensions, 0 when unknown.
    """

    image: bytes
    width: int = 0
    height: int = 0
    declared_type: int | None = None

    @property
    def image_format(self) -> ImageFormat:
        return image_format(self.image)


def _parse_face_record(block: bytes) -> list[FaceImage]:
    """The images of an ISO/IEC 19794-5 face record; a best effort for other versions."""
    if not block.startswith(_FACE_FORMAT_ID):
        raise LdsError("the biometric data block is not a face record (no 'FAC' header)")
    if block[4:8] != _FACE_VERSION:
        return _scan_for_image(block)
    if len(block) < _FACE_HEADER:
        raise LdsError("the face record header is cut off")
    record_length = int.from_bytes(block[8:12], "big")
    count = int.from_bytes(block[12:14], "big")
    if record_length > len(block) or record_length < _FACE_HEADER:
        raise LdsError(f"the face record claims {record_length} bytes, {len(block)} are there")
    faces: list[FaceImage] = []
    offset = _FACE_HEADER
    for _ in range(count):
        if offset + _FACE_INFO > record_length:
            raise LdsError("a facial information block is cut off")
        face_length = int.from_bytes(block[offset : offset + 4], "big")
        points = int.from_bytes(block[offset + 4 : offset + 6], "big")
        end = offset + face_length
        info = offset + _FACE_INFO + points * _FEATURE_POINT
        image_start = info + _IMAGE_INFO
        if face_length < _FACE_INFO + _IMAGE_INFO or end > record_length or image_start > end:
            raise LdsError(f"a face image record claims {face_length} bytes, which do not fit")
        faces.append(
            FaceImage(
                image=block[image_start:end],
                width=int.from_bytes(block[info + 2 : info + 4], "big"),
                height=int.from_bytes(block[info + 4 : info + 6], "big"),
                declared_type=block[info + 1],
            )
        )
        offset = end
    return faces


def _scan_for_image(block: bytes) -> list[FaceImage]:
    """For face record versions we do not parse: the image runs from its magic to the end."""
    for magic in (_JPEG_MAGIC, _JP2_MAGIC, _J2K_MAGIC):
        start = block.find(magic)
        if start > 0:
            return [FaceImage(block[start:])]
    raise LdsError("no JPEG or JPEG 2000 image found in the face record")


def _face_record(face: FaceImage) -> bytes:
    declared = face.declared_type
    if declared is None:
        declared = _IMAGE_DATA_TYPES.get(face.image_format, 0x00)
    image_info = (
        bytes((0x01, declared))  # face image type: full frontal
        + face.width.to_bytes(2, "big")
        + face.height.to_bytes(2, "big")
        + bytes((0x01, 0x02))  # colour space sRGB; source: digital camera
        + bytes(4)  # device type, quality: unspecified
    )
    face_length = _FACE_INFO + len(image_info) + len(face.image)
    face_info = (
        face_length.to_bytes(4, "big")
        + bytes(2)  # no feature points
        + bytes(3)  # gender, eye colour, hair colour: unspecified
        + bytes(3)  # property mask
        + bytes(2)  # expression: unspecified
        + bytes(3)  # pose angle
        + bytes(3)  # pose angle uncertainty
    )
    body = face_info + image_info + face.image
    header = (
        _FACE_FORMAT_ID
        + _FACE_VERSION
        + (_FACE_HEADER + len(body)).to_bytes(4, "big")
        + (1).to_bytes(2, "big")
    )
    return header + body


@dataclass(frozen=True, slots=True)
class Dg2:
    """EF.DG2: the encoded face(s) of the holder.

    Parsing walks ``75`` → ``7F61`` (biometric information group template) → each ``7F60``
    (biometric information template) → ``5F2E`` (the ISO/IEC 19794-5 face record) and returns
    every image found. Enciphered blocks (``7F2E``) are reported as an error: border lanes
    cannot read them.
    """

    faces: tuple[FaceImage, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "faces", tuple(self.faces))

    @property
    def face(self) -> FaceImage:
        """The first (usually only) face."""
        if not self.faces:
            raise LdsError("EF.DG2 holds no face image")
        return self.faces[0]

    @classmethod
    def parse(cls, data: bytes) -> Dg2:
        """Parse EF.DG2 (tag ``75``)."""
        dg2 = _file_object(data, LdsFile.DG2)
        faces: list[FaceImage] = []
        try:
            group = dg2.require(_TAG_BIOMETRIC_GROUP)
            for template in group.children():
                if template.tag == _TAG_INSTANCE_COUNT:
                    continue
                if template.tag != _TAG_BIOMETRIC_TEMPLATE:
                    raise LdsError(f"EF.DG2: unexpected tag {template.tag:X} in 7F61")
                if template.find(_TAG_BIOMETRIC_DATA_ENCIPHERED) is not None:
                    raise LdsError("EF.DG2: the face record is enciphered (7F2E)")
                faces.extend(_parse_face_record(template.require(_TAG_BIOMETRIC_DATA).value))
        except tlv.TlvError as error:
            raise LdsError(f"EF.DG2: {error}") from None
        if not faces:
            raise LdsError("EF.DG2 holds no face image")
        return cls(tuple(faces))

    def encode(self) -> bytes:
        """EF.DG2's bytes: one biometric information template per face."""
        templates = b""
        for face in self.faces:
            header = tlv.encode(
                _TAG_BIOMETRIC_HEADER,
                tlv.encode(0x80, _ICAO_HEADER_VERSION)
                + tlv.encode(0x81, _BIOMETRIC_TYPE_FACE)
                + tlv.encode(0x87, _CBEFF_FORMAT_OWNER)
                + tlv.encode(0x88, _CBEFF_FORMAT_FACE),
            )
            templates += tlv.encode(
                _TAG_BIOMETRIC_TEMPLATE,
                header + tlv.encode(_TAG_BIOMETRIC_DATA, _face_record(face)),
            )
        group = tlv.encode(_TAG_INSTANCE_COUNT, bytes((len(self.faces),))) + templates
        return tlv.encode(LdsFile.DG2.tag, tlv.encode(_TAG_BIOMETRIC_GROUP, group))
