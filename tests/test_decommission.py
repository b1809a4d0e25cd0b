"""A kiosk told to decommission itself drains its outbox, erases what it holds, says so, and
stays down; on the real agent process, broker and console ingest."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from console.commands import CommandSettings, send_command
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
    settings = CommandSettings(uplink_broker.console_endpoint(), node_id="console")
    goodbyes = []
    async with running_worker(uplink_broker, db), uplink_broker.observer() as observer:
        await observer.subscribe(topics.device_topic("kiosk-dec-1", "availability"), qos=1)
        rig.start()
        await asyncio.to_thread(rig.wait_connected)
        assert await asyncio.to_thread(rig.tap, rig.worker_card())
        await until(lambda: stored(db, "kiosk-dec-1") == 1)

        answer = await send_command(
            settings, "kiosk-dec-1", "decommission", {"wait_s": 30}, wait_s=15
        )
        assert answer["status"] == "ok", answer
        assert {"kiosk.db", "watchlist.db", key_file.name} <= set(answer["result"]["erasing"])
        await until(lambda: rig.process.poll() is not None, timeout=40)

        async with asyncio.timeout(5):
            async for message in observer.messages:
                body = json.loads(message.payload)
                goodbyes.append((body["state"], body.get("reason")))
                if body.get("reason") == "decommissioned":
                    break
    assert rig.process.returncode == 0
    assert goodbyes[-1] == ("offline", "decommissioned")  # its last message says so
    assert stored(db, "kiosk-dec-1") == 1  # everything it recorded was delivered first
    state = rig.directory / "state"
    assert not (state / "kiosk.db").exists() and not (state / "watchlist.db").exists()
    assert not key_file.exists()
    assert "review items erased" in (state / "decommissioned").read_text()

    again = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--config", str(rig.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 3  # the unit's RestartPreventExitStatus: it stays down
    assert again.stderr.strip().startswith("Error: this kiosk was decommissioned (")
    assert len(again.stderr.strip().splitlines()) == 1
