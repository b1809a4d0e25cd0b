"""A small X.509 PKI for kiosks, the console and the broker.

One certificate authority issues a TLS certificate per kiosk (common name = device id, which the
broker uses as the MQTT username), one for the console and one for the broker. Keys are ECDSA
P-256: small, fast to verify on a Raspberry Pi, and accepted by every TLS stack we use.

The layout on disk is plain PEM files that Mosquitto, paho-mqtt and ``openssl`` read directly::

    <dir>/ca.crt  ca.key                 the authority (keep ca.key offline in production)
    <dir>/issued/<name>.crt  <name>.key  one pair per kiosk, console or broker

Typical use::

    ca = CertificateAuthority.create(Path("pki"), "Borderlane Dev CA")
    kiosk = ca.issue_client("kiosk-bz-01")
    broker = ca.issue_server("broker", hosts=["localhost", "127.0.0.1"])

Private keys are written with mode 0600 and never logged.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mqtt_schemas.topics import check_device_id

DEFAULT_DAYS = 825
"""Leaf certificate lifetime; the CA lives ten times as long."""


class PkiError(Exception):
    """The PKI directory is missing, incomplete or unreadable."""


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key on disk."""

    name: str
    cert_path: Path
    key_path: Path


class CertificateAuthority:
    """An issuing authority whose certificate and key live in one directory."""

    def __init__(
        self, directory: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
    ):
        self.directory = directory
        self.certificate = certificate
        self._key = key

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @classmethod
    def create(
        cls, directory: Path, common_name: str, days: int = DEFAULT_DAYS * 10
    ) -> CertificateAuthority:
        """Create a new authority in *directory*; refuse to overwrite an existing one."""
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / "ca.key").exists():
            raise PkiError(f"{directory / 'ca.key'} already exists; refusing to replace a CA")
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(directory / "ca.key", key)
        (directory / "ca.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(directory, certificate, key)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """Open the authority kept in *directory*."""
        try:
            certificate = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
            key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
        except FileNotFoundError as exc:
            raise PkiError(f"no CA in {directory}: {exc.filename} is missing") from None
        except ValueError as exc:
            raise PkiError(f"CA files in {directory} are unreadable: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{directory / 'ca.key'} is not an EC private key")
        return cls(directory, certificate, key)

    @classmethod
    def open_or_create(cls, directory: Path, common_name: str) -> CertificateAuthority:
        """Open the authority in *directory*, creating it the first time."""
        if (directory / "ca.key").exists():
            return cls.load(directory)
        return cls.create(directory, common_name)

    def issue_client(self, device_id: str, days: int = DEFAULT_DAYS) -> Identity:
        """Issue a TLS client certificate whose common name is *device_id*.

        The broker maps the common name to the MQTT username, so the id must also be safe in
        topics; an id that is not is refused here, long before it reaches a broker.
        """
        check_device_id(device_id)
        return self._issue(device_id, ExtendedKeyUsageOID.CLIENT_AUTH, [], days)

    def issue_server(self, name: str, hosts: list[str], days: int = DEFAULT_DAYS) -> Identity:
        """Issue a TLS server certificate valid for *hosts* (DNS names or IP addresses)."""
        if not hosts:
            raise PkiError("a server certificate needs at least one host name or address")
        return self._issue(name, ExtendedKeyUsageOID.SERVER_AUTH, hosts, days)

    def identity(self, name: str) -> Identity:
        """The identity issued earlier under *name*."""
        issued = self.directory / "issued"
        found = Identity(name, issued / f"{name}.crt", issued / f"{name}.key")
        if not found.cert_path.exists() or not found.key_path.exists():
            raise PkiError(f"no certificate issued for {name!r} in {issued}")
        return found

    def _issue(
        self, name: str, usage: x509.ObjectIdentifier, hosts: list[str], days: int
    ) -> Identity:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(host) for host in hosts]), critical=False
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        issued = self.directory / "issued"
        issued.mkdir(exist_ok=True)
        identity = Identity(name, issued / f"{name}.crt", issued / f"{name}.key")
        _write_key(identity.key_path, key)
        identity.cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return identity


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created 0600 from the start: a key must never exist on disk world-readable, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
