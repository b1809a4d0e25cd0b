"""Passive Authentication: is the chip's data what the issuing state signed? (Doc 9303 Part 11 §5)

Passive authentication proves the data groups are authentic and unchanged; it does not prove
the chip is not a clone (that is Active or Chip Authentication). The steps, each reported as a
separate named check so the lane and the crossing record can carry them:

==============================  ================================================================
check                           passes when
==============================  ================================================================
``sod_parsed``                  EF.SOD parses: CMS SignedData around an LDSSecurityObject
``ds_signature``                the Document Signer's signature over the signed attributes
                                verifies, and ``messageDigest`` is the hash of the content
``ds_certificate_chain``        a CSCA in the trust store whose subject is the DS certificate's
                                issuer (a CA allowed to sign certificates, same country) signed
                                the DS certificate
``ds_certificate_validity``     the DS certificate is valid at the verification time
``ds_certificate_key_usage``    the DS certificate may sign (``digitalSignature``)
``csca_certificate_validity``   the issuing CSCA certificate is valid at the verification time
``ds_certificate_revocation``   a CRL of that CSCA is loaded and does not list the DS certificate
                                (skipped without one)
``dgN_hash``                    the hash of data group N as read equals the SOD's (``dg1_hash``
                                and ``dg2_hash`` always appear; other DGs when read)
``dg1_matches_printed_mrz``     DG1's MRZ equals the MRZ read optically (skipped without one)
``ds_country_matches_issuer``   the DS certificate's country (ISO alpha-2) fits the MRZ issuing
                                state (ICAO alpha-3, :mod:`.countries`)
==============================  ================================================================

Each check is a :class:`~edge.documents.cbic.Check` (``pass``/``fail``/``skipped``/``error``
with a detail string); ``error`` means the check could not be done (an unsupported algorithm,
say), which is not evidence against the document.

The trust store (:class:`CscaStore`) takes CSCA certificates as PEM or DER bytes and ICAO master
lists (:meth:`CscaStore.add_master_list`); this module never reads files, the caller passes
bytes.

Typical use::

    store = CscaStore()
    store.load(pem_bytes)                                   # or add_master_list(der)
    report = verify(files[LdsFile.SOD], {1: dg1, 2: dg2}, store, printed_mrz=mrz_text)
    report.passed, [c.to_json() for c in report.checks]
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto import core, crl, x509
from cryptography.x509 import Certificate as CryptographyCertificate

from edge.documents.checks import Check, CheckResult
from edge.documents.emrtd import cms
from edge.documents.emrtd.countries import issuer_codes, issuer_matches
from edge.documents.emrtd.lds import Dg1, LdsError, LdsFile
from edge.documents.emrtd.sod import Sod, SodError, parse_sod

__all__ = [
    "CHECK_CSCA_VALIDITY",
    "CHECK_DG1_PRINTED_MRZ",
    "CHECK_DS_CHAIN",
    "CHECK_DS_COUNTRY",
    "CHECK_DS_KEY_USAGE",
    "CHECK_DS_REVOCATION",
    "CHECK_DS_SIGNATURE",
    "CHECK_DS_VALIDITY",
    "CHECK_SOD_PARSED",
    "ESSENTIAL_CHECKS",
    "ID_CSCA_MASTER_LIST",
    "CscaStore",
    "MasterList",
    "MasterListError",
    "PassiveAuthReport",
    "dg_hash_check_name",
    "encode_master_list",
    "parse_master_list",
    "verify",
]

CHECK_SOD_PARSED = "sod_parsed"
CHECK_DS_SIGNATURE = "ds_signature"
CHECK_DS_CHAIN = "ds_certificate_chain"
CHECK_DS_VALIDITY = "ds_certificate_validity"
CHECK_DS_KEY_USAGE = "ds_certificate_key_usage"
CHECK_CSCA_VALIDITY = "csca_certificate_validity"
CHECK_DS_REVOCATION = "ds_certificate_revocation"
CHECK_DG1_PRINTED_MRZ = "dg1_matches_printed_mrz"
CHECK_DS_COUNTRY = "ds_country_matches_issuer"

#: id-icao-cscaMasterList
ID_CSCA_MASTER_LIST = "2.23.136.1.1.2"
#: The checks whose failure means the data cannot be trusted at all.
ESSENTIAL_CHECKS = (CHECK_SOD_PARSED, CHECK_DS_SIGNATURE, CHECK_DS_CHAIN, "dg1_hash")


def dg_hash_check_name(number: int) -> str:
    """``dg1_hash``, ``dg2_hash``...: the name of data group ``number``'s hash check."""
    return f"dg{number}_hash"


_NAME_KEYS = {
    "country_name": "C",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "common_name": "CN",
    "serial_number": "serialNumber",
}


def _subject_text(name: x509.Name) -> str:
    """A short one-line form of a name: ``C=UT, O=..., CN=CSCA UT``."""
    try:
        parts = []
        for key, value in name.native.items():
            values = value if isinstance(value, list) else [value]
            parts.extend(f"{_NAME_KEYS.get(key, key)}={v}" for v in values)
        text = ", ".join(parts) or "(empty name)"
        # a check's detail is one line: a name may hold a line break (make fuzz, master_list)
        return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    except (ValueError, TypeError, KeyError, AttributeError):
        return "(unreadable name)"


def _country(certificate: x509.Certificate) -> str | None:
    value = certificate.subject.native.get("country_name")
    return value.strip().upper() if isinstance(value, str) else None


def _validity(certificate: x509.Certificate) -> tuple[datetime, datetime]:
    validity = certificate["tbs_certificate"]["validity"]
    return validity["not_before"].native, validity["not_after"].native


def _describe(certificate: x509.Certificate) -> str:
    return f"{_subject_text(certificate.subject)} (serial {certificate.serial_number:X})"


def _verify_issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> str:
    """Check ``issuer``'s signature on ``certificate``; return the algorithm or raise
    :class:`~.cms.SignatureError`. Re-encoding a part read with an indefinite length can fail
    in asn1crypto (make fuzz's certificate_structure found one): that fails the check too."""
    with cms.reading(cms.SignatureError, "the certificate's signed part cannot be encoded"):
        signed = certificate["tbs_certificate"].dump()
    return cms.verify_signature(
        issuer.public_key,
        certificate["signature_algorithm"],
        certificate["signature_value"].native,
        signed,
    )


def _may_sign_certificates(certificate: x509.Certificate) -> str | None:
    """Why ``certificate`` may not act as a CSCA, or None if it may."""
    constraints = certificate.basic_constraints_value
    if constraints is not None and not constraints["ca"].native:
        return "its basicConstraints say it is not a CA"
    usage = certificate.key_usage_value
    if usage is not None and "key_cert_sign" not in usage.native:
        return "its keyUsage lacks keyCertSign"
    return None


# -- trust store --------------------------------------------------------------------------


class MasterListError(ValueError):
    """A master list that does not parse, or whose signature or signer cannot be trusted."""


class _CscaMasterList(core.Sequence):
    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("version", core.Integer),
        ("cert_list", core.SetOf, {"spec": x509.Certificate}),
    ]


@dataclass(frozen=True)
class MasterList:
    """A parsed CSCA master list and what was verified about it.

    ``signature_valid``: the CMS signature verifies with the embedded Master List Signer
    certificate. ``signer_trusted``: that signer certificate was issued by a CSCA that was
    already in the trust store (trust from outside the list). ``detail`` says which.
    """

    certificates: tuple[x509.Certificate, ...] = field(repr=False)
    signer: x509.Certificate | None = field(repr=False)
    signature_valid: bool
    signer_trusted: bool
    detail: str


def encode_master_list(
    certificates: Iterable[bytes | x509.Certificate | CryptographyCertificate],
) -> bytes:
    """The DER ``CscaMasterList`` (version 0) of ``certificates``: the content a Master List
    Signer signs. For building test lists; see :func:`edge.sim.emrtd_pki.build_master_list`.
    """
    listed = [cms.load_certificate(c) for c in certificates]
    return _CscaMasterList({"version": 0, "cert_list": listed}).dump()


def parse_master_list(data: bytes) -> tuple[cms.SignedContent, tuple[x509.Certificate, ...]]:
    """The CMS structure and the CSCA certificates of a master list; nothing is verified.

    :class:`MasterListError`, and nothing else, for bytes that are not one.
    """
    with cms.reading(MasterListError, "not a CSCA master list"):
        signed = cms.parse_signed_data(data, ID_CSCA_MASTER_LIST)
        parsed = _CscaMasterList.load(signed.content, strict=True)
        certificates = tuple(cms.load_certificate(c) for c in parsed["cert_list"])
    return signed, certificates


_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----\s*(.+?)\s*-----END X509 CRL-----", re.DOTALL)


@dataclass
class _Revocations:
    issuer: x509.Certificate
    serials: frozenset[int]
    this_update: datetime
    next_update: datetime | None


class CscaStore:
    """The Country Signing CA certificates a lane trusts, and the CRLs it has.

    Certificates are indexed by subject (compared as RFC 5280 prescribes, so encoding
    differences between a DS certificate's issuer and its CSCA's subject do not matter). A
    country may have several CSCA certificates with the same subject (key rollover, link
    certificates): all are kept, and the DS certificate's signature decides.

    >>> store = CscaStore()
    >>> len(store)
    0
    """

    def __init__(
        self,
        certificates: Iterable[bytes | x509.Certificate | CryptographyCertificate] = (),
    ) -> None:
        self._by_subject: dict[str, list[x509.Certificate]] = {}
        self._fingerprints: set[bytes] = set()
        self._crls: dict[str, list[_Revocations]] = {}
        for certificate in certificates:
            self.add(certificate)

    def __len__(self) -> int:
        return len(self._fingerprints)

    def __iter__(self) -> Iterator[x509.Certificate]:
        for certificates in self._by_subject.values():
            yield from certificates

    def add(self, certificate: bytes | x509.Certificate | CryptographyCertificate) -> bool:
        """Trust one CSCA certificate (DER bytes or a certificate object).

        Returns False when it was already there. Raises :class:`~.cms.CmsError` for bytes that
        are not a certificate.
        """
        parsed = cms.load_certificate(certificate)
        fingerprint = parsed.sha256
        if fingerprint in self._fingerprints:
            return False
        self._fingerprints.add(fingerprint)
        self._by_subject.setdefault(parsed.subject.hashable, []).append(parsed)
        return True

    def load(self, data: bytes) -> int:
        """Trust the certificates in ``data``: PEM (any number of blocks) or one DER certificate.

        Returns how many were new. PEM CRL blocks in the same bytes are added with
        :meth:`add_crl`.
        """
        blocks = _PEM_CERTIFICATE.findall(data)
        crls = _PEM_CRL.findall(data)
        if not blocks and not crls:
            return int(self.add(data))
        added = 0
        for block in blocks:
            try:
                der = base64.b64decode(block, validate=False)
            except ValueError as error:
                raise cms.CmsError(f"bad base64 in a PEM certificate: {error}") from None
            added += self.add(der)
        for block in crls:
            self.add_crl(base64.b64decode(block, validate=False))
        return added

    def issuers_of(self, certificate: x509.Certificate) -> list[x509.Certificate]:
        """The stored CSCAs whose subject is ``certificate``'s issuer, best key-id match first."""
        candidates = list(self._by_subject.get(certificate.issuer.hashable, []))
        wanted = certificate.authority_key_identifier
        if wanted:
            candidates.sort(key=lambda c: c.key_identifier != wanted)
        return candidates

    def add_master_list(
        self, data: bytes, *, require_trusted_signer: bool = True, at: datetime | None = None
    ) -> MasterList:
        """Verify an ICAO CSCA master list and trust the CSCA certificates in it.

        What is verified: the CMS signature, with the Master List Signer certificate embedded
        in the list; then that signer certificate must have been issued (signature checked,
        valid at ``at``, default now) by a CSCA *already in this store*, which is where the
        trust comes from (load the publishing state's CSCA first, obtained out of band). With
        ``require_trusted_signer=False`` a list whose signer is not anchored that way is still
        accepted if it is internally consistent (the signer issued by a CSCA inside the list):
        that proves nothing about who published it, and :attr:`MasterList.signer_trusted` is
        False. Raises :class:`MasterListError` when verification fails.
        """
        when = _utc(at)
        signed, certificates = parse_master_list(data)
        with cms.reading(MasterListError, "the master list's signer"):
            signer = cms.signer_certificate(signed)
        if signer is None:
            raise MasterListError("the master list does not embed its signer's certificate")
        try:
            algorithm = cms.verify_signer(signed, signer)
        except cms.SignatureError as error:
            raise MasterListError(f"the master list signature is invalid: {error}") from None
        anchor = self._anchor(signer, self.issuers_of(signer), when)
        trusted = anchor is not None
        if anchor is None:
            if require_trusted_signer:
                raise MasterListError(
                    f"the master list signer {_describe(signer)} was not issued by a CSCA in "
                    "the trust store; load the publishing state's CSCA first"
                )
            inside = CscaStore(certificates)
            anchor = self._anchor(signer, inside.issuers_of(signer), when)
            if anchor is None:
                raise MasterListError(
                    f"the master list signer {_describe(signer)} was not issued by any CSCA, "
                    "in the store or in the list"
                )
            detail = f"{algorithm}; signer issued by {_describe(anchor)} from the list itself"
        else:
            detail = f"{algorithm}; signer issued by trusted {_describe(anchor)}"
        for certificate in certificates:
            self.add(certificate)
        return MasterList(certificates, signer, True, trusted, detail)

    @staticmethod
    def _anchor(
        certificate: x509.Certificate, candidates: list[x509.Certificate], when: datetime
    ) -> x509.Certificate | None:
        not_before, not_after = _validity(certificate)
        if not not_before <= when <= not_after:
            return None
        for candidate in candidates:
            if _may_sign_certificates(candidate) is not None:
                continue
            try:
                _verify_issued_by(certificate, candidate)
            except cms.SignatureError:
                continue
            return candidate
        return None

    def add_crl(self, data: bytes) -> None:
        """Add a CSCA's CRL (DER). Its signature must verify with a CSCA in the store.

        Raises :class:`~.cms.CmsError` when the bytes are not a CRL and
        :class:`~.cms.SignatureError` when no stored CSCA signed it.
        """
        with cms.reading(cms.CmsError, "not a DER CRL"):
            parsed = crl.CertificateList.load(bytes(data), strict=True)
            parsed.native  # noqa: B018 - parse everything now
            parsed.issuer.hashable  # noqa: B018
            tbs = parsed["tbs_cert_list"]
            signed = tbs.dump()  # re-encoded where read with indefinite lengths: may fail
        for issuer in self._by_subject.get(parsed.issuer.hashable, []):
            try:
                cms.verify_signature(
                    issuer.public_key,
                    parsed["signature_algorithm"],
                    parsed["signature"].native,
                    signed,
                )
            except cms.SignatureError:
                continue
            serials = frozenset(
                entry["user_certificate"].native for entry in tbs["revoked_certificates"]
            )
            next_update = tbs["next_update"].native if tbs["next_update"] else None
            revocations = _Revocations(issuer, serials, tbs["this_update"].native, next_update)
            self._crls.setdefault(issuer.sha256.hex(), []).append(revocations)
            return
        raise cms.SignatureError(
            f"no CSCA in the store signed the CRL of {_subject_text(parsed.issuer)}"
        )

    def revocations_by(self, csca: x509.Certificate) -> list[_Revocations]:
        """The CRLs loaded for ``csca``, newest first."""
        lists = self._crls.get(csca.sha256.hex(), [])
        return sorted(lists, key=lambda r: r.this_update, reverse=True)


# -- verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class PassiveAuthReport:
    """The outcome of :func:`verify`: one :class:`~edge.documents.cbic.Check` per step.

    ``passed`` is True when no check failed or erred and the essential ones
    (:data:`ESSENTIAL_CHECKS`) passed. The parsed SOD and the certificates are kept for
    display and logging.
    """

    checks: tuple[Check, ...]
    sod: Sod | None = field(default=None, repr=False)
    ds_certificate: x509.Certificate | None = field(default=None, repr=False)
    csca_certificate: x509.Certificate | None = field(default=None, repr=False)

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def get(self, name: str) -> Check | None:
        return next((check for check in self.checks if check.name == name), None)

    @property
    def failures(self) -> tuple[Check, ...]:
        """The checks that failed or could not be done."""
        return tuple(c for c in self.checks if c.result in (CheckResult.FAIL, CheckResult.ERROR))

    @property
    def passed(self) -> bool:
        return not self.failures and all(
            self[name].result is CheckResult.PASS for name in ESSENTIAL_CHECKS if self.get(name)
        )

    def to_json(self) -> list[dict[str, str]]:
        """The checks as the crossing record carries them."""
        return [check.to_json() for check in self.checks]


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("the verification time must be timezone-aware (use UTC)")
    return at


def _normalise_mrz(text: str) -> str:
    return "".join(text.split()).upper()


def _data_group_number(key: int | LdsFile) -> int:
    if isinstance(key, LdsFile):
        if key.number is None:
            raise ValueError(f"{key.value} is not a data group")
        return key.number
    LdsFile.data_group(key)
    return key


class _Checks:
    """The checks of one verification, in order."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: str, result: CheckResult, detail: str) -> None:
        self.items.append(Check(name, result, detail))

    def skip(self, name: str, detail: str) -> None:
        self.add(name, CheckResult.SKIPPED, detail)


def verify(
    sod: bytes | Sod,
    data_groups: Mapping[int | LdsFile, bytes],
    store: CscaStore,
    *,
    at: datetime | None = None,
    printed_mrz: str | None = None,
    issuing_state: str | None = None,
) -> PassiveAuthReport:
    """Passive authentication of what was read from a chip; every step becomes a check.

    ``sod`` is EF.SOD's bytes (or a parsed :class:`~.sod.Sod`); ``data_groups`` maps data group
    numbers (or :class:`~.lds.LdsFile` members) to the files' bytes as read; ``store`` holds the
    trusted CSCAs; ``at`` is the verification time (timezone-aware, default now).
    ``printed_mrz`` is the MRZ read optically, with or without line breaks. ``issuing_state``
    overrides the issuing state compared with the DS certificate's country, which otherwise
    comes from DG1 (or from ``printed_mrz`` when DG1 was not read).

    Never raises for anything about the document: a malformed SOD is a failed ``sod_parsed``.
    """
    when = _utc(at)
    dgs = {_data_group_number(k): bytes(v) for k, v in data_groups.items()}
    checks = _Checks()
    hash_names = [dg_hash_check_name(n) for n in sorted({1, 2} | set(dgs))]

    parsed: Sod | None
    try:
        parsed = sod if isinstance(sod, Sod) else parse_sod(sod)
    except SodError as error:
        parsed = None
        checks.add(CHECK_SOD_PARSED, CheckResult.FAIL, str(error))
    if parsed is None:
        for name in (
            CHECK_DS_SIGNATURE,
            CHECK_DS_CHAIN,
            CHECK_DS_VALIDITY,
            CHECK_DS_KEY_USAGE,
            CHECK_CSCA_VALIDITY,
            CHECK_DS_REVOCATION,
            *hash_names,
        ):
            checks.skip(name, "EF.SOD could not be parsed")
        _mrz_checks(checks, dgs, printed_mrz, issuing_state, None)
        return PassiveAuthReport(tuple(checks.items))

    ds = parsed.ds_certificate
    listed = ", ".join(str(n) for n in sorted(parsed.hashes))
    checks.add(
        CHECK_SOD_PARSED,
        CheckResult.PASS,
        f"LDSSecurityObject v{parsed.security_object.version}, "
        f"{parsed.hash_algorithm.upper()}, DGs {listed}; "
        + ("DS certificate embedded" if ds is not None else "no DS certificate embedded"),
    )

    # The Document Signer's signature over the security object.
    if ds is None:
        checks.add(CHECK_DS_SIGNATURE, CheckResult.FAIL, "EF.SOD embeds no DS certificate")
    else:
        try:
            detail = cms.verify_signer(parsed.signed, ds)
            checks.add(CHECK_DS_SIGNATURE, CheckResult.PASS, f"{detail}; by {_describe(ds)}")
        except cms.UnsupportedSignatureError as error:
            checks.add(CHECK_DS_SIGNATURE, CheckResult.ERROR, str(error))
        except cms.SignatureError as error:
            checks.add(CHECK_DS_SIGNATURE, CheckResult.FAIL, str(error))

    # The DS certificate, against the trust store.
    csca = None
    if ds is None:
        for name in (
            CHECK_DS_CHAIN,
            CHECK_DS_VALIDITY,
            CHECK_DS_KEY_USAGE,
            CHECK_CSCA_VALIDITY,
            CHECK_DS_REVOCATION,
        ):
            checks.skip(name, "no DS certificate")
    else:
        csca = _chain_check(checks, ds, store)
        not_before, not_after = _validity(ds)
        span = f"{not_before:%Y-%m-%d} to {not_after:%Y-%m-%d}"
        if not_before <= when <= not_after:
            checks.add(CHECK_DS_VALIDITY, CheckResult.PASS, f"valid {span}")
        else:
            state = "not yet valid" if when < not_before else "expired"
            checks.add(CHECK_DS_VALIDITY, CheckResult.FAIL, f"{state}: valid {span}")
        _key_usage_check(checks, ds)
        if csca is None:
            why = "no issuing CSCA found" if len(store) else "no CSCA was given"
            checks.skip(CHECK_CSCA_VALIDITY, why)
            checks.skip(CHECK_DS_REVOCATION, why)
        else:
            c_before, c_after = _validity(csca)
            c_span = f"{c_before:%Y-%m-%d} to {c_after:%Y-%m-%d}"
            if c_before <= when <= c_after:
                checks.add(CHECK_CSCA_VALIDITY, CheckResult.PASS, f"valid {c_span}")
            else:
                checks.add(CHECK_CSCA_VALIDITY, CheckResult.FAIL, f"not valid now: {c_span}")
            _revocation_check(checks, ds, csca, store, when)

    # Each data group as read, against the SOD.
    for number in sorted({1, 2} | set(dgs)):
        name = dg_hash_check_name(number)
        expected = parsed.hashes.get(number)
        if number not in dgs:
            checks.skip(name, f"DG{number} was not read")
        elif expected is None:
            checks.add(name, CheckResult.FAIL, f"DG{number} was read but the SOD has no hash of it")
        else:
            actual = cms.digest(parsed.hash_algorithm, dgs[number])
            if actual == expected:
                checks.add(name, CheckResult.PASS, f"{parsed.hash_algorithm.upper()} matches")
            else:
                checks.add(
                    name,
                    CheckResult.FAIL,
                    f"{parsed.hash_algorithm.upper()} {actual.hex()[:16]}... differs from the "
                    f"SOD's {expected.hex()[:16]}...",
                )

    _mrz_checks(checks, dgs, printed_mrz, issuing_state, ds)
    return PassiveAuthReport(tuple(checks.items), parsed, ds, csca)


def _chain_check(
    checks: _Checks, ds: x509.Certificate, store: CscaStore
) -> x509.Certificate | None:
    candidates = store.issuers_of(ds)
    issuer = _subject_text(ds.issuer)
    if not len(store):
        checks.add(
            CHECK_DS_CHAIN,
            CheckResult.FAIL,
            f"no CSCA was given: the trust store is empty (DS issuer {issuer})",
        )
        return None
    if not candidates:
        checks.add(
            CHECK_DS_CHAIN,
            CheckResult.FAIL,
            f"no CSCA with subject {issuer} in the trust store ({len(store)} CSCAs)",
        )
        return None
    reasons = []
    unsupported = None
    for candidate in candidates:
        refusal = _may_sign_certificates(candidate)
        if refusal:
            reasons.append(f"{_describe(candidate)}: {refusal}")
            continue
        try:
            algorithm = _verify_issued_by(ds, candidate)
        except cms.UnsupportedSignatureError as error:
            unsupported = error
            reasons.append(f"{_describe(candidate)}: {error}")
            continue
        except cms.SignatureError as error:
            reasons.append(f"{_describe(candidate)}: {error}")
            continue
        ds_country, csca_country = _country(ds), _country(candidate)
        if ds_country != csca_country:
            checks.add(
                CHECK_DS_CHAIN,
                CheckResult.FAIL,
                f"signed by {_describe(candidate)}, but the DS country {ds_country} differs "
                f"from the CSCA's {csca_country}",
            )
            return candidate
        checks.add(CHECK_DS_CHAIN, CheckResult.PASS, f"{algorithm} by CSCA {_describe(candidate)}")
        return candidate
    only_unsupported = unsupported is not None and len(reasons) == 1
    result = CheckResult.ERROR if only_unsupported else CheckResult.FAIL
    checks.add(CHECK_DS_CHAIN, result, "no CSCA signature verifies: " + "; ".join(reasons))
    return None


def _key_usage_check(checks: _Checks, ds: x509.Certificate) -> None:
    usage = ds.key_usage_value
    if usage is None:
        checks.add(
            CHECK_DS_KEY_USAGE,
            CheckResult.PASS,
            "no keyUsage extension (Doc 9303 asks for digitalSignature); accepted",
        )
    elif "digital_signature" in usage.native:
        checks.add(CHECK_DS_KEY_USAGE, CheckResult.PASS, "digitalSignature")
    else:
        names = ", ".join(sorted(usage.native)) or "none"
        checks.add(CHECK_DS_KEY_USAGE, CheckResult.FAIL, f"keyUsage {names} lacks digitalSignature")


def _revocation_check(
    checks: _Checks, ds: x509.Certificate, csca: x509.Certificate, store: CscaStore, when: datetime
) -> None:
    lists = store.revocations_by(csca)
    if not lists:
        checks.skip(CHECK_DS_REVOCATION, f"no CRL of {_describe(csca)} loaded")
        return
    latest = lists[0]
    if ds.serial_number in latest.serials:
        checks.add(
            CHECK_DS_REVOCATION,
            CheckResult.FAIL,
            f"revoked: listed in the CRL of {latest.this_update:%Y-%m-%d}",
        )
        return
    stale = latest.next_update is not None and latest.next_update < when
    note = f" (CRL is stale: next update was {latest.next_update:%Y-%m-%d})" if stale else ""
    checks.add(
        CHECK_DS_REVOCATION,
        CheckResult.PASS,
        f"not in the CRL of {latest.this_update:%Y-%m-%d}{note}",
    )


def _mrz_checks(
    checks: _Checks,
    dgs: Mapping[int, bytes],
    printed_mrz: str | None,
    issuing_state: str | None,
    ds: x509.Certificate | None,
) -> None:
    dg1: Dg1 | None = None
    dg1_error = None
    if 1 in dgs:
        try:
            dg1 = Dg1.parse(dgs[1])
        except LdsError as error:
            dg1_error = str(error)

    if printed_mrz is None:
        checks.skip(CHECK_DG1_PRINTED_MRZ, "no printed MRZ was read")
    elif dg1 is None:
        if dg1_error:
            checks.add(CHECK_DG1_PRINTED_MRZ, CheckResult.FAIL, f"DG1 is malformed: {dg1_error}")
        else:
            checks.skip(CHECK_DG1_PRINTED_MRZ, "DG1 was not read")
    elif _normalise_mrz(printed_mrz) == dg1.mrz:
        checks.add(CHECK_DG1_PRINTED_MRZ, CheckResult.PASS, "identical")
    else:
        printed = _normalise_mrz(printed_mrz)
        if len(printed) != len(dg1.mrz):
            detail = f"DG1 holds {len(dg1.mrz)} characters, the printed MRZ {len(printed)}"
        else:
            positions = [
                i + 1 for i, (a, b) in enumerate(zip(printed, dg1.mrz, strict=True)) if a != b
            ]
            detail = f"{len(positions)} characters differ, first at position {positions[0]}"
        checks.add(CHECK_DG1_PRINTED_MRZ, CheckResult.FAIL, detail)

    state = issuing_state
    source = "given"
    if state is None and dg1 is not None:
        state, source = dg1.issuing_state, "DG1"
    if state is None and printed_mrz is not None:
        state, source = _normalise_mrz(printed_mrz)[2:5].rstrip("<"), "the printed MRZ"
    if ds is None:
        checks.skip(CHECK_DS_COUNTRY, "no DS certificate")
    elif not state:
        checks.skip(CHECK_DS_COUNTRY, "no issuing state known (neither DG1 nor a printed MRZ)")
    else:
        country = _country(ds)
        if country is None:
            checks.add(CHECK_DS_COUNTRY, CheckResult.FAIL, "the DS certificate names no country")
        elif issuer_matches(country, state):
            checks.add(
                CHECK_DS_COUNTRY,
                CheckResult.PASS,
                f"DS country {country} fits issuing state {state} ({source})",
            )
        else:
            known = ", ".join(sorted(issuer_codes(country))) or "none known"
            checks.add(
                CHECK_DS_COUNTRY,
                CheckResult.FAIL,
                f"DS country {country} (MRZ codes: {known}) does not fit issuing state "
                f"{state} ({source})",
            )
