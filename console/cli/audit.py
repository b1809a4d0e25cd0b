"""``borderlane-console audit``: check the audit log's chain, purge by retention, list entries.

A thin layer over :mod:`console.audit`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from sqlalchemy import Engine, inspect

from mqtt_schemas.envelope import format_time

from .. import audit
from ..settings import SettingsError, load_settings
from ..store import StoreError, describe, open_database
from .options import db_option, instance_option, instance_settings, one_line_errors

SETTINGS_ENV = "BORDERLANE_CONSOLE_SETTINGS"


@click.group("audit")
def audit_group() -> None:
    """The audit log of every read of personal data: verify its hash chain, purge entries
    older than the retention period, list entries.

    \b
    Examples:
      borderlane-console audit verify --db console.db
      borderlane-console audit purge --db console.db --settings console.toml
      borderlane-console audit list --db console.db --user alice --since 2026-11-01
    """


def _reader(db: str) -> Engine:
    """A read-only engine on the console database, which must have the audit log."""
    engine = open_database(db, readonly=True)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
    except BaseException:
        engine.dispose()
        raise
    if "audit_log" not in tables:
        engine.dispose()
        raise StoreError(
            f"{describe(db)} has no audit log yet: back it up, then run "
            "borderlane-console db upgrade"
        )
    return engine


@audit_group.command("verify")
@db_option("must exist")
@one_line_errors(StoreError)
def verify_command(db: str) -> None:
    """Walk the audit log's hash chain and recompute every hash. Prints "audit log intact: N
    entries from seq A to B" with the last hash (exit 0), or one line naming the first broken
    entry and what is wrong with it: its hash (edited), its prev_hash, or a gap in seq (exit 1).

    Keep the last hash somewhere the database's users cannot write: a chain rewritten from
    some entry on, or cut short, verifies again; a head that no longer matches shows it.

    \b
    Examples:
      borderlane-console audit verify --db console.db
      BORDERLANE_CONSOLE_DB=postgresql://auditor@db.example/console borderlane-console audit verify
    """
    engine = _reader(db)
    try:
        with audit.reading(engine) as conn:
            result = audit.verify(conn)
    finally:
        engine.dispose()
    if not result.intact:
        click.echo(result.describe())
        raise SystemExit(1)
    head = f", last hash {result.last_hash}" if result.entries else ""
    click.echo(result.describe() + head)


@audit_group.command("purge")
@db_option("must exist")
@click.option(
    "--older-than-days",
    "days",
    type=click.IntRange(min=1),
    metavar="DAYS",
    help="Delete entries older than this many days (default: [audit] retention_days in "
    "--settings or the --instance folder's console.toml, else 730).",
)
@click.option(
    "--settings",
    "settings_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=SETTINGS_ENV,
    show_envvar=True,
    help="console.toml giving [audit] retention_days.",
)
@instance_option("[audit] retention_days")
@one_line_errors(StoreError, SettingsError, audit.AuditError)
def purge_command(
    db: str, days: int | None, settings_path: Path | None, instance: Path | None
) -> None:
    """Delete the audit entries older than the retention period, in one transaction; the
    last one deleted becomes the chain's anchor, so `audit verify` still passes. What is
    deleted is verified first: a broken chain is not purged (exit 1, naming the break).

    \b
    Examples:
      borderlane-console audit purge --db console.db
      borderlane-console audit purge --db console.db --settings /etc/borderlane/console.toml
      borderlane-console audit purge --db console.db --instance /var/lib/borderlane/web
      borderlane-console audit purge --db console.db --older-than-days 365
    """
    if days is None:
        if settings_path is not None:
            if not settings_path.is_file():
                raise SettingsError(f"{settings_path}: no such settings file")
            days = load_settings(settings_path).audit.retention_days
        else:  # the instance folder's console.toml when there is one, else the default
            days = instance_settings(instance).audit.retention_days
    cutoff = format_time(dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
    _reader(db).dispose()  # refuses a missing database, or one without the audit log
    engine = open_database(db)
    try:
        with engine.begin() as conn:
            deleted = audit.purge(conn, cutoff)
    finally:
        engine.dispose()
    noun = "entry" if deleted == 1 else "entries"
    click.echo(f"purged {deleted} audit {noun} older than {cutoff} ({days} days)")


@audit_group.command("list")
@db_option("must exist")
@click.option("--user", "username", help="Only this user's entries (a username).")
@click.option("--action", help="Only this action (crossings.search, audit.view…).")
@click.option("--since", metavar="TIME", help="From this UTC time or date on (ISO 8601).")
@click.option("--until", metavar="TIME", help="Before this UTC time or date (ISO 8601).")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(min=0),
    help="At most this many entries, newest first (0: every one).",
)
@one_line_errors(StoreError, audit.AuditError)
def list_command(
    db: str,
    username: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    limit: int,
) -> None:
    """Print audit entries newest first, one JSON object a line: seq, at, who (user_id,
    username, agency, role, level), action, purpose, purpose_text, query, records, address,
    prev_hash, hash.

    \b
    Examples:
      borderlane-console audit list --db console.db --limit 20
      borderlane-console audit list --db console.db --user alice --since 2026-11-01
      borderlane-console audit list --db console.db --action crossings.search --limit 0 \\
          > searches.jsonl
    """
    engine = _reader(db)
    try:
        with engine.connect() as conn:
            for entry in audit.entries(
                conn,
                username=username,
                action=action,
                since=since,
                until=until,
                limit=limit or None,
            ):
                click.echo(json.dumps(entry.as_dict(), ensure_ascii=False))
    finally:
        engine.dispose()
