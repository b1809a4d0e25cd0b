"""The lane: one explicit state machine, the only place on the kiosk that decides.

States and transitions (every transition is a :class:`LaneEvent` to the kiosk pages)::

    IDLE ──card──────────────▶ DOCUMENT (reading the card: CBIC, or a chip after an MRZ)
    IDLE ──MRZ───────────────▶ DOCUMENT (waiting up to chip_wait_s for the passport's chip)
    DOCUMENT ──read──────────▶ VERIFY ─▶ SCREEN ─▶ DECIDE ─▶ RECORD ─▶ SHOW ──show_s──▶ IDLE
    DOCUMENT ──chip wait over (policy no_chip = refer)─▶ VERIFY ... (decided on the MRZ)
    DOCUMENT ──card pulled / unreadable / chip wait over (no_chip = restart)──────────▶ IDLE
    SHOW ──next card or MRZ──▶ DOCUMENT

Recording is one outbox transaction: the lane state, the crossing record, the hit record (when
there are hits) and the review item (when referred, with the document's face image for the
officer: :func:`~.record.document_photo`; in no record) commit together, fsynced, *before* the
traveller's result is shown. A referred CBIC holder's portrait is fetched from the card after
that, while the traveller waits for the officer (:meth:`Lane._fetch_portrait`), so the tap of
every other traveller does not pay for it. A refused record (:class:`OutboxFull`) or any
failure in that transaction leaves nothing and refers the traveller ("processed by an
officer"); a card pulled, an unreadable card or a traveller who walks away leaves nothing
either.

Latency: from the tap (the card event reaching the lane) to the decision; the time spent inside
the card's ``transmit`` (card I/O) is measured apart (:class:`Timings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from edge.devices.card_errors import CardReaderError
from edge.documents.card import CardDocument, CardReadError, MrzRequired, UnknownCard, read_card
from edge.documents.cbic import CbicReadError, read_cbic_portrait
from edge.documents.checks import Check, CheckResult
from edge.documents.mrz import MrzDocument
from edge.uplink.errors import OutboxFull
from mqtt_schemas.envelope import format_time

from .config import LaneConfig
from .policy import TravellerMessage, Verdict, decide, message
from .record import (
    Traveller,
    crossing_payload,
    decision_payload,
    document_photo,
    hit_payload,
    identity_from_mrz,
    photo_entry,
    portrait_to_fetch,
    summary_from_mrz,
)
from .reviews import ReviewItem, ReviewQueue
from .screening import Screener, ScreeningQuery, ScreeningResult, ScreeningUnavailable

__all__ = [
    "CardPresented",
    "CardWithdrawn",
    "Lane",
    "LaneEvent",
    "LaneState",
    "MrzScanned",
    "Timings",
]

log = logging.getLogger(__name__)


class LaneState(enum.StrEnum):
    IDLE = "idle"
    DOCUMENT = "document"
    VERIFY = "verify"
    SCREEN = "screen"
    DECIDE = "decide"
    RECORD = "record"
    SHOW = "show"


class CardLink(Protocol):
    """An open card session: the driver's blocking ``transmit``."""

    def transmit(self, command: Any) -> Any: ...


@dataclass(frozen=True)
class CardPresented:
    """A card was put on a reader; ``open()`` gives an async context manager on its session
    (``lambda: card_reader.session(name)`` with the real driver)."""

    open: Callable[[], contextlib.AbstractAsyncContextManager[CardLink]]
    reader: str = ""


@dataclass(frozen=True)
class CardWithdrawn:
    reader: str = ""


@dataclass(frozen=True)
class MrzScanned:
    """The MRZ reader read a document (``document``), or text that is no MRZ (``error``)."""

    document: MrzDocument | None
    error: str | None = None


@dataclass(frozen=True)
class Timings:
    total_ms: float
    """Tap to decision."""
    card_io_ms: float
    """Of which inside the card's transmit (the card and the reader's link)."""
    record_ms: float = 0.0
    """The recording transaction (after the decision, before the result is shown)."""

    @property
    def lane_ms(self) -> float:
        """Tap to decision without card I/O: the kiosk's own work."""
        return self.total_ms - self.card_io_ms


@dataclass(frozen=True)
class LaneEvent:
    """A transition, for the kiosk pages (traveller screen and officer screen)."""

    state: LaneState
    previous: LaneState
    message: TravellerMessage | None = None
    crossing_id: str | None = None
    outcome: str | None = None
    review: ReviewItem | None = None
    """For the officer screen: the referred traveller's review item."""
    timings: Timings | None = None


@dataclass
class _Pending:
    """One traveller in progress."""

    mrz: MrzDocument | None = None
    tap: float = 0.0
    card_io: float = 0.0
    checks: list[Check] = field(default_factory=list)
    card: CardDocument | None = None
    """The document read from the card, for its face image if the traveller is referred."""


class Lane:
    """The lane state machine; see the module docstring.

    Feed it with :meth:`submit` (or :meth:`run_devices` for the real readers) and run
    :meth:`run`; watch it with :meth:`events` or :meth:`add_listener`; officers decide with
    :meth:`officer_decide` and read :attr:`reviews`.
    """

    def __init__(
        self,
        config: LaneConfig,
        *,
        outbox: Any,
        screener: Screener,
        issuers: Any,
        cscas: Any,
        today: Callable[[], date] = date.today,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config
        self.policy = config.policy
        self.outbox = outbox
        self.screener = screener
        self.issuers = issuers
        self.cscas = cscas
        self.today = today
        self.monotonic = monotonic
        self.reviews = ReviewQueue(outbox, self.policy.review_retention_s)
        self.state = LaneState.IDLE
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._listeners: list[Callable[[LaneEvent], None]] = []
        self._deadline: float | None = None
        self._pending = _Pending()

    # -- observing ----------------------------------------------------------------------------

    def add_listener(self, callback: Callable[[LaneEvent], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[LaneEvent], None]) -> None:
        self._listeners.remove(callback)

    async def events(self) -> AsyncIterator[LaneEvent]:
        """Every transition from now on."""
        queue: asyncio.Queue[LaneEvent] = asyncio.Queue()
        self.add_listener(queue.put_nowait)
        try:
            while True:
                yield await queue.get()
        finally:
            self.remove_listener(queue.put_nowait)

    def _go(self, state: LaneState, **details: Any) -> None:
        event = LaneEvent(state, self.state, **details)
        self.state = state
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:  # a broken page must not stop the lane
                log.exception("lane listener failed")

    # -- driving ------------------------------------------------------------------------------

    def submit(self, event: CardPresented | CardWithdrawn | MrzScanned) -> None:
        self._inbox.put_nowait(event)

    async def run(self) -> None:
        """Process inputs for ever (cancel to stop)."""
        while True:
            timeout = None
            if self._deadline is not None:
                timeout = max(0.0, self._deadline - self.monotonic())
            try:
                event = await asyncio.wait_for(self._inbox.get(), timeout)
            except TimeoutError:
                await self._expired()
                continue
            await self.handle(event)

    async def run_devices(self, card_reader: Any, mrz_reader: Any | None = None) -> None:
        """Feed the lane from the real drivers (:class:`CardReader`, :class:`MrzReader`)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.feed_cards(card_reader))
            if mrz_reader is not None:
                group.create_task(self.feed_mrz(mrz_reader))
            group.create_task(self.run())

    async def feed_cards(self, card_reader: Any) -> None:
        """Submit the card reader's taps and removals (until its events end)."""
        from edge.devices.card_reader import CardInserted, CardRemoved

        async for event in card_reader.events():
            if isinstance(event, CardInserted):
                name = event.reader
                self.submit(CardPresented(lambda name=name: card_reader.session(name), name))
            elif isinstance(event, CardRemoved):
                self.submit(CardWithdrawn(event.reader))

    async def feed_mrz(self, mrz_reader: Any) -> None:
        """Submit every read of an open :class:`MrzReader` (until it is closed)."""
        async for event in mrz_reader:
            self.submit(MrzScanned(event.document, event.error))

    async def _expired(self) -> None:
        self._deadline = None
        if self.state is LaneState.DOCUMENT:  # the MRZ was read, its chip never came
            mrz = self._pending.mrz
            if mrz is None or self.policy.no_chip == "restart":
                self._idle(message("lane.timeout"))
                return
            summary = summary_from_mrz(mrz)
            self._pending = _Pending(mrz=mrz, tap=self.monotonic())  # latency: not the wait
            self._pending.checks = [
                _mrz_check(mrz),
                Check("chip-read", CheckResult.FAIL, "no chip presented"),
                _expiry_check(summary["expiry_date"], self.today()),
            ]
            await self._conclude(Traveller(summary["kind"], summary, identity_from_mrz(mrz)))
        elif self.state is LaneState.SHOW:
            self._idle(message("lane.welcome"))

    def _idle(self, note: TravellerMessage) -> None:
        self._pending = _Pending()
        self._deadline = None
        self._go(LaneState.IDLE, message=note)

    async def handle(self, event: object) -> None:
        """One input, processed to its end (the traveller's result shown, or back to idle)."""
        if isinstance(event, MrzScanned):
            await self._on_mrz(event)
        elif isinstance(event, CardPresented):
            await self._on_card(event)
        # CardWithdrawn: a read in progress fails on its own (the driver's CardRemovedError);
        # a card taken after its read changes nothing.

    async def _on_mrz(self, event: MrzScanned) -> None:
        if event.document is None:
            self._idle(message("lane.unreadable"))
            return
        mrz = event.document
        self._pending = _Pending(mrz=mrz, tap=self.monotonic())
        if not mrz.valid:  # wrong check digits: BAC would fail anyway; decide on the MRZ
            summary = summary_from_mrz(mrz)
            self._pending.checks = [
                _mrz_check(mrz),
                _expiry_check(summary["expiry_date"], self.today()),
            ]
            await self._conclude(Traveller(summary["kind"], summary, identity_from_mrz(mrz)))
            return
        self._deadline = self.monotonic() + self.policy.chip_wait_s
        self._go(LaneState.DOCUMENT, message=message("lane.place_chip"))

    async def _on_card(self, event: CardPresented) -> None:
        mrz = self._pending.mrz if self.state is LaneState.DOCUMENT else None
        self._deadline = None
        self._pending = _Pending(mrz=mrz, tap=self.monotonic())
        self._go(LaneState.DOCUMENT, message=message("lane.reading"))
        try:
            document = await self._read(event, mrz)
        except MrzRequired:
            self._idle(message("lane.scan_passport_first"))
            return
        except CardReaderError:  # pulled mid-read, timed out, reader gone: nothing recorded
            log.info("card read interrupted", exc_info=True)
            self._idle(message("lane.card_removed"))
            return
        except (UnknownCard, ValueError):
            self._idle(message("lane.unreadable"))
            return
        except CardReadError as error:
            if mrz is None:  # a CBIC we could not read to the end: nothing to record
                self._idle(message("lane.unreadable"))
                return
            # the chip behind a good MRZ refused BAC or broke off: decide on the MRZ
            self._pending.checks = [
                _mrz_check(mrz),
                Check("chip-read", CheckResult.FAIL, str(error)),
            ]
            summary = summary_from_mrz(mrz)
            self._pending.checks.append(_expiry_check(summary["expiry_date"], self.today()))
            await self._conclude(Traveller(summary["kind"], summary, identity_from_mrz(mrz)))
            return
        if document.document is None:  # CBIC holder data undecodable: no summary to record
            self._idle(message("lane.unreadable"))
            return
        self._go(LaneState.VERIFY, message=message("lane.checking"))
        checks = list(document.checks)
        if document.kind != "cbic":
            assert mrz is not None
            checks = [_mrz_check(mrz), Check("chip-read", CheckResult.PASS), *checks]
            checks.append(_expiry_check(document.document.get("expiry_date"), self.today()))
        self._pending.checks = checks
        self._pending.card = document
        review = await self._conclude(
            Traveller(document.kind, document.document, _identity(document))
        )
        if review is not None and (expected := portrait_to_fetch(document)) is not None:
            await self._fetch_portrait(event, review, expected)

    async def _fetch_portrait(
        self, event: CardPresented, review: ReviewItem, expected_sha256: bytes
    ) -> None:
        """Read a referred CBIC holder's portrait for the officer; the result is already shown.

        The card is usually still on the reader (the traveller was asked to wait). A card taken
        away, or a portrait that is not the one the signed holder data names, leaves the item
        saying why there is no photo.
        """
        try:
            async with event.open() as card:
                portrait = await asyncio.to_thread(
                    read_cbic_portrait, card.transmit, expected_sha256
                )
        except CardReaderError as error:
            log.info("portrait for the officer not read: %s", error)
            photo = {"photo_unavailable": "card-removed"}
        except CbicReadError as error:
            log.warning("portrait for the officer not shown: %s", error)
            photo = {"photo_unavailable": "unverified"}
        else:
            photo = photo_entry(portrait.image)
        self.reviews.add_photo(review.crossing_id, photo)

    async def _read(self, event: CardPresented, mrz: MrzDocument | None) -> CardDocument:
        pending = self._pending
        async with event.open() as card:
            transmit = card.transmit

            def timed(command: Any) -> Any:
                started = time.perf_counter()
                try:
                    return transmit(command)
                finally:
                    pending.card_io += time.perf_counter() - started

            return await asyncio.to_thread(
                read_card,
                timed,
                issuers=self.issuers,
                site=self.config.site,
                today=self.today(),
                cscas=self.cscas,
                mrz=mrz,
            )

    # -- screen, decide, record, show ---------------------------------------------------------

    async def _conclude(self, traveller: Traveller) -> ReviewItem | None:
        """Screen, decide, record and show; the review item when the traveller was referred."""
        pending = self._pending
        self._go(LaneState.SCREEN, message=message("lane.checking"))
        screening: ScreeningResult | None
        try:
            screening = self.screener.screen(traveller.identity, self.policy.hit_threshold)
        except ScreeningUnavailable:
            log.warning("screening unavailable", exc_info=True)
            screening = None
        self._go(LaneState.DECIDE, message=message("lane.checking"))
        verdict = decide(self.policy, traveller.kind, pending.checks, screening)
        decided = self.monotonic()
        timings = Timings((decided - pending.tap) * 1000, pending.card_io * 1000)
        self._go(LaneState.RECORD, message=message("lane.checking"))
        crossing_id = self.outbox.new_id()
        try:
            review = self._record(crossing_id, traveller, screening, verdict, timings)
        except Exception as exc:  # OutboxFull, or any failure: nothing was committed
            if not isinstance(exc, OutboxFull):
                log.exception("recording the crossing failed; referring to an officer")
            else:
                log.warning("outbox full: %s", exc)
            self._deadline = self.monotonic() + self.policy.show_s
            self._go(
                LaneState.SHOW,
                message=message("lane.officer_processing"),
                outcome="refer",
                timings=timings,
            )
            return None
        recorded = self.monotonic()
        timings = Timings(timings.total_ms, timings.card_io_ms, (recorded - decided) * 1000)
        self._pending = _Pending()
        self._deadline = self.monotonic() + self.policy.show_s
        self._go(
            LaneState.SHOW,
            message=verdict.traveller,
            crossing_id=crossing_id,
            outcome=verdict.outcome,
            review=review,
            timings=timings,
        )
        return review

    def _record(
        self,
        crossing_id: str,
        traveller: Traveller,
        screening: ScreeningResult | None,
        verdict: Verdict,
        timings: Timings,
    ) -> ReviewItem | None:
        config = self.config
        hit_ids = [self.outbox.new_id() for _ in verdict.hits]
        where = {"site": config.site, "lane": config.lane, "direction": config.direction}
        crossing = crossing_payload(
            **where,
            traveller=traveller,
            checks=self._pending.checks,
            screening=screening,
            verdict=verdict,
            hit_ids=hit_ids,
            latency_ms=timings.total_ms,
        )
        hits = None
        if verdict.hits and screening is not None:
            hits = hit_payload(
                crossing_id=crossing_id,
                **where,
                traveller=traveller,
                screening=screening,
                verdict=verdict,
                hit_ids=hit_ids,
            )
        review = None
        if verdict.outcome == "refer":
            card = self._pending.card
            review = ReviewItem(
                crossing_id=crossing_id,
                created_ms=int(time.time() * 1000),
                lane=config.lane,
                priority=verdict.priority,
                reasons=verdict.reasons,
                document=dict(traveller.document),
                personal={
                    "traveller": traveller.to_hit_traveller(),
                    "hits": hits["hits"] if hits is not None else [],
                    # the face image, for the officer at the lane only: in no record
                    **(document_photo(card) if card is not None else {}),
                },
                status="open",
            )
        with self.outbox.transaction() as tx:
            ReviewQueue.write_state(tx, config.lane, "show", crossing_id, verdict.outcome)
            tx.enqueue("crossings", crossing, id=crossing_id)
            if hits is not None:
                tx.enqueue("hits", hits)
            if review is not None:
                ReviewQueue.insert(tx, review)
        return review

    # -- officers -----------------------------------------------------------------------------

    def officer_decide(
        self,
        crossing_id: str,
        *,
        officer_id: str,
        decision: str,
        reason: str,
        hit_id: str | None = None,
    ) -> str:
        """Record an officer's decision (accept, deny, escalate) on a referred traveller.

        One transaction: the ``officer-decision`` record (channel ``decisions``) and the review
        item's update (personal data, photo included, cleared on accept or deny). Returns the
        record id. Raises PayloadError for an invalid decision,
        :class:`~.reviews.AlreadyDecided` (a KeyError) when the traveller was already accepted or
        denied, KeyError for a crossing not in the review queue; nothing is recorded then.
        Escalated items take a later decision.
        """
        decided_at = format_time(self.outbox.clock.read().time)
        body = decision_payload(
            crossing_id=crossing_id,
            officer_id=officer_id,
            decision=decision,
            reason=reason,
            decided_at=decided_at,
            hit_id=hit_id,
        )
        record_id = self.outbox.new_id()
        with self.outbox.transaction() as tx:
            tx.enqueue("decisions", body, id=record_id)  # validates it first: PayloadError
            ReviewQueue.record_decision(tx, crossing_id, body, record_id)
        return record_id


def _mrz_check(mrz: MrzDocument) -> Check:
    if mrz.valid:
        return Check("mrz-check-digits", CheckResult.PASS)
    bad = ", ".join(name for name, ok in mrz.checks.items() if not ok)
    return Check("mrz-check-digits", CheckResult.FAIL, f"wrong check digit: {bad}")


def _expiry_check(expiry: str | None, today: date) -> Check:
    if expiry is None:
        return Check("document-expiry", CheckResult.SKIPPED, "the document states no expiry")
    if expiry < today.isoformat():
        return Check("document-expiry", CheckResult.FAIL, f"expired {expiry}")
    return Check("document-expiry", CheckResult.PASS, f"valid until {expiry}")


def _identity(document: CardDocument) -> ScreeningQuery:
    holder, summary = document.holder, document.document or {}
    sex = holder.get("sex")
    return ScreeningQuery(
        surname=holder.get("surname") or "",
        given_names=holder.get("given_names") or "",
        birth_date=holder.get("date_of_birth"),
        nationality=summary.get("nationality"),
        sex=sex if sex in ("M", "F") else None,
        document_number=summary.get("number"),
        issuing_state=summary.get("issuing_state"),
    )
