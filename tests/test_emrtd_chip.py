"""The virtual ePassport chip, read and verified end to end: pyscard -> pcscd -> vpcd -> chip.

The terminal side is the kiosk's own code: :func:`edge.documents.emrtd.reader.read_emrtd` over a
``transmit`` wrapping a pyscard connection, then :func:`~edge.documents.emrtd.passive_auth.verify`
with the test CSCA. The module keeps one card position in reader slot 1 (the harness's
``card_slot``) and swaps chips behind it, so pcscd's ~0.4 s presence poll is paid once.

Then the chip alone, through :meth:`EmrtdChip.transmit` (no PC/SC): the protocol corners a
reader does not normally visit, and the passport image file.
"""

from __future__ import annotations

import json
import math
import stat
import time
from datetime import UTC, datetime

import pytest
from smartcard.Exceptions import CardConnectionException

from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord
from edge.documents.emrtd.bac import BacKeys, BacTerminal, get_challenge_command
from edge.documents.emrtd.lds import MRTD_AID, Dg1, Dg2, LdsFile
from edge.documents.emrtd.passive_auth import (
    CHECK_DS_CHAIN,
    CHECK_DS_COUNTRY,
    CHECK_DS_VALIDITY,
    PassiveAuthReport,
    verify,
)
from edge.documents.emrtd.reader import (
    SHORT_MAX_BLOCK,
    AccessDeniedError,
    EmrtdReadError,
    ReadResult,
    read_emrtd,
)
from edge.documents.emrtd.sm import SecureMessaging
from edge.documents.mrz import parse as parse_mrz
from edge.sim.emrtd_chip import (
    SPECIMEN_FACE,
    EmrtdChip,
    IssueError,
    PassportImage,
    PassportPki,
    Tamper,
    issue_passport_image,
    jpeg_size,
    load_or_create_pki,
    passport_chip,
)
from edge.sim.emrtd_pki import SPECIMEN_MRZ
from harness.pcsc import CardSlot, pyscard_transmit

PRINTED_MRZ = f"{SPECIMEN_MRZ[:44]}\n{SPECIMEN_MRZ[44:]}"
#: What the kiosk derives from the optically read MRZ, as the lane will.
KEYS = BacKeys.from_mrz_document(parse_mrz(PRINTED_MRZ))
WRONG_KEYS = BacKeys.from_mrz("L898902C<", "740812", "120416")  # expiry misread by one digit
PKI = PassportPki.create("UT")
STORE = PKI.trust_store()
IMAGE = issue_passport_image(PRINTED_MRZ, pki=PKI)
READ = (LdsFile.COM, LdsFile.DG1, LdsFile.DG2, LdsFile.SOD)


def expected_apdus(files: PassportImage | dict, block: int) -> int:
    """SELECT AID + GET CHALLENGE + EXTERNAL AUTHENTICATE, then per file: SELECT, the 4-byte
    header read, and the rest in blocks."""
    contents = files.files if isinstance(files, PassportImage) else files
    return 3 + sum(2 + math.ceil((len(contents[f]) - 4) / block) for f in READ)


def read_through_pcsc(
    slot: CardSlot,
    chip: EmrtdChip,
    *,
    keys: BacKeys = KEYS,
    extended_length: bool = False,
    sent: list[CommandApdu] | None = None,
) -> ReadResult:
    slot.put(chip)
    with pyscard_transmit(slot) as transmit:

        def recorded(command: CommandApdu) -> ResponseApdu:
            if sent is not None:
                sent.append(command)
            return transmit(command)

        return read_emrtd(recorded, keys, extended_length=extended_length)


def passive_auth(result: ReadResult, *, printed_mrz: str | None = None) -> PassiveAuthReport:
    return verify(
        result.files[LdsFile.SOD],
        result.data_groups(),
        STORE,
        printed_mrz=printed_mrz,
        at=datetime.now(UTC),
    )


# -- through pcscd -------------------------------------------------------------------------------


def test_a_genuine_passport_reads_with_bac_and_passes_passive_authentication(
    card_slot: CardSlot,
) -> None:
    chip = EmrtdChip.from_image(IMAGE)
    result = read_through_pcsc(card_slot, chip)
    assert result.files == {f: IMAGE.files[f] for f in READ} and not result.missing
    report = passive_auth(result, printed_mrz=PRINTED_MRZ)
    assert report.passed, report.failures
    results = {c.name: str(c.result) for c in report.checks}
    assert set(results.values()) == {"pass", "skipped"}
    assert results["ds_certificate_revocation"] == "skipped"  # no CRL loaded: the only skip
    assert list(results.values()).count("skipped") == 1
    face = Dg2.parse(result.files[LdsFile.DG2]).face
    assert face.image == SPECIMEN_FACE.read_bytes()
    assert (face.width, face.height) == jpeg_size(face.image) == (300, 400)
    assert result.stats.apdus == chip.apdu_count == expected_apdus(IMAGE, SHORT_MAX_BLOCK)
    assert chip.authentications == result.stats.authentications == 1


PASSIVE_AUTH_TAMPERING = [
    (Tamper.ALTERED_DG1, "dg1_hash"),
    (Tamper.UNKNOWN_CSCA, CHECK_DS_CHAIN),
    (Tamper.EXPIRED_DS, CHECK_DS_VALIDITY),
    (Tamper.DS_COUNTRY, CHECK_DS_COUNTRY),
]


@pytest.mark.parametrize(
    ("tamper", "check"), PASSIVE_AUTH_TAMPERING, ids=[t.value for t, _ in PASSIVE_AUTH_TAMPERING]
)
def test_each_tampered_passport_fails_exactly_its_check(
    card_slot: CardSlot, tamper: Tamper, check: str
) -> None:
    chip = passport_chip(PRINTED_MRZ, pki=PKI, tamper=[tamper])
    result = read_through_pcsc(card_slot, chip)
    report = passive_auth(result)  # no printed MRZ: the chip's data alone
    assert [c.name for c in report.failures] == [check], report.checks
    assert {str(c.result) for c in report.checks if c.name != check} <= {"pass", "skipped"}
    assert not report.passed


def test_an_altered_dg1_also_differs_from_the_printed_mrz(card_slot: CardSlot) -> None:
    chip = EmrtdChip.from_image(IMAGE, tamper="altered-dg1")
    report = passive_auth(read_through_pcsc(card_slot, chip), printed_mrz=PRINTED_MRZ)
    assert {c.name for c in report.failures} == {"dg1_hash", "dg1_matches_printed_mrz"}
    assert report["dg1_matches_printed_mrz"].detail == "1 characters differ, first at position 6"


def test_a_ds_country_passport_is_printed_with_the_other_state(card_slot: CardSlot) -> None:
    chip = passport_chip(PRINTED_MRZ, pki=PKI, tamper="ds-country")
    assert chip.image is not None and chip.image.printed_mrz.startswith("P<D<<ERIKSSON")
    report = passive_auth(read_through_pcsc(card_slot, chip), printed_mrz=chip.image.printed_mrz)
    assert [c.name for c in report.failures] == [CHECK_DS_COUNTRY]
    assert "does not fit issuing state D (DG1)" in report[CHECK_DS_COUNTRY].detail


def test_a_wrong_mac_makes_the_readers_secure_messaging_raise(card_slot: CardSlot) -> None:
    chip = EmrtdChip.from_image(IMAGE, tamper=Tamper.WRONG_MAC)
    with pytest.raises(EmrtdReadError, match="secure messaging failed: the response MAC is wrong"):
        read_through_pcsc(card_slot, chip)
    assert chip.apdu_count == 4  # BAC (3), then the first protected answer is rejected


@pytest.mark.parametrize(
    ("chip_tamper", "keys"),
    [((), WRONG_KEYS), (("wrong-mrz",), KEYS)],
    ids=["misread MRZ", "chip of another document"],
)
def test_bac_keys_that_do_not_fit_get_6300(
    card_slot: CardSlot, chip_tamper: tuple[str, ...], keys: BacKeys
) -> None:
    chip = EmrtdChip.from_image(IMAGE, tamper=chip_tamper)
    with pytest.raises(AccessDeniedError, match="EXTERNAL AUTHENTICATE answered 6300"):
        read_through_pcsc(card_slot, chip, keys=keys)
    assert chip.apdu_count == 3 and chip.authentications == 0 and not chip.session_open


LENGTHS = [
    # chip extended, reader extended, chip max block, expected APDUs (None: computed below)
    pytest.param(True, True, None, id="extended both"),
    pytest.param(False, False, None, id="short both"),
    pytest.param(False, True, None, id="reader tries extended, chip refuses"),
    pytest.param(True, False, 0xDF, id="chip block 223"),
]


@pytest.mark.parametrize(("chip_extended", "reader_extended", "max_block"), LENGTHS)
def test_extended_length_on_or_off_and_the_block_size_adapts(
    card_slot: CardSlot, chip_extended: bool, reader_extended: bool, max_block: int | None
) -> None:
    chip = EmrtdChip.from_image(IMAGE, extended_length=chip_extended, max_block=max_block)
    sent: list[CommandApdu] = []
    result = read_through_pcsc(card_slot, chip, extended_length=reader_extended, sent=sent)
    assert result.files == {f: IMAGE.files[f] for f in READ}
    assert passive_auth(result).passed
    stats = result.stats
    short = expected_apdus(IMAGE, SHORT_MAX_BLOCK)
    if chip_extended and reader_extended:
        # each file in two reads: the header, then everything else in one extended APDU
        assert stats.apdus == 3 + 4 * 3 < short
        assert any(c.extended for c in sent) and stats.fallbacks == 0
    elif reader_extended:
        # the first extended read (DG2's rest) gets a bare 6700: BAC again (3), SELECT DG2
        # again, and short reads from there on
        assert stats.apdus == short + 1 + 3 + 1
        assert (stats.authentications, stats.fallbacks, stats.block_size) == (2, 1, 0xE7)
    elif max_block:
        # 0xE7 is refused once (a protected 6700, the session lives on), then 0xDF fits
        assert stats.apdus == expected_apdus(IMAGE, 0xDF) + 1 > short
        assert (stats.authentications, stats.fallbacks, stats.block_size) == (1, 1, 0xDF)
        assert max(len(c.to_bytes()) for c in sent) < 261 and not any(c.extended for c in sent)
    else:
        assert stats.apdus == short and stats.fallbacks == 0 and stats.block_size == 0xE7
        assert not any(c.extended for c in sent)
    assert chip.apdu_count == stats.apdus


def big_face(size: int) -> bytes:
    """The specimen JPEG grown to ``size`` bytes with a comment segment (still a valid JPEG)."""
    face = SPECIMEN_FACE.read_bytes()
    padding = size - len(face) - 4
    return face[:2] + b"\xff\xfe" + (padding + 2).to_bytes(2, "big") + bytes(padding) + face[2:]


@pytest.mark.parametrize(
    ("extended", "max_block"), [(False, None), (True, 0x2000)], ids=["short", "extended 8 KiB"]
)
def test_files_over_32_kib_are_read_past_7fff_with_b1(
    card_slot: CardSlot, extended: bool, max_block: int | None
) -> None:
    face = big_face(40_000)
    assert jpeg_size(face) == (300, 400)
    chip = passport_chip(PRINTED_MRZ, pki=PKI, face=face, max_block=max_block)
    assert chip.image is not None and len(chip.image.files[LdsFile.DG2]) > 0x7FFF
    sent: list[CommandApdu] = []
    result = read_through_pcsc(card_slot, chip, extended_length=extended, sent=sent)
    assert result.files[LdsFile.DG2] == chip.image.files[LdsFile.DG2]
    assert Dg2.parse(result.files[LdsFile.DG2]).face.image == face
    assert passive_auth(result).passed
    odd = [c for c in sent if c.ins == 0xB1]
    assert odd and any(c.extended for c in odd) == extended
    assert chip.authentications == 1


def test_a_chip_pulled_mid_read_ends_the_read_without_hanging(card_slot: CardSlot) -> None:
    chip = EmrtdChip.from_image(IMAGE, pull_after=6)  # BAC and EF.COM, then gone
    started = time.monotonic()
    with pytest.raises(CardConnectionException):
        read_through_pcsc(card_slot, chip)
    elapsed = time.monotonic() - started
    assert chip.pulled and chip.apdu_count == 7
    assert elapsed < 3, f"took {elapsed:.1f}s to notice the chip was gone"
    assert card_slot.client is not None and not card_slot.client.inserted


def test_the_slot_reads_again_after_a_pull(card_slot: CardSlot) -> None:
    assert passive_auth(read_through_pcsc(card_slot, EmrtdChip.from_image(IMAGE))).passed


# -- the chip alone ------------------------------------------------------------------------------


def send(chip: EmrtdChip, command: CommandApdu) -> ResponseApdu:
    return ResponseApdu.parse(chip.transmit(command.to_bytes()))


def open_session(chip: EmrtdChip, keys: BacKeys = KEYS) -> SecureMessaging:
    """SELECT and BAC, as the reader does; the terminal's session."""
    assert send(chip, CommandApdu(0x00, 0xA4, 0x04, 0x0C, MRTD_AID)).sw == StatusWord.SUCCESS
    challenge = send(chip, get_challenge_command()).check().data
    bac = BacTerminal(keys)
    return bac.complete(send(chip, bac.external_authenticate(challenge)).check().data)


def protected(chip: EmrtdChip, sm: SecureMessaging, command: CommandApdu) -> ResponseApdu:
    return sm.unwrap_response(send(chip, sm.wrap_command(command)))


def select(file: LdsFile) -> CommandApdu:
    return CommandApdu(0x00, 0xA4, 0x02, 0x0C, file.fid)


def read_binary(offset: int, le: int) -> CommandApdu:
    return CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=le, extended=le > 256)


def test_nothing_is_read_without_bac() -> None:
    chip = EmrtdChip.from_image(IMAGE)
    assert send(chip, select(LdsFile.DG1)).sw == StatusWord.SECURITY_STATUS_NOT_SATISFIED
    assert send(chip, read_binary(0, 4)).sw == StatusWord.SECURITY_STATUS_NOT_SATISFIED
    assert send(chip, get_challenge_command()).sw == StatusWord.CONDITIONS_NOT_SATISFIED
    send(chip, CommandApdu(0x00, 0xA4, 0x04, 0x0C, MRTD_AID))
    challenge = CommandApdu(0x00, 0x84, 0x00, 0x00, le=16)
    assert send(chip, challenge).sw == StatusWord.WRONG_LENGTH
    # EXTERNAL AUTHENTICATE without a challenge: refused like wrong keys
    bac = BacTerminal(KEYS)
    assert send(chip, bac.external_authenticate(bytes(8))).sw == StatusWord.VERIFICATION_FAILED


def test_reads_answer_6282_at_the_end_and_6b00_beyond_it() -> None:
    chip = EmrtdChip.from_image(IMAGE)
    sm = open_session(chip)
    size = len(IMAGE.files[LdsFile.COM])
    assert protected(chip, sm, select(LdsFile.COM)).sw == StatusWord.SUCCESS
    end = protected(chip, sm, read_binary(size - 3, 10))
    assert (end.data, end.sw) == (IMAGE.files[LdsFile.COM][-3:], StatusWord.END_OF_FILE)
    exact = protected(chip, sm, read_binary(size - 3, 3))
    assert exact.sw == StatusWord.SUCCESS
    assert protected(chip, sm, read_binary(size, 1)).sw == StatusWord.WRONG_P1P2
    assert protected(chip, sm, select(LdsFile.DG3)).sw == StatusWord.FILE_NOT_FOUND
    assert chip.session_open  # errors in commands keep the session


def test_le_00_gets_as_much_as_fits_a_short_answer_and_sfi_reads_select() -> None:
    chip = EmrtdChip.from_image(IMAGE)
    sm = open_session(chip)
    by_sfi = CommandApdu(0x00, 0xB0, 0x80 | LdsFile.DG2.sfi, 0x00, le=256)
    answer = protected(chip, sm, by_sfi)
    assert answer.sw == StatusWord.SUCCESS and answer.data == IMAGE.files[LdsFile.DG2][:0xE7]
    assert chip.current_file is LdsFile.DG2
    assert protected(chip, sm, read_binary(0, 0xE8)).sw == StatusWord.WRONG_LENGTH


def test_b1_reads_with_an_offset_object_at_any_offset() -> None:
    chip = EmrtdChip.from_image(IMAGE)
    sm = open_session(chip)
    protected(chip, sm, select(LdsFile.DG1))
    odd = CommandApdu(0x00, 0xB1, 0x00, 0x00, bytes.fromhex("540105"), le=12)
    answer = protected(chip, sm, odd)
    assert answer.data == bytes((0x53, 10)) + IMAGE.files[LdsFile.DG1][5:15]
    no_offset = CommandApdu(0x00, 0xB1, 0x00, 0x00, bytes.fromhex("530105"), le=12)
    assert protected(chip, sm, no_offset).sw == StatusWord.WRONG_DATA


def test_a_secure_messaging_error_is_a_bare_6988_and_ends_the_session() -> None:
    chip = EmrtdChip.from_image(IMAGE)
    sm = open_session(chip)
    wrapped = bytearray(sm.wrap_command(select(LdsFile.COM)).to_bytes())
    wrapped[-2] ^= 0x01  # the last MAC byte (before Le)
    answer = ResponseApdu.parse(chip.transmit(bytes(wrapped)))
    assert (answer.data, answer.sw) == (b"", StatusWord.SM_DATA_OBJECTS_INCORRECT)
    assert not chip.session_open
    again = send(chip, sm.wrap_command(select(LdsFile.COM)))  # any protected APDU now
    assert (again.data, again.sw) == (b"", StatusWord.SECURITY_STATUS_NOT_SATISFIED)


def test_a_plain_apdu_a_reset_or_an_extended_one_without_support_ends_the_session() -> None:
    chip = EmrtdChip.from_image(IMAGE, extended_length=False)
    open_session(chip)
    send(chip, get_challenge_command())
    assert not chip.session_open
    sm = open_session(chip)
    chip.reset()
    assert not chip.session_open
    sm = open_session(chip)
    answer = send(chip, sm.wrap_command(read_binary(0, 1000)))
    assert (answer.data, answer.sw) == (b"", StatusWord.WRONG_LENGTH)
    assert not chip.session_open


def test_an_id_card_td1_with_its_own_state_pki() -> None:
    td1 = "\n".join(
        (
            "IDD<<T220001293<<<<<<<<<<<<<<<",
            "6408125<2010315D<<<<<<<<<<<<<4",
            "MUSTERMANN<<ERIKA" + "<" * 13,
        )
    )
    pki = PassportPki.create("DE")
    chip = passport_chip(td1, pki=pki)
    keys = BacKeys.from_mrz_document(parse_mrz(td1))
    result = read_emrtd(lambda c: send(chip, c), keys)
    report = verify(result.files[LdsFile.SOD], result.data_groups(), pki.trust_store())
    assert report.passed, report.failures
    altered = EmrtdChip.from_image(chip.image, tamper="altered-dg1")  # type: ignore[arg-type]
    assert Dg1.parse(altered.files[LdsFile.DG1]).lines[2].startswith("NUSTERMANN")
    # without a PKI the chip gets a fresh one for the issuing state
    own = passport_chip(td1)
    assert own.image is not None and own.image.files[LdsFile.DG1] == chip.files[LdsFile.DG1]
    assert read_emrtd(lambda c: send(own, c), keys).files[LdsFile.DG1] == chip.files[LdsFile.DG1]


def test_tampers_belong_where_they_can_be_made() -> None:
    with pytest.raises(IssueError, match="expired-ds: chosen when the passport is issued"):
        EmrtdChip.from_image(IMAGE, tamper="expired-ds")
    with pytest.raises(IssueError, match="unknown tamper"):
        passport_chip(PRINTED_MRZ, pki=PKI, tamper="cloned")
    with pytest.raises(IssueError, match="visa"):
        passport_chip("V<UTOERIKSSON<<ANNA<MARIA" + "<" * 19 + SPECIMEN_MRZ[44:], pki=PKI)


def test_the_image_file_round_trips_and_names_what_is_wrong() -> None:
    text = IMAGE.to_json()
    document = json.loads(text)
    assert document["bac"] == {"mrz_information": "L898902C3674081221204159"}
    assert list(document["files"]) == ["EF.COM", "EF.DG1", "EF.DG2", "EF.SOD"]
    assert document["printed_mrz"] == PRINTED_MRZ.splitlines()
    assert PassportImage.from_json(text) == IMAGE
    for broken, message in [
        ({**document, "format": "x"}, "not a passport image"),
        ({**document, "bac": {"mrz_information": "L898902C3674081221204158"}}, "check digits"),
        ({**document, "files": {"EF.DG1": "zz"}}, "lacks or garbles"),
        ({**document, "files": {"EF.DG1": "00"}}, "has no EF.COM"),
        ({k: v for k, v in document.items() if k != "bac"}, "lacks or garbles 'bac'"),
    ]:
        with pytest.raises(IssueError, match=message):
            PassportImage.from_json(json.dumps(broken))
    with pytest.raises(IssueError, match="not JSON"):
        PassportImage.from_json("{")


def test_a_pki_directory_is_made_once_then_reused(tmp_path) -> None:
    pki, created = load_or_create_pki(tmp_path / "pki", "UT")
    again, created_again = load_or_create_pki(tmp_path / "pki", "DE")
    assert (created, created_again) == (True, False)
    assert again.csca.der == pki.csca.der and again.country == "UT"
    assert stat.S_IMODE((tmp_path / "pki" / "ds.key").stat().st_mode) == 0o600
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "csca.pem").write_bytes(pki.csca.pem)
    with pytest.raises(IssueError, match="only part of a PKI"):
        load_or_create_pki(tmp_path / "half")
