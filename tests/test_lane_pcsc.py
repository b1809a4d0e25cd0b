"""The lane end to end: a virtual CBIC through pcscd + vpcd, the real card reader driver, a
real outbox file, and the real watchlist store behind the screening adapter."""

from __future__ import annotations

import asyncio
import json

from test_lane import PKI, TODAY, TRUST, WORKER

from edge.devices.card_reader import CardReader, CardReaderConfig
from edge.lane import CardPresented, Lane, LaneConfig, LaneState, StoreScreener
from edge.lane.screening import ScreeningQuery
from edge.screening.store import WatchlistStore
from edge.sim.cbic_card import CbicCard
from edge.uplink.outbox import Outbox
from mqtt_schemas import validate
from mqtt_schemas.envelope import StaticClock
from mqtt_schemas.watchlist import entry_from_record

LISTED = {
    "id": "nw-castillo",
    "kind": "person",
    "names": ["CASTILLO, MARISOL ANDREA"],
    "birth_date": "1988-03-14",
    "nationality": ["BLZ"],
    "sex": "F",
    "list": "national-wanted",
    "action": "deny",
}
OTHER = {
    "id": "nw-other",
    "kind": "person",
    "names": ["HABBASH, GEORGE"],
    "birth_date": "1926-08-02",
    "list": "national-wanted",
}


def store_with(tmp_path, *entries, version=7):
    path = tmp_path / "watchlist.db"
    with WatchlistStore(path) as writer, writer.transaction():
        for record in entries:
            writer.add(*entry_from_record(record))
        writer.set_version(version, source="test")
    return WatchlistStore(path, readonly=True)


def test_the_store_adapter_screens_with_its_version(tmp_path) -> None:
    with store_with(tmp_path, LISTED, OTHER) as store:
        screener = StoreScreener(store)
        query = ScreeningQuery(
            "Castillo", "Marisol Andrea", "1988-03-14", "BLZ", "F", "CB4410275", "BLZ"
        )
        result = screener.screen(query, 0.8)
        assert result.version == 7
        assert [(h.entry_id, h.action, h.list) for h in result.hits] == [
            ("nw-castillo", "deny", "national-wanted")
        ]
        assert result.hits[0].reasons
        nobody = ScreeningQuery("Nobody", "Here", "1990-01-01", "MEX", "M", None, None)
        assert screener.screen(nobody, 0.8).hits == ()


def test_a_cbic_through_pcscd_is_decided_and_recorded(card_slot, tmp_path) -> None:
    reader = CardReader(CardReaderConfig())
    config = LaneConfig.from_dict(
        {"site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "policy": {"show_s": 0}}
    )
    with (
        Outbox(tmp_path / "kiosk.db", "kiosk-bz-se-01", StaticClock()) as outbox,
        store_with(tmp_path, OTHER) as store,
    ):
        lane = Lane(
            config,
            outbox=outbox,
            screener=StoreScreener(store),
            issuers=TRUST,
            cscas=PKI.trust_store(),
            today=lambda: TODAY,
        )
        seen = []
        lane.add_listener(seen.append)
        card_slot.put(CbicCard.from_image(WORKER))
        asyncio.run(
            lane.handle(CardPresented(lambda: reader.session(card_slot.reader), card_slot.reader))
        )
        (event,) = [e for e in seen if e.state is LaneState.SHOW]
        assert event.outcome == "pass" and event.timings.card_io_ms > 0
        (record,) = outbox.pending(0, 10)
        crossing = json.loads(record.payload)
        validate("crossing", crossing)
        assert crossing["id"] == event.crossing_id
        assert crossing["screening"]["watchlist_version"] == 7
        assert crossing["document"]["number"] == "CB4410275"
        assert crossing["decision"] == {"outcome": "pass", "reasons": []}
