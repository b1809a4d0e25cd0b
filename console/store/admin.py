"""Looking after a console database: its schema version, upgrades, and online backups.

::

    schema_version("console.db")        # SchemaStatus(current='0002', head='0002', ...)
    upgrade("console.db")                # ['0002']: the revisions applied (none if current)
    backup("console.db", "copy.db")      # a consistent copy while ingest keeps writing

Every function raises :class:`~console.store.database.StoreError` with one line naming the
database and the problem.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from . import migrations
from .database import (
    BUSY_TIMEOUT_MS,
    StoreError,
    database_url,
    describe,
    make_engine,
    reason,
    schema_lock,
)


@dataclass(frozen=True)
class SchemaStatus:
    database: str
    """The database, as it may be shown (no password)."""
    current: str | None
    head: str
    kind: migrations.Kind
    """``empty``, ``legacy`` (release 0.1), ``behind``, ``current``, ``ahead`` or ``foreign``."""

    def describe(self) -> str:
        if self.kind == "current":
            return f"{self.database}: schema version {self.current} (current)"
        if self.kind == "legacy":
            return f"{self.database}: release 0.1 schema; run borderlane-console db upgrade"
        if self.kind == "behind":
            return (
                f"{self.database}: schema version {self.current}, {self.head} is current; "
                "run borderlane-console db upgrade"
            )
        if self.kind == "empty":
            return f"{self.database}: empty; made when first opened, or by db upgrade"
        return f"{self.database}: {migrations.State(self.kind, self.current).describe()}"


def schema_version(target: str | os.PathLike[str]) -> SchemaStatus:
    """Where *target*'s schema stands (reads only)."""
    engine = make_engine(target, readonly=True, must_exist=True)
    try:
        with engine.connect() as conn:
            state = migrations.state(conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read {describe(target)}: {reason(exc)}") from None
    finally:
        engine.dispose()
    return SchemaStatus(describe(target), state.revision, migrations.head(), state.kind)


def upgrade(target: str | os.PathLike[str]) -> list[str]:
    """Bring *target* to the newest schema in place, in one transaction; return the revisions
    applied. A release 0.1 database is recognised and upgraded too. Take a backup first: a
    release's upgrade cannot be undone by an older release."""
    engine = make_engine(target, must_exist=True)
    try:
        with engine.begin() as conn:
            schema_lock(conn)
            state = migrations.state(conn)
            if state.kind in ("ahead", "foreign"):
                raise StoreError(f"{describe(target)}: {state.describe()}")
            return migrations.upgrade(conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot upgrade {describe(target)}: {reason(exc)}") from None
    finally:
        engine.dispose()


def backup(target: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """A consistent copy of the SQLite console database *target* in the new file *out*
    (created 0600), taken online with SQLite's backup API while writers go on; returns its
    size in bytes. A PostgreSQL console is backed up with PostgreSQL's own tools (pg_dump, or
    pg_basebackup with WAL archiving): see the README."""
    url = database_url(target)
    if url.get_backend_name() != "sqlite":
        raise StoreError(
            f"{describe(target)} is PostgreSQL: back it up with pg_dump -Fc (or pg_basebackup)"
        )
    source_path = Path(url.database or "")
    out_path = Path(out)
    if not source_path.is_file():
        raise StoreError(f"no console database at {source_path}")
    if out_path.exists():
        raise StoreError(f"{out_path} exists: a backup never overwrites a file")
    try:
        # Made 0600 before SQLite writes to it: the copy holds the same personal data.
        os.close(os.open(out_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise StoreError(f"cannot create {out_path}: {exc.strerror or exc}") from None
    try:
        source = sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            source.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            copy = sqlite3.connect(out_path)
            try:
                # pages=-1: the whole database in one step, under one read transaction, so the
                # copy is one consistent moment even while ingest commits.
                source.backup(copy, pages=-1)
                copy.execute("PRAGMA journal_mode = wal")
            finally:
                copy.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        out_path.unlink(missing_ok=True)
        raise StoreError(f"cannot back up {source_path}: {exc}") from None
    return out_path.stat().st_size
