"""Wrong PINs on the officer screen: back-off per officer id, per source and across all ids,
kept across restarts, and an alarm when someone is guessing.

A PIN is 4 to 12 digits, so guessing must be slowed where it can happen three ways:

* **one officer id, many PINs**: after ``free_attempts`` wrong PINs for an id, the next attempt
  for it is heard only after a wait that doubles with each further wrong PIN (``base_wait_s``,
  then twice that, …), never more than ``max_wait_s``;
* **one PIN, many officer ids** (a spray: 1234 against every id): every wrong PIN also counts
  for its source address and for the kiosk as a whole, with their own, larger allowances
  (``spray_attempts``); past them every attempt waits, whatever the id, and the heartbeat says
  so (:meth:`LoginGuard.alarm`);
* **a restart between guesses**: the counts are kept in a small JSON file (0600) in the
  kiosk's data folder and read back at start.

Back-off, not a lock: someone who knows an officer's id can make that officer wait, but never
longer than ``max_wait_s`` after their own last wrong PIN, and an attempt made while waiting is
refused without being counted, so hammering does not extend the wait. (At a kiosk the officer
and the attacker stand at the same screen: no key tells them apart.)

A key's wrong PINs are forgotten ``window_s`` after its last one. Times are the wall clock, because
they must survive a restart; a time in the future (the clock was set back) counts as now, so a
clock jump can shorten a wait but never make one endless.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LoginGuard"]

log = logging.getLogger("borderlane.ui.logins")

ALL = "*"
"""The key counting every wrong PIN on this kiosk."""
MAX_KEPT = 64
"""Wrong PINs remembered per key: enough for any wait (the cap is reached after a few)."""


@dataclass
class LoginGuard:
    """Decides when the next PIN attempt may be heard; see the module docstring."""

    path: Path | None = None
    free_attempts: int = 5
    """Wrong PINs for one officer id before each further attempt waits."""
    spray_attempts: int = 10
    """Wrong PINs from one source, or on the whole kiosk, before every attempt waits."""
    base_wait_s: float = 30.0
    max_wait_s: float = 300.0
    window_s: float = 900.0
    clock: Callable[[], float] = time.time
    _failures: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.path is not None:
            self._failures = _read(self.path)
            self._forget_old()

    def wait_s(self, officer_id: str, source: str) -> float:
        """Seconds before an attempt for *officer_id* from *source* is heard (0: now)."""
        self._forget_old()
        return max(
            self._wait(f"officer:{officer_id}", self.free_attempts),
            self._wait(f"source:{source}", self.spray_attempts),
            self._wait(ALL, self.spray_attempts),
        )

    def failed(self, officer_id: str, source: str) -> None:
        now = self.clock()
        for key in (f"officer:{officer_id}", f"source:{source}", ALL):
            self._failures.setdefault(key, []).append(now)
        self._save()

    def succeeded(self, officer_id: str) -> None:
        """The officer's own count starts again; the source's and the kiosk's do not (a spray
        that finds one officer is still a spray)."""
        if self._failures.pop(f"officer:{officer_id}", None) is not None:
            self._save()

    def alarm(self) -> str | None:
        """A line for the heartbeat while someone is guessing: the kiosk's wrong PINs within
        the window have reached ``spray_attempts``; None otherwise."""
        self._forget_old()
        now = self.clock()
        count = sum(1 for t in self._failures.get(ALL, []) if now - t < self.window_s)
        if count < self.spray_attempts:
            return None
        ids = sum(1 for key in self._failures if key.startswith("officer:"))
        minutes = round(self.window_s / 60)
        return f"{count} wrong officer PINs in {minutes} min, for {ids} officer ids"

    # -- internals ----------------------------------------------------------------------------

    def _wait(self, key: str, allowed: int) -> float:
        times = self._failures.get(key, [])
        over = len(times) - allowed
        if over < 0:
            return 0.0
        wait = min(self.max_wait_s, self.base_wait_s * 2.0**over)
        return max(0.0, min(times[-1], self.clock()) + wait - self.clock())

    def _forget_old(self) -> None:
        """A key's wrong PINs are forgotten together, ``window_s`` after its last one (one by
        one, the oldest leaving first would shorten a back-off that is still running)."""
        now = self.clock()
        for key in list(self._failures):
            times = [min(t, now) for t in self._failures[key]][-MAX_KEPT:]
            if times and now - times[-1] < self.window_s:
                self._failures[key] = times
            else:
                del self._failures[key]

    def _save(self) -> None:
        if self.path is None:
            return
        self._forget_old()
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"failures": self._failures}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:  # a full disk must not stop the login page; the counts stay
            log.warning("officer login counts not saved to %s: %s", self.path, exc.strerror)


def _read(path: Path) -> dict[str, list[float]]:
    """The counts saved in *path*; none when it is missing or unreadable (said in the log)."""
    try:
        data = json.loads(path.read_text())
        failures = data["failures"]
        return {
            str(key): [float(t) for t in times if _is_time(t)]
            for key, times in failures.items()
            if isinstance(times, list)
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("officer login counts in %s unreadable (%s): starting afresh", path, exc)
        return {}


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
