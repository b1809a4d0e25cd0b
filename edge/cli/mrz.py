"""``borderlane-edge mrz``: read a Machine Readable Zone the way the lane does, from the shell."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import sys

import click

from edge.devices.mrz_reader import MrzReader, MrzReaderConfig, MrzReaderConfigError
from edge.documents.mrz import MrzError, parse

__all__ = ["mrz"]

mrz = click.Group("mrz", help="Machine Readable Zones (ICAO Doc 9303): parse and check them.")


class NotAnMrz(click.ClickException):
    """Printed as one ``Error: ...`` line; exit status 2, as for any unusable input."""

    exit_code = 2


def _read_stdin() -> str:
    stdin = sys.stdin.buffer
    if stdin.isatty():
        raise NotAnMrz("no MRZ: give it as arguments or on standard input (see --help)")
    data = stdin.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotAnMrz(f"standard input is not UTF-8 text (byte {exc.start + 1})") from None


@mrz.command("parse")
@click.argument("text", nargs=-1)
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Date to infer centuries and expiry from. [default: the system date]",
)
def parse_command(text: tuple[str, ...], today: datetime.datetime | None) -> None:
    """Parse an MRZ and print what it says as one JSON object.

    TEXT is the MRZ: one argument per line, or one argument holding every line
    (separated by newlines, or joined); without TEXT (or with -), standard input.
    A failing check digit still parses ("valid": false, exit status 0); text that
    is not an MRZ at all exits with status 2 and one line on standard error.

    \b
    Examples:
      borderlane-edge mrz parse 'P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<' \\
                                'L898902C36UTO7408122F1204159ZE184226B<<<<<10'
      borderlane-edge mrz parse < scan.txt               # as a reader sent it
      borderlane-edge mrz parse --today 2010-01-01 < scan.txt   # centuries as seen in 2010
      borderlane-edge mrz parse < scan.txt | jq .valid
    """
    source = "\n".join(text) if text and text != ("-",) else _read_stdin()
    try:
        document = parse(source, today=today.date() if today else None)
    except MrzError as exc:
        raise NotAnMrz(str(exc)) from None
    json.dump(document.to_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")


@mrz.command("listen")
@click.option(
    "--port", required=True, help="Device path, glob (/dev/serial/by-id/*MRZ*) or VID:PID."
)
@click.option("--baud", "baudrate", type=int, default=9600, show_default=True)
@click.option(
    "--parity", type=click.Choice(["N", "E", "O", "M", "S"]), default="N", show_default=True
)
@click.option(
    "--framing", type=click.Choice(["lines", "stx-etx"]), default="lines", show_default=True
)
@click.option("--prefix", default="", metavar="HEX", help="Vendor bytes before each document.")
@click.option("--suffix", default="", metavar="HEX", help="Vendor bytes after each document.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many reads.")
def listen_command(
    port: str,
    baudrate: int,
    parity: str,
    framing: str,
    prefix: str,
    suffix: str,
    count: int | None,
) -> None:
    """Print each document a serial MRZ reader sends, one JSON line per read, until Ctrl-C.

    Uses the kiosk's own driver: the same framing, reassembly, reconnection after an unplug,
    and parser. Each line has "ok", "document" (as from `mrz parse`) or "error", and the
    latency from the last byte received to the parsed document. Reader state changes
    (connected, disconnected) go to standard error.

    \b
    Examples:
      borderlane-edge mrz listen --port /dev/ttyUSB0
      borderlane-edge mrz listen --port '/dev/serial/by-id/usb-*MRZ*' --baud 115200
      borderlane-edge mrz listen --port 0403:6001 --framing stx-etx --prefix 1B4D --count 1
    """
    try:
        config = MrzReaderConfig.from_dict(
            {
                "port": port,
                "baudrate": baudrate,
                "parity": parity,
                "framing": framing,
                "prefix": prefix,
                "suffix": suffix,
            }
        )
    except MrzReaderConfigError as exc:
        raise click.UsageError(str(exc)) from None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_listen(config, count))


async def _listen(config: MrzReaderConfig, count: int | None) -> None:
    async with MrzReader(config) as reader, asyncio.TaskGroup() as tasks:
        reporter = tasks.create_task(_report_states(reader, config.port))
        async for event in reader:
            line = {"ok": event.ok, "latency_ms": round(event.latency * 1000, 3)}
            if event.document is not None:
                line["document"] = event.document.to_dict()
            else:
                line["error"] = str(event.error)
            click.echo(json.dumps(line))
            if count is not None:
                count -= 1
                if count == 0:
                    break
        reporter.cancel()


async def _report_states(reader: MrzReader, port: str) -> None:
    """Say on standard error whenever the reader connects or is lost."""
    status = None
    while True:
        state = await reader.wait_state(lambda s, seen=status: s.status != seen)
        status = state.status
        detail = f" ({state.last_error})" if state.last_error else ""
        click.echo(f"reader {status} {state.port or port}{detail}", err=True)
