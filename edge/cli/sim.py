"""``borderlane-edge sim``: virtual devices for development, demos and manual testing."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import click

from edge.sim.cards import DEMO_AID, IsoCard
from edge.sim.mrz_reader import (
    SIM_FRAMINGS,
    NobodyReading,
    VirtualMrzReader,
    WireFormat,
    split_documents,
    synthetic_documents,
)
from edge.sim.vpcd import VPCD_DEFAULT_PORT, VpcdClient, VpcdUnavailable

__all__ = ["sim"]

sim = click.Group(
    "sim",
    help="Virtual devices (vpcd cards, a pty MRZ reader) for development and demos.",
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


def _parse_hex(ctx: click.Context, param: click.Parameter, value: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not hex (e.g. 1B4D)") from None


@sim.command("mrz-reader")
@click.option(
    "--link",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also name the device with this symlink, as udev does (/dev/serial/by-id/...).",
)
@click.option(
    "--framing",
    type=click.Choice(SIM_FRAMINGS),
    default="crlf",
    show_default=True,
    help="Line endings, or STX ... ETX around each document (CR between its lines).",
)
@click.option("--joined", is_flag=True, help="Send each MRZ as one line (88, 72 or 90 chars).")
@click.option(
    "--prefix",
    metavar="HEX",
    default="",
    callback=_parse_hex,
    help="Vendor bytes before each document.",
)
@click.option(
    "--suffix",
    metavar="HEX",
    default="",
    callback=_parse_hex,
    help="Vendor bytes after each document.",
)
@click.option("--chunk", type=click.IntRange(min=1), metavar="N", help="Write N bytes at a time.")
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="S",
    help="Seconds between chunks.",
)
@click.option(
    "--noise",
    type=click.FloatRange(0, 1),
    default=0.0,
    metavar="P",
    help="Probability of an OCR confusion (O/0, I/1...) per character and of garbage "
    "before a document.",
)
@click.option(
    "--every",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    metavar="S",
    help="Seconds between documents.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="Exit after N documents. Default: each given document once, then wait for Ctrl-C; "
    "generated travellers forever.",
)
@click.option("--seed", type=int, help="Repeatable noise and travellers.")
@click.argument("files", nargs=-1, type=click.File("r"), metavar="[MRZ-FILE|-]...")
def mrz_reader(
    link: Path | None,
    framing: str,
    joined: bool,
    prefix: bytes,
    suffix: bytes,
    chunk: int | None,
    delay: float,
    noise: float,
    every: float,
    count: int | None,
    seed: int | None,
    files: tuple[TextIO, ...],
) -> None:
    """Play a serial MRZ reader on a pseudo-terminal until Ctrl-C (which unplugs it).

    Prints the device to open, waits until a program opens it, then sends a document every
    --every seconds: those in MRZ-FILEs (several per file, separated by blank lines; - reads
    stdin), or else the ICAO specimens followed by made-up travellers.

    \b
    Examples:
      borderlane-edge sim mrz-reader
      borderlane-edge sim mrz-reader --link /tmp/serial/by-id/usb-Acme_MRZ-if00
      borderlane-edge sim mrz-reader --framing stx-etx --prefix 1B4D --every 0.5
      borderlane-edge sim mrz-reader --chunk 7 --delay 0.01 --noise 0.05 --seed 1
      printf 'P<UTO...\\nL898...\\n' | borderlane-edge sim mrz-reader --count 1 -
    """
    wire = WireFormat(framing, joined, prefix, suffix)
    documents: Iterator[str] = synthetic_documents(seed)
    if files:
        given = [document for f in files for document in split_documents(f.read())]
        if not given:
            raise click.ClickException("no MRZ in the given files")
        documents = iter(given)
    # A technician watches this live, often through a pipe (| tee): one line per event.
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    try:
        reader = VirtualMrzReader(wire, link=link, chunk=chunk, delay=delay, noise=noise, seed=seed)
    except OSError as exc:
        raise click.ClickException(f"cannot plug the reader in: {exc}") from None
    # SIGTERM (systemd, `kill`) unplugs cleanly too: the link must not be left dangling.
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    interrupted = False
    try:
        wait_at_end = bool(files) and count is None
        interrupted = _play(reader, documents, every, count, wait_at_end=wait_at_end)
    finally:
        if not interrupted:  # else keep ignoring Ctrl-C: the process is on its way out
            for number, handler in handlers.items():
                signal.signal(number, handler)
    click.echo("unplugged")


def _play(
    reader: VirtualMrzReader,
    documents: Iterator[str],
    every: float,
    count: int | None,
    *,
    wait_at_end: bool,
) -> bool:
    """Send the documents until done or Ctrl-C (then True), and unplug."""
    wire = reader.wire
    with reader:
        click.echo(f"MRZ reader on {reader.device}")
        config = f"port={reader.device!r}, framing={wire.driver_framing!r}"
        config += f", prefix=bytes.fromhex({wire.prefix.hex()!r})" if wire.prefix else ""
        config += f", suffix=bytes.fromhex({wire.suffix.hex()!r})" if wire.suffix else ""
        click.echo(f"driver: MrzReaderConfig({config}); Ctrl-C unplugs")
        try:
            _feed(reader, documents, every, count)
            if wait_at_end:
                click.echo("every document sent; Ctrl-C unplugs")
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            # A second Ctrl-C must not cut the unplugging short and leave the link behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            return True
        except NobodyReading as exc:
            raise click.ClickException(str(exc)) from None
    return False


def _feed(
    reader: VirtualMrzReader, documents: Iterator[str], every: float, count: int | None
) -> None:
    for sent, document in enumerate(documents, start=1):
        if not reader.is_open():
            click.echo(f"waiting for a program to open {reader.device}")
            reader.wait_open()
        size = reader.send(document)
        first_line = document.splitlines()[0] if document else ""
        click.echo(f"sent document {sent} ({size} bytes): {first_line}")
        time.sleep(every)  # also gives the last document time to be read before an exit
        if count is not None and sent >= count:
            return
