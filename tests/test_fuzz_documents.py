"""Issue 14: every parser of what a card or a document file says returns or raises its own
error, whatever the bytes.

Each property is a plain function of bytes (``PROPERTIES``), so that the same check runs here,
bounded to seconds under hypothesis, and for minutes under ``make fuzz`` (``fuzz/``, atheris,
coverage-guided from the seed corpus in ``fuzz/corpus/``). A crash either finds becomes an
``@example`` here. Parsers with properties elsewhere: MRZ text (test_mrz.py), BER-TLV and the LDS
files (test_emrtd_lds.py), APDUs (test_apdu.py), CBIC holder data (test_cbic.py); their
fuzz targets are below too.

Besides raw bytes, the ASN.1 targets take bytes as *instructions* for changing one node of a
genuine EF.SOD, certificate, CRL or master list (:func:`mutate_der`): random bytes rarely get
past the outer SEQUENCE, a changed node deep inside is what found the issue's zero-length BIT
STRING.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime

from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_emrtd_passive_auth import sod_with_certificate

from edge.devices.card_atr import capabilities_from_atr, parse_atr
from edge.devices.mrz_framing import LineFramer, StxEtxFramer
from edge.documents import tlv
from edge.documents.apdu import ApduError, CommandApdu, ResponseApdu, StatusWord
from edge.documents.card import CardDocument, CardReadError, MrzRequired, read_card
from edge.documents.cbic import (
    SFI_HOLDER,
    CbicFormatError,
    CbicHolder,
    CbicPortrait,
    CbicSignature,
    IssuerTrustList,
    TrustListError,
)
from edge.documents.emrtd import cms
from edge.documents.emrtd.bac import BacChip, BacError, BacKeys, BacTerminal
from edge.documents.emrtd.lds import Dg1, Dg2, EfCom, LdsError, LdsFile
from edge.documents.emrtd.passive_auth import CscaStore, MasterListError, parse_master_list, verify
from edge.documents.emrtd.sm import SecureMessaging, SecureMessagingError
from edge.documents.emrtd.sod import SodError, parse_sod
from edge.documents.mrz import MrzError
from edge.documents.mrz import parse as parse_mrz
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import SAMPLES_DIR, create_issuer, issue_card, trust_list_for
from edge.sim.emrtd_chip import EmrtdChip, PassportPki, issue_passport_image
from edge.sim.emrtd_pki import (
    SPECIMEN_MRZ,
    build_master_list,
    make_crl,
    make_master_list_signer,
)

# -- genuine inputs to start from ---------------------------------------------------------------

PKI = PassportPki.create("UT")
PASSPORT = issue_passport_image(SPECIMEN_MRZ, pki=PKI)
SOD = PASSPORT.files[LdsFile.SOD]
DG1 = PASSPORT.files[LdsFile.DG1]
STORE = PKI.trust_store()
CSCA_DER = PKI.csca.certificate.public_bytes(serialization.Encoding.DER)
DS_DER = PKI.ds.certificate.public_bytes(serialization.Encoding.DER)
CRL = make_crl(PKI.csca, [PKI.ds.certificate.serial_number])
MASTER_LIST = build_master_list([PKI.csca.certificate], make_master_list_signer(PKI.csca))
MRZ = parse_mrz(PASSPORT.printed_mrz)
ISSUER = create_issuer("bz-cbic-test-1")
TRUST = trust_list_for(ISSUER)
TODAY = date(2026, 11, 24)
NOW = datetime(2026, 11, 24, tzinfo=UTC)
SEEDS: dict[str, bytes] = {
    "sod": SOD,
    "certificate": DS_DER,
    "crl": CRL,
    "master_list": MASTER_LIST,
}


# -- changing one node of a DER structure -----------------------------------------------------


def der_nodes(data: bytes) -> list[tuple[int, bytes, list]] | None:
    """``data`` as a tree of ``(tag, value, children)`` (children None for primitives), or None
    where it is not one BER-TLV object after another."""
    try:
        objects = tlv.decode_all(data)
    except tlv.TlvError:
        return None
    nodes = []
    for obj in objects:
        children = der_nodes(obj.value) if obj.constructed else None
        nodes.append((obj.tag, obj.value, children))
    return nodes


def _encode(nodes: list) -> bytes:
    return b"".join(
        tlv.encode(tag, value if children is None else _encode(children))
        for tag, value, children in nodes
    )


def _paths(nodes: list, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    found = []
    for index, (_, _, children) in enumerate(nodes):
        found.append((*prefix, index))
        if children:
            found += _paths(children, (*prefix, index))
    return found


def mutate_der(seed: bytes, instructions: bytes) -> bytes:
    """``seed`` with one node changed as ``instructions`` say, every length above re-encoded.

    Byte 0 and 1 pick the node (in document order), byte 2 the change: its value replaced by
    the rest of the instructions, emptied, cut to that many bytes, its tag changed to byte 3,
    or the node removed. What the change makes need not parse: that is the point.
    """
    tree = der_nodes(seed)
    if tree is None or len(instructions) < 3:
        return seed
    paths = _paths(tree)
    path = paths[int.from_bytes(instructions[:2], "big") % len(paths)]
    how, rest = instructions[2] % 5, instructions[3:]
    siblings = tree
    for index in path[:-1]:
        siblings = siblings[index][2]
    tag, value, children = siblings[path[-1]]
    if how == 0:
        siblings[path[-1]] = (tag, rest, None)
    elif how == 1:
        siblings[path[-1]] = (tag, b"", None)
    elif how == 2:
        flat = value if children is None else _encode(children)
        siblings[path[-1]] = (tag, flat[: len(rest)], None)
    elif how == 3 and rest and rest[0] & 0x1F != 0x1F:  # a one-byte tag, any class or form
        siblings[path[-1]] = (rest[0], value, children)
    else:
        del siblings[path[-1]]
    return _encode(tree)


# -- the properties -------------------------------------------------------------------------


def sod_property(data: bytes) -> None:
    """EF.SOD: SodError or a parsed SOD; passive authentication never raises."""
    try:
        parse_sod(data)
    except SodError as error:
        assert "\n" not in str(error)
    report = verify(data, {1: DG1}, STORE, at=NOW, printed_mrz=SPECIMEN_MRZ)
    assert report.get("sod_parsed") is not None
    assert all(len(check.detail) <= 500 and "\n" not in check.detail for check in report.checks)


def sod_structure_property(instructions: bytes) -> None:
    """The genuine EF.SOD with one node of its DER changed (its embedded DS certificate too)."""
    sod_property(mutate_der(SOD, instructions))


def certificate_property(data: bytes) -> None:
    """A certificate (DER or PEM, with CRLs) as the trust store loads one: CmsError only."""
    try:
        cms.load_certificate(data)
    except cms.CmsError as error:
        assert "\n" not in str(error)
    try:
        CscaStore().load(data)
    except (cms.CmsError, cms.SignatureError) as error:
        assert "\n" not in str(error)


def certificate_structure_property(instructions: bytes) -> None:
    """The genuine DS certificate with one node changed, alone and embedded in EF.SOD."""
    certificate = mutate_der(DS_DER, instructions)
    certificate_property(certificate)
    sod_property(sod_with_certificate(SOD, certificate))


def crl_property(instructions: bytes) -> None:
    """The CSCA's CRL with one node changed: CmsError or SignatureError only."""
    store = CscaStore([CSCA_DER])
    try:
        store.add_crl(mutate_der(CRL, instructions))
    except (cms.CmsError, cms.SignatureError) as error:
        assert "\n" not in str(error)
    verify(SOD, {1: DG1}, store, at=NOW)


def master_list_property(instructions: bytes) -> None:
    """A master list with one node changed: MasterListError only."""
    data = mutate_der(MASTER_LIST, instructions)
    try:
        parse_master_list(data)
    except MasterListError as error:
        assert "\n" not in str(error)
    try:
        CscaStore([CSCA_DER]).add_master_list(data, at=NOW)
    except MasterListError as error:
        assert "\n" not in str(error)


def lds_property(data: bytes) -> None:
    """EF.COM, DG1, DG2 as they come off a chip: LdsError only."""
    for parse in (EfCom.parse, Dg1.parse, Dg2.parse):
        for candidate in (data, tlv.encode(0x60, data), tlv.encode(0x61, data)):
            with contextlib.suppress(LdsError):
                parse(candidate)
    with contextlib.suppress(LdsError):
        Dg2.parse(tlv.encode(0x75, data))


def tlv_property(data: bytes) -> None:
    """BER-TLV: TlvError only, also for the children of constructed objects."""
    try:
        for obj in tlv.decode_all(data):
            if obj.constructed:
                obj.children()
    except tlv.TlvError:
        pass


def apdu_property(data: bytes) -> None:
    """Command and response APDUs as bytes: ApduError only."""
    for parse in (CommandApdu.parse, ResponseApdu.parse):
        with contextlib.suppress(ApduError):
            parse(data)


def mrz_property(data: bytes) -> None:
    """MRZ text (what the serial reader hands over): MrzError only, one line."""
    try:
        parse_mrz(data.decode("utf-8", "replace"))
    except MrzError as error:
        assert "\n" not in str(error)


def cbic_files_property(data: bytes) -> None:
    """A CBIC's files: CbicFormatError only."""
    for decode in (CbicHolder.decode, CbicSignature.decode, CbicPortrait.decode):
        with contextlib.suppress(CbicFormatError):
            decode(data)


def trust_list_property(data: bytes) -> None:
    """An issuer trust list file: TrustListError only."""
    try:
        IssuerTrustList.from_json(data)
    except TrustListError as error:
        assert "\n" not in str(error)


def secure_messaging_property(data: bytes) -> None:
    """A chip's protected answer: SecureMessagingError only. The first byte picks a genuine
    answer (data, status, odd INS) to start from, the rest is changed into it."""
    keys = bytes(range(16)), bytes(range(16, 32))
    terminal, chip = SecureMessaging(*keys, 7), SecureMessaging(*keys, 7)
    command = terminal.wrap_command(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=8))
    chip.unwrap_command(command)
    plain = ResponseApdu(bytes(range(len(data) % 40)), StatusWord.SUCCESS)
    genuine = chip.wrap_response(plain, odd_ins=bool(data[:1] and data[0] & 1)).to_bytes()
    for candidate in (data, genuine[: len(data)] + data[len(genuine) :], genuine[:-2] + data):
        try:
            response = ResponseApdu.parse(candidate)
        except ApduError:
            continue
        fresh = SecureMessaging(*keys, terminal.ssc)
        with contextlib.suppress(SecureMessagingError):
            fresh.unwrap_response(response)


def bac_property(data: bytes) -> None:
    """The chip's answer to EXTERNAL AUTHENTICATE, and a terminal's to the chip: BacError only."""
    keys = BacKeys.from_mrz("L898902C<", "740812", "120415")
    terminal = BacTerminal(keys, random=lambda n: bytes(n))
    terminal.external_authenticate(bytes(8))
    with contextlib.suppress(BacError):
        terminal.complete(data)
    chip = BacChip(keys, random=lambda n: bytes(n))
    chip.challenge()
    with contextlib.suppress(BacError):
        chip.authenticate(data)


def serial_property(data: bytes) -> None:
    """What a serial MRZ reader sends, cut anywhere: frames or discards, never an exception;
    every frame's text goes to the MRZ parser, which raises MrzError only (a frame may hold
    any bytes, shown as U+FFFD: the parser judges, as make fuzz's serial target showed)."""
    cut = data[0] if data else 1
    for framer in (LineFramer(prefix=b"\x1b[", suffix=b"\x07"), StxEtxFramer()):
        items = []
        for start in range(0, len(data), max(1, cut)):
            items += framer.feed(data[start : start + max(1, cut)], start / 100)
        items += framer.expire(10.0)
        for item in items:
            text = getattr(item, "text", None)
            if text is not None:
                mrz_property(text.encode())


def atr_property(data: bytes) -> None:
    """An ATR: parsed or marked malformed, never an exception."""
    parse_atr(data)
    capabilities_from_atr(data)


class ScriptedCard:
    """A card whose every answer comes from the fuzzer: each is a length byte and that many
    bytes (short answers are padded with a status word); what is left over ends the card."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        if not self.data:
            return ResponseApdu(b"", StatusWord(0x6A82))
        size, self.data = self.data[0], self.data[1:]
        answer, self.data = self.data[:size], self.data[size:]
        if len(answer) < 2:
            answer += b"\x90\x00"[len(answer) :]
        return ResponseApdu.parse(answer)


def _read(transmit: Callable[[CommandApdu], ResponseApdu]) -> None:
    try:
        document = read_card(
            transmit,
            issuers=TRUST,
            site="bz-santa-elena",
            today=TODAY,
            cscas=STORE,
            mrz=MRZ,
            at=NOW,
            random=lambda n: bytes(n),
        )
    except (CardReadError, MrzRequired) as error:
        assert "\n" not in str(error)
        return
    assert isinstance(document, CardDocument)
    json.dumps(document.document)  # the crossing record's summary is JSON
    json.dumps([check.to_json() for check in document.checks])


def card_property(data: bytes) -> None:
    """A card answering anything at all: a document or CardReadError, never anything else."""
    _read(ScriptedCard(data).transmit)


def chip_files_property(data: bytes) -> None:
    """A chip that answers BAC and secure messaging properly but holds any files: the first
    byte picks which files are the fuzzer's (the rest of ``data``), the others are genuine."""
    if not data:
        return
    files = dict(PASSPORT.files)
    for position, file in enumerate((LdsFile.COM, LdsFile.DG1, LdsFile.DG2, LdsFile.SOD)):
        if data[0] >> position & 1:
            files[file] = tlv.encode(file.tag, data[1:]) if data[0] & 0x80 else data[1:]
    chip = EmrtdChip(files, PASSPORT.keys, random=secrets.token_bytes)
    _read(lambda command: ResponseApdu.parse(chip.transmit(command.to_bytes())))


def cbic_card_property(data: bytes) -> None:
    """A genuine CBIC card whose holder data is the fuzzer's (a signature that cannot match:
    the holder checks and the lane must still answer)."""
    image = issue_card(SAMPLE_HOLDER, ISSUER)
    card = CbicCard.from_image(image)
    card.files[SFI_HOLDER] = data
    _read(lambda command: ResponseApdu.parse(card.transmit(command.to_bytes())))


SAMPLE_HOLDER = json.loads((SAMPLES_DIR / "resident-worker.json").read_text(encoding="utf-8"))

#: Every fuzz target of this area, by name (``fuzz/<name>.py`` runs each under atheris).
PROPERTIES: dict[str, Callable[[bytes], None]] = {
    "sod": sod_property,
    "sod_structure": sod_structure_property,
    "certificate": certificate_property,
    "certificate_structure": certificate_structure_property,
    "crl": crl_property,
    "master_list": master_list_property,
    "lds": lds_property,
    "tlv": tlv_property,
    "apdu": apdu_property,
    "mrz": mrz_property,
    "cbic_files": cbic_files_property,
    "trust_list": trust_list_property,
    "secure_messaging": secure_messaging_property,
    "bac": bac_property,
    "serial": serial_property,
    "atr": atr_property,
    "card": card_property,
    "chip_files": chip_files_property,
    "cbic_card": cbic_card_property,
}

# -- under hypothesis ------------------------------------------------------------------------

FAST = settings(max_examples=150, deadline=None)
SLOW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=400) | st.binary(max_size=60).map(lambda noise: SOD[:200] + noise))
def test_sod_bytes(data: bytes) -> None:
    sod_property(data)


@FAST
@given(st.binary(min_size=3, max_size=40))
@example(b"\x00\x00\x01")  # the ContentInfo emptied
@example(b"\x00\x37\x01")  # issue 14: the DS certificate's public key BIT STRING emptied
@example(b"\x00\x46\x01")  # issue 14: the DS certificate's signature BIT STRING emptied
def test_sod_with_one_node_changed(instructions: bytes) -> None:
    sod_structure_property(instructions)


@FAST
@given(st.binary(min_size=3, max_size=40))
@example(b"\x00\x28\x01")  # issue 14: the public key BIT STRING emptied
@example(b"\x00\x37\x01")  # issue 14: the signature BIT STRING emptied
@example(bytes.fromhex("fff6ffffa3a3a3a3a3a3a3a3a3a3a3"))  # make fuzz: tbs not re-encodable
def test_certificate_with_one_node_changed(instructions: bytes) -> None:
    certificate_structure_property(instructions)


@FAST
@given(
    st.binary(max_size=300)
    | st.binary(max_size=300).map(
        lambda b: b"-----BEGIN CERTIFICATE-----\n" + b + b"\n-----END CERTIFICATE-----"
    )
)
def test_certificate_bytes(data: bytes) -> None:
    certificate_property(data)


@FAST
@given(st.binary(min_size=3, max_size=40))
def test_crl_with_one_node_changed(instructions: bytes) -> None:
    crl_property(instructions)


@FAST
@given(st.binary(min_size=3, max_size=40))
@example(bytes.fromhex("00ffffff0a00e1ffffff"))  # make fuzz: a line break in the signer's name
def test_master_list_with_one_node_changed(instructions: bytes) -> None:
    master_list_property(instructions)


@FAST
@given(st.binary(max_size=300))
def test_cbic_files(data: bytes) -> None:
    cbic_files_property(data)


@FAST
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
@example(b'{"issuers": [{"key_id": "k", "public_key_pem": "-----BEGIN \\u00e6"}]}')  # make fuzz
@example(b'{"issuers": ' + b"[" * 100_000)
def test_trust_list(data: bytes) -> None:
    trust_list_property(data)


@FAST
@given(st.binary(max_size=120))
def test_secure_messaging_answers(data: bytes) -> None:
    secure_messaging_property(data)


@FAST
@given(st.binary(max_size=80))
def test_bac_answers(data: bytes) -> None:
    bac_property(data)


@FAST
@given(st.binary(max_size=400))
@example(b"\x09\x02I<UTOD231458907<<<<<<<<\xc4\xcd<<<<<\r7408122F1204159UTO<<<<<<<<<<<6\x03")
def test_serial_reads(data: bytes) -> None:
    serial_property(data)


@FAST
@given(st.binary(max_size=40))
def test_atr(data: bytes) -> None:
    atr_property(data)


@SLOW
@given(st.binary(max_size=300))
def test_a_card_answering_anything(data: bytes) -> None:
    card_property(data)


@SLOW
@given(st.binary(max_size=300))
def test_a_chip_holding_any_files(data: bytes) -> None:
    chip_files_property(data)


@SLOW
@given(st.binary(max_size=300))
def test_a_cbic_holding_any_holder_data(data: bytes) -> None:
    cbic_card_property(data)


def test_the_structure_mutator_changes_only_what_it_is_told() -> None:
    """An instruction that replaces a node by its own bytes gives the seed back."""
    assert mutate_der(SOD, b"") == SOD
    tree = der_nodes(SOD)
    assert tree is not None and _encode(tree) == SOD
    changed = mutate_der(SOD, b"\x00\x00\x01")
    assert changed != SOD and changed[0] == 0x77
