"""The access matrix over HTTP for the routes that change something: every role x agency x
level against every POST route of the console, each cell's answer compared with what the
policy decides, and the console's state compared with what the answer says.

The GET matrix (:mod:`test_console_access_matrix`) asks "may this account see it?"; here a
wrong answer would be worse than a page shown to the wrong person: a disposition recorded, an
account disabled, a password reset. So each cell checks the state the action would change, not
only the status:

- **refused** by the policy (derived, as the GET matrix does, from the view's ``@require``
  layers, outermost first, and :meth:`Policy.decide` for the account): 403, or 404 where the
  layer hides the thing's existence (another post's referral); and the action did not happen;
- **allowed**: the route's success answer (a redirect to where the route sends the user) and
  the action happened. One-shot actions get a fresh target in every cell (an account to
  disable, enable or reset, a new escalation to dispose of), so every cell is independent.

The targets, per route (``sites`` in :data:`ROUTES`; a cell is an account and a target):

==========================================  ======================================================
``POST /login``                             public: a new browser logs in with the account's
                                            password; the new session reaches a signed-in page
``POST /logout``                            public: a session of its own ends
``POST /account/password``                  signed in: the account changes its own password
``POST /admin/users``                       ``users.manage``: a new account exists
``POST /admin/users/<u>/disable``           ``users.manage``: a fresh enabled account, disabled
``POST /admin/users/<u>/enable``            ``users.manage``: a fresh disabled account, enabled
``POST /admin/users/<u>/password``          ``users.manage``: a fresh account's password reset
``POST /fleet/<device_id>/commands``        ``device.command``: a ping to a kiosk that is not
                                            connected, through the session's broker, waiting
                                            a moment for no answer: allowed, the redirect to
                                            the kiosk's page saying it waits; the console
                                            stores nothing either way, so the status and the
                                            redirect are the whole check
``POST /fleet/enroll``                      ``device.enroll``: a token for a fresh kiosk id
                                            exists, and the answer shows the enroll command
``POST /fleet/<device_id>/revoke``          ``device.revoke``: a fresh kiosk, enrolled with a
                                            token (a real request, signed by the session
                                            PKI's device CA), has its certificate revoked; the
                                            broker re-reads its CRL and drops it
``POST /referrals/<id>/disposition``        ``referral.dispose``, then the same on the
                                            referral's post (hidden: 404), then the purpose:
                                            a fresh escalation at HOME (every account's post) and
                                            one at ELSEWHERE (nobody's: 404 for a supervisor of
                                            the border agency, 403 for everybody else)
==========================================  ======================================================

The routes come from ``app.url_map``: a POST route added tomorrow without an entry in
:data:`ROUTES` fails the test, naming it. Every request carries the session's CSRF token and,
for personal actions, a valid purpose, so only access differs between cells; for one allowed
account per route the same request is first sent without the token, and must be refused (400)
with nothing changed, before it is sent with it and takes effect.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from flask import Flask
from flask.testing import FlaskClient
from test_console_access_matrix import (
    AGENCIES,
    DEVICE,
    LEVELS,
    PASSWORD,
    PURPOSE,
    guards,
    principal,
    username,
)
from test_console_alerts import Fleet
from test_console_enrollment import console_endpoint, device_settings
from test_console_referrals import ELSEWHERE, HOME, Border, at
from test_device_enrollment import csr_for, now_iso
from werkzeug.test import TestResponse

from console.access import ROLES, Policy, Resource
from console.accounts import Account, Accounts
from console.enrollment import EnrollmentSettings, create_token, enroll
from console.settings import Settings
from console.store import open_database
from console.store.referrals import DISPOSITIONS
from console.web import create_app
from console.web.access import POLICY_KEY
from console.web.auth import ACCOUNTS_KEY
from console.web.db import dispose, engine, writer_engine
from harness.console import rows
from harness.console_web import FAST_HASHER, csrf

Key = tuple[str, str, int]
"""An account of the matrix: role, agency, level."""

SACRIFICE_PASSWORD = "sacrificial-1"
"""The first password of the accounts made for one cell to act on."""
RESET_PASSWORD = "reset-by-admin-1"
NEW_USER_PASSWORD = "first-password-1"


@dataclass(frozen=True)
class Cell:
    """One account asking one target: a POST route, and the post of what it acts on."""

    role: str
    agency: str
    level: int
    endpoint: str
    site: str | None

    @property
    def username(self) -> str:
        return username(self.role, self.agency, self.level)

    @property
    def key(self) -> Key:
        return self.role, self.agency, self.level

    def __str__(self) -> str:
        return f"{self.username} {self.endpoint}" + (f" at {self.site}" if self.site else "")


@dataclass
class Attempt:
    """One POST ready to send: from which browser, where, the form (the CSRF token is added
    when sending), how to tell that the action took effect, and the answer when allowed."""

    client: FlaskClient
    token: str
    """The CSRF token of *client*'s session."""
    path: str
    form: dict[str, str]
    done: Callable[[], bool]
    """Whether the action has taken effect (read from the database or the session)."""
    answer: int
    """The status when allowed."""
    location: str | None = None
    """The path the allowed answer redirects to (None: not a redirect)."""
    says: str | None = None
    """Text the allowed answer's page must contain."""
    effect: bool = True
    """Whether an allowed request changes something this test can see (see fleet.send)."""
    then: Callable[[], None] | None = None
    """Called after the action took effect (e.g. to remember a changed password)."""

    def send(self, with_csrf: bool = True) -> TestResponse:
        token = {"csrf_token": self.token} if with_csrf else {}
        return self.client.post(self.path, data={**self.form, **token})


@dataclass
class World:
    """The app, its accounts and a logged-in browser (with its CSRF token) per account."""

    app: Flask
    policy: Policy
    accounts: Accounts
    border: Border
    clients: dict[Key, FlaskClient]
    tokens: dict[Key, str]
    targets: list[tuple[str, str | None]]
    """(endpoint, site) of every POST route's targets, in the URL map's order."""
    unknown: list[str]
    """POST routes this test cannot build a request for."""
    passwords: dict[str, str] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)
    enrolling: EnrollmentSettings | None = None
    """How :meth:`enrolled` signs kiosks' certificates (the session broker's device CA)."""

    def fresh(self, prefix: str) -> str:
        """A name nobody has used in this run."""
        return f"{prefix}-{next(self.counter):04d}"

    def path(self, endpoint: str, **values: str) -> str:
        """The URL of *endpoint* with *values* (a BuildError names a route whose variables
        changed under this test)."""
        return self.app.url_map.bind("localhost").build(endpoint, values, method="POST")

    def login(self, name: str) -> FlaskClient:
        """A new browser logged in as *name* through the login form."""
        client = self.app.test_client()
        response = client.post(
            "/login",
            data={"username": name, "password": self.passwords[name], "csrf_token": csrf(client)},
        )
        assert response.status_code == 302, (name, response.status_code)
        return client

    def sacrifice(self, prefix: str, *, disabled: bool = False) -> str:
        """A new account (an officer at HOME) for one cell to act on."""
        name = self.fresh(prefix)
        self.accounts.create(
            name,
            f"Target {name}",
            agency="immigration",
            role="officer",
            level=1,
            posts=(HOME,),
            password=SACRIFICE_PASSWORD,
            must_change_password=False,
        )
        if disabled:
            self.accounts.disable(name)
        return name

    def enrolled(self, prefix: str) -> str:
        """A fresh kiosk enrolled as a kiosk does it: a token, then its own key's request."""
        assert self.enrolling is not None
        name = self.fresh(prefix)
        token = create_token(writer_engine(self.app), name, HOME, ttl_s=3600, created_by="matrix")
        request = {"token": token, "csr": csr_for(name), "time": now_iso()}
        enroll(writer_engine(self.app), self.enrolling, request, register=lambda device: None)
        return name

    def password_is(self, name: str, password: str) -> bool:
        """Whether *name*'s stored password hash is of *password*."""
        found = rows(engine(self.app), "SELECT password_hash FROM users WHERE username = ?", name)
        try:
            return PasswordHasher().verify(found[0]["password_hash"], password)
        except VerificationError:
            return False


def signed_in(client: FlaskClient) -> bool:
    """Whether *client*'s session is a logged-in user's (the password page is theirs only)."""
    return client.get("/account/password").status_code == 200


# -- the requests, route by route --------------------------------------------------------------


def login(world: World, cell: Cell) -> Attempt:
    """A new browser logs in with the account's password (CSRF token from the login page)."""
    client = world.app.test_client()
    return Attempt(
        client,
        csrf(client),
        world.path(cell.endpoint),
        {"username": cell.username, "password": world.passwords[cell.username]},
        done=lambda: signed_in(client),
        answer=302,
        location="/",
    )


def logout(world: World, cell: Cell) -> Attempt:
    """A session of its own, logged in for the cell, ends (the account's main one goes on)."""
    client = world.login(cell.username)
    return Attempt(
        client,
        csrf(client),
        world.path(cell.endpoint),
        {},
        done=lambda: not signed_in(client),
        answer=302,
        location="/login",
    )


def change_password(world: World, cell: Cell) -> Attempt:
    """The account changes its own password; its session goes on (the view keeps it)."""
    name = cell.username
    current, new = world.passwords[name], world.fresh(f"{PASSWORD}-changed")

    def remember() -> None:
        world.passwords[name] = new

    return Attempt(
        world.clients[cell.key],
        world.tokens[cell.key],
        world.path(cell.endpoint),
        {"current_password": current, "new_password": new, "confirm_password": new},
        done=lambda: world.password_is(name, new),
        answer=302,
        location="/",
        then=remember,
    )


def add_user(world: World, cell: Cell) -> Attempt:
    """A new account, which must change the password the admin chose at its first login."""
    name = world.fresh("added")

    def added() -> bool:
        found = world.accounts.find(name)
        return found is not None and found.must_change_password

    form = {
        "username": name,
        "display_name": f"Added by {cell.username}",
        "agency": "police",
        "role": "officer",
        "level": "2",
        "posts": HOME,
        "password": NEW_USER_PASSWORD,
        "confirm_password": NEW_USER_PASSWORD,
    }
    return _admin(world, cell, world.path(cell.endpoint), form, added)


def disable_user(world: World, cell: Cell) -> Attempt:
    """A fresh enabled account is disabled."""
    name = world.sacrifice("off")
    return _admin(
        world,
        cell,
        world.path(cell.endpoint, username=name),
        {},
        lambda: _account(world, name).disabled,
    )


def enable_user(world: World, cell: Cell) -> Attempt:
    """A fresh disabled account is enabled."""
    name = world.sacrifice("on", disabled=True)
    return _admin(
        world,
        cell,
        world.path(cell.endpoint, username=name),
        {},
        lambda: not _account(world, name).disabled,
    )


def reset_password(world: World, cell: Cell) -> Attempt:
    """A fresh account's password is reset, and it must change it at its next login."""
    name = world.sacrifice("reset")
    return _admin(
        world,
        cell,
        world.path(cell.endpoint, username=name),
        {"password": RESET_PASSWORD, "confirm_password": RESET_PASSWORD},
        lambda: (
            world.password_is(name, RESET_PASSWORD) and _account(world, name).must_change_password
        ),
    )


def send_command(world: World, cell: Cell) -> Attempt:
    """A ping to the kiosk at HOME, which is not connected: allowed, the command goes to the
    broker and, no answer coming within COMMAND_WAIT_S, the page of the kiosk is shown waiting
    for it. The console stores nothing, allowed or not: the status and redirect tell them apart."""
    return Attempt(
        world.clients[cell.key],
        world.tokens[cell.key],
        world.path(cell.endpoint, device_id=DEVICE),
        {"command": "ping"},
        done=lambda: False,
        answer=303,
        location=f"/fleet/{DEVICE}",
        effect=False,
    )


def make_token(world: World, cell: Cell) -> Attempt:
    """A token for a fresh kiosk id at HOME: the token row exists, the answer shows the line."""
    name = world.fresh("kiosk-matrix-new")
    return Attempt(
        world.clients[cell.key],
        world.tokens[cell.key],
        world.path(cell.endpoint),
        {"device_id": name, "post": HOME, "validity": "1h"},
        done=lambda: bool(
            rows(engine(world.app), "SELECT post FROM enrollment_tokens WHERE device_id = ?", name)
        ),
        answer=200,
        says=f"borderlane-edge enroll --console {ENROLL_URL} --token {name}:",
    )


def revoke_kiosk(world: World, cell: Cell) -> Attempt:
    """A fresh enrolled kiosk (never heard from: the answer goes back to the enrollment page)
    is revoked: its certificate's row says so."""
    name = world.enrolled("kiosk-matrix-revoke")
    return Attempt(
        world.clients[cell.key],
        world.tokens[cell.key],
        world.path(cell.endpoint, device_id=name),
        {"reason": f"matrix {cell.username}", "confirm": name},
        done=lambda: bool(
            rows(
                engine(world.app),
                "SELECT serial FROM device_certificates WHERE device_id = ? "
                "AND revoked_at IS NOT NULL",
                name,
            )
        ),
        answer=303,
        location="/fleet/enroll",
    )


def dispose_referral(world: World, cell: Cell) -> Attempt:
    """A fresh escalation at the cell's post gets its final disposition (with the purpose)."""
    assert cell.site is not None
    minute = next(world.counter)
    crossing, _ = world.border.referral(cell.site, at(minute), "RAMIREZ", "ANA")
    world.border.decide(crossing, "escalate", at(minute + 0.5))
    crossing_id = crossing["id"]
    chosen = list(DISPOSITIONS)[minute % len(DISPOSITIONS)]
    return Attempt(
        world.clients[cell.key],
        world.tokens[cell.key],
        world.path(cell.endpoint, crossing_id=crossing_id),
        {
            **PURPOSE,
            "hit_id": crossing["screening"]["hits"][0]["hit_id"],
            "disposition": chosen,
            "reason": f"Matrix cell {cell.username}.",
        },
        done=lambda: bool(
            rows(
                engine(world.app),
                "SELECT id FROM dispositions WHERE crossing_id = ?",
                crossing_id,
            )
        ),
        answer=302,
        location=f"/referrals/{crossing_id}",
    )


def _admin(
    world: World, cell: Cell, path: str, form: dict[str, str], done: Callable[[], bool]
) -> Attempt:
    """An admin page's POST from the account's browser: allowed, it goes back to the list."""
    return Attempt(
        world.clients[cell.key],
        world.tokens[cell.key],
        path,
        form,
        done=done,
        answer=302,
        location="/admin/users",
    )


def _account(world: World, name: str) -> Account:
    found = world.accounts.find(name)
    assert found is not None, name
    return found


@dataclass(frozen=True)
class Route:
    prepare: Callable[[World, Cell], Attempt]
    sites: tuple[str | None, ...] = (None,)
    """The posts of its targets (None: the route acts on nothing at a post)."""


ROUTES: dict[str, Route] = {
    "auth.login": Route(login),
    "auth.logout": Route(logout),
    "auth.change_password": Route(change_password),
    "admin.add_user": Route(add_user),
    "admin.disable_user": Route(disable_user),
    "admin.enable_user": Route(enable_user),
    "admin.reset_password": Route(reset_password),
    "fleet.send": Route(send_command),
    "enrollment.make_token": Route(make_token),
    "enrollment.revoke_device": Route(revoke_kiosk),
    "referrals.dispose": Route(dispose_referral, (HOME, ELSEWHERE)),
}
"""Every POST route's request builder, by endpoint."""


# -- the matrix ---------------------------------------------------------------------------------


ENROLL_URL = "https://enroll.example.bz:8443"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, broker: Any) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("access-matrix-post")
    db = str(directory / "console.db")
    setup = open_database(db)
    accounts = Accounts(setup, hasher=FAST_HASHER)
    passwords = {}
    for role, agency, level in itertools.product(ROLES, AGENCIES, LEVELS):
        name = username(role, agency, level)
        accounts.create(
            name,
            f"{role.title()} {agency} {level}",
            agency=agency,
            role=role,
            level=level,
            posts=(HOME,),
            password=PASSWORD,
            must_change_password=False,
        )
        passwords[name] = PASSWORD
    setup.dispose()
    fleet = Fleet(db)
    try:
        moment = dt.datetime.now(dt.UTC)
        fleet.birth(DEVICE, moment)
        fleet.heartbeat(DEVICE, moment)
    finally:
        fleet.close()

    # The session's broker: commands and revocations really reach it.
    devices = device_settings(broker, ENROLL_URL)
    app = create_app(
        {
            "DATABASE": db,
            "INSTANCE_PATH": str(directory / "instance"),
            "SETTINGS": Settings(devices=devices),
            "BROKER": console_endpoint(broker),
            "COMMAND_WAIT_S": 0.05,
            "TESTING": True,
        }
    )
    # The fast hasher for every login, password change and account made here (see the GET
    # matrix); the forms and views are the real ones.
    app_accounts = app.extensions[ACCOUNTS_KEY] = Accounts(
        writer_engine(app), Settings(), reader=engine(app), hasher=FAST_HASHER
    )
    targets, unknown = [], []
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or ()):
            continue
        if rule.endpoint not in ROUTES:
            unknown.append(f"{rule} ({rule.endpoint})")
            continue
        targets += [(rule.endpoint, site) for site in ROUTES[rule.endpoint].sites]

    border = Border(db)
    made = World(
        app,
        app.extensions[POLICY_KEY],
        app_accounts,
        border,
        {},
        {},
        targets,
        unknown,
        passwords,
        enrolling=EnrollmentSettings(
            device_ca=broker.pki.devices,
            broker_host=broker.host,
            broker_port=broker.tls_port,
            broker_ca_pem=broker.ca.cert_path.read_text(),
        ),
    )
    for key in itertools.product(ROLES, AGENCIES, LEVELS):
        client = made.login(username(*key))
        made.clients[key] = client
        made.tokens[key] = csrf(client)
    try:
        yield made
    finally:
        border.close()
        dispose(app)


def refusal(world: World, cell: Cell) -> int | None:
    """What the policy implies for *cell*: None when allowed, else 403, or 404 where the
    refusing ``@require`` layer hides existence. Public and signed-in routes let every account
    in."""
    view = world.app.view_functions[cell.endpoint]
    if getattr(view, "public", False) or getattr(view, "signed_in", False):
        return None
    layers = guards(view)
    assert layers, f"{cell.endpoint} is neither public, signed in nor guarded"
    assert layers[0].action == view.required_action, cell.endpoint
    who = principal(cell.role, cell.agency, cell.level)
    for layer in layers:
        resource = Resource(site=cell.site) if layer.resource is not None else None
        if not world.policy.decide(who, layer.action, resource):
            return 404 if layer.hide else 403
    return None


def judge(attempt: Attempt, refused: int | None, response: TestResponse) -> str | None:
    """What is wrong with *response* to *attempt* (None: nothing)."""
    got = response.status_code
    where = response.headers.get("Location", "")
    if refused is not None:
        effect = attempt.done()
        if got != refused:
            return f"got {got} {where}, expected {refused}" + (
                ", and the action took effect" if effect else ""
            )
        return f"refused with {got}, but the action took effect" if effect else None
    if got != attempt.answer:
        return f"got {got} {where}, expected {attempt.answer} {attempt.location or ''}"
    if attempt.location is not None and urlsplit(where).path != attempt.location:
        return f"redirected to {where}, expected {attempt.location}"
    if attempt.says is not None and attempt.says not in response.get_data(True):
        return f"the {got} page does not say {attempt.says!r}"
    if attempt.done() != attempt.effect:
        return "answered as allowed, but " + (
            "nothing changed" if attempt.effect else "something changed"
        )
    return None


def test_every_post_route_has_a_request_here(world: World) -> None:
    assert not world.unknown, f"POST routes this test cannot build a request for: {world.unknown}"


def test_every_account_gets_what_the_policy_decides_on_every_post_route(world: World) -> None:
    started = time.monotonic()
    assert not world.unknown, f"POST routes this test cannot build a request for: {world.unknown}"
    failures: list[str] = []
    outcomes: dict[str, Counter[int | None]] = {}
    """endpoint -> expected refusal (None: allowed) -> cells."""
    csrf_checked: set[str] = set()
    cells = 0
    for key in itertools.product(ROLES, AGENCIES, LEVELS):
        for endpoint, site in world.targets:
            cell = Cell(*key, endpoint, site)
            refused = refusal(world, cell)
            attempt = ROUTES[endpoint].prepare(world, cell)
            assert not attempt.done(), f"{cell}: the effect is there before the request"
            if refused is None and endpoint not in csrf_checked:
                csrf_checked.add(endpoint)
                response = attempt.send(with_csrf=False)
                if response.status_code != 400 or attempt.done():
                    failures.append(
                        f"{cell} without the CSRF token: got {response.status_code}"
                        f"{', and the action took effect' if attempt.done() else ''}"
                    )
            response = attempt.send()
            cells += 1
            outcomes.setdefault(endpoint, Counter())[refused] += 1
            problem = judge(attempt, refused, response)
            if problem is not None:
                failures.append(f"{cell}: {problem}")
            elif refused is None and attempt.then is not None:
                attempt.then()
    assert not failures, f"{len(failures)} of {cells} cells wrong:\n" + "\n".join(failures)

    # Not vacuous: every POST route requested, and its CSRF refusal tried; every guarded route
    # both allowed and refused somewhere; the hidden referral hidden from someone.
    posts = {
        rule.endpoint for rule in world.app.url_map.iter_rules() if "POST" in (rule.methods or ())
    }
    assert outcomes.keys() == posts
    assert csrf_checked == posts
    for endpoint, seen in outcomes.items():
        assert seen[None] > 0, f"{endpoint}: no account allowed"
        if guards(world.app.view_functions[endpoint]):
            assert seen.total() > seen[None], f"{endpoint}: no account refused"
    assert outcomes["referrals.dispose"][404] > 0
    assert cells == len(ROLES) * len(AGENCIES) * len(LEVELS) * len(world.targets)
    summary = {endpoint: dict(seen) for endpoint, seen in outcomes.items()}
    print(f"{cells} cells in {time.monotonic() - started:.1f} s: {summary}")


def test_nobody_logged_in_is_sent_to_the_login_page_and_changes_nothing(world: World) -> None:
    """The same requests (targets an admin of the border agency could act on) from a browser
    that has not logged in, with its CSRF token: every route that is not public redirects to the
    login page and changes nothing."""
    anonymous = world.app.test_client()
    token = csrf(anonymous)
    checked = 0
    for endpoint, site in world.targets:
        if getattr(world.app.view_functions[endpoint], "public", False):
            continue
        cell = Cell("admin", "immigration", 4, endpoint, site)
        attempt = replace(ROUTES[endpoint].prepare(world, cell), client=anonymous, token=token)
        response = attempt.send()
        assert response.status_code == 302, (cell, response.status_code)
        assert urlsplit(response.headers["Location"]).path == "/login", cell
        assert not attempt.done(), f"{cell}: the action took effect"
        checked += 1
    assert checked > 0
