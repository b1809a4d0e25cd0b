"""ISO 7816-4 APDU framing: the four cases, short and extended, and nothing but ApduError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.documents.apdu import (
    MAX_NC,
    MAX_NE,
    ApduError,
    CommandApdu,
    ResponseApdu,
    StatusWord,
    StatusWordError,
)

AID = bytes.fromhex("A0000002471001")

# (description, APDU, wire hex): worked examples from ISO 7816-3 section 12.1.3's rules
ENCODINGS = [
    ("case 1", CommandApdu(0x00, 0x70, 0x00, 0x00), "00700000"),
    ("case 2 short", CommandApdu(0x00, 0x84, 0x00, 0x00, le=8), "0084000008"),
    ("case 2 short, Le 00 = 256", CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256), "00B0000000"),
    ("case 3 short", CommandApdu(0x00, 0xA4, 0x04, 0x0C, AID), "00A4040C07A0000002471001"),
    ("case 4 short", CommandApdu(0x00, 0xA4, 0x04, 0x00, AID, 256), "00A4040007A000000247100100"),
    ("case 2 extended", CommandApdu(0x00, 0xB0, 0x00, 0x00, le=257), "00B00000000101"),
    (
        "case 2 extended, Le 0000 = 65536",
        CommandApdu(0x00, 0xB0, 0x00, 0x00, le=MAX_NE),
        "00B00000000000",
    ),
    (
        "case 2 extended on request",
        CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4, extended=True),
        "00B00000000004",
    ),
    (
        "case 3 extended on request",
        CommandApdu(0x0C, 0x2A, 0x00, 0xBE, b"\x01\x02", extended=True),
        "0C2A00BE0000020102",
    ),
    (
        "case 4 extended: one 00 marker, two-byte Le",
        CommandApdu(0x00, 0x88, 0x00, 0x00, b"\xaa", 0x1234, extended=True),
        "00880000000001AA1234",
    ),
]


@pytest.mark.parametrize(
    ("apdu", "wire"), [e[1:] for e in ENCODINGS], ids=[e[0] for e in ENCODINGS]
)
def test_encode_and_parse_agree_with_the_standard(apdu: CommandApdu, wire: str) -> None:
    raw = bytes.fromhex(wire)
    assert apdu.to_bytes() == raw
    assert bytes(apdu) == raw
    assert CommandApdu.parse(raw) == apdu


def test_cases_and_lengths_are_reported() -> None:
    assert CommandApdu(0, 0x70, 0, 0).case == 1
    assert CommandApdu(0, 0x84, 0, 0, le=8).case == 2
    assert CommandApdu(0, 0xA4, 4, 0x0C, AID).case == 3
    apdu = CommandApdu(0, 0xA4, 4, 0, AID, 256)
    assert (apdu.case, apdu.nc, apdu.le, apdu.header) == (4, 7, 256, b"\x00\xa4\x04\x00")


def test_large_fields_switch_to_extended_by_themselves() -> None:
    data = bytes(range(256)) * 2
    apdu = CommandApdu(0x00, 0xD6, 0x00, 0x00, data)
    assert apdu.extended
    raw = apdu.to_bytes()
    assert raw[4:7] == b"\x00\x02\x00" and raw[7:] == data
    assert CommandApdu.parse(raw).data == data
    biggest = CommandApdu(0x00, 0xD6, 0x00, 0x00, bytes(MAX_NC), MAX_NE)
    assert CommandApdu.parse(biggest.to_bytes()) == biggest


@pytest.mark.parametrize(
    "wire",
    [
        "",
        "00A404",  # shorter than a header
        "00A4040C05A000",  # Lc 5, two data bytes
        "00A4040C02A0000000",  # Lc 2, four bytes after it: neither Lc+data nor Lc+data+Le
        "00B000000000",  # 00 marker with one byte: neither short nor extended
        "00D60000000000AA",  # extended Lc 0000
        "00D6000000000201",  # extended Lc 2, one data byte
        "00D600000000020102030405",  # extended Lc 2 with three trailing bytes
    ],
)
def test_malformed_commands_raise_apdu_error(wire: str) -> None:
    with pytest.raises(ApduError):
        CommandApdu.parse(bytes.fromhex(wire))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cla": 256},
        {"ins": -1},
        {"p1": True},
        {"le": 0},
        {"le": MAX_NE + 1},
        {"data": bytes(MAX_NC + 1)},
    ],
)
def test_out_of_range_fields_raise_apdu_error(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"cla": 0, "ins": 0xA4, "p1": 4, "p2": 0, **kwargs}
    with pytest.raises(ApduError):
        CommandApdu(**fields)  # type: ignore[arg-type]


def test_apdu_error_is_a_value_error_and_non_bytes_are_a_type_error() -> None:
    assert issubclass(ApduError, ValueError)
    with pytest.raises(TypeError):
        CommandApdu.parse("00A40400")  # type: ignore[arg-type]


def test_response_apdu_splits_data_and_status_word() -> None:
    response = ResponseApdu.parse(bytes.fromhex("01029000"))
    assert response == ResponseApdu(b"\x01\x02", StatusWord.SUCCESS)
    assert (response.sw1, response.sw2) == (0x90, 0x00)
    assert response.check() is response
    assert ResponseApdu(sw=0x6A82).to_bytes() == b"\x6a\x82"
    with pytest.raises(StatusWordError) as refused:
        ResponseApdu.parse(b"\x6a\x82").check()
    assert refused.value.sw == StatusWord.FILE_NOT_FOUND
    assert "6A82" in str(refused.value)
    with pytest.raises(ApduError):
        ResponseApdu.parse(b"\x90")


def test_status_word_reads_like_the_standard() -> None:
    sw = StatusWord(0x6A82)
    assert sw == 0x6A82 and (sw.sw1, sw.sw2) == (0x6A, 0x82)
    assert (repr(sw), str(sw), sw.to_bytes()) == ("StatusWord(0x6A82)", "6A82", b"\x6a\x82")
    assert StatusWord.SUCCESS.is_success and StatusWord.bytes_remaining(0x10).is_success
    assert StatusWord.END_OF_FILE.is_warning and not StatusWord.END_OF_FILE.is_success
    assert StatusWord.wrong_le(0x12) == 0x6C12
    assert StatusWord.from_bytes_pair(0x67, 0x00) == StatusWord.WRONG_LENGTH
    with pytest.raises(ApduError):
        StatusWord(0x10000)


# Random bytes rarely look extended: also build "header 00 Lc Lc tail" with the tail's length
# within a few bytes of Lc, where case 3 and case 4 extended live.
near_extended = st.builds(
    lambda header, lc, delta, fill: header + b"\x00" + lc.to_bytes(2, "big") + fill * (lc + delta),
    st.binary(min_size=4, max_size=4),
    st.integers(0, 300),
    st.integers(-2, 3),
    st.binary(min_size=1, max_size=1),
)


@given(st.binary(max_size=300) | near_extended)
def test_arbitrary_bytes_parse_or_raise_apdu_error_only(raw: bytes) -> None:
    try:
        apdu = CommandApdu.parse(raw)
    except ApduError:
        return
    assert apdu.to_bytes() == raw  # whatever parses, encodes back to the same bytes


@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_response_parse_or_raise_apdu_error_only(raw: bytes) -> None:
    try:
        response = ResponseApdu.parse(raw)
    except ApduError:
        assert len(raw) < 2
        return
    assert response.to_bytes() == raw


@st.composite
def command_apdus(draw: st.DrawFn) -> CommandApdu:
    byte = st.integers(0, 255)
    # huge fields as zeros: random 64 KiB blobs would only slow hypothesis down
    data = draw(st.binary(max_size=300) | st.integers(65_000, MAX_NC).map(bytes))
    le = draw(st.none() | st.integers(1, 300) | st.integers(1, MAX_NE))
    return CommandApdu(
        draw(byte), draw(byte), draw(byte), draw(byte), data, le, extended=draw(st.booleans())
    )


@given(command_apdus())
def test_every_valid_apdu_round_trips(apdu: CommandApdu) -> None:
    assert CommandApdu.parse(apdu.to_bytes()) == apdu
