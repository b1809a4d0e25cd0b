"""Synthetic travellers walking up to a simulated lane: a population and the driver that walks it.

The population (who, with which document, expecting what) is :mod:`edge.sim.population`,
re-exported here. :class:`LaneDriver` plays the travellers at one kiosk, through the same
devices a real lane has: the card reader (a vpcd slot of the kiosk's own pcscd) and the serial
MRZ reader (a pseudo-terminal)::

    population = Population.load("pop")
    driver = LaneDriver(population, vpcd_port=stack.vpcd_port, mrz_link="/tmp/k1/mrz")
    task = asyncio.create_task(driver.run())    # the kiosk opens /tmp/k1/mrz, watches pcscd
    ...
    driver.stop()                                # from the loop or any thread
    presented = await task                       # Counter({"cbic": 31, "passport": 12})

One traveller: a CBIC is put on the reader and held there until the kiosk has been reading it
for ``dwell_s`` (a traveller waits for the screen, not a stopwatch: pcscd notices a vpcd card
only on its presence poll, every 0.4 s, so a fixed time on the reader would sometimes be too
short for the read). A passport holder scans the data page (the MRZ goes out on the serial
line), then after ``mrz_to_chip_s`` puts the passport on the reader, held ``chip_dwell_s`` once
read (a chip read is some 80 APDUs with BAC and secure messaging, a CBIC's 4). A kiosk that does
not start reading within ``read_wait_s`` (down, busy) gets the document taken back anyway.
Between travellers the reader stays empty for ``interval_s``, never less than
:data:`REMOVAL_GAP_S`, or pcscd would not see the card leave. A share ``pull_early`` of the
travellers take their document away mid-read (the card leaves the reader when an APDU arrives),
which the lane must cancel cleanly: those record nothing.

The driver counts what it presented (:attr:`LaneDriver.presented`, by kind) and can write one
JSON line per traveller to ``log_path``: sequence number, traveller number, kind, the expected
outcome class (``pass``, ``refer:<reason>``, or ``cancelled``), never a name or document number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from edge.sim.cbic_card import CbicCard
from edge.sim.emrtd_chip import EmrtdChip
from edge.sim.mrz_reader import NobodyReading, VirtualMrzReader
from edge.sim.population import (
    DEFAULT_SITE,
    Expectation,
    Population,
    PopulationError,
    Traveller,
    make_population,
)
from edge.sim.vpcd import VirtualCard, VpcdClient, VpcdUnavailable

__all__ = [
    "DEFAULT_SITE",
    "REMOVAL_GAP_S",
    "Expectation",
    "LaneDriver",
    "Population",
    "PopulationError",
    "Traveller",
    "make_population",
]

log = logging.getLogger(__name__)

#: The shortest time a reader stays empty between two cards: pcscd's vpcd presence poll (0.4 s)
#: must see it empty, or it takes the next card for the one before.
REMOVAL_GAP_S = 0.5
#: How often the driver retries a vpcd slot nobody listens on yet (the kiosk's pcscd starting).
VPCD_RETRY_S = 0.5
#: How long the driver waits after the kiosk opens the MRZ port before sending: the serial
#: driver flushes its input when it opens the port.
PORT_SETTLE_S = 0.2
#: APDUs a traveller pulling early lets through, by kind (a CBIC read is 4, a chip's ~80).
_PULL_AFTER = {"cbic": (1, 3), "passport": (2, 12)}


class LaneDriver:
    """Walks a population's travellers, one by one, up to one kiosk's readers.

    ``vpcd_port``: the kiosk's card reader slot (``PcscStack.vpcd_port`` for slot 0).
    ``mrz_reader``: a :class:`VirtualMrzReader` the caller owns, or ``mrz_link``: a path where
    the driver plugs in its own reader (made when :meth:`run` starts, unplugged when it ends),
    so the kiosk's configuration can name the path before the driver runs. One of them is
    needed when the travellers include passports.

    ``travellers`` (default: the population's) are walked in order, cycling; with ``seed``,
    in a new random order each cycle (two kiosks with different seeds see different queues).
    ``count`` stops after that many travellers. ``pull_early`` (0..1) is the share who take
    the document away mid-read.
    """

    def __init__(
        self,
        population: Population,
        *,
        vpcd_port: int,
        host: str = "127.0.0.1",
        mrz_reader: VirtualMrzReader | None = None,
        mrz_link: Path | str | None = None,
        travellers: Sequence[Traveller] | None = None,
        interval_s: float = 1.0,
        dwell_s: float = 0.5,
        chip_dwell_s: float = 1.0,
        mrz_to_chip_s: float = 0.3,
        read_wait_s: float = 3.0,
        count: int | None = None,
        seed: int | None = None,
        pull_early: float = 0.0,
        log_path: Path | str | None = None,
    ) -> None:
        for name, value in (
            ("interval_s", interval_s),
            ("dwell_s", dwell_s),
            ("chip_dwell_s", chip_dwell_s),
            ("mrz_to_chip_s", mrz_to_chip_s),
            ("read_wait_s", read_wait_s),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number of seconds (0 or more), got {value!r}")
        if dwell_s <= 0 or chip_dwell_s <= 0:
            raise ValueError("a document must stay on the reader for some time (dwell > 0)")
        if count is not None and (isinstance(count, bool) or count < 1):
            raise ValueError(f"count must be 1 or more, got {count!r}")
        if not 0 <= pull_early <= 1:
            raise ValueError(f"pull_early is a share in 0..1, got {pull_early!r}")
        if mrz_reader is not None and mrz_link is not None:
            raise ValueError("give the MRZ reader or the link to plug one at, not both")
        self.population = population
        self.travellers = list(population.travellers if travellers is None else travellers)
        if not self.travellers:
            raise ValueError("no traveller to walk")
        passports = any(t.kind == "passport" for t in self.travellers)
        if passports and mrz_reader is None and mrz_link is None:
            raise ValueError(
                "passport holders need an MRZ reader (mrz_reader, or mrz_link to plug one in)"
            )
        self.host, self.vpcd_port = host, vpcd_port
        self.interval_s = max(interval_s, REMOVAL_GAP_S)
        self.dwell_s, self.chip_dwell_s, self.mrz_to_chip_s = dwell_s, chip_dwell_s, mrz_to_chip_s
        self.read_wait_s = read_wait_s
        self.count = count
        self.pull_early = pull_early
        self.log_path = Path(log_path) if log_path is not None else None
        self.mrz_link = Path(mrz_link) if mrz_link is not None else None
        self._seed = seed
        self._rng = random.Random(f"driver-{seed}")
        self._owned_reader = mrz_reader is None and mrz_link is not None
        self.mrz_reader = mrz_reader
        #: Travellers presented so far, by kind (``cbic``, ``passport``).
        self.presented: Counter[str] = Counter()
        #: Travellers presented so far, by expected outcome class (``pass``, ``refer:...``,
        #: ``cancelled`` for those who pulled early).
        self.expected: Counter[str] = Counter()
        self._client: VpcdClient | None = None
        self._stop_requested = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port_was_open = False
        self._waiting_logged = False

    # -- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to end now: the card in the reader is taken away at once.

        Safe from any thread and from signal handlers run by the loop.
        """
        self._stop_requested.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed: run() is over anyway
                loop.call_soon_threadsafe(wake.set)

    @property
    def stopping(self) -> bool:
        return self._stop_requested.is_set()

    @property
    def card_in_reader(self) -> bool:
        """True while a card of ours is in the vpcd slot."""
        return self._client is not None and self._client.inserted

    def summary(self) -> str:
        """One line: how many travellers, by kind and by expected outcome."""
        total = sum(self.presented.values())
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.presented.items())) or "none"
        outcomes = ", ".join(f"{n} {label}" for label, n in sorted(self.expected.items()))
        return f"presented {total} travellers ({kinds})" + (
            f"; expected {outcomes}" if outcomes else ""
        )

    # -- the walk -----------------------------------------------------------------------------

    async def run(self) -> Counter[str]:
        """Walk travellers until :meth:`stop`, cancellation or ``count``; returns
        :attr:`presented`. Whatever ends it, the reader is left empty and an MRZ reader the
        driver plugged in is unplugged."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._stop_requested.is_set():
            self._wake.set()
        journal: IO[str] | None = None
        try:
            if self._owned_reader:
                assert self.mrz_link is not None
                self.mrz_reader = VirtualMrzReader(link=self.mrz_link)
                log.info("MRZ reader plugged in at %s", self.mrz_reader.device)
            if self.log_path is not None:
                journal = self.log_path.open("a", encoding="utf-8")
            for sequence, traveller in enumerate(self._queue(), start=1):
                if self.stopping:
                    break
                pulls = self._rng.random() < self.pull_early
                presented = await self._present(traveller, pulls)
                if not presented:  # stopped before the document reached the reader
                    break
                label = "cancelled" if pulls else traveller.expect.label
                self.presented[traveller.kind] += 1
                self.expected[label] += 1
                if journal is not None:
                    journal.write(self._journal_line(sequence, traveller, label, pulls))
                    journal.flush()
                if self.count is not None and sequence >= self.count:
                    break
                await self._pause(self.interval_s)
        finally:
            self._take_card()
            if self._owned_reader and self.mrz_reader is not None:
                self.mrz_reader.close()
            if journal is not None:
                journal.close()
            self._loop = None
        return self.presented

    def _queue(self) -> Iterator[Traveller]:
        order = random.Random(self._seed) if self._seed is not None else None
        while True:
            batch = list(self.travellers)
            if order is not None:
                order.shuffle(batch)
            yield from batch

    @staticmethod
    def _journal_line(sequence: int, traveller: Traveller, label: str, pulls: bool) -> str:
        return (
            json.dumps(
                {
                    "sequence": sequence,
                    "traveller": traveller.number,
                    "kind": traveller.kind,
                    "expect": label,
                    "pulled_early": pulls,
                    "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                }
            )
            + "\n"
        )

    async def _present(self, traveller: Traveller, pulls: bool) -> bool:
        """One traveller at the lane; False when stopped before the document was presented."""
        pull_after = self._rng.randint(*_PULL_AFTER[traveller.kind]) if pulls else None
        card = _HeldCard(self.population.card_for(traveller, pull_after=pull_after))
        dwell = self.dwell_s
        if traveller.kind == "passport":
            assert traveller.mrz is not None
            if not await self._scan(traveller.mrz):
                return False
            if not await self._pause(self.mrz_to_chip_s):
                return False
            dwell = self.chip_dwell_s
        if not await self._put_card(card):
            return False
        assert self._client is not None
        client = self._client
        # Held until read (or the kiosk is given up on), then for the dwell; a card pulling
        # early leaves by itself in between.
        await self._pause(self.read_wait_s, until=lambda: card.read or not client.inserted)
        await self._pause(dwell, until=lambda: not client.inserted)
        self._take_card()
        return True

    async def _scan(self, mrz: str) -> bool:
        """Send the MRZ once the kiosk has the port open; False when stopped first."""
        reader = self.mrz_reader
        assert reader is not None
        if not reader.is_open():
            if not self._waiting_logged:
                log.info("waiting for the kiosk to open %s", reader.device)
                self._waiting_logged = True
            self._port_was_open = False
            if not await self._pause(None, until=reader.is_open, poll=0.05):
                return False
        if not self._port_was_open:
            self._port_was_open = True
            if not await self._pause(PORT_SETTLE_S):
                return False
        try:
            await reader.send_async(mrz)
        except (NobodyReading, OSError) as exc:
            log.warning("MRZ not delivered (%s); the traveller tries again later", exc)
            self._port_was_open = False
        return True

    async def _put_card(self, card: _HeldCard) -> bool:
        """Insert into the vpcd slot, retrying while nobody listens; False when stopped first."""
        warned = False
        while not self.stopping:
            client = VpcdClient(card, self.host, self.vpcd_port)
            card.card.unplug = client.remove  # for pull_after
            try:
                client.insert()
            except VpcdUnavailable as exc:
                if not warned:
                    log.warning("%s; retrying every %s s", exc, VPCD_RETRY_S)
                    warned = True
                await self._pause(VPCD_RETRY_S)
                continue
            self._client = client
            return True
        return False

    def _take_card(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.remove()

    async def _pause(
        self,
        seconds: float | None,
        *,
        until: Callable[[], bool] | None = None,
        poll: float = 0.02,
    ) -> bool:
        """Wait ``seconds`` (None: for ever), or until ``until()`` turns true; False if stopped.

        Stopping wakes it at once, wherever the driver is in a traveller's walk.
        """
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while not self.stopping:
            if until is not None and until():
                return True
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return True
            step = remaining if until is None else min(poll, remaining or poll)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), step)
        return False


class _HeldCard(VirtualCard):
    """A traveller's card as the driver holds it: notices when the kiosk starts reading.

    pcscd asks for the ATR and powers the card on by itself; only the kiosk sends APDUs, so
    the first APDU is the read starting.
    """

    def __init__(self, card: CbicCard | EmrtdChip) -> None:
        self.card = card
        self.atr = card.atr
        self._read = threading.Event()

    @property
    def read(self) -> bool:
        return self._read.is_set()

    def transmit(self, apdu: bytes) -> bytes:
        self._read.set()
        return self.card.transmit(apdu)

    def power_on(self) -> None:
        self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def reset(self) -> None:
        self.card.reset()
