"""The ``admin`` blueprint: admins manage accounts (``users.manage``), as ``borderlane-console
users`` does on the command line, through the same :class:`console.accounts.Accounts`.

``GET  /admin/users``                       every account, and the form to add one
``POST /admin/users``                       add an account (the user must change the password)
``POST /admin/users/<username>/disable``    stop an account logging in (sessions end at once)
``POST /admin/users/<username>/enable``     let it log in again
``POST /admin/users/<username>/password``   reset its password (the user must change it)

API tokens are issued on the command line only (``users token``): a token is shown once, and
a page is the wrong place to show a secret that works without a password.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from ..access import LEVELS, ROLES
from ..accounts import AccountError
from .access import require
from .auth import account, accounts
from .db import settings

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/users")
@require("users.manage")
def users():
    return _page()


@bp.post("/users")
@require("users.manage")
def add_user():
    form = request.form
    if form.get("password", "") != form.get("confirm_password", ""):
        return _page(error="The password and its confirmation differ.", form=form), 400
    try:
        level = int(form.get("level", ""))
    except ValueError:
        return _page(error="Level: a number from 1 to 4.", form=form), 400
    try:
        created = accounts().create(
            form.get("username", ""),
            form.get("display_name", ""),
            agency=form.get("agency", ""),
            role=form.get("role", ""),
            level=level,
            posts=form.get("posts", "").replace(",", " ").split(),
            password=form.get("password", ""),
            must_change_password=True,
        )
    except AccountError as exc:
        return _page(error=f"Not added: {exc}.", form=form), 400
    session["notice"] = (
        f"Added {created.username}. Give them the password by a separate channel; "
        "they choose their own at the first login."
    )
    return redirect(url_for("admin.users"))


@bp.post("/users/<username>/disable")
@require("users.manage")
def disable_user(username: str):
    me = account()
    if me is not None and me.username == username:
        return _page(error="You cannot disable your own account."), 400
    return _change(username, lambda: accounts().disable(username), "Disabled {}.")


@bp.post("/users/<username>/enable")
@require("users.manage")
def enable_user(username: str):
    return _change(username, lambda: accounts().enable(username), "Enabled {}.")


@bp.post("/users/<username>/password")
@require("users.manage")
def reset_password(username: str):
    password = request.form.get("password", "")
    if password != request.form.get("confirm_password", ""):
        return _page(error="The password and its confirmation differ."), 400
    return _change(
        username,
        lambda: accounts().set_password(username, password, must_change=True),
        "New password set for {}; they must change it at their next login.",
    )


def _change(username: str, change, done: str):
    if accounts().find(username) is None:
        abort(404, description=f"no user {username!r}")
    try:
        changed = change()
    except AccountError as exc:
        return _page(error=f"Not done: {exc}."), 400
    session["notice"] = done.format(changed.username)
    return redirect(url_for("admin.users"))


def _page(error: str | None = None, form=None) -> str:
    return render_template(
        "users.html",
        users=accounts().all_accounts(),
        roles=ROLES,
        levels=LEVELS,
        agencies=settings().agencies,
        error=error,
        form=form or {},
    )
