"""One part's entry in a heartbeat's ``components`` (health@1), built one way everywhere.

Every part of the kiosk reports itself the same way: a state, since when, and for anything but
``ok`` a short detail the technician can act on (the contract caps it at 500 characters)::

    >>> import datetime as dt
    >>> component_entry("down", dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC), "no reader")
    {'state': 'down', 'since': '2026-11-24T07:00:00.000Z', 'detail': 'no reader'}
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from .clock import format_time

__all__ = ["ComponentState", "component_entry"]

ComponentState = Literal["ok", "degraded", "down", "absent", "starting"]
DETAIL_MAX = 500


def component_entry(state: ComponentState, since: dt.datetime, detail: str = "") -> dict[str, Any]:
    """``{"state", "since", "detail"?}`` for ``health.components.<name>``."""
    entry: dict[str, Any] = {"state": state, "since": format_time(since)}
    if detail:
        entry["detail"] = detail[:DETAIL_MAX]
    return entry
