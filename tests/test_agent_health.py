"""The heartbeat's system figures, and systemd's notify protocol on a real datagram socket."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

import mqtt_schemas
from edge.agent.health import cpu_temperature, heartbeat, system_figures
from edge.agent.systemd import Notifier


def test_system_figures_come_from_the_machine_itself(tmp_path):
    figures = system_figures(tmp_path)
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    assert figures["memory"]["total_bytes"] == total_kb * 1024
    assert 0 < figures["memory"]["available_bytes"] <= figures["memory"]["total_bytes"]
    disk = os.statvfs(tmp_path)
    assert figures["disk"]["total_bytes"] == disk.f_blocks * disk.f_frsize
    assert figures["cpu"]["load_1m"] >= 0


def test_the_soc_temperature_is_read_from_the_cpu_zone(tmp_path):
    for index, (kind, millidegrees) in enumerate([("acpitz", "27800"), ("cpu-thermal", "51234")]):
        zone = tmp_path / f"thermal_zone{index}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(millidegrees + "\n")
    assert cpu_temperature(tmp_path) == 51.2  # the SoC, not the first zone
    assert cpu_temperature(tmp_path / "none") is None  # a board without sensors


def test_a_heartbeat_is_a_valid_health_payload(tmp_path):
    body = heartbeat(
        agent_version="1.0.0",
        started=time.monotonic() - 12,
        data_dir=tmp_path,
        uplink_fields={
            "session": 3,
            "outbox": {"depth": 0, "oldest_age_s": None, "bytes": 0, "alarm": False},
            "last_ack": None,
        },
        components={
            "lane": {"state": "ok", "since": "2026-11-24T10:00:00.000Z"},
            "camera": {"state": "absent", "since": "2026-11-24T10:00:00.000Z"},
        },
        watchlist={"version": 0, "applied_at": None, "age_s": None},
    )
    assert body["uptime_s"] >= 12
    envelope = {
        "schema": "health@1",
        "id": "0190f3f0-0000-7000-8000-000000000001",
        "device_id": "kiosk-bz-01",
        "seq": 1,
        "time": "2026-11-24T10:00:00.000Z",
        "clock": {"synced": True, "source": "ntp"},
    }
    mqtt_schemas.validate("health", {**envelope, **body})


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_readiness_reaches_systemds_socket(notify_socket):
    path, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    assert notifier.notify(READY=1, STATUS="serving lane lane-1")
    assert sock.recv(1024) == b"READY=1\nSTATUS=serving lane lane-1"


def test_outside_systemd_notifications_do_nothing():
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.notify(READY=1)


@pytest.mark.asyncio
async def test_the_watchdog_is_fed_only_while_the_lane_is_alive(notify_socket):
    path, sock = notify_socket
    sock.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "40000"})
    assert notifier.watchdog_s == 0.04
    alive = True
    task = asyncio.create_task(notifier.watchdog(lambda: alive))
    await asyncio.sleep(0.1)
    pings = _drain(sock)
    assert pings.count(b"WATCHDOG=1") >= 3  # every 20 ms
    alive = False  # the lane died: systemd must see the pings stop and restart the agent
    await asyncio.sleep(0.1)
    assert _drain(sock) == []
    task.cancel()


def test_a_watchdog_meant_for_another_process_is_ignored():
    notifier = Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_s is None


def _drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(1024))
        except BlockingIOError:
            return out
