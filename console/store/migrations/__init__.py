"""The console schema's versions (Alembic revisions in ``versions/``), and how a database
is told apart and brought up to date.

A release that changes the schema adds a revision: ``versions/NNNN_what.py`` with
``revision = "NNNN"``, ``down_revision`` the one before, and ``upgrade()`` written with
Alembic's operations so it runs on SQLite and PostgreSQL alike (``op.batch_alter_table`` for
SQLite's limited ALTER TABLE), and :mod:`console.store.schema` changed to match: a test
compares a migrated database with the schema module on both backends.

Revision ``0001`` is release 0.1's schema, which had no version table: its databases are
recognised by their tables (:func:`state` says ``legacy``) and stamped ``0001`` before upgrading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

LEGACY_REVISION = "0001"
_RELEASE_0_1_TABLES = {"crossings", "devices", "quarantine"}

Kind = Literal["empty", "legacy", "behind", "current", "ahead", "foreign"]


def scripts() -> ScriptDirectory:
    return ScriptDirectory(str(Path(__file__).parent))


def head() -> str:
    """The newest schema version this release knows."""
    found = scripts().get_current_head()
    assert found is not None, "the console has at least one schema revision"
    return found


@dataclass(frozen=True)
class State:
    kind: Kind
    revision: str | None

    def describe(self) -> str:
        if self.kind == "ahead":
            return (
                f"schema version {self.revision} is newer than this release knows "
                f"({head()}): run the newer release"
            )
        if self.kind == "foreign":
            return "not a console database (it has other tables and no console schema version)"
        return f"schema version {self.revision or 'none'} ({self.kind})"


def state(conn: Connection) -> State:
    """What the database on *conn* is, schema-wise."""
    tables = set(inspect(conn).get_table_names())
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None:
        if tables >= _RELEASE_0_1_TABLES:
            return State("legacy", None)
        if tables - {"alembic_version"}:
            return State("foreign", None)
        return State("empty", None)
    known = {script.revision for script in scripts().walk_revisions()}
    if revision not in known:
        return State("ahead", revision)
    return State("current" if revision == head() else "behind", revision)


def upgrade(conn: Connection, target: str = "head") -> list[str]:
    """Apply the revisions from the database's version to *target*, inside the caller's
    transaction (both backends run DDL transactionally here); return the revisions applied.

    A release 0.1 database is stamped ``0001`` first. The caller holds the schema lock.
    """
    directory = scripts()
    applied: list[str] = []
    if state(conn).kind == "legacy":
        MigrationContext.configure(conn).stamp(directory, LEGACY_REVISION)

    def steps(current, _context):
        found = directory._upgrade_revs(target, current)
        applied.extend(step.revision.revision for step in found)
        return found

    context = MigrationContext.configure(conn, opts={"fn": steps, "transactional_ddl": True})
    with Operations.context(context):
        context.run_migrations()
    return applied
