"""The lane, tap to decision, with a virtual CBIC through the real stack.

Real pieces: pcscd + vpcd and the kiosk's card reader driver (an exclusive session per tap),
:func:`edge.documents.card.read_card` in a worker thread, the real watchlist store behind
:class:`~edge.lane.StoreScreener` (a small list: the matcher's own benchmark covers large ones),
the decision, and the recording transaction in a real outbox file (WAL, ``synchronous=FULL``:
one fsync per crossing). Each tap is :meth:`Lane.handle` of a :class:`CardPresented`, as the
agent feeds it; the clock starts when the lane receives the tap.

Figures: tap to decision (the record's ``latency_ms``), of which card I/O (time inside the
driver's ``transmit``), the rest (the kiosk's own work: verification, screening, deciding;
target p99 <= 150 ms), and the recording commit that follows the decision before the traveller
sees the result.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

from edge.devices.card_reader import CardReader, CardReaderConfig
from edge.lane import CardPresented, Lane, LaneConfig, LaneState, StoreScreener
from edge.screening.store import WatchlistStore
from edge.sim.cbic_card import CbicCard, insert_cbic
from edge.sim.cbic_issue import SAMPLES_DIR, create_issuer, issue_card, trust_list_for
from edge.sim.emrtd_chip import PassportPki
from edge.sim.pcscd import PcscStack
from edge.uplink.clock import StaticClock
from edge.uplink.outbox import Outbox
from mqtt_schemas.watchlist import entry_from_record

from . import Figure, at_most
from .cards import _percentile, _workdir

SITE = "bz-santa-elena"
WATCHLIST = [
    {
        "id": f"nw-{i}",
        "kind": "person",
        "names": [name],
        "birth_date": born,
        "list": "national-wanted",
    }
    for i, (name, born) in enumerate(
        [
            ("HABBASH, GEORGE", "1926-08-02"),
            ("GARCIA LOPEZ, JUAN CARLOS", "1975-03-02"),
            ("DE LA CRUZ, MARIA GUADALUPE", "1981-11-20"),
            ("IVANOV, ALEKSANDR", "1970-01-15"),
        ]
    )
]


def run(quick: bool) -> list[Figure]:
    taps = 5 if quick else 300
    workdir = _workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="borderlane-bench-lane-"))
    try:
        with PcscStack(workdir) as stack:
            os.environ["PCSCLITE_CSOCK_NAME"] = str(stack.socket_path)  # before any PC/SC call
            return _measure(stack, data, taps)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _measure(stack: PcscStack, data: Path, taps: int) -> list[Figure]:
    today = date.today()
    issuer = create_issuer("bz-cbic-bench-1")
    holder = json.loads((SAMPLES_DIR / "resident-worker.json").read_text(encoding="utf-8"))
    holder |= {
        "issue_date": (today - timedelta(days=30)).isoformat(),
        "expiry_date": (today + timedelta(days=365)).isoformat(),
    }
    card = CbicCard.from_image(issue_card(holder, issuer))
    with WatchlistStore(data / "watchlist.db") as writer, writer.transaction():
        for record in WATCHLIST:
            writer.add(*entry_from_record(record))
        writer.set_version(1, source="bench")
    config = LaneConfig.from_dict(
        {"site": SITE, "lane": "lane-1", "direction": "entry", "policy": {"show_s": 0}}
    )
    reader = CardReader(CardReaderConfig())
    name = stack.reader_names[0]
    shown = []
    client = insert_cbic(card, port=stack.vpcd_port)
    try:
        with (
            Outbox(data / "kiosk.db", "kiosk-bz-se-01", StaticClock()) as outbox,
            WatchlistStore(data / "watchlist.db", readonly=True) as store,
        ):
            lane = Lane(
                config,
                outbox=outbox,
                screener=StoreScreener(store),
                issuers=trust_list_for(issuer),
                cscas=PassportPki.create("UT").trust_store(),
            )
            lane.add_listener(lambda e: shown.append(e) if e.state is LaneState.SHOW else None)

            async def taps_() -> None:
                tap = CardPresented(lambda: reader.session(name), name)
                for _ in range(50):  # until pcscd's presence poll has seen the card
                    await lane.handle(tap)
                    if shown:
                        break
                    await asyncio.sleep(0.1)
                shown.clear()
                for _ in range(taps):
                    await lane.handle(tap)

            asyncio.run(taps_())
    finally:
        client.remove()
    events = shown
    assert all(e.outcome == "pass" for e in events), [e.outcome for e in events]
    total = [e.timings.total_ms / 1000 for e in events]
    card_io = [e.timings.card_io_ms / 1000 for e in events]
    own = [e.timings.lane_ms / 1000 for e in events]
    commit = [e.timings.record_ms / 1000 for e in events]
    note = f"{taps} taps, virtual CBIC via pcscd + vpcd, real outbox file and watchlist store"
    return [
        Figure("lane tap to decision p50", _percentile(total, 50), "ms", note=note),
        Figure("lane tap to decision p99", _percentile(total, 99), "ms", note=note),
        Figure("lane card I/O p50", _percentile(card_io, 50), "ms", note="inside transmit"),
        Figure("lane card I/O p99", _percentile(card_io, 99), "ms", note="inside transmit"),
        Figure("lane decision excl. card I/O p50", _percentile(own, 50), "ms", note=note),
        at_most("lane decision excl. card I/O p99", _percentile(own, 99), "ms", 150, note),
        Figure("lane record commit p50", _percentile(commit, 50), "ms", note="one fsync"),
        Figure("lane record commit p99", _percentile(commit, 99), "ms", note="one fsync"),
    ]
