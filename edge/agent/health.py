"""The heartbeat: what a technician needs to know about a kiosk without walking to it.

:func:`system_figures` reads the board (load, SoC temperature, memory, the data disk) from
Linux's own files; :func:`heartbeat` joins them with every part's state, the watchlist and the
uplink into one ``health@1`` body; :func:`run_heartbeat` publishes it every interval. A
heartbeat is QoS 0 and never stored: when the kiosk is offline it is skipped, the next one says
everything again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge.uplink.errors import NotConnected

__all__ = ["cpu_temperature", "heartbeat", "run_heartbeat", "system_figures"]

log = logging.getLogger(__name__)

THERMAL = Path("/sys/class/thermal")
_SOC_ZONES = ("cpu-thermal", "soc-thermal", "cpu_thermal", "x86_pkg_temp", "soc_thermal")


def cpu_temperature(thermal: Path = THERMAL) -> float | None:
    """The SoC temperature in °C (a Pi's ``cpu-thermal`` zone), or None without a sensor."""
    zones = sorted(thermal.glob("thermal_zone*"))
    if not zones:
        return None

    def kind(zone: Path) -> str:
        try:
            return (zone / "type").read_text().strip()
        except OSError:
            return ""

    preferred = [z for z in zones if kind(z) in _SOC_ZONES] or zones
    for zone in preferred:
        try:
            millidegrees = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        celsius = millidegrees / 1000
        if -60 <= celsius <= 150:
            return round(celsius, 1)
    return None


def _meminfo(path: Path = Path("/proc/meminfo")) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in path.read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0]) * 1024  # kB
    return values


def system_figures(data_dir: Path) -> dict[str, Any]:
    """``cpu``, ``memory`` and ``disk`` of a heartbeat (the disk holding *data_dir*)."""
    load_1m, load_5m, _ = os.getloadavg()
    memory = _meminfo()
    disk = os.statvfs(data_dir)
    return {
        "cpu": {
            "load_1m": round(load_1m, 2),
            "load_5m": round(load_5m, 2),
            "temperature_c": cpu_temperature(),
        },
        "memory": {
            "total_bytes": memory.get("MemTotal", 0),
            "available_bytes": memory.get("MemAvailable", memory.get("MemFree", 0)),
        },
        "disk": {
            "total_bytes": disk.f_blocks * disk.f_frsize,
            "free_bytes": disk.f_bavail * disk.f_frsize,
        },
    }


def heartbeat(
    *,
    agent_version: str,
    started: float,
    data_dir: Path,
    uplink_fields: Mapping[str, Any],
    components: Mapping[str, Mapping[str, Any]],
    watchlist: Mapping[str, Any],
) -> dict[str, Any]:
    """One ``health@1`` body without its envelope (the uplink adds id, seq, time and clock).

    *uplink_fields* is ``UplinkStatus.health_fields()`` (session, outbox, last_ack);
    *started* is the agent's start on ``time.monotonic()``.
    """
    return {
        "agent_version": agent_version,
        "uptime_s": round(time.monotonic() - started, 1),
        **system_figures(data_dir),
        "components": dict(components),
        "watchlist": dict(watchlist),
        **uplink_fields,
    }


async def run_heartbeat(
    publish: Callable[[dict[str, Any]], Any],
    build: Callable[[], dict[str, Any]],
    interval_s: float,
    on_beat: Callable[[], None] | None = None,
) -> None:
    """Publish ``build()`` every *interval_s* until cancelled; offline beats are skipped.

    *publish* is ``lambda body: uplink.publish_now("health", body)``. The first beat goes
    out at once, so a console sees a restarted kiosk without waiting an interval.
    """
    while True:
        try:
            await publish(build())
            if on_beat is not None:
                on_beat()
        except NotConnected:
            pass  # offline: the next beat after reconnecting says it all
        except Exception:  # a heartbeat must never stop the kiosk
            log.warning("heartbeat not sent", exc_info=True)
        await asyncio.sleep(interval_s)
