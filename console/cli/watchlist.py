"""``borderlane-console watchlist ...``: publish signed watchlist versions, answer catch-ups.

A thin layer over :mod:`console.watchlist`; every failure is one line and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mqtt_schemas import TopicError
from mqtt_schemas.watchlist import KEY_ID, WatchlistError, load_private_key

from .. import connection
from ..store import StoreError, describe, open_database
from ..watchlist import (
    DEFAULT_GROUP,
    CatchupResponder,
    WatchlistHistory,
    WatchlistPublisher,
    WatchlistSetupError,
    read_list,
)
from .options import (
    EXISTING_FILE,
    broker_options,
    configure_logging,
    db_option,
    one_line_errors,
    run_until_stopped,
)

__all__ = ["watchlist"]

F = TypeVar("F", bound=Callable[..., Any])

_one_line_errors = one_line_errors(
    WatchlistSetupError, WatchlistError, StoreError, TopicError, ValueError
)
_broker_options = broker_options(node_id_use="stamped on the watchlist messages it sends")


_db_option = db_option("the watchlist history lives there")


def _key_options(command: F) -> F:
    command = click.option(
        "--key-id", required=True, help="The id kiosks trust the signing key under."
    )(command)
    return click.option(
        "--signing-key",
        required=True,
        type=EXISTING_FILE,
        help="Ed25519 private key (PEM), kept apart from every TLS key "
        "(make one with 'borderlane-edge watchlist keygen').",
    )(command)


def _publisher(history: WatchlistHistory, signing_key: Path, key_id: str, node: str, **kw: Any):
    if not KEY_ID.fullmatch(key_id):
        raise WatchlistSetupError(f"key id {key_id!r}: 1-64 of A-Z a-z 0-9 . _ -")
    key = load_private_key(signing_key.read_bytes())
    return WatchlistPublisher(history, key, key_id, node_id=node, **kw)


@click.group("watchlist")
def watchlist() -> None:
    """Signed watchlist versions: publish them to the fleet and answer kiosks' catch-ups.

    \b
    Examples:
      borderlane-console watchlist publish --db console.db --signing-key wl.key.pem \\
          --key-id wl-2026a --broker broker:8883 --cafile ca.crt --cert console.crt \\
          --key console.key lists/national.jsonl
      borderlane-console watchlist status --db console.db
      borderlane-console watchlist serve --db console.db --signing-key wl.key.pem \\
          --key-id wl-2026a --broker broker:8883 --cafile ca.crt --cert console.crt \\
          --key console.key
    """


@watchlist.command("publish")
@_db_option
@_key_options
@_broker_options
@click.option(
    "--snapshot/--no-snapshot",
    default=None,
    help="Keep a snapshot of the new version [default: every 50 versions, or when due].",
)
@click.option("--max-changes", default=5000, show_default=True, type=click.IntRange(1, 5000))
@click.argument("list_file", metavar="LIST.jsonl", type=EXISTING_FILE)
@_one_line_errors
def publish_command(
    db: str,
    signing_key: Path,
    key_id: str,
    endpoint: connection.Endpoint,
    node_id: str,
    snapshot: bool | None,
    max_changes: int,
    list_file: Path,
) -> None:
    """Make LIST.jsonl the fleet's watchlist: the next version, signed, stored, broadcast.

    LIST.jsonl holds the whole list, one entry per line (the kiosk's list-file format). The
    changes from the current version are signed as a delta (version 1 is a snapshot), stored
    for catch-ups, broadcast to every kiosk, and announced in the retained manifest. An
    unchanged list publishes nothing new.

    \b
    Example:
      borderlane-console watchlist publish --db console.db --signing-key wl.key.pem \\
          --key-id wl-2026a --broker broker:8883 --cafile ca.crt --cert console.crt \\
          --key console.key lists/national.jsonl
    """
    with list_file.open("rb") as handle:
        entries = read_list(handle, str(list_file))
    history = WatchlistHistory(db)
    try:
        publisher = _publisher(history, signing_key, key_id, node_id, max_changes=max_changes)
        published = asyncio.run(_publish(publisher, endpoint, node_id, entries, snapshot))
    finally:
        history.close()
    click.echo(f"{published.describe()} ({len(entries)} entries)")


async def _publish(publisher, endpoint, node, entries, snapshot):
    mqtt = connection.client(
        endpoint,
        f"{node}-watchlist-publish-{uuid.uuid4().hex[:8]}",
        session_expiry=0,
        receive_maximum=16,
        manual_ack=False,
    )
    async with mqtt:
        return await publisher.publish_list(mqtt, entries, snapshot=snapshot)


@watchlist.command("status")
@_db_option
@_one_line_errors
def status_command(db: str) -> None:
    """Print the latest version (its manifest) and what history is kept, as JSON.

    \b
    Example:
      borderlane-console watchlist status --db console.db
    """
    open_database(db, readonly=True).dispose()  # "no console database at ..." if missing
    history = WatchlistHistory(db)
    try:
        status = history.status()
    finally:
        history.close()
    if status["manifest"] is None:
        raise click.ClickException(f"{describe(db)}: no watchlist published yet")
    click.echo(json.dumps(status, indent=2))


@watchlist.command("serve", short_help="Answer kiosks' catch-up requests (runs until stopped).")
@_db_option
@_key_options
@_broker_options
@click.option("--group", default=DEFAULT_GROUP, show_default=True, help="Shared subscription.")
@click.option("--client-id", help="MQTT client id (default: NODE-watchlist-GROUP).")
@click.option("-v", "--verbose", is_flag=True, help="Log MQTT traffic too.")
@_one_line_errors
def serve_command(
    db: str,
    signing_key: Path,
    key_id: str,
    endpoint: connection.Endpoint,
    node_id: str,
    group: str,
    client_id: str | None,
    verbose: bool,
) -> None:
    """Answer kiosks' watchlist catch-ups from the stored history until SIGINT or SIGTERM.

    Each kiosk that asks gets, on its own deltas topic, the deltas it lacks or a snapshot
    then the deltas after it. The signing key makes a fresh snapshot when a kiosk asks for
    one newer than the latest kept. Several may run with one --group: one answers each.
    On (re)connect it re-announces the latest manifest.

    \b
    Example:
      borderlane-console watchlist serve --db console.db --signing-key wl.key.pem \\
          --key-id wl-2026a --broker broker:8883 --cafile ca.crt --cert console.crt \\
          --key console.key &
    """
    configure_logging(verbose)
    history = WatchlistHistory(db)
    try:
        publisher = _publisher(history, signing_key, key_id, node_id)
        responder = CatchupResponder(
            history,
            endpoint,
            node_id=node_id,
            publisher=publisher,
            group=group,
            client_id=client_id,
        )
        run_until_stopped(responder.run)
    finally:
        history.close()
