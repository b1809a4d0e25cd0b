"""What each screen is given: pure functions from the lane's objects to the pages' data.

The traveller's screen is in public view, so :func:`traveller_view` is the one gate between the
lane and it: a phase, a neutral outcome and the :class:`TravellerMessage` (key and texts), and
nothing else, whatever the lane event carries (a review item with the watchlist hit, a reason
code, the crossing id). Everything the officer screen shows comes through :func:`queue_view`
and :func:`review_view`, served only behind the officer login.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from edge.lane import LaneEvent, LaneState, ReviewItem, TravellerMessage
from edge.lane.policy import message

__all__ = [
    "EntryLookup",
    "idle_view",
    "queue_view",
    "review_view",
    "traveller_view",
]

#: ``(kind, entry_id) -> the watchlist entry`` (``WatchlistStore.get``), or None when unknown.
EntryLookup = Callable[[str, str], Mapping[str, Any] | None]

_PHASES = {
    LaneState.IDLE: "idle",
    LaneState.DOCUMENT: "reading",
    LaneState.VERIFY: "checking",
    LaneState.SCREEN: "checking",
    LaneState.DECIDE: "checking",
    LaneState.RECORD: "checking",
    LaneState.SHOW: "result",
}
#: The traveller sees "go on" or "see an officer": never why.
_OUTCOMES = {"pass": "pass", "refer": "officer"}

#: Why a referred traveller's review has no photo (``photo_unavailable``), for the officer.
PHOTO_UNAVAILABLE_LABELS = {
    "jpeg2000": "JPEG 2000, which this screen cannot display",
    "unsupported-format": "an image format this screen cannot display",
    "too-large": "larger than any portrait",
    "unverified": "it does not match the issuer's signed data",
    "unreadable": "the chip's face data could not be read",
    "card-removed": "the card was taken away before its portrait was read",
}

REASON_LABELS = {
    "document-expired": "Document expired",
    "not-valid-at-site": "CBIC not valid at this crossing point",
    "mrz-invalid": "MRZ check digits wrong",
    "card-auth-failed": "Card authentication failed",
    "chip-auth-failed": "Chip authentication failed",
    "watchlist-hit": "Watchlist hit (refer)",
    "watchlist-deny": "Watchlist hit (deny entry)",
    "watchlist-alert": "Watchlist hit (alert)",
    "no-watchlist": "Screening could not run",
}


def _traveller_message(note: TravellerMessage) -> dict[str, Any]:
    return {"key": note.key, "texts": dict(note.texts)}


def idle_view() -> dict[str, Any]:
    """The screen before the lane said anything: the welcome."""
    return {
        "phase": "idle",
        "outcome": None,
        "message": _traveller_message(message("lane.welcome")),
    }


def traveller_view(event: LaneEvent) -> dict[str, Any] | None:
    """The traveller screen's payload for a lane event (None: the event changes nothing there).

    Only three keys, by construction: ``phase`` (idle, reading, checking, result), ``outcome``
    (pass, officer or None) and ``message`` (key and texts). Never the reason code, a hit, the
    crossing id or the review item.
    """
    if event.message is None:
        return None
    outcome = _OUTCOMES.get(event.outcome or "") if event.state is LaneState.SHOW else None
    return {
        "phase": _PHASES[event.state],
        "outcome": outcome,
        "message": _traveller_message(event.message),
    }


def _when(created_ms: int) -> str:
    return datetime.fromtimestamp(created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _name(item: ReviewItem) -> str:
    traveller = (item.personal or {}).get("traveller") or {}
    surname, given = traveller.get("surname") or "", traveller.get("given_names") or ""
    return f"{surname.upper()}, {given}".strip(", ") or "(identity cleared)"


def queue_view(items: list[ReviewItem]) -> list[dict[str, Any]]:
    """The officer's queue, in the order given (urgent first, then oldest: ReviewQueue)."""
    return [
        {
            "crossing_id": item.crossing_id,
            "created": _when(item.created_ms),
            "priority": item.priority,
            "status": item.status,
            "name": _name(item),
            "document": {
                "kind": item.document.get("kind"),
                "number": item.document.get("number"),
                "issuing_state": item.document.get("issuing_state"),
            },
            "reasons": [REASON_LABELS.get(r, r) for r in item.reasons],
            "hit_count": len((item.personal or {}).get("hits") or []),
        }
        for item in items
    ]


def _entry_fields(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A watchlist entry as label/text pairs for the officer (names as "SURNAME, Given")."""
    fields = []
    for key, value in entry.items():
        if key in ("list", "action"):  # shown with the hit already
            continue
        if key == "names":
            text = "; ".join(
                ", ".join(p for p in (n.get("surname", ""), n.get("given_names", "")) if p)
                if isinstance(n, Mapping)
                else str(n)
                for n in value
            )
        elif isinstance(value, list | tuple):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        fields.append((key.replace("_", " "), text))
    return fields


def review_view(item: ReviewItem, entries: EntryLookup | None = None) -> dict[str, Any]:
    """One referred traveller for the detail page: document, identity, photo flag, and each
    hit with the watchlist entry (looked up in the kiosk's watchlist when it is still there)
    and the matcher's explanation (``part``, ``how``, ``detail``)."""
    personal = item.personal or {}
    hits = []
    for hit in personal.get("hits") or []:
        entry = None
        if entries is not None:
            try:
                entry = entries(hit.get("kind", "person"), hit["entry_id"])
            except Exception:  # a watchlist being replaced must not break the officer's page
                entry = None
        reasons = [
            r if isinstance(r, Mapping) else {"part": "", "how": "", "detail": str(r)}
            for r in hit.get("reasons") or []
        ]
        hits.append(
            {
                "hit_id": hit.get("hit_id"),
                "entry_id": hit.get("entry_id"),
                "list": hit.get("list"),
                "kind": hit.get("kind"),
                "action": hit.get("action"),
                "score": hit.get("score"),
                "entry": _entry_fields(entry) if entry else None,
                "reasons": reasons,
            }
        )
    reason = personal.get("photo_unavailable")
    unavailable = PHOTO_UNAVAILABLE_LABELS.get(reason, reason) if reason else ""
    return {
        "crossing_id": item.crossing_id,
        "name": _name(item),
        "created": _when(item.created_ms),
        "lane": item.lane,
        "priority": item.priority,
        "status": item.status,
        "reasons": [REASON_LABELS.get(r, r) for r in item.reasons],
        "document": dict(item.document),
        "traveller": dict(personal.get("traveller") or {})
        | ({"photo": "not shown: " + unavailable} if unavailable else {}),
        "has_photo": bool(personal.get("photo")),
        "hits": hits,
        "decisions": [dict(d) for d in item.decisions],
        "open": item.status in ("open", "escalated"),
    }
