"""``borderlane-console db``: the console database's schema version, upgrades and backups."""

from __future__ import annotations

from pathlib import Path

import click

from ..store import StoreError, admin
from .options import db_option, one_line_errors


@click.group("db")
def db_group() -> None:
    """Look after the console database: schema version, upgrade, backup."""


@db_group.command("status")
@db_option("must exist")
@one_line_errors(StoreError)
def status_command(db: str) -> None:
    """Print the database's schema version and whether it needs an upgrade (exit 1 if so).

    \b
    Examples:
      borderlane-console db status --db console.db
      BORDERLANE_CONSOLE_DB=postgresql://console@db.example/console borderlane-console db status
    """
    status = admin.schema_version(db)
    click.echo(status.describe())
    if status.kind in ("legacy", "behind", "ahead", "foreign"):
        raise SystemExit(1)


@db_group.command("upgrade")
@db_option("must exist")
@one_line_errors(StoreError)
def upgrade_command(db: str) -> None:
    """Bring a console database made by an earlier release to this release's schema, in
    place and in one transaction. Stop the console's workers and take a backup first.

    \b
    Examples:
      borderlane-console db backup --db console.db --out console-before-upgrade.db
      borderlane-console db upgrade --db console.db
    """
    applied = admin.upgrade(db)
    if applied:
        click.echo(f"upgraded to schema version {applied[-1]} (applied {', '.join(applied)})")
    else:
        click.echo("already at the current schema version")


@db_group.command("backup")
@db_option("must exist")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The copy to write (a new file, created 0600).",
)
@one_line_errors(StoreError)
def backup_command(db: str, out: Path) -> None:
    """Copy a SQLite console database consistently while it is in use (SQLite's backup API,
    not a file copy, which could catch a half-written transaction). For PostgreSQL use
    pg_dump (see the README).

    \b
    Example:
      borderlane-console db backup --db /var/lib/borderlane/console.db \\
          --out /backup/console-$(date +%F).db
    """
    size = admin.backup(db, out)
    click.echo(f"backed up to {out} ({size} bytes)", err=True)
