"""Cards through the real virtual stack: a CBIC read and verified, an ePassport chip read with BAC.

Real pieces end to end: the kiosk's card reader driver (an exclusive session, its worker thread,
the APDU layer), libpcsclite, a private pcscd with the vpcd driver, and virtual cards served over
the vpcd socket by this process; the document readers run in a worker thread on the session's
blocking ``transmit``, as the lane and ``borderlane-edge card read`` run them. Timings start when
the session opens (SCardConnect) and stop when the result is in hand; starting pcscd and waiting
for it to see the cards are not timed.

- **CBIC**: :func:`edge.documents.card.read_card` (SELECT, EF.HOLDER, EF.SIG, INTERNAL
  AUTHENTICATE, then the checks: issuer ECDSA signature, the card's ECDSA answer, dates, site).
- **ePassport**: :func:`edge.documents.emrtd.reader.read_emrtd` (SELECT, BAC, then EF.COM, DG1,
  DG2 and EF.SOD under 3DES secure messaging), with short APDUs (231-byte blocks) and with
  extended length (each file's rest in one APDU). DG2 holds the specimen face padded to 15 kB,
  a typical ICAO face image. Passive Authentication of what was read is timed on its own.

A virtual chip answers in microseconds, so the figures are the kiosk's own cost. A real chip
sits behind an ISO 14443 link: the projection at 424 kbit/s adds the bytes of every command and
response at that bit rate and an assumed fixed turnaround per APDU (:data:`TURNAROUND`: frame
start-up, the chip's secure messaging work, the reader's round trip). It leaves out ISO 14443
byte framing (parity or start/stop bits, +12 to 25 %) and the frame chaining of answers longer
than the reader's frame size (FSD, often 256 bytes), which makes extended-length answers less of
a saving on the air than on the wire.

libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process, at the first PC/SC call: :func:`run`
sets it to its own stack's socket before that call and keeps the socket path for later runs in
the same process. A process that already talked to another pcscd cannot run this benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.devices.card_reader import CardInserted, CardReader, CardReaderConfig, ExchangeStats
from edge.documents.card import read_card
from edge.documents.emrtd.bac import BacKeys
from edge.documents.emrtd.lds import LdsFile
from edge.documents.emrtd.passive_auth import CscaStore, verify
from edge.documents.emrtd.reader import ReadResult, read_emrtd
from edge.documents.mrz import parse as parse_mrz
from edge.sim.cbic_card import CbicCard, insert_cbic
from edge.sim.cbic_issue import SAMPLES_DIR, create_issuer, issue_card, trust_list_for
from edge.sim.emrtd_chip import SPECIMEN_FACE, EmrtdChip, PassportPki, insert_chip
from edge.sim.emrtd_chip import issue_passport_image as issue_passport
from edge.sim.emrtd_pki import SPECIMEN_MRZ
from edge.sim.pcscd import PcscStack

from . import Figure

#: ISO 14443 bit rate of the projection (ISO/IEC 14443-2 fc/32).
BIT_RATE = 424_000
#: Assumed fixed cost of one APDU on a real chip, beyond its bytes at BIT_RATE.
TURNAROUND = 0.005
#: A typical DG2 face image (ICAO recommends 15-20 kB).
FACE_BYTES = 15_000
SITE = "bz-santa-elena"
PRINTED_MRZ = f"{SPECIMEN_MRZ[:44]}\n{SPECIMEN_MRZ[44:]}"
FILES = (LdsFile.COM, LdsFile.DG1, LdsFile.DG2, LdsFile.SOD)


def run(quick: bool) -> list[Figure]:
    cbic_reads = 5 if quick else 500
    passport_reads = 3 if quick else 100
    workdir = _workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with PcscStack(workdir) as stack:
            os.environ["PCSCLITE_CSOCK_NAME"] = str(stack.socket_path)  # before any PC/SC call
            return _measure(stack, cbic_reads, passport_reads)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@functools.cache
def _workdir() -> Path:
    """One socket directory per process: libpcsclite keeps the first socket path it is given."""
    return Path(tempfile.mkdtemp(prefix="borderlane-bench-pcsc-"))


def _measure(stack: PcscStack, cbic_reads: int, passport_reads: int) -> list[Figure]:
    today = date.today()
    issuer = create_issuer("bz-cbic-bench-1")
    holder = json.loads((SAMPLES_DIR / "resident-worker.json").read_text(encoding="utf-8"))
    holder |= {
        "issue_date": (today - timedelta(days=30)).isoformat(),
        "expiry_date": (today + timedelta(days=365)).isoformat(),
    }
    cbic = CbicCard.from_image(issue_card(holder, issuer))
    pki = PassportPki.create("UT")
    image = issue_passport(PRINTED_MRZ, pki=pki, face=_padded_face(FACE_BYTES))
    chip = EmrtdChip.from_image(image, extended_length=True)
    keys = BacKeys.from_mrz_document(parse_mrz(PRINTED_MRZ))
    cbic_reader, chip_reader = stack.reader_names[0], stack.reader_names[1]
    trust = trust_list_for(issuer)
    store = pki.trust_store()

    def read_cbic(transmit: Callable[..., Any], extended: bool) -> object:
        document = read_card(transmit, issuers=trust, site=SITE, today=today, cscas=store)
        assert not document.failed, document.checks
        return document

    def read_chip(transmit: Callable[..., Any], extended: bool) -> ReadResult:
        result = read_emrtd(transmit, keys, files=FILES, extended_length=extended)
        assert set(result.files) == set(FILES), result.missing
        return result

    figures: list[Figure] = []
    with contextlib.ExitStack() as inserted:
        inserted.callback(insert_cbic(cbic, port=stack.vpcd_port).remove)
        inserted.callback(insert_chip(chip, port=stack.vpcd_port + 1).remove)
        times, stats, _ = asyncio.run(_sessions(cbic_reader, None, read_cbic, cbic_reads))
        where = (
            f"{cbic_reads} reads via the driver, vpcd; {stats.apdus} APDUs, "
            f"{_wire_bytes(stats)} bytes; session open to checks done"
        )
        figures += [
            Figure("CBIC read + verify p50", _percentile(times, 50), "ms", note=where),
            Figure("CBIC read + verify p99", _percentile(times, 99), "ms", note=where),
        ]
        result: ReadResult | None = None
        for extended in (False, True):
            times, stats, result = asyncio.run(
                _sessions(chip_reader, extended, read_chip, passport_reads)
            )
            mode = "extended length" if extended else "short APDUs"
            wire = _wire_bytes(stats)
            projection = wire * 8 / BIT_RATE + stats.apdus * TURNAROUND
            dg2 = len(result.files[LdsFile.DG2])
            where = f"{passport_reads} reads, BAC + COM, DG1, DG2 ({dg2:,} bytes), SOD; vpcd"
            figures += [
                Figure(f"ePassport read p50 ({mode})", _percentile(times, 50), "ms", note=where),
                Figure(f"ePassport read p99 ({mode})", _percentile(times, 99), "ms", note=where),
                Figure(f"ePassport APDUs ({mode})", stats.apdus, "APDUs"),
                Figure(f"ePassport bytes on the wire ({mode})", wire, "bytes"),
                Figure(
                    f"ePassport read projected at 424 kbit/s ({mode})",
                    projection * 1000,
                    "ms",
                    note=f"{wire:,} B x 8 / 424 kbit/s + {stats.apdus} APDUs x "
                    f"{TURNAROUND * 1000:g} ms assumed turnaround",
                ),
            ]
    assert result is not None
    figures.append(_passive_auth(result, store, passport_reads))
    return figures


async def _sessions(
    reader_name: str,
    extended_length: bool | None,
    read: Callable[[Callable[..., Any], bool], Any],
    count: int,
) -> tuple[list[float], ExchangeStats, Any]:
    """``count`` reads of the card in ``reader_name``, one driver session each: the durations,
    the traffic of the last one, and its result."""
    config = CardReaderConfig(readers=(f"={reader_name}",), extended_length=extended_length)
    reader = CardReader(config)
    async with reader:
        async with asyncio.timeout(10):  # the watcher announces a card already there
            async for event in reader.events():
                if isinstance(event, CardInserted) and event.reader == reader_name:
                    break
        times: list[float] = []
        stats = ExchangeStats()
        outcome: Any = None
        for _ in range(count):
            started = time.perf_counter()
            async with reader.session(reader_name) as session:
                extended = session.capabilities.extended_length
                outcome = await asyncio.to_thread(read, session.transmit, extended)
                times.append(time.perf_counter() - started)
                stats = session.stats.copy()
    return times, stats, outcome


def _passive_auth(result: ReadResult, store: CscaStore, count: int) -> Figure:
    now = datetime.now(UTC)
    times = []
    for _ in range(max(count, 10)):
        started = time.perf_counter()
        report = verify(
            result.files[LdsFile.SOD], result.data_groups(), store, at=now, printed_mrz=PRINTED_MRZ
        )
        times.append(time.perf_counter() - started)
        assert not report.failures, report.failures
    return Figure(
        "ePassport Passive Authentication p50",
        _percentile(times, 50),
        "ms",
        note="SOD parse, DS signature (ECDSA P-256), chain to the CSCA, DG hashes, DG1 vs MRZ",
    )


def _wire_bytes(stats: ExchangeStats) -> int:
    return stats.bytes_sent + stats.bytes_received


def _percentile(seconds: list[float], percent: int) -> float:
    if len(seconds) < 2:
        return seconds[0] * 1000
    return statistics.quantiles(seconds, n=100, method="inclusive")[percent - 1] * 1000


def _padded_face(size: int) -> bytes:
    """The specimen JPEG grown to ``size`` bytes with a comment segment (still a valid JPEG)."""
    face = SPECIMEN_FACE.read_bytes()
    padding = max(0, size - len(face) - 4)
    return face[:2] + b"\xff\xfe" + (padding + 2).to_bytes(2, "big") + bytes(padding) + face[2:]
