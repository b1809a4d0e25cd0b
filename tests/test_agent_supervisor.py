"""The supervisor keeps every part running: a failing part is restarted, the others go on."""

from __future__ import annotations

import asyncio
import random

import pytest

from edge.agent.supervisor import Part, Supervisor

pytestmark = pytest.mark.asyncio


def fast() -> Supervisor:
    return Supervisor(restart_initial_s=0.01, restart_max_s=0.08, rng=random.Random(1))


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_a_failing_part_is_restarted_while_the_others_keep_running():
    supervisor = fast()
    steady_ticks = 0
    attempts = 0

    async def steady(part: Part) -> None:
        nonlocal steady_ticks
        part.ready()
        while True:
            steady_ticks += 1
            await asyncio.sleep(0.005)

    async def flaky(part: Part) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise OSError("serial port vanished")
        part.ready()
        await asyncio.Event().wait()

    supervisor.add("lane", steady)
    supervisor.add("mrz-reader", flaky)
    runner = asyncio.create_task(supervisor.run())
    await until(lambda: supervisor.part("mrz-reader").state == "ok")
    ticks_then = steady_ticks
    await until(lambda: steady_ticks > ticks_then + 3)  # the lane never stopped
    assert attempts == 4
    assert supervisor.part("mrz-reader").restarts == 3
    assert supervisor.part("lane").restarts == 0
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_a_down_part_shows_why_in_its_health_component():
    supervisor = Supervisor(restart_initial_s=30, restart_max_s=60)

    async def broken(part: Part) -> None:
        raise PermissionError("[Errno 13] Permission denied: '/dev/ttyUSB0'")

    supervisor.add("mrz-reader", broken)
    supervisor.absent("camera", "no camera fitted")
    runner = asyncio.create_task(supervisor.run())
    await until(lambda: supervisor.part("mrz-reader").state == "down")
    components = supervisor.components()
    assert components["mrz-reader"]["state"] == "down"
    assert "PermissionError" in components["mrz-reader"]["detail"]
    assert "restarting in" in components["mrz-reader"]["detail"]
    assert components["camera"] == {
        "state": "absent",
        "since": components["camera"]["since"],
        "detail": "no camera fitted",
    }
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def test_restart_delays_double_up_to_the_maximum_with_jitter():
    supervisor = Supervisor(restart_initial_s=0.01, restart_max_s=0.04, rng=random.Random(3))
    waits: list[float] = []

    async def crashing(part: Part) -> None:
        if part.restarts:
            waits.append(part.restart_delay_s)
        raise RuntimeError("boom")

    supervisor.add("ui", crashing)
    runner = asyncio.create_task(supervisor.run())
    await until(lambda: len(waits) >= 5)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    nominal = [0.01, 0.02, 0.04, 0.04, 0.04]  # doubling, capped at restart_max_s
    for wait, delay in zip(waits, nominal, strict=False):
        assert delay / 2 <= wait <= delay  # jitter: kiosks do not all retry in step
    assert len(set(waits)) == len(waits)


async def test_a_part_with_its_own_status_reports_it_while_running():
    supervisor = fast()
    connected = False

    async def uplink(part: Part) -> None:
        part.ready()
        await asyncio.Event().wait()

    def status() -> dict:
        state = "ok" if connected else "down"
        return {"state": state, "since": "2026-11-24T00:00:00.000Z"}

    supervisor.add("uplink", uplink, status=status)
    runner = asyncio.create_task(supervisor.run())
    await until(lambda: supervisor.part("uplink").state == "ok")
    assert supervisor.components()["uplink"]["state"] == "down"  # the part's own view
    connected = True
    assert supervisor.components()["uplink"]["state"] == "ok"
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def test_cancelling_the_supervisor_stops_every_part_cleanly():
    supervisor = fast()
    cleaned: list[str] = []

    def part_named(name: str):
        async def run(part: Part) -> None:
            part.ready()
            try:
                await asyncio.Event().wait()
            finally:
                cleaned.append(name)

        return run

    for name in ("lane", "uplink", "health"):
        supervisor.add(name, part_named(name))
    runner = asyncio.create_task(supervisor.run())
    await until(lambda: all(supervisor.part(n).state == "ok" for n in ("lane", "uplink", "health")))
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert sorted(cleaned) == ["health", "lane", "uplink"]


async def test_two_parts_cannot_share_a_name():
    supervisor = fast()

    async def noop(part: Part) -> None:
        await asyncio.sleep(0)

    supervisor.add("lane", noop)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.add("lane", noop)
