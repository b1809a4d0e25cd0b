"""The lane: document -> verify -> screen -> decide -> record -> show; one state machine.

The only place on the kiosk that decides (ARCHITECTURE.md). Modules:

- :mod:`~edge.lane.machine`: the state machine (:class:`Lane`), its inputs and its events;
- :mod:`~edge.lane.config`: :class:`LaneConfig` / :class:`LanePolicy` (``from_dict`` for the
  agent's TOML loader);
- :mod:`~edge.lane.policy`: the decision, pure, and the traveller's messages (en/es);
- :mod:`~edge.lane.screening`: the narrow :class:`Screener` protocol and the store adapter;
- :mod:`~edge.lane.record`: the crossing, hit and decision payloads;
- :mod:`~edge.lane.reviews`: the lane's tables (state, officers' review queue) and retention.
"""

from .config import LaneConfig, LaneConfigError, LanePolicy
from .machine import (
    CardPresented,
    CardWithdrawn,
    Lane,
    LaneEvent,
    LaneState,
    MrzScanned,
    Timings,
)
from .policy import MESSAGES, TravellerMessage, Verdict, decide
from .reviews import ReviewItem, ReviewQueue
from .screening import (
    Screener,
    ScreeningHit,
    ScreeningQuery,
    ScreeningResult,
    ScreeningUnavailable,
    StoreScreener,
)

__all__ = [
    "MESSAGES",
    "CardPresented",
    "CardWithdrawn",
    "Lane",
    "LaneConfig",
    "LaneConfigError",
    "LaneEvent",
    "LanePolicy",
    "LaneState",
    "MrzScanned",
    "ReviewItem",
    "ReviewQueue",
    "Screener",
    "ScreeningHit",
    "ScreeningQuery",
    "ScreeningResult",
    "ScreeningUnavailable",
    "StoreScreener",
    "Timings",
    "TravellerMessage",
    "Verdict",
    "decide",
]
