"""The fleet's alert rules on both backends: each rule raised past its threshold and cleared when
it no longer holds, the history kept, two evaluators at once, the heartbeat history and its
retention, and ``borderlane-console alerts``.

Heartbeats and availability go in through the console's own write path (``Store.apply``) with
payloads made from the contract's examples, received at times the test chooses; ``evaluate``
runs at a ``now`` the test chooses too, so every threshold is crossed by one second exactly.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

import mqtt_schemas
from console import alerts
from console.records import classify
from console.settings import AlertSettings, Settings
from console.store import Store, open_database
from console.store.schema import alerts as alerts_table
from harness.console import availability, crossing, health
from harness.console import rows as table_rows
from mqtt_schemas import topics
from mqtt_schemas.envelope import format_time, uuid7

T0 = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)
SETTINGS = Settings()
LIMITS = SETTINGS.alerts
CONSOLE_CLI = Path(sys.executable).parent / "borderlane-console"


def rows(db: Any, sql: str) -> list[SimpleNamespace]:
    """The rows of *sql*, read by attribute."""
    return [SimpleNamespace(**dict(zip(r.keys(), r, strict=True))) for r in table_rows(db, sql)]


def at(seconds: float = 0) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


class Fleet:
    """A console database and the kiosks' messages, received when the test says."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.store = Store.open(target)
        self.engine = self.store.engine
        self.seqs: dict[str, int] = {}

    def close(self) -> None:
        self.store.close()

    def _seq(self, device_id: str) -> int:
        self.seqs[device_id] = self.seqs.get(device_id, 0) + 1
        return self.seqs[device_id]

    def put(self, device_id: str, channel: str, payload: dict, when: dt.datetime) -> None:
        item = classify(topics.device_topic(device_id, channel), json.dumps(payload).encode())
        self.store.apply([item], "console-1", format_time(when))

    def birth(self, device_id: str, when: dt.datetime, session: int = 1) -> None:
        payload = availability(device_id, "online", session, self._seq(device_id))
        self.put(device_id, "availability", payload, when)

    def offline(self, device_id: str, when: dt.datetime, session: int = 1) -> None:
        payload = availability(device_id, "offline", session, self._seq(device_id), "will")
        self.put(device_id, "availability", payload, when)

    def heartbeat(self, device_id: str, when: dt.datetime, **changes: Any) -> dict[str, Any]:
        """A heartbeat as the contract's healthy example, with *changes* by dotted path
        (``outbox.oldest_age_s=3600``), sent at *when* by the kiosk's clock too."""
        payload = healthy(device_id, self._seq(device_id), when, **changes)
        self.put(device_id, "health", payload, when)
        return payload

    def evaluate(self, when: dt.datetime, settings: Any = SETTINGS) -> set[tuple[str, str, str]]:
        return {(c.kind, c.device_id, c.rule) for c in alerts.evaluate(self.engine, settings, when)}

    def open_alerts(self) -> set[tuple[str, str]]:
        found = rows(self.engine, "SELECT device_id, rule FROM alerts WHERE cleared_at IS NULL")
        return {(r.device_id, r.rule) for r in found}


def healthy(device_id: str, seq: int, when: dt.datetime, **changes: Any) -> dict[str, Any]:
    payload = health(device_id, session=1, seq=seq)
    payload["time"] = format_time(when)
    payload["watchlist"]["age_s"] = 31.0
    for path, value in changes.items():
        target = payload
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    mqtt_schemas.validate("health", payload)
    return payload


@pytest.fixture
def fleet(console_db):
    with contextlib.closing(Fleet(console_db)) as made:
        yield made


# -- each rule, at its threshold -------------------------------------------------------------


def test_an_offline_kiosk_raises_past_offline_minutes_and_clears_when_it_is_back(fleet):
    fleet.birth("kiosk-a", at(-60))
    fleet.offline("kiosk-a", at(0))
    limit = LIMITS.offline_minutes * 60

    assert fleet.evaluate(at(limit)) == set()
    assert fleet.evaluate(at(limit + 1)) == {("raised", "kiosk-a", "offline")}
    assert fleet.evaluate(at(limit + 60)) == set()  # still open: not raised twice
    detail = rows(fleet.engine, "SELECT detail FROM alerts WHERE rule = 'offline'")[0].detail
    assert "offline for 10 min" in detail and "will" in detail

    fleet.birth("kiosk-a", at(limit + 90), session=2)
    assert fleet.evaluate(at(limit + 91)) == {("cleared", "kiosk-a", "offline")}
    assert fleet.open_alerts() == set()


def test_an_online_kiosk_without_heartbeats_raises_a_stale_heartbeat(fleet):
    fleet.heartbeat("kiosk-a", at(0))
    limit = LIMITS.heartbeat_stale_minutes * 60

    assert fleet.evaluate(at(limit)) == set()
    assert fleet.evaluate(at(limit + 1)) == {("raised", "kiosk-a", "heartbeat-stale")}
    fleet.heartbeat("kiosk-a", at(limit + 30))
    assert fleet.evaluate(at(limit + 31)) == {("cleared", "kiosk-a", "heartbeat-stale")}


def test_a_new_birth_restarts_the_heartbeat_clock(fleet):
    fleet.heartbeat("kiosk-a", at(0))
    fleet.offline("kiosk-a", at(10))
    fleet.birth("kiosk-a", at(3600), session=2)
    assert fleet.evaluate(at(3601)) == set()  # reconnected a second ago: not stale
    limit = LIMITS.heartbeat_stale_minutes * 60
    assert fleet.evaluate(at(3600 + limit + 1)) == {("raised", "kiosk-a", "heartbeat-stale")}


def test_a_birth_without_any_heartbeat_goes_stale_and_offline_replaces_stale(fleet):
    fleet.birth("kiosk-a", at(0))
    limit = LIMITS.heartbeat_stale_minutes * 60
    assert fleet.evaluate(at(limit + 1)) == {("raised", "kiosk-a", "heartbeat-stale")}
    fleet.offline("kiosk-a", at(limit + 2))
    # offline: not silent any more but gone, and not yet for long enough
    assert fleet.evaluate(at(limit + 3)) == {("cleared", "kiosk-a", "heartbeat-stale")}


def test_old_unacked_records_raise_past_outbox_oldest_minutes(fleet):
    limit = LIMITS.outbox_oldest_minutes * 60
    fleet.heartbeat("kiosk-a", at(0), **{"outbox.depth": 12, "outbox.oldest_age_s": limit})
    assert fleet.evaluate(at(1)) == set()
    fleet.heartbeat("kiosk-a", at(2), **{"outbox.depth": 12, "outbox.oldest_age_s": limit + 1})
    assert fleet.evaluate(at(3)) == {("raised", "kiosk-a", "outbox-oldest")}
    detail = rows(fleet.engine, "SELECT detail FROM alerts")[0].detail
    assert "12 waiting" in detail
    fleet.heartbeat("kiosk-a", at(20), **{"outbox.depth": 0, "outbox.oldest_age_s": None})
    assert fleet.evaluate(at(21)) == {("cleared", "kiosk-a", "outbox-oldest")}


def test_a_silent_kiosk_keeps_what_it_last_reported(fleet):
    """Its silence is heartbeat-stale (then offline), not guessed ages of its outbox."""
    fleet.heartbeat("kiosk-a", at(0), **{"outbox.depth": 3, "outbox.oldest_age_s": 9.0})
    assert fleet.evaluate(at(6 * 3600)) == {("raised", "kiosk-a", "heartbeat-stale")}


def test_an_old_watchlist_raises_and_so_does_none_at_all(fleet):
    limit = LIMITS.watchlist_max_age_hours * 3600
    fleet.heartbeat("kiosk-a", at(0), **{"watchlist.age_s": limit})
    assert fleet.evaluate(at(1)) == set()
    fleet.heartbeat("kiosk-a", at(2), **{"watchlist.age_s": limit + 1})
    assert fleet.evaluate(at(3)) == {("raised", "kiosk-a", "watchlist-age")}
    fleet.heartbeat("kiosk-a", at(10), **{"watchlist.age_s": 2.0})
    assert fleet.evaluate(at(11)) == {("cleared", "kiosk-a", "watchlist-age")}

    fleet.heartbeat(
        "kiosk-b",
        at(10),
        **{"watchlist.version": 0, "watchlist.applied_at": None, "watchlist.age_s": None},
    )
    assert fleet.evaluate(at(11)) == {("raised", "kiosk-b", "watchlist-age")}
    detail = rows(fleet.engine, "SELECT detail FROM alerts WHERE device_id = 'kiosk-b'")[0]
    assert "no watchlist applied" in detail.detail


def test_a_part_down_raises_its_own_alert_and_degraded_does_not(fleet):
    down = {"state": "down", "detail": "no reader on /dev/ttyUSB0", "since": format_time(at(0))}
    degraded = {"state": "degraded", "detail": "retries", "since": format_time(at(0))}
    fleet.heartbeat("kiosk-a", at(0), **{"components.mrz-reader": down})
    fleet.heartbeat("kiosk-b", at(0), **{"components.mrz-reader": degraded})
    assert fleet.evaluate(at(1)) == {("raised", "kiosk-a", "part-down:mrz-reader")}
    detail = rows(fleet.engine, "SELECT detail FROM alerts")[0].detail
    assert detail.startswith("mrz-reader down since") and "ttyUSB0" in detail

    fleet.heartbeat("kiosk-a", at(2), **{"components.camera": down})  # mrz-reader back to ok
    assert fleet.evaluate(at(3)) == {
        ("cleared", "kiosk-a", "part-down:mrz-reader"),
        ("raised", "kiosk-a", "part-down:camera"),
    }


def test_an_unsynchronised_clock_raises_and_clears(fleet):
    unsynced = {"synced": False, "source": "rtc", "offset_ms": 812.0}
    fleet.heartbeat("kiosk-a", at(0), clock=unsynced)
    assert fleet.evaluate(at(1)) == {("raised", "kiosk-a", "clock-unsynced")}
    assert "source rtc" in rows(fleet.engine, "SELECT detail FROM alerts")[0].detail
    fleet.heartbeat("kiosk-a", at(2))
    assert fleet.evaluate(at(3)) == {("cleared", "kiosk-a", "clock-unsynced")}


def test_a_nearly_full_disk_raises_below_disk_free_percent(fleet):
    total = 10_000_000_000
    at_limit = total * LIMITS.disk_free_percent // 100
    fleet.heartbeat("kiosk-a", at(0), **{"disk.total_bytes": total, "disk.free_bytes": at_limit})
    assert fleet.evaluate(at(1)) == set()
    fleet.heartbeat(
        "kiosk-a", at(2), **{"disk.total_bytes": total, "disk.free_bytes": at_limit - 1}
    )
    assert fleet.evaluate(at(3)) == {("raised", "kiosk-a", "disk-low")}
    fleet.heartbeat("kiosk-a", at(4), **{"disk.total_bytes": total, "disk.free_bytes": total // 2})
    assert fleet.evaluate(at(5)) == {("cleared", "kiosk-a", "disk-low")}


def test_thresholds_come_from_the_settings(fleet):
    fleet.offline("kiosk-a", at(0))
    strict = Settings(alerts=AlertSettings(offline_minutes=1))
    assert fleet.evaluate(at(61), strict) == {("raised", "kiosk-a", "offline")}
    assert fleet.evaluate(at(62), LIMITS) == {("cleared", "kiosk-a", "offline")}


def test_the_contracts_offline_example_raises_what_it_describes(fleet):
    """The contract's second heartbeat example (two days offline) as the kiosk sent it."""
    example = copy.deepcopy(mqtt_schemas.examples("health")["valid"][1]["payload"])
    # Received when it was stamped: the example is about an offline spell, not a wrong clock.
    example.update(id=uuid7(), device_id="kiosk-bz-bv-03", time=format_time(at(0)))
    fleet.put("kiosk-bz-bv-03", "health", example, at(0))
    assert {rule for _, _, rule in fleet.evaluate(at(1))} == {
        "outbox-oldest",
        "part-down:uplink",
        "clock-unsynced",
    }


# -- history, concurrency ---------------------------------------------------------------------


def test_the_history_survives_clearing_and_a_new_alert_is_a_new_row(fleet):
    fleet.offline("kiosk-a", at(0))
    fleet.evaluate(at(3600))
    fleet.birth("kiosk-a", at(3700), session=2)
    fleet.evaluate(at(3701))
    fleet.offline("kiosk-a", at(7200), session=2)
    fleet.evaluate(at(9000))

    history = rows(
        fleet.engine, "SELECT raised_at, cleared_at FROM alerts WHERE rule = 'offline' ORDER BY id"
    )
    assert [(r.raised_at, r.cleared_at) for r in history] == [
        (format_time(at(3600)), format_time(at(3701))),
        (format_time(at(9000)), None),
    ]
    with fleet.engine.connect() as conn:
        listed = alerts.list_alerts(conn)
    assert [(a.open, a.raised_at) for a in listed] == [
        (True, format_time(at(9000))),
        (False, format_time(at(3600))),
    ]


def test_evaluating_again_changes_nothing(fleet):
    fleet.offline("kiosk-a", at(0))
    fleet.heartbeat("kiosk-b", at(0), clock={"synced": False, "source": "none"})
    assert len(fleet.evaluate(at(3600))) == 3  # offline; kiosk-b stale and unsynced
    for _ in range(3):
        assert fleet.evaluate(at(3600)) == set()
    assert len(rows(fleet.engine, "SELECT id FROM alerts")) == 3


def test_two_evaluators_at_once_leave_one_open_alert_per_kiosk_and_rule(fleet, console_db):
    for number in range(5):
        fleet.offline(f"kiosk-{number}", at(0))
    engines = [open_database(console_db) for _ in range(2)]
    barrier = threading.Barrier(2)
    changes: list[list[alerts.Change]] = [[], []]
    errors: list[BaseException] = []

    def evaluator(index: int) -> None:
        try:
            for round_ in range(10):
                barrier.wait()
                changes[index] += alerts.evaluate(engines[index], SETTINGS, at(3600 + round_))
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=evaluator, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for engine in engines:
            engine.dispose()
    assert not errors, errors
    raised = [c for found in changes for c in found if c.kind == "raised"]
    assert sorted(c.device_id for c in raised) == [f"kiosk-{n}" for n in range(5)]
    assert len(rows(console_db, "SELECT id FROM alerts")) == 5


def test_the_database_refuses_a_second_open_alert_for_a_kiosk_and_rule(fleet):
    row = {"device_id": "kiosk-a", "rule": "offline", "raised_at": format_time(at(0))}
    with fleet.engine.begin() as conn:
        conn.execute(insert(alerts_table).values(**row, detail="first", cleared_at=None))
        # a cleared one beside it is history, allowed
        conn.execute(
            insert(alerts_table).values(**row, detail="old", cleared_at=format_time(at(1)))
        )
    with pytest.raises(IntegrityError), fleet.engine.begin() as conn:
        conn.execute(insert(alerts_table).values(**row, detail="second", cleared_at=None))


# -- heartbeat history ------------------------------------------------------------------------


def test_every_heartbeat_is_kept_once_with_its_numbers(fleet):
    sent = fleet.heartbeat(
        "kiosk-a",
        at(0),
        **{
            "outbox.depth": 7,
            "outbox.oldest_age_s": 120.5,
            "disk.total_bytes": 1000,
            "disk.free_bytes": 250,
        },
    )
    fleet.put("kiosk-a", "health", sent, at(1))  # redelivered: stored once
    fleet.heartbeat("kiosk-a", at(30))
    history = rows(
        fleet.engine,
        "SELECT id, device_id, time, received_at, outbox_depth, outbox_oldest_s, "
        "disk_free_percent, watchlist_version, clock_synced FROM heartbeats ORDER BY time",
    )
    assert len(history) == 2
    first = history[0]
    assert (first.id, first.device_id, first.time, first.received_at) == (
        sent["id"],
        "kiosk-a",
        format_time(at(0)),
        format_time(at(0)),
    )
    assert (first.outbox_depth, first.outbox_oldest_s, first.disk_free_percent) == (7, 120.5, 25.0)
    assert (first.watchlist_version, first.clock_synced) == (1288, 1)
    with fleet.engine.connect() as conn:
        series = alerts.heartbeat_series(conn, "kiosk-a", at(-3600))
    assert [p.outbox_depth for p in series] == [7, 0]


def test_heartbeats_older_than_the_retention_are_purged(fleet):
    days = LIMITS.heartbeat_days
    fleet.heartbeat("kiosk-a", at(-(days + 1) * 86400))
    fleet.heartbeat("kiosk-a", at(-(days - 0.5) * 86400))
    fleet.heartbeat("kiosk-a", at(0))
    assert alerts.purge_heartbeats(fleet.engine, days, at(0)) == 1
    assert len(rows(fleet.engine, "SELECT id FROM heartbeats")) == 2
    assert alerts.purge_heartbeats(fleet.engine, 1, at(0)) == 1
    # the latest heartbeat stays on the kiosk's row whatever the history keeps
    assert rows(fleet.engine, "SELECT health_time FROM devices")[0].health_time == format_time(
        at(0)
    )


def test_a_kiosks_post_is_the_site_of_its_latest_crossing(fleet):
    fleet.heartbeat("kiosk-a", at(0))
    fleet.put("kiosk-a", "crossings", crossing("kiosk-a", 100, site="bz-benque-viejo"), at(1))
    fleet.put("kiosk-a", "crossings", crossing("kiosk-a", 101, site="bz-santa-elena"), at(2))
    fleet.heartbeat("kiosk-b", at(0))
    with fleet.engine.connect() as conn:
        assert alerts.device_posts(conn) == {"kiosk-a": "bz-santa-elena", "kiosk-b": None}


# -- the command line -------------------------------------------------------------------------


def run(*args: str):
    from console.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_alerts_watch_once_prints_the_changes_and_list_shows_them(fleet, console_db):
    fleet.offline("kiosk-a", dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    fleet.put(
        "kiosk-a", "crossings", crossing("kiosk-a", 100, site="bz-santa-elena"), at(0)
    )  # a post, for --post

    once = run("alerts", "watch", "--db", console_db, "--once")
    assert once.exit_code == 0, once.output
    assert once.output.startswith("raised\tkiosk-a\toffline\toffline for 60 min")
    assert run("alerts", "watch", "--db", console_db, "--once").stdout == ""

    listed = run("alerts", "list", "--db", console_db, "--open", "--json")
    assert listed.exit_code == 0, listed.output
    found = [json.loads(line) for line in listed.output.splitlines()]
    assert [(a["device_id"], a["post"], a["rule"], a["cleared_at"]) for a in found] == [
        ("kiosk-a", "bz-santa-elena", "offline", None)
    ]
    none = run("alerts", "list", "--db", console_db, "--rule", "disk-low")
    assert (none.exit_code, none.stdout, none.stderr) == (0, "", "no alerts\n")
    text = run("alerts", "list", "--db", console_db, "--post", "bz-santa-elena").output
    assert "\tkiosk-a\tbz-santa-elena\toffline\topen\t" in text


def test_alerts_commands_fail_in_one_line(tmp_path):
    missing = run("alerts", "watch", "--db", str(tmp_path / "none.db"), "--once")
    assert missing.exit_code == 1
    assert missing.output.strip() == f"Error: no console database at {tmp_path / 'none.db'}"
    assert not (tmp_path / "none.db").exists()
    (tmp_path / "console.toml").write_text("[alerts]\noffline_minutes = 0\n")
    Store.open(tmp_path / "console.db").close()
    refused = run(
        "alerts", "watch", "--db", str(tmp_path / "console.db"), "--instance", str(tmp_path)
    )
    assert refused.exit_code == 1
    assert "alerts.offline_minutes: a whole number from 1" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    bad_rule = run("alerts", "list", "--db", str(tmp_path / "console.db"), "--rule", "nope")
    assert bad_rule.exit_code == 2 and "--rule" in bad_rule.output


def test_alerts_watch_runs_until_stopped(fleet, console_db, tmp_path):
    (tmp_path / "console.toml").write_text("[alerts]\noffline_minutes = 1\n")
    fleet.offline("kiosk-a", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2))
    watcher = subprocess.Popen(
        [str(CONSOLE_CLI), "alerts", "watch", "--every", "1"],
        env={
            **os.environ,
            "BORDERLANE_CONSOLE_DB": console_db,
            "BORDERLANE_CONSOLE_INSTANCE": str(tmp_path),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not rows(console_db, "SELECT id FROM alerts") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rows(console_db, "SELECT rule FROM alerts")[0].rule == "offline"
        fleet.birth("kiosk-a", dt.datetime.now(dt.UTC), session=2)
        while (
            rows(console_db, "SELECT id FROM alerts WHERE cleared_at IS NULL")
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert not rows(console_db, "SELECT id FROM alerts WHERE cleared_at IS NULL")
    finally:
        watcher.send_signal(signal.SIGTERM)
        _, stderr = watcher.communicate(timeout=20)
    assert watcher.returncode == 0, stderr
    assert "raised kiosk-a offline" in stderr and "cleared kiosk-a offline" in stderr
