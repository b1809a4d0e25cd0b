"""What the console's commands share: the broker options, one-line errors, running until stopped.

Every command that talks to the broker (``ingest``, ``command send``, ``watchlist publish``,
``watchlist serve``) takes the same ``--broker HOST:PORT --cafile --cert --key --node-id``
options, declared once here by :func:`broker_options`; the command receives them already
checked, as a :class:`~console.connection.Endpoint` and a node id, so no command parses an
address or reads a certificate's common name itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from mqtt_schemas import TopicError, topics

from .. import connection
from ..settings import Settings, SettingsError, load_settings
from ..store import StoreError, open_database
from ..store.database import database_url
from ..store.database import reason as database_reason

__all__ = [
    "EXISTING_FILE",
    "BadOption",
    "broker_options",
    "configure_logging",
    "db_option",
    "one_line_errors",
    "resolve_node_id",
    "run_until_stopped",
]

F = TypeVar("F", bound=Callable[..., Any])

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
"""A file that must exist when the command starts: click names it if it does not."""

_MAX_NODE_ID = 64  # the contract's device-id length (mqtt_schemas.topics.DEVICE_ID_PATTERN)


def resolve_node_id(node_id: str | None, cert_file: Path, suffix: str = "") -> str:
    """*node_id*, or the certificate's common name followed by *suffix*, checked as a device id.

    The common name is who the broker knows the console as; a *suffix* tells this console's
    roles apart on the wire (``console-commands``), cut so the whole stays a valid id.
    """
    if not node_id:  # an empty --node-id means the default, as it always has
        node_id = connection.common_name(cert_file)
        if suffix:
            node_id = f"{node_id}{suffix}"[:_MAX_NODE_ID]
    return topics.check_device_id(node_id)


DB_ENV = "BORDERLANE_CONSOLE_DB"
INSTANCE_ENV = "BORDERLANE_CONSOLE_INSTANCE"
SETTINGS_FILE = "console.toml"


def instance_option(use: str) -> Callable[[F], F]:
    """``--instance DIR`` (or ``$BORDERLANE_CONSOLE_INSTANCE``): the web console's instance
    folder, whose ``console.toml`` gives *use*; optional, the built-in settings without it."""
    return click.option(
        "--instance",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=INSTANCE_ENV,
        show_envvar=True,
        help=f"The web console's instance folder, whose console.toml has {use} "
        "(default: the built-in settings).",
    )


def instance_settings(instance: Path | None) -> Settings:
    """The settings of *instance* (its console.toml when there is one), else the defaults."""
    if instance is None:
        return Settings()
    if not instance.is_dir():
        raise SettingsError(f"{instance}: no such instance folder")
    return load_settings(instance / SETTINGS_FILE)


def db_option(use: str = "created if missing") -> Callable[[F], F]:
    """``--db TARGET``: the console database, a SQLite file or a PostgreSQL URL (given as
    ``db``, a string). Also read from ``$BORDERLANE_CONSOLE_DB``, so a URL need not sit on a
    command line; a PostgreSQL password is best left to ``PGPASSWORD`` or ``~/.pgpass``."""
    return click.option(
        "--db",
        "db",
        required=True,
        envvar=DB_ENV,
        show_envvar=True,
        metavar="PATH|URL",
        help=f"Console database: a SQLite file ({use}) or postgresql://USER@HOST/NAME.",
    )


def existing_database(db: str) -> Engine:
    """The console database for writing; never creates one (ingest and `users add` do)."""
    url = database_url(db)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise StoreError(f"no console database at {db}")
    return open_database(db)


class BadOption(click.ClickException):
    """An option's value cannot be used: one ``Error: --option: why`` line, exit status 2."""

    exit_code = 2


def broker_options(
    *, node_id_use: str, node_id_suffix: str = "", optional: bool = False
) -> Callable[[F], F]:
    """Add ``--broker --cafile --cert --key --node-id``; the command gets ``endpoint, node_id``.

    The decorated function takes ``endpoint: connection.Endpoint`` and ``node_id: str`` in place
    of the five options. *node_id_use* completes the ``--node-id`` help ("Node id stamped on
    acks"); without ``--node-id`` the node id is the certificate's common name followed by
    *node_id_suffix*. A bad address, a certificate without a usable common name or a node id
    outside the contract is a usage error (exit 2) naming the option, before anything connects.
    *optional*: the broker may be left out altogether (the command gets ``None, None``), but
    not given in part.
    """
    default = "the certificate's CN" + (f" + '{node_id_suffix}'" if node_id_suffix else "")
    options = (
        click.option(
            "--broker", "address", required=not optional, metavar="HOST:PORT", help="TLS listener."
        ),
        click.option(
            "--cafile", required=not optional, type=EXISTING_FILE, help="CA certificate (PEM)."
        ),
        click.option(
            "--cert", required=not optional, type=EXISTING_FILE, help="Console client certificate."
        ),
        click.option("--key", required=not optional, type=EXISTING_FILE, help="Its private key."),
        click.option("--node-id", help=f"Node id {node_id_use} (default: {default})."),
    )

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(
            *args: Any,
            address: str,
            cafile: Path,
            cert: Path,
            key: Path,
            node_id: str | None,
            **kwargs: Any,
        ) -> Any:
            given = {"--broker": address, "--cafile": cafile, "--cert": cert, "--key": key}
            if optional and not any(given.values()):
                return command(*args, endpoint=None, node_id=None, **kwargs)
            missing = [name for name, value in given.items() if not value]
            if missing:
                raise BadOption(f"{missing[0]}: give it with the other broker options")
            try:
                host, port = connection.parse_address(address)
            except ValueError as exc:
                raise BadOption(f"--broker: {exc}") from None
            try:
                node = resolve_node_id(node_id, cert, node_id_suffix)
            except TopicError as exc:
                if node_id:
                    raise BadOption(f"--node-id: {exc}") from None
                problem = f"its common name makes no node id: {exc}; give --node-id"
                raise BadOption(f"--cert: {problem}") from None
            except ValueError as exc:  # no common name, or not a PEM certificate
                raise BadOption(f"--cert: {exc}") from None
            endpoint = connection.Endpoint(host, port, cafile, cert, key)
            return command(*args, endpoint=endpoint, node_id=node, **kwargs)

        decorated: Callable[..., Any] = wrapper
        for option in reversed(options):  # --broker first in --help
            decorated = option(decorated)
        return decorated  # type: ignore[return-value]

    return decorate


def one_line_errors(*expected: type[Exception]) -> Callable[[F], F]:
    """Turn the errors a command can meet into one ``Error: ...`` line and exit 1, never a trace.

    *expected* are the errors whose message already says it all (the API's own errors); the
    broker's, the database's and the file system's get a word saying where they came from.
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except expected as exc:
                raise click.ClickException(str(exc)) from None
            except aiomqtt.MqttError as exc:
                raise click.ClickException(f"broker: {exc}") from None
            except SQLAlchemyError as exc:
                raise click.ClickException(f"console database: {database_reason(exc)}") from None
            except sqlite3.Error as exc:
                raise click.ClickException(f"console database: {exc}") from None
            except OSError as exc:
                raise click.ClickException(
                    f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
                ) from None

        return wrapper  # type: ignore[return-value]

    return decorate


def configure_logging(verbose: bool) -> None:
    """Log to standard error for a long-running command; MQTT traffic only when *verbose*."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("mqtt").setLevel(logging.WARNING)


def run_until_stopped(run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``run(stop)`` until it returns; SIGINT or SIGTERM set *stop* so it can finish cleanly
    (commit, ack, disconnect) instead of being killed mid-batch."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run(stop)

    asyncio.run(main())
