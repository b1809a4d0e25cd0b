"""CMS SignedData as the eMRTD PKI uses it (RFC 5652; Doc 9303 Part 10 §4.6 and Part 12).

Two kinds of signed objects matter at a border lane, and both are a ``ContentInfo`` wrapping
``SignedData`` with one signer:

- EF.SOD: the Document Signer signs an ``LDSSecurityObject`` (:mod:`.sod`);
- a CSCA master list: a Master List Signer signs a ``CscaMasterList`` (:mod:`.passive_auth`).

This module parses them (:func:`parse_signed_data`), finds the signer's certificate among the
embedded ones (:func:`signer_certificate`), checks the signer's signature
(:func:`verify_signer`) and builds them for tests and virtual chips (:func:`sign`). Parsing and
certificates use ``asn1crypto``, which reads the odd encodings real PKIs produce; the
cryptography itself is ``cryptography``'s.

:func:`verify_signature` is the one place that maps a signature algorithm identifier to a
verification: RSA PKCS#1 v1.5 (with a hash-specific OID, or ``rsaEncryption`` plus the digest
algorithm, as many SODs write it), RSASSA-PSS with its parameters, ECDSA (X9.62 DER signatures,
also when the algorithm is given as ``id-ecPublicKey``, and BSI TR-03111 "plain" ``r ‖ s``
signatures), with SHA-1 (old passports), SHA-224, SHA-256, SHA-384 and SHA-512. EC keys may
name their curve or spell out its parameters (explicit ``ECParameters``, common in CSCA and DS
certificates): NIST curves are loaded by ``cryptography`` either way, Brainpool P-256/384/512
are recognised here when every parameter matches RFC 5639.

**The boundary.** Neither library has one exception type for "these bytes are malformed":
asn1crypto parses lazily, on first access to a field, and raises ``ValueError``, ``TypeError``,
``KeyError``, ``IndexError`` (a zero-length BIT STRING), ``OverflowError``, ``RecursionError``...
from wherever the access happens; ``cryptography`` adds its own. What a chip or a trust file
holds must fail with this module's errors only, so every read of outside bytes through them runs
inside :func:`reading`, and every certificate is read to the end when it is loaded
(:func:`load_certificate`), so that what passive authentication asks of it later (names, key
usage, key identifiers) cannot fail half-way through a verification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from asn1crypto import algos, cms, core, keys, x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509 import Certificate as CryptographyCertificate

__all__ = [
    "CmsError",
    "SignatureError",
    "SignedContent",
    "UnsupportedSignatureError",
    "digest",
    "hash_algorithm_name",
    "load_certificate",
    "parse_signed_data",
    "reading",
    "sign",
    "signer_certificate",
    "verify_signature",
    "verify_signer",
]

_RSA_PKCS1 = "1.2.840.113549.1.1.1"
_RSA_PSS = "1.2.840.113549.1.1.10"
_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_RSA_WITH = {
    "1.2.840.113549.1.1.5": "sha1",
    "1.2.840.113549.1.1.14": "sha224",
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}
_ECDSA_WITH = {
    "1.2.840.10045.4.1": "sha1",
    "1.2.840.10045.4.3.1": "sha224",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
}
# BSI TR-03111 ecdsa-plain-signatures: the signature is r ‖ s, each the size of the order.
_ECDSA_PLAIN_WITH = {
    "0.4.0.127.0.7.1.1.4.1.1": "sha1",
    "0.4.0.127.0.7.1.1.4.1.2": "sha224",
    "0.4.0.127.0.7.1.1.4.1.3": "sha256",
    "0.4.0.127.0.7.1.1.4.1.4": "sha384",
    "0.4.0.127.0.7.1.1.4.1.5": "sha512",
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_DIGEST_OIDS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_SIGNED_DATA = "1.2.840.113549.1.7.2"


class CmsError(ValueError):
    """Bytes that are not the CMS SignedData expected (structure, not signature)."""


class SignatureError(Exception):
    """A signature that does not verify, or that cannot be checked (see the subclass)."""


class UnsupportedSignatureError(SignatureError):
    """A signature this module cannot check: unknown algorithm, hash or key encoding.

    Not evidence against the document: report it as an error, not as a failed check.
    """


def _one_line(error: BaseException, limit: int = 200) -> str:
    """``error`` as one short line: the libraries' messages may span lines or quote bytes."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def reading(error: type[Exception], what: str) -> Iterator[None]:
    """Turn anything raised inside the block, other than ``error`` itself, into ``error``.

    For code that reads outside bytes through asn1crypto or cryptography (see the module
    docstring): whatever they raise becomes ``error("<what>: <reason>")``, one line. Our own
    errors raised inside (a :class:`CmsError` under a ``SodError`` block, a ``TlvError``) become
    ``error`` too, with their own message, so a caller sees exactly the one type it documents::

        with reading(SodError, "EF.SOD"):
            ...
    """
    try:
        yield
    except error:
        raise
    except Exception as exc:  # the libraries' failure modes are open-ended; see above
        ours = type(exc).__module__.startswith("edge.")  # its message says it all
        reason = _one_line(exc) if ours else f"{type(exc).__name__}: {_one_line(exc)}"
        raise error(f"{what}: {reason}") from exc


def _read_whole(certificate: x509.Certificate) -> None:
    """Parse every part of ``certificate`` that verification reads, now rather than later."""
    certificate.native  # noqa: B018 - asn1crypto parses on first access
    certificate.subject.hashable  # noqa: B018 - names are compared in their RFC 5280 form
    certificate.issuer.hashable  # noqa: B018
    certificate.key_usage_value  # noqa: B018
    certificate.basic_constraints_value  # noqa: B018
    certificate.key_identifier  # noqa: B018
    certificate.authority_key_identifier  # noqa: B018
    certificate.public_key.dump()
    certificate.sha256  # noqa: B018


def hash_algorithm_name(algorithm: algos.DigestAlgorithm) -> str:
    """``sha1``, ``sha224``, ``sha256``, ``sha384`` or ``sha512``; :class:`CmsError` otherwise."""
    oid = algorithm["algorithm"].dotted
    try:
        return _DIGEST_OIDS[oid]
    except KeyError:
        raise CmsError(f"unsupported hash algorithm {oid}") from None


def digest(name: str, data: bytes) -> bytes:
    """The hash of ``data`` with the algorithm named as :func:`hash_algorithm_name` names it."""
    if name not in _HASHES:
        raise CmsError(f"unsupported hash algorithm {name}")
    return hashlib.new(name, data).digest()


def load_certificate(data: bytes | x509.Certificate | CryptographyCertificate) -> x509.Certificate:
    """An ``asn1crypto`` certificate from DER bytes, a ``cryptography`` one, or itself.

    Read to the end now (:class:`CmsError` if any part is malformed), so that nothing about it
    can fail later.
    """
    with reading(CmsError, "not a DER X.509 certificate"):
        if isinstance(data, CryptographyCertificate):
            data = data.public_bytes(serialization.Encoding.DER)
        if isinstance(data, x509.Certificate):
            certificate = data
        else:
            certificate = x509.Certificate.load(bytes(data), strict=True)
        _read_whole(certificate)
    return certificate


@dataclass(frozen=True)
class SignedContent:
    """A parsed one-signer SignedData: the content, its type, the signer, the certificates."""

    content_type: str
    content: bytes
    signer_info: cms.SignerInfo
    certificates: tuple[x509.Certificate, ...]

    @property
    def digest_algorithm(self) -> str:
        return hash_algorithm_name(self.signer_info["digest_algorithm"])


def parse_signed_data(data: bytes, content_type: str | None = None) -> SignedContent:
    """Parse a DER ``ContentInfo`` holding ``SignedData`` with exactly one signer.

    ``content_type`` (a dotted OID) is checked against the encapsulated content type when
    given. Raises :class:`CmsError` for anything malformed, the embedded certificates included;
    signatures are not checked here.
    """
    with reading(CmsError, "malformed CMS SignedData"):
        info = cms.ContentInfo.load(bytes(data), strict=True)
        if info["content_type"].dotted != _SIGNED_DATA:
            raise CmsError(f"content type {info['content_type'].dotted} is not signedData")
        signed = info["content"]
        encapsulated = signed["encap_content_info"]
        found_type = encapsulated["content_type"].dotted
        if content_type is not None and found_type != content_type:
            raise CmsError(f"the signed content is {found_type}, expected {content_type}")
        content = encapsulated["content"]
        if isinstance(content, core.Void):
            raise CmsError("the SignedData has no encapsulated content")
        signers = signed["signer_infos"]
        if len(signers) != 1:
            raise CmsError(f"expected one signer, found {len(signers)}")
        certificates = []
        for choice in signed["certificates"] or []:
            if choice.name == "certificate":
                certificates.append(choice.chosen)
        signer = signers[0]
        signer.native  # noqa: B018 - parse everything now, not on first use
        signer["sid"].chosen.native  # noqa: B018
        for number, certificate in enumerate(certificates, start=1):
            with reading(CmsError, f"embedded certificate {number} is malformed"):
                _read_whole(certificate)
        return SignedContent(found_type, bytes(content.contents), signer, tuple(certificates))


def signer_certificate(signed: SignedContent) -> x509.Certificate | None:
    """The embedded certificate the signer identifier points to, or None.

    :class:`CmsError` when the identifier cannot be compared (a malformed name, say).
    """
    with reading(CmsError, "the signer identifier"):
        sid = signed.signer_info["sid"]
        for certificate in signed.certificates:
            if sid.name == "issuer_and_serial_number":
                wanted = sid.chosen
                if (
                    certificate.serial_number == wanted["serial_number"].native
                    and certificate.issuer == wanted["issuer"]
                ):
                    return certificate
            elif (
                sid.name == "subject_key_identifier"
                and certificate.key_identifier == sid.chosen.native
            ):
                return certificate
    return None


def _signed_bytes(signer: cms.SignerInfo) -> bytes | None:
    """What the signature covers: the DER SET of signed attributes, or the content itself."""
    attributes = signer["signed_attrs"]
    if isinstance(attributes, core.Void) or not len(attributes):
        return None
    raw = attributes.dump()
    # Received as [0] IMPLICIT; the signature is over the same contents tagged SET OF (31).
    return b"\x31" + raw[1:]


def _attribute(signer: cms.SignerInfo, oid: str) -> list[object]:
    for attribute in signer["signed_attrs"]:
        if attribute["type"].dotted == oid:
            return list(attribute["values"])
    return []


def verify_signer(signed: SignedContent, certificate: x509.Certificate) -> str:
    """Check the signer's signature over the content with ``certificate``'s public key.

    When signed attributes are present (Doc 9303 requires them), the ``contentType``
    attribute must equal the encapsulated content type and the ``messageDigest`` attribute the
    hash of the content. Returns a one-line description of what was verified; raises
    :class:`SignatureError` otherwise.
    """
    signer = signed.signer_info
    try:
        digest_name = signed.digest_algorithm
    except CmsError as error:
        raise UnsupportedSignatureError(str(error)) from None
    with reading(SignatureError, "the signature cannot be checked"):
        to_verify = _signed_bytes(signer)
        if to_verify is None:
            to_verify = signed.content
            what = "content (no signed attributes)"
        else:
            content_types = _attribute(signer, "1.2.840.113549.1.9.3")
            if len(content_types) != 1 or content_types[0].dotted != signed.content_type:  # type: ignore[attr-defined]
                raise SignatureError("the contentType attribute does not match the content")
            digests = _attribute(signer, "1.2.840.113549.1.9.4")
            if len(digests) != 1:
                raise SignatureError("the messageDigest attribute is missing")
            if digests[0].native != digest(digest_name, signed.content):  # type: ignore[attr-defined]
                raise SignatureError(f"messageDigest is not the {digest_name} of the content")
            what = f"signed attributes (messageDigest {digest_name} matches)"
        signature = signer["signature"].native
        algorithm = verify_signature(
            certificate.public_key,
            signer["signature_algorithm"],
            signature,
            to_verify,
            digest_name=digest_name,
        )
    return f"{algorithm} over the {what}"


# Brainpool curves (RFC 5639) as p, a, b, order, x of the generator: many CSCA and DS
# certificates (Germany's among them) spell them out as explicit ECParameters, which
# cryptography loads only for the NIST curves.
_EXPLICIT_CURVES: dict[tuple[int, int, int, int, int], ec.EllipticCurve] = {
    (
        0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377,
        0x7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9,
        0x26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6,
        0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
        0x8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262,
    ): ec.BrainpoolP256R1(),
    (
        0x8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B412B1DA197FB71123ACD3A729901D1A71874700133107EC53,
        0x7BC382C63D8C150C3C72080ACE05AFA0C2BEA28E4FB22787139165EFBA91F90F8AA5814A503AD4EB04A8C7DD22CE2826,
        0x04A8C7DD22CE28268B39B55416F0447C2FB77DE107DCD2A62E880EA53EEB62D57CB4390295DBC9943AB78696FA504C11,
        0x8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B31F166E6CAC0425A7CF3AB6AF6B7FC3103B883202E9046565,
        0x1D1C64F068CF45FFA2A63A81B7C13F6B8847A3E77EF14FE3DB7FCAFE0CBD10E8E826E03436D646AAEF87B2E247D4AF1E,
    ): ec.BrainpoolP384R1(),
    (
        0xAADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA703308717D4D9B009BC66842AECDA12AE6A380E62881FF2F2D82C68528AA6056583A48F3,
        0x7830A3318B603B89E2327145AC234CC594CBDD8D3DF91610A83441CAEA9863BC2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A72BF2C7B9E7C1AC4D77FC94CA,
        0x3DF91610A83441CAEA9863BC2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A72BF2C7B9E7C1AC4D77FC94CADC083E67984050B75EBAE5DD2809BD638016F723,
        0xAADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330870553E5C414CA92619418661197FAC10471DB1D381085DDADDB58796829CA90069,
        0x81AEE4BDD82ED9645A21322E9C4C6A9385ED9F70B5D916C1B43B62EEF4D0098EFF3B1F78E2D0D48D50D1687B93B97D5F7C6D5047406A5E688B352209BCB9F822,
    ): ec.BrainpoolP512R1(),
}


def _explicit_curve_key(info: keys.PublicKeyInfo) -> ec.EllipticCurvePublicKey | None:
    """An EC key whose explicit domain parameters are exactly a known named curve's."""
    algorithm = info["algorithm"]
    if algorithm["algorithm"].native != "ec" or algorithm["parameters"].name != "specified":
        return None
    domain = algorithm["parameters"].chosen
    if domain["field_id"]["field_type"].native != "prime_field":
        return None
    prime = domain["field_id"]["parameters"].native
    size = (prime.bit_length() + 7) // 8
    generator = domain["base"].native
    if len(generator) != 1 + 2 * size or generator[0] != 0x04:
        return None
    fingerprint = (
        prime,
        int.from_bytes(domain["curve"]["a"].native, "big"),
        int.from_bytes(domain["curve"]["b"].native, "big"),
        domain["order"].native,
        int.from_bytes(generator[1 : 1 + size], "big"),
    )
    curve = _EXPLICIT_CURVES.get(fingerprint)
    if curve is None:
        return None
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, info["public_key"].native)


def _public_key(info: keys.PublicKeyInfo) -> object:
    try:
        return serialization.load_der_public_key(info.dump())
    except (ValueError, UnsupportedAlgorithm) as error:
        # EC keys with explicit domain parameters load only for NIST curves
        try:
            key = _explicit_curve_key(info)
        except (ValueError, TypeError, KeyError):
            key = None
        if key is None:
            raise UnsupportedSignatureError(f"unsupported public key: {error}") from None
        return key


def verify_signature(
    public_key: keys.PublicKeyInfo,
    algorithm: algos.SignedDigestAlgorithm,
    signature: bytes,
    data: bytes,
    *,
    digest_name: str | None = None,
) -> str:
    """Verify ``signature`` over ``data``; return the algorithm's name, or raise.

    ``digest_name`` is the hash to use when the algorithm identifier does not name one
    (``rsaEncryption``, ``id-ecPublicKey``): a SignerInfo's digest algorithm. Raises
    :class:`SignatureError` when the signature is wrong or the algorithm unsupported, and
    nothing else, however malformed the key, the identifier or the signature.
    """
    with reading(SignatureError, "the signature cannot be checked"):
        return _verify_signature(public_key, algorithm, signature, data, digest_name)


def _verify_signature(
    public_key: keys.PublicKeyInfo,
    algorithm: algos.SignedDigestAlgorithm,
    signature: bytes,
    data: bytes,
    digest_name: str | None,
) -> str:
    oid = algorithm["algorithm"].dotted
    key = _public_key(public_key)
    try:
        if oid in _RSA_WITH or oid == _RSA_PKCS1:
            name = _RSA_WITH.get(oid) or digest_name
            _require_key(key, rsa.RSAPublicKey, oid)
            hash_ = _hash(name, oid)
            key.verify(signature, data, padding.PKCS1v15(), hash_)  # type: ignore[attr-defined]
            return f"RSA PKCS#1 v1.5 with {name.upper()}"
        if oid == _RSA_PSS:
            _require_key(key, rsa.RSAPublicKey, oid)
            params = algorithm["parameters"]
            name = hash_algorithm_name(params["hash_algorithm"])
            mgf = params["mask_gen_algorithm"]
            if mgf["algorithm"].native != "mgf1":
                raise UnsupportedSignatureError(
                    f"RSASSA-PSS with mask generation {mgf['algorithm'].dotted}"
                )
            mgf_name = hash_algorithm_name(mgf["parameters"])
            if params["trailer_field"].native not in ("trailer_field_bc", 1):
                raise UnsupportedSignatureError("RSASSA-PSS with an unsupported trailer field")
            pss = padding.PSS(
                mgf=padding.MGF1(_hash(mgf_name, oid)), salt_length=params["salt_length"].native
            )
            key.verify(signature, data, pss, _hash(name, oid))  # type: ignore[attr-defined]
            return f"RSASSA-PSS with {name.upper()}"
        if oid in _ECDSA_WITH or oid == _EC_PUBLIC_KEY:
            name = _ECDSA_WITH.get(oid) or digest_name
            _require_key(key, ec.EllipticCurvePublicKey, oid)
            key.verify(signature, data, ec.ECDSA(_hash(name, oid)))  # type: ignore[attr-defined]
            return f"ECDSA with {name.upper()}"
        if oid in _ECDSA_PLAIN_WITH:
            name = _ECDSA_PLAIN_WITH[oid]
            _require_key(key, ec.EllipticCurvePublicKey, oid)
            if not signature or len(signature) % 2:
                raise SignatureError("a plain ECDSA signature is r ‖ s of equal lengths")
            half = len(signature) // 2
            der = utils.encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
            key.verify(der, data, ec.ECDSA(_hash(name, oid)))  # type: ignore[attr-defined]
            return f"ECDSA (plain) with {name.upper()}"
    except InvalidSignature:
        raise SignatureError("the signature does not verify") from None
    except CmsError as error:
        raise UnsupportedSignatureError(str(error)) from None
    except (ValueError, KeyError, TypeError) as error:
        raise SignatureError(f"the signature cannot be checked: {error}") from None
    raise UnsupportedSignatureError(f"unsupported signature algorithm {oid}")


def _require_key(key: object, kind: type, oid: str) -> None:
    if not isinstance(key, kind):
        raise SignatureError(f"signature algorithm {oid} does not fit a {type(key).__name__}")


def _hash(name: str | None, oid: str) -> hashes.HashAlgorithm:
    if name is None or name not in _HASHES:
        raise UnsupportedSignatureError(f"no usable hash algorithm for {oid}")
    return _HASHES[name]()


# -- building -----------------------------------------------------------------------------

_SIGN_OIDS = {
    ("rsa", "sha1"): "1.2.840.113549.1.1.5",
    ("rsa", "sha224"): "1.2.840.113549.1.1.14",
    ("rsa", "sha256"): "1.2.840.113549.1.1.11",
    ("rsa", "sha384"): "1.2.840.113549.1.1.12",
    ("rsa", "sha512"): "1.2.840.113549.1.1.13",
    ("ecdsa", "sha1"): "1.2.840.10045.4.1",
    ("ecdsa", "sha224"): "1.2.840.10045.4.3.1",
    ("ecdsa", "sha256"): "1.2.840.10045.4.3.2",
    ("ecdsa", "sha384"): "1.2.840.10045.4.3.3",
    ("ecdsa", "sha512"): "1.2.840.10045.4.3.4",
}


def _sign_bytes(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, data: bytes, digest_name: str, pss: bool
) -> tuple[bytes, algos.SignedDigestAlgorithm]:
    hash_ = _hash(digest_name, digest_name)
    if isinstance(key, rsa.RSAPrivateKey):
        if pss:
            salt = hash_.digest_size
            signature = key.sign(
                data, padding.PSS(mgf=padding.MGF1(hash_), salt_length=salt), hash_
            )
            params = algos.RSASSAPSSParams(
                {
                    "hash_algorithm": {"algorithm": digest_name},
                    "mask_gen_algorithm": {
                        "algorithm": "mgf1",
                        "parameters": {"algorithm": digest_name},
                    },
                    "salt_length": salt,
                }
            )
            return signature, algos.SignedDigestAlgorithm(
                {"algorithm": "rsassa_pss", "parameters": params}
            )
        signature = key.sign(data, padding.PKCS1v15(), hash_)
        return signature, algos.SignedDigestAlgorithm(
            {"algorithm": _SIGN_OIDS[("rsa", digest_name)]}
        )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if pss:
            raise ValueError("PSS is an RSA padding")
        signature = key.sign(data, ec.ECDSA(hash_))
        return signature, algos.SignedDigestAlgorithm(
            {"algorithm": _SIGN_OIDS[("ecdsa", digest_name)]}
        )
    raise TypeError(f"signing needs an RSA or EC private key, not {type(key).__name__}")


def sign(
    content_type: str,
    content: bytes,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate | CryptographyCertificate | bytes,
    *,
    digest_name: str = "sha256",
    pss: bool = False,
    extra_certificates: Sequence[x509.Certificate | CryptographyCertificate | bytes] = (),
) -> bytes:
    """A DER ``ContentInfo``/``SignedData`` over ``content`` (of type ``content_type``).

    Signed attributes are ``contentType`` and ``messageDigest``; the signer is identified by
    issuer and serial number and its certificate is embedded (with ``extra_certificates``).
    ``pss`` selects RSASSA-PSS for RSA keys (salt length = hash length). For tests and virtual
    chips: production documents are signed elsewhere.
    """
    signer_cert = load_certificate(certificate)
    attributes = cms.CMSAttributes(
        [
            {"type": "content_type", "values": [cms.ContentType(content_type)]},
            {"type": "message_digest", "values": [digest(digest_name, content)]},
        ]
    )
    signature, algorithm = _sign_bytes(key, attributes.dump(), digest_name, pss)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": signer_cert.issuer,
                        "serial_number": signer_cert.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": digest_name},
            "signed_attrs": attributes,
            "signature_algorithm": algorithm,
            "signature": signature,
        }
    )
    certificates = [signer_cert, *(load_certificate(c) for c in extra_certificates)]
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": digest_name}],
            "encap_content_info": {
                "content_type": cms.ContentType(content_type),
                "content": core.ParsableOctetString(content),
            },
            "certificates": certificates,
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
