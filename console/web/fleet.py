"""The ``fleet`` blueprint: the fleet dashboard and each kiosk's page (technicians, admins).

``GET /fleet``                        every kiosk: availability and since when, heartbeat age,
                                      each part's state, outbox depth and oldest record's age,
                                      watchlist version and age, clock, disk, agent version, open
                                      alerts. ``?post=SITE&state=online|offline`` filter,
                                      ``?sort=COLUMN&order=asc|desc`` sort.
``GET /fleet/<device_id>``            one kiosk: the same, its heartbeat history as charts
                                      (outbox depth, oldest record's age, disk free, watchlist
                                      age over the last 24 h), its alerts' history, the answers
                                      to the latest commands; ``?command=ID`` shows that one's
``POST /fleet/<device_id>/commands``  send ``command`` (ping, diagnostics, watchlist-resync,
                                      config-reload, agent-restart) to the kiosk; waits a few
                                      seconds for its answer, then shows the page again

Commands need the broker: ``config['BROKER']`` is a :class:`console.connection.Endpoint` (or a
mapping of its fields) with the console's TLS identity; ``config['BROKER_NODE_ID']`` the node
id stamped on commands (default: the certificate's common name + ``-web``);
``config['COMMAND_WAIT_S']`` how long a request waits for the answer (default 5 s). Without a
broker the page shows the commands as unavailable, with the reason. An answer that comes after
the wait is stored by the ingest workers and shown when the page is reloaded (it reloads itself
while it waits).

Nothing here reads a traveller: the only crossing column read is a kiosk's latest post.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import desc, select

from mqtt_schemas import TopicError, topics
from mqtt_schemas.envelope import format_time
from mqtt_schemas.identifiers import NAME

from .. import alerts as alertsmod
from .. import commands, connection
from ..store.schema import command_results
from . import charts
from .access import allowed, require
from .db import db, now, settings

bp = Blueprint("fleet", __name__)

COMMANDS: dict[str, str] = {
    "ping": "Ping",
    "diagnostics": "Diagnostics",
    "watchlist-resync": "Watchlist resync",
    "config-reload": "Reload configuration",
    "agent-restart": "Restart the agent",
}
"""The commands the page offers, with their button labels."""
COMMAND_EXPIRY_S = 300
"""A command that reaches a kiosk later than this is not run (an agent restart queued while
the kiosk was offline must not fire hours later)."""
DEFAULT_WAIT_S = 5.0
CHART_HOURS = 24
_ANSWERS_KEPT = 200

SORTS: dict[str, Callable[[alertsmod.DeviceStatus], Any]] = {
    "device": lambda s: s.device_id,
    "post": lambda s: s.post,
    "state": lambda s: s.state,
    "since": lambda s: s.since,
    "heartbeat": lambda s: s.heartbeat_age_s,
    "outbox": lambda s: s.outbox_depth,
    "oldest": lambda s: s.outbox_oldest_s,
    "watchlist": lambda s: s.watchlist_version,
    "watchlist_age": lambda s: s.watchlist_age_s,
    "clock": lambda s: bool(s.clock and s.clock.get("synced")),
    "disk": lambda s: s.disk_free_percent,
    "agent": lambda s: s.agent_version,
    "alerts": lambda s: len(s.alerts),
}
STATES = ("online", "offline")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def bad_parameter(name: str, why: str) -> None:
    abort(400, description=f"parameter {name!r}: {why}")


def _choice(name: str, choices: Mapping[str, Any] | tuple[str, ...], default: str | None) -> Any:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if value not in choices:
        bad_parameter(name, f"one of {', '.join(choices)}")
    return value


def _post_parameter() -> str | None:
    post = request.args.get("post") or None
    if post is not None and not NAME.fullmatch(post):
        bad_parameter("post", "a site id such as bz-santa-elena")
    return post


def _now() -> dt.datetime:
    return dt.datetime.fromtimestamp(now(), dt.UTC)


def checked_device_id(device_id: str) -> str:
    try:
        return topics.check_device_id(device_id)
    except TopicError as exc:
        abort(400, description=f"device id: {exc}")


def _sorted(found: list[alertsmod.DeviceStatus], key: str, order: str) -> list:
    get = SORTS[key]
    # Unknown values (no heartbeat yet) last, whichever the order.
    known = [s for s in found if get(s) is not None]
    unknown = [s for s in found if get(s) is None]
    known.sort(key=lambda s: (get(s), s.device_id), reverse=order == "desc")
    return known + unknown


@bp.get("/fleet")
@require("fleet.view")
def index():
    post = _post_parameter()
    state = _choice("state", STATES, None)
    sort = _choice("sort", SORTS, "device")
    order = _choice("order", ("asc", "desc"), "asc")
    moment = _now()
    everything = alertsmod.fleet_status(db(), moment)
    shown = [
        s
        for s in everything
        if (post is None or s.post == post) and (state is None or s.state == state)
    ]
    return render_template(
        "fleet.html",
        devices=_sorted(shown, sort, order),
        total=len(everything),
        posts=sorted({s.post for s in everything if s.post}),
        post=post,
        state=state,
        sort=sort,
        order=order,
        counts={
            "online": sum(1 for s in shown if s.state == "online"),
            "offline": sum(1 for s in shown if s.state == "offline"),
            "alerts": sum(len(s.alerts) for s in shown),
        },
        limits=settings().alerts,
        age=alertsmod.describe_age,
        now=format_time(moment),
    )


@dataclass(frozen=True)
class CommandAnswer:
    command_id: str
    name: str | None
    status: str
    time: str | None
    result: Any = None
    error: Mapping[str, Any] | None = None

    @property
    def text(self) -> str:
        if self.status == "ok":
            return json.dumps(self.result, indent=2, ensure_ascii=False, sort_keys=True)
        if self.error:
            return f"{self.error.get('code')}: {self.error.get('message')}"
        return self.status

    @classmethod
    def of(cls, payload: Mapping[str, Any], name: str | None = None) -> CommandAnswer:
        return cls(
            payload["command_id"],
            name,
            payload["status"],
            payload.get("time"),
            payload.get("result"),
            payload.get("error"),
        )


def _recent_answers(device_id: str, limit: int = 10) -> list[CommandAnswer]:
    c = command_results.c
    query = (
        select(c.payload)
        .where(c.device_id == device_id)
        .order_by(desc(c.received_at), desc(c.id))
        .limit(limit)
    )
    return [CommandAnswer.of(json.loads(payload)) for payload in db().execute(query).scalars()]


def _stored_answer(command_id: str) -> CommandAnswer | None:
    query = select(command_results.c.payload).where(command_results.c.command_id == command_id)
    payload = db().execute(query.limit(1)).scalar()
    return CommandAnswer.of(json.loads(payload)) if payload else None


@bp.get("/fleet/<device_id>")
@require("fleet.view")
def device(device_id: str):
    device_id = checked_device_id(device_id)
    command_id = request.args.get("command") or None
    if command_id is not None and not _UUID.fullmatch(command_id):
        bad_parameter("command", "a command id")
    name = _choice("name", COMMANDS, None)
    moment = _now()
    found = alertsmod.fleet_status(db(), moment, device_id=device_id)
    if not found:
        abort(404, description=f"no kiosk {device_id!r}")
    status = found[0]
    limits = settings().alerts
    start = moment - dt.timedelta(hours=CHART_HOURS)
    series = alertsmod.heartbeat_series(db(), device_id, start)

    def points(get: Callable[[alertsmod.HeartbeatPoint], float | None], scale: float = 1.0):
        return [(p.time, None if get(p) is None else get(p) / scale) for p in series]

    chart = functools.partial(charts.line_chart, start=start, end=moment)
    pictures = [
        chart(points(lambda p: p.outbox_depth), title="Outbox depth", unit="records"),
        chart(
            points(lambda p: p.outbox_oldest_s, 60),
            title="Oldest unacked record",
            unit="min",
            threshold=limits.outbox_oldest_minutes,
        ),
        chart(
            points(lambda p: p.disk_free_percent),
            title="Disk free",
            unit="%",
            y_max=100,
            threshold=limits.disk_free_percent,
        ),
        chart(
            points(lambda p: p.watchlist_age_s, 3600),
            title="Watchlist age",
            unit="h",
            threshold=limits.watchlist_max_age_hours,
        ),
    ]
    answer = None
    if command_id is not None:
        answer = _answers(current_app).get(command_id) or _stored_answer(command_id)
        if answer is not None and answer.name is None:
            answer = CommandAnswer(**{**answer.__dict__, "name": name})
    unavailable = _commands_unavailable()
    return render_template(
        "device.html",
        device=status,
        charts=pictures,
        heartbeats=len(series),
        hours=CHART_HOURS,
        history=alertsmod.list_alerts(
            db(), device_id=device_id, limit=100, posts={device_id: status.post}
        ),
        commands=COMMANDS,
        may_command=allowed("device.command"),
        unavailable=unavailable,
        command_id=command_id,
        command_name=name,
        answer=answer,
        answers=_recent_answers(device_id),
        limits=limits,
        age=alertsmod.describe_age,
        now=format_time(moment),
    )


@bp.post("/fleet/<device_id>/commands")
@require("device.command")
def send(device_id: str):
    device_id = checked_device_id(device_id)
    name = request.form.get("command", "")
    if name not in COMMANDS:
        bad_parameter("command", f"one of {', '.join(COMMANDS)}")
    if not alertsmod.fleet_status(db(), _now(), device_id=device_id):
        abort(404, description=f"no kiosk {device_id!r}")
    unavailable = _commands_unavailable()
    if unavailable:
        abort(503, description=f"commands are unavailable: {unavailable}")
    command_settings = _command_settings()
    wait_s = float(current_app.config.get("COMMAND_WAIT_S", DEFAULT_WAIT_S))
    try:
        payload = asyncio.run(
            commands.send_command(
                command_settings,
                device_id,
                name,
                {},
                expires_in_s=COMMAND_EXPIRY_S,
                wait_s=wait_s,
            )
        )
    except commands.NoAnswer as exc:
        current_app.logger.info("%s", exc)
        command_id = exc.command_id
    except commands.CommandsError as exc:
        abort(502, description=f"the command was not sent: {exc}")
    else:
        command_id = payload["command_id"]
        _answers(current_app).put(command_id, CommandAnswer.of(payload, name))
    current_app.logger.info("command %s (%s) sent to %s from the web", command_id, name, device_id)
    return redirect(
        url_for("fleet.device", device_id=device_id, command=command_id, name=name), code=303
    )


# -- commands' plumbing -------------------------------------------------------------------------


def broker_endpoint() -> connection.Endpoint | None:
    """The web console's broker settings (``config['BROKER']``), or None without them."""
    found = current_app.config.get("BROKER")
    if found is None or isinstance(found, connection.Endpoint):
        return found
    if isinstance(found, Mapping):
        host, port = found.get("host"), found.get("port", 8883)
        return connection.Endpoint(
            str(host),
            int(port),
            Path(found["ca_file"]),
            Path(found["cert_file"]),
            Path(found["key_file"]),
        )
    raise ValueError("BROKER must be an Endpoint or a mapping of its fields")


def _command_settings() -> commands.CommandSettings:
    endpoint = broker_endpoint()
    assert endpoint is not None
    node_id = (
        current_app.config.get("BROKER_NODE_ID")
        or (connection.common_name(endpoint.cert_file) + "-web")[:64]
    )
    return commands.CommandSettings(endpoint, topics.check_device_id(node_id))


def broker_unavailable(instead: str) -> str | None:
    """Why the web console cannot reach the broker as the console, or None when it can;
    *instead* names the command line that does the same without the web console."""
    try:
        endpoint = broker_endpoint()
    except (KeyError, TypeError, ValueError) as exc:
        return f"the web console's broker settings (BROKER) are not usable: {exc}"
    if endpoint is None:
        return f"the web console was started without broker settings (BROKER); use {instead}"
    for path in (endpoint.ca_file, endpoint.cert_file, endpoint.key_file):
        if not Path(path).is_file():
            return f"the broker settings name {path}, which is not there"
    return None


def _commands_unavailable() -> str | None:
    """Why the page cannot send commands, or None when it can."""
    unavailable = broker_unavailable("borderlane-console command send")
    if unavailable:
        return unavailable
    try:
        _command_settings()
    except (OSError, ValueError, TopicError) as exc:
        return f"the web console's certificate makes no node id: {exc}"
    return None


class _Answers:
    """The latest answers this process received while a request waited, by command id: shown
    at once, before (or without) the ingest workers storing them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: OrderedDict[str, CommandAnswer] = OrderedDict()

    def put(self, command_id: str, answer: CommandAnswer) -> None:
        with self._lock:
            self._found[command_id] = answer
            while len(self._found) > _ANSWERS_KEPT:
                self._found.popitem(last=False)

    def get(self, command_id: str) -> CommandAnswer | None:
        with self._lock:
            return self._found.get(command_id)


def _answers(app: Any) -> _Answers:
    return app.extensions.setdefault("borderlane_command_answers", _Answers())
