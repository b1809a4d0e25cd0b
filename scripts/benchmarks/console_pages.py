"""How fast the console's pages and API answer on a country's year of data, on SQLite and on
PostgreSQL.

A console database with 10,000,000 crossings, 200,000 screening hits and 1,000 kiosks (made once
by ``scripts/console_data.py`` into ``.bench/console/`` and reused), served by the real
``borderlane-console web`` (waitress) process. Each role logs in over HTTP as a browser would,
and every page and API route its role may see is requested repeatedly with varied parameters;
the figure is each route's p95 latency, the issue's target being 300 ms.

Backends: ``BENCH_CONSOLE_BACKENDS`` (``sqlite,postgresql``, the default; one of them alone).
SQLite: the file ``.bench/console/console-10000000.db`` (about 8 minutes to make). PostgreSQL: a
cluster kept in ``.bench/console/postgresql/`` (``tests/harness/postgres.py``, ``durable=True``:
fsync and synchronous_commit on, PostgreSQL's defaults but ``max_wal_size``), started on a free
port for the run and stopped afterwards with its data kept; the database ``console_10000000``
is made once (generated, then ``VACUUM ANALYZE``) and reused. A database made by an older
release is upgraded in place (the upgrade's time is printed); one left half-made by an
interrupted run is never used (it is made under another name and renamed when complete).

``quick`` uses 20,000 crossings in a temporary folder (figures not meaningful), on both
backends unless told otherwise.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import importlib.util
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import console_data
from psycopg import sql
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
BACKENDS = ("sqlite", "postgresql")
POSTGRES_SETTINGS = {"max_wal_size": "4GB"}
"""Beyond PostgreSQL's defaults: fewer checkpoints while the 10M database is generated."""
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


def _upgraded(target: str | Path, shown: str) -> bool:
    """Whether *target* can be used: current, or behind and upgraded here (that is a
    measurement too: the upgrade's time is printed)."""
    status = admin.schema_version(target)
    if status.kind == "behind":
        started = time.monotonic()
        admin.upgrade(target)
        print(f"console_pages: upgraded {shown} in {time.monotonic() - started:.0f} s")
        return True
    return status.kind == "current"


def database(directory: Path, size: dict[str, int]) -> Path:
    """The SQLite benchmark database, made when missing; upgraded in place when an older
    release made it."""
    path = directory / f"console-{size['crossings']}.db"
    if path.exists() and not _upgraded(path, str(path)):
        path.unlink()
    if not path.exists():
        console_data.generate(path, size["crossings"], size["hits"], size["kiosks"])
    _prepare(path)
    return path


def postgres_database(server: Any, size: dict[str, int]) -> str:
    """The PostgreSQL benchmark database on *server*, made when missing (generated under a
    temporary name, analysed, then renamed), upgraded in place when an older release made it."""
    name = f"console_{size['crossings']}"
    partial = f"{name}_partial"
    with server.connect(autocommit=True) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    if name in names and not _upgraded(server.url(name), name):
        server.drop_database(name)
        names.discard(name)
    if name not in names:
        server.drop_database(partial)  # what an interrupted run left
        started = time.monotonic()
        console_data.generate(
            server.create_database(partial), size["crossings"], size["hits"], size["kiosks"]
        )
        generated = time.monotonic()
        with server.connect(partial, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        with server.connect(autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(partial), sql.Identifier(name)
                )
            )
        print(
            f"console_pages: made {name} on PostgreSQL: generated in {generated - started:.0f} s, "
            f"VACUUM ANALYZE {time.monotonic() - generated:.0f} s",
            file=sys.stderr,
        )
    url = server.url(name)
    _prepare(url)
    return url


def _prepare(target: str | Path) -> None:
    """The alerts evaluated once and one account per role (made once)."""
    engine = open_database(target)
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


def routes(path: str | Path, rng: random.Random) -> dict[str, list[tuple[str, Callable[[], str]]]]:
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


def _postgres_server_class() -> type:
    """``PostgresServer`` from the test harness, imported by path (as the ingest benchmark
    does: scripts are not a package of the tests)."""
    path = ROOT / "tests" / "harness" / "postgres.py"
    spec = importlib.util.spec_from_file_location("borderlane_bench_postgres", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PostgresServer


def selected_backends() -> list[str]:
    chosen = os.environ.get("BENCH_CONSOLE_BACKENDS", "").strip()
    if not chosen:
        return list(BACKENDS)
    backends = [item.strip() for item in chosen.split(",") if item.strip()]
    if not backends or any(b not in BACKENDS for b in backends):
        raise ValueError(f"BENCH_CONSOLE_BACKENDS: {chosen!r} is not a list among {BACKENDS}")
    return backends


@contextlib.contextmanager
def _postgres(directory: Path, quick: bool) -> Iterator[Any]:
    """The benchmark's PostgreSQL server: a kept cluster under *directory* (a throwaway one
    when *quick*), on a free port, stopped at the end with its data kept."""
    server_class = _postgres_server_class()
    if quick:
        with server_class(durable=True, settings=POSTGRES_SETTINGS) as server:
            yield server
        return
    server = server_class(
        durable=True, settings=POSTGRES_SETTINGS, cluster=directory / "postgresql"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop(keep=True)


def run(quick: bool) -> list[Figure]:
    size = QUICK if quick else FULL
    repeats = 3 if quick else 30
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-console-") as scratch:
        directory = Path(scratch) if quick else ROOT / ".bench" / "console"
        directory.mkdir(parents=True, exist_ok=True)
        for backend in selected_backends():
            with contextlib.ExitStack() as stack:
                if backend == "sqlite":
                    target: str | Path = database(directory, size)
                else:
                    server = stack.enter_context(_postgres(directory, quick))
                    target = postgres_database(server, size)
                web = Path(scratch) / f"web-{backend}"
                figures += _serve_and_measure(backend, target, web, repeats, size)
    return figures


def _serve_and_measure(
    backend: str, target: str | Path, instance: Path, repeats: int, size: dict[str, int]
) -> list[Figure]:
    port = _free_port()
    server = subprocess.Popen(
        [CONSOLE, "web", "--instance", instance, "--bind", f"127.0.0.1:{port}"],
        env={**os.environ, "BORDERLANE_CONSOLE_DB": str(target)},
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
        return _measure(backend, base, routes(target, random.Random(7)), repeats, size)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def _measure(
    backend: str, base: str, table: dict, repeats: int, size: dict[str, int]
) -> list[Figure]:
    figures: list[tuple[str, float]] = []
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
                (f"{backend} {role} {name}: p95 (p50 {statistics.median(latencies):.0f} ms)", p95)
            )
    # The machine is shared: how busy it was (1-minute load average) says what the figures mean.
    load = f"{scale}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    return [at_most(name, round(p95, 1), "ms", TARGET_MS, load) for name, p95 in figures]


if __name__ == "__main__":  # pragma: no cover - the runner imports it
    sys.exit("run it with scripts/bench.py --only console_pages")
