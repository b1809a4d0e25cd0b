"""BER-TLV and the LDS files: EF.COM, DG1, DG2, file identifiers; never anything but our errors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.documents import tlv
from edge.documents.emrtd.lds import (
    MRTD_AID,
    Dg1,
    Dg2,
    EfCom,
    FaceImage,
    ImageFormat,
    LdsError,
    LdsFile,
    image_format,
)
from edge.documents.emrtd.sod import SodError, parse_sod

H = bytes.fromhex

# EF.COM as read in Doc 9303 Part 11 Appendix D.4: LDS 1.6, Unicode 4.0.0, DG1 and DG2.
D4_EF_COM = H("60145F0104303130365F36063034303030305C026175")
TD3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<L898902C36UTO7408122F1204159ZE184226B<<<<<10"
TD1 = "I<UTOD231458907<<<<<<<<<<<<<<<7408122F1204159UTO<<<<<<<<<<<6ERIKSSON<<ANNA<MARIA<<<<<<<<<<"
JPEG = H("FFD8FFE000104A464946") + bytes(50)
JP2 = H("0000000C6A5020200D0A870A") + bytes(50)
J2K = H("FF4FFF51") + bytes(50)


# -- BER-TLV ----------------------------------------------------------------------------------


def test_tags_and_lengths_encode_as_iso_7816_says() -> None:
    assert tlv.encode(0x5F1F, b"AB") == H("5F1F024142")
    assert tlv.encode(0x7F61, b"") == H("7F6100")
    assert tlv.encode_length(0x7F) == H("7F")
    assert tlv.encode_length(0x80) == H("8180")
    assert tlv.encode_length(0x100) == H("820100")
    assert tlv.encode_length(0x10000) == H("83010000")
    for bad_tag in (0x1F, 0x5F80, 0x0101, -1, 0x5F818181FF):
        with pytest.raises(tlv.TlvError):
            tlv.encode_tag(bad_tag)


def test_decoding_accepts_long_length_forms_and_finds_children() -> None:
    (obj,) = tlv.decode_all(H("6181045F1F0141"))
    assert obj.constructed and obj.require(0x5F1F).value == b"A"
    assert obj.find(0x5F01) is None
    assert tlv.header_size(H("77820F12")) == (4, 0x0F12)
    assert tlv.header_size(H("758400000100")) == (6, 0x100)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "5F",
        "5F1F",
        "5F1F05414243",
        "6180",
        "618501",
        "61820100",
        "7F818181810100",
        "61020000FF",
    ],
)
def test_malformed_bytes_raise_tlv_error(raw: str) -> None:
    with pytest.raises(tlv.TlvError):
        tlv.decode_one(H(raw))


def test_primitive_objects_have_no_children() -> None:
    with pytest.raises(tlv.TlvError):
        tlv.Tlv(0x5F1F, b"").children()


@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_else(raw: bytes) -> None:
    for call in (tlv.decode_all, tlv.decode_one, tlv.header_size):
        with contextlib.suppress(tlv.TlvError):
            call(raw)
    try:
        for obj in tlv.decode_all(raw):
            if obj.constructed:
                obj.children()
    except tlv.TlvError:
        pass


_TAGS = st.one_of(
    st.integers(0, 0xFF).filter(lambda t: t & 0x1F != 0x1F),
    st.builds(
        lambda a, b: (a << 8) | b,
        st.sampled_from([0x5F, 0x7F, 0x9F, 0xBF]),
        st.integers(0x1F, 0x7F),
    ),
    st.builds(
        lambda a, b, c: (a << 16) | (b << 8) | c,
        st.sampled_from([0x5F, 0x7F]),
        st.integers(0x81, 0xFF),
        st.integers(0x00, 0x7F),
    ),
)


@given(st.lists(st.tuples(_TAGS, st.binary(max_size=400)), max_size=5))
def test_encode_then_decode_round_trips(objects: list[tuple[int, bytes]]) -> None:
    raw = b"".join(tlv.encode(tag, value) for tag, value in objects)
    assert [(o.tag, o.value) for o in tlv.decode_all(raw)] == objects
    for tag, value in objects:
        assert tlv.decode_one(tlv.encode(tag, value)) == tlv.Tlv(tag, value)


@given(st.binary(max_size=400))
def test_lds_parsers_raise_only_lds_error(raw: bytes) -> None:
    for parser in (EfCom.parse, Dg1.parse, Dg2.parse):
        for candidate in (raw, tlv.encode(0x60, raw), tlv.encode(0x61, raw), tlv.encode(0x75, raw)):
            with contextlib.suppress(LdsError):
                parser(candidate)
    for candidate in (raw, tlv.encode(0x77, raw)):
        with contextlib.suppress(SodError):
            parse_sod(candidate)


@given(st.binary(max_size=200))
def test_dg2_parser_survives_garbage_inside_a_valid_envelope(inner: bytes) -> None:
    envelope = tlv.encode(0x02, b"\x01") + tlv.encode(
        0x7F60, tlv.encode(0xA1, b"") + tlv.encode(0x5F2E, b"FAC\x00010\x00" + inner)
    )
    with contextlib.suppress(LdsError):
        Dg2.parse(tlv.encode(0x75, tlv.encode(0x7F61, envelope)))


# -- files ------------------------------------------------------------------------------------


def test_file_identifiers_and_short_ids() -> None:
    assert H("A0000002471001") == MRTD_AID
    table = {
        LdsFile.COM: (0x60, "011E", 0x1E),
        LdsFile.DG1: (0x61, "0101", 0x01),
        LdsFile.DG2: (0x75, "0102", 0x02),
        LdsFile.DG14: (0x6E, "010E", 0x0E),
        LdsFile.DG15: (0x6F, "010F", 0x0F),
        LdsFile.DG16: (0x70, "0110", 0x10),
        LdsFile.SOD: (0x77, "011D", 0x1D),
    }
    for file, (tag, fid, sfi) in table.items():
        assert (file.tag, file.fid, file.sfi) == (tag, H(fid), sfi)
        assert LdsFile.from_tag(tag) is file
    assert LdsFile.data_group(2) is LdsFile.DG2 and LdsFile.DG2.number == 2
    assert LdsFile.SOD.number is None
    with pytest.raises(LdsError):
        LdsFile.data_group(17)
    with pytest.raises(LdsError):
        LdsFile.from_tag(0x99)


def test_ef_com_of_appendix_d4() -> None:
    com = EfCom.parse(D4_EF_COM)
    assert com == EfCom("0106", "040000", (1, 2))
    assert com.files == (LdsFile.DG1, LdsFile.DG2)
    assert com.encode() == D4_EF_COM


def test_ef_com_refuses_non_data_groups_and_missing_parts() -> None:
    with pytest.raises(LdsError):
        EfCom.parse(tlv.encode(0x60, H("5F0104303130365F3606303430303030") + H("5C0177")))
    with pytest.raises(LdsError):
        EfCom.parse(tlv.encode(0x60, H("5F010430313036")))
    with pytest.raises(LdsError):
        EfCom.parse(D4_EF_COM + b"\x00")  # one object per file


@pytest.mark.parametrize(("mrz", "code", "lines"), [(TD3, "TD3", 2), (TD1, "TD1", 3)])
def test_dg1_round_trip(mrz: str, code: str, lines: int) -> None:
    raw = Dg1(mrz).encode()
    assert raw[:2] == H("615B" if code == "TD3" else "615D")
    assert raw[2:5] == H("5F1F58" if code == "TD3" else "5F1F5A")
    dg1 = Dg1.parse(raw)
    assert (dg1.mrz, dg1.document_code, len(dg1.lines), dg1.issuing_state) == (
        mrz,
        code,
        lines,
        "UTO",
    )


def test_dg1_refuses_what_is_not_an_mrz() -> None:
    with pytest.raises(LdsError):
        Dg1(TD3[:-1])
    with pytest.raises(LdsError):
        Dg1(TD3.lower())
    with pytest.raises(LdsError):
        Dg1.parse(tlv.encode(0x61, tlv.encode(0x5F1F, TD3.encode()[:-1] + b"\xc3")))


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        (JPEG, ImageFormat.JPEG),
        (JP2, ImageFormat.JPEG2000),
        (J2K, ImageFormat.JPEG2000),
        (b"GIF89a", ImageFormat.UNKNOWN),
    ],
)
def test_image_format_by_magic(image: bytes, kind: ImageFormat) -> None:
    assert image_format(image) is kind
    assert kind.media_type.startswith(("image/", "application/"))


def test_dg2_round_trip_with_two_faces() -> None:
    faces = (FaceImage(JPEG, 480, 640), FaceImage(JP2, 300, 400))
    raw = Dg2(faces).encode()
    parsed = Dg2.parse(raw)
    assert [f.image for f in parsed.faces] == [JPEG, JP2]
    assert [f.image_format for f in parsed.faces] == [ImageFormat.JPEG, ImageFormat.JPEG2000]
    assert [(f.width, f.height, f.declared_type) for f in parsed.faces] == [
        (480, 640, 0),
        (300, 400, 1),
    ]
    assert parsed.face.image == JPEG


def test_dg2_structure_is_the_doc_9303_one() -> None:
    raw = Dg2((FaceImage(JPEG, 1, 2),)).encode()
    dg2 = tlv.decode_one(raw, 0x75)
    group = dg2.require(0x7F61)
    assert group.require(0x02).value == b"\x01"
    template = group.require(0x7F60)
    header = template.require(0xA1)
    assert header.require(0x87).value == H("0101") and header.require(0x88).value == H("0008")
    record = template.require(0x5F2E).value
    assert record[:8] == b"FAC\x00010\x00"
    assert int.from_bytes(record[8:12], "big") == len(record)
    assert record.endswith(JPEG)


def test_dg2_with_another_face_record_version_falls_back_to_the_image_magic() -> None:
    record = b"FAC\x00030\x00" + bytes(40) + JPEG
    template = tlv.encode(0x7F60, tlv.encode(0xA1, b"") + tlv.encode(0x5F2E, record))
    raw = tlv.encode(0x75, tlv.encode(0x7F61, tlv.encode(0x02, b"\x01") + template))
    assert Dg2.parse(raw).face.image == JPEG


def test_dg2_refusals() -> None:
    def wrap(template: bytes) -> bytes:
        return tlv.encode(0x75, tlv.encode(0x7F61, tlv.encode(0x02, b"\x01") + template))

    enciphered = tlv.encode(0x7F60, tlv.encode(0xA1, b"") + tlv.encode(0x7F2E, b"x"))
    with pytest.raises(LdsError, match="enciphered"):
        Dg2.parse(wrap(enciphered))
    not_a_face = tlv.encode(0x7F60, tlv.encode(0xA1, b"") + tlv.encode(0x5F2E, b"FIR\x00"))
    with pytest.raises(LdsError, match="face record"):
        Dg2.parse(wrap(not_a_face))
    with pytest.raises(LdsError, match="no face"):
        Dg2.parse(wrap(b""))
    lying = b"FAC\x00010\x00" + (9999).to_bytes(4, "big") + b"\x00\x01"
    with pytest.raises(LdsError, match="claims"):
        Dg2.parse(wrap(tlv.encode(0x7F60, tlv.encode(0x5F2E, lying))))
