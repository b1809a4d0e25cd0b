"""The console's web app for tests: the real app on waitress (the production server) in a thread
on a free loopback port, one account per role, and helpers to log in from Chromium, from
Flask's test client or with an API token.

::

    def test_fleet_page(console_web, page):              # page: harness.browser's fresh tab
        console_web.login(page, "technician")            # the role's account, PASSWORD
        page.get(console_web.url("/fleet"))

    def test_api(console_web):
        token = console_web.token("admin")               # Authorization: Bearer <token>
        client = console_web.client("analyst")           # a logged-in Flask test client
        client.post("/somewhere", data={"csrf_token": csrf(client), ...})

``console_web`` is one server for the whole session, on a SQLite database (``console_web.db``)
that tests may fill through :class:`console.store.Store`; its accounts are
:data:`ROLE_ACCOUNTS`, usernames equal to their role. Its clock (``console_web.clock``) can be
moved forward to expire sessions; move it back after (``with console_web.clock.shifted(s):``).

A test that needs its own settings or lockout state (failed logins from 127.0.0.1 count against
every login from there) starts its own with :func:`serve_console`.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from waitress import wasyncore
from waitress.server import create_server

from console.accounts import Accounts
from console.settings import Settings
from console.store import open_database
from console.web import create_app
from console.web.db import dispose

PASSWORD = "borderlane-demo"
"""Every role account's password in tests and in ``make demo`` (never in production)."""
SITE = "bz-santa-elena"
"""The post the officer and supervisor serve (the demo's post)."""


@dataclass(frozen=True)
class RoleAccount:
    display_name: str
    agency: str
    role: str
    level: int
    posts: tuple[str, ...] = ()


ROLE_ACCOUNTS: dict[str, RoleAccount] = {
    "admin": RoleAccount("Ada Admin", "immigration", "admin", 4, ("*",)),
    "technician": RoleAccount("Tomas Technician", "immigration", "technician", 2),
    "officer": RoleAccount("Olivia Officer", "immigration", "officer", 2, (SITE,)),
    "supervisor": RoleAccount("Samuel Supervisor", "immigration", "supervisor", 3, (SITE,)),
    "analyst": RoleAccount("Ana Analyst", "statistics", "analyst", 2),
    "auditor": RoleAccount("Aurelio Auditor", "justice", "auditor", 3),
}
"""One account per role, username = role: the officer of the border agency at level 2 on the
demo post, the supervisor at level 3, the analyst of the statistics agency."""


def add_role_accounts(accounts: Accounts, password: str = PASSWORD) -> dict[str, str]:
    """Create :data:`ROLE_ACCOUNTS` (no forced password change: for tests and the demo only);
    returns role -> username. Accounts that exist already are left as they are."""
    made = {}
    for username, spec in ROLE_ACCOUNTS.items():
        if accounts.find(username) is None:
            accounts.create(
                username,
                spec.display_name,
                agency=spec.agency,
                role=spec.role,
                level=spec.level,
                posts=spec.posts,
                password=password,
                must_change_password=False,
            )
        made[spec.role] = username
    return made


class MovableClock:
    """``time.time`` plus an offset the test moves: sessions and lockouts age without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    @contextlib.contextmanager
    def shifted(self, seconds: float) -> Iterator[None]:
        """The clock *seconds* ahead inside the block, back after."""
        self.offset += seconds
        try:
            yield
        finally:
            self.offset -= seconds


@dataclass
class ConsoleWeb:
    """A running console web server (see the module docstring)."""

    app: Flask
    url_root: str
    db: str
    instance: Path
    accounts: Accounts
    clock: MovableClock
    password: str = PASSWORD
    _tokens: dict[str, str] = field(default_factory=dict)

    def url(self, path: str = "/") -> str:
        return self.url_root + path

    def login(self, driver: WebDriver, username: str, password: str | None = None) -> None:
        """Log *username* in through the login page, as a person would, and wait for the page
        after it. Fails the test if the login page is still showing with an error."""
        driver.get(self.url("/login"))
        driver.find_element(By.ID, "username").send_keys(username)
        driver.find_element(By.ID, "password").send_keys(password or self.password)
        driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
        _wait(lambda: "/login" not in driver.current_url or _found(driver, "error"))
        if "/login" in driver.current_url:
            message = driver.find_element(By.ID, "error").text
            raise AssertionError(f"{username} could not log in: {message}")

    def client(self, username: str | None = None, password: str | None = None) -> FlaskClient:
        """A Flask test client on the same app, logged in as *username* (None: anonymous)."""
        client = self.app.test_client()
        if username is not None:
            response = client.post(
                "/login",
                data={
                    "username": username,
                    "password": password or self.password,
                    "csrf_token": csrf(client),
                },
            )
            if response.status_code != 302:
                raise AssertionError(f"{username} could not log in ({response.status_code})")
        return client

    def token(self, username: str) -> str:
        """An API token for *username* (made once per session)."""
        if username not in self._tokens:
            self._tokens[username] = self.accounts.issue_token(username)
        return self._tokens[username]

    def bearer(self, username: str) -> dict[str, str]:
        """Headers for an API request as *username*."""
        return {"Authorization": f"Bearer {self.token(username)}"}


class TokenClient:
    """A Flask test client that sends an API token with every request (``get``, ``post``)."""

    def __init__(self, app: Flask, token: str) -> None:
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(path, headers=self.headers, **kwargs)


def role_tokens(db: str) -> dict[str, str]:
    """An API token per role in the console database *db* (its :data:`ROLE_ACCOUNTS` made if
    missing, the database too): role -> token."""
    engine = open_database(db)
    try:
        accounts = Accounts(engine, hasher=FAST_HASHER)
        roles = add_role_accounts(accounts)
        return {role: accounts.issue_token(username) for role, username in roles.items()}
    finally:
        engine.dispose()


def api_client(app: Flask, role: str = "admin") -> TokenClient:
    """A client of *app*'s API as *role*'s account (made in the app's database if missing)."""
    return TokenClient(app, role_tokens(app.config["DATABASE"])[role])


def csrf(client: FlaskClient, path: str | None = None) -> str:
    """The CSRF token of *client*'s session, read from a form as a browser has it: on *path*,
    else the login page (anonymous) or the password page (logged in: every user has it)."""
    response = client.get(path or "/login")
    if path is None and response.status_code == 302:
        response = client.get("/account/password")
    found = re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(True))
    if not found:
        raise AssertionError(f"no CSRF token in the form on {path or '/login'}")
    return found.group(1)


def _found(driver: WebDriver, element_id: str) -> bool:
    return bool(driver.find_elements(By.ID, element_id))


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the page did not change within 10 s")
        time.sleep(0.05)


FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
"""For creating test accounts quickly. The app itself uses the default (strong) parameters, so
its first login of each account rehashes: that path is exercised on every run."""


@contextlib.contextmanager
def serve_console(
    db: str,
    instance: Path,
    *,
    settings: Settings | None = None,
    config: dict[str, Any] | None = None,
    accounts: bool = True,
) -> Iterator[ConsoleWeb]:
    """A console app on waitress on a free loopback port, in a thread, for the block. With
    *accounts*, :data:`ROLE_ACCOUNTS` are created first (the database is created if missing)."""
    settings = settings or Settings()
    engine = open_database(db)
    clock = MovableClock()
    setup = Accounts(engine, settings, hasher=FAST_HASHER, clock=clock)
    if accounts:
        add_role_accounts(setup)
    app = create_app(
        {
            "DATABASE": db,
            "INSTANCE_PATH": str(instance),
            "SETTINGS": settings,
            "CLOCK": clock,
            "TESTING": True,
            **(config or {}),
        }
    )
    server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="borderlane-test")
    thread = threading.Thread(target=server.run, name="console-web", daemon=True)
    thread.start()
    try:
        yield ConsoleWeb(
            app=app,
            url_root=f"http://127.0.0.1:{server.effective_port}",
            db=db,
            instance=instance,
            accounts=setup,
            clock=clock,
        )
    finally:
        server.task_dispatcher.shutdown()
        server.close()
        wasyncore.close_all(server._map)  # the open connections: keep-alive browsers
        thread.join(5)
        dispose(app)
        engine.dispose()


@pytest.fixture(scope="session")
def console_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWeb]:
    """The session's console web server (SQLite), with an account per role."""
    directory = tmp_path_factory.mktemp("console-web")
    with serve_console(str(directory / "console.db"), directory / "instance") as web:
        yield web
