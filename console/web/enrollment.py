"""The ``enrollment`` blueprint: kiosks into the fleet and out of it, from the web pages, as
``borderlane-console devices token`` and ``devices revoke`` do on the command line, through the
same :mod:`console.enrollment`.

``GET  /fleet/enroll``               the form for a one-time enrollment token (``device.enroll``),
                                     the latest tokens (device, post, made by, expiry, used or
                                     not: never the token, which is not kept) and the issued
                                     device certificates (serial, expiry, revoked and why)
``POST /fleet/enroll``               make a token: shown once on the answer, with the kiosk's
                                     ``borderlane-edge enroll`` line and that line as a QR code
                                     (an SVG drawn here, nothing from the network); a refusal
                                     (reserved name, enrolled already without *replace*, a
                                     validity not offered) is one line at the form, 400
``GET  /fleet/<device_id>/revoke``   the kiosk's certificates and the revocation form: a reason
                                     and its id typed again (``device.revoke``)
``POST /fleet/<device_id>/revoke``   revoke: its certificates go on the CRL, the broker re-reads
                                     it and drops the kiosk (others stay connected), then the
                                     kiosk's page (or this list, for a kiosk never heard from)

Revocation needs the device CA and the broker: ``[devices] ca_dir`` and ``broker_pid_file`` in
``console.toml`` (:class:`console.settings.DeviceSettings`) and the web console's broker
settings (``config['BROKER']``, as for commands: the console's service identity, which changes
the broker's access rules through its dynamic-security plugin). Without them the form says why
revocation is unavailable and a POST is a 503. The web console then holds the device CA's key:
keep that folder readable by the console's user only.

The token is a secret that lets one kiosk in: it is shown once, never logged (only that one was
made, by whom, for which device), and the answer page, like every page, is ``no-store``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import segno
from flask import Blueprint, redirect, render_template, request, session, url_for
from markupsafe import Markup
from sqlalchemy import desc, select

from mqtt_schemas.identifiers import NAME
from provisioning.broker import BrokerError, DynamicSecurity, drop_device, reload_broker
from provisioning.pki import CertificateAuthority, PkiError

from .. import alerts as alertsmod
from ..enrollment import EnrollmentError, create_token, revoke
from ..store.schema import device_certificates, enrollment_tokens
from .access import principal, require
from .db import db, now, settings, writer
from .fleet import broker_endpoint, broker_unavailable, checked_device_id

bp = Blueprint("enrollment", __name__)

VALIDITY: dict[str, tuple[str, int]] = {
    "1h": ("1 hour", 3600),
    "8h": ("8 hours", 8 * 3600),
    "24h": ("24 hours", 86400),
    "3d": ("3 days", 3 * 86400),
    "7d": ("7 days", 7 * 86400),
}
"""The validities the form offers (a token lives at most a week)."""
DEFAULT_VALIDITY = "24h"
PLACEHOLDER_URL = "https://CONSOLE:8443"
"""Shown in the kiosk's command when ``[devices] enroll_url`` is not set."""
RESERVED = frozenset({"enroll"})
"""Device ids this blueprint's own routes take: ``/fleet/enroll`` is this page, not a kiosk's."""
REASONS = ("stolen", "lost", "decommissioned", "compromised", "replaced")
"""Suggested reasons (any 1-200 printable characters will do)."""
LISTED = 50


@bp.get("/fleet/enroll")
@require("device.enroll")
def index():
    return _form()


@bp.post("/fleet/enroll")
@require("device.enroll")
def make_token():
    form = request.form
    device_id = form.get("device_id", "").strip()
    post = form.get("post", "").strip()
    validity = form.get("validity", "")
    replace = form.get("replace", "")
    if not device_id:
        return _form("device_id: the kiosk's id, such as kiosk-bz-07", form), 400
    if device_id in RESERVED:
        return _form(f"device_id: {device_id!r} is a page of the console, not a kiosk", form), 400
    if not NAME.fullmatch(post):
        return _form("post: a site id such as bz-santa-elena", form), 400
    if validity not in VALIDITY:
        return _form(f"validity: one of {', '.join(VALIDITY)}", form), 400
    if replace not in ("", "1"):
        return _form("replace: ticked (1) or not sent", form), 400
    who = principal()
    assert who is not None  # @require let only a signed-in principal through
    try:
        token = create_token(
            writer(),
            device_id,
            post,
            ttl_s=VALIDITY[validity][1],
            created_by=who.username,
            replace=replace == "1",
        )
    except EnrollmentError as exc:
        return _form(f"Not made: {exc.reason}.", form), 400
    command = enroll_command(token)
    return render_template(
        "enroll_token.html",
        device_id=device_id,
        post=post,
        validity=VALIDITY[validity][0],
        token=token,
        command=command,
        qr=qr_svg(command, f"The enroll command for {device_id}"),
        placeholder=settings().devices.enroll_url is None,
    )


def enroll_command(token: str) -> str:
    """The line a technician types (or scans) at the kiosk: ``borderlane-edge enroll`` with the
    enrollment endpoint, *token*, and where the kiosk keeps its state and the service CA."""
    found = settings().devices
    words = [
        "borderlane-edge",
        "enroll",
        "--console",
        found.enroll_url or PLACEHOLDER_URL,
        "--token",
        token,
        "--state-dir",
        found.kiosk_state_dir,
        "--ca",
        found.kiosk_ca_file,
    ]
    return shlex.join(words)


def qr_svg(text: str, title: str) -> Markup:
    """*text* as a QR code, an inline SVG drawn on the server (error correction M: a scuffed
    print still reads); nothing is fetched, so the page works on a console with no internet."""
    code = segno.make(text, error="m", micro=False)
    # Markup: segno's SVG is paths and the escaped title; the text itself is only drawn.
    return Markup(code.svg_inline(scale=4, border=4, title=title, svgclass="qr", light="#fff"))


def _form(error: str | None = None, form: Any = None) -> str:
    t = enrollment_tokens.c
    tokens = db().execute(
        select(t.device_id, t.post, t.created_by, t.created_at, t.expires_at, t.used_at, t.replaces)
        .order_by(desc(t.created_at))
        .limit(LISTED)
    )
    return render_template(
        "enroll.html",
        error=error,
        form=form or {},
        validity=VALIDITY,
        default_validity=DEFAULT_VALIDITY,
        tokens=list(tokens),
        certificates=_certificates(),
        now=_now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )


def _now() -> dt.datetime:
    return dt.datetime.fromtimestamp(now(), dt.UTC)


def _certificates(device_id: str | None = None) -> list[Any]:
    c = device_certificates.c
    query = select(device_certificates).order_by(desc(c.issued_at), c.serial).limit(LISTED)
    if device_id is not None:
        query = query.where(c.device_id == device_id)
    return list(db().execute(query))


# -- revocation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revocation:
    """What a revocation from the web needs, when the settings give it."""

    device_ca: CertificateAuthority
    pid_file: Path


def _revocation() -> tuple[Revocation | None, str | None]:
    """What revocation needs, or why it is unavailable."""
    found = settings().devices
    if found.ca_dir is None or found.broker_pid_file is None:
        return None, (
            "the web console's settings name no device CA and broker ([devices] ca_dir and "
            "broker_pid_file in console.toml); use borderlane-console devices revoke"
        )
    unavailable = broker_unavailable("borderlane-console devices revoke")
    if unavailable:
        return None, unavailable
    if not found.broker_pid_file.is_file():
        return None, f"the broker's pid file {found.broker_pid_file} is not there"
    try:
        device_ca = CertificateAuthority.load(found.ca_dir)
    except (PkiError, OSError, ValueError) as exc:
        return None, f"the device CA in {found.ca_dir} cannot be used: {exc}"
    return Revocation(device_ca, found.broker_pid_file), None


@bp.get("/fleet/<device_id>/revoke")
@require("device.revoke")
def revoke_form(device_id: str):
    device_id = checked_device_id(device_id)
    return _revoke_page(device_id)


@bp.post("/fleet/<device_id>/revoke")
@require("device.revoke")
def revoke_device(device_id: str):
    device_id = checked_device_id(device_id)
    reason = request.form.get("reason", "").strip()
    confirm = request.form.get("confirm", "").strip()
    if not reason:
        return _revoke_page(device_id, "reason: why the kiosk is revoked (stolen, lost ...)"), 400
    if confirm != device_id:
        return _revoke_page(device_id, f"confirm: type {device_id} to confirm"), 400
    needed, unavailable = _revocation()
    if needed is None:
        bad = f"revocation is unavailable: {unavailable}"
        return _revoke_page(device_id, bad), 503
    who = principal()
    assert who is not None
    failed: list[str] = []

    def disconnect(device: str) -> None:
        # After the CRL is rewritten: the broker re-reads it, then the kiosk's access rules go,
        # which drops its session. A broker that cannot be told is reported, not hidden, and
        # the revocation (already on the CRL and in the database) is still logged and audited.
        endpoint = broker_endpoint()
        assert endpoint is not None
        rules = DynamicSecurity(
            endpoint.host,
            endpoint.port,
            endpoint.ca_file,
            endpoint.cert_file,
            endpoint.key_file,
            client_id=f"console:web-revoke-{secrets.token_hex(4)}",
        )
        try:
            with rules:
                drop_device(device, reload=lambda: reload_broker(needed.pid_file), rules=rules)
        except BrokerError as exc:
            failed.append(str(exc))

    try:
        count = revoke(
            writer(),
            needed.device_ca,
            device_id,
            reason,
            actor=who.username,
            disconnect=disconnect,
        )
    except EnrollmentError as exc:
        return _revoke_page(device_id, f"Not revoked: {exc.reason}."), 400
    if failed:
        message = (
            f"{device_id}'s certificates are on the revocation list ({count} on record), but "
            f"the broker was not told: {failed[0]}. Until it re-reads the list the kiosk may "
            "stay connected: run borderlane-console devices revoke again, or restart the broker."
        )
        return _revoke_page(device_id, message), 502
    session["notice"] = (
        f"Revoked {device_id} ({count} certificate(s) on record, reason: {reason}): the broker "
        "refuses it and has dropped its connection. It comes back only by a new enrollment."
    )
    known = alertsmod.fleet_status(db(), _now(), device_id=device_id)
    target = url_for("fleet.device", device_id=device_id) if known else url_for("enrollment.index")
    return redirect(target, code=303)


def _revoke_page(device_id: str, error: str | None = None) -> str:
    _, unavailable = _revocation()
    return render_template(
        "revoke.html",
        device_id=device_id,
        certificates=_certificates(device_id),
        unavailable=unavailable,
        error=error,
        reasons=REASONS,
        form=request.form,
    )
