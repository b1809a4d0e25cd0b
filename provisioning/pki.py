"""A small X.509 PKI for kiosks, the console and the broker: two authorities, revocation.

Two certificate authorities, so that the broker can tell a kiosk from a service by who issued
its certificate, not by its name:

* the **device CA** issues one TLS client certificate per kiosk (common name = device id, which
  the broker uses as the MQTT username); it refuses the names of services
  (:func:`mqtt_schemas.broker_access.check_new_device_id`), refuses to issue a device twice
  unless told to replace it (which revokes the old certificate), and keeps a certificate
  revocation list (``crl.pem``) that the broker's device listener reads;
* the **service CA** issues the console's client certificates and the broker's server
  certificate. Kiosks trust it to recognise the broker.

Keys are ECDSA P-256: small, fast to verify on a Raspberry Pi, and accepted by every TLS stack
we use. The layout on disk is plain PEM files that Mosquitto, paho-mqtt and ``openssl`` read::

    <dir>/devices/ca.crt  ca.key  crl.pem  revoked.json   the device CA
    <dir>/devices/issued/<device>.crt  <device>.key        one pair per kiosk
    <dir>/services/ca.crt  ca.key                          the service CA
    <dir>/services/issued/<name>.crt  <name>.key           console, broker

Typical use::

    pki = Pki.create(Path("pki"), "Borderlane Dev")
    kiosk = pki.devices.issue_client("kiosk-bz-01")
    console = pki.services.issue_service_client("console")
    broker = pki.services.issue_server("broker", hosts=["localhost", "127.0.0.1"])
    pki.devices.revoke("kiosk-bz-01", "stolen")        # crl.pem rewritten

Private keys are written with mode 0600 and never logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mqtt_schemas.broker_access import check_new_device_id
from mqtt_schemas.errors import TopicError

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
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
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

    def issue_client(
        self, device_id: str, days: int = DEFAULT_DAYS, *, replace: bool = False
    ) -> Identity:
        """Issue a kiosk's TLS client certificate whose common name is *device_id*.

        The broker maps the common name to the MQTT username, so the id must also be safe in
        topics and must not be a service's name; an id that is not is refused here
        (:class:`PkiError`), long before it reaches a broker. A device issued before is refused
        unless *replace*, which revokes the certificate it had.
        """
        try:
            check_new_device_id(device_id)
        except TopicError as exc:
            raise PkiError(str(exc)) from None
        if (self.directory / "issued" / f"{device_id}.crt").exists():
            if not replace:
                raise PkiError(
                    f"device {device_id!r} already has a certificate; replacing it revokes the "
                    "old one (--replace)"
                )
            self.revoke(device_id, "superseded")
        return self._issue(device_id, ExtendedKeyUsageOID.CLIENT_AUTH, [], days)

    def sign_request(
        self, request: x509.CertificateSigningRequest, device_id: str, days: int
    ) -> x509.Certificate:
        """Sign a kiosk's certificate for the public key of *request* (whose key never leaves
        the kiosk), named *device_id*; the caller has checked the request. Kept in issued/ (no
        key beside it) so that it can be revoked by name."""
        certificate = self._build(
            device_id, request.public_key(), ExtendedKeyUsageOID.CLIENT_AUTH, [], days
        )
        issued = self.directory / "issued"
        issued.mkdir(mode=0o700, exist_ok=True)
        (issued / f"{device_id}.crt").write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
        )
        return certificate

    def issue_service_client(self, name: str, days: int = DEFAULT_DAYS) -> Identity:
        """Issue a service's TLS client certificate (the console): from the service CA only."""
        if not name or "/" in name or name.startswith("."):
            raise PkiError(f"service name {name!r} is not a plain file name")
        return self._issue(name, ExtendedKeyUsageOID.CLIENT_AUTH, [], days)

    # -- revocation ---------------------------------------------------------------------------

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"

    def revoked(self) -> dict[str, dict[str, str | int]]:
        """Revoked certificates by serial number (decimal): ``{name, reason, at}``."""
        try:
            return json.loads((self.directory / "revoked.json").read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise PkiError(f"{self.directory / 'revoked.json'} is unreadable: {exc}") from None

    def revoke(self, name: str, reason: str) -> int:
        """Revoke the certificate issued to *name* (its files are kept, marked revoked) and
        rewrite the CRL; return its serial number. Revoking twice is harmless."""
        try:
            certificate = x509.load_pem_x509_certificate(
                (self.directory / "issued" / f"{name}.crt").read_bytes()
            )
        except FileNotFoundError:
            raise PkiError(f"no certificate issued for {name!r}") from None
        serial = certificate.serial_number
        # Several processes revoke (the enrollment server replacing a device, the web console,
        # the CLI): one at a time, or one's read-modify-write would lose another's revocation.
        with _locked(self.directory / "revoked.lock"):
            revoked = self.revoked()
            entry = {"name": name, "reason": reason, "at": _now().isoformat()}
            revoked.setdefault(str(serial), entry)
            _write_private(self.directory / "revoked.json", json.dumps(revoked, indent=1).encode())
            self.write_crl(revoked)
        return serial

    def write_crl(self, revoked: dict[str, dict[str, str | int]] | None = None) -> Path:
        """Sign and write ``crl.pem`` listing every revoked certificate (valid 30 days; it is
        rewritten at every revocation and by ``pki crl``)."""
        revoked = self.revoked() if revoked is None else revoked
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=30))
        )
        for serial, entry in revoked.items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial))
                .revocation_date(dt.datetime.fromisoformat(str(entry["at"])))
                .build()
            )
        crl = builder.sign(self._key, hashes.SHA256())
        temporary = self.crl_path.with_suffix(".tmp")
        temporary.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        os.replace(temporary, self.crl_path)  # the broker never reads half a CRL
        return self.crl_path

    def issue_server(self, name: str, hosts: list[str], days: int = DEFAULT_DAYS) -> Identity:
        """Issue a TLS server certificate valid for *hosts* (DNS names or IP addresses)."""
        if not hosts:
            raise PkiError("a server certificate needs at least one host name or address")
        return self._issue(name, ExtendedKeyUsageOID.SERVER_AUTH, hosts, days)

    def identity(self, name: str) -> Identity:
        """The identity issued earlier under *name*."""
        return public_identity(self.directory, name)

    def _issue(
        self, name: str, usage: x509.ObjectIdentifier, hosts: list[str], days: int
    ) -> Identity:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self._build(name, key.public_key(), usage, hosts, days)
        issued = self.directory / "issued"
        issued.mkdir(mode=0o700, exist_ok=True)
        identity = Identity(name, issued / f"{name}.crt", issued / f"{name}.key")
        _write_key(identity.key_path, key)
        identity.cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return identity

    def _build(
        self,
        name: str,
        public_key: object,
        usage: x509.ObjectIdentifier,
        hosts: list[str],
        days: int,
    ) -> x509.Certificate:
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)  # type: ignore[arg-type]
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
        return builder.sign(self._key, hashes.SHA256())


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


class Pki:
    """The two authorities of one deployment: ``devices`` (kiosks) and ``services``."""

    def __init__(
        self, directory: Path, devices: CertificateAuthority, services: CertificateAuthority
    ):
        self.directory = directory
        self.devices = devices
        self.services = services

    @classmethod
    def create(cls, directory: Path, name: str = "Borderlane") -> Pki:
        """Create both authorities in *directory* (refusing to replace either)."""
        devices = CertificateAuthority.create(directory / "devices", f"{name} Device CA")
        devices.write_crl()
        services = CertificateAuthority.create(directory / "services", f"{name} Service CA")
        return cls(directory, devices, services)

    @classmethod
    def load(cls, directory: Path) -> Pki:
        if (directory / "ca.key").exists() and not (directory / "devices").exists():
            raise PkiError(
                f"{directory} holds one CA for everything (an older layout): make a new PKI with "
                "'pki init' and issue kiosks and services again"
            )
        devices = CertificateAuthority.load(directory / "devices")
        if not devices.crl_path.exists():
            devices.write_crl()
        return cls(directory, devices, CertificateAuthority.load(directory / "services"))

    @classmethod
    def open_or_create(cls, directory: Path, name: str = "Borderlane") -> Pki:
        if (directory / "devices" / "ca.key").exists():
            return cls.load(directory)
        return cls.create(directory, name)


def public_identity(directory: Path, name: str) -> Identity:
    """The identity issued under *name* by the authority kept in *directory*, found without
    opening its private key (the broker's configuration is written where the CA key is not)."""
    issued = directory / "issued"
    found = Identity(name, issued / f"{name}.crt", issued / f"{name}.key")
    if not found.cert_path.exists() or not found.key_path.exists():
        raise PkiError(f"no certificate issued for {name!r} in {issued}")
    return found


def current_devices(directory: Path) -> tuple[str, ...]:
    """Devices the device CA in *directory* has issued and not revoked (by certificate)."""
    try:
        revoked = {int(s) for s in json.loads((directory / "revoked.json").read_text())}
    except FileNotFoundError:
        revoked = set()
    except ValueError as exc:
        raise PkiError(f"{directory / 'revoked.json'} is unreadable: {exc}") from None
    devices = []
    for path in sorted((directory / "issued").glob("*.crt")):
        try:
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError as exc:
            raise PkiError(f"{path} is unreadable: {exc}") from None
        if certificate.serial_number not in revoked:
            devices.append(path.stem)
    return tuple(devices)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on *path* (created 0600) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


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
