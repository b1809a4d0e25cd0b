"""A console database that cannot be reached: the ingest worker says so in one line naming it
and keeps the records unacknowledged (the kiosks keep them) until the database is back; then
every record is stored once and acked. The CLI says so in one line too, and the web app answers
503 naming it, then serves again once it is back.

PostgreSQL only: the database is a server that goes away and comes back. The test has a server
of its own (not the session's, which other tests share), stopped and restarted on the same
data directory and port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from console.cli import cli
from console.web import create_app
from harness.console import Kiosk, crossing, rows, running_worker
from harness.console_web import api_client
from harness.postgres import PostgresServer

pytestmark = pytest.mark.timeout(60)

DEVICE = "kiosk-outage-1"


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may stop and restart."""
    with PostgresServer(durable=False) as own:
        yield own


def database_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "borderlane.console.ingest"
        and record.levelno == logging.WARNING
        and "console database" in record.getMessage()
    ]


@pytest.mark.asyncio
async def test_an_unreachable_database_is_one_line_and_records_wait_unacked_until_it_is_back(
    broker, server, caplog, tmp_path
):
    url = server.create_database("console")
    shown = f"postgresql+psycopg://{server.user}:***@{server.host}:{server.port}/console"
    caplog.set_level(logging.WARNING, logger="borderlane.console.ingest")
    before = [crossing(DEVICE, seq) for seq in range(1, 6)]
    during = [crossing(DEVICE, seq) for seq in range(6, 16)]
    app = create_app({"DATABASE": url, "INSTANCE_PATH": str(tmp_path / "web"), "TESTING": True})
    web = api_client(app, "admin")  # the API answers a user allowed statistics.view
    async with running_worker(broker, url) as worker, Kiosk(broker, DEVICE) as kiosk:
        for record in before:
            await kiosk.publish("crossings", record)
        await kiosk.wait_acked(r["id"] for r in before)
        assert len(rows(url, "SELECT id FROM crossings")) == 5
        assert web.get("/api/crossings/counts").get_json()["total"] == 5  # its pool is open

        server.stop(keep=True)  # fast shutdown: the worker's connections are ended
        received = worker.stats.messages
        for record in during:
            await kiosk.publish("crossings", record)
        async with asyncio.timeout(10):  # the worker has them, and cannot store them
            while worker.stats.messages < received + len(during) or not database_warnings(caplog):
                await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)  # retries go on meanwhile; nothing may be acked
        assert kiosk.acked() == {r["id"] for r in before}
        assert worker.stats.database_outages >= 1

        warnings = database_warnings(caplog)
        for record in warnings:
            line = record.getMessage()
            assert "\n" not in line and record.exc_info is None, line
            assert line.startswith(f"console database {shown}: "), line
            assert server.password not in line
        assert "messages kept unacknowledged" in warnings[0].getMessage()
        assert len(warnings) == 1  # one line when it goes; the retries are debug lines

        # The CLI against the stopped server: one line naming the database, no password.
        result = CliRunner().invoke(
            cli, ["export", "crossings", "--db", url], catch_exceptions=False
        )
        assert result.exit_code == 1
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith(f"Error: cannot open the console database {shown}: ")
        assert server.password not in result.output and "Traceback" not in result.output

        # The web app, whose pooled connections the shutdown ended: 503, one line naming it.
        response = web.get("/api/crossings/counts")
        assert response.status_code == 503
        error = response.get_json()["error"]
        assert error.startswith(f"console database {shown}: ") and "\n" not in error
        assert server.password not in error

        server.restart()  # same data directory and port: the worker's URL works again
        await kiosk.wait_acked((r["id"] for r in during), timeout=20)
        assert web.get("/api/crossings/counts").get_json()["total"] == 15
        back = [r.getMessage() for r in database_warnings(caplog)][1:]
        assert len(back) == 1 and back[0].startswith(f"console database {shown} is back after")

    stored = [row["id"] for row in rows(url, "SELECT id FROM crossings")]
    assert len(stored) == len(set(stored)) == 15  # each once
    assert set(stored) == {r["id"] for r in before + during} == kiosk.acked()
    assert server.password not in caplog.text
