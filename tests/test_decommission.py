"""A kiosk told to decommission itself drains its outbox, erases what it holds, says so, and
stays down; on the real agent process, broker and console ingest."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from console.store import StoreError
from harness.console import rows, running_worker
from mqtt_schemas import topics

pytestmark = pytest.mark.asyncio


async def until(condition, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def stored(db, device_id: str) -> int:
    try:
        return len(rows(db, "SELECT id FROM crossings WHERE device_id = ?", device_id))
    except StoreError:
        return 0


async def test_a_decommissioned_kiosk_delivers_everything_erases_its_data_and_key_and_stays_down(
    uplink_broker, kiosk_rig, tmp_path
):
    rig = kiosk_rig(uplink_broker, "kiosk-dec-1")
    db = tmp_path / "console.db"
    key_file = uplink_broker.identity("kiosk-dec-1").key_path
    goodbyes = []
    async with running_worker(uplink_broker, db), uplink_broker.observer() as observer:
        await observer.subscribe(topics.device_topic("kiosk-dec-1", "availability"), qos=1)
        rig.start()
        await asyncio.to_thread(rig.wait_connected)
        assert await asyncio.to_thread(rig.tap, rig.worker_card())
        await until(lambda: stored(db, "kiosk-dec-1") == 1)

        cli = [sys.executable, "-m", "console", "devices", "decommission", "kiosk-dec-1",
               "--by", "ada", "--wait", "30", "--db", str(db),
               "--device-ca", str(uplink_broker.pki.pki.devices.directory),
               "--broker-pid-file", str(uplink_broker.config.directory / "mosquitto.pid"),
               *uplink_broker.console_cli_args()]  # fmt: skip
        done = await asyncio.to_thread(
            subprocess.run, cli, capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, done.stderr
        async with asyncio.timeout(5):
            async for message in observer.messages:
                body = json.loads(message.payload)
                goodbyes.append((body["state"], body.get("reason")))
                if body.get("reason") == "decommissioned":
                    break
    assert done.stdout.splitlines()[-1] == (
        "decommissioned kiosk-dec-1: its data and key erased, its certificate revoked"
    )
    await until(lambda: rig.process.poll() is not None)
    assert rig.process.returncode == 0
    assert goodbyes[-1] == ("offline", "decommissioned")  # its last message says so
    assert stored(db, "kiosk-dec-1") == 1  # everything it recorded was delivered first
    state = rig.directory / "state"
    assert not (state / "kiosk.db").exists() and not (state / "watchlist.db").exists()
    assert not key_file.exists()
    assert "review items erased" in (state / "decommissioned").read_text()

    revoked = uplink_broker.pki.pki.devices.revoked().values()
    assert ("kiosk-dec-1", "decommissioned") in {(e["name"], e["reason"]) for e in revoked}

    again = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--config", str(rig.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 3  # the unit's RestartPreventExitStatus: it stays down
    assert again.stderr.strip().startswith("Error: this kiosk was decommissioned (")
    assert len(again.stderr.strip().splitlines()) == 1
