"""What the console's blueprints share: the request's read-only database connection, the app's
writer engine for the few writes the web makes (logins, accounts, audit entries), the app's
settings (``console.toml``) and its clock.

::

    rows = queries.fleet(db())             # reads: a read-only connection per request
    with writer().begin() as conn:         # writes: one transaction, committed at the block's end
        conn.execute(...)

Reads go through an engine that cannot write (SQLite ``mode=ro``; nothing of the web's reads
needs more), so a page can never take SQLite's write lock from the ingest workers. The writer is
opened after the reader has checked the database is there: the web never creates a console
database (``borderlane-console users add`` or the ingest worker does).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, current_app, g
from sqlalchemy import Connection, Engine

from ..settings import Settings
from ..store import open_database

_READER = "borderlane_db"
_WRITER = "borderlane_writer"
SETTINGS_KEY = "borderlane_settings"


def settings() -> Settings:
    """The app's settings (``console.toml`` in the instance folder, or ``config['SETTINGS']``)."""
    return current_app.extensions[SETTINGS_KEY]


def now() -> float:
    """Seconds since the epoch by the app's clock (``config['CLOCK']``, a callable; tests move
    it to expire sessions without waiting)."""
    clock: Callable[[], float] = current_app.config.get("CLOCK") or time.time
    return clock()


def engine(app: Flask) -> Engine:
    """The app's read-only engine (one pool per app), opened on first use."""
    found = app.extensions.get(_READER)
    if found is None:
        found = app.extensions[_READER] = open_database(app.config["DATABASE"], readonly=True)
    return found


def writer_engine(app: Flask) -> Engine:
    """The app's writing engine (one pool per app), opened on first use; see the module
    docstring for why the reader is opened first."""
    found = app.extensions.get(_WRITER)
    if found is None:
        engine(app)
        found = app.extensions[_WRITER] = open_database(app.config["DATABASE"])
    return found


def db() -> Connection:
    """The read-only connection of this request (opened on first use, closed at teardown)."""
    if "db" not in g:
        g.db = engine(current_app).connect()
    return g.db


def writer() -> Engine:
    """The writing engine: ``with writer().begin() as conn:`` is one committed transaction.
    Keep it short (SQLite has one writer at a time, shared with the ingest workers)."""
    return writer_engine(current_app)


def close_db(_error: BaseException | None = None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def dispose(app: Flask) -> None:
    """Close the app's pools (a test's or a server's end)."""
    for key in (_READER, _WRITER):
        found = app.extensions.pop(key, None)
        if found is not None:
            found.dispose()
