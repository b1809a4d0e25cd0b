"""``borderlane-console ingest``: store what kiosks publish and ack it."""

from __future__ import annotations

import click

from .. import connection, ingest
from ..store import StoreError
from .options import (
    broker_options,
    configure_logging,
    db_option,
    one_line_errors,
    run_until_stopped,
)


@click.command("ingest", short_help="Store what kiosks publish and ack it (runs until stopped).")
@db_option()
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
@click.option(
    "--batch-delay",
    default=50,
    show_default=True,
    type=click.IntRange(1, 10_000),
    metavar="MS",
    help="A batch commits this long after its first message at the latest. Several workers "
    "each see a share of the traffic: a longer delay keeps their batches (and the acks per "
    "commit) large, at that much more ack latency.",
)
@click.option(
    "--keepalive",
    default=60,
    show_default=True,
    type=click.IntRange(5, 3600),
    metavar="SECONDS",
    help="MQTT keepalive: a link cut without a word is noticed within about twice this.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every commit and MQTT traffic.")
@one_line_errors(ingest.IngestError, StoreError)
def ingest_command(
    db: str,
    endpoint: connection.Endpoint,
    node_id: str,
    group: str,
    client_id: str | None,
    session_expiry: int,
    batch_delay: int,
    keepalive: int,
    verbose: bool,
) -> None:
    """Store what kiosks publish (crossings, hits, decisions, availability, health, command
    results) and ack the records after each commit. Runs until SIGINT or SIGTERM, then
    commits, acks and disconnects.

    Several workers may run with the same --group (and --db): the broker shares the records
    among them. Give each worker its own --client-id.

    \b
    Examples:
      borderlane-console ingest --db console.db --broker broker.example:8884 \\
          --cafile ca.crt --cert console.crt --key console.key
      borderlane-console ingest --db console.db --broker 10.0.0.5:8884 --group ingest \\
          --client-id console-ingest-2 --cafile ca.crt --cert console.crt --key console.key
    """
    configure_logging(verbose)
    config = ingest.IngestConfig(
        db=db,
        endpoint=endpoint,
        node_id=node_id,
        group=group,
        client_id=client_id,
        session_expiry=session_expiry,
        max_delay=batch_delay / 1000,
        keepalive=keepalive,
    )
    run_until_stopped(ingest.IngestWorker(config).run)
