"""Personal data at rest: whatever the kiosk agent and the console create is private.

Every SQLite database (with its ``-wal`` and ``-shm``), state file and export is 0600 and every
directory made for them 0700, with the permissive umask a shell or a unit without ``UMask=``
gives (022): the modes are set by the code, the umask is only a second line of defence.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from console.cli import cli as console_cli
from console.records import classify
from console.store import Store
from console.store.admin import backup
from edge.agent.agent import Agent
from edge.agent.commands import CommandRunner, ping_action
from edge.agent.config import load_config
from edge.lane.reviews import ReviewItem, ReviewQueue
from edge.uplink import Outbox
from harness.console import crossing
from mqtt_schemas import topics
from mqtt_schemas.envelope import ClockReading, ClockState, SystemClock

KIOSK = """
[agent]
device_id = "kiosk-bz-rest"
data_dir = "var/state"

[lane]
site = "bz-santa-elena"
lane = "lane-1"
direction = "entry"

[uplink.broker]
host = "127.0.0.1"
ca_file = "pki/ca.crt"
cert_file = "pki/kiosk.crt"
key_file = "pki/kiosk.key"
"""


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The umask of a login shell or a unit that sets none."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(top: Path) -> dict[str, str]:
    """Every file and directory under *top* (itself included) with its permission bits."""
    found = {".": oct(stat.S_IMODE(top.stat().st_mode))}
    for path in top.rglob("*"):
        found[str(path.relative_to(top))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def loose(found: dict[str, str], top: Path) -> dict[str, str]:
    """The entries of :func:`modes` that are not private (files 0600, directories 0700)."""
    bad = {}
    for name, mode in found.items():
        wanted = "0o700" if (top / name).is_dir() else "0o600"
        if mode != wanted:
            bad[name] = mode
    return bad


def test_the_kiosk_agent_creates_its_databases_and_directory_private(open_umask, tmp_path):
    (tmp_path / "kiosk.toml").write_text(textwrap.dedent(KIOSK))
    agent = Agent(load_config(tmp_path / "kiosk.toml", agent_version="1.0.0"))
    agent.open()
    try:
        assert agent.lane is not None
        agent.outbox.next_session()  # a commit: the WAL and shared-memory files exist now
        agent.lane.reviews.purge()
        state = tmp_path / "var" / "state"
        found = modes(state)
        assert {"kiosk.db", "kiosk.db-wal", "kiosk.db-shm", "watchlist.db"} <= set(found)
        assert loose(found, state) == {}
    finally:
        agent.close()


def test_a_kiosk_database_left_readable_by_an_older_agent_is_made_private(open_umask, tmp_path):
    path = tmp_path / "kiosk.db"
    with Outbox(path, "kiosk-bz-rest", SystemClock()) as outbox:
        outbox.next_session()
    for name in ("kiosk.db", "kiosk.db-wal", "kiosk.db-shm"):
        if (tmp_path / name).exists():
            (tmp_path / name).chmod(0o644)
    with Outbox(path, "kiosk-bz-rest", SystemClock()) as outbox:
        outbox.next_session()
        found = modes(tmp_path)
    del found["."]  # pytest's own directory
    assert loose(found, tmp_path) == {}


def test_the_console_database_its_backup_and_exports_are_private(open_umask, tmp_path):
    db = tmp_path / "console" / "console.db"
    store = Store.open(db)
    record = crossing("kiosk-rest", 1)
    topic = topics.device_topic("kiosk-rest", "crossings")
    store.apply([classify(topic, json.dumps(record).encode())], "c-1", "2026-11-24T09:00:00Z")
    try:
        backup(db, tmp_path / "console" / "backup.db")
        for fmt in ("jsonl", "csv"):
            out = tmp_path / "console" / f"crossings.{fmt}"
            if fmt == "csv":  # an export written over an older, readable one
                out.write_text("old\n")
                out.chmod(0o644)
            result = CliRunner().invoke(
                console_cli,
                ["export", "crossings", "--db", str(db), "--format", fmt, "--out", str(out)],
                catch_exceptions=False,
            )
            assert result.exit_code == 0, result.output
        found = modes(tmp_path / "console")
    finally:
        store.close()
    assert {"console.db", "console.db-wal", "backup.db", "crossings.csv"} <= set(found)
    assert loose(found, tmp_path / "console") == {}


# -- retention by a measure no clock jump stretches ------------------------------------------

DAY_S = 86_400
YEAR_MS = 365 * DAY_S * 1000
NOW_MS = 1_795_000_000_000  # the true time of the test (2026-11)


class BootClock:
    """``CLOCK_BOOTTIME`` as the test moves it (a new instance: the kiosk rebooted)."""

    def __init__(self) -> None:
        self.seconds = 5.0

    def __call__(self) -> float:
        return self.seconds


class WallClock:
    """A wall clock (the contract's :class:`Clock`) the test sets, a year wrong if it likes."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def read(self) -> ClockReading:
        moment = dt.datetime.fromtimestamp(self.ms / 1000, dt.UTC)
        return ClockReading(moment, ClockState(True, "ntp", None))


def referred(crossing_id: str, created_ms: int) -> ReviewItem:
    return ReviewItem(
        crossing_id,
        created_ms,
        "lane-1",
        "normal",
        ("watchlist-refer",),
        {"kind": "cbic", "issuing_state": "BLZ"},
        {"traveller": {"surname": "CASTILLO", "document_number": "CB4410275"}},
        "open",
    )


@pytest.mark.parametrize("skew_ms", [YEAR_MS, -YEAR_MS], ids=["year-ahead", "year-behind"])
def test_a_review_item_is_cleared_within_its_retention_whatever_the_clock_said(tmp_path, skew_ms):
    """The clock is a year wrong when the traveller is referred, then corrected; the kiosk runs
    on and restarts (a reboot) half-way: the identity is gone once the retention has passed."""
    path = tmp_path / "kiosk.db"
    boot = BootClock()
    outbox = Outbox(path, "kiosk-bz-rest", SystemClock(), uptime=boot)
    ReviewQueue(outbox, retention_s=DAY_S)
    with outbox.transaction() as tx:
        ReviewQueue.insert(tx, referred("c-1", NOW_MS + skew_ms))
    boot.seconds += DAY_S / 2
    outbox.close()

    boot = BootClock()  # a reboot: the boot clock starts again, the lifetime goes on
    outbox = Outbox(path, "kiosk-bz-rest", SystemClock(), uptime=boot)
    try:
        queue = ReviewQueue(outbox, retention_s=DAY_S)
        boot.seconds += DAY_S / 2 - 60
        queue.purge(now_ms=NOW_MS + (DAY_S - 60) * 1000)
        kept = queue.get("c-1").personal is not None
        assert kept == (skew_ms > 0)  # a clock behind only clears it sooner
        boot.seconds += 120
        queue.purge(now_ms=NOW_MS + (DAY_S + 60) * 1000)
        assert queue.get("c-1").personal is None
    finally:
        outbox.close()


def test_the_lifetime_survives_a_kill_losing_only_the_time_since_the_last_commit(tmp_path):
    path = tmp_path / "kiosk.db"
    boot = BootClock()
    outbox = Outbox(path, "kiosk-bz-rest", SystemClock(), uptime=boot)
    boot.seconds += 3600
    outbox.next_session()  # a commit: an hour of lifetime on disk
    boot.seconds += 600  # ... and ten minutes that a kill -9 loses (no close)
    again = Outbox(path, "kiosk-bz-rest", SystemClock(), uptime=BootClock())
    try:
        assert again.lifetime_ms() == 3600 * 1000
    finally:
        again.close()
        outbox.close()


def test_command_ids_are_kept_for_their_window_whatever_the_clock_says(tmp_path):
    """A redelivered command finds its stored answer however the wall clock jumped (it must not
    run twice), and ids leave after the window of the kiosk running."""
    boot = BootClock()
    clock = WallClock(NOW_MS)
    outbox = Outbox(tmp_path / "kiosk.db", "kiosk-bz-rest", clock, uptime=boot)
    runner = CommandRunner(outbox, {"ping": ping_action()}, clock, retention_s=DAY_S)
    try:
        # the private pair that a delivered command goes through: claim its id, store the answer
        assert runner._claim("cmd-1", "ping") is None
        runner._finish("cmd-1", {"command_id": "cmd-1", "status": "ok"})
        for jump_ms in (YEAR_MS, -YEAR_MS):
            clock.ms = NOW_MS + jump_ms
            boot.seconds += 3600
            assert runner._claim(f"cmd-{jump_ms}", "ping") is None  # prunes, then claims
            assert runner._claim("cmd-1", "ping") == {"command_id": "cmd-1", "status": "ok"}
        boot.seconds += DAY_S
        runner._claim("cmd-late", "ping")
        ids = {row[0] for row in outbox.query("SELECT command_id FROM agent_commands")}
        assert "cmd-1" not in ids and "cmd-late" in ids
    finally:
        outbox.close()
