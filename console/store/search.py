"""Crossing search over the console database: pure queries over a SQLAlchemy connection, the
same SQL on SQLite and PostgreSQL, every one kept to the posts it is given.

::

    query = CrossingQuery.from_args({"name": "José Cal", "since": "2026-11-01"})
    page = search_crossings(conn, principal.posts, query)          # newest first
    page.rows[0]["traveller"]["surname"], page.next                 # next: the cursor, or None
    search_crossings(conn, principal.posts, query, after=page.next) # the page after
    traveller_crossings(conn, principal.posts, "BLZ", "P0318842")   # one document over time
    crossing(conn, principal.posts, crossing_id)                    # one crossing, or None

**Posts.** *posts* is the principal's set of site ids (``*``: every post). A crossing of
another post is never returned; :func:`crossing` answers None for it, as for an unknown id.

**Document numbers** are matched on the key the kiosk's matcher indexes documents by
(:func:`mqtt_schemas.name_matching.document_key`: OCR-confusable letters folded to digits), so
a number read as ``G1O5B3221`` finds ``G10583221``; ``exact`` keeps the numbers equal as
written, and every row says which it is (``document_match``).

**Names.** A crossing record names nobody (the contract keeps names off it): the name of a
referred traveller travels in the screening hit. A name is read as the matcher reads it
(:mod:`mqtt_schemas.name_matching`: transliterated from any script, diacritics and case gone,
particles and joined spellings as units) and found by the phonetic codes of those units, which
the writer keeps for every hit (``hit_names``, with the hit's time, crossing and post, so that
a page of a common name costs a page): every name token of the query must be matched by a unit
of the traveller's name (``José Cal`` finds ``CAL / JOSE MANUEL``, ``Александр Петров`` finds
``ALEXANDER PETROV``, ``Delacruz`` finds ``DE LA CRUZ``). ``exact`` keeps only names that have
each query token as spelt (after normalisation). Initials are not searched by. A search led by
a name pages by the hit's time (the crossing's, at the lane).

**Pages.** Newest first by the kiosk's time, then id; a page holds at most ``limit`` rows
(:data:`MAX_LIMIT` at most) and ``next`` is the cursor (``after``) of the following page, so
pages stay stable while crossings arrive. A search needs a document number, a name, or a date
range of at most :data:`MAX_RANGE_DAYS` days: a purpose-bound search, not a dump.

Malformed parameters raise :class:`QueryError` naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    false,
    func,
    intersect,
    literal,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from mqtt_schemas.identifiers import COUNTRY, NAME
from mqtt_schemas.name_matching import document_key, parse_name, phonetic, tokens

from ..access.policy import ALL_POSTS
from .schema import crossings, decisions, dispositions, hit_names, hits

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_RANGE_DAYS = 31
MAX_NAME_LENGTH = 200
DIRECTIONS = ("entry", "exit")
OUTCOMES = ("pass", "refer")

_DOCUMENT = re.compile(r"[A-Z0-9]{1,24}")
_DOCUMENT_FILLERS = re.compile(r"[\s<-]+")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TRUE = ("1", "true", "on", "yes")
_FALSE = ("", "0", "false", "off", "no")


class QueryError(ValueError):
    """A malformed parameter: :attr:`param` names it, the message says what is expected."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param}: {problem}")
        self.param = param
        self.problem = problem


@dataclass(frozen=True)
class Page:
    """One page of a listing: its rows, and the cursor of the next page (None: the last)."""

    rows: list[dict[str, Any]]
    next: str | None = None


# -- parameters -----------------------------------------------------------------------------


def limit_of(value: int | str | None, param: str = "limit") -> int:
    """A page size from 1 to :data:`MAX_LIMIT` (default :data:`DEFAULT_LIMIT`)."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise QueryError(param, f"a whole number from 1 to {MAX_LIMIT}") from None
    if not 1 <= number <= MAX_LIMIT:
        raise QueryError(param, f"a whole number from 1 to {MAX_LIMIT}")
    return number


def encode_cursor(time: str, record_id: str) -> str:
    """The cursor of the row after which a page starts: its time and id."""
    return f"{time}~{record_id}"


def parse_cursor(value: str | None, param: str = "after") -> tuple[str, str] | None:
    """``(time, id)`` of a cursor made by :func:`encode_cursor`, or None for none."""
    if value is None or value == "":
        return None
    time, sep, record_id = value.partition("~")
    if not sep or not _TIMESTAMP.fullmatch(time) or not _UUID.fullmatch(record_id):
        raise QueryError(param, "not a page cursor of this listing (follow the next link)")
    return time, record_id


def parse_day(value: str | None, param: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` date, or None for none."""
    if value is None or value == "":
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise QueryError(param, "a date YYYY-MM-DD") from None


def parse_flag(value: str | None, param: str) -> bool:
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise QueryError(param, "1 or 0")


def parse_site(value: str | None, param: str = "site") -> str | None:
    """A post's site id (``bz-santa-elena``), or None for none."""
    if value is None or value == "":
        return None
    if not NAME.fullmatch(value):
        raise QueryError(param, "a post id: lower case letters, digits, . _ -")
    return value


def parse_choice(value: str | None, param: str, choices: Iterable[str]) -> str | None:
    if value is None or value == "":
        return None
    choices = tuple(choices)
    if value not in choices:
        raise QueryError(param, f"one of {', '.join(choices)}")
    return value


def parse_document_number(value: str | None, param: str) -> str | None:
    """A document number as the kiosk sends it: upper case, no spaces, dashes or fillers."""
    if value is None or not value.strip():
        return None
    number = _DOCUMENT_FILLERS.sub("", value).upper()
    if not _DOCUMENT.fullmatch(number):
        raise QueryError(param, "a document number: up to 24 letters and digits")
    return number


def parse_state(value: str | None, param: str) -> str:
    state = (value or "").strip().upper()
    if not COUNTRY.fullmatch(state):
        raise QueryError(param, "an issuing state code: 1 to 3 letters (BLZ, D, UTO)")
    return state


def is_id(value: str | None) -> bool:
    """Whether *value* is a record id (a UUID, lower case)."""
    return bool(_UUID.fullmatch(value or ""))


def check_id(value: str, param: str) -> str:
    """A record id (a UUID, lower case)."""
    if not is_id(value):
        raise QueryError(param, "a record id (a UUID)")
    return value


def name_groups(text: str) -> tuple[frozenset[str], ...]:
    """What a name query must match: for each of its core tokens (initials left out), the
    phonetic codes of the units that stand for it, as :mod:`mqtt_schemas.name_matching` builds them
    (``De la Cruz`` -> ``({KRS, TLKRS},)``; ``Xiao Ming`` -> ``({KS, KSMNG}, {MNG, KSMNG})``)."""
    name = parse_name(tokens(text), [])
    groups = []
    for position in range(len(name.core)):
        bit = 1 << position
        codes = frozenset(phonetic(u.text) for u in name.keyed_units if u.mask & bit)
        if codes:
            groups.append(codes)
    return tuple(groups)


def name_tokens(text: str) -> tuple[str, ...]:
    """The core tokens of a name query that are searched by (initials left out)."""
    return tuple(t for t in parse_name(tokens(text), []).core if len(t) > 1)


@dataclass(frozen=True)
class CrossingQuery:
    """What a crossing search asks; :meth:`from_args` checks a request's parameters."""

    document: str | None = None
    name: str | None = None
    exact: bool = False
    since: dt.date | None = None
    until: dt.date | None = None
    site: str | None = None
    direction: str | None = None
    outcome: str | None = None
    groups: tuple[frozenset[str], ...] = field(default=(), compare=False, repr=False)

    PARAMS = ("document", "name", "exact", "since", "until", "site", "direction", "outcome")

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> CrossingQuery:
        """The query of *args* (a request's parameters); :class:`QueryError` names a bad one."""
        name = (args.get("name") or "").strip() or None
        groups: tuple[frozenset[str], ...] = ()
        if name is not None:
            if len(name) > MAX_NAME_LENGTH:
                raise QueryError("name", f"at most {MAX_NAME_LENGTH} characters")
            groups = name_groups(name)
            if not groups:
                raise QueryError("name", "no name to search by (initials alone are not)")
        query = cls(
            document=parse_document_number(args.get("document"), "document"),
            name=name,
            exact=parse_flag(args.get("exact"), "exact"),
            since=parse_day(args.get("since"), "since"),
            until=parse_day(args.get("until"), "until"),
            site=parse_site(args.get("site")),
            direction=parse_choice(args.get("direction"), "direction", DIRECTIONS),
            outcome=parse_choice(args.get("outcome"), "outcome", OUTCOMES),
            groups=groups,
        )
        if query.since and query.until and query.since > query.until:
            raise QueryError("until", "on or after since")
        if query.document is None and query.name is None:
            if query.since is None or query.until is None:
                raise QueryError(
                    "document",
                    "a search needs a document number, a name, or a date range (since and "
                    f"until) of at most {MAX_RANGE_DAYS} days",
                )
            if (query.until - query.since).days >= MAX_RANGE_DAYS:
                raise QueryError(
                    "until",
                    f"without a document number or a name, at most {MAX_RANGE_DAYS} days",
                )
        return query

    def describe(self) -> dict[str, Any]:
        """The query as given (for the audit entry and the page)."""
        found = {
            "document": self.document,
            "name": self.name,
            "exact": self.exact or None,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "site": self.site,
            "direction": self.direction,
            "outcome": self.outcome,
        }
        return {key: value for key, value in found.items() if value is not None}


# -- shared by the listings -----------------------------------------------------------------


FEW_POSTS = 3
"""Up to this many posts, a listing is read through its post's index (the posts' rows, then
sorted); for more, or every post, through the time index from the newest (stopping when the
page is full), the posts a filter. The queries say which, by leaving the other index no
condition it could use (:func:`unindexed`): SQLite plans without table statistics and would
otherwise read every crossing of a post to find a name's few."""


class unindexed(FunctionElement[Any]):
    """*column*, which SQLite's planner may not use an index for: ``coalesce(column, '')``
    there (the same value: the columns it is used on are never NULL), so that a query is
    planned on the index meant. PostgreSQL gets the plain column: it plans from the table
    statistics it keeps, which an expression would hide from it."""

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _plain_column(element: unindexed, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(column, **kw)


@compiles(unindexed, "sqlite")
def _no_index_on_sqlite(element: unindexed, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(func.coalesce(column, ""), **kw)


def sites_of(posts: Collection[str], site: str | None = None) -> frozenset[str] | None:
    """The sites a listing covers: *site* if one of *posts*, else none; without *site*, the
    posts; None for every post."""
    if site is not None:
        return frozenset({site}) if serves(posts, site) else frozenset()
    if ALL_POSTS in posts:
        return None
    return frozenset(posts)


def by_post(sites: frozenset[str] | None) -> bool:
    """Whether a listing of *sites* is best read through the post's index."""
    return sites is not None and len(sites) <= FEW_POSTS


def posts_clause(column: Any, sites: frozenset[str] | None) -> ColumnElement[bool]:
    """*column* (a site) is one of *sites* (None: any; empty: none)."""
    if sites is None:
        return true()
    if not sites:
        return false()
    return column.in_(sorted(sites))


def serves(posts: Collection[str], site: str | None) -> bool:
    return site is not None and (ALL_POSTS in posts or site in posts)


def after_clause(time: Any, key: Any, after: tuple[str, str] | None) -> ColumnElement[bool]:
    """Rows after the cursor in newest-first order."""
    if after is None:
        return true()
    return (time <= after[0]) & ((time < after[0]) | (key < after[1]))


def rows_where(
    conn: Connection, columns: Iterable[Any], key: Any, ids: list[str], size: int = 500
) -> list[Any]:
    """The rows (of *columns*) whose *key* is one of *ids*, asked in chunks (bounded IN
    lists); in no particular order."""
    found: list[Any] = []
    columns = tuple(columns)
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        found += conn.execute(select(*columns).where(key.in_(chunk))).all()
    return found


def document_summary(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a crossing record says of the document (it names nobody)."""
    document = payload.get("document") or {}
    keys = (
        "kind",
        "document_type",
        "category",
        "number",
        "issuing_state",
        "nationality",
        "birth_year",
        "expiry_date",
    )
    return {key: document.get(key) for key in keys if key in document}


def traveller_of(hit_payload: Mapping[str, Any]) -> dict[str, Any]:
    """The traveller of a screening hit, as the document states them."""
    return dict(hit_payload.get("traveller") or {})


def hit_entries(hit_payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The watchlist hits of a screening hit record (list, kind, score, action; the entry id
    and the reasons are the entry's details, which only some may see)."""
    return [dict(hit) for hit in hit_payload.get("hits") or []]


def latest_first(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Officer decisions, the latest first (decided_at, then the record's time and id)."""
    found = [dict(row._mapping) for row in rows]
    found.sort(key=lambda d: (d["decided_at"], d["time"], d["id"]), reverse=True)
    return found


def decisions_of(conn: Connection, crossing_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every officer decision on *crossing_ids*, the latest first, by crossing id."""
    d = decisions.c
    columns = (d.id, d.crossing_id, d.hit_id, d.time, d.officer_id, d.decision, d.decided_at)
    rows = rows_where(conn, (*columns, d.payload), d.crossing_id, crossing_ids)
    by_crossing: dict[str, list[Any]] = {}
    for row in rows:
        by_crossing.setdefault(row.crossing_id, []).append(row)
    found = {}
    for crossing_id, group in by_crossing.items():
        listed = latest_first(group)
        for item in listed:
            item["reason"] = json.loads(item.pop("payload")).get("reason")
        found[crossing_id] = listed
    return found


def dispositions_of(conn: Connection, crossing_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The supervisor's disposition of each of *crossing_ids* that has one."""
    rows = rows_where(conn, dispositions.c, dispositions.c.crossing_id, crossing_ids)
    return {row.crossing_id: dict(row._mapping) for row in rows}


def hits_of(
    conn: Connection, ids: list[str], *, by_record: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """The screening hit records of the crossings *ids* (or, *by_record*, the records of
    those ids) by crossing id, oldest first (id, time, site, payload decoded)."""
    h = hits.c
    key = h.id if by_record else h.crossing_id
    rows = rows_where(conn, (h.id, h.crossing_id, h.time, h.site, h.payload), key, ids)
    found: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda row: (row.time, row.id)):
        found.setdefault(row.crossing_id, []).append(
            {"id": row.id, "time": row.time, "site": row.site, "payload": json.loads(row.payload)}
        )
    return found


# -- crossings ------------------------------------------------------------------------------

_ROW_COLUMNS = (
    crossings.c.id,
    crossings.c.time,
    crossings.c.site,
    crossings.c.lane,
    crossings.c.device_id,
    crossings.c.direction,
    crossings.c.outcome,
    crossings.c.hit_count,
    crossings.c.document_number,
    crossings.c.issuing_state,
    crossings.c.payload,
)


def _name_keys(
    query: CrossingQuery,
    sites: frozenset[str] | None,
    since: str | None = None,
    until: str | None = None,
    after: tuple[str, str] | None = None,
) -> Select:
    """``(time, crossing_id)`` of the screening hits at *sites* whose traveller the query's
    name matches: for each name token, the ``hit_names`` rows of its codes, intersected. Read
    from ``hit_names`` alone (it carries the hit's time, crossing and post)."""
    n = hit_names.c
    per_token = []
    for codes in query.groups:
        part = select(n.time, n.crossing_id).where(
            n.code.in_(sorted(codes)),
            posts_clause(n.site, sites),
            after_clause(n.time, n.crossing_id, after),
        )
        if since is not None:
            part = part.where(n.time >= since)
        if until is not None:
            part = part.where(n.time < until)
        if query.exact:
            h = hits.c
            spelt = select(h.id).where(h.id == n.hit_id)
            padded = literal(" ") + h.name_key + literal(" ")
            for token in name_tokens(query.name or ""):
                spelt = spelt.where(padded.like(f"% {token} %"))
            part = part.where(spelt.exists())
        per_token.append(part)
    return per_token[0].distinct() if len(per_token) == 1 else intersect(*per_token)


def _search_by_name(
    conn: Connection,
    query: CrossingQuery,
    sites: frozenset[str] | None,
    after: tuple[str, str] | None,
    limit: int,
) -> Page:
    """A search led by a name: the matching hits newest first (by the hit's time, which is the
    crossing's at the lane), a page's worth at a time, then their crossings; the cost follows
    the page, not how common the name is. The cursor is the hit's time and crossing id."""
    c = crossings.c
    since = query.since.isoformat() if query.since else None
    until = (query.until + dt.timedelta(days=1)).isoformat() if query.until else None
    # Filters the hits cannot apply may drop crossings: then read ahead in larger chunks.
    filtered = query.direction is not None or query.outcome is not None
    chunk = max(4 * (limit + 1), 200) if filtered else limit + 1
    found: list[tuple[tuple[str, str], Any]] = []
    seen: set[str] = set()
    position = after
    while len(found) <= limit:
        keys = _name_keys(query, sites, since, until, position).subquery()
        batch = conn.execute(
            select(keys.c.time, keys.c.crossing_id)
            .order_by(keys.c.time.desc(), keys.c.crossing_id.desc())
            .limit(chunk)
        ).all()
        if not batch:
            break
        wanted = [row.crossing_id for row in batch if row.crossing_id not in seen]
        statement = select(*_ROW_COLUMNS).where(
            c.id.in_(wanted), posts_clause(unindexed(c.site), sites)
        )
        if query.direction is not None:
            statement = statement.where(c.direction == query.direction)
        if query.outcome is not None:
            statement = statement.where(c.outcome == query.outcome)
        stored = {row.id: row for row in conn.execute(statement)}
        for key in batch:
            if key.crossing_id in stored and key.crossing_id not in seen:
                seen.add(key.crossing_id)
                found.append(((key.time, key.crossing_id), stored[key.crossing_id]))
                if len(found) > limit:
                    break
        if len(batch) < chunk:
            break
        position = (batch[-1].time, batch[-1].crossing_id)
    more = len(found) > limit
    found = found[:limit]
    next_cursor = encode_cursor(*found[-1][0]) if more else None
    return Page(_rows(conn, [row for _, row in found]), next_cursor)


def _page(
    conn: Connection,
    statement: Select,
    after: tuple[str, str] | None,
    limit: int,
    by_time: bool = False,
) -> tuple[list[Any], str | None]:
    c = crossings.c
    time = c.time if by_time else unindexed(c.time)
    statement = (
        statement.where(after_clause(time, c.id, after))
        .order_by(c.time.desc(), c.id.desc())
        .limit(limit + 1)
    )
    rows = conn.execute(statement).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].time, rows[-1].id) if more else None


def _rows(conn: Connection, rows: list[Any], number: str | None = None) -> list[dict[str, Any]]:
    """Search rows: the crossing, its document, and the traveller's name when a hit gave it."""
    hit_records = hits_of(conn, [row.id for row in rows])
    found = []
    for row in rows:
        payload = json.loads(row.payload)
        records = hit_records.get(row.id, [])
        item = {
            "id": row.id,
            "time": row.time,
            "site": row.site,
            "lane": row.lane,
            "device_id": row.device_id,
            "direction": row.direction,
            "outcome": row.outcome,
            "reasons": list((payload.get("decision") or {}).get("reasons") or []),
            "hit_count": row.hit_count,
            "document": document_summary(payload),
            "traveller": traveller_of(records[0]["payload"]) if records else None,
            "hit_ids": [record["id"] for record in records],
        }
        if number is not None:
            item["document_match"] = "exact" if row.document_number == number else "folded"
        found.append(item)
    return found


def search_crossings(
    conn: Connection,
    posts: Collection[str],
    query: CrossingQuery,
    *,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """The crossings at *posts* that *query* finds, newest first; see the module docstring."""
    cursor = parse_cursor(after)
    limit = limit_of(limit)
    c = crossings.c
    sites = sites_of(posts, query.site)
    # One index leads (see FEW_POSTS): the document's, the name's hits, the post's or time.
    if query.document is not None:
        lead = "document"
    elif query.name is not None:
        lead = "name"
    else:
        lead = "post" if by_post(sites) else "time"
    if lead == "name":
        return _search_by_name(conn, query, sites, cursor, limit)
    site = c.site if lead == "post" else unindexed(c.site)
    statement = select(*_ROW_COLUMNS).where(posts_clause(site, sites))
    if query.document is not None:
        statement = statement.where(c.document_key == document_key(query.document))
        if query.exact:
            statement = statement.where(c.document_number == query.document)
    if query.name is not None:  # with a document number: the name narrows its crossings
        named = _name_keys(query, sites).subquery()
        statement = statement.where(unindexed(c.id).in_(select(named.c.crossing_id)))
    if query.since is not None or query.until is not None:
        since = query.since.isoformat() if query.since else None
        until = (query.until + dt.timedelta(days=1)).isoformat() if query.until else None
        if lead == "post":  # the post's index has the day: its range
            day = c.day
            if since:
                statement = statement.where(day >= since)
            if query.until:
                statement = statement.where(day <= query.until.isoformat())
        else:  # by time: the time index leads, or (a document's) a filter
            time = c.time if lead == "time" else unindexed(c.time)
            if since:
                statement = statement.where(time >= since)
            if until:
                statement = statement.where(time < until)
    if query.direction is not None:
        statement = statement.where(c.direction == query.direction)
    if query.outcome is not None:
        statement = statement.where(c.outcome == query.outcome)
    rows, next_cursor = _page(conn, statement, cursor, limit, by_time=lead == "time")
    return Page(_rows(conn, rows, query.document), next_cursor)


def traveller_crossings(
    conn: Connection,
    posts: Collection[str],
    issuing_state: str,
    document_number: str,
    *,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """Every crossing at *posts* of one document (its issuing state and number as sent),
    newest first: a traveller's crossings over time."""
    state = parse_state(issuing_state, "issuing_state")
    number = parse_document_number(document_number, "document_number")
    if number is None:
        raise QueryError("document_number", "a document number: up to 24 letters and digits")
    cursor = parse_cursor(after)
    limit = limit_of(limit)
    c = crossings.c
    statement = select(*_ROW_COLUMNS).where(
        posts_clause(unindexed(c.site), sites_of(posts)),
        c.document_key == document_key(number),
        c.document_number == number,
        c.issuing_state == state,
    )
    rows, next_cursor = _page(conn, statement, cursor, limit)
    return Page(_rows(conn, rows), next_cursor)


def traveller_summary(
    conn: Connection, posts: Collection[str], issuing_state: str, document_number: str
) -> dict[str, Any]:
    """How often and when one document crossed at *posts*: count, first and last time."""
    state = parse_state(issuing_state, "issuing_state")
    number = parse_document_number(document_number, "document_number") or ""
    c = crossings.c
    count, first, last = conn.execute(
        select(func.count(), func.min(c.time), func.max(c.time)).where(
            posts_clause(unindexed(c.site), sites_of(posts)),
            c.document_key == document_key(number),
            c.document_number == number,
            c.issuing_state == state,
        )
    ).one()
    return {"count": count, "first": first, "last": last}


def site_of(conn: Connection, crossing_id: str) -> str | None:
    """The post of the crossing *crossing_id* (None: no such crossing, or not an id), for the
    access decision on it only: it reads nothing else and is kept to no posts."""
    if not is_id(crossing_id):
        return None
    return conn.execute(select(crossings.c.site).where(crossings.c.id == crossing_id)).scalar()


def crossing(conn: Connection, posts: Collection[str], crossing_id: str) -> dict[str, Any] | None:
    """One crossing at *posts* in full (checks, screening, decision), with its screening hit
    records, the officers' decisions and the supervisor's disposition; None when there is no
    such crossing at *posts*."""
    check_id(crossing_id, "crossing_id")
    c = crossings.c
    row = conn.execute(select(*_ROW_COLUMNS, c.received_at).where(c.id == crossing_id)).first()
    if row is None or not serves(posts, row.site):
        return None
    payload = json.loads(row.payload)
    records = hits_of(conn, [crossing_id]).get(crossing_id, [])
    return {
        **_rows(conn, [row])[0],
        "received_at": row.received_at,
        "checks": list(payload.get("checks") or []),
        "screening": dict(payload.get("screening") or {}),
        "latency_ms": payload.get("latency_ms"),
        "clock": dict(payload.get("clock") or {}),
        "hit_records": [
            {
                "id": r["id"],
                "time": r["time"],
                "traveller": traveller_of(r["payload"]),
                "hits": hit_entries(r["payload"]),
            }
            for r in records
        ],
        "decisions": decisions_of(conn, [crossing_id]).get(crossing_id, []),
        "disposition": dispositions_of(conn, [crossing_id]).get(crossing_id),
    }
