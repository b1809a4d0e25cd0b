"""The ``crossings`` blueprint: statistics over stored crossings, as JSON (``statistics.view``:
aggregates, never a person).

``GET /api/crossings/counts[?site=S&since=YYYY-MM-DD&until=YYYY-MM-DD]``
    crossings per site, day and decision outcome (pass / refer); days are the kiosk's UTC dates,
    and *since*/*until* are inclusive.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, jsonify, request

from ..store import queries
from .access import require
from .db import db

bp = Blueprint("crossings", __name__, url_prefix="/api/crossings")


def _day(name: str) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        abort(400, description=f"{name} must be a date YYYY-MM-DD, got {value!r}")
    if len(value) != 10:
        abort(400, description=f"{name} must be a date YYYY-MM-DD, got {value!r}")
    return value


@bp.get("/counts")
@require("statistics.view")
def counts():
    site = request.args.get("site")
    since, until = _day("since"), _day("until")
    if since and until and since > until:
        abort(400, description="since is after until")
    rows = queries.crossing_counts(db(), site=site, since=since, until=until)
    return jsonify(counts=rows, total=sum(r["count"] for r in rows))
