"""Guessing officer PINs at the kiosk: slowed per officer id, per source and across all ids,
remembered across restarts, alarmed in the heartbeat; and pages asked for under a foreign host
name (DNS rebinding) refused.

The first tests drive :class:`LoginGuard` with a clock the test moves; the last ones post to the
real officer login page of a real lane (an outbox file and a watchlist store, no card reader).
"""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from test_lane import PKI, TRUST

from edge.lane import Lane, LaneConfig, StoreScreener
from edge.screening.store import WatchlistStore
from edge.ui import KioskPages, OfficerDirectory, add_officer
from edge.ui.logins import LoginGuard
from edge.uplink.outbox import Outbox
from mqtt_schemas.envelope import StaticClock

OFFICER, PIN = "BDF-2231", "482916"


class Clock:
    """Wall-clock seconds the test sets."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, path: Path | None = None) -> LoginGuard:
    return LoginGuard(
        path, free_attempts=3, spray_attempts=10, base_wait_s=30, max_wait_s=300, clock=clock
    )


# -- the guard ---------------------------------------------------------------------------------


def test_wrong_pins_for_one_officer_make_each_next_attempt_wait_longer_up_to_a_cap() -> None:
    clock = Clock()
    logins = guard(clock)
    for _ in range(3):  # the free attempts: a typo or two must not make an officer wait
        assert logins.wait_s(OFFICER, "kiosk") == 0
        logins.failed(OFFICER, "kiosk")
    waits = []
    for _ in range(5):
        waits.append(logins.wait_s(OFFICER, "kiosk"))
        clock.now += waits[-1]
        logins.failed(OFFICER, "kiosk")
    assert waits == [30, 60, 120, 240, 300]  # doubling, never more than max_wait_s
    assert logins.wait_s("BDF-0001", "elsewhere") == 0  # another officer elsewhere: no wait


def test_hammering_while_waiting_does_not_extend_the_wait() -> None:
    """The page refuses an attempt made while waiting without hearing it (nothing is counted),
    so someone who knows an officer's id can delay them by at most max_wait_s."""
    clock = Clock()
    logins = guard(clock)
    for _ in range(8):
        clock.now += logins.wait_s(OFFICER, "kiosk")
        logins.failed(OFFICER, "kiosk")
    assert logins.wait_s(OFFICER, "kiosk") == 300
    clock.now += 299
    assert logins.wait_s(OFFICER, "kiosk") == pytest.approx(1)
    clock.now += 1
    assert logins.wait_s(OFFICER, "kiosk") == 0
    logins.succeeded(OFFICER)  # the right PIN: the officer's count starts again
    assert logins.wait_s(OFFICER, "kiosk") == 0


def test_one_pin_sprayed_across_officer_ids_is_slowed_for_every_id_and_alarmed() -> None:
    clock = Clock()
    logins = guard(clock)
    for number in range(10):  # 1234 against ten ids, each id only once
        officer = f"BDF-{number:04d}"
        assert logins.wait_s(officer, "kiosk") == 0
        logins.failed(officer, "kiosk")
    assert logins.alarm() == "10 wrong officer PINs in 15 min, for 10 officer ids"
    # Any id now waits, from this source and from any other (the kiosk as a whole).
    assert logins.wait_s("BDF-0999", "kiosk") == 30
    assert logins.wait_s("BDF-0999", "another-source") == 30
    logins.succeeded("BDF-0003")  # finding one officer does not end the spray's count
    assert logins.wait_s("BDF-0999", "kiosk") == 30
    clock.now += 15 * 60  # the window passes: forgotten, alarm over
    assert logins.alarm() is None
    assert logins.wait_s("BDF-0999", "kiosk") == 0


def test_the_counts_survive_a_restart_in_a_file_only_the_agent_reads(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "officer-logins.json"
    first = guard(clock, path)
    for _ in range(4):
        first.failed(OFFICER, "kiosk")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    restarted = guard(clock, path)
    assert restarted.wait_s(OFFICER, "kiosk") == 60


def test_a_clock_set_back_shortens_no_wait_into_forever(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "officer-logins.json"
    logins = guard(clock, path)
    for _ in range(4):
        logins.failed(OFFICER, "kiosk")
    clock.now -= 10 * 86400  # the kiosk's clock is set back ten days
    restarted = guard(clock, path)
    assert restarted.wait_s(OFFICER, "kiosk") == 60  # counted as now, not ten days ahead


@pytest.mark.parametrize(
    "content",
    ["", "not json", "[]", '{"failures": 3}', '{"failures": {"*": [NaN, "x", true, 1e999]}}'],
)
def test_an_unreadable_counts_file_starts_afresh_instead_of_stopping_the_page(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "officer-logins.json"
    path.write_text(content)
    logins = guard(Clock(), path)
    assert logins.wait_s(OFFICER, "kiosk") == 0
    logins.failed(OFFICER, "kiosk")  # and it writes a good file again
    assert json.loads(path.read_text())["failures"][f"officer:{OFFICER}"]


# -- the login page of a running kiosk ---------------------------------------------------------


@pytest_asyncio.fixture
async def pages(tmp_path: Path) -> AsyncIterator[KioskPages]:
    add_officer(tmp_path / "officers.json", OFFICER, PIN)
    with Outbox(tmp_path / "kiosk.db", "kiosk-bz-se-01", StaticClock()) as outbox:
        lane = Lane(
            LaneConfig.from_dict({"site": "s", "lane": "lane-1", "direction": "entry"}),
            outbox=outbox,
            screener=StoreScreener(WatchlistStore(tmp_path / "w.db")),
            issuers=TRUST,
            cscas=PKI.trust_store(),
        )
        kiosk_pages = KioskPages(
            lane,
            port=0,
            officers=OfficerDirectory.load(tmp_path / "officers.json"),
            logins_file=tmp_path / "officer-logins.json",
            hosts=("kiosk.local",),
        )
        async with kiosk_pages:
            yield kiosk_pages


async def log_in(pages: KioskPages, officer: str, pin: str, host: str | None = None) -> int:
    """POST the login form as the kiosk's browser does; the status of the answer."""
    url = pages.url
    headers = {"Origin": url}
    if host is not None:
        headers |= {"Host": host, "Origin": f"http://{host}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/officer/login",
            data={"officer_id": officer, "pin": pin},
            headers=headers,
            allow_redirects=False,
        ) as response,
    ):
        return response.status


@pytest.mark.asyncio
async def test_a_pin_sprayed_over_forty_officer_ids_is_stopped_and_shows_in_the_heartbeat(
    pages: KioskPages,
) -> None:
    statuses = [await log_in(pages, f"BDF-{n:04d}", "1234") for n in range(40)]
    assert statuses[:10] == [401] * 10  # ten wrong PINs heard...
    assert set(statuses[10:]) == {429}  # ...then every id waits, the real officer's too
    assert await log_in(pages, OFFICER, PIN) == 429
    health = pages.component()
    assert health["state"] == "degraded"
    assert health["detail"] == "10 wrong officer PINs in 15 min, for 10 officer ids"


@pytest.mark.asyncio
async def test_an_officer_waits_after_wrong_pins_even_when_the_pages_restart(
    pages: KioskPages, tmp_path: Path
) -> None:
    for _ in range(5):
        assert await log_in(pages, OFFICER, "000000") == 401
    assert await log_in(pages, OFFICER, PIN) == 429
    again = KioskPages(
        pages.lane,
        port=0,
        officers=pages.officers,
        logins_file=tmp_path / "officer-logins.json",
    )
    async with again:
        assert await log_in(again, OFFICER, PIN) == 429


@pytest.mark.asyncio
async def test_pages_asked_for_under_a_foreign_host_name_are_refused(pages: KioskPages) -> None:
    port = pages.url.rsplit(":", 1)[1]
    # DNS rebinding: evil.example now resolves to 127.0.0.1; its page posts to "itself".
    assert await log_in(pages, OFFICER, PIN, host=f"evil.example:{port}") == 421
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{pages.url}/", headers={"Host": f"evil.example:{port}"}) as response,
    ):
        assert response.status == 421
    # The names the pages are served under: loopback's and the configured one.
    for host in (f"localhost:{port}", f"kiosk.local:{port}"):
        assert await log_in(pages, OFFICER, PIN, host=host) == 303, host
    assert await log_in(pages, OFFICER, PIN) == 303
