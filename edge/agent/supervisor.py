"""Runs the agent's parts side by side; a part that fails is restarted, the others go on.

A *part* is an async function that runs until cancelled, given a :class:`Part` handle to say
how it is doing::

    async def mrz_reader(part: Part) -> None:
        async with MrzReader(config) as reader:
            part.ready()                       # starting -> ok
            async for event in reader:
                lane.submit(...)

    supervisor = Supervisor(restart_initial_s=1, restart_max_s=60)
    supervisor.add("mrz-reader", mrz_reader)
    await supervisor.run()                     # until cancelled, or a fatal part stops it

A part that raises is marked ``down`` with the error as detail and started again after a
jittered, doubling delay (a flapping reader must not spin the CPU); the delay returns to its
start once a part has stayed up for a while. A part that returns on its own is restarted the
same way (the agent's parts are meant to run for ever). Their states are the ``components`` of
the health heartbeat; a part may also report its own finer state through ``status`` (the card
reader knows whether a reader is present, the uplink whether it is connected).

Why not one ``TaskGroup``: a TaskGroup cancels every task when one fails; on a kiosk a broken
MRZ reader must not take the card reader, the lane or the outbox down with it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mqtt_schemas.health import ComponentState, component_entry

__all__ = ["ComponentState", "Part", "PartFunction", "Supervisor"]

log = logging.getLogger(__name__)

STABLE_AFTER_S = 30.0
"""A part up this long has its restart delay reset to the initial one."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Part:
    """One supervised part: its state for the heartbeat, and its restart count."""

    def __init__(
        self,
        name: str,
        function: PartFunction,
        status: Callable[[], dict[str, Any]] | None,
    ) -> None:
        self.name = name
        self.function = function
        self._status = status
        self.state: ComponentState = "starting"
        self.detail = ""
        self.since = _now()
        self.restarts = 0
        self.started_at = 0.0
        self.restart_delay_s = 0.0
        """The wait before the latest restart (jittered, doubling per failure)."""

    def set(self, state: ComponentState, detail: str = "") -> None:
        """Report a state (``degraded`` with why, say); ``since`` moves only when it changes."""
        if state != self.state:
            self.since = _now()
        self.state, self.detail = state, detail

    def ready(self) -> None:
        """The part is up and doing its job."""
        self.set("ok")

    def component(self) -> dict[str, Any]:
        """The ``components.<name>`` entry of a ``health`` payload.

        While the supervisor sees the part running, the part's own ``status`` (if it has one)
        says how it is doing; when it is down or restarting, the supervisor's view wins.
        """
        if self._status is not None and self.state == "ok":
            return self._status()
        return component_entry(self.state, self.since, self.detail)


PartFunction = Callable[[Part], Awaitable[None]]


@dataclass(frozen=True)
class _Absent:
    name: str
    why: str
    since: dt.datetime

    def component(self) -> dict[str, Any]:
        return component_entry("absent", self.since, self.why)


class Supervisor:
    """Starts every part, restarts failed ones with backoff, and reports their states."""

    def __init__(
        self,
        *,
        restart_initial_s: float = 1.0,
        restart_max_s: float = 60.0,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.restart_initial_s = restart_initial_s
        self.restart_max_s = restart_max_s
        self._rng = rng or random.Random()
        self._parts: dict[str, Part] = {}
        self._absent: dict[str, _Absent] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._monotonic = monotonic

    def add(
        self,
        name: str,
        function: PartFunction,
        *,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> Part:
        """Supervise *function* under *name* (a health component name such as ``uplink``)."""
        if name in self._parts or name in self._absent:
            raise ValueError(f"a part named {name!r} is already supervised")
        part = Part(name, function, status)
        self._parts[name] = part
        if self._tasks:  # added while running: start it now
            self._tasks.append(asyncio.create_task(self._keep(part), name=f"part:{name}"))
        return part

    def absent(self, name: str, why: str) -> None:
        """Report a part this kiosk does not have (no MRZ reader fitted, say)."""
        self._absent[name] = _Absent(name, why, _now())

    def part(self, name: str) -> Part:
        return self._parts[name]

    def components(self) -> dict[str, dict[str, Any]]:
        """Every part's ``components`` entry for the heartbeat, by name."""
        out = {name: absent.component() for name, absent in self._absent.items()}
        out.update({name: part.component() for name, part in self._parts.items()})
        return out

    def summary(self) -> dict[str, Any]:
        """States and restart counts, for diagnostics."""
        return {
            name: {**part.component(), "restarts": part.restarts}
            for name, part in self._parts.items()
        }

    async def run(self) -> None:
        """Run every part until cancelled."""
        loop = asyncio.get_running_loop()
        self._clock = self._monotonic or loop.time
        self._tasks = [
            asyncio.create_task(self._keep(part), name=f"part:{part.name}")
            for part in self._parts.values()
        ]
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []

    async def _keep(self, part: Part) -> None:
        delay = self.restart_initial_s
        while True:
            part.set("starting")
            part.started_at = self._clock()
            try:
                await part.function(part)
                problem = "stopped on its own"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of one part: restart it, keep the rest
                log.warning("%s failed: %s", part.name, _describe(exc), exc_info=exc)
                problem = _describe(exc)
            if self._clock() - part.started_at >= STABLE_AFTER_S:
                delay = self.restart_initial_s
            wait = delay * (0.5 + self._rng.random() / 2)  # jitter: parts do not retry in step
            part.set("down", f"{problem}; restarting in {wait:.1f} s")
            part.restarts += 1
            part.restart_delay_s = wait
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.restart_max_s)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
