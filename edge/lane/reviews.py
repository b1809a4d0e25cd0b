"""The lane's own tables in the kiosk database: its state, and the officers' review queue.

They live in the outbox's SQLite file, so the crossing record, the lane state and the review
item commit in **one** transaction (:meth:`Outbox.transaction`), and the officer screen works
with no network.

Retention of personal data (review items hold the traveller's identity and the hits):

- an undecided (or escalated) item keeps it while officers need it, at most
  ``review_retention_s`` (policy, default 24 h); :meth:`ReviewQueue.purge` then clears it;
- a final decision (accept or deny) clears it **in the decision's own transaction**: what is
  left is the crossing id, the reasons and the decision, no identity (nor the document's
  photo, which is part of it);
- that remainder is deleted by :meth:`ReviewQueue.purge` once the decision record has left the
  outbox (the console acked it and the uplink purged it).

Age is measured twice, and an item is past its retention when **either** measure says so: by
the wall clock (``created_ms``), which keeps counting while the kiosk is switched off, and by
the kiosk database's lifetime (``created_life_ms``, :meth:`~edge.uplink.Outbox.lifetime_ms`),
which no clock jump can stretch. A clock that ran a year ahead when the item was written (so
its wall-clock age stays negative after the correction) still sees it purged after
``review_retention_s`` of the kiosk running; a clock that ran behind only purges it sooner.

The traveller data sent to the console travels in the ``screening-hit`` record, which the
outbox keeps until acked, like any record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LANE_SCHEMA", "AlreadyDecided", "ReviewItem", "ReviewQueue"]

LANE_SCHEMA = """
CREATE TABLE IF NOT EXISTS lane_state (
    lane TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    crossing_id TEXT,              -- the last crossing recorded
    outcome TEXT,
    updated_ms INTEGER NOT NULL,
    recorded INTEGER NOT NULL DEFAULT 0  -- crossings this lane ever recorded (never reset)
);
CREATE TABLE IF NOT EXISTS lane_reviews (
    crossing_id TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    lane TEXT NOT NULL,
    priority TEXT NOT NULL,        -- normal, urgent (a deny entry), discreet (an alert)
    reasons TEXT NOT NULL,         -- JSON list of decision reason codes
    document TEXT NOT NULL,        -- JSON: the crossing's document summary (no names)
    personal TEXT,                 -- JSON: traveller identity and hits, NULL once cleared
    status TEXT NOT NULL,          -- open, escalated, accepted, denied
    decisions TEXT NOT NULL,       -- JSON list of officer decisions taken on it
    last_decision_id TEXT,         -- the record id of the latest decision
    created_life_ms INTEGER        -- the kiosk database's lifetime when written (retention)
);
"""

_FINAL = {"accept": "accepted", "deny": "denied", "escalate": "escalated"}
_DECIDED = ("accepted", "denied")


class AlreadyDecided(KeyError):
    """An officer decided on a traveller someone already accepted or denied.

    Two officers can open the same review; the second one's decision must not silently replace
    the first (the first one's record is already on its way to the console). A ``KeyError``
    ("not in the queue of open items"), so callers that handle a vanished item handle this one
    too; ``status`` says what the first decision was.
    """

    def __init__(self, crossing_id: str, status: str) -> None:
        super().__init__(crossing_id)
        self.crossing_id = crossing_id
        self.status = status

    def __str__(self) -> str:
        return f"crossing {self.crossing_id} was already decided ({self.status})"


@dataclass(frozen=True)
class ReviewItem:
    """A referred traveller, as the officer screen shows it."""

    crossing_id: str
    created_ms: int
    lane: str
    priority: str
    reasons: tuple[str, ...]
    document: Mapping[str, Any]
    personal: Mapping[str, Any] | None
    """``traveller`` and ``hits`` (with list, score, reasons); None once cleared."""
    status: str
    decisions: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "crossing_id": self.crossing_id,
            "created_ms": self.created_ms,
            "lane": self.lane,
            "priority": self.priority,
            "reasons": list(self.reasons),
            "document": dict(self.document),
            "personal": None if self.personal is None else dict(self.personal),
            "status": self.status,
            "decisions": [dict(d) for d in self.decisions],
        }


def _item(row: tuple[Any, ...]) -> ReviewItem:
    crossing_id, created, lane, priority, reasons, document, personal, status, decisions = row
    return ReviewItem(
        crossing_id,
        created,
        lane,
        priority,
        tuple(json.loads(reasons)),
        json.loads(document),
        None if personal is None else json.loads(personal),
        status,
        tuple(json.loads(decisions)),
    )


_COLUMNS = "crossing_id, created_ms, lane, priority, reasons, document, personal, status, decisions"


class ReviewQueue:
    """The review queue in the kiosk database (the outbox's connection)."""

    def __init__(self, outbox: Any, retention_s: float) -> None:
        self.outbox = outbox
        self.retention_s = retention_s
        with outbox.transaction() as tx:
            for statement in LANE_SCHEMA.split(";"):
                if statement.strip():
                    tx.execute(statement)
            columns = {row[1] for row in tx.execute("PRAGMA table_info(lane_reviews)")}
            if "created_life_ms" not in columns:  # a kiosk database from before the lifetime
                tx.execute("ALTER TABLE lane_reviews ADD COLUMN created_life_ms INTEGER")
                # their lifetime age starts now: retention at most review_retention_s from here
                tx.execute("UPDATE lane_reviews SET created_life_ms = ?", (tx.lifetime_ms(),))

    # -- inside the lane's transaction --------------------------------------------------------

    @staticmethod
    def write_state(
        tx: Any, lane: str, state: str, crossing_id: str | None, outcome: str | None
    ) -> None:
        tx.execute(
            "INSERT INTO lane_state (lane, state, crossing_id, outcome, updated_ms, recorded) "
            "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (lane) DO UPDATE SET state = excluded.state, "
            "crossing_id = excluded.crossing_id, outcome = excluded.outcome, "
            "updated_ms = excluded.updated_ms, recorded = lane_state.recorded + 1",
            (lane, state, crossing_id, outcome, int(time.time() * 1000)),
        )

    @staticmethod
    def insert(tx: Any, item: ReviewItem) -> None:
        tx.execute(
            f"INSERT INTO lane_reviews ({_COLUMNS}, created_life_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item.crossing_id,
                item.created_ms,
                item.lane,
                item.priority,
                json.dumps(list(item.reasons)),
                json.dumps(dict(item.document)),
                None if item.personal is None else json.dumps(item.personal, ensure_ascii=False),
                item.status,
                json.dumps([dict(d) for d in item.decisions]),
                tx.lifetime_ms(),
            ),
        )

    @staticmethod
    def record_decision(
        tx: Any, crossing_id: str, decision: Mapping[str, Any], record_id: str
    ) -> None:
        """Add an officer's decision to the item, inside the caller's transaction.

        Open or escalated items take any decision (escalate, then accept or deny later); an
        accepted or denied item takes none: :class:`AlreadyDecided`. ``KeyError`` when the
        crossing is not in the queue at all (never referred, or purged).
        """
        row = tx.execute(
            "SELECT status, decisions FROM lane_reviews WHERE crossing_id = ?", (crossing_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no review item for crossing {crossing_id}")
        if row[0] in _DECIDED:
            raise AlreadyDecided(crossing_id, row[0])
        decisions = [*json.loads(row[1]), {**decision, "record_id": record_id}]
        status = _FINAL[decision["decision"]]
        clear = status in _DECIDED
        tx.execute(
            "UPDATE lane_reviews SET status = ?, decisions = ?, last_decision_id = ?"
            + (", personal = NULL" if clear else "")
            + " WHERE crossing_id = ?",
            (status, json.dumps(decisions), record_id, crossing_id),
        )

    def add_photo(self, crossing_id: str, photo: Mapping[str, Any]) -> bool:
        """Add a face image fetched after the decision (a :func:`~.record.photo_entry`) to an
        item's personal data. False, and nothing written, when the item is gone or its personal
        data was already cleared (decided, or past retention).
        """
        with self.outbox.transaction() as tx:
            row = tx.execute(
                "SELECT personal FROM lane_reviews WHERE crossing_id = ?", (crossing_id,)
            ).fetchone()
            if row is None or row[0] is None:
                return False
            personal = {**json.loads(row[0]), **photo}
            tx.execute(
                "UPDATE lane_reviews SET personal = ? WHERE crossing_id = ?",
                (json.dumps(personal, ensure_ascii=False), crossing_id),
            )
        return True

    # -- reading and housekeeping -------------------------------------------------------------

    def get(self, crossing_id: str) -> ReviewItem | None:
        rows = self.outbox.query(
            f"SELECT {_COLUMNS} FROM lane_reviews WHERE crossing_id = ?", (crossing_id,)
        )
        return _item(rows[0]) if rows else None

    def pending(self) -> list[ReviewItem]:
        """Open and escalated items, urgent first, then oldest first."""
        rows = self.outbox.query(
            f"SELECT {_COLUMNS} FROM lane_reviews WHERE status IN ('open', 'escalated') "
            "ORDER BY priority = 'urgent' DESC, created_ms"
        )
        return [_item(row) for row in rows]

    def purge(self, now_ms: int | None = None) -> int:
        """Apply the retention rule (module docstring); return how many items were deleted.

        *now_ms* is the wall clock (default: now); the lifetime is the outbox's.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        retention_ms = int(self.retention_s * 1000)
        with self.outbox.transaction() as tx:
            tx.execute(
                "UPDATE lane_reviews SET personal = NULL WHERE personal IS NOT NULL "
                "AND (created_ms < ? OR coalesce(created_life_ms, 0) < ?)",
                (now_ms - retention_ms, tx.lifetime_ms() - retention_ms),
            )
            deleted = tx.execute(
                "DELETE FROM lane_reviews WHERE status IN ('accepted', 'denied') "
                "AND last_decision_id NOT IN (SELECT id FROM uplink_outbox)"
            ).rowcount
        return deleted

    def erase(self) -> int:
        """Delete every item, decided or not, with its personal data (decommissioning: the
        kiosk leaves service and keeps nothing of anyone); return how many there were."""
        with self.outbox.transaction() as tx:
            return tx.execute("DELETE FROM lane_reviews").rowcount

    def state(self, lane: str) -> dict[str, Any] | None:
        rows = self.outbox.query(
            "SELECT state, crossing_id, outcome, recorded FROM lane_state WHERE lane = ?", (lane,)
        )
        if not rows:
            return None
        state, crossing_id, outcome, recorded = rows[0]
        return {
            "state": state,
            "crossing_id": crossing_id,
            "outcome": outcome,
            "recorded": recorded,
        }
