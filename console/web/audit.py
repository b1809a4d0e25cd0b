"""The ``audit`` blueprint: the auditor's view of the audit log (auditors only, and audited).

``GET /audit/[?user=U&action=A&since=YYYY-MM-DD&until=YYYY-MM-DD&before=SEQ]``
    The entries newest first, :data:`PAGE_SIZE` a page (``before``: the next page starts below
    that seq), filtered by username, action and days (``until`` inclusive), under the chain's
    state: intact with how many entries, or the first broken entry. The log names travellers'
    documents in its queries, so reading it is itself personal: the auditor gives a purpose
    (:mod:`.purpose`) and the page writes an entry naming the entries it shows
    (``audit:<seq>``).

The chain's state comes from :func:`console.audit.verify`. A full walk costs about 12 us an
entry, so each app process walks the whole chain at most every ``AUDIT_FULL_CHECK_SECONDS``
(config, default 300) and in between checks only the entries written since its last walk, from
the hash it ended on (an entry edited in between shows at the next full walk). The page says
when the last full walk was.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request, url_for

from .. import audit
from ..access import ACTIONS
from ..store.database import is_sqlite
from .access import policy, require
from .db import db, engine
from .purpose import audit_read, purpose_args, purpose_required

bp = Blueprint("audit", __name__, url_prefix="/audit")

PAGE_SIZE = 50
FULL_CHECK_SECONDS = 300.0
_CHAIN_KEY = "borderlane_audit_chain"
_TEXT_MAX = 100


@bp.get("/")
@require("audit.view")
@purpose_required
def index() -> Any:
    filters = _filters()
    before = _seq("before")
    found = list(
        audit.entries(
            db(),
            username=filters.get("user"),
            action=filters.get("action"),
            since=filters.get("since"),
            until=_day_after(filters["until"]) if "until" in filters else None,
            before_seq=before,
            limit=PAGE_SIZE + 1,
        )
    )
    shown, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    chain = chain_status()  # as the entries were read: this view's own entry comes next
    audit_read([f"audit:{entry.seq}" for entry in shown])
    return render_template(
        "audit.html",
        entries=shown,
        filters=filters,
        before=before,
        newest_url=url_for("audit.index", **filters, **purpose_args()) if before else None,
        older_url=url_for("audit.index", before=shown[-1].seq, **filters, **purpose_args())
        if more
        else None,
        chain=chain,
        actions=[action for action in ACTIONS if policy().personal(action)],
        purpose=purpose_args(),
    )


def chain_status() -> dict[str, Any]:
    """The chain's state for the page: ``result`` (a :class:`console.audit.VerifyResult`)
    and ``full_at`` (UTC text of the last full walk); see the module docstring."""
    app = current_app
    every = float(app.config.get("AUDIT_FULL_CHECK_SECONDS", FULL_CHECK_SECONDS))
    cached = app.extensions.get(_CHAIN_KEY)
    full = cached is None or time.monotonic() - cached["walked"] >= every
    resume = None if full else cached["result"]
    reader = engine(app)
    if is_sqlite(reader):
        # The request's read transaction is one snapshot already (and the engine's pool hands
        # this thread that same connection: a second transaction on it cannot begin).
        result = audit.verify(db(), resume=resume)
    else:
        with audit.reading(reader) as conn:  # REPEATABLE READ: a purge meanwhile is not a break
            result = audit.verify(conn, resume=resume)
    if full:
        cached = {"walked": time.monotonic(), "full_at": result.checked_at, "result": result}
    else:
        cached = {**cached, "result": result}
    app.extensions[_CHAIN_KEY] = cached
    return cached


def _filters() -> dict[str, str]:
    """The filters given (only those), checked: 400 naming a bad one."""
    found: dict[str, str] = {}
    for name in ("user", "action"):
        value = request.args.get(name, "").strip()
        if len(value) > _TEXT_MAX:
            abort(400, description=f"{name}: at most {_TEXT_MAX} characters")
        if value:
            found[name] = value
    for name in ("since", "until"):
        value = request.args.get(name, "").strip()
        if not value:
            continue
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            value = ""
        if len(value) != 10:
            abort(400, description=f"{name}: a date YYYY-MM-DD")
        found[name] = value
    if "since" in found and "until" in found and found["since"] > found["until"]:
        abort(400, description="since: after until")
    return found


def _seq(name: str) -> int | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        abort(400, description=f"{name}: an entry's seq (a whole number)")
    return int(value)


def _day_after(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
