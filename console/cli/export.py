"""``borderlane-console export``: what the console stored, as JSON Lines or CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..store import StoreError, export, open_database
from .options import db_option, one_line_errors


@click.group("export")
def export_group() -> None:
    """Export what the console stored."""


@export_group.command("crossings")
@db_option("must exist")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(export.FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: each record as the kiosk sent it; csv: the main fields as columns.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Output file (default: standard output).",
)
@one_line_errors(StoreError)
def export_crossings(db: str, fmt: export.Format, out: Path | None) -> None:
    """Write every stored crossing, ordered by the kiosk's time.

    \b
    Examples:
      borderlane-console export crossings --db console.db > crossings.jsonl
      borderlane-console export crossings --db console.db --format csv --out crossings.csv
      borderlane-console export crossings --db postgresql://console@db.example/console
    """
    engine = open_database(db, readonly=True)
    try:
        with engine.connect() as conn:
            if out is None:
                count = export.export_crossings(conn, fmt, sys.stdout)
            else:
                try:
                    with export.open_private(out) as handle:
                        count = export.export_crossings(conn, fmt, handle)
                except OSError as exc:
                    raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    finally:
        engine.dispose()
    if out is not None:
        click.echo(f"{count} crossing{'s' if count != 1 else ''} written to {out}", err=True)
