"""``borderlane-edge ui``: the kiosk pages' tools (the officers who may use the review screen)."""

from __future__ import annotations

from pathlib import Path

import click

from edge.ui.officers import OfficerDirectoryError, add_officer

from .common import BadArgument, OneLineErrors

__all__ = ["ui"]


@click.group("ui")
def ui() -> None:
    """The kiosk's local pages: traveller screen and officer review.

    \b
    Examples:
      borderlane-edge ui officer-add --file /etc/borderlane/officers.json --officer-id BDF-2231
    """


@ui.command("officer-add", cls=OneLineErrors)
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The officer directory (JSON, made when missing, kept readable by its owner only).",
)
@click.option("--officer-id", required=True, help="Badge or staff number (never a name): BDF-2231.")
@click.option(
    "--pin",
    prompt="PIN",
    hide_input=True,
    confirmation_prompt=True,
    help="4 to 12 digits; asked for (twice, hidden) when not given.",
)
def officer_add(path: Path, officer_id: str, pin: str) -> None:
    """Let an officer log in to the officer review screen, or change their PIN.

    The PIN is stored as a salted scrypt hash; the file works with no network.

    \b
    Examples:
      borderlane-edge ui officer-add --file officers.json --officer-id BDF-2231
      borderlane-edge ui officer-add --file officers.json --officer-id BDF-2231 --pin 482916
    """
    try:
        new = add_officer(path, officer_id, pin)
    except OfficerDirectoryError as exc:
        raise BadArgument(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror or exc}") from None
    click.echo(f"{'added' if new else 'changed the PIN of'} officer {officer_id} in {path}")
