"""systemd's notify protocol: readiness, status line and the watchdog, without libsystemd.

Under ``Type=notify`` systemd passes a datagram socket in ``NOTIFY_SOCKET`` (a path, or an
abstract name written ``@name``); each datagram is ``KEY=VALUE`` lines. With
``WatchdogSec=`` it also sets ``WATCHDOG_USEC`` and kills the agent (then restarts it) when no
``WATCHDOG=1`` arrives in time. Outside systemd every call here does nothing.

The watchdog is fed from the event loop *and* only while the lane is alive (``alive()``), so
a blocked loop or a dead lane stops the pings and systemd restarts the agent: the watchdog
proves the kiosk can serve a traveller, not merely that the process exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to systemd when started by it; a no-op otherwise."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_s: float | None = int(usec) / 1e6 if watched else None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (``notify(READY=1, STATUS="...")``); True if sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, self.address)
            return True
        except OSError as exc:  # systemd gone (shutdown): nothing to tell
            log.debug("sd_notify failed: %s", exc)
            return False

    async def watchdog(self, alive: Callable[[], bool]) -> None:
        """Ping the watchdog at half its timeout while ``alive()``; returns at once without one."""
        if self.watchdog_s is None or self.address is None:
            return
        while True:
            if alive():
                self.notify(WATCHDOG=1)
            await asyncio.sleep(self.watchdog_s / 2)
