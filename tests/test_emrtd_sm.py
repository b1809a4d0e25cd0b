"""3DES secure messaging: Doc 9303 Part 11 Appendix D.4 step by step, both sides, tampering."""

from __future__ import annotations

import pytest

from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord
from edge.documents.emrtd.crypto import pad, retail_mac, tdes_decrypt, tdes_encrypt
from edge.documents.emrtd.sm import SecureMessaging, SecureMessagingError

H = bytes.fromhex

KS_ENC = H("979EC13B1CBFE9DCD01AB0FED307EAE5")
KS_MAC = H("F1CB1F1FB5ADF208806B89DC579DC1F8")
SSC = H("887022120C06C226")

# D.4.1 SELECT EF.COM
SELECT_COM = CommandApdu(0x00, 0xA4, 0x02, 0x0C, H("011E"))
SELECT_PADDED_HEADER = H("0CA4020C80000000")
SELECT_PADDED_DATA = H("011E800000000000")
SELECT_ENCRYPTED = H("6375432908C044F6")
SELECT_DO87 = H("8709016375432908C044F6")
SELECT_M = H("0CA4020C800000008709016375432908C044F6")
SELECT_SSC = H("887022120C06C227")
SELECT_N = H("887022120C06C2270CA4020C800000008709016375432908C044F68000000000")
SELECT_CC = H("BF8B92D635FF24F8")
SELECT_PROTECTED = H("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")
SELECT_RESPONSE = H("990290008E08FA855A5D4C50A8ED9000")
SELECT_RESPONSE_SSC = H("887022120C06C228")
SELECT_RESPONSE_K = H("887022120C06C2289902900080000000")
SELECT_RESPONSE_CC = H("FA855A5D4C50A8ED")

# D.4.2 READ BINARY of the first four bytes
READ4 = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4)
READ4_M = H("0CB0000080000000970104")
READ4_SSC = H("887022120C06C229")
READ4_N = H("887022120C06C2290CB00000800000009701048000000000")
READ4_CC = H("ED6705417E96BA55")
READ4_PROTECTED = H("0CB000000D9701048E08ED6705417E96BA5500")
READ4_RESPONSE = H("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000")
READ4_RESPONSE_SSC = H("887022120C06C22A")
READ4_RESPONSE_K = H("887022120C06C22A8709019FF0EC34F99226519902900080")
READ4_RESPONSE_CC = H("AD55CC17140B2DED")
READ4_PLAIN = H("60145F01")

# D.4.3 READ BINARY of the remaining 18 bytes
READ18 = CommandApdu(0x00, 0xB0, 0x00, 0x04, le=0x12)
READ18_M = H("0CB0000480000000970112")
READ18_SSC = H("887022120C06C22B")
READ18_N = H("887022120C06C22B0CB00004800000009701128000000000")
READ18_CC = H("2EA28A70F3C7B535")
READ18_PROTECTED = H("0CB000040D9701128E082EA28A70F3C7B53500")
READ18_RESPONSE = H(
    "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000"
)
READ18_RESPONSE_SSC = H("887022120C06C22C")
READ18_RESPONSE_K = H(
    "887022120C06C22C871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A9902900080"
)
READ18_RESPONSE_CC = H("C8B2787EAEA07D74")
READ18_PLAIN = H("04303130365F36063034303030305C026175")

EXCHANGES = [
    (SELECT_COM, SELECT_PROTECTED, SELECT_RESPONSE, b""),
    (READ4, READ4_PROTECTED, READ4_RESPONSE, READ4_PLAIN),
    (READ18, READ18_PROTECTED, READ18_RESPONSE, READ18_PLAIN),
]


def session() -> SecureMessaging:
    return SecureMessaging(KS_ENC, KS_MAC, SSC)


def test_d4_intermediate_values_of_the_primitives() -> None:
    assert pad(H("0CA4020C")) == SELECT_PADDED_HEADER
    assert pad(H("011E")) == SELECT_PADDED_DATA
    assert tdes_encrypt(KS_ENC, SELECT_PADDED_DATA) == SELECT_ENCRYPTED
    assert SELECT_PADDED_HEADER + SELECT_DO87 == SELECT_M
    assert pad(SELECT_SSC + SELECT_M) == SELECT_N
    assert retail_mac(KS_MAC, SELECT_N) == SELECT_CC
    assert pad(SELECT_RESPONSE_SSC + H("99029000")) == SELECT_RESPONSE_K
    assert retail_mac(KS_MAC, SELECT_RESPONSE_K) == SELECT_RESPONSE_CC

    assert pad(READ4_SSC + READ4_M) == READ4_N
    assert retail_mac(KS_MAC, READ4_N) == READ4_CC
    assert pad(READ4_RESPONSE_SSC + READ4_RESPONSE[:15]) == READ4_RESPONSE_K
    assert retail_mac(KS_MAC, READ4_RESPONSE_K) == READ4_RESPONSE_CC
    assert tdes_decrypt(KS_ENC, READ4_RESPONSE[3:11]) == pad(READ4_PLAIN)

    assert pad(READ18_SSC + READ18_M) == READ18_N
    assert retail_mac(KS_MAC, READ18_N) == READ18_CC
    assert pad(READ18_RESPONSE_SSC + READ18_RESPONSE[:31]) == READ18_RESPONSE_K
    assert retail_mac(KS_MAC, READ18_RESPONSE_K) == READ18_RESPONSE_CC
    assert tdes_decrypt(KS_ENC, READ18_RESPONSE[3:27]) == pad(READ18_PLAIN)


def test_d4_terminal_side_byte_for_byte() -> None:
    sm = session()
    expected_ssc = [SELECT_SSC, SELECT_RESPONSE_SSC, READ4_SSC, READ4_RESPONSE_SSC]
    expected_ssc += [READ18_SSC, READ18_RESPONSE_SSC]
    seen = []
    for plain, protected, response, data in EXCHANGES:
        assert sm.wrap_command(plain).to_bytes() == protected
        seen.append(sm.ssc)
        unwrapped = sm.unwrap_response(ResponseApdu.parse(response))
        seen.append(sm.ssc)
        assert unwrapped == ResponseApdu(data, StatusWord.SUCCESS)
    assert seen == expected_ssc
    # what the three reads assemble: EF.COM of the example
    assert H("60145F0104303130365F36063034303030305C026175") == READ4_PLAIN + READ18_PLAIN


def test_d4_chip_side_byte_for_byte() -> None:
    sm = session()
    for plain, protected, response, data in EXCHANGES:
        assert sm.unwrap_command(CommandApdu.parse(protected)) == plain
        assert sm.wrap_response(ResponseApdu(data)).to_bytes() == response


def roundtrip(command: CommandApdu, response: ResponseApdu, *, odd: bool = False) -> None:
    terminal, chip = session(), session()
    assert chip.unwrap_command(terminal.wrap_command(command)) == command
    assert terminal.unwrap_response(chip.wrap_response(response, odd_ins=odd)) == response
    assert terminal.ssc == chip.ssc


def test_both_sides_round_trip_every_case() -> None:
    roundtrip(CommandApdu(0x00, 0x84, 0x00, 0x00, le=8), ResponseApdu(bytes(8)))
    roundtrip(CommandApdu(0x00, 0xA4, 0x02, 0x0C, H("0101")), ResponseApdu())
    roundtrip(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256), ResponseApdu(bytes(range(256))))
    roundtrip(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=0x1000), ResponseApdu(bytes(0x1000), 0x6282))
    roundtrip(CommandApdu(0x00, 0x70, 0x00, 0x00), ResponseApdu(sw=StatusWord.FILE_NOT_FOUND))
    roundtrip(
        CommandApdu(0x00, 0xB1, 0x00, 0x00, H("5403008000"), 0xE7),
        ResponseApdu(H("5381E4") + bytes(0xE4)),
        odd=True,
    )


def test_odd_ins_uses_do85_without_padding_indicator() -> None:
    protected = session().wrap_command(CommandApdu(0x00, 0xB1, 0x00, 0x00, H("54020080"), 8))
    assert protected.data[0] == 0x85 and protected.data[1] == 8


def test_extended_commands_stay_extended() -> None:
    protected = session().wrap_command(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=0x1000))
    assert protected.extended and protected.le == 0x10000
    assert H("97021000") in protected.data
    short = session().wrap_command(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=0xE7))
    assert not short.extended and short.to_bytes().endswith(b"\x00")


def test_ssc_wraps_around() -> None:
    terminal = SecureMessaging(KS_ENC, KS_MAC, H("FFFFFFFFFFFFFFFF"))
    chip = SecureMessaging(KS_ENC, KS_MAC, (1 << 64) - 1)
    chip.unwrap_command(terminal.wrap_command(READ4))
    assert terminal.ssc == chip.ssc == bytes(8)


# -- tampering: the MAC is checked before anything is used ---------------------------------


def prepared() -> SecureMessaging:
    """A terminal session that has just sent READ4 (the response is what comes next)."""
    sm = session()
    sm.wrap_command(SELECT_COM)
    sm.unwrap_response(ResponseApdu.parse(SELECT_RESPONSE))
    sm.wrap_command(READ4)
    return sm


def flip(raw: bytes, index: int) -> bytes:
    out = bytearray(raw)
    out[index] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("index", range(len(READ4_RESPONSE) - 2))
def test_any_flipped_bit_in_a_response_is_refused(index: int) -> None:
    sm = prepared()
    with pytest.raises(SecureMessagingError):
        sm.unwrap_response(ResponseApdu.parse(flip(READ4_RESPONSE, index)))
    assert sm.closed


def test_wrong_mac_is_reported_as_such_and_closes_the_session() -> None:
    sm = prepared()
    with pytest.raises(SecureMessagingError, match="MAC is wrong") as caught:
        sm.unwrap_response(ResponseApdu.parse(flip(READ4_RESPONSE, 20)))
    assert caught.value.sw == StatusWord.SM_DATA_OBJECTS_INCORRECT
    with pytest.raises(SecureMessagingError, match="over"):
        sm.wrap_command(READ18)


def test_a_replayed_response_fails_on_the_ssc() -> None:
    sm = session()
    sm.wrap_command(SELECT_COM)
    sm.unwrap_response(ResponseApdu.parse(SELECT_RESPONSE))
    sm.wrap_command(SELECT_COM)  # same command again: the SSC moved on
    with pytest.raises(SecureMessagingError, match="MAC"):
        sm.unwrap_response(ResponseApdu.parse(SELECT_RESPONSE))


def test_a_replayed_command_fails_on_the_chip() -> None:
    chip = session()
    chip.unwrap_command(CommandApdu.parse(SELECT_PROTECTED))
    chip.wrap_response(ResponseApdu())
    with pytest.raises(SecureMessagingError, match="MAC") as caught:
        chip.unwrap_command(CommandApdu.parse(SELECT_PROTECTED))
    assert caught.value.sw == 0x6988


BODY = READ4_RESPONSE[:-2]
DO87, DO99, DO8E = BODY[:11], BODY[11:15], BODY[15:]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (DO87 + DO99, "DO'8E' is missing"),
        (BODY[:-3], "malformed"),
        (BODY[:7], "malformed"),
        (DO87 + DO99 + H("8E04") + DO8E[2:6], "4 bytes"),
        (DO87 + DO99 + DO8E + H("99029000"), "follow the MAC"),
        (H("810100") + BODY, "unexpected data object 81"),
        (DO87 + DO99 + DO99 + DO8E, "twice"),
        (H("8501") + bytes(1) + DO87 + DO99 + DO8E, "both"),
    ],
    ids=[
        "no MAC",
        "cut in MAC",
        "cut in DO87",
        "short MAC",
        "after MAC",
        "unknown",
        "dup",
        "85+87",
    ],
)
def test_truncated_and_malformed_data_objects(data: bytes, message: str) -> None:
    with pytest.raises(SecureMessagingError, match=message):
        prepared().unwrap_response(ResponseApdu(data))


def test_missing_do99_is_refused_even_with_a_valid_mac() -> None:
    # The chip side of a session builds a correctly MACed response without DO'99'.
    terminal, chip = session(), session()
    chip.unwrap_command(terminal.wrap_command(READ4))
    ssc = (int.from_bytes(chip.ssc, "big") + 1).to_bytes(8, "big")
    do87 = H("870901") + tdes_encrypt(KS_ENC, pad(READ4_PLAIN))
    mac = retail_mac(KS_MAC, pad(ssc + do87))
    with pytest.raises(SecureMessagingError, match="DO'99'") as caught:
        terminal.unwrap_response(ResponseApdu(do87 + H("8E08") + mac))
    assert caught.value.sw == StatusWord.SM_DATA_OBJECTS_MISSING


def test_bad_padding_and_missing_indicator_with_a_valid_mac() -> None:
    terminal, chip = session(), session()
    chip.unwrap_command(terminal.wrap_command(READ4))
    ssc = (int.from_bytes(chip.ssc, "big") + 1).to_bytes(8, "big")
    for do87, message in (
        (H("870901") + tdes_encrypt(KS_ENC, H("60145F0100000000")), "padding"),
        (H("870902") + tdes_encrypt(KS_ENC, pad(READ4_PLAIN)), "indicator"),
        (H("870501") + bytes(4), "multiple of 8"),
    ):
        objects = do87 + H("99029000")
        mac = retail_mac(KS_MAC, pad(ssc + objects))
        victim = SecureMessaging(KS_ENC, KS_MAC, terminal.ssc)
        with pytest.raises(SecureMessagingError, match=message):
            victim.unwrap_response(ResponseApdu(objects + H("8E08") + mac))


def test_a_bare_status_word_is_unauthenticated_and_ends_the_session() -> None:
    sm = prepared()
    with pytest.raises(SecureMessagingError) as caught:
        sm.unwrap_response(ResponseApdu(sw=StatusWord.SM_DATA_OBJECTS_INCORRECT))
    assert caught.value.unprotected_sw == 0x6988
    assert sm.closed


def test_chip_side_refusals() -> None:
    with pytest.raises(SecureMessagingError) as caught:
        session().unwrap_command(SELECT_COM)  # not protected at all
    assert caught.value.sw == StatusWord.SM_DATA_OBJECTS_MISSING
    with pytest.raises(SecureMessagingError, match="DO'8E'") as caught:
        session().unwrap_command(CommandApdu(0x0C, 0xA4, 0x02, 0x0C, SELECT_DO87))
    assert caught.value.sw == StatusWord.SM_DATA_OBJECTS_MISSING
    with pytest.raises(ValueError):
        session().wrap_command(CommandApdu.parse(SELECT_PROTECTED))


def test_keys_and_ssc_are_checked() -> None:
    with pytest.raises(ValueError):
        SecureMessaging(KS_ENC[:8], KS_MAC, SSC)
    with pytest.raises(ValueError):
        SecureMessaging(KS_ENC, KS_MAC, SSC[:4])
    with pytest.raises(ValueError):
        SecureMessaging(KS_ENC, KS_MAC, -1)
