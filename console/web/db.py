"""What the console's blueprints share: the request's read-only database connection."""

from __future__ import annotations

import sqlite3

from flask import current_app, g

from ..store import connect_readonly


def db() -> sqlite3.Connection:
    """The read-only connection of this request (opened on first use, closed at teardown)."""
    if "db" not in g:
        g.db = connect_readonly(current_app.config["DATABASE"])
    return g.db


def close_db(_error: BaseException | None = None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()
