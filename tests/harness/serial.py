"""Real pseudo-terminals standing in for a serial MRZ reader.

Two levels, both real ptys that pyserial opens exactly as it opens ``/dev/ttyUSB0``:

* ``pty_pair``: a bare raw pty; the test plays the reader byte by byte with ``pty.write(...)``.
* ``mrz_sim``: a factory of :class:`~edge.sim.mrz_reader.VirtualMrzReader` (framings, chunks,
  noise, unplug/replug), each named by a udev-like link under ``serial_by_id``, so drivers can
  be configured with :data:`MRZ_GLOB`-style globs and see a reader come back under a new name.

:func:`fast_config` and :func:`connected_reader` give the driver timeouts short enough for a
test suite, and a reader already connected to a virtual one::

    async def test_something(mrz_sim):
        sim = mrz_sim()
        async with connected_reader(sim) as reader:
            sim.send(SPECIMENS["TD3"])
            event = await next_event(reader)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.devices.mrz_reader import MrzReader, MrzReaderConfig, MrzReadEvent
from edge.sim.mrz_reader import VirtualMrzReader, WireFormat

#: Glob matching every link ``mrz_sim`` makes, relative to ``serial_by_id``.
MRZ_GLOB = "usb-*MRZ*"


@dataclass
class PseudoTerminal:
    """The reader's end (``master_fd``) and the device path the driver opens."""

    master_fd: int
    device: str

    def write(self, data: bytes) -> None:
        """Send *data* to whoever has ``device`` open, as the reader's firmware would."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.master_fd, view) :]


def open_raw_pty() -> tuple[int, int, str]:
    """A new pty pair in raw mode: (master fd, slave fd, slave path)."""
    master_fd, slave_fd = os.openpty()
    # Raw mode: the line discipline must not turn CR into LF or echo, or the driver would be
    # tested against bytes no real reader sends.
    tty.setraw(slave_fd, termios.TCSANOW)
    return master_fd, slave_fd, os.ttyname(slave_fd)


@pytest.fixture
def pty_pair() -> Iterator[PseudoTerminal]:
    master_fd, slave_fd, device = open_raw_pty()
    try:
        yield PseudoTerminal(master_fd, device)
    finally:
        os.close(slave_fd)
        os.close(master_fd)


@pytest.fixture
def serial_by_id(tmp_path: Path) -> Path:
    """A private stand-in for ``/dev/serial/by-id``: where ``mrz_sim`` puts its links."""
    directory = tmp_path / "serial" / "by-id"
    directory.mkdir(parents=True)
    return directory


@pytest.fixture
def mrz_sim(serial_by_id: Path) -> Iterator[Callable[..., VirtualMrzReader]]:
    """Factory: ``mrz_sim(framing="cr", prefix=b"\\x1b", chunk=3, ...)`` plugs a virtual reader.

    Keyword arguments are :class:`WireFormat` fields and :class:`VirtualMrzReader` options;
    ``name`` (default ``usb-Acme_MRZ_Reader_<n>-if00``) is its link in ``serial_by_id``.
    Every reader made is unplugged at teardown.
    """
    readers: list[VirtualMrzReader] = []
    wire_fields = {"framing", "joined", "prefix", "suffix"}

    def make(name: str | None = None, **options: Any) -> VirtualMrzReader:
        wire = WireFormat(**{k: options.pop(k) for k in wire_fields & options.keys()})
        name = name or f"usb-Acme_MRZ_Reader_{len(readers):04d}-if00"
        reader = VirtualMrzReader(wire, link=serial_by_id / name, **options)
        readers.append(reader)
        return reader

    try:
        yield make
    finally:
        for reader in readers:
            reader.close()


def fast_config(port: str | os.PathLike[str], **overrides: Any) -> MrzReaderConfig:
    """A driver configuration with test-suite timeouts (override any field)."""
    values: dict[str, Any] = {
        "port": str(port),
        # Short enough to test, long enough that a loaded CI machine does not split a document.
        "document_timeout": 0.25,
        "reconnect_initial": 0.005,
        "reconnect_max": 0.05,
        "presence_interval": 0.02,
        **overrides,
    }
    return MrzReaderConfig(**values)


@contextlib.asynccontextmanager
async def connected_reader(
    sim: VirtualMrzReader, timeout: float = 5.0, **overrides: Any
) -> AsyncIterator[MrzReader]:
    """An open :class:`MrzReader` on *sim*'s device (framing matched), already connected.

    Waiting for "connected" matters: pyserial flushes the input when it opens the port, so
    bytes sent before that are lost, as with a real reader.
    """
    overrides.setdefault("framing", sim.wire.driver_framing)
    overrides.setdefault("prefix", sim.wire.prefix)
    overrides.setdefault("suffix", sim.wire.suffix)
    async with MrzReader(fast_config(sim.device, **overrides)) as reader:
        await reader.wait_connected(timeout)
        yield reader


async def next_event(reader: MrzReader, timeout: float = 2.0) -> MrzReadEvent:
    """The reader's next event, or TimeoutError."""
    return await asyncio.wait_for(anext(reader), timeout)
