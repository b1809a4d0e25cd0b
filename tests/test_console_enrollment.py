"""Enrolling and revoking kiosks from the console's web pages (issue 13, items 1 and 3).

Over HTTP (Flask's test client on the real app): the form's refusals are one line naming the
field (400), a token is shown once with the kiosk's command and its QR code and never listed,
``[devices]`` in console.toml is checked strictly, and without it revocation says it is
unavailable (503 for a POST, nothing revoked). Then in headless Chromium, on the real stack
(the session's Mosquitto and PKI, the enrollment endpoint over HTTPS, ``borderlane-edge
enroll``): a technician makes a token, the kiosk enrolls with the command the page shows and
connects; a level-3 technician revokes it from its device page, the broker drops the
connection, and the kiosk's certificate is refused from then on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from test_console_alerts import Fleet
from test_device_enrollment import EDGE, endpoint, url  # noqa: F401 (endpoint: a fixture)

from console.connection import Endpoint
from console.settings import DeviceSettings, Settings, SettingsError, parse_settings
from console.store import open_database
from edge.uplink.enroll import EnrollError, check_with_broker
from harness.browser import wait_until
from harness.console import rows
from harness.console_web import ConsoleWeb, csrf, serve_console

POST = "bz-santa-elena"


def console_endpoint(broker: Any) -> Endpoint:
    """The session broker's service listener as the console (the web app's ``BROKER``)."""
    console = broker.identity("console")
    return Endpoint(
        broker.host, broker.service_port, broker.ca.cert_path, console.cert_path, console.key_path
    )


def device_settings(broker: Any, enroll_url: str, **kiosk: str) -> DeviceSettings:
    """``[devices]`` for the session broker: its device CA and its pid file."""
    return DeviceSettings(
        ca_dir=broker.pki.devices.directory,
        broker_pid_file=broker.process.config.directory / "mosquitto.pid",
        enroll_url=enroll_url,
        **kiosk,
    )


@pytest.fixture
def engine(tmp_path: Path):
    """The console database (SQLite) the endpoint and the web pages share."""
    made = open_database(str(tmp_path / "console.db"))
    yield made
    made.dispose()


@contextlib.contextmanager
def web_console(tmp_path: Path, **options: Any) -> Iterator[ConsoleWeb]:
    settings = options.pop("settings", Settings())
    with serve_console(
        str(tmp_path / "console.db"), tmp_path / "instance", settings=settings, config=options
    ) as web:
        yield web


def error_line(html: str, element: str) -> str:
    found = re.search(rf'id="{element}"[^>]*>(.*?)</p>', html, re.S)
    assert found, html
    return " ".join(found.group(1).split())


# -- over HTTP ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"device_id": ""}, "device_id: the kiosk&#39;s id"),
        ({"device_id": "console"}, "Not made: device id &#39;console&#39; is reserved"),
        ({"device_id": "enroll"}, "device_id: &#39;enroll&#39; is a page of the console"),
        ({"device_id": "kiosk/a"}, "Not made: "),
        ({"post": "Santa Elena"}, "post: a site id"),
        ({"validity": "2y"}, "validity: one of 1h, 8h, 24h, 3d, 7d"),
        ({"replace": "yes"}, "replace: ticked (1) or not sent"),
    ],
)
def test_a_refused_token_is_one_line_at_the_form(tmp_path, engine, form, says):
    with web_console(tmp_path) as web:
        client = web.client("technician")
        data = {"device_id": "kiosk-web-1", "post": POST, "validity": "24h", **form}
        answer = client.post("/fleet/enroll", data={**data, "csrf_token": csrf(client)})
        assert answer.status_code == 400
        assert error_line(answer.get_data(True), "enroll-error").startswith(says)
        assert 'id="enroll"' in answer.get_data(True)  # the form again, as filled
    assert rows(engine, "SELECT * FROM enrollment_tokens") == []


def test_a_token_is_shown_once_with_its_command_and_qr_code_and_never_listed(tmp_path, engine):
    with web_console(tmp_path) as web:
        client = web.client("technician")
        first = client.post(
            "/fleet/enroll",
            data={"device_id": "kiosk-web-2", "post": POST, "validity": "8h",
                  "csrf_token": csrf(client)},
        )  # fmt: skip
        page = first.get_data(True)
        assert first.status_code == 200
        token = re.search(r'<code id="token">([^<]+)</code>', page).group(1)
        assert token.startswith("kiosk-web-2:")
        command = re.search(r'<pre id="command"[^>]*>([^<]+)</pre>', page).group(1)
        assert shlex.split(command) == [
            "borderlane-edge", "enroll", "--console", "https://CONSOLE:8443", "--token", token,
            "--state-dir", "/etc/borderlane", "--ca", "/etc/borderlane/service-ca.crt",
        ]  # fmt: skip
        assert 'id="placeholder"' in page  # no enroll_url configured: said so
        svg = re.search(r'<figure id="qr" class="qr">(<svg .*?</svg>)</figure>', page, re.S)
        assert svg and 'class="qr"' in svg.group(1) and "<path" in svg.group(1)
        assert first.headers["Cache-Control"] == "no-store"
        listed = client.get("/fleet/enroll").get_data(True)
        assert "kiosk-web-2" in listed and "not used yet" in listed
        assert token.split(":")[1] not in listed
        # Enrolled already: the second token needs "replace".
        again = client.post(
            "/fleet/enroll",
            data={"device_id": "kiosk-web-2", "post": POST, "validity": "1h",
                  "csrf_token": csrf(client)},
        )  # fmt: skip
        assert again.status_code == 200  # not enrolled yet: a second token is fine
    (made, _) = rows(engine, "SELECT * FROM enrollment_tokens ORDER BY created_at")
    assert made["created_by"] == "technician" and made["post"] == POST
    assert token not in str(made)  # its hash only
    audit = rows(engine, "SELECT username, action FROM audit_log WHERE action = 'device.token'")
    assert {(r["username"], r["action"]) for r in audit} == {("technician", "device.token")}


def test_revocation_without_device_settings_says_why_and_revokes_nothing(tmp_path, engine):
    with web_console(tmp_path) as web:
        client = web.client("admin")
        form = client.get("/fleet/kiosk-web-3/revoke")
        assert form.status_code == 200
        assert "[devices] ca_dir and broker_pid_file" in error_line(
            form.get_data(True), "revoke-unavailable"
        )
        assert re.search(r'<button type="submit" class="danger" disabled', form.get_data(True))
        refused = client.post(
            "/fleet/kiosk-web-3/revoke",
            data={"reason": "stolen", "confirm": "kiosk-web-3", "csrf_token": csrf(client)},
        )
        assert refused.status_code == 503
        assert "revocation is unavailable" in refused.get_data(True)
        # Bad input is refused first, naming the field.
        for data, says in (
            ({"reason": "", "confirm": "kiosk-web-3"}, "reason: "),
            ({"reason": "lost", "confirm": "kiosk-web-4"}, "confirm: type kiosk-web-3"),
        ):
            answer = client.post(
                "/fleet/kiosk-web-3/revoke", data={**data, "csrf_token": csrf(client)}
            )
            assert answer.status_code == 400
            assert error_line(answer.get_data(True), "revoke-error").startswith(says)
        assert client.get("/fleet/kiosk%20web/revoke").status_code == 400
    assert rows(engine, "SELECT * FROM audit_log WHERE action = 'device.revoke'") == []


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"ca": "/x"}, "devices: unknown key 'ca'"),
        ({"ca_dir": "pki/devices"}, "devices.ca_dir: an absolute path"),
        ({"broker_pid_file": 7}, "devices.broker_pid_file: a string"),
        ({"kiosk_ca_file": "/etc/my ca.crt"}, "devices.kiosk_ca_file: a string"),
        ({"enroll_url": "http://console:8443"}, "devices.enroll_url: an https://HOST[:PORT]"),
        ({"enroll_url": "https://console:8443/enroll"}, "devices.enroll_url: an https://"),
        ({"enroll_url": "https://console:99999"}, "devices.enroll_url: an https://"),
    ],
)
def test_the_devices_table_is_checked_strictly(table, says):
    with pytest.raises(SettingsError) as refused:
        parse_settings({"devices": table})
    assert says in str(refused.value)


def test_the_devices_table_gives_revocation_its_paths():
    found = parse_settings(
        {"devices": {"ca_dir": "/pki/devices", "broker_pid_file": "/run/m.pid",
                     "enroll_url": "https://console.example.bz:8443/"}}
    ).devices  # fmt: skip
    assert found.revocation and found.ca_dir == Path("/pki/devices")
    assert found.enroll_url == "https://console.example.bz:8443"
    assert not Settings().devices.revocation


# -- in a browser, on the real stack ------------------------------------------------------------


class ConnectedKiosk:
    """An MQTT session on the broker's kiosk listener with the enrolled certificate (paho's
    network thread); records when the broker ends it."""

    def __init__(self, broker: Any, state: Path, device_id: str) -> None:
        self.connected = threading.Event()
        self.dropped = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5
        )
        self.client.tls_set(
            str(state / "ca.crt"), str(state / "kiosk.crt"), str(state / "kiosk.key")
        )
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_disconnect = lambda *a: self.dropped.set()
        self.client.connect(broker.host, broker.tls_port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_a_technician_enrolls_a_kiosk_from_the_page_and_revokes_it_from_its_device_page(
    broker,
    endpoint,  # noqa: F811 (the imported fixture)
    engine,
    tmp_path,
    page,
):
    server, _ = endpoint
    state = tmp_path / "kiosk-etc"
    devices = device_settings(
        broker, url(server), kiosk_state_dir=str(state), kiosk_ca_file=str(broker.ca.cert_path)
    )
    with web_console(
        tmp_path, settings=Settings(devices=devices), BROKER=console_endpoint(broker)
    ) as web:
        web.accounts.create(
            "tech3", "Teresa Technician", agency="immigration", role="technician", level=3,
            password=web.password, must_change_password=False,
        )  # fmt: skip
        web.login(page, "technician")
        wait_until(page, lambda d: "/fleet" in d.current_url)
        page.find_element(By.LINK_TEXT, "Enroll a kiosk").click()
        wait_until(page, lambda d: d.current_url.endswith("/fleet/enroll"))
        page.find_element(By.ID, "device-id").send_keys("kiosk-web-9")
        page.find_element(By.ID, "post").send_keys(POST)
        Select(page.find_element(By.ID, "validity")).select_by_value("1h")
        page.find_element(By.CSS_SELECTOR, "#enroll button[type=submit]").click()
        wait_until(page, lambda d: d.find_elements(By.ID, "command"))
        qr = page.find_element(By.CSS_SELECTOR, "#qr svg")
        assert qr.size["width"] >= 100 and qr.size["width"] == qr.size["height"]  # drawn, square
        command = page.find_element(By.ID, "command").text
        token = page.find_element(By.ID, "token").text
        assert f"--token {token} " in command and "https://127.0.0.1:" in command

        # At the kiosk: exactly the line the page shows.
        words = shlex.split(command)
        assert words[:2] == ["borderlane-edge", "enroll"]
        done = subprocess.run([str(EDGE), *words[1:]], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        kiosk = ConnectedKiosk(broker, state, "kiosk-web-9")
        try:
            assert kiosk.connected.wait(10), "the enrolled kiosk did not connect"
            with contextlib.closing(Fleet(web.db)) as fleet:  # it is heard from: on the fleet
                fleet.birth("kiosk-web-9", dt.datetime.now(dt.UTC))
            page.get(web.url("/fleet/enroll"))
            row = page.find_element(By.CSS_SELECTOR, "#certificates tr[data-device='kiosk-web-9']")
            assert row.find_element(By.CSS_SELECTOR, "td.revoked").text.startswith("no")
            assert (
                "used"
                in page.find_element(
                    By.CSS_SELECTOR, "#tokens tr[data-device='kiosk-web-9'] td.state"
                ).text
            )
            page.get(web.url("/fleet/kiosk-web-9"))
            assert not page.find_elements(By.ID, "revoke-link")  # level 2: not for them

            page.find_element(By.CSS_SELECTOR, "#logout button").click()
            web.login(page, "tech3")
            page.get(web.url("/fleet/kiosk-web-9"))
            page.find_element(By.CSS_SELECTOR, "#revoke-link a").click()
            wait_until(page, lambda d: d.current_url.endswith("/fleet/kiosk-web-9/revoke"))
            assert not page.find_elements(By.ID, "revoke-unavailable")
            page.find_element(By.ID, "reason").send_keys("stolen")
            page.find_element(By.ID, "confirm").send_keys("kiosk-web-9")
            page.find_element(By.CSS_SELECTOR, "#revoke button[type=submit]").click()
            wait_until(page, lambda d: d.current_url.endswith("/fleet/kiosk-web-9"), timeout=15)
            assert "Revoked kiosk-web-9" in page.find_element(By.ID, "notice").text
            assert kiosk.dropped.wait(10), "the broker did not drop the revoked kiosk"
        finally:
            kiosk.close()
    with pytest.raises(EnrollError, match=r"(?i)certificate revoked"):
        check_with_broker(broker.host, broker.tls_port, state / "ca.crt", state / "kiosk.crt",
                          state / "kiosk.key")  # fmt: skip
    (certificate,) = rows(engine, "SELECT * FROM device_certificates WHERE device_id = ?",
                          "kiosk-web-9")  # fmt: skip
    assert certificate["reason"] == "stolen" and certificate["revoked_at"]
    audit = rows(engine, "SELECT username FROM audit_log WHERE action = 'device.revoke'")
    assert [r["username"] for r in audit] == ["tech3"]
