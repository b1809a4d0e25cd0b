"""``borderlane-console``: the console's command line.

A thin layer over the console's Python API and the shared wire contract.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import TextIO

import click

import mqtt_schemas
from mqtt_schemas import PayloadError, topics

from . import connection, export, ingest
from .cli_options import broker_options, configure_logging, one_line_errors, run_until_stopped
from .commands_cli import command
from .store import StoreError, connect_readonly
from .watchlist_cli import watchlist as watchlist_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="borderlane", prog_name="borderlane-console")
def cli() -> None:
    """The Borderlane console: kiosks, watchlists, crossings and the wire contract.

    \b
    Examples:
      borderlane-console contract topics
      borderlane-console contract validate crossing record.json
      borderlane-console contract validate health < heartbeats.jsonl
      borderlane-console ingest --db console.db --broker broker:8883 \\
          --cafile ca.crt --cert console.crt --key console.key
      borderlane-console export crossings --db console.db --format csv --out crossings.csv
    """


@cli.group()
def contract() -> None:
    """The MQTT wire contract shared with the kiosks (mqtt-schemas/)."""


@contract.command("topics")
def contract_topics() -> None:
    """List every topic with its payload schema, publisher, QoS and retain flag.

    \b
    Example:
      borderlane-console contract topics
    """
    for channel in topics.CHANNELS:
        if channel.scope == "device":
            topic = topics.device_filter(channel.name)
        else:
            topic = topics.fleet_topic(channel.name)
        retain = "retained" if channel.retain else "-"
        click.echo(
            f"{topic:<52} {mqtt_schemas.tag(channel.schema):<26} "
            f"{channel.publisher:<8} qos{channel.qos} {retain}"
        )


@contract.command("validate")
@click.argument("name", type=click.Choice(mqtt_schemas.names()), metavar="NAME")
@click.argument("files", type=click.File("r"), nargs=-1)
def contract_validate(name: str, files: tuple[TextIO, ...]) -> None:
    """Check payloads against schema NAME: JSON files, or JSON Lines on standard input.

    Prints one line per invalid payload naming the failing field and exits 1 if any is
    invalid; prints a count and exits 0 when all are valid.

    \b
    Examples:
      borderlane-console contract validate crossing record.json
      borderlane-console contract validate health < heartbeats.jsonl
    """
    checked = invalid = 0
    for source, label, text in _payloads(files or (sys.stdin,)):
        checked += 1
        try:
            mqtt_schemas.validate(name, json.loads(text))
        except json.JSONDecodeError as exc:
            invalid += 1
            click.echo(f"{source}:{label}: not JSON: {exc.msg} at column {exc.colno}", err=True)
        except PayloadError as exc:
            invalid += 1
            click.echo(f"{source}:{label}: {exc}", err=True)
    if checked == 0:
        raise click.ClickException("no payloads to check")
    if invalid:
        raise click.ClickException(f"{invalid} of {checked} payloads are not valid {name}")
    click.echo(f"{checked} valid {name} payload{'s' if checked != 1 else ''}")


@cli.command("ingest", short_help="Store what kiosks publish and ack it (runs until stopped).")
@click.option(
    "--db",
    "db_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Console database (SQLite); created if missing.",
)
@broker_options(node_id_use="stamped on acks")
@click.option(
    "--group",
    default=ingest.DEFAULT_GROUP,
    show_default=True,
    help="Shared-subscription group; workers of one group share the load.",
)
@click.option(
    "--client-id",
    help="MQTT client id, fixed so the session survives restarts; one per worker "
    "(default: NODE-ingest-GROUP).",
)
@click.option(
    "--session-expiry",
    default=3600,
    show_default=True,
    type=click.IntRange(0, 2**32 - 1),
    help="Seconds the broker keeps queuing for this worker while it is away.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every commit and MQTT traffic.")
@one_line_errors(ingest.IngestError, StoreError)
def ingest_command(
    db_path: Path,
    endpoint: connection.Endpoint,
    node_id: str,
    group: str,
    client_id: str | None,
    session_expiry: int,
    verbose: bool,
) -> None:
    """Store what kiosks publish (crossings, hits, decisions, availability, health, command
    results) and ack the records after each commit. Runs until SIGINT or SIGTERM, then
    commits, acks and disconnects.

    Several workers may run with the same --group (and --db): the broker shares the records
    among them. Give each worker its own --client-id.

    \b
    Examples:
      borderlane-console ingest --db console.db --broker broker.example:8883 \\
          --cafile ca.crt --cert console.crt --key console.key
      borderlane-console ingest --db console.db --broker 10.0.0.5:8883 --group ingest \\
          --client-id console-ingest-2 --cafile ca.crt --cert console.crt --key console.key
    """
    configure_logging(verbose)
    config = ingest.IngestConfig(
        db_path=db_path,
        endpoint=endpoint,
        node_id=node_id,
        group=group,
        client_id=client_id,
        session_expiry=session_expiry,
    )
    run_until_stopped(ingest.IngestWorker(config).run)


@cli.group("export")
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


cli.add_command(command)
cli.add_command(watchlist_group)


def _payloads(files: tuple[TextIO, ...]):
    """(source, location, text) per payload: a whole file, or each line of standard input."""
    for handle in files:
        source = getattr(handle, "name", "-")
        if handle is sys.stdin or source in ("-", "<stdin>"):
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield "stdin", f"line {number}", line
        else:
            yield source, "file", handle.read()


def main() -> None:
    cli(prog_name="borderlane-console")
