"""What the console's blueprints share: the request's read-only database connection."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy import Connection, Engine

from ..store import open_database


def engine(app: Flask) -> Engine:
    """The app's read-only engine (one pool per app), opened on first use."""
    found = app.extensions.get("borderlane_db")
    if found is None:
        found = app.extensions["borderlane_db"] = open_database(
            app.config["DATABASE"], readonly=True
        )
    return found


def db() -> Connection:
    """The read-only connection of this request (opened on first use, closed at teardown)."""
    if "db" not in g:
        g.db = engine(current_app).connect()
    return g.db


def close_db(_error: BaseException | None = None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()
