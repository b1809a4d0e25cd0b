"""The watchlist kept on the kiosk: store, matcher, signed deltas. Screening needs no network.

    from edge.screening import Query, Screener, WatchlistStore

    with WatchlistStore("/var/lib/borderlane/watchlist.db", readonly=True) as store:
        screener = Screener(store)
        hits = screener.screen(Query(surname="GARCIA LOPEZ", given_names="JUAN CARLOS",
                                     birth_date="1975-03-02", nationality=("MEX",), sex="M",
                                     document_number="G10583221", issuing_state="MEX"))

:mod:`.store` (SQLite, WAL), :mod:`.names` (normalization, transliteration, phonetic keys),
:mod:`.matcher` (candidates from indexes, scoring, reasons), :mod:`.delta` (verify and apply
signed deltas and snapshots), :mod:`.importers` (list files), :mod:`.sync` (keeping the store
current from the console's deltas, over a :mod:`.transport` it is given: screening itself
never talks to the network). The wire format of deltas is :mod:`mqtt_schemas.watchlist`,
shared with the console.
"""

from .delta import ApplyResult, DeltaRejected, apply_chunks, load_trust, verify_chunks
from .matcher import DEFAULT_THRESHOLD, Hit, Query, QueryError, Screener
from .store import StoreError, WatchlistStore

__all__ = [
    "DEFAULT_THRESHOLD",
    "ApplyResult",
    "DeltaRejected",
    "Hit",
    "Query",
    "QueryError",
    "Screener",
    "StoreError",
    "WatchlistStore",
    "apply_chunks",
    "load_trust",
    "verify_chunks",
]
