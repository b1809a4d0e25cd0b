"""EF.SOD, the Document Security Object (Doc 9303 Part 10 §4.6.2, Part 11 §5.1).

EF.SOD is tag ``77`` around a CMS ``ContentInfo``/``SignedData`` (:mod:`.cms`) whose signed
content is the ``LDSSecurityObject``::

    LDSSecurityObject ::= SEQUENCE {
        version                LDSSecurityObjectVersion,      -- v0, or v1 with ldsVersionInfo
        hashAlgorithm          DigestAlgorithmIdentifier,
        dataGroupHashValues    SEQUENCE SIZE (2..ub-DataGroups) OF DataGroupHash,
        ldsVersionInfo         LDSVersionInfo OPTIONAL }
    DataGroupHash ::= SEQUENCE { dataGroupNumber INTEGER (1..16), dataGroupHashValue OCTET STRING }
    LDSVersionInfo ::= SEQUENCE { ldsVersion PrintableString, unicodeVersion PrintableString }

The hash of each data group is over the whole file as read from the chip (tag, length and
value). :func:`parse_sod` reads it; :func:`build_sod` makes one for tests and virtual chips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from asn1crypto import algos, core, x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import Certificate as CryptographyCertificate

from edge.documents import tlv
from edge.documents.emrtd import cms
from edge.documents.emrtd.lds import LdsFile

__all__ = [
    "ID_LDS_SECURITY_OBJECT",
    "SecurityObject",
    "Sod",
    "SodError",
    "build_sod",
    "parse_sod",
]

#: id-icao-mrtd-security-ldsSecurityObject
ID_LDS_SECURITY_OBJECT = "2.23.136.1.1.1"


class SodError(ValueError):
    """EF.SOD bytes that do not parse as a Document Security Object."""


class _DataGroupHash(core.Sequence):
    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("data_group_number", core.Integer),
        ("data_group_hash_value", core.OctetString),
    ]


class _DataGroupHashValues(core.SequenceOf):
    _child_spec = _DataGroupHash


class _LdsVersionInfo(core.Sequence):
    _fields = [  # noqa: RUF012
        ("lds_version", core.PrintableString),
        ("unicode_version", core.PrintableString),
    ]


class _LdsSecurityObject(core.Sequence):
    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", _DataGroupHashValues),
        ("lds_version_info", _LdsVersionInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class SecurityObject:
    """The signed content: which hash, and the hash of each data group by number."""

    hash_algorithm: str
    hashes: Mapping[int, bytes]
    version: int = 0
    lds_version: str | None = None
    unicode_version: str | None = None

    def encode(self) -> bytes:
        """The DER ``LDSSecurityObject``."""
        value: dict[str, object] = {
            "version": self.version,
            "hash_algorithm": {"algorithm": self.hash_algorithm},
            "data_group_hash_values": [
                {"data_group_number": n, "data_group_hash_value": h}
                for n, h in sorted(self.hashes.items())
            ],
        }
        if self.lds_version is not None:
            value["lds_version_info"] = {
                "lds_version": self.lds_version,
                "unicode_version": self.unicode_version or "",
            }
        return _LdsSecurityObject(value).dump()

    @classmethod
    def parse(cls, data: bytes) -> SecurityObject:
        """Parse a DER ``LDSSecurityObject``; :class:`SodError` if it is not one."""
        with cms.reading(SodError, "malformed LDSSecurityObject"):
            parsed = _LdsSecurityObject.load(data, strict=True)
            name = cms.hash_algorithm_name(parsed["hash_algorithm"])
            hashes: dict[int, bytes] = {}
            for entry in parsed["data_group_hash_values"]:
                number = entry["data_group_number"].native
                if not 1 <= number <= 16:
                    raise SodError(f"the SOD lists data group {number}; DGs are 1..16")
                if number in hashes:
                    raise SodError(f"the SOD lists DG{number} twice")
                value = entry["data_group_hash_value"].native
                if len(value) != len(cms.digest(name, b"")):
                    raise SodError(f"the DG{number} hash is not a {name} hash")
                hashes[number] = value
            info = parsed["lds_version_info"]
            lds_version = unicode_version = None
            if not isinstance(info, core.Void):
                lds_version = info["lds_version"].native
                unicode_version = info["unicode_version"].native
            return cls(name, hashes, parsed["version"].native, lds_version, unicode_version)


@dataclass(frozen=True)
class Sod:
    """A parsed EF.SOD: the security object, the CMS signed content, the DS certificate."""

    security_object: SecurityObject
    signed: cms.SignedContent = field(repr=False)
    ds_certificate: x509.Certificate | None = field(repr=False)

    @property
    def hash_algorithm(self) -> str:
        return self.security_object.hash_algorithm

    @property
    def hashes(self) -> Mapping[int, bytes]:
        return self.security_object.hashes


def parse_sod(data: bytes) -> Sod:
    """Parse EF.SOD's bytes (tag ``77``); raise :class:`SodError`, and nothing else, on error.

    No signature is checked here (that is :func:`~.passive_auth.verify`'s job), but every part
    is read, the embedded certificates included, so that a malformed one fails here and not in
    the middle of a verification.
    """
    with cms.reading(SodError, "EF.SOD"):
        wrapped = tlv.decode_one(data, LdsFile.SOD.tag)
        signed = cms.parse_signed_data(wrapped.value, ID_LDS_SECURITY_OBJECT)
        security_object = SecurityObject.parse(signed.content)
        return Sod(security_object, signed, cms.signer_certificate(signed))


def build_sod(
    data_groups: Mapping[int, bytes],
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    certificate: CryptographyCertificate | x509.Certificate | bytes,
    *,
    hash_algorithm: str = "sha256",
    digest_algorithm: str | None = None,
    pss: bool = False,
    lds_version: tuple[str, str] | None = None,
) -> bytes:
    """EF.SOD's bytes for ``data_groups`` (number -> file bytes), signed by a Document Signer.

    ``hash_algorithm`` hashes the data groups; ``digest_algorithm`` (default: the same) is the
    signer's digest. ``lds_version`` = ``("0108", "040000")`` makes a v1 security object. For
    tests and virtual chips.
    """
    hashes = {n: cms.digest(hash_algorithm, raw) for n, raw in data_groups.items()}
    security_object = SecurityObject(
        hash_algorithm,
        hashes,
        version=1 if lds_version else 0,
        lds_version=lds_version[0] if lds_version else None,
        unicode_version=lds_version[1] if lds_version else None,
    )
    signed = cms.sign(
        ID_LDS_SECURITY_OBJECT,
        security_object.encode(),
        key,
        certificate,
        digest_name=digest_algorithm or hash_algorithm,
        pss=pss,
    )
    return tlv.encode(LdsFile.SOD.tag, signed)
