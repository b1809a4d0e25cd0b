"""Passive authentication end to end with a test PKI: each check passes or fails on its own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.documents import tlv
from edge.documents.checks import CheckResult
from edge.documents.emrtd import cms
from edge.documents.emrtd.countries import ALPHA2_TO_ALPHA3, issuer_codes, issuer_matches
from edge.documents.emrtd.lds import Dg1, LdsFile
from edge.documents.emrtd.passive_auth import (
    CscaStore,
    MasterListError,
    PassiveAuthReport,
    verify,
)
from edge.documents.emrtd.sod import (
    ID_LDS_SECURITY_OBJECT,
    SecurityObject,
    SodError,
    build_sod,
    parse_sod,
)
from edge.sim.emrtd_pki import (
    SPECIMEN_MRZ,
    Signer,
    build_master_list,
    issue_passport,
    make_crl,
    make_csca,
    make_document_signer,
    make_master_list_signer,
)

JPEG = bytes.fromhex("FFD8FFE000104A464946") + bytes(200)
NOW = datetime.now(UTC)
NAMES = [
    "sod_parsed",
    "ds_signature",
    "ds_certificate_chain",
    "ds_certificate_validity",
    "ds_certificate_key_usage",
    "csca_certificate_validity",
    "ds_certificate_revocation",
    "dg1_hash",
    "dg2_hash",
    "dg1_matches_printed_mrz",
    "ds_country_matches_issuer",
]
GERMAN_MRZ = SPECIMEN_MRZ.replace("P<UTO", "P<D<<").replace("36UTO", "36D<<")


@pytest.fixture(scope="module")
def csca() -> Signer:
    return make_csca("UT")


@pytest.fixture(scope="module")
def ds(csca: Signer) -> Signer:
    return make_document_signer(csca)


@pytest.fixture(scope="module")
def passport(ds: Signer) -> dict[LdsFile, bytes]:
    return issue_passport(SPECIMEN_MRZ, JPEG, ds)


def run(
    files: dict[LdsFile, bytes],
    store: CscaStore,
    *,
    groups: tuple[int, ...] = (1, 2),
    **kwargs: object,
) -> PassiveAuthReport:
    dgs = {n: files[LdsFile.data_group(n)] for n in groups}
    return verify(files[LdsFile.SOD], dgs, store, **kwargs)  # type: ignore[arg-type]


def failed(report: PassiveAuthReport) -> list[str]:
    return [c.name for c in report.failures]


def result(report: PassiveAuthReport, name: str) -> CheckResult:
    return report[name].result


def test_everything_passes_and_every_check_is_reported(
    passport: dict[LdsFile, bytes], csca: Signer
) -> None:
    report = run(passport, CscaStore([csca.certificate]), printed_mrz=SPECIMEN_MRZ)
    assert [c.name for c in report.checks] == NAMES
    assert failed(report) == []
    assert report.passed
    assert result(report, "ds_certificate_revocation") is CheckResult.SKIPPED
    others = [c for c in report.checks if c.name != "ds_certificate_revocation"]
    assert all(c.result is CheckResult.PASS for c in others), report.checks
    assert "ECDSA with SHA256" in report["ds_signature"].detail
    assert "UT fits issuing state UTO" in report["ds_country_matches_issuer"].detail
    assert report.csca_certificate is not None and report.ds_certificate is not None


def test_checks_fit_the_crossing_record_contract(
    passport: dict[LdsFile, bytes], csca: Signer
) -> None:
    report = run(passport, CscaStore(), printed_mrz="X" * 88)
    for record in report.to_json():
        assert re.fullmatch(r"[a-z][a-z0-9._-]{0,63}", record["name"])
        assert record["result"] in ("pass", "fail", "skipped", "error")
        assert len(record.get("detail", "")) <= 500


def test_printed_mrz_with_line_breaks_and_spaces_matches(
    passport: dict[LdsFile, bytes], csca: Signer
) -> None:
    printed = f" {SPECIMEN_MRZ[:44]}\n{SPECIMEN_MRZ[44:]}\n"
    report = run(passport, CscaStore([csca.certificate]), printed_mrz=printed)
    assert result(report, "dg1_matches_printed_mrz") is CheckResult.PASS


def test_dg1_altered_after_signing_fails_only_its_hash(
    passport: dict[LdsFile, bytes], csca: Signer
) -> None:
    forged_mrz = SPECIMEN_MRZ.replace("ERIKSSON", "ERIKSSEN")
    forged = {**passport, LdsFile.DG1: Dg1(forged_mrz).encode()}
    report = run(forged, CscaStore([csca.certificate]), printed_mrz=forged_mrz)
    assert failed(report) == ["dg1_hash"]
    assert "differs from the SOD's" in report["dg1_hash"].detail
    assert not report.passed


def test_dg1_differing_from_the_printed_mrz(passport: dict[LdsFile, bytes], csca: Signer) -> None:
    printed = SPECIMEN_MRZ.replace("ANNA", "ANNE")
    report = run(passport, CscaStore([csca.certificate]), printed_mrz=printed)
    assert failed(report) == ["dg1_matches_printed_mrz"]
    assert "first at position 19" in report["dg1_matches_printed_mrz"].detail


def test_altered_dg2_fails_only_its_hash(passport: dict[LdsFile, bytes], csca: Signer) -> None:
    forged = {**passport, LdsFile.DG2: passport[LdsFile.DG2][:-1] + b"\x01"}
    assert failed(run(forged, CscaStore([csca.certificate]))) == ["dg2_hash"]


def test_unknown_csca_fails_the_chain(passport: dict[LdsFile, bytes]) -> None:
    stranger = make_csca("UT", common_name="CSCA UT")  # same name, different key
    other = make_csca("FR")
    report = run(passport, CscaStore([other.certificate]))
    assert failed(report) == ["ds_certificate_chain"]
    assert "no CSCA with subject" in report["ds_certificate_chain"].detail
    assert result(report, "csca_certificate_validity") is CheckResult.SKIPPED
    report = run(passport, CscaStore([stranger.certificate]))
    assert failed(report) == ["ds_certificate_chain"]
    assert "does not verify" in report["ds_certificate_chain"].detail


def test_key_rollover_the_right_csca_among_several_with_one_subject(
    passport: dict[LdsFile, bytes], csca: Signer
) -> None:
    old = make_csca("UT", common_name="CSCA UT")
    store = CscaStore([old.certificate, csca.certificate])
    assert len(store) == 2
    report = run(passport, store)
    assert report.passed
    assert report.csca_certificate is not None
    assert report.csca_certificate.sha256 == cms.load_certificate(csca.certificate).sha256


def test_ds_country_must_match_the_issuing_state(csca: Signer) -> None:
    french_csca = make_csca("FR")
    files = issue_passport(SPECIMEN_MRZ, JPEG, make_document_signer(french_csca))
    report = run(files, CscaStore([french_csca.certificate, csca.certificate]))
    assert failed(report) == ["ds_country_matches_issuer"]
    assert "DS country FR" in report["ds_country_matches_issuer"].detail


def test_germany_is_de_in_certificates_and_d_in_the_mrz() -> None:
    german_csca = make_csca("DE")
    files = issue_passport(GERMAN_MRZ, JPEG, make_document_signer(german_csca))
    report = run(files, CscaStore([german_csca.certificate]), printed_mrz=GERMAN_MRZ)
    assert report.passed
    assert "DE fits issuing state D (DG1)" in report["ds_country_matches_issuer"].detail


def test_issuing_state_from_the_caller_or_the_printed_mrz(
    passport: dict[LdsFile, bytes], csca: Signer
) -> None:
    store = CscaStore([csca.certificate])
    report = run(passport, store, issuing_state="FRA")
    assert failed(report) == ["ds_country_matches_issuer"]
    report = run(passport, store, groups=(2,), printed_mrz=SPECIMEN_MRZ)
    assert "(the printed MRZ)" in report["ds_country_matches_issuer"].detail
    assert result(report, "dg1_hash") is CheckResult.SKIPPED
    assert result(report, "dg1_matches_printed_mrz") is CheckResult.SKIPPED
    report = run(passport, store, groups=(2,))
    assert result(report, "ds_country_matches_issuer") is CheckResult.SKIPPED
    assert not report.passed  # dg1_hash is essential


def test_ds_country_differing_from_its_csca_fails_the_chain(csca: Signer) -> None:
    files = issue_passport(SPECIMEN_MRZ, JPEG, make_document_signer(csca, country="FR"))
    report = run(files, CscaStore([csca.certificate]))
    assert "ds_certificate_chain" in failed(report)
    assert "differs from the CSCA's UT" in report["ds_certificate_chain"].detail


def test_expired_and_not_yet_valid_ds(csca: Signer) -> None:
    expired = make_document_signer(
        csca, not_before=NOW - timedelta(days=4000), not_after=NOW - timedelta(days=1)
    )
    report = run(issue_passport(SPECIMEN_MRZ, JPEG, expired), CscaStore([csca.certificate]))
    assert failed(report) == ["ds_certificate_validity"]
    assert report["ds_certificate_validity"].detail.startswith("expired")
    future = make_document_signer(csca, not_before=NOW + timedelta(days=1))
    report = run(issue_passport(SPECIMEN_MRZ, JPEG, future), CscaStore([csca.certificate]))
    assert failed(report) == ["ds_certificate_validity"]
    assert report["ds_certificate_validity"].detail.startswith("not yet valid")


def test_verification_time_is_a_parameter(passport: dict[LdsFile, bytes], csca: Signer) -> None:
    later = NOW + timedelta(days=365 * 16)
    report = run(passport, CscaStore([csca.certificate]), at=later)
    assert failed(report) == ["ds_certificate_validity", "csca_certificate_validity"]
    with pytest.raises(ValueError):
        run(passport, CscaStore(), at=datetime(2030, 1, 1))  # naive: ambiguous


def test_ds_without_digital_signature_usage(csca: Signer) -> None:
    ds = make_document_signer(csca, digital_signature=False)
    report = run(issue_passport(SPECIMEN_MRZ, JPEG, ds), CscaStore([csca.certificate]))
    assert failed(report) == ["ds_certificate_key_usage"]


def test_a_certificate_that_is_not_a_ca_cannot_anchor(
    passport: dict[LdsFile, bytes], csca: Signer
) -> None:
    # Same subject and key as the real CSCA, so the signature would verify; but not a CA.
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes

    original = csca.certificate
    not_a_ca = (
        cx509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.subject)
        .public_key(csca.key.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(original.not_valid_before_utc)
        .not_valid_after(original.not_valid_after_utc)
        .add_extension(cx509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(csca.key, hashes.SHA256())
    )
    report = run(passport, CscaStore([not_a_ca]))
    assert failed(report) == ["ds_certificate_chain"]
    assert "not a CA" in report["ds_certificate_chain"].detail


def test_tampered_signature_fails_ds_signature_only(
    passport: dict[LdsFile, bytes], csca: Signer
) -> None:
    info = asn1_cms.ContentInfo.load(tlv.decode_one(passport[LdsFile.SOD], 0x77).value)
    signer = info["content"]["signer_infos"][0]
    signature = bytearray(signer["signature"].native)
    signature[-1] ^= 1
    signer["signature"] = bytes(signature)
    sod = tlv.encode(0x77, info.dump(force=True))
    report = verify(sod, {1: passport[LdsFile.DG1]}, CscaStore([csca.certificate]))
    assert failed(report) == ["ds_signature"]


def test_changed_security_object_breaks_the_message_digest(ds: Signer, csca: Signer) -> None:
    files = issue_passport(SPECIMEN_MRZ, JPEG, ds)
    info = asn1_cms.ContentInfo.load(tlv.decode_one(files[LdsFile.SOD], 0x77).value)
    forged = SecurityObject("sha256", {1: bytes(32), 2: bytes(32)}).encode()
    info["content"]["encap_content_info"]["content"] = forged
    sod = tlv.encode(0x77, info.dump(force=True))
    report = verify(
        sod, {1: files[LdsFile.DG1], 2: files[LdsFile.DG2]}, CscaStore([csca.certificate])
    )
    assert failed(report) == ["ds_signature", "dg1_hash", "dg2_hash"]
    assert "messageDigest" in report["ds_signature"].detail


@pytest.mark.parametrize(
    ("key_type", "hash_algorithm", "pss", "expected"),
    [
        ("rsa", "sha1", False, "RSA PKCS#1 v1.5 with SHA1"),
        ("rsa", "sha256", True, "RSASSA-PSS with SHA256"),
        ("ec384", "sha384", False, "ECDSA with SHA384"),
        ("ec", "sha512", False, "ECDSA with SHA512"),
    ],
)
def test_signature_algorithms(key_type: str, hash_algorithm: str, pss: bool, expected: str) -> None:
    csca = make_csca("UT", key_type="rsa" if key_type == "rsa" else "ec", pss=pss)
    ds = make_document_signer(csca, key_type=key_type, pss=pss)
    files = issue_passport(SPECIMEN_MRZ, JPEG, ds, hash_algorithm=hash_algorithm, pss=pss)
    report = run(files, CscaStore([csca.certificate]))
    assert report.passed, report.failures
    assert report["ds_signature"].detail.startswith(expected)
    assert parse_sod(files[LdsFile.SOD]).hash_algorithm == hash_algorithm


def _resign_algorithm(sod: bytes, oid: str, signature: bytes | None = None) -> bytes:
    info = asn1_cms.ContentInfo.load(tlv.decode_one(sod, 0x77).value)
    signer = info["content"]["signer_infos"][0]
    signer["signature_algorithm"] = {"algorithm": oid}
    if signature is not None:
        signer["signature"] = signature
    return tlv.encode(0x77, info.dump(force=True))


def test_real_world_algorithm_spellings() -> None:
    # rsaEncryption as the signature algorithm (the digest comes from digestAlgorithm)
    rsa_csca = make_csca("UT", key_type="rsa")
    rsa_files = issue_passport(SPECIMEN_MRZ, JPEG, make_document_signer(rsa_csca, key_type="rsa"))
    sod = _resign_algorithm(rsa_files[LdsFile.SOD], "1.2.840.113549.1.1.1")
    report = verify(sod, {1: rsa_files[LdsFile.DG1]}, CscaStore([rsa_csca.certificate]))
    assert report.passed and "RSA PKCS#1 v1.5 with SHA256" in report["ds_signature"].detail

    # id-ecPublicKey as the signature algorithm, and BSI TR-03111 plain r || s
    ec_csca = make_csca("UT")
    ec_files = issue_passport(SPECIMEN_MRZ, JPEG, make_document_signer(ec_csca))
    store = CscaStore([ec_csca.certificate])
    sod = _resign_algorithm(ec_files[LdsFile.SOD], "1.2.840.10045.2.1")
    assert verify(sod, {1: ec_files[LdsFile.DG1]}, store).passed

    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    der = parse_sod(ec_files[LdsFile.SOD]).signed.signer_info["signature"].native
    r, s = decode_dss_signature(der)
    plain = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    sod = _resign_algorithm(ec_files[LdsFile.SOD], "0.4.0.127.0.7.1.1.4.1.3", plain)
    report = verify(sod, {1: ec_files[LdsFile.DG1]}, store)
    assert report.passed and "plain" in report["ds_signature"].detail

    sod = _resign_algorithm(ec_files[LdsFile.SOD], "1.2.3.4")
    report = verify(sod, {1: ec_files[LdsFile.DG1]}, store)
    assert result(report, "ds_signature") is CheckResult.ERROR
    assert "unsupported" in report["ds_signature"].detail


def test_data_groups_read_but_not_in_the_sod_and_extra_groups(ds: Signer, csca: Signer) -> None:
    dg11 = tlv.encode(0x6B, tlv.encode(0x5F0E, b"ERIKSSON<<ANNA"))
    files = issue_passport(SPECIMEN_MRZ, JPEG, ds, extra_data_groups={11: dg11})
    store = CscaStore([csca.certificate])
    report = run(files, store, groups=(1, 2, 11))
    assert report.passed and result(report, "dg11_hash") is CheckResult.PASS
    unsigned_dg3 = tlv.encode(0x63, b"")
    report = verify(
        files[LdsFile.SOD],
        {LdsFile.DG1: files[LdsFile.DG1], LdsFile.DG3: unsigned_dg3},
        store,
    )
    assert failed(report) == ["dg3_hash"]
    assert "no hash" in report["dg3_hash"].detail
    with pytest.raises(ValueError):
        verify(files[LdsFile.SOD], {LdsFile.SOD: b""}, store)


def test_revocation_with_crls(passport: dict[LdsFile, bytes], csca: Signer, ds: Signer) -> None:
    store = CscaStore([csca.certificate])
    store.add_crl(make_crl(csca, [12345]))
    report = run(passport, store)
    assert result(report, "ds_certificate_revocation") is CheckResult.PASS
    store.add_crl(make_crl(csca, [ds.certificate.serial_number], this_update=NOW))
    report = run(passport, store)
    assert failed(report) == ["ds_certificate_revocation"]

    stale = CscaStore([csca.certificate])
    old = NOW - timedelta(days=200)
    stale.add_crl(make_crl(csca, [], this_update=old, next_update=old + timedelta(days=30)))
    assert "stale" in run(passport, stale)["ds_certificate_revocation"].detail

    with pytest.raises(cms.SignatureError):
        CscaStore().add_crl(make_crl(csca))
    with pytest.raises(cms.CmsError):
        store.add_crl(b"not a CRL")


def test_malformed_sod_fails_parsing_and_skips_the_rest(passport: dict[LdsFile, bytes]) -> None:
    report = verify(
        b"\x77\x03abc", {1: passport[LdsFile.DG1]}, CscaStore(), printed_mrz=SPECIMEN_MRZ
    )
    assert failed(report) == ["sod_parsed"]
    assert result(report, "dg1_matches_printed_mrz") is CheckResult.PASS
    assert result(report, "ds_country_matches_issuer") is CheckResult.SKIPPED
    assert not report.passed


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 2000))
def test_corrupted_sods_never_raise(noise: bytes, position: int) -> None:
    sod = _REFERENCE_SOD
    cut = position % len(sod)
    for candidate in (noise, tlv.encode(0x77, noise), sod[:cut] + noise + sod[cut + len(noise) :]):
        report = verify(candidate, {1: _REFERENCE_DG1}, _REFERENCE_STORE)
        assert report.get("sod_parsed") is not None


_REFERENCE_CSCA = make_csca("UT")
_REFERENCE_FILES = issue_passport(SPECIMEN_MRZ, JPEG, make_document_signer(_REFERENCE_CSCA))
_REFERENCE_SOD = _REFERENCE_FILES[LdsFile.SOD]
_REFERENCE_DG1 = _REFERENCE_FILES[LdsFile.DG1]
_REFERENCE_STORE = CscaStore([_REFERENCE_CSCA.certificate])


def sod_with_certificate(sod: bytes, certificate: bytes) -> bytes:
    """``sod`` with its embedded certificate replaced by ``certificate`` (any bytes), all else
    as it was. Built by hand: asn1crypto cannot re-encode what it cannot read."""
    info = asn1_cms.ContentInfo.load(tlv.decode_one(sod, 0x77).value)
    signed = info["content"]
    body = (
        signed["version"].dump()
        + signed["digest_algorithms"].dump()
        + signed["encap_content_info"].dump()
        + tlv.encode(0xA0, certificate)
        + signed["signer_infos"].dump()
    )
    content = info["content_type"].dump() + tlv.encode(0xA0, tlv.encode(0x30, body))
    return tlv.encode(0x77, tlv.encode(0x30, content))


def with_empty_bit_string(certificate: bytes, where: str) -> bytes:
    """``certificate`` (DER) with its ``signature`` or its ``public_key`` BIT STRING made
    zero-length (``03 00``: not even the unused-bits byte every BIT STRING starts with)."""
    parsed = asn1_x509.Certificate.load(certificate)
    tbs = parsed["tbs_certificate"]
    if where == "signature":
        return tlv.encode(0x30, tbs.dump() + parsed["signature_algorithm"].dump() + b"\x03\x00")
    key_info = tbs["subject_public_key_info"]
    empty_key = tlv.encode(0x30, key_info["algorithm"].dump() + b"\x03\x00")
    new_tbs = tlv.encode(0x30, tbs.contents.replace(key_info.dump(), empty_key))
    return tlv.encode(
        0x30, new_tbs + parsed["signature_algorithm"].dump() + parsed["signature_value"].dump()
    )


@pytest.mark.parametrize("where", ["signature", "public_key"])
def test_a_ds_certificate_with_a_zero_length_bit_string_is_a_failed_sod(
    where: str, ds: Signer, csca: Signer, passport: dict
) -> None:
    """Issue 14: asn1crypto raised IndexError out of parse_sod and verify for this SOD."""
    sod = sod_with_certificate(passport[LdsFile.SOD], with_empty_bit_string(ds.der, where))
    with pytest.raises(SodError, match="certificate"):
        parse_sod(sod)
    report = verify(sod, {1: passport[LdsFile.DG1]}, CscaStore([csca.certificate]))
    assert failed(report) == ["sod_parsed"] and not report.passed
    assert "\n" not in report["sod_parsed"].detail


def test_a_sod_rebuilt_around_its_own_certificate_still_verifies(
    ds: Signer, csca: Signer, passport: dict
) -> None:
    """The helper above changes only what it is asked to."""
    sod = sod_with_certificate(passport[LdsFile.SOD], ds.der)
    report = verify(sod, {1: passport[LdsFile.DG1]}, CscaStore([csca.certificate]))
    assert failed(report) == [] and report.passed


def test_sod_without_a_ds_certificate(ds: Signer, csca: Signer, passport: dict) -> None:
    info = asn1_cms.ContentInfo.load(tlv.decode_one(passport[LdsFile.SOD], 0x77).value)
    del info["content"]["certificates"]
    info["content"]["certificates"] = []
    sod = tlv.encode(0x77, info.dump(force=True))
    report = verify(sod, {1: passport[LdsFile.DG1]}, CscaStore([csca.certificate]))
    assert result(report, "ds_signature") is CheckResult.FAIL
    assert result(report, "ds_certificate_chain") is CheckResult.SKIPPED


def test_sod_structure(ds: Signer) -> None:
    groups = {1: b"\x61\x00", 2: b"\x75\x00"}
    raw = build_sod(groups, ds.key, ds.certificate, lds_version=("0108", "040000"))
    parsed = parse_sod(raw)
    assert parsed.signed.content_type == ID_LDS_SECURITY_OBJECT
    assert parsed.security_object.version == 1
    assert parsed.security_object.lds_version == "0108"
    assert set(parsed.hashes) == {1, 2}
    assert parsed.ds_certificate is not None


# -- the trust store ---------------------------------------------------------------------------


def test_store_loads_pem_bundles_and_der(csca: Signer) -> None:
    other = make_csca("FR")
    store = CscaStore()
    assert store.load(csca.pem + b"\n" + other.pem) == 2
    assert store.load(csca.der) == 0  # already there
    assert len(store) == 2 and len(list(store)) == 2
    with pytest.raises(cms.CmsError):
        store.load(b"garbage")


def test_master_list_with_a_trusted_signer(passport: dict[LdsFile, bytes], csca: Signer) -> None:
    publisher = make_csca("DE")
    signer = make_master_list_signer(publisher)
    master_list = build_master_list([publisher.certificate, csca.certificate], signer)
    store = CscaStore([publisher.certificate])
    loaded = store.add_master_list(master_list)
    assert loaded.signature_valid and loaded.signer_trusted
    assert len(loaded.certificates) == 2 and len(store) == 2
    assert "trusted" in loaded.detail
    assert run(passport, store).passed


def test_master_list_whose_signer_is_not_anchored(csca: Signer) -> None:
    publisher = make_csca("DE")
    master_list = build_master_list(
        [publisher.certificate, csca.certificate], make_master_list_signer(publisher)
    )
    with pytest.raises(MasterListError, match="not issued by a CSCA in the trust store"):
        CscaStore().add_master_list(master_list)
    store = CscaStore()
    loaded = store.add_master_list(master_list, require_trusted_signer=False)
    assert loaded.signature_valid and not loaded.signer_trusted
    assert "from the list itself" in loaded.detail and len(store) == 2

    outsider = make_master_list_signer(make_csca("XX"))
    orphan = build_master_list([csca.certificate], outsider)
    with pytest.raises(MasterListError, match="not issued by any CSCA"):
        CscaStore().add_master_list(orphan, require_trusted_signer=False)


def test_tampered_or_malformed_master_lists_are_refused(csca: Signer) -> None:
    publisher = make_csca("DE")
    master_list = build_master_list([csca.certificate], make_master_list_signer(publisher))
    info = asn1_cms.ContentInfo.load(master_list)
    signer = info["content"]["signer_infos"][0]
    signer["signature"] = bytes(len(signer["signature"].native))
    with pytest.raises(MasterListError, match="signature"):
        CscaStore([publisher.certificate]).add_master_list(info.dump(force=True))
    with pytest.raises(MasterListError):
        CscaStore().add_master_list(b"\x30\x03\x02\x01\x00")
    # a SOD is signed data too, but not a master list
    with pytest.raises(MasterListError):
        CscaStore().add_master_list(_REFERENCE_SOD[4:])


def test_country_codes() -> None:
    assert len(ALPHA2_TO_ALPHA3) == 249
    assert ALPHA2_TO_ALPHA3["FR"] == "FRA" and ALPHA2_TO_ALPHA3["DE"] == "DEU"
    assert issuer_codes("de") == {"D", "DEU"}
    assert issuer_matches("DE", "D<<") and issuer_matches("DE", "DEU")
    assert issuer_matches("GB", "GBD") and issuer_matches("GB", "GBR")
    assert issuer_matches("EU", "EUE") and issuer_matches("UN", "UNO")
    assert not issuer_matches("FR", "D") and not issuer_matches("ZZ", "ZZZ")


# -- explicit EC domain parameters (Brainpool spelled out, as German certificates do) ---------


@pytest.mark.parametrize("curve", ["BrainpoolP256R1", "BrainpoolP384R1", "BrainpoolP512R1"])
def test_brainpool_constants_are_the_curves_of_cryptography(curve: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    named = getattr(ec, curve)()
    ((p, a, b, n, gx),) = [k for k, v in cms._EXPLICIT_CURVES.items() if v.name == named.name]
    g = ec.derive_private_key(1, named).public_key().public_numbers()
    assert g.x == gx
    assert (g.y * g.y - (g.x**3 + a * g.x + b)) % p == 0  # G is on y^2 = x^3 + ax + b
    minus_g = ec.derive_private_key(n - 1, named).public_key().public_numbers()
    assert (minus_g.x, minus_g.y) == (g.x, p - g.y)  # (n-1)G = -G: n is the order


def _with_explicit_parameters(certificate: object, issuer: Signer) -> object:
    """Re-issue ``certificate`` with its Brainpool key spelled out as explicit parameters."""
    from asn1crypto import keys
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    parsed = cms.load_certificate(certificate)  # type: ignore[arg-type]
    tbs = parsed["tbs_certificate"]
    spki = tbs["subject_public_key_info"]
    (p, a, b, n, _gx), _ = next(
        (k, v) for k, v in cms._EXPLICIT_CURVES.items() if v.name == "brainpoolP256r1"
    )
    size = 32
    g = ec.derive_private_key(1, ec.BrainpoolP256R1()).public_key().public_numbers()
    domain = keys.SpecifiedECDomain(
        {
            "version": "ecdpVer1",
            "field_id": {"field_type": "prime_field", "parameters": p},
            "curve": {"a": a.to_bytes(size, "big"), "b": b.to_bytes(size, "big")},
            "base": b"\x04" + g.x.to_bytes(size, "big") + g.y.to_bytes(size, "big"),
            "order": n,
            "cofactor": 1,
        }
    )
    tbs["subject_public_key_info"] = keys.PublicKeyInfo(
        {
            "algorithm": {"algorithm": "ec", "parameters": {"specified": domain}},
            "public_key": spki["public_key"].native,
        }
    )
    signature = issuer.key.sign(tbs.dump(force=True), ec.ECDSA(hashes.SHA256()))
    parsed["signature_value"] = signature
    return type(parsed).load(parsed.dump(force=True))


def test_ds_key_with_explicit_brainpool_parameters() -> None:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    csca = make_csca("DE", key_type="brainpool")
    ds = make_document_signer(csca, key_type="brainpool")
    explicit = _with_explicit_parameters(ds.certificate, csca)
    with pytest.raises(UnsupportedAlgorithm):  # what cryptography alone does with it
        serialization.load_der_public_key(explicit.public_key.dump())  # type: ignore[attr-defined]
    sod = build_sod({1: Dg1(GERMAN_MRZ).encode()}, ds.key, explicit)  # type: ignore[arg-type]
    report = verify(sod, {1: Dg1(GERMAN_MRZ).encode()}, CscaStore([csca.certificate]))
    assert report.passed, report.failures
    assert "ECDSA with SHA256" in report["ds_signature"].detail
