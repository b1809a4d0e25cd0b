"""``borderlane-console web``: the console's pages and JSON API on waitress, a production WSGI
server (not Flask's development server, which is neither fast nor hardened)."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import waitress

from .. import connection
from ..settings import SettingsError
from ..store import StoreError, open_database
from ..web import InstanceError, create_app
from .options import BadOption, broker_options, configure_logging, db_option, one_line_errors


@click.command("web")
@db_option("must exist: made by ingest or users add")
@click.option(
    "--instance",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    envvar="BORDERLANE_CONSOLE_INSTANCE",
    show_envvar=True,
    help="Instance folder: the session secret (made on first start, 0600) and console.toml.",
)
@click.option(
    "--bind",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen. Keep it on loopback behind a TLS proxy; browsers must not reach "
    "the console over plain HTTP.",
)
@click.option(
    "--https",
    is_flag=True,
    help="Browsers reach the console over HTTPS (a TLS proxy in front): session cookies are "
    "marked Secure.",
)
@click.option(
    "--proxies",
    type=click.IntRange(0, 5),
    default=0,
    show_default=True,
    help="How many reverse proxies stand in front: their X-Forwarded-For/-Proto are believed "
    "(the client's address counts failed logins).",
)
@click.option(
    "--threads", type=click.IntRange(1, 64), default=8, show_default=True, help="Worker threads."
)
@broker_options(
    node_id_use="stamped on the commands it sends", node_id_suffix="-web", optional=True
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@one_line_errors(StoreError, SettingsError, InstanceError)
def web_command(
    db: str,
    instance: Path,
    bind: str,
    https: bool,
    proxies: int,
    threads: int,
    endpoint: connection.Endpoint | None,
    node_id: str | None,
    verbose: bool,
) -> None:
    """Serve the console for people: the login page, the pages each role may see, the JSON API
    (session cookie or "Authorization: Bearer <token>" from users token). Runs until stopped.

    \b
    Examples:
      borderlane-console users add ada --db console.db --name "Ada Lopez" \\
          --agency immigration --role admin --level 4 --no-forced-change
      borderlane-console web --db console.db --instance /var/lib/borderlane/web
      borderlane-console web --db postgresql://console@db.example/console \\
          --instance /var/lib/borderlane/web --bind 127.0.0.1:8080 --https --proxies 1
      borderlane-console web --db console.db --instance web --broker mqtt:8884 \\
          --cafile ca.crt --cert console.crt --key console.key   # commands from device pages

    Without the broker options the device pages show the commands as unavailable.
    """
    try:
        host, port = connection.parse_address(bind, default_port=8080)
    except ValueError as exc:
        raise BadOption(f"--bind: {exc}") from None
    configure_logging(verbose)
    # Refuse a missing or foreign database now, in one line, not at the first request.
    open_database(db, readonly=True).dispose()
    config = {"DATABASE": db, "INSTANCE_PATH": str(instance), "HTTPS": https, "PROXIES": proxies}
    if endpoint is not None:
        config.update(BROKER=endpoint, BROKER_NODE_ID=node_id)
    app = create_app(config)
    app.logger.setLevel(logging.INFO)
    click.echo(f"console at http://{host}:{port}/ (Ctrl-C stops it)", err=True)
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="borderlane-console",
    )
