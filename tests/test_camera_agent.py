"""The camera as a part of the running kiosk agent: its state in the heartbeat the console stores.

The agent is the real process (``kiosk_rig``: its own pcscd + vpcd, a pty MRZ reader,
Mosquitto with TLS, the console's ingest worker); its ``[camera]`` is the virtual camera on a
folder of pictures. Unplugging is the folder renamed away, replugging renaming it back, as a
technician could do on a bench kiosk; the heartbeat (every second here) must say so.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from PIL import Image

import mqtt_schemas
from console.store import StoreError
from harness.console import rows, running_worker

pytestmark = pytest.mark.asyncio


def camera_health(db, device_id: str) -> dict | None:
    try:
        found = rows(db, "SELECT health FROM devices WHERE device_id = ?", device_id)
    except StoreError:  # the worker has not created its tables yet
        return None
    if not found or not found[0]["health"]:
        return None
    health = json.loads(found[0]["health"])
    mqtt_schemas.validate("health", health)
    return health["components"].get("camera")


async def heartbeat_says(db, device_id: str, predicate, timeout: float = 20.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            entry = camera_health(db, device_id)
            if entry is not None and predicate(entry):
                return entry
            await asyncio.sleep(0.1)


async def test_the_cameras_state_reaches_the_console_through_unplug_and_replug(
    uplink_broker, kiosk_rig, tmp_path
):
    faces = tmp_path / "faces"
    faces.mkdir()
    Image.new("RGB", (64, 48), (120, 90, 60)).save(faces / "traveller.png")
    camera = {
        "backend": "virtual",
        "source": str(faces),
        "fps": 10,
        "capture_timeout_s": 0.5,
        "probe_interval_s": 0.2,
        "reconnect_initial_s": 0.1,
        "reconnect_max_s": 0.4,
    }
    rig = kiosk_rig(uplink_broker, "kiosk-camera-1", camera=camera)
    db = tmp_path / "console.db"
    async with running_worker(uplink_broker, db):
        rig.start()
        try:
            entry = await heartbeat_says(db, rig.device_id, lambda e: e["state"] == "ok")
            assert "detail" not in entry
            faces.rename(tmp_path / "unplugged")
            entry = await heartbeat_says(db, rig.device_id, lambda e: e["state"] == "down")
            assert "No such file or directory" in entry["detail"]
            (tmp_path / "unplugged").rename(faces)
            await heartbeat_says(db, rig.device_id, lambda e: e["state"] == "ok")
        finally:
            assert rig.stop() == 0
    log = rig.log_text()
    assert "camera virtual" in log and "Traceback" not in log
