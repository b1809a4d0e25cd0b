"""A real pseudo-terminal pair standing in for a serial MRZ reader.

The driver under test opens ``pty.device`` exactly as it would open ``/dev/ttyUSB0``; the test
plays the reader by writing bytes to ``pty.write(...)``.
"""

from __future__ import annotations

import os
import termios
import tty
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


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


@pytest.fixture
def pty_pair() -> Iterator[PseudoTerminal]:
    master_fd, slave_fd = os.openpty()
    # Raw mode: the line discipline must not turn CR into LF or echo, or the driver would be
    # tested against bytes no real reader sends.
    tty.setraw(slave_fd, termios.TCSANOW)
    device = os.ttyname(slave_fd)
    try:
        yield PseudoTerminal(master_fd, device)
    finally:
        os.close(slave_fd)
        os.close(master_fd)
