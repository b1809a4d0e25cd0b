"""Every route of the console is guarded: nothing is reachable by forgetting a decorator.

The test walks the URL map of the app as ``create_app`` builds it, so a blueprint added
tomorrow is covered without touching this file. A view must be ``@require(action)`` with an
action the policy knows, or on one of two short lists that a reviewer reads: the views open to
anybody (``@public``) and those open to anybody logged in (``@signed_in``). Adding to either
list is a decision about access and belongs in review, which is why they are spelled out here.
"""

from __future__ import annotations

import pytest

from console.access import ACTIONS
from console.web import create_app

PUBLIC = {"auth.login", "auth.logout", "static"}
"""Open to anybody: logging in, logging out, the style sheet."""
SIGNED_IN = {"home", "auth.change_password"}
"""Open to anybody logged in: the home page (it only sends the user on) and their password."""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    directory = tmp_path_factory.mktemp("routes")
    return create_app(
        {"DATABASE": str(directory / "console.db"), "INSTANCE_PATH": str(directory / "instance")}
    )


def guard(view) -> str | None:
    if getattr(view, "required_action", None):
        return "require"
    if getattr(view, "public", False):
        return "public"
    if getattr(view, "signed_in", False):
        return "signed_in"
    return None


def test_every_endpoint_is_required_public_or_signed_in(app):
    unguarded = sorted(
        f"{endpoint} ({rule})"
        for rule in app.url_map.iter_rules()
        if (endpoint := rule.endpoint) != "static" and guard(app.view_functions[endpoint]) is None
    )
    assert not unguarded, "views without @require(action), @public or @signed_in: " + ", ".join(
        unguarded
    )


def test_only_the_listed_views_are_open(app):
    found = {endpoint: guard(view) for endpoint, view in app.view_functions.items()}
    public = {e for e, g in found.items() if g == "public"} | {"static"}
    signed_in = {e for e, g in found.items() if g == "signed_in"}
    assert public == PUBLIC, "a view is open to anybody: is that meant? then add it to PUBLIC"
    assert signed_in == SIGNED_IN, "a view is open to every user: meant? add it to SIGNED_IN"


def test_every_required_action_is_one_the_policy_decides(app):
    """An action no rule names would deny everyone: a typo, not a decision."""
    unknown = {
        endpoint: view.required_action
        for endpoint, view in app.view_functions.items()
        if getattr(view, "required_action", None) and view.required_action not in ACTIONS
    }
    assert not unknown


def test_the_walk_sees_the_routes_it_must(app):
    """The walk covers real routes (so the tests above cannot pass on an empty map): the API,
    the admin pages and the login page are there, each with the guard it should have."""
    views = app.view_functions
    assert views["devices.fleet"].required_action == "fleet.view"
    assert views["devices.detail"].required_action == "fleet.view"
    assert views["crossings.counts"].required_action == "statistics.view"
    assert views["admin.users"].required_action == "users.manage"
    assert views["admin.add_user"].required_action == "users.manage"
    assert guard(views["auth.login"]) == "public"


def test_a_view_without_a_guard_is_named(app, tmp_path):
    """The check itself, on an app with one unguarded view planted."""
    planted = create_app(
        {"DATABASE": str(tmp_path / "console.db"), "INSTANCE_PATH": str(tmp_path / "instance")}
    )
    planted.add_url_rule("/forgotten", "forgotten", lambda: "oops")
    with pytest.raises(AssertionError, match=r"forgotten \(/forgotten\)"):
        test_every_endpoint_is_required_public_or_signed_in(planted)
