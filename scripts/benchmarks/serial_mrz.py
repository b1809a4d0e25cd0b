"""Serial MRZ reader: from the reader's last byte to the lane holding the parsed event.

Real pieces end to end: the virtual reader writes into a pseudo-terminal, the driver reads the
slave through the event loop, reassembles, parses (edge.documents.mrz) and queues the event,
and a consumer takes it. Latency is measured from the moment the last byte's ``write()``
returned to the moment the consumer has the event, one document at a time.

A pty has no baud rate: bytes arrive at once whatever the configured speed, so the 9600 and
115200 figures measure the same software path (they should match). On a real reader the line
dominates: a TD3 with CRLF is 90 bytes of 10 bits, 94 ms at 9600 baud and 8 ms at 115200, so
the driver's share is what these figures show on top of that.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

from edge.devices.mrz_reader import MrzReader, MrzReaderConfig
from edge.sim.mrz_reader import SPECIMENS, VirtualMrzReader, WireFormat

from . import Figure


def run(quick: bool) -> list[Figure]:
    count = 20 if quick else 200
    burst = 50 if quick else 2000
    figures = []
    for baud, framing in ((9600, "crlf"), (115200, "crlf"), (115200, "stx-etx")):
        latencies = asyncio.run(_latencies(baud, framing, count))
        where = f"{framing} at {baud} baud, {count} documents, pty"
        figures.append(
            Figure(f"latency p50 {framing} {baud}", _percentile(latencies, 50), "µs", note=where)
        )
        figures.append(
            Figure(f"latency p99 {framing} {baud}", _percentile(latencies, 99), "µs", note=where)
        )
    for framing in ("crlf", "stx-etx"):
        rate = asyncio.run(_throughput(framing, burst))
        figures.append(
            Figure(f"throughput {framing}", rate, "documents/s", note=f"{burst} back to back")
        )
    return figures


def _percentile(values: list[float], percent: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1] * 1e6


async def _latencies(baud: int, framing: str, count: int) -> list[float]:
    documents = itertools.cycle(SPECIMENS.values())
    with VirtualMrzReader(WireFormat(framing)) as sim:
        async with MrzReader(_config(sim, baud)) as reader:
            await reader.wait_connected(5)
            latencies = []
            for _ in range(count):
                data = sim.wire.encode(next(documents))
                sim.write(data)
                written = time.monotonic()
                event = await asyncio.wait_for(anext(reader), 5)
                latencies.append(time.monotonic() - written)
                assert event.ok, event.error
    return latencies


async def _throughput(framing: str, count: int) -> float:
    documents = itertools.cycle(SPECIMENS.values())
    with VirtualMrzReader(WireFormat(framing)) as sim:
        async with MrzReader(_config(sim, 115200, queue_size=count)) as reader:
            await reader.wait_connected(5)
            started = time.monotonic()

            async def write_all() -> None:
                for _ in range(count):
                    await sim.write_async(sim.wire.encode(next(documents)))

            writer = asyncio.create_task(write_all())
            for _ in range(count):
                event = await asyncio.wait_for(anext(reader), 5)
                assert event.ok, event.error
            elapsed = time.monotonic() - started
            await writer
            assert reader.state.documents_discarded == 0
    return count / elapsed


def _config(sim: VirtualMrzReader, baud: int, **overrides: object) -> MrzReaderConfig:
    return MrzReaderConfig(
        port=sim.device,
        baudrate=baud,
        framing=sim.wire.driver_framing,
        reconnect_initial=0.01,
        **overrides,  # type: ignore[arg-type]
    )
