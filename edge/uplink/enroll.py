"""A kiosk's first boot: enroll with the console and get what the uplink needs to connect.

::

    result = enroll("https://console.example.bz:8443", token, Path("/etc/borderlane"),
                    ca_file=Path("/etc/borderlane/service-ca.crt"))
    result.device_id, result.broker_host, result.broker_port

The private key is made here and written 0600 before anything is sent; only a certificate
signing request naming the device (taken from the token, ``<device id>:<secret>``) leaves the
kiosk, over HTTPS checked against *ca_file* (the deployment's service CA, which comes with the
image). Into *state_dir* go, each written whole (temporary file, then rename)::

    kiosk.key        the private key (0600)          kiosk.crt     the kiosk's certificate
    ca.crt           the CA the broker is known by   device-ca.crt the CA that issued kiosk.crt
    watchlist-keys/  <key id>.pub.pem                enrollment.json  device id, post, broker

Every failure raises :class:`EnrollError` naming the step (``token``, ``connect``, ``answer``,
or the console's own: ``csr``, ``token``, ``device``, ``clock``, ``replace``, ``broker``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mqtt_schemas.identifiers import DEVICE_ID, KEY_ID
from mqtt_schemas.validation import JsonError, parse_json

from .errors import UplinkError

__all__ = [
    "EnrollError",
    "Enrollment",
    "check_with_broker",
    "enroll",
    "next_of",
    "promote",
    "renew",
]

MAX_ANSWER = 256 * 1024


class EnrollError(UplinkError):
    """Enrollment refused or impossible; ``step`` names what failed."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass(frozen=True)
class Enrollment:
    device_id: str
    post: str
    broker_host: str
    broker_port: int
    state_dir: Path


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def device_of(token: str) -> str:
    """The device id a token is for (``<device id>:<secret>``)."""
    device, _, secret = token.partition(":")
    if not secret or not DEVICE_ID.fullmatch(device):
        raise EnrollError("token", "not an enrollment token (DEVICE-ID:SECRET)")
    return device


def _request(
    url: str,
    body: bytes,
    ca_file: Path,
    timeout: float,
    route: str = "/enroll",
    identity: tuple[Path, Path] | None = None,
) -> tuple[int, bytes]:
    if not url.startswith("https://"):
        raise EnrollError("connect", "the console's address must be https://")
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
        if identity is not None:
            context.load_cert_chain(*identity)
    except (OSError, ssl.SSLError) as exc:
        raise EnrollError("connect", f"cannot read the TLS files: {exc}") from None
    request = urllib.request.Request(
        url.rstrip("/") + route,
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(MAX_ANSWER + 1)
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EnrollError("connect", f"cannot reach the console at {url}: {reason}") from None


def _text(answer: dict, key: str) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise EnrollError("answer", f"the console's answer has no {key}")
    return value


def _new_key_and_request(device: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _answer(status: int, raw: bytes) -> dict:
    """The console's JSON answer, or :class:`EnrollError` with the console's step and reason."""
    if len(raw) > MAX_ANSWER:
        raise EnrollError("answer", "the console's answer is too large")
    try:
        answer = parse_json(raw)
    except JsonError as exc:
        raise EnrollError("answer", f"the console's answer is not JSON ({exc})") from None
    if not isinstance(answer, dict):
        raise EnrollError("answer", "the console's answer is not a JSON object")
    if status != 200:
        error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        step = error.get("step") if isinstance(error.get("step"), str) else "answer"
        reason = error.get("reason") if isinstance(error.get("reason"), str) else f"HTTP {status}"
        raise EnrollError(step[:32], reason[:300])
    return answer


def _certificate_for(
    answer: dict, device: str, key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, bytes]:
    pem = _text(answer, "certificate").encode("ascii", "replace")
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise EnrollError(
            "answer", "the certificate in the console's answer is unreadable"
        ) from None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [device]:
        raise EnrollError("answer", "the certificate does not name this kiosk")
    if certificate.public_key().public_numbers() != key.public_key().public_numbers():
        raise EnrollError("answer", "the certificate is not for this kiosk's key")
    return certificate, pem


def next_of(path: Path) -> Path:
    """Where the next certificate or key waits beside *path* until it is promoted."""
    return path.with_name(path.name + ".next")


def renew(
    console_url: str, cert_file: Path, key_file: Path, *, ca_file: Path, timeout: float = 30.0
) -> Path:
    """Ask for a new certificate, proving the current one (*cert_file*, *key_file*) as the
    TLS client certificate; the new key and certificate are written beside them with ``.next``
    appended, and the current pair stays in use until :func:`promote` (once
    :func:`check_with_broker` says the new one works). Returns the new certificate's path."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise EnrollError("certificate", f"cannot read {cert_file}: {exc}") from None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    device = str(names[0].value) if names else ""
    key, csr = _new_key_and_request(device)
    body = json.dumps(
        {"csr": csr, "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    ).encode()
    status, raw = _request(console_url, body, ca_file, timeout, "/renew", (cert_file, key_file))
    _, pem = _certificate_for(_answer(status, raw), device, key)
    _write(next_of(key_file), _key_pem(key), 0o600)
    _write(next_of(cert_file), pem)
    return next_of(cert_file)


def check_with_broker(
    host: str, port: int, ca_file: Path, cert_file: Path, key_file: Path, timeout: float = 10.0
) -> None:
    """A TLS handshake with the broker's kiosk listener presenting *cert_file*: whether the
    broker accepts it (issuer, CRL), without an MQTT session (which would take over the one the
    uplink has: the broker binds a kiosk's client id to its certificate). TLS 1.2, so the client
    certificate is checked inside the handshake. :class:`EnrollError` (step ``broker``) if not."""
    import socket

    context = ssl.create_default_context(cafile=str(ca_file))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.do_handshake()
    except (OSError, ssl.SSLError) as exc:
        raise EnrollError("broker", f"the broker refuses the new certificate: {exc}") from None


def promote(cert_file: Path, key_file: Path) -> bool:
    """Put the ``.next`` pair in place of *cert_file*/*key_file* (kept with ``.prev``
    appended); the uplink uses them from its next connection. Finishes a promotion a power cut
    interrupted (the key moved, not yet the certificate). Returns whether anything moved."""
    key_next, cert_next = next_of(key_file), next_of(cert_file)
    if not cert_next.exists():
        return False
    if key_next.exists():
        for path in (key_file, cert_file):
            if path.exists():
                os.replace(path, path.with_name(path.name + ".prev"))
        os.replace(key_next, key_file)
    os.replace(cert_next, cert_file)
    return True


def enroll(
    console_url: str,
    token: str,
    state_dir: Path,
    *,
    ca_file: Path,
    timeout: float = 30.0,
) -> Enrollment:
    """Enroll this kiosk (see the module docs); return what it was told."""
    device = device_of(token)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key, csr = _new_key_and_request(device)
    _write(state_dir / "kiosk.key", _key_pem(key), 0o600)  # before anything is sent
    body = json.dumps(
        {
            "token": token,
            "csr": csr,
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    ).encode()
    status, raw = _request(console_url, body, ca_file, timeout)
    return _store(_answer(status, raw), device, key, state_dir)


def _store(
    answer: dict, device: str, key: ec.EllipticCurvePrivateKey, state_dir: Path
) -> Enrollment:
    _, certificate_pem = _certificate_for(answer, device, key)
    try:
        for name in ("device_ca", "broker_ca"):
            x509.load_pem_x509_certificate(_text(answer, name).encode("ascii", "replace"))
    except ValueError:
        raise EnrollError(
            "answer", "a CA certificate in the console's answer is unreadable"
        ) from None
    broker = answer.get("broker")
    if not (
        isinstance(broker, dict)
        and isinstance(broker.get("host"), str)
        and isinstance(broker.get("port"), int)
        and 0 < broker["port"] < 65536
    ):
        raise EnrollError("answer", "the console's answer has no usable broker address")
    keys = answer.get("watchlist_keys", {})
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and KEY_ID.fullmatch(k) and isinstance(v, str) for k, v in keys.items()
    ):
        raise EnrollError("answer", "the watchlist keys in the console's answer are malformed")
    post = _text(answer, "post")
    _write(state_dir / "kiosk.crt", certificate_pem)
    _write(state_dir / "ca.crt", _text(answer, "broker_ca").encode("ascii"))
    _write(state_dir / "device-ca.crt", _text(answer, "device_ca").encode("ascii"))
    trusted = state_dir / "watchlist-keys"
    trusted.mkdir(mode=0o755, exist_ok=True)
    for key_id, pem in keys.items():
        _write(trusted / f"{key_id}.pub.pem", pem.encode("ascii", "replace"))
    facts = {"device_id": device, "post": post, "broker": broker}
    _write(state_dir / "enrollment.json", (json.dumps(facts, indent=1) + "\n").encode())
    return Enrollment(device, post, broker["host"], broker["port"], state_dir)
