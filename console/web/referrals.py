"""The ``referrals`` blueprint: the referral queue, one referral, and the supervisor's
dispositions of escalations. Every page reads personal data: it asks for the purpose first and
audits what it shows (:mod:`.purpose`); all of it keeps to the user's posts.

``GET /referrals[?site=S&state=open|decided|escalated|disposed&after=CURSOR]``
    The referrals of the user's posts, newest first, :data:`PAGE_SIZE` a page (``after``: the
    next page's cursor, from the "Older" link), filtered by post and state. Officers and
    supervisors of the border agency (``referrals.view``).
``GET /referrals/escalated[?site=S&after=CURSOR]``
    The supervisor's queue: the escalations nobody has disposed of, each with a form for the
    final disposition (``referral.dispose``).
``GET /referrals/<crossing_id>``
    One referral: the traveller, the crossing, the hits (the watchlist entry's details only
    where ``hit.details`` allows: level 3 and a list shared with the user's agency; otherwise a
    line saying they are withheld and why), every officer decision, the disposition. Another
    post's referral is a 404, as one that does not exist (a role that sees no referral at all
    gets 403: two ``@require``, the role's first).
``POST /referrals/<crossing_id>/disposition``
    The final disposition of an escalation (form: ``hit_id``, ``disposition``, ``reason``, the
    purpose and the CSRF token); stored in the console and sent nowhere else. One per
    escalation: a second is refused (409).

A malformed parameter is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from ..access import Resource
from ..store import referrals
from ..store.search import QueryError
from .access import policy, principal, require
from .db import db, settings, writer
from .purpose import audit_read, purpose_args, purpose_required

bp = Blueprint("referrals", __name__, url_prefix="/referrals")

PAGE_SIZE = 50


def referral_resource(crossing_id: str) -> Resource:
    """What the policy decides a referral's page on: its post (None when there is no such
    referral: the view answers 404 or 400 for it)."""
    return Resource(site=referrals.site_of(db(), crossing_id))


def _bad(exc: QueryError) -> NoReturn:
    abort(400, description=str(exc))


def my_posts() -> frozenset[str]:
    """The posts of the user asking (a view under ``@require``)."""
    who = principal()
    assert who is not None  # @require let the view run
    return who.posts


def one(read: Callable[..., dict[str, Any] | None], crossing_id: str) -> dict[str, Any]:
    """``read(conn, posts, crossing_id)`` at the user's posts: 400 for a malformed id, 404 when
    there is none (there, or at all)."""
    try:
        found = read(db(), my_posts(), crossing_id)
    except QueryError as exc:
        _bad(exc)
    if found is None:
        abort(404)
    return found


def _queue(site: str, state: str | None) -> referrals.Page:
    """The queue page asked for, audited; a 400 naming a malformed parameter."""
    try:
        page = referrals.queue(
            db(),
            my_posts(),
            site=site or None,
            state=state or None,
            after=request.args.get("after"),
            limit=PAGE_SIZE,
        )
    except QueryError as exc:
        _bad(exc)
    audit_read(_shown(page.rows))
    return _listed(page)


@bp.get("")
@require("referrals.view")
@purpose_required
def index() -> Any:
    filters = {name: request.args.get(name, "") for name in ("site", "state")}
    page = _queue(filters["site"], filters["state"])
    return render_template(
        "referrals.html",
        page=page,
        filters=filters,
        states=referrals.STATES,
        posts=sorted(my_posts()),
        purpose=purpose_args(),
        older_url=_older("referrals.index", page, filters),
    )


@bp.get("/escalated")
@require("referral.dispose")
@purpose_required
def escalated() -> Any:
    site = request.args.get("site", "")
    page = _queue(site, "escalated")
    return render_template(
        "escalated.html",
        page=page,
        site=site,
        posts=sorted(my_posts()),
        dispositions=referrals.DISPOSITIONS,
        purpose=purpose_args(),
        older_url=_older("referrals.escalated", page, {"site": site}),
    )


@bp.get("/<crossing_id>")
@require("referrals.view")
@require("referrals.view", resource=referral_resource, hide=True)
@purpose_required
def referral(crossing_id: str) -> Any:
    item = one(referrals.referral, crossing_id)
    entries: list[str] = []
    for record in item["hit_records"]:
        record["hits"], shown = hit_details(item["site"], record["hits"])
        entries += shown
    audit_read([*referrals.record_ids(item), *entries])
    resource = Resource(site=item["site"])
    return render_template(
        "referral.html",
        item=item,
        may_dispose=item["state"] == "escalated"
        and policy().may(principal(), "referral.dispose", resource),
        dispositions=referrals.DISPOSITIONS,
        purpose=purpose_args(),
    )


@bp.post("/<crossing_id>/disposition")
@require("referral.dispose")
@require("referral.dispose", resource=referral_resource, hide=True)
@purpose_required
def dispose(crossing_id: str) -> Any:
    who = principal()
    assert who is not None
    form = request.form
    try:
        with writer().begin() as conn:
            stored = referrals.dispose(
                conn,
                who,
                crossing_id,
                form.get("hit_id") or None,
                form.get("disposition", ""),
                form.get("reason", ""),
            )
    except QueryError as exc:
        _bad(exc)
    except LookupError:
        abort(404)
    except referrals.DispositionRefused as exc:
        abort(409, description=str(exc))
    audit_read(
        [crossing_id],
        {"crossing_id": crossing_id, "hit_id": stored["hit_id"], "disposed": stored["disposition"]},
    )
    session["notice"] = f"Disposition recorded: {stored['disposition']}."
    return redirect(url_for("referrals.referral", crossing_id=crossing_id, **purpose_args()))


# -- shared with the crossing pages ---------------------------------------------------------


def hit_details(site: str, hits: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The hits as the user may see them, and the ids of the watchlist entries shown.

    Everyone who sees the referral sees which list, the kind of entry, the score and the
    action; the entry itself (its id, the reasons it matched, the listed person or document)
    only where the policy allows ``hit.details`` for that list (level 3 and a list shared
    with the user's agency). Otherwise ``withheld`` says why, and nothing of it is read.
    """
    who = principal()
    assert who is not None
    shown, entries = [], []
    for hit in hits:
        resource = Resource(site=site, shared_with=settings().shared_with(hit.get("list", "")))
        decision = policy().decide(who, "hit.details", resource)
        view = {key: hit.get(key) for key in ("hit_id", "list", "kind", "score", "action")}
        if decision:
            view["entry_id"] = hit.get("entry_id")
            view["reasons"] = hit.get("reasons") or []
            view["entry"] = referrals.watchlist_entry(db(), hit.get("kind", ""), view["entry_id"])
            entries.append(f"watchlist:{hit.get('kind')}:{view['entry_id']}")
        else:
            view["withheld"] = decision.why
        shown.append(view)
    return shown, entries


SUMMARY = ("list", "kind", "score", "action")
"""What a listing shows of a hit: never the entry (see :func:`hit_details`)."""


def _listed(page: referrals.Page) -> referrals.Page:
    """*page* with each hit cut to :data:`SUMMARY`."""
    for item in page.rows:
        for record in item["hit_records"]:
            record["hits"] = [{key: hit.get(key) for key in SUMMARY} for hit in record["hits"]]
    return page


def _shown(rows: list[dict[str, Any]]) -> list[str]:
    return [record_id for item in rows for record_id in referrals.record_ids(item)]


def _older(endpoint: str, page: referrals.Page, filters: dict[str, str]) -> str | None:
    if page.next is None:
        return None
    kept = {name: value for name, value in filters.items() if value}
    return url_for(endpoint, after=page.next, **kept, **purpose_args())
