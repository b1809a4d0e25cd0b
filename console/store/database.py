"""Where the console database is and how it is opened: SQLite (the embedded default) or
PostgreSQL (several console nodes against one database), through one SQLAlchemy code path.

::

    engine = open_database("console.db")                      # SQLite, created if missing
    engine = open_database("postgresql://u:pw@db.example/console")
    with engine.begin() as conn:                                # one transaction
        conn.execute(...)
    reader = open_database("console.db", readonly=True)       # must exist; never writes

*target* is a file path (SQLite) or a URL: ``sqlite:///path``, ``postgresql://…`` (psycopg 3 is
the driver whatever the URL names). The schema is versioned with Alembic
(:mod:`console.store.migrations`): a new database is brought to the newest version when first
opened for writing; a database of an earlier release is refused until ``borderlane-console db
upgrade`` (take a backup first); a database of a *newer* release is refused too.

SQLite: WAL, ``synchronous = FULL`` (a commit is on disk before a kiosk is acked and may purge
its copy), writers take the write lock up front (``BEGIN IMMEDIATE``) and wait up to 10 s for
it, so several ingest workers may share the file; a new file is created 0600.

PostgreSQL: READ COMMITTED; the writer retries a transaction that lost a deadlock or a
serialization race (:func:`retrying`). Schema creation takes an advisory lock, so workers
starting together on a new database create it once.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from . import migrations

log = logging.getLogger("borderlane.console.store")

BUSY_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_S = 10
_SCHEMA_LOCK = 0x626F_7264_6572  # pg_advisory_xact_lock key while creating or upgrading
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
T = TypeVar("T")


class StoreError(Exception):
    """The database is missing, unreachable, not a console database, or of another release."""


def database_url(target: str | os.PathLike[str]) -> URL:
    """The SQLAlchemy URL for *target*, a SQLite file path or a database URL."""
    text_target = os.fspath(target)
    if "://" not in text_target:
        return URL.create("sqlite", database=text_target)
    try:
        url = make_url(text_target)
    except ArgumentError:
        raise StoreError(f"{describe(target)} is not a database URL") from None
    if url.get_backend_name() == "postgresql" or url.drivername == "postgres":
        return url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database:
        return URL.create("sqlite", database=url.database)
    raise StoreError(
        f"{describe(target)}: the console stores in SQLite (a file path) or PostgreSQL "
        "(postgresql://…)"
    )


def describe(target: str | os.PathLike[str] | URL) -> str:
    """*target* as it may be shown: a path, or a URL with its password hidden."""
    if isinstance(target, URL):
        return target.render_as_string(hide_password=True)
    text_target = os.fspath(target)
    if "://" not in text_target:
        return text_target
    try:
        return make_url(text_target).render_as_string(hide_password=True)
    except ArgumentError:
        return text_target.split("://", 1)[0] + "://…"


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def open_database(target: str | os.PathLike[str], *, readonly: bool = False) -> Engine:
    """An engine for the console database at *target*; see the module docstring.

    For writing (the default) a missing SQLite file is created and a new database gets the
    newest schema. *readonly* opens an existing console database and never writes to it.
    Raises :class:`StoreError` with one line naming the database and the problem.
    """
    engine = make_engine(target, readonly=readonly)
    name = describe(engine.url) if not is_sqlite(engine) else describe(target)
    try:
        if readonly:
            _check_readable(engine, name)
        else:
            _prepare(engine, name)
    except StoreError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the console database {name}: {reason(exc)}") from None
    return engine


def make_engine(
    target: str | os.PathLike[str], *, readonly: bool = False, must_exist: bool = False
) -> Engine:
    """The engine for *target*, configured as the module docstring says, without looking at
    the schema (:func:`open_database` does). *must_exist*: refuse a missing SQLite file
    instead of creating it."""
    url = database_url(target)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if must_exist and not path.is_file():
            raise StoreError(f"no console database at {path}")
        return _sqlite_engine(path, readonly)
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "borderlane-console",
            # No JIT: the console's queries are short, but listings with a LIMIT that stops
            # early look expensive to the planner, which then spent ~150 ms compiling a query
            # that runs in 5. Set once for every connection, not per query.
            "options": "-c jit=off",
        },
    )


def schema_lock(conn: Connection) -> None:
    """Serialise schema creation and upgrades between processes (PostgreSQL: an advisory lock
    held to the end of the transaction; SQLite: the write lock ``BEGIN IMMEDIATE`` took)."""
    if not is_sqlite(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})


def reason(exc: BaseException) -> str:
    """A database error in one line, without the SQL and parameters SQLAlchemy appends."""
    original = getattr(exc, "orig", None) or exc
    first = str(original).strip().splitlines()
    return first[0] if first else type(original).__name__


def is_disconnect(exc: BaseException) -> bool:
    """Whether *exc* says the database went away (worth retrying later), not a bad request."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        return getattr(exc.orig, "sqlstate", None) not in _RETRYABLE_SQLSTATES
    return False


def retrying(engine: Engine, work: Callable[[Connection], T], attempts: int = 5) -> T:
    """Run *work* in one transaction, again when PostgreSQL ends it for a deadlock or a
    serialization race with another worker (the whole transaction is redone; *work* must
    compute everything from what it reads inside)."""
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if sqlstate not in _RETRYABLE_SQLSTATES or attempt == attempts:
                raise
            log.info("transaction retried (%s, attempt %d)", sqlstate, attempt)
            time.sleep(0.005 * attempt)
    raise AssertionError("unreachable")


# -- SQLite -------------------------------------------------------------------------------


def _sqlite_engine(path: Path, readonly: bool) -> Engine:
    if readonly:
        if not path.is_file():
            raise StoreError(f"no console database at {path}")
        uri = f"{path.resolve().as_uri()}?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)

    else:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Created 0600 before SQLite opens it: the WAL and shared-memory files take the
            # database file's mode, and the records are personal data.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StoreError(
                f"cannot open the console database {path}: {exc.strerror or exc}"
            ) from None

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(path, check_same_thread=False, isolation_level=None)

    # QueuePool, not what "sqlite://" picks (SingletonThreadPool: one connection per thread, at
    # most five, and a sixth thread closes a connection another thread is still using — the web
    # console runs eight). Connections are made with check_same_thread=False for this.
    engine = create_engine("sqlite://", creator=connect, poolclass=QueuePool, pool_size=8)

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            _enable_wal(dbapi_connection)
            dbapi_connection.execute("PRAGMA synchronous = FULL")

    # pysqlite's own transaction handling is off (isolation_level=None); SQLAlchemy's begin
    # emits ours. A writer asks for the write lock first: a transaction that reads and then
    # needs to write gets "database is locked" at once, without waiting, when another writer
    # got in between (SQLite will not wait on a possible deadlock).
    begin = "BEGIN" if readonly else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def do_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch a database to WAL, waiting out other openers as the busy timeout would.

    SQLite answers a journal-mode change that meets another connection's lock with "database
    is locked" at once, without calling the busy handler, so the wait is done here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = wal")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


# -- schema -------------------------------------------------------------------------------


def _prepare(engine: Engine, name: str) -> None:
    """Bring a new database to the newest schema; refuse one of another release."""
    with engine.begin() as conn:
        schema_lock(conn)
        state = migrations.state(conn)
        if state.kind == "empty":
            migrations.upgrade(conn)
            log.info("created the console schema in %s (version %s)", name, migrations.head())
        elif state.kind == "legacy":
            raise StoreError(
                f"{name} was made by an earlier release: back it up, then run "
                f"borderlane-console db upgrade --db {name}"
            )
        elif state.kind == "behind":
            raise StoreError(
                f"{name} has schema version {state.revision}, this release needs "
                f"{migrations.head()}: back it up, then run borderlane-console db upgrade"
            )
        elif state.kind in ("ahead", "foreign"):
            raise StoreError(f"{name}: {state.describe()}")


def _check_readable(engine: Engine, name: str) -> None:
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    if "crossings" not in tables or "devices" not in tables:
        raise StoreError(f"{name} is not a console database (run borderlane-console ingest)")
