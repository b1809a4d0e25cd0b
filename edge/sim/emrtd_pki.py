"""A test ePassport PKI: CSCAs, Document Signers, master lists, CRLs, and issued chip files.

For tests and virtual chips only: keys live in memory, certificates follow the Doc 9303 Part 12
profile closely enough for :mod:`edge.documents.emrtd.passive_auth` to treat them as real.

>>> csca = make_csca("UT")
>>> ds = make_document_signer(csca)
>>> files = issue_passport(SPECIMEN_MRZ, b"\\xff\\xd8\\xff\\xe0 a JPEG", ds)
>>> sorted(f.value for f in files)
['EF.COM', 'EF.DG1', 'EF.DG2', 'EF.SOD']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from edge.documents import tlv
from edge.documents.emrtd import cms
from edge.documents.emrtd.lds import Dg1, Dg2, EfCom, FaceImage, LdsFile
from edge.documents.emrtd.passive_auth import ID_CSCA_MASTER_LIST, encode_master_list
from edge.documents.emrtd.sod import build_sod

__all__ = [
    "SPECIMEN_MRZ",
    "Signer",
    "build_master_list",
    "issue_passport",
    "make_crl",
    "make_csca",
    "make_document_signer",
    "make_master_list_signer",
]

#: Doc 9303's specimen passport (Anna Maria Eriksson of Utopia), as DG1 holds it.
SPECIMEN_MRZ = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<L898902C36UTO7408122F1204159ZE184226B<<<<<10"
)
#: id-icao-cscaMasterListSigningKey: the extended key usage of a Master List Signer.
_ML_SIGNER_EKU = x509.ObjectIdentifier("2.23.136.1.1.3")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Signer:
    """A private key and its certificate."""

    key: PrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def country(self) -> str:
        return self.certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value  # type: ignore[return-value]


def _new_key(key_type: str) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "brainpool":
        return ec.generate_private_key(ec.BrainpoolP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"key_type is ec, ec384, brainpool or rsa, not {key_type!r}")


def _name(country: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Borderlane test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _window(
    not_before: datetime | None, not_after: datetime | None, years: int
) -> tuple[datetime, datetime]:
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    return start, not_after or start + timedelta(days=365 * years)


def _sign_certificate(
    builder: x509.CertificateBuilder, issuer_key: PrivateKey, pss: bool
) -> x509.Certificate:
    if pss and isinstance(issuer_key, rsa.RSAPrivateKey):
        return builder.sign(
            issuer_key,
            hashes.SHA256(),
            rsa_padding=padding.PSS(
                mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size
            ),
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_csca(
    country: str = "UT",
    *,
    key_type: str = "ec",
    common_name: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    pss: bool = False,
) -> Signer:
    """A self-signed Country Signing CA (CA, keyCertSign and cRLSign, 15 years by default)."""
    key = _new_key(key_type)
    name = _name(country, common_name or f"CSCA {country}")
    start, end = _window(not_before, not_after, 15)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return Signer(key, _sign_certificate(builder, key, pss))


def _issued(
    issuer: Signer,
    *,
    country: str,
    common_name: str,
    key_type: str,
    not_before: datetime | None,
    not_after: datetime | None,
    years: int,
    digital_signature: bool,
    extended_usage: x509.ObjectIdentifier | None = None,
    pss: bool = False,
) -> Signer:
    key = _new_key(key_type)
    start, end = _window(not_before, not_after, years)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(country, common_name))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=not digital_signature,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer.certificate.public_key()  # type: ignore[arg-type]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if extended_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([extended_usage]), critical=True)
    return Signer(key, _sign_certificate(builder, issuer.key, pss))


def make_document_signer(
    csca: Signer,
    *,
    country: str | None = None,
    key_type: str = "ec",
    common_name: str = "Document Signer",
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    digital_signature: bool = True,
    pss: bool = False,
) -> Signer:
    """A Document Signer issued by ``csca`` (same country unless ``country`` says otherwise).

    Valid 11 years by default (a signing period plus a passport's lifetime).
    ``digital_signature=False`` makes a certificate that must not sign (for negative tests);
    ``pss`` has an RSA CSCA sign it with RSASSA-PSS.
    """
    return _issued(
        csca,
        country=country or csca.country,
        common_name=common_name,
        key_type=key_type,
        not_before=not_before,
        not_after=not_after,
        years=11,
        digital_signature=digital_signature,
        pss=pss,
    )


def make_master_list_signer(csca: Signer, *, key_type: str = "ec") -> Signer:
    """A Master List Signer issued by ``csca`` (digitalSignature, the ML signer EKU)."""
    return _issued(
        csca,
        country=csca.country,
        common_name="Master List Signer",
        key_type=key_type,
        not_before=None,
        not_after=None,
        years=3,
        digital_signature=True,
        extended_usage=_ML_SIGNER_EKU,
    )


def build_master_list(certificates: Iterable[x509.Certificate], signer: Signer) -> bytes:
    """A DER CSCA master list (CMS SignedData over CscaMasterList) signed by ``signer``."""
    content = encode_master_list(certificates)
    return cms.sign(ID_CSCA_MASTER_LIST, content, signer.key, signer.certificate)


def make_crl(
    csca: Signer,
    revoked_serials: Iterable[int] = (),
    *,
    this_update: datetime | None = None,
    next_update: datetime | None = None,
) -> bytes:
    """A DER CRL signed by ``csca`` listing ``revoked_serials``."""
    start = this_update or datetime.now(UTC) - timedelta(hours=1)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(csca.certificate.subject)
        .last_update(start)
        .next_update(next_update or start + timedelta(days=90))
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(start).build()
        )
    return builder.sign(csca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def issue_passport(
    mrz: str,
    face: bytes,
    ds: Signer,
    *,
    face_size: tuple[int, int] = (480, 640),
    extra_data_groups: Mapping[int, bytes] | None = None,
    hash_algorithm: str = "sha256",
    pss: bool = False,
) -> dict[LdsFile, bytes]:
    """The chip files of a passport: EF.COM, DG1 (``mrz``), DG2 (``face``), EF.SOD by ``ds``.

    ``extra_data_groups`` (number -> complete file bytes) are added, listed in EF.COM and
    hashed in the SOD.
    """
    groups: dict[int, bytes] = {
        1: Dg1(mrz).encode(),
        2: Dg2((FaceImage(face, face_size[0], face_size[1]),)).encode(),
    }
    for number, data in (extra_data_groups or {}).items():
        tlv.decode_one(data, LdsFile.data_group(number).tag)  # a file is one object of its tag
        groups[number] = data
    files = {LdsFile.data_group(n): data for n, data in sorted(groups.items())}
    files[LdsFile.COM] = EfCom(data_groups=tuple(sorted(groups))).encode()
    files[LdsFile.SOD] = build_sod(
        groups, ds.key, ds.certificate, hash_algorithm=hash_algorithm, pss=pss
    )
    return files
