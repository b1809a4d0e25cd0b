"""The lane, tap to decision, with virtual CBICs through the real stack and the big watchlist.

Real pieces: pcscd + vpcd and the kiosk's card reader driver (an exclusive session per tap),
:func:`edge.documents.card.read_card` in a worker thread, the watchlist benchmark's store of
1,000,000 persons and 10,000,000 documents (built and cached by :mod:`benchmarks.watchlist`)
behind :class:`~edge.lane.StoreScreener`, the decision, and the recording transaction in a real
outbox file (WAL, ``synchronous=FULL``: one fsync per crossing). Two cards sit in the two
readers: a traveller who is not listed (pass) and one whose holder is a listed person (refer on
the hit); taps alternate between them. Each tap is :meth:`Lane.handle` of a
:class:`CardPresented`, as the agent feeds it; the clock starts when the lane receives the tap.

Figures: tap to decision (the record's ``latency_ms``), of which card I/O (time inside the
driver's ``transmit``), the rest (the kiosk's own work: verification, screening, deciding;
target p99 <= 150 ms, for each traveller), and the recording commit that follows the decision
before the traveller sees the result.
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
from edge.uplink.outbox import Outbox
from mqtt_schemas.envelope import StaticClock

from . import Figure, at_most
from . import watchlist as big_list
from .cards import _percentile, _workdir

SITE = "bz-santa-elena"


def run(quick: bool) -> list[Figure]:
    taps = 10 if quick else 600
    size = big_list.QUICK if quick else big_list.FULL
    listed = big_list.CACHE / f"{size.name}-s{big_list.SEED}"
    big_list.ensure_data(size, listed)
    big_list.ensure_store(size, listed)
    workdir = _workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="borderlane-bench-lane-"))
    try:
        with PcscStack(workdir) as stack:
            os.environ["PCSCLITE_CSOCK_NAME"] = str(stack.socket_path)  # before any PC/SC call
            return _measure(stack, listed, data, taps, size)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _holders(labelled: Path, count: int) -> list[dict]:
    """*count* CBIC holders taken from the watchlist benchmark's labelled travellers, listed
    persons (their names as travellers present them: variants, transliterations, slips) and
    travellers on no list in turn, so each tap screens a different name."""
    today = date.today()
    base = json.loads((SAMPLES_DIR / "resident-worker.json").read_text(encoding="utf-8")) | {
        "issue_date": (today - timedelta(days=30)).isoformat(),
        "expiry_date": (today + timedelta(days=365)).isoformat(),
    }
    kinds: dict[bool, list[dict]] = {True: [], False: []}
    with labelled.open(encoding="utf-8") as lines:
        for line in lines:
            case = json.loads(line)
            query = case["query"]
            if len(query.get("birth_date", "")) != 10 or not query.get("given_names"):
                continue  # a CBIC carries a full birth date and given names
            kinds[case["expect"] is not None].append(
                base
                | {
                    "card_number": f"CB{len(kinds[True]) + len(kinds[False]):07d}",
                    "surname": query["surname"],
                    "given_names": query["given_names"],
                    "date_of_birth": query["birth_date"],
                    "sex": query.get("sex") or "X",
                    "nationality": query.get("nationality") or "BLZ",
                }
            )
    holders = [h for pair in zip(kinds[True], kinds[False], strict=False) for h in pair]
    if len(holders) < count:
        raise RuntimeError(f"{labelled}: {len(holders)} usable travellers, {count} taps asked")
    return holders[:count]


def _measure(
    stack: PcscStack, listed: Path, data: Path, taps: int, size: big_list.Size
) -> list[Figure]:
    issuer = create_issuer("bz-cbic-bench-1")
    cards = [
        CbicCard.from_image(issue_card(holder, issuer))
        for holder in _holders(listed / "labelled.jsonl", taps)
    ]
    config = LaneConfig.from_dict(
        {"site": SITE, "lane": "lane-1", "direction": "entry", "policy": {"show_s": 0}}
    )
    reader = CardReader(CardReaderConfig())
    name = stack.reader_names[0]
    shown = []
    client = insert_cbic(cards[0], port=stack.vpcd_port)
    try:
        with (
            Outbox(data / "kiosk.db", "kiosk-bz-se-01", StaticClock()) as outbox,
            WatchlistStore(listed / "store.db", readonly=True) as store,
        ):
            lane = Lane(
                config,
                outbox=outbox,
                screener=StoreScreener(store),
                issuers=trust_list_for(issuer),
                cscas=PassportPki.create("UT").trust_store(),
            )
            lane.add_listener(lambda e: shown.append(e) if e.state is LaneState.SHOW else None)
            tap = CardPresented(lambda: reader.session(name), name)

            async def taps_() -> None:
                for _ in range(50):  # until pcscd's presence poll has seen the card
                    await lane.handle(tap)
                    if shown:
                        break
                    await asyncio.sleep(0.1)
                shown.clear()
                for card in cards:
                    # The next traveller's card, on the same link: pcscd sees one card, and
                    # every tap is a new session that starts with SELECT.
                    client.card = card
                    await lane.handle(tap)

            asyncio.run(taps_())
    finally:
        client.remove()
    assert len(shown) == taps, f"{len(shown)} of {taps} taps were decided"
    figures = []
    for outcome in ("pass", "refer"):
        events = [e for e in shown if e.outcome == outcome]
        if not events:
            continue
        total = [e.timings.total_ms / 1000 for e in events]
        card_io = [e.timings.card_io_ms / 1000 for e in events]
        own = [e.timings.lane_ms / 1000 for e in events]
        label = f"lane ({outcome})"
        note = f"{len(events)} of {taps} taps, each a different traveller; {size.persons:,} listed"
        figures += [
            Figure(f"{label} tap to decision p50", _percentile(total, 50), "ms", note=note),
            Figure(f"{label} tap to decision p99", _percentile(total, 99), "ms", note=note),
            Figure(f"{label} card I/O p99", _percentile(card_io, 99), "ms", note=note),
            Figure(f"{label} decision excl. card I/O p50", _percentile(own, 50), "ms", note=note),
            at_most(f"{label} decision excl. card I/O p99", _percentile(own, 99), "ms", 150, note),
        ]
    commit = [e.timings.record_ms / 1000 for e in shown]
    figures += [
        Figure("lane record commit p50", _percentile(commit, 50), "ms", note="one fsync"),
        Figure("lane record commit p99", _percentile(commit, 99), "ms", note="one fsync"),
    ]
    return figures
