"""A really full disk under the kiosk's state: a small tmpfs, filled by something else.

Not a simulated free-space figure: the kernel answers ENOSPC and SQLite "database or disk is
full". The agent runs as a process on the real parts (pcscd+vpcd, Mosquitto with TLS, the
console's ingest); crossings are counted on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from edge.uplink import Outbox
from edge.uplink.config import OutboxLimits
from edge.uplink.errors import OutboxFull
from harness.console import rows, running_worker
from harness.uplink import crossing_body
from mqtt_schemas.envelope import SystemClock

MiB = 1024 * 1024
LIMITS = {"reserve_free_bytes": MiB, "alarm_free_bytes": 2 * MiB}
"""A 1 MiB reserve (so a 1 MiB ballast) on an 8 MiB file system."""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted (lazily, should a process still hold it) afterwards."""
    mount = tmp_path / "small-disk"
    mount.mkdir(mode=0o700)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system refuses (ENOSPC): the disk is really full."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
        with contextlib.suppress(OSError):  # the last few bytes a chunk did not fit in
            while True:
                out.write(b"\0" * 512)
    return filler


def test_the_outbox_deletes_acked_records_on_a_really_full_disk_and_refuses_until_room(
    small_disk,
):
    path, limits = small_disk / "kiosk.db", OutboxLimits(**LIMITS)
    outbox = Outbox(path, "kiosk-full-0", SystemClock(), limits)
    ids = [outbox.enqueue("crossings", crossing_body(n)).id for n in range(40)]
    outbox.close()  # a restart: SQLite removes the WAL, so the next write must grow a new one
    outbox = Outbox(path, "kiosk-full-0", SystemClock(), limits)
    try:
        filler = fill(small_disk)
        with pytest.raises(OutboxFull) as refused:
            outbox.enqueue("crossings", crossing_body(99))
        assert refused.value.reason == "disk" and outbox.refusal() == "disk"
        assert [record.id for record in outbox.pending(0, 100)] == ids  # nothing lost
        assert outbox.purge(ids) == 40  # the acked records go: the ballast gave its room
        assert outbox.stats().depth == 0 and not outbox.ballast_path.exists()
        assert outbox.next_session() >= 1  # and the counters are still written
        assert outbox.refusal() == "disk"  # still no room for records
        filler.unlink()
        assert outbox.refusal() is None and outbox.ballast_path.stat().st_size == MiB
        outbox.enqueue("crossings", crossing_body(100))
    finally:
        outbox.close()


async def until(condition, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def lane_health(db, device_id: str) -> dict | None:
    found = rows(db, "SELECT health FROM devices WHERE device_id = ?", device_id)
    if not found or not found[0]["health"]:
        return None
    return json.loads(found[0]["health"])


async def traveller_screen(url: str, seen: list[str]) -> None:
    """Every message the traveller screen is sent (its Server-Sent Events)."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/traveller/events") as reply:
        async for line in reply.content:
            if line.startswith(b"data: "):
                seen.append(line[6:].decode())


@pytest.mark.asyncio
async def test_a_full_disk_refuses_crossings_drains_the_outbox_and_recovers(
    uplink_broker, kiosk_rig, small_disk, tmp_path
):
    rig = kiosk_rig(
        uplink_broker,
        "kiosk-full-1",
        watchlist_version=0,
        lane={"policy": {"show_s": 1.0}},
        uplink={"outbox": LIMITS},
    )
    (rig.directory / "state").symlink_to(small_disk)  # the kiosk's data_dir on the small disk
    db = tmp_path / "console.db"
    uplink_broker.stop()  # the network is down too: the records wait in the outbox
    rig.start()
    for _ in range(2):
        assert await asyncio.to_thread(rig.tap, rig.worker_card())
    assert rig.outbox_depth() == 2
    assert (small_disk / "kiosk.db.reserve").stat().st_size == MiB  # the ballast

    filler = await asyncio.to_thread(fill, small_disk)  # something else fills the disk
    url = re.search(r"kiosk pages at (http://\S+)", rig.log_text()).group(1)
    screen: list[str] = []
    watcher = asyncio.create_task(traveller_screen(url, screen))
    try:
        assert not await asyncio.to_thread(rig.tap, rig.worker_card(), timeout=4)
        await until(lambda: any("processed by an officer" in event for event in screen))
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    assert rig.recorded() == 2 and rig.outbox_depth() == 2  # refused, nothing lost

    uplink_broker.start()
    async with running_worker(uplink_broker, db):
        # the console stores and acks both; deleting them needs room the disk has not got
        await until(lambda: rig.outbox_depth() == 0, timeout=30)
        assert len(rows(db, "SELECT id FROM crossings WHERE device_id = ?", rig.device_id)) == 2
        await until(lambda: (lane_health(db, rig.device_id) or {}).get("components"))
        health = lane_health(db, rig.device_id)
        assert health["components"]["lane"]["state"] == "degraded"
        assert "storage full" in health["components"]["lane"]["detail"]
        assert health["outbox"]["alarm"] is True

        filler.unlink()  # space returns: the ballast comes back and the lane records again
        await until(lambda: lane_health(db, rig.device_id)["components"]["lane"]["state"] == "ok")
        assert (small_disk / "kiosk.db.reserve").stat().st_size == MiB
        assert await asyncio.to_thread(rig.tap, rig.worker_card())
        await until(lambda: rig.outbox_depth() == 0)
        stored = rows(db, "SELECT id FROM crossings WHERE device_id = ?", rig.device_id)
    assert rig.stop() == 0
    assert rig.recorded() == 3 and len({row["id"] for row in stored}) == 3
