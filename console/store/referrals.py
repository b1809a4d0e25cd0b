"""The referral queue and supervisors' dispositions: pure queries over a SQLAlchemy
connection, the same SQL on SQLite and PostgreSQL, every one kept to the posts it is given.

::

    page = queue(conn, principal.posts, state="escalated", site="bz-benque-viejo")
    page.rows[0]["state"], page.next                     # newest first; next: the cursor
    item = referral(conn, principal.posts, crossing_id)  # one referral in full, or None
    with engine.begin() as conn:
        dispose(conn, principal, crossing_id, hit_id, "false-match", "Namesake; ...")

**A referral** is a crossing the kiosk referred to an officer, by crossing id: one with a
watchlist hit arrives as a screening hit record (the ``hits`` table, with the traveller's
name); one for another reason (an expired document, a failed chip check ...) is the crossing
record itself (outcome ``refer``, no hits). Officers decide at the kiosk (``decisions``,
joined on the crossing id; the latest ``decided_at`` wins, as the contract says); an
escalation goes to a supervisor, who records the final disposition here (``dispositions``:
stored, sent nowhere else).

**States**, of which a referral is in exactly one:

``open``
    no officer decision yet;
``decided``
    the latest officer decision is ``accept`` or ``deny``;
``escalated``
    the latest officer decision is ``escalate`` and no supervisor has disposed of it;
``disposed``
    a supervisor recorded the final disposition (one per referral: a second is refused).

**Posts.** *posts* is the principal's set of site ids (``*``: every post): a referral of
another post is never listed, and :func:`referral` answers None for it as for an unknown id.
A hit-less referral is known by its crossing record: its post comes from there.

**Pages** are newest first by the kiosk's time, then the crossing id (a keyset cursor, so a
page does not shift while referrals arrive), at most :data:`~.search.MAX_LIMIT` rows. The
escalated ones (the supervisor's queue) come newest *escalation* first: they are read from the
escalations, which stay few however many referrals there are.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    exists,
    literal_column,
    null,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.exc import IntegrityError

from mqtt_schemas.envelope import utc_now

from ..access import Principal
from .schema import crossings, decisions, dispositions, hits, watchlist_entries
from .search import (
    DEFAULT_LIMIT,
    Page,
    QueryError,
    after_clause,
    by_post,
    check_id,
    decisions_of,
    dispositions_of,
    document_summary,
    encode_cursor,
    hit_entries,
    hits_of,
    is_id,
    limit_of,
    parse_choice,
    parse_cursor,
    parse_site,
    posts_clause,
    rows_where,
    serves,
    sites_of,
    traveller_of,
    unindexed,
)

__all__ = [
    "DISPOSITIONS",
    "STATES",
    "DispositionRefused",
    "Page",
    "QueryError",
    "dispose",
    "queue",
    "referral",
    "site_of",
    "watchlist_entry",
]

STATES = ("open", "decided", "escalated", "disposed")

DISPOSITIONS: dict[str, str] = {
    "cleared": "Cleared: no grounds to hold the traveller, who may proceed",
    "false-match": "False match: the listed person is not this traveller, who may proceed",
    "refused": "Refused: entry or exit refused",
    "detained": "Detained at the post",
    "handed-over": "Handed over to another agency (named in the reason)",
}
"""The final dispositions a supervisor may record, with what each means."""

MAX_REASON = 1000


class DispositionRefused(Exception):
    """The disposition cannot be recorded: not an open escalation, or disposed already."""


# -- the queue ------------------------------------------------------------------------------


def _state_clause(state: str, crossing_id: Any) -> ColumnElement[bool]:
    """The referral *crossing_id* is in *state*. Written as (NOT) EXISTS, which both backends
    run as index probes and PostgreSQL also estimates from its statistics (a scalar subquery
    compared with a value it would guess at 0.5%, and then read every hit of a post to sort
    them instead of reading the newest until the page is full)."""
    disposed = exists().where(dispositions.c.crossing_id == crossing_id)
    if state == "disposed":
        return disposed
    if state == "open":
        return ~exists().where(decisions.c.crossing_id == crossing_id) & ~disposed
    d, later = decisions.alias(), decisions.alias()
    superseded = exists().where(  # a decision on the same crossing decided after it
        later.c.crossing_id == d.c.crossing_id,
        tuple_(later.c.decided_at, later.c.time, later.c.id)
        > tuple_(d.c.decided_at, d.c.time, d.c.id),
    )
    kind = d.c.decision == "escalate" if state == "escalated" else d.c.decision != "escalate"
    latest = exists().where(d.c.crossing_id == crossing_id, kind, ~superseded)
    return latest & ~disposed


_REFERRED = literal_column("'refer'")
_NO_HITS = literal_column("0")
_ESCALATE = literal_column("'escalate'")
"""Literals, not parameters: the partial index on hit-less referrals is used only when the
query's condition is visibly the index's."""


def _branches(
    posts: Collection[str], site: str | None, state: str | None, after: tuple[str, str] | None
) -> list[Select]:
    """The referrals with hits (from ``hits``) and without (from ``crossings``), each read
    through the post's index or from the newest by time (see :data:`~.search.FEW_POSTS`)."""
    h, c = hits.c, crossings.c
    sites = sites_of(posts, site)
    post_first = by_post(sites)
    with_hits = select(
        h.crossing_id.label("crossing_id"),
        h.time.label("time"),
        h.site.label("site"),
        h.id.label("hit_record_id"),
    ).where(
        posts_clause(h.site if post_first else unindexed(h.site), sites),
        after_clause(unindexed(h.time) if post_first else h.time, h.crossing_id, after),
    )
    without_hits = select(
        c.id.label("crossing_id"),
        c.time.label("time"),
        c.site.label("site"),
        null().label("hit_record_id"),
    ).where(  # always through the partial index on them, by time (it has the post)
        c.outcome == _REFERRED,
        c.hit_count == _NO_HITS,
        posts_clause(unindexed(c.site), sites),
        after_clause(c.time, c.id, after),
    )
    if state is None:
        return [with_hits, without_hits]
    return [
        with_hits.where(_state_clause(state, h.crossing_id)),
        without_hits.where(_state_clause(state, c.id)),
    ]


def queue(
    conn: Connection,
    posts: Collection[str],
    *,
    site: str | None = None,
    state: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """The referrals at *posts* (of *site*, in *state*), newest first; see the module
    docstring. Each row is a referral as :func:`referral` gives it (without the full
    decision history)."""
    site = parse_site(site)
    state = parse_choice(state, "state", STATES)
    cursor = parse_cursor(after)
    limit = limit_of(limit)
    if state == "escalated":
        return _escalations(conn, posts, site, cursor, limit)
    parts = []
    for branch in _branches(posts, site, state, cursor):
        ordered = branch.order_by(
            branch.selected_columns.time.desc(), branch.selected_columns.crossing_id.desc()
        ).limit(limit + 1)
        parts.append(select(ordered.subquery()))
    merged = union_all(*parts).subquery()
    rows = conn.execute(
        select(merged).order_by(merged.c.time.desc(), merged.c.crossing_id.desc()).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = _referrals(conn, rows)
    return Page(items, encode_cursor(rows[-1].time, rows[-1].crossing_id) if more else None)


def _escalations(
    conn: Connection,
    posts: Collection[str],
    site: str | None,
    cursor: tuple[str, str] | None,
    limit: int,
) -> Page:
    """The open escalations at *posts* (of *site*), the newest escalation first (the cursor
    is the escalation's time and crossing id).

    Read from the escalations (a partial index on them), not the referrals: an escalation
    waits for a supervisor, so few are open among many referrals, and a listing that read
    the referrals newest first would read all of them to find none (2 s on SQLite, 0.7 s on
    PostgreSQL at 200,000 hits). This reads at most every escalation ever made.
    """
    sites = sites_of(posts, site)
    d, h, c = decisions.c, hits.c, crossings.c
    later = decisions.alias()
    superseded = exists().where(
        later.c.crossing_id == d.crossing_id,
        tuple_(later.c.decided_at, later.c.time, later.c.id) > tuple_(d.decided_at, d.time, d.id),
    )
    at_posts = exists().where(
        h.crossing_id == d.crossing_id, posts_clause(unindexed(h.site), sites)
    ) | exists().where(
        c.id == d.crossing_id,
        c.outcome == _REFERRED,
        c.hit_count == _NO_HITS,
        posts_clause(unindexed(c.site), sites),
    )
    found = conn.execute(
        select(d.crossing_id, d.time)
        .where(
            d.decision == _ESCALATE,
            after_clause(d.time, d.crossing_id, cursor),
            ~superseded,
            ~exists().where(dispositions.c.crossing_id == d.crossing_id),
            at_posts,
        )
        .order_by(d.time.desc(), d.crossing_id.desc())
        .limit(limit + 1)
    ).all()
    more = len(found) > limit
    found = found[:limit]
    bases = _bases(conn, [row.crossing_id for row in found])
    items = _referrals(conn, [bases[row.crossing_id] for row in found])
    for item, row in zip(items, found, strict=True):
        item["escalated_at"] = row.time
    return Page(items, encode_cursor(found[-1].time, found[-1].crossing_id) if more else None)


def _bases(conn: Connection, crossing_ids: list[str]) -> dict[str, Any]:
    """What the listing needs of each referral (crossing id, time, post, first hit record):
    from its hit records, else its crossing (a referral without a hit)."""
    h, c = hits.c, crossings.c
    found: dict[str, Any] = {}
    columns = (h.crossing_id, h.time, h.site, h.id.label("hit_record_id"))
    for row in sorted(rows_where(conn, columns, h.crossing_id, crossing_ids), key=tuple):
        found.setdefault(row.crossing_id, row)
    rest = [crossing_id for crossing_id in crossing_ids if crossing_id not in found]
    columns = (c.id.label("crossing_id"), c.time, c.site, null().label("hit_record_id"))
    for row in rows_where(conn, columns, c.id, rest):
        found[row.crossing_id] = row
    return found


def referral(conn: Connection, posts: Collection[str], crossing_id: str) -> dict[str, Any] | None:
    """One referral in full (the hit records, the crossing, every officer decision, the
    disposition), or None when there is none at *posts* by that crossing id."""
    check_id(crossing_id, "crossing_id")
    h, c = hits.c, crossings.c
    found = conn.execute(
        select(h.crossing_id, h.time, h.site, h.id.label("hit_record_id"))
        .where(h.crossing_id == crossing_id)
        .order_by(h.time, h.id)
        .limit(1)
    ).first()
    if found is None:
        found = conn.execute(
            select(
                c.id.label("crossing_id"),
                c.time,
                c.site,
                null().label("hit_record_id"),
            ).where(c.id == crossing_id, c.outcome == _REFERRED, c.hit_count == _NO_HITS)
        ).first()
    if found is None or not serves(posts, found.site):
        return None
    return _referrals(conn, [found], every_record=True)[0]


def site_of(conn: Connection, crossing_id: str) -> str | None:
    """The post of the referral *crossing_id* (None: no such referral, or not an id), for the
    access decision on it only: it reads nothing else and is kept to no posts."""
    if not is_id(crossing_id):
        return None
    h, c = hits.c, crossings.c
    found = conn.execute(select(h.site).where(h.crossing_id == crossing_id).limit(1)).scalar()
    if found is None:
        found = conn.execute(
            select(c.site).where(
                c.id == crossing_id, c.outcome == _REFERRED, c.hit_count == _NO_HITS
            )
        ).scalar()
    return found


def state_of(decisions_latest_first: list[dict[str, Any]], disposition: Any) -> str:
    """A referral's state from its decisions (the latest first) and disposition."""
    if disposition is not None:
        return "disposed"
    if not decisions_latest_first:
        return "open"
    return "escalated" if decisions_latest_first[0]["decision"] == "escalate" else "decided"


def _referrals(
    conn: Connection, rows: list[Any], every_record: bool = False
) -> list[dict[str, Any]]:
    """The listed referrals with what they show: one query per table for the whole page."""
    crossing_ids = [row.crossing_id for row in rows]
    record_ids = [row.hit_record_id for row in rows if row.hit_record_id is not None]
    c = crossings.c
    if every_record:  # the detail page: every hit record of the crossing
        hit_records = hits_of(conn, crossing_ids)
    else:
        hit_records = hits_of(conn, record_ids, by_record=True)
    crossing_rows = rows_where(
        conn, (c.id, c.lane, c.direction, c.device_id, c.payload), c.id, crossing_ids
    )
    crossing_of = {row.id: row for row in crossing_rows}
    decided = decisions_of(conn, crossing_ids)
    disposed = dispositions_of(conn, crossing_ids)
    items = []
    for row in rows:
        records = hit_records.get(row.crossing_id, [])
        first = records[0]["payload"] if records else {}
        crossing_row = crossing_of.get(row.crossing_id)
        crossing_payload = json.loads(crossing_row.payload) if crossing_row is not None else {}
        listed = decided.get(row.crossing_id, [])
        disposition = disposed.get(row.crossing_id)
        items.append(
            {
                "crossing_id": row.crossing_id,
                "time": row.time,
                "site": row.site,
                "lane": first.get("lane") or crossing_payload.get("lane"),
                "direction": first.get("direction") or crossing_payload.get("direction"),
                "device_id": crossing_row.device_id if crossing_row is not None else None,
                "state": state_of(listed, disposition),
                "reasons": list((crossing_payload.get("decision") or {}).get("reasons") or []),
                "traveller": traveller_of(first) if records else None,
                "document": document_summary(crossing_payload) if crossing_payload else None,
                "crossing_stored": crossing_row is not None,
                "hit_records": [
                    {"id": r["id"], "time": r["time"], "hits": hit_entries(r["payload"])}
                    for r in records
                ],
                "decision": listed[0] if listed else None,
                "decisions": listed if every_record else listed[:1],
                "disposition": disposition,
            }
        )
    return items


def record_ids(item: dict[str, Any]) -> list[str]:
    """The ids of the records a referral shows: the crossing, its hit records, the officers'
    decisions shown (for the audit entry)."""
    found = [item["crossing_id"]]
    found += [record["id"] for record in item["hit_records"]]
    found += [decision["id"] for decision in item["decisions"]]
    return found


def watchlist_entry(conn: Connection, kind: str, entry_id: str) -> dict[str, Any] | None:
    """The current watchlist entry a hit names (as the console last published it), or None
    when it is no longer on the list."""
    e = watchlist_entries.c
    found = conn.execute(
        select(e.entry).where(e.kind == kind, e.entry_id == entry_id)
    ).scalar_one_or_none()
    return json.loads(found) if found is not None else None


# -- dispositions ---------------------------------------------------------------------------


def dispose(
    conn: Connection,
    principal: Principal,
    crossing_id: str,
    hit_id: str | None,
    disposition: str,
    reason: str,
    *,
    at: str | None = None,
) -> dict[str, Any]:
    """Record *principal*'s final *disposition* of an escalated referral, with *reason*, in
    the caller's transaction; return the stored disposition.

    :class:`QueryError` names a bad parameter (a disposition not in :data:`DISPOSITIONS`, a
    blank or overlong reason, a hit id other than the escalated one); LookupError: no such
    referral at the principal's posts; :class:`DispositionRefused`: the referral is not an
    open escalation (not escalated, decided since at the kiosk, or disposed already: one
    disposition per referral, kept so by a unique index when two supervisors race).
    """
    check_id(crossing_id, "crossing_id")
    if disposition not in DISPOSITIONS:
        raise QueryError("disposition", f"one of {', '.join(DISPOSITIONS)}")
    reason = (reason or "").strip()
    if not reason:
        raise QueryError("reason", "required: say why")
    if len(reason) > MAX_REASON:
        raise QueryError("reason", f"at most {MAX_REASON} characters")
    if hit_id is not None and hit_id != "":
        check_id(hit_id, "hit_id")
    else:
        hit_id = None
    item = referral(conn, principal.posts, crossing_id)
    if item is None:
        raise LookupError(f"no referral {crossing_id} at your posts")
    if item["state"] == "disposed":
        raise DispositionRefused("this escalation has its final disposition already")
    if item["state"] != "escalated":
        raise DispositionRefused(f"this referral is {item['state']}, not escalated")
    escalated = item["decision"]
    if hit_id != escalated["hit_id"]:
        raise QueryError("hit_id", "not the hit that was escalated")
    row = {
        "crossing_id": crossing_id,
        "hit_id": hit_id,
        "user_id": principal.user_id,
        "username": principal.username,
        "disposition": disposition,
        "reason": reason,
        "at": at or utc_now(),
    }
    try:
        with conn.begin_nested():
            stored = conn.execute(
                dispositions.insert().values(**row).returning(dispositions.c.id)
            ).scalar_one()
    except IntegrityError:
        raise DispositionRefused("this escalation has its final disposition already") from None
    return {"id": stored, **row}
