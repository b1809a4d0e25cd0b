"""The ``devices`` blueprint: the fleet and each kiosk, as JSON (``fleet.view``).

``GET /api/devices``              every kiosk with its availability and latest heartbeat
``GET /api/devices/<device_id>``  one kiosk: the same, plus record counts, quarantine count and
                                  its latest availability messages (applied or stale)
"""

from __future__ import annotations

from flask import Blueprint, abort, jsonify

from mqtt_schemas import TopicError, topics

from ..store import queries
from .access import require
from .db import db

bp = Blueprint("devices", __name__, url_prefix="/api/devices")


@bp.get("")
@require("fleet.view")
def fleet():
    return jsonify(devices=queries.fleet(db()))


@bp.get("/<device_id>")
@require("fleet.view")
def detail(device_id: str):
    try:
        topics.check_device_id(device_id)
    except TopicError as exc:
        abort(400, description=str(exc))
    found = queries.device(db(), device_id)
    if found is None:
        abort(404, description=f"no device {device_id!r}")
    return jsonify(found)
