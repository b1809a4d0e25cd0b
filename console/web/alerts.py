"""The ``alerts`` blueprint: the fleet's alerts, open ones first, then the history.

``GET /alerts``   ``?post=SITE`` (kiosks at that post), ``?rule=RULE`` (a rule such as
                  ``offline`` or ``part-down:camera``, or a family: ``part-down``),
                  ``?device=DEVICE_ID``, ``?page=N`` (the cleared history, 100 a page)

The rules and their thresholds: :mod:`console.alerts`; who raises and clears them:
``borderlane-console alerts watch``.
"""

from __future__ import annotations

import dataclasses

from flask import Blueprint, render_template, request

from mqtt_schemas import TopicError, topics
from mqtt_schemas.identifiers import NAME

from .. import alerts as alertsmod
from .access import require
from .db import db, settings
from .fleet import _now, _post_parameter, bad_parameter

bp = Blueprint("alerts", __name__)

PAGE_SIZE = 100


def _rule_parameter() -> str | None:
    rule = request.args.get("rule") or None
    if rule is None:
        return None
    family, _, part = rule.partition(":")
    if family not in alertsmod.RULES or (
        part and (family != alertsmod.PART_DOWN or not NAME.fullmatch(part))
    ):
        bad_parameter("rule", f"one of {', '.join(alertsmod.RULES)} (or part-down:PART)")
    return rule


def _device_parameter() -> str | None:
    device_id = request.args.get("device") or None
    if device_id is not None:
        try:
            topics.check_device_id(device_id)
        except TopicError as exc:
            bad_parameter("device", str(exc))
    return device_id


def _page_parameter() -> int:
    text = request.args.get("page") or "1"
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        bad_parameter("page", "a page number from 1")
    return int(text)


@bp.get("/alerts")
@require("alerts.view")
def index():
    post = _post_parameter()
    rule = _rule_parameter()
    device_id = _device_parameter()
    page = _page_parameter()
    conn = db()
    posts = alertsmod.device_posts(conn)
    found = alertsmod.list_alerts(
        conn,
        device_id=device_id,
        rule=rule,
        post=post,
        limit=page * PAGE_SIZE + 1,
        posts=posts,
    )
    open_alerts = [a for a in found if a.open]
    history = [a for a in found if not a.open][(page - 1) * PAGE_SIZE :]
    more = len(history) > PAGE_SIZE
    return render_template(
        "alerts.html",
        open_alerts=open_alerts,
        history=history[:PAGE_SIZE],
        more=more,
        page=page,
        post=post,
        rule=rule,
        device=device_id,
        posts=sorted({p for p in posts.values() if p}),
        rules=list(alertsmod.RULES),
        limits=dataclasses.asdict(settings().alerts),
        now=_now(),
    )
