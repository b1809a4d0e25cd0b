"""``borderlane-console watchlist ...``: publish signed watchlist versions, answer catch-ups.

A thin layer over :mod:`console.watchlist`; every failure is one line and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import signal
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import click

from mqtt_schemas import TopicError, topics
from mqtt_schemas.watchlist import KEY_ID, WatchlistError, load_private_key

from . import connection
from .store import StoreError
from .watchlist import (
    DEFAULT_GROUP,
    CatchupResponder,
    WatchlistHistory,
    WatchlistPublisher,
    WatchlistSetupError,
    read_list,
)

__all__ = ["watchlist"]

F = TypeVar("F", bound=Callable[..., Any])
_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


def _one_line_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (WatchlistSetupError, WatchlistError, StoreError, TopicError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        except aiomqtt.MqttError as exc:
            raise click.ClickException(f"broker: {exc}") from None
        except sqlite3.Error as exc:
            raise click.ClickException(f"console database: {exc}") from None
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}") from None

    return wrapper  # type: ignore[return-value]


def _db_option(command: F) -> F:
    return click.option(
        "--db",
        "db_path",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Console database (SQLite); the watchlist history lives there.",
    )(command)


def _key_options(command: F) -> F:
    command = click.option(
        "--key-id", required=True, help="The id kiosks trust the signing key under."
    )(command)
    return click.option(
        "--signing-key",
        required=True,
        type=_EXISTING,
        help="Ed25519 private key (PEM), kept apart from every TLS key "
        "(make one with 'borderlane-edge watchlist keygen').",
    )(command)


def _broker_options(command: F) -> F:
    for option in reversed(
        (
            click.option("--broker", "address", required=True, metavar="HOST:PORT"),
            click.option("--cafile", required=True, type=_EXISTING, help="CA certificate."),
            click.option("--cert", required=True, type=_EXISTING, help="Console certificate."),
            click.option("--key", required=True, type=_EXISTING, help="Its private key."),
            click.option("--node-id", help="Console node id (default: the certificate's CN)."),
        )
    ):
        command = option(command)
    return command


def _endpoint(address: str, cafile: Path, cert: Path, key: Path, node_id: str | None):
    host, port = connection.parse_address(address)
    node = node_id or connection.common_name(cert)
    topics.check_device_id(node)
    return connection.Endpoint(host, port, cafile, cert, key), node


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
@click.argument("list_file", metavar="LIST.jsonl", type=_EXISTING)
@_one_line_errors
def publish_command(
    db_path: Path,
    signing_key: Path,
    key_id: str,
    address: str,
    cafile: Path,
    cert: Path,
    key: Path,
    node_id: str | None,
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
    endpoint, node = _endpoint(address, cafile, cert, key, node_id)
    with list_file.open("rb") as handle:
        entries = read_list(handle, str(list_file))
    history = WatchlistHistory(db_path)
    try:
        publisher = _publisher(history, signing_key, key_id, node, max_changes=max_changes)
        published = asyncio.run(_publish(publisher, endpoint, node, entries, snapshot))
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
def status_command(db_path: Path) -> None:
    """Print the latest version (its manifest) and what history is kept, as JSON.

    \b
    Example:
      borderlane-console watchlist status --db console.db
    """
    if not db_path.is_file():
        raise click.ClickException(f"no console database at {db_path}")
    history = WatchlistHistory(db_path)
    try:
        status = history.status()
    finally:
        history.close()
    if status["manifest"] is None:
        raise click.ClickException(f"{db_path}: no watchlist published yet")
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
    db_path: Path,
    signing_key: Path,
    key_id: str,
    address: str,
    cafile: Path,
    cert: Path,
    key: Path,
    node_id: str | None,
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
    endpoint, node = _endpoint(address, cafile, cert, key, node_id)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("mqtt").setLevel(logging.WARNING)
    history = WatchlistHistory(db_path)
    try:
        publisher = _publisher(history, signing_key, key_id, node)
        responder = CatchupResponder(
            history, endpoint, node_id=node, publisher=publisher, group=group, client_id=client_id
        )
        asyncio.run(_serve(responder))
    finally:
        history.close()


async def _serve(responder: CatchupResponder) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await responder.run(stop)
