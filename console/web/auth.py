"""Who is asking, and proving it: the login page, sessions, API tokens and CSRF.

``GET|POST /login``            the login form (:func:`public`)
``POST /logout``               ends the session (:func:`public`: anybody may end their own)
``GET|POST /account/password`` change one's own password (:func:`signed_in`); forced while the
                               account's ``must_change_password`` is set: every other page
                               redirects here until it is done

Before every request :func:`load_principal` sets ``g.principal`` (a
:class:`console.access.Principal`, or None) and ``g.account`` (the
:class:`console.accounts.Account`):

- under ``/api/``, from an ``Authorization: Bearer <token>`` header when there is one (a bad
  token is a 401 at once; it never falls back to the cookie);
- otherwise from Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure when the app is
  served over HTTPS). The session holds the user id, the account's password stamp, when the
  user logged in and when they were last seen, and the CSRF token. It ends when it has been idle
  longer than ``session.idle_minutes`` or is older than ``session.absolute_hours``, when the
  account is disabled, and when its password changes; the login page then says why.

The user is read from the database on every request, so disabling an account takes effect at
its next click, not at the cookie's expiry.

CSRF: every POST, PUT, PATCH and DELETE must carry the session's token, as the form field
``csrf_token`` (every form has ``<input type="hidden" name="csrf_token"
value="{{ csrf_token() }}">``) or an ``X-CSRF-Token`` header; without it the answer is 400.
Requests with an API token are exempt: a browser never adds that header by itself, so another
site cannot forge one.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from ..accounts import Account, AccountError, Accounts, LoginRefused
from .access import public, wants_json
from .db import engine, now, settings, writer_engine

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("auth", __name__)

ACCOUNTS_KEY = "borderlane_accounts"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_PASSWORD_PAGES = frozenset({"auth.change_password", "auth.logout", "static"})
"""What a user who must change their password may still reach."""


def accounts() -> Accounts:
    """The app's :class:`Accounts`: writes through the writer engine, reads through the
    read-only one, with the app's settings and clock."""
    found = current_app.extensions.get(ACCOUNTS_KEY)
    if found is None:
        found = current_app.extensions[ACCOUNTS_KEY] = Accounts(
            writer_engine(current_app),
            settings(),
            reader=engine(current_app),
            clock=current_app.config.get("CLOCK") or time.time,
        )
    return found


def signed_in(view: F) -> F:
    """Let *view* run for anybody logged in, whatever their role (their own password, the home
    page that sends them on). Not a policy decision: the route test accepts it by name."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if g.get("principal") is None:
            if wants_json():
                abort(401, description="log in, or send an API token")
            return redirect(url_for("auth.login", next=request.full_path))
        return view(*args, **kwargs)

    guarded.signed_in = True  # type: ignore[attr-defined]
    return guarded  # type: ignore[return-value]


def account() -> Account | None:
    """The logged-in account (for the page header), or None."""
    return g.get("account")


# -- before each request --------------------------------------------------------------------


def load_principal() -> Response | None:
    """Set ``g.principal`` and ``g.account`` for this request (see the module docstring)."""
    g.principal = g.account = None
    g.via_token = False
    if request.endpoint == "static":
        return None  # the style sheet needs no user, and no database round trip
    header = request.headers.get("Authorization", "")
    if wants_json() and header:
        scheme, _, token = header.partition(" ")
        found = accounts().by_token(token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            abort(401, description="the API token is not valid (revoked, or the user disabled)")
        _set(found)
        g.via_token = True
        return None
    if "uid" not in session:
        return None
    moment = now()
    limits = settings().session
    if moment - session.get("seen", 0) > limits.idle_minutes * 60:
        return _end_session("Your session ended after a time without use. Please log in again.")
    if moment - session.get("login", 0) > limits.absolute_hours * 3600:
        return _end_session("Your session reached its time limit. Please log in again.")
    found = accounts().get(session["uid"])
    if found is None or found.disabled:
        return _end_session("Your account is disabled.")
    if not hmac.compare_digest(found.stamp, session.get("stamp", "")):
        return _end_session("Your password was changed. Please log in again.")
    _set(found)
    session["seen"] = moment
    if found.must_change_password and request.endpoint not in _PASSWORD_PAGES:
        if wants_json():
            abort(403, description="change your password first (log in with a browser)")
        return redirect(url_for("auth.change_password"))
    return None


def _set(found: Account) -> None:
    g.account = found
    g.principal = found.principal()


def _end_session(notice: str) -> None:
    """Forget the user; the login page shows *notice* (the route's guard sends them there)."""
    session.clear()
    session["notice"] = notice


def check_csrf() -> None:
    """400 for an unsafe method without the session's CSRF token (API tokens exempt)."""
    if request.method not in UNSAFE_METHODS or g.get("via_token"):
        return
    expected = session.get("csrf")
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected), sent):
        abort(
            400,
            description="This form is out of date or did not come from the console (no valid "
            "CSRF token). Go back, reload the page and try again.",
        )


def take_notice() -> str | None:
    """The one-time notice for the user (session ended, password changed), forgotten once
    shown (a Jinja global: the page header shows it)."""
    return session.pop("notice", None)


def csrf_token() -> str:
    """The session's CSRF token, made on first use (a Jinja global for every form)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


# -- pages ------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """The login form; on success the session starts and the user goes where they were headed."""
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.get("principal") is not None:
            return redirect(target or url_for("home"))
        return render_template("login.html", next=target)
    username = request.form.get("username", "")
    try:
        found = accounts().login(
            username, request.form.get("password", ""), request.remote_addr or "unknown"
        )
    except LoginRefused as refused:
        return render_template(
            "login.html", error=str(refused), username=username[:64], next=target
        ), 401
    # A fresh session: nothing from before the login (a planted token or notice) carries over.
    session.clear()
    session.permanent = True
    moment = now()
    session.update(uid=found.id, stamp=found.stamp, login=moment, seen=moment)
    csrf_token()
    if found.must_change_password:
        return redirect(url_for("auth.change_password"))
    return redirect(target or url_for("home"))


@bp.post("/logout")
@public
def logout():
    """End the session (POST with the CSRF token, so another site cannot log a user out)."""
    who = account()
    session.clear()
    if who is not None:
        current_app.logger.info("%r logged out", who.username)
        session["notice"] = "You have logged out."
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in
def change_password():
    """Change one's own password: the current one, then the new one twice."""
    who = account()
    assert who is not None
    forced = who.must_change_password
    if request.method == "GET":
        return render_template("change_password.html", forced=forced)
    new = request.form.get("new_password", "")
    if new != request.form.get("confirm_password", ""):
        error = "The new password and its confirmation differ."
    else:
        try:
            changed = accounts().change_password(
                who.id, request.form.get("current_password", ""), new
            )
        except AccountError as exc:
            error = f"Not changed: {exc}."
        else:
            # The stamp changed with the password: keep this session, end every other one.
            session["stamp"] = changed.stamp
            session["notice"] = "Your password has been changed."
            return redirect(url_for("home"))
    return render_template("change_password.html", forced=forced, error=error), 400


def _safe_next(target: str | None) -> str | None:
    """*target* if it is a path on this site, else None: ``?next=`` must not send a user who
    just logged in to another site (an open redirect phishers love)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target.removesuffix("?")  # request.full_path ends in "?" when there is no query
