"""``borderlane-console command``: send a command to one kiosk and print its answer.

A thin layer over :mod:`console.commands`. Exit status: 0 the kiosk answered ok, 1 it answered
with an error (or the broker could not be reached), 2 usage error, 3 no answer in time.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import click

from mqtt_schemas import PayloadError, TopicError, topics

from .. import commands, connection
from .options import broker_options, one_line_errors

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")

EXIT_ERROR = 1
EXIT_NO_ANSWER = 3


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``2h``, ``1d`` -> seconds (positive)."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration: use e.g. 30s, 5m, 2h, 1d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_args(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs -> args. A value that reads as JSON (``200``, ``true``, ``null``,
    ``["a","b"]``) is taken as such, anything else as a string: ``--arg channel=stable``."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--arg {pair!r}: expected key=value")
        if key in args:
            raise ValueError(f"--arg {key} given twice")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        args[key] = value
    return args


class _Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.group("command")
def command() -> None:
    """Commands to kiosks: ping, diagnostics, watchlist-resync, config-reload, agent-restart.

    \b
    Examples:
      borderlane-console command send --device kiosk-bz-01 ping \\
          --broker broker:8884 --cafile ca.crt --cert console.crt --key console.key
      borderlane-console command send --device kiosk-bz-01 watchlist-resync --expires 10m ...
    """


@command.command("send")
@click.argument("name")
@click.option("--device", "device_id", required=True, help="The kiosk's device id.")
@click.option(
    "--arg",
    "arg_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help='A command argument (repeatable); JSON values (200, true, ["a"]) are typed.',
)
@click.option(
    "--expires",
    type=_Duration(),
    help="Do not run it if it reaches the kiosk later than this (30s, 5m, 2h, 1d).",
)
@click.option(
    "--wait",
    "wait_s",
    type=_Duration(),
    default=commands.DEFAULT_WAIT_S,
    show_default=True,
    help="How long to wait for the answer.",
)
@broker_options(node_id_use="stamped on the command", node_id_suffix="-commands")
@one_line_errors(commands.CommandsError)
def send(
    name: str,
    device_id: str,
    arg_pairs: tuple[str, ...],
    expires: float | None,
    wait_s: float,
    endpoint: connection.Endpoint,
    node_id: str,
) -> None:
    """Send command NAME to one kiosk and print its result as JSON.

    Exit status: 0 the kiosk answered ok (the result is printed), 1 it answered with an error
    (printed as CODE: MESSAGE) or the broker could not be reached, 2 usage error, 3 no answer
    within --wait (the kiosk may still answer later; the ingest workers store it).

    \b
    Examples:
      borderlane-console command send --device kiosk-bz-01 ping \\
          --broker broker:8884 --cafile ca.crt --cert console.crt --key console.key
      borderlane-console command send --device kiosk-bz-01 diagnostics \\
          --arg 'sections=["outbox","readers"]' --arg log_lines=200 --wait 30 ...
      borderlane-console command send --device kiosk-bz-01 agent-restart --expires 5m ...
    """
    try:
        topics.check_device_id(device_id)
        args = parse_args(arg_pairs)
        # Refuse a command the contract refuses before connecting to anything.
        commands.build_command(node_id, name, args, expires_in_s=expires)
    except PayloadError as exc:
        problem = f"the command is not valid: {exc.path or '/'}: {exc.problem}"
        raise click.UsageError(problem) from None
    except (ValueError, TopicError) as exc:
        raise click.UsageError(str(exc)) from None
    settings = commands.CommandSettings(endpoint, node_id)
    try:
        answer = asyncio.run(
            commands.send_command(
                settings, device_id, name, args, expires_in_s=expires, wait_s=wait_s
            )
        )
    except commands.NoAnswer as exc:  # not an error: the kiosk may answer later
        click.echo(str(exc), err=True)
        raise SystemExit(EXIT_NO_ANSWER) from None
    if answer["status"] == "ok":
        click.echo(json.dumps(answer["result"], indent=2, ensure_ascii=False, sort_keys=True))
        return
    error = answer["error"]
    click.echo(f"{error['code']}: {error['message']}", err=True)
    raise SystemExit(EXIT_ERROR)
