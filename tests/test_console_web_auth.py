"""Logging in to the console, its sessions, CSRF and the web shell, in real headless Chromium on
the real app served by waitress (``console_web``: one server and one browser for the session),
and with Flask's test client where a browser adds nothing (cookie flags, the admin's forms).

What a person sees: each role's navigation, a technician's pages free of traveller data, a
form posted without its CSRF token refused, an idle session sent back to the login page, a
locked-out account answered like a wrong password, the forced password change."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlsplit

import pytest
from selenium.webdriver.common.by import By

from console.accounts import REFUSED
from console.records import classify
from console.settings import LockoutSettings, Settings
from console.store import Store
from console.web import create_app
from console.web.db import dispose
from harness.browser import wait_until
from harness.console import availability, crossing, health
from harness.console_web import (
    PASSWORD,
    ROLE_ACCOUNTS,
    SITE,
    add_role_accounts,
    csrf,
    serve_console,
)
from mqtt_schemas import examples, topics
from provisioning.broker import free_port

NOW = "2026-11-24T10:00:00.000Z"
TRAVELLER = {"surname": "QUISPEHUAMAN", "given_names": "ESMERALDA", "document_number": "ZX9988776"}
"""A traveller whose name and document number must never appear on a technician's page."""

SEES = {
    "admin": {"Fleet", "Alerts", "Statistics", "Users"},
    "technician": {"Fleet", "Alerts"},
    "officer": {"Referrals", "Crossings"},
    "supervisor": {"Referrals", "Crossings", "Statistics"},
    "analyst": {"Statistics"},
    "auditor": {"Audit log"},
}
"""The header links each role gets, from the issue's words (technicians see devices, analysts
aggregates, officers and supervisors crossings and referrals, auditors the audit log only),
where the page exists in this build."""


def put(db: str, device_id: str, channel: str, payload: dict) -> None:
    store = Store.open(db)
    try:
        topic = topics.device_topic(device_id, channel)
        store.apply([classify(topic, json.dumps(payload).encode())], "console-1", NOW)
    finally:
        store.close()


@pytest.fixture(scope="module")
def traveller_data(console_web):
    """A kiosk, a crossing and a watchlist hit naming :data:`TRAVELLER` in the session's
    database: there is personal data a page could leak."""
    db = console_web.db
    put(db, "kiosk-w1", "availability", availability("kiosk-w1", "online", 1, 1))
    put(db, "kiosk-w1", "health", health("kiosk-w1", 1, 2))
    record = crossing("kiosk-w1", 3, site=SITE)
    record["document"]["number"] = TRAVELLER["document_number"]
    put(db, "kiosk-w1", "crossings", record)
    hit = json.loads(json.dumps(examples("screening-hit")["valid"][0]["payload"]))
    hit.update(device_id="kiosk-w1", seq=4, crossing_id=record["id"], site=SITE)
    hit["id"] = record["id"][:-4] + "beef"
    hit["traveller"].update(TRAVELLER)
    put(db, "kiosk-w1", "hits", hit)
    return db


def nav_labels(driver) -> set[str]:
    return {link.text for link in driver.find_elements(By.CSS_SELECTOR, "#nav a")}


def registered_labels(app) -> set[str]:
    from console.web import NAV

    return {item.label for item in NAV if item.endpoint in app.view_functions}


def log_out(driver) -> None:
    driver.find_element(By.CSS_SELECTOR, "#logout button").click()
    wait_until(driver, lambda d: "/login" in d.current_url)


# -- in Chromium ---------------------------------------------------------------------------


def test_each_role_sees_its_links_and_who_it_is(console_web, page):
    registered = registered_labels(console_web.app)
    assert "Users" in registered  # at least the admin's page: the check is not empty
    for role, spec in ROLE_ACCOUNTS.items():
        console_web.login(page, role)
        assert nav_labels(page) == SEES[role] & registered, role
        who = page.find_element(By.ID, "who").text
        agency = console_web.app.extensions["borderlane_settings"].agencies[spec.agency]
        assert spec.display_name in who and agency in who, who
        assert f"{spec.role} · level {spec.level}" in who
        log_out(page)
        assert page.find_element(By.ID, "notice").text == "You have logged out."
        page.get(console_web.url("/"))  # logged out means logged out
        wait_until(page, lambda d: "/login" in d.current_url)


def test_a_technicians_pages_name_no_traveller(console_web, page, traveller_data):
    """Every page a technician can reach from the header, and every page those link to (a
    device's page...), is free of the traveller's name and document number."""
    console_web.login(page, "technician")
    start = [link.get_attribute("href") for link in page.find_elements(By.CSS_SELECTOR, "#nav a")]
    seen: set[str] = set()
    queue = [console_web.url("/"), *start]
    while queue and len(seen) < 40:
        url = queue.pop(0)
        if url in seen or urlsplit(url).netloc != urlsplit(console_web.url_root).netloc:
            continue
        seen.add(url)
        page.get(url)
        source = page.page_source
        for value in TRAVELLER.values():
            assert value not in source, f"{value} on {url}"
        for link in page.find_elements(By.CSS_SELECTOR, "main a[href]"):
            href = urljoin(url, link.get_attribute("href")).split("#")[0]
            if href not in seen:
                queue.append(href)
    assert seen  # at least the home page was read
    # The data is there for those who may see it: the checks above could fail.
    response = console_web.client().get("/api/devices", headers=console_web.bearer("admin"))
    assert response.status_code == 200 and response.get_json()["devices"]


def test_a_post_without_the_csrf_token_is_refused(console_web, page):
    console_web.login(page, "analyst")
    # The logout form, stripped of its token: another site's forged form would look like this.
    page.execute_script(
        "document.querySelector('#logout input[name=csrf_token]').remove();"
        "document.querySelector('#logout').submit();"
    )
    wait_until(page, lambda d: d.find_elements(By.ID, "error-title"))
    assert page.find_element(By.ID, "error-title").text == "400 Bad request"
    assert "CSRF" in page.find_element(By.ID, "error").text
    page.get(console_web.url("/account/password"))
    assert page.find_elements(By.ID, "logout")  # still logged in: the POST did nothing


def test_an_idle_session_goes_back_to_the_login_page(console_web, page):
    console_web.login(page, "auditor")
    page.get(console_web.url("/account/password"))
    assert "/account/password" in page.current_url
    idle = console_web.accounts.settings.session.idle_minutes
    with console_web.clock.shifted(idle * 60 + 5):
        page.get(console_web.url("/account/password"))
        wait_until(page, lambda d: "/login" in d.current_url)
        notice = page.find_element(By.ID, "notice").text
    assert "after a time without use" in notice
    assert "next=/account/password" in page.current_url  # and back there after logging in


def test_lockout_answers_like_a_wrong_password(tmp_path, page):
    """Its own server: the failures from 127.0.0.1 must not lock the session's server out."""
    settings = Settings(lockout=LockoutSettings(failures=3, window_minutes=15))
    with serve_console(str(tmp_path / "console.db"), tmp_path / "web", settings=settings) as web:
        for _ in range(3):
            page.get(web.url("/login"))
            page.find_element(By.ID, "username").send_keys("officer")
            page.find_element(By.ID, "password").send_keys("not the password")
            page.find_element(By.CSS_SELECTOR, "#login button").click()
            wait_until(page, lambda d: d.find_elements(By.ID, "error"))
            assert page.find_element(By.ID, "error").text == REFUSED
        with pytest.raises(AssertionError, match=re.escape(REFUSED)):
            web.login(page, "officer")  # the right password, locked: the same words
        assert web.accounts.failures(username="officer") == 4
        with web.clock.shifted(16 * 60):  # the window slides past the failures
            web.login(page, "officer")
            assert page.find_elements(By.ID, "logout")


def test_the_first_login_forces_a_new_password(console_web, page):
    console_web.accounts.create(
        "newcomer",
        "Nina Newcomer",
        agency="statistics",
        role="analyst",
        level=1,
        password="given by the admin",
    )
    console_web.login(page, "newcomer", "given by the admin")
    assert "/account/password" in page.current_url
    assert page.find_elements(By.ID, "forced") and not page.find_elements(By.ID, "nav")
    page.get(console_web.url("/admin/users"))  # anywhere else: back to the password page
    assert "/account/password" in page.current_url
    page.find_element(By.ID, "current_password").send_keys("given by the admin")
    page.find_element(By.ID, "new_password").send_keys("only nina knows this")
    page.find_element(By.ID, "confirm_password").send_keys("only nina knows this")
    page.find_element(By.CSS_SELECTOR, "#change-password button").click()
    wait_until(page, lambda d: "/account/password" not in d.current_url)
    assert page.find_element(By.ID, "notice").text == "Your password has been changed."
    assert not console_web.accounts.find("newcomer").must_change_password


# -- with the test client ------------------------------------------------------------------


def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(console_web, tmp_path):
    client = console_web.client()
    response = client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": csrf(client)}
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    https = create_app(
        {"DATABASE": console_web.db, "INSTANCE_PATH": str(console_web.instance), "HTTPS": True}
    )
    client = https.test_client()
    response = client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": csrf(client)}
    )
    assert "Secure" in response.headers["Set-Cookie"]
    dispose(https)


def test_a_session_ends_at_its_absolute_limit_even_when_in_use(console_web):
    client = console_web.client("analyst")
    limits = console_web.accounts.settings.session
    step = (limits.idle_minutes - 1) * 60  # a click just before the idle limit each time
    start = console_web.clock.offset
    try:
        for _ in range(limits.absolute_hours * 3600 // step):
            console_web.clock.offset += step
            assert client.get("/account/password").status_code == 200
        console_web.clock.offset += step  # now past the absolute limit
        response = client.get("/account/password")
    finally:
        console_web.clock.offset = start
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert "time limit" in client.get("/login").get_data(True)


def test_a_disabled_user_or_a_changed_password_ends_the_session_at_once(console_web):
    console_web.accounts.create(
        "temp-officer",
        "Tina Temp",
        agency="immigration",
        role="officer",
        level=1,
        password=PASSWORD,
        must_change_password=False,
    )
    client = console_web.client("temp-officer")
    assert client.get("/account/password").status_code == 200
    console_web.accounts.set_password("temp-officer", "reset by an admin", must_change=False)
    assert client.get("/account/password").status_code == 302
    assert "password was changed" in client.get("/login").get_data(True)
    client = console_web.client("temp-officer", "reset by an admin")
    console_web.accounts.disable("temp-officer")
    assert client.get("/account/password").status_code == 302
    assert "disabled" in client.get("/login").get_data(True)


def test_admins_manage_users_in_the_ui(console_web):
    admin = console_web.client("admin")
    listing = admin.get("/admin/users").get_data(True)
    assert "Olivia Officer" in listing and "Aurelio Auditor" in listing
    token = csrf(admin, "/admin/users")
    added = admin.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "username": "pcruz",
            "display_name": "Pedro Cruz",
            "agency": "police",
            "role": "officer",
            "level": "2",
            "posts": "bz-santa-elena, bz-benque-viejo",
            "password": "first password 1",
            "confirm_password": "first password 1",
        },
    )
    assert added.status_code == 302
    made = console_web.accounts.find("pcruz")
    assert made.posts == {"bz-santa-elena", "bz-benque-viejo"} and made.must_change_password
    duplicate = admin.post(
        "/admin/users",
        data={"csrf_token": token, "username": "pcruz", "display_name": "X", "agency": "police",
              "role": "officer", "level": "1", "password": "x" * 12, "confirm_password": "x" * 12},
    )  # fmt: skip
    assert duplicate.status_code == 400 and "already exists" in duplicate.get_data(True)
    assert admin.post("/admin/users/pcruz/disable", data={"csrf_token": token}).status_code == 302
    assert console_web.accounts.find("pcruz").disabled
    assert admin.post("/admin/users/pcruz/enable", data={"csrf_token": token}).status_code == 302
    reset = admin.post(
        "/admin/users/pcruz/password",
        data={
            "csrf_token": token,
            "password": "second one 22",
            "confirm_password": "second one 22",
        },
    )
    assert reset.status_code == 302
    assert console_web.accounts.login("pcruz", "second one 22", "10.1.1.1").must_change_password
    myself = admin.post("/admin/users/admin/disable", data={"csrf_token": token})
    assert myself.status_code == 400 and not console_web.accounts.find("admin").disabled
    assert admin.post("/admin/users/nobody/enable", data={"csrf_token": token}).status_code == 404
    # Only admins: an officer is refused the page and the forms.
    officer = console_web.client("officer")
    assert officer.get("/admin/users").status_code == 403
    refused = officer.post("/admin/users/pcruz/disable", data={"csrf_token": csrf(officer)})
    assert refused.status_code == 403 and not console_web.accounts.find("pcruz").disabled


def test_login_never_redirects_off_the_site(console_web):
    client = console_web.client()
    for target, expected in (("//evil.example/x", "/"), ("https://evil.example/", "/")):
        response = client.post(
            "/login",
            data={"username": "analyst", "password": PASSWORD, "next": target,
                  "csrf_token": csrf(client)},
        )  # fmt: skip
        assert response.headers["Location"] == expected
        client = console_web.client()
    response = client.post(
        "/login",
        data={"username": "analyst", "password": PASSWORD, "next": "/account/password",
              "csrf_token": csrf(client)},
    )  # fmt: skip
    assert response.headers["Location"] == "/account/password"


def test_errors_are_pages_or_json_never_a_traceback(console_web, tmp_path):
    client = console_web.client("analyst")
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "<h1" in missing.get_data(True)
    api_missing = client.get("/api/no/such")
    assert api_missing.status_code == 404 and api_missing.get_json()["error"]
    assert client.get("/admin/users").status_code == 403
    assert "Not allowed" in client.get("/admin/users").get_data(True)
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"):
        assert header in missing.headers
    assert missing.headers["Cache-Control"] == "no-store"

    from console.web.access import public

    broken = create_app({"DATABASE": console_web.db, "INSTANCE_PATH": str(console_web.instance)})

    @public
    def explode():
        raise RuntimeError("secret internals")

    broken.add_url_rule("/explode", "explode", explode)
    broken.add_url_rule("/api/explode", "api_explode", explode)
    for path in ("/explode", "/api/explode"):
        response = broken.test_client().get(path)
        body = response.get_data(True)
        assert response.status_code == 500, path
        assert "secret internals" not in body and "Traceback" not in body
    dispose(broken)
    away = create_app({"DATABASE": str(tmp_path / "gone.db"), "INSTANCE_PATH": str(tmp_path)})
    visitor = away.test_client()
    token = csrf(visitor)  # the login page itself needs no database
    unavailable = visitor.post(
        "/login", data={"username": "x", "password": "y", "csrf_token": token}
    )
    assert unavailable.status_code == 503
    assert "no console database" in unavailable.get_data(True) and "<h1" in unavailable.get_data(
        True
    )


def test_the_secret_key_is_made_once_private_and_refused_when_readable(tmp_path):
    config = {"DATABASE": str(tmp_path / "console.db"), "INSTANCE_PATH": str(tmp_path / "web")}
    first = create_app(config)
    key = tmp_path / "web" / "secret_key"
    assert os.stat(key).st_mode & 0o777 == 0o600 and len(key.read_bytes()) >= 32
    assert create_app(config).secret_key == first.secret_key == key.read_bytes()
    key.chmod(0o644)
    from console.web import InstanceError

    with pytest.raises(InstanceError, match="readable by others"):
        create_app(config)


def test_the_web_command_serves_on_waitress(tmp_path):
    """``borderlane-console web`` as a process: the login page, from waitress (its Server
    header), a secret key made 0600, and one line for a database that is not there."""
    db = str(tmp_path / "console.db")
    from console.accounts import Accounts
    from console.store import open_database
    from harness.console_web import FAST_HASHER

    engine = open_database(db)
    add_role_accounts(Accounts(engine, hasher=FAST_HASHER))
    engine.dispose()
    port = free_port()
    command = [sys.executable, "-m", "console", "web", "--db", db, "--instance"]
    server = subprocess.Popen(
        [*command, str(tmp_path / "web"), "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    body, headers = r.read().decode(), r.headers
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.communicate(timeout=5)[0]) from None
                time.sleep(0.1)
        assert 'id="login"' in body and headers["Server"] == "borderlane-console"
        assert os.stat(tmp_path / "web" / "secret_key").st_mode & 0o777 == 0o600
    finally:
        server.terminate()
        server.wait(10)
    missing = subprocess.run(
        [*command, str(tmp_path / "web"), "--db", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1
    assert missing.stderr == f"Error: no console database at {tmp_path / 'none.db'}\n"


def test_web_takes_the_broker_whole_or_not_at_all(tmp_path):
    """Commands from the device pages need the broker's address and the console's TLS identity;
    half of them is a usage error naming what is missing, before anything starts."""
    from click.testing import CliRunner

    from console.cli import cli

    ca = tmp_path / "ca.crt"
    ca.write_text("not used")
    result = CliRunner().invoke(
        cli,
        [
            "web",
            "--db",
            str(tmp_path / "c.db"),
            "--instance",
            str(tmp_path / "i"),
            "--cafile",
            str(ca),
        ],
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: --broker: give it with the other broker options"
    )
