"""The kiosk agent as it runs on a kiosk: a process started from kiosk.toml, on the real parts.

A virtual CBIC on a vpcd reader of the agent's own pcscd, a virtual MRZ reader on a pty,
Mosquitto with TLS client certificates, and the real console ingest storing what arrives.
The chaos tests count crossings on both sides: the lane's durable count of what it committed,
and the console's rows by id. Every crossing committed arrives exactly once, whatever was
killed in between.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading

import pytest

import mqtt_schemas
from console.commands import CommandSettings, send_command
from console.store import StoreError
from harness.console import rows, running_worker

pytestmark = pytest.mark.asyncio


async def until(condition, timeout: float = 20.0, step: float = 0.05) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(step)


def stored_crossings(db, device_id: str) -> list[str]:
    try:
        found = rows(db, "SELECT id FROM crossings WHERE device_id = ?", device_id)
    except StoreError:  # the console has not created its database or its tables yet
        return []
    return [row["id"] for row in found]


def device_row(db, device_id: str):
    found = rows(db, "SELECT * FROM devices WHERE device_id = ?", device_id)
    return found[0] if found else None


async def test_a_tap_is_decided_recorded_and_stored_by_the_console_once(
    uplink_broker, kiosk_rig, tmp_path
):
    rig = kiosk_rig(uplink_broker, "kiosk-e2e-1")
    db = tmp_path / "console.db"
    async with running_worker(uplink_broker, db):
        rig.start()
        assert await asyncio.to_thread(rig.tap, rig.worker_card())
        await until(lambda: len(stored_crossings(db, rig.device_id)) == 1)
        await until(lambda: rig.outbox_depth() == 0)  # acked by the console, then purged
        crossing = json.loads(rows(db, "SELECT payload FROM crossings")[0]["payload"])
        assert crossing["decision"]["outcome"] == "pass"
        assert crossing["site"] == "bz-santa-elena" and crossing["direction"] == "entry"
        assert crossing["device_id"] == rig.device_id

        # the heartbeat reaches the console: every part's state, the outbox, the watchlist
        await until(lambda: (device_row(db, rig.device_id) or {"health": None})["health"])
        health = json.loads(device_row(db, rig.device_id)["health"])
        mqtt_schemas.validate("health", health)
        components = health["components"]
        assert components["lane"]["state"] == "ok"
        assert components["card-reader"]["state"] == "ok"
        assert components["mrz-reader"]["state"] == "ok"
        assert components["camera"]["state"] == "absent"
        await until(lambda: "uplink" in components and components["uplink"]["state"] == "ok")
        assert health["outbox"]["alarm"] is False
        assert device_row(db, rig.device_id)["state"] == "online"

        assert rig.stop() == 0  # SIGTERM: a clean stop says offline, not a lost connection
        await until(lambda: device_row(db, rig.device_id)["state"] == "offline")
        assert device_row(db, rig.device_id)["offline_reason"] == "shutdown"
    assert rig.recorded() == 1


async def test_with_no_broker_the_lane_decides_and_keeps_every_record_for_later(
    uplink_broker, kiosk_rig, tmp_path
):
    rig = kiosk_rig(uplink_broker, "kiosk-e2e-2")
    uplink_broker.stop()  # the network is gone before the kiosk even starts
    rig.start()
    for _ in range(3):
        assert await asyncio.to_thread(rig.tap, rig.worker_card())
    assert rig.recorded() == 3 and rig.outbox_depth() == 3
    db = tmp_path / "console.db"
    uplink_broker.start()
    async with running_worker(uplink_broker, db):
        await until(lambda: len(stored_crossings(db, rig.device_id)) == 3, timeout=30)
        await until(lambda: rig.outbox_depth() == 0)
    assert len(set(stored_crossings(db, rig.device_id))) == 3


async def test_chaos_kill_9_the_agent_kill_the_broker_stop_the_console_none_lost_none_twice(
    uplink_broker, kiosk_rig, console_db
):
    """Travellers keep tapping while the agent is SIGKILLed twice, the broker is SIGKILLed and
    restarted and the console is stopped for a while; afterwards every crossing the lane
    committed is in the console exactly once, on SQLite and on PostgreSQL."""
    rig = kiosk_rig(uplink_broker, "kiosk-e2e-3")
    db = console_db
    stop = threading.Event()
    answered = 0

    def traveller_queue() -> None:
        nonlocal answered
        while not stop.is_set():
            if rig.tap(rig.worker_card(), timeout=3):
                answered += 1

    rig.start()
    walker = threading.Thread(target=traveller_queue, daemon=True)
    async with running_worker(uplink_broker, db):
        walker.start()
        await until(lambda: rig.recorded() >= 3)
        rig.kill()  # power cut mid-stream
        await asyncio.sleep(0.3)
        rig.start()
        await until(lambda: rig.recorded() >= 6)
        uplink_broker.kill()  # the broker dies with messages in flight
        await until(lambda: rig.recorded() >= 8)
        uplink_broker.start()
    # the console is down now; the kiosk keeps recording, the broker queues what it can
    await until(lambda: rig.recorded() >= 10)
    rig.kill()
    rig.start()
    await until(lambda: rig.recorded() >= 12)
    stop.set()
    await asyncio.to_thread(walker.join, 15)
    async with running_worker(uplink_broker, db):
        await until(lambda: rig.outbox_depth() == 0, timeout=60)
        committed = rig.recorded()
        await until(lambda: len(stored_crossings(db, rig.device_id)) >= committed, timeout=30)
    stored = stored_crossings(db, rig.device_id)
    assert len(stored) == len(set(stored)) == committed  # none lost, none twice
    assert answered <= committed  # a tap the killed agent never answered recorded nothing


async def test_the_console_commands_a_running_agent(uplink_broker, kiosk_rig):
    rig = kiosk_rig(uplink_broker, "kiosk-e2e-4")
    settings = CommandSettings(uplink_broker.console_endpoint(), node_id="console")
    rig.start()
    await asyncio.to_thread(rig.wait_connected)  # its session exists: commands reach it

    async def send(name: str, **args):
        return await send_command(settings, rig.device_id, name, args, wait_s=15)

    pong = await send("ping")
    assert pong["status"] == "ok" and pong["result"]["pong"] is True

    report = (await send("diagnostics"))["result"]
    assert report["parts"]["lane"]["state"] == "ok"
    assert report["agent"]["config"] == str(rig.config_path)
    assert "surname" not in json.dumps(report)

    unknown = await send("self-destruct")
    assert unknown["status"] == "error" and unknown["error"]["code"] == "unknown-command"

    good = rig.config_path.read_text()
    rig.config_path.write_text(good.replace('direction = "entry"', 'direction = "sideways"'))
    refused = await send("config-reload")
    assert refused["status"] == "error" and refused["error"]["code"] == "bad-config"
    assert "lane.direction" in refused["error"]["message"]
    rig.config_path.write_text(good)
    unchanged = await send("config-reload")
    assert unchanged["result"] == {"changed": [], "restarting": False}

    pid = rig.process.pid
    restarting = await send("agent-restart")
    assert restarting["status"] == "ok"
    await until(lambda: rig.log_text().count(" started: device") == 2)
    await asyncio.to_thread(rig.wait_connected, 2)
    assert rig.process.pid == pid and rig.process.poll() is None  # re-executed in place
    assert (await send("ping"))["status"] == "ok"


def console_cli(uplink_broker, *args: str) -> list[str]:
    return [sys.executable, "-m", "console", *args, *uplink_broker.console_cli_args()]


async def test_a_list_published_by_the_console_reaches_the_kiosk_and_refers_the_listed(
    uplink_broker, kiosk_rig, tmp_path
):
    """The watchlist path end to end: signed at the console, caught up by a kiosk that started
    with none (version 0), applied, and used by the lane on the next tap."""
    rig = kiosk_rig(uplink_broker, "kiosk-e2e-5", watchlist_version=0)
    history = tmp_path / "console.db"
    listing = tmp_path / "national.jsonl"
    listing.write_text(
        json.dumps(
            {
                "id": "nw-castillo",
                "kind": "person",
                "names": ["CASTILLO, MARISOL ANDREA"],
                "birth_date": "1988-03-14",
                "nationality": ["BLZ"],
                "list": "national-wanted",
                "action": "deny",
            }
        )
        + "\n"
    )
    keys = ["--signing-key", str(rig.directory / "watchlist.key.pem"), "--key-id"]
    keys.append(rig.watchlist_key_id)
    serve = subprocess.Popen(
        console_cli(uplink_broker, "watchlist", "serve", "--db", str(history), *keys),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        rig.start()
        publish = console_cli(uplink_broker, "watchlist", "publish", "--db", str(history), *keys)
        published = subprocess.run(
            [*publish, str(listing)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert published.returncode == 0, published.stderr
        watchlist = rig.directory / "state" / "watchlist.db"
        await until(lambda: _watchlist_version(watchlist) == 1, timeout=30)

        assert await asyncio.to_thread(rig.tap, rig.worker_card())
        crossing = json.loads(
            rig.query("SELECT payload FROM uplink_outbox WHERE channel = 'crossings'")[0][0]
        )
        assert crossing["decision"]["outcome"] == "refer"
        assert crossing["screening"]["watchlist_version"] == 1
        assert rig.query("SELECT status FROM lane_reviews") == [("open",)]  # for the officer
    finally:
        serve.terminate()
        serve.wait(10)


def _watchlist_version(path) -> int | None:
    if not path.exists():
        return None
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        connection.close()
    return int(row[0]) if row else None
