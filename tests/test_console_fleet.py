"""The fleet pages on both backends: the dashboard with each kiosk's numbers, sorting and
filtering by post, a kiosk's page with its heartbeat history as SVG charts and its alerts, the
alerts page, bad parameters, who may see them (and that they show no traveller), and commands
sent from the page to a kiosk on a real Mosquitto; then a technician in headless Chromium.

The console runs on waitress with an account per role (:mod:`harness.console_web`); kiosks'
messages go in through the console's own write path, received at the real time (the pages show
ages relative to now).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from test_console_alerts import Fleet, healthy

import mqtt_schemas
from console import alerts
from console.accounts import Accounts
from console.settings import Settings
from harness.browser import wait_until
from harness.console import crossing
from harness.console_web import FAST_HASHER, PASSWORD, csrf, serve_console
from mqtt_schemas import tag, topics
from mqtt_schemas.envelope import clock_state, format_time, utc_now, uuid7

POST = "bz-santa-elena"
OTHER_POST = "bz-benque-viejo"
TRAVELLER_DATA = ("CB4417820", "CAL", "JOSE MANUEL", "P0318842", "1979-04-02")
"""What the crossing and the hit below say about travellers: never on a fleet page."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ago(**delta: float) -> dt.datetime:
    return now() - dt.timedelta(**delta)


class Page(HTMLParser):
    """A page's elements by id (their text), and each table row's cells by class."""

    VOID = frozenset({"br", "input", "meta", "link", "img", "hr", "col", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html = html
        self.text: dict[str, str] = {}
        self.rows: dict[str, dict[str, str]] = {}
        self._stack: list[tuple[str, dict[str, str], list[str]]] = []
        self.feed(html)

    def handle_starttag(self, tag_: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag_ not in self.VOID:
            self._stack.append((tag_, {k: v or "" for k, v in attrs}, []))

    def handle_endtag(self, tag_: str) -> None:
        while self._stack:
            name, attrs, parts = self._stack.pop()
            text = " ".join(" ".join(parts).split())
            if self._stack:
                self._stack[-1][2].append(text)
            if "id" in attrs:
                self.text[attrs["id"]] = text
            if name == "td" and attrs.get("class"):
                row = next((a["id"] for t, a, _ in reversed(self._stack) if t == "tr"), None)
                if row:
                    self.rows.setdefault(row, {})[attrs["class"].split()[0]] = text
            if name == tag_:
                break

    def handle_data(self, data: str) -> None:
        if self._stack:
            self._stack[-1][2].append(data)


@contextlib.contextmanager
def console(console_db: str, tmp_path: Path, **config: Any) -> Iterator[Any]:
    with serve_console(console_db, tmp_path / "instance", config=config) as web:
        yield web


@pytest.fixture
def fleet(console_db):
    with contextlib.closing(Fleet(console_db)) as made:
        yield made


@pytest.fixture
def web(console_db, tmp_path, fleet):
    with console(console_db, tmp_path) as running:
        yield running


def fill(fleet: Fleet) -> None:
    """kiosk-a at the post, online, records waiting, a reader degraded; kiosk-b offline for an
    hour at the other post; kiosk-c heard once, no crossing yet. Crossings and a hit that name
    travellers. Alerts evaluated."""
    fleet.birth("kiosk-a", ago(hours=3))
    fleet.heartbeat(
        "kiosk-a",
        ago(seconds=20),
        **{
            "outbox.depth": 12,
            "outbox.oldest_age_s": 300.0,
            "disk.total_bytes": 100_000_000_000,
            "disk.free_bytes": 40_000_000_000,
            "components.mrz-reader": {
                "state": "degraded",
                "detail": "lens dirty?",
                "since": format_time(ago(hours=1)),
            },
        },
    )
    fleet.put("kiosk-a", "crossings", crossing("kiosk-a", 100, site=POST), now())
    fleet.birth("kiosk-b", ago(hours=5))
    fleet.heartbeat("kiosk-b", ago(hours=2), **{"outbox.depth": 3, "outbox.oldest_age_s": 9.0})
    fleet.put("kiosk-b", "crossings", crossing("kiosk-b", 100, site=OTHER_POST), ago(hours=2))
    fleet.offline("kiosk-b", ago(hours=1))
    fleet.heartbeat("kiosk-c", ago(seconds=5), **{"disk.free_bytes": 1_000_000})
    hit = json.loads(json.dumps(_example("screening-hit")))
    hit.update(id=uuid7(), device_id="kiosk-b", seq=101, site=OTHER_POST)
    fleet.put("kiosk-b", "hits", hit, ago(hours=2))
    alerts.evaluate(fleet.engine, Settings(), now())


def _example(name: str) -> dict[str, Any]:
    return mqtt_schemas.examples(name)["valid"][0]["payload"]


# -- the dashboard -----------------------------------------------------------------------------


def test_the_fleet_page_lists_every_kiosk_with_its_numbers(web, fleet):
    fill(fleet)
    response = web.client("technician").get("/fleet")
    assert response.status_code == 200
    page = Page(response.get_data(True))

    a = page.rows["device-kiosk-a"]
    assert a["post"] == POST
    assert a["state"].startswith("online since ")
    assert re.fullmatch(r"\d+ s ago", a["heartbeat"])
    assert "card-reader: ok" in a["parts"] and "mrz-reader: degraded" in a["parts"]
    assert (a["outbox"], a["oldest"]) == ("12", "5 min")
    assert a["watchlist"] == "v1288 31 s"
    assert a["clock"] == "synced ntp, -2.4 ms"
    assert (a["disk"], a["agent"], a["alerts"]) == ("40 %", "1.4.2", "")

    b = page.rows["device-kiosk-b"]
    assert b["state"].startswith("offline since ") and b["post"] == OTHER_POST
    assert b["outbox"] == "3" and b["alerts"] == "offline"
    c = page.rows["device-kiosk-c"]
    assert c["post"] == "—" and c["alerts"] == "disk-low"
    assert page.text["summary"].startswith("3 of 3 kiosks shown · 2 online · 1 offline · 2 open")
    assert "kiosk-b offline offline for 60 min" in page.text["open-alerts"]


def test_the_fleet_is_filtered_by_post_and_state_and_sorted(web, fleet):
    fill(fleet)
    client = web.client("admin")

    def shown(query: str) -> list[str]:
        response = client.get(f"/fleet{query}")
        assert response.status_code == 200, response.get_data(True)
        return list(Page(response.get_data(True)).rows)

    assert shown("") == ["device-kiosk-a", "device-kiosk-b", "device-kiosk-c"]
    assert shown(f"?post={POST}") == ["device-kiosk-a"]
    assert shown("?state=offline") == ["device-kiosk-b"]
    assert shown("?sort=outbox&order=desc") == [
        "device-kiosk-a",
        "device-kiosk-b",
        "device-kiosk-c",
    ]
    assert shown("?sort=outbox") == ["device-kiosk-c", "device-kiosk-b", "device-kiosk-a"]
    assert shown("?sort=disk") == ["device-kiosk-c", "device-kiosk-a", "device-kiosk-b"]
    # a kiosk with no post yet sorts last either way
    assert shown("?sort=post&order=desc") == ["device-kiosk-a", "device-kiosk-b", "device-kiosk-c"]
    assert shown("?sort=post") == ["device-kiosk-b", "device-kiosk-a", "device-kiosk-c"]


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/fleet?sort=name", "sort"),
        ("/fleet?order=up", "order"),
        ("/fleet?state=lost", "state"),
        ("/fleet?post=Santa%20Elena", "post"),
        ("/fleet/kiosk-a?command=42", "command"),
        ("/fleet/kiosk-a?name=format-disk", "name"),
        ("/alerts?rule=fire", "rule"),
        ("/alerts?rule=offline:camera", "rule"),
        ("/alerts?page=0", "page"),
        ("/alerts?device=kiosk%20a", "device"),
        ("/alerts?post=..", "post"),
    ],
)
def test_a_malformed_parameter_is_a_400_naming_it(web, fleet, path, parameter):
    fill(fleet)
    response = web.client("technician").get(path)
    assert response.status_code == 400
    assert f"parameter &#39;{parameter}&#39;" in response.get_data(True)


def test_an_unknown_kiosk_is_a_404_and_a_bad_device_id_a_400(web, fleet):
    fill(fleet)
    client = web.client("technician")
    assert client.get("/fleet/kiosk-zz").status_code == 404
    bad = client.get("/fleet/kiosk%20a")
    assert bad.status_code == 400 and "device id" in bad.get_data(True)


# -- a kiosk's page ----------------------------------------------------------------------------


def test_the_device_page_draws_its_heartbeat_history_and_lists_its_alerts(web, fleet):
    fill(fleet)
    old = healthy("kiosk-a", 0, ago(hours=30), **{"outbox.depth": 99999})  # before the chart
    fleet.put("kiosk-a", "health", old, ago(hours=30))
    for minutes in range(0, 180, 10):  # a heartbeat every 10 minutes for 3 hours, depth rising
        fleet.heartbeat(
            "kiosk-a",
            ago(minutes=180 - minutes),
            **{"outbox.depth": minutes, "outbox.oldest_age_s": minutes * 10.0},
        )
    response = web.client("technician").get("/fleet/kiosk-a")
    assert response.status_code == 200
    html = response.get_data(True)
    page = Page(html)
    assert page.text["device-id"] == "kiosk-a"
    charts = re.findall(r"<svg\b.*?</svg>", html, re.S)
    assert len(charts) == 4
    titles = [re.search(r"<title[^>]*>([^<]*)</title>", svg).group(1) for svg in charts]
    assert titles == ["Outbox depth", "Oldest unacked record", "Disk free", "Watchlist age"]
    depth = charts[0]
    assert 'role="img"' in depth and "<polyline" in depth
    assert "19 heartbeats, latest 12 records, highest 170 records" in depth
    assert "99999" not in depth
    assert 'class="threshold"' in charts[1]  # the outbox-oldest threshold, dashed
    assert page.text["parts"].count("mrz-reader") == 1

    with fleet.engine.connect() as conn:
        assert not alerts.list_alerts(conn, device_id="kiosk-a")
    fleet.offline("kiosk-a", ago(minutes=30))
    alerts.evaluate(fleet.engine, Settings(), now())
    fleet.birth("kiosk-a", ago(minutes=1), session=2)
    alerts.evaluate(fleet.engine, Settings(), now())
    page = Page(web.client("technician").get("/fleet/kiosk-a").get_data(True))
    assert page.text["device-alerts"].startswith("Rule Raised Cleared Detail offline 20")
    assert "offline for 30 min" in page.text["device-alerts"]


def test_a_kiosk_silent_all_day_gets_empty_charts_not_an_error(web, fleet):
    fleet.birth("kiosk-q", ago(days=3))
    response = web.client("technician").get("/fleet/kiosk-q")
    assert response.status_code == 200
    html = response.get_data(True)
    assert html.count("no heartbeats in this period") == 4
    assert "No heartbeat yet." in html


# -- alerts ------------------------------------------------------------------------------------


def test_the_alerts_page_shows_open_alerts_first_then_the_history_filtered(web, fleet):
    fill(fleet)
    fleet.birth("kiosk-b", now(), session=2)  # kiosk-b back: its offline alert is history
    alerts.evaluate(fleet.engine, Settings(), now())
    fleet.offline("kiosk-a", ago(minutes=0))
    client = web.client("technician")

    page = Page(client.get("/alerts").get_data(True))
    assert page.text["open-title"] == "Open (1)"
    assert page.text["open"].startswith("Kiosk Post Rule Raised Detail kiosk-c — disk-low")
    assert "kiosk-b bz-benque-viejo offline" in page.text["history"]

    filtered = Page(client.get(f"/alerts?post={OTHER_POST}").get_data(True))
    assert "No open alert matches the filter." in filtered.text["open"]
    assert "kiosk-b" in filtered.text["history"]
    by_rule = Page(client.get("/alerts?rule=disk-low").get_data(True))
    assert "kiosk-c" in by_rule.text["open"] and "kiosk-b" not in by_rule.text["history"]


# -- who may see it ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["officer", "supervisor", "analyst", "auditor"])
def test_only_technicians_and_admins_see_the_fleet_and_alerts(web, fleet, role):
    fill(fleet)
    client = web.client(role)
    for path in ("/fleet", "/fleet/kiosk-a", "/alerts", "/fleet/kiosk-zz"):
        assert client.get(path).status_code == 403, path
    token = csrf(client, "/account/password")
    posted = client.post("/fleet/kiosk-a/commands", data={"command": "ping", "csrf_token": token})
    assert posted.status_code == 403
    assert web.client().get("/fleet").status_code == 302  # nobody: to the login page


def test_a_technician_sees_devices_never_a_traveller(web, fleet):
    fill(fleet)
    client = web.client("technician")
    for path in ("/fleet", "/fleet/kiosk-a", "/fleet/kiosk-b", "/alerts"):
        html = client.get(path).get_data(True)
        for value in TRAVELLER_DATA:
            assert value not in html, (path, value)


def test_commands_are_unavailable_without_broker_settings_and_say_why(web, fleet):
    fill(fleet)
    client = web.client("technician")
    page = Page(client.get("/fleet/kiosk-a").get_data(True))
    assert "without broker settings (BROKER)" in page.text["commands-unavailable"]
    html = client.get("/fleet/kiosk-a").get_data(True)
    assert html.count("disabled>") == 5
    token = csrf(client, "/fleet/kiosk-a")
    refused = client.post("/fleet/kiosk-a/commands", data={"command": "ping", "csrf_token": token})
    assert refused.status_code == 503
    assert "commands are unavailable" in refused.get_data(True)
    no_csrf = client.post("/fleet/kiosk-a/commands", data={"command": "ping"})
    assert no_csrf.status_code == 400


def test_a_level_1_technician_sees_the_fleet_but_sends_no_command(web, fleet):
    fill(fleet)
    Accounts(fleet.engine, Settings(), hasher=FAST_HASHER).create(
        "trainee",
        "Tina Trainee",
        agency="immigration",
        role="technician",
        level=1,
        posts=(),
        password=PASSWORD,
        must_change_password=False,
    )
    client = web.client("trainee")
    page = Page(client.get("/fleet/kiosk-a").get_data(True))
    assert "level 2" in page.text["commands-not-allowed"]
    token = csrf(client, "/fleet/kiosk-a")
    assert (
        client.post(
            "/fleet/kiosk-a/commands", data={"command": "ping", "csrf_token": token}
        ).status_code
        == 403
    )


# -- commands on a real broker -----------------------------------------------------------------


class AnsweringKiosk:
    """A kiosk identity on the broker that answers every command it gets, in a thread."""

    def __init__(self, broker: Any, device_id: str, answer: bool = True) -> None:
        self.broker = broker
        self.device_id = device_id
        self.answer = answer
        self.commands: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> AnsweringKiosk:
        self._thread.start()
        assert self.ready.wait(10), "the kiosk did not subscribe"
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self.broker.client(self.device_id) as client:
            await client.subscribe(topics.device_topic(self.device_id, "commands"), qos=1)
            self.ready.set()
            listener = asyncio.create_task(self._listen(client))
            await self._stop.wait()
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self, client: Any) -> None:
        async for message in client.messages:
            command = json.loads(message.payload)
            self.commands.append(command)
            if self.answer:
                result = {
                    "schema": tag("command-result"),
                    "id": uuid7(),
                    "device_id": self.device_id,
                    "seq": len(self.commands),
                    "time": utc_now(),
                    "clock": clock_state(),
                    "command_id": command["id"],
                    "status": "ok",
                    "result": {"answered": command["name"]},
                }
                topic = topics.device_topic(self.device_id, "command-results")
                await client.publish(topic, json.dumps(result).encode(), qos=1)


def test_a_command_from_the_page_shows_the_kiosks_answer(
    console_db, tmp_path, fleet, uplink_broker
):
    fill(fleet)
    with (
        console(console_db, tmp_path, BROKER=uplink_broker.console_endpoint()) as web,
        AnsweringKiosk(uplink_broker, "kiosk-a") as kiosk,
    ):
        client = web.client("technician")
        assert "commands-unavailable" not in client.get("/fleet/kiosk-a").get_data(True)
        token = csrf(client, "/fleet/kiosk-a")
        sent = client.post(
            "/fleet/kiosk-a/commands", data={"command": "diagnostics", "csrf_token": token}
        )
        assert sent.status_code == 303
        assert [c["name"] for c in kiosk.commands] == ["diagnostics"]
        command = kiosk.commands[0]
        assert command["expires_at"] > command["time"] and command["device_id"] == "console-web"
        assert f"command={command['id']}" in sent.headers["Location"]
        page = Page(client.get(sent.headers["Location"]).get_data(True))
        assert page.text["command-answer"].startswith("Diagnostics: the kiosk answered ok at ")
        assert '"answered": "diagnostics"' in page.text["command-answer"]


def test_an_answer_that_comes_late_is_shown_once_ingest_stored_it(
    console_db, tmp_path, fleet, uplink_broker
):
    fill(fleet)
    config = {"BROKER": uplink_broker.console_endpoint(), "COMMAND_WAIT_S": 0.3}
    with (
        console(console_db, tmp_path, **config) as web,
        AnsweringKiosk(uplink_broker, "kiosk-a", answer=False) as kiosk,
    ):
        client = web.client("technician")
        token = csrf(client, "/fleet/kiosk-a")
        sent = client.post("/fleet/kiosk-a/commands", data={"command": "ping", "csrf_token": token})
        assert sent.status_code == 303
        waiting = client.get(sent.headers["Location"]).get_data(True)
        assert 'http-equiv="refresh"' in waiting
        assert "waiting for the kiosk" in Page(waiting).text["waiting"]
        command = kiosk.commands[0]
        late = {
            "schema": tag("command-result"),
            "id": uuid7(),
            "device_id": "kiosk-a",
            "seq": 7,
            "time": utc_now(),
            "clock": clock_state(),
            "command_id": command["id"],
            "status": "error",
            "error": {"code": "busy", "message": "a crossing is in progress"},
        }
        fleet.put("kiosk-a", "command-results", late, now())  # as the ingest worker stores it
        shown = client.get(sent.headers["Location"]).get_data(True)
        assert 'http-equiv="refresh"' not in shown
        assert "Ping: the kiosk answered error" in Page(shown).text["command-answer"]
        assert "busy: a crossing is in progress" in shown


# -- in a browser ------------------------------------------------------------------------------


def test_a_technician_logs_in_and_sees_an_offline_kiosks_alert(console_db, tmp_path, fleet, page):
    fill(fleet)
    with console(console_db, tmp_path) as web:
        web.login(page, "technician")
        wait_until(page, lambda d: "/fleet" in d.current_url, message="not sent to the fleet")
        row = page.find_element(By.ID, "device-kiosk-b")
        assert "offline" in row.find_element(By.CSS_SELECTOR, "td.state").text
        assert row.find_element(By.CSS_SELECTOR, "td.alerts").text == "offline"
        assert "kiosk-b" in page.find_element(By.ID, "open-alerts").text
        page.find_element(By.LINK_TEXT, "kiosk-b").click()
        wait_until(page, lambda d: d.current_url.endswith("/fleet/kiosk-b"))
        assert len(page.find_elements(By.CSS_SELECTOR, "#charts svg")) == 4
        assert "offline" in page.find_element(By.ID, "device-alerts").text
        body = page.find_element(By.TAG_NAME, "body").text
        for value in TRAVELLER_DATA:
            assert value not in body
