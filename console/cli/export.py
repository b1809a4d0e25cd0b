"""``borderlane-console export``: what the console stored, as JSON Lines or CSV."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import click

from ..store import StoreError, connect_readonly, export


@click.group("export")
def export_group() -> None:
    """Export what the console stored."""


@export_group.command("crossings")
@click.option(
    "--db",
    "db_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Console database.",
)
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
def export_crossings(db_path: Path, fmt: export.Format, out: Path | None) -> None:
    """Write every stored crossing, ordered by the kiosk's time.

    \b
    Examples:
      borderlane-console export crossings --db console.db > crossings.jsonl
      borderlane-console export crossings --db console.db --format csv --out crossings.csv
    """
    try:
        conn = connect_readonly(db_path)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        if out is None:
            count = export.export_crossings(conn, fmt, sys.stdout)
        else:
            with out.open("w", encoding="utf-8", newline="") as handle:
                count = export.export_crossings(conn, fmt, handle)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot read {db_path}: {exc}") from None
    finally:
        conn.close()
    if out is not None:
        click.echo(f"{count} crossing{'s' if count != 1 else ''} written to {out}", err=True)
