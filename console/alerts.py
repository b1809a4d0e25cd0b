"""Fleet health: the alert rules, their evaluation and history, and what the fleet pages read.

::

    changes = evaluate(engine, settings, now)       # one pass: raise and clear, in one transaction
    for change in changes:
        print(change.kind, change.device_id, change.rule, change.detail)
    alerts = list_alerts(conn, open_only=True)      # what /alerts and `alerts list` show

The rules look at the ``devices`` table: each kiosk's availability and its latest heartbeat
(``health@1``), against the thresholds of ``[alerts]`` in ``console.toml``
(:class:`~console.settings.AlertSettings`). A rule *holds* for a kiosk or not; :func:`evaluate`
raises an alert (a row in ``alerts`` with ``raised_at``) when a rule starts to hold and clears
it (sets ``cleared_at``) when it stops, so the table is the history. At most one alert per
kiosk and rule is open at a time, which the database also enforces (a partial unique index).

======================  ===================================================================
rule                    holds when
======================  ===================================================================
``offline``             the kiosk has been offline longer than ``offline_minutes``
``heartbeat-stale``     the kiosk is online but its last heartbeat came more than
                        ``heartbeat_stale_minutes`` ago (or none since its birth)
``outbox-oldest``       its oldest unacked record is older than ``outbox_oldest_minutes``
``watchlist-age``       it has not known its watchlist to be the latest for longer than
                        ``watchlist_max_age_hours`` (or has none, or never knew)
``part-down:<name>``    a part (``card-reader``, ``mrz-reader``, ``camera``, ``uplink``, …) is
                        ``down``; one rule per part, so each part has its own history
``clock-unsynced``      its clock is not synchronised
``clock-skew``          its latest heartbeat's ``time`` is more than ``clock_skew_minutes``
                        off the console's time of receiving it, either way
``disk-low``            less than ``disk_free_percent`` of its data disk is free
======================  ===================================================================

The rules about a heartbeat's content judge the latest heartbeat as the kiosk sent it: a kiosk
that falls silent keeps the state it last reported (its silence is ``offline`` or
``heartbeat-stale``, not guessed ages: it may well have emptied its outbox just before it went).
A new birth restarts the heartbeat clock: a kiosk that has just reconnected is not stale.

``clock-skew`` catches what ``clock-unsynced`` cannot: a clock that is wrong and believes
itself right (set by hand, a bad RTC restored at boot, a GPS fix from the wrong week); its
records then carry times days off, which ``time`` sorting and retention take at face value. It
compares heartbeats, not records: a heartbeat is published the moment it is made and never
queued on the kiosk, so its age on arrival is transit time (seconds), while a record may
legitimately arrive days after it was made, from an outbox that waited out a partition.

Evaluation is idempotent and safe with several evaluators at once (two console nodes): each
pass is one writer transaction (SQLite's write lock; on PostgreSQL an advisory lock taken
first), which reads the open alerts and changes them. Times are the console's, UTC, in the
contract's text form.

The read side (:func:`fleet_status`, :func:`heartbeat_series`, :func:`list_alerts`) serves
the web pages and the CLI; it returns devices, never a traveller: no crossing is read but the
post (site) of a kiosk's latest one, which is how a kiosk's post is known.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine, and_, delete, desc, or_, select, text, update

from mqtt_schemas.envelope import format_time

from .settings import AlertSettings, Settings
from .store.database import is_sqlite, retrying
from .store.schema import alerts, crossings, devices, heartbeats

__all__ = [
    "RULES",
    "Alert",
    "Change",
    "DeviceStatus",
    "Finding",
    "HeartbeatPoint",
    "clock_skew_s",
    "describe_age",
    "device_posts",
    "evaluate",
    "findings",
    "fleet_status",
    "heartbeat_series",
    "list_alerts",
    "parse_time",
    "purge_heartbeats",
    "rule_family",
    "summarize",
]

log = logging.getLogger("borderlane.console.alerts")

OFFLINE = "offline"
STALE = "heartbeat-stale"
OUTBOX = "outbox-oldest"
WATCHLIST = "watchlist-age"
PART_DOWN = "part-down"
CLOCK = "clock-unsynced"
SKEW = "clock-skew"
DISK = "disk-low"

RULES: dict[str, str] = {
    OFFLINE: "kiosk offline too long",
    STALE: "no recent heartbeat from an online kiosk",
    OUTBOX: "records waiting too long for the console",
    WATCHLIST: "watchlist too old",
    PART_DOWN: "a part of the kiosk is down (part-down:<part>)",
    CLOCK: "clock not synchronised",
    SKEW: "clock off the console's time",
    DISK: "disk nearly full",
}
"""The rule families and what they mean (``part-down`` has one rule per part)."""

_EVALUATOR_LOCK = 0x626F_7264_616C  # pg_advisory_xact_lock key of an evaluation pass


# -- time ------------------------------------------------------------------------------------


def parse_time(value: str | None) -> dt.datetime | None:
    """A contract timestamp (``2026-11-24T09:30:00.123Z``, up to 9 fraction digits) as an
    aware UTC datetime; None for None or text that is not one."""
    if not value:
        return None
    body = value[:-1] if value.endswith("Z") else value
    if "." in body:
        head, fraction = body.split(".", 1)
        body = f"{head}.{fraction[:6]}"
    try:
        moment = dt.datetime.fromisoformat(body)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _seconds_since(value: str | None, now: dt.datetime) -> float | None:
    moment = parse_time(value)
    return None if moment is None else (now - moment).total_seconds()


def describe_age(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.1 d``; ``-`` for None."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def clock_skew_s(health: Mapping[str, Any], received_at: str | None) -> float | None:
    """How far the kiosk's clock was ahead (positive) or behind (negative) the console's, in
    seconds: its heartbeat's ``time`` minus when the console received it; None if unknown."""
    stamped, received = parse_time(health.get("time")), parse_time(received_at)
    if stamped is None or received is None:
        return None
    return (stamped - received).total_seconds()


# -- the rules (pure) --------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A rule that holds for a kiosk now, with what the operator should read about it."""

    device_id: str
    rule: str
    detail: str


def rule_family(rule: str) -> str:
    """``part-down:camera`` -> ``part-down``; other rules are their own family."""
    return rule.split(":", 1)[0]


def _limits(settings: Settings | AlertSettings) -> AlertSettings:
    return settings.alerts if isinstance(settings, Settings) else settings


def findings(
    device: Mapping[str, Any], settings: Settings | AlertSettings, now: dt.datetime
) -> list[Finding]:
    """The rules that hold for one kiosk: *device* is its ``devices`` row (as a mapping), with
    ``health`` as stored (JSON text) or already decoded."""
    limits = _limits(settings)
    device_id = device["device_id"]
    found: list[Finding] = []

    def hold(rule: str, detail: str) -> None:
        found.append(Finding(device_id, rule, detail[:500]))

    state = device.get("state")
    if state == "offline":
        since = device.get("last_offline_at") or device.get("state_time")
        offline_s = _seconds_since(since, now)
        if offline_s is not None and offline_s > limits.offline_minutes * 60:
            reason = device.get("offline_reason")
            hold(
                OFFLINE,
                f"offline for {describe_age(offline_s)} (since {since}"
                + (f", {reason})" if reason else ")"),
            )
    else:
        heartbeat, birth = device.get("health_received_at"), device.get("last_birth_at")
        reference = max(filter(None, (heartbeat, birth)), default=None)
        silent_s = _seconds_since(reference, now)
        if silent_s is not None and silent_s > limits.heartbeat_stale_minutes * 60:
            what = "heartbeat" if reference == heartbeat else "heartbeat since its birth"
            hold(STALE, f"no {what} for {describe_age(silent_s)} (since {reference})")

    health = device.get("health")
    if isinstance(health, str):
        try:
            health = json.loads(health)
        except ValueError:
            health = None
    if not isinstance(health, Mapping):
        return found
    outbox = health.get("outbox") or {}
    oldest = outbox.get("oldest_age_s")
    if oldest is not None and oldest > limits.outbox_oldest_minutes * 60:
        hold(
            OUTBOX,
            f"oldest unacked record {describe_age(oldest)} old "
            f"({outbox.get('depth', '?')} waiting, at {health.get('time')})",
        )

    watchlist = health.get("watchlist") or {}
    version, age = watchlist.get("version"), watchlist.get("age_s")
    if version == 0:
        hold(WATCHLIST, "no watchlist applied: the kiosk refers every traveller")
    elif age is None:
        hold(WATCHLIST, f"version {version} never confirmed as the latest")
    elif age > limits.watchlist_max_age_hours * 3600:
        hold(
            WATCHLIST,
            f"version {version} last confirmed as the latest {describe_age(age)} before "
            f"{health.get('time')}",
        )

    for name, part in sorted((health.get("components") or {}).items()):
        if isinstance(part, Mapping) and part.get("state") == "down":
            detail = f"{name} down since {part.get('since')}"
            if part.get("detail"):
                detail += f": {part['detail']}"
            hold(f"{PART_DOWN}:{name}", detail)

    clock = health.get("clock") or {}
    if clock.get("synced") is False:
        offset = clock.get("offset_ms")
        hold(
            CLOCK,
            f"clock not synchronised (source {clock.get('source', '?')}"
            + (f", offset {offset:g} ms" if isinstance(offset, int | float) else "")
            + (f", last sync {clock['last_sync']})" if clock.get("last_sync") else ")"),
        )

    skew = clock_skew_s(health, device.get("health_received_at"))
    if skew is not None and abs(skew) > limits.clock_skew_minutes * 60:
        hold(
            SKEW,
            f"clock {describe_age(abs(skew))} {'ahead of' if skew > 0 else 'behind'} the "
            f"console's (heartbeat stamped {health.get('time')}, received "
            f"{device.get('health_received_at')})",
        )

    disk = health.get("disk") or {}
    total, free = disk.get("total_bytes"), disk.get("free_bytes")
    if total and free is not None:
        percent = 100.0 * free / total
        if percent < limits.disk_free_percent:
            hold(
                DISK,
                f"{percent:.1f}% of the data disk free ({free / 1e9:.1f} of {total / 1e9:.1f} GB)",
            )
    return found


# -- evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What one evaluation pass did to one alert."""

    kind: Literal["raised", "cleared"]
    device_id: str
    rule: str
    detail: str
    at: str


_DEVICE_COLUMNS = (
    devices.c.device_id,
    devices.c.state,
    devices.c.state_time,
    devices.c.last_birth_at,
    devices.c.last_offline_at,
    devices.c.offline_reason,
    devices.c.health,
    devices.c.health_received_at,
)


def evaluate(
    db: Engine | Connection,
    settings: Settings | AlertSettings,
    now: dt.datetime | None = None,
) -> list[Change]:
    """One evaluation pass at *now* (default: the current time): raise what newly holds, clear
    what no longer does; the changes made. On an engine, one transaction (redone if PostgreSQL
    ends it for a deadlock); on a connection, inside the caller's transaction, which must be a
    writer's (``engine.begin()``)."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    if isinstance(db, Engine):
        return retrying(db, lambda conn: evaluate(conn, settings, moment))
    conn = db
    if not is_sqlite(conn):
        # Evaluators on several console nodes take turns; on SQLite BEGIN IMMEDIATE did it.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _EVALUATOR_LOCK})
    at = format_time(moment)
    holding: dict[tuple[str, str], Finding] = {}
    for row in conn.execute(select(*_DEVICE_COLUMNS)):
        for finding in findings(row._mapping, settings, moment):
            holding[(finding.device_id, finding.rule)] = finding
    open_now = {
        (row.device_id, row.rule): row.id
        for row in conn.execute(
            select(alerts.c.id, alerts.c.device_id, alerts.c.rule).where(
                alerts.c.cleared_at.is_(None)
            )
        )
    }
    changes: list[Change] = []
    raised = [holding[key] for key in sorted(holding.keys() - open_now.keys())]
    if raised:
        conn.execute(
            alerts.insert(),
            [
                {
                    "device_id": f.device_id,
                    "rule": f.rule,
                    "raised_at": at,
                    "cleared_at": None,
                    "detail": f.detail,
                }
                for f in raised
            ],
        )
        changes += [Change("raised", f.device_id, f.rule, f.detail, at) for f in raised]
    cleared = sorted(open_now.keys() - holding.keys())
    if cleared:
        conn.execute(
            update(alerts)
            .where(alerts.c.id.in_([open_now[key] for key in cleared]))
            .values(cleared_at=at)
        )
        changes += [Change("cleared", device_id, rule, "", at) for device_id, rule in cleared]
    for change in changes:
        log.info("%s %s %s %s", change.kind, change.device_id, change.rule, change.detail)
    return changes


def purge_heartbeats(db: Engine | Connection, days: int, now: dt.datetime | None = None) -> int:
    """Delete the heartbeat history received more than *days* ago; the number deleted."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    if isinstance(db, Engine):
        return retrying(db, lambda conn: purge_heartbeats(conn, days, moment))
    cutoff = format_time(moment - dt.timedelta(days=days))
    return db.execute(delete(heartbeats).where(heartbeats.c.received_at < cutoff)).rowcount


# -- the read side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    id: int
    device_id: str
    rule: str
    raised_at: str
    cleared_at: str | None
    detail: str
    post: str | None = None

    @property
    def open(self) -> bool:
        return self.cleared_at is None

    @property
    def family(self) -> str:
        return rule_family(self.rule)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device_id": self.device_id,
            "post": self.post,
            "rule": self.rule,
            "raised_at": self.raised_at,
            "cleared_at": self.cleared_at,
            "detail": self.detail,
        }


def _latest_site():  # type: ignore[no-untyped-def]
    """A kiosk's post: the site of its latest crossing (a correlated subquery per kiosk on the
    (device_id, seq) index; no other column of the crossing is read)."""
    c = crossings.c
    return (
        select(c.site)
        .where(c.device_id == devices.c.device_id)
        .order_by(desc(c.seq))
        .limit(1)
        .scalar_subquery()
    )


def device_posts(conn: Connection) -> dict[str, str | None]:
    """Every kiosk's post (None for a kiosk that has sent no crossing yet)."""
    query = select(devices.c.device_id, _latest_site().label("post"))
    return {row.device_id: row.post for row in conn.execute(query)}


def list_alerts(
    conn: Connection,
    *,
    open_only: bool = False,
    device_id: str | None = None,
    rule: str | None = None,
    post: str | None = None,
    limit: int | None = None,
    posts: Mapping[str, str | None] | None = None,
) -> list[Alert]:
    """Alerts, open ones first (newest raised first), then the cleared (newest cleared first).

    *rule* is a rule (``part-down:camera``) or a family (``part-down``); *post* keeps the
    kiosks at that post; *limit* bounds the cleared history (open alerts are always all).
    """
    posts = device_posts(conn) if posts is None else posts
    a = alerts.c
    conditions = []
    if device_id is not None:
        conditions.append(a.device_id == device_id)
    if rule is not None:
        conditions.append(or_(a.rule == rule, a.rule.like(f"{rule}:%")))
    if post is not None:
        conditions.append(a.device_id.in_([d for d, p in posts.items() if p == post]))
    found: list[Alert] = []
    for only_open in (True, False):
        query = select(a.id, a.device_id, a.rule, a.raised_at, a.cleared_at, a.detail).where(
            a.cleared_at.is_(None) if only_open else a.cleared_at.is_not(None), *conditions
        )
        if only_open:
            query = query.order_by(desc(a.raised_at), a.device_id, a.rule)
        else:
            if open_only:
                break
            query = query.order_by(desc(a.cleared_at), desc(a.id))
            if limit is not None:
                query = query.limit(limit)
        found += [
            Alert(**row._mapping, post=posts.get(row.device_id)) for row in conn.execute(query)
        ]
    return found


@dataclass
class DeviceStatus:
    """One kiosk as the fleet page shows it."""

    device_id: str
    post: str | None
    state: str | None
    since: str | None
    """When the console heard of the current availability (birth or offline)."""
    agent_version: str | None
    heartbeat_at: str | None
    heartbeat_age_s: float | None
    parts: dict[str, dict[str, Any]]
    outbox_depth: int | None
    outbox_oldest_s: float | None
    watchlist_version: int | None
    watchlist_age_s: float | None
    clock: dict[str, Any] | None
    clock_skew_s: float | None
    """Its clock minus the console's, as of its latest heartbeat (see ``clock-skew``)."""
    disk_free_percent: float | None
    disk_free_bytes: int | None
    alerts: list[Alert] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        found = {name: getattr(self, name) for name in self.__dataclass_fields__}
        found["alerts"] = [alert.as_dict() for alert in self.alerts]
        return found


def _status(row: Mapping[str, Any], now: dt.datetime) -> DeviceStatus:
    health: dict[str, Any] = {}
    if row["health"]:
        try:
            health = json.loads(row["health"])
        except ValueError:
            health = {}
    outbox = health.get("outbox") or {}
    watchlist = health.get("watchlist") or {}
    disk = health.get("disk") or {}
    total, free = disk.get("total_bytes"), disk.get("free_bytes")
    state = row["state"]
    since = row["last_offline_at"] if state == "offline" else row["last_birth_at"]
    return DeviceStatus(
        device_id=row["device_id"],
        post=row["post"],
        state=state,
        since=since or row["state_time"],
        agent_version=health.get("agent_version") or row["agent_version"],
        heartbeat_at=row["health_received_at"],
        heartbeat_age_s=_seconds_since(row["health_received_at"], now),
        parts=dict(sorted((health.get("components") or {}).items())),
        outbox_depth=outbox.get("depth"),
        outbox_oldest_s=outbox.get("oldest_age_s"),
        watchlist_version=watchlist.get("version"),
        watchlist_age_s=watchlist.get("age_s"),
        clock=health.get("clock"),
        clock_skew_s=clock_skew_s(health, row["health_received_at"]),
        disk_free_percent=100.0 * free / total if total and free is not None else None,
        disk_free_bytes=free,
    )


def fleet_status(
    conn: Connection,
    now: dt.datetime | None = None,
    *,
    device_id: str | None = None,
) -> list[DeviceStatus]:
    """Every kiosk (or the one *device_id*) with its post, availability, latest heartbeat's
    numbers and open alerts, by device id."""
    moment = now or dt.datetime.now(dt.UTC)
    query = select(devices, _latest_site().label("post")).order_by(devices.c.device_id)
    if device_id is not None:
        query = query.where(devices.c.device_id == device_id)
    found = [_status(row._mapping, moment) for row in conn.execute(query)]
    posts = {status.device_id: status.post for status in found}
    open_alerts = list_alerts(conn, open_only=True, device_id=device_id, posts=posts)
    by_device: dict[str, list[Alert]] = {}
    for alert in open_alerts:
        by_device.setdefault(alert.device_id, []).append(alert)
    for status in found:
        status.alerts = sorted(by_device.get(status.device_id, []), key=lambda a: a.rule)
    return found


@dataclass(frozen=True)
class HeartbeatPoint:
    time: dt.datetime
    outbox_depth: int | None
    outbox_oldest_s: float | None
    disk_free_percent: float | None
    watchlist_age_s: float | None
    clock_offset_ms: float | None
    clock_synced: bool | None


def heartbeat_series(
    conn: Connection, device_id: str, since: dt.datetime, until: dt.datetime | None = None
) -> list[HeartbeatPoint]:
    """A kiosk's heartbeats from *since* (by the kiosk's time), oldest first."""
    h = heartbeats.c
    query = (
        select(
            h.time,
            h.outbox_depth,
            h.outbox_oldest_s,
            h.disk_free_percent,
            h.watchlist_age_s,
            h.clock_offset_ms,
            h.clock_synced,
        )
        .where(and_(h.device_id == device_id, h.time >= format_time(since)))
        .order_by(h.time)
    )
    if until is not None:
        query = query.where(h.time <= format_time(until))
    points = []
    for row in conn.execute(query):
        moment = parse_time(row.time)
        if moment is None:
            continue
        points.append(
            HeartbeatPoint(
                moment,
                row.outbox_depth,
                row.outbox_oldest_s,
                row.disk_free_percent,
                row.watchlist_age_s,
                row.clock_offset_ms,
                None if row.clock_synced is None else bool(row.clock_synced),
            )
        )
    return points


def summarize(changes: Iterable[Change]) -> str:
    """``2 raised, 1 cleared`` for a log line."""
    changes = list(changes)
    raised = sum(1 for c in changes if c.kind == "raised")
    return f"{raised} raised, {len(changes) - raised} cleared"
