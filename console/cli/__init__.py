"""``borderlane-console``: the console's command line.

A thin layer over the console's Python API and the shared wire contract: one module per
command group, the broker options and error handling they share in :mod:`.options`.
"""

from __future__ import annotations

import click

from mqtt_schemas.cli_pipes import PipeSafeGroup

from .alerts import alerts_group
from .audit import audit_group
from .commands import command
from .contract import contract
from .db import db_group
from .devices import devices_group
from .export import export_group
from .ingest import ingest_command
from .users import users_group
from .watchlist import watchlist as watchlist_group
from .web import web_command


@click.group(cls=PipeSafeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="borderlane", prog_name="borderlane-console")
def cli() -> None:
    """The Borderlane console: kiosks, watchlists, crossings and the wire contract.

    \b
    Examples:
      borderlane-console contract topics
      borderlane-console contract validate crossing record.json
      borderlane-console contract validate health < heartbeats.jsonl
      borderlane-console ingest --db console.db --broker broker:8884 \\
          --cafile ca.crt --cert console.crt --key console.key
      borderlane-console export crossings --db console.db --format csv --out crossings.csv
      borderlane-console db upgrade --db console.db
      borderlane-console db backup --db console.db --out console-copy.db
      borderlane-console users add ada --db console.db --name "Ada Lopez" \\
          --agency immigration --role admin --level 4 --no-forced-change
      borderlane-console web --db console.db --instance /var/lib/borderlane/web
      borderlane-console devices token kiosk-bz-07 --post bz-santa-elena --db console.db --by ada
    """


for group in (contract, db_group, ingest_command, export_group, command, watchlist_group):
    cli.add_command(group)
for group in (users_group, web_command):
    cli.add_command(group)
cli.add_command(alerts_group)
cli.add_command(audit_group)
cli.add_command(devices_group)


def main() -> None:
    cli(prog_name="borderlane-console")
