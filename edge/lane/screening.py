"""What the lane needs of screening: one narrow protocol, and its adapter to the watchlist store.

The lane depends only on :class:`Screener` (``screen(query) -> ScreeningResult``); the watchlist
internals (store, matcher) are behind :class:`StoreScreener`, so the lane's tests use a fake and
the watchlist can change without the lane noticing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Screener",
    "ScreeningHit",
    "ScreeningQuery",
    "ScreeningResult",
    "ScreeningUnavailable",
    "StoreScreener",
]


class ScreeningUnavailable(Exception):
    """The traveller could not be screened (no watchlist, a broken store): the lane refers."""


@dataclass(frozen=True)
class ScreeningQuery:
    """The traveller as the document states them (the matcher's query fields)."""

    surname: str
    given_names: str
    birth_date: str | None
    nationality: str | None
    sex: str | None
    document_number: str | None
    issuing_state: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "surname": self.surname,
            "given_names": self.given_names,
            "birth_date": self.birth_date,
            "nationality": self.nationality,
            "sex": self.sex,
            "document_number": self.document_number,
            "issuing_state": self.issuing_state,
        }


@dataclass(frozen=True)
class ScreeningHit:
    """One entry matched: the contract's ``hit`` fields (less the kiosk-made ``hit_id``)."""

    entry_id: str
    list: str
    kind: str
    score: float
    action: str
    """refer, deny or alert."""
    reasons: tuple[Mapping[str, str] | str, ...] = field(default=())


@dataclass(frozen=True)
class ScreeningResult:
    """The hits, best first, and the watchlist version that produced them."""

    version: int
    hits: tuple[ScreeningHit, ...] = ()


class Screener(Protocol):
    """Screens one traveller; raises :class:`ScreeningUnavailable` when it cannot."""

    def screen(self, query: ScreeningQuery, threshold: float) -> ScreeningResult: ...


class StoreScreener:
    """The real watchlist (:class:`edge.screening.store.WatchlistStore` opened read-only).

    The version and the hits are read in one read transaction, so the version recorded is the
    one the traveller was screened against even while a delta is being applied.
    """

    def __init__(self, store: Any) -> None:
        from edge.screening.matcher import Screener as Matcher

        self.store = store
        self.matcher = Matcher(store)

    def screen(self, query: ScreeningQuery, threshold: float) -> ScreeningResult:
        from edge.screening.matcher import Query, QueryError
        from edge.screening.store import StoreError

        data = {k: v for k, v in query.to_dict().items() if v not in (None, "")}
        try:
            matcher_query = Query.from_dict(data)
        except QueryError as exc:
            raise ScreeningUnavailable(f"the traveller's data cannot be screened: {exc}") from exc
        connection = self.store.connection
        try:
            connection.execute("BEGIN")
            try:
                version = self.store.version
                hits = self.matcher.screen(matcher_query, threshold)
            finally:
                connection.execute("COMMIT")
        except (StoreError, Exception) as exc:  # a broken store must refer, never crash the lane
            raise ScreeningUnavailable(f"the watchlist could not be searched: {exc}") from exc
        return ScreeningResult(
            version,
            tuple(
                ScreeningHit(h.entry_id, h.list, h.kind, h.score, h.action, tuple(h.reasons))
                for h in hits
            ),
        )
