"""The CBIC profile in pure code: holder data, checks, the terminal's read, the issuing tool.

The card is the virtual CBIC spoken to directly (``card.process``), with no PC/SC in between;
tests/test_cbic_card.py runs the same reads through pcscd and vpcd.
"""

from __future__ import annotations

import copy
import json
import re
import stat
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord
from edge.documents.cbic import (
    CBIC_AID,
    CHECK_CARD_AUTHENTICATION,
    CHECK_CROSSING_POINT,
    CHECK_EXPIRY,
    CHECK_HOLDER_DATA_FORMAT,
    CHECK_ISSUER_SIGNATURE,
    CHECK_PORTRAIT_HASH,
    IA_PREFIX,
    MAX_HOLDER_SIZE,
    CbicCardData,
    CbicFormatError,
    CbicHolder,
    CbicPortrait,
    CbicReadError,
    CbicReading,
    CbicSignature,
    IssuerTrustList,
    NotACbic,
    TrustListError,
    ecdsa_sign_raw,
    internal_authenticate,
    read_binary_offset,
    read_binary_sfi,
    read_cbic,
    select_cbic,
    verify_cbic,
)
from edge.documents.checks import Check, CheckResult
from edge.sim.cards import IsoCard
from edge.sim.cbic_card import CardImage, CbicCard
from edge.sim.cbic_issue import (
    SAMPLES_DIR,
    IssueError,
    create_issuer,
    holder_from_json,
    issue_card,
    issue_card_file,
    load_card_image,
    load_issuer,
    save_card_image,
    save_issuer,
    trust_list_for,
)
from edge.trust import load_trust_list
from mqtt_schemas import examples, validate

TODAY = date(2026, 11, 24)
SITE = "bz-santa-elena"
ISSUER = create_issuer("bz-cbic-test-1")
OTHER_ISSUER = create_issuer("bz-cbic-test-2")  # trusted too
ROGUE = create_issuer("bz-cbic-rogue")  # not trusted
TRUST = trust_list_for(ISSUER, OTHER_ISSUER)
ALL_CHECKS = (
    CHECK_HOLDER_DATA_FORMAT,
    CHECK_ISSUER_SIGNATURE,
    CHECK_CARD_AUTHENTICATION,
    CHECK_EXPIRY,
    CHECK_CROSSING_POINT,
)
POINTS = [
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    for _ in range(4)
]


def sample(name: str) -> dict:
    return json.loads((SAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))


WORKER = sample("resident-worker")
WORKER_IMAGE = issue_card(WORKER, ISSUER)


def read(card: CbicCard, **kwargs) -> CbicReading:
    options = {"trust": TRUST, "today": TODAY, "site": SITE} | kwargs
    return read_cbic(card.process, **options)


def results(reading) -> dict[str, str]:
    return {check.name: str(check.result) for check in reading.checks}


def only_failure(reading, name: str) -> None:
    got = results(reading)
    assert got.pop(name) == "fail", reading.checks
    assert set(got.values()) == {"pass"}, reading.checks


def holder(**overrides) -> CbicHolder:
    fields = {
        "card_number": "CB4410275",
        "issuing_state": "BLZ",
        "surname": "Castillo",
        "given_names": "Marisol Andrea",
        "date_of_birth": date(1988, 3, 14),
        "sex": "F",
        "nationality": "BLZ",
        "community": "Corozal Town",
        "category": "resident-worker",
        "valid_at": ("bz-santa-elena",),
        "issue_date": date(2025, 2, 1),
        "expiry_date": date(2029, 1, 31),
        "card_public_key": POINTS[0],
        "issuer_key_id": ISSUER.key_id,
    }
    return CbicHolder(**(fields | overrides))


def signed_card(
    data: bytes, *, issuer=ISSUER, key_id: str | None = None, card_key=None, **kwargs
) -> CbicCard:
    """A card holding ``data`` as EF.HOLDER, signed by ``issuer`` (EF.SIG naming ``key_id``)."""
    signature = CbicSignature(key_id or issuer.key_id, ecdsa_sign_raw(issuer.private_key, data))
    return CbicCard(data, signature.encode(), card_key or WORKER_IMAGE.card_key, **kwargs)


# -- holder data encoding ---------------------------------------------------------------------

_NO_CONTROL = st.characters(
    exclude_categories=("Cs",), exclude_characters="".join(map(chr, [*range(32), 127]))
)
_NAMES = st.from_regex(r"[a-z][a-z0-9._-]{0,63}", fullmatch=True)
_DATES = st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31))


@st.composite
def holders(draw: st.DrawFn) -> CbicHolder:
    issued, expires = sorted((draw(_DATES), draw(_DATES)))
    try:
        return CbicHolder(
            card_number=draw(st.from_regex(r"[A-Z0-9]{1,24}", fullmatch=True)),
            issuing_state=draw(st.from_regex(r"[A-Z]{1,3}", fullmatch=True)),
            surname=draw(st.text(_NO_CONTROL, min_size=1, max_size=60)),
            given_names=draw(st.text(_NO_CONTROL, max_size=60)),
            date_of_birth=draw(_DATES),
            sex=draw(st.sampled_from("MFX")),
            nationality=draw(st.from_regex(r"[A-Z]{1,3}", fullmatch=True)),
            community=draw(st.text(_NO_CONTROL, min_size=1, max_size=60)),
            category=draw(_NAMES),
            valid_at=tuple(draw(st.lists(_NAMES, min_size=1, max_size=6, unique=True))),
            issue_date=issued,
            expiry_date=expires,
            card_public_key=draw(st.sampled_from(POINTS)),
            issuer_key_id=draw(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,63}", fullmatch=True)),
            portrait_sha256=draw(st.none() | st.binary(min_size=32, max_size=32)),
        )
    except CbicFormatError as exc:  # only "too long" may happen with these strategies
        assert "at most 1024" in str(exc)
        st.reject()


@given(holders())
@settings(max_examples=300, deadline=None)
def test_holder_data_round_trips(value: CbicHolder) -> None:
    encoded = value.encode()
    assert encoded[0] == 0xE1 and len(encoded) <= MAX_HOLDER_SIZE
    decoded = CbicHolder.decode(encoded)
    assert decoded == value
    assert decoded.encode() == encoded


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_a_format_error(data: bytes) -> None:
    try:
        decoded = CbicHolder.decode(data)
    except CbicFormatError:
        return
    assert decoded.encode() == data


@given(holders(), st.data())
@settings(max_examples=200, deadline=None)
def test_a_changed_byte_is_rejected_or_decodes_to_other_data(value: CbicHolder, data) -> None:
    encoded = bytearray(value.encode())
    where = data.draw(st.integers(0, len(encoded) - 1))
    encoded[where] ^= data.draw(st.integers(1, 255))
    try:
        decoded = CbicHolder.decode(bytes(encoded))
    except CbicFormatError:
        return
    assert decoded != value and decoded.encode() == bytes(encoded)


def test_the_encoding_is_the_documented_one() -> None:
    encoded = holder(valid_at=("bz-santa-elena", "bz-benque-viejo")).encode()
    assert encoded[:3] == bytes.fromhex("E181E8")  # template E1, length in the 81 form
    assert encoded[3:6] == bytes.fromhex("800101")  # version 1
    assert encoded[6:17] == bytes.fromhex("8109") + b"CB4410275"
    sites = (
        bytes.fromhex("AA21800E") + b"bz-santa-elena" + bytes.fromhex("800F") + b"bz-benque-viejo"
    )
    assert sites in encoded
    assert bytes.fromhex("85083139383830333134") in encoded  # 19880314
    assert encoded.endswith(bytes.fromhex("8F0E") + b"bz-cbic-test-1")
    assert bytes.fromhex("8E41") + POINTS[0] in encoded


def _rebuild(children: list[bytes]) -> bytes:
    body = b"".join(children)
    return bytes((0xE1, 0x81, len(body))) + body


def _children_of(encoded: bytes) -> list[bytes]:
    body, out, offset = encoded[3:], [], 0
    while offset < len(body):
        length = body[offset + 1]
        out.append(body[offset : offset + 2 + length])
        offset += 2 + length
    return out


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda c: c[:1] + c[2:], "lacks tag(s) 81"),
        (lambda c: c[:2] + c[1:], "appears twice"),
        (lambda c: [c[1], c[0], *c[2:]], "out of order"),
        (lambda c: [*c, bytes.fromhex("9001FF")], "unknown tag 90"),
        (lambda c: [bytes.fromhex("800102"), *c[1:]], "version 02"),
        (lambda c: [*c[:5], bytes.fromhex("850832303236313333") + b"1", *c[6:]], "not a date"),
        (lambda c: [*c[:5], bytes.fromhex("8508") + b"1988-3-1", *c[6:]], "8 ASCII digits"),
        (lambda c: [*c[:6], bytes.fromhex("860151"), *c[7:]], "sex must be"),
        (lambda c: [*c[:3], bytes.fromhex("8302C328"), *c[4:]], "not UTF-8"),
        (lambda c: [*c[:3], bytes.fromhex("8303") + b"a\nb", *c[4:]], "control character"),
        (lambda c: [*c[:3], bytes.fromhex("8300"), *c[4:]], "surname must be 1.."),
        (lambda c: [*c[:10], bytes.fromhex("AA00"), *c[11:]], "1..32 sites"),
        (lambda c: [*c[:10], bytes.fromhex("AA03810161"), *c[11:]], "valid-at list holds tag 81"),
        (lambda c: [*c[:11], bytes.fromhex("8B08") + b"20300101", *c[12:]], "before issue"),
        (lambda c: [*c[:-2], bytes.fromhex("8E41") + b"\x04" + bytes(64), c[-1]], "not a point"),
        (lambda c: [*c[:-2], bytes.fromhex("8E21") + b"\x02" + bytes(32), c[-1]], "uncompressed"),
        (lambda c: [*c[:-1], bytes.fromhex("8F02") + b"Ab"], "issuer key id"),
        (lambda c: [*c[:-1], bytes.fromhex("8D02ABCD"), c[-1]], "out of order"),
    ],
    ids=[
        "missing",
        "duplicate",
        "order",
        "unknown tag",
        "version",
        "bad date",
        "date format",
        "sex",
        "utf-8",
        "control",
        "empty surname",
        "no sites",
        "site tag",
        "issued after expiry",
        "bad point",
        "compressed point",
        "key id",
        "hash after key",
    ],
)
def test_malformed_holder_data_is_named(mangle: Callable, message: str) -> None:
    children = _children_of(holder().encode())
    with pytest.raises(CbicFormatError, match=re.escape(message)):
        CbicHolder.decode(_rebuild(mangle(children)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "found the end"),
        (bytes.fromhex("E2020000"), "expected E1"),
        (bytes.fromhex("E180"), "length byte 80"),  # indefinite length
        (bytes.fromhex("E1810100"), "shortest form"),
        (bytes.fromhex("E10500"), "only 1 follow"),
        (holder().encode() + b"\x00", "after the E1 template"),
        (holder().encode()[:-1], "only"),
        (bytes.fromhex("E18204010000") + bytes(0x401), "at most 1024"),  # checked first
    ],
)
def test_broken_tlv_is_named(data: bytes, message: str) -> None:
    with pytest.raises(CbicFormatError, match=re.escape(message)):
        CbicHolder.decode(data)


def test_holder_values_are_checked_on_construction() -> None:
    with pytest.raises(CbicFormatError, match="site twice"):
        holder(valid_at=("bz-a", "bz-a"))
    with pytest.raises(CbicFormatError, match="not one string"):
        holder(valid_at="bz-santa-elena")
    with pytest.raises(CbicFormatError, match="category"):
        holder(category="Resident Worker")
    with pytest.raises(CbicFormatError, match="must be a date"):
        holder(issue_date="2025-02-01")
    with pytest.raises(CbicFormatError, match="at most 1024"):
        holder(surname="Ñ" * 200, given_names="Ñ" * 200, community="Ñ" * 200)


def test_document_summary_fits_the_crossing_contract() -> None:
    value = holder(nationality="GTM", category="student", date_of_birth=date(2011, 9, 2))
    checks = verify_cbic(
        CbicCardData(value.encode(), b"", bytes(16), ResponseApdu(sw=0x6D00)),
        trust=TRUST,
        today=TODAY,
        site=SITE,
    ).checks
    example = next(
        e for e in examples("crossing")["valid"] if e["payload"]["document"]["kind"] == "cbic"
    )
    payload = copy.deepcopy(example["payload"])
    payload["document"] = value.document_summary()
    payload["checks"] = [check.to_json() for check in checks]
    validate("crossing", payload)
    assert payload["document"]["birth_year"] == 2011
    assert payload["document"]["category"] == "student"


# -- checks ------------------------------------------------------------------------------------


def test_check_names_and_details_follow_the_contract() -> None:
    assert Check("expiry", "fail", "x" * 600).detail == "x" * 497 + "..."
    assert Check("expiry", CheckResult.PASS).to_json() == {"name": "expiry", "result": "pass"}
    assert Check("a", "skipped", "line\nbreak").detail == "line break"
    for bad in ("Expiry", "9lives", "", "a" * 65, "with space"):
        with pytest.raises(ValueError, match="check name"):
            Check(bad, "pass")
    with pytest.raises(ValueError):
        Check("expiry", "maybe")


def test_a_genuine_card_passes_every_check_in_four_apdus() -> None:
    reading = read(CbicCard.from_image(WORKER_IMAGE))
    assert [c.name for c in reading.checks] == list(ALL_CHECKS)
    assert reading.passed, reading.checks
    assert reading.apdus == 4  # SELECT, EF.HOLDER, EF.SIG, INTERNAL AUTHENTICATE
    assert reading.holder is not None and reading.holder.surname == "Castillo"
    assert reading.holder.valid_at == ("bz-santa-elena",)
    assert reading.data.holder_data == WORKER_IMAGE.holder_data
    assert reading.verification.check(CHECK_EXPIRY).detail == "valid until 2029-01-31"


def _corrupt_surname(image: CardImage) -> CbicCard:
    data = image.holder_data.replace(b"Castillo", b"Castilla")
    return CbicCard(data, image.signature_data, image.card_key)


def _foreign_key_id(image: CardImage) -> CbicCard:
    signed = CbicSignature.decode(image.signature_data)
    signature = CbicSignature("bz-cbic-unknown", signed.signature).encode()
    return CbicCard(image.holder_data, signature, image.card_key)


def _holder_names_other_issuer(image: CardImage) -> CbicCard:
    data = replace(CbicHolder.decode(image.holder_data), issuer_key_id=OTHER_ISSUER.key_id)
    return signed_card(data.encode(), issuer=ISSUER)  # EF.SIG: ISSUER; E1/8F: OTHER_ISSUER


def _signed_by_other_naming_first(image: CardImage) -> CbicCard:
    return signed_card(image.holder_data, issuer=OTHER_ISSUER, key_id=ISSUER.key_id)


def _rogue_issuer(image: CardImage) -> CbicCard:
    document = WORKER
    return CbicCard.from_image(issue_card(document, ROGUE))


def _swap_signature_with_another_card(image: CardImage) -> CbicCard:
    other = issue_card(sample("student"), ISSUER)
    return CbicCard(image.holder_data, other.signature_data, image.card_key)


def _signs_the_bare_challenge(image: CardImage) -> CbicCard:
    class Undomained(CbicCard):
        def internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
            return ResponseApdu(ecdsa_sign_raw(self.card_key, command.data))

    return Undomained(image.holder_data, image.signature_data, image.card_key)


def _no_internal_authenticate(image: CardImage) -> CbicCard:
    class Dumb(CbicCard):
        def internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
            return ResponseApdu(sw=StatusWord.INS_NOT_SUPPORTED)

    return Dumb(image.holder_data, image.signature_data, image.card_key)


def _short_answer(image: CardImage) -> CbicCard:
    class Short(CbicCard):
        def internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
            return ResponseApdu(super().internal_authenticate(command).data[:63])

    return Short(image.holder_data, image.signature_data, image.card_key)


def _issued(**changes) -> Callable[[CardImage], CbicCard]:
    return lambda image: CbicCard.from_image(issue_card(WORKER | changes, ISSUER))


TAMPERING = [
    ("bad issuer signature", CHECK_ISSUER_SIGNATURE, "does not verify under issuer key",
     lambda i: CbicCard.from_image(i, bad_issuer_signature=True)),
    ("holder data edited", CHECK_ISSUER_SIGNATURE, "does not verify", _corrupt_surname),
    ("EF.SIG names another key", CHECK_ISSUER_SIGNATURE,
     "signature names issuer key 'bz-cbic-unknown', holder data 'bz-cbic-test-1'", _foreign_key_id),
    ("untrusted issuer", CHECK_ISSUER_SIGNATURE, "'bz-cbic-rogue' is not in", _rogue_issuer),
    ("key ids disagree", CHECK_ISSUER_SIGNATURE, "holder data 'bz-cbic-test-2'",
     _holder_names_other_issuer),
    ("signed by another trusted issuer", CHECK_ISSUER_SIGNATURE, "does not verify",
     _signed_by_other_naming_first),
    ("signature of another card", CHECK_ISSUER_SIGNATURE, "does not verify",
     _swap_signature_with_another_card),
    ("cloned card", CHECK_CARD_AUTHENTICATION, "does not hold the key",
     lambda i: CbicCard.from_image(i, cloned=True)),
    ("no domain prefix", CHECK_CARD_AUTHENTICATION, "does not hold the key",
     _signs_the_bare_challenge),
    ("no INTERNAL AUTHENTICATE", CHECK_CARD_AUTHENTICATION, "answered 6D00",
     _no_internal_authenticate),
    ("short signature", CHECK_CARD_AUTHENTICATION, "63 bytes", _short_answer),
    ("expired", CHECK_EXPIRY, "expired 2026-11-23", _issued(expiry_date="2026-11-23")),
    ("not yet valid", CHECK_EXPIRY, "not valid before 2026-11-25",
     _issued(issue_date="2026-11-25")),
    ("other crossing point", CHECK_CROSSING_POINT,
     "not valid at bz-santa-elena; valid at bz-benque-viejo",
     _issued(valid_at=["bz-benque-viejo"])),
]  # fmt: skip


@pytest.mark.parametrize(
    ("check", "detail", "make"), [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING]
)
def test_each_tampering_fails_exactly_its_check(check: str, detail: str, make: Callable) -> None:
    reading = read(make(WORKER_IMAGE))
    only_failure(reading, check)
    assert detail in reading.verification.check(check).detail


def test_the_expiry_and_issue_days_themselves_are_valid() -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    for today in (date(2025, 2, 1), date(2029, 1, 31)):
        assert read(card, today=today).passed
    assert results(read(card, today=date(2029, 2, 1)))[CHECK_EXPIRY] == "fail"
    assert results(read(card, today=date(2025, 1, 31)))[CHECK_EXPIRY] == "fail"


def test_a_card_valid_at_several_sites() -> None:
    card = CbicCard.from_image(issue_card(sample("expired-frequent-crosser"), ISSUER))
    for site in ("bz-santa-elena", "bz-benque-viejo"):
        assert results(read(card, site=site, today=date(2026, 6, 30)))[CHECK_CROSSING_POINT] == (
            "pass"
        )
    assert results(read(card, site="bz-corozal"))[CHECK_CROSSING_POINT] == "fail"


def test_a_replayed_card_answer_fails_card_authentication() -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    first = read(card)
    replayed = replace(first.data, challenge=bytes(16))  # our new challenge, their old answer
    verification = verify_cbic(replayed, trust=TRUST, today=TODAY, site=SITE)
    assert verification.failed == (CHECK_CARD_AUTHENTICATION,)


def test_issuer_signed_garbage_fails_the_format_and_skips_what_needs_the_data() -> None:
    garbage = bytes.fromhex("E103800101")  # a well-signed E1 with nothing but the version
    reading = read(signed_card(garbage))
    assert results(reading) == {
        CHECK_HOLDER_DATA_FORMAT: "fail",
        CHECK_ISSUER_SIGNATURE: "pass",  # judged from the key named in EF.SIG
        CHECK_CARD_AUTHENTICATION: "skipped",
        CHECK_EXPIRY: "skipped",
        CHECK_CROSSING_POINT: "skipped",
    }
    assert "lacks tag(s) 81" in reading.verification.check(CHECK_HOLDER_DATA_FORMAT).detail
    assert reading.holder is None


def test_an_unreadable_signature_object_fails_the_issuer_signature() -> None:
    card = CbicCard(WORKER_IMAGE.holder_data, bytes.fromhex("E2028000"), WORKER_IMAGE.card_key)
    reading = read(card)
    only_failure(reading, CHECK_ISSUER_SIGNATURE)
    assert "unreadable" in reading.verification.check(CHECK_ISSUER_SIGNATURE).detail


def test_a_check_that_breaks_reports_error_not_a_crash() -> None:
    class BrokenTrust(IssuerTrustList):
        def public_key(self, key_id: str):
            raise RuntimeError("trust store offline")

    reading = read(CbicCard.from_image(WORKER_IMAGE), trust=BrokenTrust())
    check = reading.verification.check(CHECK_ISSUER_SIGNATURE)
    assert (check.result, check.detail) == ("error", "RuntimeError: trust store offline")


# -- the portrait ------------------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 12  # 3 kB: several READ BINARY


def test_a_portrait_is_read_in_chunks_and_checked_against_the_signed_hash() -> None:
    image = issue_card(WORKER, ISSUER, portrait=JPEG)
    card = CbicCard.from_image(image)
    reading = read(card, read_portrait=True)
    assert reading.passed and results(reading)[CHECK_PORTRAIT_HASH] == "pass"
    assert reading.verification.portrait == CbicPortrait("image/jpeg", JPEG)
    assert len(image.portrait_data) == 3096
    assert reading.apdus == 4 + 13  # EF.PORTRAIT in 256-byte reads
    assert CHECK_PORTRAIT_HASH not in results(read(card))  # not read, not checked


def test_a_swapped_portrait_fails_only_the_portrait_hash() -> None:
    image = issue_card(WORKER, ISSUER, portrait=JPEG)
    other = CbicPortrait("image/jpeg", JPEG[:-1] + b"\x00").encode()
    card = CbicCard(image.holder_data, image.signature_data, image.card_key, portrait_data=other)
    only_failure(read(card, read_portrait=True), CHECK_PORTRAIT_HASH)


def test_a_portrait_without_a_hash_fails_and_a_missing_portrait_is_no_check() -> None:
    card = CbicCard(
        WORKER_IMAGE.holder_data,
        WORKER_IMAGE.signature_data,
        WORKER_IMAGE.card_key,
        portrait_data=CbicPortrait("image/jpeg", JPEG).encode(),
    )
    reading = read(card, read_portrait=True)
    only_failure(reading, CHECK_PORTRAIT_HASH)
    assert "names no hash" in reading.verification.check(CHECK_PORTRAIT_HASH).detail
    reading = read(CbicCard.from_image(WORKER_IMAGE), read_portrait=True)
    assert reading.data.portrait_data is None and reading.passed
    assert CHECK_PORTRAIT_HASH not in results(reading)


# -- the terminal's read -----------------------------------------------------------------------


def test_the_read_uses_the_documented_apdus_and_the_injected_challenge() -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    sent: list[bytes] = []

    def transmit(command: CommandApdu) -> ResponseApdu:
        sent.append(command.to_bytes())
        return card.process(command)

    reading = read_cbic(
        transmit, trust=TRUST, today=TODAY, site=SITE, random=lambda n: bytes(range(n))
    )
    assert reading.passed
    assert reading.data.challenge == bytes(range(16))
    assert [s.hex().upper() for s in sent] == [
        "00A4040C0B" + CBIC_AID.hex().upper(),
        "00B0810000",
        "00B0820000",
        "0088000010" + bytes(range(16)).hex().upper() + "00",
    ]
    assert select_cbic().data == CBIC_AID and read_binary_sfi(2).p1 == 0x82


def test_challenges_are_fresh() -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    assert read(card).data.challenge != read(card).data.challenge


@pytest.mark.parametrize("chunk", [256, 100, 16])
def test_holder_data_longer_than_one_read(chunk: int) -> None:
    long_names = WORKER | {"given_names": "Marisol Andrea Guadalupe de los Ángeles" * 2}
    image = issue_card(long_names, ISSUER)
    assert 256 < len(image.holder_data) <= 300
    reading = read(CbicCard.from_image(image), chunk=chunk)
    assert reading.passed, reading.checks
    assert reading.data.holder_data == image.holder_data
    reads = -(-len(image.holder_data) // chunk) + -(-len(image.signature_data) // chunk)
    assert reading.apdus == 1 + reads + 1
    assert (chunk, reading.apdus) != (256, 5) or reads == 3  # two reads of EF.HOLDER


def test_a_file_shorter_than_its_header_ends_the_read_and_fails_the_format() -> None:
    truncated = WORKER_IMAGE.holder_data[:-10]
    card = CbicCard(truncated, WORKER_IMAGE.signature_data, WORKER_IMAGE.card_key)
    reading = read(card, chunk=100)  # 100, 100, then 6282 with 4 bytes, then 6B00
    assert reading.data.holder_data == truncated
    assert results(reading)[CHECK_HOLDER_DATA_FORMAT] == "fail"
    assert reading.apdus == 1 + 4 + 1 + 1


def test_a_file_declaring_too_much_is_not_read_further() -> None:
    huge = bytes.fromhex("E1827000") + bytes(300)
    reading = read(signed_card(huge))
    assert reading.apdus == 4 and len(reading.data.holder_data) == 256
    assert "says 28672 bytes, only 252 follow" in (
        reading.verification.check(CHECK_HOLDER_DATA_FORMAT).detail
    )


def test_a_card_without_the_application_is_not_a_cbic() -> None:
    with pytest.raises(NotACbic, match="SELECT answered 6A82") as caught:
        read_cbic(IsoCard().process, trust=TRUST, today=TODAY, site=SITE)
    assert caught.value.apdus == 1


def test_a_card_refusing_a_mandatory_file_is_a_read_error() -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    del card.files[2]
    with pytest.raises(CbicReadError, match=r"no EF\.SIG"):
        read(card)
    card = CbicCard.from_image(WORKER_IMAGE)
    card.process = lambda c: ResponseApdu(sw=0x6982) if c.ins == 0xB0 else CbicCard.process(card, c)
    with pytest.raises(CbicReadError, match=r"answered 6982 reading EF\.HOLDER"):
        read(card)


@pytest.mark.parametrize("pulled_at", [1, 2, 3, 4])
def test_a_link_lost_mid_read_is_a_read_error_naming_the_apdu(pulled_at: int) -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    count = 0

    def transmit(command: CommandApdu) -> ResponseApdu:
        nonlocal count
        count += 1
        if count >= pulled_at:
            raise OSError("Card was removed")
        return card.process(command)

    with pytest.raises(CbicReadError, match=f"link lost at APDU {pulled_at}") as caught:
        read_cbic(transmit, trust=TRUST, today=TODAY, site=SITE)
    assert caught.value.apdus == pulled_at
    assert isinstance(caught.value.__cause__, OSError)


def test_read_arguments_are_checked() -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    with pytest.raises(ValueError, match="chunk"):
        read(card, chunk=257)
    with pytest.raises(ValueError, match="16-byte challenge"):
        read(card, random=lambda n: bytes(8))


# -- the virtual card's answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("commands", "sw"),
    [
        (["00B0810000"], 0x6985),  # not selected
        (["select", "00B0000000"], 0x6986),  # no current EF
        (["select", "00B0830000"], 0x6A82),  # no portrait on this card
        (["select", "00B0E10000"], 0x6A86),  # SFI bits b7 b6 must be 0
        (["select", "00B0800000"], 0x6A86),  # SFI 0
        (["select", "00B08100"], 0x6700),  # no Le
        (["select", "00B0810000", "00B0100000"], 0x6B00),  # offset beyond the end
        (["select", "00B0810000", "select", "00B0000400"], 0x6986),  # SELECT resets the EF
        (["select", "00B08100FF"], 0x6282),  # fewer than an explicit Le
        (["00880000" + "10" + "00" * 16 + "00"], 0x6985),  # IA before SELECT
        (["select", "00880000" + "08" + "00" * 8 + "00"], 0x6700),
        (["select", "00880000" + "10" + "00" * 16], 0x6700),  # no Le
        (["select", "00880100" + "10" + "00" * 16 + "00"], 0x6A86),
        (["select", "00880000" + "10" + "00" * 16 + "20"], 0x6C40),
        (["select", "00B2010400"], 0x6D00),  # READ RECORD: not on this card
    ],
)
def test_the_card_answers_with_the_documented_status_words(commands: list[str], sw: int) -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    response = None
    for command in commands:
        raw = select_cbic().to_bytes() if command == "select" else bytes.fromhex(command)
        response = ResponseApdu.parse(card.transmit(raw))
    assert response is not None and response.sw == sw


def test_the_card_signs_the_prefixed_challenge_with_its_key() -> None:
    card = CbicCard.from_image(WORKER_IMAGE)
    card.process(select_cbic())
    answer = card.process(internal_authenticate(b"\x42" * 16))
    assert answer.sw == 0x9000 and len(answer.data) == 64
    r, s = int.from_bytes(answer.data[:32], "big"), int.from_bytes(answer.data[32:], "big")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    WORKER_IMAGE.card_key.public_key().verify(
        encode_dss_signature(r, s), IA_PREFIX + b"\x42" * 16, ec.ECDSA(hashes.SHA256())
    )
    assert IA_PREFIX == b"BORDERLANE-CBIC-IA-1"
    chunk = card.process(read_binary_sfi(1, 0, 8))
    assert chunk.data == WORKER_IMAGE.holder_data[:8]
    assert card.process(read_binary_offset(8, 8)).data == WORKER_IMAGE.holder_data[8:16]


def test_a_card_without_unplug_hook_goes_mute_after_pull_after() -> None:
    card = CbicCard.from_image(WORKER_IMAGE, pull_after=1)
    assert ResponseApdu.parse(card.transmit(select_cbic().to_bytes())).sw == 0x9000
    assert ResponseApdu.parse(card.transmit(read_binary_sfi(1).to_bytes())).sw == 0x6F00
    unplugged = []
    card = CbicCard.from_image(WORKER_IMAGE, pull_after=0)
    card.unplug = lambda: unplugged.append(True)
    card.transmit(select_cbic().to_bytes())
    card.transmit(select_cbic().to_bytes())
    assert unplugged == [True] and card.pulled


# -- the trust list ----------------------------------------------------------------------------


def test_trust_lists_from_pem_and_json() -> None:
    from_pem = IssuerTrustList.from_pem({ISSUER.key_id: ISSUER.public_pem().decode()})
    assert from_pem.key_ids == (ISSUER.key_id,) and ISSUER.key_id in from_pem
    again = IssuerTrustList.from_json(TRUST.to_json())
    assert again.key_ids == TRUST.key_ids == ("bz-cbic-test-1", "bz-cbic-test-2")
    assert len(again) == 2 and again.public_key("nope") is None
    assert again.public_key(OTHER_ISSUER.key_id).public_numbers() == (
        OTHER_ISSUER.public_key.public_numbers()
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: IssuerTrustList.from_json("{"), "not JSON"),
        (lambda: IssuerTrustList.from_json("[]"), '"issuers" list'),
        (lambda: IssuerTrustList.from_json({"issuers": [{"key_id": "a"}]}), "public_key_pem"),
        (
            lambda: IssuerTrustList.from_json(
                {"issuers": [{"key_id": "a", "public_key_pem": ISSUER.public_pem().decode()}] * 2}
            ),
            "repeated",
        ),
        (lambda: IssuerTrustList.from_pem({"a": "not pem"}), "not a PEM public key"),
        (lambda: IssuerTrustList.from_pem({"Bad Id": ISSUER.public_pem()}), "key id"),
        (
            lambda: IssuerTrustList({"p384": ec.generate_private_key(ec.SECP384R1()).public_key()}),
            "not an EC P-256",
        ),
        (
            lambda: IssuerTrustList({"ed": ed25519.Ed25519PrivateKey.generate().public_key()}),
            "not an EC P-256",
        ),
    ],
    ids=["json", "shape", "no pem", "repeated", "pem", "key id", "p-384", "ed25519"],
)
def test_bad_trust_lists_are_refused(build: Callable, message: str) -> None:
    with pytest.raises(TrustListError, match=message):
        build()


# -- issuing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "site", "failed"),
    [
        ("resident-worker", "bz-santa-elena", ()),
        ("student", "bz-benque-viejo", ()),
        ("student", "bz-santa-elena", (CHECK_CROSSING_POINT,)),
        ("expired-frequent-crosser", "bz-benque-viejo", (CHECK_EXPIRY,)),
    ],
)
def test_the_samples_read_as_intended(name: str, site: str, failed: tuple[str, ...]) -> None:
    reading = read(CbicCard.from_image(issue_card(sample(name), ISSUER)), site=site)
    assert reading.verification.failed == failed


def test_issuer_keys_and_trust_directories_round_trip(tmp_path: Path) -> None:
    private, public = save_issuer(ISSUER, tmp_path)
    assert (private.name, public.name) == ("bz-cbic-test-1.key", "bz-cbic-test-1.pem")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    loaded = load_issuer(private)
    assert loaded.key_id == ISSUER.key_id
    assert loaded.public_key.public_numbers() == ISSUER.public_key.public_numbers()
    save_issuer(OTHER_ISSUER, tmp_path)
    assert load_trust_list(tmp_path).key_ids == TRUST.key_ids  # the .key files are ignored
    (tmp_path / "trust.json").write_text(TRUST.to_json())
    assert load_trust_list(tmp_path / "trust.json").key_ids == TRUST.key_ids
    with pytest.raises(IssueError, match=r"named <key id>\.key"):
        load_issuer(public)
    (tmp_path / "garbage.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(IssueError, match="not an unencrypted PEM"):
        load_issuer(tmp_path / "garbage.key")
    with pytest.raises(IssueError, match="key id"):
        create_issuer("Not An Id")


def test_a_card_image_file_round_trips_and_loads_into_a_card(tmp_path: Path) -> None:
    (tmp_path / "face.jpg").write_bytes(JPEG)
    (tmp_path / "holder.json").write_text(json.dumps(WORKER | {"portrait": "face.jpg"}))
    image = issue_card_file(tmp_path / "holder.json", ISSUER, tmp_path / "card.json")
    assert stat.S_IMODE((tmp_path / "card.json").stat().st_mode) == 0o600
    document = json.loads((tmp_path / "card.json").read_text())
    assert document["format"] == "borderlane-cbic-image@1"
    assert document["card_number"] == "CB4410275"
    assert bytes.fromhex(document["holder_tlv"]) == image.holder_data
    assert "BEGIN PRIVATE KEY" in document["card_private_key_pem"]
    loaded = load_card_image(tmp_path / "card.json")
    assert (loaded.holder_data, loaded.signature_data, loaded.portrait_data) == (
        image.holder_data,
        image.signature_data,
        image.portrait_data,
    )
    reading = read(CbicCard.from_image(loaded), read_portrait=True)
    assert reading.passed and CHECK_PORTRAIT_HASH in results(reading)
    save_card_image(loaded, tmp_path / "again.json")
    assert load_card_image(tmp_path / "again.json").holder_data == image.holder_data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"surname": 42}, "surname must be text"),
        ({"nickname": "Mari"}, "unknown \\['nickname'\\]"),
        ({"expiry_date": "31/01/2029"}, "expiry_date '31/01/2029' is not an ISO date"),
        ({"date_of_birth": 19880314}, "date_of_birth must be an ISO date string"),
        ({"valid_at": "bz-santa-elena"}, "valid_at must be a list"),
        ({"valid_at": []}, "1..32 sites"),
        ({"sex": "female"}, "sex must be M, F or X"),
        ({"portrait_sha256": "zz"}, "64 hex digits"),
        ({"portrait_sha256": "ab" * 31}, "32 bytes"),
    ],
)
def test_holder_files_are_checked_field_by_field(change: dict, message: str) -> None:
    with pytest.raises(IssueError, match=message):
        issue_card(WORKER | change, ISSUER)


def test_holder_files_missing_a_field_name_it() -> None:
    document = dict(WORKER)
    del document["community"]
    with pytest.raises(IssueError, match="missing \\['community'\\]"):
        holder_from_json(document, card_public_key=POINTS[0], issuer_key_id="x")


def test_card_images_are_checked_when_loaded() -> None:
    document = json.loads(WORKER_IMAGE.to_json())
    with pytest.raises(ValueError, match="not a CBIC card image"):
        CardImage.from_json(document | {"format": "other@1"})
    with pytest.raises(ValueError, match="garbles"):
        CardImage.from_json({k: v for k, v in document.items() if k != "holder_tlv"})
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="not an EC P-256"):
        CardImage.from_json(document | {"card_private_key_pem": p384.decode()})
