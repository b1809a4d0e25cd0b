"""The access matrix over HTTP: every role x agency x level against every GET route of the
console, each cell's answer compared with what the policy decides.

One app (Flask's test client) on a SQLite database holding a referral escalated at the post
every account serves (HOME), a referral at another post (ELSEWHERE, whose existence the
console hides) and a kiosk that reported. Every account logs in through the login form. The
routes come from ``app.url_map``, so a route added tomorrow is requested too (a path variable
this file cannot fill fails the test, naming it). The expected answer of a guarded route is
derived from its ``@require`` layers (outermost first; each one's action, resource and
``hide``) and :meth:`Policy.decide` for the account's principal: allowed 200, denied 403, or
404 where the layer hides existence. Personal pages get a valid ``purpose`` so they do not stop
at the purpose form.
"""

from __future__ import annotations

import datetime as dt
import inspect
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from test_console_alerts import Fleet
from test_console_referrals import ELSEWHERE, HOME, Border, at

from console.access import ROLES, Policy, Principal, Resource
from console.accounts import Accounts
from console.settings import Settings
from console.store import open_database
from console.web import NAV, create_app
from console.web.access import POLICY_KEY
from console.web.auth import ACCOUNTS_KEY
from console.web.db import dispose, engine, writer_engine
from harness.console_web import FAST_HASHER, csrf

AGENCIES = ("immigration", "police", "statistics")
"""The border agency (Settings' default) and two others."""
LEVELS = (1, 2, 3, 4)
PASSWORD = "matrix-password-1"
PURPOSE = {"purpose": "border-control"}
PUBLIC_ANSWERS = {200, 302}
"""The login page answers everybody: the form, or (logged in) a redirect on."""
DEVICE = f"kiosk-{HOME}"
"""Border's kiosk at HOME (its crossings), which also sends availability and health."""


@dataclass(frozen=True)
class Guard:
    """One ``@require`` layer of a view."""

    action: str
    resource: Callable[..., Resource | None] | None
    hide: bool


@dataclass(frozen=True)
class Target:
    """A GET route with its path variables filled: the path and the post of what it shows."""

    endpoint: str
    path: str
    site: str | None


@dataclass
class Matrix:
    app: Flask
    policy: Policy
    clients: dict[tuple[str, str, int], FlaskClient]
    targets: list[Target]


def guards(view: Callable[..., Any]) -> list[Guard]:
    """The ``@require`` layers of *view*, outermost first: read from each wrapper's closure
    (``action``, ``resource``, ``hide``), walking ``__wrapped__``."""
    found = []
    while view is not None:
        if view.__closure__:
            names = inspect.getclosurevars(view).nonlocals
            if {"action", "hide", "resource"} <= names.keys():
                found.append(Guard(names["action"], names["resource"], names["hide"]))
        view = getattr(view, "__wrapped__", None)
    return found


def username(role: str, agency: str, level: int) -> str:
    return f"{role}-{agency}-{level}"


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    directory = tmp_path_factory.mktemp("access-matrix")
    db = str(directory / "console.db")
    setup = open_database(db)
    accounts = Accounts(setup, hasher=FAST_HASHER)
    for role, agency, level in itertools.product(ROLES, AGENCIES, LEVELS):
        accounts.create(
            username(role, agency, level),
            f"{role.title()} {agency} {level}",
            agency=agency,
            role=role,
            level=level,
            posts=(HOME,),
            password=PASSWORD,
            must_change_password=False,
        )
    setup.dispose()

    border = Border(db)
    try:
        home, _ = border.referral(HOME, at(1), "RAMIREZ", "ANA")
        border.decide(home, "escalate", at(2))
        elsewhere, _ = border.referral(ELSEWHERE, at(3), "TUN", "PEDRO")
        border.decide(elsewhere, "escalate", at(4))
    finally:
        border.close()
    fleet = Fleet(db)
    try:
        now = dt.datetime.now(dt.UTC)
        fleet.birth(DEVICE, now)
        fleet.heartbeat(DEVICE, now)
    finally:
        fleet.close()

    app = create_app(
        {
            "DATABASE": db,
            "INSTANCE_PATH": str(directory / "instance"),
            "SETTINGS": Settings(),
            "TESTING": True,
        }
    )
    # The app's own Accounts with the fast hasher: its first login of each account would
    # otherwise rehash with the strong default (72 times, ~10 s); the login form is still real.
    app.extensions[ACCOUNTS_KEY] = Accounts(
        writer_engine(app), Settings(), reader=engine(app), hasher=FAST_HASHER
    )
    values = {
        # name -> [(value, post of what the route then shows)]
        "device_id": [(DEVICE, HOME)],
        "crossing_id": [(home["id"], HOME), (elsewhere["id"], ELSEWHERE)],
        "issuing_state": [(home["document"]["issuing_state"], HOME)],
        "document_number": [(home["document"]["number"], HOME)],
    }
    targets = []
    unfilled = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or "GET" not in (rule.methods or ()):
            continue
        if not all(name in values for name in rule.arguments):
            unfilled.append(str(rule))
            continue
        names = sorted(rule.arguments)
        for combination in itertools.product(*(values[name] for name in names)):
            sites = {site for _, site in combination}
            if len(sites) > 1:
                continue
            path = rule.build({n: v for n, (v, _) in zip(names, combination, strict=True)})[1]
            targets.append(Target(rule.endpoint, path, sites.pop() if sites else None))
    assert not unfilled, f"routes with path variables this test cannot fill: {unfilled}"

    clients = {}
    for role, agency, level in itertools.product(ROLES, AGENCIES, LEVELS):
        client = app.test_client()
        response = client.post(
            "/login",
            data={
                "username": username(role, agency, level),
                "password": PASSWORD,
                "csrf_token": csrf(client),
            },
        )
        assert response.status_code == 302, (role, agency, level, response.status_code)
        clients[role, agency, level] = client
    yield Matrix(app, app.extensions[POLICY_KEY], clients, targets)
    dispose(app)


def principal(role: str, agency: str, level: int) -> Principal:
    return Principal(0, username(role, agency, level), agency, role, level, frozenset({HOME}))


def expected(matrix: Matrix, who: Principal, target: Target) -> tuple[int, str | None]:
    """The status the policy implies for *who* on *target*, and for a redirect its path."""
    view = matrix.app.view_functions[target.endpoint]
    if getattr(view, "public", False):
        return -1, None  # any of PUBLIC_ANSWERS
    if getattr(view, "signed_in", False) and target.endpoint == "home":
        # The home page sends the user to the first area they may see, else says there is none.
        for item in NAV:
            if item.endpoint in matrix.app.view_functions and matrix.policy.may(who, item.action):
                with matrix.app.test_request_context():
                    return 302, url_for(item.endpoint)
        return 200, None
    if getattr(view, "signed_in", False):
        return 200, None
    layers = guards(view)
    assert layers, f"{target.endpoint} is neither public, signed in nor guarded"
    assert layers[0].action == view.required_action, target.endpoint
    for layer in layers:
        resource = Resource(site=target.site) if layer.resource is not None else None
        if not matrix.policy.decide(who, layer.action, resource):
            return (404 if layer.hide else 403), None
    return 200, None


def test_every_account_gets_what_the_policy_decides_on_every_route(matrix: Matrix) -> None:
    started = time.monotonic()
    failures = []
    statuses: dict[int, int] = {}
    ok_roles: set[str] = set()
    requested: set[str] = set()
    cells = 0
    for (role, agency, level), client in matrix.clients.items():
        who = principal(role, agency, level)
        for target in matrix.targets:
            want, location = expected(matrix, who, target)
            response = client.get(f"{target.path}?{urlencode(PURPOSE)}")
            got = response.status_code
            cells += 1
            requested.add(target.endpoint)
            statuses[got] = statuses.get(got, 0) + 1
            if got == 200:
                ok_roles.add(role)
            if got == 200 and 'id="purpose-form"' in response.get_data(True):
                got = 299  # the purpose form, not the page: the purpose was not taken
            if want == -1:
                good = got in PUBLIC_ANSWERS
            else:
                good = got == want
                if good and location is not None:
                    good = urlsplit(response.headers["Location"]).path == location
            if not good:
                failures.append(
                    f"{role}/{agency}/{level} {target.path}: got {got}"
                    f" {response.headers.get('Location', '')} expected {want} {location or ''}"
                )
    assert not failures, f"{len(failures)} of {cells} cells wrong:\n" + "\n".join(failures)

    # Not vacuous: every GET route requested, every role let in somewhere, refusals seen.
    gets = {
        rule.endpoint
        for rule in matrix.app.url_map.iter_rules()
        if rule.endpoint != "static" and "GET" in (rule.methods or ())
    }
    assert requested == gets
    assert ok_roles == set(ROLES)
    assert statuses.get(403, 0) > 0
    hiding = any(
        layer.hide for view in matrix.app.view_functions.values() for layer in guards(view)
    )
    if hiding:
        assert statuses.get(404, 0) > 0
    assert cells == len(ROLES) * len(AGENCIES) * len(LEVELS) * len(matrix.targets)
    print(f"{cells} cells in {time.monotonic() - started:.1f} s: {statuses}")
