"""One part's entry in a heartbeat's ``components`` (``health@1``), built one way everywhere.

Every part of the kiosk reports itself the same way: a state, since when, and for anything but
``ok`` a short detail the technician can act on. The contract caps the detail at
:data:`DETAIL_MAX` characters; :func:`component_entry` cuts a longer one rather than let a
heartbeat fail validation over an error message::

    >>> import datetime as dt
    >>> component_entry("down", dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC), "no reader")
    {'state': 'down', 'since': '2026-11-24T07:00:00.000Z', 'detail': 'no reader'}
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from .envelope import format_time

__all__ = ["DETAIL_MAX", "ComponentState", "component_entry"]

ComponentState = Literal["ok", "degraded", "down", "absent", "starting"]
"""``health@1``'s ``components.*.state`` enum: ok working, degraded working with a fault, down
expected but not working, absent not fitted on this kiosk, starting not ready yet."""

DETAIL_MAX = 500
"""``health@1``'s ``maxLength`` of ``components.*.detail``; a contract test keeps them equal."""


def component_entry(state: ComponentState, since: dt.datetime, detail: str = "") -> dict[str, Any]:
    """``{"state", "since", "detail"?}`` for ``health.components.<name>``.

    An empty *detail* is left out (the schema makes it optional); a longer one than
    :data:`DETAIL_MAX` is cut to fit.
    """
    entry: dict[str, Any] = {"state": state, "since": format_time(since)}
    if detail:
        entry["detail"] = detail[:DETAIL_MAX]
    return entry
