"""How fast the console's pages and API answer on a country's year of data.

A console database with 10,000,000 crossings, 200,000 screening hits and 1,000 kiosks (made once
by ``scripts/console_data.py`` into ``.bench/console/`` and reused; about 8 minutes), served by
the real ``borderlane-console web`` (waitress) process. Each role logs in over HTTP as a
browser would, and every page and API route its role may see is requested repeatedly with
varied parameters; the figure is each route's p95 latency, the issue's target being 300 ms.
``quick`` uses 20,000 crossings in a temporary folder (figures not meaningful).
"""

from __future__ import annotations

import http.cookiejar
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import console_data
from sqlalchemy import text

from console import alerts as alertsmod
from console.accounts import Accounts
from console.settings import Settings
from console.store import admin, open_database

from . import Figure, at_most

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / ".venv" / "bin" / "borderlane-console"
PASSWORD = "bench-password-1"
TARGET_MS = 300
FULL = {"crossings": 10_000_000, "hits": 200_000, "kiosks": 1000}
QUICK = {"crossings": 20_000, "hits": 400, "kiosks": 50}
POST = "bz-post-00"
"""The officer's and the supervisor's post (console_data's first)."""
ROLES = {
    "officer": ("immigration", 3, (POST,)),
    "supervisor": ("immigration", 3, (POST,)),
    "admin": ("immigration", 4, ("*",)),
    "technician": ("immigration", 2, ()),
    "analyst": ("statistics", 2, ()),
    "auditor": ("justice", 3, ()),
}


def database(directory: Path, size: dict[str, int]) -> Path:
    """The benchmark database, made when missing; upgraded in place when an older release
    made it (that is a measurement too: the upgrade's time is printed)."""
    path = directory / f"console-{size['crossings']}.db"
    if path.exists():
        status = admin.schema_version(path)
        if status.kind == "behind":
            started = time.monotonic()
            admin.upgrade(path)
            print(f"console_pages: upgraded {path} in {time.monotonic() - started:.0f} s")
        elif status.kind != "current":
            path.unlink()
    if not path.exists():
        console_data.generate(path, size["crossings"], size["hits"], size["kiosks"])
    engine = open_database(path)
    try:
        alertsmod.evaluate(engine, Settings(), None)
        accounts = Accounts(engine)
        for role, (agency, level, posts) in ROLES.items():
            if accounts.find(role) is None:
                accounts.create(
                    role,
                    f"Bench {role}",
                    agency=agency,
                    role=role,
                    level=level,
                    posts=posts,
                    password=PASSWORD,
                    must_change_password=False,
                )
    finally:
        engine.dispose()
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Browser:
    """A logged-in HTTP client: the session cookie and the CSRF token, as a browser has them."""

    def __init__(self, base: str, role: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = self.get("/login")[1]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "the login page has no CSRF token"
        form = urllib.parse.urlencode(
            {"username": role, "password": PASSWORD, "csrf_token": token.group(1)}
        ).encode()
        status, body = self.get("/login", form)
        assert status == 200 and "logout" in body.lower(), f"{role} could not log in ({status})"

    def get(self, path: str, data: bytes | None = None) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, data=data, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")


def routes(path: Path, rng: random.Random) -> dict[str, list[tuple[str, Callable[[], str]]]]:
    """Per role: (route name, a function giving one URL of it with varied parameters)."""
    engine = open_database(path, readonly=True)
    try:
        with engine.connect() as conn:
            devices = [r[0] for r in conn.execute(text("SELECT device_id FROM devices"))]
            sites = [r[0] for r in conn.execute(text("SELECT DISTINCT site FROM crossings"))]
            referred = [
                r[0]
                for r in conn.execute(
                    text("SELECT crossing_id FROM hits WHERE site = :site LIMIT 500"),
                    {"site": POST},
                )
            ]
            documents = [
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT issuing_state, document_number, id FROM crossings "
                        "WHERE site = :site AND time > '2026-11-01' LIMIT 500"
                    ),
                    {"site": POST},
                )
            ]
    finally:
        engine.dispose()
    referral = lambda: rng.choice(referred)  # noqa: E731
    doc = lambda: rng.choice(documents)  # noqa: E731
    name = lambda: f"{rng.choice(console_data.GIVEN)} {rng.choice(console_data.SURNAMES)}"  # noqa: E731
    why = "purpose=border-control"
    staff = [
        ("/referrals", lambda: "/referrals?purpose=referral-review"),
        ("/referrals?state=open", lambda: "/referrals?state=open&purpose=referral-review"),
        ("/referrals/<crossing>", lambda: f"/referrals/{referral()}?purpose=referral-review"),
        (
            "/crossings/search?document=",
            lambda: f"/crossings/search?document={doc()[1]}&{why}",
        ),
        (
            "/crossings/search?name=",
            lambda: f"/crossings/search?name={urllib.parse.quote(name())}&{why}",
        ),
        ("/crossings/<crossing>", lambda: f"/crossings/{doc()[2]}?{why}"),
        (
            "/travellers/<state>/<number>",
            lambda: "/travellers/{}/{}?{}".format(*doc()[:2], why),
        ),
    ]
    device = lambda: rng.choice(devices)  # noqa: E731
    site = lambda: rng.choice(sites)  # noqa: E731
    fleet = [
        ("/fleet", lambda: "/fleet"),
        ("/fleet?post=", lambda: f"/fleet?post={site()}"),
        ("/fleet?sort=outbox", lambda: "/fleet?sort=outbox&order=desc"),
        ("/fleet/<device>", lambda: f"/fleet/{device()}"),
        ("/alerts", lambda: "/alerts"),
        ("/api/devices", lambda: "/api/devices"),
        ("/api/devices/<device>", lambda: f"/api/devices/{device()}"),
    ]
    return {
        "officer": staff,
        "supervisor": [
            ("/referrals/escalated", lambda: "/referrals/escalated?purpose=referral-review")
        ],
        "technician": fleet,
        "admin": [("/admin/users", lambda: "/admin/users")],
        "analyst": [
            ("/api/crossings/counts", lambda: "/api/crossings/counts"),
            ("/api/crossings/counts?site=", lambda: f"/api/crossings/counts?site={site()}"),
        ],
        "auditor": [("/audit/", lambda: "/audit/?purpose=audit")],
    }


def run(quick: bool) -> list[Figure]:
    size = QUICK if quick else FULL
    repeats = 3 if quick else 30
    with tempfile.TemporaryDirectory(prefix="bench-console-") as scratch:
        directory = Path(scratch) if quick else ROOT / ".bench" / "console"
        directory.mkdir(parents=True, exist_ok=True)
        path = database(directory, size)
        port = _free_port()
        server = subprocess.Popen(
            [CONSOLE, "web", "--instance", Path(scratch) / "web", "--bind", f"127.0.0.1:{port}"],
            env={**os.environ, "BORDERLANE_CONSOLE_DB": str(path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(base + "/login", timeout=5).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the web console did not start: {server.stderr.read().decode()[-500:]}"
                        ) from None
                    time.sleep(0.2)
            return _measure(base, routes(path, random.Random(7)), repeats, size)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)


def _measure(base: str, table: dict, repeats: int, size: dict[str, int]) -> list[Figure]:
    figures = []
    scale = f"{size['crossings']:,} crossings, {size['kiosks']:,} kiosks"
    for role, entries in table.items():
        browser = Browser(base, role)
        for name, url in entries:
            browser.get(url())  # warm the page cache and the app's first use of the route
            latencies = []
            for _ in range(repeats):
                started = time.perf_counter()
                status, _ = browser.get(url())
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"{role} {name}: HTTP {status}")
            p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
            figures.append(
                at_most(
                    f"{role} {name}: p95 (p50 {statistics.median(latencies):.0f} ms)",
                    round(p95, 1),
                    "ms",
                    TARGET_MS,
                    scale,
                )
            )
    return figures


if __name__ == "__main__":  # pragma: no cover - the runner imports it
    sys.exit("run it with scripts/bench.py --only console_pages")
