"""The terminal's read sequence: Appendix D.4 on the wire, then a simulated chip's quirks."""

from __future__ import annotations

import random as stdlib_random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from edge.documents import tlv
from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord
from edge.documents.emrtd.bac import BacChip, BacError, BacKeys
from edge.documents.emrtd.lds import MRTD_AID, Dg2, LdsFile
from edge.documents.emrtd.passive_auth import CscaStore, verify
from edge.documents.emrtd.reader import (
    EXTENDED_MAX_BLOCK,
    SHORT_MAX_BLOCK,
    AccessDeniedError,
    EmrtdReader,
    EmrtdReadError,
    NotAnEmrtdError,
    max_plain_length,
    read_emrtd,
)
from edge.documents.emrtd.sm import SecureMessaging, SecureMessagingError
from edge.sim.emrtd_pki import SPECIMEN_MRZ, issue_passport, make_csca, make_document_signer

H = bytes.fromhex
KEYS = BacKeys.from_mrz("L898902C<", "740812", "120415")
WRONG_KEYS = BacKeys.from_mrz("L898902C<", "740812", "120416")


def seeded(seed: int) -> Callable[[int], bytes]:
    generator = stdlib_random.Random(seed)
    return generator.randbytes


# -- Appendix D.4 on the wire -----------------------------------------------------------------

D4_SCRIPT = [
    ("00A4040C07A0000002471001", "9000"),
    ("0084000008", "4608F91988702212 9000"),
    (
        "0082000028 72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2"
        "5F1448EEA8AD90A7 28",
        "46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449 9000",
    ),
    (
        "0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800",
        "990290008E08FA855A5D4C50A8ED 9000",
    ),
    (
        "0CB000000D9701048E08ED6705417E96BA5500",
        "8709019FF0EC34F9922651990290008E08AD55CC17140B2DED 9000",
    ),
    (
        "0CB000040D9701128E082EA28A70F3C7B53500",
        "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D74 9000",
    ),
]


def test_appendix_d4_read_of_ef_com_byte_for_byte() -> None:
    script = [(H(c), H(r)) for c, r in D4_SCRIPT]
    sent: list[bytes] = []

    def transmit(command: CommandApdu) -> ResponseApdu:
        expected, response = script[len(sent)]
        sent.append(command.to_bytes())
        assert command.to_bytes() == expected, f"APDU {len(sent)}"
        return ResponseApdu.parse(response)

    terminal_random = [H("781723860C06C226"), H("0B795240CB7049B01C19B33E32804F0B")]
    keys = BacKeys.from_mrz("L898902C<", "690806", "940623")
    result = read_emrtd(
        transmit, keys, files=[LdsFile.COM], random=lambda n: terminal_random.pop(0)
    )
    assert len(sent) == len(script)
    assert result.files[LdsFile.COM] == H("60145F0104303130365F36063034303030305C026175")
    assert result.stats.apdus == 6
    assert result.stats.bytes_sent == sum(len(c) for c, _ in script)
    assert result.stats.bytes_received == sum(len(r) for _, r in script)
    assert result.stats.apdus_by_file == {LdsFile.COM: 3}


# -- a simulated chip ---------------------------------------------------------------------------


class FakeChip:
    """Just enough of an eMRTD chip to exercise the reader's adaptive logic.

    ``max_read``: the most plain bytes one READ BINARY may ask for, beyond which the chip
    answers ``refusal`` (``6700`` or ``6CXX``), protected or (``drop_session``) bare.
    ``extended``: whether extended APDUs get through at all (else bare 6700, session dropped).
    ``silent_limit``: answer at most this many bytes, with 9000, whatever was asked.
    """

    def __init__(
        self,
        files: dict[LdsFile, bytes],
        *,
        keys: BacKeys = KEYS,
        max_read: int = 0xFFFF,
        extended: bool = True,
        refusal: str = "6700",
        drop_session: bool = False,
        silent_limit: int | None = None,
        aid: bytes = MRTD_AID,
    ) -> None:
        self.files = files
        self.bac = BacChip(keys, random=seeded(7))
        self.max_read = max_read
        self.extended = extended
        self.refusal = refusal
        self.drop_session = drop_session
        self.silent_limit = silent_limit
        self.aid = aid
        self.sm: SecureMessaging | None = None
        self.selected: LdsFile | None = None
        self.log: list[CommandApdu] = []  # as sent
        self.inner: list[CommandApdu] = []  # as unwrapped
        self.corrupt_next_mac = False

    def __call__(self, command: CommandApdu) -> ResponseApdu:
        self.log.append(command)
        raw = CommandApdu.parse(command.to_bytes())  # what went over the wire
        if raw.extended and not self.extended:
            self.sm = None
            return ResponseApdu(sw=StatusWord.WRONG_LENGTH)
        if raw.cla == 0x00:
            return self.plain(raw)
        if self.sm is None:
            return ResponseApdu(sw=StatusWord.SM_DATA_OBJECTS_MISSING)
        try:
            inner = self.sm.unwrap_command(raw)
        except SecureMessagingError as error:
            self.sm = None
            return ResponseApdu(sw=error.sw)
        plain = self.protected(inner)
        if plain is None:  # a bare error that ends the session
            self.sm = None
            return ResponseApdu(sw=StatusWord(int(self.refusal, 16)))
        response = self.sm.wrap_response(plain, odd_ins=bool(inner.ins & 1))
        if self.corrupt_next_mac:
            self.corrupt_next_mac = False
            data = bytearray(response.data)
            data[-1] ^= 1
            response = ResponseApdu(bytes(data), response.sw)
        return response

    def plain(self, command: CommandApdu) -> ResponseApdu:
        if command.ins == 0xA4 and command.p1 == 0x04:
            self.sm = None
            ok = command.data == self.aid
            return ResponseApdu(sw=StatusWord.SUCCESS if ok else StatusWord.FILE_NOT_FOUND)
        if command.ins == 0x84:
            return ResponseApdu(self.bac.challenge())
        if command.ins == 0x82:
            try:
                answer, self.sm = self.bac.authenticate(command.data)
            except BacError:
                return ResponseApdu(sw=StatusWord.VERIFICATION_FAILED)
            self.selected = None
            return ResponseApdu(answer)
        return ResponseApdu(sw=StatusWord.SECURITY_STATUS_NOT_SATISFIED)

    def protected(self, command: CommandApdu) -> ResponseApdu | None:
        self.inner.append(command)
        if command.ins == 0xA4:
            for file in self.files:
                if file.fid == command.data:
                    self.selected = file
                    return ResponseApdu()
            return ResponseApdu(sw=StatusWord.FILE_NOT_FOUND)
        if command.ins in (0xB0, 0xB1) and self.selected is not None:
            assert command.le is not None
            if command.le > self.max_read:
                if self.drop_session:
                    return None
                return ResponseApdu(sw=StatusWord(int(self.refusal, 16)))
            if command.ins == 0xB0:
                offset = command.p1 << 8 | command.p2
                ne = command.le
            else:
                offset = int.from_bytes(tlv.decode_one(command.data, 0x54).value, "big")
                ne = command.le - 2  # the answer is 53 L data: make room for 53 L
                while 1 + len(tlv.encode_length(ne)) + ne > command.le:
                    ne -= 1
            if self.silent_limit is not None:
                ne = min(ne, self.silent_limit)
            content = self.files[self.selected]
            if offset >= len(content):
                return ResponseApdu(sw=StatusWord.WRONG_P1P2)
            chunk = content[offset : offset + ne]
            sw = StatusWord.SUCCESS if len(chunk) == ne else StatusWord.END_OF_FILE
            if command.ins == 0xB1:
                chunk = tlv.encode(0x53, chunk)
            return ResponseApdu(chunk, sw)
        return ResponseApdu(sw=StatusWord.INS_NOT_SUPPORTED)


@pytest.fixture(scope="module")
def pki() -> tuple[CscaStore, object]:
    csca = make_csca("UT")
    return CscaStore([csca.certificate]), make_document_signer(csca)


def passport(ds: object, face_size: int = 20_000) -> dict[LdsFile, bytes]:
    face = H("FFD8FFE0") + stdlib_random.Random(face_size).randbytes(face_size)
    return issue_passport(SPECIMEN_MRZ, face, ds)  # type: ignore[arg-type]


def test_block_limits() -> None:
    assert SHORT_MAX_BLOCK == 0xE7 == max_plain_length(256)
    assert EXTENDED_MAX_BLOCK == 65511


def test_short_reads_of_a_whole_passport_then_passive_authentication(pki: tuple) -> None:
    store, ds = pki
    files = passport(ds)
    chip = FakeChip(files, extended=False)
    result = read_emrtd(chip, KEYS, random=seeded(1))
    assert result.files == {
        f: files[f] for f in (LdsFile.COM, LdsFile.DG1, LdsFile.DG2, LdsFile.SOD)
    }
    assert not result.missing
    assert all(not c.extended for c in chip.log)
    # open (3) + per file: SELECT, the 4-byte header, then ceil(rest / 0xE7) reads
    expected = 3 + sum(2 + -(-(len(files[f]) - 4) // 0xE7) for f in result.files)
    assert result.stats.apdus == expected
    assert result.stats.block_size == 0xE7 and result.stats.fallbacks == 0
    assert result.stats.authentications == 1
    report = verify(
        result.files[LdsFile.SOD],
        result.data_groups(),
        store,
        printed_mrz=SPECIMEN_MRZ,
        at=datetime.now(UTC),
    )
    assert report.passed, report.failures
    assert Dg2.parse(result.files[LdsFile.DG2]).face.image.startswith(H("FFD8FFE0"))


def test_extended_length_reads_a_file_in_one_apdu(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds)
    chip = FakeChip(files, extended=True)
    result = read_emrtd(chip, KEYS, extended_length=True, random=seeded(2))
    assert result.files[LdsFile.DG2] == files[LdsFile.DG2]
    # open (3) + per file: SELECT, header, one read of the rest
    assert result.stats.apdus == 3 + 4 * 3
    assert any(c.extended for c in chip.log)


def test_extended_length_halves_down_to_what_the_chip_takes(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds)
    chip = FakeChip(files, max_read=0x1000)
    reader = EmrtdReader(chip, KEYS, extended_length=True, random=seeded(3))
    assert reader.read_file(LdsFile.DG2) == files[LdsFile.DG2]
    # 20 KiB -> 10 -> 5 -> 2.5 KiB: three protected 6700s, no new authentication
    assert reader.block_size <= 0x1000 and reader.stats.fallbacks == 3
    assert reader.stats.authentications == 1
    # the block is kept for the next file: the SOD needs no fallback of its own
    assert reader.read_file(LdsFile.SOD) == files[LdsFile.SOD]
    assert reader.stats.fallbacks == 3


def test_reader_without_extended_support_falls_back_after_a_bare_6700(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds)
    chip = FakeChip(files, extended=False)  # extended APDUs are refused bare, session lost
    result = read_emrtd(chip, KEYS, extended_length=True, random=seeded(4))
    assert result.files[LdsFile.DG2] == files[LdsFile.DG2]
    assert result.stats.authentications == 2
    assert result.stats.block_size <= SHORT_MAX_BLOCK


def test_6cxx_names_the_block_size(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds, 2000)
    chip = FakeChip(files, max_read=0x80, refusal="6C80")
    result = read_emrtd(chip, KEYS, random=seeded(5))
    assert result.files[LdsFile.DG2] == files[LdsFile.DG2]
    assert result.stats.block_size == 0x80
    assert result.stats.fallbacks == 1


def test_a_chip_that_only_takes_0xdf(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds, 2000)
    chip = FakeChip(files, max_read=0xDF)
    result = read_emrtd(chip, KEYS, random=seeded(6))
    assert result.files[LdsFile.SOD] == files[LdsFile.SOD]
    assert result.stats.block_size == 0xDF


def test_a_chip_that_drops_the_session_on_wrong_length(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds, 2000)
    chip = FakeChip(files, max_read=0xDF, drop_session=True)
    result = read_emrtd(chip, KEYS, random=seeded(7))
    assert result.files[LdsFile.DG2] == files[LdsFile.DG2]
    assert result.stats.authentications == 2 and result.stats.block_size == 0xDF


def test_a_chip_that_silently_answers_less(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds, 3000)
    chip = FakeChip(files, silent_limit=100)
    result = read_emrtd(chip, KEYS, random=seeded(8))
    assert result.files[LdsFile.DG2] == files[LdsFile.DG2]


def test_offsets_beyond_7fff_use_read_binary_b1(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds, 40_000)
    for extended in (False, True):
        chip = FakeChip(files, max_read=0x2000)
        reader = EmrtdReader(chip, KEYS, extended_length=extended, random=seeded(9))
        assert reader.read_file(LdsFile.DG2) == files[LdsFile.DG2]
        odd = [c for c in chip.log if c.ins == 0xB1]
        assert odd, "no READ BINARY B1 was sent"


def test_missing_and_refused_files(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds, 500)
    chip = FakeChip(files)
    result = read_emrtd(
        chip, KEYS, files=[LdsFile.COM, LdsFile.DG3, LdsFile.DG1], random=seeded(10)
    )
    assert set(result.files) == {LdsFile.COM, LdsFile.DG1}
    assert result.missing == {LdsFile.DG3: StatusWord.FILE_NOT_FOUND}


def test_wrong_mrz_and_not_a_passport(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds, 500)
    with pytest.raises(AccessDeniedError, match="6300"):
        read_emrtd(FakeChip(files), WRONG_KEYS, random=seeded(11))
    with pytest.raises(NotAnEmrtdError):
        read_emrtd(FakeChip(files, aid=H("A000000001")), KEYS, random=seeded(12))


def test_a_wrong_mac_from_the_chip_stops_the_read(pki: tuple) -> None:
    _, ds = pki
    chip = FakeChip(passport(ds, 500))
    reader = EmrtdReader(chip, KEYS, random=seeded(13))
    reader.open()
    chip.corrupt_next_mac = True
    with pytest.raises(EmrtdReadError, match="secure messaging failed"):
        reader.read_file(LdsFile.DG1)


def test_gives_up_when_the_chip_keeps_dropping_the_session(pki: tuple) -> None:
    _, ds = pki
    chip = FakeChip(passport(ds, 500), max_read=0, drop_session=True)
    with pytest.raises(EmrtdReadError):
        read_emrtd(chip, KEYS, random=seeded(14))
    assert sum(1 for c in chip.log if c.ins == 0x82) <= 3


def test_a_file_whose_tag_is_wrong(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds, 500)
    files[LdsFile.DG1] = files[LdsFile.COM]
    with pytest.raises(EmrtdReadError, match="not tag 61"):
        read_emrtd(FakeChip(files), KEYS, random=seeded(15))


def test_max_block_caps_the_reads(pki: tuple) -> None:
    _, ds = pki
    files = passport(ds, 1000)
    chip = FakeChip(files)
    result = read_emrtd(chip, KEYS, max_block=0x40, random=seeded(16))
    assert result.files[LdsFile.DG2] == files[LdsFile.DG2]
    assert max(c.le or 0 for c in chip.inner if c.ins == 0xB0) == 0x40
    assert not any(c.extended for c in chip.log)
    with pytest.raises(ValueError):
        EmrtdReader(chip, KEYS, max_block=0)
