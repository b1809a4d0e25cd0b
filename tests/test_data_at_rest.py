"""Personal data at rest: whatever the kiosk agent and the console create is private.

Every SQLite database (with its ``-wal`` and ``-shm``), state file and export is 0600 and every
directory made for them 0700, with the permissive umask a shell or a unit without ``UMask=``
gives (022): the modes are set by the code, the umask is only a second line of defence.
"""

from __future__ import annotations

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
from edge.agent.config import load_config
from edge.uplink import Outbox
from harness.console import crossing
from mqtt_schemas import topics
from mqtt_schemas.envelope import SystemClock

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
