"""``borderlane-edge``: the kiosk agent's command line, for technicians and the lane itself.

A thin layer over the agent's Python API: one module per command group in this package, each
registered here. Commands print one-line errors and exit non-zero; they never show tracebacks.
"""

from __future__ import annotations

import click

from mqtt_schemas.cli_pipes import PipeSafeGroup

from .camera import camera
from .card import card
from .enroll import enroll_command
from .face import face
from .mrz import mrz
from .run import run
from .sim import sim
from .storage import storage
from .ui import ui
from .watchlist import screen, watchlist


@click.group(cls=PipeSafeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="borderlane", prog_name="borderlane-edge")
def cli() -> None:
    """The Borderlane kiosk agent and its tools for technicians.

    \b
    Examples:
      borderlane-edge run --config /etc/borderlane/kiosk.toml   the kiosk agent
      borderlane-edge enroll --console URL --token T --state-dir DIR --ca CA   first boot
      borderlane-edge sim card --port 35963      insert a virtual card into the vpcd reader
      borderlane-edge sim card --help            what the virtual card answers
      borderlane-edge mrz parse < scan.txt       what an MRZ says, as JSON
      borderlane-edge card read --issuers DIR    read and verify a CBIC or an ePassport chip
      borderlane-edge face check frame.jpg       faces and portrait quality in an image
    """


cli.add_command(camera)
cli.add_command(card)
cli.add_command(enroll_command)
cli.add_command(face)
cli.add_command(mrz)
cli.add_command(run)
cli.add_command(sim)
cli.add_command(storage)
cli.add_command(ui)
cli.add_command(screen)
cli.add_command(watchlist)


def main() -> None:
    cli(prog_name="borderlane-edge")
