"""The console's web application: ``create_app(config)``, one blueprint per area.

::

    app = create_app({
        "DATABASE": "/var/lib/borderlane/console.db",   # a SQLite path or a postgresql:// URL
        "INSTANCE_PATH": "/var/lib/borderlane/web",     # secret_key, console.toml
    })

``config`` keys the console reads (besides Flask's own):

``DATABASE``       the console database (required)
``INSTANCE_PATH``  the instance folder: the session secret (``secret_key``, made on first start,
                   0600) and ``console.toml``; default Flask's (``instance/`` beside the package)
``SETTINGS``       a :class:`console.settings.Settings`, instead of ``console.toml``
``HTTPS``          True when browsers reach the console over HTTPS (a TLS proxy in front):
                   the session cookie is then ``Secure``
``PROXIES``        how many reverse proxies stand in front; their ``X-Forwarded-For`` and
                   ``X-Forwarded-Proto`` are then believed (the client address counts logins)
``CLOCK``          a ``() -> float`` clock for sessions and lockouts (tests)

Access: every view is ``@require(action)`` (:mod:`.access`), ``@public`` or ``@signed_in``
(:mod:`.auth`); a test walks the URL map and fails on a view that is none of these. Who is
asking is set before every request by :func:`.auth.load_principal`, and every POST is checked
for the session's CSRF token (:func:`.auth.check_csrf`).

Pages are server-rendered Jinja templates (``templates/``) extending ``base.html``, whose header
shows the navigation links the user may follow (:data:`NAV`, each shown only when the policy
allows its action and the page is registered), the user's name, agency, role and level, and the
logout button. Errors are pages for people and ``{"error": "..."}`` under ``/api/``; never a
traceback. Every response says ``Cache-Control: no-store`` (pages may name travellers) and
carries a Content-Security-Policy allowing scripts and styles from the console only (inline
``style`` attributes are allowed; inline scripts are not: put them in ``static/``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app, jsonify, redirect, render_template, request, url_for
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from ..access import Policy
from ..settings import Settings, load_settings
from ..store import StoreError, describe
from ..store.database import reason
from . import (
    access,
    admin,
    alerts,
    audit,
    auth,
    crossings,
    db,
    devices,
    enrollment,
    fleet,
    referrals,
    search,
)

SECRET_KEY_FILE = "secret_key"
SETTINGS_FILE = "console.toml"
_SECRET_BYTES = 32


class InstanceError(Exception):
    """The instance folder cannot be used (its secret key is missing, short or readable by
    others); the message says what to do."""


@dataclass(frozen=True)
class NavItem:
    """A link in the page header: shown when *endpoint* is registered and the policy allows
    *action*. The home page sends each user to the first one they may follow."""

    label: str
    endpoint: str
    action: str


NAV: tuple[NavItem, ...] = (
    NavItem("Fleet", "fleet.index", "fleet.view"),
    NavItem("Alerts", "alerts.index", "alerts.view"),
    NavItem("Referrals", "referrals.index", "referrals.view"),
    NavItem("Crossings", "search.index", "crossings.search"),
    NavItem("Statistics", "statistics.index", "statistics.view"),
    NavItem("Audit log", "audit.index", "audit.view"),
    NavItem("Users", "admin.users", "users.manage"),
)
"""The console's areas, in the order a role's home page prefers them (a technician lands on
the fleet, an officer on referrals, an analyst on statistics, an auditor on the audit log)."""

_TITLES = {
    400: "Bad request",
    401: "Not logged in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    413: "Too large",
    500: "Something went wrong",
    503: "The console database is unavailable",
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A console app; see the module docstring for *config*. Raises :class:`InstanceError`
    or :class:`console.settings.SettingsError` when the instance folder cannot be used."""
    config = dict(config or {})
    if not config.get("DATABASE"):
        raise ValueError("create_app needs config['DATABASE'], the console database path")
    instance = config.get("INSTANCE_PATH")
    app = Flask(__name__, instance_path=str(Path(instance).resolve()) if instance else None)
    app.config.update(config)
    settings = config.get("SETTINGS")
    if settings is None:
        settings = load_settings(Path(app.instance_path) / SETTINGS_FILE)
    if not isinstance(settings, Settings):
        raise TypeError("config['SETTINGS'] must be a console.settings.Settings")
    app.extensions[db.SETTINGS_KEY] = settings
    app.extensions[access.POLICY_KEY] = Policy(border_agency=settings.border_agency)
    app.secret_key = secret_key(Path(app.instance_path))
    app.config.update(
        SESSION_COOKIE_NAME="borderlane_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(config.get("HTTPS")),
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=settings.session.absolute_hours),
        MAX_CONTENT_LENGTH=1024 * 1024,  # forms only; nothing is uploaded through the web
    )
    if proxies := int(config.get("PROXIES") or 0):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    app.add_url_rule("/", "home", home)
    # enrollment before fleet: /fleet/enroll is its page, not a kiosk called "enroll"
    for blueprint in (auth.bp, admin.bp, devices.bp, crossings.bp, enrollment.bp, fleet.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(alerts.bp)
    app.register_blueprint(audit.bp)
    app.register_blueprint(referrals.bp)
    app.register_blueprint(search.bp)
    app.before_request(auth.load_principal)
    app.before_request(auth.check_csrf)
    app.after_request(_headers)
    app.teardown_appcontext(db.close_db)
    app.jinja_env.globals.update(
        csrf_token=auth.csrf_token,
        take_notice=auth.take_notice,
        allowed=access.allowed,
        account=auth.account,
        nav=nav,
        agency_name=lambda agency: settings.agencies.get(agency, agency),
    )
    _error_handlers(app)
    return app


@auth.signed_in
def home() -> Response | str:
    """Send the user to the first area they may see; a page saying so if there is none."""
    links = nav()
    if links:
        return redirect(links[0]["url"])
    return render_template("home.html")


def nav() -> list[dict[str, Any]]:
    """The header's links for the current user: ``label``, ``url``, ``active``."""
    links = []
    for item in NAV:
        if item.endpoint in current_app.view_functions and access.allowed(item.action):
            url = url_for(item.endpoint)
            active = request.endpoint == item.endpoint or (
                request.blueprint is not None and item.endpoint.startswith(request.blueprint + ".")
            )
            links.append({"label": item.label, "url": url, "active": active})
    return links


def secret_key(instance: Path) -> bytes:
    """The session-signing key in *instance*/``secret_key``: made once (random, 0600), then
    read. Never in code or configuration: whoever has it can forge any user's session."""
    path = instance / SECRET_KEY_FILE
    try:
        instance.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            _write_new_key(path)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise InstanceError(
                f"{path} is readable by others (mode {mode:04o}): chmod 600 {path}, and make a "
                "new one (delete it) if anyone may have read it"
            )
        key = path.read_bytes()
    except OSError as exc:
        raise InstanceError(f"{exc.filename or path}: {exc.strerror or exc}") from None
    if len(key) < _SECRET_BYTES:
        raise InstanceError(f"{path} is too short: delete it and the console makes a new one")
    return key


def _write_new_key(path: Path) -> None:
    # Written to a private temporary file, then linked into place: a second process starting at
    # the same moment either wins the link or reads the complete key, never half of it.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(_SECRET_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'",
    )
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"  # a page may name a traveller: keep no copy
    return response


def error_response(status: int, message: str) -> tuple[Any, int]:
    """*message* with *status*: JSON under ``/api/``, the error page otherwise."""
    if access.wants_json():
        return jsonify(error=message), status
    title = _TITLES.get(status, "Error")
    return render_template("errors.html", status=status, title=title, message=message), status


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return error_response(exc.code or 500, exc.description or "")

    @app.errorhandler(StoreError)
    def store_error(exc: StoreError):
        app.logger.warning("%s", exc)
        return error_response(503, str(exc))

    @app.errorhandler(OperationalError)
    def database_away(exc: OperationalError):
        # The database went away (or is busy) after the app opened it: one line, as at start.
        message = f"console database {describe(app.config['DATABASE'])}: {reason(exc)}"
        app.logger.warning("%s", message)
        return error_response(503, message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # Logged with its traceback for the operator; the browser gets one sentence.
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "The console met an error; it has been logged.")
