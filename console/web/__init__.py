"""The console's web application: ``create_app(config)`` with one blueprint per area.

::

    app = create_app({"DATABASE": "/var/lib/borderlane/console.db"})

The app only reads the database (the ingest worker writes it), through a read-only connection
per request. Errors are JSON: ``{"error": "..."}`` with the HTTP status. Access control comes
with the UI; until then serve it on loopback only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from ..store import StoreError, describe
from ..store.database import reason
from . import crossings, db, devices


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A console app; *config* must give ``DATABASE``, the path of the console database."""
    app = Flask(__name__)
    app.config.update(config or {})
    if not app.config.get("DATABASE"):
        raise ValueError("create_app needs config['DATABASE'], the console database path")
    app.json.sort_keys = False
    app.register_blueprint(devices.bp)
    app.register_blueprint(crossings.bp)
    app.teardown_appcontext(db.close_db)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify(error=exc.description), exc.code

    @app.errorhandler(StoreError)
    def store_error(exc: StoreError):
        return jsonify(error=str(exc)), 503

    @app.errorhandler(OperationalError)
    def database_away(exc: OperationalError):
        # The database went away (or is busy) after the app opened it: one line, as at start.
        message = f"console database {describe(app.config['DATABASE'])}: {reason(exc)}"
        app.logger.warning("%s", message)
        return jsonify(error=message), 503

    return app
