"""Enrolling kiosks: one-time tokens, certificates signed from the kiosk's own request, revocation.

A technician makes a token for one device id at one post, valid for a while::

    token = create_token(engine, "kiosk-bz-07", "bz-santa-elena", ttl_s=86400, created_by="ada")

The kiosk, on first boot, makes its private key (it never leaves the kiosk), and sends a
certificate signing request (CSR) whose common name is its device id, with the token
(``borderlane-edge enroll``; over HTTPS to :mod:`console.enroll_server`). :func:`enroll` checks,
in this order, and refuses with the step that failed (:class:`EnrollmentError`):

1. ``request``: a JSON object with ``token``, ``csr`` (PEM) and ``time`` (the kiosk's clock);
2. ``csr``: a well-formed request, signed by its own key, EC P-256/P-384 or RSA >= 2048;
3. ``token``: known, unused, not expired (the token itself is never stored, only its SHA-256);
4. ``device``: the request's common name is the token's device id;
5. ``clock``: the kiosk's clock within ``max_clock_skew_s`` of the console's (short-lived
   certificates need a clock that agrees);
6. ``replace``: a device that already holds a valid certificate is enrolled again only with a
   token made to replace it, and its old certificate is then revoked;
7. ``broker``: the device is added to the broker's access rules (its own role).

Then the certificate is signed by the device CA (``certificate_days``, weeks rather than
years) and the token is spent, in one transaction. The answer holds only public material: the
certificate, the device CA, the CA by which the kiosk recognises the broker, the broker's
address, the watchlist signing keys and the post. Every attempt, accepted or refused, is logged
(never the token) and written to the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, insert, select, update

from mqtt_schemas.broker_access import check_new_device_id
from mqtt_schemas.errors import TopicError
from provisioning.pki import CertificateAuthority, PkiError

from . import audit
from .access.policy import Principal
from .store.schema import device_certificates, devices, enrollment_tokens

log = logging.getLogger("borderlane.console.enrollment")

__all__ = [
    "EnrollmentError",
    "EnrollmentSettings",
    "create_token",
    "enroll",
    "renew",
    "revoke",
]

MAX_TTL_S = 7 * 86400
"""A token lives at most a week: long enough to carry a kiosk to a far post."""


class EnrollmentError(Exception):
    """An enrollment (or a token, or a revocation) refused: ``step`` names what failed."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass(frozen=True)
class EnrollmentSettings:
    """What the console needs to enroll kiosks, and what it tells them."""

    device_ca: CertificateAuthority
    broker_host: str
    """The broker's device listener, as kiosks reach it."""
    broker_port: int
    broker_ca_pem: str
    """The CA by which kiosks recognise the broker (the service CA)."""
    watchlist_keys: Mapping[str, str] = field(default_factory=dict)
    """Key id -> Ed25519 public key (PEM) that signs watchlist deltas."""
    certificate_days: int = 28
    max_clock_skew_s: float = 300.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment


def _principal(name: str) -> Principal:
    """Who acted, for the audit log: a technician's name, or a kiosk enrolling itself."""
    return Principal(user_id=0, username=name, agency="-", role="device-admin", level=0)


def _audit(engine: Engine, actor: str, action: str, address: str | None, **query: Any) -> None:
    audit.append(
        engine,
        _principal(actor),
        action,
        purpose="other",
        purpose_text="device lifecycle",
        query=query,
        address=address,
    )


def _active_certificates(conn: Any, device_id: str, now: dt.datetime | None = None) -> list[str]:
    """Serials of *device_id*'s certificates still valid (unrevoked, unexpired): a kiosk whose
    certificate ran out while it was offline enrolls again without ``replace``."""
    return list(
        conn.execute(
            select(device_certificates.c.serial).where(
                device_certificates.c.device_id == device_id,
                device_certificates.c.revoked_at.is_(None),
                device_certificates.c.not_after > _iso(now or _now()),
            )
        ).scalars()
    )


def _record_certificate(
    conn: Any, certificate: x509.Certificate, device: str, post: str | None, moment: dt.datetime
) -> None:
    """Keep what the device CA issued, so that renewal and revocation can find it."""
    conn.execute(
        insert(device_certificates).values(
            serial=format(certificate.serial_number, "x"),
            device_id=device,
            post=post,
            issued_at=_iso(moment),
            not_after=_iso(certificate.not_valid_after_utc),
        )
    )


def create_token(
    engine: Engine,
    device_id: str,
    post: str,
    *,
    ttl_s: float,
    created_by: str,
    replace: bool = False,
    now: dt.datetime | None = None,
) -> str:
    """A one-time enrollment token for *device_id* at *post*, valid *ttl_s* seconds:
    ``<device id>:<secret>``.

    A device that holds a valid certificate needs *replace* (its old certificate is revoked when
    the new one is issued). Raises :class:`EnrollmentError` (step ``token``)."""
    try:
        check_new_device_id(device_id)
    except TopicError as exc:
        raise EnrollmentError("token", str(exc)) from None
    if not post or len(post) > 64 or any(ord(c) < 0x20 for c in post):
        raise EnrollmentError("token", "a post is 1-64 printable characters")
    if not 60 <= ttl_s <= MAX_TTL_S:
        raise EnrollmentError("token", f"a token lives 60 s to {MAX_TTL_S // 86400} days")
    moment = now or _now()
    # The device id travels in the token (device ids hold no ':'), so the kiosk needs only it.
    token = f"{device_id}:{secrets.token_urlsafe(24)}"
    with engine.begin() as conn:
        if _active_certificates(conn, device_id, moment) and not replace:
            raise EnrollmentError(
                "token", f"{device_id} is enrolled already; a token to replace it needs --replace"
            )
        conn.execute(
            insert(enrollment_tokens).values(
                token_hash=token_hash(token),
                device_id=device_id,
                post=post,
                created_at=_iso(moment),
                expires_at=_iso(moment + dt.timedelta(seconds=ttl_s)),
                created_by=created_by,
                replaces=int(replace),
            )
        )
    log.info("enrollment token made for %s at %s by %s", device_id, post, created_by)
    _audit(engine, created_by, "device.token", None, device_id=device_id, post=post, ttl_s=ttl_s)
    return token


def _check_request(request: Any) -> tuple[str, x509.CertificateSigningRequest, dt.datetime]:
    if not isinstance(request, dict) or set(request) != {"token", "csr", "time"}:
        raise EnrollmentError("request", "a JSON object with token, csr and time, nothing else")
    token, pem, kiosk_time = request["token"], request["csr"], request["time"]
    if not all(isinstance(v, str) and 0 < len(v) <= 8192 for v in (token, pem, kiosk_time)):
        raise EnrollmentError("request", "token, csr and time are strings of at most 8 KiB")
    try:
        when = _parse_time(kiosk_time)
    except ValueError:
        raise EnrollmentError("request", "time is not an ISO 8601 time with a zone") from None
    try:
        csr = x509.load_pem_x509_csr(pem.encode("ascii"))
        signed = csr.is_signature_valid
    except (ValueError, UnicodeEncodeError, TypeError):
        raise EnrollmentError("csr", "not a PEM certificate signing request") from None
    if not signed:
        raise EnrollmentError("csr", "its signature does not verify with its own key")
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise EnrollmentError("csr", f"curve {key.curve.name} is not P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise EnrollmentError("csr", f"an RSA key of {key.key_size} bits is too short")
    else:
        raise EnrollmentError("csr", "the key is neither EC nor RSA")
    return token, csr, when


def _common_name(csr: x509.CertificateSigningRequest) -> str:
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise EnrollmentError("device", "the request must name exactly one common name")
    return names[0].value


def enroll(
    engine: Engine,
    settings: EnrollmentSettings,
    request: Any,
    *,
    register: Callable[[str], None],
    revoke_old: Callable[[str, str], None] | None = None,
    address: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Enroll a kiosk from its *request* (see the module docs); return the answer to send it.

    *register* adds the device to the broker's access rules (it raises to refuse: step
    ``broker``); *revoke_old(device_id, reason)* revokes a replaced device's certificates.
    Raises :class:`EnrollmentError`; every outcome is logged and audited."""
    moment = now or _now()
    device = "?"
    try:
        token, csr, kiosk_time = _check_request(request)
        device = _common_name(csr)
        with engine.begin() as conn:
            row = conn.execute(
                select(enrollment_tokens).where(enrollment_tokens.c.token_hash == token_hash(token))
            ).first()
            if row is None:
                raise EnrollmentError("token", "unknown token")
            if row.used_at is not None:
                raise EnrollmentError("token", "this token was used already")
            if _parse_time(row.expires_at) <= moment:
                raise EnrollmentError("token", f"the token expired at {row.expires_at}")
            if device != row.device_id:
                raise EnrollmentError(
                    "device", f"the request names {device!r}, the token is for {row.device_id!r}"
                )
            skew = abs((kiosk_time - moment).total_seconds())
            if skew > settings.max_clock_skew_s:
                raise EnrollmentError(
                    "clock", f"the kiosk's clock is {skew:.0f} s off the console's: set it, retry"
                )
            existing = _active_certificates(conn, device, moment)
            if existing and not row.replaces:
                raise EnrollmentError("replace", f"{device} is enrolled already")
        try:
            register(device)
        except Exception as exc:  # the broker's own errors: any of them refuses, retry later
            raise EnrollmentError("broker", f"cannot add the device to the broker: {exc}") from None
        if existing and revoke_old is not None:
            revoke_old(device, "superseded")
        certificate = settings.device_ca.sign_request(csr, device, settings.certificate_days)
        with engine.begin() as conn:
            spent = conn.execute(
                update(enrollment_tokens)
                .where(
                    enrollment_tokens.c.token_hash == token_hash(token),
                    enrollment_tokens.c.used_at.is_(None),
                )
                .values(used_at=_iso(moment))
            ).rowcount
            if spent != 1:  # another request spent it meanwhile
                raise EnrollmentError("token", "this token was used already")
            _record_certificate(conn, certificate, device, row.post, moment)
    except EnrollmentError as exc:
        log.warning("enrollment of %s refused at %s: %s", device, exc.step, exc.reason)
        _audit(engine, f"kiosk:{device}", "device.enroll", address, step=exc.step, ok=False)
        raise
    log.info("enrolled %s at %s until %s", device, row.post, certificate.not_valid_after_utc)
    _audit(engine, f"kiosk:{device}", "device.enroll", address, post=row.post, ok=True)
    pem = serialization.Encoding.PEM
    return {
        "device_id": device,
        "post": row.post,
        "certificate": certificate.public_bytes(pem).decode("ascii"),
        "device_ca": settings.device_ca.certificate.public_bytes(pem).decode("ascii"),
        "broker": {"host": settings.broker_host, "port": settings.broker_port},
        "broker_ca": settings.broker_ca_pem,
        "watchlist_keys": dict(settings.watchlist_keys),
    }


def renew(
    engine: Engine,
    settings: EnrollmentSettings,
    current: x509.Certificate,
    request: Any,
    *,
    address: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """A new certificate for a kiosk that proves it holds a valid one (*current*, presented
    as its TLS client certificate, so it holds that key): a certificate this console's device
    CA issued by enrollment, unexpired and unrevoked, for the same device as the request's.
    The old certificate stays valid until it expires: the kiosk switches once the new one works.
    Raises :class:`EnrollmentError` (steps ``request``, ``csr``, ``clock``, ``certificate``)."""
    moment = now or _now()
    device = "?"
    try:
        if not isinstance(request, dict) or set(request) != {"csr", "time"}:
            raise EnrollmentError("request", "a JSON object with csr and time, nothing else")
        _, csr, kiosk_time = _check_request({"token": "-", **request})
        device = _common_name(csr)
        names = current.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if [n.value for n in names] != [device]:
            raise EnrollmentError("certificate", "the request and the certificate name two devices")
        if current.issuer != settings.device_ca.certificate.subject:
            raise EnrollmentError("certificate", "not issued by this console's device CA")
        if current.not_valid_after_utc <= moment:
            raise EnrollmentError("certificate", "expired: enroll again with a new token")
        skew = abs((kiosk_time - moment).total_seconds())
        if skew > settings.max_clock_skew_s:
            raise EnrollmentError("clock", f"the kiosk's clock is {skew:.0f} s off the console's")
        serial = format(current.serial_number, "x")
        with engine.begin() as conn:
            row = conn.execute(
                select(device_certificates).where(device_certificates.c.serial == serial)
            ).first()
            if row is None or row.device_id != device:
                raise EnrollmentError("certificate", "not one this console enrolled: use a token")
            if row.revoked_at is not None:
                raise EnrollmentError("certificate", f"revoked at {row.revoked_at}")
        certificate = settings.device_ca.sign_request(csr, device, settings.certificate_days)
        with engine.begin() as conn:
            _record_certificate(conn, certificate, device, row.post, moment)
    except EnrollmentError as exc:
        log.warning("renewal of %s refused at %s: %s", device, exc.step, exc.reason)
        _audit(engine, f"kiosk:{device}", "device.renew", address, step=exc.step, ok=False)
        raise
    log.info("renewed %s until %s", device, certificate.not_valid_after_utc)
    _audit(engine, f"kiosk:{device}", "device.renew", address, ok=True)
    pem = serialization.Encoding.PEM
    return {
        "device_id": device,
        "certificate": certificate.public_bytes(pem).decode("ascii"),
        "not_after": _iso(certificate.not_valid_after_utc),
    }


def revoke(
    engine: Engine,
    device_ca: CertificateAuthority,
    device_id: str,
    reason: str,
    *,
    actor: str,
    disconnect: Callable[[str], None],
    now: dt.datetime | None = None,
) -> int:
    """Revoke every valid certificate of *device_id* (the CRL rewritten), then *disconnect*
    it (the broker re-reads the CRL and drops the device); return how many were revoked."""
    if not reason or len(reason) > 200 or any(ord(c) < 0x20 for c in reason):
        raise EnrollmentError("revoke", "a reason is 1-200 printable characters")
    moment = now or _now()
    try:
        device_ca.revoke(device_id, reason)
    except PkiError as exc:
        raise EnrollmentError("revoke", str(exc)) from None
    with engine.begin() as conn:
        count = conn.execute(
            update(device_certificates)
            .where(
                device_certificates.c.device_id == device_id,
                device_certificates.c.revoked_at.is_(None),
            )
            .values(revoked_at=_iso(moment), reason=reason)
        ).rowcount
        # The fleet shows it out of service at once: its own offline message, still in flight,
        # is quarantined with everything else it sends (the device is revoked).
        conn.execute(
            update(devices)
            .where(devices.c.device_id == device_id)
            .values(
                state="offline",
                offline_reason="revoked",
                last_offline_at=_iso(moment),
                state_time=_iso(moment),
            )
        )
    # Recorded before the broker is told: a broker that cannot be reached must not leave a
    # revocation (already on the CRL) out of the log.
    log.info("revoked %s (%s) by %s", device_id, reason, actor)
    _audit(engine, actor, "device.revoke", None, device_id=device_id, reason=reason)
    disconnect(device_id)
    return count
