"""``borderlane-edge sim``: virtual devices for development, demos and manual testing."""

from __future__ import annotations

import logging

import click

from edge.sim.cards import DEMO_AID, IsoCard
from edge.sim.vpcd import VPCD_DEFAULT_PORT, VpcdClient, VpcdUnavailable

__all__ = ["sim"]

sim = click.Group(
    "sim",
    help="Virtual devices (cards for a vpcd reader, ...) for development and demos.",
)


def _parse_aids(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[bytes, ...]:
    aids = []
    for value in values:
        try:
            aid = bytes.fromhex(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not hex") from None
        if not 5 <= len(aid) <= 16:
            raise click.BadParameter(f"{value!r}: an AID is 5..16 bytes, got {len(aid)}")
        aids.append(aid)
    return tuple(aids)


@sim.command("card")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where vpcd listens.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=VPCD_DEFAULT_PORT,
    show_default=True,
    help="vpcd slot port (the second slot is port + 1).",
)
@click.option(
    "--aid",
    "aids",
    multiple=True,
    metavar="HEX",
    callback=_parse_aids,
    help=f"An application the card holds; repeatable. [default: {DEMO_AID.hex().upper()}]",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every APDU.")
def card(host: str, port: int, aids: tuple[bytes, ...], verbose: bool) -> None:
    """Insert a minimal ISO 7816-4 card into a running vpcd reader until Ctrl-C.

    The card answers SELECT by AID (9000, or 6A82 for an AID it does not hold) and
    GET CHALLENGE; PC/SC applications see it in the reader "Virtual PCD 00 00"
    (port 35963) or "Virtual PCD 00 01" (port 35964) of Debian's vpcd setup.

    \b
    Examples:
      borderlane-edge sim card
      borderlane-edge sim card --port 35964          # the second slot
      borderlane-edge sim card --aid A0000002471001 --aid F0424C414E4501 -v
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    client = VpcdClient(IsoCard(aids or (DEMO_AID,)), host, port)
    try:
        client.insert()
    except VpcdUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"card inserted into vpcd at {host}:{port} (ATR {client.card.atr.hex().upper()});")
    click.echo("press Ctrl-C to remove it")
    try:
        # Short waits keep Ctrl-C responsive whatever the platform's lock semantics.
        while not client.wait(0.5):
            pass
    except KeyboardInterrupt:
        client.remove()
        click.echo("card removed")
        return
    raise click.ClickException(f"vpcd at {host}:{port} closed the connection (pcscd stopped?)")
