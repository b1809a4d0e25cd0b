"""The ``search`` blueprint: crossing search, one crossing, and a traveller's crossings over
time. Every page reads personal data: it asks for the purpose first and audits what it shows
(:mod:`.purpose`); all of it keeps to the user's posts. The queries are
:mod:`console.store.search`'s.

``GET /crossings/search[?document=&name=&exact=&since=&until=&site=&direction=&outcome=&after=]``
    The form, and the crossings it finds, newest first, :data:`PAGE_SIZE` a page: by document
    number (as written, and the OCR-confused spellings the kiosk's matcher folds together), by
    name (as the matcher reads names, through the screening hits that carry them), by date
    range (UTC days, ``until`` inclusive), post, direction and outcome. A search needs a
    document number, a name or a date range of at most 31 days.
``GET /crossings/<crossing_id>``
    One crossing: the document, the checks, the screening (the watchlist entries only where
    ``hit.details`` allows), the lane's decision, the officers' and the supervisor's. Another
    post's crossing is a 404, as one that does not exist.
``GET /travellers/<issuing_state>/<document_number>[?after=CURSOR]``
    Every crossing of one document at the user's posts, newest first, with how many and since
    when.

A malformed parameter is a 400 naming it (the search form shows it again with the problem).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request, url_for

from ..access import Resource
from ..store import search
from ..store.search import CrossingQuery, QueryError
from .access import require
from .db import db
from .purpose import audit_read, purpose_args, purpose_required
from .referrals import hit_details, my_posts, one

bp = Blueprint("search", __name__)

PAGE_SIZE = 50


def crossing_resource(crossing_id: str) -> Resource:
    """What the policy decides a crossing's page on: its post (None when there is no such
    crossing: the view answers 404 or 400 for it)."""
    return Resource(site=search.site_of(db(), crossing_id))


@bp.get("/crossings/search")
@require("crossings.search")
@purpose_required
def index() -> Any:
    asked = {name: request.args.get(name, "") for name in CrossingQuery.PARAMS}
    given = {name: value for name, value in asked.items() if value.strip()}
    form = {"asked": asked, "posts": sorted(my_posts()), "purpose": purpose_args()}
    if not given:  # the empty form: nothing read, nothing shown
        audit_read([], {})
        return render_template("search.html", page=None, **form)
    try:
        query = CrossingQuery.from_args(asked)
        page = search.search_crossings(
            db(), my_posts(), query, after=request.args.get("after"), limit=PAGE_SIZE
        )
    except QueryError as exc:
        return render_template("search.html", page=None, problem=exc, **form), 400
    audit_read(_shown(page.rows), {**query.describe(), **_after()})
    given.pop("after", None)
    older = newest = None
    if page.next is not None:
        older = url_for("search.index", **given, after=page.next, **purpose_args())
    if request.args.get("after"):
        newest = url_for("search.index", **given, **purpose_args())
    return render_template("search.html", page=page, older_url=older, newest_url=newest, **form)


@bp.get("/crossings/<crossing_id>")
@require("crossing.view")
@require("crossing.view", resource=crossing_resource, hide=True)
@purpose_required
def crossing(crossing_id: str) -> Any:
    item = one(search.crossing, crossing_id)
    entries: list[str] = []
    item["screening"]["hits"], shown = hit_details(item["site"], item["screening"].get("hits", []))
    entries += shown
    for record in item["hit_records"]:
        record["hits"], shown = hit_details(item["site"], record["hits"])
        entries += shown
    records = [
        crossing_id,
        *(record["id"] for record in item["hit_records"]),
        *(decision["id"] for decision in item["decisions"]),
    ]
    audit_read([*records, *dict.fromkeys(entries)])
    return render_template("crossing.html", item=item, purpose=purpose_args())


@bp.get("/travellers/<issuing_state>/<document_number>")
@require("crossings.search")
@purpose_required
def traveller(issuing_state: str, document_number: str) -> Any:
    posts = my_posts()
    try:
        page = search.traveller_crossings(
            db(),
            posts,
            issuing_state,
            document_number,
            after=request.args.get("after"),
            limit=PAGE_SIZE,
        )
        summary = search.traveller_summary(db(), posts, issuing_state, document_number)
    except QueryError as exc:
        abort(400, description=str(exc))
    audit_read(_shown(page.rows))
    older = None
    if page.next is not None:
        older = url_for(
            "search.traveller",
            issuing_state=issuing_state,
            document_number=document_number,
            after=page.next,
            **purpose_args(),
        )
    names = {(t["surname"], t["given_names"]): t for row in page.rows if (t := row["traveller"])}
    return render_template(
        "traveller.html",
        page=page,
        summary=summary,
        issuing_state=issuing_state,
        document_number=document_number,
        names=list(names.values()),
        older_url=older,
        purpose=purpose_args(),
    )


def _shown(rows: list[dict[str, Any]]) -> list[str]:
    """The records a result shows: each crossing, and the screening hits that named someone."""
    return [record_id for row in rows for record_id in (row["id"], *row["hit_ids"])]


def _after() -> dict[str, str]:
    after = request.args.get("after")
    return {"after": after} if after else {}
