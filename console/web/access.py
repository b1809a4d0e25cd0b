"""How a route asks the policy: ``@require(action)``, and who is asking: :func:`principal`.

::

    @bp.get("/fleet")
    @require("fleet.view")
    def fleet(): ...

    @bp.get("/crossings/<crossing_id>")
    @require("crossing.view", resource=lambda crossing_id: crossing_resource(crossing_id),
             hide=True)
    def crossing(crossing_id): ...

Every view function of the console is decorated with :func:`require` (a test walks the URL map
and fails on one that is not, so nothing is reachable by forgetting). The decorator:

- with nobody logged in: a page redirects to the login page, the JSON API answers 401;
- when the policy says no: 403, or 404 with ``hide=True`` where the existence of the thing is
  itself sensitive (a crossing id at another post);
- otherwise calls the view, with the principal in ``g.principal``.

Who is logged in is the auth blueprint's business (:mod:`console.web.auth` sets
``g.principal`` from the session cookie or an API token before each request); this module
only reads it. :func:`public` marks the few views open to anybody (the login page, static).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, current_app, g, redirect, request, url_for

from ..access import Policy, Principal, Resource

F = TypeVar("F", bound=Callable[..., Any])
ResourceOf = Callable[..., Resource | None]

POLICY_KEY = "borderlane_policy"


def policy() -> Policy:
    """The app's policy (made by the app factory from the settings)."""
    return current_app.extensions[POLICY_KEY]


def principal() -> Principal | None:
    """Who is asking, or None."""
    return g.get("principal")


def wants_json() -> bool:
    return request.path.startswith("/api/")


def require(
    action: str, *, resource: ResourceOf | None = None, hide: bool = False
) -> Callable[[F], F]:
    """Let the view run only for a principal the policy allows *action* (on *resource*, made
    from the view's arguments); see the module docstring."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            who = principal()
            if who is None:
                if wants_json():
                    abort(401, description="log in, or send an API token")
                return redirect(url_for("auth.login", next=request.full_path))
            target = resource(**kwargs) if resource is not None else None
            decision = policy().decide(who, action, target)
            if not decision:
                if hide:
                    abort(404)
                abort(403, description=decision.why)
            g.decision = decision
            return view(*args, **kwargs)

        guarded.required_action = action  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """Mark *view* as open to anybody (login, logout, static): the route test accepts it."""
    view.public = True  # type: ignore[attr-defined]
    return view


def allowed(action: str, resource: Resource | None = None) -> bool:
    """For templates: whether the current principal may *action* (links shown only then)."""
    who = principal()
    return who is not None and policy().may(who, action, resource)
